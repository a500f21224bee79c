//! Real trivial-rewrite answers our resolve and rewrite requests.

use std::sync::{mpsc, Arc};

use oqmgr_actors::daemon::resolver::{Resolver, ResolverConfig};
use oqmgr_actors::postfix::rewrite::{resolve_flags as rf, ResolveClass, ResolveReply};
use oqmgr_devtools::sandbox::Sandbox;

use super::support::{private, sandbox, IPC_TIMEOUT, WAIT};

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

/// The daemon's client for the sandbox's trivial-rewrite.
fn resolver(sb: &Sandbox) -> Resolver {
    let config = ResolverConfig {
        ipc_timeout: IPC_TIMEOUT,
        ..ResolverConfig::default()
    };
    Resolver::new(&private(sb, "rewrite"), config)
}

/// Runs `f` on a thread of its own and returns its result, failing the
/// test after `WAIT` instead of waiting for ever (the client retries for
/// ever, as Postfix's does, while trivial-rewrite does not answer).
fn within<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(WAIT)
        .expect("trivial-rewrite answers (see the maillog)")
}

/// One resolve through `r`.
fn resolve(r: &Arc<Resolver>, class: ResolveClass, sender: &str, address: &str) -> ResolveReply {
    let (r, sender, address) = (Arc::clone(r), sender.to_string(), address.to_string());
    within(move || {
        r.resolve(class, sender.as_bytes(), [address.as_bytes()])
            .remove(0)
    })
}

/// One rewrite of a redirect target through `r`.
fn rewrite_local(r: &Arc<Resolver>, address: &str) -> Vec<u8> {
    let (r, address) = (Arc::clone(r), address.to_string());
    within(move || r.rewrite_local(address.as_bytes()))
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

#[test]
fn resolves_and_rewrites_through_real_trivial_rewrite() {
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
    let c = Arc::new(resolver(&sb));
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
        let r = resolve(&c, ResolveClass::Resolve, "sender@sandbox.test", addr);
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
    let r = resolve(&c, ResolveClass::Resolve, "", "u%x.example@remote.example");
    assert_ne!(r.flags & rf::ROUTED, 0, "{}", show(&r));
    // The verify class resolves too (same tables here).
    let r = resolve(&c, ResolveClass::Verify, "", "u@relay.test");
    assert_eq!(r.transport, b"relay");
    // Bad syntax: flagged, for qmgr to send to the error transport.
    for bad in ["user@bad..domain", "user@[1.2.3.999]", "-opt@sandbox.test"] {
        let r = resolve(&c, ResolveClass::Resolve, "", bad);
        assert_ne!(r.flags & rf::ERROR, 0, "{bad}: {}", show(&r));
    }
    // Rewrite (qmgr uses it for redirect targets): myorigin is appended,
    // quoting survives the internal/external round trip.
    assert_eq!(rewrite_local(&c, "user"), b"user@sandbox.test");
    assert_eq!(rewrite_local(&c, "a b"), b"a b@sandbox.test");
    assert_eq!(rewrite_local(&c, "x@y.example"), b"x@y.example");
    let log = sb.maillog();
    assert!(
        !log.contains("lookup error") && !log.contains("fatal"),
        "{log}"
    );
}

#[test]
fn client_survives_trivial_rewrite_restart() {
    let sb = sandbox(&[]);
    let c = Arc::new(resolver(&sb));
    let a = resolve(&c, ResolveClass::Resolve, "", "a@remote.example");
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
    let b = resolve(&c, ResolveClass::Resolve, "", "b@remote.example");
    assert_eq!(b.transport, b"smtp");
}

#[test]
fn table_failure_sets_the_fail_flag() {
    // A broken table makes trivial-rewrite answer with RESOLVE_FLAG_FAIL
    // (qmgr then sends the recipient to `retry`: address resolver failure).
    let sb = sandbox(&[("transport_maps", "inline:{broken}")]);
    let c = Arc::new(resolver(&sb));
    let r = resolve(&c, ResolveClass::Resolve, "", "u@remote.example");
    assert_ne!(r.flags & rf::FAIL, 0, "{}", show(&r));
    assert!(
        sb.wait_for_log("transport_maps lookup failure", super::support::WAIT),
        "{}",
        sb.maillog()
    );
}
