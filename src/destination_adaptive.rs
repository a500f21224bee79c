//! The adaptive policy's hooks in a destination (ours; under the default
//! `oqmgr_scheduling_policy = oqmgr` each of them does nothing, and the
//! destination makes `qmgr_queue.c`'s decisions alone).
//!
//! The destination calls these at the points where oqmgr's feedback runs:
//! a delivery starts (`adaptive_start`), succeeds (`adaptive_success`) or
//! meets a site failure (`adaptive_failure`), the site dies
//! (`hold_probe`, `site_status`) or comes back (`adaptive_revive`), and
//! the probe timer fires (`probe_timer`). The policy itself is in
//! `crate::adaptive` (`window` and `probe`); this file only moves entries
//! and effects.
//!
//! # Invariants
//! - with `adaptive == None` no method here changes state or pushes an
//!   effect, and `adaptive_success` returns false;
//! - a held probe entry is in neither `todo` nor `busy` except while it is
//!   at an agent, when `busy` holds its record and the probe keeps a copy.

use super::{Destination, Status};
use crate::adaptive::window::Learned;
use crate::effect::{Addr, Effect, Effects, Msg, Timer};
use crate::entry::{AgentId, Entry};
use crate::time::Instant;
use crate::trace::{TraceEvent, WindowCause};

impl Destination {
    /// A delivery starts as the `started`-th in flight: true when it is an
    /// adaptive probe above the learned ceiling. The window is brought up
    /// to date (a probe in flight leaves no room for another).
    pub(super) fn adaptive_start(&mut self, started: u32) -> bool {
        let limit = self.params.dest_concurrency_limit;
        let Some(a) = self.adaptive.as_mut() else {
            return false;
        };
        let probe = a.window.start(started);
        self.window = a.window.window(self.window, limit);
        probe
    }

    /// Positive feedback under the adaptive policy, once a ceiling is
    /// known: true when it was applied (oqmgr's slow start runs otherwise).
    pub(super) fn adaptive_success(&mut self, out: &mut Effects) -> bool {
        let limit = self.params.dest_concurrency_limit;
        let (started, probe) = self.reporting;
        let Some(a) = self.adaptive.as_mut() else {
            return false;
        };
        a.window.success(started, probe);
        if a.window.ceiling().is_none() {
            return false;
        }
        let window = a.window.window(self.window, limit);
        if window != self.window {
            self.window = window;
            self.trace_window(WindowCause::Success, 0.0, out);
        }
        true
    }

    /// Negative feedback under the adaptive policy: the ceiling decides
    /// the window, whatever oqmgr's feedback made of it.
    pub(super) fn adaptive_failure(&mut self) {
        let limit = self.params.dest_concurrency_limit;
        let (started, probe) = self.reporting;
        if let Some(a) = self.adaptive.as_mut() {
            a.window.failure(started, probe);
            self.window = a.window.window(self.window, limit).max(1);
        }
    }

    /// A dead site came back: the window restarts from what is in flight,
    /// a held entry waits first in line, the supervisor hears of it.
    pub(super) fn adaptive_revive(&mut self) {
        let limit = self.params.dest_concurrency_limit;
        let Some(a) = self.adaptive.as_mut() else {
            return;
        };
        a.window.revive(self.busy.len() as u32);
        self.window = a.window.window(self.window, limit).max(1);
        if let Some((entry, since)) = a.probe.revive() {
            self.todo.push_front(entry);
            self.todo_since.push_front(since);
        }
    }

    /// Starts from what an earlier destination of this name learned: its
    /// ceiling, and its failed cohorts since its last success.
    pub(super) fn remember(&mut self, learned: Learned) {
        let limit = self.params.dest_concurrency_limit;
        if let Some(a) = self.adaptive.as_mut() {
            self.fail_cohorts = learned.fail_cohorts;
            a.window.remember(learned);
            self.window = a.window.window(self.window, limit).max(1);
        }
    }

    /// About to ask to be forgotten: the transport keeps what was
    /// learned, for the next destination of this name.
    pub(super) fn tell_learned(&self, out: &mut Effects) {
        let Some(a) = self.adaptive.as_ref() else {
            return;
        };
        let learned = Learned {
            fail_cohorts: self.fail_cohorts,
            ..a.window.learned()
        };
        if learned.is_news() {
            out.send(
                Addr::Transport(self.key.transport.clone()),
                Msg::Learned {
                    dest: self.id,
                    learned,
                },
            );
        }
    }

