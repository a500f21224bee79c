//! queue_file_write - the small in-place edits qmgr and delivery agents
//! make to queue files, their time stamps, modes and locks (Postfix:
//! `deliver_completed.c`, `mail_open_ok.c`, `qmgr_message.c`'s `W` update,
//! `myflock.c`).
//!
//! The daemon never writes a whole queue file (cleanup(8) does); the
//! writer the tests and tools use to make them is in the `oqmgr-devtools`
//! package (`queue_file_writer`).
//!
//! # In-place edits
//! - [`mark_recipient_done`]: overwrite the `R` type byte at a recipient's
//!   offset with `D` (agents and qmgr do this after a final result).
//! - [`kill_record`]: overwrite a type byte with `K` (qmgr kills the
//!   `trace_flags` record after a trace report).
//! - [`rewrite_warn_time`]: rewrite the 17-byte `W` record (usually to -1
//!   once the delay warning was sent).
//!
//! # Files in the queue
//! Mode bits say whether a file is ready (`(mode & 0700) == 0700`) and carry
//! flush/expire requests; atime = mtime = the next attempt time; qmgr locks
//! with `flock(LOCK_EX | LOCK_NB)`.

use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use super::record::{encode_record, fixed_width_number, rec};

/// Marks the recipient whose `R` record starts at `offset` as done (`D`).
pub fn mark_recipient_done(file: &File, offset: u64) -> io::Result<()> {
    file.write_all_at(&[rec::DONE], offset)
}

/// Turns the record at `offset` into a killed record (`K`).
pub fn kill_record(file: &File, offset: u64) -> io::Result<()> {
    file.write_all_at(&[rec::KILL], offset)
}

/// Rewrites the `W` record at `offset` with a new value (17 bytes).
pub fn rewrite_warn_time(file: &File, offset: u64, value: i64) -> io::Result<()> {
    let mut bytes = Vec::with_capacity(17);
    encode_record(&mut bytes, rec::WARN, fixed_width_number(value).as_bytes());
    file.write_all_at(&bytes, offset)
}

/// Owner bits of a complete, ready queue file.
pub const MODE_READY: u32 = 0o700;
/// Mode of a file a delivery agent marked corrupt.
pub const MODE_CORRUPT: u32 = 0o400;
/// Group-read bit: flush(8) asks for an immediate attempt.
pub const MODE_UNTHROTTLE: u32 = 0o040;
/// Group-exec bit: `postsuper -e/-f` asks for expiration.
pub const MODE_EXPIRE: u32 = 0o010;

/// True if a queue file with this mode is complete (`MAIL_QUEUE_STAT_READY`).
pub fn mode_is_ready(mode: u32) -> bool {
    mode & MODE_READY == MODE_READY
}

/// Sets atime and mtime of `path` to `when` (qmgr's "next attempt" stamp),
/// on the entry itself: a symbolic link is not followed, so no file outside
/// the queue is touched.
pub fn set_next_attempt(path: &Path, when: SystemTime) -> io::Result<()> {
    let (secs, nanos) = match when.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, i64::from(d.subsec_nanos())),
        Err(_) => (0, 0),
    };
    let ts = libc::timespec {
        tv_sec: secs as libc::time_t,
        tv_nsec: nanos as _,
    };
    let times = [ts, ts];
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    // SAFETY: c_path is a valid NUL-terminated string and `times` holds two
    // initialised timespecs, as utimensat(2) requires.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c_path.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `flock(LOCK_EX | LOCK_NB)`: `Ok(false)` if another process holds a lock
/// (qmgr: "skipped, still being delivered").
pub fn try_lock_exclusive(file: &File) -> io::Result<bool> {
    try_flock(file, libc::LOCK_EX | libc::LOCK_NB)
}

/// `flock(LOCK_SH | LOCK_NB)`, as delivery agents lock.
pub fn try_lock_shared(file: &File) -> io::Result<bool> {
    try_flock(file, libc::LOCK_SH | libc::LOCK_NB)
}

/// Releases a `flock` lock.
pub fn unlock(file: &File) -> io::Result<()> {
    try_flock(file, libc::LOCK_UN).map(|_| ())
}

/// Runs flock(2), mapping EWOULDBLOCK to `Ok(false)`.
fn try_flock(file: &File, op: libc::c_int) -> io::Result<bool> {
    loop {
        // SAFETY: the descriptor is owned by `file` and stays open.
        if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(err),
        }
    }
}
