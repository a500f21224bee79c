//! The supervisor actor (Postfix: `qmgr.c` main loop and `qmgr_active.c`).
//!
//! Hosts the core [`Supervisor`]: it applies the active-queue limits, asks
//! the scanners for files one at a time, routes admitted recipients to
//! transports, and decides each finished message's fate. Trigger bytes from
//! the `public/qmgr` service arrive as [`Trigger`].
//!
//! # Invariants
//! - the core's startup step (`start`: scan both queues, arm the periodic
//!   deferred scan) runs once, when the actor starts, after the scheduler
//!   wired every address.

use std::sync::Arc;

use actix::{Actor, Context, Handler, Message, MessageResult};
use oqmgr::active::Supervisor;
use oqmgr::effect::{Addr, Effects, Msg};
use oqmgr::time::Instant;

use crate::host::{handle, run, Entity, Host};

/// A core message for the supervisor.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SupervisorMsg(pub Msg);

/// Trigger bytes as read from the `public/qmgr` socket or FIFO (`A`, `D`,
/// `F`, `I`, `W`; unknown bytes are ignored by the core).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Trigger(pub Vec<u8>);

/// Asks for the supervisor's load: (messages, recipients) in memory.
#[derive(Debug, Message)]
#[rtype(result = "(usize, u64)")]
pub struct Load;

/// The actor that owns the core supervisor.
pub struct SupervisorActor {
    /// The core entity.
    core: Supervisor,
    /// The shared state.
    host: Arc<Host>,
}

impl SupervisorActor {
    /// A supervisor with an empty active queue.
    pub fn new(core: Supervisor, host: Arc<Host>) -> SupervisorActor {
        SupervisorActor { core, host }
    }
}

impl Actor for SupervisorActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let now = self.host.clock().now();
        let mut out = self.host.effects();
        self.core.start(now, &mut out);
        let host = Arc::clone(&self.host);
        run(&host, &Addr::Supervisor, now, out, ctx);
    }
}

impl Entity for SupervisorActor {
    fn core_addr(&self) -> Addr {
        Addr::Supervisor
    }
    fn host(&self) -> &Arc<Host> {
        &self.host
    }
    fn step(&mut self, now: Instant, msg: Msg, out: &mut Effects) {
        self.core.handle(now, msg, out);
    }
}

impl Handler<SupervisorMsg> for SupervisorActor {
    type Result = ();
    fn handle(&mut self, msg: SupervisorMsg, ctx: &mut Context<Self>) {
        handle(self, msg.0, ctx);
    }
}

impl Handler<Trigger> for SupervisorActor {
    type Result = ();
    fn handle(&mut self, msg: Trigger, ctx: &mut Context<Self>) {
        handle(self, Msg::Trigger(msg.0), ctx);
    }
}

impl Handler<Load> for SupervisorActor {
    type Result = MessageResult<Load>;
    fn handle(&mut self, _msg: Load, _ctx: &mut Context<Self>) -> MessageResult<Load> {
        MessageResult(self.core.load())
    }
}
