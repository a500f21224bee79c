//! worker - queue-file work that waits on other Postfix daemons, done off
//! the actors' thread, in order per file (Postfix: `qmgr_active.c` `qmgr_active_done*`,
//! `qmgr_defer.c`, `qmgr_message.c`'s double-bounce discard).
//!
//! Jobs, in the order the scheduler produced them:
//! - [`Job::Discard`]: a double-bounce recipient: log it `status=sent
//!   (undeliverable postmaster notification discarded)` and mark it done.
//! - [`Job::Defer`]: recipients deferred without an attempt (a dead
//!   destination or transport, a request an agent rejected): handed to
//!   the `retry` service (the error(8) agent) with `"<dsn> <reason>"` as
//!   next hop, exactly as oqmgr moves them to its `retry` transport, so
//!   the log line and the defer log are the error agent's own. If `retry` cannot be reached, or
//!   answers without recording anything (it rejected the request: see
//!   [`super::bridge`]), the recipients are appended to the defer log here
//!   and logged with relay `none`.
//! - [`Job::Complete`]: the completion pipeline of a message whose last
//!   entry finished: bounce flush, trace flush, then expiry (return to
//!   sender through `defer`) or a delay warning, then the move to
//!   `deferred/` with the next-attempt stamp, or removal.
//!
//! The inbox needs no bound of its own: each `Complete` job carries the
//! message's [`Completion`], dropped when the job is over, and the
//! supervisor counts the message against `qmgr_message_active_limit` until
//! then, so at most that many completions (and the discards and deferrals
//! of admitted messages before them) are ever queued here.
//!
//! In order per file, because a defer record must reach the defer log
//! before the message's completion decides whether to return or warn
//! about it; files in parallel (at most [`CONCURRENCY`] jobs), because one
//! at a time makes every completion wait for the bounce-daemon round trips
//! of the ones before it (a burst of deferrals for a dead destination
//! queues up behind one slow flush). Off the actors' thread, because the bounce daemon may take long (Postfix waits
//! up to `qmgr_daemon_timeout` for it).
//!
//! # Failure
//! A failed bounce or trace flush keeps the file (`<id>: status=deferred
//! (bounce failed)`, `(verp-bounce failed)`, `(trace failed)`, `(delay
//! warning failed)` as oqmgr words them, and a deferral by
//! `minimal_backoff_time`), never removes mail whose notices were not
//! sent. When the bounce, defer, trace or retry service cannot be reached,
//! hangs up or answers no status, a warning of ours names it and says what
//! happened (`<id>: bounce service failure: premature end-of-input on
//! private/bounce socket`); oqmgr logs only the deferral. A queue directory or file
//! that cannot be changed (stamp, rename, removal, in-place record edit)
//! stops the daemon with Postfix's fatal, as oqmgr does: master starts a
//! new one later, which retries the file from `active/`. Queue files are
//! opened only through [`crate::postfix::mail_open_ok::open_queue_file`].

use std::collections::HashMap;
use std::fs;
use std::io;
use std::rc::Rc;
use std::sync::Arc;

use tokio::task::JoinHandle;

use oqmgr::entry::{Dsn, Recipient};
use oqmgr::message::Verdict;
use oqmgr::time::{Duration, Instant};

use super::active_table::{loggable, wire_recipient, ActiveMessage};
use super::bridge::{rejected, rejection_warning};
use super::dirstore::{rename_into, system_time};
use super::recipient_log::{ipc_failure, RecipientLog};
use super::site::Site;
use crate::clock::Clock;
use crate::postfix::attr::WireDsn;
use crate::postfix::bounce::{self, bounce_flags, BounceMessage, BounceRequest};
use crate::postfix::deliver_request::{deliver, DeliveryError, DeliveryRequest, EntryContext};
use crate::postfix::log::{self, errno_text};
use crate::postfix::mail_open_ok::{mail_open_ok, open_queue_file, Access};
use crate::postfix::queue_file::{
    DSN_NOTIFY_SUCCESS, TRACE_FLAGS_MASK, TRACE_MTA_VRFY, TRACE_RECORD, TRACE_REC_DLY_SENT,
    TRACE_USR_VRFY,
};
use crate::postfix::queue_file_write::{kill_record, rewrite_warn_time, set_next_attempt};
use crate::queue_store::Completion;

