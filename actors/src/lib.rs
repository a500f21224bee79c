//! actix actors that carry out the scheduling core's decisions, the Postfix
//! I/O around them (queue files, sockets, master(8) protocol), and the
//! `oqmgr` daemon. Test and benchmark tooling (Postfix sandbox, in-memory
//! queue store, queue-file writer, benchmarks, demo) is in the
//! `oqmgr-devtools` package, which the daemon never links.
//!
//! # Actor topology
//! ```text
//!  public/qmgr triggers ──Trigger──▶ SupervisorActor ◀──ScanResult/Admitted── ScannerActor ×2
//!                                      │  ▲    │ ScanStart/ScanNext/Admit ──▶ (incoming, deferred)
//!                              Enqueue │  │ EntryDone          │
//!                                      ▼  │                    ▼ QueueStore (files)
//!                               TransportActor ×N ──Take/Stop──▶ DestinationActor ×M
//!                                 ▲  Capacity/Idle/NoWork/Revive ◀──┘   │ Deliver
//!                       Connect ──┘ (AgentReady/AgentFailed)            ▼
//!                                          DeliveryAgent (Recipient<Deliver>) ──DeliveryReport──▶ Report
//! ```
//! Every core entity is an actor: one [`supervisor_actor::SupervisorActor`], one
//! [`transport_actor::TransportActor`] per transport, one
//! [`destination_actor::DestinationActor`] per destination, and one
//! [`scanner_actor::ScannerActor`] per queue directory. Each owns one core value
//! and is a thin shell around it: a message comes in, the core returns
//! effects, and one function, `host::run`, carries them out for every actor
//! alike (`do_send` for messages, `run_later` for timers, the registered
//! [`agent::DeliveryAgent`] for deliveries, the
//! [`queue_store::QueueStore`] for files). [`registry::Registry`] maps core names
//! to mailboxes; [`clock::Clock`] is the only reader of time.
//! [`scheduler::Scheduler::builder`] wires it all on the current actix
//! System.
//!
//! # Placement and order
//! All scheduling actors run on the System arbiter: one thread, like
//! Postfix's event loop, so messages from one sender arrive in send order
//! and tests can pause the clock. The simulator (`oqmgr::sim`) hosts the same
//! core on a FIFO bus; `actors/tests/actors.rs` checks both make the same
//! decisions and documents exactly where their orders may differ.
pub mod agent;
pub mod cli;
pub mod clock;
pub mod config;
pub mod custom_transports;
pub mod daemon;
pub mod destination_actor;
pub mod host;
pub mod postfix;
pub mod queue_store;
pub mod registry;
pub mod scanner_actor;
pub mod scheduler;
pub mod supervisor_actor;
pub mod transport_actor;

#[cfg(test)]
mod testing;
