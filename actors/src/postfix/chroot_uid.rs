//! Dropping privileges and entering the chroot jail; mirrors
//! `postfix/src/util/chroot_uid.c` as called by the trigger-server skeleton.
//!
//! master(8) starts every daemon as root. With `-u` the daemon itself must
//! become `mail_owner`, and with `-c` it must chroot to `queue_directory`;
//! both happen after the pre-init work that needs root (opening files,
//! connecting log sockets) and before the daemon serves anything. The order
//! is Postfix's: look the user up (before the jail hides /etc/passwd),
//! `setgid` + `initgroups`, `chroot` + `chdir("/")`, and `setuid` last (the
//! chroot call itself needs root).
//!
//! Call this before the tokio runtime starts threads; glibc applies
//! set*id to every thread anyway, but a single thread avoids any window.
//!
//! Errors carry Postfix's fatal texts (`unknown user: NAME`, `setgid(N): …`,
//! `initgroups: …`, `chroot(DIR): …`, `chdir(/): …`, `setuid(N): …`).

use std::ffi::{CStr, CString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::log::errno_text;

/// Why the privilege change failed; `Display` is Postfix's fatal text.
#[derive(Debug)]
pub enum PrivilegeError {
    /// No such user in the password database.
    UnknownUser(String),
    /// A system call failed; first field names the call as Postfix does.
    Call(String, io::Error),
}

impl std::fmt::Display for PrivilegeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrivilegeError::UnknownUser(u) => write!(f, "unknown user: {u}"),
            PrivilegeError::Call(what, e) => write!(f, "{what}: {}", errno_text(e)),
        }
    }
}

impl std::error::Error for PrivilegeError {}

/// A user's ids from the password database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserIds {
    /// Numeric user id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
}

/// Looks `name` up with `getpwnam_r`.
pub fn lookup_user(name: &str) -> Result<UserIds, PrivilegeError> {
    let cname = CString::new(name).map_err(|_| PrivilegeError::UnknownUser(name.to_string()))?;
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: all pointers refer to live locals; getpwnam_r fills `pwd`
        // with pointers into `buf`, which we do not keep.
        let (rc, found) = unsafe {
            let mut pwd: libc::passwd = std::mem::zeroed();
            let mut result: *mut libc::passwd = std::ptr::null_mut();
            let rc = libc::getpwnam_r(
                cname.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            );
            (
                rc,
                (!result.is_null()).then_some(UserIds {
                    uid: pwd.pw_uid,
                    gid: pwd.pw_gid,
                }),
            )
        };
        if rc == libc::ERANGE && buf.len() < (1 << 20) {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        return found.ok_or_else(|| PrivilegeError::UnknownUser(name.to_string()));
    }
}

/// Enters `root_dir` (if any) and becomes `user` (if any), in Postfix's
/// order. With neither it does nothing.
pub fn chroot_uid(root_dir: Option<&Path>, user: Option<&str>) -> Result<(), PrivilegeError> {
    let ids = match user {
        Some(name) => {
            let ids = lookup_user(name)?;
            check(unsafe { libc::setgid(ids.gid) }, || {
                format!("setgid({})", ids.gid)
            })?;
            let cname =
                CString::new(name).map_err(|_| PrivilegeError::UnknownUser(name.to_string()))?;
            // SAFETY: valid C string; initgroups reads the group database.
            check(unsafe { libc::initgroups(cname.as_ptr(), ids.gid) }, || {
                "initgroups".to_string()
            })?;
            Some(ids)
        }
        None => None,
    };
    if let Some(dir) = root_dir {
        let cdir = CString::new(dir.as_os_str().as_bytes()).map_err(|_| {
            PrivilegeError::Call(
                format!("chroot({})", dir.display()),
                io::ErrorKind::InvalidInput.into(),
            )
        })?;
        // SAFETY: valid C strings.
        check(unsafe { libc::chroot(cdir.as_ptr()) }, || {
            format!("chroot({})", dir.display())
        })?;
        let slash: &CStr = c"/";
        check(unsafe { libc::chdir(slash.as_ptr()) }, || {
            "chdir(/)".to_string()
        })?;
    }
    if let Some(ids) = ids {
        check(unsafe { libc::setuid(ids.uid) }, || {
            format!("setuid({})", ids.uid)
        })?;
    }
    Ok(())
}

fn check(rc: libc::c_int, what: impl FnOnce() -> String) -> Result<(), PrivilegeError> {
    if rc < 0 {
        Err(PrivilegeError::Call(what(), io::Error::last_os_error()))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_exists_and_nonsense_does_not() {
        assert_eq!(lookup_user("root").unwrap(), UserIds { uid: 0, gid: 0 });
        assert_eq!(
            lookup_user("no-such-user-xyzzy").unwrap_err().to_string(),
            "unknown user: no-such-user-xyzzy"
        );
        assert!(lookup_user("a\0b").is_err());
    }

    #[test]
    fn nothing_requested_is_a_no_op() {
        chroot_uid(None, None).unwrap();
    }
}
