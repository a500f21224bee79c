//! The operator's tools in use during a benchmark run: what the
//! `ours-observed` column of `oqmgr-bench` adds to ours.
//!
//! The instance gets `[metrics]` in `oqmgr.toml` ([`Observer::config`]),
//! and while it runs, a thread of the benchmark does every second what a
//! watchful operator's tools do: Prometheus scrapes `/metrics`, a status
//! page polls `/status.json`, and `oqmgr ctl status` asks the control
//! socket for the live state. The queue manager's CPU then includes
//! answering all of it (the benchmark's own thread is not counted: it is
//! not a qmgr process).
//!
//! # Invariants
//! - every request is bounded (5 s to connect, 10 s to answer), so a
//!   silent queue manager cannot hang the benchmark;
//! - the thread stops when the [`Observer`] is dropped.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How often each request is made.
pub const EVERY: Duration = Duration::from_secs(1);

/// Requests answered and failed so far.
#[derive(Debug, Default)]
pub struct Tally {
    /// Requests answered (HTTP 200, or a control reply with `"ok":true`).
    pub answered: AtomicU64,
    /// Requests that got no usable answer.
    pub failed: AtomicU64,
}

/// The thread observing one instance.
#[derive(Debug)]
pub struct Observer {
    /// Tells the thread to stop.
    stop: Arc<AtomicBool>,
    /// What it got.
    pub tally: Arc<Tally>,
    /// The thread.
    thread: Option<JoinHandle<()>>,
}

impl Observer {
    /// `oqmgr.toml` that turns the metrics on at `listen`.
    pub fn config(listen: SocketAddr) -> String {
        format!("[metrics]\nlisten = \"{listen}\"\n")
    }

    /// Starts observing the queue manager listening at `metrics`, with
    /// its control socket under `queue_dir`.
    pub fn start(metrics: SocketAddr, queue_dir: PathBuf) -> Observer {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Tally::default());
        let (s, t) = (Arc::clone(&stop), Arc::clone(&tally));
        let socket = queue_dir.join("private/oqmgr-ctl");
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                for ok in [
                    http_ok(metrics, "/metrics"),
                    http_ok(metrics, "/status.json"),
                    control_ok(&socket),
                ] {
                    let counter = if ok { &t.answered } else { &t.failed };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(EVERY);
            }
        });
        Observer {
            stop,
            tally,
            thread: Some(thread),
        }
    }

    /// Requests answered so far.
    pub fn answered(&self) -> u64 {
        self.tally.answered.load(Ordering::Relaxed)
    }

    /// Waits up to `limit` for a first answer: the queue manager opens
    /// its metrics listener a moment after master starts it, so the
    /// thread's first round may find nobody, and a run must not start
    /// measuring before the watching has begun.
    pub fn wait_first_answer(&self, limit: Duration) -> bool {
        let end = oqmgr_actors::clock::tooling_now() + limit;
        while self.answered() == 0 {
            if oqmgr_actors::clock::tooling_now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// GET `path`: true on a `200` answer read to its end.
fn http_ok(addr: SocketAddr, path: &str) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).is_ok() && answer.starts_with(b"HTTP/1.1 200 ")
}

/// One `state` request on the control socket (what `oqmgr ctl status`
/// sends): true on an `ok` reply.
fn control_ok(socket: &std::path::Path) -> bool {
    let Ok(mut s) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    if s.write_all(b"{\"v\":1,\"cmd\":\"state\",\"detail\":false}\n")
        .is_err()
    {
        return false;
    }
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).is_ok() && String::from_utf8_lossy(&reply).contains("\"ok\":true")
}