/// One piece of work.
pub enum Job {
    /// Log a double-bounce recipient as discarded and mark it done.
    Discard {
        /// The message.
        message: Arc<ActiveMessage>,
        /// The recipient.
        recipient: Recipient,
        /// When the scheduler decided it (wall clock, for the log line).
        now: Instant,
    },
    /// Defer recipients without an attempt.
    Defer {
        /// The message.
        message: Arc<ActiveMessage>,
        /// The recipients.
        recipients: Vec<Recipient>,
        /// Why.
        dsn: Dsn,
    },
    /// Finish a message.
    Complete {
        /// The message.
        message: Arc<ActiveMessage>,
        /// The scheduler's verdict.
        verdict: Verdict,
        /// When the last entry finished (core time, as the verdict's).
        now: Instant,
        /// Dropped when the job is over (done, failed or lost): the
        /// supervisor counts the message until then.
        done: Completion,
    },
}

/// Jobs of different files run at the same time, at most this many (each
/// may hold a connection to the bounce daemon or the `retry` agent; the
/// bound keeps those within what master's process limits serve).
const CONCURRENCY: usize = 16;

/// Finished entries are dropped from the per-file table once it grows past
/// this, so its upkeep stays cheap.
const PRUNE_AT: usize = 256;

/// A handle on the worker thread.
#[derive(Clone)]
pub struct Worker {
    /// The thread's inbox.
    inbox: tokio::sync::mpsc::UnboundedSender<Job>,
}

impl Worker {
    /// Starts the worker for `site`. `clock` reads the time for log lines
    /// written after a wait and turns deadlines into file stamps.
    pub fn start(site: Arc<Site>, clock: Clock) -> io::Result<Worker> {
        let (inbox, mut jobs) = tokio::sync::mpsc::unbounded_channel::<Job>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("completion".into())
            .spawn(move || {
                let local = tokio::task::LocalSet::new();
                local.block_on(&runtime, async move {
                    let slots = Rc::new(tokio::sync::Semaphore::new(CONCURRENCY));
                    // The last job of each message still running: the next
                    // one for the same file waits for it.
                    let mut tails: HashMap<String, JoinHandle<()>> = HashMap::new();
                    while let Some(job) = jobs.recv().await {
                        let id = job.queue_id().to_string();
                        let previous = tails.remove(&id);
                        let (site, slots) = (Arc::clone(&site), Rc::clone(&slots));
                        let handle = tokio::task::spawn_local(async move {
                            if let Some(previous) = previous {
                                let _ = previous.await;
                            }
                            let Ok(_slot) = slots.acquire().await else {
                                return;
                            };
                            run(&site, job, &clock).await;
                        });
                        tails.insert(id, handle);
                        if tails.len() > PRUNE_AT {
                            tails.retain(|_, h| !h.is_finished());
                        }
                    }
                });
            })?;
        Ok(Worker { inbox })
    }

    /// Queues a job. If the thread is gone (it only ends with the process)
    /// the job is dropped with an error: the file stays in `active/` and the
    /// next start retries it.
    pub fn send(&self, job: Job) {
        if self.inbox.send(job).is_err() {
            tracing::error!("completion worker is gone; file left in active");
        }
    }
}

impl Job {
    /// The queue ID of the file the job is for.
    fn queue_id(&self) -> &str {
        match self {
            Job::Discard { message, .. }
            | Job::Defer { message, .. }
            | Job::Complete { message, .. } => &message.queue_id,
        }
    }
}

