//! Runs a simulator scenario through the actors: an in-memory store, a fake
//! delivery agent that answers as the simulator's `world::attempt` does, a
//! trace sink, and a driver that makes mail arrive when the scenario says.
//! Time is tokio's paused clock, so a run of minutes takes milliseconds and
//! timers fire only when every actor is idle, as the simulator's timer heap
//! fires only once its bus is empty.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use actix::{Actor, ActorFutureExt, Context, Handler, ResponseActFuture, WrapFuture};
use figment::providers::{Format, Toml};
use figment::Figment;
use oqmgr::entry::{DeliveryReport, Dsn, RecipientStatus};
use oqmgr::params::Params;
use oqmgr::sim::report::{self, Stats};
use oqmgr::sim::rng::Rng;
use oqmgr::sim::scenario::Scenario;
use oqmgr::sim::world::{self, Server};
use oqmgr::time::{Duration, Instant};
use oqmgr::trace::TraceEvent;
use oqmgr_actors::agent::{Connect, Deliver, DeliveryAgent};
use oqmgr_actors::clock::Clock;
use oqmgr_actors::queue_store::SharedStore;
use oqmgr_actors::scheduler::{Scheduler, TraceLine};
use oqmgr_devtools::memstore::MemoryStore;

/// Parses a scenario written in TOML, as `oqmgr simulate` reads one.
pub fn scenario(text: &str) -> Scenario {
    let mut s: Scenario = Figment::from(Toml::string(text))
        .extract()
        .expect("test scenario parses");
    // The simulator installs this default before it runs; so do we.
    s.destinations.entry("*".into()).or_default();
    s
}

/// What a run produced: trace lines in the simulator's format, and the
/// simulator's summary table.
pub struct Run {
    /// Trace lines (`   0.000 select ...`), without log or config lines.
    pub trace: Vec<String>,
    /// The summary, without the host-specific `steps=` and `end=` fields.
    pub summary: String,
}

