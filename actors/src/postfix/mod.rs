//! Postfix wire formats: queue files, queue IDs, and (added by other
//! modules) the IPC protocols qmgr speaks.

pub mod agent;
pub mod attr;
pub mod bounce;
pub mod dialect;
pub mod queue_file;
pub mod queue_file_parse;
pub mod queue_file_write;
pub mod queue_id;
pub mod record;
pub mod rewrite;
