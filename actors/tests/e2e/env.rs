//! env - one scenario's world: a private Postfix instance with the chosen
//! queue manager, named smtp-sink ports, a local mail spool, and helpers to
//! send tagged mail and wait for a normalised [`ScenarioOutcome`].
//!
//! Every instance is configured the same way apart from the scenario's own
//! settings: `in_flow_delay = 0s` (no intake throttling), `mydestination =
//! local.test` (local(8) delivers `user@local.test` into
//! `$DIR/mail/<user>`, a sticky world-writable spool, because root's mail
//! is delivered with `default_privs`), no `.forward` lookups, short retry
//! times (`queue_run_delay = 1s`, `minimal_backoff_time = 2s`,
//! `maximal_backoff_time = 3s`), and `transport_maps` as an `inline:` table
//! routing each test domain to `smtp:[127.0.0.1]:PORT` (no DNS, no table
//! file to back-date).
//!
//! Each sink dumps every transaction that reaches DATA (`smtp-sink -d`) into
//! a folder of its own; [`Env::finish`] reads them into
//! [`ScenarioOutcome::received`]: per transaction, the message's tag, the MAIL FROM
//! and every RCPT TO with their parameters (what the remote side saw,
//! compared side by side). smtp-sink dumps nothing for a transaction that
//! ends before DATA.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use oqmgr_devtools::sandbox::{
    free_port, PostfixInstall, QmgrChoice, Sandbox, SandboxBuilder, SinkCounters, SmtpSink,
};

use super::outcome::{rows, Log, Normaliser, RecipientRow, ScenarioOutcome};

/// Queues a file can rest in, in the order they are listed.
const QUEUES: [&str; 6] = [
    "maildrop", "incoming", "active", "deferred", "hold", "corrupt",
];

/// How long any single wait may take before the scenario gives up and
/// returns what it has (the expectation then fails with the evidence).
/// Waits poll and end as soon as their condition holds, so this only
/// bounds a failing run; it is generous because a loaded 2-core machine
/// (a reload restarting postlogd, pickup and qmgr at once) once needed
/// more than 20 s for Postfix's own oqmgr.
pub const WAIT: Duration = Duration::from_secs(60);

/// Who runs a scenario: which Postfix build, and what fills its qmgr slot.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The Postfix build.
    pub postfix: PostfixInstall,
    /// The queue manager.
    pub qmgr: QmgrChoice,
    /// Extra arguments on the qmgr line of master.cf.
    pub qmgr_args: Vec<String>,
}

/// Backoff long enough that only the scenario moves deferred mail.
pub const LONG_BACKOFF: [(&str, &str); 2] = [
    ("minimal_backoff_time", "60s"),
    ("maximal_backoff_time", "120s"),
];

/// A running scenario world.
pub struct Env {
    /// The Postfix instance (stopped on drop).
    pub sb: Sandbox,
    /// Port name → port.
    pub ports: BTreeMap<String, u16>,
    /// Running sinks by port name, with their dump folders.
    sinks: BTreeMap<String, (SmtpSink, PathBuf)>,
    /// Sinks started so far (each gets its own dump folder).
    sink_runs: usize,
    /// Transactions the stopped sinks received, one line each.
    received: Vec<String>,
    /// Rewrites ports and the folder out of log text.
    pub norm: Normaliser,
}

/// What a scenario asks of its world.
pub struct Spec<'a> {
    /// Names of loopback ports to allocate (sinks are started separately).
    pub ports: &'a [&'a str],
    /// `domain → port name` routes over smtp; `domain → transport:port
    /// name` over another transport (defined in master.cf by the caller).
    pub smtp_routes: &'a [(&'a str, &'a str)],
    /// `domain → transport:nexthop` routes written verbatim.
    pub raw_routes: &'a [(&'a str, &'a str)],
    /// Extra main.cf settings (win over the defaults).
    pub settings: &'a [(&'a str, &'a str)],
}

impl Env {
    /// Allocates ports, writes and starts the instance, makes the spool.
    pub fn start(q: &Setup, spec: &Spec) -> Env {
        Env::start_with(q, spec, |b, _| b)
    }

