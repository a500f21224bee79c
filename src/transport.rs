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

use crate::destination::reroute;
use crate::effect::{Addr, DestKey, Effect, Effects, Msg, Timer};
use crate::entry::{AgentId, Dsn, Entry};
use crate::name::{FastMap, Name};
use crate::params::TransportParams;
use crate::time::{Duration, Instant};
use crate::trace::TraceEvent;

/// Most connection attempts in progress per transport (Postfix:
/// `QMGR_TRANSPORT_MAX_PEND`).
pub const MAX_PENDING: u32 = 2;

/// What a transport knows of one of its destinations.
#[derive(Clone, Debug, Default)]
struct DestView {
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
    /// Its parameters.
    params: Arc<TransportParams>,
    /// How long it stays dead.
    retry_time: Duration,
    /// Why it is dead, when it is.
    dead: Option<Dsn>,
    /// Bumped with each retry timer; stale ones are ignored.
    generation: u64,
    /// An allocation is waiting out the transport rate delay.
    rate_locked: bool,
    /// Connection attempts in progress.
    pending: u32,
    /// Next agent number.
    next_agent: u64,
    /// Destinations by queue name. A hash map for lookups only: anything
    /// that walks destinations orders them by stamp first ([`Transport::ring`]).
    dests: FastMap<Name, DestView>,
    /// Destinations with spare slots, by rotation stamp: the first is the
    /// next to be offered an agent.
    ready: BTreeMap<u64, Name>,
    /// The next rotation stamp (moving a destination to the end of the ring).
    next_stamp: u64,
    /// Sum of the destinations' slots.
    total_slots: u32,
    /// Destinations created so far (each gets a new epoch).
    spawned: u64,
    /// Most destinations kept in memory while dead and empty (the
    /// dead-destination cache), `2 × qmgr_message_recipient_limit`.
    dead_cache_limit: usize,
}

impl Transport {
    /// A live transport with no destinations. `dead_cache_limit` bounds the
    /// destinations kept only to remember that they are dead.
    pub fn new(
        params: Arc<TransportParams>,
        retry_time: Duration,
        dead_cache_limit: usize,
    ) -> Transport {
        Transport {
            name: Name::from(&params.name),
            params,
            retry_time,
            dead: None,
            generation: 0,
            rate_locked: false,
            pending: 0,
            next_agent: 0,
            dests: FastMap::default(),
            ready: BTreeMap::new(),
            next_stamp: 0,
            total_slots: 0,
            spawned: 0,
            dead_cache_limit,
        }
    }

    /// The reason it is dead, if it is.
    pub fn dead(&self) -> Option<&Dsn> {
        self.dead.as_ref()
    }

    /// Destinations it knows, in ring order, with their spare slots.
    pub fn ring(&self) -> Vec<(Name, u32)> {
        let mut ring: Vec<(u64, Name, u32)> = self
            .dests
            .iter()
            .map(|(q, v)| (v.stamp, q.clone(), v.slots))
            .collect();
        ring.sort_unstable();
        ring.into_iter().map(|(_, q, slots)| (q, slots)).collect()
    }

    /// Records a destination's spare slots, keeping the total and the index
    /// of destinations with room in step.
    fn set_slots(&mut self, queue: &Name, slots: u32) {
        let Some(view) = self.dests.get_mut(queue) else {
            return;
        };
        self.total_slots = self.total_slots - view.slots + slots;
        match (view.slots > 0, slots > 0) {
            (false, true) => {
                self.ready.insert(view.stamp, queue.clone());
            }
            (true, false) => {
                self.ready.remove(&view.stamp);
            }
            _ => {}
        }
        view.slots = slots;
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
            } => self.enqueue(queue, nexthop, entry, out),
            Msg::Capacity { queue, slots } => self.set_slots(&queue, slots),
            Msg::Idle {
                queue,
                received,
                dead: true,
            } => {
                // An empty dead destination is the dead-destination cache:
                // it stays to turn new mail away without a connection, unless
                // too many are kept; then it is revived, after which it says
                // Idle again as ready and is forgotten (Postfix: the size
                // check in `qmgr_entry_done`).
                if self.dests.get(&queue).is_some_and(|v| v.sent == received)
                    && self.dests.len() > self.dead_cache_limit
                {
                    out.send(Addr::Destination(self.key(&queue)), Msg::Flush);
                }
            }
            Msg::Idle {
                queue,
                received,
                dead: false,
            } => {
                if self.dests.get(&queue).is_some_and(|v| v.sent == received) {
                    self.set_slots(&queue, 0);
                    self.dests.remove(&queue);
                    let key = self.key(&queue);
                    out.trace(|| TraceEvent::Forget(key.clone()));
                    out.send(Addr::Destination(key), Msg::Stop);
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
            Msg::NoWork { queue, agent } => {
                self.set_slots(&queue, 0);
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
            Msg::Timer(Timer::TransportRetry(generation)) => {
                if generation == self.generation {
                    self.unthrottle(out);
                }
            }
            Msg::Flush => {
                self.unthrottle(out);
                for (queue, _) in self.ring() {
                    out.send(Addr::Destination(self.key(&queue)), Msg::Flush);
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
    fn enqueue(&mut self, queue: Name, nexthop: Name, entry: Entry, out: &mut Effects) {
        let key = self.key(&queue);
        if let Some(dsn) = &self.dead {
            let dsn = dsn.clone();
            reroute(&key, entry, &dsn, out);
            return;
        }
        let spawned = &mut self.spawned;
        let next_stamp = &mut self.next_stamp;
        let view = self.dests.entry(queue).or_insert_with(|| {
            *spawned += 1;
            *next_stamp += 1;
            out.push(Effect::Spawn {
                key: key.clone(),
                nexthop,
                epoch: *spawned,
            });
            DestView {
                stamp: *next_stamp,
                ..DestView::default()
            }
        });
        view.sent += 1;
        out.send(Addr::Destination(key), Msg::Accept { entry });
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
        let Some((stamp, queue)) = self.ready.pop_first() else {
            self.rate_locked = false;
            out.push(Effect::CloseAgent {
                transport: self.name.clone(),
                agent,
            });
            return;
        };
        self.next_stamp += 1;
        let view = self.dests.get_mut(&queue).expect("index and map agree");
        assert!(
            view.stamp == stamp && view.slots > 0,
            "stale ready index for {queue}"
        );
        view.stamp = self.next_stamp;
        view.slots -= 1;
        self.total_slots -= 1;
        if view.slots > 0 {
            self.ready.insert(view.stamp, queue.clone());
        }
        out.send(Addr::Destination(self.key(&queue)), Msg::Take(agent));
    }

    /// Declares the transport dead and moves its waiting mail to `retry`
    /// (Postfix: `qmgr_transport_throttle` + `qmgr_defer_transport`).
    fn throttle(&mut self, now: Instant, dsn: Dsn, out: &mut Effects) {
        if self.dead.is_none() {
            self.generation += 1;
            let until = now + self.retry_time;
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
        for (queue, _) in self.ring() {
            out.send(
                Addr::Destination(self.key(&queue)),
                Msg::DeferTodo(dsn.clone()),
            );
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
