//! Name → actor address lookups (Postfix: the `qmgr_transport_byname` and
//! `qmgr_queue_find` hash tables of `qmgr_transport.c` and `qmgr_queue.c`).
//!
//! Every entity of the core is an actor; an [`oqmgr::effect::Addr`] names one
//! and this registry turns the name into a mailbox. Lookups are concurrent
//! (`DashMap`) because any actor may route a message to any other.
//!
//! # Invariants
//! - DashMap is used here and nowhere else, and a map guard is never held
//!   across an await (`actors/clippy.toml` makes that a lint error): a guard
//!   parked in a suspended future would block every actor touching its
//!   shard;
//! - the maps are used for lookup only and never iterated to decide
//!   anything: hash order would make two runs of the same input differ.
//!   Where all transports must be visited (the `F` trigger), the ordered
//!   `transport_names` set gives the same order the simulator uses;
//! - a destination is removed here by whoever routes its `Stop` message, in
//!   the same step, so a destination re-created under the same name right
//!   after can never be removed by its predecessor's exit.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use actix::Addr;
use dashmap::DashMap;
use oqmgr::effect::DestId;
use oqmgr::entry::MessageId;
use oqmgr::name::Name;
use oqmgr::params::TransportParams;

use crate::destination_actor::DestinationActor;
use crate::transport_actor::TransportActor;

/// The lookup tables of one scheduler.
#[derive(Default)]
pub struct Registry {
    /// Transport actors by transport name.
    transports: DashMap<String, Addr<TransportActor>>,
    /// Transport names in sorted order, for the one broadcast (flush).
    transport_names: Mutex<BTreeSet<String>>,
    /// Destination actors by core number.
    destinations: DashMap<DestId, Addr<DestinationActor>>,
    /// The next transport number (core destination ids start with their
    /// transport's, so no two transports may share one).
    next_transport: AtomicU32,
    /// Queue IDs of admitted messages, so a delivery request can name its
    /// file to the agent: the core's own `MessageInfo::id`, shared, not a
    /// second copy per in-core message.
    queue_ids: DashMap<MessageId, Name>,
    /// Resolved per-transport parameters.
    transport_params: DashMap<String, Arc<TransportParams>>,
}

impl Registry {
    /// The transport actor of that name, started by `start` on first use.
    pub fn transport_or_start(
        &self,
        name: &str,
        start: impl FnOnce() -> Addr<TransportActor>,
    ) -> Addr<TransportActor> {
        if let Some(addr) = self.transports.get(name) {
            return addr.clone();
        }
        let addr = self
            .transports
            .entry(name.to_string())
            .or_insert_with(start)
            .clone();
        self.transport_names
            .lock()
            .expect("registry lock poisoned")
            .insert(name.to_string());
        addr
    }

    /// Runs `f` on the transport actor of that name, started by `start` on
    /// first use. The address is borrowed, not cloned: an actix address
    /// clone allocates, and every core message to a transport comes here.
    pub fn with_transport<R>(
        &self,
        name: &str,
        start: impl FnOnce() -> Addr<TransportActor>,
        f: impl FnOnce(&Addr<TransportActor>) -> R,
    ) -> R {
        if let Some(addr) = self.transports.get(name) {
            return f(&addr);
        }
        let addr = self.transport_or_start(name, start);
        f(&addr)
    }

    /// A number for a new transport, never handed out before.
    pub fn transport_number(&self) -> u32 {
        self.next_transport.fetch_add(1, Ordering::Relaxed)
    }

    /// Runs `f` on the destination actor of that number, if any (borrowed,
    /// as in [`Registry::with_transport`]).
    pub fn with_destination<R>(
        &self,
        key: &DestId,
        f: impl FnOnce(&Addr<DestinationActor>) -> R,
    ) -> Option<R> {
        self.destinations.get(key).map(|a| f(&a))
    }

    /// The transport actor of that name, if it was started.
    pub fn transport(&self, name: &str) -> Option<Addr<TransportActor>> {
        self.transports.get(name).map(|a| a.clone())
    }

    /// Every started transport's name, sorted.
    pub fn transport_names(&self) -> Vec<String> {
        self.transport_names
            .lock()
            .expect("registry lock poisoned")
            .iter()
            .cloned()
            .collect()
    }

    /// Records a new destination actor (replacing a stopped predecessor).
    pub fn insert_destination(&self, key: DestId, addr: Addr<DestinationActor>) {
        self.destinations.insert(key, addr);
    }

    /// The destination actor of that number.
    pub fn destination(&self, key: &DestId) -> Option<Addr<DestinationActor>> {
        self.destinations.get(key).map(|a| a.clone())
    }

    /// Forgets a destination and returns its address (for its `Stop`).
    pub fn remove_destination(&self, key: &DestId) -> Option<Addr<DestinationActor>> {
        self.destinations.remove(key).map(|(_, a)| a)
    }

    /// One transport's parameters, resolved by `resolve` on first use.
    pub fn transport_params(
        &self,
        name: &str,
        resolve: impl FnOnce() -> TransportParams,
    ) -> Arc<TransportParams> {
        if let Some(p) = self.transport_params.get(name) {
            return Arc::clone(&p);
        }
        Arc::clone(
            &self
                .transport_params
                .entry(name.to_string())
                .or_insert_with(|| Arc::new(resolve())),
        )
    }

    /// Records the queue ID of an admitted message.
    pub fn insert_queue_id(&self, message: MessageId, id: Name) {
        self.queue_ids.insert(message, id);
    }

    /// The queue ID of an admitted message.
    pub fn queue_id(&self, message: MessageId) -> Option<String> {
        self.queue_ids.get(&message).map(|s| s.to_string())
    }

    /// Forgets a message that left the active queue; returns its queue ID.
    pub fn remove_queue_id(&self, message: MessageId) -> Option<String> {
        self.queue_ids.remove(&message).map(|(_, s)| s.into())
    }
}
