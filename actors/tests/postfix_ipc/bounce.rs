//! Real bounce daemon (as bounce, defer, trace), verify and flush services
//! act on our requests; the notices they produce are delivered with our
//! own delivery requests to the sender's mailbox.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use oqmgr::entry::Outcome;
use oqmgr_actors::postfix::attr::WireDsn;
use oqmgr_actors::postfix::bounce::{
    bounce_flags, defer_dsn, flush_add, send, verify_update, BounceMessage, BounceRequest,
    FlushAdd, VerifyUpdate,
};
use oqmgr_actors::postfix::deliver_request::{deliver, flags};
use oqmgr_devtools::sandbox::Sandbox;

use super::support::{
    activate, dialect, enqueue, envelope, outcome, private, record_type_at, request, sandbox,
    wait_ready, wire_recipient, IPC_TIMEOUT, WAIT,
};

const MESSAGE: &[u8] = b"Subject: bounce test\n\nbody MARKER-5678\n";

/// A sandbox whose `sender@sandbox.test` mailbox is a file we can read.
fn bounce_sandbox(mailbox_dir: &Path) -> Sandbox {
    let aliases = format!("inline:{{sender={}}}", mailbox_dir.join("sender").display());
    sandbox(&[
        ("mydestination", "sandbox.test"),
        ("alias_maps", &aliases),
        ("relay_domains", "relay.test"),
    ])
}

fn mailbox_dir() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("oqmgr-ipc-")
        .tempdir()
        .unwrap();
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o1777)).unwrap();
    d
}

fn info(env_sender: &[u8], id: &str, flags: u32) -> BounceMessage {
    BounceMessage {
        flags,
        queue_name: b"active".to_vec(),
        queue_id: id.into(),
        sender: env_sender.to_vec(),
        ..BounceMessage::default()
    }
}

/// The queue ID at the end of the bounce daemon's line `<id>: <what>: NEWID`.
fn notice_id(sb: &Sandbox, id: &str, what: &str) -> String {
    let needle = format!("{id}: {what}: ");
    assert!(
        sb.wait_for_log(&needle, WAIT),
        "no `{needle}` in maillog:\n{}",
        sb.maillog()
    );
    let log = sb.maillog();
    let line = log.lines().find(|l| l.contains(&needle)).unwrap();
    line.rsplit(": ").next().unwrap().trim().to_owned()
}

/// Delivers a notice (in `incoming/`) to its recipient with the local
/// agent, as qmgr would, and returns the mailbox text.
async fn deliver_notice(sb: &Sandbox, notice: &str, mailbox: &Path) -> String {
    wait_ready(sb, notice);
    let path = activate(sb, notice);
    let env = envelope(&path, notice);
    assert_eq!(
        env.sender.as_deref(),
        Some(&b""[..]),
        "notices have the null sender"
    );
    assert_eq!(env.recipients[0].address, b"sender@sandbox.test");
    let req = request(&env, notice, "sandbox.test", 0);
    let r = deliver(&private(sb, "local"), &req, dialect(sb), IPC_TIMEOUT).await;
    assert_eq!(outcome(&r), (Outcome::Done, None), "{r:?}");
    fs::read_to_string(mailbox).unwrap()
}

#[tokio::test]
async fn defer_append_then_expiry_flush_returns_the_mail() {
    let boxes = mailbox_dir();
    let sb = bounce_sandbox(boxes.path());
    let d = dialect(&sb);
    let id = enqueue(
        &sb,
        &["-f", "sender@sandbox.test", "r@remote.example"],
        MESSAGE,
    );
    let path = activate(&sb, &id);
    let env = envelope(&path, &id);
    let rcpt = wire_recipient(&env.recipients[0]);

    // qmgr defers the recipient itself (e.g. the retry transport is dead).
    let (dsn, replaced) = defer_dsn(WireDsn::simple("4.3.0", "mail transport unavailable"));
    assert!(!replaced);
    let append = BounceRequest::Append {
        flags: 0,
        queue_id: id.clone().into(),
        recipient: rcpt.clone(),
        dsn,
    };
    assert_eq!(
        send(&sb.queue_dir(), "defer", &append, d, IPC_TIMEOUT)
            .await
            .unwrap(),
        0
    );
    let logs = sb.queue_files("defer");
    let (_, log_path) = logs
        .iter()
        .find(|(i, _)| *i == id)
        .expect("defer log written");
    let text = fs::read_to_string(log_path).unwrap();
    assert!(text.contains("recipient=r@remote.example"), "{text}");
    assert!(text.contains(&format!("offset={}", rcpt.offset)), "{text}");
    assert!(
        text.contains("status=4.3.0") && text.contains("reason=mail transport unavailable"),
        "{text}"
    );

    // Expiry: FLUSH to `defer` with DELRCPT returns everything deferred.
    let flush = BounceRequest::Flush(info(b"sender@sandbox.test", &id, bounce_flags::DELRCPT));
    assert_eq!(
        send(&sb.queue_dir(), "defer", &flush, d, IPC_TIMEOUT)
            .await
            .unwrap(),
        0
    );
    let notice = notice_id(&sb, &id, "sender non-delivery notification");
    assert_eq!(
        record_type_at(&path, rcpt.offset),
        b'D',
        "DELRCPT marks the recipient done"
    );
    assert!(
        !sb.queue_files("defer").iter().any(|(i, _)| *i == id),
        "defer log removed"
    );

    let mail = deliver_notice(&sb, &notice, &boxes.path().join("sender")).await;
    assert!(
        mail.contains("Subject: Undelivered Mail Returned to Sender"),
        "{mail}"
    );
    assert!(
        mail.contains("<r@remote.example>: mail transport unavailable"),
        "{mail}"
    );
    assert!(mail.contains("MARKER-5678"), "{mail}");
}

