//! Per-transport agent allocation (Postfix: `qmgr_transport.c`, the
//! transport half of `qmgr_deliver.c` and `qmgr_queue_select`).
//!
//! A [`Transport`] owns the round-robin ring of its destinations and decides
//! when to ask for a delivery agent: while it is alive, not rate-locked, has
//! fewer than two connection attempts pending, and its destinations have
//! announced at least `pending + 1` spare slots. When an agent is ready it
//! offers it to the first destination in the ring with spare capacity and
//! moves that destination to the end, so destinations with unequal backlogs
//! take turns instead of the biggest one starving the rest.
//!
//! # States
//! # The ring
//! Postfix keeps every destination in one list and walks it from the front
//! for the first one with room, moving the chosen one to the end. Walking
//! costs as much as there are destinations, which is too slow with
//! thousands of them. Here each destination carries a rotation stamp (its
//! place in that list: moving to the end = a new, larger stamp), and only
//! destinations with spare slots sit in an ordered index by stamp. The
//! smallest stamp in the index is exactly the destination Postfix's walk
//! would find, at a logarithmic cost, and a destination that regains room
//! takes back its old place, as it never left Postfix's list.
//!
//! # The table
//! Each destination has a slot in a table, numbered from 0; its
//! [`DestId`] is this transport's number, that slot and the destination's
//! epoch (this transport's count of destinations created), so a message
//! from a forgotten destination is not taken for one from the new holder
//! of its slot. Messages to and
//! from destinations carry the id, so the transport and the host find a
//! destination by indexing; only an `Enqueue` from the supervisor names a
//! queue, and is looked up by name once. A forgotten destination's slot
//! goes to a free list and the next new destination takes the most
//! recently freed one (deterministic; slots never show in traces).
//!
//! # States
//! Alive or dead (after an agent could not be reached, for
//! `transport_retry_time`); independently rate-locked while an allocation
//! waits out `_transport_rate_delay`.
//!
//! # Invariants
//! - `pending <= 2`: a transport whose agents cannot be reached must not pile
//!   up connection attempts;
//! - `total_slots` is the sum of the destinations' announced slots, less the
//!   offers made since.
//!
//! # Deliberate differences
//! Postfix bounds the dead-destination cache by all queues in memory; here
//! each transport bounds its own, which keeps the same limit per transport
//! without a global count.
//!
//! Postfix 3.7 keeps the rate lock when a ready agent finds no work, so the
//! transport stays locked until something else revives it. Here the lock is
//! released with that agent: otherwise mail arriving later waits for an
//! unrelated delivery or a flush.
//!
//! # Compatibility
//! `transport_retry_time`, `<transport>_transport_rate_delay`.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::adaptive::window::SiteMemory;
use crate::control::Target;
use crate::destination::reroute;
use crate::effect::{Addr, DestId, DestKey, Effect, Effects, Msg, Timer};
use crate::entry::{AgentId, Dsn, Entry};
use crate::live_state::LiveTransport;
use crate::name::{FastMap, Name};
use crate::params::TransportParams;
use crate::time::{Duration, Instant};
use crate::trace::TraceEvent;

/// Most connection attempts in progress per transport (Postfix:
/// `QMGR_TRANSPORT_MAX_PEND`).
pub const MAX_PENDING: u32 = 2;

/// What a transport knows of one of its destinations.
#[derive(Clone, Debug)]
struct DestView {
    /// Its queue name.
    queue: Name,
    /// Its epoch (the third part of its id).
    epoch: u64,
    /// Spare capacity as last announced, less offers made since.
    slots: u32,
    /// Entries sent to it, for the idle handshake.
    sent: u64,
    /// Its place in the round-robin order (smaller = nearer the front).
    stamp: u64,
}

