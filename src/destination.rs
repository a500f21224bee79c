//! Per-destination queues (Postfix: `qmgr_queue.c`, `qmgr_entry.c`, the
//! per-queue half of `qmgr_deliver.c` and `qmgr_defer.c`).
//!
//! A [`Destination`] holds the delivery requests for one (transport, queue
//! name): `todo` entries wait for an agent, `busy` entries are on the wire.
//! Its window opens slowly on success and closes on failure ("slow start"
//! with concurrency feedback), so one bad site cannot absorb a transport's
//! agents and a good one is not hit by a thundering herd. When failures add
//! up to `failed_cohort_limit` pseudo-cohorts the site is declared dead: its
//! waiting entries go to the `retry` transport without an attempt until it is
//! revived, after `minimal_backoff_time` or by `postqueue -f`.
//!
//! # Announcing capacity
//! In Postfix the transport reads each queue's window directly. Here the
//! destination is its own entity, so it *announces* its spare capacity,
//! `min(window - busy, todo)` while ready and 0 otherwise, to its transport
//! whenever that number changes (`Msg::Capacity`). The transport allocates
//! agents and offers them with `Take`; a destination that lost its capacity
//! meanwhile answers `NoWork` and the transport tries the next one. An empty,
//! ready destination asks to be forgotten with `Idle`, counting the entries
//! it received, so the transport never drops one with an entry in flight.
//!
//! # States
//! `Ready` (window ≥ 1), `Dead` (Postfix window 0, until revived),
//! `Suspended` (Postfix window -1, during the destination rate delay). Dead
//! and suspended return only to ready. `AdminSuspended` (no Postfix
//! counterpart): an operator's suspension ([`crate::control`]) holds
//! deliveries back; the destination hands its waiting entries to the
//! supervisor to be deferred, and returns to ready when resumed.
//!
//! # What it tells the operator
//! [`Destination::live`] describes it ([`crate::live_state`]): its state,
//! window and counters, the recipients' outcomes since it came into memory,
//! the recent delivery times (entry queued here to reply, the last
//! [`RECENT_DELAYS`]) and the age of the oldest waiting entry. It also
//! remembers the messages it deferred lately (for `flush`).
//!
//! # Parts
//! Concurrency feedback is in `destination_throttle.rs`, the move of a
//! dead site's waiting mail to `retry` in `destination_defer.rs`, the
//! operator's side (suspension, [`Destination::live`], the clog warning)
//! in `destination_operator.rs`, and the adaptive policy's hooks in
//! `destination_adaptive.rs`.
//!
//! # Invariants
//! - `1 <= window` and, with a limit, `window <= limit` while ready;
//! - a dead destination holds no `todo` entries (they were moved to retry).
//!
//! # Compatibility
//! `<transport>_destination_concurrency_{limit,positive_feedback,negative_feedback,failed_cohort_limit}`,
//! `<transport>_initial_destination_concurrency`, `<transport>_destination_rate_delay`,
//! `minimal_backoff_time`, `qmgr_clog_warn_time`, `helpful_warnings`,
//! `destination_concurrency_feedback_debug` (the log lines of
//! `qmgr_queue_throttle`/`qmgr_queue_unthrottle`).

#[path = "destination_adaptive.rs"]
mod adaptive;
#[path = "destination_defer.rs"]
mod defer;
#[path = "destination_operator.rs"]
mod operator;
#[path = "destination_throttle.rs"]
mod throttle;

use std::collections::VecDeque;
use std::sync::Arc;

use crate::adaptive::{DestinationState, SchedulingPolicy};
use crate::effect::{Addr, DestId, DestKey, Effect, Effects, LogLevel, Msg, Timer};
use crate::entry::{AgentId, DeliveryReport, Dsn, Entry, EntryId, MessageId, Outcome};
use crate::live_state::Tally;
use crate::name::Name;
use crate::params::{GlobalParams, TransportParams};
use crate::route::{ERROR, RETRY};
use crate::time::Instant;
use crate::trace::{TraceEvent, WindowCause};

pub(crate) use defer::reroute;
pub use throttle::fmt_g;

/// Where a destination is in its life.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    /// Deliveries may start while `busy < window`.
    Ready,
    /// Declared dead after too many failed cohorts; holds the reason that
    /// rerouted mail is deferred with.
    Dead(Dsn),
    /// Waiting out the destination rate delay.
    Suspended,
    /// Held back by an operator's suspension (`crate::control`).
    AdminSuspended,
}

