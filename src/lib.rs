//! The pure scheduling core of an oqmgr(8)-compatible Postfix queue manager.
//!
//! This crate plays the part of Postfix's `qmgr.h`: the one picture of the
//! data model. It decides which queued mail goes where, when, and how many
//! deliveries run at once. It performs no I/O: every input carries `now`, and
//! every decision comes back as [`effect::Effect`]s for a host to carry out.
//! Two hosts exist: the actix actors of `oqmgr-actors` (the daemon) and
//! [`sim`], a discrete-event simulator on a virtual clock.
//!
//! # Layout
//! - [`active`]: the supervisor: active-queue limits, admission, triggers,
//!   completion (`qmgr_active.c`, `qmgr.c`).
//! - [`transport`]: agent allocation and round robin (`qmgr_transport.c`).
//! - [`destination`]: windows, feedback, cohort failure, dead and suspended
//!   destinations (`qmgr_queue.c`, `qmgr_entry.c`).
//! - [`route`]: recipients to delivery requests (`qmgr_message.c`).
//! - [`message`]: message accounting, backoff, expiry.
//! - [`scan`], [`trigger`]: queue scans and trigger requests.
//! - [`feedback`], [`params`]: configuration.
//! - [`adaptive`]: the opt-in `oqmgr_scheduling_policy = adaptive`.
//! - [`control`], [`live_state`]: the operator's commands (suspend, resume,
//!   flush) and view of the running scheduler.
//! - [`effect`], [`entry`], [`name`], [`trace`], [`time`]: the vocabulary.
//! - [`events`]: the event loop both hosts carry effects out through
//!   (`events.c`).
//! - [`sim`]: the simulator, its scenarios and reports.
//!
//! # Architecture invariants
//! - The core never reads a clock, sleeps, spawns or touches a file.
//! - No decision and no trace line depends on hash-map iteration order:
//!   rotation uses ordered rings, lookups use ordered maps.
//! - No actix or tokio type appears in this crate.
//! - Entities talk only through [`effect::Msg`]; both hosts deliver them
//!   through one [`events::EventLoop`], in one global send order.

// Determinism: no decision may depend on a hash map's iteration order.
#![deny(clippy::iter_over_hash_type)]

pub mod active;
pub mod adaptive;
pub mod control;
pub mod destination;
pub mod effect;
pub mod entry;
pub mod events;
pub mod feedback;
pub mod live_state;
pub mod message;
pub mod name;
pub mod params;
pub mod route;
pub mod scan;
pub mod sim;
pub mod time;
pub mod trace;
pub mod transport;
pub mod trigger;
