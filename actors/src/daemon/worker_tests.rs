//! Tests of the completion worker's steps, one job at a time on real queue
//! files (the scratch queue directory of `crate::testing`), with
//! bounce-daemon stand-ins or none at all.

use std::time::{Duration as StdDuration, UNIX_EPOCH};

use super::*;
use crate::postfix::queue_file::{DSN_NOTIFY_SUCCESS, TRACE_RECORD};
use crate::postfix::record::rec;
use crate::testing::{active_message, block_on, bounce_service, logged, record_type};

/// A site whose services' sockets are in `sockets`.
fn site(sockets: &std::path::Path) -> Site {
    Site {
        ipc_timeout: StdDuration::from_secs(5),
        ..Site::defaults(sockets.to_path_buf())
    }
}

/// A clock whose core time is Unix time from `secs` on.
fn clock_at(secs: u64) -> Clock {
    Clock::starting_at(Instant::from_secs(secs))
}

#[test]
fn a_trace_flush_is_due_when_postfix_sends_one() {
    let plain = active_message("WTR0", &["a@x.example"], 0, 0).0;
    assert!(!needs_trace(&plain));
    // sendmail -v, sendmail -bv, confirm_delay_cleared after a warning.
    for flags in [TRACE_RECORD, TRACE_USR_VRFY, TRACE_REC_DLY_SENT] {
        let m = active_message("WTR1", &["a@x.example"], flags, 0).0;
        assert!(needs_trace(&m), "trace flags {flags:#x}");
    }
    // NOTIFY=SUCCESS, kept shifted left by one in the `C` record.
    let m = active_message("WTR2", &["a@x.example"], 0, DSN_NOTIFY_SUCCESS << 1).0;
    assert!(needs_trace(&m));
}

#[test]
fn failed_flushes_are_named_as_oqmgr_names_them() {
    let info = BounceMessage::default();
    let verp = BounceRequest::Verp {
        info: info.clone(),
        delimiters: b"+=".to_vec(),
    };
    assert_eq!(flush_name(&BounceRequest::Flush(info.clone())), "bounce");
    assert_eq!(flush_name(&verp), "verp-bounce");
    assert_eq!(
        flush_name(&BounceRequest::Warn(info.clone())),
        "delay warning"
    );
    assert_eq!(flush_name(&BounceRequest::Trace(info)), "trace");
}

#[test]
fn a_quiet_completion_removes_the_file_at_once() {
    let site = site(std::path::Path::new("/nonexistent"));
    let (m, _) = active_message("WQT1", &["a@x.example"], 0, 0);
    let (removed, lines) = logged(|| remove_if_quiet(&site, &m));
    assert!(removed);
    assert_eq!(lines, ["WQT1: removed"]);
    assert!(std::fs::symlink_metadata("active/WQT1").is_err());
    // A bounce log to flush, or a report to send: the full pipeline.
    let (m, _) = active_message("WQT2", &["a@x.example"], 0, 0);
    std::fs::write("bounce/WQT2", b"recipient=a@x.example\n").unwrap();
    assert!(!remove_if_quiet(&site, &m));
    let (m, _) = active_message("WQT3", &["a@x.example"], TRACE_RECORD, 0);
    assert!(!remove_if_quiet(&site, &m));
    for id in ["WQT2", "WQT3"] {
        assert!(
            std::fs::metadata(format!("active/{id}")).is_ok(),
            "{id} kept"
        );
    }
}

#[test]
fn a_discarded_double_bounce_is_logged_as_sent_and_marked_done() {
    let site = site(std::path::Path::new("/nonexistent"));
    let (m, r) = active_message("WDC1", &["a@x.example", "b@x.example"], 0, 0);
    let now = Instant::from_secs(1_700_000_002);
    let ((), lines) = logged(|| discard(&site, &m, &r[0], now));
    assert_eq!(
        lines,
        [
            "WDC1: to=<a@x.example>, relay=none, delay=2, delays=1/1/0/0, dsn=2.0.0, \
          status=sent (undeliverable postmaster notification discarded)"
        ]
    );
    assert_eq!(record_type("WDC1", r[0].offset), rec::DONE);
    assert_eq!(record_type("WDC1", r[1].offset), rec::RCPT);
}

#[test]
fn without_the_retry_agent_a_deferral_is_recorded_here() {
    let sockets = tempfile::tempdir().unwrap();
    let site = site(sockets.path());
    let requests = bounce_service(sockets.path(), "defer", vec![Some(0), Some(1)]);
    let (m, r) = active_message("WDF1", &["a@x.example", "b@x.example"], 0, 0);
    let dsn = Dsn::new("4.3.0", "mail transport unavailable");
    let clock = clock_at(1_700_000_005);
    let ((), lines) = logged(|| block_on(defer(&site, &m, r.clone(), &dsn, &clock)));
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(
        lines[0],
        "warning: WDF1: retry service failure: connect to private/retry: No such file or directory"
    );
    // The first recipient is recorded and logged; the defer service
    // refuses the second, which is said.
    assert!(
        lines[1].starts_with("WDF1: to=<a@x.example>, relay=none, delay=5, delays=1/4/0/0,"),
        "{}",
        lines[1]
    );
    assert!(
        lines[1].ends_with("dsn=4.3.0, status=deferred (mail transport unavailable)"),
        "{}",
        lines[1]
    );
    assert_eq!(lines[2], "warning: WDF1: defer service failure");
    let requests = requests.lock().unwrap().clone();
    let first = String::from_utf8_lossy(&requests[0]);
    assert!(first.contains("action\0delayed\0"), "{first:?}");
    // Nothing is marked done: the message stays deferred.
    assert_eq!(record_type("WDF1", r[0].offset), rec::RCPT);
}