    /// True while a dead site holds an entry to probe with: then only a
    /// probe that succeeds (or a flush) revives it, not the unthrottle
    /// timer, which would send it a backlog on no evidence.
    pub(super) fn probing(&self) -> bool {
        self.adaptive.as_ref().is_some_and(|a| a.probe.holds())
    }

    /// Tells the supervisor that this site died or failed a probe
    /// (adaptive policy only: `crate::adaptive::backlog` then holds its
    /// deferred files back for a while).
    pub(super) fn site_dead(&mut self, out: &mut Effects) {
        let Some(a) = self.adaptive.as_mut() else {
            return;
        };
        a.told_dead = true;
        out.send(
            Addr::Supervisor,
            Msg::SiteStatus {
                dest: self.key.clone(),
                dead: true,
            },
        );
    }

    /// A delivery succeeded, or a flush revived the site: if the
    /// supervisor was told the site died, it now hears that it is back.
    pub(super) fn site_alive(&mut self, out: &mut Effects) {
        let Some(a) = self.adaptive.as_mut() else {
            return;
        };
        if a.told_dead && self.status == Status::Ready {
            a.told_dead = false;
            out.send(
                Addr::Supervisor,
                Msg::SiteStatus {
                    dest: self.key.clone(),
                    dead: false,
                },
            );
        }
    }

    /// Under the adaptive policy a dead site keeps one entry to probe with:
    /// `entry` is held (and the next probe armed) unless one is held
    /// already; otherwise, or under oqmgr's policy, it is given back.
    pub(super) fn hold_probe(
        &mut self,
        now: Instant,
        entry: Entry,
        out: &mut Effects,
    ) -> Option<Entry> {
        let Some(a) = self.adaptive.as_mut() else {
            return Some(entry);
        };
        if let Some(entry) = a.probe.hold(entry, now) {
            return Some(entry);
        }
        self.arm_probe(now, out);
        None
    }

    /// Arms the next probe of a dead site.
    fn arm_probe(&mut self, now: Instant, out: &mut Effects) {
        let key = self.key.to_string();
        let Some(a) = self.adaptive.as_mut() else {
            return;
        };
        let (at, generation) = a.probe.arm(now, &key);
        out.push(Effect::Arm {
            owner: Addr::Destination(self.id),
            at,
            timer: Timer::Probe(generation),
        });
    }

    /// The probe timer fired: a held entry kept too long goes to `retry`
    /// as oqmgr would have sent it; otherwise the probe is due, and the
    /// announcement that follows asks the transport for one agent.
    pub(super) fn probe_timer(&mut self, now: Instant, generation: u64, out: &mut Effects) {
        let Status::Dead(dsn) = &self.status else {
            return;
        };
        let dsn = dsn.clone();
        let longest = self.global.maximal_backoff_time;
        let Some(a) = self.adaptive.as_mut() else {
            return;
        };
        if !a.probe.fire(generation) {
            return;
        }
        if let Some(entry) = a.probe.expire(now, longest) {
            self.remember_deferred(entry.message);
            super::reroute(&self.key, entry, &dsn, self.active, out);
        }
    }

    /// Offers `agent` to the held entry of a dead site whose probe is due:
    /// true when the entry went to the agent.
    pub(super) fn take_probe(&mut self, agent: AgentId, out: &mut Effects) -> bool {
        if !matches!(self.status, Status::Dead(_)) {
            return false;
        }
        let Some((entry, since)) = self.adaptive.as_mut().and_then(|a| a.probe.take()) else {
            return false;
        };
        out.trace(|| TraceEvent::Probe {
            dest: self.key.clone(),
            entry: entry.id,
            agent,
        });
        self.start(agent, entry, since, false, out);
        true
    }

    /// The site leaves the dead state other than by reviving (an
    /// operator's suspension): the held entry, unless it is at an agent,
    /// is given back, and the probe's state cleared.
    pub(super) fn abandon_probe(&mut self) -> Option<Entry> {
        let a = self.adaptive.as_mut()?;
        a.probe.revive().map(|(entry, _)| entry)
    }

    /// The probe of a dead site failed: its entry is held for the next,
    /// and the supervisor hears the site is still dead.
    pub(super) fn probe_failed(&mut self, now: Instant, out: &mut Effects) {
        if let Some(a) = self.adaptive.as_mut() {
            a.probe.failed();
        }
        self.arm_probe(now, out);
        self.site_dead(out);
    }
}
