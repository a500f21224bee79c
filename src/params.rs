//! Configuration parameters the scheduler honours (Postfix: oqmgr `qmgr.c`
//! `main()` tables and `qmgr_post_init()`, `qmgr_transport.c`
//! `qmgr_transport_create()`, `mail_params.h`, `get_mail_conf_*2`).
//!
//! The host reads main.cf and `-o` overrides into [`RawParams`], a flat map
//! of already-expanded text. [`Params::resolve`] turns it into typed
//! [`GlobalParams`], and [`Params::transport`] resolves one transport's
//! [`TransportParams`] the way Postfix does when it first meets the
//! transport: `<transport>_<suffix>` if set, else the global parameter it
//! falls back to.
//!
//! Resolution fails where Postfix's oqmgr stops with a fatal error (a
//! malformed number, a value out of range, a bad boolean, an empty
//! feedback value): [`Params::resolve`] returns every such problem as a
//! [`ConfigFatal`] with Postfix's text, the one Postfix would stop on
//! first. Where Postfix accepts a value and then misbehaves without a word
//! (a negative concurrency limit delivers nothing), we stop too (see
//! `params::table` for the list). Where Postfix warns and adjusts, we give its
//! exact warning. [`Params::check`] lists every fatal and every warning at
//! once, for `oqmgr check`.
//!
//! # Invariants
//! - Every parameter read here has exactly one row in [`DEFINITIONS`]
//!   (name, kind, default, bounds); defaults, bounds and the
//!   `Default` impls all come from that row.
//! - Results never depend on map iteration order: fatals and warnings
//!   come out in table order (Postfix's reading order), then per-transport
//!   parameters by name, then the cross-parameter adjustments.
//! - A [`Params`] exists only for a configuration without fatals, so
//!   [`Params::transport`] cannot meet a malformed value.
//!
//! # Compatibility
//! - `local_destination_concurrency_limit` (2) and
//!   `local_destination_recipient_limit` (1) are built-in defaults of their
//!   own, so transport `local` does not inherit the `default_...` values.
//! - `<transport>_destination_rate_delay` > 0 forces the concurrency limit
//!   to 1; a non-zero limit below the initial concurrency lowers the
//!   initial concurrency. Postfix logs nothing for either, nor do we.
//! - `qmgr_message_recipient_limit` below `qmgr_message_active_limit` is
//!   raised, and `bounce_queue_lifetime` above `maximal_queue_lifetime` is
//!   lowered, each with Postfix's warning.
//! - Postfix checks a `<transport>_...` value only when the transport
//!   first gets mail, and then stops in the middle of delivering; we check
//!   every such value set in main.cf when resolving, so a bad one stops the
//!   queue manager at start-up with the same text.
//! - `delay_warning_time` is cleanup(8)'s: Postfix's oqmgr never reads it,
//!   so a bad value is never fatal here and [`Params::resolve`] says
//!   nothing of it (the default is used); [`Params::check`] warns.

mod table;

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use table::{convert, ConvertedValue};
pub use table::{definition, parse_time, ParamDef, ParamKind, DEFINITIONS};

/// Parameters in [`DEFINITIONS`] that Postfix's oqmgr does not read (so a
/// bad value there never stops it).
const NOT_READ_BY_QMGR: [&str; 1] = ["delay_warning_time"];

use crate::feedback::Feedback;
use crate::time::Duration;

/// Flat `name = value` map exactly as main.cf (then `-o` overrides) spells
/// it, already `$name`-expanded. Ordered so iteration never depends on hashing.
pub type RawParams = BTreeMap<String, String>;

/// A parameter value that was out of range or malformed, reported the way
/// Postfix's `msg_warn` fallbacks report it, with the value actually used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConfigWarning {
    /// Parameter name as spelled in main.cf.
    pub param: String,
    /// The full warning text, without the `warning: ` prefix.
    pub message: String,
}

