//! A deterministic discrete-event simulator that runs the scheduling core
//! on a virtual clock (the quinn/TigerBeetle pattern).
//!
//! The simulator is the second host of the core's entities: it delivers
//! `Msg`s in send order from one FIFO bus, fires timers from a heap ordered
//! by (time, arming order), and stands in for the I/O the daemon does: queue
//! directories ([`world::Queues`]) and remote servers ([`world::attempt`],
//! their listen queues in `attempt`).
//! The same scenario and seed give a byte-identical trace: no clock is read,
//! no hash order is used, randomness comes from one seeded generator.
//!
//! # Lookups
//! Entities are found by number: transports by the number the simulator
//! gave each when it created it, destinations by their [`DestId`](crate::effect::DestId) (a
//! transport's number and a slot in its table), and each live destination
//! keeps the numbers of its server and of its summary row, found by name
//! once when it is created. Only names that come from outside the core
//! (a transport named by the supervisor, a recipient's domain) are looked
//! up by name.
//!
//! # Bounds
//! A run stops when the queue is empty and no arrival remains, at the
//! scenario's `until` (7 days by default), or after `max_steps` events.

pub mod first_pass;
pub mod report;
pub mod rng;
pub mod scenario;
pub mod world;

mod attempt;
mod dests;
mod ids;
mod timers;

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;

use crate::active::Supervisor;
use crate::destination::Destination;
use crate::effect::{Addr, Effect, Effects, LogLevel, Msg};
use crate::entry::{Dsn, MessageId};
use crate::message::{MessageInfo, Verdict, Warning};
use crate::name::{FastMap, FastState, Name, SortKey};
use crate::params::{ConfigWarning, Params, TransportParams};
use crate::scan::{QueueName, ScanFlags};
use crate::time::{Duration, Instant};
use crate::transport::Transport;
use dests::{Dests, SimDest};
use ids::Ids;
use report::Stats;
use rng::Rng;
use scenario::Scenario;
use timers::Timers;
use world::{File, Place, Queues, Server};

/// Something scheduled for a later virtual time.
#[derive(Debug)]
enum Event {
    /// A message for an entity (timers, agent answers, reports).
    Send(Addr, Msg),
    /// Message `index` of arrival group `group` appears in its queue.
    Arrive { group: usize, index: u32 },
    /// A connection to the server of that number closes.
    Release(u32),
    /// The next defer log append of a delivery of that message.
    Append(MessageId, Box<attempt::Appending>),
    /// The greeting timeout of a connection waiting in the listen queue
    /// of a server.
    Greeting {
        /// The server's number.
        server: u32,
        /// The connection's number.
        conn: u64,
    },
}

/// Where an arrival group stands: only its next message sits among the
/// timers (a million queued arrivals would cost more memory than the
/// recipients they bring). Its arming number is the one it would have had
/// had every arrival been armed at the start, so ties break as before.
#[derive(Clone, Copy, Debug)]
struct ArrivalGroup {
    /// Arming number of the group's first message.
    first_seq: u64,
    /// Messages in the group.
    count: u32,
}

/// Options of one run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Overrides the scenario's seed.
    pub seed: Option<u64>,
    /// Keep the full trace (off for long runs that want only the summary).
    pub trace: bool,
    /// Stop after this many events (a runaway guard).
    pub max_steps: u64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            seed: None,
            trace: true,
            max_steps: 50_000_000,
        }
    }
}