/// Runs one job.
async fn run(site: &Site, job: Job, clock: &Clock) {
    match job {
        Job::Discard {
            message,
            recipient,
            now,
        } => discard(site, &message, &recipient, now),
        Job::Defer {
            message,
            recipients,
            dsn,
        } => defer(site, &message, recipients, &dsn, clock).await,
        Job::Complete {
            message,
            verdict,
            now,
            done,
        } => {
            complete(site, &message, &verdict, now, clock).await;
            drop(done);
        }
    }
}

/// A double-bounce recipient: logged as sent ("undeliverable postmaster
/// notification discarded") and marked done, by the queue manager itself.
fn discard(site: &Site, m: &ActiveMessage, r: &Recipient, now: Instant) {
    let dsn = Dsn::new("2.0.0", "undeliverable postmaster notification discarded");
    let record = RecipientLog::new(site, m, "none", now);
    record.log(r, &dsn, "sent", now);
    if let Err(e) = record.mark_done(r) {
        update_failed(&site.path("active", &m.queue_id), &e);
    }
}

/// The wire DSN of a scheduler reason.
fn wire_dsn(dsn: &Dsn) -> WireDsn {
    WireDsn::simple(&dsn.status, &dsn.reason)
}

async fn defer(
    site: &Site,
    m: &ActiveMessage,
    recipients: Vec<Recipient>,
    dsn: &Dsn,
    clock: &Clock,
) {
    let nexthop = format!("{} {}", dsn.status, dsn.reason);
    let ctx = EntryContext {
        queue_id: m.queue_id.as_bytes(),
        nexthop: nexthop.as_bytes(),
        conn_flags: 0,
        active_arrival: m.active_arrival,
        smtputf8_enable: site.smtputf8_enable,
    };
    let wire: Vec<_> = recipients.iter().map(wire_recipient).collect();
    let request = DeliveryRequest::for_entry(&m.env.envelope(), &ctx, wire);
    let result = deliver(
        &site.private("retry"),
        &request,
        site.dialect,
        site.ipc_timeout,
    )
    .await;
    match result {
        Ok(reply) => {
            // The error agent defers every recipient: "try again" with
            // nothing in the defer logfile means it rejected the request.
            let probe = m.env.trace_flags & (TRACE_MTA_VRFY | TRACE_USR_VRFY) != 0;
            if reply.status == 0 || probe || !rejected(site, &m.queue_id, &recipients) {
                return;
            }
            tracing::warn!(
                "{}",
                rejection_warning("retry", &m.queue_id, recipients.len())
            );
        }
        Err(DeliveryError::Transport(e) | DeliveryError::Crash(e)) => tracing::warn!(
            "{}: retry service failure: {}",
            m.queue_id,
            ipc_failure("private/retry", &e)
        ),
    }
    // No retry agent: write the defer records and the log lines here.
    let (wdsn, _) = bounce::defer_dsn(wire_dsn(dsn));
    let now = clock.wall_now();
    let record = RecipientLog::new(site, m, "none", now);
    for r in &recipients {
        if record.append("defer", r, wdsn.clone()).await {
            record.log(r, dsn, "deferred", now);
        }
    }
}

/// The message-level fields of a bounce-daemon request.
fn info(m: &ActiveMessage, flags: u32) -> BounceMessage {
    BounceMessage {
        flags,
        queue_name: b"active".to_vec(),
        queue_id: m.queue_id.as_bytes().to_vec(),
        encoding: m.env.encoding.clone(),
        sendopts: m.env.smtputf8.max(0) as u32,
        sender: m.env.sender.clone().unwrap_or_default(),
        dsn_envid: m.env.dsn_envid.clone(),
        dsn_ret: m.env.dsn_ret.max(0) as u32,
    }
}