/// A parameter value that stops the queue manager: Postfix's `msg_fatal`
/// text (without `fatal: `), or ours where Postfix would go on silently.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConfigFatal {
    /// Parameter name as spelled in main.cf.
    pub param: String,
    /// The full fatal text, without the `fatal: ` prefix.
    pub message: String,
}

impl fmt::Display for ConfigFatal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Global (not per-transport) scheduler parameters.
#[derive(Clone, Debug, PartialEq, Serialize)]
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
    /// `disable_verp_bounces`: send one bounce for all VERP recipients
    /// instead of one per recipient.
    pub disable_verp_bounces: bool,
    /// `default_filter_nexthop`: next hop for a content filter that names
    /// none (empty = the recipient domain, Postfix 2.7+ behaviour).
    pub default_filter_nexthop: String,
    /// `qmgr_daemon_timeout`: the watchdog; one request may take this long
    /// before the daemon gives up on itself.
    pub daemon_timeout: Duration,
    /// `qmgr_ipc_timeout`: I/O timeout on the daemon's own IPC
    /// (trivial-rewrite, bounce, verify).
    pub ipc_timeout: Duration,
}

/// Per-transport parameters, `<transport>_...` falling back to `default_...`.
#[derive(Clone, Debug, PartialEq, Serialize)]
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
    /// Postfix 3.7.11's defaults (`postconf -d`), taken from [`DEFINITIONS`].
    fn default() -> Self {
        match Params::resolve(&RawParams::new()) {
            Ok((params, _)) => params.global,
            Err(fatals) => panic!("table defaults are fatal: {fatals:?}"),
        }
    }
}

/// Per-transport parameter suffixes and the global parameter each one
/// falls back to when `<transport><suffix>` is not set.
const PER_TRANSPORT: [(&str, &str); 8] = [
    (
        "_destination_concurrency_limit",
        "default_destination_concurrency_limit",
    ),
    (
        "_initial_destination_concurrency",
        "initial_destination_concurrency",
    ),
    (
        "_destination_recipient_limit",
        "default_destination_recipient_limit",
    ),
    ("_transport_rate_delay", "default_transport_rate_delay"),
    ("_destination_rate_delay", "default_destination_rate_delay"),
    (
        "_destination_concurrency_positive_feedback",
        "default_destination_concurrency_positive_feedback",
    ),
    (
        "_destination_concurrency_negative_feedback",
        "default_destination_concurrency_negative_feedback",
    ),
    (
        "_destination_concurrency_failed_cohort_limit",
        "default_destination_concurrency_failed_cohort_limit",
    ),
];

/// Resolved configuration: the global parameters, plus what is needed to
/// resolve any transport's parameters later.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// The global scheduler parameters.
    pub global: GlobalParams,
    /// The raw map, kept for `<transport>_...` lookups.
    raw: RawParams,
    /// Every table parameter, converted and bounded (adjustments applied).
    values: Values,
}

/// What [`Params::check`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigReport {
    /// Values that stop the queue manager, the first being the one Postfix
    /// would stop on.
    pub fatals: Vec<ConfigFatal>,
    /// Warnings the queue manager logs at start-up or when a transport
    /// first gets mail.
    pub warnings: Vec<ConfigWarning>,
}

impl Params {
    /// Resolves every parameter in [`DEFINITIONS`] from `raw`, and checks
    /// every `<transport>_...` parameter `raw` sets.
    ///
    /// Absent parameters take their defaults; then Postfix's
    /// `qmgr_post_init` adjustments run, with their warnings. `Err` holds
    /// every value that stops the queue manager (never empty), in the order
    /// Postfix reads them.
    pub fn resolve(raw: &RawParams) -> Result<(Params, Vec<ConfigWarning>), Vec<ConfigFatal>> {
        let (params, mut warnings, fatals) = Params::resolve_all(raw);
        // Postfix's oqmgr says nothing about what it does not read.
        warnings.retain(|w| !NOT_READ_BY_QMGR.contains(&w.param.as_str()));
        if fatals.is_empty() {
            Ok((params, warnings))
        } else {
            Err(fatals)
        }
    }

