#![allow(clippy::disallowed_methods)] // file times are compared with the real wall clock
//! The daemon's queue store on a real queue directory: the scan walk,
//! admission (readiness, time stamps, the envelope read into the active
//! table, `confirm_delay_cleared`), recipient batches and their routing
//! through a content filter (trivial-rewrite is not involved then).
//!
//! The store names files relative to the queue directory, its working
//! directory (the daemon chdirs there); this binary chdirs once into a
//! private queue directory, and each test uses queue IDs of its own.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use oqmgr::scan::{QueueName, ScanFlags};
use oqmgr_actors::clock::Clock;
use oqmgr_actors::daemon::active_table::ActiveTable;
use oqmgr_actors::daemon::dirstore::{DirStore, Routing};
use oqmgr_actors::daemon::resolver::{Resolver, ResolverConfig};
use oqmgr_actors::daemon::site::Site;
use oqmgr_actors::daemon::worker::Worker;
use oqmgr_actors::postfix::queue_file::TRACE_REC_DLY_SENT;
use oqmgr_actors::postfix::queue_file_parse::ReadLimits;
use oqmgr_actors::postfix::queue_file_write::set_next_attempt;
use oqmgr_actors::postfix::record::rec;
use oqmgr_actors::queue_store::{QueueStore, StoreError};
use oqmgr_devtools::queue_file_writer::{NewRecipient, QueueFileWriter, DEFAULT_LINE_LIMIT};

/// The private queue directory, now the working directory.
fn queue_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        std::env::set_current_dir(&dir).unwrap();
        for q in [
            "incoming", "active", "deferred", "defer", "bounce", "corrupt", "private",
        ] {
            fs::create_dir(q).unwrap();
        }
        dir
    })
}

/// Serialises the tests: they share the queue directory, and a scan sees
/// every file in it.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Seconds since the epoch, now.
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A queue file `<queue>/<id>` as cleanup writes it, with `recipients`
/// and whatever `more` adds to its envelope, mode 0700.
fn queue_file(queue: &str, id: &str, recipients: &[&str], more: impl FnOnce(&mut QueueFileWriter)) {
    let mut w = QueueFileWriter::new();
    w.arrival(unix_now(), 0).sender(b"s@example.com");
    more(&mut w);
    for r in recipients {
        w.recipient(&NewRecipient {
            address: r.as_bytes().to_vec(),
            ..NewRecipient::default()
        });
    }
    w.content_line(b"Subject: store", DEFAULT_LINE_LIMIT);
    let path = Site::defaults(PathBuf::new()).path(queue, id);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(&path, w.finish()).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).unwrap();
}

/// A store on the queue directory with these reader limits; its active
/// table too. Its trivial-rewrite does not exist: the tests route through
/// a content filter.
fn store(limits: ReadLimits) -> (DirStore, ActiveTable) {
    let dir = queue_dir();
    let site = Arc::new(Site::defaults(dir.clone()));
    let clock = Clock::wall();
    let resolver = Resolver::new(&dir.join("private/rewrite"), ResolverConfig::default());
    let worker = Worker::start(Arc::clone(&site), clock).unwrap();
    let active: ActiveTable = Arc::default();
    let routing = Routing {
        default_filter_nexthop: String::new(),
        myhostname: "mx.example".into(),
    };
    let store = DirStore::new(
        site,
        clock,
        limits,
        routing,
        resolver,
        Arc::clone(&active),
        worker,
    );
    (store, active)
}

