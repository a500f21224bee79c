//! Postfix I/O: how the daemon talks to Postfix's processes and files.

pub mod args;
pub mod chroot_uid;
pub mod flow;
pub mod log;
pub mod log_subscriber;
pub mod master;
pub mod trigger_server;
