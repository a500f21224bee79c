//! Real delivery agents (discard, error/retry, local, smtp) deliver queue
//! files written by real cleanup, on our requests.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use oqmgr::entry::{Dsn, Outcome};
use oqmgr_actors::postfix::deliver_request::{deliver, AgentConnection, STATUS_DEFER};
use oqmgr_actors::postfix::dialect::Dialect;
use oqmgr_devtools::sandbox::{free_port, SmtpSink};

use super::support::{
    activate, dialect, enqueue, envelope, log_lines, outcome, private, record_type_at, request,
    sandbox, IPC_TIMEOUT, WAIT,
};

const MESSAGE: &[u8] = b"Subject: ipc test\n\nbody line MARKER-1234\n";

/// A world-writable (sticky) folder: local(8) and smtp-sink write into it
/// as `nobody`.
fn drop_box() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("oqmgr-ipc-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    d
}

#[tokio::test]
async fn discard_and_error_agents_deliver_bounce_and_defer() {
    let sb = sandbox(&[]);
    let d = dialect(&sb);
    assert_eq!(d, Dialect::Smtputf8, "this suite expects Postfix 3.7");

    // discard: delivered, recipient marked done, logged as sent.
    let id = enqueue(
        &sb,
        &["-f", "sender@sandbox.test", "rcpt@remote.example"],
        MESSAGE,
    );
    let path = activate(&sb, &id);
    let env = envelope(&path, &id);
    let offset = env.recipients[0].offset;
    assert_eq!(record_type_at(&path, offset), b'R');
    let req = request(&env, &id, "discard test", 0);
    let r = deliver(&private(&sb, "discard"), &req, d, IPC_TIMEOUT).await;
    assert_eq!(outcome(&r), (Outcome::Done, None), "{r:?}");
    assert_eq!(record_type_at(&path, offset), b'D');
    assert!(sb.wait_for_log(&format!("{id}: to=<rcpt@remote.example>"), WAIT));
    let line = log_lines(&sb, &format!("{id}: to=<rcpt@remote.example>")).remove(0);
    assert!(
        line.contains("postfix/discard[") && line.contains("status=sent (discard test)"),
        "{line}"
    );

    // error: bounced with the DSN from the next hop; final, so marked done,
    // and a bounce log now exists for the bounce daemon.
    let id = enqueue(
        &sb,
        &["-f", "sender@sandbox.test", "x@remote.example"],
        MESSAGE,
    );
    let path = activate(&sb, &id);
    let env = envelope(&path, &id);
    let req = request(&env, &id, "5.1.1 custom failure", 0);
    let r = deliver(&private(&sb, "error"), &req, d, IPC_TIMEOUT).await;
    assert_eq!(outcome(&r), (Outcome::Done, None), "{r:?}");
    assert_eq!(record_type_at(&path, env.recipients[0].offset), b'D');
    assert!(sb.wait_for_log(&format!("{id}: to=<x@remote.example>"), WAIT));
    let line = log_lines(&sb, &format!("{id}: to=<x@remote.example>")).remove(0);
    assert!(
        line.contains("dsn=5.1.1") && line.contains("status=bounced (custom failure)"),
        "{line}"
    );
    assert!(sb.queue_dir().join("bounce").join(&id).exists());

    // retry (the error agent under another name): deferred, not marked,
    // no hop status, so the destination gets positive feedback.
    let id = enqueue(
        &sb,
        &["-f", "sender@sandbox.test", "y@remote.example"],
        MESSAGE,
    );
    let path = activate(&sb, &id);
    let env = envelope(&path, &id);
    let req = request(&env, &id, "4.3.2 deferred transport", 0);
    let r = deliver(&private(&sb, "retry"), &req, d, IPC_TIMEOUT).await;
    assert_eq!(r.as_ref().unwrap().status, STATUS_DEFER);
    assert_eq!(outcome(&r), (Outcome::Defer, None), "{r:?}");
    assert_eq!(record_type_at(&path, env.recipients[0].offset), b'R');
    assert!(sb.wait_for_log(&format!("{id}: to=<y@remote.example>"), WAIT));
    let line = log_lines(&sb, &format!("{id}: to=<y@remote.example>")).remove(0);
    assert!(
        line.contains("status=deferred (deferred transport)"),
        "{line}"
    );
    assert_eq!(
        sb.queue_files("defer")
            .iter()
            .filter(|(i, _)| *i == id)
            .count(),
        1
    );

    // A pending allocation may be given back: connect, see the
    // announcement, close without a request. The agent takes that quietly.
    let conn = AgentConnection::connect(&private(&sb, "discard"), IPC_TIMEOUT)
        .await
        .unwrap();
    drop(conn);

    // The 3.10 dialect is refused by a 3.7 agent: an immediate "defer"
    // reply, nothing delivered, and the agent says why.
    let id = enqueue(
        &sb,
        &["-f", "sender@sandbox.test", "z@remote.example"],
        MESSAGE,
    );
    let path = activate(&sb, &id);
    let env = envelope(&path, &id);
    let req = request(&env, &id, "discard test", 0);
    let r = deliver(
        &private(&sb, "discard"),
        &req,
        Dialect::Sendopts,
        IPC_TIMEOUT,
    )
    .await;
    assert_eq!(outcome(&r), (Outcome::Defer, None), "{r:?}");
    assert_eq!(record_type_at(&path, env.recipients[0].offset), b'R');
    assert!(
        sb.wait_for_log("unexpected attribute sendopts", WAIT),
        "no complaint about sendopts:\n{}",
        sb.maillog()
    );
    // The refused request costs one "error receiving common attributes";
    // the connection closed without a request costs nothing.
    let log = sb.maillog();
    assert_eq!(
        log.matches("deliver_request_get: error receiving common attributes")
            .count(),
        1,
        "{log}"
    );
    let other_warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("warning:"))
        .filter(|l| !l.contains("sendopts") && !l.contains("error receiving common attributes"))
        // Without a qmgr, cleanup cannot send its "new mail" trigger.
        .filter(|l| !l.contains("unable to look up public/qmgr"))
        .collect();
    assert!(other_warnings.is_empty(), "{other_warnings:#?}");
}

