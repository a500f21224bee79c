#![allow(clippy::disallowed_methods)] // tests wait on real daemons in real time
//! The IPC protocols of `oqmgr_actors::postfix` against REAL Postfix 3.7
//! daemons in a private instance without a queue manager: we play qmgr.
//!
//! - `rewrite`: real trivial-rewrite resolves and rewrites real addresses.
//! - `agent`: real discard, error, local and smtp agents deliver queue
//!   files that real cleanup wrote (moved to `active/` by us, as qmgr does);
//!   we check the reply, the `D` mark, the maillog and what smtp-sink got.
//! - `bounce`: real bounce daemon turns our APPEND/FLUSH/WARN/TRACE into
//!   real notices; verify and flush services answer our requests.

mod postfix_ipc {
    pub mod agent;
    pub mod bounce;
    pub mod rewrite;
    pub mod support;
}
