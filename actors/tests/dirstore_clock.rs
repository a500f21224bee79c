#![allow(clippy::disallowed_methods)] // the fake wall clock reads the real one
//! The daemon's queue store across wall-clock steps (an NTP step, a VM
//! suspend and resume): file time stamps are compared with the wall clock
//! as it reads when they are compared, and deferral stamps are written
//! from it, while timers stay on the monotonic clock. The wall clock is a
//! fake one stepped an hour forward and an hour back.
//!
//! The store works on paths relative to the queue directory (the daemon
//! has chdir-ed there), so this binary chdirs once into a private queue
//! directory; it holds only this one test.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use oqmgr::message::Verdict;
use oqmgr::scan::{QueueName, ScanFlags};
use oqmgr_actors::clock::Clock;
use oqmgr_actors::daemon::active_table::ActiveTable;
use oqmgr_actors::daemon::dirstore::{DirStore, Routing};
use oqmgr_actors::daemon::resolver::{Resolver, ResolverConfig};
use oqmgr_actors::daemon::site::Site;
use oqmgr_actors::daemon::worker::Worker;
use oqmgr_actors::postfix::queue_file_parse::ReadLimits;
use oqmgr_actors::postfix::queue_file_write::set_next_attempt;
use oqmgr_actors::postfix::queue_id::QueueHashing;
use oqmgr_actors::queue_store::{Completion, QueueStore, StoreError};
use oqmgr_devtools::queue_file_writer::{NewRecipient, QueueFileWriter, DEFAULT_LINE_LIMIT};

/// How far the fake wall clock is from the real one, in seconds.
static STEP: AtomicI64 = AtomicI64::new(0);

/// The fake wall clock: the real one plus [`STEP`].
fn stepped_wall() -> SystemTime {
    let step = STEP.load(Ordering::SeqCst);
    let now = SystemTime::now();
    if step >= 0 {
        now + Duration::from_secs(step as u64)
    } else {
        now - Duration::from_secs(step.unsigned_abs())
    }
}

/// A ready queue file `incoming/<id>` stamped with the fake wall clock, as
/// cleanup writes it after the step.
fn incoming(id: &str) {
    let now = stepped_wall().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let mut w = QueueFileWriter::new();
    w.arrival(now, 0)
        .sender(b"s@example.com")
        .recipient(&NewRecipient {
            address: b"r@example.net".to_vec(),
            ..NewRecipient::default()
        });
    w.content_line(b"Subject: step", DEFAULT_LINE_LIMIT);
    let path = format!("incoming/{id}");
    fs::write(&path, w.finish()).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).unwrap();
    set_next_attempt(path.as_ref(), stepped_wall()).unwrap();
}

/// Seconds between a file's mtime and the fake wall clock (positive: in
/// its future).
fn ahead_of_wall(path: &str) -> i64 {
    let mtime = fs::metadata(path).unwrap().modified().unwrap();
    let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    secs(mtime) - secs(stepped_wall())
}

#[test]
fn mail_keeps_flowing_across_wall_clock_steps() {
    let dir = tempfile::tempdir().unwrap();
    std::env::set_current_dir(dir.path()).unwrap();
    for q in [
        "incoming", "active", "deferred", "defer", "bounce", "corrupt",
    ] {
        fs::create_dir(q).unwrap();
    }
    let site = Arc::new(Site::defaults(dir.path().to_path_buf()));
    let clock = Clock::wall_with(stepped_wall);
    let active: ActiveTable = Arc::default();
    let resolver = Resolver::new(
        &dir.path().join("private/rewrite"),
        ResolverConfig::default(),
    );
    let worker = Worker::start(Arc::clone(&site), clock).unwrap();
    let routing = Routing {
        default_filter_nexthop: String::new(),
        myhostname: "localhost".into(),
    };
    let mut store = DirStore::new(
        Arc::clone(&site),
        clock,
        ReadLimits::default(),
        routing,
        resolver,
        active,
        worker,
    );
    for (step, id) in [(3600, "ABCDE10001"), (-3600, "ABCDE10002")] {
        STEP.store(step, Ordering::SeqCst);
        // New mail, stamped by the stepped clock, is taken at once.
        incoming(id);
        let admitted = store.admit(QueueName::Incoming, id, ScanFlags::NONE, clock.now());
        assert!(
            admitted.is_ok(),
            "step {step} s: {id} not admitted: {:?}",
            admitted.err()
        );
        // A deferral for 300 s is stamped 300 s ahead of the wall clock as
        // it reads now, not an hour off.
        let until = clock.now() + oqmgr::time::Duration::from_secs(300);
        let (tx, rx) = std::sync::mpsc::channel();
        store.complete(
            id,
            &Verdict::Defer { until, warn: false },
            Completion::new(move || tx.send(()).unwrap()),
        );
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the completion is reported");
        let deferred = QueueHashing::default().queue_path("deferred", id);
        let ahead = ahead_of_wall(&deferred);
        assert!(
            (295..=305).contains(&ahead),
            "step {step} s: {id} stamped {ahead} s ahead of the wall clock"
        );
        // Not due yet: a scan without ALL leaves it.
        assert_eq!(
            store
                .admit(QueueName::Deferred, id, ScanFlags::NONE, clock.now())
                .err(),
            Some(StoreError::NotDue)
        );
    }
}
