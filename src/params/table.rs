//! The one table of parameter definitions and the value converters
//! (Postfix: the `CONFIG_*_TABLE` arrays of oqmgr's `qmgr.c` `main()`, the
//! parts of `mail_params.c` the scheduler uses, `mail_conf_{int,time,bool,
//! str}.c` and `conv_time.c`).
//!
//! Every parameter the scheduler reads appears once in [`DEFINITIONS`] with
//! its kind, its Postfix 3.7.11 default (as `postconf -d` prints it) and its
//! bounds. Parsing, bounds and defaults all come from here, so a default
//! cannot drift between the resolver, [`Default`] for the structs and the
//! host's expansion defaults.
//!
//! # Syntax (as Postfix accepts it)
//! - Integers: optional sign, decimal digits, nothing else; must fit a C
//!   `int`.
//! - Times: an integer of at least zero, then an optional unit `s`, `m`,
//!   `h`, `d` or `w` (lower case only); without one, the unit of the
//!   default value applies (`maximal_queue_lifetime = 3` is three days).
//!   Like Postfix, text after the unit letter is ignored and a bare unit
//!   letter reads as zero.
//! - Booleans: `yes` or `no`, in any case.
//! - Lists: items separated by commas and/or white space.
//!
//! # Errors
//! Like Postfix, a malformed or out-of-range value is fatal: the check
//! returns a [`ConfigFatal`] with the text Postfix's `msg_fatal` gives
//! (`bad numerical configuration: ...`, `invalid ... parameter value ...`,
//! `parameter ...: bad time value or unit: ...`, `bad boolean
//! configuration: ...`, `bad string length ...`).
//!
//! # Where we are stricter than Postfix
//! Postfix checks no lower bound when the bound is 0, so it accepts a
//! negative count there (`default_destination_concurrency_limit = -1`
//! then delivers nothing, silently), and it reads a time value by its
//! number and the first letter after it only (`soon` is 0, `1month` is one
//! minute). We stop on these with the same kind of text: `invalid ...
//! parameter value -1 < 0`, `bad time value or unit`.
//!
//! # Order
//! [`DEFINITIONS`] lists the parameters in the order Postfix's oqmgr reads
//! them (`mail_params_init`'s string then boolean tables, then oqmgr's
//! integer, string, boolean and time tables), so the first fatal is the
//! one Postfix would stop on.

use crate::params::ConfigFatal;
use crate::time::Duration;

/// Largest value of a C `int`, Postfix's type for counts and seconds.
const INT_MAX: i64 = i32::MAX as i64;

/// What a parameter's value is and which values are reasonable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// A count, within `min..=max`.
    Int {
        /// Smallest accepted value.
        min: u32,
        /// Largest accepted value (`i32::MAX` when Postfix sets no bound).
        max: u32,
    },
    /// A time in seconds, within `min..=max`; the unit without a suffix is
    /// the one in the default value.
    Time {
        /// Smallest accepted value, in seconds.
        min: u32,
        /// Largest accepted value, in seconds.
        max: u32,
    },
    /// `yes` or `no`.
    Bool,
    /// Free text of at least `min_len` bytes.
    Str {
        /// Shortest accepted length (Postfix's string `min`).
        min_len: usize,
    },
    /// A comma or white-space separated list.
    List,
    /// A concurrency feedback value of at least one character, parsed per
    /// transport by [`crate::feedback::Feedback::parse`].
    Feedback,
}

/// One parameter: name, kind and bounds, and default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamDef {
    /// The name as main.cf spells it.
    pub name: &'static str,
    /// Kind and bounds.
    pub kind: ParamKind,
    /// The Postfix 3.7.11 default, spelled as `postconf -d` prints it.
    pub default: &'static str,
}

/// Postfix's "no upper bound" for counts and times.
const NONE: u32 = i32::MAX as u32;

impl ParamDef {
    /// A count within `min..=max`.
    pub const fn int(name: &'static str, default: &'static str, min: u32, max: u32) -> ParamDef {
        ParamDef {
            name,
            kind: ParamKind::Int { min, max },
            default,
        }
    }

