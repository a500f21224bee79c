//! Reading Postfix configuration into [`RawParams`] (Postfix: `mail_conf.c`
//! `mail_conf_read`/`mail_conf_eval`, `mail_params.c` defaults, the `-o`
//! handling of the `*_server.c` skeletons).
//!
//! Three figment providers are merged, later ones winning:
//! 1. [`Defaults`], built-in defaults for the names a `$reference` or the
//!    daemon may need when main.cf does not set them: every row of
//!    [`oqmgr::params::DEFINITIONS`], plus `config_directory`,
//!    `syslog_name`, `multi_instance_name` and the other parameters the
//!    daemon shell reads (queue and daemon directories, service names,
//!    flow control, …), all as Postfix 3.7.11's `postconf -d` spells them.
//! 2. [`MainCf`], `$config_directory/main.cf`.
//! 3. [`Overrides`], the `-o name=value` options from master.cf.
//!
//! Then `myhostname` and `mydomain`, when still unset, are derived from the
//! system host name (see [`add_host_defaults`]), and every value is
//! `$name`-expanded ([`expand`]), recursively, against the merged map.
//! Because overrides are merged before expansion, a `$name` that refers to
//! an overridden parameter sees the override, as in Postfix.
//!
//! The config directory is `-c DIR` if given, else `$MAIL_CONFIG`, else
//! what `postconf -h config_directory` prints, else `/etc/postfix`
//! ([`config_directory`]).
//!
//! # Errors
//! A missing or unreadable main.cf, a main.cf line that is not
//! `name = value`, or a malformed `-o` is a [`ConfigError`] naming the file
//! and line (or the option). A value that cannot be expanded is not fatal
//! here (Postfix stops only when a daemon reads that parameter): it is left
//! out of the result with a warning, so the scheduler falls back to the
//! default for it.
//!
//! # Compatibility
//! - Expansion is eager, over every parameter, where Postfix expands on
//!   lookup; warnings may therefore concern parameters the queue manager
//!   never reads.
//! - `postconf` prints values with runs of white space collapsed to one
//!   space; daemons (and we) keep the white space of continuation lines.
//! - The `mydomain` default follows the system host name only, not a
//!   `myhostname` set in main.cf (Postfix derives it from the final
//!   `myhostname`). Set `mydomain` explicitly if that matters.

pub mod expand;
pub mod mail_params;
pub mod main_cf;
pub mod settings;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
pub use main_cf::{MainCf, MainCfEntry};
use oqmgr::params::{ConfigWarning, RawParams, DEFINITIONS};

/// Where main.cf lives when nothing else says (Postfix's compiled-in
/// default on Debian and most builds).
pub const DEFAULT_CONFIG_DIRECTORY: &str = "/etc/postfix";

/// Why configuration could not be read.
#[derive(Debug)]
pub enum ConfigError {
    /// main.cf could not be opened or read.
    Io {
        /// The file.
        path: PathBuf,
        /// The system error.
        source: std::io::Error,
    },
    /// main.cf is larger than [`main_cf::MAX_MAIN_CF`].
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
    },
    /// A logical line of main.cf is not `name = value`.
    Syntax {
        /// The file.
        path: PathBuf,
        /// Line number (1-based) where the logical line starts.
        line: usize,
        /// What is wrong, in Postfix's words.
        message: String,
        /// The logical line.
        text: String,
    },
    /// A `-o` option is not `name=value`.
    Override {
        /// The option's argument.
        arg: String,
        /// What is wrong, in Postfix's words.
        message: String,
    },
    /// figment could not merge the providers (not expected: all values
    /// are strings).
    Figment(Box<figment::Error>),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Io { path, source } => write!(
                f,
                "open {}: {}",
                path.display(),
                crate::postfix::log::errno_text(source)
            ),
            ConfigError::TooLarge { path, size } => write!(
                f,
                "{}: file too large: {size} bytes (at most {})",
                path.display(),
                main_cf::MAX_MAIN_CF
            ),
            ConfigError::Syntax {
                path,
                line,
                message,
                text,
            } => {
                write!(f, "{}, line {line}: {message}: \"{text}\"", path.display())
            }
            ConfigError::Override { arg, message } => {
                write!(f, "invalid \"-o {arg}\" option value: {message}")
            }
            ConfigError::Figment(e) => write!(f, "configuration: {e}"),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Io { source, .. } => Some(source),
            ConfigError::Figment(e) => Some(e.as_ref()),
            _ => None,
        }
    }
}

/// The config directory: `cli` (`-c DIR`), else `$MAIL_CONFIG`, else
/// `postconf -h config_directory`, else [`DEFAULT_CONFIG_DIRECTORY`].
pub fn config_directory(cli: Option<&Path>) -> PathBuf {
    choose_config_directory(cli, std::env::var_os("MAIL_CONFIG"), ask_postconf)
}

