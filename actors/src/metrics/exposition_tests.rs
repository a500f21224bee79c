//! Tests of the exposition: every family with the values it was given,
//! bounded destination labels, both text formats, and `promtool check
//! metrics` (Debian's `prometheus` package, which `actors/scripts/test`
//! installs) on the Prometheus format.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use oqmgr::control::{Suspension, Target};
use oqmgr::entry::{DeliveryReport, EntryId, Outcome};
use oqmgr::live_state::{LiveDestState, LiveDestination, LiveState, LiveTransport};
use oqmgr::route::QmgrDeferral;
use oqmgr::scan::QueueName;
use oqmgr::time::Instant;

use super::*;
use crate::metrics::{Metrics, MetricsConfig};

fn dest(queue: &str, window: u32, busy: u32, todo: u32) -> LiveDestination {
    LiveDestination {
        window,
        limit: 20,
        busy,
        todo,
        ..LiveDestination::new("smtp", queue)
    }
}

fn transport(name: &str, dead: bool) -> LiveTransport {
    LiveTransport {
        name: name.into(),
        dead: dead.then(|| "4.3.0 mail transport unavailable".into()),
        dead_until_ms: None,
        pending: 1,
        rate_locked: false,
        destinations: 0,
    }
}

/// A live state with 30 destinations, one dead, one suspension.
fn state() -> LiveState {
    let mut destinations: Vec<LiveDestination> = (0..30)
        .map(|i| dest(&format!("d{i:02}.example"), 5, i % 4, i))
        .collect();
    destinations[0].state = LiveDestState::Dead {
        since_ms: 0,
        until_ms: 1,
        reason: "x".into(),
    };
    let mut s = LiveState {
        now_ms: 10_000,
        transports: vec![transport("relay", true), transport("smtp", false)],
        destinations,
        ..LiveState::default()
    };
    s.supervisor.messages = 12;
    s.supervisor.message_limit = 20000;
    s.supervisor.recipients = 40;
    s.supervisor.recipient_limit = 20000;
    s.supervisor.removed = 7;
    s.supervisor.incoming_scan = Some("S".into());
    s.supervisor.suspensions.push(Suspension {
        target: Target::Destination("smtp:gone.example".into()),
        since: Instant::ZERO,
        until: None,
        reason: None,
        deferred: Default::default(),
    });
    s
}

fn info() -> DaemonInfo {
    DaemonInfo {
        pid: 42,
        version: "0.1.0".into(),
        started_ms: 1_700_000_000_000,
        postfix: "Postfix mail_version 3.7.11 (from /usr/sbin/postconf -dh mail_version): ..."
            .into(),
        ..DaemonInfo::default()
    }
}

/// Metrics that saw one of everything.
fn metrics(top: usize) -> Metrics {
    let config = MetricsConfig::new("127.0.0.1:9165", false, Some(top as u64), None).unwrap();
    let m = Metrics::new(config)
        .with_message_times(Box::new(|id| (id == "ABC").then_some((1_000, 3_500))));
    let report = |outcome| DeliveryReport {
        entry: EntryId(1),
        outcome,
        hop: None,
        recipients: Vec::new(),
    };
    for _ in 0..3 {
        m.handed_off("smtp", "mx.example", "ABC", 2, 4_000);
        m.delivered("smtp", &report(Outcome::Done), Duration::from_millis(120));
    }
    m.delivered("smtp", &report(Outcome::Defer), Duration::from_millis(50));
    m.handed_off("retry", "4.3.2 deferred transport", "ABC", 2, 4_000);
    m.qmgr_deferred(QmgrDeferral::DeadDestination, 1);
    m.connect_error("relay");
    m.scanned(QueueName::Deferred, Duration::from_millis(3));
    m.triggered(b"AF\0");
    m
}

/// The sample lines (no comments) of `text`.
fn samples(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.starts_with('#')).collect()
}

