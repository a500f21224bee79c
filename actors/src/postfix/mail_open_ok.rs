//! mail_open_ok - may a queue file be opened, and opening it without
//! trusting its name (Postfix: `global/mail_open_ok.c`, the open half of
//! `global/mail_queue.c` `mail_queue_open`).
//!
//! A queue directory belongs to the `postfix` user, but what sits in it is
//! not trusted: a FIFO, a device, a directory or a symbolic link can carry a
//! queue-file name. Opening a FIFO blocks the opener until a writer comes;
//! following a link reads and writes a file outside the queue. So:
//!
//! - [`mail_open_ok`] looks at a name with `lstat` (never following a link)
//!   and accepts only a regular file whose owner bits say it is complete,
//!   as Postfix does before it renames a file into `active/`; anything else
//!   is refused, a non-regular file with Postfix's warning
//!   `<queue>/<id>: uid <n>: not a regular file`, and left where it is.
//! - [`open_queue_file`] opens with `O_NOFOLLOW | O_NONBLOCK` (a link fails,
//!   a FIFO cannot block the open), then checks with `fstat` that what was
//!   opened is a regular file and, when the caller checked the name first,
//!   the very file it checked (same device and inode). Every open of a
//!   queue file by the daemon goes through it.
//! - [`links_warning`]: Postfix's `file has <n> links` warning for a file
//!   with extra hard links, once the condition has lasted a minute.
//!
//! # Invariants
//! - nothing here follows a symbolic link or blocks on a file;
//! - a file that fails a check is never modified.

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use super::queue_file_write::mode_is_ready;

/// Why a queue file name is not to be opened.
#[derive(Debug)]
pub enum Refusal {
    /// Nothing by that name (any more).
    Gone,
    /// A regular file still being written (owner bits not all set).
    NotReady,
    /// Not a regular file (FIFO, directory, link, device, socket).
    NotRegular {
        /// The owner of the directory entry, for the warning.
        uid: u32,
    },
    /// `lstat` itself failed.
    Error(io::Error),
}

impl Refusal {
    /// The warning Postfix logs for this refusal of `path`, if any.
    pub fn warning(&self, path: &Path) -> Option<String> {
        match self {
            Refusal::Gone | Refusal::NotReady => None,
            Refusal::NotRegular { uid } => {
                Some(format!("{}: uid {uid}: not a regular file", path.display()))
            }
            Refusal::Error(e) => Some(format!("{}: {}", path.display(), super::log::errno_text(e))),
        }
    }
}

/// Checks `path` without following a link: a complete regular file gives
/// its metadata (mode, time stamps, device and inode for
/// [`open_queue_file`]).
pub fn mail_open_ok(path: &Path) -> Result<Metadata, Refusal> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Refusal::Gone),
        Err(e) => return Err(Refusal::Error(e)),
    };
    if !meta.file_type().is_file() {
        return Err(Refusal::NotRegular { uid: meta.uid() });
    }
    if !mode_is_ready(meta.mode()) {
        return Err(Refusal::NotReady);
    }
    Ok(meta)
}

/// Postfix's warning for a queue file with more than one hard link, given
/// `now` in Unix seconds: only once the last status change is more than a
/// minute old, since a rename briefly shows two links.
pub fn links_warning(path: &Path, meta: &Metadata, now: i64) -> Option<String> {
    (meta.nlink() > 1 && meta.ctime() < now - 60).then(|| {
        format!(
            "{}: uid {}: file has {} links",
            path.display(),
            meta.uid(),
            meta.nlink()
        )
    })
}

/// How a queue file is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Reading only.
    Read,
    /// Writing only (in-place record edits).
    Write,
    /// Both (admission: read and lock).
    ReadWrite,
}

