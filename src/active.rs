//! The active queue and its supervisor (Postfix: `qmgr_active.c`, the feed
//! and trigger parts of `qmgr.c`, the accounting of `qmgr_message.c`).
//!
//! The [`Supervisor`] decides which queue file enters memory next, keeps the
//! active queue within `qmgr_message_active_limit` messages and
//! `qmgr_message_recipient_limit` recipients, turns trigger bytes into scan
//! requests, routes admitted recipients into delivery requests, and decides
//! each finished message's fate.
//!
//! # Feeding
//! One file is admitted at a time. While there is room, the incoming and
//! deferred scans take turns, one admission each, so a deferred backlog
//! cannot starve new mail nor the reverse; when the active queue is full the
//! next turn goes to incoming (Postfix: `qmgr_loop`).
//!
//! # Completion
//! A finished message leaves the core with [`Effect::Complete`]; carrying
//! that out (bounce and trace flushes, the move to `deferred/` or the
//! removal) is the host's, and may take long. A supervisor made
//! [`Supervisor::counting_completions`] keeps counting such a message
//! against `qmgr_message_active_limit` until the host reports it done with
//! [`Msg::Completed`], so the limit bounds what is held in memory and in
//! `active/` however slow the completions are (Postfix does them in its
//! own loop, so its limit bounds them too). The simulator's store
//! completes at once and does not report.
//!
//! # Operator commands
//! The supervisor keeps the operator's suspensions ([`crate::control`]):
//! it routes new entries of a suspended destination to `retry` itself,
//! tells the transports to hold their destinations back, defers what they
//! hand back, and retries exactly those files when the suspension ends. It
//! also describes itself for `oqmgr ctl` ([`Supervisor::live`]).
//!
//! # Parts
//! Feeding (triggers, scans, admission turns) is in `active_feed.rs`, the
//! operator's commands and [`Supervisor::live`] in `active_operator.rs`,
//! and the adaptive policy's hooks in `active_adaptive.rs`.
//!
//! # Invariants
//! - at most one admission (scan request, admit or refill answer) in flight;
//! - `recipient_count` equals the recipients held in unfinished entries;
//! - `completing` counts `Complete` effects not yet reported done (always 0
//!   when not counting).
//!
//! # Compatibility
//! `qmgr_message_active_limit`, `qmgr_message_recipient_limit`,
//! `qmgr_fudge_factor`, `queue_run_delay`, the `A D F I W` triggers.

#[path = "active_adaptive.rs"]
mod adaptive;
#[path = "active_feed.rs"]
mod feed;
#[path = "active_operator.rs"]
mod operator;

use std::collections::btree_map::Entry as Slot;
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::adaptive::backlog::Backlog;
use crate::adaptive::SchedulingPolicy;
use crate::control::Control;
use crate::destination::reroute;
use crate::effect::{Addr, Effect, Effects, Msg, Timer};
use crate::entry::{Entry, EntryId, MessageId};
use crate::message::{Message, MessageInfo, Verdict};
use crate::name::Name;
use crate::params::{GlobalParams, Params};
use crate::route::{Planner, Routed};
use crate::scan::{QueueName, Scan, ScanFlags};
use crate::time::Instant;
use crate::trace::TraceEvent;

/// Where the one-at-a-time admission stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Feed {
    /// Nothing in flight.
    Idle,
    /// Asked `queue` for its next file; `other_tried` when the other scan
    /// already came up empty in this turn.
    Asking {
        /// The scan asked.
        queue: QueueName,
        /// The other scan had nothing this turn.
        other_tried: bool,
    },
    /// A file is being read and resolved.
    Admitting(QueueName),
}

/// The supervisor's state (Postfix: the globals of `qmgr.c` and
/// `qmgr_active.c`).
#[derive(Debug)]
pub struct Supervisor {
    /// All parameters, for per-transport recipient limits.
    params: Params,
    /// Global parameters, shared with the other entities.
    global: Arc<GlobalParams>,
    /// Admitted messages by number. Numbers arrive in order, which leaves
    /// B-tree nodes about half full: what sits in them is small (the
    /// envelope facts are boxed), and no box of its own is allocated and
    /// chased per message.
    messages: BTreeMap<MessageId, Message>,
    /// Recipients in unfinished entries.
    recipient_count: u64,
    /// Next message number.
    next_message: u64,
    /// Next entry number.
    next_entry: u64,
    /// The incoming scan.
    incoming: Scan,
    /// The deferred scan.
    deferred: Scan,
    /// Which scan gets the next turn.
    first: QueueName,
    /// Admission in flight.
    feed: Feed,
    /// Per-transport recipient limits, resolved on first use.
    limits: BTreeMap<Name, u32>,
    /// Routing buffers, kept between batches.
    planner: Planner,
    /// The host reports completions ([`Msg::Completed`]).
    counting_completions: bool,
    /// Completions handed to the host and not reported done yet.
    completing: u64,
    /// Adaptive policy: the deferred files remembered by destination
    /// (`None` under oqmgr's).
    backlog: Option<Box<Backlog>>,
    /// Adaptive policy: per-transport concurrency limits, resolved on
    /// first use.
    bounds: BTreeMap<Name, u32>,
    /// The operator's suspensions and what they deferred.
    control: Control,
    /// Files removed, deferred and expired since start.
    totals: [u64; 3],
    /// When the last incoming and deferred scans ended.
    scan_done: [Option<Instant>; 2],
}