#[test]
fn a_scan_walks_the_queue_in_order_and_meets_a_vanished_file_at_admission() {
    let _serial = serial();
    let (mut store, _) = store(ReadLimits::default());
    // What earlier tests left in `incoming/` would be walked too.
    for entry in fs::read_dir("incoming").unwrap() {
        fs::remove_file(entry.unwrap().path()).unwrap();
    }
    for id in ["SCANB0001", "SCANA0001", "SCANC0001"] {
        queue_file("incoming", id, &["r@example.net"], |_| {});
    }
    // Not a queue ID (cleanup's temporary name): never listed.
    fs::write("incoming/12345.678", b"").unwrap();
    assert_eq!(store.scan_start(QueueName::Incoming), 3);
    fs::remove_file("incoming/SCANB0001").unwrap();
    let mut walked = Vec::new();
    while let Some(id) = store.scan_next(QueueName::Incoming) {
        walked.push(id);
    }
    assert_eq!(walked, ["SCANA0001", "SCANB0001", "SCANC0001"]);
    // The listing was taken at the start: the vanished file is handed out
    // and its admission says it is gone, as oqmgr's rename does.
    let now = Clock::wall().now();
    assert_eq!(
        store
            .admit(QueueName::Incoming, "SCANB0001", ScanFlags::NONE, now)
            .err(),
        Some(StoreError::Gone)
    );
    // A new walk sees what is there now.
    fs::remove_file("incoming/SCANA0001").unwrap();
    fs::remove_file("incoming/SCANC0001").unwrap();
    assert_eq!(store.scan_start(QueueName::Incoming), 0);
    assert_eq!(store.scan_next(QueueName::Incoming), None);
}

