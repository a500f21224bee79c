//! The event loop (Postfix: `events.c`, the loop oqmgr's one thread
//! runs): the one order in which every host delivers the core's messages
//! and fires its timers.
//!
//! Both hosts, the simulator ([`crate::sim`]) and the daemon's actors,
//! carry out effects through an [`EventLoop`], so that on the same inputs
//! they take the same decisions in the same order, agent numbers and
//! same-instant completions included:
//! - `Send` goes onto one FIFO bus. Messages are delivered one at a time,
//!   in the global order they were sent, and the effects of each step are
//!   carried out before the next message is taken;
//! - `Arm`, and whatever a host schedules itself (an agent's answer, an
//!   event of a simulated server, an input from outside), waits in the
//!   timer queue, ordered by time and then by arming number;
//! - a timer is taken only when the bus is empty, one at a time, and a
//!   message it carries goes through the bus like any other;
//! - `FlushAll` becomes a `Flush` for every transport created so far, in
//!   name order.
//!
//! Everything else an entity asks for (creating a destination, queue
//! files, delivery agents, logs and traces) is the host's:
//! [`EventLoop::route`] hands it back, in the order it was produced. A
//! host that answers a read of the queue itself (a scan's next file, an
//! admitted message) queues the answer with [`EventLoop::answer`]: due
//! now, behind every event already due. So, as in oqmgr's loop, which
//! handles every ready event before it reads the next message, an agent's
//! answer or a trigger that is ready is taken between two reads of the
//! queue, and a scan of ten thousand deferred files does not hold up the
//! deliveries under way (on the daemon, reads take real time).
//!
//! A host drives the loop like this (the simulator's `Simulation::run`
//! and the actors' `host::run` are this loop, the second waiting on the
//! tokio clock and on outside input where the first jumps):
//! ```text
//! loop {
//!     while let Some((to, msg)) = lp.next_message() { step the entity; route its effects }
//!     if the world is finished { stop }
//!     let at = lp.next_timer()?;           // wait until then
//!     if let Some(event) = lp.fire(at) { the world's own event }
//! }
//! ```
//!
//! # Invariants
//! - arming numbers are unique and grow, so the order of events is total
//!   and the same on every run;
//! - the loop's time never goes backwards;
//! - a transport is named in `FlushAll` from the moment its host created
//!   it ([`EventLoop::transport_created`]), in both hosts the delivery of
//!   its first message.

mod timers;

use std::collections::{BTreeSet, VecDeque};

use crate::effect::{Addr, Effect, Msg};
use crate::name::Name;
use crate::time::Instant;
use timers::Timers;

/// Something waiting in the timer queue.
#[derive(Debug)]
pub enum Event<W> {
    /// A message for an entity: a timer it armed, an agent's answer, an
    /// input from outside. It goes onto the bus when its time comes.
    Send(Addr, Msg),
    /// An event of the host's own world (a simulated server's, say),
    /// handed back to the host by [`EventLoop::fire`].
    World(W),
}

/// The bus, the timer queue and the loop's time.
#[derive(Debug)]
pub struct EventLoop<W> {
    /// The time of the step under way.
    now: Instant,
    /// Messages for entities, in send order.
    bus: VecDeque<(Addr, Msg)>,
    /// Future events.
    timers: Timers<Event<W>>,
    /// The last arming number handed out.
    seq: u64,
    /// Messages delivered so far.
    steps: u64,
    /// Every transport created so far, for `FlushAll`.
    transports: BTreeSet<Name>,
}

impl<W> EventLoop<W> {
    /// An empty loop whose time is `now`.
    pub fn new(now: Instant) -> EventLoop<W> {
        EventLoop {
            now,
            bus: VecDeque::new(),
            timers: Timers::default(),
            seq: 0,
            steps: 0,
            transports: BTreeSet::new(),
        }
    }