/// Delivery times kept per destination for `ctl destinations`' p50/p99.
pub const RECENT_DELAYS: usize = 256;

/// The reason prefix of mail deferred because its destination is dead
/// (Postfix: `qmgr_deliver_update`'s wording).
pub const DEAD_SITE: &str = "delivery temporarily suspended";

/// Most message numbers a destination remembers having deferred.
const DEFERRED_MEMORY: usize = 10_000;

/// What a destination remembers of an entry at an agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Busy {
    /// The entry.
    id: EntryId,
    /// Its message.
    message: MessageId,
    /// How many recipients it holds.
    recipients: u32,
    /// Deliveries in flight when it started, itself included (the
    /// adaptive window learns from it).
    started: u32,
    /// It started above the adaptive ceiling (`crate::adaptive::window`).
    probe: bool,
    /// When it was queued here.
    since: Instant,
}

/// One destination queue (Postfix: `QMGR_QUEUE`).
#[derive(Debug)]
pub struct Destination {
    /// Its number: every message for it is addressed by it, and every
    /// message it sends its transport names it.
    pub id: DestId,
    /// Transport and queue name (for traces and logs).
    pub key: DestKey,
    /// The next hop handed to agents.
    pub nexthop: Name,
    /// The transport's parameters.
    params: Arc<TransportParams>,
    /// Global parameters (backoff, clog warnings, debug logging).
    global: Arc<GlobalParams>,
    /// Ready, dead or suspended.
    status: Status,
    /// Deliveries allowed at once while ready.
    window: u32,
    /// Positive feedback accumulator.
    success: f64,
    /// Negative feedback accumulator.
    failure: f64,
    /// Failed pseudo-cohorts since the last success.
    fail_cohorts: f64,
    /// Waiting entries, oldest first.
    todo: VecDeque<Entry>,
    /// Entries at an agent. Only what completion needs is kept: the entry
    /// itself travels with the delivery request, so no recipient list is
    /// copied per delivery.
    busy: Vec<Busy>,
    /// When the last delivery finished (Postfix keeps it for connection
    /// caching decisions).
    last_done: Option<Instant>,
    /// Entries ever accepted, for the idle handshake.
    received: u64,
    /// Capacity last announced to the transport.
    announced: u32,
    /// The `dead` flag of the last `Idle` sent, if one was sent and nothing
    /// arrived since; a dead destination that revives says `Idle` again.
    idle_sent: Option<bool>,
    /// Bumped whenever a timer is armed; stale timers are ignored.
    generation: u64,
    /// Earliest time of the next clog warning.
    next_clog: Instant,
    /// Messages in the active queue when the latest entry was made (the
    /// clog warning's "of M").
    active: u32,
    /// Whether the transport had other destinations when the latest entry
    /// was made (the clog warning's "separate master.cf transport" advice).
    peers: bool,
    /// When a dead destination's unthrottle timer fires (meaningless
    /// while ready).
    dead_until: Instant,
    /// The adaptive policy's state (`None` under oqmgr's, and for the
    /// `retry` and `error` pseudo-destinations).
    adaptive: Option<Box<DestinationState>>,
    /// `started` and `probe` of the delivery whose report is being
    /// applied, for the adaptive window.
    reporting: (u32, bool),
    /// When it was declared dead (meaningless while not dead).
    dead_since: Instant,
    /// When a rate delay ends (meaningless while not suspended).
    rate_until: Instant,
    /// When each waiting entry was queued, in `todo`'s order.
    todo_since: VecDeque<Instant>,
    /// Recipient outcomes since it was created.
    tally: Tally,
    /// The last [`RECENT_DELAYS`] delivery times, in ms.
    delays: VecDeque<u64>,
    /// Messages it deferred or rerouted lately, for `flush`.
    deferred_messages: Vec<MessageId>,
}

