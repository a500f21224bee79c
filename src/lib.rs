//! The pure scheduling core of an oqmgr(8)-compatible Postfix queue manager.
//!
//! This crate plays the part of Postfix's `qmgr.h`: the one picture of the
//! data model. It decides which queued mail goes where, when, and how many
//! deliveries run at once. It performs no I/O: every input carries `now`, and
//! every decision comes back as effects for a host to carry out. Two hosts
//! exist: the actix actors of `oqmgr-actors` (the daemon) and [`sim`], a
//! discrete-event simulator on a virtual clock.
//!
//! # Architecture invariants
//! - The core never reads a clock, sleeps, spawns or touches a file.
//! - No decision and no trace line depends on hash-map iteration order:
//!   rotation uses ordered rings, lookups use ordered maps.
//! - No actix or tokio type appears in this crate.

pub mod feedback;
pub mod params;
pub mod time;
