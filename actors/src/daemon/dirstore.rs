//! dirstore - the queue store on a real Postfix queue directory (Postfix:
//! `qmgr_scan.c`, `qmgr_active.c` `qmgr_active_feed`, `qmgr_move.c`, the
//! read and resolve halves of `qmgr_message.c`).
//!
//! [`DirStore`] implements [`QueueStore`] over `incoming/`, `deferred/`,
//! `active/` and `corrupt/` below the queue directory (the daemon has
//! chdir-ed there, so every path is relative, as in Postfix, and works the
//! same inside a chroot). Admission renames a file into `active/`, locks
//! it, reads its envelope with [`crate::postfix::queue_file`] and keeps it
//! in memory ([`super::active_table::ActiveTable`]); recipient batches are read
//! on demand and resolved through trivial-rewrite ([`Resolver`]).
//! Everything that may wait on another daemon (the `retry` agent, the bounce
//! daemon) goes to the [`Worker`] thread, in order, so the actors never
//! block on it.
//!
//! The walk of a queue directory and the recovery of `active/` at start
//! are in `dirstore_queue_dir.rs`, the resolution of recipient batches in
//! `dirstore_resolve.rs`.
//!
//! # Compatibility
//! - A scan lists a whole directory at its start and sorts the names
//!   (Postfix reads the directory as it goes, in directory order). A queue
//!   directory that cannot be opened stops the daemon with Postfix's fatal
//!   (`scan_dir_push: open directory ...`); hash directories are entered
//!   only when they are directories, never through a link.
//! - Only regular files are touched ([`crate::postfix::mail_open_ok`]): a
//!   FIFO, link, directory or device with a queue-file name is left where
//!   it is with Postfix's `<queue>/<id>: uid <n>: not a regular file`, and
//!   every open is `O_NOFOLLOW | O_NONBLOCK` and checked with `fstat`, so
//!   nothing blocks on a file and nothing outside the queue is read or
//!   written.
//! - Where Postfix stops with a fatal because a queue directory cannot be
//!   changed (the rename into `active/`, the removal of a stale defer
//!   log, the flush-mode reset), so does the daemon: master starts a new
//!   one later, which retries the file from `active/`.
//! - A file not ready (mode without 0700: cleanup is still writing it) is
//!   skipped; one stamped more than 1 s in the future is skipped unless the
//!   scan has ALL (`postqueue -f`); mode 0040 adds FLUSH_EACH|FLUSH_DFXP
//!   and is cleared; 0010 adds FORCE_EXPIRE.
//! - A file another process holds locked is put back into `incoming/`,
//!   stamped 60 s ahead, with Postfix's `skipped, still being delivered`.
//! - A malformed envelope sends the file to `corrupt/` with Postfix's
//!   warnings. A read error leaves it in `active/`; the next start of the
//!   daemon moves it back to `incoming/` ([`recover_active`]).
//! - `confirm_delay_cleared`: the envelope reader adds `REC_DLY_SENT` to
//!   the trace flags of a message whose delay warning was sent, so the
//!   agents record what they deliver and the completion's trace flush
//!   carries the notice ([`crate::queue_store`] says why the core's
//!   `DelayCleared` effect needs nothing more).
//!
//! # Invariants
//! - a queue ID is in `open` exactly while its file is admitted; the
//!   completion job takes it out before the file leaves `active/`.

#[path = "dirstore_queue_dir.rs"]
mod queue_dir;
#[path = "dirstore_resolve.rs"]
mod resolve;

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use oqmgr::entry::{Dsn, Recipient};
use oqmgr::message::{Verdict, Warning};
use oqmgr::name::Name;
use oqmgr::scan::{QueueName, ScanFlags};
use oqmgr::time::Instant;