/// A simulation run.
pub struct Simulation {
    /// The scenario.
    scenario: Scenario,
    /// Run options.
    options: Options,
    /// Virtual time.
    now: Instant,
    /// Stop time.
    until: Instant,
    /// Events processed.
    steps: u64,
    /// The supervisor entity.
    supervisor: Supervisor,
    /// Transport entities, by number (the order of creation).
    transports: Vec<Transport>,
    /// Transport numbers by name; walked (for a flush) in name order.
    transport_numbers: BTreeMap<Name, u32>,
    /// Destination entities, by id.
    dests: Dests,
    /// Resolved per-transport parameters.
    tparams: BTreeMap<String, Arc<TransportParams>>,
    /// Messages for entities, in send order.
    bus: VecDeque<(Addr, Msg)>,
    /// Future events.
    timers: Timers,
    /// Arrival groups, by index in the scenario.
    groups: Vec<ArrivalGroup>,
    /// One shared copy of each group's sender.
    senders: Vec<Name>,
    /// Transport names and next hops made so far, so that each recipient
    /// shares them instead of holding copies (lookups only).
    names: HashSet<Name, FastState>,
    /// Transport and next hop by recipient domain, as the scenario routes
    /// them: a million recipients share a few thousand domains, and one
    /// lookup here replaces a route search and two name lookups each
    /// (lookups only).
    routes: FastMap<Box<str>, (Name, Name)>,
    /// The effect buffer, kept between steps so that each step does not
    /// allocate a new one.
    spare: Vec<Effect>,
    /// Arming counter.
    seq: u64,
    /// Queue directories.
    queues: Queues,
    /// Remote servers, by number.
    servers: Vec<Server>,
    /// Their listen queues, and the senders' defer log locks.
    attempts: attempt::AttemptState,
    /// Server numbers by next hop (lookups only).
    server_numbers: FastMap<Name, u32>,
    /// The one random source.
    rng: Rng,
    /// Core message number → queue ID, for live messages.
    ids: Ids,
    /// Arrivals not yet happened.
    arrivals_left: u64,
    /// Queue ID counter.
    next_file: u64,
    /// When the last wakeup for new mail was sent: files arriving in the
    /// same instant share one, as cleanup's triggers would share one read.
    last_wakeup: Option<Instant>,
    /// Trace lines.
    trace: String,
    /// A buffer for the queue IDs and addresses made at each arrival.
    scratch: String,
    /// Counters for the summary.
    stats: Stats,
    /// Configuration warnings.
    warnings: Vec<ConfigWarning>,
}

impl Simulation {
    /// Prepares a run.
    ///
    /// # Panics
    /// When `scenario.check()` fails: hosts check scenarios as they read them.
    pub fn new(mut scenario: Scenario, options: Options) -> Simulation {
        if let Err(why) = scenario.check() {
            panic!("unchecked scenario: {why}");
        }
        let (params, warnings) = match Params::resolve(&scenario.raw_params()) {
            Ok(resolved) => resolved,
            Err(fatals) => panic!("unchecked scenario: {}", fatals[0]),
        };
        scenario.destinations.entry("*".into()).or_default();
        let seed = options.seed.unwrap_or(scenario.seed);
        let until = Instant::ZERO
            + scenario
                .until
                .map_or(Duration::from_secs(7 * 86400), |s| s.0);
        let mut sim = Simulation {
            options,
            now: Instant::ZERO,
            until,
            steps: 0,
            supervisor: Supervisor::new(params),
            transports: Vec::new(),
            transport_numbers: BTreeMap::new(),
            dests: Dests::default(),
            tparams: BTreeMap::new(),
            bus: VecDeque::new(),
            timers: Timers::default(),
            groups: Vec::new(),
            senders: Vec::new(),
            names: HashSet::default(),
            routes: FastMap::default(),
            spare: Vec::new(),
            seq: 0,
            queues: Queues::default(),
            servers: Vec::new(),
            attempts: attempt::AttemptState::default(),
            server_numbers: FastMap::default(),
            rng: Rng::new(seed),
            ids: Ids::default(),
            arrivals_left: 0,
            next_file: 0,
            last_wakeup: None,
            trace: String::new(),
            scratch: String::new(),
            stats: Stats::default(),
            warnings,
            scenario,
        };
        // Arming numbers are handed out as if every arrival were armed now,
        // group by group, but only each group's first is queued.
        for group in 0..sim.scenario.arrivals.len() {
            let a = &sim.scenario.arrivals[group];
            let g = ArrivalGroup {
                first_seq: sim.seq + 1,
                count: a.count,
            };
            sim.seq += u64::from(a.count);
            sim.arrivals_left += u64::from(a.count);
            sim.senders.push(Name::from(&a.sender));
            sim.groups.push(g);
            sim.queue_arrival(group, 0);
        }
        for t in sim.scenario.triggers.clone() {
            let at = Instant::ZERO + t.at.0;
            sim.schedule(
                at,
                Event::Send(Addr::Supervisor, Msg::Trigger(t.bytes.into_bytes())),
            );
        }
        sim
    }