/// One transport (Postfix: `QMGR_TRANSPORT`).
#[derive(Debug)]
pub struct Transport {
    /// The transport name.
    pub name: Name,
    /// Its number, the first half of its destinations' ids.
    number: u32,
    /// Its parameters.
    params: Arc<TransportParams>,
    /// How long it stays dead.
    retry_time: Duration,
    /// Why it is dead, when it is.
    dead: Option<Dsn>,
    /// When a dead transport is retried (meaningless while alive).
    dead_until: Instant,
    /// Bumped with each retry timer; stale ones are ignored.
    generation: u64,
    /// An allocation is waiting out the transport rate delay.
    rate_locked: bool,
    /// Connection attempts in progress.
    pending: u32,
    /// Next agent number.
    next_agent: u64,
    /// Destinations by slot (`None`: free). Anything that walks
    /// destinations orders them by stamp first ([`Transport::ring`]).
    dests: Vec<Option<DestView>>,
    /// Free slots, the most recently freed last.
    free: Vec<u32>,
    /// Slots by queue name, for `Enqueue`. A hash map for lookups only.
    slots: FastMap<Name, u32>,
    /// Destinations with spare slots, by rotation stamp: the first is the
    /// next to be offered an agent.
    ready: BTreeMap<u64, u32>,
    /// The next rotation stamp (moving a destination to the end of the ring).
    next_stamp: u64,
    /// Sum of the destinations' slots.
    total_slots: u32,
    /// Destinations created so far (each gets a new epoch).
    spawned: u64,
    /// Most destinations kept in memory while dead and empty (the
    /// dead-destination cache), `2 × qmgr_message_recipient_limit`.
    dead_cache_limit: usize,
    /// Adaptive policy: what forgotten destinations learned (empty under
    /// oqmgr's, whose destinations send none).
    learned: SiteMemory,
}

impl Transport {
    /// A live transport with no destinations. `number` must differ from
    /// every other transport's of the same host: it tells their
    /// destinations' ids apart. `dead_cache_limit` bounds the destinations
    /// kept only to remember that they are dead.
    pub fn new(
        number: u32,
        params: Arc<TransportParams>,
        retry_time: Duration,
        dead_cache_limit: usize,
    ) -> Transport {
        Transport {
            name: Name::from(&params.name),
            number,
            params,
            retry_time,
            dead: None,
            dead_until: Instant::ZERO,
            generation: 0,
            rate_locked: false,
            pending: 0,
            next_agent: 0,
            dests: Vec::new(),
            free: Vec::new(),
            slots: FastMap::default(),
            ready: BTreeMap::new(),
            next_stamp: 0,
            total_slots: 0,
            spawned: 0,
            dead_cache_limit,
            learned: SiteMemory::default(),
        }
    }

    /// The reason it is dead, if it is.
    pub fn dead(&self) -> Option<&Dsn> {
        self.dead.as_ref()
    }

    /// The number it was created with.
    pub fn number(&self) -> u32 {
        self.number
    }

    /// Destinations it knows, in ring order, with their spare slots.
    pub fn ring(&self) -> Vec<(Name, u32)> {
        self.ring_slots()
            .into_iter()
            .map(|slot| {
                let v = self.view(slot).expect("listed");
                (v.queue.clone(), v.slots)
            })
            .collect()
    }

    /// The slots of the destinations it knows, in ring order.
    fn ring_slots(&self) -> Vec<u32> {
        let mut ring: Vec<(u64, u32)> = self
            .dests
            .iter()
            .zip(0u32..)
            .filter_map(|(v, slot)| v.as_ref().map(|v| (v.stamp, slot)))
            .collect();
        ring.sort_unstable();
        ring.into_iter().map(|(_, slot)| slot).collect()
    }

    /// The view of the destination in `slot`, if there is one.
    fn view(&self, slot: u32) -> Option<&DestView> {
        self.dests.get(slot as usize).and_then(Option::as_ref)
    }

    /// The view of `dest`, if it is one of this transport's live
    /// destinations (not a forgotten one whose slot was reused).
    fn view_mut(&mut self, dest: DestId) -> Option<&mut DestView> {
        if dest.transport != self.number {
            return None;
        }
        self.dests
            .get_mut(dest.slot as usize)
            .and_then(Option::as_mut)
            .filter(|v| v.epoch == dest.epoch)
    }

    /// The id of the destination in `slot`, which must be taken.
    fn id(&self, slot: u32) -> DestId {
        DestId {
            transport: self.number,
            slot,
            epoch: self.view(slot).map_or(0, |v| v.epoch),
        }
    }

    /// Records a destination's spare slots, keeping the total and the index
    /// of destinations with room in step.
    fn set_slots(&mut self, dest: DestId, slots: u32) {
        let Some(view) = self.view_mut(dest) else {
            return;
        };
        let (old, stamp) = (view.slots, view.stamp);
        view.slots = slots;
        self.total_slots = self.total_slots - old + slots;
        match (old > 0, slots > 0) {
            (false, true) => {
                self.ready.insert(stamp, dest.slot);
            }
            (true, false) => {
                self.ready.remove(&stamp);
            }
            _ => {}
        }
    }

    /// Connection attempts in progress and whether the rate lock is held.
    pub fn allocation(&self) -> (u32, bool) {
        (self.pending, self.rate_locked)
    }

