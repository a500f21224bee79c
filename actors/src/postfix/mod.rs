//! Postfix wire formats and IPC: queue files and IDs, the attribute
//! protocol and the clients qmgr uses (trivial-rewrite, delivery agents,
//! bounce/defer/trace), and life under master(8) (arguments, status,
//! triggers, flow control, logging).

pub mod args;
pub mod attr;
pub mod bounce;
pub mod chroot_uid;
pub mod deliver_request;
pub mod dialect;
pub mod flow;
pub mod log;
pub mod log_format;
pub mod log_subscriber;
pub mod mail_open_ok;
pub mod master;
pub mod queue_file;
pub mod queue_file_parse;
pub mod queue_file_write;
pub mod queue_id;
pub mod record;
pub mod rewrite;
pub mod trigger_server;
pub mod verbose;
