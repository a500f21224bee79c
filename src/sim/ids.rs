//! The simulator's map from core message numbers to queue IDs (the
//! daemon keeps the same map in its supervisor actor).
//!
//! The core numbers admitted messages 1, 2, 3... and a message leaves the
//! active queue soon after it entered, so the live numbers form a window
//! that slides forward. A double-ended queue indexed by `number - base`
//! finds a queue ID with one subtraction, where an ordered map of a
//! million messages paid a search of several nodes, each a cache miss,
//! three times per delivery. Finished numbers at the front are dropped as
//! the window slides.
//!
//! # Invariants
//! - `slots[i]` is the queue ID of message `base + i`, or `None` once it
//!   completed (or if that number was never admitted);
//! - the front slot, if any, is occupied: the window starts at the oldest
//!   live message.
//!
//! # Bounds
//! Memory is one 24-byte slot per number between the oldest live message
//! and the newest: a message held active for long while many others pass
//! keeps their (empty) slots until it completes.

use std::collections::VecDeque;

use crate::entry::MessageId;
use crate::name::SortKey;

/// Live message numbers and their queue IDs.
#[derive(Debug, Default)]
pub(super) struct Ids {
    /// The number of the front slot.
    base: u64,
    /// Queue IDs by `number - base`.
    slots: VecDeque<Option<SortKey>>,
}

impl Ids {
    /// Records `message`'s queue ID.
    ///
    /// # Panics
    /// When `message` is live already, or older than the window (the core
    /// hands out numbers in increasing order).
    pub(super) fn insert(&mut self, message: MessageId, id: SortKey) {
        if self.slots.is_empty() {
            self.base = message.0;
        }
        let at = message
            .0
            .checked_sub(self.base)
            .and_then(|at| usize::try_from(at).ok())
            .expect("message numbers increase");
        if at >= self.slots.len() {
            self.slots.resize(at + 1, None);
        }
        let old = self.slots[at].replace(id);
        assert!(old.is_none(), "{message} admitted twice");
    }

    /// The queue ID of a live message.
    ///
    /// # Panics
    /// When `message` is not live.
    pub(super) fn get(&self, message: MessageId) -> &SortKey {
        self.slot(message)
            .and_then(|at| self.slots[at].as_ref())
            .unwrap_or_else(|| panic!("{message} is not in the active queue"))
    }

    /// Forgets a message and returns its queue ID.
    ///
    /// # Panics
    /// When `message` is not live.
    pub(super) fn remove(&mut self, message: MessageId) -> SortKey {
        let id = self
            .slot(message)
            .and_then(|at| self.slots[at].take())
            .unwrap_or_else(|| panic!("{message} is not in the active queue"));
        while let Some(None) = self.slots.front() {
            self.slots.pop_front();
            self.base += 1;
        }
        id
    }

    /// Where `message` would be.
    fn slot(&self, message: MessageId) -> Option<usize> {
        let at = usize::try_from(message.0.checked_sub(self.base)?).ok()?;
        (at < self.slots.len()).then_some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_slides_with_the_oldest_live_message() {
        let mut ids = Ids::default();
        for n in 1..=4 {
            ids.insert(MessageId(n), SortKey::from(format!("Q{n}").as_str()));
        }
        assert_eq!(ids.remove(MessageId(2)).name(), "Q2");
        assert_eq!(ids.slots.len(), 4);
        assert_eq!(ids.remove(MessageId(1)).name(), "Q1");
        assert_eq!((ids.base, ids.slots.len()), (3, 2));
        assert_eq!(ids.get(MessageId(4)).name(), "Q4");
        ids.remove(MessageId(3));
        ids.remove(MessageId(4));
        assert!(ids.slots.is_empty());
        // A number reused after an empty window starts a new one.
        ids.insert(MessageId(9), SortKey::from("Q9"));
        assert_eq!(ids.get(MessageId(9)).name(), "Q9");
    }
}
