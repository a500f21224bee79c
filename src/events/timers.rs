//! The event loop's timer queue: future events ordered by (time, arming
//! number), the deterministic equivalent of Postfix's `event_request_timer`
//! list.
//!
//! Almost every event is armed through `EventLoop::at`, whose arming
//! numbers only grow, so the events of one instant are armed in the
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
//! Numbered events are the exception: they carry an arming number
//! reserved earlier (a simulation numbers every arrival at the start but
//! queues only each group's next one), smaller than those armed since, so
//! they wait in a small heap of their own and the two queues are merged by
//! (time, arming number) when popping.
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

use crate::time::Instant;

/// Future events, ordered by (time, arming number).
#[derive(Debug)]
pub(super) struct Timers<E> {
    /// Events armed in order, by instant, each instant's in arming order:
    /// (arming number, slot).
    calendar: BTreeMap<Instant, VecDeque<(u64, u32)>>,
    /// Emptied FIFOs, reused so that a new instant does not allocate.
    spare: Vec<VecDeque<(u64, u32)>>,
    /// The events, and the free list through the free slots.
    slots: Vec<Slot<E>>,
    /// The first free slot, reused before the vector grows.
    free: Option<u32>,
    /// Numbered events, by (time, arming number, slot).
    numbered: BinaryHeap<Reverse<(Instant, u64, u32)>>,
    /// The largest arming number in the calendar, to check the FIFO order.
    last_seq: u64,
}

impl<E> Default for Timers<E> {
    fn default() -> Timers<E> {
        Timers {
            calendar: BTreeMap::new(),
            spare: Vec::new(),
            slots: Vec::new(),
            free: None,
            numbered: BinaryHeap::new(),
            last_seq: 0,
        }
    }
}

/// One slot of the event store.
#[derive(Debug)]
enum Slot<E> {
    /// A queued event.
    Full(E),
    /// A free slot, and the next free one.
    Free(Option<u32>),
}

impl<E> Timers<E> {
    /// Stores `event` in a free slot.
    fn store(&mut self, event: E) -> u32 {
        match self.free {
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
        }
    }

    /// Takes the event out of `slot`, which joins the free list.
    fn take(&mut self, slot: u32) -> E {
        let Slot::Full(event) =
            std::mem::replace(&mut self.slots[slot as usize], Slot::Free(self.free))
        else {
            unreachable!("a queued timer has its event");
        };
        self.free = Some(slot);
        event
    }

    /// Queues `event` for `at`; `seq` must exceed every arming number
    /// queued this way before (the caller's counter only grows).
    pub(super) fn push(&mut self, at: Instant, seq: u64, event: E) {
        assert!(seq > self.last_seq, "timers armed out of order");
        self.last_seq = seq;
        let slot = self.store(event);
        self.calendar
            .entry(at)
            .or_insert_with(|| self.spare.pop().unwrap_or_default())
            .push_back((seq, slot));
    }

    /// Queues `event` for `at` under an arming number reserved earlier.
    pub(super) fn push_numbered(&mut self, at: Instant, seq: u64, event: E) {
        let slot = self.store(event);
        self.numbered.push(Reverse((at, seq, slot)));
    }

    /// The next event's time, and whether it is a numbered one; `None`
    /// when nothing is queued.
    pub(super) fn peek(&self) -> Option<(Instant, bool)> {
        let numbered = self
            .numbered
            .peek()
            .map(|Reverse((at, seq, _))| (*at, *seq));
        let other = self
            .calendar
            .first_key_value()
            .map(|(&at, fifo)| (at, fifo.front().expect("no empty FIFO").0));
        match (numbered, other) {
            (Some(n), Some(o)) => Some(if n < o { (n.0, true) } else { (o.0, false) }),
            (Some(n), None) => Some((n.0, true)),
            (None, Some(o)) => Some((o.0, false)),
            (None, None) => None,
        }
    }

    /// Takes the next event, with its time.
    pub(super) fn pop(&mut self) -> Option<(Instant, E)> {
        let (at, numbered) = self.peek()?;
        if numbered {
            let Reverse((_, _, slot)) = self.numbered.pop().expect("peeked above");
            return Some((at, self.take(slot)));
        }
        let mut entry = self.calendar.first_entry().expect("peeked above");
        let (_, slot) = entry.get_mut().pop_front().expect("no empty FIFO");
        if entry.get().is_empty() {
            self.spare.push(entry.remove());
        }
        Some((at, self.take(slot)))
    }
}
