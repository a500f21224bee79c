//! oqmgr-devtools - test and benchmark tooling for the oqmgr project,
//! kept out of the daemon's dependency graph.
//!
//! - [`campaign`]: the fault campaign (binary `oqmgr-campaign`, and the
//!   short form run by `tests/campaign_short.rs`).
pub mod campaign;
