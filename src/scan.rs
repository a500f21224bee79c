//! Queue scans and their request flags (Postfix: `qmgr_scan.c`, the
//! `QMGR_SCAN_*` and `QMGR_FLUSH_*` bits of `qmgr.h`).
//!
//! A [`Scan`] walks one queue directory (`incoming` or `deferred`) and hands
//! out one file name at a time. The walk itself is the host's I/O; this type
//! keeps the request logic: a scan requested while one runs does not
//! interrupt it, it is remembered and restarts the scan when it reaches its
//! end, so no file is skipped and no request is lost.
//!
//! # States
//! Idle (`running == None`) or running with its flags. Requests OR into
//! `pending`; only a pending START starts (or restarts) a walk.
//!
//! # Invariants
//! - `pending` never holds START while the scan is idle (it would have
//!   started it).

use std::fmt;

use crate::time::{Duration, Instant};

/// How far ahead of `now` a deferred file's next-attempt stamp may be and
/// still be admitted by a scan without ALL. Postfix stamps and compares in
/// whole seconds, so a file due later in the current second must not wait a
/// whole `queue_run_delay` for the next scan; it allows one second.
pub const ADMIT_EARLY: Duration = Duration::from_secs(1);

/// True when a deferred file stamped `mtime` is due for a scan at `now`
/// (one without ALL; ALL admits everything).
pub fn is_due(mtime: Instant, now: Instant) -> bool {
    mtime <= now + ADMIT_EARLY
}

/// The two queues the queue manager scans.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QueueName {
    /// `incoming/`: new mail from cleanup.
    Incoming,
    /// `deferred/`: mail waiting for its next attempt.
    Deferred,
}

impl QueueName {
    /// The other queue, for alternating admissions.
    pub fn other(self) -> QueueName {
        match self {
            QueueName::Incoming => QueueName::Deferred,
            QueueName::Deferred => QueueName::Incoming,
        }
    }

    /// The directory name under `queue_directory`.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueName::Incoming => "incoming",
            QueueName::Deferred => "deferred",
        }
    }
}

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Scan request flags, which become per-message flags when a file is taken.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ScanFlags(pub u8);

impl ScanFlags {
    /// No flags.
    pub const NONE: ScanFlags = ScanFlags(0);
    /// (Re)start the walk.
    pub const START: ScanFlags = ScanFlags(1 << 0);
    /// Ignore "next attempt" time stamps (`postqueue -f`).
    pub const ALL: ScanFlags = ScanFlags(1 << 1);
    /// Forget dead transports and destinations once, now.
    pub const FLUSH_ONCE: ScanFlags = ScanFlags(1 << 2);
    /// Ignore `defer_transports` for messages this scan hands out.
    pub const FLUSH_DFXP: ScanFlags = ScanFlags(1 << 3);
    /// Per message (mode bit g+r): revive its transports and destinations.
    pub const FLUSH_EACH: ScanFlags = ScanFlags(1 << 4);
    /// Per message (mode bit g+x): expire it at once (`postsuper -e`).
    pub const FORCE_EXPIRE: ScanFlags = ScanFlags(1 << 5);
    /// Per message, with [`ScanFlags::FORCE_EXPIRE`]: it has defer log
    /// records, so it is returned on them at once, its recipients neither
    /// read nor tried again (the store hands over none).
    pub const EXPIRE_LOGGED: ScanFlags = ScanFlags(1 << 6);

