//! Metrics and the live status page (no Postfix counterpart: Postfix's
//! queue managers export nothing; operators grep the maillog).
//!
//! Opt-in, with a `[metrics]` table in `oqmgr.toml`:
//! ```toml
//! [metrics]
//! listen = "127.0.0.1:9165"        # an IP address and port; required
//! allow_non_loopback = false       # a non-loopback address needs true
//! top_destinations = 20            # destinations with their own series
//! history = "10m"                  # the status page's chart span
//! ```
//! The daemon then serves, on a thread of its own ([`http_server`]):
//! - `/metrics`: the Prometheus exposition ([`exposition`], through the
//!   `prometheus-client` crate), in the Prometheus text format, or
//!   OpenMetrics when the scraper asks for it;
//! - `/`: the status page (`status_page.html`), which polls
//!   `/status.json`: the destinations table and, for the busiest
//!   destinations, window and busy over the last [`MetricsConfig::history`]
//!   ([`history`]).
//!
//! Nothing served over HTTP changes anything: every route reads. Requests
//! and answers never run on the scheduling thread; the state they show
//! comes from the live-state query ([`crate::control::live_query`]), which
//! asks each actor between two of its steps.
//!
//! # What is counted where
//! [`Metrics`] holds what has to be counted as it happens (the rest is
//! read from the live state at each scrape): the [`crate::host`] counts
//! delivery outcomes, the recipients the queue manager deferred itself
//! (deliveries handed to the `retry` transport, and recipients deferred on
//! the spot, by [`oqmgr::route::QmgrDeferral`]), agent connection errors
//! and the `delays=` parts of each delivery; the scanner actors time their
//! walks; [`crate::scheduler::Scheduler::trigger`] counts trigger requests.
//! Without `[metrics]` none of it runs (the host holds no [`Metrics`]).
//!
//! # Invariants
//! - label values are bounded: transports, states, causes and queue names
//!   are few; destinations appear only as the [`MetricsConfig::top`]
//!   busiest of each scrape;
//! - a metrics listener is never bound to a non-loopback address unless
//!   the configuration says `allow_non_loopback = true`.

pub mod exposition;
pub mod history;
pub mod http_server;

use std::net::SocketAddr;
use std::time::Duration;

use oqmgr::entry::{DeliveryReport, Outcome};
use oqmgr::route::QmgrDeferral;
use oqmgr::scan::QueueName;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::histogram::Histogram;

/// Default number of destinations with series of their own.
pub const DEFAULT_TOP: usize = 20;
/// Default span of the status page's charts.
pub const DEFAULT_HISTORY: Duration = Duration::from_secs(600);
/// How often the status page's samples are taken.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// The `[metrics]` table of `oqmgr.toml`, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Destinations with series of their own (the busiest).
    pub top: usize,
    /// Span of the status page's charts.
    pub history: Duration,
}

impl MetricsConfig {
    /// Checks the table's values: `listen` an IP address and port, on a
    /// loopback address unless `allow_non_loopback`.
    ///
    /// # Errors
    /// The field at fault and what is wrong with it.
    pub fn new(
        listen: &str,
        allow_non_loopback: bool,
        top: Option<u64>,
        history: Option<Duration>,
    ) -> Result<MetricsConfig, (&'static str, String)> {
        let addr: SocketAddr = listen.parse().map_err(|_| {
            (
                "listen",
                format!("\"{listen}\" is not an IP address and port (such as 127.0.0.1:9165)"),
            )
        })?;
        if !addr.ip().is_loopback() && !allow_non_loopback {
            return Err((
                "listen",
                format!(
                    "{addr} is not a loopback address: metrics and the status page show the \
                     mail flow to anyone who can connect; set allow_non_loopback = true to \
                     serve them there"
                ),
            ));
        }
        let top = match top {
            None => DEFAULT_TOP,
            Some(n @ 1..=1000) => n as usize,
            Some(n) => return Err(("top_destinations", format!("{n}: expected 1 to 1000"))),
        };
        let history = history.unwrap_or(DEFAULT_HISTORY);
        if history < SAMPLE_EVERY || history > Duration::from_secs(24 * 3600) {
            return Err((
                "history",
                format!("{} s: expected 1 s to 24 h", history.as_secs()),
            ));
        }
        Ok(MetricsConfig {
            listen: addr,
            top,
            history,
        })
    }

