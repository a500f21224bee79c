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
//! # Compatibility
//! `< 3.10` → [`Dialect::Smtputf8`]; `>= 3.10` → [`Dialect::Sendopts`].
//! Development snapshots (`3.12-20260821`) are parsed by their release part.

use std::fmt;
use std::path::Path;
use std::process::Command;

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
    /// `postconf` could not be run or failed.
    Postconf(String),
}

impl fmt::Display for DialectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadVersion(v) => write!(f, "cannot parse mail_version {v:?}"),
            Self::Postconf(e) => write!(f, "postconf -h mail_version: {e}"),
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

    /// Asks the installed Postfix: `postconf [-c DIR] -h mail_version`.
    ///
    /// `mail_version` is compiled in, so the configuration directory only
    /// matters when several Postfix builds share a machine.
    ///
    /// # Errors
    /// [`DialectError::Postconf`] when `postconf` cannot run or fails.
    pub fn detect(config_dir: Option<&Path>) -> Result<Self, DialectError> {
        let mut cmd = Command::new("postconf");
        if let Some(dir) = config_dir {
            cmd.arg("-c").arg(dir);
        }
        let out = cmd
            .args(["-h", "mail_version"])
            .output()
            .map_err(|e| DialectError::Postconf(e.to_string()))?;
        if !out.status.success() {
            return Err(DialectError::Postconf(
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ));
        }
        Self::from_mail_version(&String::from_utf8_lossy(&out.stdout))
    }

    /// Name of the send-options attribute in delivery and bounce requests.
    pub fn sendopts_attr(self) -> &'static str {
        match self {
            Self::Smtputf8 => "smtputf8",
            Self::Sendopts => "sendopts",
        }
    }
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

    #[test]
    fn installed_postfix_is_detected() {
        // The installed Postfix is 3.7 in CI; whatever it is, detection must
        // agree with parsing the version string ourselves.
        let Ok(out) = Command::new("postconf")
            .args(["-h", "mail_version"])
            .output()
        else {
            return;
        };
        let v = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(
            Dialect::detect(None).unwrap(),
            Dialect::from_mail_version(&v).unwrap()
        );
    }
}
