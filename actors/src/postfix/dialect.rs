//! Which Postfix release the peers are, and what that changes on the wire
//! (Postfix: `mail_proto.h` `MAIL_ATTR_SMTPUTF8` / `MAIL_ATTR_SENDOPTS`,
//! HISTORY 20250116).
//!
//! Postfix 3.10 renamed the 8th delivery-request attribute and the matching
//! bounce-request attribute from `smtputf8` to `sendopts` (same position,
//! same integer, more bits). Peers read strictly, so an agent of one
//! release rejects the other release's name (`unexpected attribute
//! smtputf8 ... (expecting: sendopts)`). [`Dialect`] picks the name from the
//! running Postfix's `mail_version`.
//!
//! # Learning the version ([`learn`])
//! `mail_version` is compiled into Postfix: main.cf does not carry it, and
//! a `postconf` found on `PATH` may belong to another build (master(8)
//! passes no `PATH` at all). At start-up, before chroot, the daemon runs
//! `$command_directory/postconf -c $config_directory -dh mail_version` by
//! absolute path, with `command_directory` from main.cf (else the usual
//! compiled-in `/usr/sbin`), bounded by a timeout. A `mail_version` set in
//! main.cf or with `-o` on the master.cf line wins, unasked. When neither
//! works the daemon warns and speaks the newest dialect: an older Postfix
//! then rejects every request loudly (its agents warn, and so do we), where
//! guessing old would fail just as loudly on the Postfix most new
//! installations run. One info line says which dialect was chosen and why.
//!
//! # Compatibility
//! `< 3.10` → [`Dialect::Smtputf8`]; `>= 3.10` → [`Dialect::Sendopts`].
//! Development snapshots (`3.12-20260821`) are parsed by their release part.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::postfix::log::errno_text;

/// The wire dialect of the running Postfix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// Postfix before 3.10 (3.7 is the reference): attribute `smtputf8`.
    Smtputf8,
    /// Postfix 3.10 and later: attribute `sendopts`.
    Sendopts,
}

/// Why the Postfix version could not be determined.
#[derive(Debug)]
pub enum DialectError {
    /// `mail_version` was not `major.minor[.patch][-suffix]`.
    BadVersion(String),
}

impl fmt::Display for DialectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadVersion(v) => write!(f, "cannot parse mail_version {v:?}"),
        }
    }
}

impl std::error::Error for DialectError {}

impl Dialect {
    /// The dialect for a `mail_version` value such as `3.7.11`, `3.10.0` or
    /// `3.12-20260821`.
    ///
    /// # Errors
    /// [`DialectError::BadVersion`] when no `major.minor` can be read.
    pub fn from_mail_version(version: &str) -> Result<Self, DialectError> {
        let bad = || DialectError::BadVersion(version.to_owned());
        let release = version.trim().split('-').next().ok_or_else(bad)?;
        let mut parts = release.split('.');
        let major: u32 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let minor: u32 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        Ok(if (major, minor) >= (3, 10) {
            Self::Sendopts
        } else {
            Self::Smtputf8
        })
    }

    /// Name of the send-options attribute in delivery and bounce requests.
    pub fn sendopts_attr(self) -> &'static str {
        match self {
            Self::Smtputf8 => "smtputf8",
            Self::Sendopts => "sendopts",
        }
    }
    /// The releases that speak this dialect, for log lines.
    pub fn releases(self) -> &'static str {
        match self {
            Self::Smtputf8 => "Postfix 3.9 and earlier",
            Self::Sendopts => "Postfix 3.10 and later",
        }
    }
}

/// Where [`learn`] got the dialect from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// `mail_version` set in main.cf or with `-o` on the master.cf line.
    Configured,
    /// What this `postconf` printed.
    Postconf(PathBuf),
    /// Nothing said: the newest dialect.
    Newest,
}

/// The dialect chosen at start-up, and what to log about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Learned {
    /// The dialect.
    pub dialect: Dialect,
    /// The `mail_version` it was chosen for, if one was learned.
    pub version: Option<String>,
    /// Where it came from.
    pub origin: Origin,
    /// Warnings for the log, in Postfix's style (a configured value that is
    /// not a release number; a version that could not be learned).
    pub warnings: Vec<String>,
}

