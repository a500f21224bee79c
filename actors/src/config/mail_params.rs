//! The parameters every Postfix daemon checks at start-up, before its own
//! (Postfix: `global/mail_params.c` `mail_params_init`), and the whole
//! start-up check of the queue manager's settings.
//!
//! Postfix's oqmgr reads main.cf in two rounds: `mail_params_init` (common
//! to all daemons: service names, queue hashing, IPC times, booleans such
//! as `soft_bounce`), then oqmgr's own tables. A malformed or out-of-range
//! value in either round stops it with a fatal error. [`check`] does both
//! rounds in Postfix's order over the parameters the daemon reads or
//! Postfix checks: [`MAIL_PARAMS`] (those below, and four rows of the
//! core's table), then [`oqmgr::params::Params::check`]. [`resolve`] is
//! the daemon's start-up check: the first fatal, or the core's resolved
//! parameters ([`super::settings::Settings::resolve`] builds the rest).
//!
//! # Invariants
//! - Defaults and bounds are Postfix 3.7.11's (`postconf -d`, and the
//!   tables of `mail_params_init`); the rows say them once.
//! - Booleans are read case-insensitively, as Postfix does.
//! - A fatal names its parameter; the first in the list is the one Postfix
//!   would stop on.

use oqmgr::params::{
    definition, ConfigFatal, ConfigReport, ConfigWarning, ParamDef, Params, RawParams,
};

/// Postfix's "no upper bound".
const NONE: u32 = i32::MAX as u32;

/// A string of at least one byte (most of `mail_params_init`'s).
const fn str1(name: &'static str, default: &'static str) -> ParamDef {
    ParamDef::text(name, default, 1)
}