impl Destination {
    /// A new, ready destination with the transport's initial window.
    /// `epoch` (from `Effect::Spawn`) seeds its timer generations, so timers
    /// of an earlier destination with the same name are stale for this one.
    pub fn new(
        id: DestId,
        key: DestKey,
        nexthop: Name,
        epoch: u64,
        params: Arc<TransportParams>,
        global: Arc<GlobalParams>,
    ) -> Destination {
        let window = params.init_dest_concurrency.max(1);
        let pseudo = key.transport == RETRY || key.transport == ERROR;
        let adaptive = (global.scheduling_policy == SchedulingPolicy::Adaptive && !pseudo)
            .then(|| Box::new(DestinationState::new(epoch)));
        Destination {
            id,
            key,
            nexthop,
            params,
            global,
            status: Status::Ready,
            window,
            success: 0.0,
            failure: 0.0,
            fail_cohorts: 0.0,
            todo: VecDeque::new(),
            busy: Vec::new(),
            last_done: None,
            received: 0,
            announced: 0,
            idle_sent: None,
            generation: epoch << 32,
            next_clog: Instant::ZERO,
            active: 0,
            peers: false,
            dead_until: Instant::ZERO,
            adaptive,
            reporting: (0, false),
            dead_since: Instant::ZERO,
            rate_until: Instant::ZERO,
            todo_since: VecDeque::new(),
            tally: Tally::default(),
            delays: VecDeque::new(),
            deferred_messages: Vec::new(),
        }
    }

    /// Current status.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// Current window (meaningful while ready).
    pub fn window(&self) -> u32 {
        self.window
    }

    /// Entries waiting and entries at agents.
    pub fn counts(&self) -> (usize, usize) {
        (self.todo.len(), self.busy.len())
    }

    /// Handles one message.
    pub fn handle(&mut self, now: Instant, msg: Msg, out: &mut Effects) {
        match msg {
            Msg::Accept {
                entry,
                active,
                peers,
            } => self.accept(now, entry, (active, peers), out),
            Msg::Take(agent) => self.take(agent, out),
            Msg::Report(report) => self.report(now, report, out),
            Msg::DeferTodo(dsn) => self.defer_todo(now, &dsn, out),
            Msg::AdminSuspend(target) => self.admin_suspend(&target, out),
            Msg::AdminResume(target) => {
                if self.status == Status::AdminSuspended && target.matches(&self.key) {
                    self.status = Status::Ready;
                    self.window = self.params.init_dest_concurrency.max(1);
                    self.success = 0.0;
                    self.failure = 0.0;
                    self.trace_window(WindowCause::Revive, 0.0, out);
                }
            }
            Msg::FlushOne(_) => {
                if matches!(self.status, Status::Dead(_)) {
                    self.unthrottle(now, out);
                }
                self.site_alive(out);
                out.send(
                    Addr::Supervisor,
                    Msg::FlushReport {
                        dest: self.key.clone(),
                        found: true,
                        messages: std::mem::take(&mut self.deferred_messages),
                    },
                );
            }
            Msg::Flush => {
                if matches!(self.status, Status::Dead(_)) {
                    self.unthrottle(now, out);
                }
                self.site_alive(out);
            }
            Msg::Timer(Timer::Unthrottle(generation)) => {
                if generation == self.generation
                    && matches!(self.status, Status::Dead(_))
                    && !self.probing()
                {
                    self.unthrottle(now, out);
                }
            }
            Msg::Timer(Timer::Probe(generation)) => self.probe_timer(now, generation, out),
            Msg::Learned { learned, .. } => self.remember(learned),
            Msg::Timer(Timer::Resume(generation)) => {
                if generation == self.generation && self.status == Status::Suspended {
                    self.status = Status::Ready;
                    self.window = 1;
                    self.trace_window(WindowCause::Resume, 0.0, out);
                }
            }
            Msg::Stop => {
                assert!(
                    self.todo.is_empty() && self.busy.is_empty(),
                    "destination {} stopped with work",
                    self.key
                );
                return;
            }
            other => panic!("destination {} got unexpected {other:?}", self.key),
        }
        self.announce(out);
    }

    fn accept(
        &mut self,
        now: Instant,
        entry: Entry,
        (active, peers): (u32, bool),
        out: &mut Effects,
    ) {
        self.received += 1;
        self.active = active;
        self.peers = peers;
        self.idle_sent = None;
        // A scan admits files stamped up to ADMIT_EARLY ahead, so the
        // files deferred when this site died come back just before its
        // unthrottle timer. Reviving it here, as Postfix's whole-second
        // timers do, saves them a detour through `retry` and a whole extra
        // backoff cycle (the recovery benchmark measured 9.7 s against
        // Postfix's 5.0 s before this).
        if matches!(self.status, Status::Dead(_))
            && crate::scan::is_due(self.dead_until, now)
            && !self.probing()
        {
            self.unthrottle(now, out);
        }
        if let Status::Dead(dsn) = &self.status {
            let dsn = dsn.clone();
            if let Some(entry) = self.hold_probe(now, entry, out) {
                self.remember_deferred(entry.message);
                reroute(&self.key, entry, &dsn, active, out);
            }
            return;
        }
        if self.status == Status::AdminSuspended {
            // Routed before the supervisor heard of the suspension.
            out.send(
                Addr::Supervisor,
                Msg::Withdrawn {
                    dest: self.key.clone(),
                    nexthop: self.nexthop.clone(),
                    entries: vec![entry],
                },
            );
            return;
        }
        out.trace(|| TraceEvent::Enqueue {
            dest: self.key.clone(),
            entry: entry.id,
            message: entry.message,
            recipients: entry.recipients.len(),
        });
        self.todo.push_back(entry);
        self.todo_since.push_back(now);
        self.clog_warning(now, out);
    }

