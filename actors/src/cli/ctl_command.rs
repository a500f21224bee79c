//! `oqmgr ctl`: the operator's view and controls of a running queue
//! manager (`docs/control.md`), through its control socket
//! ([`crate::control`]).
//!
//! The instance is found as `postqueue` finds it: the configuration
//! directory (`-c`, else `$MAIL_CONFIG`, else `postconf`'s), its main.cf's
//! `queue_directory` through our configuration loader, and the socket
//! `private/oqmgr-ctl` there (root only: `private/` belongs to
//! `mail_owner`). Every read command is a view of one `state` request and
//! prints a table, or the reply's JSON with `--json`; `shape` of the disk
//! queues and the disk part of `why` read the queue files themselves, as
//! `qshape` does, and need no daemon.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use oqmgr::control::{nexthop_domain, parse_duration, Command, Target};
use oqmgr::effect::DestKey;
use oqmgr::live_state::{
    active_full_words, render_destinations, span, suspension_words, target_words, why_destination,
    DestinationFilter, LiveState, Tally,
};

use crate::clock::Clock;
use crate::config;
use crate::control::live_query::DaemonInfo;
use crate::control::protocol::{Reply, Request, SOCKET};
use crate::control::queue_shape::{self, Shape};
use crate::postfix::log_format::LocalTime;

/// `oqmgr ctl`'s options.
#[derive(Clone, Debug, Args)]
#[command(
    after_help = "Prometheus metrics and a live status page over HTTP: a [metrics] table \
in $config_directory/oqmgr.toml (listen = \"127.0.0.1:9165\"); see docs/control.md."
)]
pub struct CtlArgs {
    /// Configuration directory of the instance (default: $MAIL_CONFIG,
    /// else what `postconf -h config_directory` says, else /etc/postfix).
    #[arg(short = 'c', value_name = "config_dir")]
    pub config_dir: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// A state to filter destinations on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StateWord {
    /// Declared dead after failed cohorts.
    Dead,
    /// Held back by `oqmgr ctl suspend`.
    Suspended,
    /// With deliveries in flight.
    Busy,
    /// Ready for deliveries.
    Ready,
    /// Waiting out a destination rate delay.
    RateDelayed,
}

/// A queue `shape` counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum QueueWord {
    /// The active queue, from the queue manager's memory.
    Active,
    /// `incoming/`.
    Incoming,
    /// `deferred/`.
    Deferred,
    /// `hold/`.
    Hold,
}

/// What `shape` groups by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ByWord {
    /// The recipient's domain (qshape's rows).
    #[default]
    Domain,
    /// The destination (transport:nexthop; active queue only).
    Destination,
}

/// What a suspension or resume applies to.
#[derive(Clone, Debug, Args)]
pub struct TargetArgs {
    /// A destination, transport:nexthop as `destinations` lists it.
    #[arg(value_name = "DEST", required_unless_present_any = ["transport", "domain"])]
    pub dest: Option<String>,
    /// Every destination of this transport.
    #[arg(long, value_name = "T", conflicts_with_all = ["dest", "domain"])]
    pub transport: Option<String>,
    /// Every destination whose next-hop domain matches (`example.com`, or
    /// `*.example.com` for its subdomains).
    #[arg(long, value_name = "PATTERN", conflicts_with = "dest")]
    pub domain: Option<String>,
}

impl TargetArgs {
    fn target(&self) -> Result<Target, String> {
        match (&self.dest, &self.transport, &self.domain) {
            (Some(d), _, _) => Target::destination(d),
            (_, Some(t), _) => Ok(Target::Transport(t.clone())),
            (_, _, Some(p)) => Ok(Target::Domain(p.to_lowercase())),
            _ => Err("which destination?".into()),
        }
    }
}