impl Learned {
    /// The one info line the daemon logs at start-up.
    pub fn info_line(&self) -> String {
        let version = self.version.as_deref().unwrap_or("unknown");
        let from = match &self.origin {
            Origin::Configured => " (set in main.cf or with -o)".to_string(),
            Origin::Postconf(path) => format!(" (from {} -dh mail_version)", path.display()),
            Origin::Newest => String::new(),
        };
        format!(
            "Postfix mail_version {version}{from}: delivery and bounce requests \
             in the dialect of {} (attribute {})",
            self.dialect.releases(),
            self.dialect.sendopts_attr()
        )
    }
}

/// How long [`learn`] waits for `postconf` before giving up on it.
pub const POSTCONF_TIMEOUT: Duration = Duration::from_secs(10);

/// Chooses the dialect at start-up (see the module documentation):
/// `configured` is `mail_version` when main.cf or `-o` set it; otherwise
/// `command_dir/postconf -c config_dir -dh mail_version` is asked, waiting
/// at most `timeout`.
pub fn learn(
    configured: Option<&str>,
    command_dir: &Path,
    config_dir: &Path,
    timeout: Duration,
) -> Learned {
    let mut warnings = Vec::new();
    if let Some(v) = configured {
        match Dialect::from_mail_version(v) {
            Ok(dialect) => {
                return Learned {
                    dialect,
                    version: Some(v.trim().to_string()),
                    origin: Origin::Configured,
                    warnings,
                }
            }
            Err(_) => warnings.push(format!(
                "ignoring mail_version = {v}: not a Postfix release number"
            )),
        }
    }
    let postconf = command_dir.join("postconf");
    let why = match ask_postconf(&postconf, config_dir, timeout) {
        Ok(v) => match Dialect::from_mail_version(&v) {
            Ok(dialect) => {
                return Learned {
                    dialect,
                    version: Some(v),
                    origin: Origin::Postconf(postconf),
                    warnings,
                }
            }
            Err(_) => format!("unexpected output \"{v}\""),
        },
        Err(why) => why,
    };
    warnings.push(format!(
        "cannot learn the Postfix version from {} -dh mail_version: {why}; \
         assuming {} (set mail_version in main.cf for an older Postfix)",
        postconf.display(),
        Dialect::Sendopts.releases()
    ));
    Learned {
        dialect: Dialect::Sendopts,
        version: None,
        origin: Origin::Newest,
        warnings,
    }
}

