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
//! # Invariants
//! - `now()` never goes backwards (the tokio clock is monotonic);
//! - the origin is fixed when the clock is made: core instants from one run
//!   compare meaningfully with each other and, for [`Clock::wall`], with the
//!   Unix times stored in queue files.

use actix::clock::Instant as TokioInstant;
use oqmgr::time::{Duration, Instant};

/// Maps the tokio clock onto core instants.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// The tokio instant the clock was made at.
    start: TokioInstant,
    /// The core instant that `start` stands for.
    origin: Instant,
}

impl Clock {
    /// A clock whose current time is `origin` now; the simulator's and the
    /// tests' choice is [`Instant::ZERO`].
    pub fn starting_at(origin: Instant) -> Clock {
        #[allow(clippy::disallowed_methods)] // the one sanctioned read
        let start = TokioInstant::now();
        Clock { start, origin }
    }

    /// A clock counting milliseconds since the Unix epoch, as queue files
    /// stamp their times; the daemon's choice. The wall clock is read once,
    /// here; later readings only add tokio's monotonic elapsed time, so a
    /// wall-clock step cannot move deadlines already armed.
    pub fn wall() -> Clock {
        #[allow(clippy::disallowed_methods)] // the one sanctioned read
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis().min(u128::from(u64::MAX)) as u64);
        Clock::starting_at(Instant(epoch))
    }

    /// The current core instant, in whole milliseconds (rounded down).
    pub fn now(&self) -> Instant {
        #[allow(clippy::disallowed_methods)] // the one sanctioned read
        let elapsed = TokioInstant::now().saturating_duration_since(self.start);
        let ms = elapsed.as_millis().min(u128::from(u64::MAX)) as u64;
        self.origin + Duration::from_millis(ms)
    }

    /// How long from now until core instant `at`; zero when it is past.
    pub fn until(&self, at: Instant) -> std::time::Duration {
        std::time::Duration::from_millis(at.saturating_since(self.now()).as_millis())
    }
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
