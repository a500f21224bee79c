//! Configuration parameters the scheduler honours (Postfix: `qmgr.c` `main()`
//! tables, `mail_params.h`, `get_mail_conf_*2`).
//!
//! INTERFACE SKETCH: the resolver (`Params::resolve`) is being written; the
//! struct shapes below are the contract the rest of the core codes against.

use std::collections::BTreeMap;

use crate::feedback::Feedback;
use crate::time::Duration;

/// Flat `name = value` map exactly as main.cf (then `-o` overrides) spells
/// it, already `$name`-expanded. Ordered so iteration never depends on hashing.
pub type RawParams = BTreeMap<String, String>;

/// A parameter value that was out of range or malformed, reported the way
/// Postfix's `msg_warn` fallbacks report it, with the value actually used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigWarning {
    /// Parameter name as spelled in main.cf.
    pub param: String,
    /// The full warning text, without the `warning: ` prefix.
    pub message: String,
}

/// Global (not per-transport) scheduler parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct GlobalParams {
    /// `qmgr_message_active_limit`: messages in memory at most.
    pub message_active_limit: u32,
    /// `qmgr_message_recipient_limit`: recipients in memory at most; also the
    /// size bound of the dead-destination cache.
    pub message_recipient_limit: u32,
    /// `qmgr_fudge_factor`: percent of the recipient limit read per message.
    pub fudge_factor: u32,
    /// `minimal_backoff_time`: shortest deferral; also how long a
    /// destination stays dead.
    pub minimal_backoff_time: Duration,
    /// `maximal_backoff_time`: longest deferral.
    pub maximal_backoff_time: Duration,
    /// `maximal_queue_lifetime`: age after which deferred mail is returned.
    pub maximal_queue_lifetime: Duration,
    /// `bounce_queue_lifetime`: the same for mail with a null sender.
    pub bounce_queue_lifetime: Duration,
    /// `delay_warning_time`: when cleanup would stamp a warning time
    /// (0 = no warnings). The daemon reads the stamp from the queue file;
    /// the simulator uses this to stamp arrivals.
    pub delay_warning_time: Duration,
    /// `queue_run_delay`: period of deferred-queue scans.
    pub queue_run_delay: Duration,
    /// `transport_retry_time`: how long a transport stays dead.
    pub transport_retry_time: Duration,
    /// `qmgr_clog_warn_time`: spacing of clog warnings (0 = off).
    pub clog_warn_time: Duration,
    /// `helpful_warnings`: master switch for clog warnings.
    pub helpful_warnings: bool,
    /// `confirm_delay_cleared`: send a notice when a delayed message leaves.
    pub confirm_delay_cleared: bool,
    /// `defer_transports`: transports whose mail is deferred without trying.
    pub defer_transports: Vec<String>,
    /// `destination_concurrency_feedback_debug`: log every window change.
    pub feedback_debug: bool,
    /// `double_bounce_sender`: local part whose mail is discarded.
    pub double_bounce_sender: String,
    /// `recipient_delimiter`: characters that start an address extension.
    pub recipient_delimiter: String,
    /// `owner_request_special`: keep `owner-x` / `x-request` whole.
    pub owner_request_special: bool,
    /// `address_verify_pending_request_limit`: probe messages in memory.
    pub verify_pending_limit: u32,
}

/// Per-transport parameters, `<transport>_...` falling back to `default_...`.
#[derive(Clone, Debug, PartialEq)]
pub struct TransportParams {
    /// The transport (master.cf service) name these were resolved for.
    pub name: String,
    /// `_destination_concurrency_limit` (0 = none).
    pub dest_concurrency_limit: u32,
    /// `_initial_destination_concurrency` (at least 1).
    pub init_dest_concurrency: u32,
    /// `_destination_recipient_limit` (0 = none).
    pub dest_recipient_limit: u32,
    /// `_transport_rate_delay` (0 = off).
    pub transport_rate_delay: Duration,
    /// `_destination_rate_delay` (0 = off; non-zero forces limit 1).
    pub dest_rate_delay: Duration,
    /// `_destination_concurrency_positive_feedback`.
    pub positive_feedback: Feedback,
    /// `_destination_concurrency_negative_feedback`.
    pub negative_feedback: Feedback,
    /// `_destination_concurrency_failed_cohort_limit` (0 = never dead).
    pub fail_cohort_limit: u32,
}

impl Default for GlobalParams {
    fn default() -> GlobalParams {
        GlobalParams {
            message_active_limit: 20000,
            message_recipient_limit: 20000,
            fudge_factor: 100,
            minimal_backoff_time: Duration::from_secs(300),
            maximal_backoff_time: Duration::from_secs(4000),
            maximal_queue_lifetime: Duration::from_secs(5 * 86400),
            bounce_queue_lifetime: Duration::from_secs(5 * 86400),
            delay_warning_time: Duration::ZERO,
            queue_run_delay: Duration::from_secs(300),
            transport_retry_time: Duration::from_secs(60),
            clog_warn_time: Duration::from_secs(300),
            helpful_warnings: true,
            confirm_delay_cleared: false,
            defer_transports: Vec::new(),
            feedback_debug: false,
            double_bounce_sender: "double-bounce".into(),
            recipient_delimiter: String::new(),
            owner_request_special: true,
            verify_pending_limit: 5000,
        }
    }
}

