//! oqmgr-bench-scheduler - the scheduling core's own speed, with no I/O.
//!
//! Runs the simulator with instant agents (fixed latency, so every
//! recipient is in core before the first delivery ends) and reports
//! scheduling decisions per second, peak resident memory per in-core
//! recipient, and the cost per decision, so that it can be compared across
//! sizes to show it stays flat. `--summary` also prints each run's totals
//! line and a digest of its whole summary, so that a change meant to be
//! faster can be shown to leave every decision as it was.

use oqmgr::sim::scenario::{Arrival, Latency, Scenario, ServerBehaviour, Span, TriggerAt};
use oqmgr::sim::{Options, Simulation};
use oqmgr::time::Duration;

/// Builds the benchmark scenario: `recipients` recipients in messages of
/// `per_message` each, spread over `destinations` domains, all in core at
/// once.
pub fn scenario(recipients: u32, destinations: u32, per_message: u32) -> Scenario {
    let per_message = per_message.max(1);
    let mut s = Scenario::default();
    let limit = recipients.max(1).to_string();
    for (k, v) in [
        ("qmgr_message_active_limit", limit.as_str()),
        ("qmgr_message_recipient_limit", limit.as_str()),
        ("qmgr_clog_warn_time", "0"),
    ] {
        s.params.insert(
            k.into(),
            oqmgr::sim::scenario::toml_value::Value::Text(v.into()),
        );
    }
    s.arrivals.push(Arrival {
        at: Span::default(),
        count: recipients / per_message,
        every: Span::default(),
        recipients: per_message,
        domains: (0..destinations).map(|d| format!("d{d}.example")).collect(),
        sender: "bench@origin.example".into(),
        user: "u".into(),
        numbered: true,
        queue: "incoming".into(),
        age: Span::default(),
        verp: false,
    });
    s.destinations.insert(
        "*".into(),
        ServerBehaviour {
            latency: Latency::Fixed {
                value: Span(Duration::from_millis(1)),
            },
            ..ServerBehaviour::default()
        },
    );
    // No periodic scan interferes within the run.
    s.triggers = Vec::<TriggerAt>::new();
    s
}

/// Peak resident set size of this process in KiB (Linux `VmHWM`).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

/// `oqmgr-bench-scheduler`'s options.
#[derive(Clone, Debug, clap::Parser)]
#[command(
    name = "oqmgr-bench-scheduler",
    about = "Measure the scheduling core's own speed, without I/O"
)]
pub struct BenchArgs {
    /// Recipients in core for one run; repeat for several runs (default
    /// 1000000). List sizes in increasing order: peak RSS is per process.
    #[arg(long = "recipients", value_name = "N")]
    pub sizes: Vec<u32>,
    /// Destination domains the recipients are spread over.
    #[arg(long, default_value_t = 10_000, value_name = "D")]
    pub destinations: u32,
    /// Recipients per message.
    #[arg(long, default_value_t = 1, value_name = "R",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub per_message: u32,
    /// Also print each run's totals line and a digest of its summary.
    #[arg(long = "summary")]
    pub summary_totals: bool,
}

/// Runs the scheduler benchmark; returns the exit code.
pub fn main(args: BenchArgs) -> i32 {
    let BenchArgs {
        mut sizes,
        destinations,
        per_message,
        summary_totals,
    } = args;
    if sizes.is_empty() {
        sizes = vec![1_000_000];
    }
    println!("messages of {per_message} recipient(s); peak RSS is per process, so list sizes in increasing order");
    println!(
        "{:>10} {:>8} {:>12} {:>10} {:>14} {:>12} {:>14}",
        "recipients", "dests", "decisions", "seconds", "decisions/s", "ns/decision", "RSS B/rcpt"
    );
    for n in sizes {
        let sim = Simulation::new(
            scenario(n, destinations, per_message),
            Options {
                trace: false,
                ..Options::default()
            },
        );
        #[allow(clippy::disallowed_methods)] // a benchmark measures wall time
        let start = std::time::Instant::now();
        let (_, summary) = sim.run();
        let secs = start.elapsed().as_secs_f64();
        let decisions: u64 = summary
            .split_whitespace()
            .find_map(|w| w.strip_prefix("selections=")?.parse().ok())
            .unwrap_or(0);
        let rss = peak_rss_kib() * 1024;
        println!(
            "{:>10} {:>8} {:>12} {:>10.2} {:>14.0} {:>12.0} {:>14.0}",
            n,
            destinations,
            decisions,
            secs,
            decisions as f64 / secs,
            secs * 1e9 / decisions.max(1) as f64,
            rss as f64 / f64::from(n.max(1)),
        );
        if summary_totals {
            // The run's totals line, to check that a change to the core
            // left every decision as it was.
            if let Some(totals) = summary.lines().find(|l| l.starts_with("total:")) {
                println!("{totals}");
            }
            // The per-destination lines are too many to print: a digest
            // of the whole summary (FNV-1a) stands for them.
            let digest = summary.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
            });
            println!(
                "summary: {} lines, FNV-1a {digest:016x}",
                summary.lines().count()
            );
        }
    }
    0
}
