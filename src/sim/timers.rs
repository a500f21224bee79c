//! The simulator's timer queue: future events ordered by (virtual time,
//! arming order), the deterministic equivalent of the daemon's timers.
//!
//! Almost every event is armed through `Simulation::schedule`, whose
//! arming numbers only grow, so the events of one instant are armed in the
//! order they must fire: a FIFO per instant (a calendar) keeps them in
//! order at constant cost, where a binary heap of a hundred thousand
//! pending reports paid a logarithmic sift with a cache miss per level on
//! every push and pop. Instants are few at a time (deliveries end at a
//! handful of latencies), so the ordered map of instants stays small.
//!
//! Events stay in slots while the calendar holds only (arming number,
//! slot) pairs: a burst of a hundred thousand reports then costs 16 bytes
//! each in a FIFO that doubles as it grows, not a whole message each.
//!
//! Arrivals are the exception: each group's next message carries the
//! arming number it was given at the start, smaller than those armed
//! since, so arrivals wait in a small heap of their own (one per group)
//! and the two queues are merged by (time, arming order) when popping.
//!
//! # Invariants
//! - every queued pair names an occupied slot; a popped slot joins the
//!   free list, which is threaded through the free slots themselves (a
//!   separate list of free numbers grew to the largest burst, each growth
//!   a copy of the whole list);
//! - within one instant's FIFO, arming numbers increase front to back;
//! - no FIFO in the calendar is empty;
//! - arming numbers are unique, so the order is total and runs repeat.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};

use super::Event;
use crate::time::Instant;

/// A queued arrival: firing time, arming order, group and message index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Arrival {
    /// When it fires.
    at: Instant,
    /// Arming order.
    seq: u64,
    /// The arrival group.
    group: usize,
    /// The message within the group.
    index: u32,
}

/// Future events, ordered by (time, arming order).
#[derive(Debug, Default)]
pub(super) struct Timers {
    /// Events other than arrivals, by instant, each instant's in arming
    /// order: (arming number, slot).
    calendar: BTreeMap<Instant, VecDeque<(u64, u32)>>,
    /// Emptied FIFOs, reused so that a new instant does not allocate.
    spare: Vec<VecDeque<(u64, u32)>>,
    /// The events, and the free list through the free slots.
    slots: Vec<Slot>,
    /// The first free slot, reused before the vector grows.
    free: Option<u32>,
    /// Arrivals, by (time, arming order).
    arrivals: BinaryHeap<Reverse<Arrival>>,
    /// The largest arming number in the calendar, to check the FIFO order.
    last_seq: u64,
}

/// One slot of the event store.
#[derive(Debug)]
enum Slot {
    /// A queued event.
    Full(Event),
    /// A free slot, and the next free one.
    Free(Option<u32>),
}

impl Timers {
    /// Queues `event` for `at`. Except for arrivals, `seq` must exceed
    /// every arming number queued before (the caller's counter only grows).
    pub(super) fn push(&mut self, at: Instant, seq: u64, event: Event) {
        if let Event::Arrive { group, index } = event {
            self.arrivals.push(Reverse(Arrival {
                at,
                seq,
                group,
                index,
            }));
            return;
        }
        assert!(seq > self.last_seq, "timers armed out of order");
        self.last_seq = seq;
        let slot = match self.free {
            Some(slot) => {
                let Slot::Free(next) = self.slots[slot as usize] else {
                    unreachable!("the free list holds free slots");
                };
                self.free = next;
                self.slots[slot as usize] = Slot::Full(event);
                slot
            }
            None => {
                self.slots.push(Slot::Full(event));
                u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 timers")
            }
        };
        self.calendar
            .entry(at)
            .or_insert_with(|| self.spare.pop().unwrap_or_default())
            .push_back((seq, slot));
    }

    /// Whether the next event is the earliest arrival (else the calendar's
    /// first), with its time; `None` when nothing is queued.
    fn next(&self) -> Option<(Instant, bool)> {
        let arrival = self.arrivals.peek().map(|Reverse(a)| (a.at, a.seq));
        let other = self
            .calendar
            .first_key_value()
            .map(|(&at, fifo)| (at, fifo.front().expect("no empty FIFO").0));
        match (arrival, other) {
            (Some(a), Some(o)) => Some(if a < o { (a.0, true) } else { (o.0, false) }),
            (Some(a), None) => Some((a.0, true)),
            (None, Some(o)) => Some((o.0, false)),
            (None, None) => None,
        }
    }

    /// The next event's time, and whether it is an arrival.
    pub(super) fn peek(&self) -> Option<(Instant, bool)> {
        self.next()
    }

    pub(super) fn pop(&mut self) -> Option<(Instant, Event)> {
        let (at, arrival) = self.next()?;
        if arrival {
            let Reverse(a) = self.arrivals.pop().expect("peeked above");
            return Some((
                at,
                Event::Arrive {
                    group: a.group,
                    index: a.index,
                },
            ));
        }
        let mut entry = self.calendar.first_entry().expect("peeked above");
        let (_, slot) = entry.get_mut().pop_front().expect("no empty FIFO");
        if entry.get().is_empty() {
            self.spare.push(entry.remove());
        }
        let Slot::Full(event) =
            std::mem::replace(&mut self.slots[slot as usize], Slot::Free(self.free))
        else {
            unreachable!("a queued timer has its event");
        };
        self.free = Some(slot);
        Some((at, event))
    }
}
