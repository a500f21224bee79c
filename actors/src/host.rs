//! The actors' shared state and the one interpreter of core effects (the
//! actix counterpart of the simulator's `Simulation::effect`).
//!
//! Every actor that hosts a core entity hands the effects of each step to
//! `run`, which carries them out in order: `Send` becomes a `do_send` to
//! the addressee's mailbox (so messages from one sender arrive in send
//! order), `Arm` becomes `run_later` on the tokio clock, agent requests go
//! to the registered [`DeliveryAgent`], and queue-file effects go to the
//! scanners or the [`QueueStore`]. Keeping this
//! in one function means the supervisor, transports and destinations cannot
//! drift apart in how they interpret the core.
//!
//! # Invariants
//! - effects are carried out in the order the core produced them; a `Spawn`
//!   registers the destination before the `Send` that follows it;
//! - an entity's timers run on its own actor (`run_later`): the core arms
//!   only the stepping entity's timers, and the host insists on it;
//! - a message for a destination that no longer exists is logged and
//!   dropped, never a panic (the simulator panics: there it is a core bug,
//!   here the daemon must keep running).

use std::collections::BTreeMap;
use std::sync::{Arc, MutexGuard, OnceLock};

use actix::{Actor, Addr as ActixAddr, AsyncContext, Context, Recipient};
use oqmgr::effect::{Addr, Effect, Effects, LogLevel, Msg};
use oqmgr::params::{GlobalParams, Params, TransportParams};
use oqmgr::scan::QueueName;
use oqmgr::time::Instant;

use crate::agent::{self, Close, Connect, Deliver, DeliveryAgent};
use crate::clock::Clock;
use crate::destination_actor::{DestinationActor, DestinationMsg};
use crate::queue_store::{Completion, QueueStore, SharedStore};
use crate::registry::Registry;
use crate::scanner_actor::{Admit, ScanNext, ScanStart, ScannerActor};
use crate::scheduler::TraceLine;
use crate::supervisor_actor::{SupervisorActor, SupervisorMsg};
use crate::transport_actor::{TransportActor, TransportMsg};

/// What every actor of one scheduler shares.
pub struct Host {
    /// The clock.
    clock: Clock,
    /// All parameters (per-transport ones are resolved on first use).
    params: Params,
    /// The global parameters, shared by every destination.
    global: Arc<GlobalParams>,
    /// Name → address lookups.
    registry: Registry,
    /// Delivery agents by transport name.
    agents: BTreeMap<String, DeliveryAgent>,
    /// The agent for transport names not in `agents` (the daemon's bridge
    /// to Postfix's `private/<transport>` services, which serve any name
    /// master.cf defines); `None`: such mail is reported as crashed.
    default_agent: Option<DeliveryAgent>,
    /// Queue-file access.
    store: SharedStore,
    /// Where trace events go besides `tracing`.
    trace_sink: Option<Recipient<TraceLine>>,
    /// The supervisor, set once at startup.
    supervisor: OnceLock<ActixAddr<SupervisorActor>>,
    /// The incoming and deferred scanners, set once at startup.
    scanners: OnceLock<[ActixAddr<ScannerActor>; 2]>,
    /// The store finishes completions later, and the supervisor counts
    /// them until it does ([`QueueStore::completes_later`]).
    counting_completions: bool,
}

impl Host {
    /// Shared state for a scheduler not yet started.
    pub(crate) fn new(
        clock: Clock,
        params: Params,
        agents: BTreeMap<String, DeliveryAgent>,
        default_agent: Option<DeliveryAgent>,
        store: SharedStore,
        trace_sink: Option<Recipient<TraceLine>>,
    ) -> Host {
        let counting_completions = store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .completes_later();
        Host {
            counting_completions,
            clock,
            global: Arc::new(params.global.clone()),
            params,
            registry: Registry::default(),
            agents,
            default_agent,
            store,
            trace_sink,
            supervisor: OnceLock::new(),
            scanners: OnceLock::new(),
        }
    }

    /// True when the supervisor must count completions until the store
    /// reports them done.
    pub(crate) fn counts_completions(&self) -> bool {
        self.counting_completions
    }

    /// Records the supervisor and scanners; called once by the builder.
    pub(crate) fn wire(
        &self,
        supervisor: ActixAddr<SupervisorActor>,
        scanners: [ActixAddr<ScannerActor>; 2],
    ) {
        assert!(
            self.supervisor.set(supervisor).is_ok() && self.scanners.set(scanners).is_ok(),
            "scheduler wired twice"
        );
    }

    /// The clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The agent registered for `transport`, else the default agent.
    pub fn agent(&self, transport: &str) -> Option<&DeliveryAgent> {
        self.agents.get(transport).or(self.default_agent.as_ref())
    }

    /// The lookup tables.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// All parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Locks the queue store. A poisoned lock (a panic in another actor while
    /// it held the store) is taken over: the store's own data is still
    /// consistent per call.
    pub fn store(&self) -> MutexGuard<'_, dyn QueueStore + 'static> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The global parameters.
    pub fn global(&self) -> &Arc<GlobalParams> {
        &self.global
    }

