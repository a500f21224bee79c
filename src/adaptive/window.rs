//! The adaptive concurrency window (the counterpart of oqmgr's feedback in
//! `qmgr_queue.c` `qmgr_queue_throttle`/`qmgr_queue_unthrottle`, under
//! `oqmgr_scheduling_policy = adaptive`).
//!
//! oqmgr's window forgets: after a failure it climbs again at the speed of
//! its positive feedback, meets the same limit, and fails again. At a
//! server that answers 421 above five sessions this defers a third of all
//! deliveries with the default feedback (docs/scheduler-readme-reproduction.md).
//! [`Concurrency`] remembers instead. Until the first site failure it
//! leaves the window to oqmgr's slow start. A site failure of a delivery
//! that started as the `n`-th in flight (with others in flight: a lone
//! failure says nothing of concurrency) teaches a *ceiling* of `n - 1`:
//! the window stays at the ceiling, and only one delivery at a time may
//! go above it, a *probe*, allowed after a run of successes at the
//! ceiling. A probe that succeeds raises the ceiling to the concurrency it
//! proved; one that fails doubles the run of successes the next one
//! waits for. At a fixed limit this costs one failed delivery per
//! doubling run, not one per few successes.
//!
//! The highest ceiling held (the *peak*) and the patience there survive a
//! failure that lowers the ceiling and the site's death: back below the
//! peak, probes climb again after a short run (doubled by each failed
//! climb; three in a row and the peak is given up). A failure below the
//! ceiling lowers it at once, one at the ceiling itself only the second
//! time without a success between: a real server counts a session that
//! just ended a moment longer (Postfix's anvil), so a delivery started
//! right after another ended may meet a 421 at the limit itself.
//!
//! A destination that empties is forgotten, as in oqmgr, but its
//! transport keeps what it learned in a [`SiteMemory`] and hands it to
//! the next destination of the same name, so a site that receives mail in
//! bursts does not meet its connection limit anew with each burst.
//!
//! # Invariants
//! - at most one probe (a delivery started above the ceiling) is in
//!   flight: [`Concurrency::window`] leaves no room above the ceiling
//!   while one is;
//! - the ceiling, once known, is at least 1;
//! - `PROBE_BASE <= patience <= PROBE_MAX`.
//!
//! # Parameters
//! The transport's `_destination_concurrency_limit` caps the window as in
//! oqmgr; the feedback parameters apply only before a ceiling is known.

use std::collections::BTreeMap;

use crate::name::{FastMap, Name};

/// Successes at the ceiling before the first probe, before a probe below
/// the peak (until one fails), and before one above a new peak.
pub const PROBE_BASE: u32 = 4;

/// Most successes a probe waits for, however many failed before it.
pub const PROBE_MAX: u32 = 256;

/// What one destination has learned of its site's concurrency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Concurrency {
    /// Deliveries in flight that the site is known to bear; `None` until
    /// the first site failure (oqmgr's window rules until then).
    ceiling: Option<u32>,
    /// The highest ceiling held without a failed probe above it (0 while
    /// none is known): below it, probes climb back quickly.
    peak: u32,
    /// Successes a probe at or above the peak waits for.
    patience: u32,
    /// Successes a probe below the peak waits for.
    climb: u32,
    /// Successes since the last probe or failure.
    streak: u32,
    /// A probe is in flight.
    probing: bool,
    /// A failure at or below the ceiling was forgiven, and no delivery
    /// has succeeded since: the next one lowers the ceiling.
    strike: bool,
}

impl Default for Concurrency {
    fn default() -> Concurrency {
        Concurrency::new()
    }
}

impl Concurrency {
    /// Nothing learned yet.
    pub fn new() -> Concurrency {
        Concurrency {
            ceiling: None,
            peak: 0,
            patience: PROBE_BASE,
            climb: PROBE_BASE,
            streak: 0,
            probing: false,
            strike: false,
        }
    }

    /// The ceiling learned so far, if any.
    pub fn ceiling(&self) -> Option<u32> {
        self.ceiling
    }

    /// What a later destination of the same name should start from (the
    /// destination adds its failed cohorts).
    pub fn learned(&self) -> Learned {
        Learned {
            ceiling: self.ceiling,
            peak: self.peak,
            patience: self.patience,
            fail_cohorts: 0.0,
        }
    }

    /// Successes the next probe waits for: few while climbing back to the
    /// peak, the patience at it.
    fn probe_after(&self) -> u32 {
        match self.ceiling {
            Some(c) if c < self.peak => self.climb,
            _ => self.patience,
        }
    }

    /// The window to use: oqmgr's (`oqmgr_window`) while no ceiling is
    /// known, else the ceiling, plus one when a probe may start; never
    /// above the transport's `limit` (0: none).
    pub fn window(&self, oqmgr_window: u32, limit: u32) -> u32 {
        let window = match self.ceiling {
            None => oqmgr_window,
            Some(c) => c + u32::from(!self.probing && self.streak >= self.probe_after()),
        };
        if limit > 0 {
            window.min(limit)
        } else {
            window
        }
    }

