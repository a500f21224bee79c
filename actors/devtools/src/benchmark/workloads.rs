//! The benchmark workloads: what is loaded into a fresh Postfix instance
//! and what is measured, for any program in the qmgr slot.
//!
//! Every workload starts its own sandbox (default Postfix settings apart
//! from the loopback/no-DNS setup of [`crate::sandbox`]), injects mail with
//! `smtp-source` into the instance's smtpd (10 sessions kept open), and
//! reads results from the maillog (one line per recipient). Relayed mail
//! goes through Postfix's smtp client to `smtp-sink` processes on
//! loopback ports, routed by `transport_maps` to `[127.0.0.1]:PORT`
//! (one port per destination, so each is its own queue in the qmgr). A
//! dead destination is a loopback port nobody listens on (connection
//! refused).
//!
//! | name | what | measures |
//! |---|---|---|
//! | `relay` | N messages, 1 recipient, 1 destination | msg/s, qmgr CPU per 10k msgs, qmgr peak RSS |
//! | `relay-fanout` | N messages, 5 recipients over 5 destinations (virtual alias fan-out) | deliveries/s, CPU, RSS |
//! | `intrinsic` | as `relay`, queue on tmpfs, `default_transport = discard` | msg/s, CPU, RSS |
//! | `intrinsic-fanout` | as `relay-fanout`, on tmpfs, discarded | deliveries/s, CPU, RSS |
//! | `backlog` | M messages deferred to a dead destination; then a deferred scan (`postqueue -f`) alone, then one with L live messages arriving | CPU and time per scan; live delay p50/p99 during the scan |
//! | `dead` | N/2 live messages alone; then N/2 live + N/2 to a dead destination at once | live delay p50/p99 without and with |
//! | `recovery` | K messages deferred to a dead destination, which then comes back | time to first delivery and to all delivered, without and with `postqueue -f` |
//! | `memory` | N messages (1 recipient), then 2N/5 (5 recipients in 5 domains), held in `active/` by silent destinations ([`super::memory`]) | qmgr RSS growth per in-core message and per recipient |
//!
//! Throughput is deliveries divided by the time from starting the
//! injection to the last delivery line. Latencies are the `delay=` of the
//! live recipients' `status=sent` lines (time from queue entry to
//! delivery, 10 ms resolution). qmgr CPU counts only the interval
//! measured (user + system, all qmgr processes master ran).

use super::instance::{now, Instance};
use super::logtail::LogStatus;
use super::summary::{percentile, Better, Metric};
use crate::sandbox::{free_port, QmgrChoice, Sandbox, SandboxBuilder, SmtpSink};
use std::time::{Duration, Instant};

/// One workload of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Relay, 1 recipient, 1 destination.
    Relay,
    /// Relay, 5 recipients over 5 destinations.
    RelayFanout,
    /// Queue on tmpfs, discard transport, 1 recipient.
    Intrinsic,
    /// Queue on tmpfs, discard transport, 5 recipients over 5 domains.
    IntrinsicFanout,
    /// Deferred backlog: scan cost and live latency during a scan.
    Backlog,
    /// Half the traffic to a dead destination.
    Dead,
    /// A dead destination comes back.
    Recovery,
    /// N messages held in core: bytes per message and per recipient.
    Memory,
}

impl Workload {
    /// Every workload, in the default running order.
    pub const ALL: [Workload; 8] = [
        Workload::Relay,
        Workload::RelayFanout,
        Workload::Intrinsic,
        Workload::IntrinsicFanout,
        Workload::Backlog,
        Workload::Dead,
        Workload::Recovery,
        Workload::Memory,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Relay => "relay",
            Workload::RelayFanout => "relay-fanout",
            Workload::Intrinsic => "intrinsic",
            Workload::IntrinsicFanout => "intrinsic-fanout",
            Workload::Backlog => "backlog",
            Workload::Dead => "dead",
            Workload::Recovery => "recovery",
            Workload::Memory => "memory",
        }
    }

    /// Looks a name up; `cost` stands for `relay` and `intrinsic` (the
    /// runs that report qmgr CPU and memory), `all` for every workload.
    pub fn parse(name: &str) -> Option<Vec<Workload>> {
        match name {
            "all" => Some(Workload::ALL.to_vec()),
            "cost" => Some(vec![Workload::Relay, Workload::Intrinsic]),
            _ => Workload::ALL
                .iter()
                .find(|w| w.name() == name)
                .map(|w| vec![*w]),
        }
    }
}