    /// One transport's parameters, resolved once and shared by the
    /// transport and its destinations.
    pub fn transport_params(&self, name: &str) -> Arc<TransportParams> {
        self.registry.transport_params(name, || {
            let (tp, warnings) = self.params.transport(name);
            for w in warnings {
                tracing::warn!("{}", w.message);
            }
            tp
        })
    }

    /// The handle a store drops when it has carried out a completion: it
    /// tells the supervisor, when the supervisor counts completions.
    fn completion(&self) -> Completion {
        match (self.counting_completions, self.supervisor.get()) {
            (true, Some(s)) => {
                let s = s.clone();
                Completion::new(move || s.do_send(SupervisorMsg(Msg::Completed)))
            }
            _ => Completion::unobserved(),
        }
    }

    /// Sends a core message to the supervisor.
    pub fn send_supervisor(&self, msg: Msg) {
        if let Some(s) = self.supervisor.get() {
            s.do_send(SupervisorMsg(msg));
        }
    }

    fn scanner(&self, queue: QueueName) -> Option<&ActixAddr<ScannerActor>> {
        let [incoming, deferred] = self.scanners.get()?;
        Some(match queue {
            QueueName::Incoming => incoming,
            QueueName::Deferred => deferred,
        })
    }

    /// Delivers a core message to the entity `to` names, starting a transport
    /// on first use.
    pub fn send(self: &Arc<Host>, to: Addr, msg: Msg) {
        match to {
            Addr::Supervisor => self.send_supervisor(msg),
            Addr::Transport(name) => self.registry.with_transport(
                &name,
                || TransportActor::new(Arc::clone(self), &name).start(),
                |addr| addr.do_send(TransportMsg(msg)),
            ),
            Addr::Destination(id) => {
                let unsent = if matches!(msg, Msg::Stop) {
                    match self.registry.remove_destination(&id) {
                        Some(addr) => {
                            addr.do_send(DestinationMsg(msg));
                            None
                        }
                        None => Some(msg),
                    }
                } else {
                    // The message goes back out when there is no such
                    // destination, for the warning.
                    let mut msg = Some(msg);
                    self.registry.with_destination(&id, |addr| {
                        if let Some(m) = msg.take() {
                            addr.do_send(DestinationMsg(m));
                        }
                    });
                    msg
                };
                if let Some(msg) = unsent {
                    tracing::warn!(dest = %id, ?msg, "message for unknown destination dropped")
                }
            }
        }
    }

    /// A collector for one core step. Trace events are built only when
    /// someone reads them (a trace sink, or `debug` logging of
    /// `oqmgr::trace`): otherwise the core skips them unbuilt, and with them
    /// the string copies each one makes (several per delivery).
    pub(crate) fn effects(&self) -> Effects {
        if self.trace_sink.is_some()
            || tracing::enabled!(target: "oqmgr::trace", tracing::Level::DEBUG)
        {
            Effects::new()
        } else {
            Effects::untraced()
        }
    }

    fn trace(&self, now: Instant, event: oqmgr::trace::TraceEvent) {
        if tracing::enabled!(target: "oqmgr::trace", tracing::Level::DEBUG) {
            let wall = crate::postfix::log_format::LocalTime::epoch_seconds();
            for line in crate::postfix::verbose::lines(&event, now, wall) {
                tracing::debug!(target: "oqmgr::trace", "{line}");
            }
        }
        if let Some(sink) = &self.trace_sink {
            sink.do_send(TraceLine { at: now, event });
        }
    }
}

/// An actor that hosts one core entity.
pub(crate) trait Entity: Actor<Context = Context<Self>> {
    /// The entity's core address (the owner of the timers it arms).
    fn core_addr(&self) -> Addr;
    /// The shared state.
    fn host(&self) -> &Arc<Host>;
    /// Runs the core entity on one message.
    fn step(&mut self, now: Instant, msg: Msg, out: &mut Effects);
}

/// Runs one core step on `act` and carries out its effects.
pub(crate) fn handle<A: Entity>(act: &mut A, msg: Msg, ctx: &mut Context<A>) {
    let now = act.host().clock().now();
    let mut out = act.host().effects();
    act.step(now, msg, &mut out);
    let host = Arc::clone(act.host());
    run(&host, &act.core_addr(), now, out, ctx);
}

