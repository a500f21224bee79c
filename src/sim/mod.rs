//! A deterministic discrete-event simulator that runs the scheduling core
//! on a virtual clock (the quinn/TigerBeetle pattern).
//!
//! The simulator is the second host of the core's entities: it keeps them
//! in memory and carries out their effects through the same
//! [`crate::events::EventLoop`] as the daemon's actors (one FIFO
//! bus, timers by time and arming order), with a simulated [`World`] for
//! the I/O the daemon does: queue directories and delivery agents with the
//! remote servers behind them. The actor tests run the same world under
//! the actors and compare their traces with this one, byte for byte.
//! The same scenario and seed give a byte-identical trace: no clock is read,
//! no hash order is used, randomness comes from one seeded generator.
//!
//! # Lookups
//! Entities are found by number: transports by the number the simulator
//! gave each when it created it, destinations by their [`DestId`](crate::effect::DestId) (a
//! transport's number and a slot in its table), and each live destination
//! keeps its world state ([`world::Peer`]: its server and summary row),
//! made once when it is created. Only names that come from outside the core
//! (a transport named by the supervisor, a recipient's domain) are looked
//! up by name.
//!
//! # Bounds
//! A run stops when the queue is empty and no arrival remains, at the
//! scenario's `until` (7 days by default), or after `max_steps` events.

pub mod first_pass;
pub mod measure;
pub mod report;
pub mod rng;
pub mod scenario;
pub mod series;
pub mod world;

mod attempt;
mod dests;
mod ids;
mod queues;
mod routes;
mod servers;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::active::Supervisor;
use crate::destination::Destination;
use crate::effect::{Addr, Effect, Effects, Msg};
use crate::events::EventLoop;
use crate::name::{Name, SortKey};
use crate::params::{ConfigWarning, Params, TransportParams};
use crate::time::{Duration, Instant};
use crate::trace::Line;
use crate::transport::Transport;
use dests::{Dests, SimDest};
use ids::Ids;
use scenario::{CommandAt, Operator, Scenario};
use world::{Happening, World};

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
    /// Run options.
    options: Options,
    /// Stop time.
    until: Instant,
    /// The bus, the timers and virtual time.
    lp: EventLoop<Happening>,
    /// Queues, agents and servers.
    world: World,
    /// The supervisor entity.
    supervisor: Supervisor,
    /// Transport entities, by number (the order of creation).
    transports: Vec<Transport>,
    /// Transport numbers by name (lookups only).
    transport_numbers: BTreeMap<Name, u32>,
    /// Destination entities, by id.
    dests: Dests,
    /// Resolved per-transport parameters.
    tparams: BTreeMap<String, Arc<TransportParams>>,
    /// The effect buffer, kept between steps so that each step does not
    /// allocate a new one.
    spare: Vec<crate::effect::Effect>,
    /// Core message number → queue ID, for live messages.
    ids: Ids,
    /// Trace lines.
    trace: String,
    /// Configuration warnings.
    warnings: Vec<ConfigWarning>,
}

impl Simulation {
    /// Prepares a run.
    ///
    /// # Panics
    /// When `scenario.check()` fails: hosts check scenarios as they read them.
    pub fn new(scenario: Scenario, options: Options) -> Simulation {
        if let Err(why) = scenario.check() {
            panic!("unchecked scenario: {why}");
        }
        let (params, warnings) = match Params::resolve(&scenario.raw_params()) {
            Ok(resolved) => resolved,
            Err(fatals) => panic!("unchecked scenario: {}", fatals[0]),
        };
        let seed = options.seed.unwrap_or(scenario.seed);
        let until = Instant::ZERO
            + scenario
                .until
                .map_or(Duration::from_secs(7 * 86400), |s| s.0);
        let supervisor = Supervisor::new(params);
        let mut lp = EventLoop::new(Instant::ZERO);
        let mut world = World::new(scenario, seed, supervisor.global().delay_warning_time);
        world.start(&mut lp);
        Simulation {
            options,
            until,
            lp,
            world,
            supervisor,
            transports: Vec::new(),
            transport_numbers: BTreeMap::new(),
            dests: Dests::default(),
            tparams: BTreeMap::new(),
            spare: Vec::new(),
            ids: Ids::default(),
            trace: String::new(),
            warnings,
        }
    }