    /// Handles one message.
    pub fn handle(&mut self, now: Instant, msg: Msg, out: &mut Effects) {
        match msg {
            Msg::Enqueue {
                queue,
                nexthop,
                entry,
                active,
            } => self.enqueue(queue, nexthop, entry, active, out),
            Msg::Capacity { dest, slots } => self.set_slots(dest, slots),
            Msg::Learned { dest, learned } => {
                if let Some(view) = self.view_mut(dest) {
                    let queue = view.queue.clone();
                    self.learned.store(&queue, learned);
                }
            }
            Msg::Idle {
                dest,
                received,
                dead: true,
            } => {
                // An empty dead destination is the dead-destination cache:
                // it stays to turn new mail away without a connection, unless
                // too many are kept; then it is revived, after which it says
                // Idle again as ready and is forgotten (Postfix: the size
                // check in `qmgr_entry_done`).
                if self.view_mut(dest).is_some_and(|v| v.sent == received)
                    && self.slots.len() > self.dead_cache_limit
                {
                    out.send(Addr::Destination(dest), Msg::Flush);
                }
            }
            Msg::Idle {
                dest,
                received,
                dead: false,
            } => {
                if self.view_mut(dest).is_some_and(|v| v.sent == received) {
                    self.set_slots(dest, 0);
                    let view = self.dests[dest.slot as usize].take().expect("found above");
                    self.slots.remove(&view.queue);
                    self.free.push(dest.slot);
                    out.trace(|| TraceEvent::Forget(self.key(&view.queue)));
                    out.send(Addr::Destination(dest), Msg::Stop);
                }
            }
            Msg::AgentReady(agent) => {
                assert!(
                    self.pending > 0,
                    "transport {}: agent ready with none pending",
                    self.name
                );
                self.pending -= 1;
                let delay = self.params.transport_rate_delay;
                if delay.is_zero() {
                    self.select(agent, out);
                } else {
                    let until = now + delay;
                    out.trace(|| TraceEvent::RateDelay {
                        transport: self.name.to_string(),
                        agent,
                        until,
                    });
                    out.push(Effect::Arm {
                        owner: Addr::Transport(self.name.clone()),
                        at: until,
                        timer: Timer::RateDelay(agent),
                    });
                }
            }
            Msg::Timer(Timer::RateDelay(agent)) => self.select(agent, out),
            Msg::NoWork { dest, agent } => {
                self.set_slots(dest, 0);
                self.select(agent, out);
            }
            Msg::AgentFailed { agent: _, dsn } => {
                assert!(
                    self.pending > 0,
                    "transport {}: agent failed with none pending",
                    self.name
                );
                self.pending -= 1;
                self.throttle(now, dsn, out);
            }
            Msg::Revive => self.unthrottle(out),
            Msg::Refused(dsn) => self.throttle(now, dsn, out),
            Msg::Timer(Timer::TransportRetry(generation)) => {
                if generation == self.generation {
                    self.unthrottle(out);
                }
            }
            Msg::Flush => {
                self.unthrottle(out);
                for slot in self.ring_slots() {
                    out.send(Addr::Destination(self.id(slot)), Msg::Flush);
                }
            }
            Msg::AdminSuspend(target) => {
                self.to_covered(&target, || Msg::AdminSuspend(target.clone()), out)
            }
            Msg::AdminResume(target) => {
                self.to_covered(&target, || Msg::AdminResume(target.clone()), out)
            }
            Msg::FlushOne(queue) => {
                self.unthrottle(out);
                match self.slots.get(&queue) {
                    Some(&slot) => {
                        out.send(Addr::Destination(self.id(slot)), Msg::FlushOne(queue));
                    }
                    None => out.send(
                        Addr::Supervisor,
                        Msg::FlushReport {
                            dest: self.key(&queue),
                            found: false,
                            messages: Vec::new(),
                        },
                    ),
                }
            }
            other => panic!("transport {} got unexpected {other:?}", self.name),
        }
        self.alloc(out);
    }

    fn key(&self, queue: &Name) -> DestKey {
        DestKey {
            transport: self.name.clone(),
            queue: queue.clone(),
        }
    }

