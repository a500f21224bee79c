//! Starting a scheduler (Postfix: `qmgr.c` `main()` and `qmgr_post_init`).
//!
//! [`Scheduler::builder`] collects what the actors need (parameters and
//! a [`QueueStore`](crate::queue_store::QueueStore), always given: the daemon's
//! is the queue directory, tests bring their own; then one
//! [`DeliveryAgent`] per transport and an optional trace sink) and
//! [`SchedulerBuilder::start`] starts the scanners, the supervisor and the
//! event loop on the current actix `System`; transports and destinations
//! start on demand. The returned [`Scheduler`] is the handle for triggers.
//! [`SchedulerBuilder::start_with`] puts another [`Outside`] where the
//! registered agents would be (tests: the simulator's world).
//!
//! # Example
//! ```no_run
//! # use oqmgr_actors::scheduler::Scheduler;
//! # fn agent() -> actix::Recipient<oqmgr_actors::agent::Deliver> { unimplemented!() }
//! # fn queue_store() -> oqmgr_actors::queue_store::SharedStore { unimplemented!() }
//! # actix::System::new().block_on(async {
//! let (params, _warnings) = oqmgr::params::Params::from_pairs(&[]).unwrap();
//! let scheduler = Scheduler::builder(params, queue_store())
//!     .with_transport("smtp", agent())
//!     .start();
//! scheduler.trigger(b"I");
//! # });
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use actix::{Actor, Addr, Message, Recipient};
use oqmgr::active::Supervisor;
use oqmgr::effect::{Addr as CoreAddr, Msg};
use oqmgr::params::Params;
use oqmgr::scan::QueueName;
use oqmgr::time::Instant;
use oqmgr::trace::Line;

use crate::agent::{Deliver, DeliveryAgent};
use crate::clock::Clock;
use crate::host::{self, Host};
use crate::metrics::Metrics;
use crate::outside::{Agents, Outside};
use crate::queue_store::SharedStore;
use crate::scanner_actor::ScannerActor;
use crate::supervisor_actor::SupervisorActor;

/// One line of the trace for a trace sink: the time of the step that
/// produced it, and the line.
#[derive(Clone, Debug, Message)]
#[rtype(result = "()")]
pub struct TraceLine {
    /// The core time of the step that produced it.
    pub at: Instant,
    /// The line.
    pub line: Line,
}

impl std::fmt::Display for TraceLine {
    /// The simulator's trace format, so traces of both hosts compare.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.line.stamped(self.at))
    }
}

/// Collects a scheduler's configuration.
pub struct SchedulerBuilder {
    /// Parameters.
    params: Params,
    /// Agents by transport name.
    agents: BTreeMap<String, DeliveryAgent>,
    /// The agent for every other transport name.
    default_agent: Option<DeliveryAgent>,
    /// The queue store.
    store: SharedStore,
    /// The trace sink, if any.
    trace_sink: Option<Recipient<TraceLine>>,
    /// The clock (default: Unix-epoch wall clock).
    clock: Option<Clock>,
    /// What the metrics count, when they are on.
    metrics: Option<Arc<Metrics>>,
}

impl SchedulerBuilder {
    /// Registers the delivery agent of transport `name`, with no connection
    /// step.
    pub fn with_transport(self, name: &str, deliver: Recipient<Deliver>) -> SchedulerBuilder {
        self.with_agent(name, DeliveryAgent::new(deliver))
    }

    /// Registers a delivery agent with its optional connect and close steps.
    pub fn with_agent(mut self, name: &str, agent: DeliveryAgent) -> SchedulerBuilder {
        self.agents.insert(name.to_string(), agent);
        self
    }

    /// Registers the agent for every transport name without its own
    /// (the daemon: Postfix's delivery agents over `private/<name>`).
    pub fn with_default_agent(mut self, agent: DeliveryAgent) -> SchedulerBuilder {
        self.default_agent = Some(agent);
        self
    }