#[test]
fn a_deferred_message_is_stamped_and_moved_to_deferred() {
    let site = site(std::path::Path::new("/nonexistent"));
    let (m, _) = active_message("WCD1", &["a@x.example"], 0, 0);
    let clock = clock_at(1_700_000_000);
    let now = clock.now();
    let until = now + Duration::from_secs(300);
    let verdict = Verdict::Defer { until, warn: false };
    let ((), lines) = logged(|| block_on(complete(&site, &m, &verdict, now, &clock)));
    assert!(lines.is_empty(), "{lines:?}");
    let deferred = site.path("deferred", "WCD1");
    let stamp = std::fs::metadata(&deferred)
        .expect("moved to deferred/")
        .modified()
        .unwrap()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!((1_700_000_300..=1_700_000_302).contains(&stamp), "{stamp}");
    assert!(std::fs::symlink_metadata("active/WCD1").is_err());
}

#[test]
fn an_expired_message_whose_notice_fails_is_kept() {
    let site = site(std::path::Path::new("/nonexistent"));
    let (m, _) = active_message("WEX1", &["a@x.example"], 0, 0);
    let clock = clock_at(1_700_000_000);
    let verdict = Verdict::Expire { status: "expired" };
    let ((), lines) = logged(|| block_on(complete(&site, &m, &verdict, clock.now(), &clock)));
    assert_eq!(
        lines,
        [
            "WEX1: from=<s@x.example>, status=expired, returned to sender",
            "warning: WEX1: defer service failure: connect to private/defer: No such file or \
             directory",
            "WEX1: status=deferred (bounce failed)",
        ]
    );
    assert!(std::fs::metadata(site.path("deferred", "WEX1")).is_ok());
}

/// The bounce daemon hangs up, or the trace daemon is not there: as
/// oqmgr, the file is kept and deferred with `<id>: status=deferred
/// (<what> failed)`, and a warning of ours names the service and what
/// went wrong (oqmgr logs nothing more, so an operator could not tell a
/// dead bounce daemon from a refusal).
#[test]
fn a_bounce_or_trace_daemon_that_answers_nothing_is_named_in_a_warning() {
    let sockets = tempfile::tempdir().unwrap();
    let site = site(sockets.path());
    bounce_service(sockets.path(), "bounce", vec![None]);
    let clock = clock_at(1_700_000_000);
    let remove = Verdict::Remove;
    // A bounce log to flush; the bounce daemon hangs up.
    let (flushed, _) = active_message("WPR1", &["a@x.example"], 0, 0);
    std::fs::write("bounce/WPR1", b"recipient=a@x.example\n").unwrap();
    let ((), lines) = logged(|| block_on(complete(&site, &flushed, &remove, clock.now(), &clock)));
    assert_eq!(
        lines,
        [
            "warning: WPR1: bounce service failure: premature end-of-input on private/bounce \
             socket",
            "WPR1: status=deferred (bounce failed)",
        ]
    );
    // A delivery report to send; there is no trace daemon at all.
    let (traced, _) = active_message("WPR2", &["a@x.example"], TRACE_RECORD, 0);
    let ((), lines) = logged(|| block_on(complete(&site, &traced, &remove, clock.now(), &clock)));
    assert_eq!(
        lines,
        [
            "warning: WPR2: trace service failure: connect to private/trace: No such file or \
             directory",
            "WPR2: status=deferred (trace failed)",
        ]
    );
    // Both kept, for a later attempt.
    for id in ["WPR1", "WPR2"] {
        assert!(
            std::fs::metadata(site.path("deferred", id)).is_ok(),
            "{id} in deferred/"
        );
    }
}

/// A job sent to the worker thread runs, and its completion is reported
/// when it is over (the supervisor counts the message until then).
#[test]
fn the_worker_thread_reports_each_completion() {
    let site = Arc::new(site(std::path::Path::new("/nonexistent")));
    let worker = Worker::start(site, clock_at(1_700_000_000)).unwrap();
    let (message, _) = active_message("WTH1", &["a@x.example"], 0, 0);
    let (tx, rx) = std::sync::mpsc::channel();
    worker.send(Job::Complete {
        message,
        verdict: Verdict::Remove,
        now: Instant::from_secs(1_700_000_000),
        done: Completion::new(move || tx.send(()).unwrap()),
    });
    rx.recv_timeout(StdDuration::from_secs(20))
        .expect("the completion is reported");
    assert!(std::fs::symlink_metadata("active/WTH1").is_err());
}
