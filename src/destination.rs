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

use std::collections::VecDeque;
use std::sync::Arc;

use crate::adaptive::{DestinationState, SchedulingPolicy};
use crate::control::Target;
use crate::effect::{Addr, DestId, DestKey, Effect, Effects, LogLevel, Msg, Timer};
use crate::entry::{AgentId, DeliveryReport, Dsn, Entry, EntryId, MessageId, Outcome};
use crate::live_state::{LiveDestState, LiveDestination, Tally};
use crate::name::Name;
use crate::params::{GlobalParams, TransportParams};
use crate::route::{ERROR, RETRY};
use crate::time::Instant;
use crate::trace::{TraceEvent, WindowCause, WindowState};

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
        // (docs/postfix-protocol.md §7.5).
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

    /// Positive feedback, or revival of a dead site (Postfix:
    /// `qmgr_queue_unthrottle`).
    fn unthrottle(&mut self, _now: Instant, out: &mut Effects) {
        self.fail_cohorts = 0.0;
        if matches!(self.status, Status::Dead(_)) {
            self.status = Status::Ready;
            // Back from the dead the right concurrency is unknown: resume
            // with what is still in flight, or start slow again.
            self.window = if self.busy.is_empty() {
                self.params.init_dest_concurrency.max(1)
            } else {
                self.busy.len() as u32
            };
            self.success = 0.0;
            self.failure = 0.0;
            self.adaptive_revive();
            self.trace_window(WindowCause::Revive, 0.0, out);
            return;
        }
        if self.status != Status::Ready {
            return;
        }
        if self.adaptive_success(out) {
            return;
        }
        let limit = self.params.dest_concurrency_limit;
        if (limit == 0 || limit > self.window)
            && self.window < self.busy.len() as u32 + self.params.init_dest_concurrency
        {
            let feedback = self.params.positive_feedback.value(self.window);
            self.success += feedback;
            // Loop, not `if`: a feedback above 1 (or rounding) may owe more
            // than one step.
            while self.success + feedback / 2.0 >= 1.0 {
                self.window += 1;
                self.success -= 1.0;
                self.failure = 0.0;
            }
            if limit > 0 && self.window > limit {
                self.window = limit;
            }
            self.trace_window(WindowCause::Success, feedback, out);
        }
    }

    /// Negative feedback; declares the site dead after enough failed
    /// pseudo-cohorts (Postfix: `qmgr_queue_throttle`).
    fn throttle(&mut self, now: Instant, dsn: &Dsn, out: &mut Effects) {
        assert!(
            self.status == Status::Ready,
            "throttle {} while not ready",
            self.key
        );
        self.fail_cohorts += 1.0 / f64::from(self.window);
        let cohort_limit = self.params.fail_cohort_limit;
        let dead = cohort_limit > 0 && self.fail_cohorts >= f64::from(cohort_limit);
        let mut feedback = 0.0;
        if !dead {
            feedback = self.params.negative_feedback.value(self.window);
            self.failure -= feedback;
            while self.failure - feedback / 2.0 < 0.0 {
                self.window = self.window.saturating_sub(1);
                self.success = 0.0;
                self.failure += 1.0;
            }
            self.window = self.window.max(1);
            self.adaptive_failure();
            self.trace_window(WindowCause::Failure, feedback, out);
            return;
        }
        self.window = 0;
        self.trace_window(WindowCause::Failure, feedback, out);
        self.status = Status::Dead(dsn.clone());
        self.generation += 1;
        let until = now + self.global.minimal_backoff_time;
        self.dead_until = until;
        self.dead_since = now;
        out.push(Effect::Arm {
            owner: Addr::Destination(self.id),
            at: until,
            timer: Timer::Unthrottle(self.generation),
        });
        out.trace(|| TraceEvent::Throttle {
            dest: self.key.clone(),
            until,
            reason: dsn.to_string(),
        });
        self.site_dead(out);
    }

    /// Moves every waiting entry to the `retry` transport (Postfix:
    /// `qmgr_defer_todo`); busy entries finish on their own.
    fn defer_todo(&mut self, now: Instant, dsn: &Dsn, out: &mut Effects) {
        if matches!(self.status, Status::Dead(_)) && self.adaptive.is_some() {
            // The adaptive policy keeps the oldest entry to probe with.
            if let Some(entry) = self.todo.pop_front() {
                let since = self.todo_since.pop_front().unwrap_or(now);
                if let Some(entry) = self.hold_probe(now, entry, out) {
                    self.todo.push_front(entry);
                    self.todo_since.push_front(since);
                }
            }
        }
        if self.todo.is_empty() {
            return;
        }
        out.trace(|| TraceEvent::DeferTodo {
            dest: self.key.clone(),
            entries: self.todo.len(),
            to: dsn.retry_nexthop(),
        });
        self.todo_since.clear();
        for entry in std::mem::take(&mut self.todo) {
            self.remember_deferred(entry.message);
            reroute(&self.key, entry, dsn, self.active, out);
        }
    }

    /// Holds deliveries back if `target` covers this destination, and
    /// hands the waiting entries to the supervisor; deliveries in flight
    /// finish.
    fn admin_suspend(&mut self, target: &Target, out: &mut Effects) {
        if !target.matches(&self.key) {
            return;
        }
        self.status = Status::AdminSuspended;
        self.todo_since.clear();
        let mut entries: Vec<Entry> = std::mem::take(&mut self.todo).into();
        // A dead site's held probe goes with them (adaptive policy).
        entries.extend(self.abandon_probe());
        out.trace(|| TraceEvent::Withdraw {
            dest: self.key.clone(),
            entries: entries.len(),
        });
        if !entries.is_empty() {
            out.send(
                Addr::Supervisor,
                Msg::Withdrawn {
                    dest: self.key.clone(),
                    nexthop: self.nexthop.clone(),
                    entries,
                },
            );
        }
    }

    /// Remembers a message this destination deferred, for `flush`.
    fn remember_deferred(&mut self, message: MessageId) {
        if self.deferred_messages.last() != Some(&message) {
            if self.deferred_messages.len() == DEFERRED_MEMORY {
                self.deferred_messages.remove(0);
            }
            self.deferred_messages.push(message);
        }
    }

    /// Describes this destination for the operator (`ctl destinations`);
    /// `detail` adds every entry's message and recipient count.
    pub fn live(&self, detail: bool) -> LiveDestination {
        let state = match &self.status {
            Status::Ready => LiveDestState::Ready,
            Status::Suspended => LiveDestState::RateDelayed {
                until_ms: self.rate_until.as_millis(),
            },
            Status::Dead(dsn) => LiveDestState::Dead {
                since_ms: self.dead_since.as_millis(),
                until_ms: self.dead_until.as_millis(),
                reason: dsn.to_string(),
            },
            Status::AdminSuspended => LiveDestState::Suspended,
        };
        let mut delays: Vec<u64> = self.delays.iter().copied().collect();
        delays.sort_unstable();
        let pct = |p: usize| {
            (!delays.is_empty()).then(|| {
                let rank = (delays.len() * p).div_ceil(100).max(1);
                delays[rank.min(delays.len()) - 1]
            })
        };
        let entries = if detail {
            self.todo
                .iter()
                .map(|e| (e.message.0, e.recipients.len() as u32))
                .chain(self.busy.iter().map(|b| (b.message.0, b.recipients)))
                .collect()
        } else {
            Vec::new()
        };
        LiveDestination {
            transport: self.key.transport.to_string(),
            queue: self.key.queue.to_string(),
            nexthop: self.nexthop.to_string(),
            state,
            window: if matches!(self.status, Status::Dead(_)) {
                0
            } else {
                self.window
            },
            limit: self.params.dest_concurrency_limit,
            busy: self.busy.len() as u32,
            todo: self.todo.len() as u32,
            todo_recipients: self.todo.iter().map(|e| e.recipients.len() as u64).sum(),
            success: self.success,
            failure: self.failure,
            fail_cohorts: self.fail_cohorts,
            tally: self.tally,
            delay_p50_ms: pct(50),
            delay_p99_ms: pct(99),
            oldest_waiting_ms: self.todo_since.front().map(|t| t.as_millis()),
            entries,
        }
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

    /// Warns when one destination holds a large share of the active queue
    /// (Postfix: `qmgr_queue_warn`), at most once per `qmgr_clog_warn_time`.
    fn clog_warning(&mut self, now: Instant, out: &mut Effects) {
        let g = &self.global;
        let entries = self.todo.len() + self.busy.len();
        if !g.helpful_warnings
            || g.clog_warn_time.is_zero()
            || entries as u64 <= u64::from(g.message_active_limit / 5)
            || now < self.next_clog
        {
            return;
        }
        self.next_clog = now + g.clog_warn_time;
        let t = &self.key.transport;
        // Postfix compares with the messages active now (not the limit):
        // a destination that holds nearly all of them slows no one else.
        let active = self.active.max(1);
        let mut lines = vec![format!(
            "mail for {} is using up {} of {} active queue entries",
            self.nexthop, entries, active
        )];
        if (entries as f64) / f64::from(active) < 0.9 {
            lines.push("this may slow down other mail deliveries".into());
        }
        let limit = self.params.dest_concurrency_limit;
        let share = entries as f64 / f64::from(active);
        if limit > 0 && limit as usize <= self.busy.len() + 1 {
            lines.push(format!(
                "you may need to increase the main.cf {t}_destination_concurrency_limit from {limit}"
            ));
        } else if f64::from(self.window) > f64::from(g.message_active_limit) * share {
            lines.push(format!(
                "you may need to increase the main.cf qmgr_message_active_limit from {}",
                g.message_active_limit
            ));
        } else if self.peers {
            lines.push(format!(
                "you may need a separate master.cf transport for {}",
                self.nexthop
            ));
        } else {
            lines.push(format!(
                "you may need to reduce {t} connect and helo timeouts"
            ));
            lines.push("so that Postfix quickly skips unavailable hosts".into());
            lines.push("you may need to increase the main.cf minimal_backoff_time and maximal_backoff_time".into());
            lines.push("so that Postfix wastes less time on undeliverable mail".into());
            lines.push(format!(
                "you may need to increase the master.cf {t} process limit"
            ));
        }
        lines.push("please avoid flushing the whole queue when you have".into());
        lines.push("lots of deferred mail, that is bad for performance".into());
        lines.push("to turn off these warnings specify: qmgr_clog_warn_time = 0".into());
        for line in lines {
            out.push(Effect::Log(LogLevel::Warning, line));
        }
        out.trace(|| TraceEvent::Clog {
            dest: self.key.clone(),
            entries,
        });
    }

    fn trace_window(&self, cause: WindowCause, feedback: f64, out: &mut Effects) {
        let state = WindowState {
            limit: self.params.dest_concurrency_limit,
            window: self.window,
            success: self.success,
            failure: self.failure,
            fail_cohorts: self.fail_cohorts,
            feedback,
        };
        let pseudo = self.key.transport == RETRY || self.key.transport == ERROR;
        if self.global.feedback_debug && !pseudo {
            out.push(Effect::Log(
                LogLevel::Info,
                format!(
                    "qmgr_queue_{}: queue {}: limit {} window {} success {} failure {} fail_cohorts {}",
                    if cause == WindowCause::Failure { "throttle" } else { "unthrottle" },
                    self.key.queue,
                    state.limit,
                    state.window,
                    fmt_g(state.success),
                    fmt_g(state.failure),
                    fmt_g(state.fail_cohorts)
                ),
            ));
        }
        out.trace(|| TraceEvent::Window {
            dest: self.key.clone(),
            cause,
            state,
        });
    }
}