#[test]
fn admission_takes_ready_due_files_and_keeps_their_envelope() {
    let _serial = serial();
    let (mut store, active) = store(ReadLimits::default());
    let now = Clock::wall().now();
    // cleanup is still writing it (no 0700): skipped, left in place.
    queue_file("incoming", "ADMIT0001", &["r@example.net"], |_| {});
    fs::set_permissions("incoming/ADMIT0001", fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(
        store
            .admit(QueueName::Incoming, "ADMIT0001", ScanFlags::NONE, now)
            .err(),
        Some(StoreError::Skipped)
    );
    assert!(fs::metadata("incoming/ADMIT0001").is_ok());
    // A deferred file stamped an hour ahead: not due, unless the scan has
    // ALL (`postqueue -f`).
    queue_file("deferred", "ADMIT0002", &["r@example.net"], |_| {});
    let deferred = Site::defaults(PathBuf::new()).path("deferred", "ADMIT0002");
    set_next_attempt(&deferred, SystemTime::now() + Duration::from_secs(3600)).unwrap();
    assert_eq!(
        store
            .admit(QueueName::Deferred, "ADMIT0002", ScanFlags::NONE, now)
            .err(),
        Some(StoreError::NotDue)
    );
    let admitted = store
        .admit(QueueName::Deferred, "ADMIT0002", ScanFlags::ALL, now)
        .unwrap();
    assert_eq!(admitted.sender, "s@example.com");
    assert!(fs::metadata("active/ADMIT0002").is_ok());
    let held = active.get("ADMIT0002").map(|m| Arc::clone(&m)).unwrap();
    assert_eq!(held.queue_id.as_str(), "ADMIT0002");
    assert_eq!(held.env.sender.as_deref(), Some(&b"s@example.com"[..]));
}

#[test]
fn a_warned_message_asks_for_the_delay_cleared_notice_when_configured() {
    let _serial = serial();
    // Postfix sets REC_DLY_SENT when the envelope of a message whose delay
    // warning was sent (`W` -1) is read with confirm_delay_cleared: the
    // agents then record what they deliver and the completion's trace
    // flush sends the notice. This is all the core's DelayCleared needs.
    let now = Clock::wall().now();
    for (id, confirm, warned, want) in [
        ("DLYCL0001", true, true, true),
        ("DLYCL0002", true, false, false),
        ("DLYCL0003", false, true, false),
    ] {
        let (mut store, active) = store(ReadLimits {
            confirm_delay_cleared: confirm,
            ..ReadLimits::default()
        });
        queue_file("incoming", id, &["r@example.net"], |w| {
            if warned {
                w.warn_time(-1);
            }
        });
        store
            .admit(QueueName::Incoming, id, ScanFlags::NONE, now)
            .unwrap();
        let held = active.get(id).map(|m| Arc::clone(&m)).unwrap();
        assert_eq!(held.env.trace_flags & TRACE_REC_DLY_SENT != 0, want, "{id}");
    }
}

#[test]
fn batches_follow_the_recipient_limit_and_a_content_filter_routes_them() {
    let _serial = serial();
    let (mut store, _) = store(ReadLimits {
        recipient_limit: 2,
        ..ReadLimits::default()
    });
    queue_file(
        "incoming",
        "BATCH0001",
        &["a@one.example", "b@two.example", "c@three.example"],
        |w| {
            w.envelope_record(rec::FILT, b"smtp:[127.0.0.1]:10025");
        },
    );
    let now = Clock::wall().now();
    store
        .admit(QueueName::Incoming, "BATCH0001", ScanFlags::NONE, now)
        .unwrap();
    let first = store.read("BATCH0001", 2).unwrap();
    assert!(first.more);
    let second = store.read("BATCH0001", 2).unwrap();
    assert!(!second.more);
    let routed: Vec<(String, String, String)> = first
        .recipients
        .iter()
        .chain(&second.recipients)
        .map(|r| {
            (
                r.recipient.address.clone(),
                r.transport.to_string(),
                r.nexthop.to_string(),
            )
        })
        .collect();
    let hop = || ("smtp".to_string(), "[127.0.0.1]:10025".to_string());
    assert_eq!(
        routed,
        ["a@one.example", "b@two.example", "c@three.example"].map(|a| {
            let (t, n) = hop();
            (a.to_string(), t, n)
        })
    );
    assert_eq!(store.read("GONE00001", 2).err(), Some(StoreError::Gone));
}

#[test]
fn a_failed_refill_names_the_file_and_hands_out_nothing_twice() {
    let _serial = serial();
    let (mut store, _) = store(ReadLimits {
        recipient_limit: 2,
        ..ReadLimits::default()
    });
    // Two recipients, then a third followed by a pointer back to it: the
    // first batch is read, the refill meets the loop.
    let mut w = QueueFileWriter::new();
    w.arrival(unix_now(), 0).sender(b"s@example.com");
    w.envelope_record(rec::FILT, b"smtp:[127.0.0.1]:10025");
    w.envelope_record(rec::RCPT, b"a@one.example");
    w.envelope_record(rec::RCPT, b"b@two.example");
    let third = w.next_envelope_offset();
    w.envelope_record(rec::RCPT, b"c@three.example");
    w.envelope_record(
        rec::PTR,
        oqmgr_actors::postfix::record::fixed_width_number(third as i64).as_bytes(),
    );
    w.content_line(b"Subject: loop", DEFAULT_LINE_LIMIT);
    let mut bytes = w.finish();
    // The pointer record set MIXED in the `C` record (its fourth 15-wide
    // field); clear it, so the first read stops at the batch as it does
    // for a file whose recipients come last.
    let flags = 2 + 3 * 16..2 + 3 * 16 + 15;
    let value: i32 = String::from_utf8_lossy(&bytes[flags.clone()])
        .trim()
        .parse()
        .unwrap();
    bytes[flags].copy_from_slice(format!("{:>15}", value & !1).as_bytes());
    fs::write("incoming/LOOPR0001", bytes).unwrap();
    fs::set_permissions("incoming/LOOPR0001", fs::Permissions::from_mode(0o700)).unwrap();
    let now = Clock::wall().now();
    store
        .admit(QueueName::Incoming, "LOOPR0001", ScanFlags::NONE, now)
        .unwrap();
    let first = store.read("LOOPR0001", 2).unwrap();
    assert_eq!(first.recipients.len(), 2);
    // The error says which file and what, as the warning logged with it
    // does (it once read `<id>: <file>: ...`).
    assert_eq!(
        store.read("LOOPR0001", 2).err(),
        Some(StoreError::Unusable(
            "active/LOOPR0001: too many reverse jump records".into()
        ))
    );
}
