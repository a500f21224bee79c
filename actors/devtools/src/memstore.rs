//! An in-memory [`QueueStore`] (the simulator's `world::Queues`, behind the
//! store trait).
//!
//! Holds queue files as the simulator does: a place (`incoming`, `active`,
//! `deferred`), a next-attempt stamp, recipients with a done flag and a read
//! cursor. Tests and demos run the actors against it; because it reuses the
//! simulator's own [`Queues`], scans, admissions and batches behave exactly
//! as in a simulation of the same files.
//!
//! # Invariants
//! - a file is in exactly one place; only `admit` moves it into `active`,
//!   only `complete` moves it out.

use oqmgr::entry::{Dsn, Recipient};
use oqmgr::message::Verdict;
use oqmgr::message::Warning;
use oqmgr::route::Routed;
use oqmgr::scan::{QueueName, ScanFlags};
use oqmgr::sim::world::{File, Place, Queues};
use oqmgr::time::{Duration, Instant};

use oqmgr_actors::queue_store::{AdmittedEnvelope, Batch, Completion, QueueStore, StoreError};

/// What happened to files and recipients, for summaries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Files removed after full delivery.
    pub removed: u64,
    /// Deferrals of whole files.
    pub deferred_files: u64,
    /// Delay warnings sent.
    pub warned: u64,
    /// Files returned to sender.
    pub expired: u64,
    /// Recipients returned with them.
    pub returned: u64,
    /// Double-bounce recipients discarded.
    pub discarded: u64,
    /// Recipients deferred by the scheduler itself.
    pub deferred_by_qmgr: u64,
}

/// Resolves an address to transport and next hop (trivial-rewrite's job).
pub type RouteFn = Box<dyn Fn(&str) -> Routed + Send>;

/// Queue files in memory.
pub struct MemoryStore {
    /// The files and their places (the simulator's structure).
    pub queues: Queues,
    /// Address resolution.
    resolve: RouteFn,
    /// Outcome counters.
    pub counters: Counters,
}

impl MemoryStore {
    /// An empty store resolving addresses with `resolve`.
    pub fn new(resolve: impl Fn(&str) -> Routed + Send + 'static) -> MemoryStore {
        MemoryStore {
            queues: Queues::default(),
            resolve: Box::new(resolve),
            counters: Counters::default(),
        }
    }

    /// Adds a file to `incoming/` or `deferred/` (as cleanup or a previous
    /// run would have left it). `mtime` is its next-attempt stamp.
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        id: &str,
        deferred: bool,
        sender: &str,
        recipients: &[String],
        now: Instant,
        create_time: Instant,
        warning: Warning,
    ) {
        self.queues.files.insert(
            id.into(),
            Box::new(File {
                id: id.into(),
                place: if deferred {
                    Place::Deferred
                } else {
                    Place::Incoming
                },
                mtime: now,
                sender: sender.into(),
                create_time,
                arrival: now,
                warning,
                recipients: recipients
                    .iter()
                    .map(|r| (r.as_str().into(), false))
                    .collect(),
                cursor: 0,
                single_rcpt: false,
            }),
        );
    }

    /// Marks a recipient done, as a delivery agent does after delivering or
    /// bouncing it.
    pub fn mark_done(&mut self, id: &str, address: &str) {
        self.queues.mark_done(id, address);
    }

    /// Number of files in any queue.
    pub fn len(&self) -> usize {
        self.queues.files.len()
    }

    /// True when no file is left.
    pub fn is_empty(&self) -> bool {
        self.queues.files.is_empty()
    }
}

fn place(queue: QueueName) -> Place {
    match queue {
        QueueName::Incoming => Place::Incoming,
        QueueName::Deferred => Place::Deferred,
    }
}

impl QueueStore for MemoryStore {
    fn scan_start(&mut self, queue: QueueName) -> usize {
        // The simulator's own walk, so both hosts see the same files.
        self.queues.start_scan(queue);
        self.queues.listing.get(&queue).map_or(0, |l| l.len())
    }

    fn scan_next(&mut self, queue: QueueName) -> Option<String> {
        self.queues.next(queue).map(|id| id.to_string())
    }

    fn admit(
        &mut self,
        queue: QueueName,
        id: &str,
        flags: ScanFlags,
        now: Instant,
    ) -> Result<AdmittedEnvelope, StoreError> {
        let file = self
            .queues
            .files
            .get_mut(id)
            .filter(|f| f.place == place(queue))
            .ok_or(StoreError::Gone)?;
        // Postfix skips deferred files stamped more than a second ahead
        // unless the scan ignores time stamps.
        if queue == QueueName::Deferred
            && !flags.contains(ScanFlags::ALL)
            && file.mtime > now + Duration::from_secs(1)
        {
            return Err(StoreError::NotDue);
        }
        file.place = Place::Active;
        file.cursor = 0;
        Ok(AdmittedEnvelope {
            sender: file.sender.to_string(),
            create_time: file.create_time,
            warning: file.warning,
            flags: ScanFlags::NONE,
            single_rcpt: file.single_rcpt,
        })
    }

    fn read(&mut self, id: &str, batch: u32) -> Result<Batch, StoreError> {
        if !self.queues.files.contains_key(id) {
            return Err(StoreError::Gone);
        }
        let (addresses, more) = self.queues.read_batch(id, batch);
        Ok(Batch {
            recipients: addresses.iter().map(|a| (self.resolve)(a)).collect(),
            more,
        })
    }

    fn discard(&mut self, id: &str, recipient: &Recipient) {
        self.queues.mark_done(id, &recipient.address);
        self.counters.discarded += 1;
    }

    fn defer_recipients(&mut self, _id: &str, recipients: &[Recipient], _dsn: &Dsn) {
        self.counters.deferred_by_qmgr += recipients.len() as u64;
    }

    fn complete(&mut self, id: &str, verdict: &Verdict, _done: Completion) {
        match verdict {
            Verdict::Remove => {
                if self.queues.files.remove(id).is_some() {
                    self.counters.removed += 1;
                }
            }
            Verdict::Defer { until, warn } => {
                if let Some(file) = self.queues.files.get_mut(id) {
                    file.place = Place::Deferred;
                    file.mtime = *until;
                    file.cursor = 0;
                    if *warn {
                        file.warning = Warning::Sent;
                        self.counters.warned += 1;
                    }
                    self.counters.deferred_files += 1;
                }
            }
            Verdict::Expire { .. } => {
                if let Some(file) = self.queues.files.remove(id) {
                    self.counters.expired += 1;
                    self.counters.returned +=
                        file.recipients.iter().filter(|(_, d)| !d).count() as u64;
                }
            }
        }
    }
}