    /// Every fatal and every warning `raw` gives, including the feedback
    /// warnings of each transport it names (which Postfix logs only when
    /// that transport first gets mail).
    pub fn check(raw: &RawParams) -> ConfigReport {
        let (params, mut warnings, fatals) = Params::resolve_all(raw);
        // `smtp` stands for every transport without settings of its own:
        // it shows what they inherit.
        let mut seen = Vec::new();
        let named = per_transport_settings(raw).into_iter().map(|(t, _, _)| t);
        for name in std::iter::once("smtp").chain(named) {
            if !seen.contains(&name) {
                warnings.extend(params.transport(name).1);
                seen.push(name);
            }
        }
        // An inherited bad feedback value is blamed on the `default_...`
        // name by every transport; say it once.
        let mut unique: Vec<ConfigWarning> = Vec::with_capacity(warnings.len());
        for w in warnings {
            if !unique.contains(&w) {
                unique.push(w);
            }
        }
        ConfigReport {
            fatals,
            warnings: unique,
        }
    }

    /// Resolution with fatal values replaced by their defaults, so that
    /// [`Params::check`] can go on and report everything.
    fn resolve_all(raw: &RawParams) -> (Params, Vec<ConfigWarning>, Vec<ConfigFatal>) {
        let mut warnings = Vec::new();
        let mut fatals = Vec::new();
        let mut values = BTreeMap::new();
        for def in DEFINITIONS {
            let unit = def.time_unit();
            let default = convert(
                def.name,
                def.kind,
                unit,
                Some(def.default),
                &ConvertedValue::Int(0),
            )
            .unwrap_or_else(|e| panic!("table default of {} is invalid: {e}", def.name));
            let text = raw.get(def.name).map(String::as_str);
            let value = match convert(def.name, def.kind, unit, text, &default) {
                Ok(value) => value,
                Err(fatal) if NOT_READ_BY_QMGR.contains(&def.name) => {
                    let used = default.describe();
                    warnings.push(ConfigWarning {
                        param: fatal.param,
                        message: format!("{}; using the default: {used}", fatal.message),
                    });
                    default
                }
                Err(fatal) => {
                    fatals.push(fatal);
                    default
                }
            };
            values.insert(def.name, value);
        }
        for (_, own_name, fallback_name) in per_transport_settings(raw) {
            let def = definition(fallback_name).expect("PER_TRANSPORT names table rows");
            let text = raw.get(own_name).map(String::as_str);
            // Per-transport times are in seconds without a suffix
            // (get_mail_conf_time2 with unit 's').
            if let Err(fatal) = convert(own_name, def.kind, 's', text, &ConvertedValue::Int(0)) {
                fatals.push(fatal);
            }
        }
        adjust(&mut values, &mut warnings);
        let global = build_global(&values);
        let params = Params {
            global,
            raw: raw.clone(),
            values,
        };
        (params, warnings, fatals)
    }

    /// [`Params::resolve`] over a literal list of `(name, value)` pairs; a
    /// later pair overrides an earlier one, like `-o` after main.cf.
    pub fn from_pairs(
        pairs: &[(&str, &str)],
    ) -> Result<(Params, Vec<ConfigWarning>), Vec<ConfigFatal>> {
        let raw: RawParams = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Params::resolve(&raw)
    }

    /// The raw map these parameters were resolved from.
    pub fn raw(&self) -> &RawParams {
        &self.raw
    }

