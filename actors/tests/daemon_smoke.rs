#![allow(clippy::disallowed_methods)] // tests wait on real daemons in real time
//! Our daemon in the qmgr slot of a private Postfix: the smallest end-to-end
//! checks (the full suite is `e2e.rs`).

use oqmgr_actors::sandbox::{QmgrChoice, Sandbox};
use std::path::PathBuf;
use std::time::Duration;

fn ours() -> QmgrChoice {
    QmgrChoice::Command(PathBuf::from(env!("CARGO_BIN_EXE_oqmgr")))
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