/// Sends one request for message `id`; true on success (status 0). A
/// daemon that cannot be reached, hangs up or answers something that is
/// not a status is named in a warning: oqmgr only logs the deferral that
/// follows, which cannot tell a dead service from a refusal. (A status
/// other than 0 is an answer: the bounce daemon logs its own reason.)
async fn ask(site: &Site, id: &str, service: &str, request: &BounceRequest) -> bool {
    match bounce::send(
        &site.queue_dir,
        service,
        request,
        site.dialect,
        site.ipc_timeout,
    )
    .await
    {
        Ok(status) => status == 0,
        Err(e) => {
            tracing::warn!(
                "{id}: {service} service failure: {}",
                ipc_failure(&format!("private/{service}"), &e)
            );
            false
        }
    }
}

/// What oqmgr calls a failed flush in `status=deferred (<what> failed)`.
fn flush_name(request: &BounceRequest) -> &'static str {
    match request {
        BounceRequest::Verp { .. } => "verp-bounce",
        BounceRequest::Warn(_) => "delay warning",
        BounceRequest::Trace(_) => "trace",
        _ => "bounce",
    }
}

/// The completion of a fully delivered message that needs no notice: no
/// bounce log, no trace flush. Removes the file and returns true; returns
/// false, having done nothing, when the full pipeline is needed.
pub fn remove_if_quiet(site: &Site, m: &ActiveMessage) -> bool {
    if needs_trace(m) || fs::symlink_metadata(site.path("bounce", &m.queue_id)).is_ok() {
        return false;
    }
    remove(site, &m.queue_id);
    true
}

/// True when the completion must send a trace flush (success notices,
/// verbose delivery, delay cleared).
fn needs_trace(m: &ActiveMessage) -> bool {
    m.env.trace_flags & (TRACE_USR_VRFY | TRACE_RECORD | TRACE_REC_DLY_SENT) != 0
        // The `C` record keeps NOTIFY bits shifted left by one
        // (QMGR_READ_FLAG_NOTIFY_SUCCESS): bit 2 would be NOTIFY=NEVER.
        || m.env.read_flags & (DSN_NOTIFY_SUCCESS << 1) != 0
}

/// Unlinks an `active/` file and logs it as oqmgr does.
fn remove(site: &Site, id: &str) {
    match fs::remove_file(site.path("active", id)) {
        Ok(()) => tracing::info!("{id}: removed"),
        Err(e) => fatal_unless_gone(
            &e,
            &format!(
                "qmgr_active_done_3_generic: remove {id} from active: {}",
                errno_text(&e)
            ),
        ),
    }
}

/// Postfix's answer to a queue directory it cannot change: a fatal (master
/// starts a new queue manager later, which retries the file from
/// `active/`), except for a file already gone, which is a warning.
fn fatal_unless_gone(e: &io::Error, text: &str) {
    if e.kind() != io::ErrorKind::NotFound {
        log::fatal(text);
    }
    tracing::warn!("{text}");
}

/// A failed in-place edit of a queue file: Postfix's fatal.
fn update_failed(path: &std::path::Path, e: &io::Error) {
    log::fatal(&format!(
        "update queue file {}: {}",
        path.display(),
        errno_text(e)
    ));
}