/// Drops the fields that count host steps or the stop time, which differ
/// by construction (the simulator counts bus messages and stops at its last
/// event; the actor run is polled once a virtual second).
fn strip_host_fields(summary: &str) -> String {
    summary
        .lines()
        .map(|line| {
            if line.starts_with("total:") {
                line.split(' ')
                    .filter(|w| !w.starts_with("steps=") && !w.starts_with("end="))
                    .collect::<Vec<_>>()
                    .join(" ")
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs the scenario through the simulator.
pub fn simulate(s: &Scenario) -> Run {
    let (trace, summary) = oqmgr::sim::simulate(s.clone(), oqmgr::sim::Options::default());
    Run {
        trace: trace
            .lines()
            .filter(|l| !l.contains(" log ") && !l.contains("config warning"))
            .map(String::from)
            .collect(),
        summary: strip_host_fields(&summary),
    }
}

/// Collects trace lines and concurrency statistics.
struct Sink {
    /// Trace lines in arrival order.
    lines: Arc<Mutex<Vec<String>>>,
    /// Concurrency statistics fed from select/done events.
    stats: Arc<Mutex<Stats>>,
}

impl Actor for Sink {
    type Context = Context<Self>;
}

impl Handler<TraceLine> for Sink {
    type Result = ();
    fn handle(&mut self, line: TraceLine, _ctx: &mut Context<Self>) {
        // The same concurrency figures the simulator keeps, from the same
        // decisions as seen in the trace.
        match &line.event {
            TraceEvent::Select { dest, .. } => self.stats.lock().unwrap().select(line.at, dest),
            TraceEvent::Done { dest, .. } => self.stats.lock().unwrap().done(line.at, dest),
            _ => {}
        }
        self.lines.lock().unwrap().push(line.to_string());
    }
}

/// A delivery agent for every transport that answers as the simulator's
/// world does: same latency, outages, connection limits and statuses.
struct FakeAgent {
    /// The world's behaviour.
    scenario: Arc<Scenario>,
    /// The random source (unused by fixed latencies and zero rates).
    rng: Rng,
    /// Open connections per next hop, for connection limits.
    servers: BTreeMap<String, Server>,
    /// Queue files, where recipients are marked done.
    store: Arc<Mutex<MemoryStore>>,
    /// Per-destination recipient outcomes.
    stats: Arc<Mutex<Stats>>,
    /// The scheduler's clock (outages are periods of it).
    clock: Clock,
}

impl Actor for FakeAgent {
    type Context = Context<Self>;
}

impl Handler<Connect> for FakeAgent {
    type Result = ResponseActFuture<Self, Result<(), Dsn>>;
    fn handle(&mut self, msg: Connect, _ctx: &mut Context<Self>) -> Self::Result {
        let behaviour = self
            .scenario
            .transports
            .get(&msg.transport)
            .cloned()
            .unwrap_or_default();
        let at = Duration(self.clock.now().as_millis());
        let down = behaviour.down.iter().any(|p| p.from.0 <= at && at < p.to.0);
        let answer = if down {
            Err(Dsn::new("4.3.0", "mail transport unavailable"))
        } else {
            Ok(())
        };
        let wait = std::time::Duration::from_millis(behaviour.connect.0.as_millis());
        Box::pin(
            actix::clock::sleep(wait)
                .into_actor(self)
                .map(move |_, _, _| answer),
        )
    }
}

impl Handler<Deliver> for FakeAgent {
    type Result = ResponseActFuture<Self, DeliveryReport>;
    fn handle(&mut self, msg: Deliver, _ctx: &mut Context<Self>) -> Self::Result {
        let now = self.clock.now();
        let server = self.servers.entry(msg.nexthop.clone()).or_default();
        let attempt = world::attempt(
            &self.scenario,
            &mut self.rng,
            server,
            &msg.dest.transport,
            &msg.nexthop,
            msg.entry.recipients.len(),
            now,
        );
        if attempt.connected {
            server.active += 1;
        }
        let done = now + attempt.latency;
        {
            // Like a Postfix agent, record each recipient's fate in the file.
            let mut store = self.store.lock().unwrap();
            let arrival = store
                .queues
                .files
                .get(msg.queue_id.as_str())
                .map_or(now, |f| f.arrival);
            let mut stats = self.stats.lock().unwrap();
            for (r, status) in msg.entry.recipients.iter().zip(&attempt.recipients) {
                if *status != RecipientStatus::Deferred {
                    store.mark_done(&msg.queue_id, &r.address);
                }
                stats.recipient(&msg.dest, *status, done.saturating_since(arrival));
            }
        }
        let report = DeliveryReport {
            entry: msg.entry.id,
            outcome: attempt.outcome,
            hop: attempt.hop,
            recipients: attempt.recipients,
        };
        let wait = std::time::Duration::from_millis(attempt.latency.as_millis());
        let (nexthop, connected) = (msg.nexthop, attempt.connected);
        Box::pin(
            actix::clock::sleep(wait)
                .into_actor(self)
                .map(move |_, act, _| {
                    if connected {
                        if let Some(s) = act.servers.get_mut(&nexthop) {
                            s.active -= 1;
                        }
                    }
                    report
                }),
        )
    }
}

/// Something the driver does at a time, in the simulator's arming order.
enum Step {
    /// Message `index` of arrival group `group` appears.
    Arrive {
        /// The arrival group.
        group: usize,
        /// The message within it.
        index: u32,
    },
    /// Trigger bytes are sent.
    Trigger(Vec<u8>),
}

/// An actix System on a current-thread tokio runtime whose clock is
/// paused: virtual time advances only when every task is idle.
pub fn paused_system() -> actix_rt::SystemRunner {
    actix_rt::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("tokio runtime")
    })
}

/// Runs the scenario through the actors on a paused tokio clock.
pub fn run_actors(s: &Scenario) -> Run {
    let s = Arc::new(s.clone());
    paused_system().block_on(drive(s))
}

/// Runs one message to `rcpt` (routed by default to `smtp:<domain>`) for
/// `secs` virtual seconds with the agents `agents()` makes, and returns the
/// trace lines.
pub fn run_one_message(
    agents: impl FnOnce() -> Vec<(String, DeliveryAgent)>,
    rcpt: &str,
    secs: u64,
) -> Vec<String> {
    let rcpt = rcpt.to_string();
    paused_system().block_on(async move {
        let (params, _) = Params::from_pairs(&[]).expect("defaults resolve");
        let clock = Clock::starting_at(Instant::ZERO);
        let store = Arc::new(Mutex::new(MemoryStore::new(|a| {
            world::resolve(&Scenario::default(), a)
        })));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Sink {
            lines: Arc::clone(&lines),
            stats: Arc::new(Mutex::new(Stats::default())),
        }
        .start();
        let shared: SharedStore = store.clone();
        let mut builder = Scheduler::builder(params, shared)
            .with_clock(clock)
            .with_trace_sink(sink.recipient());
        for (name, agent) in agents() {
            builder = builder.with_agent(&name, agent);
        }
        let scheduler = builder.start();
        store.lock().unwrap().add(
            "Q000001",
            false,
            "sender@origin.example",
            &[rcpt],
            Instant::ZERO,
            Instant::ZERO,
            oqmgr::message::Warning::None,
        );
        scheduler.trigger(b"I");
        actix::clock::sleep(std::time::Duration::from_secs(secs)).await;
        actix::System::current().stop();
        let out = lines.lock().unwrap().clone();
        out
    })
}

async fn drive(s: Arc<Scenario>) -> Run {
    let (params, _warnings) =
        Params::resolve(&s.raw_params()).expect("scenarios are checked as they are read");
    let clock = Clock::starting_at(Instant::ZERO);
    let resolver = Arc::clone(&s);
    let store = Arc::new(Mutex::new(MemoryStore::new(move |a| {
        world::resolve(&resolver, a)
    })));
    let stats = Arc::new(Mutex::new(Stats::default()));
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Sink {
        lines: Arc::clone(&lines),
        stats: Arc::clone(&stats),
    }
    .start();
    let agent = FakeAgent {
        scenario: Arc::clone(&s),
        rng: Rng::new(s.seed),
        servers: BTreeMap::new(),
        store: Arc::clone(&store),
        stats: Arc::clone(&stats),
        clock,
    }
    .start();
    let shared: SharedStore = store.clone();
    let mut builder = Scheduler::builder(params.clone(), shared)
        .with_clock(clock)
        .with_trace_sink(sink.recipient());
    let mut names: Vec<String> = ["smtp", "local", "retry", "error"]
        .map(String::from)
        .to_vec();
    names.extend(
        s.routes
            .values()
            .map(|r| r.split(':').next().unwrap_or("").to_string()),
    );
    for name in names {
        builder = builder.with_agent(
            &name,
            DeliveryAgent::new(agent.clone().recipient()).with_connect(agent.clone().recipient()),
        );
    }
    let scheduler = builder.start();

    // The simulator arms arrivals first, then triggers; equal times fire in
    // that order.
    let mut steps: Vec<(Instant, usize, Step)> = Vec::new();
    for (group, a) in s.arrivals.iter().enumerate() {
        for index in 0..a.count {
            let at = Instant::ZERO + a.at.0 + Duration(a.every.0.as_millis() * u64::from(index));
            steps.push((at, steps.len(), Step::Arrive { group, index }));
        }
    }
    for t in &s.triggers {
        let at = Instant::ZERO + t.at.0;
        steps.push((at, steps.len(), Step::Trigger(t.bytes.clone().into_bytes())));
    }
    steps.sort_by_key(|(at, seq, _)| (*at, *seq));
    let mut next_file = 0u64;
    let arrived = steps
        .iter()
        .filter(|(_, _, st)| matches!(st, Step::Arrive { .. }))
        .count();
    for (at, _, step) in steps {
        actix::clock::sleep(clock.until(at)).await;
        match step {
            Step::Arrive { group, index } => {
                let a = &s.arrivals[group];
                next_file += 1;
                let id = format!("Q{next_file:06}");
                let recipients: Vec<String> = (0..a.recipients)
                    .map(|r| {
                        let n = index * a.recipients + r;
                        let domain = &a.domains[(n as usize) % a.domains.len().max(1)];
                        format!("{}{}@{}", a.user, n + 1, domain)
                    })
                    .collect();
                let warn = params.global.delay_warning_time;
                let create = at - a.age.0;
                let deferred = a.queue == "deferred";
                store.lock().unwrap().add(
                    &id,
                    deferred,
                    &a.sender,
                    &recipients,
                    at,
                    create,
                    if warn.is_zero() {
                        oqmgr::message::Warning::None
                    } else {
                        oqmgr::message::Warning::Due(create + warn)
                    },
                );
                if !deferred {
                    // cleanup(8) wakes the queue manager after each new file.
                    scheduler.trigger(b"W");
                }
            }
            Step::Trigger(bytes) => scheduler.trigger(&bytes),
        }
    }
    let until = Instant::ZERO + s.until.map_or(Duration::from_secs(7 * 86400), |u| u.0);
    while !store.lock().unwrap().is_empty() && clock.now() < until {
        actix::clock::sleep(std::time::Duration::from_secs(1)).await;
    }
    // Let the last trace lines reach the sink.
    actix::clock::sleep(std::time::Duration::from_millis(1)).await;
    let end = clock.now();
    let mut stats = stats.lock().unwrap().clone();
    let store = store.lock().unwrap();
    let c = &store.counters;
    stats.arrived = arrived as u64;
    stats.removed = c.removed;
    stats.deferred_files = c.deferred_files;
    stats.warned = c.warned;
    stats.expired = c.expired;
    stats.returned = c.returned;
    stats.discarded = c.discarded;
    stats.deferred_by_qmgr = c.deferred_by_qmgr;
    let summary = report::summary(&stats, &store.queues, end, 0);
    actix::System::current().stop();
    let trace = lines.lock().unwrap().clone();
    Run {
        trace,
        summary: strip_host_fields(&summary),
    }
}

/// Trace lines of the given kinds, grouped by the destination they name
/// (the word after the kind), each list in trace order.
pub fn per_destination(trace: &[String], kinds: &[&str]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in trace {
        let mut words = line.split_whitespace().skip(1);
        let (Some(kind), Some(dest)) = (words.next(), words.next()) else {
            continue;
        };
        if kinds.contains(&kind) && dest.contains(':') {
            // A select names the agent connection; agent numbers are the
            // transport's bookkeeping and may differ (see tests/actors.rs).
            let text: Vec<&str> = line
                .split_whitespace()
                .filter(|w| !(kind == "select" && is_agent(w)))
                .collect();
            out.entry(dest.to_string())
                .or_default()
                .push(text.join(" "));
        }
    }
    out
}

/// True for an agent number such as `a17`.
fn is_agent(word: &str) -> bool {
    word.strip_prefix('a')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}
