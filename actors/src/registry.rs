//! Name → actor address lookups (Postfix: the `qmgr_transport_byname` and
//! `qmgr_queue_find` hash tables of `qmgr_transport.c` and `qmgr_queue.c`).
//!
//! Every entity of the core is an actor; an [`oqmgr::effect::Addr`] names one
//! and this registry turns the name into a mailbox for the event loop
//! (`crate::host`). Lookups are concurrent (`DashMap`) because the
//! scanners record queue IDs from their own actors.
//!
//! # Invariants
//! - DashMap is used here and nowhere else, and a map guard is never held
//!   across an await (`actors/clippy.toml` makes that a lint error): a guard
//!   parked in a suspended future would block every actor touching its
//!   shard;
//! - the maps are used for lookup only and never iterated to decide
//!   anything: hash order would make two runs of the same input differ
//!   (the event loop keeps the ordered list of transports a flush visits);
//! - a destination is removed here when its `Stop` is delivered; one that
//!   takes its slot has another id (ids carry an epoch), so neither can
//!   remove or receive the other's entry.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

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
    /// Records a new transport actor.
    pub fn insert_transport(&self, name: &str, addr: Addr<TransportActor>) {
        self.transports.insert(name.to_string(), addr);
    }

    /// A number for a new transport, never handed out before.
    pub fn transport_number(&self) -> u32 {
        self.next_transport.fetch_add(1, Ordering::Relaxed)
    }

    /// The transport actor of that name, if it was started.
    pub fn transport(&self, name: &str) -> Option<Addr<TransportActor>> {
        self.transports.get(name).map(|a| a.clone())
    }

    /// Records a new destination actor (replacing a stopped predecessor).
    pub fn insert_destination(&self, key: DestId, addr: Addr<DestinationActor>) {
        self.destinations.insert(key, addr);
    }

    /// The destination actor of that number.
    pub fn destination(&self, key: &DestId) -> Option<Addr<DestinationActor>> {
        self.destinations.get(key).map(|a| a.clone())
    }

    /// The address of every transport actor, in no particular order: for
    /// the operator's live-state query only, which sorts what they answer
    /// (walking the map decides nothing).
    pub fn transport_addrs(&self) -> Vec<Addr<TransportActor>> {
        self.transports.iter().map(|e| e.value().clone()).collect()
    }

    /// The address of every destination actor, in no particular order:
    /// for the operator's live-state query only, which sorts what they
    /// answer (walking the map decides nothing).
    pub fn destination_addrs(&self) -> Vec<Addr<DestinationActor>> {
        self.destinations
            .iter()
            .map(|e| e.value().clone())
            .collect()
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