    /// The time of the step under way.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Moves the loop's time on to `now` (a host whose clock runs on while
    /// it works); an earlier time leaves it as it is.
    pub fn advance(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    /// Messages delivered so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Puts `msg` for `to` on the bus, after every message sent before it.
    pub fn send(&mut self, to: Addr, msg: Msg) {
        self.bus.push_back((to, msg));
    }

    /// Queues a host's answer to a read of the queue (a scan's next file,
    /// an admitted message) for `to` as an event due now, after every event
    /// already due: as in oqmgr's loop, which handles whatever is ready
    /// (an agent's answer, a trigger) between two reads of the queue, so a
    /// long scan never holds up deliveries.
    pub fn answer(&mut self, to: Addr, msg: Msg) {
        let now = self.now;
        self.at(now, Event::Send(to, msg));
    }

    /// Queues `event` for `at`, after every event armed before it for the
    /// same instant.
    pub fn at(&mut self, at: Instant, event: Event<W>) {
        self.seq += 1;
        self.timers.push(at, self.seq, event);
    }

    /// Reserves `n` arming numbers and returns the first, for events armed
    /// later with [`EventLoop::at_numbered`] that must fire as if armed now.
    pub fn reserve(&mut self, n: u64) -> u64 {
        let first = self.seq + 1;
        self.seq += n;
        first
    }

    /// Queues the world event `event` for `at` under an arming number
    /// [`EventLoop::reserve`] handed out.
    pub fn at_numbered(&mut self, at: Instant, seq: u64, event: W) {
        self.timers.push_numbered(at, seq, Event::World(event));
    }

    /// Takes the next event if it is a numbered one due now: a world that
    /// wants every event of a kind of one instant at once (files arriving
    /// together) takes the others this way.
    pub fn next_numbered_now(&mut self) -> Option<W> {
        if self.timers.peek() != Some((self.now, true)) {
            return None;
        }
        match self.timers.pop() {
            Some((_, Event::World(event))) => Some(event),
            _ => unreachable!("numbered events are world events"),
        }
    }

    /// Records that the host created the transport `name` (delivering its
    /// first message), so that a flush reaches it.
    pub fn transport_created(&mut self, name: Name) {
        self.transports.insert(name);
    }

    /// Carries out the effects the loop owns (`Send`, `Arm`, `FlushAll`)
    /// and returns the others, which are the host's.
    pub fn route(&mut self, effect: Effect) -> Option<Effect> {
        match effect {
            Effect::Send(to, msg) => self.send(to, msg),
            Effect::Arm { owner, at, timer } => self.at(at, Event::Send(owner, Msg::Timer(timer))),
            Effect::FlushAll => {
                for name in &self.transports {
                    self.bus
                        .push_back((Addr::Transport(name.clone()), Msg::Flush));
                }
            }
            other => return Some(other),
        }
        None
    }

    /// The next message on the bus, counted as a step.
    pub fn next_message(&mut self) -> Option<(Addr, Msg)> {
        let next = self.bus.pop_front()?;
        self.steps += 1;
        Some(next)
    }

    /// When the next timer is due; `None` when none is queued.
    pub fn next_timer(&self) -> Option<Instant> {
        self.timers.peek().map(|(at, _)| at)
    }

    /// Takes the next timer, which must be due at `now`, and moves the
    /// loop's time to `now`: a message goes onto the (empty) bus, a world
    /// event is returned.
    ///
    /// # Panics
    /// When the bus is not empty, or the timer is not due.
    pub fn fire(&mut self, now: Instant) -> Option<W> {
        assert!(
            self.bus.is_empty(),
            "a timer fired with messages on the bus"
        );
        let (at, event) = self.timers.pop()?;
        assert!(at <= now, "a timer fired before its time");
        self.advance(now);
        match event {
            Event::Send(to, msg) => {
                self.send(to, msg);
                None
            }
            Event::World(event) => Some(event),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::effect::Timer;

    #[test]
    fn the_bus_comes_first_then_timers_by_time_and_arming_order() {
        let mut lp: EventLoop<&str> = EventLoop::new(Instant::ZERO);
        let t = Instant::from_secs(5);
        lp.at(t, Event::World("armed first"));
        let reserved = lp.reserve(1);
        lp.at(t, Event::World("armed third"));
        lp.at(
            Instant::from_secs(1),
            Event::Send(Addr::Supervisor, Msg::Flush),
        );
        lp.at_numbered(t, reserved, "reserved second");
        lp.send(Addr::Supervisor, Msg::Timer(Timer::QueueRun));
        assert_eq!(lp.next_timer(), Some(Instant::from_secs(1)));
        assert!(matches!(lp.next_message(), Some((_, Msg::Timer(_)))));
        assert_eq!(lp.next_message(), None);
        // A timer's message goes through the bus.
        assert_eq!(lp.fire(Instant::from_secs(1)), None);
        assert!(matches!(lp.next_message(), Some((_, Msg::Flush))));
        assert_eq!(lp.steps(), 2);
        // Same instant: arming order, a reserved number where it was
        // reserved.
        assert_eq!(lp.fire(t), Some("armed first"));
        assert_eq!(lp.next_numbered_now(), Some("reserved second"));
        assert_eq!(lp.next_numbered_now(), None);
        assert_eq!(lp.fire(t), Some("armed third"));
        assert_eq!(lp.now(), t);
    }

    #[test]
    fn a_flush_reaches_every_created_transport_in_name_order() {
        let mut lp: EventLoop<()> = EventLoop::new(Instant::ZERO);
        lp.transport_created("smtp".into());
        lp.transport_created("local".into());
        assert_eq!(lp.route(Effect::FlushAll), None);
        let to: Vec<Addr> = std::iter::from_fn(|| lp.next_message().map(|(to, _)| to)).collect();
        assert_eq!(
            to,
            [
                Addr::Transport("local".into()),
                Addr::Transport("smtp".into())
            ]
        );
    }
}