/// [`config_directory`] with the environment and the `postconf` query
/// passed in, so the order of preference can be tested.
pub fn choose_config_directory(
    cli: Option<&Path>,
    mail_config: Option<OsString>,
    ask: impl FnOnce() -> Option<PathBuf>,
) -> PathBuf {
    if let Some(dir) = cli {
        return dir.to_path_buf();
    }
    if let Some(dir) = mail_config.filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    ask().unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_DIRECTORY))
}

/// What `postconf -h config_directory` prints, if postconf runs.
fn ask_postconf() -> Option<PathBuf> {
    let out = Command::new("postconf")
        .args(["-h", "config_directory"])
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let dir = text.trim();
    (out.status.success() && !dir.is_empty()).then(|| PathBuf::from(dir))
}

/// Reads `config_dir/main.cf`, applies the `-o name=value` `overrides`,
/// and expands every value.
///
/// Returns the expanded map and the warnings met on the way (duplicate
/// entries, misplaced continuation text, values that could not be
/// expanded).
pub fn load<S: AsRef<str>>(
    config_dir: &Path,
    overrides: &[S],
) -> Result<(RawParams, Vec<ConfigWarning>), ConfigError> {
    let main_cf = MainCf::read(&config_dir.join("main.cf"))?;
    let overrides = Overrides::parse(overrides)?;
    let mut warnings = main_cf.warnings.clone();
    let mut merged: BTreeMap<String, String> = Figment::from(Defaults::builtin(config_dir))
        .merge(main_cf)
        .merge(overrides)
        .extract()
        .map_err(|e| ConfigError::Figment(Box::new(e)))?;
    add_host_defaults(&mut merged, &system_host_name());
    let (raw, expand_warnings) = expand_all(&merged);
    warnings.extend(expand_warnings);
    Ok((raw, warnings))
}

/// Expands every value of `merged` against `merged` itself; a value that
/// fails is left out, with a warning.
pub fn expand_all(merged: &BTreeMap<String, String>) -> (RawParams, Vec<ConfigWarning>) {
    let mut raw = RawParams::new();
    let mut warnings = Vec::new();
    for (name, value) in merged {
        match expand::expand(value, |n| merged.get(n).map(String::as_str)) {
            Ok(expanded) => {
                raw.insert(name.clone(), expanded);
            }
            Err(e) => warnings.push(ConfigWarning {
                param: name.clone(),
                message: format!(
                    "{name} = {value}: macro processing error: {e}; parameter ignored"
                ),
            }),
        }
    }
    (raw, warnings)
}

/// The system host name (the kernel's node name), or `localhost`.
pub fn system_host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Sets `myhostname` and `mydomain` when neither main.cf nor `-o` did
/// (Postfix: `check_myhostname`, `check_mydomainname`).
///
/// `myhostname` is `host` when it has a dot, else `host.$mydomain` (so a
/// `mydomain` from main.cf applies, as in Postfix). `mydomain` is what
/// follows the first dot of `host`, else `localdomain`.
pub fn add_host_defaults(merged: &mut BTreeMap<String, String>, host: &str) {
    let (hostname, domain) = match host.split_once('.') {
        Some((_, domain)) => (host.to_string(), domain.to_string()),
        None => (format!("{host}.$mydomain"), "localdomain".to_string()),
    };
    merged.entry("myhostname".to_string()).or_insert(hostname);
    merged.entry("mydomain".to_string()).or_insert(domain);
}

/// Parameters the daemon reads, or a `$name` of another default may
/// need, that neither the scheduler's table nor `mail_params_init`'s
/// ([`mail_params::MAIL_PARAMS`]) defines, with Postfix 3.7.11's
/// `postconf -d` text (Debian build for the directories). One exception:
/// `smtputf8_enable` is a row of `mail_params_init`'s table too, checked
/// there as a boolean, but its built-in text depends on
/// `compatibility_level`, as here.
const SHELL_DEFAULTS: &[(&str, &str)] = &[
    ("command_directory", "/usr/sbin"),
    ("compatibility_level", "0"),
    ("fast_flush_domains", "$relay_domains"),
    ("info_log_address_format", "external"),
    ("mail_name", "Postfix"),
    ("mail_version", "3.7.11"),
    (
        "mydestination",
        "$myhostname, localhost.$mydomain, localhost",
    ),
    ("multi_instance_name", ""),
    (
        "relay_domains",
        "${{$compatibility_level} <level {2} ? {$mydestination} : {}}",
    ),
    (
        "smtputf8_enable",
        "${{$compatibility_level} <level {1} ? {no} : {yes}}",
    ),
    ("syslog_facility", "mail"),
    (
        "syslog_name",
        "${multi_instance_name?{$multi_instance_name}:{postfix}}",
    ),
];

/// The built-in defaults provider (lowest precedence).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Defaults {
    /// Name → default text, unexpanded.
    pub entries: BTreeMap<String, String>,
}

