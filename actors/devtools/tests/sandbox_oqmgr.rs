#![allow(clippy::disallowed_methods)] // tests wait on real daemons in real time
//! Starts a private Postfix with its own oqmgr, sends one message to a
//! `discard:` destination and waits for the delivery in the maillog. Proves
//! the sandbox configuration (ports, postlog, no chroot, no DNS) works end to
//! end.

use oqmgr_devtools::sandbox::{QmgrChoice, Sandbox};
use std::time::Duration;

#[test]
fn postfix_oqmgr_delivers_to_discard() {
    let sb = Sandbox::builder()
        .qmgr(QmgrChoice::PostfixOqmgr)
        .main_cf("default_transport", "discard:sandbox test")
        .start()
        .expect("sandbox starts");
    let out = sb
        .sendmail(
            &["-f", "sender@example.com", "rcpt@example.net"],
            b"Subject: sandbox\n\nhello\n",
        )
        .expect("sendmail runs");
    assert!(out.status.success(), "sendmail: {out:?}");
    assert!(
        sb.wait_for_log("status=sent", Duration::from_secs(20)),
        "no delivery; maillog:\n{}",
        sb.maillog()
    );
    let log = sb.maillog();
    assert!(log.contains("postfix/oqmgr"), "oqmgr did not log:\n{log}");
    assert!(log.contains("to=<rcpt@example.net>"), "{log}");
}

/// `QmgrChoice::Command` goes through a relative master.cf path that climbs out of
/// daemon_directory; Postfix's own oqmgr binary, given by absolute path, stands in
/// for ours.
#[test]
fn command_qmgr_runs_through_relative_path() {
    let real = oqmgr_devtools::sandbox::postfix_daemon_directory()
        .expect("postconf")
        .join("oqmgr");
    let sb = Sandbox::builder()
        .qmgr(QmgrChoice::Command(real))
        .main_cf("default_transport", "discard:sandbox test")
        .in_flow_delay("0s")
        .start()
        .expect("sandbox starts");
    let out = sb
        .sendmail(&["rcpt@example.net"], b"Subject: cmd\n\nhello\n")
        .expect("sendmail runs");
    assert!(out.status.success(), "sendmail: {out:?}");
    assert!(
        sb.wait_for_log("status=sent", Duration::from_secs(20)),
        "no delivery; maillog:\n{}",
        sb.maillog()
    );
}

/// Delivery over SMTP to an smtp-sink on a free loopback port (no DNS:
/// the relay is a bracketed literal).
#[test]
fn smtp_delivery_to_smtp_sink() {
    let port = oqmgr_devtools::sandbox::free_port().expect("free port");
    let sink = oqmgr_devtools::sandbox::SmtpSink::start(port, &[]).expect("smtp-sink starts");
    let sb = Sandbox::builder()
        .qmgr(QmgrChoice::PostfixOqmgr)
        .main_cf("relayhost", format!("[127.0.0.1]:{port}"))
        .in_flow_delay("0s")
        .start()
        .expect("sandbox starts");
    let out = sb
        .sendmail(&["rcpt@example.net"], b"Subject: sink\n\nhello\n")
        .expect("sendmail runs");
    assert!(out.status.success(), "sendmail: {out:?}");
    assert!(
        sb.wait_for_log("status=sent", Duration::from_secs(20)),
        "no delivery; maillog:\n{}",
        sb.maillog()
    );
    assert!(sb
        .maillog()
        .contains(&format!("relay=127.0.0.1[127.0.0.1]:{port}")));
    let pid = sink.pid().expect("running");
    let printed = sink.stop().expect("sink stops");
    // stop() reaped the process: not even a zombie is left.
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    let counters = oqmgr_devtools::sandbox::SinkCounters::parse_last(&printed.stdout)
        .expect("smtp-sink -c printed counters");
    assert_eq!(counters.messages, 1, "{printed:?}");
}