    /// A delivery starts as the `started`-th in flight; true when it is a
    /// probe (above the ceiling).
    pub fn start(&mut self, started: u32) -> bool {
        let probe = self.ceiling.is_some_and(|c| started > c);
        self.probing |= probe;
        probe
    }

    /// A delivery that started as the `started`-th in flight ended without
    /// a site failure.
    pub fn success(&mut self, started: u32, probe: bool) {
        self.strike = false;
        if probe {
            self.probing = false;
            self.streak = 0;
            self.climb = PROBE_BASE;
            let c = self.ceiling.map_or(started, |c| c.max(started));
            self.ceiling = Some(c);
            if c > self.peak {
                self.peak = c;
                self.patience = PROBE_BASE;
            }
        } else if self.ceiling.is_some() {
            self.streak = self.streak.saturating_add(1);
        }
    }

    /// A delivery that started as the `started`-th in flight met a site
    /// failure (a 421, a refused or timed-out connection).
    pub fn failure(&mut self, started: u32, probe: bool) {
        self.streak = 0;
        if probe {
            self.probing = false;
            let ceiling = self.ceiling.unwrap_or(1);
            if ceiling >= self.peak {
                // The ceiling held: it is the peak, and the next probe
                // above it waits twice as long.
                self.peak = ceiling;
                self.patience = (self.patience * 2).min(PROBE_MAX);
            } else {
                // Below the peak: climb again later; after three failed
                // climbs in a row the peak no longer holds.
                self.climb = (self.climb * 2).min(PROBE_MAX);
                if self.climb >= 8 * PROBE_BASE {
                    self.peak = ceiling;
                    self.patience = self.climb;
                    self.climb = PROBE_BASE;
                }
            }
            return;
        }
        if started <= 1 {
            // A delivery that failed alone says the site is unwell, not
            // how many sessions it bears.
            return;
        }
        // The site failed with `started - 1` others in flight: that many
        // is at most what it bears.
        let bound = started - 1;
        match self.ceiling {
            None => {
                self.ceiling = Some(bound);
                self.peak = self.peak.max(bound);
            }
            Some(c) if bound + 1 == c => {
                // At the ceiling itself: once may be the server's
                // bookkeeping lagging behind a session that just ended
                // (anvil after a disconnect); twice without a success
                // between is the site bearing one less.
                if self.strike {
                    self.ceiling = Some(bound);
                }
                self.strike = !self.strike;
            }
            Some(c) if bound < c => self.ceiling = Some(bound),
            Some(_) => {}
        }
    }

    /// Starts from what an earlier destination of the same name learned
    /// (the transport's [`SiteMemory`]).
    pub fn remember(&mut self, learned: Learned) {
        self.ceiling = learned.ceiling.map(|c| c.max(1));
        self.peak = learned.peak;
        self.patience = learned.patience.clamp(PROBE_BASE, PROBE_MAX);
        self.climb = PROBE_BASE;
        self.streak = 0;
        self.probing = false;
        self.strike = false;
    }

    /// The site came back from the dead with `busy` deliveries in flight
    /// (the probe that proved it, usually): start from there and climb
    /// one probe at a time, quickly up to the peak and patiently above
    /// it, so a backlog does not meet a connection limit all at once.
    pub fn revive(&mut self, busy: u32) {
        self.ceiling = Some(busy.max(1));
        self.streak = 0;
        self.probing = false;
        self.climb = PROBE_BASE;
        self.strike = false;
    }
}

/// What a destination learned of its site: [`Concurrency`]'s state
/// without its deliveries in flight, and the failed pseudo-cohorts since
/// its last success, so that a site whose every delivery fails is
/// declared dead even when each of them is tried by a destination of its
/// own (one that emptied and was forgotten in between).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Learned {
    /// Deliveries in flight the site bears, if known.
    pub ceiling: Option<u32>,
    /// The highest ceiling held without a failed probe above it.
    pub peak: u32,
    /// Successes a probe at or above the peak waits for.
    pub patience: u32,
    /// Failed pseudo-cohorts since the last success (oqmgr's count,
    /// `crate::destination`).
    pub fail_cohorts: f64,
}

impl Learned {
    /// True when it says something a new destination would not know.
    pub fn is_news(&self) -> bool {
        self.ceiling.is_some() || self.fail_cohorts > 0.0
    }
}

/// What destinations that were forgotten learned, by queue name,
/// for the next destination of the same name (a transport keeps one).
///
/// # Invariants
/// - at most [`SiteMemory::LIMIT`] names are kept; the one stored
///   longest ago goes first;
/// - `by_age` and `by_name` hold the same names.
#[derive(Debug, Default)]
pub struct SiteMemory {
    /// What was learned and its storage stamp, by queue name (looked up,
    /// never walked).
    by_name: FastMap<Name, (Learned, u64)>,
    /// Names by storage stamp, oldest first.
    by_age: BTreeMap<u64, Name>,
    /// The next storage stamp.
    next: u64,
}

impl SiteMemory {
    /// Most names remembered.
    pub const LIMIT: usize = 10_000;

