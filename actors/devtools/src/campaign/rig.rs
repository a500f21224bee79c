//! rig - one case's world: a private Postfix instance with the chosen
//! queue manager, its smtp-sinks, a mail source, and the census of its
//! queue after a drain.
//!
//! # Layout
//! - `ok.test` routes to the `ok` sink, `fault.test` to the `fault` port
//!   (a sink that misbehaves, a tarpit, or nothing), and `origin.test` (the
//!   sender's domain, so bounce notices) and `sandbox.test` (postmaster)
//!   to the `notice` sink; all by an `inline:` `transport_maps`, no DNS.
//! - Sinks dump every transaction into `WORK/dumps/<port name>/`, a work
//!   folder outside the instance (which may sit on a file system the case
//!   fills up). The maillog is read from wherever `maillog_file` points.
//! - Retry times are short (`queue_run_delay = 1s`, backoff 2–4 s) and
//!   master throttles a crashed service for only 2 s
//!   (`service_throttle_time`), so a case measures the queue manager rather
//!   than Postfix's waiting periods; `in_flow_delay` stays Postfix's 1 s.
//!
//! # Invariants
//! - every wait is bounded; the drain gives up after its stall limit and
//!   says so;
//! - nothing outside the instance and the work folder is touched.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::sandbox::{free_port, processes, QmgrChoice, Sandbox, SmtpSink};
use oqmgr_actors::clock::tooling_now;

use super::dumps::{count_dumps, read_dumps, SinkRecord};
use super::inject::{tags_in, InjectPlan, Injector};
use super::procs;

/// Which queue manager runs in the qmgr slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Side {
    /// Our daemon (the program at this path).
    Ours(PathBuf),
    /// Postfix's own oqmgr(8).
    Oqmgr,
}

impl Side {
    /// Short label for tables.
    pub fn label(&self) -> &'static str {
        match self {
            Side::Ours(_) => "ours",
            Side::Oqmgr => "oqmgr",
        }
    }

    /// The sandbox's choice for this side.
    fn choice(&self) -> QmgrChoice {
        match self {
            Side::Ours(p) => QmgrChoice::Command(p.clone()),
            Side::Oqmgr => QmgrChoice::PostfixOqmgr,
        }
    }
}

/// Queues that hold mail in flight (a drain waits for them to empty).
pub const LIVE_QUEUES: [&str; 4] = ["maildrop", "incoming", "active", "deferred"];

/// Every queue a message file can rest in.
pub const ALL_QUEUES: [&str; 6] = [
    "maildrop", "incoming", "active", "deferred", "hold", "corrupt",
];

/// Port names of a rig.
pub const PORTS: [&str; 3] = ["ok", "notice", "fault"];

/// Extra configuration of one rig.
#[derive(Debug, Clone, Default)]
pub struct RigSpec {
    /// main.cf settings (win over the rig's defaults).
    pub settings: Vec<(String, String)>,
    /// Create the instance below this folder (a small file system).
    pub parent: Option<PathBuf>,
}

/// A connection holder that accepts and never answers (a tarpit).
struct Tarpit {
    /// Set to release every connection.
    stop: Arc<AtomicBool>,
    /// The accept thread.
    thread: Option<JoinHandle<()>>,
}

