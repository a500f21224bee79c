//! adaptive - our daemon under `oqmgr_scheduling_policy = adaptive` on
//! real Postfix (no side-by-side run: Postfix's oqmgr has no such policy;
//! docs/adaptive-policy.md): a dead site is probed and, once its sink
//! listens, gets all its mail within seconds, without a flush and long
//! before `minimal_backoff_time`; no defer log is left behind.

use std::time::Instant;

use super::env::{all_done, Env, Setup, Spec};
use super::flow::SENDER;
use super::outcome::ScenarioOutcome;

/// Messages sent while the site is dead (besides the first, which kills
/// it).
pub const WHILE_DEAD: usize = 3;

/// What [`dead_site_probed`] saw, besides the rows.
#[derive(Debug)]
pub struct Probed {
    /// The rows and facts.
    pub outcome: ScenarioOutcome,
    /// Seconds from the sink's start to the last delivery.
    pub after_sink: f64,
    /// Files left in `defer/`.
    pub defer_logs: usize,
    /// Deferrals for a refused connection logged before the sink started
    /// (the first message's, the retry agent's and the failed probes').
    pub refusals: usize,
}

/// A site refusing connections dies at the first message (initial
/// concurrency 1); three more arrive. Its sink then starts: the probe
/// gets through and the deferred mail follows, with a 300 s
/// `minimal_backoff_time` and no `postqueue -f`.
pub fn dead_site_probed(q: &Setup) -> Probed {
    let mut env = Env::start(
        q,
        &Spec {
            ports: &["dead"],
            smtp_routes: &[("dead.test", "dead")],
            raw_routes: &[],
            settings: &[
                ("smtp_initial_destination_concurrency", "1"),
                ("minimal_backoff_time", "300s"),
                ("maximal_backoff_time", "600s"),
            ],
        },
    );
    env.send("x0", SENDER, &["u0@dead.test"]);
    env.wait_outcome(|o| o.rows_of("x0").any(|r| r.result == "deferred"));
    for i in 1..=WHILE_DEAD {
        env.send(&format!("x{i}"), SENDER, &[&format!("u{i}@dead.test")]);
    }
    env.wait_outcome(|o| o.rows.len() == 1 + WHILE_DEAD);
    // Long enough for a few probes to fail first.
    std::thread::sleep(std::time::Duration::from_secs(10));
    let probes = env.log().grep("Connection refused").len();
    let started = Instant::now();
    env.start_sink("dead", &[]);
    let outcome = env.wait_outcome(|o| all_done(o, 1 + WHILE_DEAD, "sent"));
    let after_sink = started.elapsed().as_secs_f64();
    let defer_logs = env.sb.queue_files("defer").len();
    let mut outcome = env.finish(outcome);
    outcome.fact(format!("refusals before the sink started: {probes}"));
    Probed {
        outcome,
        after_sink,
        defer_logs,
        refusals: probes,
    }
}

/// Expectation of [`dead_site_probed`].
pub fn expect_dead_site_probed(p: &Probed) {
    assert!(
        all_done(&p.outcome, 1 + WHILE_DEAD, "sent"),
        "every message delivered:\n{}",
        p.outcome.render()
    );
    // Probes every 16 to 20 s, then a release: far below the 300 s that
    // oqmgr waits before it tries a dead site again.
    assert!(
        p.after_sink < 45.0,
        "delivered {:.1} s after the sink started",
        p.after_sink
    );
    assert_eq!(p.defer_logs, 0, "no defer log left behind");
    assert!(
        p.refusals >= 1 + WHILE_DEAD + 2,
        "probes failed while the site was down:\n{}",
        p.outcome.render()
    );
}
