//! The adaptive scheduling policy, `oqmgr_scheduling_policy = adaptive`
//! (ours; no Postfix counterpart: with the default `oqmgr` every decision
//! is oqmgr's, `qmgr_queue.c`, `qmgr_active.c`, `qmgr_message.c`).
//!
//! oqmgr's scheduler is simple and robust, and pays for it in four places
//! that the adaptive policy addresses, each in a module of its own:
//! - [`window`]: a destination learns the concurrency its site bears and
//!   stays there, probing above it one delivery at a time, instead of
//!   climbing into a connection limit again and again;
//! - [`probe`]: a dead destination is tried with one held entry after a
//!   short, growing, jittered delay instead of being left alone for
//!   `minimal_backoff_time`, so a site that comes back gets mail within
//!   seconds;
//! - [`jitter`]: the deterministic randomness both use, and the spread of
//!   each deferred message's next attempt ([`retry_delay`]);
//! - [`backlog`]: the supervisor remembers where the deferred files it
//!   made go, leaves those of a dead site in the queue instead of reading
//!   them again and again, brings them back at the pace their site takes
//!   mail once it is alive, and keeps one destination from filling the
//!   whole active queue while others wait.
//!
//! Everything stays in the pure core: no clock, no hash-map iteration, no
//! new effect for the hosts. docs/adaptive-policy.md has the measurements.
//!
//! # Parameters
//! `oqmgr_scheduling_policy` (`oqmgr` or `adaptive`); the policy reads
//! `minimal_backoff_time`, `maximal_backoff_time`,
//! `qmgr_message_active_limit` and the transports' concurrency limits.

pub mod backlog;
pub mod jitter;
pub mod probe;
pub mod window;

use serde::Serialize;

use crate::time::{Duration, Instant};

/// Which scheduling policy the core follows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SchedulingPolicy {
    /// oqmgr's decisions, byte for byte (the default).
    #[default]
    Oqmgr,
    /// The adaptive policy of this module.
    Adaptive,
}

impl SchedulingPolicy {
    /// The policy a checked parameter value names (anything but
    /// `adaptive` is oqmgr's: the parameter table rejects other words).
    pub fn from_word(word: &str) -> SchedulingPolicy {
        if word == "adaptive" {
            SchedulingPolicy::Adaptive
        } else {
            SchedulingPolicy::Oqmgr
        }
    }

    /// True for the default policy (serde leaves it out).
    pub fn is_oqmgr(&self) -> bool {
        *self == SchedulingPolicy::Oqmgr
    }
}

/// What a destination keeps under the adaptive policy.
#[derive(Clone, Debug)]
pub struct DestinationState {
    /// The learned concurrency.
    pub window: window::Concurrency,
    /// The probe while dead.
    pub probe: probe::Probe,
    /// The supervisor was told the site is dead and not yet that it is
    /// back.
    pub told_dead: bool,
}

impl DestinationState {
    /// Nothing learned; timers numbered from `epoch`'s range.
    pub fn new(epoch: u64) -> DestinationState {
        DestinationState {
            window: window::Concurrency::new(),
            probe: probe::Probe::new(epoch),
            told_dead: false,
        }
    }
}

/// The wait before a deferred message's next attempt: oqmgr's `backoff`
/// stretched by up to a half, by an amount drawn from the queue ID `id`
/// and the time of the deferral, so that messages deferred together do
/// not all come back in the same queue run. Never shorter than oqmgr's
/// wait, and at most half a `maximal_backoff_time` longer.
pub fn retry_delay(backoff: Duration, id: &str, now: Instant) -> Duration {
    let stretch = 1.0 + 0.5 * jitter::unit(id, now.as_millis());
    Duration::from_millis((backoff.as_millis() as f64 * stretch).round() as u64)
}
