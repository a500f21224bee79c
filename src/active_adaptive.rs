//! The adaptive policy's hooks in the supervisor (ours; under the default
//! `oqmgr_scheduling_policy = oqmgr` the supervisor has no backlog, each
//! hook does nothing, and admissions are `qmgr_active.c`'s alone).
//!
//! The supervisor calls these where a message is routed (`postpone`;
//! `route` notes each destination in the backlog itself), leaves the active queue (`note_finished`), a scan hands
//! out a deferred file (`passes_by`) and an admission turn starts
//! (`release`); `Msg::SiteStatus` goes to `site_status`. The policy is in
//! `crate::adaptive::backlog`; this file moves effects and trace lines.
//!
//! # Invariants
//! - with `backlog == None` nothing here changes state or pushes an
//!   effect;
//! - a released file is admitted exactly as a scanned one, with the
//!   `ALL` flag (it may be stamped later than now: its site came back, or
//!   it was postponed).

use std::collections::BTreeMap;

use super::{Feed, Supervisor};
use crate::effect::{DestKey, Effect, Effects, LogLevel};
use crate::entry::MessageId;
use crate::message::{Message, Verdict};
use crate::name::Name;
use crate::params::Params;
use crate::route::{PlannedEntry, ERROR, RETRY};
use crate::scan::{QueueName, ScanFlags};
use crate::time::Instant;
use crate::trace::TraceEvent;

impl Supervisor {
    /// A destination died, failed a probe, or came back.
    pub(super) fn site_status(&mut self, now: Instant, dest: &DestKey, dead: bool) {
        let hold = self.global.minimal_backoff_time;
        if let Some(b) = self.backlog.as_mut() {
            b.site_status(dest, dead, now, hold);
        }
    }

    /// Message `msg` (number `id`) leaves the active queue with
    /// `verdict`: a file deferred for one destination is remembered.
    pub(super) fn note_finished(
        &mut self,
        now: Instant,
        id: MessageId,
        msg: &Message,
        verdict: &Verdict,
    ) {
        let lifetime = if msg.info.sender.is_empty() {
            self.global.bounce_queue_lifetime
        } else {
            self.global.maximal_queue_lifetime
        };
        let Some(b) = self.backlog.as_mut() else {
            return;
        };
        let dest = b.finished(now, id, *verdict == Verdict::Remove);
        if let (Some(dest), Verdict::Defer { until, .. }) = (dest, verdict) {
            let expires = msg.info.create_time + lifetime;
            b.remember(&msg.info.id, &dest, (*until, expires), now);
        }
    }

    /// Whether a deferred scan passes file `id` by (the backlog admits it);
    /// a scan with `ALL` (a flush) takes every file, and the backlog
    /// forgets the ones it takes.
    pub(super) fn passes_by(&mut self, queue: QueueName, id: &Name, flags: ScanFlags) -> bool {
        let Some(b) = self.backlog.as_mut() else {
            return false;
        };
        if queue != QueueName::Deferred || !b.skips(id) {
            return false;
        }
        if flags.contains(ScanFlags::ALL) {
            b.forget(id);
            return false;
        }
        true
    }

    /// Starts the admission of a remembered file that is due, if there is
    /// one; true when it did. Releases take the deferred queue's turns.
    pub(super) fn release(&mut self, now: Instant, out: &mut Effects) -> bool {
        if self.backlog.is_none()
            || (self.first != QueueName::Deferred && self.incoming.running().is_some())
        {
            return false;
        }
        let hold = self.global.minimal_backoff_time;
        let mut bound =
            |dest: &DestKey| pacing_bound(concurrency_limit(&self.params, &mut self.bounds, dest));
        let b = self.backlog.as_mut().expect("checked above");
        let Some((id, dest)) = b.release(now, hold, &mut bound) else {
            return false;
        };
        out.trace(|| TraceEvent::Release {
            dest,
            id: id.to_string(),
        });
        self.next_message += 1;
        self.feed = Feed::Admitting(QueueName::Deferred);
        out.push(Effect::Admit {
            queue: QueueName::Deferred,
            id,
            flags: ScanFlags::ALL,
            message: MessageId(self.next_message),
            batch: self.batch_limit(),
        });
        true
    }

    /// Whether message `id` (queue ID `qid`), just admitted with the
    /// entries `planned` and nothing more on file, is postponed: the
    /// active queue is three quarters full and its one destination holds
    /// more than its fair share of it. Then it is noted as routed there
    /// (so that its completion remembers it) and logged.
    pub(super) fn postpone(
        &mut self,
        id: MessageId,
        qid: &Name,
        flags: ScanFlags,
        planned: &[PlannedEntry],
        out: &mut Effects,
    ) -> bool {
        let limit = self.global.message_active_limit;
        let active = self.messages.len() as u64 + 1;
        let Some(first) = planned.first() else {
            return false;
        };
        let dest = &first.dest;
        let pace = pacing_bound(concurrency_limit(&self.params, &mut self.bounds, dest));
        let Some(b) = self.backlog.as_mut() else {
            return false;
        };
        if !flags.is_empty()
            || dest.transport == RETRY
            || dest.transport == ERROR
            || planned.iter().any(|p| p.dest != *dest)
            || active * 4 < u64::from(limit) * 3
            || !b.has_room()
        {
            return false;
        }
        let (held, holding) = b.load(dest);
        if held < fair_share(limit, holding).max(pace) {
            return false;
        }
        b.routed(id, dest);
        out.trace(|| TraceEvent::Postpone {
            message: id,
            id: qid.to_string(),
            dest: dest.clone(),
            held,
        });
        out.push(Effect::Log(
            LogLevel::Info,
            format!(
                "{qid}: postponed: {dest} holds {held} of {limit} active queue messages; \
                 other destinations go first"
            ),
        ));
        true
    }
}

/// A destination's fair share of an active queue of `limit` messages
/// when `holding` destinations hold some (one more for mail not yet
/// read).
fn fair_share(limit: u32, holding: usize) -> u32 {
    let ways = u32::try_from(holding + 1).unwrap_or(u32::MAX);
    (limit / ways).max(1)
}

/// How many messages a destination may hold in memory before its
/// remembered files wait, and below which none of its mail is postponed:
/// twice its concurrency limit (`concurrency`, 0 for none: then 2 x 20,
/// Postfix's default limit), enough to keep its window full.
fn pacing_bound(concurrency: u32) -> u32 {
    2 * if concurrency == 0 { 20 } else { concurrency }
}

/// The concurrency limit of `dest`'s transport, resolved once per
/// transport into `cache`.
fn concurrency_limit(params: &Params, cache: &mut BTreeMap<Name, u32>, dest: &DestKey) -> u32 {
    *cache
        .entry(dest.transport.clone())
        .or_insert_with(|| params.transport(&dest.transport).0.dest_concurrency_limit)
}
