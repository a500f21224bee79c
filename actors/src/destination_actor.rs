//! Destination actors (Postfix: `qmgr_queue.c`, `qmgr_entry.c`).
//!
//! One [`DestinationActor`] per destination (its core [`DestId`]) hosts the core
//! [`Destination`]: its concurrency window with slow start and feedback,
//! cohort-failure counting that declares the site dead, and the timers that
//! revive it (`minimal_backoff_time`) or end a destination rate delay
//! (the event loop delivers them here). Its transport's `Spawn` starts it
//! and, once it is idle, its transport stops it with `Stop`.
//!
//! # Invariants
//! - after `Stop` the actor ends, and the event loop removes its registry
//!   entry; a destination that takes its slot has another id (ids carry
//!   an epoch), so the two never meet in the registry.

use std::sync::Arc;

use actix::{Actor, ActorContext, Context, Handler, MessageResult};
use oqmgr::destination::Destination;
use oqmgr::effect::{DestId, DestKey, Effects, Msg};
use oqmgr::params::TransportParams;
use oqmgr::time::Instant;

use crate::control::live_query::InspectDestination;
use crate::host::{step, Entity, Host, Step};

/// The actor that owns one core destination.
pub struct DestinationActor {
    /// The core entity.
    core: Destination,
    /// The shared state.
    host: Arc<Host>,
}

impl DestinationActor {
    /// A ready destination with the transport's initial window.
    pub fn new(
        host: Arc<Host>,
        id: DestId,
        key: DestKey,
        nexthop: oqmgr::name::Name,
        epoch: u64,
        params: Arc<TransportParams>,
    ) -> DestinationActor {
        let global = Arc::clone(host.global());
        DestinationActor {
            core: Destination::new(id, key, nexthop, epoch, params, global),
            host,
        }
    }
}

impl Actor for DestinationActor {
    type Context = Context<Self>;
}

impl Entity for DestinationActor {
    fn host(&self) -> &Arc<Host> {
        &self.host
    }
    fn step(&mut self, now: Instant, msg: Msg, out: &mut Effects) {
        self.core.handle(now, msg, out);
    }
}

impl Handler<Step> for DestinationActor {
    type Result = MessageResult<Step>;
    fn handle(&mut self, msg: Step, ctx: &mut Context<Self>) -> MessageResult<Step> {
        let stop = matches!(msg.msg, Msg::Stop);
        let out = step(self, msg);
        if stop {
            ctx.stop();
        }
        MessageResult(out)
    }
}

impl Handler<InspectDestination> for DestinationActor {
    type Result = MessageResult<InspectDestination>;
    fn handle(&mut self, msg: InspectDestination, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.core.live(msg.detail))
    }
}