/// Sizes and limits shared by all workloads.
#[derive(Debug, Clone)]
pub struct WorkloadParams {
    /// N: messages per throughput run.
    pub messages: u64,
    /// M: deferred messages in the backlog workload.
    pub backlog: u64,
    /// L: live messages in the backlog workload.
    pub live: u64,
    /// Messages held in core by the memory workload (1 recipient; 2/5 of
    /// it with 5 recipients), at most [`super::memory::MAX_IN_CORE`].
    pub in_core: u64,
    /// Longest wait with no delivery line at all before giving up.
    pub stall: Duration,
    /// Fixed per-run time limit; `None` scales with the work.
    pub timeout: Option<Duration>,
    /// Turn our metrics on and use them, the status page's JSON and the
    /// control socket every second during the run
    /// ([`super::observer`]): the `ours-observed` column.
    pub observe: bool,
}

impl WorkloadParams {
    /// The deadline for a run handling about `units` deliveries: the
    /// fixed timeout, or one minute plus 20 ms per unit.
    pub(super) fn deadline(&self, units: u64) -> Instant {
        let budget = self.timeout.unwrap_or_else(|| {
            Duration::from_secs(60) + Duration::from_millis(20) * units.min(u32::MAX as u64) as u32
        });
        now() + budget
    }
}

/// Throughput metric (per message).
const MSG_RATE: Metric = Metric {
    name: "throughput",
    unit: "msg/s",
    better: Better::Higher,
};
/// Throughput metric (per recipient delivery).
const DELIVERY_RATE: Metric = Metric {
    name: "throughput",
    unit: "deliveries/s",
    better: Better::Higher,
};
/// qmgr CPU normalised per 10,000 messages.
const CPU_PER_10K: Metric = Metric {
    name: "qmgr CPU per 10k msgs",
    unit: "s",
    better: Better::Lower,
};
/// qmgr peak resident set.
const PEAK_RSS: Metric = Metric {
    name: "qmgr peak RSS",
    unit: "MiB",
    better: Better::Lower,
};

/// Measurements of one run.
pub type Measured = Vec<(Metric, f64)>;

/// Runs `workload` once with `qmgr` in the qmgr slot.
pub fn run(workload: Workload, qmgr: &QmgrChoice, p: &WorkloadParams) -> Result<Measured, String> {
    match workload {
        Workload::Relay => throughput(qmgr, p, false, false),
        Workload::RelayFanout => throughput(qmgr, p, true, false),
        Workload::Intrinsic => throughput(qmgr, p, false, true),
        Workload::IntrinsicFanout => throughput(qmgr, p, true, true),
        Workload::Backlog => backlog(qmgr, p),
        Workload::Dead => dead(qmgr, p),
        Workload::Recovery => recovery(qmgr, p),
        Workload::Memory => super::memory::memory(qmgr, p),
    }
}

/// A sandbox with `qmgr`, an smtpd, and the given main.cf settings.
pub(super) fn builder(qmgr: &QmgrChoice, settings: &[(&str, String)]) -> SandboxBuilder {
    let mut b = Sandbox::builder().qmgr(qmgr.clone()).smtpd_port(true);
    for (name, value) in settings {
        b = b.main_cf(*name, value.clone());
    }
    b
}

