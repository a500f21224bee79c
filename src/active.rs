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
//! # Invariants
//! - at most one admission (scan request, admit or refill answer) in flight;
//! - `recipient_count` equals the recipients held in unfinished entries;
//! - `completing` counts `Complete` effects not yet reported done (always 0
//!   when not counting).
//!
//! # Compatibility
//! `qmgr_message_active_limit`, `qmgr_message_recipient_limit`,
//! `qmgr_fudge_factor`, `queue_run_delay`, the `A D F I W` triggers.

use std::collections::btree_map::Entry as Slot;
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::effect::{Addr, Effect, Effects, Msg, Timer};
use crate::entry::{Entry, EntryId, MessageId};
use crate::message::{Message, MessageInfo, Verdict};
use crate::name::Name;
use crate::params::{GlobalParams, Params};
use crate::route::{Planner, Routed};
use crate::scan::{QueueName, Scan, ScanFlags};
use crate::time::Instant;
use crate::trace::TraceEvent;
use crate::trigger::{render, TriggerRequest};

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
}

impl Supervisor {
    /// A supervisor with an empty active queue.
    pub fn new(params: Params) -> Supervisor {
        let global = Arc::new(params.global.clone());
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
        self.kick(out);
    }

    /// Handles one message.
    pub fn handle(&mut self, now: Instant, msg: Msg, out: &mut Effects) {
        match msg {
            Msg::Trigger(bytes) => self.trigger(&bytes, out),
            Msg::Timer(Timer::QueueRun) => {
                self.request(QueueName::Deferred, ScanFlags::START, out);
                self.arm_queue_run(now, out);
            }
            Msg::ScanResult { queue, id } => self.scan_result(queue, id, out),
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
                let active = self.messages.len();
                let entries = self.route(message, flags, single, recipients, active, out);
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
            other => panic!("supervisor got unexpected {other:?}"),
        }
        self.kick(out);
    }

    fn arm_queue_run(&self, now: Instant, out: &mut Effects) {
        out.push(Effect::Arm {
            owner: Addr::Supervisor,
            at: now + self.global.queue_run_delay,
            timer: Timer::QueueRun,
        });
    }

    /// Applies one trigger buffer: flush first, then incoming, then deferred.
    fn trigger(&mut self, bytes: &[u8], out: &mut Effects) {
        out.trace(|| TraceEvent::Trigger(render(bytes)));
        let req = TriggerRequest::decode(bytes);
        if req.flush_dead() {
            out.trace(|| TraceEvent::Flush);
            out.push(Effect::FlushAll);
        }
        if !req.incoming.is_empty() {
            self.request(QueueName::Incoming, req.incoming, out);
        }
        if !req.deferred.is_empty() {
            self.request(QueueName::Deferred, req.deferred, out);
        }
    }

    fn scan_mut(&mut self, queue: QueueName) -> &mut Scan {
        match queue {
            QueueName::Incoming => &mut self.incoming,
            QueueName::Deferred => &mut self.deferred,
        }
    }

    fn request(&mut self, queue: QueueName, flags: ScanFlags, out: &mut Effects) {
        if let Some(flags) = self.scan_mut(queue).request(flags) {
            out.trace(|| TraceEvent::ScanStart(queue, flags));
            out.push(Effect::ScanStart { queue, flags });
        }
    }

    fn has_room(&self) -> bool {
        (self.messages.len() as u64 + self.completing) < u64::from(self.global.message_active_limit)
            && self.recipient_count < u64::from(self.global.message_recipient_limit)
    }

    /// Starts the next admission turn when nothing is in flight.
    fn kick(&mut self, out: &mut Effects) {
        if self.feed != Feed::Idle || !self.has_room() {
            return;
        }
        self.ask(self.first, false, out);
    }

    fn ask(&mut self, queue: QueueName, other_tried: bool, out: &mut Effects) {
        let running = |s: &Supervisor, q| match q {
            QueueName::Incoming => s.incoming.running().is_some(),
            QueueName::Deferred => s.deferred.running().is_some(),
        };
        if running(self, queue) {
            self.feed = Feed::Asking { queue, other_tried };
            out.push(Effect::ScanNext(queue));
        } else if !other_tried && running(self, queue.other()) {
            self.feed = Feed::Asking {
                queue: queue.other(),
                other_tried: true,
            };
            out.push(Effect::ScanNext(queue.other()));
        } else {
            self.feed = Feed::Idle;
        }
    }

