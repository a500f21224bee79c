//! message - what the daemon keeps about each message in `active/`
//! (Postfix: the I/O half of `QMGR_MESSAGE` in `postfix/src/oqmgr/qmgr.h`).
//!
//! The scheduling core keeps only accounting; the envelope details that the
//! delivery requests and the bounce daemon need (sender, DSN fields, client
//! attributes, VERP, trace flags, record offsets) stay here, one shared
//! read-only [`ActiveMessage`] per queue ID in the [`ActiveTable`]. The store
//! inserts it at admission and takes it out at completion; the agent bridge
//! and the completion worker read it.
//!
//! # Invariants
//! - an entry exists exactly while the file is admitted (from `admit` to
//!   `complete`); a delivery request for a missing entry is a bug and is
//!   reported as a crashed delivery (mail deferred, not lost).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use oqmgr::name::Name;
use oqmgr::time::Instant;

use crate::postfix::attr::{Recipient as WireRecipient, Timeval};
use crate::postfix::dialect::Dialect;
use crate::postfix::queue_file::Recipient as FileRecipient;

pub use super::envelope::HeldEnvelope;
use crate::postfix::queue_id::QueueHashing;

/// One admitted message, as the agent bridge and the completion worker see
/// it.
#[derive(Debug)]
pub struct ActiveMessage {
    /// The queue ID (shared with the store's keys: one copy per message).
    pub queue_id: Name,
    /// The envelope's message-level fields, packed (recipients travel
    /// with each request; [`HeldEnvelope::envelope`] rebuilds the full
    /// envelope a delivery request needs).
    pub env: HeldEnvelope,
    /// When the file entered `active/` (the `delays=` split and the
    /// request's statistics).
    pub active_arrival: Timeval,
}

/// Admitted messages by queue ID.
pub type ActiveTable = Arc<DashMap<Name, Arc<ActiveMessage>>>;

/// Settings every daemon part needs, read once from main.cf.
#[derive(Clone, Debug)]
pub struct Site {
    /// `queue_directory` (the daemon has chdir-ed there; kept absolute for
    /// sockets and logs).
    pub queue_dir: PathBuf,
    /// `hash_queue_names`, `hash_queue_depth`.
    pub hashing: QueueHashing,
    /// Wire dialect of this Postfix version.
    pub dialect: Dialect,
    /// `qmgr_ipc_timeout`: bound on each IPC connect, read and write.
    pub ipc_timeout: Duration,
    /// How long to wait for a delivery agent's reply: the agents' own
    /// watchdog, `daemon_timeout` (a slow SMTP delivery is not a crash).
    pub agent_reply_timeout: Duration,
    /// `delay_logging_resolution_limit`.
    pub delay_resolution: u32,
    /// `disable_verp_bounces`.
    pub disable_verp_bounces: bool,
    /// `smtputf8_enable`.
    pub smtputf8_enable: bool,
    /// `minimal_backoff_time`: the retry delay when the bounce daemon
    /// fails, so a file whose bounces were not sent is kept.
    pub minimal_backoff: Duration,
    /// `soft_bounce`: custom transports defer what they would bounce.
    pub soft_bounce: bool,
}

impl Site {
    /// The path of `id` in `queue`, relative to the queue directory.
    pub fn path(&self, queue: &str, id: &str) -> PathBuf {
        PathBuf::from(self.hashing.queue_path(queue, id))
    }

    /// The socket of a `private/` service.
    pub fn private(&self, service: &str) -> PathBuf {
        // Built in one allocation: this runs for every agent connection.
        let mut path = PathBuf::with_capacity(
            self.queue_dir.as_os_str().len() + "/private/".len() + service.len(),
        );
        path.push(&self.queue_dir);
        path.push("private");
        path.push(service);
        path
    }
}

/// A core recipient for a file recipient, after resolving.
pub fn core_recipient(r: &FileRecipient, address: Vec<u8>) -> oqmgr::entry::Recipient {
    oqmgr::entry::Recipient {
        offset: r.offset,
        address: lossless(address),
        orig_address: lossless(r.orig_rcpt.clone()),
        dsn_orcpt: lossless(r.dsn_orcpt.clone()),
        dsn_notify: r.dsn_notify.max(0) as u32,
    }
}

/// The wire form of a core recipient, for delivery and bounce requests.
pub fn wire_recipient(r: &oqmgr::entry::Recipient) -> WireRecipient {
    WireRecipient {
        original: r.orig_address.as_bytes().to_vec(),
        address: r.address.as_bytes().to_vec(),
        offset: r.offset,
        dsn_orcpt: r.dsn_orcpt.as_bytes().to_vec(),
        dsn_notify: r.dsn_notify,
    }
}

/// Addresses are bytes in queue files; the core keeps `String`s. Postfix
/// addresses are ASCII or UTF-8 (SMTPUTF8); anything else is kept through
/// a lossy conversion, which only affects the core's sorting and queue
/// names, never what agents deliver to: requests are rebuilt from the
/// strings, so a non-UTF-8 byte becomes U+FFFD. cleanup(8) rejects such
/// addresses in practice.
fn lossless(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// A core instant as a `Timeval`.
pub fn timeval(at: Instant) -> Timeval {
    let ms = at.as_millis();
    Timeval {
        sec: (ms / 1000) as i64,
        usec: ((ms % 1000) * 1000) as i64,
    }
}
