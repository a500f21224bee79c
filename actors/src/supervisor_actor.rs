//! The supervisor actor (Postfix: `qmgr.c` main loop and `qmgr_active.c`).
//!
//! Hosts the core [`Supervisor`]: it applies the active-queue limits, asks
//! the scanners for files one at a time, routes admitted recipients to
//! transports, and decides each finished message's fate. Trigger bytes from
//! the `public/qmgr` service arrive as input of the event loop
//! ([`crate::scheduler::Scheduler::trigger`]).
//!
//! # Invariants
//! - the core's startup step ([`Start`]) runs once, as the event loop's
//!   first step, after the scheduler wired every address.

use std::sync::Arc;

use actix::{Actor, Context, Handler, Message, MessageResult};
use oqmgr::active::Supervisor;
use oqmgr::effect::{Effects, Msg};
use oqmgr::time::Instant;

use crate::control::live_query::{InspectSupervisor, InspectSuspensions};
use crate::host::{step, Entity, Host, Step};

/// The core's startup step (scan both queues, arm the periodic deferred
/// scan), at the given time; answered with its effects.
#[derive(Debug, Message)]
#[rtype(result = "Effects")]
pub(crate) struct Start(pub(crate) Instant);

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
}

impl Entity for SupervisorActor {
    fn host(&self) -> &Arc<Host> {
        &self.host
    }
    fn step(&mut self, now: Instant, msg: Msg, out: &mut Effects) {
        self.core.handle(now, msg, out);
    }
}

impl Handler<Start> for SupervisorActor {
    type Result = MessageResult<Start>;
    fn handle(&mut self, msg: Start, _ctx: &mut Context<Self>) -> MessageResult<Start> {
        let mut out = self.host.effects();
        self.core.start(msg.0, &mut out);
        MessageResult(out)
    }
}

impl Handler<Step> for SupervisorActor {
    type Result = MessageResult<Step>;
    fn handle(&mut self, msg: Step, _ctx: &mut Context<Self>) -> MessageResult<Step> {
        MessageResult(step(self, msg))
    }
}

impl Handler<InspectSupervisor> for SupervisorActor {
    type Result = MessageResult<InspectSupervisor>;
    fn handle(&mut self, msg: InspectSupervisor, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.core.live(msg.detail))
    }
}

impl Handler<InspectSuspensions> for SupervisorActor {
    type Result = MessageResult<InspectSuspensions>;
    fn handle(&mut self, _msg: InspectSuspensions, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.core.suspensions())
    }
}

impl Handler<Load> for SupervisorActor {
    type Result = MessageResult<Load>;
    fn handle(&mut self, _msg: Load, _ctx: &mut Context<Self>) -> MessageResult<Load> {
        MessageResult(self.core.load())
    }
}