/// Sends an entry meant for a dead destination (or a dead transport) to the
/// `retry` transport, or, when that is the one that is dead, defers its
/// recipients on the spot.
/// `active` is the active-queue message count to pass on (the latest this
/// destination or transport heard of).
pub(crate) fn reroute(key: &DestKey, entry: Entry, dsn: &Dsn, active: u32, out: &mut Effects) {
    if key.transport == RETRY {
        out.send(
            Addr::Supervisor,
            Msg::DeferNow {
                entry,
                dsn: Box::new(dsn.clone()),
            },
        );
        return;
    }
    let to = dsn.retry_nexthop();
    out.trace(|| TraceEvent::Reroute {
        dest: key.clone(),
        entry: entry.id,
        to: to.clone(),
    });
    out.send(
        Addr::Transport(RETRY.into()),
        Msg::Enqueue {
            queue: Name::from(to.to_lowercase()),
            nexthop: Name::from(to),
            entry,
            active,
        },
    );
}

/// Formats like C's `%g`: six significant digits, no trailing zeros, so the
/// feedback debug lines read as Postfix's do.
pub fn fmt_g(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let magnitude = v.abs().log10().floor() as i32;
    if !(-5..6).contains(&magnitude) {
        return format!("{v:e}");
    }
    let decimals = (5 - magnitude).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
#[path = "destination_tests.rs"]
mod tests;