    /// A time within `min..=max` seconds.
    pub const fn time(name: &'static str, default: &'static str, min: u32, max: u32) -> ParamDef {
        ParamDef {
            name,
            kind: ParamKind::Time { min, max },
            default,
        }
    }

    /// `yes` or `no`.
    pub const fn boolean(name: &'static str, default: &'static str) -> ParamDef {
        ParamDef {
            name,
            kind: ParamKind::Bool,
            default,
        }
    }

    /// Text of at least `min_len` bytes.
    pub const fn text(name: &'static str, default: &'static str, min_len: usize) -> ParamDef {
        ParamDef {
            name,
            kind: ParamKind::Str { min_len },
            default,
        }
    }
}

/// Every parameter the scheduler reads, with Postfix 3.7.11's defaults and
/// bounds, in the order Postfix's oqmgr reads them (see the module doc):
/// `mail_params.c`, then oqmgr `qmgr.c` `main()` tables, and last
/// `delay_warning_time`, which only cleanup(8) reads in Postfix.
pub const DEFINITIONS: &[ParamDef] = &[
    // mail_params_init: strings, then booleans.
    ParamDef::text("double_bounce_sender", "double-bounce", 1),
    ParamDef::text("recipient_delimiter", "", 0),
    ParamDef::boolean("owner_request_special", "yes"),
    ParamDef::boolean("helpful_warnings", "yes"),
    // Counts (oqmgr int_table).
    ParamDef::int("qmgr_message_active_limit", "20000", 1, NONE),
    ParamDef::int("qmgr_message_recipient_limit", "20000", 1, NONE),
    ParamDef::int("initial_destination_concurrency", "5", 1, NONE),
    ParamDef::int("default_destination_concurrency_limit", "20", 0, NONE),
    ParamDef::int("default_destination_recipient_limit", "50", 0, NONE),
    ParamDef::int("qmgr_fudge_factor", "100", 10, 100),
    ParamDef::int("local_destination_recipient_limit", "1", 0, NONE),
    ParamDef::int("local_destination_concurrency_limit", "2", 0, NONE),
    ParamDef::int(
        "default_destination_concurrency_failed_cohort_limit",
        "1",
        0,
        NONE,
    ),
    ParamDef::int("address_verify_pending_request_limit", "5000", 1, NONE),
    // Strings (oqmgr str_table).
    ParamDef {
        name: "defer_transports",
        kind: ParamKind::List,
        default: "",
    },
    ParamDef {
        name: "default_destination_concurrency_positive_feedback",
        kind: ParamKind::Feedback,
        default: "1",
    },
    ParamDef {
        name: "default_destination_concurrency_negative_feedback",
        kind: ParamKind::Feedback,
        default: "1",
    },
    ParamDef::text("default_filter_nexthop", "", 0),
    // Booleans (oqmgr bool_table).
    ParamDef::boolean("disable_verp_bounces", "no"),
    ParamDef::boolean("destination_concurrency_feedback_debug", "no"),
    ParamDef::boolean("confirm_delay_cleared", "no"),
    // Times (oqmgr time_table).
    ParamDef::time("queue_run_delay", "300s", 1, NONE),
    ParamDef::time("minimal_backoff_time", "300s", 1, NONE),
    ParamDef::time("maximal_backoff_time", "4000s", 1, NONE),
    ParamDef::time("maximal_queue_lifetime", "5d", 0, 8_640_000),
    ParamDef::time("bounce_queue_lifetime", "5d", 0, 8_640_000),
    ParamDef::time("transport_retry_time", "60s", 1, NONE),
    ParamDef::time("qmgr_clog_warn_time", "300s", 0, NONE),
    ParamDef::time("default_transport_rate_delay", "0s", 0, NONE),
    ParamDef::time("default_destination_rate_delay", "0s", 0, NONE),
    ParamDef::time("qmgr_daemon_timeout", "1000s", 1, NONE),
    ParamDef::time("qmgr_ipc_timeout", "60s", 1, NONE),
    // cleanup(8)'s; the simulator uses it to stamp arrivals.
    ParamDef::time("delay_warning_time", "0h", 0, NONE),
];

