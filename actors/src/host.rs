//! The actors' shared state, and their event loop: the one interpreter of
//! core effects, the same [`EventLoop`] the simulator drives.
//!
//! Every core entity lives in an actor (the supervisor, one per transport,
//! one per destination) and the queue scanners are actors too. A step of
//! an entity is a [`Step`] message to its actor, which runs the core value
//! and answers with the step's effects. [`run`] is the loop that sends
//! those steps: it takes the next message off the loop's bus, awaits the
//! addressee's effects, and carries them out in order before it takes the
//! next (Postfix's queue manager is one event loop on one thread, too).
//! So every message is delivered in one global send order, timers and
//! answers fire by (time, arming number), and on the same inputs the
//! actors take the simulator's decisions in the simulator's order: agent
//! numbers, same-instant completions and all (`actors/tests/actors.rs`
//! checks it, byte for byte, on every scenario).
//!
//! What the loop reaches outside the scheduler is an [`Outside`]: the
//! daemon's delivery agents, whose answers come back as input from other
//! tasks ([`Host::input`], like triggers and finished completions), or in
//! tests the simulator's world, which schedules its answers in the loop.
//!
//! An operator's command ([`Host::command`], from the control socket) is
//! input too: a step of the supervisor like any other, whose log lines go
//! back to the caller. A simulated world hands the loop its scenario's
//! commands when they are due, as the simulator runs them: a command
//! joins the bus, and `destinations` prints the table of the live state
//! ([`crate::control::live_query`]) into the trace.
//!
//! # Invariants
//! - one step at a time: a message is delivered only when the previous
//!   step's effects were carried out, a timer or an input only when the
//!   bus is empty;
//! - effects are carried out in the order the core produced them; a
//!   `Spawn` starts the destination before the `Send` that follows it,
//!   and the answer to a scan or an admission is queued due now, behind
//!   the inputs already in (`EventLoop::answer`), so agents' answers and
//!   triggers are taken between two reads of the queue, as oqmgr does;
//! - the core arms only the stepping entity's timers (checked); the loop
//!   keeps them and delivers each to its owner's actor;
//! - a message for a destination that no longer exists is logged and
//!   dropped (a timer silently), never a panic (the simulator panics: there
//!   it is a core bug, here the daemon must keep running);
//! - an operator's command is answered with the log lines of its own step:
//!   it reaches the bus from a timer, when the bus is empty, so it is the
//!   next message delivered.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use actix::{Actor, Addr as ActixAddr, Context, Message, Recipient};
use oqmgr::control::Command;
use oqmgr::effect::{Addr, Effect, Effects, LogLevel, Msg};
use oqmgr::events::{Event, EventLoop};
use oqmgr::live_state::Tally;
use oqmgr::params::{GlobalParams, Params, TransportParams};
use oqmgr::scan::QueueName;
use oqmgr::sim::scenario::{CommandAt, Operator};
use oqmgr::time::Instant;
use oqmgr::trace::{Line, TraceEvent};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::oneshot;

use crate::agent::Deliver;
use crate::clock::Clock;
use crate::destination_actor::DestinationActor;
use crate::metrics::Metrics;
use crate::outside::Outside;
use crate::queue_store::{Completion, QueueStore, SharedStore};
use crate::registry::Registry;
use crate::scanner_actor::{Admit, ScanNext, ScanStart, ScannerActor};
use crate::scheduler::TraceLine;
use crate::supervisor_actor::{Start, SupervisorActor};
use crate::transport_actor::TransportActor;

/// A message for the loop from another task: for whom, what, and for an
/// operator's command, where the log lines of its step go.
pub type Input = (Addr, Msg, Option<Reply>);

