//! Moving a dead destination's waiting mail elsewhere (Postfix:
//! `qmgr_defer.c`, `qmgr_defer_todo`).
//!
//! When a site is declared dead its waiting entries go, without an
//! attempt, to the `retry` pseudo-transport, whose agent defers their
//! recipients with the dead site's reason ([`reroute`]); mail for a dead
//! transport goes the same way. Entries already at an agent finish on
//! their own. Under the adaptive policy a dead site keeps its oldest entry
//! to probe with (`hold_probe`, in `destination_adaptive.rs`).
//!
//! # Invariants
//! - after `defer_todo` on a dead destination `todo` holds nothing but,
//!   under the adaptive policy, the entry kept to probe with;
//! - mail meant for a dead `retry` transport itself is deferred on the
//!   spot by the supervisor, never rerouted to `retry` again.

use super::{Destination, Status};
use crate::effect::{Addr, DestKey, Effects, Msg};
use crate::entry::{Dsn, Entry};
use crate::name::Name;
use crate::route::RETRY;
use crate::time::Instant;
use crate::trace::TraceEvent;

impl Destination {
    /// Moves every waiting entry to the `retry` transport (Postfix:
    /// `qmgr_defer_todo`); busy entries finish on their own.
    pub(super) fn defer_todo(&mut self, now: Instant, dsn: &Dsn, out: &mut Effects) {
        if matches!(self.status, Status::Dead(_)) && self.adaptive.is_some() {
            // The adaptive policy keeps the oldest entry to probe with.
            if let Some(entry) = self.todo.pop_front() {
                let since = self.todo_since.pop_front().unwrap_or(now);
                if let Some(entry) = self.hold_probe(now, entry, out) {
                    self.todo.push_front(entry);
                    self.todo_since.push_front(since);
                }
            }
        }
        if self.todo.is_empty() {
            return;
        }
        out.trace(|| TraceEvent::DeferTodo {
            dest: self.key.clone(),
            entries: self.todo.len(),
            to: dsn.retry_nexthop(),
        });
        self.todo_since.clear();
        for entry in std::mem::take(&mut self.todo) {
            self.remember_deferred(entry.message);
            reroute(&self.key, entry, dsn, self.active, out);
        }
    }
}

/// Sends an entry meant for a dead destination (or a dead transport) to the
/// `retry` transport, or, when that is the one that is dead, defers its
/// recipients on the spot.
/// `active` is the active-queue message count to pass on (the latest this
/// destination or transport heard of).
pub(crate) fn reroute(key: &DestKey, entry: Entry, dsn: &Dsn, active: u32, out: &mut Effects) {
    if key.transport == RETRY {
        out.send(
            Addr::Supervisor,
            Msg::DeferNow {
                entry,
                dsn: Box::new(dsn.clone()),
            },
        );
        return;
    }
    let to = dsn.retry_nexthop();
    out.trace(|| TraceEvent::Reroute {
        dest: key.clone(),
        entry: entry.id,
        to: to.clone(),
    });
    out.send(
        Addr::Transport(RETRY.into()),
        Msg::Enqueue {
            queue: Name::from(to.to_lowercase()),
            nexthop: Name::from(to),
            entry,
            active,
        },
    );
}