/// The definition of `name`, if the scheduler reads that parameter.
pub fn definition(name: &str) -> Option<&'static ParamDef> {
    DEFINITIONS.iter().find(|d| d.name == name)
}

impl ParamDef {
    /// The unit a time value without a suffix is in: the first letter of the
    /// default (Postfix's `get_def_time_unit`); `s` for non-time kinds.
    pub fn time_unit(&self) -> char {
        self.default
            .chars()
            .find(char::is_ascii_alphabetic)
            .unwrap_or('s')
    }
}

/// A converted value, before it is placed into a struct field.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ConvertedValue {
    /// A count.
    Int(u32),
    /// A time.
    Time(Duration),
    /// A boolean.
    Bool(bool),
    /// Text, including unparsed feedback values.
    Text(String),
    /// A list of items.
    List(Vec<String>),
}

impl ConvertedValue {
    /// How the value reads in a warning's "using ..." part.
    pub(crate) fn describe(&self) -> String {
        match self {
            ConvertedValue::Int(n) => n.to_string(),
            ConvertedValue::Time(d) => format!("{}s", d.as_secs()),
            ConvertedValue::Bool(b) => if *b { "yes" } else { "no" }.to_string(),
            ConvertedValue::Text(s) => s.clone(),
            ConvertedValue::List(items) => items.join(", "),
        }
    }
}

impl ParamDef {
    /// Checks `text` as a value of this parameter (`None`: not set, so the
    /// default applies), the way Postfix's `get_mail_conf_*` does: `Err` is
    /// the fatal error it stops on, or ours where it would accept the value
    /// and then misbehave without a word.
    pub fn check(&self, text: Option<&str>) -> Result<(), ConfigFatal> {
        match text {
            Some(text) => convert_text(self.name, self.kind, self.time_unit(), text).map(drop),
            None => Ok(()),
        }
    }
}

/// Converts `text` (or, when absent, the fallback) for parameter `name` of
/// kind `kind`, whose suffix-less time unit is `unit`.
///
/// `fallback` is what an absent value becomes: the table default for
/// global parameters, the `default_...` value for per-transport ones.
pub(crate) fn convert(
    name: &str,
    kind: ParamKind,
    unit: char,
    text: Option<&str>,
    fallback: &ConvertedValue,
) -> Result<ConvertedValue, ConfigFatal> {
    match text {
        Some(text) => convert_text(name, kind, unit, text),
        None => Ok(fallback.clone()),
    }
}

/// Converts one value, or says why Postfix would stop on it (or why we do).
fn convert_text(
    name: &str,
    kind: ParamKind,
    unit: char,
    text: &str,
) -> Result<ConvertedValue, ConfigFatal> {
    let fatal = |message: String| ConfigFatal {
        param: name.to_string(),
        message,
    };
    match kind {
        ParamKind::Int { min, max } => {
            let n = parse_int(text)
                .ok_or_else(|| fatal(format!("bad numerical configuration: {name} = {text}")))?;
            // Postfix skips the lower check when the bound is 0, so a
            // negative limit gets through and, for a concurrency limit,
            // stops all delivery without a word; we refuse it in the words
            // Postfix uses for a bound it does check.
            if n < i64::from(min) {
                return Err(fatal(format!("invalid {name} parameter value {n} < {min}")));
            }
            if n > i64::from(max) {
                return Err(fatal(format!("invalid {name} parameter value {n} > {max}")));
            }
            Ok(ConvertedValue::Int(
                u32::try_from(n).expect("bounded by u32 min/max"),
            ))
        }
        ParamKind::Time { min, max } => {
            let bad_time = || fatal(format!("parameter {name}: bad time value or unit: {text}"));
            let secs = parse_time(text, unit).ok_or_else(bad_time)?;
            if secs < min {
                return Err(fatal(format!("invalid {name}: {secs} (min {min})")));
            }
            if secs > max {
                return Err(fatal(format!("invalid {name}: {secs} (max {max})")));
            }
            // After Postfix's own checks, so that where it stops we stop
            // with its text.
            if misleading_time(text) {
                return Err(bad_time());
            }
            Ok(ConvertedValue::Time(Duration::from_secs(u64::from(secs))))
        }
        ParamKind::Bool => {
            if text.eq_ignore_ascii_case("yes") {
                Ok(ConvertedValue::Bool(true))
            } else if text.eq_ignore_ascii_case("no") {
                Ok(ConvertedValue::Bool(false))
            } else {
                Err(fatal(format!("bad boolean configuration: {name} = {text}")))
            }
        }
        ParamKind::Str { min_len } => {
            check_length(name, text, min_len).map_err(fatal)?;
            Ok(ConvertedValue::Text(text.to_string()))
        }
        ParamKind::List => Ok(ConvertedValue::List(split_list(text))),
        ParamKind::Feedback => {
            // qmgr_feedback_init reads the text with a minimum length of 1.
            check_length(name, text, 1).map_err(fatal)?;
            Ok(ConvertedValue::Text(text.to_string()))
        }
    }
}

