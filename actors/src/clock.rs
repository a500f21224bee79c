//! The one place that reads time (Postfix: `event_time()` of `events.c`).
//!
//! The scheduling core never reads a clock: every input carries `now`, an
//! [`oqmgr::time::Instant`] in milliseconds since an origin the host picks.
//! This module is that host's clock. It counts on the tokio clock
//! (`actix::clock`), not `std::time`, so a test that pauses tokio time sees the
//! same `now` in the core as the timers armed with `run_later` do; reading
//! `std::time::Instant::now` anywhere else would make paused-time tests
//! disagree with themselves. `actors/clippy.toml` forbids the other clocks.
//!
//! # Two clocks
//! Core instants ([`Clock::now`]) are monotonic: timers and deadlines
//! armed on them cannot move when the wall clock is stepped (NTP, a VM
//! suspend and resume). Queue files carry wall-clock times (arrival,
//! next-attempt stamps, warning times), and Postfix compares those with a
//! fresh `time()`. So a [`Clock::wall`] clock also reads the wall clock
//! each time a file time is compared or written ([`Clock::wall_now`]),
//! and converts between the two frames at that moment
//! ([`Clock::to_wall`], [`Clock::from_wall`]): after a step, new mail is
//! not "in the future" and a deferral is stamped its backoff ahead of the
//! wall clock, not an hour off.
//!
//! # Invariants
//! - `now()` never goes backwards (the tokio clock is monotonic);
//! - the origin is fixed when the clock is made: core instants from one run
//!   compare meaningfully with each other; for [`Clock::wall`] they equal
//!   Unix milliseconds until the wall clock is stepped, after which only
//!   the conversions relate them to file times;
//! - a clock made with [`Clock::starting_at`] (simulator, tests) has no
//!   wall clock: its core time is its wall time and the conversions are
//!   the identity.

use actix::clock::Instant as TokioInstant;
use oqmgr::time::{Duration, Instant};
use std::time::{SystemTime, UNIX_EPOCH};

/// Maps the tokio clock onto core instants.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// The tokio instant the clock was made at.
    start: TokioInstant,
    /// The core instant that `start` stands for.
    origin: Instant,
    /// The wall clock, for a clock in the Unix frame.
    wall: Option<fn() -> SystemTime>,
}

impl Clock {
    /// A clock whose current time is `origin` now; the simulator's and the
    /// tests' choice is [`Instant::ZERO`].
    pub fn starting_at(origin: Instant) -> Clock {
        #[allow(clippy::disallowed_methods)] // the one sanctioned read
        let start = TokioInstant::now();
        Clock {
            start,
            origin,
            wall: None,
        }
    }

    /// A clock counting milliseconds since the Unix epoch, as queue files
    /// stamp their times; the daemon's choice. Core time runs on from the
    /// wall clock's reading now; file times are compared with the wall
    /// clock as it reads then ([`Clock::wall_now`]).
    pub fn wall() -> Clock {
        #[allow(clippy::disallowed_methods)] // the one sanctioned read
        Clock::wall_with(SystemTime::now)
    }

    /// [`Clock::wall`] with another source of wall-clock time (tests step
    /// it to play an NTP step or a suspend).
    pub fn wall_with(source: fn() -> SystemTime) -> Clock {
        Clock {
            wall: Some(source),
            ..Clock::starting_at(unix_millis(source()))
        }
    }

    /// The current core instant, in whole milliseconds (rounded down).
    pub fn now(&self) -> Instant {
        #[allow(clippy::disallowed_methods)] // the one sanctioned read
        let elapsed = TokioInstant::now().saturating_duration_since(self.start);
        let ms = elapsed.as_millis().min(u128::from(u64::MAX)) as u64;
        self.origin + Duration::from_millis(ms)
    }

    /// The wall clock now, in Unix milliseconds: what file times are
    /// compared with and stamped from. Core time for a clock without one.
    pub fn wall_now(&self) -> Instant {
        match self.wall {
            Some(source) => unix_millis(source()),
            None => self.now(),
        }
    }

