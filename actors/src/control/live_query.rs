//! The live-state query: one [`LiveState`] of the running scheduler, the
//! reusable API behind `oqmgr ctl status|destinations|why|shape` (and the
//! metrics and the status page to come).
//!
//! [`live_state`] asks the supervisor, then every transport and
//! destination actor ([`InspectSupervisor`], [`InspectTransport`],
//! [`InspectDestination`]) and sorts the answers. Each answer is taken
//! between two steps of its actor, so every entity is consistent in itself;
//! the whole is not one instant (a delivery may finish between two
//! answers), which is what an operator's view needs and costs no pause of
//! the scheduler. With `detail` the answer also lists every admitted
//! message and every entry (`shape --queue active`, `why QUEUE_ID`); that
//! is as big as the active queue, so the cheap form leaves it out.
//!
//! [`DaemonInfo`] adds what only the daemon knows: pid, start time, the
//! Postfix release and dialect, and the delivery outcomes per transport
//! since start (counted by the host as reports arrive, so destinations
//! forgotten since still count).
//!
//! # Invariants
//! - the query changes nothing in any entity;
//! - the registry's map of destinations is walked only to collect
//!   addresses, never to decide anything, and the result is sorted.

use std::collections::BTreeMap;

use actix::Message;
use futures::future::join_all;
use oqmgr::control::Suspension;
use oqmgr::live_state::{LiveDestination, LiveState, LiveSupervisor, LiveTransport, Tally};
use serde::{Deserialize, Serialize};

use crate::host::Host;

/// Asks the supervisor to describe itself.
#[derive(Debug, Message)]
#[rtype(result = "LiveSupervisor")]
pub struct InspectSupervisor {
    /// List every admitted message too.
    pub detail: bool,
}

/// Asks a transport to describe itself.
#[derive(Debug, Message)]
#[rtype(result = "LiveTransport")]
pub struct InspectTransport;

/// Asks a destination to describe itself.
#[derive(Debug, Message)]
#[rtype(result = "LiveDestination")]
pub struct InspectDestination {
    /// List every entry too.
    pub detail: bool,
}

/// Asks the supervisor for its suspensions and their version number
/// (which changes whenever they do).
#[derive(Debug, Message)]
#[rtype(result = "(u64, Vec<Suspension>)")]
pub struct InspectSuspensions;

/// What only the daemon knows about itself.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DaemonInfo {
    /// Its process ID.
    pub pid: u32,
    /// Its version.
    pub version: String,
    /// When it started (ms since the epoch).
    pub started_ms: u64,
    /// The Postfix release and wire dialect it learned at start.
    pub postfix: String,
    /// Delivery outcomes per transport since start.
    pub tally: BTreeMap<String, Tally>,
    /// The metrics and status page's URL, when they are served.
    #[serde(default)]
    pub metrics: Option<String>,
}

/// The scheduler's live state now (`None` when the supervisor is gone,
/// as at shutdown).
pub async fn live_state(host: &Host, detail: bool) -> Option<LiveState> {
    let supervisor = host
        .supervisor()
        .send(InspectSupervisor { detail })
        .await
        .ok()?;
    let registry = host.registry();
    let transports = registry
        .transport_addrs()
        .into_iter()
        .map(|addr| async move { addr.send(InspectTransport).await.ok() });
    let destinations = registry
        .destination_addrs()
        .into_iter()
        .map(|addr| async move { addr.send(InspectDestination { detail }).await.ok() });
    let (transports, destinations) = futures::join!(join_all(transports), join_all(destinations));
    let mut state = LiveState {
        now_ms: host.clock().now().as_millis(),
        supervisor,
        transports: transports.into_iter().flatten().collect(),
        destinations: destinations.into_iter().flatten().collect(),
    };
    state.sort();
    Some(state)
}
