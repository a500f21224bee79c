//! install - which Postfix build a sandbox runs: where its commands and
//! daemons live and which release it is (Postfix: `postconf -d`
//! `command_directory`, `daemon_directory`, `mail_version`).
//!
//! A machine may hold several Postfix builds: Debian's in `/usr/sbin` and
//! `/usr/lib/postfix/sbin`, and one built from source under a prefix by
//! `build-postfix PREFIX` (commands in `PREFIX/sbin`, daemons in
//! `PREFIX/libexec`). A [`PostfixInstall`] is found through one `postconf`
//! and asks it for its compiled-in directories and version, so the
//! sandbox runs that build's master, daemons and tools by absolute path,
//! and never mixes builds (a `sendmail` of one release handing mail to the
//! `postdrop` of another).
//!
//! # Invariants
//! - every path is absolute; [`PostfixInstall::command`] never consults
//!   `PATH` (only [`PostfixInstall::system`] does, once, to find the
//!   system's `postconf`).

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// One Postfix build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostfixInstall {
    /// Its compiled-in `command_directory` (postfix, sendmail, postconf...).
    pub command_directory: PathBuf,
    /// Its compiled-in `daemon_directory` (master, qmgr, smtp...).
    pub daemon_directory: PathBuf,
    /// Its compiled-in `mail_version`, e.g. `3.7.11`.
    pub mail_version: String,
}

impl PostfixInstall {
    /// The build whose `postconf` is `postconf`, as that `postconf -d`
    /// describes it.
    ///
    /// # Errors
    /// `postconf` cannot run, fails, or prints something unexpected.
    pub fn from_postconf(postconf: &Path) -> io::Result<PostfixInstall> {
        let out = Command::new(postconf)
            .args([
                "-d",
                "-h",
                "command_directory",
                "daemon_directory",
                "mail_version",
            ])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", postconf.display())))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        match (out.status.success(), lines.as_slice()) {
            (true, [command, daemon, version]) => Ok(PostfixInstall {
                command_directory: PathBuf::from(command),
                daemon_directory: PathBuf::from(daemon),
                mail_version: version.to_string(),
            }),
            _ => Err(io::Error::other(format!(
                "{} -d -h command_directory daemon_directory mail_version: {}{}",
                postconf.display(),
                text,
                String::from_utf8_lossy(&out.stderr)
            ))),
        }
    }

    /// The build installed under `prefix` by `build-postfix PREFIX`
    /// (`PREFIX/sbin/postconf`), or any Postfix whose `postconf` is
    /// `prefix/sbin/postconf` (`/usr` for Debian's).
    ///
    /// # Errors
    /// As [`PostfixInstall::from_postconf`].
    pub fn at_prefix(prefix: &Path) -> io::Result<PostfixInstall> {
        PostfixInstall::from_postconf(&prefix.join("sbin").join("postconf"))
    }

    /// The system's Postfix: the one whose `postconf` is on `PATH`
    /// (Debian's 3.7.11 on the test machines); asked once per process.
    ///
    /// # Errors
    /// No `postconf` on `PATH`, or it fails.
    pub fn system() -> io::Result<PostfixInstall> {
        static SYSTEM: OnceLock<Result<PostfixInstall, String>> = OnceLock::new();
        SYSTEM
            .get_or_init(|| {
                PostfixInstall::from_postconf(Path::new("postconf")).map_err(|e| e.to_string())
            })
            .clone()
            .map_err(io::Error::other)
    }

    /// The absolute path of command `name` of this build (`postfix`,
    /// `sendmail`, `postqueue`, ...).
    pub fn command(&self, name: &str) -> PathBuf {
        self.command_directory.join(name)
    }

    /// The release as `major.minor` (`3.11` for `3.11.6`), for test names
    /// and messages.
    pub fn release(&self) -> String {
        let mut parts = self.mail_version.split(['.', '-']);
        match (parts.next(), parts.next()) {
            (Some(major), Some(minor)) => format!("{major}.{minor}"),
            _ => self.mail_version.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_is_major_dot_minor() {
        let i = |v: &str| PostfixInstall {
            command_directory: PathBuf::from("/usr/sbin"),
            daemon_directory: PathBuf::from("/usr/lib/postfix/sbin"),
            mail_version: v.into(),
        };
        assert_eq!(i("3.7.11").release(), "3.7");
        assert_eq!(i("3.12-20260821").release(), "3.12");
        assert_eq!(i("odd").release(), "odd");
        assert_eq!(
            i("3.7.11").command("sendmail"),
            Path::new("/usr/sbin/sendmail")
        );
    }

    #[test]
    fn the_system_postfix_describes_itself() {
        let Ok(sys) = PostfixInstall::system() else {
            return;
        };
        assert!(sys.command("postconf").exists(), "{sys:?}");
        assert!(sys.daemon_directory.join("master").exists(), "{sys:?}");
        let again = PostfixInstall::from_postconf(&sys.command("postconf")).unwrap();
        assert_eq!(again, sys);
    }
}