impl Tarpit {
    /// Listens on `port` and holds every connection until dropped.
    fn start(port: u16) -> io::Result<Tarpit> {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held: Vec<TcpStream> = Vec::new();
            while !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((s, _)) => held.push(s),
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Ok(Tarpit {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Tarpit {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What is on one port; held only for its `Drop`, which stops it.
#[allow(dead_code)] // the fields are never read, only dropped
enum Listener {
    /// An smtp-sink.
    Sink(SmtpSink),
    /// A tarpit.
    Tarpit(Tarpit),
}

/// Files found in the queue after a drain.
#[derive(Debug, Clone, Default)]
pub struct Census {
    /// Tags of message files in live queues and `hold/`.
    pub queued_tags: Vec<String>,
    /// Tags of files in `corrupt/`.
    pub corrupt_tags: Vec<String>,
    /// Files per queue (all entries, tagged or not).
    pub per_queue: BTreeMap<String, usize>,
    /// Entries that are not regular files (queue/name: kind).
    pub odd_entries: Vec<String>,
    /// Files in `defer/`, `bounce/`, `trace/` (logs).
    pub logs: usize,
    /// Logs whose message file is in no queue (`defer/ID`, ...): left
    /// behind when a message was removed.
    pub orphan_logs: Vec<String>,
}

impl Census {
    /// Files left in the live queues.
    pub fn live(&self) -> usize {
        LIVE_QUEUES
            .iter()
            .map(|q| self.per_queue.get(*q).copied().unwrap_or(0))
            .sum()
    }
}

/// How a drain ended.
#[derive(Debug, Clone, Default)]
pub struct Drained {
    /// The live queues emptied.
    pub empty: bool,
    /// Seconds it took (to empty, or to give up).
    pub secs: f64,
    /// `postqueue -f` runs it needed.
    pub flushes: u32,
    /// Longest time without any progress (seconds).
    pub longest_stall: f64,
}

/// A running rig; stops everything on drop.
pub struct Rig {
    /// The Postfix instance.
    pub sb: Sandbox,
    /// Which queue manager runs.
    pub side: Side,
    /// Ports by name ([`PORTS`]) and `smtpd`.
    pub ports: BTreeMap<&'static str, u16>,
    /// What listens on each port.
    listeners: BTreeMap<&'static str, Listener>,
    /// Work folder (dumps); removed on drop.
    work: PathBuf,
    /// The maillog file.
    log_path: PathBuf,
    /// Entry names a drain does not wait for (planted entries).
    ignored: Vec<String>,
}

/// Makes rig work folders unique within one process.
static WORK_SEQ: AtomicU32 = AtomicU32::new(0);

/// Instance and work folders of the rigs alive now (for
/// [`abandon_all`]).
static LIVE: Mutex<Vec<(PathBuf, PathBuf)>> = Mutex::new(Vec::new());

/// Stops every process of every live rig and every child of this process
/// (smtp-sinks), without the orderly shutdown, and removes their folders
/// (unless `OQMGR_KEEP_SANDBOX` is set): for a campaign interrupted by a
/// signal, whose rigs will never be dropped. Returns the pids killed.
pub fn abandon_all() -> Vec<i32> {
    let mut killed = Vec::new();
    let me = std::process::id() as i32;
    for pid in processes::process_ids() {
        if procs::parent_of(pid) == Some(me) && procs::signal(pid, libc::SIGKILL) {
            killed.push(pid);
        }
    }
    for (dir, work) in LIVE.lock().map(|l| l.clone()).unwrap_or_default() {
        killed.extend(processes::kill_leftovers(&dir));
        if std::env::var_os("OQMGR_KEEP_SANDBOX").is_none() {
            let _ = fs::remove_dir_all(&dir);
            let _ = fs::remove_dir_all(&work);
        }
    }
    killed
}

impl Rig {
    /// Writes and starts an instance for `side`.
    pub fn start(side: &Side, spec: &RigSpec) -> Result<Rig, String> {
        let seq = WORK_SEQ.fetch_add(1, Ordering::Relaxed);
        let work =
            std::env::temp_dir().join(format!("oqmgr-campaign-{}-{seq}", std::process::id()));
        let _ = fs::remove_dir_all(&work);
        make_dir(&work, 0o755)?;
        let mut ports = BTreeMap::new();
        for name in PORTS {
            ports.insert(name, free_port().map_err(|e| e.to_string())?);
        }
        for name in PORTS {
            make_dir(&work.join("dumps").join(name), 0o777)?;
        }
        let maillog = work.join("maillog");
        let routes = format!(
            "inline:{{ok.test=smtp:[127.0.0.1]:{ok}, fault.test=smtp:[127.0.0.1]:{fault}, \
             origin.test=smtp:[127.0.0.1]:{notice}, sandbox.test=smtp:[127.0.0.1]:{notice}}}",
            ok = ports["ok"],
            fault = ports["fault"],
            notice = ports["notice"]
        );
        let mut b = Sandbox::builder()
            .qmgr(side.choice())
            .smtpd_port(true)
            .main_cf("transport_maps", routes)
            .main_cf("maillog_file", maillog.display().to_string())
            .main_cf("maillog_file_prefixes", work.display().to_string())
            .main_cf("queue_run_delay", "1s")
            .main_cf("minimal_backoff_time", "2s")
            .main_cf("maximal_backoff_time", "4s")
            .main_cf("service_throttle_time", "2s");
        for (k, v) in &spec.settings {
            b = b.main_cf(k.clone(), v.clone());
        }
        if let Some(p) = &spec.parent {
            b = b.parent_dir(p);
        }
        let mut last = String::new();
        for _ in 0..2 {
            let _ = fs::remove_file(&maillog);
            let sb = match b.clone().start() {
                Ok(sb) => sb,
                Err(e) => {
                    last = e.to_string();
                    continue;
                }
            };
            let up = sb.wait_for(Duration::from_secs(10), || {
                fs::read_to_string(&maillog).is_ok_and(|t| t.contains("daemon started"))
            });
            if up {
                ports.insert("smtpd", sb.smtpd_port().unwrap_or(0));
                if let Ok(mut live) = LIVE.lock() {
                    live.push((sb.dir().to_path_buf(), work.clone()));
                }
                return Ok(Rig {
                    sb,
                    side: side.clone(),
                    ports,
                    listeners: BTreeMap::new(),
                    work,
                    log_path: maillog,
                    ignored: Vec::new(),
                });
            }
            last = "master never logged 'daemon started'".into();
        }
        let _ = fs::remove_dir_all(&work);
        Err(format!("instance did not start: {last}"))
    }

    /// [`Rig::start`], then healthy sinks on every port, then (unless
    /// `fault` is empty) an smtp-sink with the arguments `fault` on the
    /// `fault` port.
    pub fn start_with_sinks(side: &Side, spec: &RigSpec, fault: &[&str]) -> Result<Rig, String> {
        let mut rig = Rig::start(side, spec)?;
        rig.healthy_sinks()?;
        if !fault.is_empty() {
            rig.sink("fault", fault)?;
        }
        Ok(rig)
    }

    /// Where the sink on port `name` dumps.
    pub fn dump_dir(&self, name: &str) -> PathBuf {
        self.work.join("dumps").join(name)
    }

    /// Starts an smtp-sink on port `name` (replacing what listened there)
    /// with extra smtp-sink arguments (e.g. `-r RCPT` for 4xx).
    pub fn sink(&mut self, name: &'static str, args: &[&str]) -> Result<(), String> {
        self.listeners.remove(name);
        let template = format!("{}/%H%M%S.", self.dump_dir(name).display());
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["-d", &template]);
        let sink = SmtpSink::start_quiet(self.ports[name], &all)
            .map_err(|e| format!("sink {name}: {e}"))?;
        self.listeners.insert(name, Listener::Sink(sink));
        Ok(())
    }

    /// Puts a tarpit (accepts, never answers) on port `name`.
    pub fn tarpit(&mut self, name: &'static str) -> Result<(), String> {
        self.listeners.remove(name);
        let t = Tarpit::start(self.ports[name]).map_err(|e| format!("tarpit {name}: {e}"))?;
        self.listeners.insert(name, Listener::Tarpit(t));
        Ok(())
    }

    /// Closes whatever listens on port `name` (connections are refused).
    pub fn close_port(&mut self, name: &'static str) {
        self.listeners.remove(name);
    }

    /// Healthy sinks on every port.
    pub fn healthy_sinks(&mut self) -> Result<(), String> {
        for name in PORTS {
            if !matches!(self.listeners.get(name), Some(Listener::Sink(_))) {
                self.sink(name, &[])?;
            }
        }
        Ok(())
    }

    /// Starts a mail source into smtpd: `rate` messages per second (0:
    /// flat out), up to `limit`, to `rcpts`.
    pub fn inject(&self, prefix: &str, rcpts: &[&str], rate: f64, limit: Option<u64>) -> Injector {
        Injector::start(InjectPlan {
            port: self.ports["smtpd"],
            prefix: prefix.to_string(),
            rcpts: rcpts.iter().map(|r| r.to_string()).collect(),
            rate,
            limit,
            sessions: 2,
        })
    }

    /// Path of the maillog.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The maillog from byte `from` on (invalid UTF-8 replaced).
    pub fn log_from(&self, from: u64) -> String {
        let mut text = Vec::new();
        if let Ok(mut f) = fs::File::open(&self.log_path) {
            if f.seek(SeekFrom::Start(from)).is_ok() {
                let _ = f.read_to_end(&mut text);
            }
        }
        String::from_utf8_lossy(&text).into_owned()
    }

    /// Current length of the maillog (a mark for [`Rig::log_from`]).
    pub fn log_mark(&self) -> u64 {
        fs::metadata(&self.log_path).map_or(0, |m| m.len())
    }

    /// The queue manager's warning, error, fatal and panic lines since
    /// `from`.
    pub fn qmgr_warnings(&self, from: u64) -> Vec<String> {
        self.log_from(from)
            .lines()
            .filter(|l| is_qmgr_warning(l))
            .map(|l| strip_log_prefix(l).to_string())
            .collect()
    }

    /// Master's pid.
    pub fn master(&self) -> Option<i32> {
        self.sb.master_pid()
    }

    /// Live children of master serving `service`.
    pub fn service_pids(&self, service: &str) -> Vec<i32> {
        self.master()
            .map(|m| procs::service_pids(m, service))
            .unwrap_or_default()
    }

    /// Files and odd entries in every queue, plus logs.
    pub fn census(&self) -> Census {
        let mut c = Census::default();
        let mut names = std::collections::BTreeSet::new();
        for q in ALL_QUEUES {
            let mut n = 0;
            walk(&self.sb.queue_dir().join(q), &mut |path, kind| {
                n += 1;
                names.insert(file_name(path));
                if kind != "file" {
                    c.odd_entries
                        .push(format!("{q}/{}: {kind}", file_name(path)));
                    return;
                }
                let Ok(bytes) = fs::read(path) else {
                    return;
                };
                if let Some(tag) = tags_in(&bytes).into_iter().next() {
                    if q == "corrupt" {
                        c.corrupt_tags.push(tag);
                    } else {
                        c.queued_tags.push(tag);
                    }
                }
            });
            c.per_queue.insert(q.to_string(), n);
        }
        for q in ["defer", "bounce", "trace"] {
            walk(&self.sb.queue_dir().join(q), &mut |path, _| {
                c.logs += 1;
                if !names.contains(&file_name(path)) {
                    c.orphan_logs.push(format!("{q}/{}", file_name(path)));
                }
            });
        }
        c
    }

    /// Everything the sinks received so far.
    pub fn sink_record(&self) -> SinkRecord {
        let mut rec = SinkRecord::default();
        for name in PORTS {
            read_dumps(&self.dump_dir(name), &mut rec);
        }
        rec
    }

    /// Dump files so far, all sinks (progress measure).
    pub fn dump_count(&self) -> usize {
        PORTS.iter().map(|n| count_dumps(&self.dump_dir(n))).sum()
    }

    /// Waits until the live queues are empty. Runs `postqueue -f` after
    /// `flush_after` without progress (files in live queues or dumps
    /// changing); gives up after `stall` without progress or `limit` in all.
    pub fn drain(&self, flush_after: Duration, stall: Duration, limit: Duration) -> Drained {
        let start = tooling_now();
        let mut d = Drained::default();
        let mut seen = (usize::MAX, usize::MAX);
        let mut last_progress = start;
        let mut last_flush = start;
        loop {
            let live = self.live_files();
            if live == 0 {
                // Notices may still be on their way out of the bounce
                // daemon into cleanup: a short settle, then look again.
                std::thread::sleep(Duration::from_millis(300));
                if self.live_files() == 0 {
                    d.empty = true;
                    break;
                }
            }
            let now = tooling_now();
            let state = (live, self.dump_count());
            if state != seen {
                seen = state;
                last_progress = now;
            }
            let quiet = now - last_progress;
            d.longest_stall = d.longest_stall.max(quiet.as_secs_f64());
            if quiet >= stall || now - start >= limit {
                break;
            }
            if quiet >= flush_after && now - last_flush >= flush_after {
                let _ = self.sb.postqueue(&["-f"]);
                d.flushes += 1;
                last_flush = now;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        d.secs = (tooling_now() - start).as_secs_f64();
        d
    }

    /// Number of entries in the live queues, except ignored names and
    /// files that are not ready (owner bits not 0700: half written by a
    /// cleanup that died; no queue manager may touch them).
    pub fn live_files(&self) -> usize {
        let mut n = 0;
        for q in LIVE_QUEUES {
            walk(&self.sb.queue_dir().join(q), &mut |p, kind| {
                let unready = kind == "file"
                    && fs::symlink_metadata(p)
                        .is_ok_and(|m| m.permissions().mode() & 0o700 != 0o700);
                if !unready && !self.ignored.contains(&file_name(p)) {
                    n += 1;
                }
            });
        }
        n
    }

    /// Makes drains ignore entries named `name` (planted ones), wherever
    /// the queue manager moves them.
    pub fn ignore(&mut self, name: String) {
        self.ignored.push(name);
    }

    /// The work folder (dumps, maillog, files outside the queue).
    pub fn work_dir(&self) -> &Path {
        &self.work
    }

    /// Keeps the work folder (and the instance) for a post-mortem.
    pub fn keep(&self) -> bool {
        std::env::var_os("OQMGR_KEEP_SANDBOX").is_some()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.listeners.clear();
        if let Ok(mut live) = LIVE.lock() {
            live.retain(|(d, _)| d != self.sb.dir());
        }
        if self.keep() {
            eprintln!("campaign work folder kept at {}", self.work.display());
        } else {
            let _ = fs::remove_dir_all(&self.work);
        }
    }
}

/// True for a queue manager line of warning severity or worse.
pub fn is_qmgr_warning(line: &str) -> bool {
    (line.contains("/qmgr[") || line.contains("/oqmgr["))
        && [": warning: ", ": error: ", ": fatal: ", ": panic: "]
            .iter()
            .any(|s| line.contains(s))
}

/// A log line without its time stamp and host (from the program name on).
pub fn strip_log_prefix(line: &str) -> &str {
    line.find("postfix/").map_or(line, |i| &line[i..])
}

/// Creates `dir` with `mode` (not subject to the umask).
pub fn make_dir(dir: &Path, mode: u32) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(mode))
        .map_err(|e| format!("{}: {e}", dir.display()))
}

/// The last component of `path`, lossily.
pub fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Calls `f(path, kind)` for every entry below `dir` except directories
/// that are hash levels (one-character names); `kind` is `file`, `fifo`,
/// `symlink`, `dir`, `socket` or `other`. Links are not followed.
pub fn walk(dir: &Path, f: &mut dyn FnMut(&Path, &'static str)) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(t) = entry.file_type() else {
            continue;
        };
        let kind = if t.is_file() {
            "file"
        } else if t.is_symlink() {
            "symlink"
        } else if t.is_fifo() {
            "fifo"
        } else if t.is_socket() {
            "socket"
        } else if t.is_dir() {
            "dir"
        } else {
            "other"
        };
        if kind == "dir" && entry.file_name().len() == 1 {
            walk(&path, f);
        } else {
            f(&path, kind);
        }
    }
}