    /// Resolves the parameters of transport `name` (Postfix:
    /// `qmgr_transport_create`).
    ///
    /// Warnings concern this transport's own parameters, or an inherited
    /// feedback value (blamed on the `default_...` name, as Postfix does);
    /// callers resolve each transport once, when it is first used.
    pub fn transport(&self, name: &str) -> (TransportParams, Vec<ConfigWarning>) {
        let mut warnings = Vec::new();
        let get = |index: usize| -> ConvertedValue {
            let (suffix, fallback_name) = PER_TRANSPORT[index];
            let own_name = format!("{name}{suffix}");
            if let Some(value) = self.values.get(own_name.as_str()) {
                // A table parameter in its own right (local_...): already
                // resolved, with its own built-in default.
                return value.clone();
            }
            let def = definition(fallback_name).expect("PER_TRANSPORT names table rows");
            let fallback = self.value(fallback_name);
            let own = self.raw.get(&own_name).map(String::as_str);
            // Per-transport times are in seconds without a suffix
            // (get_mail_conf_time2 with unit 's').
            // Every value set in main.cf was checked by `resolve`.
            convert(&own_name, def.kind, 's', own, fallback).unwrap_or_else(|_| fallback.clone())
        };
        let mut dest_concurrency_limit = as_int(&get(0));
        let mut init_dest_concurrency = as_int(&get(1));
        let dest_recipient_limit = as_int(&get(2));
        let transport_rate_delay = as_time(&get(3));
        let dest_rate_delay = as_time(&get(4));
        let positive_text = as_text(&get(5));
        let negative_text = as_text(&get(6));
        let fail_cohort_limit = as_int(&get(7));

        // qmgr_transport_create: a rate delay means one delivery at a time,
        // and the window may never start above the limit.
        if !dest_rate_delay.is_zero() {
            dest_concurrency_limit = 1;
        }
        if dest_concurrency_limit != 0 && dest_concurrency_limit < init_dest_concurrency {
            init_dest_concurrency = dest_concurrency_limit;
        }

        let mut feedback = |index: usize, text: String| -> Feedback {
            let (suffix, fallback_name) = PER_TRANSPORT[index];
            let default_text = as_text(self.value(fallback_name));
            let blame = if text == default_text {
                fallback_name.to_string()
            } else {
                format!("{name}{suffix}")
            };
            let (fb, warning) = Feedback::parse(&blame, &text);
            warnings.extend(warning);
            fb
        };
        let positive_feedback = feedback(5, positive_text);
        let negative_feedback = feedback(6, negative_text);

        let params = TransportParams {
            name: name.to_string(),
            dest_concurrency_limit,
            init_dest_concurrency,
            dest_recipient_limit,
            transport_rate_delay,
            dest_rate_delay,
            positive_feedback,
            negative_feedback,
            fail_cohort_limit,
        };
        (params, warnings)
    }

    /// The resolved value of table parameter `name`.
    fn value(&self, name: &str) -> &ConvertedValue {
        lookup(&self.values, name)
    }
}

/// Every `<transport><suffix>` parameter `raw` sets that is not a table
/// row of its own (`local_...` are): transport name, parameter name and
/// the global parameter it falls back to, in name order.
fn per_transport_settings(raw: &RawParams) -> Vec<(&str, &str, &'static str)> {
    let mut found = Vec::new();
    for name in raw.keys() {
        if definition(name).is_some() {
            continue;
        }
        for (suffix, fallback_name) in PER_TRANSPORT {
            match name.strip_suffix(suffix) {
                Some(transport) if !transport.is_empty() => {
                    found.push((transport, name.as_str(), fallback_name));
                }
                _ => {}
            }
        }
    }
    found
}

/// Resolved table values by parameter name.
type Values = BTreeMap<&'static str, ConvertedValue>;

/// The resolved value of table parameter `name`.
fn lookup<'a>(values: &'a Values, name: &str) -> &'a ConvertedValue {
    values
        .get(name)
        .unwrap_or_else(|| panic!("{name} is not in DEFINITIONS"))
}