use super::active_table::{core_text, loggable, timeval, ActiveMessage, ActiveTable};
use super::resolver::Resolver;
use super::site::Site;
use super::worker::{self, Job, Worker};
use crate::clock::Clock;
use crate::postfix::flow::FlowPipe;
use crate::postfix::log::{self, errno_text};
use crate::postfix::mail_open_ok::{links_warning, mail_open_ok, open_queue_file, Access, Refusal};
use crate::postfix::queue_file::{self, FileEnvelope, FileRecipient};
use crate::postfix::queue_file_parse::ReadLimits;
use crate::postfix::queue_file_write::{
    set_next_attempt, try_lock_exclusive, MODE_EXPIRE, MODE_UNTHROTTLE,
};
use crate::queue_store::{AdmittedEnvelope, Batch, Completion, QueueStore, StoreError};

pub use queue_dir::{recover_active, rename_into, system_time, walk};

/// A file's reading state while recipients remain to hand to the core.
#[derive(Default)]
struct Reading {
    /// The reader's own envelope, kept only while recipients remain on file
    /// after the reads so far (a message with more recipients than one read
    /// takes, `qmgr_message_recipient_limit`); its recipient list is drained
    /// into `pending` after every read. `None` once the file has no more:
    /// the message-level fields then live only in `shared`, so an admitted
    /// message holds its envelope once, not twice.
    reader: Option<FileEnvelope>,
    /// Recipients read from the file and not yet handed to the core.
    pending: VecDeque<FileRecipient>,
}

/// master's flow-control pipe as the store feeds it (Postfix: the end of
/// `qmgr_loop`): one token for each file taken from `incoming/`, written as
/// the file is taken, while the pipe holds fewer than the process limit. A
/// late token can park cleanup(8) for a whole `in_flow_delay`; writing it
/// here, rather than waking a pump task, saves a task wake-up and a timer
/// per message.
pub struct Flow {
    /// The pipe (fds 3 and 4 from master).
    pub pipe: FlowPipe,
    /// `default_process_limit`: the level the pipe is kept at.
    pub process_limit: usize,
    /// Files taken since the idle top-up last looked (it tops the pipe up
    /// only after a quiet second, so an idle daemon does not poll).
    pub taken: Arc<AtomicUsize>,
}

impl Flow {
    /// One token for a file just taken from `incoming/`: Postfix's
    /// end-of-loop rule for a pass that fed from `incoming/`
    /// ([`FlowPipe::regulate`]).
    fn file_taken(&self) {
        self.taken.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.pipe.regulate(self.process_limit, true, false) {
            tracing::warn!("mail_flow: {}", errno_text(&e));
        }
    }
}

/// Routing settings the store applies itself before the core's rules.
#[derive(Clone, Debug)]
pub struct Routing {
    /// `default_filter_nexthop`.
    pub default_filter_nexthop: String,
    /// `myhostname` (the next hop of a content filter for a recipient
    /// without a domain).
    pub myhostname: String,
}

/// The queue store on a Postfix queue directory.
pub struct DirStore {
    /// Paths, dialect, timeouts.
    site: Arc<Site>,
    /// The clock (file stamps, `delays=`).
    clock: Clock,
    /// Envelope reader settings.
    limits: ReadLimits,
    /// Content filter defaults.
    routing: Routing,
    /// trivial-rewrite.
    resolver: Resolver,
    /// Admitted messages for the agents and the worker: the shared,
    /// read-only view of each (the envelope as the first read left it).
    /// A message is open in the store exactly while it is in this table;
    /// the store keeps no other entry per in-core message, as one more
    /// table slot and key per message cost ~70 bytes each in core.
    active: ActiveTable,
    /// Admitted files with recipients still to hand to the core: only
    /// between admission and the first read, and for files with more
    /// recipients than one read takes.
    reading: HashMap<Name, Reading>,
    /// Admitted files for which some job went to the worker (a discard or
    /// a deferral): their completion must then go through the worker
    /// too, after them.
    queued_work: HashSet<Name>,
    /// The completion worker.
    worker: Worker,
    /// master's flow-control pipe, when master passed one.
    flow: Option<Flow>,
    /// The files of the current walk of `incoming/` and of `deferred/` not
    /// yet handed out ([`walk_index`]).
    walks: [VecDeque<String>; 2],
}

