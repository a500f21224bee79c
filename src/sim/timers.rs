//! The simulator's timer heap: future events ordered by (virtual time,
//! arming order), the deterministic equivalent of the daemon's timers.
//!
//! Events stay in slots while only small (time, order, slot) triples are
//! sifted, so a heap of report and agent events costs a few words per
//! entry to reorder, whatever the size of the message it carries.
//!
//! # Invariants
//! - every queued triple names an occupied slot; a popped slot is freed;
//! - arming numbers are unique, so the order is total and runs repeat.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::Event;
use crate::time::Instant;

/// A future event's place in the heap: firing time, arming order (which
/// breaks ties deterministically), and its slot in `Timers::slots`. The
/// event itself stays put in its slot, so sifting moves 24 bytes, not a
/// whole message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Timed {
    /// When it fires.
    at: Instant,
    /// Arming order.
    seq: u64,
    /// Where the event is.
    slot: u32,
}

/// Future events, ordered by (time, arming order).
#[derive(Debug, Default)]
pub(super) struct Timers {
    /// The order.
    heap: BinaryHeap<Reverse<Timed>>,
    /// The events; `None` in free slots.
    slots: Vec<Option<Event>>,
    /// Free slots, reused before the vector grows.
    free: Vec<u32>,
}

impl Timers {
    pub(super) fn push(&mut self, at: Instant, seq: u64, event: Event) {
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(event);
                slot
            }
            None => {
                self.slots.push(Some(event));
                u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 timers")
            }
        };
        self.heap.push(Reverse(Timed { at, seq, slot }));
    }

    /// The next event's time, and whether it is an arrival.
    pub(super) fn peek(&self) -> Option<(Instant, bool)> {
        self.heap.peek().map(|Reverse(t)| {
            let arrival = matches!(self.slots[t.slot as usize], Some(Event::Arrive { .. }));
            (t.at, arrival)
        })
    }

    pub(super) fn pop(&mut self) -> Option<(Instant, Event)> {
        let Reverse(t) = self.heap.pop()?;
        let event = self.slots[t.slot as usize]
            .take()
            .expect("a queued timer has its event");
        self.free.push(t.slot);
        Some((t.at, event))
    }
}