/// Postfix's `qmgr_post_init` sanity checks, with its warning texts.
fn adjust(values: &mut Values, warnings: &mut Vec<ConfigWarning>) {
    const RCPT: &str = "qmgr_message_recipient_limit";
    const ACTIVE: &str = "qmgr_message_active_limit";
    const BOUNCE: &str = "bounce_queue_lifetime";
    const MAX_LIFE: &str = "maximal_queue_lifetime";
    let active = lookup(values, ACTIVE).clone();
    if as_int(lookup(values, RCPT)) < as_int(&active) {
        warnings.push(ConfigWarning {
            param: RCPT.to_string(),
            message: format!("{RCPT} is smaller than {ACTIVE} - adjusting {RCPT}"),
        });
        values.insert(RCPT, active);
    }
    let max_life = lookup(values, MAX_LIFE).clone();
    if as_time(lookup(values, BOUNCE)) > as_time(&max_life) {
        warnings.push(ConfigWarning {
            param: BOUNCE.to_string(),
            message: format!("{BOUNCE} is larger than {MAX_LIFE} - adjusting {BOUNCE}"),
        });
        values.insert(BOUNCE, max_life);
    }
}

/// Copies the resolved table values into the struct.
fn build_global(values: &Values) -> GlobalParams {
    let int = |name| as_int(lookup(values, name));
    let time = |name| as_time(lookup(values, name));
    let flag = |name| as_bool(lookup(values, name));
    let text = |name| as_text(lookup(values, name));
    GlobalParams {
        message_active_limit: int("qmgr_message_active_limit"),
        message_recipient_limit: int("qmgr_message_recipient_limit"),
        fudge_factor: int("qmgr_fudge_factor"),
        minimal_backoff_time: time("minimal_backoff_time"),
        maximal_backoff_time: time("maximal_backoff_time"),
        maximal_queue_lifetime: time("maximal_queue_lifetime"),
        bounce_queue_lifetime: time("bounce_queue_lifetime"),
        delay_warning_time: time("delay_warning_time"),
        queue_run_delay: time("queue_run_delay"),
        transport_retry_time: time("transport_retry_time"),
        clog_warn_time: time("qmgr_clog_warn_time"),
        helpful_warnings: flag("helpful_warnings"),
        confirm_delay_cleared: flag("confirm_delay_cleared"),
        defer_transports: match lookup(values, "defer_transports") {
            ConvertedValue::List(items) => items.clone(),
            other => panic!("defer_transports resolved to {other:?}"),
        },
        feedback_debug: flag("destination_concurrency_feedback_debug"),
        double_bounce_sender: text("double_bounce_sender"),
        recipient_delimiter: text("recipient_delimiter"),
        owner_request_special: flag("owner_request_special"),
        verify_pending_limit: int("address_verify_pending_request_limit"),
        disable_verp_bounces: flag("disable_verp_bounces"),
        default_filter_nexthop: text("default_filter_nexthop"),
        daemon_timeout: time("qmgr_daemon_timeout"),
        ipc_timeout: time("qmgr_ipc_timeout"),
    }
}

// The kind of every row is fixed by the table, so a mismatch below is a bug
// in this module, never bad input.

fn as_int(v: &ConvertedValue) -> u32 {
    match v {
        ConvertedValue::Int(n) => *n,
        other => panic!("expected a count, table gave {other:?}"),
    }
}

fn as_time(v: &ConvertedValue) -> Duration {
    match v {
        ConvertedValue::Time(d) => *d,
        other => panic!("expected a time, table gave {other:?}"),
    }
}

fn as_bool(v: &ConvertedValue) -> bool {
    match v {
        ConvertedValue::Bool(b) => *b,
        other => panic!("expected a boolean, table gave {other:?}"),
    }
}

fn as_text(v: &ConvertedValue) -> String {
    match v {
        ConvertedValue::Text(s) => s.clone(),
        other => panic!("expected text, table gave {other:?}"),
    }
}