    /// Samples the status page keeps.
    pub fn samples(&self) -> usize {
        (self.history.as_millis() / SAMPLE_EVERY.as_millis()).max(1) as usize
    }
}

/// A transport and a delivery outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    /// The transport.
    pub transport: String,
    /// `done`, `deferred`, `crashed` or `refused`.
    pub status: &'static str,
}

/// A transport.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransportLabels {
    /// The transport.
    pub transport: String,
}

/// A transport and a part of the `delays=a/b/c/d` split.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DelayLabels {
    /// The transport.
    pub transport: String,
    /// `before_qmgr` (a), `in_qmgr` (b), `agent` (c and d together).
    pub part: &'static str,
}

/// Why the queue manager deferred recipients itself.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CauseLabels {
    /// A [`QmgrDeferral::word`].
    pub cause: &'static str,
}

/// A queue directory.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    /// `incoming` or `deferred`.
    pub queue: &'static str,
}

/// A trigger request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TriggerLabels {
    /// What it asks for (see [`trigger_word`]).
    pub request: &'static str,
}

/// Histogram buckets from a list of upper bounds.
#[derive(Clone, Debug)]
pub struct Buckets(&'static [f64]);

impl MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(self.0.iter().copied())
    }
}

/// Bounds of the delivery delay histograms, seconds: from the 10 ms an
/// agent takes on a local sink to the days mail may wait in the queue
/// (part `a` holds the time in `deferred/`).
pub const DELAY_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0,
    86400.0, 432000.0,
];

/// Bounds of the scan duration histograms, seconds.
pub const SCAN_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// When a message arrived and when it entered the active queue (wall
/// clock, ms), by queue ID: what the daemon's active table knows.
pub type MessageTimes = Box<dyn Fn(&str) -> Option<(u64, u64)> + Send + Sync>;