#[tokio::test]
async fn bounce_flush_after_error_agent_and_delay_warning() {
    let boxes = mailbox_dir();
    let sb = bounce_sandbox(boxes.path());
    let d = dialect(&sb);

    // A hard failure by the error agent, then FLUSH to `bounce`
    // (docs/postfix-interop.md §13.2).
    let id = enqueue(
        &sb,
        &["-f", "sender@sandbox.test", "x@remote.example"],
        MESSAGE,
    );
    let path = activate(&sb, &id);
    let env = envelope(&path, &id);
    let req = request(&env, &id, "5.1.1 custom failure", 0);
    deliver(&private(&sb, "error"), &req, d, IPC_TIMEOUT)
        .await
        .unwrap();
    let flush = BounceRequest::Flush(info(b"sender@sandbox.test", &id, bounce_flags::NONE));
    assert_eq!(
        send(&sb.queue_dir(), "bounce", &flush, d, IPC_TIMEOUT)
            .await
            .unwrap(),
        0
    );
    let notice = notice_id(&sb, &id, "sender non-delivery notification");
    assert!(
        !sb.queue_dir().join("bounce").join(&id).exists(),
        "bounce log removed"
    );
    let mail = deliver_notice(&sb, &notice, &boxes.path().join("sender")).await;
    assert!(
        mail.contains("<x@remote.example>: custom failure"),
        "{mail}"
    );

    // VERP flush: one notice per recipient, each to the VERP-expanded
    // sender (`sender+x=remote.example@sandbox.test`).
    let id = enqueue(
        &sb,
        &["-f", "sender@sandbox.test", "x@remote.example"],
        MESSAGE,
    );
    let path = activate(&sb, &id);
    let env = envelope(&path, &id);
    let req = request(&env, &id, "5.1.1 custom failure", 0);
    deliver(&private(&sb, "error"), &req, d, IPC_TIMEOUT)
        .await
        .unwrap();
    let verp = BounceRequest::Verp {
        info: info(b"sender@sandbox.test", &id, bounce_flags::NONE),
        delimiters: b"+=".to_vec(),
    };
    assert_eq!(
        send(&sb.queue_dir(), "bounce", &verp, d, IPC_TIMEOUT)
            .await
            .unwrap(),
        0
    );
    let notice = notice_id(&sb, &id, "sender non-delivery notification");
    wait_ready(&sb, &notice);
    let path = sb.queue_dir().join("incoming").join(&notice);
    let env = envelope(&path, &notice);
    assert_eq!(
        env.recipients[0].address,
        b"sender+x=remote.example@sandbox.test"
    );

    // Delay warning: needs a defer log; the log is kept and nothing is
    // marked done.
    let id = enqueue(
        &sb,
        &["-f", "sender@sandbox.test", "slow@remote.example"],
        MESSAGE,
    );
    let path = activate(&sb, &id);
    let env = envelope(&path, &id);
    let rcpt = wire_recipient(&env.recipients[0]);
    let (dsn, _) = defer_dsn(WireDsn::simple(
        "4.4.1",
        "connect to slow.example: Connection timed out",
    ));
    let append = BounceRequest::Append {
        flags: 0,
        queue_id: id.clone().into(),
        recipient: rcpt.clone(),
        dsn,
    };
    assert_eq!(
        send(&sb.queue_dir(), "defer", &append, d, IPC_TIMEOUT)
            .await
            .unwrap(),
        0
    );
    let warn = BounceRequest::Warn(info(b"sender@sandbox.test", &id, 0));
    assert_eq!(
        send(&sb.queue_dir(), "defer", &warn, d, IPC_TIMEOUT)
            .await
            .unwrap(),
        0
    );
    let notice = notice_id(&sb, &id, "sender delay notification");
    assert_eq!(record_type_at(&path, rcpt.offset), b'R');
    assert!(
        sb.queue_files("defer").iter().any(|(i, _)| *i == id),
        "defer log kept"
    );
    let mail = deliver_notice(&sb, &notice, &boxes.path().join("sender")).await;
    assert!(
        mail.contains("Subject: Delayed Mail (still being retried)"),
        "{mail}"
    );
    assert!(
        mail.contains("connect to slow.example: Connection timed out"),
        "{mail}"
    );

    // A WARN for a message without a defer log is not an error for the
    // bounce daemon (status 0), but no notice is sent.
    let other = BounceRequest::Warn(info(b"sender@sandbox.test", "NOSUCHID", 0));
    assert_eq!(
        send(&sb.queue_dir(), "defer", &other, d, IPC_TIMEOUT)
            .await
            .unwrap(),
        0
    );
    assert!(!sb.maillog().contains("NOSUCHID: sender delay notification"));
}