/// One row of [`MAIL_PARAMS`]: a definition of its own, or a row of the
/// core's table, checked at this point of Postfix's order.
#[derive(Clone, Copy, Debug)]
pub enum MailParamRow {
    /// Read by the daemon shell only.
    Own(ParamDef),
    /// A row of [`oqmgr::params::DEFINITIONS`] that `mail_params_init`
    /// reads.
    Core(&'static str),
}

/// The `mail_params_init` parameters the daemon reads or that Postfix's
/// oqmgr would stop on, in the order `mail_params_init` reads them: its
/// "first" boolean table, string table, integer table, boolean table and
/// time table.
pub const MAIL_PARAMS: &[MailParamRow] = &[
    MailParamRow::Own(ParamDef::boolean("smtputf8_enable", "yes")),
    MailParamRow::Own(str1("mail_owner", "postfix")),
    MailParamRow::Own(str1("daemon_directory", "/usr/lib/postfix/sbin")),
    MailParamRow::Own(str1("queue_directory", "/var/spool/postfix")),
    MailParamRow::Core("double_bounce_sender"),
    MailParamRow::Own(str1("hash_queue_names", "deferred, defer")),
    MailParamRow::Core("recipient_delimiter"),
    MailParamRow::Own(str1("verp_delimiter_filter", "-=+")),
    MailParamRow::Own(str1("bounce_service_name", "bounce")),
    MailParamRow::Own(str1("defer_service_name", "defer")),
    MailParamRow::Own(str1("queue_service_name", "qmgr")),
    MailParamRow::Own(str1("rewrite_service_name", "rewrite")),
    MailParamRow::Own(str1("flush_service_name", "flush")),
    MailParamRow::Own(str1("address_verify_service_name", "verify")),
    MailParamRow::Own(str1("trace_service_name", "trace")),
    MailParamRow::Own(ParamDef::int("default_process_limit", "100", 1, NONE)),
    MailParamRow::Own(ParamDef::int("hash_queue_depth", "1", 1, NONE)),
    MailParamRow::Own(ParamDef::int("delay_logging_resolution_limit", "2", 0, 6)),
    MailParamRow::Own(ParamDef::boolean("soft_bounce", "no")),
    MailParamRow::Core("owner_request_special"),
    MailParamRow::Own(ParamDef::boolean("address_verify_negative_cache", "yes")),
    MailParamRow::Core("helpful_warnings"),
    MailParamRow::Own(ParamDef::time("ipc_timeout", "3600s", 1, NONE)),
    MailParamRow::Own(ParamDef::time("ipc_idle", "5s", 1, NONE)),
    MailParamRow::Own(ParamDef::time("ipc_ttl", "1000s", 1, NONE)),
    MailParamRow::Own(ParamDef::time("daemon_timeout", "18000s", 1, NONE)),
    MailParamRow::Own(ParamDef::time("in_flow_delay", "1s", 0, 10)),
];

impl MailParamRow {
    /// The definition this row checks against.
    pub fn def(&self) -> &ParamDef {
        match self {
            MailParamRow::Own(def) => def,
            MailParamRow::Core(name) => {
                definition(name).expect("MAIL_PARAMS core rows are table rows")
            }
        }
    }
}

/// Every fatal and warning of `raw`, in Postfix's order: the
/// `mail_params_init` round, then the queue manager's own.
pub fn check(raw: &RawParams) -> ConfigReport {
    let mut fatals: Vec<ConfigFatal> = MAIL_PARAMS
        .iter()
        .filter_map(|row| {
            let def = row.def();
            def.check(raw.get(def.name).map(String::as_str)).err()
        })
        .collect();
    let own = Params::check(raw);
    let checked = |f: &ConfigFatal| {
        MAIL_PARAMS
            .iter()
            .any(|row| matches!(row, MailParamRow::Core(n) if *n == f.param))
    };
    fatals.extend(own.fatals.into_iter().filter(|f| !checked(f)));
    ConfigReport {
        fatals,
        warnings: own.warnings,
    }
}

/// What the daemon starts with: the resolved parameters and the warnings
/// to log, or the fatal Postfix would stop on.
pub fn resolve(raw: &RawParams) -> Result<(Params, Vec<ConfigWarning>), ConfigFatal> {
    for row in MAIL_PARAMS {
        let def = row.def();
        def.check(raw.get(def.name).map(String::as_str))?;
    }
    Params::resolve(raw).map_err(|mut fatals| fatals.swap_remove(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&str, &str)]) -> RawParams {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn own_defaults_pass_their_own_check() {
        for row in MAIL_PARAMS {
            let def = row.def();
            assert_eq!(def.check(Some(def.default)), Ok(()), "{}", def.name);
        }
    }

    #[test]
    fn the_first_fatal_follows_postfix_order() {
        // mail_params_init's integers come before oqmgr's own table, and
        // hash_queue_names (a string) before both.
        let r = raw(&[
            ("qmgr_fudge_factor", "5"),
            ("hash_queue_depth", "0"),
            ("hash_queue_names", ""),
        ]);
        let first = resolve(&r).unwrap_err();
        assert_eq!(
            first.message,
            "bad string length 0 < 1: hash_queue_names = "
        );
        let all: Vec<String> = check(&r).fatals.into_iter().map(|f| f.message).collect();
        assert_eq!(
            all,
            [
                "bad string length 0 < 1: hash_queue_names = ",
                "invalid hash_queue_depth parameter value 0 < 1",
                "invalid qmgr_fudge_factor parameter value 5 < 10",
            ]
        );
    }

    #[test]
    fn core_rows_are_reported_once() {
        let r = raw(&[("helpful_warnings", "maybe")]);
        let all = check(&r).fatals;
        assert_eq!(all.len(), 1, "{all:?}");
        assert_eq!(
            all[0].message,
            "bad boolean configuration: helpful_warnings = maybe"
        );
    }

    #[test]
    fn flags_ignore_case() {
        let r = raw(&[("soft_bounce", "YES"), ("smtputf8_enable", "No")]);
        let (s, _) = crate::config::settings::Settings::resolve(&r).unwrap();
        assert!(s.soft_bounce);
        assert!(!s.smtputf8_enable);
    }
}
