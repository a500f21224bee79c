//! `/metrics`: the Prometheus exposition of [`super::Metrics`] and of the
//! live state, encoded by the `prometheus-client` crate.
//!
//! Each scrape builds a fresh [`Registry`]: the long-lived counters and
//! histograms are registered as they are (shared handles, so their values
//! run on), and the gauges are made from the [`LiveState`] of this moment.
//! A destination that left the busiest [`super::MetricsConfig::top`] thus
//! leaves the exposition with it, and label sets stay bounded.
//!
//! The families, all prefixed `oqmgr_` (`docs/control.md` has the list
//! with examples): deliveries by transport and outcome; recipients the
//! queue manager deferred itself, by cause; delivery delays per transport
//! and `delays=` part; scan durations; trigger requests; agent connection
//! errors; the active queue against its limits; destinations by state;
//! busy agents and pending connections per transport; dead transports;
//! window, limit, busy and waiting of the busiest destinations; messages
//! removed, deferred and expired since start; suspensions; the daemon's
//! version and start time.
//!
//! [`Format`] picks the text format: Prometheus 0.0.4 by default (what
//! `promtool check metrics` reads), OpenMetrics 1.0 when the scraper's
//! `Accept` header asks for it (as Prometheus does).

use std::collections::BTreeMap;

use oqmgr::live_state::{DestinationFilter, LiveState};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use super::{Metrics, TransportLabels};
use crate::control::live_query::DaemonInfo;

/// A text format of the exposition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Prometheus,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

impl Format {
    /// The format an `Accept` header asks for.
    pub fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }

    /// Its `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// A destination state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    /// `ready`, `rate-delayed`, `dead`, `suspended`.
    state: &'static str,
}

/// One destination.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DestinationLabels {
    /// Its transport.
    transport: String,
    /// `transport:queue`, as `oqmgr ctl destinations` names it.
    destination: String,
}

/// What happened to files since start.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FateLabels {
    /// `removed`, `deferred`, `expired`.
    fate: &'static str,
}

/// A scan.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScanLabels {
    /// `incoming` or `deferred`.
    queue: &'static str,
}

/// A gauge of this value.
fn gauge(v: u64) -> Gauge {
    let g = Gauge::default();
    g.set(i64::try_from(v).unwrap_or(i64::MAX));
    g
}