impl Supervisor {
    /// A supervisor with an empty active queue.
    pub fn new(params: Params) -> Supervisor {
        let global = Arc::new(params.global.clone());
        let backlog = (global.scheduling_policy == SchedulingPolicy::Adaptive)
            .then(|| Box::new(Backlog::default()));
        Supervisor {
            params,
            global,
            messages: BTreeMap::new(),
            recipient_count: 0,
            next_message: 0,
            next_entry: 0,
            incoming: Scan::new(QueueName::Incoming),
            deferred: Scan::new(QueueName::Deferred),
            first: QueueName::Incoming,
            feed: Feed::Idle,
            limits: BTreeMap::new(),
            planner: Planner::default(),
            counting_completions: false,
            completing: 0,
            backlog,
            bounds: BTreeMap::new(),
            control: Control::default(),
            totals: [0; 3],
            scan_done: [None; 2],
        }
    }

    /// A supervisor whose host reports every carried-out completion with
    /// [`Msg::Completed`]: until then the message counts against the
    /// active-queue limit.
    pub fn counting_completions(mut self) -> Supervisor {
        self.counting_completions = true;
        self
    }

    /// The shared global parameters.
    pub fn global(&self) -> &Arc<GlobalParams> {
        &self.global
    }

    /// All parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Messages and recipients in memory.
    pub fn load(&self) -> (usize, u64) {
        (self.messages.len(), self.recipient_count)
    }

    /// Startup (Postfix: `qmgr_post_init`): scan both queues at once and
    /// arm the periodic deferred scan.
    pub fn start(&mut self, now: Instant, out: &mut Effects) {
        self.request(QueueName::Incoming, ScanFlags::START, out);
        self.request(QueueName::Deferred, ScanFlags::START, out);
        self.arm_queue_run(now, out);
        self.kick(now, out);
    }

    /// Handles one message.
    pub fn handle(&mut self, now: Instant, msg: Msg, out: &mut Effects) {
        match msg {
            Msg::Trigger(bytes) => self.trigger(&bytes, out),
            Msg::Timer(Timer::QueueRun) => {
                self.request(QueueName::Deferred, ScanFlags::START, out);
                self.arm_queue_run(now, out);
            }
            Msg::ScanResult { queue, id } => self.scan_result(now, queue, id, out),
            Msg::Admitted {
                info,
                recipients,
                more,
            } => self.admitted(now, info, recipients, more, out),
            Msg::Refilled {
                message,
                recipients,
                more,
                read_error,
            } => {
                let msg = self
                    .messages
                    .get_mut(&message)
                    .unwrap_or_else(|| panic!("refill of unknown message {message}"));
                assert!(msg.refilling, "refill of {message} that was not asked for");
                msg.more = more && !read_error;
                msg.deferred |= read_error;
                msg.refilling = false;
                let (flags, single) = (msg.info.flags, msg.info.single_rcpt);
                let qid = msg.info.id.clone();
                let active = self.messages.len();
                let (entries, _) =
                    self.route(message, &qid, flags, single, recipients, active, false, out);
                let msg = self.messages.get_mut(&message).expect("found above");
                msg.refcount += entries;
                if msg.refcount == 0 {
                    self.complete(now, message, out);
                }
            }
            Msg::AdmitFailed { id: _ } => {
                // The number was not used: give it to the next file, so
                // message numbers count admitted files only.
                self.next_message -= 1;
                if let Feed::Admitting(queue) = self.feed {
                    // The scan moves on; keep the same turn.
                    self.first = queue;
                }
                self.feed = Feed::Idle;
            }
            Msg::EntryDone {
                message,
                recipients,
                deferred,
            } => self.entry_done(now, message, recipients, deferred, out),
            Msg::Completed => self.completing = self.completing.saturating_sub(1),
            Msg::SiteStatus { dest, dead } => self.site_status(now, &dest, dead),
            Msg::DeferNow { entry, dsn } => {
                out.trace(|| TraceEvent::DeferNow {
                    message: entry.message,
                    recipients: entry.recipients.len(),
                    reason: dsn.to_string(),
                });
                let n = entry.recipients.len() as u32;
                out.push(Effect::DeferRecipients {
                    message: entry.message,
                    recipients: entry.recipients,
                    dsn: *dsn,
                });
                self.entry_done(now, entry.message, n, true, out);
            }
            Msg::Control(command) => self.command(now, command, out),
            Msg::Timer(Timer::SuspensionEnd(generation)) => {
                self.suspension_end(now, generation, out)
            }
            Msg::Withdrawn {
                dest,
                nexthop,
                entries,
            } => self.withdrawn(dest, nexthop, entries, out),
            Msg::FlushReport {
                dest,
                found,
                messages,
            } => self.flush_report(dest, found, messages, out),
            other => panic!("supervisor got unexpected {other:?}"),
        }
        self.kick(now, out);
    }

