//! What lies outside the scheduler, as its event loop reaches it
//! (Postfix: `qmgr_transport.c`'s connection requests and
//! `qmgr_deliver.c`'s delivery requests, seen from the loop).
//!
//! The loop ([`crate::host::run`]) hands every agent effect to an
//! [`Outside`]. The daemon's is [`Agents`]: the delivery agents
//! registered per transport name, whose answers come back from other
//! tasks as input ([`Host::input`]) and are delivered when the bus is
//! empty, as the simulator delivers an agent's answer from its timers.
//! Tests plug in the simulator's own world instead (the `oqmgr-devtools`
//! package's `simworld`): it schedules its answers and its own events
//! (arrivals, servers) in the loop, under the arming numbers the simulator
//! gives them, hands the loop its scenario's operator commands when they
//! are due, and tells the loop when a run is over.
//!
//! The daemon's outside also counts what the operator sees of the agents
//! ([`Host::tally`], and the metrics when they are on): every delivery
//! handed off and its outcome, every connection that failed.
//!
//! # Invariants
//! - every `connect` is answered `AgentReady` or `AgentFailed`, and every
//!   `deliver` with a `Report` (a crash when the agent is gone), to the
//!   transport or destination that asked.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use oqmgr::effect::{Addr, DestId, Msg};
use oqmgr::entry::AgentId;
use oqmgr::events::EventLoop;
use oqmgr::name::Name;
use oqmgr::sim::scenario::CommandAt;
use oqmgr::time::Instant;

use crate::agent::{self, Close, Connect, Deliver, DeliveryAgent};
use crate::host::Host;

/// Delivery agents, and for a simulation the world they work in, as the
/// event loop reaches them.
pub trait Outside: 'static {
    /// Events the outside schedules for itself in the loop.
    type Event: 'static;

    /// Arms what the outside brings by itself (a simulated world's mail
    /// and triggers), before the supervisor's first step.
    fn start(&mut self, _lp: &mut EventLoop<Self::Event>) {}

    /// Asks `transport`'s agent for connection `agent`; the answer
    /// (`AgentReady` or `AgentFailed`) goes to the transport.
    fn connect(
        &mut self,
        host: &Arc<Host>,
        lp: &mut EventLoop<Self::Event>,
        transport: Name,
        agent: AgentId,
    );

    /// Hands a delivery request to the agent; the report goes to
    /// destination `id`.
    fn deliver(
        &mut self,
        host: &Arc<Host>,
        lp: &mut EventLoop<Self::Event>,
        id: DestId,
        request: Deliver,
    );

    /// Releases a connection that got no work.
    fn close(&mut self, host: &Arc<Host>, transport: Name, agent: AgentId);

    /// One of the outside's own events is due; a simulated world's
    /// operator command comes back, for the loop to run.
    fn fire(&mut self, lp: &mut EventLoop<Self::Event>, event: Self::Event) -> Option<CommandAt>;

    /// True when a simulated world has nothing left to do: the loop stops
    /// (checked each time the bus is empty). Never for the daemon.
    fn finished(&self) -> bool {
        false
    }

    /// A simulated run's bounds: the loop stops, with a `stop:` trace
    /// line, before a timer later than the first or once it delivered as
    /// many messages as the second.
    fn limits(&self) -> Option<(Instant, u64)> {
        None
    }

    /// The loop ended, at `lp.now()` after `lp.steps()` messages.
    fn stopped(&mut self, _lp: &EventLoop<Self::Event>) {}
}

/// The delivery agents registered per transport name: the daemon's
/// outside.
#[derive(Debug, Default)]
pub struct Agents {
    /// Agents by transport name.
    by_name: BTreeMap<String, DeliveryAgent>,
    /// The agent for transport names not in `by_name` (the daemon's bridge
    /// to Postfix's `private/<transport>` services, which serve any name
    /// master.cf defines); `None`: such mail is reported as crashed.
    default: Option<DeliveryAgent>,
}

impl Agents {
    /// The agents `by_name`, and `default` for every other name.
    pub fn new(by_name: BTreeMap<String, DeliveryAgent>, default: Option<DeliveryAgent>) -> Agents {
        Agents { by_name, default }
    }

    /// The agent registered for `transport`, else the default agent.
    pub fn agent(&self, transport: &str) -> Option<&DeliveryAgent> {
        self.by_name.get(transport).or(self.default.as_ref())
    }
}

impl Outside for Agents {
    type Event = Infallible;

    fn connect(
        &mut self,
        host: &Arc<Host>,
        _lp: &mut EventLoop<Infallible>,
        transport: Name,
        agent: AgentId,
    ) {
        let to = Addr::Transport(transport.clone());
        let failed = |dsn| {
            if let Some(m) = host.metrics() {
                m.connect_error(&transport);
            }
            Msg::AgentFailed { agent, dsn }
        };
        match self.agent(&transport) {
            Some(DeliveryAgent {
                connect: Some(connect),
                ..
            }) => {
                let request = connect.send(Connect {
                    transport: transport.to_string(),
                    agent,
                });
                let name = transport.clone();
                let host = Arc::clone(host);
                actix::spawn(async move {
                    let msg = match request.await {
                        Ok(Ok(())) => Msg::AgentReady(agent),
                        Ok(Err(dsn)) => Msg::AgentFailed { agent, dsn },
                        Err(_) => Msg::AgentFailed {
                            agent,
                            dsn: agent::unavailable(),
                        },
                    };
                    if let (Msg::AgentFailed { .. }, Some(m)) = (&msg, host.metrics()) {
                        m.connect_error(&name);
                    }
                    host.input(to, msg);
                });
            }
            Some(a) if a.deliver.connected() => host.input(to, Msg::AgentReady(agent)),
            _ => host.input(to, failed(agent::unavailable())),
        }
    }

    fn deliver(
        &mut self,
        host: &Arc<Host>,
        _lp: &mut EventLoop<Infallible>,
        id: DestId,
        request: Deliver,
    ) {
        let to = Addr::Destination(id);
        let crash = agent::crashed(&request.entry);
        let Some(a) = self.agent(&request.dest.transport) else {
            tracing::warn!(transport = %request.dest.transport, "no delivery agent registered");
            host.input(to, Msg::Report(crash));
            return;
        };
        let transport = request.dest.transport.to_string();
        if let Some(m) = host.metrics() {
            m.handed_off(
                &transport,
                &request.nexthop,
                &request.queue_id,
                request.entry.recipients.len(),
                host.clock().wall_now().as_millis(),
            );
        }
        let started = host.clock().now();
        let answer = a.deliver.send(request);
        let host = Arc::clone(host);
        actix::spawn(async move {
            let report = answer.await.unwrap_or(crash);
            host.count(&transport, &report);
            if let Some(m) = host.metrics() {
                let took = host.clock().now().saturating_since(started);
                m.delivered(
                    &transport,
                    &report,
                    std::time::Duration::from_millis(took.as_millis()),
                );
            }
            host.input(to, Msg::Report(report));
        });
    }

    fn close(&mut self, _host: &Arc<Host>, transport: Name, agent: AgentId) {
        if let Some(close) = self.agent(&transport).and_then(|a| a.close.as_ref()) {
            close.do_send(Close {
                transport: transport.to_string(),
                agent,
            });
        }
    }

    fn fire(&mut self, _lp: &mut EventLoop<Infallible>, event: Infallible) -> Option<CommandAt> {
        match event {}
    }
}