impl Defaults {
    /// The scheduler's table defaults, `mail_params_init`'s
    /// ([`mail_params::MAIL_PARAMS`]), [`SHELL_DEFAULTS`], and
    /// `config_directory = config_dir`.
    pub fn builtin(config_dir: &Path) -> Defaults {
        let mut entries: BTreeMap<String, String> = DEFINITIONS
            .iter()
            .map(|d| (d.name.to_string(), d.default.to_string()))
            .collect();
        for (name, value) in Defaults::shell_defaults() {
            entries.insert(name.to_string(), value.to_string());
        }
        entries.insert(
            "config_directory".to_string(),
            config_dir.display().to_string(),
        );
        Defaults { entries }
    }

    /// The daemon shell's defaults, names and texts: the rows of
    /// `mail_params_init`'s table the scheduler's table does not have, then
    /// [`SHELL_DEFAULTS`] (whose text wins for a name in both). Each is the
    /// text `postconf -d` prints, which a test checks.
    pub fn shell_defaults() -> Vec<(&'static str, &'static str)> {
        let mut out: Vec<(&str, &str)> = mail_params::MAIL_PARAMS
            .iter()
            .filter_map(|row| match row {
                mail_params::MailParamRow::Own(def) => Some((def.name, def.default)),
                mail_params::MailParamRow::Core(_) => None,
            })
            .filter(|(name, _)| !SHELL_DEFAULTS.iter().any(|(n, _)| n == name))
            .collect();
        out.extend_from_slice(SHELL_DEFAULTS);
        out
    }

    /// The built-in text of daemon-shell parameter `name` outside
    /// `mail_params_init`'s table ([`SHELL_DEFAULTS`]).
    pub fn shell_default(name: &str) -> Option<&'static str> {
        SHELL_DEFAULTS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }
}

/// `-o name=value` overrides (highest precedence).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Overrides {
    /// `(name, value)` in command-line order; a later one wins.
    pub entries: Vec<(String, String)>,
}

impl Overrides {
    /// Parses `-o` arguments, each `name=value` with optional white space
    /// around the name and value (Postfix's `split_nameval`).
    pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<Overrides, ConfigError> {
        let mut entries = Vec::with_capacity(args.len());
        for arg in args {
            let arg = arg.as_ref();
            let (name, value) =
                main_cf::split_nameval(arg).map_err(|message| ConfigError::Override {
                    arg: arg.to_string(),
                    message: message.to_string(),
                })?;
            entries.push((name.to_string(), value.to_string()));
        }
        Ok(Overrides { entries })
    }
}

/// Puts string pairs into the default profile, the only one we use.
fn string_dict<'a>(pairs: impl Iterator<Item = (&'a String, &'a String)>) -> Map<Profile, Dict> {
    let dict: Dict = pairs
        .map(|(k, v)| (k.clone(), Value::from(v.clone())))
        .collect();
    Profile::Default.collect(dict)
}

impl Provider for Defaults {
    fn metadata(&self) -> Metadata {
        Metadata::named("built-in defaults")
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(string_dict(self.entries.iter()))
    }
}

impl Provider for MainCf {
    fn metadata(&self) -> Metadata {
        Metadata::named("main.cf").source(self.path.as_path())
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        // Later entries overwrite earlier ones while collecting.
        Ok(string_dict(
            self.entries.iter().map(|e| (&e.name, &e.value)),
        ))
    }
}

impl Provider for Overrides {
    fn metadata(&self) -> Metadata {
        Metadata::named("-o options")
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(string_dict(self.entries.iter().map(|(k, v)| (k, v))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_directory_prefers_cli_then_env_then_postconf() {
        let asked = || Some(PathBuf::from("/from/postconf"));
        let cli = Path::new("/from/cli");
        let env = Some(OsString::from("/from/env"));
        assert_eq!(choose_config_directory(Some(cli), env.clone(), asked), cli);
        assert_eq!(
            choose_config_directory(None, env, asked),
            Path::new("/from/env")
        );
        let empty = Some(OsString::new());
        assert_eq!(
            choose_config_directory(None, empty, asked),
            Path::new("/from/postconf")
        );
        assert_eq!(
            choose_config_directory(None, None, || None),
            Path::new("/etc/postfix")
        );
    }

    #[test]
    fn overrides_follow_split_nameval() {
        let o = Overrides::parse(&["a=1", " b = two words ", "c="]).unwrap();
        let want = [("a", "1"), ("b", "two words"), ("c", "")];
        let got: Vec<(&str, &str)> = o
            .entries
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(got, want);
        let e = Overrides::parse(&["novalue"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid \"-o novalue\" option value: missing '=' after attribute name"
        );
    }

    #[test]
    fn host_defaults_follow_check_myhostname() {
        let mut m = BTreeMap::new();
        add_host_defaults(&mut m, "vm");
        assert_eq!(m["myhostname"], "vm.$mydomain");
        assert_eq!(m["mydomain"], "localdomain");
        let mut m = BTreeMap::from([("mydomain".to_string(), "example.org".to_string())]);
        add_host_defaults(&mut m, "mx.example.net");
        assert_eq!(m["myhostname"], "mx.example.net");
        assert_eq!(m["mydomain"], "example.org");
    }
}