/// The `oqmgr ctl` commands.
#[derive(Clone, Debug, Subcommand)]
pub enum CtlCommand {
    /// Uptime, Postfix release, the active queue against its limits, scans,
    /// agent connections, dead transports, totals since start, suspensions.
    Status {
        /// Print the reply's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Per destination: window and limit, busy, waiting, outcomes since it
    /// came into memory, recent delay p50/p99, oldest waiting entry, state.
    Destinations {
        /// Only this transport's destinations.
        #[arg(long, value_name = "T")]
        transport: Option<String>,
        /// Only destinations in this state.
        #[arg(long, value_enum)]
        state: Option<StateWord>,
        /// Only the N with the most mail in memory.
        #[arg(long, value_name = "N")]
        top: Option<usize>,
        /// Print the reply's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Why mail is not moving and when it will: TARGET is a destination
    /// (transport:nexthop), a domain, a queue ID or a recipient address.
    Why {
        /// What to explain.
        target: String,
    },
    /// qshape's age-bucket table of a queue (default: incoming and active).
    Shape {
        /// The queue(s) to count (repeatable).
        #[arg(long, value_enum)]
        queue: Vec<QueueWord>,
        /// Group by recipient domain or by destination.
        #[arg(long, value_enum, default_value_t)]
        by: ByWord,
    },
    /// Hold back deliveries to a destination, a transport or a domain at
    /// once; its mail is deferred without an attempt until resumed.
    Suspend {
        /// What to suspend.
        #[command(flatten)]
        target: TargetArgs,
        /// End by itself after this long (e.g. 30m, 2h, 1d).
        #[arg(long = "for", value_name = "DURATION")]
        duration: Option<String>,
        /// Why (recorded in each deferred recipient's reason).
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// End a suspension and retry at once the mail it deferred.
    Resume {
        /// What to resume.
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Revive a dead destination now and retry its deferred mail now.
    Flush {
        /// The destination, transport:nexthop.
        dest: String,
    },
}

/// The instance `ctl` talks to.
struct Instance {
    /// Its queue directory.
    queue_dir: PathBuf,
}

impl Instance {
    /// The socket path.
    fn socket(&self) -> PathBuf {
        self.queue_dir.join("private").join(SOCKET)
    }

    /// Sends one request, returns the reply.
    fn ask(&self, request: &Request) -> Result<Reply, String> {
        let path = self.socket();
        let mut stream = UnixStream::connect(&path).map_err(|e| {
            let why = crate::postfix::log::errno_text(&e);
            match e.kind() {
                std::io::ErrorKind::PermissionDenied => {
                    format!("{}: {why} (run oqmgr ctl as root)", path.display())
                }
                _ => format!(
                    "no queue manager answers at {} ({why}): is Postfix running, with oqmgr in \
                     its qmgr slot?",
                    path.display()
                ),
            }
        })?;
        let limit = Some(Duration::from_secs(30));
        let _ = stream.set_read_timeout(limit);
        let _ = stream.set_write_timeout(limit);
        let mut line = request.encode();
        line.push('\n');
        stream
            .write_all(line.as_bytes())
            .map_err(|e| format!("{}: write: {e}", path.display()))?;
        let mut reply = String::new();
        BufReader::new(stream)
            .read_line(&mut reply)
            .map_err(|e| format!("{}: read: {e}", path.display()))?;
        if reply.is_empty() {
            return Err(format!(
                "{}: the queue manager closed the connection",
                path.display()
            ));
        }
        let reply: Reply =
            serde_json::from_str(&reply).map_err(|e| format!("unreadable reply: {e}"))?;
        match &reply.error {
            Some(e) if !reply.ok => Err(e.clone()),
            _ => Ok(reply),
        }
    }

    /// The live state (and the daemon's facts, and the raw reply line).
    fn state(&self, detail: bool) -> Result<(LiveState, DaemonInfo, Reply), String> {
        let reply = self.ask(&Request::State { detail })?;
        let state = reply.state.clone().ok_or("the reply has no state")?;
        let daemon = reply.daemon.clone().unwrap_or_default();
        Ok((state, daemon, reply))
    }
}

/// A time (ms since the epoch) as a log line starts: `Dec  5 19:45:53`.
pub fn clock(ms: u64) -> String {
    LocalTime::at((ms / 1000) as libc::time_t).to_string()
}

/// Runs `oqmgr ctl`; returns the exit status.
pub fn main(args: CtlArgs) -> i32 {
    match run(args) {
        Ok(text) => {
            print!("{text}");
            0
        }
        Err(e) => {
            eprintln!("oqmgr ctl: {e}");
            1
        }
    }
}

/// Finds the instance and carries out the command; returns what to print.
fn run(args: CtlArgs) -> Result<String, String> {
    let dir = config::config_directory(args.config_dir.as_deref());
    let (raw, _) = config::load(&dir, &[] as &[String]).map_err(|e| e.to_string())?;
    let queue_dir = raw
        .get("queue_directory")
        .map(PathBuf::from)
        .ok_or("no queue_directory")?;
    let instance = Instance { queue_dir };
    let json =
        |reply: &Reply| serde_json::to_string_pretty(reply).expect("replies serialize") + "\n";
    match args.command {
        CtlCommand::Status { json: as_json } => {
            let (state, daemon, reply) = instance.state(false)?;
            Ok(if as_json {
                json(&reply)
            } else {
                render_status(&state, &daemon)
            })
        }
        CtlCommand::Destinations {
            transport,
            state,
            top,
            json: as_json,
        } => {
            let (live, _, reply) = instance.state(false)?;
            if as_json {
                return Ok(json(&reply));
            }
            let filter = DestinationFilter {
                transport,
                state: state.map(|s| {
                    s.to_possible_value()
                        .expect("no skipped values")
                        .get_name()
                        .to_string()
                }),
                top,
            };
            Ok(render_destinations(&live, &filter.apply(&live), &clock))
        }
        CtlCommand::Why { target } => why(&instance, &target),
        CtlCommand::Shape { queue, by } => shape(&instance, &queue, by),
        CtlCommand::Suspend {
            target,
            duration,
            reason,
        } => {
            let duration = duration
                .map(|d| parse_duration(&d).map(|d| d.as_millis()))
                .transpose()?;
            let command = Command::Suspend {
                target: target.target()?,
                duration,
                reason,
            };
            done(&instance, command)
        }
        CtlCommand::Resume { target } => done(
            &instance,
            Command::Resume {
                target: target.target()?,
            },
        ),
        CtlCommand::Flush { dest } => {
            Target::destination(&dest)?;
            done(&instance, Command::Flush { dest })
        }
    }
}

/// Sends a command and prints what the daemon did.
fn done(instance: &Instance, command: Command) -> Result<String, String> {
    let reply = instance.ask(&Request::Command(command))?;
    let mut out = String::new();
    for line in reply.done {
        out.push_str(line.strip_prefix("control: ").unwrap_or(&line));
        out.push('\n');
    }
    Ok(out)
}

/// The `status` text.
fn render_status(state: &LiveState, daemon: &DaemonInfo) -> String {
    let s = &state.supervisor;
    let mut out = String::new();
    let up = state.now_ms.saturating_sub(daemon.started_ms);
    out.push_str(&format!(
        "oqmgr {} (pid {}), up {} since {}\n{}\n",
        daemon.version,
        daemon.pid,
        span(up),
        clock(daemon.started_ms),
        daemon.postfix
    ));
    out.push_str(&format!(
        "active queue: {} of {} messages, {} of {} recipients, {} completions in progress{}\n",
        s.messages,
        s.message_limit,
        s.recipients,
        s.recipient_limit,
        s.completing,
        if s.full { " (full)" } else { "" }
    ));
    let scan = |running: &Option<String>, done: Option<u64>| {
        let last = done.map_or("never finished".to_string(), |t| {
            format!("last finished {}", clock(t))
        });
        match running {
            Some(flags) => format!("running (flags {flags}), {last}"),
            None => format!("idle, {last}"),
        }
    };
    out.push_str(&format!(
        "scans: incoming {}; deferred {}\n",
        scan(&s.incoming_scan, s.incoming_scan_done_ms),
        scan(&s.deferred_scan, s.deferred_scan_done_ms)
    ));
    let agents: Vec<String> = state
        .transports
        .iter()
        .map(|t| {
            let busy: u32 = state
                .destinations
                .iter()
                .filter(|d| d.transport == t.name)
                .map(|d| d.busy)
                .sum();
            format!("{} {} busy, {} connecting", t.name, busy, t.pending)
        })
        .collect();
    out.push_str(&format!(
        "agent connections: {}\n",
        if agents.is_empty() {
            "none".into()
        } else {
            agents.join("; ")
        }
    ));
    let dead: Vec<String> = state
        .transports
        .iter()
        .filter_map(|t| {
            t.dead.as_ref().map(|why| {
                format!(
                    "{} until {} ({why})",
                    t.name,
                    t.dead_until_ms.map_or("-".into(), clock)
                )
            })
        })
        .collect();
    out.push_str(&format!(
        "dead transports: {}\n",
        if dead.is_empty() {
            "none".into()
        } else {
            dead.join("; ")
        }
    ));
    let mut total = Tally::default();
    for t in daemon.tally.values() {
        total.add(t);
    }
    out.push_str(&format!(
        "since start: deliveries {} done, {} deferred; messages {} removed, {} deferred, {} expired\n",
        total.deliveries - total.deferred_deliveries,
        total.deferred_deliveries,
        s.removed,
        s.deferred,
        s.expired
    ));
    if total.sent + total.deferred + total.bounced > 0 {
        out.push_str(&format!(
            "recipients reported by in-process transports: {} sent, {} deferred, {} bounced\n",
            total.sent, total.deferred, total.bounced
        ));
    }
    if let Some(url) = &daemon.metrics {
        out.push_str(&format!("metrics: {url}metrics, status page {url}\n"));
    }
    if s.suspensions.is_empty() {
        out.push_str("suspensions: none\n");
    } else {
        out.push_str("suspensions:\n");
        for sp in &s.suspensions {
            out.push_str(&format!(
                "  {}: since {}, {}; {} deferred message(s) to retry when it ends\n",
                target_words(&sp.target),
                clock(sp.since.as_millis()),
                suspension_words(sp, &clock),
                sp.deferred.len()
            ));
        }
    }
    out
}

/// The queues on disk where a message can wait, in the order searched.
const DISK_QUEUES: [&str; 5] = ["incoming", "deferred", "hold", "maildrop", "corrupt"];

/// `why TARGET`.
fn why(instance: &Instance, target: &str) -> Result<String, String> {
    let now_s = (Clock::wall().wall_now().as_millis() / 1000) as i64;
    let mut lines = Vec::new();
    if target.contains(':') && !target.contains('@') {
        let (state, _, _) = instance.state(false)?;
        let key = match Target::destination(target)? {
            Target::Destination(d) => d,
            _ => unreachable!("a destination"),
        };
        let (t, q) = key.split_once(':').expect("checked");
        lines.extend(why_destination(&state, &dest_key(t, q), &clock));
    } else if target.contains('@') {
        let address = target.to_lowercase();
        let domain = queue_shape::address_domain(&address);
        let (state, _, _) = instance.state(false)?;
        lines.extend(why_domain(&state, &domain));
        for (queue, f) in find_files(&instance.queue_dir, |f| {
            f.recipients
                .iter()
                .any(|r| r.eq_ignore_ascii_case(&address))
        }) {
            lines.push(file_words(instance, &queue, &f, now_s, &state));
        }
    } else if target.bytes().all(|b| b.is_ascii_alphanumeric()) {
        let (state, _, _) = instance.state(true)?;
        match state.supervisor.active.iter().find(|m| m.id == target) {
            Some(m) => {
                lines.push(format!(
                    "{target}: in the active queue (message m{})",
                    m.message
                ));
                for d in &state.destinations {
                    if d.entries.iter().any(|(n, _)| *n == m.message) {
                        lines.extend(why_destination(&state, &d.key(), &clock));
                    }
                }
            }
            None => {
                for queue in DISK_QUEUES {
                    let found = queue_shape::queue_files(&instance.queue_dir, queue)
                        .into_iter()
                        .find(|(id, _)| id == target);
                    if let Some((id, path)) = found {
                        let f = queue_shape::read_queue_file(&id, &path)
                            .ok()
                            .flatten()
                            .unwrap_or(queue_shape::QueuedFile {
                                id,
                                ..Default::default()
                            });
                        lines.push(file_words(instance, queue, &f, now_s, &state));
                    }
                }
                if lines.is_empty() {
                    lines.push(format!("{target}: no such message in the queue"));
                }
            }
        }
    } else {
        let domain = target.to_lowercase();
        let (state, _, _) = instance.state(false)?;
        lines.extend(why_domain(&state, &domain));
        let files = find_files(&instance.queue_dir, |f| {
            f.recipients
                .iter()
                .any(|r| queue_shape::address_domain(r) == domain)
        });
        let deferred: Vec<_> = files.iter().filter(|(q, _)| q == "deferred").collect();
        if let Some(next) = deferred.iter().map(|(_, f)| f.mtime).min() {
            lines.push(format!(
                "{domain}: {} message(s) in deferred/ hold mail for it; the earliest next attempt \
                 is at {}",
                deferred.len(),
                clock(next.max(0) as u64 * 1000)
            ));
        }
        for (queue, f) in files.iter().filter(|(q, _)| q != "deferred") {
            lines.push(file_words(instance, queue, f, now_s, &state));
        }
    }
    Ok(lines.join("\n") + "\n")
}

fn dest_key(transport: &str, queue: &str) -> DestKey {
    DestKey {
        transport: transport.into(),
        queue: queue.into(),
    }
}

/// Why mail for a domain waits: every destination in memory whose next
/// hop is that domain, or the suspension that covers it.
fn why_domain(state: &LiveState, domain: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for d in &state.destinations {
        if nexthop_domain(&d.queue).eq_ignore_ascii_case(domain) {
            lines.extend(why_destination(state, &d.key(), &clock));
        }
    }
    if lines.is_empty() {
        let key = dest_key("smtp", domain);
        match state.suspension(&key) {
            Some(_) => lines.extend(why_destination(state, &key, &clock)),
            None => lines.push(format!("{domain}: no destination for it in memory")),
        }
        if state.supervisor.full {
            lines.push(active_full_words(&state.supervisor));
        }
    }
    lines
}

/// Every file on disk (in the queues a message waits in) for which
/// `wanted` holds.
fn find_files(
    queue_dir: &Path,
    wanted: impl Fn(&queue_shape::QueuedFile) -> bool,
) -> Vec<(String, queue_shape::QueuedFile)> {
    let mut found = Vec::new();
    for queue in DISK_QUEUES {
        for (id, path) in queue_shape::queue_files(queue_dir, queue) {
            if let Ok(Some(f)) = queue_shape::read_queue_file(&id, &path) {
                if wanted(&f) {
                    found.push((queue.to_string(), f));
                }
            }
        }
    }
    found
}

/// Why one file on disk waits, in words.
fn file_words(
    instance: &Instance,
    queue: &str,
    f: &queue_shape::QueuedFile,
    now_s: i64,
    state: &LiveState,
) -> String {
    let id = &f.id;
    match queue {
        "hold" => format!(
            "{id}: in hold/ (put there by postsuper -h or a HOLD action): not delivered until \
             released with `postsuper -H {id}`"
        ),
        "deferred" => {
            let reason = defer_reason(&instance.queue_dir, id)
                .map_or(String::new(), |r| format!("; last reason: {r}"));
            if f.mtime > now_s {
                format!(
                    "{id}: in deferred/ until its next attempt at {}{reason}; `postqueue -i {id}` \
                     retries it now",
                    clock(f.mtime as u64 * 1000)
                )
            } else {
                let full = if state.supervisor.full {
                    format!("; {}", active_full_words(&state.supervisor))
                } else {
                    String::new()
                };
                format!(
                    "{id}: in deferred/, due since {}: taken at the next deferred scan (every \
                     queue_run_delay){reason}{full}",
                    clock(f.mtime.max(0) as u64 * 1000)
                )
            }
        }
        "incoming" => {
            let full = if state.supervisor.full {
                format!("; {}", active_full_words(&state.supervisor))
            } else {
                String::new()
            };
            format!("{id}: in incoming/, waiting to enter the active queue{full}")
        }
        "maildrop" => format!("{id}: in maildrop/, waiting for pickup(8)"),
        "corrupt" => format!("{id}: in corrupt/: unreadable, set aside; it is never delivered"),
        other => format!("{id}: in {other}/"),
    }
}

/// The last `reason=` of a message's defer log, if any.
fn defer_reason(queue_dir: &Path, id: &str) -> Option<String> {
    let (_, path) = queue_shape::queue_files(queue_dir, "defer")
        .into_iter()
        .find(|(name, _)| name == id)?;
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .rev()
        .find_map(|l| l.strip_prefix("reason=").map(str::to_string))
}

/// `shape`.
fn shape(instance: &Instance, queues: &[QueueWord], by: ByWord) -> Result<String, String> {
    let queues = if queues.is_empty() {
        vec![QueueWord::Incoming, QueueWord::Active]
    } else {
        queues.to_vec()
    };
    if by == ByWord::Destination && queues.iter().any(|q| *q != QueueWord::Active) {
        return Err(
            "--by destination needs --queue active (files on disk are not routed yet)".into(),
        );
    }
    let now_s = (Clock::wall().wall_now().as_millis() / 1000) as i64;
    let mut shape = Shape::default();
    for q in queues {
        let name = match q {
            QueueWord::Active => {
                let (state, _, _) = instance.state(true)?;
                shape.merge(&Shape::from_live(&state, by == ByWord::Destination));
                continue;
            }
            QueueWord::Incoming => "incoming",
            QueueWord::Deferred => "deferred",
            QueueWord::Hold => "hold",
        };
        for (id, path) in queue_shape::queue_files(&instance.queue_dir, name) {
            if let Ok(Some(f)) = queue_shape::read_queue_file(&id, &path) {
                shape.add_file(&f, now_s);
            }
        }
    }
    Ok(shape.render())
}

#[cfg(test)]
mod tests {
    use super::*;
    use queue_shape::QueuedFile;

    fn file(id: &str, mtime: i64) -> QueuedFile {
        QueuedFile {
            id: id.into(),
            mtime,
            ..QueuedFile::default()
        }
    }

    #[test]
    fn why_names_the_disk_causes() {
        let dir = tempfile::tempdir().unwrap();
        let instance = Instance {
            queue_dir: dir.path().to_path_buf(),
        };
        let mut state = LiveState::default();
        let now = 1_000_000;

        let held = file_words(&instance, "hold", &file("ABCDEF1234", 0), now, &state);
        assert!(held.contains("ABCDEF1234: in hold/"), "{held}");
        assert!(held.contains("`postsuper -H ABCDEF1234`"), "{held}");

        let defer_log = dir.path().join("defer/A");
        std::fs::create_dir_all(&defer_log).unwrap();
        std::fs::write(
            defer_log.join("ABCDEF1234"),
            "recipient=u@x.example\nreason=connect to x.example: Connection refused\n\n",
        )
        .unwrap();
        let waiting = file_words(
            &instance,
            "deferred",
            &file("ABCDEF1234", now + 600),
            now,
            &state,
        );
        assert!(
            waiting.contains("in deferred/ until its next attempt at"),
            "{waiting}"
        );
        assert!(
            waiting.contains("last reason: connect to x.example: Connection refused"),
            "{waiting}"
        );
        assert!(
            waiting.contains("`postqueue -i ABCDEF1234` retries it now"),
            "{waiting}"
        );

        state.supervisor.full = true;
        let due = file_words(
            &instance,
            "deferred",
            &file("ABCDEF1234", now - 5),
            now,
            &state,
        );
        assert!(due.contains("due since"), "{due}");
        assert!(due.contains("the active queue is full"), "{due}");
        let new = file_words(&instance, "incoming", &file("ABCDEF9999", now), now, &state);
        assert!(
            new.contains("in incoming/, waiting to enter the active queue"),
            "{new}"
        );
        assert!(new.contains("the active queue is full"), "{new}");
    }
}