/// `inline:{ domain=smtp:[127.0.0.1]:port, ... }` for transport_maps.
pub(super) fn transport_map(routes: &[(&str, u16)]) -> String {
    let entries: Vec<String> = routes
        .iter()
        .map(|(domain, port)| format!("{domain}=smtp:[127.0.0.1]:{port}"))
        .collect();
    format!("inline:{{ {} }}", entries.join(", "))
}

/// Domains of the fan-out: d1.example ... d5.example.
pub(super) const FANOUT_DOMAINS: [&str; 5] = [
    "d1.example",
    "d2.example",
    "d3.example",
    "d4.example",
    "d5.example",
];

/// `virtual_alias_maps` fanning `fan@fan.example` out (in cleanup) to one
/// recipient per domain of [`FANOUT_DOMAINS`].
pub(super) fn fanout_alias() -> String {
    let fan: Vec<String> = FANOUT_DOMAINS.iter().map(|d| format!("r@{d}")).collect();
    format!("inline:{{ {{fan@fan.example={}}} }}", fan.join(", "))
}

/// Starts a quiet smtp-sink on a free port.
fn sink() -> Result<SmtpSink, String> {
    let port = free_port().map_err(|e| format!("no free port: {e}"))?;
    SmtpSink::start_quiet(port, &[]).map_err(|e| format!("smtp-sink: {e}"))
}

/// Workloads 1 to 3: N messages with 1 or 5 recipients, relayed to sinks
/// or (`intrinsic`) discarded with the queue on tmpfs.
fn throughput(
    qmgr: &QmgrChoice,
    p: &WorkloadParams,
    fanout: bool,
    intrinsic: bool,
) -> Result<Measured, String> {
    let rcpts: u64 = if fanout { 5 } else { 1 };
    let deliveries = p.messages * rcpts;
    let mut settings = vec![("virtual_alias_maps", fanout_alias())];
    let mut sinks = Vec::new();
    if intrinsic {
        settings.push(("default_transport", "discard".to_string()));
    } else {
        let used = if fanout {
            &FANOUT_DOMAINS[..]
        } else {
            &FANOUT_DOMAINS[..1]
        };
        let mut routes = Vec::new();
        for domain in used {
            let s = sink()?;
            routes.push((*domain, s.port()));
            sinks.push(s);
        }
        settings.push(("transport_maps", transport_map(&routes)));
    }
    let mut b = builder(qmgr, &settings);
    if intrinsic {
        b = b.parent_dir("/dev/shm");
    }
    let mut inst = Instance::start(b, p.deadline(deliveries), p.stall, p.observe)?;
    let cpu0 = inst.qmgr_cpu();
    let t0 = now();
    inst.inject(
        p.messages,
        if fanout {
            "fan@fan.example"
        } else {
            "r@d1.example"
        },
    )?;
    inst.wait("all deliveries", |t, _| {
        t.total(LogStatus::Sent) >= deliveries
    })?;
    let elapsed = now().duration_since(t0).as_secs_f64();
    let cpu = inst.qmgr_cpu() - cpu0;
    let rss = inst.qmgr_peak_rss_mib();
    let undelivered = inst.tail.total(LogStatus::Deferred) + inst.tail.total(LogStatus::Bounced);
    if undelivered > 0 {
        return Err(format!(
            "{undelivered} recipients deferred or bounced ({})",
            inst.tail.summary()
        ));
    }
    if let Some(o) = &inst.observer {
        // The run started after a first answer (`Instance::start`); none
        // at all means the watching stopped working.
        if o.answered() == 0 {
            return Err("the observer got no answer from the metrics or the control socket".into());
        }
    }
    drop(sinks);
    Ok(vec![
        (
            if fanout { DELIVERY_RATE } else { MSG_RATE },
            deliveries as f64 / elapsed,
        ),
        (CPU_PER_10K, cpu * 10_000.0 / p.messages.max(1) as f64),
        (PEAK_RSS, rss),
    ])
}