#[test]
fn every_family_carries_what_it_was_given() {
    let text = encode(&metrics(20), &state(), &info(), Format::Prometheus);
    let lines = samples(&text);
    for want in [
        r#"oqmgr_deliveries_total{transport="smtp",status="done"} 3"#,
        r#"oqmgr_deliveries_total{transport="smtp",status="deferred"} 1"#,
        r#"oqmgr_qmgr_deferred_recipients_total{cause="defer_transports"} 2"#,
        r#"oqmgr_qmgr_deferred_recipients_total{cause="dead_destination"} 1"#,
        r#"oqmgr_qmgr_deferred_recipients_total{cause="suspended"} 0"#,
        r#"oqmgr_delivery_delay_seconds_count{transport="smtp",part="before_qmgr"} 3"#,
        r#"oqmgr_delivery_delay_seconds_sum{transport="smtp",part="before_qmgr"} 7.5"#,
        r#"oqmgr_delivery_delay_seconds_sum{transport="smtp",part="in_qmgr"} 1.5"#,
        r#"oqmgr_delivery_delay_seconds_count{transport="smtp",part="agent"} 4"#,
        r#"oqmgr_delivery_delay_seconds_bucket{transport="smtp",part="agent",le="0.25"} 4"#,
        r#"oqmgr_delivery_delay_seconds_bucket{transport="smtp",part="agent",le="0.1"} 1"#,
        r#"oqmgr_scan_duration_seconds_count{queue="deferred"} 1"#,
        r#"oqmgr_scan_duration_seconds_count{queue="incoming"} 0"#,
        r#"oqmgr_triggers_total{request="scan_all"} 1"#,
        r#"oqmgr_triggers_total{request="flush_dead"} 1"#,
        r#"oqmgr_agent_connect_errors_total{transport="relay"} 1"#,
        "oqmgr_active_messages 12",
        "oqmgr_active_messages_limit 20000",
        "oqmgr_active_recipients 40",
        "oqmgr_active_recipients_limit 20000",
        r#"oqmgr_scan_running{queue="incoming"} 1"#,
        r#"oqmgr_scan_running{queue="deferred"} 0"#,
        r#"oqmgr_messages_total{fate="removed"} 7"#,
        "oqmgr_suspensions 1",
        r#"oqmgr_destinations{state="ready"} 29"#,
        r#"oqmgr_destinations{state="dead"} 1"#,
        r#"oqmgr_destinations{state="suspended"} 1"#,
        r#"oqmgr_destinations{state="rate-delayed"} 0"#,
        // 0+1+2+3 seven times and 0+1 (i = 28, 29).
        r#"oqmgr_busy_agents{transport="smtp"} 43"#,
        r#"oqmgr_busy_agents{transport="relay"} 0"#,
        r#"oqmgr_agent_connections_pending{transport="smtp"} 1"#,
        r#"oqmgr_transport_dead{transport="relay"} 1"#,
        r#"oqmgr_transport_dead{transport="smtp"} 0"#,
        r#"oqmgr_destination_window{transport="smtp",destination="smtp:d29.example"} 5"#,
        r#"oqmgr_destination_busy{transport="smtp",destination="smtp:d27.example"} 3"#,
        r#"oqmgr_destination_waiting{transport="smtp",destination="smtp:d27.example"} 27"#,
        r#"oqmgr_destination_limit{transport="smtp",destination="smtp:d27.example"} 20"#,
        r#"oqmgr_build_info{version="0.1.0",postfix="3.7.11"} 1"#,
        "oqmgr_start_time_seconds 1700000000",
    ] {
        assert!(lines.contains(&want), "missing {want}\n{text}");
    }
    assert!(
        !text.contains(r#"request="other""#),
        "NUL padding is no request"
    );
}

#[test]
fn only_the_busiest_destinations_have_series() {
    let text = encode(&metrics(5), &state(), &info(), Format::Prometheus);
    let windows: Vec<&str> = samples(&text)
        .into_iter()
        .filter(|l| l.starts_with("oqmgr_destination_window{"))
        .collect();
    assert_eq!(windows.len(), 5, "{windows:?}");
    // Most mail in memory (busy + waiting, i % 4 + i): d27 and d29 (30),
    // d26 and d28 (28), d23 (26, before d25 by name).
    for i in [23, 26, 27, 28, 29] {
        assert!(
            windows.iter().any(|l| l.contains(&format!("d{i}.example"))),
            "d{i}: {windows:?}"
        );
    }
}

#[test]
fn openmetrics_when_asked_for() {
    assert_eq!(Format::from_accept(None), Format::Prometheus);
    assert_eq!(Format::from_accept(Some("text/plain")), Format::Prometheus);
    let prom = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
    assert_eq!(Format::from_accept(Some(prom)), Format::OpenMetrics);
    let text = encode(&metrics(20), &state(), &info(), Format::OpenMetrics);
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(text.contains("# TYPE oqmgr_deliveries counter\n"), "{text}");
    let text = encode(&metrics(20), &state(), &info(), Format::Prometheus);
    assert!(
        text.contains("# TYPE oqmgr_deliveries_total counter\n"),
        "{text}"
    );
    assert!(!text.contains("# EOF"), "{text}");
}

/// `promtool check metrics` finds no problem (needs Debian's
/// `prometheus` package: `actors/scripts/test` installs it).
#[test]
fn promtool_accepts_the_exposition() {
    let text = encode(&metrics(20), &state(), &info(), Format::Prometheus);
    let (ok, out) = promtool_check(&text);
    assert!(ok, "promtool check metrics: {out}\n{text}");
}

/// Runs `promtool check metrics` on `text`: whether it passed, and what it
/// said. Panics when promtool is missing.
pub fn promtool_check(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (apt-get install prometheus; actors/scripts/test does)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}