    /// Configuration warnings from resolving the scenario's parameters.
    pub fn warnings(&self) -> &[ConfigWarning] {
        &self.warnings
    }

    /// Runs to the end and returns the trace (empty unless tracing) and the
    /// summary.
    pub fn run(mut self) -> (String, String) {
        for w in self.warnings.clone() {
            self.line(&format!("config warning: {}", w.message));
        }
        let mut out = self.effects();
        self.supervisor.start(self.now, &mut out);
        self.apply(out);
        loop {
            while let Some((to, msg)) = self.bus.pop_front() {
                self.deliver(to, msg);
            }
            if self.idle() {
                break;
            }
            let Some((at, _)) = self.timers.peek() else {
                break;
            };
            if at > self.until || self.steps >= self.options.max_steps {
                self.line(&format!("stop: limit reached (steps={})", self.steps));
                break;
            }
            let (at, event) = self.timers.pop().expect("peeked above");
            self.now = at;
            match event {
                Event::Send(to, msg) => self.deliver(to, msg),
                Event::Arrive { group, index } => {
                    self.arrive(group, index);
                    // Every file of one instant lands before the queue
                    // manager looks, as when cleanup outpaces it; one
                    // wakeup then covers them all.
                    while self.timers.peek() == Some((self.now, true)) {
                        let Some((_, Event::Arrive { group, index })) = self.timers.pop() else {
                            unreachable!("peeked an arrival");
                        };
                        self.arrive(group, index);
                    }
                }
                Event::Release(server) => self.release(server),
                Event::Greeting { server, conn } => self.greeting_timeout(server, conn),
                Event::Append(message, appending) => self.append(message, appending),
            }
        }
        let summary = report::summary(&self.stats, &self.queues, self.now, self.steps);
        (self.trace, summary)
    }

    /// Nothing left to do: every arrival happened and every file is gone.
    fn idle(&self) -> bool {
        self.arrivals_left == 0 && self.queues.files.is_empty()
    }

    /// A collector for one step: trace events are built only when the run
    /// keeps its trace.
    fn effects(&self) -> Effects {
        if self.options.trace {
            Effects::new()
        } else {
            Effects::untraced()
        }
    }

    fn schedule(&mut self, at: Instant, event: Event) {
        self.seq += 1;
        self.timers.push(at, self.seq, event);
    }

    /// Queues message `index` of arrival group `group`, if there is one,
    /// under the arming number it was given at the start.
    fn queue_arrival(&mut self, group: usize, index: u32) {
        let g = self.groups[group];
        if index >= g.count {
            return;
        }
        let a = &self.scenario.arrivals[group];
        let at = Instant::ZERO + a.at.0 + Duration(a.every.0.as_millis() * u64::from(index));
        self.timers.push(
            at,
            g.first_seq + u64::from(index),
            Event::Arrive { group, index },
        );
    }

    fn line(&mut self, text: &str) {
        if self.options.trace {
            self.trace
                .push_str(&format!("{:>11} {}\n", self.now.to_string(), text));
        }
    }