/// Postfix's `check_mail_conf_str` lower bound, with its text.
fn check_length(name: &str, text: &str, min_len: usize) -> Result<(), String> {
    if text.len() < min_len {
        let len = text.len();
        return Err(format!(
            "bad string length {len} < {min_len}: {name} = {text}"
        ));
    }
    Ok(())
}

/// Unit words a time value may spell out after its number: Postfix reads
/// only the first letter, so these mean what they say there too.
const UNIT_WORDS: &[&str] = &[
    "s", "sec", "secs", "second", "seconds", "m", "min", "mins", "minute", "minutes", "h", "hour",
    "hours", "d", "day", "days", "w", "week", "weeks",
];

/// A time value Postfix accepts but reads differently from what it says:
/// no number at all (`soon` and a bare `d` both read as 0, so
/// `maximal_queue_lifetime = soon` returns all deferred mail at once), or
/// text after the number that is not one of the unit words (`1month` reads
/// as one minute). Postfix says nothing about either; we stop on them.
fn misleading_time(text: &str) -> bool {
    let (_, end) = strtol_prefix(text);
    end == 0 || {
        let rest = &text[end..];
        !rest.is_empty() && !UNIT_WORDS.contains(&rest)
    }
}

/// C's `isspace` in the C locale.
fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// Splits a list the way Postfix's `argv_split(value, ", \t\r\n")` does.
pub(crate) fn split_list(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || is_c_space(c))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The part of C's `strtol(text, &end, 10)` both converters share: the
/// value (`None` on overflow of a C `long`, so out of `int` range here) and
/// where the number ends. Without digits the end is 0, as in C.
fn strtol_prefix(text: &str) -> (Option<i64>, usize) {
    let bytes = text.as_bytes();
    let mut i = bytes
        .iter()
        .take_while(|b| is_c_space(char::from(**b)))
        .count();
    let negative = bytes.get(i) == Some(&b'-');
    if matches!(bytes.get(i), Some(b'+' | b'-')) {
        i += 1;
    }
    let digits = bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return (Some(0), 0);
    }
    let mut value: Option<i64> = Some(0);
    for b in &bytes[i..i + digits] {
        value = value
            .and_then(|v| v.checked_mul(10))
            .and_then(|v| v.checked_add(i64::from(b - b'0')))
            .filter(|v| *v <= INT_MAX + 1);
    }
    let value = value.map(|v| if negative { -v } else { v });
    (
        value.filter(|v| (-INT_MAX - 1..=INT_MAX).contains(v)),
        i + digits,
    )
}

/// A decimal C `int` filling the whole text (Postfix's
/// `convert_mail_conf_int`).
fn parse_int(text: &str) -> Option<i64> {
    match strtol_prefix(text) {
        (Some(n), end) if end > 0 && end == text.len() => Some(n),
        _ => None,
    }
}

