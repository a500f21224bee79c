//! What a destination shows and offers the operator (no single Postfix
//! counterpart: `qmgr_queue.c`'s `qmgr_queue_warn` for the clog warning;
//! the rest serves `oqmgr ctl`, see `crate::control`).
//!
//! An operator's suspension ([`crate::control::Target`]) holds a
//! destination's deliveries back and hands its waiting entries to the
//! supervisor, which defers them; deliveries in flight finish. The
//! destination remembers the messages it deferred lately, so that a
//! `flush` of it retries exactly those, and describes itself for
//! `ctl destinations` ([`Destination::live`]). The clog warning tells the
//! operator when one destination holds a large share of the active queue,
//! with Postfix's advice.
//!
//! # Invariants
//! - an administratively suspended destination holds no `todo` entries;
//! - at most `DEFERRED_MEMORY` deferred messages are remembered, the
//!   oldest forgotten first, with no message twice in a row.
//!
//! # Compatibility
//! `qmgr_clog_warn_time`, `helpful_warnings`, `qmgr_message_active_limit`
//! (the clog warning's threshold and advice).

use super::{Destination, Status, DEFERRED_MEMORY};
use crate::control::Target;
use crate::effect::{Addr, Effect, Effects, LogLevel, Msg};
use crate::entry::{Entry, MessageId};
use crate::live_state::{LiveDestState, LiveDestination};
use crate::time::Instant;
use crate::trace::TraceEvent;

impl Destination {
    /// Holds deliveries back if `target` covers this destination, and
    /// hands the waiting entries to the supervisor; deliveries in flight
    /// finish.
    pub(super) fn admin_suspend(&mut self, target: &Target, out: &mut Effects) {
        if !target.matches(&self.key) {
            return;
        }
        self.status = Status::AdminSuspended;
        self.todo_since.clear();
        let mut entries: Vec<Entry> = std::mem::take(&mut self.todo).into();
        // A dead site's held probe goes with them (adaptive policy).
        entries.extend(self.abandon_probe());
        out.trace(|| TraceEvent::Withdraw {
            dest: self.key.clone(),
            entries: entries.len(),
        });
        if !entries.is_empty() {
            out.send(
                Addr::Supervisor,
                Msg::Withdrawn {
                    dest: self.key.clone(),
                    nexthop: self.nexthop.clone(),
                    entries,
                },
            );
        }
    }

    /// Remembers a message this destination deferred, for `flush`.
    pub(super) fn remember_deferred(&mut self, message: MessageId) {
        if self.deferred_messages.last() != Some(&message) {
            if self.deferred_messages.len() == DEFERRED_MEMORY {
                self.deferred_messages.remove(0);
            }
            self.deferred_messages.push(message);
        }
    }

    /// Describes this destination for the operator (`ctl destinations`);
    /// `detail` adds every entry's message and recipient count.
    pub fn live(&self, detail: bool) -> LiveDestination {
        let state = match &self.status {
            Status::Ready => LiveDestState::Ready,
            Status::Suspended => LiveDestState::RateDelayed {
                until_ms: self.rate_until.as_millis(),
            },
            Status::Dead(dsn) => LiveDestState::Dead {
                since_ms: self.dead_since.as_millis(),
                until_ms: self.dead_until.as_millis(),
                reason: dsn.to_string(),
            },
            Status::AdminSuspended => LiveDestState::Suspended,
        };
        let mut delays: Vec<u64> = self.delays.iter().copied().collect();
        delays.sort_unstable();
        let pct = |p: usize| {
            (!delays.is_empty()).then(|| {
                let rank = (delays.len() * p).div_ceil(100).max(1);
                delays[rank.min(delays.len()) - 1]
            })
        };
        let entries = if detail {
            self.todo
                .iter()
                .map(|e| (e.message.0, e.recipients.len() as u32))
                .chain(self.busy.iter().map(|b| (b.message.0, b.recipients)))
                .collect()
        } else {
            Vec::new()
        };
        LiveDestination {
            transport: self.key.transport.to_string(),
            queue: self.key.queue.to_string(),
            nexthop: self.nexthop.to_string(),
            state,
            window: if matches!(self.status, Status::Dead(_)) {
                0
            } else {
                self.window
            },
            limit: self.params.dest_concurrency_limit,
            busy: self.busy.len() as u32,
            todo: self.todo.len() as u32,
            todo_recipients: self.todo.iter().map(|e| e.recipients.len() as u64).sum(),
            success: self.success,
            failure: self.failure,
            fail_cohorts: self.fail_cohorts,
            tally: self.tally,
            delay_p50_ms: pct(50),
            delay_p99_ms: pct(99),
            oldest_waiting_ms: self.todo_since.front().map(|t| t.as_millis()),
            entries,
        }
    }

    /// Warns when one destination holds a large share of the active queue
    /// (Postfix: `qmgr_queue_warn`), at most once per `qmgr_clog_warn_time`.
    pub(super) fn clog_warning(&mut self, now: Instant, out: &mut Effects) {
        let g = &self.global;
        let entries = self.todo.len() + self.busy.len();
        if !g.helpful_warnings
            || g.clog_warn_time.is_zero()
            || entries as u64 <= u64::from(g.message_active_limit / 5)
            || now < self.next_clog
        {
            return;
        }
        self.next_clog = now + g.clog_warn_time;
        let t = &self.key.transport;
        // Postfix compares with the messages active now (not the limit):
        // a destination that holds nearly all of them slows no one else.
        let active = self.active.max(1);
        let mut lines = vec![format!(
            "mail for {} is using up {} of {} active queue entries",
            self.nexthop, entries, active
        )];
        if (entries as f64) / f64::from(active) < 0.9 {
            lines.push("this may slow down other mail deliveries".into());
        }
        let limit = self.params.dest_concurrency_limit;
        let share = entries as f64 / f64::from(active);
        if limit > 0 && limit as usize <= self.busy.len() + 1 {
            lines.push(format!(
                "you may need to increase the main.cf {t}_destination_concurrency_limit from {limit}"
            ));
        } else if f64::from(self.window) > f64::from(g.message_active_limit) * share {
            lines.push(format!(
                "you may need to increase the main.cf qmgr_message_active_limit from {}",
                g.message_active_limit
            ));
        } else if self.peers {
            lines.push(format!(
                "you may need a separate master.cf transport for {}",
                self.nexthop
            ));
        } else {
            lines.push(format!(
                "you may need to reduce {t} connect and helo timeouts"
            ));
            lines.push("so that Postfix quickly skips unavailable hosts".into());
            lines.push("you may need to increase the main.cf minimal_backoff_time and maximal_backoff_time".into());
            lines.push("so that Postfix wastes less time on undeliverable mail".into());
            lines.push(format!(
                "you may need to increase the master.cf {t} process limit"
            ));
        }
        lines.push("please avoid flushing the whole queue when you have".into());
        lines.push("lots of deferred mail, that is bad for performance".into());
        lines.push("to turn off these warnings specify: qmgr_clog_warn_time = 0".into());
        for line in lines {
            out.push(Effect::Log(LogLevel::Warning, line));
        }
        out.trace(|| TraceEvent::Clog {
            dest: self.key.clone(),
            entries,
        });
    }
}
