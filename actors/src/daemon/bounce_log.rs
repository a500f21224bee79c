//! bounce_log - what a message's defer logfile says about its recipients
//! (Postfix: `global/bounce_log.c`, the logfile the bounce daemon appends
//! to in `bounce_append_service.c`).
//!
//! A delivery agent that defers a recipient asks the `defer` service to
//! append a record to `defer/<queue id>` before it answers the queue
//! manager; each record holds `recipient=`, `offset=` (the recipient's
//! record in the queue file) and the reason. An agent that rejects the
//! request itself (a request of another Postfix release, a queue file it
//! cannot open) answers "try again" just the same, but has recorded
//! nothing. [`recorded_any`] tells the two apart, so that the queue
//! manager can say so and record a reason itself.
//!
//! # Invariants
//! - only a regular file inside the queue directory is read, never
//!   through a symbolic link, never waiting on it (`O_NOFOLLOW`,
//!   `O_NONBLOCK`), and at most [`MAX_TAIL`] bytes of its end.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;

use super::site::Site;

/// How much of the end of a defer logfile is read: the records of the
/// request just answered are the last ones appended.
pub const MAX_TAIL: u64 = 1 << 20;

/// True when the defer logfile of `queue_id` holds a record for one of
/// the recipients at `offsets` (queue-file record offsets, unique within
/// the file). False when it holds none, does not exist, or cannot be read
/// as a regular file.
pub fn recorded_any(site: &Site, queue_id: &str, offsets: &[u64]) -> bool {
    // Absolute (the queue directory is `/` inside a chroot): the same
    // file the relative path names from the daemon's working directory.
    let path = site.queue_dir.join(site.path("defer", queue_id));
    let Ok(mut file) = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
    else {
        return false;
    };
    let Ok(meta) = file.metadata() else {
        return false;
    };
    if !meta.is_file() {
        return false;
    }
    let start = meta.len().saturating_sub(MAX_TAIL);
    let mut text = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_err()
        || file.take(MAX_TAIL).read_to_end(&mut text).is_err()
    {
        return false;
    }
    mentions_offset(&text, offsets)
}

/// True when a line `offset=N` of `log` names one of `offsets`.
fn mentions_offset(log: &[u8], offsets: &[u64]) -> bool {
    log.split(|&b| b == b'\n')
        .filter_map(|line| line.strip_prefix(b"offset="))
        .filter_map(|n| std::str::from_utf8(n).ok()?.parse::<u64>().ok())
        .any(|n| offsets.contains(&n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn site(dir: PathBuf) -> Site {
        Site::defaults(dir)
    }

    /// A record as the bounce daemon appends it.
    const RECORD: &str = "\nrecipient=u1@d1.test\noffset=237\ndsn_orig_rcpt=rfc822;u1@d1.test\n\
                          notify_flags=0\nstatus=4.3.0\naction=delayed\nreason=host said: 450\n";

    #[test]
    fn finds_a_record_of_the_request_only() {
        assert!(mentions_offset(RECORD.as_bytes(), &[100, 237]));
        assert!(!mentions_offset(RECORD.as_bytes(), &[23, 2370]));
        // A reason that happens to contain the text is not a record.
        assert!(!mentions_offset(b"reason=bad offset=237\n", &[237]));
    }

    #[test]
    fn reads_the_hashed_logfile_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let s = site(dir.path().to_path_buf());
        let id = "ABCDE12345";
        let path = dir.path().join(s.path("defer", id));
        assert!(!recorded_any(&s, id, &[237]), "no logfile yet");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, RECORD).unwrap();
        assert!(recorded_any(&s, id, &[237]));
        assert!(!recorded_any(&s, id, &[238]));
        // A symbolic link in its place is not followed.
        std::fs::remove_file(&path).unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::fs::write(&elsewhere, RECORD).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
        assert!(!recorded_any(&s, id, &[237]));
    }

    #[test]
    fn a_rejection_needs_the_queue_file_in_active() {
        use crate::daemon::bridge::rejected;
        use oqmgr::entry::Recipient;
        let dir = tempfile::tempdir().unwrap();
        let s = site(dir.path().to_path_buf());
        let id = "ABCDE12345";
        let mut r = Recipient::new("u1@d1.test");
        r.offset = 237;
        let rcpts = [r];
        // The file was deleted in flight (postsuper -d): no rejection.
        assert!(!rejected(&s, id, &rcpts));
        let active = dir.path().join(s.path("active", id));
        std::fs::create_dir_all(active.parent().unwrap()).unwrap();
        std::fs::write(&active, b"queue file").unwrap();
        assert!(rejected(&s, id, &rcpts), "nothing recorded, file in place");
        let log = dir.path().join(s.path("defer", id));
        std::fs::create_dir_all(log.parent().unwrap()).unwrap();
        std::fs::write(&log, RECORD).unwrap();
        assert!(!rejected(&s, id, &rcpts), "the agent recorded a deferral");
        // A symbolic link in active/ is not the queue file.
        std::fs::remove_file(&log).unwrap();
        std::fs::remove_file(&active).unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), &active).unwrap();
        std::fs::write(dir.path().join("elsewhere"), b"x").unwrap();
        assert!(!rejected(&s, id, &rcpts));
    }
}
