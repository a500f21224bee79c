//! Destination actors (Postfix: `qmgr_queue.c`, `qmgr_entry.c`).
//!
//! One [`DestinationActor`] per destination (its core [`DestId`]) hosts the core
//! [`Destination`]: its concurrency window with slow start and feedback,
//! cohort-failure counting that declares the site dead, and the timers that
//! revive it (`minimal_backoff_time`) or end a destination rate delay. Its
//! transport starts it and, once it is idle, stops it with `Stop`.
//!
//! # Invariants
//! - after `Stop` the actor ends; its registry entry was already removed by
//!   the transport in the same step that sent `Stop`.

use std::sync::Arc;

use actix::{Actor, ActorContext, Context, Handler, Message};
use oqmgr::destination::Destination;
use oqmgr::effect::{Addr, DestId, DestKey, Effects, Msg};
use oqmgr::params::TransportParams;
use oqmgr::time::Instant;

use crate::host::{handle, Entity, Host};

/// A core message for a destination.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct DestinationMsg(pub Msg);

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
    fn core_addr(&self) -> Addr {
        Addr::Destination(self.core.id)
    }
    fn host(&self) -> &Arc<Host> {
        &self.host
    }
    fn step(&mut self, now: Instant, msg: Msg, out: &mut Effects) {
        self.core.handle(now, msg, out);
    }
}

impl Handler<DestinationMsg> for DestinationActor {
    type Result = ();
    fn handle(&mut self, msg: DestinationMsg, ctx: &mut Context<Self>) {
        let stop = matches!(msg.0, Msg::Stop);
        handle(self, msg.0, ctx);
        if stop {
            ctx.stop();
        }
    }
}
