//! Queue directory scans and queue-file access (Postfix: `qmgr_scan.c`, the
//! file half of `qmgr_active.c` and `qmgr_message.c`).
//!
//! One [`ScannerActor`] per queue (`incoming`, `deferred`) owns that queue's
//! listing: `ScanStart` takes a fresh one, `ScanNext` hands out the next file
//! still in the queue, and `Admit` moves a file into `active/` and reads its
//! envelope and first batch of recipients. All file access goes through the
//! [`QueueStore`] trait, so tests use an in-memory store (the
//! `oqmgr-devtools` package's `memstore`) and the daemon real directories.
//!
//! # Invariants
//! - a listing is a snapshot taken at scan start (Postfix reads the
//!   directory as it goes; a snapshot is the deterministic equivalent); a
//!   listed file that left the queue meanwhile is skipped, never admitted
//!   twice;
//! - every `ScanNext` and `Admit` is answered (`ScanResult`,
//!   `Admitted`/`AdmitFailed`): the supervisor keeps one admission in
//!   flight and would stall forever on a lost answer.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use actix::{Actor, Context, Handler, Message};
use oqmgr::effect::Msg;
use oqmgr::entry::{Dsn, MessageId, Recipient};
use oqmgr::message::{MessageInfo, Verdict};
use oqmgr::name::Name;
use oqmgr::route::Routed;
use oqmgr::scan::{QueueName, ScanFlags};
use oqmgr::time::Instant;

use crate::host::Host;

/// What a store read from a queue file's envelope at admission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
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
    /// The queue IDs now in `queue`, in the order a scan visits them.
    fn list(&mut self, queue: QueueName) -> Vec<String>;
    /// True while `id` is still in `queue`.
    fn contains(&self, queue: QueueName, id: &str) -> bool;
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
    ) -> Result<Envelope, StoreError>;
    /// Reads the next at most `batch` undone recipients of an admitted file.
    fn read(&mut self, id: &str, batch: u32) -> Result<Batch, StoreError>;
    /// Logs a recipient as discarded and marks it done.
    fn discard(&mut self, id: &str, recipient: &Recipient);
    /// Writes defer records for recipients the scheduler deferred itself.
    fn defer_recipients(&mut self, id: &str, recipients: &[Recipient], dsn: &Dsn);
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
    /// Tells the sender a delayed message's delay has ended (the daemon's
    /// store sends a trace flush with `REC_DLY_SENT`); called just before
    /// `complete` for the same file.
    fn confirm_delay_cleared(&mut self, id: &str);
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

/// Starts a new walk of the queue.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ScanStart {
    /// The scan's flags (kept for the log; the supervisor owns them).
    pub flags: ScanFlags,
}

/// Asks for the next file of the walk; answered with `Msg::ScanResult`.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ScanNext;

/// Admits one file; answered with `Msg::Admitted` or `Msg::AdmitFailed`.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Admit {
    /// Its queue ID.
    pub id: String,
    /// The scan's flags, which become the message's.
    pub flags: ScanFlags,
    /// The number the core gave the message.
    pub message: MessageId,
    /// Read at most this many recipients now.
    pub batch: u32,
}

/// The scanner of one queue directory.
pub struct ScannerActor {
    /// Which queue.
    queue: QueueName,
    /// Files of the current walk not yet handed out.
    listing: VecDeque<String>,
    /// The scheduler's shared state.
    host: Arc<Host>,
}

impl ScannerActor {
    /// A scanner of `queue` with no walk in progress.
    pub fn new(queue: QueueName, host: Arc<Host>) -> ScannerActor {
        ScannerActor {
            queue,
            listing: VecDeque::new(),
            host,
        }
    }

    fn answer(&self, msg: Msg) {
        self.host.send_supervisor(msg);
    }
}

impl Actor for ScannerActor {
    type Context = Context<Self>;
}

impl Handler<ScanStart> for ScannerActor {
    type Result = ();
    fn handle(&mut self, msg: ScanStart, _ctx: &mut Context<Self>) {
        self.listing = self.host.store().list(self.queue).into();
        tracing::debug!(queue = %self.queue, flags = %msg.flags, files = self.listing.len(), "scan start");
    }
}

impl Handler<ScanNext> for ScannerActor {
    type Result = ();
    fn handle(&mut self, _msg: ScanNext, _ctx: &mut Context<Self>) {
        let mut found = None;
        {
            let store = self.host.store();
            while let Some(id) = self.listing.pop_front() {
                if store.contains(self.queue, &id) {
                    found = Some(id);
                    break;
                }
            }
        }
        self.answer(Msg::ScanResult {
            queue: self.queue,
            id: found.map(Into::into),
        });
    }
}

impl Handler<Admit> for ScannerActor {
    type Result = ();
    fn handle(&mut self, msg: Admit, _ctx: &mut Context<Self>) {
        let now = self.host.clock().now();
        let read = {
            let mut store = self.host.store();
            store
                .admit(self.queue, &msg.id, msg.flags, now)
                .and_then(|env| store.read(&msg.id, msg.batch).map(|b| (env, b)))
        };
        match read {
            Ok((env, batch)) => {
                let id = Name::from(msg.id);
                self.host
                    .registry()
                    .insert_queue_id(msg.message, id.clone());
                self.answer(Msg::Admitted {
                    info: Box::new(MessageInfo {
                        message: msg.message,
                        id,
                        sender: env.sender.into(),
                        create_time: env.create_time,
                        warning: env.warning,
                        flags: msg.flags | env.flags,
                        single_rcpt: env.single_rcpt,
                    }),
                    recipients: batch.recipients,
                    more: batch.more,
                });
            }
            Err(why) => {
                // The store has logged whatever Postfix logs for this file
                // (`QueueStore` contract); a second line would be noise in
                // a log parser's eyes.
                tracing::debug!(queue = %self.queue, id = %msg.id, "not admitted: {why}");
                self.answer(Msg::AdmitFailed { id: msg.id.into() });
            }
        }
    }
}
