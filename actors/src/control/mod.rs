//! The operator's side of the daemon: the control socket behind `oqmgr
//! ctl`, the live-state query it answers from, and the state file that
//! keeps suspensions across restarts (no Postfix counterpart; the core's
//! half is `oqmgr::control` and `oqmgr::live_state`).
//!
//! - [`live_query`]: **the** query of the running scheduler: one
//!   [`oqmgr::live_state::LiveState`] gathered from the supervisor, every
//!   transport and every destination actor, plus [`live_query::DaemonInfo`]
//!   (uptime, Postfix version and dialect, recipient outcomes per transport
//!   since start). `oqmgr ctl` reads it through the socket; the metrics and
//!   status page are meant to call the same function in-process.
//! - [`protocol`]: versioned JSON lines, one request and one reply per
//!   connection.
//! - [`server`]: the UNIX socket `private/oqmgr-ctl` in the queue directory
//!   (reachable by root and `mail_owner` only, as `private/` is), with
//!   bounded, timed reads: a malformed, oversized or slow request gets an
//!   error reply or is dropped, and is logged; it never blocks scheduling.
//! - [`state_file`]: the suspensions, written atomically to
//!   `$data_directory/oqmgr-suspensions.json` through a directory handle
//!   opened before chroot.

pub mod live_query;
pub mod protocol;
pub mod queue_shape;
pub mod server;
pub mod state_file;
