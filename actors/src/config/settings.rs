//! settings - every main.cf value the daemon runs with, typed, resolved
//! once at start-up (Postfix: the variables `mail_params_init` and the
//! queue manager's own parameter tables fill in `mail_params.c` and
//! `qmgr.c`).
//!
//! [`Settings::resolve`] checks the configuration as Postfix's oqmgr does
//! ([`super::mail_params`]: the first fatal, in Postfix's order) and turns
//! it into one value: the scheduling core's [`Params`] and the daemon
//! shell's own settings (queue directory, service names, IPC times,
//! hashing, ...). The daemon builds it once and hands its parts down;
//! nothing after start-up reads main.cf text.
//!
//! # Invariants
//! - No default is written here: a value comes from the merged
//!   configuration ([`super::load`] fills in every built-in default), and
//!   a value dropped because its `$name` expansion failed falls back to its
//!   row's default ([`super::mail_params::MAIL_PARAMS`], or
//!   [`super::Defaults`] for the few parameters outside that table).
//! - Values are read after [`super::mail_params::check`]'s rules passed, so
//!   they parse.

use std::path::PathBuf;
use std::time::Duration;

use oqmgr::params::{parse_time, ConfigFatal, ConfigWarning, Params, RawParams};

use super::mail_params::{self, MAIL_PARAMS};
use super::Defaults;
use crate::postfix::queue_file_parse::ReadLimits;

/// The daemon's configuration, typed.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The scheduling core's parameters.
    pub params: Params,
    /// `queue_directory`.
    pub queue_directory: PathBuf,
    /// `command_directory` (where `postconf` is).
    pub command_directory: PathBuf,
    /// `mail_version`, as configured or built in.
    pub mail_version: String,
    /// `mail_owner`: the user the daemon runs as.
    pub mail_owner: String,
    /// `myhostname` (the next hop of a content filter for a recipient
    /// without a domain).
    pub myhostname: String,
    /// `hash_queue_names`.
    pub hash_queue_names: String,
    /// `hash_queue_depth`.
    pub hash_queue_depth: usize,
    /// `default_process_limit`: the level master's flow pipe is kept at.
    pub default_process_limit: usize,
    /// `rewrite_service_name`.
    pub rewrite_service_name: String,
    /// `verp_delimiter_filter`.
    pub verp_delimiter_filter: Vec<u8>,
    /// `ipc_idle`: a trivial-rewrite connection unused this long is closed.
    pub ipc_idle: Duration,
    /// `ipc_ttl`: a trivial-rewrite connection this old is closed.
    pub ipc_ttl: Duration,
    /// `daemon_timeout`: the delivery agents' own watchdog, how long a
    /// delivery may take.
    pub daemon_timeout: Duration,
    /// `delay_logging_resolution_limit`.
    pub delay_logging_resolution_limit: u32,
    /// `smtputf8_enable`.
    pub smtputf8_enable: bool,
    /// `soft_bounce`.
    pub soft_bounce: bool,
}

impl Settings {
    /// What the daemon starts with: the settings of `raw` and the warnings
    /// to log, or the fatal Postfix would stop on.
    pub fn resolve(raw: &RawParams) -> Result<(Settings, Vec<ConfigWarning>), ConfigFatal> {
        let (params, warnings) = mail_params::resolve(raw)?;
        let text = |name: &str| value(raw, name);
        let time = |name: &str| {
            let secs = parse_time(&text(name), 's').expect("checked by mail_params");
            Duration::from_secs(u64::from(secs))
        };
        let count = |name: &str| text(name).parse::<usize>().expect("checked by mail_params");
        let flag = |name: &str| text(name).eq_ignore_ascii_case("yes");
        let settings = Settings {
            params,
            queue_directory: PathBuf::from(text("queue_directory")),
            command_directory: PathBuf::from(text("command_directory")),
            mail_version: text("mail_version"),
            mail_owner: text("mail_owner"),
            myhostname: raw
                .get("myhostname")
                .cloned()
                .unwrap_or_else(super::system_host_name),
            hash_queue_names: text("hash_queue_names"),
            hash_queue_depth: count("hash_queue_depth"),
            default_process_limit: count("default_process_limit"),
            rewrite_service_name: text("rewrite_service_name"),
            verp_delimiter_filter: text("verp_delimiter_filter").into_bytes(),
            ipc_idle: time("ipc_idle"),
            ipc_ttl: time("ipc_ttl"),
            daemon_timeout: time("daemon_timeout"),
            delay_logging_resolution_limit: count("delay_logging_resolution_limit") as u32,
            smtputf8_enable: flag("smtputf8_enable"),
            soft_bounce: flag("soft_bounce"),
        };
        Ok((settings, warnings))
    }