    /// Remembers what the destination `queue` learned.
    pub fn store(&mut self, queue: &Name, learned: Learned) {
        self.next += 1;
        if let Some((_, stamp)) = self.by_name.insert(queue.clone(), (learned, self.next)) {
            self.by_age.remove(&stamp);
        }
        self.by_age.insert(self.next, queue.clone());
        while self.by_age.len() > Self::LIMIT {
            if let Some((_, name)) = self.by_age.pop_first() {
                self.by_name.remove(&name);
            }
        }
    }

    /// What is remembered for `queue`, if anything.
    pub fn recall(&self, queue: &Name) -> Option<Learned> {
        self.by_name.get(queue).map(|(l, _)| *l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oqmgr_rules_until_the_first_failure() {
        let mut c = Concurrency::new();
        let p = c.start(5);
        c.success(5, p);
        assert_eq!(c.window(9, 20), 9);
        assert_eq!(c.window(30, 20), 20, "the transport limit still caps");
    }

    #[test]
    fn a_failure_teaches_a_ceiling_and_probes_wait_longer_each_time() {
        let mut c = Concurrency::new();
        let p = c.start(6);
        c.failure(6, p);
        assert_eq!(c.ceiling(), Some(5));
        assert_eq!(c.window(9, 20), 5);
        for _ in 0..PROBE_BASE {
            let p = c.start(5);
            c.success(5, p);
        }
        assert_eq!(c.window(9, 20), 6, "room for one probe");
        assert!(c.start(6));
        assert_eq!(c.window(9, 20), 5, "one probe at a time");
        c.failure(6, true);
        assert_eq!(c.ceiling(), Some(5));
        for _ in 0..PROBE_BASE {
            c.success(5, false);
        }
        assert_eq!(c.window(9, 20), 5, "the next probe waits twice as long");
        for _ in 0..PROBE_BASE {
            c.success(5, false);
        }
        assert_eq!(c.window(9, 20), 6);
    }

    #[test]
    fn a_probe_that_succeeds_raises_the_ceiling() {
        let mut c = Concurrency::new();
        c.failure(3, false);
        for _ in 0..PROBE_BASE {
            c.success(2, false);
        }
        assert!(c.start(3));
        c.success(3, true);
        assert_eq!(c.ceiling(), Some(3));
        assert_eq!(c.window(9, 20), 3);
    }

    #[test]
    fn back_from_the_dead_it_climbs_fast_to_the_peak_then_patiently() {
        let mut c = Concurrency::new();
        c.failure(6, false);
        for _ in 0..PROBE_BASE {
            c.success(5, false);
        }
        assert!(c.start(6));
        c.failure(6, true);
        assert_eq!(c.learned().patience, 2 * PROBE_BASE);
        c.revive(1);
        for level in 2..=5 {
            for _ in 0..PROBE_BASE {
                c.success(level - 1, false);
            }
            assert_eq!(c.window(9, 20), level, "below the peak: after {PROBE_BASE}");
            assert!(c.start(level));
            c.success(level, true);
        }
        for _ in 0..PROBE_BASE {
            c.success(5, false);
        }
        assert_eq!(c.window(9, 20), 5, "at the peak the old patience holds");
    }

    #[test]
    fn the_memory_keeps_the_latest_names() {
        let mut m = SiteMemory::default();
        let learned = |ceiling| Learned {
            ceiling: Some(ceiling),
            peak: ceiling,
            patience: PROBE_BASE,
            fail_cohorts: 0.0,
        };
        for n in 0..SiteMemory::LIMIT + 2 {
            m.store(&Name::from(format!("d{n}").as_str()), learned(5));
        }
        m.store(&Name::from("d2"), learned(3));
        assert_eq!(m.recall(&Name::from("d0")), None, "the oldest went first");
        assert_eq!(m.recall(&Name::from("d2")), Some(learned(3)));
        m.store(&Name::from("new"), learned(4));
        assert_eq!(
            m.recall(&Name::from("d2")),
            Some(learned(3)),
            "stored again, so kept"
        );
        assert_eq!(m.recall(&Name::from("d3")), None);
    }

    #[test]
    fn a_failure_below_the_ceiling_lowers_it_one_at_it_the_second_time() {
        let mut c = Concurrency::new();
        c.failure(9, false);
        c.failure(4, false);
        assert_eq!(c.ceiling(), Some(3), "below: at once");
        c.failure(3, false);
        assert_eq!(c.ceiling(), Some(3), "at the ceiling: once is forgiven");
        c.success(3, false);
        c.failure(3, false);
        assert_eq!(c.ceiling(), Some(3), "a success between: forgiven again");
        c.failure(3, false);
        assert_eq!(c.ceiling(), Some(2));
        c.failure(2, false);
        c.failure(2, false);
        assert_eq!(c.ceiling(), Some(1));
        c.failure(1, false);
        assert_eq!(c.ceiling(), Some(1), "a lone failure teaches nothing");
        let mut fresh = Concurrency::new();
        fresh.failure(1, false);
        assert_eq!(fresh.ceiling(), None);
    }
}
