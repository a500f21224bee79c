//! Transport actors (Postfix: `qmgr_transport.c`).
//!
//! One [`TransportActor`] per transport name hosts the core [`Transport`]:
//! it asks for delivery agents, enforces the transport rate delay (its
//! timers run here), keeps the round-robin ring of its destinations and
//! starts a [`DestinationActor`](crate::destination_actor::DestinationActor) for
//! each new destination (the core's `Spawn` effect). It is started on the
//! first message for its name.
//!
//! # Invariants
//! - a destination is registered before the `Accept` that follows its
//!   `Spawn` is routed, so the first entry is never lost.

use std::sync::Arc;

use actix::{Actor, Context, Handler, Message};
use oqmgr::effect::{Addr, Effects, Msg};
use oqmgr::time::Instant;
use oqmgr::transport::Transport;

use crate::host::{handle, Entity, Host};

/// A core message for a transport.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct TransportMsg(pub Msg);

/// The actor that owns one core transport.
pub struct TransportActor {
    /// The core entity.
    core: Transport,
    /// The shared state.
    host: Arc<Host>,
}

impl TransportActor {
    /// A live transport named `name` with no destinations.
    pub fn new(host: Arc<Host>, name: &str) -> TransportActor {
        let params = host.transport_params(name);
        let global = &host.params().global;
        let retry = global.transport_retry_time;
        let cache = 2 * global.message_recipient_limit as usize;
        TransportActor {
            core: Transport::new(host.registry().transport_number(), params, retry, cache),
            host,
        }
    }
}

impl Actor for TransportActor {
    type Context = Context<Self>;
}

impl Entity for TransportActor {
    fn core_addr(&self) -> Addr {
        Addr::Transport(self.core.name.clone())
    }
    fn host(&self) -> &Arc<Host> {
        &self.host
    }
    fn step(&mut self, now: Instant, msg: Msg, out: &mut Effects) {
        self.core.handle(now, msg, out);
    }
}

impl Handler<TransportMsg> for TransportActor {
    type Result = ();
    fn handle(&mut self, msg: TransportMsg, ctx: &mut Context<Self>) {
        handle(self, msg.0, ctx);
    }
}
