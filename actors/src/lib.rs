//! actix actors that carry out the scheduling core's decisions, the Postfix
//! I/O around them (queue files, sockets, master(8) protocol), and the
//! `oqmgr` daemon.
//!
//! # Actors
//! Every core entity is an actor: one [`supervisor::SupervisorActor`], one
//! [`transport::TransportActor`] per transport, one
//! [`destination::DestinationActor`] per destination, and one
//! [`scanner::ScannerActor`] per queue directory. They exchange the core's
//! messages with `do_send` and carry out its effects through one function,
//! `host::run`. Mail leaves through [`agent::DeliveryAgent`]s;
//! [`scheduler::Scheduler::builder`] wires it all on an actix System.
pub mod agent;
pub mod clock;
pub mod destination;
pub mod host;
pub mod memstore;
pub mod registry;
pub mod scanner;
pub mod scheduler;
pub mod simulate;
pub mod supervisor;
pub mod transport;
