//! Real trivial-rewrite answers our resolve and rewrite requests.

use oqmgr_actors::postfix::rewrite::{
    resolve_flags as rf, ClientConfig, ResolveClass, ResolveReply, RewriteClient, RewriteRule,
};

use super::support::{private, sandbox, IPC_TIMEOUT};

const CLASS_MASK: u32 =
    rf::CLASS_LOCAL | rf::CLASS_ALIAS | rf::CLASS_VIRTUAL | rf::CLASS_RELAY | rf::CLASS_DEFAULT;

fn show(r: &ResolveReply) -> String {
    format!(
        "transport={} nexthop={} recipient={} flags={}",
        String::from_utf8_lossy(&r.transport),
        String::from_utf8_lossy(&r.nexthop),
        String::from_utf8_lossy(&r.recipient),
        r.flags
    )
}

/// A transport table readable by the `postfix` user, back-dated so that
/// trivial-rewrite does not wait for it to "cool down".
fn transport_table(text: &str) -> tempfile::NamedTempFile {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f.as_file()
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(10))
        .unwrap();
    std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    f
}

#[tokio::test]
async fn resolves_and_rewrites_through_real_trivial_rewrite() {
    let table = transport_table(
        "err.test error:5.1.1 no such domain here\nspecial.test smtp:[127.0.0.1]:2525\n",
    );
    let maps = format!("texthash:{}", table.path().display());
    let sb = sandbox(&[
        ("mydestination", "sandbox.test, localhost"),
        ("virtual_mailbox_domains", "virt.test"),
        ("virtual_alias_domains", "alias.test"),
        ("relay_domains", "relay.test"),
        ("transport_maps", &maps),
    ]);
    let config = ClientConfig {
        ipc_timeout: IPC_TIMEOUT,
        max_attempts: Some(5),
        ..ClientConfig::default()
    };
    let mut c = RewriteClient::new(private(&sb, "rewrite"), config);
    // (address, transport, nexthop, class bit)
    let cases = [
        (
            "user@sandbox.test",
            "local",
            "sandbox.test",
            rf::CLASS_LOCAL,
        ),
        (
            "user+ext@sandbox.test",
            "local",
            "sandbox.test",
            rf::CLASS_LOCAL,
        ),
        ("u@virt.test", "virtual", "virt.test", rf::CLASS_VIRTUAL),
        (
            "u@alias.test",
            "error",
            "5.1.1 User unknown in virtual alias table",
            rf::CLASS_ALIAS,
        ),
        ("u@relay.test", "relay", "relay.test", rf::CLASS_RELAY),
        (
            "u@err.test",
            "error",
            "5.1.1 no such domain here",
            rf::CLASS_DEFAULT,
        ),
        (
            "u@special.test",
            "smtp",
            "[127.0.0.1]:2525",
            rf::CLASS_DEFAULT,
        ),
        (
            "u@remote.example",
            "smtp",
            "remote.example",
            rf::CLASS_DEFAULT,
        ),
    ];
    for (addr, transport, nexthop, class) in cases {
        let r = c
            .resolve(
                ResolveClass::Resolve,
                b"sender@sandbox.test",
                addr.as_bytes(),
            )
            .await
            .unwrap();
        let got = format!("{}\n{}", show(&r), sb.maillog());
        assert_eq!(r.transport, transport.as_bytes(), "{addr}: {got}");
        assert_eq!(r.nexthop, nexthop.as_bytes(), "{addr}: {got}");
        assert_eq!(r.recipient, addr.as_bytes(), "{addr}: {got}");
        assert_eq!(r.flags & CLASS_MASK, class, "{addr}: {got}");
        assert_eq!(r.flags & (rf::ERROR | rf::FAIL), 0, "{addr}: {got}");
        assert_eq!(r.server_flags, 0);
    }
    // A source-routed address (the text after the first `%` is not the
    // domain) carries RESOLVE_FLAG_ROUTED.
    let r = c
        .resolve(ResolveClass::Resolve, b"", b"u%x.example@remote.example")
        .await
        .unwrap();
    assert_ne!(r.flags & rf::ROUTED, 0, "{}", show(&r));
    // The verify class resolves too (same tables here).
    let r = c
        .resolve(ResolveClass::Verify, b"", b"u@relay.test")
        .await
        .unwrap();
    assert_eq!(r.transport, b"relay");
    // Bad syntax: flagged, for qmgr to send to the error transport.
    for bad in ["user@bad..domain", "user@[1.2.3.999]", "-opt@sandbox.test"] {
        let r = c
            .resolve(ResolveClass::Resolve, b"", bad.as_bytes())
            .await
            .unwrap();
        assert_ne!(r.flags & rf::ERROR, 0, "{bad}: {}", show(&r));
    }
    // Rewrite (qmgr uses it for redirect targets): myorigin is appended,
    // quoting survives the internal/external round trip.
    assert_eq!(
        c.rewrite(RewriteRule::Local, b"user").await.unwrap(),
        b"user@sandbox.test"
    );
    assert_eq!(
        c.rewrite(RewriteRule::Local, b"a b").await.unwrap(),
        b"a b@sandbox.test"
    );
    assert_eq!(
        c.rewrite(RewriteRule::Local, b"x@y.example").await.unwrap(),
        b"x@y.example"
    );
    assert!(c.requests_sent() >= 15);
    let log = sb.maillog();
    assert!(
        !log.contains("lookup error") && !log.contains("fatal"),
        "{log}"
    );
}

#[tokio::test]
async fn client_survives_trivial_rewrite_restart() {
    let sb = sandbox(&[]);
    let config = ClientConfig {
        ipc_timeout: IPC_TIMEOUT,
        max_attempts: Some(5),
        ..ClientConfig::default()
    };
    let mut c = RewriteClient::new(private(&sb, "rewrite"), config);
    let a = c
        .resolve(ResolveClass::Resolve, b"", b"a@remote.example")
        .await
        .unwrap();
    assert_eq!(a.transport, b"smtp");
    // `postfix reload` makes trivial-rewrite exit after its current client;
    // our idle connection then reads EOF and is replaced transparently.
    let out = std::process::Command::new("postfix")
        .arg("-c")
        .arg(sb.config_dir())
        .arg("reload")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(sb.wait_for_log("reload", super::support::WAIT));
    let b = c
        .resolve(ResolveClass::Resolve, b"", b"b@remote.example")
        .await
        .unwrap();
    assert_eq!(b.transport, b"smtp");
}

#[tokio::test]
async fn table_failure_sets_the_fail_flag() {
    // A broken table makes trivial-rewrite answer with RESOLVE_FLAG_FAIL
    // (qmgr then sends the recipient to `retry`: address resolver failure).
    let sb = sandbox(&[("transport_maps", "inline:{broken}")]);
    let config = ClientConfig {
        ipc_timeout: IPC_TIMEOUT,
        max_attempts: Some(5),
        ..ClientConfig::default()
    };
    let mut c = RewriteClient::new(private(&sb, "rewrite"), config);
    let r = c
        .resolve(ResolveClass::Resolve, b"", b"u@remote.example")
        .await
        .unwrap();
    assert_ne!(r.flags & rf::FAIL, 0, "{}", show(&r));
    assert!(
        sb.wait_for_log("transport_maps lookup failure", super::support::WAIT),
        "{}",
        sb.maillog()
    );
}