    /// The envelope reader's limits.
    pub fn read_limits(&self) -> ReadLimits {
        let global = &self.params.global;
        ReadLimits {
            recipient_limit: global.message_recipient_limit as usize,
            fudge_factor: global.fudge_factor,
            verp_filter: self.verp_delimiter_filter.clone(),
            confirm_delay_cleared: global.confirm_delay_cleared,
            record_limit: None,
        }
    }

    /// The settings of an unconfigured Postfix 3.7 (the built-in defaults
    /// alone, expanded as [`super::load`] expands them); tests and tools
    /// start from it.
    pub fn defaults() -> Settings {
        let mut merged =
            Defaults::builtin(std::path::Path::new(super::DEFAULT_CONFIG_DIRECTORY)).entries;
        super::add_host_defaults(&mut merged, "localhost");
        let (raw, _) = super::expand_all(&merged);
        let (settings, _) = Settings::resolve(&raw).expect("the built-in defaults resolve");
        settings
    }
}

/// The value of `name` in `raw`; when it is not there (its expansion
/// failed), its row's default.
fn value(raw: &RawParams, name: &str) -> String {
    if let Some(v) = raw.get(name) {
        return v.clone();
    }
    MAIL_PARAMS
        .iter()
        .map(|row| row.def())
        .find(|def| def.name == name)
        .map(|def| def.default)
        .or_else(|| Defaults::shell_default(name))
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_postfix_3_7s() {
        let s = Settings::defaults();
        assert_eq!(s.queue_directory, PathBuf::from("/var/spool/postfix"));
        assert_eq!(s.command_directory, PathBuf::from("/usr/sbin"));
        assert_eq!(s.mail_version, "3.7.11");
        assert_eq!(s.mail_owner, "postfix");
        assert_eq!(s.myhostname, "localhost.localdomain");
        assert_eq!(s.hash_queue_names, "deferred, defer");
        assert_eq!(s.hash_queue_depth, 1);
        assert_eq!(s.default_process_limit, 100);
        assert_eq!(s.rewrite_service_name, "rewrite");
        assert_eq!(s.verp_delimiter_filter, b"-=+");
        assert_eq!(s.ipc_idle, Duration::from_secs(5));
        assert_eq!(s.ipc_ttl, Duration::from_secs(1000));
        assert_eq!(s.daemon_timeout, Duration::from_secs(18000));
        assert_eq!(s.delay_logging_resolution_limit, 2);
        // compatibility_level 0 (a main.cf that does not set it).
        assert!(!s.smtputf8_enable);
        assert!(!s.soft_bounce);
        assert_eq!(s.params.global.ipc_timeout.as_secs(), 60);
        // The reader's own defaults (for tools and tests) say the same.
        assert_eq!(s.read_limits(), ReadLimits::default());
    }

    #[test]
    fn values_come_from_the_configuration_and_a_dropped_one_from_its_row() {
        let mut raw = RawParams::new();
        raw.insert("soft_bounce".into(), "YES".into());
        raw.insert("ipc_idle".into(), "2m".into());
        raw.insert("queue_directory".into(), "/q".into());
        raw.insert("myhostname".into(), "mx.example".into());
        let (s, _) = Settings::resolve(&raw).unwrap();
        assert!(s.soft_bounce);
        assert_eq!(s.ipc_idle, Duration::from_secs(120));
        assert_eq!(s.queue_directory, PathBuf::from("/q"));
        assert_eq!(s.myhostname, "mx.example");
        // Not in `raw`: the rows' defaults.
        assert_eq!(s.ipc_ttl, Duration::from_secs(1000));
        assert_eq!(s.command_directory, PathBuf::from("/usr/sbin"));
        assert!(s.smtputf8_enable, "the row's 3.7 default");
    }

    #[test]
    fn a_bad_value_is_the_fatal_postfix_stops_on() {
        let mut raw = RawParams::new();
        raw.insert("ipc_idle".into(), "soon".into());
        let fatal = Settings::resolve(&raw).unwrap_err();
        assert_eq!(fatal.param, "ipc_idle");
    }
}