    /// Starts the oldest waiting entry on `agent` (Postfix:
    /// `qmgr_queue_select` + `qmgr_entry_select`), or declines.
    fn take(&mut self, agent: AgentId, out: &mut Effects) {
        if self.take_probe(agent, out) {
            return;
        }
        let can = self.status == Status::Ready && (self.busy.len() as u32) < self.window;
        // Popped only when it can start: an entry taken from `todo` and
        // then declined would be lost, never delivered nor deferred.
        match if can { self.todo.pop_front() } else { None } {
            Some(entry) => {
                let since = self.todo_since.pop_front().unwrap_or_default();
                out.trace(|| TraceEvent::Select {
                    dest: self.key.clone(),
                    entry: entry.id,
                    agent,
                    busy: self.busy.len() as u32 + 1,
                    window: self.window,
                });
                let started = self.busy.len() as u32 + 1;
                let probe = self.adaptive_start(started);
                self.start(agent, entry, since, probe, out);
            }
            None => {
                out.send(
                    Addr::Transport(self.key.transport.clone()),
                    Msg::NoWork {
                        dest: self.id,
                        agent,
                    },
                );
                // Force a fresh announcement: the transport zeroed its view.
                self.announced = u32::MAX;
            }
        }
    }

    /// Sends `entry`, queued here at `since`, to `agent` and counts it
    /// busy (`probe`: it started above the adaptive ceiling).
    fn start(
        &mut self,
        agent: AgentId,
        entry: Entry,
        since: Instant,
        probe: bool,
        out: &mut Effects,
    ) {
        self.busy.push(Busy {
            id: entry.id,
            message: entry.message,
            recipients: entry.recipients.len() as u32,
            started: self.busy.len() as u32 + 1,
            probe,
            since,
        });
        out.push(Effect::Deliver {
            agent,
            id: self.id,
            dest: self.key.clone(),
            nexthop: self.nexthop.clone(),
            entry,
        });
    }

