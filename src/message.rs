//! In-core messages and what becomes of them (Postfix: `qmgr_message.c`
//! accounting, `qmgr_active.c` completion, the backoff rule of
//! `qmgr_active_defer`).
//!
//! A [`Message`] is an admitted queue file. It is referenced by each of its
//! entries; when the last one finishes the message is complete and
//! [`Message::verdict`] decides what happens to the file: removal, return to
//! sender (expiry), or deferral until a next attempt with a delay that grows
//! with the message's age, so a long-failing message is tried ever less
//! often and cannot crowd out new mail.
//!
//! # Compatibility
//! `minimal_backoff_time`, `maximal_backoff_time`, `maximal_queue_lifetime`,
//! `bounce_queue_lifetime` (null sender), the `W` warning stamp
//! (`delay_warning_time`), FORCE_EXPIRE (`postsuper -e`).

use crate::entry::MessageId;
use crate::name::Name;
use crate::params::GlobalParams;
use crate::scan::{QueueName, ScanFlags};
use crate::time::{Duration, Instant};

/// The delay-warning state of a message (Postfix: the `W` record: 0, a
/// time, or -1 once the warning went out).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Warning {
    /// No warning is wanted (`delay_warning_time = 0` when it was queued).
    #[default]
    None,
    /// A warning is due at this time if the message is still queued.
    Due(Instant),
    /// The warning was sent; with `confirm_delay_cleared` the sender also
    /// hears when the delay ends.
    Sent,
}

/// What the host read from a queue file's envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageInfo {
    /// The number the core gave the message at admission.
    pub message: MessageId,
    /// The queue ID (file name).
    pub id: Name,
    /// The envelope sender; empty for the null sender.
    pub sender: Name,
    /// When the message was first queued (expiry and backoff count from it).
    /// A host reading a file without a creation time passes the arrival
    /// time, and failing that `now`, which gives Postfix's minimal backoff.
    pub create_time: Instant,
    /// The delay-warning state (`W` record).
    pub warning: Warning,
    /// Scan flags plus those from the file's mode bits.
    pub flags: ScanFlags,
    /// One recipient per delivery request, whatever the transport's
    /// recipient limit (Postfix: `single_rcpt`, set by a VERP request:
    /// each delivery carries a sender made from its one recipient).
    pub single_rcpt: bool,
}

/// What to do with a message file whose last entry finished.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every recipient is finished: delete the file.
    Remove,
    /// Some recipient must be retried: stamp the file with `until` and move
    /// it to `deferred/`; send a delay notice first when `warn` is set.
    Defer {
        /// The next attempt.
        until: Instant,
        /// A delay warning is due now.
        warn: bool,
    },
    /// Too old to retry: return the undelivered recipients to the sender,
    /// then delete the file.
    Expire {
        /// `expired`, or `force-expired` for `postsuper -e`.
        status: &'static str,
    },
}

/// An admitted message (Postfix: `QMGR_MESSAGE`, accounting only).
#[derive(Clone, Debug)]
pub struct Message {
    /// The envelope facts. Boxed as it came in `Msg::Admitted`, so the rest of the message
    /// sits in the active queue's map without a box of its own.
    pub info: Box<MessageInfo>,
    /// The queue it was taken from.
    pub from: QueueName,
    /// Entries not yet finished.
    pub refcount: u32,
    /// Some recipient was deferred: the file must be retried.
    pub deferred: bool,
    /// More recipients remain on file beyond those read.
    pub more: bool,
    /// A refill was requested and has not been answered yet.
    pub refilling: bool,
    /// Some entry finished without deferral in this pass: there is
    /// something to report in a delay-cleared notice.
    pub finished_some: bool,
}

impl Message {
    /// Decides the fate of a complete message (Postfix: the tail of
    /// `qmgr_active_done`).
    pub fn verdict(&self, now: Instant, p: &GlobalParams) -> Verdict {
        assert!(
            self.refcount == 0,
            "verdict on {} with live entries",
            self.info.message
        );
        if !self.deferred {
            return Verdict::Remove;
        }
        if self.info.flags.contains(ScanFlags::FORCE_EXPIRE) {
            return Verdict::Expire {
                status: "force-expired",
            };
        }
        let lifetime = if self.info.sender.is_empty() {
            p.bounce_queue_lifetime
        } else {
            p.maximal_queue_lifetime
        };
        if now >= self.info.create_time + lifetime {
            return Verdict::Expire { status: "expired" };
        }
        // A warning is due one second early: Postfix compares whole seconds
        // against `W - 1` so a scan landing just before the stamp still warns.
        let warn = matches!(self.info.warning,
            Warning::Due(at) if now + Duration::from_secs(1) >= at);
        Verdict::Defer {
            until: now + backoff(now, self.info.create_time, p),
            warn,
        }
    }
}

impl Message {
    /// True when the sender must be told the delay has ended (Postfix:
    /// `confirm_delay_cleared` adds `REC_DLY_SENT` to the trace flags of a
    /// message whose warning was sent, agents record what they finish, and
    /// the trace flush at completion reports it; a pass that finished no
    /// recipient leaves nothing to report).
    pub fn confirm_delay_cleared(&self, p: &GlobalParams) -> bool {
        p.confirm_delay_cleared && self.info.warning == Warning::Sent && self.finished_some
    }
}

/// The wait before the next attempt: the message's age, kept within
/// [`minimal_backoff_time`, `maximal_backoff_time`] (Postfix:
/// `qmgr_active_defer`). Waiting as long as the message has already waited
/// doubles the spacing between attempts each time.
pub fn backoff(now: Instant, create_time: Instant, p: &GlobalParams) -> Duration {
    let age = now.saturating_since(create_time);
    age.max(p.minimal_backoff_time).min(p.maximal_backoff_time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_then_caps() {
        let p = GlobalParams::default();
        let t0 = Instant::from_secs(1000);
        let mut now = t0 + Duration::from_secs(1);
        let mut waits = Vec::new();
        for _ in 0..6 {
            let wait = backoff(now, t0, &p);
            waits.push(wait.as_secs());
            now = now + wait;
        }
        assert_eq!(waits, vec![300, 301, 602, 1204, 2408, 4000]);
    }
}
