//! testing - support for the unit tests of code that works on queue files.
//!
//! The daemon names queue files relative to the queue directory, its
//! working directory (as Postfix's daemons do). Unit tests of that code
//! share one scratch queue directory per test process, made the working
//! directory once by [`queue_dir`]; each test uses queue IDs of its own.
//! No other unit test depends on the working directory. Also here: log
//! capture ([`logged`]), a bounce-daemon stand-in ([`bounce_service`]) and
//! admitted messages with real queue files ([`active_message`]).

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use oqmgr::entry::Recipient;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

use crate::daemon::active_table::ActiveMessage;
use crate::postfix::attr::{encode_announcement, protocol, AttrWriter, Timeval};
use crate::postfix::queue_file::FileEnvelope;
use crate::postfix::record::{encode_record, rec};

/// The queue directories the scratch queue directory has.
const QUEUES: [&str; 8] = [
    "incoming", "active", "deferred", "defer", "bounce", "trace", "corrupt", "private",
];

/// The scratch queue directory of this test process, now the working
/// directory: made on first use, with the usual queue directories, and
/// kept until the process ends.
pub(crate) fn queue_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("oqmgr-unit-queue")
            .tempdir()
            .expect("a scratch queue directory")
            .keep();
        for q in QUEUES {
            std::fs::create_dir(dir.join(q)).expect("a queue directory");
        }
        std::env::set_current_dir(&dir).expect("chdir to the scratch queue directory");
        dir
    })
}

/// Log lines written on this thread while `f` runs (`warning: text` for
/// warnings, the bare text for the rest), with `f`'s result.
pub(crate) fn logged<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let result = tracing::subscriber::with_default(Collector(Arc::clone(&lines)), f);
    let lines = lines.lock().unwrap_or_else(|e| e.into_inner()).clone();
    (result, lines)
}

/// Runs `future` to its end on a runtime of its own, on this thread (so
/// that [`logged`] sees its lines).
pub(crate) fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(future)
}

/// A bounce, defer, trace or verify daemon stand-in at
/// `<sockets>/private/<service>`: for each request, the next of `answers`
/// (`Some(status)`, or `None` to hang up without one). Returns the
/// requests it read, raw.
pub(crate) fn bounce_service(
    sockets: &Path,
    service: &str,
    answers: Vec<Option<u32>>,
) -> Arc<Mutex<Vec<Vec<u8>>>> {
    let private = sockets.join("private");
    std::fs::create_dir_all(&private).expect("private/");
    let listener = UnixListener::bind(private.join(service)).expect("bind the service");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let requests = Arc::clone(&seen);
    std::thread::spawn(move || {
        for (conn, answer) in listener.incoming().zip(answers) {
            let mut conn = conn.expect("a client");
            conn.write_all(&encode_announcement(protocol::DELIVERY_STATUS))
                .expect("announce");
            let mut request = Vec::new();
            let mut chunk = [0u8; 4096];
            // One request: an attribute list ends with an empty name.
            while !request.ends_with(b"\0\0") {
                match conn.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&chunk[..n]),
                }
            }
            requests.lock().expect("requests").push(request);
            if let Some(status) = answer {
                let mut w = AttrWriter::new();
                w.int("status", status).end();
                let _ = conn.write_all(&w.finish().expect("a status list"));
            }
        }
    });
    seen
}

/// An admitted message `id` whose queue file is in `active/` of the
/// scratch queue directory ([`queue_dir`]): sender `s@x.example`, the
/// given recipients (their record offsets filled in), `trace_flags` and
/// `read_flags` in its envelope.
pub(crate) fn active_message(
    id: &str,
    recipients: &[&str],
    trace_flags: i32,
    read_flags: i32,
) -> (Arc<ActiveMessage>, Vec<Recipient>) {
    queue_dir();
    let mut bytes = Vec::new();
    encode_record(&mut bytes, rec::TIME, b"1700000000 0");
    encode_record(&mut bytes, rec::FROM, b"s@x.example");
    let mut rcpts = Vec::new();
    for a in recipients {
        rcpts.push(Recipient {
            offset: bytes.len() as u64,
            ..Recipient::new(*a)
        });
        encode_record(&mut bytes, rec::RCPT, a.as_bytes());
    }
    encode_record(&mut bytes, rec::MESG, b"");
    let data_offset = bytes.len() as i64;
    encode_record(&mut bytes, rec::NORM, b"Subject: t");
    encode_record(&mut bytes, rec::XTRA, b"");
    encode_record(&mut bytes, rec::END, b"");
    let path = Path::new("active").join(id);
    std::fs::write(&path, bytes).expect("a queue file");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let env = FileEnvelope {
        sender: Some(b"s@x.example".to_vec()),
        data_offset,
        arrival_sec: 1_700_000_000,
        trace_flags,
        read_flags,
        ..FileEnvelope::default()
    };
    let message = Arc::new(ActiveMessage {
        queue_id: id.into(),
        env: env.into(),
        active_arrival: Timeval {
            sec: 1_700_000_001,
            usec: 0,
        },
    });
    (message, rcpts)
}

/// The type byte of the record at `offset` of `active/<id>`.
pub(crate) fn record_type(id: &str, offset: u64) -> u8 {
    std::fs::read(Path::new("active").join(id)).expect("the queue file")[offset as usize]
}

/// Collects events as log lines.
struct Collector(Arc<Mutex<Vec<String>>>);

/// The `message` field of an event.
struct MessageField(String);

impl Visit for MessageField {
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
        let mut m = MessageField(String::new());
        event.record(&mut m);
        let line = match *event.metadata().level() {
            tracing::Level::WARN => format!("warning: {}", m.0),
            tracing::Level::ERROR => format!("error: {}", m.0),
            _ => m.0,
        };
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(line);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}