/// Live-mail domain (to a sink) and dead domain (to a closed port).
const LIVE: &str = "live.example";
/// See [`LIVE`].
const DEAD: &str = "dead.example";

/// A sandbox routing [`LIVE`] to a sink and [`DEAD`] to a closed port;
/// returns the sink (keep it alive) and the dead port.
fn live_and_dead(
    qmgr: &QmgrChoice,
    extra: &[(&str, String)],
    deadline: Instant,
    p: &WorkloadParams,
) -> Result<(Instance, SmtpSink, u16), String> {
    let live = sink()?;
    let dead_port = free_port().map_err(|e| format!("no free port: {e}"))?;
    let mut settings = vec![(
        "transport_maps",
        transport_map(&[(LIVE, live.port()), (DEAD, dead_port)]),
    )];
    settings.extend(extra.iter().cloned());
    let inst = Instance::start(builder(qmgr, &settings), deadline, p.stall, p.observe)?;
    Ok((inst, live, dead_port))
}

/// Loads `count` messages for the dead destination and waits until each
/// was deferred once and incoming/active are empty.
fn preload_deferred(inst: &mut Instance, count: u64) -> Result<(), String> {
    let base = inst.tail.count(LogStatus::Deferred, DEAD);
    inst.inject(count, &format!("r@{DEAD}"))?;
    inst.wait("backlog deferred", |t, _| {
        t.count(LogStatus::Deferred, DEAD) >= base + count
    })?;
    inst.wait("incoming and active empty", queues_drained)
}

/// True when the incoming and active queues are empty (every message
/// has been through the queue manager).
fn queues_drained(_: &super::logtail::LogTail, sb: &Sandbox) -> bool {
    sb.queue_files("incoming").is_empty() && sb.queue_files("active").is_empty()
}

/// Live-delay metrics named by phase.
fn latency_metrics(delays: &[f64], p50: Metric, p99: Metric) -> Result<Measured, String> {
    match (percentile(delays, 0.5), percentile(delays, 0.99)) {
        (Some(a), Some(b)) => Ok(vec![(p50, a), (p99, b)]),
        _ => Err("no live deliveries measured".into()),
    }
}

/// Workload 4: deferred backlog.
fn backlog(qmgr: &QmgrChoice, p: &WorkloadParams) -> Result<Measured, String> {
    let m = p.backlog;
    let (mut inst, _live, _) = live_and_dead(qmgr, &[], p.deadline(m * 4 + p.live), p)?;
    preload_deferred(&mut inst, m)?;

    // A scan alone: every deferred message goes active and is deferred again.
    let cpu0 = inst.qmgr_cpu();
    let t0 = now();
    inst.flush()?;
    inst.wait("deferred scan", |t, _| {
        t.count(LogStatus::Deferred, DEAD) >= 2 * m
    })?;
    let scan_time = now().duration_since(t0).as_secs_f64();
    let scan_cpu = inst.qmgr_cpu() - cpu0;
    inst.wait("incoming and active empty", queues_drained)?;

    // A scan while live mail arrives.
    let mark = inst.tail.sent_mark();
    inst.flush()?;
    inst.inject(p.live, &format!("r@{LIVE}"))?;
    let live = p.live;
    inst.wait("live mail during a scan", |t, _| {
        t.count(LogStatus::Sent, LIVE) >= live && t.count(LogStatus::Deferred, DEAD) >= 3 * m
    })?;
    let delays = inst.tail.sent_delays_since(mark, LIVE);
    let mut out = vec![
        (
            Metric {
                name: "qmgr CPU per deferred scan",
                unit: "s",
                better: Better::Lower,
            },
            scan_cpu,
        ),
        (
            Metric {
                name: "deferred scan time",
                unit: "s",
                better: Better::Lower,
            },
            scan_time,
        ),
    ];
    out.extend(latency_metrics(
        &delays,
        Metric {
            name: "live delay p50 during scan",
            unit: "s",
            better: Better::Lower,
        },
        Metric {
            name: "live delay p99 during scan",
            unit: "s",
            better: Better::Lower,
        },
    )?);
    Ok(out)
}