    fn scan_result(&mut self, queue: QueueName, id: Option<Name>, out: &mut Effects) {
        let Feed::Asking { other_tried, .. } = self.feed else {
            panic!("scan result for {queue} while not asking");
        };
        match id {
            Some(id) => {
                let flags = self.scan_mut(queue).running().unwrap_or_default();
                self.next_message += 1;
                self.feed = Feed::Admitting(queue);
                out.push(Effect::Admit {
                    queue,
                    id,
                    flags,
                    message: MessageId(self.next_message),
                    batch: self.batch_limit(),
                });
            }
            None => {
                if let Some(flags) = self.scan_mut(queue).end() {
                    out.trace(|| TraceEvent::ScanStart(queue, flags));
                    out.push(Effect::ScanStart { queue, flags });
                    self.feed = Feed::Asking { queue, other_tried };
                    out.push(Effect::ScanNext(queue));
                } else if !other_tried {
                    self.feed = Feed::Idle;
                    self.ask(queue.other(), true, out);
                } else {
                    self.feed = Feed::Idle;
                }
            }
        }
    }

    /// Recipients read from one file at a time (Postfix: recipient limit
    /// times the fudge factor).
    fn batch_limit(&self) -> u32 {
        (u64::from(self.global.message_recipient_limit) * u64::from(self.global.fudge_factor) / 100)
            .max(1) as u32
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
            let entries = self.route(id, flags, single, recipients, active, out);
            match self.messages.entry(id) {
                Slot::Vacant(slot) => slot.insert(Message {
                    info,
                    from,
                    refcount: entries,
                    // Returned on its defer log: it counts as deferred.
                    deferred: flags.contains(ScanFlags::EXPIRE_LOGGED),
                    more,
                    refilling: false,
                    finished_some: false,
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
    fn route(
        &mut self,
        id: MessageId,
        flags: ScanFlags,
        single: bool,
        recipients: Vec<Routed>,
        active: usize,
        out: &mut Effects,
    ) -> u32 {
        let (params, limits) = (&self.params, &mut self.limits);
        let mut limits = |t: &str| recipient_limit(params, limits, t);
        let planned = self
            .planner
            .plan(recipients, flags, single, &self.global, &mut limits);
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
        for pe in planned.entries.drain(..) {
            self.next_entry += 1;
            self.recipient_count += pe.recipients.len() as u64;
            out.send(
                Addr::Transport(pe.dest.transport.clone()),
                Msg::Enqueue {
                    queue: pe.dest.queue,
                    nexthop: pe.nexthop,
                    entry: Entry {
                        id: EntryId(self.next_entry),
                        message: id,
                        recipients: pe.recipients,
                    },
                    active: u32::try_from(active).unwrap_or(u32::MAX),
                },
            );
        }
        entries
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
        if msg.confirm_delay_cleared(&self.global) {
            out.trace(|| TraceEvent::DelayCleared {
                message: id,
                id: qid.to_string(),
            });
            out.push(Effect::DelayCleared(id));
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
mod tests {
    use super::*;
    use crate::entry::Recipient;

    fn routed(addr: &str) -> Routed {
        Routed {
            recipient: Recipient::new(addr),
            transport: "smtp".into(),
            nexthop: "a.example".into(),
            class_local: false,
        }
    }

    /// A supervisor that has just admitted message `Q1` with `flags` and
    /// `recipients`, and the effects of the admission.
    fn admit(flags: ScanFlags, recipients: Vec<Routed>, more: bool) -> (Supervisor, Effects) {
        let (params, _) = Params::from_pairs(&[]).expect("defaults resolve");
        let mut sup = Supervisor::new(params);
        let now = Instant::from_secs(10);
        let mut out = Effects::new();
        sup.start(now, &mut out);
        let scan = Msg::ScanResult {
            queue: QueueName::Incoming,
            id: Some("Q1".into()),
        };
        sup.handle(now, scan, &mut out);
        out.list.clear();
        let info = MessageInfo {
            message: MessageId(1),
            id: "Q1".into(),
            sender: "s@x".into(),
            create_time: now,
            warning: crate::message::Warning::None,
            flags,
            single_rcpt: false,
        };
        let admitted = Msg::Admitted {
            info: Box::new(info),
            recipients,
            more,
        };
        sup.handle(now, admitted, &mut out);
        (sup, out)
    }

    /// Drives one message through admission, one delivery and a refill
    /// answered as `refilled`; returns the verdict.
    fn run_with_refill(refilled: Msg) -> Verdict {
        let now = Instant::from_secs(10);
        let (mut sup, mut out) = admit(ScanFlags::NONE, vec![routed("u1@a.example")], true);
        out.list.clear();
        sup.handle(
            now,
            Msg::EntryDone {
                message: MessageId(1),
                recipients: 1,
                deferred: false,
            },
            &mut out,
        );
        assert!(
            out.list.iter().any(|e| matches!(e, Effect::Refill { .. })),
            "a refill is asked for"
        );
        out.list.clear();
        sup.handle(now, refilled, &mut out);
        out.list
            .iter()
            .find_map(|e| match e {
                Effect::Complete { verdict, .. } => Some(verdict.clone()),
                _ => None,
            })
            .expect("the message completes")
    }

    #[test]
    fn a_failed_refill_keeps_the_file_instead_of_removing_it() {
        let failed = Msg::Refilled {
            message: MessageId(1),
            recipients: vec![],
            more: false,
            read_error: true,
        };
        assert!(matches!(run_with_refill(failed), Verdict::Defer { .. }));
        let empty = Msg::Refilled {
            message: MessageId(1),
            recipients: vec![],
            more: false,
            read_error: false,
        };
        assert_eq!(run_with_refill(empty), Verdict::Remove);
    }

    /// `postsuper -e` mail with defer log records (the store hands over no
    /// recipients): returned at once, `force-expired`, nothing delivered.
    #[test]
    fn a_force_expired_message_with_a_defer_log_is_returned_at_once() {
        let flags = ScanFlags::FORCE_EXPIRE | ScanFlags::EXPIRE_LOGGED;
        let (_, out) = admit(flags, vec![], false);
        assert!(!out
            .list
            .iter()
            .any(|e| matches!(e, Effect::Send(_, Msg::Enqueue { .. }))));
        let verdict = out.list.iter().find_map(|e| match e {
            Effect::Complete { verdict, .. } => Some(verdict.clone()),
            _ => None,
        });
        assert_eq!(
            verdict,
            Some(Verdict::Expire {
                status: "force-expired"
            })
        );
    }

    /// Admits `id` as message `n` with one recipient (`more` on file).
    fn admit_one(sup: &mut Supervisor, now: Instant, id: &str, n: u64, more: bool) {
        let mut out = Effects::new();
        sup.handle(
            now,
            Msg::ScanResult {
                queue: QueueName::Incoming,
                id: Some(id.into()),
            },
            &mut out,
        );
        let info = MessageInfo {
            message: MessageId(n),
            id: id.into(),
            sender: "s@x".into(),
            create_time: now,
            warning: crate::message::Warning::None,
            flags: ScanFlags::NONE,
            single_rcpt: false,
        };
        sup.handle(
            now,
            Msg::Admitted {
                info: Box::new(info),
                recipients: vec![routed("u1@a.example")],
                more,
            },
            &mut out,
        );
    }

    /// Admits `id` as message `n` with one recipient and finishes its one
    /// entry; returns the effects of the finish.
    fn admit_and_finish(sup: &mut Supervisor, now: Instant, id: &str, n: u64) -> Effects {
        admit_one(sup, now, id, n, false);
        let mut out = Effects::new();
        sup.handle(
            now,
            Msg::EntryDone {
                message: MessageId(n),
                recipients: 1,
                deferred: false,
            },
            &mut out,
        );
        out
    }

    fn asks_for_a_file(out: &Effects) -> bool {
        out.list.iter().any(|e| matches!(e, Effect::ScanNext(_)))
    }

    #[test]
    fn a_message_counts_against_the_limit_until_its_completion_is_done() {
        let (params, _) = Params::from_pairs(&[("qmgr_message_active_limit", "1")]).expect("valid");
        let mut sup = Supervisor::new(params).counting_completions();
        let now = Instant::from_secs(10);
        let mut out = Effects::new();
        sup.start(now, &mut out);
        let out = admit_and_finish(&mut sup, now, "Q1", 1);
        assert!(out
            .list
            .iter()
            .any(|e| matches!(e, Effect::Complete { .. })));
        assert!(
            !asks_for_a_file(&out),
            "the active queue is still full while Q1's completion runs"
        );
        let mut out = Effects::new();
        sup.handle(now, Msg::Completed, &mut out);
        assert!(asks_for_a_file(&out), "room again once it is done");
    }

    #[test]
    fn without_completion_reports_a_completed_message_frees_its_slot_at_once() {
        let (params, _) = Params::from_pairs(&[("qmgr_message_active_limit", "1")]).expect("valid");
        let mut sup = Supervisor::new(params);
        let now = Instant::from_secs(10);
        let mut out = Effects::new();
        sup.start(now, &mut out);
        assert!(asks_for_a_file(&admit_and_finish(&mut sup, now, "Q1", 1)));
    }
}
