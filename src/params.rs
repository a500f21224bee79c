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