    /// Routes an entry to its destination, creating it on first use (new
    /// destinations join the end of the ring), or to `retry` while dead.
    fn enqueue(
        &mut self,
        queue: Name,
        nexthop: Name,
        entry: Entry,
        active: u32,
        out: &mut Effects,
    ) {
        if let Some(dsn) = &self.dead {
            let dsn = dsn.clone();
            reroute(&self.key(&queue), entry, &dsn, active, out);
            return;
        }
        let slot = match self.slots.get(&queue) {
            Some(&slot) => slot,
            None => self.spawn(queue, nexthop, out),
        };
        let id = self.id(slot);
        if let Some(view) = self.view_mut(id) {
            view.sent += 1;
        }
        let peers = self.slots.len() > 1;
        out.send(
            Addr::Destination(id),
            Msg::Accept {
                entry,
                active,
                peers,
            },
        );
    }

    /// Creates the destination `queue` at the end of the ring, in the most
    /// recently freed slot or a new one; returns the slot.
    fn spawn(&mut self, queue: Name, nexthop: Name, out: &mut Effects) -> u32 {
        self.spawned += 1;
        self.next_stamp += 1;
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.dests.push(None);
                u32::try_from(self.dests.len() - 1).expect("fewer than 2^32 destinations")
            }
        };
        self.slots.insert(queue.clone(), slot);
        self.dests[slot as usize] = Some(DestView {
            queue,
            epoch: self.spawned,
            slots: 0,
            sent: 0,
            stamp: self.next_stamp,
        });
        let queue = &self.view(slot).expect("just made").queue;
        out.push(Effect::Spawn {
            id: self.id(slot),
            key: self.key(queue),
            nexthop,
            epoch: self.spawned,
        });
        if let Some(learned) = self.learned.recall(queue) {
            out.send(
                Addr::Destination(self.id(slot)),
                Msg::Learned {
                    dest: self.id(slot),
                    learned,
                },
            );
        }
        slot
    }

    /// Asks for agents while destinations have room for them (Postfix:
    /// `qmgr_transport_select` + `qmgr_transport_alloc`).
    fn alloc(&mut self, out: &mut Effects) {
        while self.dead.is_none()
            && !self.rate_locked
            && self.pending < MAX_PENDING
            && self.total_slots > self.pending
        {
            self.pending += 1;
            self.next_agent += 1;
            let agent = AgentId(self.next_agent);
            if !self.params.transport_rate_delay.is_zero() {
                self.rate_locked = true;
            }
            out.trace(|| TraceEvent::Alloc {
                transport: self.name.to_string(),
                agent,
            });
            out.push(Effect::AllocAgent {
                transport: self.name.clone(),
                agent,
            });
        }
    }

    /// Offers a ready agent to the first destination with spare capacity
    /// and rotates it to the end of the ring.
    fn select(&mut self, agent: AgentId, out: &mut Effects) {
        let Some((stamp, slot)) = self.ready.pop_first() else {
            self.rate_locked = false;
            out.push(Effect::CloseAgent {
                transport: self.name.clone(),
                agent,
            });
            return;
        };
        self.next_stamp += 1;
        let id = self.id(slot);
        let next_stamp = self.next_stamp;
        let view = self.view_mut(id).expect("index and table agree");
        assert!(
            view.stamp == stamp && view.slots > 0,
            "stale ready index for {}",
            view.queue
        );
        view.stamp = next_stamp;
        view.slots -= 1;
        let more = view.slots > 0;
        self.total_slots -= 1;
        if more {
            self.ready.insert(next_stamp, slot);
        }
        out.send(Addr::Destination(id), Msg::Take(agent));
    }

    /// Declares the transport dead and moves its waiting mail to `retry`
    /// (Postfix: `qmgr_transport_throttle` + `qmgr_defer_transport`).
    fn throttle(&mut self, now: Instant, dsn: Dsn, out: &mut Effects) {
        if self.dead.is_none() {
            self.generation += 1;
            let until = now + self.retry_time;
            self.dead_until = until;
            out.trace(|| TraceEvent::TransportThrottle {
                transport: self.name.to_string(),
                until,
                reason: dsn.to_string(),
            });
            out.push(Effect::Arm {
                owner: Addr::Transport(self.name.clone()),
                at: until,
                timer: Timer::TransportRetry(self.generation),
            });
            self.dead = Some(dsn.clone());
        }
        self.rate_locked = false;
        for slot in self.ring_slots() {
            out.send(
                Addr::Destination(self.id(slot)),
                Msg::DeferTodo(dsn.clone()),
            );
        }
    }

    /// Sends `msg()` to each of its destinations `target` covers.
    fn to_covered(&self, target: &Target, msg: impl Fn() -> Msg, out: &mut Effects) {
        if target.transport().is_some_and(|t| t != self.name.as_str()) {
            return;
        }
        for slot in self.ring_slots() {
            let covered = self
                .view(slot)
                .is_some_and(|v| target.matches(&self.key(&v.queue)));
            if covered {
                out.send(Addr::Destination(self.id(slot)), msg());
            }
        }
    }

    /// Describes this transport for the operator (`oqmgr ctl status`).
    pub fn live(&self) -> LiveTransport {
        LiveTransport {
            name: self.name.to_string(),
            dead: self.dead.as_ref().map(Dsn::to_string),
            dead_until_ms: self.dead.as_ref().map(|_| self.dead_until.as_millis()),
            pending: self.pending,
            rate_locked: self.rate_locked,
            destinations: self.slots.len() as u32,
        }
    }

    /// Clears the dead state and the rate lock (Postfix:
    /// `qmgr_transport_unthrottle`).
    fn unthrottle(&mut self, out: &mut Effects) {
        self.rate_locked = false;
        if self.dead.take().is_some() {
            out.trace(|| TraceEvent::TransportUnthrottle(self.name.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::Params;

    fn entry(n: u64) -> Entry {
        Entry::numbered(n, "x.example")
    }

    /// The id in the `Spawn` among `out`'s effects.
    fn spawned(out: &Effects) -> DestId {
        out.list
            .iter()
            .find_map(|e| match e {
                Effect::Spawn { id, .. } => Some(*id),
                _ => None,
            })
            .expect("a destination was created")
    }

    #[test]
    fn a_reused_slot_ignores_its_previous_holder() {
        let (params, _) = Params::from_pairs(&[]).expect("defaults resolve");
        let (tp, _) = params.transport("smtp");
        let mut t = Transport::new(7, Arc::new(tp), Duration::from_secs(60), 100);
        let now = Instant::ZERO;
        let enqueue = |t: &mut Transport, queue: &str, n: u64| {
            let mut out = Effects::new();
            let msg = Msg::Enqueue {
                queue: queue.into(),
                nexthop: queue.into(),
                entry: entry(n),
                active: 1,
            };
            t.handle(now, msg, &mut out);
            out
        };
        let old = spawned(&enqueue(&mut t, "a.example", 1));
        assert_eq!((old.transport, old.slot), (7, 0));
        // It is forgotten once idle with everything it was sent...
        let mut out = Effects::new();
        let idle = Msg::Idle {
            dest: old,
            received: 1,
            dead: false,
        };
        t.handle(now, idle, &mut out);
        assert!(out
            .list
            .contains(&Effect::Send(Addr::Destination(old), Msg::Stop)));
        // ...and the next destination takes its slot, with a new epoch.
        let new = spawned(&enqueue(&mut t, "b.example", 2));
        assert_eq!(new.slot, old.slot);
        assert_ne!(new, old);
        let mut out = Effects::new();
        let capacity = |dest| Msg::Capacity { dest, slots: 1 };
        // The old holder's late answer changes nothing...
        t.handle(now, capacity(old), &mut out);
        assert_eq!(t.ring(), vec![("b.example".into(), 0)]);
        assert!(out.list.is_empty(), "{:?}", out.list);
        // ...while the new holder's opens the ring and asks for an agent.
        t.handle(now, capacity(new), &mut out);
        assert_eq!(t.ring(), vec![("b.example".into(), 1)]);
        assert!(out
            .list
            .iter()
            .any(|e| matches!(e, Effect::AllocAgent { .. })));
    }

    #[test]
    fn a_refused_request_kills_the_transport_and_defers_its_mail() {
        let (params, _) = Params::from_pairs(&[]).expect("defaults resolve");
        let (tp, _) = params.transport("smtp");
        let mut t = Transport::new(7, Arc::new(tp), Duration::from_secs(60), 100);
        let now = Instant::ZERO;
        let mut out = Effects::new();
        let msg = Msg::Enqueue {
            queue: "a.example".into(),
            nexthop: "a.example".into(),
            entry: entry(1),
            active: 1,
        };
        t.handle(now, msg, &mut out);
        let dest = spawned(&out);
        out.list.clear();
        let dsn = Dsn::new("4.3.0", "mail transport unavailable");
        t.handle(now, Msg::Refused(dsn.clone()), &mut out);
        assert_eq!(t.dead(), Some(&dsn));
        assert!(out.list.contains(&Effect::Send(
            Addr::Destination(dest),
            Msg::DeferTodo(dsn.clone())
        )));
        assert!(out.list.iter().any(|e| matches!(
            e,
            Effect::Arm {
                timer: Timer::TransportRetry(_),
                ..
            }
        )));
    }
}