async fn complete(site: &Site, m: &ActiveMessage, verdict: &Verdict, now: Instant, clock: &Clock) {
    let id = m.queue_id.as_str();
    let active = site.path("active", id);
    let mut deferred = !matches!(verdict, Verdict::Remove);
    // 1. Bounce flush: hard failures the agents logged go back to the sender.
    let bounce_log = site.path("bounce", id);
    if let Ok(meta) = fs::symlink_metadata(&bounce_log) {
        if meta.len() == 0 {
            if let Err(e) = fs::remove_file(&bounce_log) {
                log::fatal(&format!("remove bounce {id}: {}", errno_text(&e)));
            }
        } else {
            let request = match (&m.env.verp_delims, site.disable_verp_bounces) {
                (Some(d), false) => BounceRequest::Verp {
                    info: info(m, bounce_flags::NONE),
                    delimiters: d.clone(),
                },
                _ => BounceRequest::Flush(info(m, bounce_flags::NONE)),
            };
            if !ask(site, id, "bounce", &request).await {
                tracing::info!("{id}: status=deferred ({} failed)", flush_name(&request));
                deferred = true;
            }
        }
    }
    // 2. A deferred file an agent made unreadable is corrupt.
    if deferred {
        if let Err(refusal) = mail_open_ok(&active) {
            if let Some(w) = refusal.warning(&active) {
                tracing::warn!("{w}");
            }
            match rename_into(&active, &site.path("corrupt", id)) {
                Ok(()) => tracing::warn!(
                    "saving corrupt file \"{id}\" from queue \"active\" to queue \"corrupt\""
                ),
                Err(e) if e.kind() != io::ErrorKind::NotFound => log::fatal(&format!(
                    "qmgr_active_corrupt: save corrupt file queue active id {id}: {}",
                    errno_text(&e)
                )),
                Err(_) => {}
            }
            return;
        }
    }
    // 4. Trace flush: success notices, verbose delivery, delay cleared.
    let trace_flags = m.env.trace_flags;
    if needs_trace(m) {
        let request = BounceRequest::Trace(info(m, (trace_flags & TRACE_FLAGS_MASK) as u32));
        if ask(site, id, "trace", &request).await {
            if m.env.trace_flags_offset > 0 {
                let killed = open_queue_file(&active, Access::Write, None)
                    .and_then(|f| kill_record(&f, m.env.trace_flags_offset));
                if let Err(e) = killed {
                    update_failed(&active, &e);
                }
            }
        } else {
            tracing::info!("{id}: status=deferred (trace failed)");
            deferred = true;
        }
    }
    // 5. Expiry or a delay warning.
    let mut until = now + Duration::from_millis(site.minimal_backoff.as_millis() as u64);
    match verdict {
        Verdict::Expire { status } => {
            let sender = loggable(m.env.sender.as_deref().unwrap_or_default());
            tracing::info!("{id}: from=<{sender}>, status={status}, returned to sender");
            let request = match (&m.env.verp_delims, site.disable_verp_bounces) {
                (Some(d), false) => BounceRequest::Verp {
                    info: info(m, bounce_flags::DELRCPT),
                    delimiters: d.clone(),
                },
                _ => BounceRequest::Flush(info(m, bounce_flags::DELRCPT)),
            };
            deferred = !ask(site, id, "defer", &request).await;
            if deferred {
                tracing::info!("{id}: status=deferred ({} failed)", flush_name(&request));
            }
        }
        Verdict::Defer { until: at, warn } => {
            until = *at;
            if *warn {
                let warned = ask(
                    site,
                    id,
                    "defer",
                    &BounceRequest::Warn(info(m, bounce_flags::NONE)),
                )
                .await;
                if warned && m.env.warn_offset > 0 {
                    let rewritten = open_queue_file(&active, Access::Write, None)
                        .and_then(|f| rewrite_warn_time(&f, m.env.warn_offset, -1));
                    if let Err(e) = rewritten {
                        update_failed(&active, &e);
                    }
                } else if !warned {
                    tracing::info!("{id}: status=deferred (delay warning failed)");
                }
            }
        }
        Verdict::Remove => {}
    }
    // 6. Deferred: stamp and move; else remove.
    if deferred {
        // Stamped as far ahead of the wall clock as the deadline is ahead
        // of core time.
        if let Err(e) = set_next_attempt(&active, system_time(clock.to_wall(until))) {
            if e.kind() != io::ErrorKind::NotFound {
                log::fatal(&format!(
                    "qmgr_active_defer: update {} time stamps: {}",
                    active.display(),
                    errno_text(&e)
                ));
            }
        }
        if let Err(e) = rename_into(&active, &site.path("deferred", id)) {
            fatal_unless_gone(
                &e,
                &format!(
                    "qmgr_active_defer: rename {id} from active to deferred: {}",
                    errno_text(&e)
                ),
            );
        }
    } else {
        remove(site, id);
    }
}

#[cfg(test)]
#[path = "worker_tests.rs"]
mod tests;