    fn deliver(&mut self, to: Addr, msg: Msg) {
        self.steps += 1;
        let mut out = self.effects();
        out.list = std::mem::take(&mut self.spare);
        let now = self.now;
        match &to {
            Addr::Supervisor => self.supervisor.handle(now, msg, &mut out),
            // Searched with the `Name` itself, whose shared text compares
            // by pointer, and once per message.
            Addr::Transport(name) => match self.transport_numbers.get(name) {
                Some(&n) => self.transports[n as usize].handle(now, msg, &mut out),
                None => self.new_transport(name).handle(now, msg, &mut out),
            },
            Addr::Destination(id) => {
                let mut stopped = None;
                if matches!(msg, Msg::Stop) {
                    stopped = self.dests.take_stopping(*id);
                }
                let found = match stopped.as_mut() {
                    Some(d) => Some(d),
                    None => self.dests.get_mut(*id),
                };
                let Some(d) = found else {
                    // A forgotten destination's timer: Postfix cancels it
                    // with the queue; here it simply finds nobody.
                    assert!(
                        matches!(msg, Msg::Timer(_)),
                        "message {msg:?} for unknown destination {id}"
                    );
                    return;
                };
                Self::to_dest(&mut self.stats, now, d, msg, &mut out);
            }
        }
        self.apply(out);
    }

    /// Hands `msg` to the destination `d`, counting the end of a delivery
    /// first when it is a report.
    fn to_dest(stats: &mut Stats, now: Instant, d: &mut SimDest, msg: Msg, out: &mut Effects) {
        if matches!(msg, Msg::Report(_)) {
            if d.stats == u32::MAX {
                d.stats = stats.row(&d.core.key);
            }
            stats.done_at(now, d.stats);
        }
        d.core.handle(now, msg, out);
    }

    fn params_for(&mut self, name: &str) -> Arc<TransportParams> {
        if let Some(p) = self.tparams.get(name) {
            return Arc::clone(p);
        }
        let (tp, warnings) = self.supervisor.params().transport(name);
        for w in warnings {
            self.line(&format!("config warning: {}", w.message));
        }
        let tp = Arc::new(tp);
        self.tparams.insert(name.to_string(), Arc::clone(&tp));
        tp
    }

    /// Creates the transport entity `name` on its first message. Its
    /// own copy of the name becomes the shared one: its destinations
    /// address it with that copy, and names recognised as the same copy
    /// compare by pointer instead of by text.
    fn new_transport(&mut self, name: &Name) -> &mut Transport {
        let p = self.params_for(name);
        let g = self.supervisor.global();
        let retry = g.transport_retry_time;
        let cache = 2 * g.message_recipient_limit as usize;
        let number = u32::try_from(self.transports.len()).expect("fewer than 2^32 transports");
        let t = Transport::new(number, p, retry, cache);
        assert!(t.name == *name, "transport {name} named {}", t.name);
        self.names.replace(t.name.clone());
        self.transport_numbers.insert(t.name.clone(), number);
        self.transports.push(t);
        self.dests.add_transport();
        self.transports.last_mut().expect("just pushed")
    }

    /// The number of the server behind `nexthop`, made on first use.
    fn server(&mut self, nexthop: &Name) -> u32 {
        if let Some(&n) = self.server_numbers.get(nexthop) {
            return n;
        }
        let n = u32::try_from(self.servers.len()).expect("fewer than 2^32 servers");
        self.servers.push(Server::default());
        self.server_numbers.insert(nexthop.clone(), n);
        n
    }

    fn apply(&mut self, mut out: Effects) {
        for effect in out.drain() {
            self.effect(effect);
        }
        // Keep the (now empty) buffer for the next step.
        if out.list.capacity() > self.spare.capacity() {
            self.spare = out.list;
        }
    }

