//! The simulator's destinations, by [`DestId`] (the simulator's half of
//! the actors' registry of destination mailboxes).
//!
//! Each transport has a table indexed by slot, so finding the addressee
//! of a message is two indexings and a comparison of the id's epoch, not
//! a hash of two names in a map of ten thousand. A destination told to
//! `Stop` leaves its slot at once, since its transport may give the slot
//! to a new destination in the same step, and waits among the stopping
//! ones until its `Stop` comes off the bus: the bus is FIFO, so every
//! message for it up to that `Stop` still finds it by its whole id.
//!
//! # Invariants
//! - an id names at most one destination here, in a table or stopping;
//! - nothing here is iterated: the stopping map is for lookups only, so
//!   hash order cannot leak into a decision.

use crate::destination::Destination;
use crate::effect::DestId;
use crate::name::FastMap;

/// A live destination and what the simulator keeps with it.
#[derive(Debug)]
pub(super) struct SimDest {
    /// The core entity.
    pub(super) core: Destination,
    /// Its row in the summary's counters, found on first use (`u32::MAX`
    /// until then: a destination that never had a delivery has no row,
    /// as before rows were numbered).
    pub(super) stats: u32,
    /// The number of the server behind its next hop.
    pub(super) server: u32,
}

/// Every destination of a run.
#[derive(Debug, Default)]
pub(super) struct Dests {
    /// Live destinations by transport number, then slot.
    tables: Vec<Vec<Option<SimDest>>>,
    /// Destinations told to `Stop` whose `Stop` is still on the bus (a
    /// hash map for lookups only, usually empty).
    stopping: FastMap<DestId, SimDest>,
}

impl Dests {
    /// Makes the (empty) table of the next transport; transports are
    /// numbered in order of creation.
    pub(super) fn add_transport(&mut self) {
        self.tables.push(Vec::new());
    }

    /// Files a new destination in its slot.
    ///
    /// # Panics
    /// When the slot holds a live destination: a transport reuses a slot
    /// only after it stopped the previous holder.
    pub(super) fn spawn(&mut self, d: SimDest) {
        let id = d.core.id;
        let table = &mut self.tables[id.transport as usize];
        if table.len() <= id.slot as usize {
            table.resize_with(id.slot as usize + 1, || None);
        }
        let old = table[id.slot as usize].replace(d);
        assert!(old.is_none(), "{id} spawned over a live destination");
    }

    /// The destination `id` was told to stop: it leaves its slot.
    pub(super) fn stop(&mut self, id: DestId) {
        let slot = self.tables[id.transport as usize]
            .get_mut(id.slot as usize)
            .filter(|d| d.as_ref().is_some_and(|d| d.core.id == id));
        if let Some(d) = slot.and_then(Option::take) {
            let old = self.stopping.insert(id, d);
            assert!(old.is_none(), "{id} stopped twice");
        }
    }

    /// The destination `id`, live or stopping.
    pub(super) fn get_mut(&mut self, id: DestId) -> Option<&mut SimDest> {
        if !self.stopping.is_empty() && self.stopping.contains_key(&id) {
            return self.stopping.get_mut(&id);
        }
        self.tables
            .get_mut(id.transport as usize)
            .and_then(|t| t.get_mut(id.slot as usize))
            .and_then(Option::as_mut)
            .filter(|d| d.core.id == id)
    }

    /// Every live destination, described (for `destinations` commands).
    pub(super) fn live(&self) -> Vec<crate::live_state::LiveDestination> {
        self.tables
            .iter()
            .flatten()
            .flatten()
            .map(|d| d.core.live(false))
            .collect()
    }

    /// Takes out the stopping destination `id`, whose `Stop` has come.
    pub(super) fn take_stopping(&mut self, id: DestId) -> Option<SimDest> {
        if self.stopping.is_empty() {
            return None;
        }
        self.stopping.remove(&id)
    }
}