/// The slot of `queue`'s walk in [`DirStore`]'s `walks`.
fn walk_index(queue: QueueName) -> usize {
    match queue {
        QueueName::Incoming => 0,
        QueueName::Deferred => 1,
    }
}

impl DirStore {
    /// A store on `site`'s queue directory.
    pub fn new(
        site: Arc<Site>,
        clock: Clock,
        limits: ReadLimits,
        routing: Routing,
        resolver: Resolver,
        active: ActiveTable,
        worker: Worker,
    ) -> DirStore {
        DirStore {
            site,
            clock,
            limits,
            routing,
            resolver,
            active,
            reading: HashMap::new(),
            queued_work: HashSet::new(),
            worker,
            flow: None,
            walks: Default::default(),
        }
    }

    /// Feeds master's flow-control pipe as files are taken from
    /// `incoming/`.
    pub fn with_flow(mut self, flow: Option<Flow>) -> DirStore {
        self.flow = flow;
        self
    }

    /// Puts a file back into `incoming/` stamped `delay` ahead of the wall
    /// clock (a locked file).
    fn put_back(&self, id: &str, active: &Path, delay: oqmgr::time::Duration) {
        let until = self.clock.wall_now() + delay;
        if let Err(e) = set_next_attempt(active, system_time(until)) {
            tracing::warn!(
                "qmgr_move: update {} time stamps: {}",
                active.display(),
                errno_text(&e)
            );
        }
        let to = self.site.path("incoming", id);
        if let Err(e) = rename_into(active, &to) {
            tracing::warn!(
                "qmgr_move: rename {id} from active to incoming: {}",
                errno_text(&e)
            );
        }
    }

    /// Moves an unreadable file from `active/` to `corrupt/`.
    fn save_corrupt(&self, id: &str, active: &Path) {
        match rename_into(active, &self.site.path("corrupt", id)) {
            Ok(()) => tracing::warn!(
                "saving corrupt file \"{id}\" from queue \"active\" to queue \"corrupt\""
            ),
            Err(e) => tracing::warn!(
                "qmgr_move: rename {id} from active to corrupt: {}",
                errno_text(&e)
            ),
        }
    }
}

impl QueueStore for DirStore {
    fn scan_start(&mut self, queue: QueueName) -> usize {
        let mut names = Vec::new();
        let depth = if self.site.hashing.is_hashed(queue.as_str()) {
            self.site.hashing.depth
        } else {
            0
        };
        if let Err(fatal) = walk(Path::new(queue.as_str()), depth, &mut names, None) {
            log::fatal(&fatal);
        }
        names.sort();
        let walk = &mut self.walks[walk_index(queue)];
        *walk = names.into();
        walk.len()
    }

    fn scan_next(&mut self, queue: QueueName) -> Option<String> {
        // No stat here: `admit` meets a file that left the queue as a failed
        // rename and skips it, as oqmgr does, so a stat per file would only
        // cost a system call per message.
        self.walks[walk_index(queue)].pop_front()
    }