/// The registry of one scrape.
pub fn registry(metrics: &Metrics, state: &LiveState, info: &DaemonInfo) -> Registry {
    let mut r = Registry::with_prefix("oqmgr");
    r.register(
        "deliveries",
        "Delivery requests answered, by transport and outcome (done: every recipient \
         finished, sent or bounced; deferred; crashed: no usable answer; refused: the \
         agent took no request)",
        metrics.deliveries.clone(),
    );
    r.register(
        "qmgr_deferred_recipients",
        "Recipients the queue manager deferred itself, without a delivery attempt, by cause",
        metrics.qmgr_deferred.clone(),
    );
    r.register_with_unit(
        "delivery_delay",
        "Delivery delays by transport and part of Postfix's delays=a/b/c/d: before_qmgr (a, \
         arrival to the active queue), in_qmgr (b, active queue to the agent), agent (c+d, \
         the agent's connection and transmission)",
        Unit::Seconds,
        metrics.delays.clone(),
    );
    r.register_with_unit(
        "scan_duration",
        "Walks of a queue directory, start to end",
        Unit::Seconds,
        metrics.scans.clone(),
    );
    r.register(
        "triggers",
        "Trigger requests received (public/qmgr and master's wakeups), by request",
        metrics.triggers.clone(),
    );
    r.register(
        "agent_connect_errors",
        "Delivery agent connections that failed, by transport",
        metrics.connect_errors.clone(),
    );

    let s = &state.supervisor;
    r.register(
        "active_messages",
        "Messages in the active queue",
        gauge(s.messages),
    );
    r.register(
        "active_messages_limit",
        "qmgr_message_active_limit",
        gauge(u64::from(s.message_limit)),
    );
    r.register(
        "active_recipients",
        "Recipients in memory",
        gauge(s.recipients),
    );
    r.register(
        "active_recipients_limit",
        "qmgr_message_recipient_limit",
        gauge(u64::from(s.recipient_limit)),
    );
    let scanning = Family::<ScanLabels, Gauge>::default();
    for (queue, running) in [
        ("incoming", s.incoming_scan.is_some()),
        ("deferred", s.deferred_scan.is_some()),
    ] {
        scanning
            .get_or_create(&ScanLabels { queue })
            .set(i64::from(running));
    }
    r.register(
        "scan_running",
        "1 while a walk of the queue directory runs",
        scanning,
    );
    let fates = Family::<FateLabels, Counter>::default();
    for (fate, n) in [
        ("removed", s.removed),
        ("deferred", s.deferred),
        ("expired", s.expired),
    ] {
        fates.get_or_create(&FateLabels { fate }).inc_by(n);
    }
    r.register(
        "messages",
        "Queue files finished since start: removed (every recipient done), deferred, \
         expired (returned to sender)",
        fates,
    );
    r.register(
        "suspensions",
        "Suspensions in force (oqmgr ctl suspend)",
        gauge(s.suspensions.len() as u64),
    );

    let rows = state.rows();
    let by_state = Family::<StateLabels, Gauge>::default();
    for word in ["ready", "rate-delayed", "dead", "suspended"] {
        let n = rows.iter().filter(|d| d.state.word() == word).count();
        by_state
            .get_or_create(&StateLabels { state: word })
            .set(n as i64);
    }
    r.register(
        "destinations",
        "Destinations in memory by state (suspended ones also when not in memory)",
        by_state,
    );

    // Per transport: every transport in memory, even without destinations.
    let mut busy: BTreeMap<&str, u64> = state
        .transports
        .iter()
        .map(|t| (t.name.as_str(), 0))
        .collect();
    for d in &state.destinations {
        *busy.entry(d.transport.as_str()).or_default() += u64::from(d.busy);
    }
    let busy_agents = Family::<TransportLabels, Gauge>::default();
    for (transport, n) in &busy {
        busy_agents
            .get_or_create(&TransportLabels {
                transport: transport.to_string(),
            })
            .set(*n as i64);
    }
    r.register(
        "busy_agents",
        "Deliveries in flight, by transport",
        busy_agents,
    );
    let pending = Family::<TransportLabels, Gauge>::default();
    let dead = Family::<TransportLabels, Gauge>::default();
    for t in &state.transports {
        let labels = TransportLabels {
            transport: t.name.clone(),
        };
        pending.get_or_create(&labels).set(i64::from(t.pending));
        dead.get_or_create(&labels).set(i64::from(t.dead.is_some()));
    }
    r.register(
        "agent_connections_pending",
        "Delivery agent connections being set up, by transport",
        pending,
    );
    r.register(
        "transport_dead",
        "1 while the transport is dead (its agents could not be reached)",
        dead,
    );

    let top = DestinationFilter {
        top: Some(metrics.config.top),
        ..DestinationFilter::default()
    }
    .apply(state);
    let window = Family::<DestinationLabels, Gauge>::default();
    let limit = Family::<DestinationLabels, Gauge>::default();
    let in_flight = Family::<DestinationLabels, Gauge>::default();
    let waiting = Family::<DestinationLabels, Gauge>::default();
    for d in &top {
        let labels = DestinationLabels {
            transport: d.transport.clone(),
            destination: d.name(),
        };
        window.get_or_create(&labels).set(i64::from(d.window));
        limit.get_or_create(&labels).set(i64::from(d.limit));
        in_flight.get_or_create(&labels).set(i64::from(d.busy));
        waiting.get_or_create(&labels).set(i64::from(d.todo));
    }
    let n = metrics.config.top;
    r.register(
        "destination_window",
        format!("Concurrency window of the {n} destinations with the most mail in memory"),
        window,
    );
    r.register(
        "destination_limit",
        format!(
            "Destination concurrency limit (0: none) of the {n} destinations with the most mail"
        ),
        limit,
    );
    r.register(
        "destination_busy",
        format!("Deliveries in flight to the {n} destinations with the most mail in memory"),
        in_flight,
    );
    r.register(
        "destination_waiting",
        format!("Entries waiting at the {n} destinations with the most mail in memory"),
        waiting,
    );

    r.register(
        "build",
        "The queue manager's version and the Postfix release it serves",
        Info::new(vec![
            ("version".to_string(), info.version.clone()),
            ("postfix".to_string(), postfix_release(&info.postfix)),
        ]),
    );
    r.register_with_unit(
        "start_time",
        "When the queue manager started, seconds since the epoch",
        Unit::Seconds,
        gauge(info.started_ms / 1000),
    );
    r
}

/// `3.7.11` out of the daemon's dialect line (`Postfix mail_version 3.7.11
/// (from ...`); the line itself when it has no such word.
fn postfix_release(line: &str) -> String {
    line.split_whitespace()
        .skip_while(|w| *w != "mail_version")
        .nth(1)
        .unwrap_or(line)
        .to_string()
}

/// The exposition text of one scrape.
pub fn encode(metrics: &Metrics, state: &LiveState, info: &DaemonInfo, format: Format) -> String {
    let registry = registry(metrics, state, info);
    let mut out = String::new();
    let written = match format {
        Format::Prometheus => {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
        }
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry),
    };
    // Writing into a String cannot fail; the encoder's own errors would be
    // a bug in the labels above.
    written.expect("metrics encode into a String");
    out
}

#[cfg(test)]
#[path = "exposition_tests.rs"]
mod tests;
