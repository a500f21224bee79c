//! Probing a dead destination (no Postfix counterpart: oqmgr waits out
//! `minimal_backoff_time`, `qmgr_queue.c` `qmgr_queue_unthrottle_wrapper`).
//!
//! When oqmgr declares a site dead, every waiting entry goes to `retry`
//! and the site is left alone for `minimal_backoff_time` (300 s by
//! default); its mail comes back later still, at each message's own
//! backoff. A site that was down for a minute thus gets no mail for five
//! or more. Under the adaptive policy a dead destination keeps one entry,
//! the *probe*, and tries it alone, after a short delay that doubles up to
//! [`PROBE_CAP`], each delay jittered so that sites that died together are
//! not tried together. The first probe that succeeds revives the site (its
//! window then climbs one probe at a time, `crate::adaptive::window`),
//! so a site that comes back gets its first delivery within about
//! [`PROBE_CAP`] plus a quarter, without a flush. A probe that fails keeps
//! its entry for the next try; an entry is kept at most
//! `maximal_backoff_time`, then goes to `retry` as oqmgr would have sent
//! it, and the next entry that arrives becomes the probe.
//!
//! # Invariants
//! - at most one entry is held, and it is at an agent at most once at a
//!   time: one probe in flight per dead destination;
//! - a held entry is never also in the destination's `todo` or `busy`
//!   lists: it is counted in neither, and the destination does not ask to
//!   be forgotten while it holds one;
//! - probe timers carry their own generation; a stale one does nothing.

use crate::entry::{Entry, EntryId};
use crate::time::{Duration, Instant};

use super::jitter;

/// The delay before the first probe of a site that just died.
pub const PROBE_FIRST: Duration = Duration::from_secs(2);

/// The longest delay between probes, before jitter (which adds at most a
/// quarter).
pub const PROBE_CAP: Duration = Duration::from_secs(16);

/// A dead destination's probe.
#[derive(Clone, Debug)]
pub struct Probe {
    /// The entry kept to probe with, and since when.
    held: Option<(Entry, Instant)>,
    /// The held entry is at an agent now.
    out: bool,
    /// The probe timer fired: the held entry may go to an agent.
    due: bool,
    /// Probes armed since the site died (sets the next delay).
    tries: u32,
    /// Generation of the probe timer; stale ones are ignored.
    generation: u64,
}

impl Probe {
    /// No entry held; timers numbered from `epoch`'s range, like the
    /// destination's own.
    pub fn new(epoch: u64) -> Probe {
        Probe {
            held: None,
            out: false,
            due: false,
            tries: 0,
            generation: epoch << 32,
        }
    }

    /// True while an entry is held (at an agent or not).
    pub fn holds(&self) -> bool {
        self.held.is_some()
    }

    /// Keeps `entry` as the probe, unless one is held already; gives it
    /// back then.
    pub fn hold(&mut self, entry: Entry, now: Instant) -> Option<Entry> {
        if self.held.is_some() {
            return Some(entry);
        }
        self.held = Some((entry, now));
        None
    }

    /// Arms the next probe timer for the site named `key`: returns when it
    /// fires and the generation it carries.
    pub fn arm(&mut self, now: Instant, key: &str) -> (Instant, u64) {
        let doubled = PROBE_FIRST.as_millis() << self.tries.min(16);
        let base = doubled.min(PROBE_CAP.as_millis());
        let spread = 0.75 + 0.5 * jitter::unit(key, u64::from(self.tries));
        self.tries += 1;
        self.generation += 1;
        self.due = false;
        let delay = Duration::from_millis((base as f64 * spread).round() as u64);
        (now + delay, self.generation)
    }

    /// The probe timer of `generation` fired: true when it is current and
    /// an entry waits to be tried.
    pub fn fire(&mut self, generation: u64) -> bool {
        if generation != self.generation || self.held.is_none() || self.out {
            return false;
        }
        self.due = true;
        true
    }

    /// The held entry has been kept `longest` or more at `now`: it is given
    /// up (to be rerouted as oqmgr would have).
    pub fn expire(&mut self, now: Instant, longest: Duration) -> Option<Entry> {
        match &self.held {
            Some((_, since)) if !self.out && now >= *since + longest => {
                self.due = false;
                self.held.take().map(|(entry, _)| entry)
            }
            _ => None,
        }
    }

    /// Agents the probe wants now: one when due and not out.
    pub fn wants(&self) -> u32 {
        u32::from(self.due && !self.out && self.held.is_some())
    }

    /// A copy of the held entry to send to an agent, and since when it is
    /// held, if the probe is due.
    pub fn take(&mut self) -> Option<(Entry, Instant)> {
        if self.wants() == 0 {
            return None;
        }
        self.due = false;
        self.out = true;
        self.held.clone()
    }

    /// The entry at an agent, if the probe is out.
    pub fn out_entry(&self) -> Option<EntryId> {
        match &self.held {
            Some((entry, _)) if self.out => Some(entry.id),
            _ => None,
        }
    }

    /// The probe failed: its entry waits for the next one.
    pub fn failed(&mut self) {
        self.out = false;
    }

    /// The site is back: the held entry, unless it was the probe that
    /// just succeeded, goes back to the waiting list; the schedule
    /// restarts for the next death.
    pub fn revive(&mut self) -> Option<(Entry, Instant)> {
        let held = self.held.take();
        let out = std::mem::take(&mut self.out);
        self.due = false;
        self.tries = 0;
        self.generation += 1;
        held.filter(|_| !out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u64) -> Entry {
        Entry::numbered(n, "d.example")
    }

    #[test]
    fn delays_double_to_the_cap_with_bounded_jitter() {
        let mut p = Probe::new(1);
        let mut delays = Vec::new();
        for _ in 0..8 {
            let (at, _) = p.arm(Instant::ZERO, "smtp:d.example");
            delays.push(at.as_millis());
        }
        let bases = [2000, 4000, 8000, 16000, 16000, 16000, 16000, 16000];
        for (d, b) in delays.iter().zip(bases) {
            assert!(*d >= b * 3 / 4 && *d <= b * 5 / 4, "{delays:?}");
        }
    }

    #[test]
    fn one_entry_one_probe_at_a_time() {
        let mut p = Probe::new(1);
        assert!(p.hold(entry(1), Instant::ZERO).is_none());
        assert_eq!(
            p.hold(entry(2), Instant::ZERO).map(|e| e.id),
            Some(EntryId(2))
        );
        let (_, generation) = p.arm(Instant::ZERO, "smtp:d.example");
        assert!(!p.fire(generation - 1), "a stale timer does nothing");
        assert!(p.fire(generation));
        assert_eq!(p.take().map(|(e, _)| e.id), Some(EntryId(1)));
        assert!(p.take().is_none(), "out already");
        assert_eq!(p.out_entry(), Some(EntryId(1)));
        p.failed();
        assert!(p.holds());
        assert!(
            p.revive().is_some(),
            "a held entry that is not out goes back"
        );
    }
}