    fn effect(&mut self, effect: Effect) {
        match effect {
            // A destination told to stop may still have messages on the bus
            // ahead of the Stop (a Take or Flush sent before the transport
            // read its Idle). It keeps receiving those under the name it
            // had, while a new destination of the same name can be spawned
            // at once (the actors address mailboxes, not names, and need
            // no such thing).
            Effect::Send(Addr::Destination(id), Msg::Stop) => {
                self.dests.stop(id);
                self.bus.push_back((Addr::Destination(id), Msg::Stop));
            }
            Effect::Send(to, msg) => self.bus.push_back((to, msg)),
            Effect::Spawn {
                id,
                key,
                nexthop,
                epoch,
            } => {
                let p = self.params_for(&key.transport);
                let g = Arc::clone(self.supervisor.global());
                let server = self.server(&nexthop);
                self.dests.spawn(SimDest {
                    core: Destination::new(id, key, nexthop, epoch, p, g),
                    stats: u32::MAX,
                    server,
                });
            }
            Effect::Arm { owner, at, timer } => {
                self.schedule(at, Event::Send(owner, Msg::Timer(timer)))
            }
            Effect::AllocAgent { transport, agent } => {
                let behaviour = self
                    .scenario
                    .transports
                    .get(transport.as_str())
                    .cloned()
                    .unwrap_or_default();
                let at = Duration(self.now.as_millis());
                let down = behaviour.down.iter().any(|p| p.from.0 <= at && at < p.to.0);
                let msg = if down {
                    Msg::AgentFailed {
                        agent,
                        dsn: Dsn::new("4.3.0", "mail transport unavailable"),
                    }
                } else {
                    Msg::AgentReady(agent)
                };
                let when = self.now + behaviour.connect.0;
                self.schedule(when, Event::Send(Addr::Transport(transport), msg));
            }
            Effect::CloseAgent { .. } => {}
            Effect::Deliver {
                agent: _,
                id,
                dest,
                nexthop,
                entry,
            } => self.attempt(id, &dest, &nexthop, entry),
            Effect::ScanStart { queue, flags: _ } => self.queues.start_scan(queue),
            Effect::ScanNext(queue) => {
                let id = self.queues.next(queue);
                self.bus
                    .push_back((Addr::Supervisor, Msg::ScanResult { queue, id }));
            }
            Effect::Admit {
                queue,
                id,
                flags,
                message,
                batch,
            } => self.admit(queue, id, flags, message, batch),
            Effect::Refill { message, batch } => {
                let file = self
                    .queues
                    .files
                    .get_mut(self.ids.get(message))
                    .expect("refilling a file that exists");
                let (recipients, more) = world::read(
                    file,
                    batch,
                    &self.scenario,
                    &mut self.names,
                    &mut self.routes,
                );
                self.bus.push_back((
                    Addr::Supervisor,
                    Msg::Refilled {
                        message,
                        recipients,
                        more,
                        read_error: false,
                    },
                ));
            }
            Effect::Discard { message, recipient } => {
                self.queues
                    .mark_done(self.ids.get(message), &recipient.address);
                self.stats.discarded += 1;
            }
            Effect::DeferRecipients { recipients, .. } => {
                self.stats.deferred_by_qmgr += recipients.len() as u64;
            }
            Effect::DelayCleared(_) => self.stats.delay_cleared += 1,
            Effect::Complete { message, verdict } => self.complete(message, verdict),
            Effect::FlushAll => {
                let names: Vec<Name> = self.transport_numbers.keys().cloned().collect();
                for name in names {
                    self.bus.push_back((Addr::Transport(name), Msg::Flush));
                }
            }
            Effect::Log(level, text) => {
                let prefix = match level {
                    LogLevel::Info => "log info",
                    LogLevel::Warning => "log warning",
                };
                self.line(&format!("{prefix}: {text}"));
            }
            Effect::Trace(event) => self.line(&event.to_string()),
        }
    }

