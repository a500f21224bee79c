//! Runs simulator scenarios through the actors: the scheduler's actors on
//! a paused tokio clock, with the simulator's own world plugged in where
//! the daemon has its queue directory and delivery agents
//! (`oqmgr_devtools::simworld`), and a sink that collects the trace. The
//! paused clock advances only when every task is idle, and the event loop
//! sleeps until its next timer, so virtual time runs as in the simulator.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use actix::{Actor, Context, Handler, Message};
use figment::providers::{Format, Toml};
use figment::Figment;
use oqmgr::params::Params;
use oqmgr::sim::scenario::Scenario;
use oqmgr::sim::world::World;
use oqmgr::sim::Options;
use oqmgr::time::{Duration, Instant};
use oqmgr::trace::Line;
use oqmgr_actors::agent::DeliveryAgent;
use oqmgr_actors::clock::Clock;
use oqmgr_actors::queue_store::SharedStore;
use oqmgr_actors::scheduler::{Scheduler, TraceLine};
use oqmgr_devtools::simworld::{SimStore, Simulated};

/// Every scenario file under `tests/scenarios/`, its subfolders included,
/// in path order.
pub fn scenario_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("a readable scenario folder") {
            let path = entry.expect("a folder entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "toml") {
                out.push(path);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/scenarios");
    let mut files = Vec::new();
    walk(&root, &mut files);
    files.sort();
    files
}

/// Reads a scenario file the way `oqmgr simulate` does.
pub fn load(path: &Path) -> Scenario {
    let text = std::fs::read_to_string(path).expect("a readable scenario");
    scenario(&text)
}

/// Parses a scenario written in TOML, as `oqmgr simulate` reads one.
pub fn scenario(text: &str) -> Scenario {
    let s: Scenario = Figment::from(Toml::string(text))
        .extract()
        .expect("test scenario parses");
    s.check().expect("test scenario is valid");
    s
}

/// What a run printed: the trace, and the summary.
#[derive(Debug, PartialEq)]
pub struct Run {
    /// Trace lines, each ending in a newline, as `oqmgr simulate` prints.
    pub trace: String,
    /// The summary table.
    pub summary: String,
}

/// Runs the scenario through the simulator.
pub fn simulate(s: &Scenario) -> Run {
    let (trace, summary) = oqmgr::sim::simulate(s.clone(), Options::default());
    Run { trace, summary }
}

/// Collects trace lines.
struct Sink(Arc<Mutex<Vec<String>>>);

impl Actor for Sink {
    type Context = Context<Self>;
}

impl Handler<TraceLine> for Sink {
    type Result = ();
    fn handle(&mut self, line: TraceLine, _ctx: &mut Context<Self>) {
        self.0.lock().unwrap().push(line.to_string());
    }
}

/// Answered once every line sent before it has been collected.
#[derive(Message)]
#[rtype(result = "()")]
struct Drained;

impl Handler<Drained> for Sink {
    type Result = ();
    fn handle(&mut self, _msg: Drained, _ctx: &mut Context<Self>) {}
}

/// An actix System on a current-thread tokio runtime whose clock is
/// paused: virtual time advances only when every task is idle.
pub fn paused_system() -> actix_rt::SystemRunner {
    actix_rt::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("tokio runtime")
    })
}

/// Runs the scenario through the actors on a paused tokio clock, with the
/// simulator's world, until the world is idle or the scenario's limits.
pub fn run_actors(s: &Scenario) -> Run {
    let s = s.clone();
    paused_system().block_on(async move {
        let (params, warnings) =
            Params::resolve(&s.raw_params()).expect("scenarios are checked as they are read");
        let options = Options::default();
        let until = Instant::ZERO + s.until.map_or(Duration::from_secs(7 * 86400), |u| u.0);
        let world = World::new(s.clone(), s.seed, params.global.delay_warning_time);
        let world = Arc::new(Mutex::new(world));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Sink(Arc::clone(&lines)).start();
        let (ended, end) = tokio::sync::oneshot::channel();
        let outside = Simulated::new(
            Arc::clone(&world),
            until,
            options.max_steps,
            Box::new(move |now, steps| {
                let _ = ended.send((now, steps));
            }),
        );
        let store: SharedStore = Arc::new(Mutex::new(SimStore(Arc::clone(&world))));
        let _scheduler = Scheduler::builder(params, store)
            .with_clock(Clock::starting_at(Instant::ZERO))
            .with_trace_sink(sink.clone().recipient())
            .start_with(outside);
        let (now, steps) = end.await.expect("the event loop runs to the end");
        sink.send(Drained).await.expect("the sink runs");
        // The simulator prints the scenario's configuration warnings
        // first; the daemon logs them at start-up, before any step.
        let mut trace = String::new();
        for w in warnings {
            trace.push_str(&Line::ConfigWarning(w.message).stamped(Instant::ZERO));
            trace.push('\n');
        }
        for line in lines.lock().unwrap().iter() {
            trace.push_str(line);
            trace.push('\n');
        }
        let summary = world.lock().unwrap().summary(now, steps);
        actix::System::current().stop();
        Run { trace, summary }
    })
}

/// Runs one message to `rcpt` (routed by default to `smtp:<domain>`) for
/// `secs` virtual seconds with the agents `agents()` makes, and returns the
/// trace lines.
pub fn run_one_message(
    agents: impl FnOnce() -> Vec<(String, DeliveryAgent)>,
    rcpt: &str,
    secs: u64,
) -> Vec<String> {
    let rcpt = rcpt.to_string();
    paused_system().block_on(async move {
        let (params, _) = Params::from_pairs(&[]).expect("defaults resolve");
        let clock = Clock::starting_at(Instant::ZERO);
        let files = SimStore::empty();
        let world = Arc::clone(&files.0);
        let store = Arc::new(Mutex::new(files));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Sink(Arc::clone(&lines)).start();
        let shared: SharedStore = store.clone();
        let mut builder = Scheduler::builder(params, shared)
            .with_clock(clock)
            .with_trace_sink(sink.clone().recipient());
        for (name, agent) in agents() {
            builder = builder.with_agent(&name, agent);
        }
        let scheduler = builder.start();
        SimStore(world).add(
            "Q000001",
            false,
            "sender@origin.example",
            &[rcpt],
            Instant::ZERO,
            Instant::ZERO,
            oqmgr::message::Warning::None,
        );
        scheduler.trigger(b"I");
        actix::clock::sleep(std::time::Duration::from_secs(secs)).await;
        sink.send(Drained).await.expect("the sink runs");
        actix::System::current().stop();
        let out = lines.lock().unwrap().clone();
        out
    })
}
