//! oqmgr-devtools - test and benchmark tooling for the oqmgr project, kept
//! out of the daemon's dependency graph.
//!
//! Nothing here is part of the queue manager: the `oqmgr` binary links
//! none of it (`cargo tree -p oqmgr-actors -e normal` does not list this
//! package). `oqmgr-actors` uses it as a dev-dependency, for its tests.
//!
//! - [`sandbox`]: private, throw-away Postfix instances (tests, demo,
//!   benchmarks).
//! - [`benchmark`]: queue managers compared in a real Postfix (binary
//!   `oqmgr-bench`, `actors/scripts/bench`), and SCHEDULER_README's 421
//!   experiment (binary `oqmgr-scheduler-readme`).
//! - [`campaign`]: the fault campaign, ours and Postfix's oqmgr side by
//!   side (binary `oqmgr-campaign`; its short form is
//!   `tests/campaign_short.rs`).
//! - [`demo`]: ours and Postfix's oqmgr on one workload (binary
//!   `oqmgr-demo`, `actors/scripts/demo`).
//! - [`scheduler_bench`]: the scheduling core's own speed (binary
//!   `oqmgr-bench-scheduler`).
//! - [`simworld`]: the simulator's world under the actors, so that the
//!   actor tests run every scenario as the simulator does; its store is
//!   also the in-memory queue store of the other actor tests.
//! - [`queue_file_writer`]: queue files as cleanup(8) writes them, for
//!   tests and tools.

pub mod benchmark;
pub mod campaign;
pub mod demo;
pub mod queue_file_writer;
pub mod sandbox;
pub mod scheduler_bench;
pub mod simworld;

use std::path::PathBuf;

/// Our daemon built next to the running executable: `target/<profile>/
/// oqmgr` for a tool in `target/<profile>/` and for a test binary in
/// `target/<profile>/deps/`. `cargo build` of the workspace (or of
/// `-p oqmgr-actors --bin oqmgr`) puts it there; `cargo test --workspace`
/// builds it before running any test.
pub fn ours_next_to_me() -> Option<PathBuf> {
    let me = std::env::current_exe().ok()?;
    let dir = me.parent()?;
    [dir.join("oqmgr"), dir.parent()?.join("oqmgr")]
        .into_iter()
        .find(|p| p.is_file())
}

/// [`ours_next_to_me`] for a test, which cannot run without it.
///
/// # Panics
/// When the daemon is not built next to the test, saying how to build it.
pub fn ours_for_test() -> PathBuf {
    ours_next_to_me().expect(
        "our oqmgr binary is not built next to this test: run `cargo build -p oqmgr-actors \
         --bin oqmgr` (cargo test --workspace does)",
    )
}
