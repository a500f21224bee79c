#![allow(clippy::disallowed_methods)] // measurements in real time
//! Measurements (ignored by default: `cargo test --release -p
//! oqmgr-devtools --test observer_cost -- --ignored --nocapture`) of what
//! the metrics cost our queue manager, to read beside the benchmark's
//! `ours-observed` column (docs/benchmarks.md): the instrumentation per
//! delivery, and the CPU of an idle queue manager that is watched every
//! second ([`Observer`]) against one that is not. Nothing is asserted:
//! timings on a shared machine prove nothing.

use std::time::Duration;

use oqmgr::entry::{DeliveryReport, EntryId, Outcome};
use oqmgr_actors::metrics::{Metrics, MetricsConfig};
use oqmgr_devtools::benchmark::observer::Observer;
use oqmgr_devtools::benchmark::probe::QmgrProbe;
use oqmgr_devtools::sandbox::{free_port, QmgrChoice, Sandbox};

/// What `handed_off` and `delivered` cost per delivery (the host calls
/// both for each one when the metrics are on).
#[test]
#[ignore = "a measurement: run with --ignored --nocapture"]
fn instrumentation_per_delivery() {
    let config = MetricsConfig::new("127.0.0.1:9165", false, None, None).unwrap();
    let m = Metrics::new(config).with_message_times(Box::new(|_| Some((1_000, 2_000))));
    let report = DeliveryReport {
        entry: EntryId(1),
        outcome: Outcome::Done,
        hop: None,
        recipients: Vec::new(),
    };
    let n = 200_000;
    let start = oqmgr_actors::clock::tooling_now();
    for _ in 0..n {
        m.handed_off("smtp", "mx.example", "ABC", 1, 3_000);
        m.delivered("smtp", &report, Duration::from_millis(5));
    }
    eprintln!("metrics per delivery: {:?}", start.elapsed() / n);
}

/// The qmgr's CPU over `secs` seconds of an idle instance, observed or not.
fn idle_cpu(observe: bool, secs: u64) -> (f64, u64) {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], free_port().expect("free port")));
    let mut b = Sandbox::builder().qmgr(QmgrChoice::Command(oqmgr_devtools::ours_for_test()));
    if observe {
        b = b.config_file("oqmgr.toml", Observer::config(addr));
    }
    let sb = b.start().expect("sandbox starts");
    std::thread::sleep(Duration::from_secs(3));
    let mut probe = QmgrProbe::new(sb.master_pid().expect("master pid"));
    probe.sample();
    let before = probe.cpu_seconds();
    let observer = observe.then(|| Observer::start(addr, sb.queue_dir()));
    std::thread::sleep(Duration::from_secs(secs));
    probe.sample();
    let answered = observer.as_ref().map_or(0, Observer::answered);
    (probe.cpu_seconds() - before, answered)
}

/// An idle queue manager watched every second (/metrics, /status.json
/// and a control-socket state request) against one with no metrics.
#[test]
#[ignore = "a measurement: run with --ignored --nocapture"]
fn idle_queue_manager_watched_every_second() {
    for _ in 0..2 {
        let (off, _) = idle_cpu(false, 30);
        let (on, answered) = idle_cpu(true, 30);
        eprintln!(
            "idle qmgr CPU over 30 s: no metrics {off:.3} s; watched ({answered} requests answered) {on:.3} s"
        );
    }
}