    fn arrive(&mut self, group: usize, index: u32) {
        self.arrivals_left -= 1;
        self.queue_arrival(group, index + 1);
        // One buffer for every file of the run: a new one per file was
        // allocated, then grown for the first address, then freed.
        let mut text = std::mem::take(&mut self.scratch);
        text.clear();
        // Borrowed, not cloned: a group may list thousands of domains.
        let a = &self.scenario.arrivals[group];
        self.next_file += 1;
        // Written out rather than `format!`ed: this runs for every file and
        // recipient of a run, and the formatting machinery cost more than
        // the scheduling it feeds.
        text.push('Q');
        world::push_decimal(&mut text, self.next_file, 6);
        let id = Name::from(text.as_str());
        let recipients = (0..a.recipients)
            .map(|r| {
                let n = index * a.recipients + r;
                let domain = &a.domains[(n as usize) % a.domains.len().max(1)];
                text.clear();
                text.push_str(&a.user);
                if a.numbered {
                    world::push_decimal(&mut text, u64::from(n) + 1, 0);
                }
                text.push('@');
                text.push_str(domain);
                (Box::from(text.as_str()), false)
            })
            .collect();
        self.scratch = text;
        let warn = self.supervisor.global().delay_warning_time;
        let create_time = self.now - a.age.0;
        let place = if a.queue == "deferred" {
            Place::Deferred
        } else {
            Place::Incoming
        };
        self.queues.files.insert(
            SortKey::new(&id),
            Box::new(File {
                id,
                place,
                mtime: self.now,
                sender: self.senders[group].clone(),
                create_time,
                arrival: self.now,
                warning: if warn.is_zero() {
                    Warning::None
                } else {
                    Warning::Due(create_time + warn)
                },
                recipients,
                cursor: 0,
                single_rcpt: a.verp,
            }),
        );
        self.stats.arrived += 1;
        if place == Place::Incoming && self.last_wakeup != Some(self.now) {
            // cleanup(8) wakes the queue manager after each new file; files
            // of one instant share one wakeup.
            self.last_wakeup = Some(self.now);
            self.bus
                .push_back((Addr::Supervisor, Msg::Trigger(b"W".to_vec())));
        }
    }

    fn admit(
        &mut self,
        queue: QueueName,
        id: Name,
        flags: ScanFlags,
        message: MessageId,
        batch: u32,
    ) {
        let Some(file) = self.queues.files.get_mut(&SortKey::new(&id)) else {
            self.bus
                .push_back((Addr::Supervisor, Msg::AdmitFailed { id }));
            return;
        };
        // Not yet time for its next attempt (Postfix skips files stamped
        // more than a second ahead unless the scan has ALL).
        if queue == QueueName::Deferred
            && !flags.contains(ScanFlags::ALL)
            && !crate::scan::is_due(file.mtime, self.now)
        {
            self.bus
                .push_back((Addr::Supervisor, Msg::AdmitFailed { id }));
            return;
        }
        file.place = Place::Active;
        file.cursor = 0;
        // The file is read through the reference found above: searching
        // a million-file queue again costs more than the reading.
        let (recipients, more) = world::read(
            file,
            batch,
            &self.scenario,
            &mut self.names,
            &mut self.routes,
        );
        let info = MessageInfo {
            message,
            sender: file.sender.clone(),
            create_time: file.create_time,
            warning: file.warning,
            flags,
            single_rcpt: file.single_rcpt,
            id,
        };
        self.ids.insert(message, SortKey::new(&info.id));
        self.bus.push_back((
            Addr::Supervisor,
            Msg::Admitted {
                info: Box::new(info),
                recipients,
                more,
            },
        ));
    }

    fn complete(&mut self, message: MessageId, verdict: Verdict) {
        self.attempts.forget(message);
        let id = self.ids.remove(message);
        match verdict {
            Verdict::Remove => {
                self.queues.files.remove(&id);
                self.stats.removed += 1;
            }
            Verdict::Defer { until, warn } => {
                let file = self
                    .queues
                    .files
                    .get_mut(&id)
                    .expect("deferring a file that exists");
                file.place = Place::Deferred;
                file.mtime = until;
                file.cursor = 0;
                if warn {
                    file.warning = Warning::Sent;
                    self.stats.warned += 1;
                }
                self.stats.deferred_files += 1;
            }
            Verdict::Expire { .. } => {
                let file = self
                    .queues
                    .files
                    .remove(&id)
                    .expect("expiring a file that exists");
                self.stats.expired += 1;
                self.stats.returned += file.recipients.iter().filter(|(_, d)| !d).count() as u64;
            }
        }
    }
}

/// Runs a scenario and returns its trace and summary.
pub fn simulate(scenario: Scenario, options: Options) -> (String, String) {
    Simulation::new(scenario, options).run()
}