    fn admit(
        &mut self,
        queue: QueueName,
        id: &str,
        flags: ScanFlags,
        now: Instant,
    ) -> Result<AdmittedEnvelope, StoreError> {
        let from = self.site.path(queue.as_str(), id);
        // Never follow a link, never open anything but a complete regular
        // file; anything else stays where it is (Postfix: `mail_open_ok`).
        let meta = match mail_open_ok(&from) {
            Ok(m) => m,
            Err(refusal) => {
                if let Some(w) = refusal.warning(&from) {
                    tracing::warn!("{w}");
                }
                return Err(match refusal {
                    Refusal::Gone => StoreError::Gone,
                    _ => StoreError::Skipped,
                });
            }
        };
        // File times are wall-clock times: compared with the wall clock as
        // it reads now, not with core time (which a clock step leaves
        // behind).
        let wall = self.clock.wall_now();
        if let Some(w) = links_warning(&from, &meta, wall.as_secs() as i64) {
            tracing::warn!("{w}");
        }
        let mode = meta.mode() & 0o7777;
        let mtime = Instant::from_secs(meta.mtime().max(0) as u64);
        if !flags.contains(ScanFlags::ALL) && !oqmgr::scan::is_due(mtime, wall) {
            return Err(StoreError::NotDue);
        }
        let active = self.site.path("active", id);
        if let Err(e) = rename_into(&from, &active) {
            let text = format!(
                "qmgr_active_feed: {id}: rename from {} to active: {}",
                queue.as_str(),
                errno_text(&e)
            );
            if e.kind() != io::ErrorKind::NotFound {
                log::fatal(&text);
            }
            tracing::warn!("{text}");
            return Err(StoreError::Skipped);
        }
        let mut file_flags = ScanFlags::NONE;
        if mode & MODE_UNTHROTTLE != 0 {
            file_flags |= ScanFlags::FLUSH_EACH | ScanFlags::FLUSH_DFXP;
        }
        if mode & MODE_EXPIRE != 0 {
            file_flags |= ScanFlags::FORCE_EXPIRE;
        }
        // The very file checked above, opened without following a link.
        let file = match open_queue_file(&active, Access::ReadWrite, Some(&meta)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                tracing::warn!("open active {id}: {}", errno_text(&e));
                return Err(StoreError::Gone);
            }
            Err(e) if !replaced(&e) => log::fatal(&format!("open active {id}: {}", errno_text(&e))),
            Err(e) => {
                // Replaced between the check and the rename: put back
                // whatever is there now; the next scan refuses it there.
                tracing::warn!("open active {id}: {}", errno_text(&e));
                if let Err(e) = rename_into(&active, &from) {
                    tracing::warn!(
                        "qmgr_move: rename {id} from active to {}: {}",
                        queue.as_str(),
                        errno_text(&e)
                    );
                }
                return Err(StoreError::Skipped);
            }
        };
        match try_lock_exclusive(&file) {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!("{id}: skipped, still being delivered");
                drop(file);
                self.put_back(id, &active, oqmgr::time::Duration::from_secs(60));
                return Err(StoreError::Skipped);
            }
            Err(e) => {
                tracing::warn!("{id}: lock active file: {}", errno_text(&e));
                drop(file);
                self.put_back(id, &active, oqmgr::time::Duration::ZERO);
                return Err(StoreError::Unusable(errno_text(&e)));
            }
        }
        if let (QueueName::Incoming, Some(flow)) = (queue, &self.flow) {
            flow.file_taken();
        }
        let path = active.display().to_string();
        let mut env = match queue_file::read_envelope(&file, id, &self.limits) {
            Ok(env) => env,
            Err(e) => {
                for w in e.warnings(id, &path) {
                    tracing::warn!("{w}");
                }
                drop(file);
                if e.is_corrupt() {
                    self.save_corrupt(id, &active);
                }
                return Err(StoreError::Unusable(e.warnings(id, &path).join("; ")));
            }
        };
        for w in env.warnings.drain(..) {
            tracing::warn!("{w}");
        }
        if let (Some((size, nrcpt)), Some(sender)) = (env.opened_log, &env.sender) {
            tracing::info!(
                "{id}: from=<{}>, size={size}, nrcpt={nrcpt} (queue active)",
                loggable(sender)
            );
        }
        // Postfix stops with a fatal where a queue directory cannot be
        // changed: master starts a new queue manager later, which finds
        // the file in `active/` and retries it, so nothing is lost and the
        // log says what to repair.
        if mode & MODE_UNTHROTTLE != 0 {
            if let Err(e) =
                file.set_permissions(fs::Permissions::from_mode(mode & !MODE_UNTHROTTLE))
            {
                log::fatal(&format!("fchmod {}: {}", active.display(), errno_text(&e)));
            }
        }
        // The soft-bounce log starts empty on every pass through `active/`,
        // except for `postsuper -e` mail that has one: it is returned with
        // the reasons logged there and no new delivery (as Postfix's oqmgr
        // does), instead of each recipient's reason becoming "expired".
        let defer_log = self.site.path("defer", id);
        let expire_on_log = file_flags.contains(ScanFlags::FORCE_EXPIRE)
            && fs::symlink_metadata(&defer_log).is_ok_and(|m| m.is_file() && m.len() > 0);
        if expire_on_log {
            file_flags |= ScanFlags::EXPIRE_LOGGED;
            env.recipients.clear();
        } else if let Err(e) = fs::remove_file(&defer_log) {
            if e.kind() != io::ErrorKind::NotFound {
                log::fatal(&format!(
                    "qmgr_message_alloc: {id}: remove defer {id}: {}",
                    errno_text(&e)
                ));
            }
        }
        drop(file);
        // Move the recipients out with their buffer, and let go of the
        // buffers the shared copy no longer needs.
        let pending = VecDeque::from(std::mem::take(&mut env.recipients));
        env.warnings = Vec::new();
        let create_sec = if env.create_time > 0 {
            env.create_time
        } else {
            env.arrival_sec
        };
        // The core decides expiry and warnings in core time.
        let create_time = if create_sec > 0 {
            self.clock.from_wall(Instant(create_sec as u64 * 1000))
        } else {
            now
        };
        let warning = match env.warn_time {
            t if t > 0 => Warning::Due(self.clock.from_wall(Instant(t as u64 * 1000))),
            t if t < 0 => Warning::Sent,
            _ => Warning::None,
        };
        let sender = text(env.sender.as_deref().unwrap_or_default());
        let single_rcpt = env.single_rcpt;
        // A second copy only for a file with recipients still to read.
        let reader = (env.has_more_recipients() && !expire_on_log).then(|| env.clone());
        let reading =
            (reader.is_some() || !pending.is_empty()).then_some(Reading { reader, pending });
        let name = Name::from(id);
        let shared = Arc::new(ActiveMessage {
            queue_id: name.clone(),
            env: env.into(),
            active_arrival: timeval(wall),
        });
        self.active.insert(name.clone(), shared);
        if let Some(reading) = reading {
            self.reading.insert(name, reading);
        }
        Ok(AdmittedEnvelope {
            sender,
            create_time,
            warning,
            flags: file_flags,
            single_rcpt,
        })
    }

    fn read(&mut self, id: &str, batch: u32) -> Result<Batch, StoreError> {
        let limits = self.limits.clone();
        let path = self.site.path("active", id);
        let Some(shared) = self.active.get(id).map(|m| Arc::clone(&m)) else {
            return Err(StoreError::Gone);
        };
        let want = batch.max(1) as usize;
        let Some(reading) = self.reading.get_mut(id) else {
            // Everything read went to the core already.
            return Ok(Batch {
                recipients: Vec::new(),
                more: false,
            });
        };
        while reading.pending.len() < want {
            let Some(reader) = reading.reader.as_mut().filter(|r| r.has_more_recipients()) else {
                break;
            };
            let file = open_queue_file(&path, Access::Read, None).map_err(|e| {
                StoreError::Unusable(format!("{}: {}", path.display(), errno_text(&e)))
            })?;
            if let Err(e) = reader.refill(&file, id, &limits) {
                let warnings = e.warnings(id, &path.display().to_string());
                for w in &warnings {
                    tracing::warn!("{w}");
                }
                return Err(StoreError::Unusable(warnings.join("; ")));
            }
            reading.pending.extend(reader.recipients.drain(..));
        }
        // The redirect as the reads so far found it (a later read may meet
        // the record).
        let redirect = match &reading.reader {
            Some(reader) => reader.redirect_addr.clone(),
            None => shared.env.redirect_addr().map(<[u8]>::to_vec),
        };
        if reading
            .reader
            .as_ref()
            .is_some_and(|r| !r.has_more_recipients())
        {
            // The file is read to its end: the shared copy is enough.
            reading.reader = None;
        }
        let taken: Vec<FileRecipient> = if reading.pending.len() <= want {
            // The usual case, all that is left: take the buffer along.
            Vec::from(std::mem::take(&mut reading.pending))
        } else {
            reading.pending.drain(..want).collect()
        };
        // A redirect keeps only the first recipient; the rest are neither
        // delivered nor marked done, and the file is removed at the end.
        if redirect.is_some() {
            reading.pending = VecDeque::new();
            reading.reader = None;
        }
        let more = !reading.pending.is_empty() || reading.reader.is_some();
        if !more {
            // Nothing left to read: the admitted message keeps no reading
            // state until it completes.
            self.reading.remove(id);
        }
        // The routing fields are message-level: read them from the shared
        // copy (the envelope as admission read it).
        if let Some(target) = redirect {
            let mut taken = taken;
            taken.truncate(1);
            let target = self.resolver.rewrite_local(&target);
            for r in &mut taken {
                r.address = target.clone();
            }
            return Ok(Batch {
                recipients: self.resolve(&shared.env, taken),
                more: false,
            });
        }
        Ok(Batch {
            recipients: self.resolve(&shared.env, taken),
            more,
        })
    }

    fn discard(&mut self, id: &str, recipient: &Recipient) {
        if let Some(message) = self.active.get(id).map(|m| Arc::clone(&m)) {
            self.queued_work.insert(message.queue_id.clone());
            self.worker.send(Job::Discard {
                message,
                recipient: recipient.clone(),
                now: self.clock.wall_now(),
            });
        }
    }

    fn defer_recipients(&mut self, id: &str, recipients: &[Recipient], dsn: &Dsn) {
        if let Some(message) = self.active.get(id).map(|m| Arc::clone(&m)) {
            self.queued_work.insert(message.queue_id.clone());
            self.worker.send(Job::Defer {
                message,
                recipients: recipients.to_vec(),
                dsn: dsn.clone(),
            });
        }
    }

    fn complete(&mut self, id: &str, verdict: &Verdict, done: Completion) {
        let Some((_, message)) = self.active.remove(id) else {
            tracing::warn!("{id}: completion of a message that is not open");
            return;
        };
        self.reading.remove(id);
        let queued_work = self.queued_work.remove(id);
        // The common case, every recipient delivered and nothing to report,
        // is finished here: a hop to the worker thread would cost more than
        // the unlink itself.
        if !queued_work
            && *verdict == Verdict::Remove
            && worker::remove_if_quiet(&self.site, &message)
        {
            return;
        }
        self.worker.send(Job::Complete {
            message,
            verdict: verdict.clone(),
            now: self.clock.now(),
            done,
        });
    }

    fn completes_later(&self) -> bool {
        true
    }

    fn retry(&mut self, ids: &[oqmgr::name::Name], _now: Instant) {
        // Stamped with the wall clock, as every time stamp of the queue.
        let now = system_time(self.clock.wall_now());
        for id in ids {
            // The names come from the scheduler's memory or the state
            // file: only plain queue IDs make a path.
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                continue;
            }
            let path = self.site.path("deferred", id);
            match fs::symlink_metadata(&path) {
                Ok(m) if m.file_type().is_file() => {
                    if let Err(e) = set_next_attempt(&path, now) {
                        tracing::warn!("{id}: retry: update time stamps: {}", errno_text(&e));
                    }
                }
                _ => {}
            }
        }
    }
}

/// True for an open that failed because the name no longer holds the file
/// that was checked (a link, a directory, a FIFO or device, or another
/// file swapped in); other errors are Postfix's fatal.
fn replaced(e: &io::Error) -> bool {
    e.raw_os_error()
        .is_none_or(|code| [libc::ELOOP, libc::EISDIR, libc::ENXIO].contains(&code))
}

/// Bytes from a queue file or a daemon as text for the core, losslessly
/// ([`core_text`]: requests get the same bytes back).
fn text(bytes: &[u8]) -> String {
    core_text(bytes.to_vec())
}

#[cfg(test)]
#[path = "dirstore_tests.rs"]
mod tests;