#[tokio::test]
async fn trace_flush_reports_recorded_delivery() {
    let boxes = mailbox_dir();
    let sb = bounce_sandbox(boxes.path());
    let d = dialect(&sb);
    // `sendmail -v` sets trace_flags=1024; the agent records into trace/.
    let id = enqueue(
        &sb,
        &["-v", "-f", "sender@sandbox.test", "t@remote.example"],
        MESSAGE,
    );
    let path = activate(&sb, &id);
    let env = envelope(&path, &id);
    assert_eq!(env.trace_flags as u32 & flags::RECORD, flags::RECORD);
    let req = request(&env, &id, "discard traced", 0);
    assert_eq!(req.flags, flags::DEFAULT | flags::RECORD);
    let r = deliver(&private(&sb, "discard"), &req, d, IPC_TIMEOUT).await;
    assert_eq!(outcome(&r), (Outcome::Done, None));
    assert!(
        sb.queue_dir().join("trace").join(&id).exists(),
        "agent wrote a trace log"
    );

    let trace = BounceRequest::Trace(info(b"sender@sandbox.test", &id, flags::RECORD));
    assert_eq!(
        send(&sb.queue_dir(), "trace", &trace, d, IPC_TIMEOUT)
            .await
            .unwrap(),
        0
    );
    let notice = notice_id(&sb, &id, "sender delivery status notification");
    assert!(
        !sb.queue_dir().join("trace").join(&id).exists(),
        "trace log removed"
    );
    let mail = deliver_notice(&sb, &notice, &boxes.path().join("sender")).await;
    assert!(
        mail.contains("Subject: Mail Delivery Status Report"),
        "{mail}"
    );
    assert!(
        mail.contains("<t@remote.example>: discard traced"),
        "{mail}"
    );
    assert!(
        mail.contains("Action: delivered") && mail.contains("Status: 2.0.0"),
        "{mail}"
    );
}

#[tokio::test]
async fn verify_and_fast_flush_services_answer() {
    let boxes = mailbox_dir();
    let sb = bounce_sandbox(boxes.path());
    let update = VerifyUpdate {
        address: b"probe@remote.example".to_vec(),
        recipient_status: 0,
        reason: b"250 ok".to_vec(),
    };
    assert_eq!(
        verify_update(&sb.queue_dir(), &update, IPC_TIMEOUT)
            .await
            .unwrap(),
        0
    );
    // fast-flush accepts sites in fast_flush_domains ($relay_domains) and
    // denies others (FLUSH_STAT_DENY = 4).
    let ok = FlushAdd {
        site: b"relay.test".to_vec(),
        queue_id: b"ABCDEF1234".to_vec(),
    };
    assert_eq!(
        flush_add(&sb.queue_dir(), &ok, IPC_TIMEOUT).await.unwrap(),
        0
    );
    let denied = FlushAdd {
        site: b"other.example".to_vec(),
        queue_id: b"ABCDEF1234".to_vec(),
    };
    assert_eq!(
        flush_add(&sb.queue_dir(), &denied, IPC_TIMEOUT)
            .await
            .unwrap(),
        4
    );
    let log = sb.maillog();
    assert!(
        !log.contains("fatal") && !log.contains("unexpected attribute"),
        "{log}"
    );
}
