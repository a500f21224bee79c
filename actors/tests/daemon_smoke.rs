#![allow(clippy::disallowed_methods)] // tests wait on real daemons in real time
//! Our daemon in the qmgr slot of a private Postfix: the smallest end-to-end
//! checks (the full suite is `e2e.rs`).

use oqmgr_devtools::sandbox::{QmgrChoice, Sandbox};
use std::path::PathBuf;
use std::time::Duration;

fn ours() -> QmgrChoice {
    QmgrChoice::Command(PathBuf::from(env!("CARGO_BIN_EXE_oqmgr")))
}

/// Waits up to 30 s for a message to be removed from the queue, asserts
/// that it was, and returns the maillog.
fn maillog_after_removal(sb: &Sandbox) -> String {
    let done = sb.wait_for(Duration::from_secs(30), || {
        sb.maillog().contains(": removed")
    });
    let log = sb.maillog();
    assert!(done, "maillog:\n{log}");
    log
}

#[test]
fn delivers_to_discard_and_removes_the_file() {
    let sb = Sandbox::builder()
        .qmgr(ours())
        .main_cf("default_transport", "discard:daemon test")
        .in_flow_delay("0s")
        .start()
        .expect("sandbox starts");
    for i in 0..5 {
        let out = sb
            .sendmail(
                &["-f", "sender@example.com", &format!("rcpt{i}@example.net")],
                b"Subject: daemon\n\nhello\n",
            )
            .expect("sendmail runs");
        assert!(out.status.success(), "sendmail: {out:?}");
    }
    let delivered = sb.wait_for(Duration::from_secs(30), || {
        sb.maillog().matches("status=sent").count() >= 5
            && sb.maillog().matches(": removed").count() >= 5
    });
    assert!(delivered, "maillog:\n{}", sb.maillog());
    let log = sb.maillog();
    assert!(log.contains("(queue active)"), "{log}");
    assert!(sb.queue_files("active").is_empty());
    assert!(sb.queue_files("incoming").is_empty());
}

/// With `y` in master.cf's chroot column the daemon chroots to the queue
/// directory after reading main.cf, as Postfix's queue managers do, and
/// still finds the agents' sockets and the log service.
#[test]
fn runs_chrooted() {
    let daemon_dir = oqmgr_devtools::sandbox::postfix_daemon_directory()
        .expect("postconf")
        .canonicalize()
        .expect("canonical daemon_directory");
    let ups = daemon_dir.components().count() - 1;
    let ours = PathBuf::from(env!("CARGO_BIN_EXE_oqmgr"))
        .canonicalize()
        .expect("canonical binary path");
    let climbing = format!(
        "{}{}",
        "../".repeat(ups),
        ours.to_str().expect("utf-8 path").trim_start_matches('/')
    );
    let sb = Sandbox::builder()
        .qmgr(QmgrChoice::None)
        .master_cf_line(format!("qmgr unix n - y 300 1 {climbing}"))
        .main_cf("default_transport", "discard:chrooted")
        .in_flow_delay("0s")
        .start()
        .expect("sandbox starts");
    sb.sendmail(
        &["-f", "sender@example.com", "rcpt@example.net"],
        b"Subject: jail\n\nhi\n",
    )
    .expect("sendmail runs");
    maillog_after_removal(&sb);
    assert!(sb.maillog().contains("postfix/qmgr["), "{}", sb.maillog());
    // It really is jailed: its root directory is the queue directory.
    let pid = sb.qmgr_pid().expect("qmgr running");
    let root = std::fs::read_link(format!("/proc/{pid}/root")).expect("/proc/PID/root");
    assert_eq!(root, sb.queue_dir().canonicalize().expect("queue dir"));
}

/// A delivery that takes longer than `qmgr_ipc_timeout` (a slow remote
/// server) is waited for, not mistaken for a crashed agent.
#[test]
fn slow_delivery_is_not_a_crash() {
    let port = oqmgr_devtools::sandbox::free_port().expect("free port");
    let sink = oqmgr_devtools::sandbox::SmtpSink::start(port, &["-w", "3"]).expect("smtp-sink");
    let sb = Sandbox::builder()
        .qmgr(ours())
        .main_cf("relayhost", format!("[127.0.0.1]:{port}"))
        .main_cf("qmgr_ipc_timeout", "1s")
        .in_flow_delay("0s")
        .start()
        .expect("sandbox starts");
    sb.sendmail(
        &["-f", "sender@example.com", "slow@example.net"],
        b"Subject: slow\n\nhi\n",
    )
    .expect("sendmail runs");
    let log = maillog_after_removal(&sb);
    assert!(
        log.contains("to=<slow@example.net>") && log.contains("status=sent"),
        "{log}"
    );
    assert!(!log.contains("lost connection"), "{log}");
    drop(sink);
}

/// A message with more recipients than one read takes
/// (`qmgr_message_recipient_limit = 2`) is read in several batches: the
/// store keeps its reading state between reads and drops it after the
/// last; every recipient is delivered once and the file removed.
#[test]
fn recipients_beyond_one_read_are_all_delivered() {
    let sb = Sandbox::builder()
        .qmgr(ours())
        .main_cf("default_transport", "discard:batches")
        .main_cf("qmgr_message_recipient_limit", "2")
        .in_flow_delay("0s")
        .start()
        .expect("sandbox starts");
    let rcpts: Vec<String> = (0..7).map(|i| format!("r{i}@example.net")).collect();
    let mut args = vec!["-f", "sender@example.com"];
    args.extend(rcpts.iter().map(String::as_str));
    let out = sb
        .sendmail(&args, b"Subject: batches\n\nhi\n")
        .expect("sendmail runs");
    assert!(out.status.success(), "sendmail: {out:?}");
    let log = maillog_after_removal(&sb);
    for r in &rcpts {
        assert_eq!(
            log.matches(&format!("to=<{r}>")).count(),
            1,
            "{r} once:\n{log}"
        );
    }
    assert!(sb.queue_files("active").is_empty(), "{log}");
}

/// A `REDIRECT` from header_checks: the message goes to the redirect
/// address only, once, whatever its recipients (the store reads the
/// redirect from the packed shared envelope after the first read).
#[test]
fn a_redirected_message_goes_to_the_redirect_address_only() {
    let sb = Sandbox::builder()
        .qmgr(ours())
        .main_cf("default_transport", "discard:redirect")
        .main_cf("header_checks", "regexp:$config_directory/header_checks")
        .config_file(
            "header_checks",
            "/^Subject: redirect me/ REDIRECT elsewhere@example.org\n",
        )
        .in_flow_delay("0s")
        .start()
        .expect("sandbox starts");
    let out = sb
        .sendmail(
            &["-f", "sender@example.com", "a@example.net", "b@example.net"],
            b"Subject: redirect me\n\nhi\n",
        )
        .expect("sendmail runs");
    assert!(out.status.success(), "sendmail: {out:?}");
    let log = maillog_after_removal(&sb);
    assert_eq!(
        log.matches("to=<elsewhere@example.org>").count(),
        1,
        "{log}"
    );
    assert!(log.contains("status=sent"), "{log}");
}