    /// Configuration warnings from resolving the scenario's parameters.
    pub fn warnings(&self) -> &[ConfigWarning] {
        &self.warnings
    }

    /// Runs to the end and returns the trace (empty unless tracing) and the
    /// summary.
    pub fn run(mut self) -> (String, String) {
        for w in self.warnings.clone() {
            self.line(Line::ConfigWarning(w.message));
        }
        let mut out = self.effects();
        self.supervisor.start(self.lp.now(), &mut out);
        self.apply(out);
        loop {
            while let Some((to, msg)) = self.lp.next_message() {
                self.deliver(to, msg);
            }
            if self.world.idle() {
                break;
            }
            let Some(at) = self.lp.next_timer() else {
                break;
            };
            if at > self.until || self.lp.steps() >= self.options.max_steps {
                let steps = self.lp.steps();
                self.line(Line::Stop { steps });
                break;
            }
            if let Some(event) = self.lp.fire(at) {
                if let Some(command) = self.world.fire(&mut self.lp, event) {
                    self.command(&command);
                }
            }
        }
        let summary = self.world.summary(self.lp.now(), self.lp.steps());
        (self.trace, summary)
    }

    /// Runs a scenario's operator command: a command for the supervisor
    /// goes onto the bus, `destinations` prints its table into the trace.
    fn command(&mut self, command: &CommandAt) {
        self.line(Line::Command(command.run.clone()));
        match command.parse() {
            Ok(Operator::Control(c)) => self.lp.send(Addr::Supervisor, Msg::Control(c)),
            Ok(Operator::Destinations(filter)) => {
                let table = filter.trace_table(&self.live_state());
                for l in table.lines() {
                    self.line(Line::Output(l.to_string()));
                }
            }
            Err(why) => panic!("unchecked scenario command {:?}: {why}", command.run),
        }
    }