    /// Applies an agent's answer (Postfix: `qmgr_deliver_update`).
    fn report(&mut self, now: Instant, report: DeliveryReport, out: &mut Effects) {
        let Some(at) = self.busy.iter().position(|e| e.id == report.entry) else {
            out.push(Effect::Log(
                LogLevel::Warning,
                format!(
                    "{}: report for unknown entry {}: ignored",
                    self.key, report.entry
                ),
            ));
            return;
        };
        // The entry stays busy through the feedback below, as in Postfix
        // where feedback runs before `qmgr_entry_done`: the slow-start bound
        // `window < busy + initial` counts the delivery that just ended.
        let Busy {
            id: entry_id,
            message,
            recipients,
            started,
            probe,
            since,
        } = self.busy[at];
        self.reporting = (started, probe);
        let dead_probe = self
            .adaptive
            .as_ref()
            .is_some_and(|a| a.probe.out_entry() == Some(entry_id));
        self.tally.count(&report);
        if self.delays.len() == RECENT_DELAYS {
            self.delays.pop_front();
        }
        self.delays
            .push_back(now.saturating_since(since).as_millis());
        if report.outcome != Outcome::Done {
            self.remember_deferred(message);
        }
        // A crashed agent (no usable reply) defers its message and gives
        // no feedback either way: the site is not to blame, and Postfix
        // 3.7.11 and later leave both the site and the transport alone
        // (docs/postfix-ipc.md §7.5).
        let mut hop = report.hop.clone();
        if report.outcome == Outcome::Refused && hop.is_none() {
            hop = Some(Dsn::new("4.3.0", "mail transport unavailable"));
        }
        out.trace(|| TraceEvent::Done {
            dest: self.key.clone(),
            entry: entry_id,
            outcome: report.outcome,
            hop: hop.as_ref().map(|d| d.to_string()),
        });
        if report.outcome == Outcome::Refused {
            // The transport is at fault, not this site: no feedback, and
            // the transport dies (Postfix: a request that could not be
            // handed over, `qmgr_transport_throttle`).
            let dsn = hop.take().expect("set above");
            out.send(
                Addr::Transport(self.key.transport.clone()),
                Msg::Refused(dsn),
            );
        } else if report.outcome != Outcome::Done {
            if let Some(hop) = &hop {
                let status = if Dsn::valid_status(&hop.status) {
                    hop.status.clone()
                } else {
                    "4.0.0".into()
                };
                let reason = if hop.reason.is_empty() {
                    "unknown error"
                } else {
                    &hop.reason
                };
                let dsn = Dsn::new(status, format!("{DEAD_SITE}: {reason}"));
                if self.status == Status::Ready {
                    self.throttle(now, &dsn, out);
                    if matches!(self.status, Status::Dead(_)) {
                        self.defer_todo(now, &dsn, out);
                    }
                }
            }
        }
        if report.outcome != Outcome::Crash && report.outcome != Outcome::Refused {
            out.send(Addr::Transport(self.key.transport.clone()), Msg::Revive);
            if hop.is_none() {
                self.unthrottle(now, out);
                self.site_alive(out);
            }
        }
        let at = self
            .busy
            .iter()
            .position(|e| e.id == entry_id)
            .expect("still busy");
        self.busy.swap_remove(at);
        if dead_probe && matches!(self.status, Status::Dead(_)) {
            // A probe that failed keeps its entry for the next one.
            self.probe_failed(now, out);
            return;
        }
        self.done(
            now,
            message,
            recipients,
            report.outcome != Outcome::Done,
            out,
        );
    }

    /// A busy entry finished (Postfix: `qmgr_entry_done`).
    fn done(
        &mut self,
        now: Instant,
        message: MessageId,
        recipients: u32,
        deferred: bool,
        out: &mut Effects,
    ) {
        self.last_done = Some(now);
        if !self.params.dest_rate_delay.is_zero() {
            if matches!(self.status, Status::Dead(_)) {
                self.unthrottle(now, out);
            }
            if self.status == Status::Ready {
                self.status = Status::Suspended;
                self.generation += 1;
                let until = now + self.params.dest_rate_delay;
                self.rate_until = until;
                out.push(Effect::Arm {
                    owner: Addr::Destination(self.id),
                    at: until,
                    timer: Timer::Resume(self.generation),
                });
                out.trace(|| TraceEvent::Suspend {
                    dest: self.key.clone(),
                    until,
                });
            }
        }
        out.send(
            Addr::Supervisor,
            Msg::EntryDone {
                message,
                recipients,
                deferred,
            },
        );
    }

    /// Tells the transport about a changed capacity, or that this
    /// destination is empty and may be forgotten.
    fn announce(&mut self, out: &mut Effects) {
        let slots = match self.status {
            Status::Ready => {
                (self.window.saturating_sub(self.busy.len() as u32)).min(self.todo.len() as u32)
            }
            Status::Dead(_) => self.adaptive.as_ref().map_or(0, |a| a.probe.wants()),
            Status::Suspended | Status::AdminSuspended => 0,
        };
        if slots != self.announced {
            self.announced = slots;
            out.send(
                Addr::Transport(self.key.transport.clone()),
                Msg::Capacity {
                    dest: self.id,
                    slots,
                },
            );
        }
        let idle = match self.status {
            // Suspended by the operator: forgotten like a ready one (the
            // supervisor keeps the suspension).
            Status::Ready | Status::AdminSuspended => Some(false),
            Status::Dead(_) => Some(true),
            // Suspended: wait for the resume, then announce as ready.
            Status::Suspended => None,
        };
        let holds = self.adaptive.as_ref().is_some_and(|a| a.probe.holds());
        if idle.is_some()
            && self.todo.is_empty()
            && self.busy.is_empty()
            && !holds
            && self.idle_sent != idle
        {
            self.idle_sent = idle;
            if idle == Some(false) {
                self.tell_learned(out);
            }
            out.send(
                Addr::Transport(self.key.transport.clone()),
                Msg::Idle {
                    dest: self.id,
                    received: self.received,
                    dead: idle == Some(true),
                },
            );
        }
    }
}

#[cfg(test)]
#[path = "destination_tests.rs"]
mod tests;