    fn admitted(
        &mut self,
        now: Instant,
        info: Box<MessageInfo>,
        recipients: Vec<Routed>,
        more: bool,
        out: &mut Effects,
    ) {
        let id = info.message;
        let (flags, single) = (info.flags, info.single_rcpt);
        {
            let Feed::Admitting(from) = self.feed else {
                panic!("admission of {id} that was not asked for");
            };
            self.feed = Feed::Idle;
            // Alternate while there is room; a full queue hands the next
            // turn to new mail.
            self.first = if self.has_room() {
                from.other()
            } else {
                QueueName::Incoming
            };
            out.trace(|| TraceEvent::Admit {
                message: id,
                id: info.id.to_string(),
                from,
                recipients: recipients.len(),
            });
            // Routed before it is filed, so that it is filed with its
            // reference count: one search of a million-message map, not a
            // lookup, an insertion and a lookup again.
            // The message counts itself, as in Postfix, where it is in the
            // active queue before its entries are made.
            let active = self.messages.len() + 1;
            let qid = info.id.clone();
            let (entries, postponed) =
                self.route(id, &qid, flags, single, recipients, active, !more, out);
            match self.messages.entry(id) {
                Slot::Vacant(slot) => slot.insert(Message {
                    info,
                    from,
                    refcount: entries,
                    // Returned on its defer log: it counts as deferred.
                    deferred: postponed || flags.contains(ScanFlags::EXPIRE_LOGGED),
                    more,
                    refilling: false,
                    finished_some: false,
                    postponed,
                }),
                Slot::Occupied(_) => panic!("{id} admitted twice"),
            };
            if entries == 0 {
                self.complete(now, id, out);
            }
        }
    }

    /// Turns a batch of resolved recipients into delivery requests and sends
    /// them to their transports; returns how many, by which the caller
    /// raises the message's reference count (and completes it if none
    /// resulted). Every batch is routed with `flags`, those of the
    /// admission (postqueue -f's FLUSH_DFXP must hold for every batch, not
    /// just the first), and `single` (one recipient per request, for
    /// VERP) the message's; the caller passes them as it has the message
    /// at hand.
    ///
    /// `may_postpone` says the message was just admitted with nothing more
    /// on file: the adaptive policy may postpone it instead
    /// (`active_adaptive.rs`); the answer's second half says it did.
    #[allow(clippy::too_many_arguments)]
    fn route(
        &mut self,
        id: MessageId,
        qid: &Name,
        flags: ScanFlags,
        single: bool,
        recipients: Vec<Routed>,
        active: usize,
        may_postpone: bool,
        out: &mut Effects,
    ) -> (u32, bool) {
        let (params, limits) = (&self.params, &mut self.limits);
        let mut limits = |t: &str| recipient_limit(params, limits, t);
        self.planner
            .plan(recipients, flags, single, &self.global, &mut limits);
        if may_postpone && self.planner.out.discards.is_empty() {
            let entries = std::mem::take(&mut self.planner.out.entries);
            let postponed = self.postpone(id, qid, flags, &entries, out);
            self.planner.out.entries = entries;
            if postponed {
                self.planner.out.entries.clear();
                return (0, true);
            }
        }
        let planned = &mut self.planner.out;
        for recipient in planned.discards.drain(..) {
            out.trace(|| TraceEvent::Discard {
                message: id,
                address: recipient.address.clone(),
            });
            out.push(Effect::Discard {
                message: id,
                recipient,
            });
        }
        let entries = planned.entries.len() as u32;
        let active = u32::try_from(active).unwrap_or(u32::MAX);
        for pe in planned.entries.drain(..) {
            self.next_entry += 1;
            self.recipient_count += pe.recipients.len() as u64;
            if let Some(b) = self.backlog.as_mut() {
                b.routed(id, &pe.dest);
            }
            let entry = Entry {
                id: EntryId(self.next_entry),
                message: id,
                recipients: pe.recipients,
            };
            if !self.control.transports.contains(&pe.dest.transport) {
                self.control.transports.insert(pe.dest.transport.clone());
            }
            // An operator's suspension: deferred without an attempt.
            if let Some(s) = self.control.covering(&pe.dest) {
                let (target, dsn) = (s.target.clone(), s.dsn());
                self.control.note_held(&target, qid);
                reroute(&pe.dest, entry, &dsn, active, out);
                continue;
            }
            out.send(
                Addr::Transport(pe.dest.transport.clone()),
                Msg::Enqueue {
                    queue: pe.dest.queue,
                    nexthop: pe.nexthop,
                    entry,
                    active,
                },
            );
        }
        (entries, false)
    }