/// Resolved parameters: the globals plus the raw map for per-transport
/// lookups. TEMPORARY minimal resolver; replaced by the full table.
#[derive(Clone, Debug, Default)]
pub struct Params {
    /// Global parameters.
    pub global: GlobalParams,
    /// The raw map.
    raw: RawParams,
}

impl Params {
    /// Resolves a raw map.
    pub fn resolve(raw: &RawParams) -> (Params, Vec<ConfigWarning>) {
        let mut g = GlobalParams::default();
        let secs = |name: &str, d: Duration| {
            raw.get(name)
                .and_then(|v| crate::sim::scenario::Span::parse(v).ok())
                .map_or(d, |s| s.0)
        };
        let num = |name: &str, d: u32| raw.get(name).and_then(|v| v.parse().ok()).unwrap_or(d);
        g.message_active_limit = num("qmgr_message_active_limit", g.message_active_limit);
        g.message_recipient_limit = num("qmgr_message_recipient_limit", g.message_recipient_limit);
        g.minimal_backoff_time = secs("minimal_backoff_time", g.minimal_backoff_time);
        g.maximal_backoff_time = secs("maximal_backoff_time", g.maximal_backoff_time);
        g.maximal_queue_lifetime = secs("maximal_queue_lifetime", g.maximal_queue_lifetime);
        g.bounce_queue_lifetime = secs("bounce_queue_lifetime", g.bounce_queue_lifetime);
        g.delay_warning_time = secs("delay_warning_time", g.delay_warning_time);
        g.queue_run_delay = secs("queue_run_delay", g.queue_run_delay);
        g.transport_retry_time = secs("transport_retry_time", g.transport_retry_time);
        g.clog_warn_time = secs("qmgr_clog_warn_time", g.clog_warn_time);
        if let Some(v) = raw.get("defer_transports") {
            g.defer_transports = v
                .split([',', ' '])
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
        }
        g.feedback_debug = raw
            .get("destination_concurrency_feedback_debug")
            .is_some_and(|v| v == "yes");
        (
            Params {
                global: g,
                raw: raw.clone(),
            },
            Vec::new(),
        )
    }

    /// Resolves one transport's parameters.
    pub fn transport(&self, name: &str) -> (TransportParams, Vec<ConfigWarning>) {
        let get = |suffix: &str, fallback: &str, d: &str| -> String {
            self.raw
                .get(&format!("{name}_{suffix}"))
                .or_else(|| self.raw.get(fallback))
                .cloned()
                .unwrap_or_else(|| d.to_string())
        };
        let local = name == "local";
        let num = |s: String| s.trim_end_matches('s').parse::<u32>().unwrap_or(0);
        let fb = |s: String| match s.split_once('/') {
            Some((n, "concurrency")) => Feedback::PerConcurrency(n.parse().unwrap_or(1.0)),
            Some((n, "sqrt_concurrency")) => Feedback::PerSqrtConcurrency(n.parse().unwrap_or(1.0)),
            Some((n, m)) => Feedback::Constant(
                n.parse::<f64>().unwrap_or(1.0) / m.parse::<f64>().unwrap_or(1.0),
            ),
            None => Feedback::Constant(s.parse().unwrap_or(1.0)),
        };
        let mut tp = TransportParams {
            name: name.to_string(),
            dest_concurrency_limit: num(get(
                "destination_concurrency_limit",
                "default_destination_concurrency_limit",
                if local { "2" } else { "20" },
            )),
            init_dest_concurrency: num(get(
                "initial_destination_concurrency",
                "initial_destination_concurrency",
                "5",
            ))
            .max(1),
            dest_recipient_limit: num(get(
                "destination_recipient_limit",
                "default_destination_recipient_limit",
                if local { "1" } else { "50" },
            )),
            transport_rate_delay: Duration::from_secs(u64::from(num(get(
                "transport_rate_delay",
                "default_transport_rate_delay",
                "0",
            )))),
            dest_rate_delay: Duration::from_secs(u64::from(num(get(
                "destination_rate_delay",
                "default_destination_rate_delay",
                "0",
            )))),
            positive_feedback: fb(get(
                "destination_concurrency_positive_feedback",
                "default_destination_concurrency_positive_feedback",
                "1",
            )),
            negative_feedback: fb(get(
                "destination_concurrency_negative_feedback",
                "default_destination_concurrency_negative_feedback",
                "1",
            )),
            fail_cohort_limit: num(get(
                "destination_concurrency_failed_cohort_limit",
                "default_destination_concurrency_failed_cohort_limit",
                "1",
            )),
        };
        if !tp.dest_rate_delay.is_zero() {
            tp.dest_concurrency_limit = 1;
        }
        if tp.dest_concurrency_limit > 0 && tp.dest_concurrency_limit < tp.init_dest_concurrency {
            tp.init_dest_concurrency = tp.dest_concurrency_limit;
        }
        (tp, Vec::new())
    }

    /// Convenience for tests and the simulator.
    pub fn from_pairs(pairs: &[(&str, &str)]) -> (Params, Vec<ConfigWarning>) {
        let raw: RawParams = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Params::resolve(&raw)
    }
}
