//! queue_store - the contract between the scheduler and queue files
//! (Postfix: the file side of `qmgr_scan.c`, `qmgr_active.c` and
//! `qmgr_message.c`, which oqmgr calls inline from its event loop).
//!
//! The scanners and the event loop reach queue files only
//! through [`QueueStore`]: directory listings, admission into `active/`,
//! recipient batches (already resolved), the scheduler's own discards and
//! deferrals, and the final disposition of a finished message. The
//! daemon's store is [`crate::daemon::dirstore::DirStore`] on a real queue
//! directory; tests use the simulator's queue files (the `oqmgr-devtools`
//! package's `simworld`).
//!
//! # Invariants
//! - calls are short and synchronous and never wait on another daemon (a
//!   store hands such work to a thread of its own and reports the end of a
//!   completion through its [`Completion`]);
//! - a store logs whatever Postfix logs about a file it cannot admit or
//!   read; callers add nothing.
//!
//! # Compatibility
//! The core's `DelayCleared` effect (`confirm_delay_cleared`) asks nothing
//! of a real store (`QueueStore::delay_cleared` does nothing by default).
//! As in Postfix, the notice is carried by the message's trace
//! flags: the envelope reader adds `REC_DLY_SENT` to a warned message's
//! flags at admission, the agents record each recipient they finish, and
//! the completion's trace flush has the bounce daemon send the notice.

use std::sync::{Arc, Mutex};

use oqmgr::entry::{Dsn, Recipient};
use oqmgr::message::Verdict;
use oqmgr::route::Routed;
use oqmgr::scan::{QueueName, ScanFlags};
use oqmgr::time::Instant;

/// What a store read from a queue file's envelope at admission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdmittedEnvelope {
    /// The envelope sender; empty for the null sender.
    pub sender: String,
    /// When the message was first queued.
    pub create_time: Instant,
    /// The delay-warning state (`W` record).
    pub warning: oqmgr::message::Warning,
    /// Flags from the file itself (mode bits), added to the scan's flags.
    pub flags: ScanFlags,
    /// VERP: one recipient per delivery request.
    pub single_rcpt: bool,
}

/// One batch of recipients read from a file, already resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// The recipients, resolved to transport and next hop.
    pub recipients: Vec<Routed>,
    /// True when more undone recipients remain on file.
    pub more: bool,
}

/// Why a file could not be admitted or read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// The file is not in that queue (any more).
    Gone,
    /// A deferred file whose next attempt is not due yet.
    NotDue,
    /// The file is locked, unreadable or corrupt; the text says why.
    Unusable(String),
    /// The file is not to be taken now (cleanup is still writing it, or
    /// another process holds it); the store has logged whatever Postfix
    /// logs for it, so the scanner adds nothing.
    Skipped,
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Gone => f.write_str("no such file"),
            StoreError::NotDue => f.write_str("next attempt not due"),
            StoreError::Unusable(why) => f.write_str(why),
            StoreError::Skipped => f.write_str("skipped"),
        }
    }
}

/// Queue-file access for the scheduler: directory listings, admission,
/// recipient batches and the final disposition of a file.
///
/// Calls are short and synchronous (Postfix's queue manager does them
/// inline too); they run under a mutex, never across an await.
pub trait QueueStore: Send {
    /// Starts a new walk of `queue`: takes the list of the files now in
    /// it, in the order the walk visits them, and returns how many there
    /// are. A walk already under way for `queue` is dropped.
    fn scan_start(&mut self, queue: QueueName) -> usize;
    /// The next file of the current walk of `queue`, or `None` at its end.
    /// A file that left the queue since the walk started may be handed out
    /// all the same (`admit` then answers `Gone`), or skipped, if the
    /// store can tell cheaply.
    fn scan_next(&mut self, queue: QueueName) -> Option<String>;
    /// Moves `id` from `queue` into `active/` and reads its envelope; the
    /// store logs any problem itself, in Postfix's words. A
    /// deferred file not due at `now` is refused with `NotDue` unless
    /// `flags` has ALL.
    fn admit(
        &mut self,
        queue: QueueName,
        id: &str,
        flags: ScanFlags,
        now: Instant,
    ) -> Result<AdmittedEnvelope, StoreError>;
    /// Reads the next at most `batch` undone recipients of an admitted file.
    fn read(&mut self, id: &str, batch: u32) -> Result<Batch, StoreError>;
    /// Logs a recipient as discarded and marks it done.
    fn discard(&mut self, id: &str, recipient: &Recipient);
    /// Writes defer records for recipients the scheduler deferred itself.
    fn defer_recipients(&mut self, id: &str, recipients: &[Recipient], dsn: &Dsn);
    /// The sender of `id` is told its delay is over (the core's
    /// `DelayCleared`). Nothing to do on real queue files, where the notice
    /// rides on the message's trace flags (see the module's notes); a
    /// simulated store counts it.
    fn delay_cleared(&mut self, _id: &str) {}
    /// Carries out a finished message's verdict: remove, defer until a next
    /// attempt (with a delay warning first when asked), or return to sender.
    /// `done` is dropped when that is carried out: at once for a store that
    /// finishes inside the call, later for one that hands the work on
    /// (then it travels with the work).
    fn complete(&mut self, id: &str, verdict: &Verdict, done: Completion);
    /// True for a store that may finish a completion after `complete`
    /// returned: the scheduler then counts each message against the
    /// active-queue limit until its [`Completion`] is dropped.
    fn completes_later(&self) -> bool {
        false
    }
    /// Makes the deferred files `ids` due now (their next-attempt stamp
    /// becomes `now`, or the store's own clock's time if it has one), for
    /// an operator's resume or flush; a deferred scan follows. Files not
    /// in `deferred/` are skipped. A store without time stamps does
    /// nothing.
    fn retry(&mut self, ids: &[oqmgr::name::Name], now: Instant) {
        let _ = (ids, now);
    }
}

/// Reports one carried-out completion to the supervisor when dropped
/// (Postfix keeps a message in its active queue until its completion is
/// done; this is how the supervisor learns it). Dropping it on every path,
/// a failure or a lost worker included, is what keeps the count right.
pub struct Completion(Option<Box<dyn FnOnce() + Send>>);

impl Completion {
    /// A completion that reports by calling `report`.
    pub fn new(report: impl FnOnce() + Send + 'static) -> Completion {
        Completion(Some(Box::new(report)))
    }

    /// A completion nobody waits for.
    pub fn unobserved() -> Completion {
        Completion(None)
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        if let Some(report) = self.0.take() {
            report();
        }
    }
}

impl std::fmt::Debug for Completion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Completion")
    }
}

/// A queue store shared by the scanners and the supervisor.
pub type SharedStore = Arc<Mutex<dyn QueueStore>>;