    /// [`Env::start`] with `more` applied to the sandbox builder last; it
    /// gets the allocated ports by name (for master.cf lines and config
    /// files that name them).
    pub fn start_with(
        q: &Setup,
        spec: &Spec,
        more: impl Fn(SandboxBuilder, &BTreeMap<String, u16>) -> SandboxBuilder,
    ) -> Env {
        let mut ports = BTreeMap::new();
        for name in spec.ports {
            ports.insert(name.to_string(), free_port().expect("free port"));
        }
        let mut routes: Vec<String> = spec
            .smtp_routes
            .iter()
            .map(|(d, p)| {
                let (transport, name) = p.split_once(':').unwrap_or(("smtp", p));
                format!("{d}={transport}:[127.0.0.1]:{}", ports[name])
            })
            .collect();
        // inline: tables need braces around values with white space.
        routes.extend(
            spec.raw_routes
                .iter()
                .map(|(d, t)| format!("{{ {d} = {t} }}")),
        );
        let qmgr_args: Vec<&str> = q.qmgr_args.iter().map(String::as_str).collect();
        let mut b = Sandbox::builder()
            .postfix(q.postfix.clone())
            .qmgr(q.qmgr.clone())
            .qmgr_args(&qmgr_args)
            .in_flow_delay("0s")
            .main_cf("mydestination", "local.test")
            .main_cf("mail_spool_directory", "$queue_directory/../mail")
            .main_cf("forward_path", "")
            .main_cf("queue_run_delay", "1s")
            // Not 1 s: a retry that soon can find the file still locked by
            // the agent that just deferred it (seen under heavy load), and
            // "skipped, still being delivered" parks it for 60 s.
            .main_cf("minimal_backoff_time", "2s")
            .main_cf("maximal_backoff_time", "3s");
        if !routes.is_empty() {
            b = b.main_cf(
                "transport_maps",
                format!("inline:{{{}}}", routes.join(", ")),
            );
        }
        for (k, v) in spec.settings {
            b = b.main_cf(*k, *v);
        }
        let b = more(b, &ports);
        // `postfix start` can succeed while master never gets going (seen
        // in full parallel runs: the maillog held only "starting the
        // Postfix mail system"; master was blocked writing to the postlog
        // socket, see `oqmgr_devtools::sandbox::processes`). A scenario must begin
        // on a running instance, so wait for master's own "daemon started"
        // line (which also proves postlogd runs) and start a fresh instance
        // once if it never comes; dropping the first kills what it left.
        let mut sb = b.clone().start().expect("sandbox starts");
        if !sb.wait_for_log("daemon started", Duration::from_secs(10)) {
            eprintln!("sandbox did not come up; starting a fresh one");
            drop(sb);
            sb = b.start().expect("sandbox starts");
        }
        let spool = sb.dir().join("mail");
        fs::create_dir(&spool).expect("mail spool");
        fs::set_permissions(&spool, fs::Permissions::from_mode(0o1777)).expect("spool mode");
        let mut norm = Normaliser::new(sb.dir());
        for (name, port) in &ports {
            norm.port(*port, name);
        }
        Env {
            sb,
            ports,
            sinks: BTreeMap::new(),
            sink_runs: 0,
            received: Vec::new(),
            norm,
        }
    }

    /// A world with one live sink `d1` serving `d1.test`, started with
    /// `sink_args`, and `settings`.
    pub fn one_sink(q: &Setup, settings: &[(&str, &str)], sink_args: &[&str]) -> Env {
        let mut env = Env::start(
            q,
            &Spec {
                ports: &["d1"],
                smtp_routes: &[("d1.test", "d1")],
                raw_routes: &[],
                settings,
            },
        );
        env.start_sink("d1", sink_args);
        env
    }