/// Runs `postconf -c config_dir -dh mail_version` by its absolute path and
/// returns what it printed, trimmed; kills it after `timeout`.
fn ask_postconf(postconf: &Path, config_dir: &Path, timeout: Duration) -> Result<String, String> {
    let mut child = Command::new(postconf)
        .arg("-c")
        .arg(config_dir)
        .args(["-d", "-h", "mail_version"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| errno_text(&e))?;
    let deadline = crate::clock::tooling_now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if crate::clock::tooling_now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no answer in {} s", timeout.as_secs()));
            }
            Err(e) => return Err(errno_text(&e)),
        }
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut err);
    }
    if !status.success() {
        let err = err.trim();
        return Err(if err.is_empty() {
            format!("exit status {}", status.code().unwrap_or(-1))
        } else {
            err.lines().next().unwrap_or_default().to_string()
        });
    }
    Ok(out.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_map_to_dialects() {
        for (v, d) in [
            ("3.7.11", Dialect::Smtputf8),
            ("3.9.14\n", Dialect::Smtputf8),
            ("2.11.0", Dialect::Smtputf8),
            ("3.10.0", Dialect::Sendopts),
            ("3.11.6", Dialect::Sendopts),
            ("3.12-20260821", Dialect::Sendopts),
            ("4.0", Dialect::Sendopts),
        ] {
            assert_eq!(Dialect::from_mail_version(v).unwrap(), d, "{v}");
        }
        for bad in ["", "3", "x.y", "3.x.1", "-3.10"] {
            assert!(Dialect::from_mail_version(bad).is_err(), "{bad}");
        }
    }

    /// A folder holding a `postconf` shell script with `body`. Written by
    /// a child process: a file this (multi-threaded) test process had open
    /// for writing could leak into another test's fork and make executing
    /// it fail with "Text file busy".
    fn fake_postconf(body: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("postconf");
        let status = Command::new("sh")
            .args([
                "-c",
                "printf '#!/bin/sh\\n%s\\n' \"$1\" > \"$2\" && chmod 755 \"$2\"",
                "sh",
            ])
            .arg(body)
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success());
        dir
    }

    #[test]
    fn a_configured_version_wins_without_asking() {
        let l = learn(
            Some("3.7.11"),
            Path::new("/nonexistent"),
            Path::new("/etc/postfix"),
            POSTCONF_TIMEOUT,
        );
        assert_eq!(l.dialect, Dialect::Smtputf8);
        assert_eq!(l.origin, Origin::Configured);
        assert!(l.warnings.is_empty());
        assert_eq!(
            l.info_line(),
            "Postfix mail_version 3.7.11 (set in main.cf or with -o): delivery and bounce \
             requests in the dialect of Postfix 3.9 and earlier (attribute smtputf8)"
        );
    }

    #[test]
    fn postconf_is_asked_by_absolute_path_with_the_config_directory() {
        // The script prints its arguments' verdict: it must get -c DIR -d -h.
        let dir = fake_postconf(
            r#"[ "$1 $2 $3 $4 $5" = "-c /cfg -d -h mail_version" ] && echo 3.8.4 || echo bad"#,
        );
        let l = learn(None, dir.path(), Path::new("/cfg"), POSTCONF_TIMEOUT);
        assert_eq!(l.dialect, Dialect::Smtputf8, "{:?}", l.warnings);
        assert_eq!(l.version.as_deref(), Some("3.8.4"));
        assert_eq!(l.origin, Origin::Postconf(dir.path().join("postconf")));
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        // A configured value that is no version is ignored, loudly.
        let l = learn(
            Some("latest"),
            dir.path(),
            Path::new("/cfg"),
            POSTCONF_TIMEOUT,
        );
        assert_eq!(l.version.as_deref(), Some("3.8.4"));
        assert_eq!(
            l.warnings,
            ["ignoring mail_version = latest: not a Postfix release number"]
        );
    }

    #[test]
    fn without_an_answer_the_newest_dialect_is_chosen_with_a_warning() {
        let missing = tempfile::tempdir().unwrap();
        let garbage = fake_postconf("echo not-a-version");
        let failing =
            fake_postconf("echo 'postconf: fatal: open /cfg/main.cf: No such file' >&2; exit 1");
        let hanging = fake_postconf("exec sleep 30");
        for (dir, why) in [
            (&missing, "No such file or directory".to_string()),
            (&garbage, "unexpected output \"not-a-version\"".to_string()),
            (
                &failing,
                "postconf: fatal: open /cfg/main.cf: No such file".to_string(),
            ),
            (&hanging, "no answer in 1 s".to_string()),
        ] {
            let l = learn(None, dir.path(), Path::new("/cfg"), Duration::from_secs(1));
            assert_eq!(l.dialect, Dialect::Sendopts, "{why}");
            assert_eq!(l.origin, Origin::Newest);
            assert_eq!(
                l.warnings,
                [format!(
                    "cannot learn the Postfix version from {}/postconf -dh mail_version: \
                     {why}; assuming Postfix 3.10 and later (set mail_version in main.cf \
                     for an older Postfix)",
                    dir.path().display()
                )]
            );
            assert!(l.info_line().starts_with("Postfix mail_version unknown: "));
        }
    }

    #[test]
    fn the_installed_postfix_is_learned() {
        // Debian's layout; whatever version is installed there, learning
        // must agree with parsing its answer ourselves.
        let postconf = Path::new("/usr/sbin/postconf");
        let Ok(out) = Command::new(postconf)
            .args(["-dh", "mail_version"])
            .output()
        else {
            return;
        };
        let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let l = learn(
            None,
            Path::new("/usr/sbin"),
            Path::new("/etc/postfix"),
            POSTCONF_TIMEOUT,
        );
        assert_eq!(l.version.as_deref(), Some(v.as_str()));
        assert_eq!(l.dialect, Dialect::from_mail_version(&v).unwrap());
    }
}
