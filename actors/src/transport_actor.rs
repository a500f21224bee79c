//! Transport actors (Postfix: `qmgr_transport.c`).
//!
//! One [`TransportActor`] per transport name hosts the core [`Transport`]:
//! it asks for delivery agents, enforces the transport rate delay (its
//! timers are delivered here), keeps the round-robin ring of its
//! destinations and asks for a
//! [`DestinationActor`](crate::destination_actor::DestinationActor) for
//! each new destination (the core's `Spawn` effect). The event loop starts
//! it on the first message for its name.
//!
//! # Invariants
//! - a destination is registered before the `Accept` that follows its
//!   `Spawn` is delivered, so the first entry is never lost.

use std::sync::Arc;

use actix::{Actor, Context, Handler, MessageResult};
use oqmgr::effect::{Effects, Msg};
use oqmgr::time::Instant;
use oqmgr::transport::Transport;

use crate::control::live_query::InspectTransport;
use crate::host::{step, Entity, Host, Step};

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
    fn host(&self) -> &Arc<Host> {
        &self.host
    }
    fn step(&mut self, now: Instant, msg: Msg, out: &mut Effects) {
        self.core.handle(now, msg, out);
    }
}

impl Handler<Step> for TransportActor {
    type Result = MessageResult<Step>;
    fn handle(&mut self, msg: Step, _ctx: &mut Context<Self>) -> MessageResult<Step> {
        MessageResult(step(self, msg))
    }
}

impl Handler<InspectTransport> for TransportActor {
    type Result = MessageResult<InspectTransport>;
    fn handle(&mut self, _msg: InspectTransport, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.core.live())
    }
}
