#![allow(clippy::disallowed_methods)] // waits on a real thread in real time
//! The completion worker when the bounce, defer or trace daemon closes the
//! connection or is not there: as oqmgr, the file is kept and deferred
//! with `<id>: status=deferred (<what> failed)`, and a warning of ours
//! names the service and what went wrong (oqmgr logs nothing more, so an
//! operator could not tell a dead bounce daemon from a refusal).
//!
//! The worker works on paths relative to the queue directory (the daemon
//! has chdir-ed there), so this binary chdirs once into a private queue
//! directory; it holds only this one test and installs the one global log
//! collector the worker thread writes to.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oqmgr::message::Verdict;
use oqmgr::name::Name;
use oqmgr::time::Instant;
use oqmgr_actors::clock::Clock;
use oqmgr_actors::daemon::active_table::ActiveMessage;
use oqmgr_actors::daemon::site::Site;
use oqmgr_actors::daemon::worker::{Job, Worker};
use oqmgr_actors::postfix::attr::{encode_announcement, protocol, Timeval};
use oqmgr_actors::postfix::queue_file::read_envelope;
use oqmgr_actors::postfix::queue_file_parse::ReadLimits;
use oqmgr_actors::postfix::queue_id::QueueHashing;
use oqmgr_actors::queue_store::Completion;
use oqmgr_devtools::queue_file_writer::{NewRecipient, QueueFileWriter, DEFAULT_LINE_LIMIT};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Collects `warning: text` / `text` lines from every thread.
struct Collector(Arc<Mutex<Vec<String>>>);

/// The `message` field of an event.
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl Subscriber for Collector {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut m = Message(String::new());
        event.record(&mut m);
        let line = match *event.metadata().level() {
            tracing::Level::WARN => format!("warning: {}", m.0),
            tracing::Level::ERROR => format!("error: {}", m.0),
            _ => m.0,
        };
        self.0.lock().unwrap().push(line);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// A bounce-daemon stand-in at `private/<service>` that announces itself,
/// reads the request and hangs up without a reply.
fn hangs_up(service: &str) {
    let listener = UnixListener::bind(format!("private/{service}")).unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let mut conn = conn.unwrap();
            conn.write_all(&encode_announcement(protocol::DELIVERY_STATUS))
                .unwrap();
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
        }
    });
}

/// An admitted message `id` in `active/`, with `trace` asking for a
/// delivery report.
fn admitted(id: &str, trace: bool) -> Arc<ActiveMessage> {
    let mut w = QueueFileWriter::new();
    w.arrival(1_700_000_000, 0).sender(b"s@example.com");
    if trace {
        w.trace_record();
    }
    w.recipient(&NewRecipient {
        address: b"r@example.net".to_vec(),
        ..NewRecipient::default()
    });
    w.content_line(b"Subject: peers", DEFAULT_LINE_LIMIT);
    let path = format!("active/{id}");
    fs::write(&path, w.finish()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).unwrap();
    let env = read_envelope(fs::File::open(&path).unwrap(), id, &ReadLimits::default()).unwrap();
    Arc::new(ActiveMessage {
        queue_id: Name::from(id),
        env: env.into(),
        active_arrival: Timeval { sec: 1, usec: 0 },
    })
}

/// Completes `message` as fully delivered and waits for the worker.
fn complete(worker: &Worker, message: Arc<ActiveMessage>) {
    let (tx, rx) = std::sync::mpsc::channel();
    worker.send(Job::Complete {
        message,
        verdict: Verdict::Remove,
        now: Instant::from_secs(1_700_000_000),
        done: Completion::new(move || tx.send(()).unwrap()),
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("the completion ends");
}

#[test]
fn a_bounce_or_trace_daemon_that_answers_nothing_is_named_in_a_warning() {
    let lines = Arc::new(Mutex::new(Vec::new()));
    tracing::subscriber::set_global_default(Collector(Arc::clone(&lines))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::env::set_current_dir(dir.path()).unwrap();
    for q in ["active", "deferred", "bounce", "private", "corrupt"] {
        fs::create_dir(q).unwrap();
    }
    hangs_up("bounce");
    let site = Arc::new(Site {
        ipc_timeout: Duration::from_secs(5),
        ..Site::defaults(dir.path().to_path_buf())
    });
    let worker = Worker::start(site, Clock::wall()).unwrap();

    // A bounce log to flush; the bounce daemon hangs up.
    fs::write("bounce/ABCDE10001", b"recipient=r@example.net\n").unwrap();
    complete(&worker, admitted("ABCDE10001", false));
    // A delivery report to send; there is no trace daemon at all.
    complete(&worker, admitted("ABCDE10002", true));

    let lines = lines.lock().unwrap().clone();
    let want = [
        "warning: ABCDE10001: bounce service failure: premature end-of-input on private/bounce socket",
        "ABCDE10001: status=deferred (bounce failed)",
        "warning: ABCDE10002: trace service failure: connect to private/trace: No such file or directory",
        "ABCDE10002: status=deferred (trace failed)",
    ];
    assert_eq!(lines, want);
    // Both kept, for a later attempt.
    for id in ["ABCDE10001", "ABCDE10002"] {
        let deferred = QueueHashing::default().queue_path("deferred", id);
        assert!(fs::metadata(&deferred).is_ok(), "{id} in deferred/");
    }
}