    /// The wall-clock time of core instant `at`, reckoned from now (a
    /// deadline becomes a file stamp as far ahead of the wall clock as it
    /// is ahead of core time).
    pub fn to_wall(&self, at: Instant) -> Instant {
        shift(at, self.now(), self.wall_now())
    }

    /// The core instant of wall-clock time `at` (a time read from a file),
    /// reckoned from now.
    pub fn from_wall(&self, at: Instant) -> Instant {
        shift(at, self.wall_now(), self.now())
    }

    /// How long from now until core instant `at`; zero when it is past.
    pub fn until(&self, at: Instant) -> std::time::Duration {
        std::time::Duration::from_millis(at.saturating_since(self.now()).as_millis())
    }
}

/// `at`, given in a frame where `from` is now, in the frame where `to` is
/// now (saturating at the origin).
fn shift(at: Instant, from: Instant, to: Instant) -> Instant {
    if at >= from {
        to + at.saturating_since(from)
    } else {
        Instant(
            to.as_millis()
                .saturating_sub(from.saturating_since(at).as_millis()),
        )
    }
}

/// A wall-clock time as Unix milliseconds (0 before 1970).
fn unix_millis(t: SystemTime) -> Instant {
    Instant(
        t.duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis().min(u128::from(u64::MAX)) as u64),
    )
}

/// The tokio clock for I/O deadlines and caches (IPC timeouts, the
/// trivial-rewrite client cache, trigger reads): never for scheduling
/// decisions, which take `now` from [`Clock`]. Paused in tests like the rest.
pub fn io_now() -> tokio::time::Instant {
    #[allow(clippy::disallowed_methods)] // sanctioned: I/O deadlines only
    tokio::time::Instant::now()
}

/// The process clock for test tooling that waits on external programs
/// (the Postfix sandbox polls its maillog in real time).
pub fn tooling_now() -> std::time::Instant {
    #[allow(clippy::disallowed_methods)] // sanctioned: sandbox polling only
    std::time::Instant::now()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A wall clock the test sets by hand, in Unix seconds.
    static WALL: AtomicU64 = AtomicU64::new(1_000_000);

    fn fake_wall() -> SystemTime {
        UNIX_EPOCH + std::time::Duration::from_secs(WALL.load(Ordering::SeqCst))
    }

    #[test]
    fn file_times_follow_the_wall_clock_timers_do_not() {
        WALL.store(1_000_000, Ordering::SeqCst);
        let clock = Clock::wall_with(fake_wall);
        let core = clock.now();
        assert!(core.as_millis() / 1000 >= 1_000_000 && core.as_millis() / 1000 < 1_000_002);
        // An hour forward: core time does not jump, wall time does.
        WALL.store(1_003_600, Ordering::SeqCst);
        assert!(clock.now().saturating_since(core).as_millis() < 2000);
        assert_eq!(clock.wall_now(), Instant::from_secs(1_003_600));
        // A deadline 300 s ahead of core time is stamped 300 s ahead of
        // the wall clock; a file time maps back the same way.
        let deadline = clock.now() + Duration::from_secs(300);
        let stamped = clock.to_wall(deadline);
        assert_eq!(stamped.saturating_since(clock.wall_now()).as_secs(), 300);
        assert_eq!(clock.from_wall(stamped), deadline);
        // An hour back from the start: still 300 s.
        WALL.store(996_400, Ordering::SeqCst);
        let stamped = clock.to_wall(deadline);
        assert!((299..=300).contains(&stamped.saturating_since(clock.wall_now()).as_secs()));
        // A time in the past maps into the past.
        let past = clock.from_wall(Instant::from_secs(996_400 - 60));
        assert_eq!(clock.now().saturating_since(past).as_secs(), 60);
    }

    #[test]
    fn without_a_wall_clock_the_conversions_are_the_identity() {
        let clock = Clock::starting_at(Instant::from_secs(5));
        let at = Instant::from_secs(42);
        assert_eq!(clock.to_wall(at), at);
        assert_eq!(clock.from_wall(at), at);
    }
}