/// Where the log lines of an operator command's step go.
pub type Reply = oneshot::Sender<Vec<String>>;

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
    /// Queue-file access.
    store: SharedStore,
    /// Where trace lines go besides `tracing`.
    trace_sink: Option<Recipient<TraceLine>>,
    /// Input for the loop from other tasks and threads.
    inputs: UnboundedSender<Input>,
    /// The supervisor, set once at startup.
    supervisor: OnceLock<ActixAddr<SupervisorActor>>,
    /// The incoming and deferred scanners, set once at startup.
    scanners: OnceLock<[ActixAddr<ScannerActor>; 2]>,
    /// The store finishes completions later, and the supervisor counts
    /// them until it does ([`QueueStore::completes_later`]).
    counting_completions: bool,
    /// Delivery outcomes per transport since start, for the operator
    /// (`crate::control::live_query`).
    tally: Mutex<BTreeMap<String, Tally>>,
    /// What the metrics count as it happens, when they are on.
    metrics: Option<Arc<Metrics>>,
}

impl Host {
    /// Shared state for a scheduler not yet started, and the receiving end
    /// of its input, for [`run`].
    pub(crate) fn new(
        clock: Clock,
        params: Params,
        store: SharedStore,
        trace_sink: Option<Recipient<TraceLine>>,
        metrics: Option<Arc<Metrics>>,
    ) -> (Host, UnboundedReceiver<Input>) {
        let counting_completions = store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .completes_later();
        let (inputs, received) = unbounded_channel();
        let host = Host {
            counting_completions,
            clock,
            global: Arc::new(params.global.clone()),
            params,
            registry: Registry::default(),
            store,
            trace_sink,
            inputs,
            supervisor: OnceLock::new(),
            scanners: OnceLock::new(),
            tally: Mutex::default(),
            metrics,
        };
        (host, received)
    }

    /// The metrics, when they are on.
    pub fn metrics(&self) -> Option<&Arc<Metrics>> {
        self.metrics.as_ref()
    }