/// Opens the queue file `path` without following a link and without
/// blocking, and checks that it is a regular file and, with `checked`, the
/// same file (device and inode) that [`mail_open_ok`] accepted. A failed
/// check closes the file again and fails with an error whose text says
/// why (`not a regular file`, `file changed after it was checked`).
pub fn open_queue_file(
    path: &Path,
    access: Access,
    checked: Option<&Metadata>,
) -> io::Result<File> {
    let mut options = OpenOptions::new();
    match access {
        Access::Read => options.read(true),
        Access::Write => options.write(true),
        Access::ReadWrite => options.read(true).write(true),
    };
    let file = options
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    let ft = meta.file_type();
    if !ft.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    if let Some(c) = checked {
        if (c.dev(), c.ino()) != (meta.dev(), meta.ino()) {
            return Err(io::Error::other("file changed after it was checked"));
        }
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    fn mkfifo(path: &Path) {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o700) }, 0);
    }

    fn ready_file(path: &Path, bytes: &[u8]) {
        std::fs::write(path, bytes).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).unwrap();
    }

    #[test]
    fn a_fifo_is_refused_with_postfix_warning_and_never_blocks() {
        let d = dir();
        let fifo = d.path().join("ABCDEF12345");
        mkfifo(&fifo);
        let refusal = mail_open_ok(&fifo).unwrap_err();
        let uid = std::fs::symlink_metadata(&fifo).unwrap().uid();
        assert_eq!(
            refusal.warning(&fifo).unwrap(),
            format!("{}: uid {uid}: not a regular file", fifo.display())
        );
        // Even asked directly, the open neither blocks nor succeeds.
        for access in [Access::Read, Access::Write, Access::ReadWrite] {
            let err = open_queue_file(&fifo, access, None).unwrap_err();
            // Write-only on a FIFO without a reader is ENXIO; else the check.
            assert!(
                err.raw_os_error() == Some(libc::ENXIO) || err.to_string() == "not a regular file",
                "{access:?}: {err}"
            );
        }
        assert!(fifo.exists(), "left in place");
    }

    #[test]
    fn a_link_is_refused_and_never_followed() {
        let d = dir();
        let target = d.path().join("outside");
        ready_file(&target, b"queue file outside the queue");
        let link = d.path().join("ABCDEF12346");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(
            mail_open_ok(&link),
            Err(Refusal::NotRegular { .. })
        ));
        let err = open_queue_file(&link, Access::ReadWrite, None).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
        assert_eq!(
            std::fs::read(&target).unwrap(),
            b"queue file outside the queue"
        );
    }

    #[test]
    fn a_directory_is_refused() {
        let d = dir();
        let sub = d.path().join("BADDIR12345");
        std::fs::create_dir(&sub).unwrap();
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(matches!(
            mail_open_ok(&sub),
            Err(Refusal::NotRegular { .. })
        ));
        assert!(open_queue_file(&sub, Access::Read, None).is_err());
    }

    #[test]
    fn a_ready_regular_file_opens_and_a_swapped_one_does_not() {
        let d = dir();
        let path = d.path().join("ABCDEF12347");
        ready_file(&path, b"x");
        let meta = mail_open_ok(&path).unwrap();
        assert!(open_queue_file(&path, Access::ReadWrite, Some(&meta)).is_ok());
        // Replaced by another file between the check and the open (the
        // old one kept elsewhere, so that its inode is not reused).
        std::fs::rename(&path, d.path().join("kept")).unwrap();
        ready_file(&d.path().join("other"), b"y");
        std::fs::rename(d.path().join("other"), &path).unwrap();
        let err = open_queue_file(&path, Access::Read, Some(&meta)).unwrap_err();
        assert_eq!(err.to_string(), "file changed after it was checked");
    }

    #[test]
    fn incomplete_and_missing_files_are_refused_quietly() {
        let d = dir();
        let path = d.path().join("ABCDEF12348");
        std::fs::write(&path, b"x").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let r = mail_open_ok(&path).unwrap_err();
        assert!(matches!(r, Refusal::NotReady) && r.warning(&path).is_none());
        let r = mail_open_ok(&d.path().join("missing")).unwrap_err();
        assert!(matches!(r, Refusal::Gone) && r.warning(&path).is_none());
    }

    #[test]
    fn extra_links_are_reported_after_a_minute() {
        let d = dir();
        let path = d.path().join("ABCDEF12349");
        ready_file(&path, b"x");
        std::fs::hard_link(&path, d.path().join("second")).unwrap();
        let meta = mail_open_ok(&path).unwrap();
        assert_eq!(links_warning(&path, &meta, meta.ctime()), None);
        assert_eq!(
            links_warning(&path, &meta, meta.ctime() + 61).unwrap(),
            format!("{}: uid {}: file has 2 links", path.display(), meta.uid())
        );
    }
}
