//! The simulated queue directories: the files of `incoming/`, `active/`
//! and `deferred/` as the queue manager sees them (Postfix: what
//! `qmgr_scan.c` lists and `qmgr_active.c` moves and reads).
//!
//! A [`File`] holds what the daemon reads from a queue file: its envelope
//! (sender, creation time, delay-warning state, VERP) and its recipients,
//! each with the `D` (done) mark an agent would write. [`Queues`] keeps
//! every file by queue ID and the listing each scan walks; a scan lists a
//! queue once at its start, the deterministic equivalent of Postfix's
//! directory reads. Admission (`activate`) moves a file into `active/`,
//! skipping a deferred file not yet due unless the scan has `ALL`.
//!
//! # Invariants
//! - a file is in exactly one place at a time;
//! - a scan hands out only files still in its queue when it gets to them;
//! - a file's read position (`cursor`) starts over at every admission.

use std::borrow::Borrow;
use std::collections::{BTreeMap, VecDeque};

use crate::message::Warning;
use crate::name::{Name, SortKey};
use crate::scan::{is_due, QueueName, ScanFlags};
use crate::time::Instant;

/// Where a simulated queue file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// `incoming/`.
    Incoming,
    /// `active/`.
    Active,
    /// `deferred/`.
    Deferred,
}

/// One simulated queue file.
#[derive(Clone, Debug)]
pub struct File {
    /// Queue ID (shared with the map key and scan listings).
    pub id: Name,
    /// Where it is.
    pub place: Place,
    /// Next attempt (`mtime` of a deferred file).
    pub mtime: Instant,
    /// Envelope sender (shared by the files of one arrival group).
    pub sender: Name,
    /// Creation time.
    pub create_time: Instant,
    /// Arrival in the queue (for delays).
    pub arrival: Instant,
    /// Delay-warning state (`W` record).
    pub warning: Warning,
    /// VERP: one recipient per delivery.
    pub single_rcpt: bool,
    /// Recipients and whether each is done (boxed: no spare capacity is
    /// kept for a million addresses).
    pub recipients: Vec<(Box<str>, bool)>,
    /// Read position for batches.
    pub cursor: usize,
}

/// The simulated queue directories.
#[derive(Debug, Default)]
pub struct Queues {
    /// Files by queue ID (IDs sort in arrival order). Boxed: IDs arrive
    /// in order, which leaves B-tree nodes about half full, and half-empty
    /// slots of a pointer cost far less than half-empty slots of a file.
    pub files: BTreeMap<SortKey, Box<File>>,
    /// The listing each scan walks.
    pub listing: BTreeMap<QueueName, VecDeque<Name>>,
}

impl Queues {
    /// Takes a new listing of a queue (Postfix scans read the directory
    /// as they go; a snapshot at start is the deterministic equivalent).
    pub fn start_scan(&mut self, queue: QueueName) {
        let want = match queue {
            QueueName::Incoming => Place::Incoming,
            QueueName::Deferred => Place::Deferred,
        };
        let ids = self
            .files
            .values()
            .filter(|f| f.place == want)
            .map(|f| f.id.clone())
            .collect();
        self.listing.insert(queue, ids);
    }

    /// The next file of a scan still in that queue.
    pub fn next(&mut self, queue: QueueName) -> Option<Name> {
        let want = match queue {
            QueueName::Incoming => Place::Incoming,
            QueueName::Deferred => Place::Deferred,
        };
        let list = self.listing.get_mut(&queue)?;
        while let Some(id) = list.pop_front() {
            if self
                .files
                .get(&SortKey::new(&id))
                .is_some_and(|f| f.place == want)
            {
                return Some(id);
            }
        }
        None
    }

    /// Reads the next batch of undone recipients; true when more remain.
    pub fn read_batch<Q>(&mut self, id: &Q, batch: u32) -> (Vec<String>, bool)
    where
        SortKey: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.read_batch_with(id, batch, str::to_string)
    }

    /// Like [`Queues::read_batch`], turning each address into what `f`
    /// makes of it without copying it first.
    pub fn read_batch_with<Q, T>(
        &mut self,
        id: &Q,
        batch: u32,
        f: impl FnMut(&str) -> T,
    ) -> (Vec<T>, bool)
    where
        SortKey: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let file = self.files.get_mut(id).expect("reading a file that exists");
        file.read_batch_with(batch, f)
    }

    /// Marks a recipient done (an agent's `D` record).
    pub fn mark_done<Q>(&mut self, id: &Q, address: &str)
    where
        SortKey: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        if let Some(file) = self.files.get_mut(id) {
            file.mark_done(address);
        }
    }
}

impl File {
    /// Reads the next batch of undone recipients, turning each address
    /// into what `f` makes of it; true when more remain. A method of the
    /// file, so that a host holding the file already does not search the
    /// queue for it again.
    pub fn read_batch_with<T>(
        &mut self,
        batch: u32,
        mut f: impl FnMut(&str) -> T,
    ) -> (Vec<T>, bool) {
        // Sized once: growing from empty reallocates for every batch.
        let left = self.recipients.len().saturating_sub(self.cursor);
        let mut out = Vec::with_capacity(left.min(batch as usize));
        while self.cursor < self.recipients.len() && out.len() < batch as usize {
            let (addr, done) = &self.recipients[self.cursor];
            if !done {
                out.push(f(addr));
            }
            self.cursor += 1;
        }
        let more = self.recipients[self.cursor..].iter().any(|(_, done)| !done);
        (out, more)
    }

    /// Marks the first undone recipient with this address done.
    pub fn mark_done(&mut self, address: &str) {
        if let Some(r) = self
            .recipients
            .iter_mut()
            .find(|(a, d)| &**a == address && !d)
        {
            r.1 = true;
        }
    }
}

/// What an admission read from a file's envelope.
#[derive(Clone, Debug)]
pub struct Envelope {
    /// The sender (shared by the files of one arrival group).
    pub sender: Name,
    /// When the message was created.
    pub create_time: Instant,
    /// The delay-warning state.
    pub warning: Warning,
    /// VERP: one recipient per delivery.
    pub single_rcpt: bool,
}

/// Moves file `id` from `queue` into `active/`, as `World::admit` says.
pub(super) fn activate<'a>(
    queues: &'a mut Queues,
    queue: QueueName,
    id: &SortKey,
    flags: ScanFlags,
    now: Instant,
) -> Option<&'a mut File> {
    let want = match queue {
        QueueName::Incoming => Place::Incoming,
        QueueName::Deferred => Place::Deferred,
    };
    let file = queues.files.get_mut(id).filter(|f| f.place == want)?;
    if queue == QueueName::Deferred && !flags.contains(ScanFlags::ALL) && !is_due(file.mtime, now) {
        return None;
    }
    file.place = Place::Active;
    file.cursor = 0;
    Some(file)
}

/// What an admission reads from `file`'s envelope.
pub(super) fn envelope(file: &File) -> Envelope {
    Envelope {
        sender: file.sender.clone(),
        create_time: file.create_time,
        warning: file.warning,
        single_rcpt: file.single_rcpt,
    }
}