/// A time in seconds (Postfix's `conv_time`): a non-negative `int`, then a
/// unit letter or `default_unit`; the result must fit an `int`.
pub fn parse_time(text: &str, default_unit: char) -> Option<u32> {
    if text.is_empty() {
        return None;
    }
    let (value, end) = strtol_prefix(text);
    let value = u32::try_from(value?).ok()?;
    let unit = text[end..].chars().next().unwrap_or(default_unit);
    let scale: u32 = match unit {
        'w' => 7 * 24 * 3600,
        'd' => 24 * 3600,
        'h' => 3600,
        'm' => 60,
        's' => return Some(value),
        _ => return None,
    };
    // Postfix insists on a strict margin below INT_MAX / unit.
    if value < NONE / scale {
        Some(value * scale)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_values_follow_conv_time() {
        let cases: &[(&str, char, Option<u32>)] = &[
            ("300s", 's', Some(300)),
            ("300", 's', Some(300)),
            ("5", 'd', Some(432_000)),
            ("5d", 's', Some(432_000)),
            ("2w", 's', Some(1_209_600)),
            ("3h", 'd', Some(10_800)),
            ("10m", 's', Some(600)),
            ("5dxyz", 's', Some(432_000)),
            ("d", 's', Some(0)),
            ("soon", 'd', Some(0)),
            ("+7s", 's', Some(7)),
            (" 7", 's', Some(7)),
            ("-1", 's', None),
            ("5D", 's', None),
            ("5 d", 's', None),
            ("", 's', None),
            ("x", 's', None),
            ("+d", 's', None),
            ("2147483647s", 's', Some(2_147_483_647)),
            ("2147483648s", 's', None),
            ("24854d", 's', Some(2_147_385_600)),
            ("24855d", 's', None),
            ("3549w", 's', Some(2_146_435_200)),
            ("3550w", 's', None),
        ];
        for (text, unit, want) in cases {
            assert_eq!(parse_time(text, *unit), *want, "input {text:?} unit {unit}");
        }
    }

    #[test]
    fn int_values_follow_strtol() {
        let cases: &[(&str, Option<i64>)] = &[
            ("20", Some(20)),
            ("+20", Some(20)),
            ("-3", Some(-3)),
            (" 4", Some(4)),
            ("4 ", None),
            ("4x", None),
            ("", None),
            ("-", None),
            ("2147483647", Some(2_147_483_647)),
            ("2147483648", None),
            ("-2147483648", Some(-2_147_483_648)),
            ("99999999999999999999999", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_int(text), *want, "input {text:?}");
        }
    }

    #[test]
    fn lists_split_on_commas_and_space() {
        assert_eq!(
            split_list(" smtp,, relay\tlocal ,"),
            ["smtp", "relay", "local"]
        );
        assert!(split_list("").is_empty());
    }

    #[test]
    fn misleading_times_are_fatal_after_postfix_checks() {
        let conv = |name: &str, text: &str| {
            let def = definition(name).unwrap();
            convert_text(def.name, def.kind, def.time_unit(), text).map_err(|f| f.message)
        };
        for ok in ["10sec", "2days", "3", "1w", "5minutes"] {
            assert!(conv("maximal_queue_lifetime", ok).is_ok(), "{ok}");
        }
        assert_eq!(
            conv("maximal_queue_lifetime", "1month"),
            Err("parameter maximal_queue_lifetime: bad time value or unit: 1month".into())
        );
        assert_eq!(
            conv("bounce_queue_lifetime", "d"),
            Err("parameter bounce_queue_lifetime: bad time value or unit: d".into())
        );
        // Postfix itself stops on a zero run delay: its text wins.
        assert_eq!(
            conv("queue_run_delay", "soon"),
            Err("invalid queue_run_delay: 0 (min 1)".into())
        );
    }

    #[test]
    fn every_definition_default_converts_cleanly() {
        for def in DEFINITIONS {
            let r = convert_text(def.name, def.kind, def.time_unit(), def.default);
            assert!(r.is_ok(), "default of {} does not convert", def.name);
        }
    }
}