    /// Sends every trace event to `sink` as well as to `tracing`.
    pub fn with_trace_sink(mut self, sink: Recipient<TraceLine>) -> SchedulerBuilder {
        self.trace_sink = Some(sink);
        self
    }

    /// Uses this clock (tests: [`Clock::starting_at`] zero).
    pub fn with_clock(mut self, clock: Clock) -> SchedulerBuilder {
        self.clock = Some(clock);
        self
    }

    /// Counts what the metrics need as it happens ([`crate::metrics`]).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> SchedulerBuilder {
        self.metrics = Some(metrics);
        self
    }

    /// Starts the scanners, the supervisor and the event loop on the
    /// current actix System, with the registered agents. Must be called
    /// from within a running System.
    pub fn start(mut self) -> Scheduler {
        let agents = Agents::new(std::mem::take(&mut self.agents), self.default_agent.take());
        self.start_with(agents)
    }

    /// Like [`SchedulerBuilder::start`], with `outside` where the
    /// registered agents would be (those are then not used).
    pub fn start_with<O: Outside>(self, outside: O) -> Scheduler {
        let clock = self.clock.unwrap_or_else(Clock::wall);
        let (host, inputs) = Host::new(
            clock,
            self.params,
            self.store,
            self.trace_sink,
            self.metrics,
        );
        let host = Arc::new(host);
        let incoming = ScannerActor::new(QueueName::Incoming, Arc::clone(&host)).start();
        let deferred = ScannerActor::new(QueueName::Deferred, Arc::clone(&host)).start();
        let mut core = Supervisor::new(host.params().clone());
        if host.counts_completions() {
            core = core.counting_completions();
        }
        let supervisor = SupervisorActor::new(core, Arc::clone(&host)).start();
        // Wired before the loop runs: its first step's effects are scan
        // requests for these scanners.
        host.wire(supervisor.clone(), [incoming, deferred]);
        actix::spawn(host::run(Arc::clone(&host), outside, inputs));
        Scheduler { host, supervisor }
    }
}

/// A running scheduler.
#[derive(Clone)]
pub struct Scheduler {
    /// The shared state.
    host: Arc<Host>,
    /// The supervisor.
    supervisor: Addr<SupervisorActor>,
}

impl Scheduler {
    /// Starts configuring a scheduler with these parameters on this queue
    /// store.
    pub fn builder(params: Params, store: SharedStore) -> SchedulerBuilder {
        SchedulerBuilder {
            params,
            agents: BTreeMap::new(),
            default_agent: None,
            store,
            trace_sink: None,
            clock: None,
            metrics: None,
        }
    }

    /// Delivers trigger bytes, as a `public/qmgr` client would (`A`, `D`,
    /// `F`, `I`, `W`; unknown bytes are ignored by the core).
    pub fn trigger(&self, bytes: &[u8]) {
        if let Some(m) = self.host.metrics() {
            m.triggered(bytes);
        }
        self.host
            .input(CoreAddr::Supervisor, Msg::Trigger(bytes.to_vec()));
    }

    /// The supervisor's address.
    pub fn supervisor(&self) -> &Addr<SupervisorActor> {
        &self.supervisor
    }

    /// The scheduler's clock.
    pub fn clock(&self) -> Clock {
        *self.host.clock()
    }

    /// The shared state (registry, store, parameters).
    pub fn host(&self) -> &Arc<Host> {
        &self.host
    }
}

/// Makes any panic end the process (the crash policy: a broken invariant
/// ends the queue manager and master(8) restarts it, as with Postfix).
///
/// Needed because tokio catches a panic inside a spawned task, so without
/// this an actor whose core entity hit an `assert!` would silently vanish
/// and the rest of the scheduler would wait for it forever. The daemon calls
/// this once at startup; tests do not (their own assertions panic).
pub fn abort_on_panic() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        std::process::abort();
    }));
}