    /// Starts an smtp-sink on port `name` with extra arguments, dumping
    /// each transaction into a folder of its own (writable by the sink's
    /// unprivileged user).
    pub fn start_sink(&mut self, name: &str, args: &[&str]) {
        self.sink_runs += 1;
        let dump = self
            .sb
            .dir()
            .join(format!("sink-{name}-{}", self.sink_runs));
        fs::create_dir(&dump).expect("sink dump folder");
        fs::set_permissions(&dump, fs::Permissions::from_mode(0o777)).expect("dump folder mode");
        let template = format!("{}/", dump.display());
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["-d", &template]);
        let sink = SmtpSink::start(self.ports[name], &all).expect("smtp-sink starts");
        self.sinks.insert(name.to_string(), (sink, dump));
    }

    /// Stops the sink on port `name`, keeps what it received, and returns
    /// its counters.
    pub fn stop_sink(&mut self, name: &str) -> SinkCounters {
        let (sink, dump) = self.sinks.remove(name).expect("sink running");
        let out = sink.stop().expect("sink stops");
        let mut dumps: Vec<PathBuf> = fs::read_dir(&dump)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        dumps.sort();
        for path in dumps {
            let text = fs::read(&path).expect("sink dump readable");
            self.received
                .push(transaction(name, &String::from_utf8_lossy(&text)));
        }
        SinkCounters::parse_last(&out.stdout).unwrap_or(SinkCounters {
            sessions: 0,
            quits: 0,
            messages: 0,
        })
    }

    /// Ends the scenario: stops the sinks still running and puts every
    /// transaction the sinks received into `o`
    /// ([`ScenarioOutcome::set_received`]).
    pub fn finish(mut self, mut o: ScenarioOutcome) -> ScenarioOutcome {
        let running: Vec<String> = self.sinks.keys().cloned().collect();
        for name in running {
            self.stop_sink(&name);
        }
        o.set_received(std::mem::take(&mut self.received));
        o
    }

    /// Sends one message tagged `tag` (its Message-ID is `<tag@e2e.test>`)
    /// from `from` to `rcpts`, with extra sendmail flags first.
    pub fn send_with(&self, flags: &[&str], tag: &str, from: &str, rcpts: &[&str]) {
        self.send_message(flags, tag, tag, from, rcpts);
    }

    /// Sends one message tagged `tag` with Subject `subject` (for header
    /// checks, or non-ASCII text) from `from` to `rcpts`, with extra
    /// sendmail flags first.
    pub fn send_message(
        &self,
        flags: &[&str],
        tag: &str,
        subject: &str,
        from: &str,
        rcpts: &[&str],
    ) {
        let mut args: Vec<&str> = flags.to_vec();
        args.extend(["-f", from]);
        args.extend(rcpts);
        let msg = format!("Message-ID: <{tag}@e2e.test>\nSubject: {subject}\n\nbody of {tag}\n");
        let out = self
            .sb
            .sendmail(&args, msg.as_bytes())
            .expect("sendmail runs");
        assert!(out.status.success(), "sendmail {args:?}: {out:?}");
    }

    /// Sends one message tagged `tag` with Subject `subject` from `from` to
    /// `rcpts`.
    pub fn send_subject(&self, tag: &str, subject: &str, from: &str, rcpts: &[&str]) {
        self.send_message(&[], tag, subject, from, rcpts);
    }

    /// Sends one message tagged `tag` from `from` to `rcpts`.
    pub fn send(&self, tag: &str, from: &str, rcpts: &[&str]) {
        self.send_with(&[], tag, from, rcpts);
    }

    /// The parsed maillog so far.
    pub fn log(&self) -> Log {
        Log::parse(&self.sb.maillog())
    }

    /// `relay=... dsn=... status=WORD (TEXT)` of the first per-recipient
    /// line logged for message `tag`, normalised (`none` if there is none).
    pub fn first_status(&self, tag: &str) -> String {
        let log = self.log();
        log.deliveries
            .iter()
            .find(|d| log.label_of(&d.qid) == tag)
            .map(|d| {
                self.norm.apply(
                    &format!(
                        "relay={} dsn={} status={} ({})",
                        d.relay, d.dsn, d.word, d.text
                    ),
                    &log,
                )
            })
            .unwrap_or_else(|| "none".into())
    }

    /// The latest queue ID carrying message `tag`.
    pub fn qid_of(&self, tag: &str) -> Option<String> {
        let log = self.log();
        log.qids
            .iter()
            .rev()
            .find(|q| log.label.get(*q).map(String::as_str) == Some(tag))
            .cloned()
    }

    /// Queue ID → queue name for every file now in a queue.
    pub fn present(&self) -> BTreeMap<String, String> {
        let mut map = BTreeMap::new();
        for q in QUEUES {
            for (id, _) in self.sb.queue_files(q) {
                map.insert(id, q.to_string());
            }
        }
        map
    }

    /// The queue `qid` is in now, if any.
    pub fn queue_of(&self, qid: &str) -> Option<String> {
        self.present().get(qid).cloned()
    }

    /// The rows as of now (no facts).
    pub fn outcome(&self) -> ScenarioOutcome {
        let log = self.log();
        ScenarioOutcome {
            rows: rows(&log, &self.present(), &self.norm),
            facts: Vec::new(),
            received: Vec::new(),
        }
    }

    /// Polls [`Env::outcome`] until `done` holds or [`WAIT`] passes;
    /// returns the last outcome either way (the caller's expectation then
    /// shows what was missing).
    pub fn wait_outcome(&self, done: impl Fn(&ScenarioOutcome) -> bool) -> ScenarioOutcome {
        let mut last = self.outcome();
        self.sb.wait_for(WAIT, || {
            last = self.outcome();
            done(&last)
        });
        last
    }

    /// Polls `cond` until it holds or [`WAIT`] passes.
    pub fn wait(&self, cond: impl FnMut() -> bool) -> bool {
        self.sb.wait_for(WAIT, cond)
    }

    /// The mailbox of local user `user` (empty when none).
    pub fn mailbox(&self, user: &str) -> String {
        fs::read(self.sb.dir().join("mail").join(user))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Runs a Postfix admin command and insists it succeeded.
    pub fn admin(&self, tool: &str, args: &[&str]) -> String {
        let out = match tool {
            "postsuper" => self.sb.postsuper(args),
            "postqueue" => self.sb.postqueue(args),
            "postfix" => self.sb.postfix(args),
            other => panic!("unknown tool {other}"),
        }
        .expect("admin tool runs");
        assert!(out.status.success(), "{tool} {args:?}: {out:?}");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

/// One transaction from an smtp-sink dump, as a line: `SINK TAG: MAIL
/// <sender> [params] RCPT <rcpt> [params] ...`, where TAG is the message's
/// tag (its Message-ID `<TAG@e2e.test>`, else `untagged`). The MAIL
/// command's `SIZE=` is left out: it counts header bytes that carry queue
/// IDs and dates.
pub fn transaction(sink: &str, dump: &str) -> String {
    let mut mail = String::new();
    let mut rcpts = String::new();
    let mut tag = "untagged".to_string();
    for line in dump.lines() {
        if let Some(args) = line.strip_prefix("X-Mail-Args: ") {
            let kept: Vec<&str> = args
                .split(' ')
                .filter(|a| !a.to_ascii_uppercase().starts_with("SIZE="))
                .collect();
            mail = kept.join(" ");
        } else if let Some(args) = line.strip_prefix("X-Rcpt-Args: ") {
            rcpts.push_str(" RCPT ");
            rcpts.push_str(args);
        } else if line.to_ascii_lowercase().starts_with("message-id:") {
            let id = line["message-id:".len()..].trim();
            if let Some(t) = id
                .strip_prefix('<')
                .and_then(|i| i.strip_suffix("@e2e.test>"))
            {
                tag = t.to_string();
            }
        } else if line.is_empty() {
            // The end of the message header: the body may say anything.
            break;
        }
    }
    format!("{sink} {tag}: MAIL {mail}{rcpts}")
}

/// True when there are `n` rows, each in `deferred/` if `deferred(row)`,
/// else with its file gone.
pub fn all_settled(
    o: &ScenarioOutcome,
    n: usize,
    deferred: impl Fn(&RecipientRow) -> bool,
) -> bool {
    o.rows.len() == n
        && o.rows
            .iter()
            .all(|r| r.queue == if deferred(r) { "deferred" } else { "removed" })
}

/// True when every row is `result` and its file is gone.
pub fn all_done(o: &ScenarioOutcome, n: usize, result: &str) -> bool {
    o.rows.len() == n
        && o.rows
            .iter()
            .all(|r| r.result == result && r.queue == "removed")
}
