//! actix actors that carry out the scheduling core's decisions, the Postfix
//! I/O around them (queue files, sockets, master(8) protocol), and the
//! `oqmgr` daemon. Test and benchmark tooling (Postfix sandbox, in-memory
//! queue store, queue-file writer, benchmarks, demo) is in the
//! `oqmgr-devtools` package, which the daemon never links.
//!
//! # Actor topology
//! ```text
//!                      ┌──────────── event loop (host::run): one bus, one timer queue ────────────┐
//!  triggers, agents' ──┤ Step ▶ SupervisorActor   Step ▶ TransportActor ×N   Step ▶ DestinationActor ×M
//!  answers, completions│       ◀ effects                ◀ effects                  ◀ effects
//!   (Host::input)      │ ScanStart/ScanNext/Admit ▶ ScannerActor ×2 ──▶ QueueStore (files)
//!                      └ Connect / Deliver ▶ Outside: DeliveryAgent per transport ──DeliveryReport──▶ input
//! ```
//! Every core entity is an actor: one [`supervisor_actor::SupervisorActor`], one
//! [`transport_actor::TransportActor`] per transport, one
//! [`destination_actor::DestinationActor`] per destination, and one
//! [`scanner_actor::ScannerActor`] per queue directory. Each owns one core value
//! and is a thin shell around it: a step comes in, the core returns
//! effects, and one loop, `host::run`, carries them out for every actor
//! alike, through the core's own event loop (`oqmgr::events`): messages on
//! its bus, timers in its queue, deliveries through an [`outside::Outside`]
//! (the registered [`agent::DeliveryAgent`]s), files through the
//! [`queue_store::QueueStore`]. [`registry::Registry`] maps core names
//! to mailboxes; [`clock::Clock`] is the only reader of time.
//! [`scheduler::Scheduler::builder`] wires it all on the current actix
//! System.
//!
//! # Placement and order
//! All scheduling actors run on the System arbiter: one thread, like
//! Postfix's event loop, and the loop steps one actor at a time, in the
//! simulator's order (`oqmgr::sim` drives the same event loop), so tests
//! can pause the clock and `actors/tests/actors.rs` requires the actors to
//! print the simulator's trace, byte for byte, on every scenario.
pub mod agent;
pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod custom_transports;
pub mod daemon;
pub mod destination_actor;
pub mod host;
pub mod metrics;
pub mod outside;
pub mod postfix;
pub mod queue_store;
pub mod registry;
pub mod scanner_actor;
pub mod scheduler;
pub mod supervisor_actor;
pub mod transport_actor;

#[cfg(test)]
mod testing;
