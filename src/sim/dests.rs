//! The simulator's destinations, by [`DestId`] (the simulator's half of
//! the actors' registry of destination mailboxes).
//!
//! Each transport has a table indexed by slot, so finding the addressee
//! of a message is two indexings and a comparison of the id's epoch, not
//! a hash of two names in a map of ten thousand. A transport gives a slot
//! to a new destination only after it sent `Stop` to the previous holder,
//! but that `Stop` may still be on the bus: the new destination then takes
//! the slot, and the old one waits among the stopping ones until its
//! `Stop` comes off the bus. The bus is FIFO, so every message for it up
//! to that `Stop` still finds it by its whole id.
//!
//! # Invariants
//! - an id names at most one destination here, in a table or stopping;
//! - nothing here is iterated: the stopping map is for lookups only, so
//!   hash order cannot leak into a decision.

use crate::destination::Destination;
use crate::effect::DestId;
use crate::name::FastMap;
use crate::sim::world::Peer;

/// A live destination and what the simulator keeps with it.
#[derive(Debug)]
pub(super) struct SimDest {
    /// The core entity.
    pub(super) core: Destination,
    /// What the world keeps for it (its server and summary row).
    pub(super) peer: Peer,
}

/// Every destination of a run.
#[derive(Debug, Default)]
pub(super) struct Dests {
    /// Live destinations by transport number, then slot.
    tables: Vec<Vec<Option<SimDest>>>,
    /// Destinations told to `Stop` whose slot went to a new destination
    /// while their `Stop` was still on the bus (a hash map for lookups
    /// only, usually empty).
    stopping: FastMap<DestId, SimDest>,
}

impl Dests {
    /// Makes the (empty) table of the next transport; transports are
    /// numbered in order of creation.
    pub(super) fn add_transport(&mut self) {
        self.tables.push(Vec::new());
    }

    /// Files a new destination in its slot; a previous holder whose `Stop`
    /// has not come yet waits among the stopping ones.
    ///
    /// # Panics
    /// When the previous holder has the same id.
    pub(super) fn spawn(&mut self, d: SimDest) {
        let id = d.core.id;
        let table = &mut self.tables[id.transport as usize];
        if table.len() <= id.slot as usize {
            table.resize_with(id.slot as usize + 1, || None);
        }
        if let Some(old) = table[id.slot as usize].replace(d) {
            let old_id = old.core.id;
            assert!(old_id != id, "{id} spawned twice");
            let twice = self.stopping.insert(old_id, old);
            assert!(twice.is_none(), "{old_id} stopped twice");
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
            .filter(|d| d.as_ref().is_some_and(|d| d.core.id == id))
            .and_then(Option::as_mut)
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

    /// Takes out the destination `id`, whose `Stop` has come.
    pub(super) fn take(&mut self, id: DestId) -> Option<SimDest> {
        if !self.stopping.is_empty() {
            if let Some(d) = self.stopping.remove(&id) {
                return Some(d);
            }
        }
        self.tables
            .get_mut(id.transport as usize)
            .and_then(|t| t.get_mut(id.slot as usize))
            .filter(|d| d.as_ref().is_some_and(|d| d.core.id == id))
            .and_then(Option::take)
    }
}
