//! Postfix wire formats: queue files, queue IDs, and (added by other
//! modules) the IPC protocols qmgr speaks.

pub mod args;
pub mod chroot_uid;
pub mod flow;
pub mod log;
pub mod log_format;
pub mod log_subscriber;
pub mod master;
pub mod queue_file;
pub mod queue_file_parse;
pub mod queue_file_write;
pub mod queue_id;
pub mod record;
pub mod trigger_server;
