//! Virtual time for the scheduling core (Postfix: `event_time()`).
//!
//! The core never reads a clock. Every input carries `now`, an [`Instant`]
//! counted in milliseconds from an origin the host picks (the daemon uses the
//! Unix epoch, the simulator uses zero). Whole milliseconds keep arithmetic
//! exact, so the same inputs always give the same trace.
//!
//! # Invariants
//! - arithmetic saturates instead of wrapping: a bad configuration value can
//!   make a deadline absurd, never make it go backwards.
//!
//! # Serialization
//! [`Duration`] serializes (for yaml snapshots of resolved configuration)
//! as a string in Postfix's own time syntax: `"300s"` for whole seconds,
//! `"1500ms"` otherwise, so a snapshot reads like main.cf.

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

/// A point in time, in milliseconds since the host's origin (serialized
/// as that number, for the daemon's state file and control replies).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Instant(pub u64);

/// A span of time in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub u64);

impl Duration {
    /// No time at all; Postfix's "0 = off" for delays.
    pub const ZERO: Duration = Duration(0);

    /// A span of whole seconds.
    pub const fn from_secs(secs: u64) -> Duration {
        Duration(secs.saturating_mul(1000))
    }

    /// A span of milliseconds.
    pub const fn from_millis(ms: u64) -> Duration {
        Duration(ms)
    }

    /// Whole seconds, rounded down (Postfix keeps most times in seconds).
    pub const fn as_secs(self) -> u64 {
        self.0 / 1000
    }

    /// Milliseconds.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// True for a zero span, which Postfix reads as "feature off".
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl Instant {
    /// The origin.
    pub const ZERO: Instant = Instant(0);

    /// An instant that is `secs` seconds after the origin.
    pub const fn from_secs(secs: u64) -> Instant {
        Instant(secs.saturating_mul(1000))
    }

    /// Milliseconds since the origin.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Whole seconds since the origin, rounded down.
    pub const fn as_secs(self) -> u64 {
        self.0 / 1000
    }

    /// The time elapsed since `earlier`, or zero when `earlier` is later.
    pub const fn saturating_since(self, earlier: Instant) -> Duration {
        Duration(self.0.saturating_sub(earlier.0))
    }
}

impl std::ops::Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(d.0))
    }
}

impl std::ops::Sub<Duration> for Instant {
    type Output = Instant;
    fn sub(self, d: Duration) -> Instant {
        Instant(self.0.saturating_sub(d.0))
    }
}

impl std::ops::Add for Duration {
    type Output = Duration;
    fn add(self, d: Duration) -> Duration {
        Duration(self.0.saturating_add(d.0))
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0 % 1000 == 0 {
            serializer.collect_str(&format_args!("{}s", self.0 / 1000))
        } else {
            serializer.collect_str(&format_args!("{}ms", self.0))
        }
    }
}

/// Traces print seconds with three decimals, so snapshots never depend on
/// float formatting.
impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}", self.0 / 1000, self.0 % 1000)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}s", self.0 / 1000, self.0 % 1000)
    }
}