/// Carries out the effects of one step of the entity `me`, in order.
pub(crate) fn run<A: Entity>(
    host: &Arc<Host>,
    me: &Addr,
    now: Instant,
    mut out: Effects,
    ctx: &mut Context<A>,
) {
    for effect in out.drain() {
        match effect {
            Effect::Send(to, msg) => host.send(to, msg),
            Effect::Spawn {
                id,
                key,
                nexthop,
                epoch,
            } => {
                let params = host.transport_params(&key.transport);
                let addr = DestinationActor::new(Arc::clone(host), id, key, nexthop, epoch, params)
                    .start();
                host.registry.insert_destination(id, addr);
            }
            Effect::Arm { owner, at, timer } => {
                // The core arms only the stepping entity's own timers; a
                // broken invariant ends the daemon (`abort_on_panic`).
                assert_eq!(owner, *me, "a core entity armed another's timer");
                let delay = host.clock.until(at);
                ctx.run_later(delay, move |act, ctx| handle(act, Msg::Timer(timer), ctx));
            }
            Effect::AllocAgent { transport, agent } => alloc(host, transport, agent),
            Effect::CloseAgent { transport, agent } => {
                if let Some(close) = host.agent(&transport).and_then(|a| a.close.as_ref()) {
                    close.do_send(Close {
                        transport: transport.to_string(),
                        agent,
                    });
                }
            }
            Effect::Deliver {
                agent,
                id,
                dest,
                nexthop,
                entry,
            } => {
                let queue_id = host.registry.queue_id(entry.message).unwrap_or_default();
                let to = Addr::Destination(id);
                let Some(a) = host.agent(&dest.transport) else {
                    tracing::warn!(transport = %dest.transport, "no delivery agent registered");
                    host.send(to, Msg::Report(agent::crashed(&entry)));
                    continue;
                };
                let crash = agent::crashed(&entry);
                let request = a.deliver.send(Deliver {
                    agent,
                    dest,
                    nexthop: nexthop.to_string(),
                    queue_id,
                    entry,
                });
                let host = Arc::clone(host);
                actix::spawn(async move {
                    let report = request.await.unwrap_or(crash);
                    host.send(to, Msg::Report(report));
                });
            }
            Effect::ScanStart { queue, flags } => {
                if let Some(s) = host.scanner(queue) {
                    s.do_send(ScanStart { flags });
                }
            }
            Effect::ScanNext(queue) => {
                if let Some(s) = host.scanner(queue) {
                    s.do_send(ScanNext);
                }
            }
            Effect::Admit {
                queue,
                id,
                flags,
                message,
                batch,
            } => {
                if let Some(s) = host.scanner(queue) {
                    s.do_send(Admit {
                        id: id.to_string(),
                        flags,
                        message,
                        batch,
                    });
                }
            }
            Effect::FlushAll => {
                for name in host.registry.transport_names() {
                    host.send(Addr::Transport(name.into()), Msg::Flush);
                }
            }
            Effect::Refill { message, batch } => refill(host, message, batch),
            Effect::Discard { message, recipient } => {
                if let Some(id) = host.registry.queue_id(message) {
                    host.store().discard(&id, &recipient);
                }
            }
            Effect::DeferRecipients {
                message,
                recipients,
                dsn,
            } => {
                if let Some(id) = host.registry.queue_id(message) {
                    host.store().defer_recipients(&id, &recipients, &dsn);
                }
            }
            // Carried by the message's trace flags, as in Postfix: nothing
            // for the host to do (see `crate::queue_store`).
            Effect::DelayCleared(_) => {}
            Effect::Complete { message, verdict } => {
                let done = host.completion();
                match host.registry.remove_queue_id(message) {
                    Some(id) => host.store().complete(&id, &verdict, done),
                    None => tracing::warn!("completion of an unknown message {message}"),
                }
            }
            Effect::Log(LogLevel::Info, text) => tracing::info!("{text}"),
            Effect::Log(LogLevel::Warning, text) => tracing::warn!("{text}"),
            Effect::Trace(event) => host.trace(now, event),
        }
    }
}

/// Asks the transport's agent for a connection; the answer goes back to the
/// transport as `AgentReady` or `AgentFailed`.
fn alloc(host: &Arc<Host>, transport: oqmgr::name::Name, agent: oqmgr::entry::AgentId) {
    let to = Addr::Transport(transport.clone());
    let failed = |dsn| Msg::AgentFailed { agent, dsn };
    match host.agent(&transport) {
        Some(DeliveryAgent {
            connect: Some(connect),
            ..
        }) => {
            let request = connect.send(Connect {
                transport: transport.to_string(),
                agent,
            });
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
                host.send(to, msg);
            });
        }
        Some(a) if a.deliver.connected() => host.send(to, Msg::AgentReady(agent)),
        _ => host.send(to, failed(agent::unavailable())),
    }
}

/// Reads the next batch of an admitted message's recipients and hands it to
/// the supervisor. The supervisor waits for this answer, so every path
/// answers; a failed read keeps the message for a later attempt.
fn refill(host: &Arc<Host>, message: oqmgr::entry::MessageId, batch: u32) {
    let read = match host.registry.queue_id(message) {
        Some(id) => host
            .store()
            .read(&id, batch)
            .map_err(|why| format!("{id}: {why}")),
        None => Err("no queue file is known for it".to_string()),
    };
    let answer = match read {
        Ok(batch) => Msg::Refilled {
            message,
            recipients: batch.recipients,
            more: batch.more,
            read_error: false,
        },
        Err(why) => {
            tracing::warn!("refill failed: {why}");
            Msg::Refilled {
                message,
                recipients: Vec::new(),
                more: false,
                read_error: true,
            }
        }
    };
    host.send_supervisor(answer);
}
