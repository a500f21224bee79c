//! Feeding the active queue (Postfix: `qmgr_active.c`'s
//! `qmgr_active_feed`, the trigger handling and the loop of `qmgr.c`).
//!
//! Trigger bytes and the periodic `queue_run_delay` timer become scan
//! requests ([`crate::scan::Scan`]); while the active queue has room the
//! supervisor asks one scan at a time for its next file and admits it. The
//! incoming and deferred scans take turns, one admission each, so neither
//! starves the other; a scan that comes up empty hands the turn to the
//! other once. An admission reads at most `batch_limit` recipients
//! (`qmgr_message_recipient_limit` times `qmgr_fudge_factor` percent).
//!
//! # Invariants
//! - at most one admission is in flight (`feed` is `Idle` before the
//!   next ask);
//! - room counts messages still being completed by the host when the
//!   supervisor counts completions.
//!
//! # Compatibility
//! `qmgr_message_active_limit`, `qmgr_message_recipient_limit`,
//! `qmgr_fudge_factor`, `queue_run_delay`, the `A D F I W` triggers.

use super::{Feed, Supervisor};
use crate::effect::{Addr, Effect, Effects, Timer};
use crate::entry::MessageId;
use crate::name::Name;
use crate::scan::{QueueName, Scan, ScanFlags};
use crate::time::Instant;
use crate::trace::TraceEvent;
use crate::trigger::{render, TriggerRequest};

impl Supervisor {
    pub(super) fn arm_queue_run(&self, now: Instant, out: &mut Effects) {
        out.push(Effect::Arm {
            owner: Addr::Supervisor,
            at: now + self.global.queue_run_delay,
            timer: Timer::QueueRun,
        });
    }

    /// Applies one trigger buffer: flush first, then incoming, then deferred.
    pub(super) fn trigger(&mut self, bytes: &[u8], out: &mut Effects) {
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

    pub(super) fn scan_mut(&mut self, queue: QueueName) -> &mut Scan {
        match queue {
            QueueName::Incoming => &mut self.incoming,
            QueueName::Deferred => &mut self.deferred,
        }
    }

    pub(super) fn request(&mut self, queue: QueueName, flags: ScanFlags, out: &mut Effects) {
        if let Some(flags) = self.scan_mut(queue).request(flags) {
            out.trace(|| TraceEvent::ScanStart(queue, flags));
            out.push(Effect::ScanStart { queue, flags });
        }
    }

    pub(super) fn has_room(&self) -> bool {
        (self.messages.len() as u64 + self.completing) < u64::from(self.global.message_active_limit)
            && self.recipient_count < u64::from(self.global.message_recipient_limit)
    }

    /// Starts the next admission turn when nothing is in flight.
    pub(super) fn kick(&mut self, now: Instant, out: &mut Effects) {
        if self.feed != Feed::Idle || !self.has_room() {
            return;
        }
        if self.release(now, out) {
            return;
        }
        self.ask(self.first, false, out);
    }

    pub(super) fn ask(&mut self, queue: QueueName, other_tried: bool, out: &mut Effects) {
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

    pub(super) fn scan_result(
        &mut self,
        now: Instant,
        queue: QueueName,
        id: Option<Name>,
        out: &mut Effects,
    ) {
        let Feed::Asking { other_tried, .. } = self.feed else {
            panic!("scan result for {queue} while not asking");
        };
        match id {
            Some(id) => {
                let flags = self.scan_mut(queue).running().unwrap_or_default();
                if self.passes_by(queue, &id, flags) {
                    out.push(Effect::ScanNext(queue));
                    return;
                }
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
                self.scan_done[match queue {
                    QueueName::Incoming => 0,
                    QueueName::Deferred => 1,
                }] = Some(now);
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
    pub(super) fn batch_limit(&self) -> u32 {
        (u64::from(self.global.message_recipient_limit) * u64::from(self.global.fudge_factor) / 100)
            .max(1) as u32
    }
}