/// Workload 5: half the traffic to a dead destination.
fn dead(qmgr: &QmgrChoice, p: &WorkloadParams) -> Result<Measured, String> {
    let half = (p.messages / 2).max(1);
    let (mut inst, _live, _) = live_and_dead(qmgr, &[], p.deadline(half * 3), p)?;

    // Without the dead destination.
    let mark = inst.tail.sent_mark();
    inst.inject(half, &format!("r@{LIVE}"))?;
    inst.wait("live mail alone", |t, _| {
        t.count(LogStatus::Sent, LIVE) >= half
    })?;
    let alone = inst.tail.sent_delays_since(mark, LIVE);

    // With it: both halves injected at once.
    let mark = inst.tail.sent_mark();
    inst.inject(half, &format!("r@{DEAD}"))?;
    inst.inject(half, &format!("r@{LIVE}"))?;
    inst.wait("live and dead mail", |t, _| {
        t.count(LogStatus::Sent, LIVE) >= 2 * half && t.count(LogStatus::Deferred, DEAD) >= half
    })?;
    let mixed = inst.tail.sent_delays_since(mark, LIVE);
    let mut out = latency_metrics(
        &alone,
        Metric {
            name: "live delay p50, no dead destination",
            unit: "s",
            better: Better::Lower,
        },
        Metric {
            name: "live delay p99, no dead destination",
            unit: "s",
            better: Better::Lower,
        },
    )?;
    out.extend(latency_metrics(
        &mixed,
        Metric {
            name: "live delay p50, half to a dead destination",
            unit: "s",
            better: Better::Lower,
        },
        Metric {
            name: "live delay p99, half to a dead destination",
            unit: "s",
            better: Better::Lower,
        },
    )?);
    Ok(out)
}

/// Messages deferred in the recovery workload: N/10, within 10..=500.
pub fn recovery_messages(p: &WorkloadParams) -> u64 {
    (p.messages / 10).clamp(10, 500)
}

/// Workload 6: a dead destination comes back, with retry timers short
/// enough to measure (queue_run_delay and minimal_backoff_time 5 s,
/// maximal_backoff_time 10 s).
fn recovery(qmgr: &QmgrChoice, p: &WorkloadParams) -> Result<Measured, String> {
    let k = recovery_messages(p);
    let timers = [
        ("queue_run_delay", "5s".to_string()),
        ("minimal_backoff_time", "5s".to_string()),
        ("maximal_backoff_time", "10s".to_string()),
    ];
    let mut out = Vec::new();
    for flush in [false, true] {
        let (mut inst, _live, dead_port) = live_and_dead(qmgr, &timers, p.deadline(k * 3), p)?;
        preload_deferred(&mut inst, k)?;
        let back = SmtpSink::start_quiet(dead_port, &[]).map_err(|e| format!("smtp-sink: {e}"))?;
        let t0 = now();
        if flush {
            inst.flush()?;
        }
        inst.wait("first delivery", |t, _| t.count(LogStatus::Sent, DEAD) >= 1)?;
        let first = now().duration_since(t0).as_secs_f64();
        inst.wait("all delivered", |t, _| t.count(LogStatus::Sent, DEAD) >= k)?;
        let all = now().duration_since(t0).as_secs_f64();
        drop(back);
        let (first_name, all_name) = if flush {
            (
                "first delivery after return, with postqueue -f",
                "all delivered after return, with postqueue -f",
            )
        } else {
            (
                "first delivery after return, no flush",
                "all delivered after return, no flush",
            )
        };
        out.push((
            Metric {
                name: first_name,
                unit: "s",
                better: Better::Lower,
            },
            first,
        ));
        out.push((
            Metric {
                name: all_name,
                unit: "s",
                better: Better::Lower,
            },
            all,
        ));
    }
    Ok(out)
}
