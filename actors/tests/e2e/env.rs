//! env - one scenario's world: a private Postfix instance with the chosen
//! queue manager, named smtp-sink ports, a local mail spool, and helpers to
//! send tagged mail and wait for a normalised [`Outcome`].
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

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use oqmgr_actors::sandbox::{free_port, QmgrChoice, Sandbox, SinkCounters, SmtpSink};

use super::outcome::{rows, Log, Normaliser, Outcome};

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

/// A running scenario world.
pub struct Env {
    /// The Postfix instance (stopped on drop).
    pub sb: Sandbox,
    /// Port name → port.
    pub ports: BTreeMap<String, u16>,
    /// Running sinks by port name.
    sinks: BTreeMap<String, SmtpSink>,
    /// Rewrites ports and the folder out of log text.
    pub norm: Normaliser,
}

/// What a scenario asks of its world.
pub struct Spec<'a> {
    /// Names of loopback ports to allocate (sinks are started separately).
    pub ports: &'a [&'a str],
    /// `domain → port name` routes over smtp.
    pub smtp_routes: &'a [(&'a str, &'a str)],
    /// `domain → transport:nexthop` routes written verbatim.
    pub raw_routes: &'a [(&'a str, &'a str)],
    /// Extra main.cf settings (win over the defaults).
    pub settings: &'a [(&'a str, &'a str)],
}

impl Env {
    /// Allocates ports, writes and starts the instance, makes the spool.
    pub fn start(q: &QmgrChoice, spec: &Spec) -> Env {
        let mut ports = BTreeMap::new();
        for name in spec.ports {
            ports.insert(name.to_string(), free_port().expect("free port"));
        }
        let mut routes: Vec<String> = spec
            .smtp_routes
            .iter()
            .map(|(d, p)| format!("{d}=smtp:[127.0.0.1]:{}", ports[*p]))
            .collect();
        // inline: tables need braces around values with white space.
        routes.extend(
            spec.raw_routes
                .iter()
                .map(|(d, t)| format!("{{ {d} = {t} }}")),
        );
        let mut b = Sandbox::builder()
            .qmgr(q.clone())
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
        // `postfix start` can succeed while master never gets going (seen
        // in full parallel runs: the maillog held only "starting the
        // Postfix mail system"; master was blocked writing to the postlog
        // socket, see `oqmgr_actors::sandbox::host`). A scenario must begin
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
            norm,
        }
    }

    /// Starts an smtp-sink on port `name` with extra arguments.
    pub fn start_sink(&mut self, name: &str, args: &[&str]) {
        let sink = SmtpSink::start(self.ports[name], args).expect("smtp-sink starts");
        self.sinks.insert(name.to_string(), sink);
    }

    /// Stops the sink on port `name` and returns its counters.
    pub fn stop_sink(&mut self, name: &str) -> SinkCounters {
        let sink = self.sinks.remove(name).expect("sink running");
        let out = sink.stop().expect("sink stops");
        SinkCounters::parse_last(&out.stdout).unwrap_or(SinkCounters {
            sessions: 0,
            quits: 0,
            messages: 0,
        })
    }

    /// Sends one message tagged `tag` (its Message-ID is `<tag@e2e.test>`)
    /// from `from` to `rcpts`, with extra sendmail flags first.
    pub fn send_with(&self, flags: &[&str], tag: &str, from: &str, rcpts: &[&str]) {
        let mut args: Vec<&str> = flags.to_vec();
        args.extend(["-f", from]);
        args.extend(rcpts);
        let msg = format!("Message-ID: <{tag}@e2e.test>\nSubject: {tag}\n\nbody of {tag}\n");
        let out = self
            .sb
            .sendmail(&args, msg.as_bytes())
            .expect("sendmail runs");
        assert!(out.status.success(), "sendmail {args:?}: {out:?}");
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
    pub fn outcome(&self) -> Outcome {
        let log = self.log();
        Outcome {
            rows: rows(&log, &self.present(), &self.norm),
            facts: Vec::new(),
        }
    }

    /// Polls [`Env::outcome`] until `done` holds or [`WAIT`] passes;
    /// returns the last outcome either way (the caller's expectation then
    /// shows what was missing).
    pub fn wait_outcome(&self, done: impl Fn(&Outcome) -> bool) -> Outcome {
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

/// True when every row is `result` and its file is gone.
pub fn all_done(o: &Outcome, n: usize, result: &str) -> bool {
    o.rows.len() == n
        && o.rows
            .iter()
            .all(|r| r.result == result && r.queue == "removed")
}