    /// True when every bit of `other` is set.
    pub fn contains(self, other: ScanFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// True when no bit is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// These flags without the bits of `other`.
    pub fn without(self, other: ScanFlags) -> ScanFlags {
        ScanFlags(self.0 & !other.0)
    }
}

impl std::ops::BitOr for ScanFlags {
    type Output = ScanFlags;
    fn bitor(self, rhs: ScanFlags) -> ScanFlags {
        ScanFlags(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for ScanFlags {
    fn bitor_assign(&mut self, rhs: ScanFlags) {
        self.0 |= rhs.0;
    }
}

impl std::ops::BitAnd for ScanFlags {
    type Output = ScanFlags;
    fn bitand(self, rhs: ScanFlags) -> ScanFlags {
        ScanFlags(self.0 & rhs.0)
    }
}

impl fmt::Display for ScanFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(ScanFlags, &str); 7] = [
            (ScanFlags::START, "start"),
            (ScanFlags::ALL, "all"),
            (ScanFlags::FLUSH_ONCE, "flush_once"),
            (ScanFlags::FLUSH_DFXP, "flush_dfxp"),
            (ScanFlags::FLUSH_EACH, "flush_each"),
            (ScanFlags::FORCE_EXPIRE, "force_expire"),
            (ScanFlags::EXPIRE_LOGGED, "expire_logged"),
        ];
        let mut first = true;
        for (bit, name) in NAMES {
            if self.contains(bit) {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("-")?;
        }
        Ok(())
    }
}

/// The request state of one queue scan.
#[derive(Clone, Debug)]
pub struct Scan {
    /// Which queue this scan walks.
    pub queue: QueueName,
    /// Flags of the walk in progress, `None` when idle.
    running: Option<ScanFlags>,
    /// Flags requested for the next walk.
    pending: ScanFlags,
}

impl Scan {
    /// An idle scan of `queue`.
    pub fn new(queue: QueueName) -> Scan {
        Scan {
            queue,
            running: None,
            pending: ScanFlags::NONE,
        }
    }

    /// Flags of the walk in progress, if any.
    pub fn running(&self) -> Option<ScanFlags> {
        self.running
    }

    /// Applies a request (Postfix: `qmgr_scan_request`). ALL and FLUSH_DFXP
    /// also widen a walk already under way, so `postqueue -f` affects the
    /// files it has not reached yet. Returns the flags to start a walk with,
    /// when one must start now.
    pub fn request(&mut self, flags: ScanFlags) -> Option<ScanFlags> {
        if let Some(running) = self.running.as_mut() {
            *running |= flags & (ScanFlags::ALL | ScanFlags::FLUSH_DFXP);
        }
        self.pending |= flags;
        if self.running.is_none() && self.pending.contains(ScanFlags::START) {
            return Some(self.begin());
        }
        None
    }

    /// The walk reached its end (Postfix: `qmgr_scan_next` returning null).
    /// A START requested meanwhile restarts it at once: returns its flags.
    pub fn end(&mut self) -> Option<ScanFlags> {
        assert!(
            self.running.is_some(),
            "scan {} ended while idle",
            self.queue
        );
        self.running = None;
        if self.pending.contains(ScanFlags::START) {
            return Some(self.begin());
        }
        None
    }

    fn begin(&mut self) -> ScanFlags {
        let flags = self.pending.without(ScanFlags::START);
        self.pending = ScanFlags::NONE;
        self.running = Some(flags);
        flags
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_while_running_restarts_at_end() {
        let mut scan = Scan::new(QueueName::Deferred);
        assert_eq!(scan.request(ScanFlags::START), Some(ScanFlags::NONE));
        assert_eq!(scan.request(ScanFlags::START), None);
        assert_eq!(scan.end(), Some(ScanFlags::NONE));
        assert_eq!(scan.end(), None);
        assert_eq!(scan.running(), None);
    }

    #[test]
    fn all_widens_the_running_walk_and_the_next() {
        let mut scan = Scan::new(QueueName::Deferred);
        scan.request(ScanFlags::START);
        assert_eq!(scan.request(ScanFlags::ALL), None);
        assert_eq!(scan.running(), Some(ScanFlags::ALL));
        // ALL without START is remembered but starts nothing by itself.
        assert_eq!(scan.end(), None);
        assert_eq!(scan.request(ScanFlags::START), Some(ScanFlags::ALL));
    }
}