/// What is counted as it happens.
pub struct Metrics {
    /// Checked configuration.
    pub config: MetricsConfig,
    /// Deliveries by transport and outcome.
    pub deliveries: Family<DeliveryLabels, Counter>,
    /// Recipients the queue manager deferred itself, by cause.
    pub qmgr_deferred: Family<CauseLabels, Counter>,
    /// `delays=` parts by transport.
    pub delays: Family<DelayLabels, Histogram, Buckets>,
    /// Scan walks by queue.
    pub scans: Family<QueueLabels, Histogram, Buckets>,
    /// Trigger requests.
    pub triggers: Family<TriggerLabels, Counter>,
    /// Failed agent connections by transport.
    pub connect_errors: Family<TransportLabels, Counter>,
    /// Arrival and active-queue times of admitted messages.
    message_times: Option<MessageTimes>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Metrics {
    /// Counters at zero (every cause and scan queue present, so a query
    /// finds them before the first event).
    pub fn new(config: MetricsConfig) -> Metrics {
        let m = Metrics {
            config,
            deliveries: Family::default(),
            qmgr_deferred: Family::default(),
            delays: Family::new_with_constructor(Buckets(DELAY_BUCKETS)),
            scans: Family::new_with_constructor(Buckets(SCAN_BUCKETS)),
            triggers: Family::default(),
            connect_errors: Family::default(),
            message_times: None,
        };
        for cause in QmgrDeferral::ALL {
            let _ = m.qmgr_deferred.get_or_create(&CauseLabels {
                cause: cause.word(),
            });
        }
        for queue in [QueueName::Incoming, QueueName::Deferred] {
            let _ = m.scans.get_or_create(&QueueLabels {
                queue: queue.as_str(),
            });
        }
        m
    }

    /// Takes arrival and active-queue times from `times`, for the
    /// `before_qmgr` and `in_qmgr` delays.
    pub fn with_message_times(mut self, times: MessageTimes) -> Metrics {
        self.message_times = Some(times);
        self
    }

    /// A delivery of `queue_id` over `transport` (to `nexthop`, with
    /// `recipients`) is handed to its agent at `wall_ms`: the delays
    /// before and in the queue manager, and, for the `retry` transport,
    /// the queue manager's own deferral.
    pub fn handed_off(
        &self,
        transport: &str,
        nexthop: &str,
        queue_id: &str,
        recipients: usize,
        wall_ms: u64,
    ) {
        if transport == oqmgr::route::RETRY {
            let cause = QmgrDeferral::of_retry_nexthop(nexthop);
            self.qmgr_deferred(cause, recipients);
        }
        let Some((arrival, active)) = self.message_times.as_ref().and_then(|f| f(queue_id)) else {
            return;
        };
        let secs = |ms: u64| ms as f64 / 1000.0;
        let observe = |part, value| {
            self.delays
                .get_or_create(&DelayLabels {
                    transport: transport.to_string(),
                    part,
                })
                .observe(value)
        };
        observe("before_qmgr", secs(active.saturating_sub(arrival)));
        observe("in_qmgr", secs(wall_ms.saturating_sub(active)));
    }

    /// `recipients` deferred by the queue manager itself for `cause`.
    pub fn qmgr_deferred(&self, cause: QmgrDeferral, recipients: usize) {
        self.qmgr_deferred
            .get_or_create(&CauseLabels {
                cause: cause.word(),
            })
            .inc_by(recipients as u64);
    }

    /// The agent of `transport` answered `report` after `agent_time`.
    pub fn delivered(&self, transport: &str, report: &DeliveryReport, agent_time: Duration) {
        let status = match report.outcome {
            Outcome::Done => "done",
            Outcome::Defer => "deferred",
            Outcome::Crash => "crashed",
            Outcome::Refused => "refused",
        };
        self.deliveries
            .get_or_create(&DeliveryLabels {
                transport: transport.to_string(),
                status,
            })
            .inc();
        self.delays
            .get_or_create(&DelayLabels {
                transport: transport.to_string(),
                part: "agent",
            })
            .observe(agent_time.as_secs_f64());
    }

    /// No agent connection for `transport`.
    pub fn connect_error(&self, transport: &str) {
        self.connect_errors
            .get_or_create(&TransportLabels {
                transport: transport.to_string(),
            })
            .inc();
    }

    /// A walk of `queue` took `took`.
    pub fn scanned(&self, queue: QueueName, took: Duration) {
        self.scans
            .get_or_create(&QueueLabels {
                queue: queue.as_str(),
            })
            .observe(took.as_secs_f64());
    }

    /// Trigger bytes arrived (NUL bytes are padding: cleanup's wakeup is
    /// `W` and its string's NUL).
    pub fn triggered(&self, bytes: &[u8]) {
        for &b in bytes.iter().filter(|&&b| b != 0) {
            self.triggers
                .get_or_create(&TriggerLabels {
                    request: trigger_word(b),
                })
                .inc();
        }
    }
}

/// The metrics' name for one trigger byte (Postfix's `mail_proto.h`
/// requests: `I` scan incoming, `D` scan deferred, `A` ignore time stamps,
/// `F` forget dead destinations, `W` wakeup: new mail from cleanup(8),
/// or master(8)'s periodic wakeup).
pub fn trigger_word(byte: u8) -> &'static str {
    match byte {
        b'I' => "scan_incoming",
        b'D' => "scan_deferred",
        b'A' => "scan_all",
        b'F' => "flush_dead",
        b'W' => "wakeup",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listen_address_must_be_loopback_unless_allowed() {
        let ok = MetricsConfig::new("127.0.0.1:9165", false, None, None).unwrap();
        assert_eq!(ok.top, DEFAULT_TOP);
        assert_eq!(ok.samples(), 600);
        assert!(MetricsConfig::new("[::1]:9165", false, None, None).is_ok());
        let e = MetricsConfig::new("0.0.0.0:9165", false, None, None).unwrap_err();
        assert_eq!(e.0, "listen");
        assert!(e.1.contains("allow_non_loopback = true"), "{}", e.1);
        assert!(MetricsConfig::new("0.0.0.0:9165", true, None, None).is_ok());
        for bad in ["localhost:9165", "127.0.0.1", ":9165", ""] {
            let e = MetricsConfig::new(bad, false, None, None).unwrap_err();
            assert!(e.1.contains("not an IP address and port"), "{bad}: {}", e.1);
        }
        assert_eq!(
            MetricsConfig::new("127.0.0.1:1", false, Some(0), None)
                .unwrap_err()
                .0,
            "top_destinations"
        );
        let h = Some(Duration::from_millis(10));
        assert_eq!(
            MetricsConfig::new("127.0.0.1:1", false, None, h)
                .unwrap_err()
                .0,
            "history"
        );
    }
}