    /// Delivery outcomes per transport since start.
    pub fn tally(&self) -> BTreeMap<String, Tally> {
        self.tally.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Counts the outcomes of one delivery report of `transport`.
    pub(crate) fn count(&self, transport: &str, report: &oqmgr::entry::DeliveryReport) {
        let mut tally = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        match tally.get_mut(transport) {
            Some(t) => t.count(report),
            None => {
                let mut t = Tally::default();
                t.count(report);
                tally.insert(transport.to_string(), t);
            }
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

    /// The supervisor's actor (for the live-state query).
    pub(crate) fn supervisor(&self) -> &ActixAddr<SupervisorActor> {
        self.supervisor.get().expect("scheduler wired")
    }

    /// The clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
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
                self.line(self.clock.now(), Line::ConfigWarning(w.message));
            }
            tp
        })
    }

    /// Hands `msg` for `to` to the loop, from any task or thread: it is
    /// delivered once the bus is empty, in the order inputs arrive
    /// (agents' answers, triggers, finished completions).
    pub fn input(&self, to: Addr, msg: Msg) {
        // Only a loop that ended drops its receiver: nothing is left to tell.
        let _ = self.inputs.send((to, msg, None));
    }

    /// Runs an operator's command as a step of the supervisor, in the
    /// loop's order; answers the log lines it produced (what was done, in
    /// words), or `None` when the loop has ended.
    pub async fn command(&self, command: Command) -> Option<Vec<String>> {
        let (reply, answer) = oneshot::channel();
        let input = (Addr::Supervisor, Msg::Control(command), Some(reply));
        self.inputs.send(input).ok()?;
        answer.await.ok()
    }

    /// The handle a store drops when it has carried out a completion: it
    /// tells the supervisor, when the supervisor counts completions.
    fn completion(&self) -> Completion {
        if !self.counting_completions {
            return Completion::unobserved();
        }
        let inputs = self.inputs.clone();
        Completion::new(move || {
            let _ = inputs.send((Addr::Supervisor, Msg::Completed, None));
        })
    }

    fn scanner(&self, queue: QueueName) -> &ActixAddr<ScannerActor> {
        let [incoming, deferred] = self.scanners.get().expect("scheduler wired");
        match queue {
            QueueName::Incoming => incoming,
            QueueName::Deferred => deferred,
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

    /// Sends a trace line to the sink, if there is one.
    fn line(&self, at: Instant, line: Line) {
        if let Some(sink) = &self.trace_sink {
            sink.do_send(TraceLine { at, line });
        }
    }

    fn trace(&self, now: Instant, event: TraceEvent) {
        if tracing::enabled!(target: "oqmgr::trace", tracing::Level::DEBUG) {
            let wall = crate::postfix::log_format::LocalTime::epoch_seconds();
            for line in crate::postfix::verbose::lines(&event, now, wall) {
                tracing::debug!(target: "oqmgr::trace", "{line}");
            }
        }
        self.line(now, Line::Event(event));
    }
}

/// One step of a core entity: the message, and the time of the step;
/// answered with the step's effects, which the loop carries out.
#[derive(Debug, Message)]
#[rtype(result = "Effects")]
pub(crate) struct Step {
    /// The loop's time.
    pub(crate) now: Instant,
    /// The message.
    pub(crate) msg: Msg,
}

/// An actor that hosts one core entity.
pub(crate) trait Entity: Actor<Context = Context<Self>> {
    /// The shared state.
    fn host(&self) -> &Arc<Host>;
    /// Runs the core entity on one message.
    fn step(&mut self, now: Instant, msg: Msg, out: &mut Effects);
}

/// Runs one core step on `act` and returns its effects.
pub(crate) fn step<A: Entity>(act: &mut A, step: Step) -> Effects {
    let mut out = act.host().effects();
    act.step(step.now, step.msg, &mut out);
    out
}

/// The event loop of one scheduler: runs until `outside` is finished or
/// reaches its limits (a simulated world; the daemon's agents never are),
/// or the host is gone.
pub(crate) async fn run<O: Outside>(
    host: Arc<Host>,
    mut outside: O,
    mut inputs: UnboundedReceiver<Input>,
) {
    let clock = host.clock;
    let mut lp: EventLoop<O::Event> = EventLoop::new(clock.now());
    // Operators' commands on their way, in the order they arrived, and
    // whether the message the bus holds now is a command the world gave.
    let mut replies: VecDeque<Option<Reply>> = VecDeque::new();
    let mut world_command = false;
    outside.start(&mut lp);
    let supervisor = host.supervisor.get().expect("scheduler wired").clone();
    let out = supervisor
        .send(Start(lp.now()))
        .await
        .expect("the supervisor runs");
    apply(&host, &mut lp, &mut outside, &Addr::Supervisor, out).await;
    loop {
        while let Some((to, msg)) = lp.next_message() {
            lp.advance(clock.now());
            let command = matches!(msg, Msg::Control(_));
            let out = deliver(&host, &mut lp, &to, msg).await;
            if command && !std::mem::take(&mut world_command) {
                if let Some(reply) = replies.pop_front().flatten() {
                    let _ = reply.send(logs(&out));
                }
            }
            apply(&host, &mut lp, &mut outside, &to, out).await;
        }
        if outside.finished() {
            break;
        }
        while let Ok(input) = inputs.try_recv() {
            queue_input(&mut lp, &mut replies, clock.now(), input);
        }
        let Some(at) = lp.next_timer() else {
            // A bounded run with nothing left to wait for ends, as the
            // simulator's does; the daemon waits for input.
            if outside.limits().is_some() {
                break;
            }
            match inputs.recv().await {
                Some(input) => queue_input(&mut lp, &mut replies, clock.now(), input),
                None => break,
            }
            continue;
        };
        if let Some((until, max_steps)) = outside.limits() {
            if at > until || lp.steps() >= max_steps {
                let steps = lp.steps();
                host.line(lp.now(), Line::Stop { steps });
                break;
            }
        }
        if at > clock.now() {
            tokio::select! {
                () = actix::clock::sleep(clock.until(at)) => {}
                input = inputs.recv() => {
                    if let Some(input) = input {
                        queue_input(&mut lp, &mut replies, clock.now(), input);
                    }
                    continue;
                }
            }
        }
        if let Some(event) = lp.fire(clock.now().max(at)) {
            if let Some(command) = outside.fire(&mut lp, event) {
                world_command = scenario_command(&host, &mut lp, &command).await;
            }
        }
    }
    outside.stopped(&lp);
}

/// Queues an input as a timer due now, behind every timer already due;
/// an operator's command leaves its reply in line.
fn queue_input<W>(
    lp: &mut EventLoop<W>,
    replies: &mut VecDeque<Option<Reply>>,
    now: Instant,
    (to, msg, reply): Input,
) {
    if matches!(msg, Msg::Control(_)) {
        replies.push_back(reply);
    }
    lp.advance(now);
    let now = lp.now();
    lp.at(now, Event::Send(to, msg));
}

/// The log lines among a step's effects.
fn logs(out: &Effects) -> Vec<String> {
    out.list
        .iter()
        .filter_map(|e| match e {
            Effect::Log(_, text) => Some(text.clone()),
            _ => None,
        })
        .collect()
}

/// Runs a simulated world's operator command, as the simulator does: a
/// command for the supervisor goes onto the (empty) bus, and true comes
/// back; `destinations` prints the live state's table into the trace.
async fn scenario_command<W>(host: &Arc<Host>, lp: &mut EventLoop<W>, command: &CommandAt) -> bool {
    let now = lp.now();
    host.line(now, Line::Command(command.run.clone()));
    match command.parse() {
        Ok(Operator::Control(c)) => {
            lp.send(Addr::Supervisor, Msg::Control(c));
            true
        }
        Ok(Operator::Destinations(filter)) => {
            if let Some(mut state) = crate::control::live_query::live_state(host, false).await {
                state.now_ms = now.as_millis();
                for l in filter.trace_table(&state).lines() {
                    host.line(now, Line::Output(l.to_string()));
                }
            }
            false
        }
        Err(why) => {
            tracing::warn!("scenario command {:?} ignored: {why}", command.run);
            false
        }
    }
}

/// Delivers one message to its entity's actor and returns the step's
/// effects; a transport's actor starts on its first message.
async fn deliver<W>(host: &Arc<Host>, lp: &mut EventLoop<W>, to: &Addr, msg: Msg) -> Effects {
    let step = Step { now: lp.now(), msg };
    let answer = match to {
        Addr::Supervisor => {
            let s = host.supervisor.get().expect("scheduler wired");
            s.send(step).await
        }
        Addr::Transport(name) => {
            let addr = match host.registry.transport(name) {
                Some(addr) => addr,
                None => {
                    let addr = TransportActor::new(Arc::clone(host), name).start();
                    host.registry.insert_transport(name, addr.clone());
                    lp.transport_created(name.clone());
                    addr
                }
            };
            addr.send(step).await
        }
        Addr::Destination(id) => {
            let Some(addr) = host.registry.destination(id) else {
                // A forgotten destination's timer finds nobody, as in the
                // simulator; anything else is worth a line.
                if !matches!(step.msg, Msg::Timer(_)) {
                    tracing::warn!(dest = %id, msg = ?step.msg, "message for unknown destination dropped");
                }
                return Effects::untraced();
            };
            let stop = matches!(step.msg, Msg::Stop);
            let answer = addr.send(step).await;
            if stop {
                host.registry.remove_destination(id);
            }
            answer
        }
    };
    // An entity's actor ends only by `Stop`, or by a panic (which ends
    // the daemon, `abort_on_panic`).
    answer.unwrap_or_else(|e| panic!("the actor of {to:?} is gone: {e}"))
}

/// Carries out the effects of one step of the entity `me`, in order.
async fn apply<O: Outside>(
    host: &Arc<Host>,
    lp: &mut EventLoop<O::Event>,
    outside: &mut O,
    me: &Addr,
    mut out: Effects,
) {
    let now = lp.now();
    for effect in out.drain() {
        if let Effect::Arm { owner, .. } = &effect {
            // A broken invariant ends the daemon (`abort_on_panic`).
            assert_eq!(owner, me, "a core entity armed another's timer");
        }
        let Some(effect) = lp.route(effect) else {
            continue;
        };
        match effect {
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
            Effect::AllocAgent { transport, agent } => outside.connect(host, lp, transport, agent),
            Effect::CloseAgent { transport, agent } => outside.close(host, transport, agent),
            Effect::Deliver {
                agent,
                id,
                dest,
                nexthop,
                entry,
            } => {
                let queue_id = host.registry.queue_id(entry.message).unwrap_or_default();
                let request = Deliver {
                    agent,
                    dest,
                    nexthop: nexthop.to_string(),
                    queue_id,
                    entry,
                };
                outside.deliver(host, lp, id, request);
            }
            Effect::ScanStart { queue, flags } => {
                // Awaited, so the walk is taken before anything after it.
                let _ = host.scanner(queue).send(ScanStart { flags }).await;
            }
            Effect::ScanNext(queue) => {
                let answer = host.scanner(queue).send(ScanNext).await;
                let answer = answer.unwrap_or(Msg::ScanResult { queue, id: None });
                lp.advance(host.clock.now());
                lp.answer(Addr::Supervisor, answer);
            }
            Effect::Admit {
                queue,
                id,
                flags,
                message,
                batch,
            } => {
                let request = Admit {
                    id: id.to_string(),
                    flags,
                    message,
                    batch,
                };
                let answer = host.scanner(queue).send(request).await;
                let answer = answer.unwrap_or(Msg::AdmitFailed { id });
                lp.advance(host.clock.now());
                lp.answer(Addr::Supervisor, answer);
            }
            Effect::Refill { message, batch } => {
                lp.send(Addr::Supervisor, refill(host, message, batch));
            }
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
                if let Some(m) = &host.metrics {
                    let cause = oqmgr::route::QmgrDeferral::of_reason(&dsn.reason);
                    m.qmgr_deferred(cause, recipients.len());
                }
                if let Some(id) = host.registry.queue_id(message) {
                    host.store().defer_recipients(&id, &recipients, &dsn);
                }
            }
            Effect::DelayCleared(message) => {
                if let Some(id) = host.registry.queue_id(message) {
                    host.store().delay_cleared(&id);
                }
            }
            Effect::Retry(ids) => host.store().retry(&ids, now),
            Effect::Complete { message, verdict } => {
                let done = host.completion();
                match host.registry.remove_queue_id(message) {
                    Some(id) => host.store().complete(&id, &verdict, done),
                    None => tracing::warn!("completion of an unknown message {message}"),
                }
            }
            Effect::Log(level, text) => {
                match level {
                    LogLevel::Info => tracing::info!("{text}"),
                    LogLevel::Warning => tracing::warn!("{text}"),
                }
                host.line(now, Line::Log(level, text));
            }
            Effect::Trace(event) => host.trace(now, event),
            Effect::Send(..) | Effect::Arm { .. } | Effect::FlushAll => {
                unreachable!("the event loop routes {effect:?}")
            }
        }
    }
}

/// Reads the next batch of an admitted message's recipients: the answer
/// for the supervisor, which waits for it, so every path answers; a failed
/// read keeps the message for a later attempt.
fn refill(host: &Arc<Host>, message: oqmgr::entry::MessageId, batch: u32) -> Msg {
    let read = match host.registry.queue_id(message) {
        Some(id) => host
            .store()
            .read(&id, batch)
            .map_err(|why| format!("{id}: {why}")),
        None => Err("no queue file is known for it".to_string()),
    };
    match read {
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
    }
}