    /// The scheduler's live state now, as `oqmgr ctl` would see it.
    pub fn live_state(&self) -> crate::live_state::LiveState {
        let mut state = crate::live_state::LiveState {
            now_ms: self.lp.now().as_millis(),
            supervisor: self.supervisor.live(false),
            transports: self.transports.iter().map(Transport::live).collect(),
            destinations: self.dests.live(),
        };
        state.sort();
        state
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

    fn line(&mut self, line: Line) {
        if self.options.trace {
            self.trace.push_str(&line.stamped(self.lp.now()));
            self.trace.push('\n');
        }
    }

    fn deliver(&mut self, to: Addr, msg: Msg) {
        let mut out = self.effects();
        out.list = std::mem::take(&mut self.spare);
        let now = self.lp.now();
        match &to {
            Addr::Supervisor => self.supervisor.handle(now, msg, &mut out),
            // Searched with the `Name` itself, whose shared text compares
            // by pointer, and once per message.
            Addr::Transport(name) => match self.transport_numbers.get(name) {
                Some(&n) => self.transports[n as usize].handle(now, msg, &mut out),
                None => self.new_transport(name).handle(now, msg, &mut out),
            },
            Addr::Destination(id) => {
                let found = if matches!(msg, Msg::Stop) {
                    self.dests.take(*id)
                } else {
                    None
                };
                match found {
                    Some(mut d) => d.core.handle(now, msg, &mut out),
                    None => match self.dests.get_mut(*id) {
                        Some(d) => d.core.handle(now, msg, &mut out),
                        // A forgotten destination's timer: Postfix cancels
                        // it with the queue; here it simply finds nobody.
                        None => assert!(
                            matches!(msg, Msg::Timer(_)),
                            "message {msg:?} for unknown destination {id}"
                        ),
                    },
                }
            }
        }
        self.apply(out);
    }

    fn params_for(&mut self, name: &str) -> Arc<TransportParams> {
        if let Some(p) = self.tparams.get(name) {
            return Arc::clone(p);
        }
        let (tp, warnings) = self.supervisor.params().transport(name);
        for w in warnings {
            self.line(Line::ConfigWarning(w.message));
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
        self.world.share_name(t.name.clone());
        self.lp.transport_created(t.name.clone());
        self.transport_numbers.insert(t.name.clone(), number);
        self.transports.push(t);
        self.dests.add_transport();
        self.transports.last_mut().expect("just pushed")
    }

    fn apply(&mut self, mut out: Effects) {
        for effect in out.drain() {
            if let Some(effect) = self.lp.route(effect) {
                self.effect(effect);
            }
        }
        // Keep the (now empty) buffer for the next step.
        if out.list.capacity() > self.spare.capacity() {
            self.spare = out.list;
        }
    }

    /// Carries out one of the host's effects (those the event loop does
    /// not route itself).
    fn effect(&mut self, effect: Effect) {
        let now = self.lp.now();
        match effect {
            Effect::Spawn {
                id,
                key,
                nexthop,
                epoch,
            } => {
                let p = self.params_for(&key.transport);
                let g = Arc::clone(self.supervisor.global());
                let peer = self.world.peer(&nexthop);
                self.dests.spawn(SimDest {
                    core: Destination::new(id, key, nexthop, epoch, p, g),
                    peer,
                });
            }
            Effect::AllocAgent { transport, agent } => {
                self.world.alloc_agent(&mut self.lp, transport, agent)
            }
            Effect::CloseAgent { .. } => {}
            Effect::Deliver {
                agent: _,
                id,
                dest,
                nexthop,
                entry,
            } => {
                // The destination that asked is live (in its slot, or
                // stopping): its world state is kept with it.
                let d = self
                    .dests
                    .get_mut(id)
                    .expect("delivery for a live destination");
                let file = self.ids.get(entry.message);
                self.world
                    .deliver(&mut self.lp, &mut d.peer, id, &dest, &nexthop, entry, file);
            }
            Effect::ScanStart { queue, flags: _ } => {
                self.world.scan_start(queue);
            }
            Effect::ScanNext(queue) => {
                let id = self.world.scan_next(queue);
                self.lp
                    .answer(Addr::Supervisor, Msg::ScanResult { queue, id });
            }
            Effect::Admit {
                queue,
                id,
                flags,
                message,
                batch,
            } => {
                let key = SortKey::new(&id);
                let answer = match self.world.admit(queue, &key, flags, now, batch) {
                    Some((envelope, recipients, more)) => {
                        self.ids.insert(message, key);
                        Msg::Admitted {
                            info: Box::new(crate::message::MessageInfo {
                                message,
                                sender: envelope.sender,
                                create_time: envelope.create_time,
                                warning: envelope.warning,
                                flags,
                                single_rcpt: envelope.single_rcpt,
                                id,
                            }),
                            recipients,
                            more,
                        }
                    }
                    None => Msg::AdmitFailed { id },
                };
                self.lp.answer(Addr::Supervisor, answer);
            }
            Effect::Refill { message, batch } => {
                let (recipients, more) = self.world.read(self.ids.get(message), batch);
                self.lp.send(
                    Addr::Supervisor,
                    Msg::Refilled {
                        message,
                        recipients,
                        more,
                        read_error: false,
                    },
                );
            }
            Effect::Discard { message, recipient } => {
                self.world.discard(self.ids.get(message), &recipient)
            }
            Effect::DeferRecipients { recipients, .. } => {
                self.world.defer_recipients(recipients.len())
            }
            Effect::DelayCleared(_) => self.world.delay_cleared(),
            Effect::Retry(ids) => self.world.retry(&ids, now),
            Effect::Complete { message, verdict } => {
                let id = self.ids.remove(message);
                self.world.complete(&id, &verdict);
            }
            Effect::Log(level, text) => self.line(Line::Log(level, text)),
            Effect::Trace(event) => self.line(Line::Event(event)),
            Effect::Send(..) | Effect::Arm { .. } | Effect::FlushAll => {
                unreachable!("the event loop routes {effect:?}")
            }
        }
    }
}

/// Runs a scenario and returns its trace and summary.
pub fn simulate(scenario: Scenario, options: Options) -> (String, String) {
    Simulation::new(scenario, options).run()
}
