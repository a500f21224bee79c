//! actix actors that carry out the scheduling core's decisions, the Postfix
//! I/O around them (queue files, sockets, master(8) protocol), and the
//! `oqmgr` daemon.

pub mod postfix;
pub mod sandbox;