    fn entry_done(
        &mut self,
        now: Instant,
        id: MessageId,
        recipients: u32,
        deferred: bool,
        out: &mut Effects,
    ) {
        self.recipient_count -= u64::from(recipients);
        let batch = self.batch_limit();
        let refill_below = u64::from(batch).saturating_sub(100);
        let Some(msg) = self.messages.get_mut(&id) else {
            panic!("entry done for unknown message {id}");
        };
        assert!(msg.refcount > 0, "message {id} refcount underflow");
        msg.refcount -= 1;
        msg.deferred |= deferred;
        msg.finished_some |= !deferred;
        // Read more recipients early when memory allows, so a big list keeps
        // its destinations busy (Postfix: the refill in `qmgr_entry_done`).
        if msg.more && !msg.refilling && msg.refcount > 0 && self.recipient_count < refill_below {
            msg.refilling = true;
            out.push(Effect::Refill { message: id, batch });
        }
        if msg.refcount == 0 {
            // As `complete`, with the message at hand: a million-message
            // map is searched once more only to remove it.
            if msg.more {
                refill(msg, id, batch, out);
                return;
            }
            let msg = self.messages.remove(&id).expect("present above");
            self.finish(now, id, &msg, out);
        }
    }

    /// The last entry finished: read more recipients, or decide the file's
    /// fate (Postfix: `qmgr_active_done`).
    fn complete(&mut self, now: Instant, id: MessageId, out: &mut Effects) {
        let batch = self.batch_limit();
        let msg = self
            .messages
            .get_mut(&id)
            .expect("complete of unknown message");
        if msg.more {
            refill(msg, id, batch, out);
            return;
        }
        let msg = self.messages.remove(&id).expect("present above");
        self.finish(now, id, &msg, out);
    }

    /// Decides the fate of a complete message taken out of the active
    /// queue (Postfix: the tail of `qmgr_active_done`).
    fn finish(&mut self, now: Instant, id: MessageId, msg: &Message, out: &mut Effects) {
        if self.counting_completions {
            self.completing += 1;
        }
        let verdict = msg.verdict(now, &self.global);
        let qid = &msg.info.id;
        self.note_finished(now, id, msg, &verdict);
        if msg.confirm_delay_cleared(&self.global) {
            out.trace(|| TraceEvent::DelayCleared {
                message: id,
                id: qid.to_string(),
            });
            out.push(Effect::DelayCleared(id));
        }
        match &verdict {
            Verdict::Remove => self.totals[0] += 1,
            Verdict::Defer { .. } => {
                self.totals[1] += 1;
                self.control.note_deferred(id, qid);
            }
            Verdict::Expire { .. } => self.totals[2] += 1,
        }
        match &verdict {
            Verdict::Remove => out.trace(|| TraceEvent::Remove {
                message: id,
                id: qid.to_string(),
            }),
            Verdict::Defer { until, warn } => {
                if *warn {
                    out.trace(|| TraceEvent::Warn {
                        message: id,
                        id: qid.to_string(),
                    });
                }
                out.trace(|| TraceEvent::Defer {
                    message: id,
                    id: qid.to_string(),
                    until: *until,
                })
            }
            Verdict::Expire { status } => out.trace(|| TraceEvent::Expire {
                message: id,
                id: qid.to_string(),
                status,
            }),
        }
        out.push(Effect::Complete {
            message: id,
            verdict,
        });
    }
}

/// A transport's recipients-per-delivery limit, resolved on first use.
fn recipient_limit(params: &Params, limits: &mut BTreeMap<Name, u32>, transport: &str) -> u32 {
    if let Some(&limit) = limits.get(transport) {
        return limit;
    }
    let (tp, _warnings) = params.transport(transport);
    limits.insert(Name::from(transport), tp.dest_recipient_limit);
    tp.dest_recipient_limit
}

/// Asks for the next batch of a message's recipients, unless already asked.
fn refill(msg: &mut Message, id: MessageId, batch: u32, out: &mut Effects) {
    if !msg.refilling {
        msg.refilling = true;
        out.push(Effect::Refill { message: id, batch });
    }
}

#[cfg(test)]
#[path = "active_tests.rs"]
mod tests;