#[tokio::test]
async fn local_agent_delivers_into_a_file() {
    let boxdir = drop_box();
    let mailbox = boxdir.path().join("mbox");
    let aliases = format!("inline:{{mbox={}}}", mailbox.display());
    let sb = sandbox(&[("mydestination", "sandbox.test"), ("alias_maps", &aliases)]);
    let id = enqueue(
        &sb,
        &["-f", "sender@sandbox.test", "mbox@sandbox.test"],
        MESSAGE,
    );
    let path = activate(&sb, &id);
    let env = envelope(&path, &id);
    let req = request(&env, &id, "sandbox.test", 0);
    let r = deliver(&private(&sb, "local"), &req, dialect(&sb), IPC_TIMEOUT).await;
    assert_eq!(outcome(&r), (Outcome::Done, None), "{r:?}");
    assert_eq!(record_type_at(&path, env.recipients[0].offset), b'D');
    let text = std::fs::read_to_string(&mailbox).unwrap();
    assert!(text.starts_with("From sender@sandbox.test "), "{text}");
    assert!(
        text.contains("MARKER-1234") && text.contains("Delivered-To: mbox@sandbox.test"),
        "{text}"
    );
    assert!(sb.wait_for_log(&format!("{id}: to=<mbox@sandbox.test>"), WAIT));
    let line = log_lines(&sb, &format!("{id}: to=<mbox@sandbox.test>")).remove(0);
    assert!(
        line.contains("relay=local") && line.contains("status=sent (delivered to file:"),
        "{line}"
    );
}

#[tokio::test]
async fn smtp_agent_delivers_to_a_sink_and_reports_a_dead_site() {
    let sb = sandbox(&[]);
    let d = dialect(&sb);
    let dump = drop_box();
    let dump_file = dump.path().join("dump");
    let port = free_port().unwrap();
    let sink = SmtpSink::start(port, &["-D", dump_file.to_str().unwrap()]).unwrap();
    let nexthop = format!("[127.0.0.1]:{port}");

    // Two recipients in one request; both delivered and marked.
    let id = enqueue(
        &sb,
        &[
            "-f",
            "sender@sandbox.test",
            "a@remote.example",
            "b@remote.example",
        ],
        MESSAGE,
    );
    let path = activate(&sb, &id);
    let env = envelope(&path, &id);
    assert_eq!(env.recipients.len(), 2);
    let req = request(&env, &id, &nexthop, 0);
    let r = deliver(&private(&sb, "smtp"), &req, d, IPC_TIMEOUT).await;
    assert_eq!(outcome(&r), (Outcome::Done, None), "{r:?}");
    for rcpt in &env.recipients {
        assert_eq!(record_type_at(&path, rcpt.offset), b'D');
    }
    for to in ["a@remote.example", "b@remote.example"] {
        let needle = format!("{id}: to=<{to}>");
        assert!(sb.wait_for_log(&needle, WAIT));
        let line = log_lines(&sb, &needle).remove(0);
        assert!(
            line.contains(&format!("relay=127.0.0.1[127.0.0.1]:{port}"))
                && line.contains("status=sent (250"),
            "{line}"
        );
    }
    let dumped = std::fs::read_to_string(&dump_file).unwrap();
    assert!(
        dumped.contains("X-Mail-Args: <sender@sandbox.test>"),
        "{dumped}"
    );
    assert!(
        dumped.contains("X-Rcpt-Args: <a@remote.example> ORCPT=rfc822;a@remote.example"),
        "{dumped}"
    );
    assert!(
        dumped.contains("X-Rcpt-Args: <b@remote.example> ORCPT=rfc822;b@remote.example"),
        "{dumped}"
    );
    assert!(dumped.contains("MARKER-1234"), "{dumped}");
    let out = sink.stop().unwrap();
    let counters = String::from_utf8_lossy(&out.stdout);
    assert!(counters.contains("mesg=1"), "{counters}");

    // The sink is gone: connection refused is a hop status, which qmgr
    // turns into negative feedback for the destination.
    let id = enqueue(
        &sb,
        &["-f", "sender@sandbox.test", "c@remote.example"],
        MESSAGE,
    );
    let path = activate(&sb, &id);
    let env = envelope(&path, &id);
    let req = request(&env, &id, &nexthop, 0);
    let r = deliver(&private(&sb, "smtp"), &req, d, IPC_TIMEOUT).await;
    let reply = r.as_ref().unwrap();
    assert_eq!(reply.status, STATUS_DEFER);
    assert_eq!(reply.hop.status, b"4.4.1");
    let expected_reason = format!("connect to 127.0.0.1[127.0.0.1]:{port}: Connection refused");
    assert_eq!(String::from_utf8_lossy(&reply.hop.reason), expected_reason);
    // The core adds "delivery temporarily suspended: " to the reason.
    assert_eq!(
        outcome(&r),
        (Outcome::Defer, Some(Dsn::new("4.4.1", expected_reason)))
    );
    assert_eq!(record_type_at(&path, env.recipients[0].offset), b'R');
    assert!(sb.wait_for_log(
        &format!("{id}: to=<c@remote.example>"),
        Duration::from_secs(20)
    ));
}
