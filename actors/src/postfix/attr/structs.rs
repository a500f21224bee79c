//! Nested structures sent inline with `ATTR_TYPE_FUNC` (Postfix:
//! `rcpt_print.c`/`rcpb_scan.c`, `dsn_print.c`/`dsb_scan.c`,
//! `msg_stats_print.c`/`msg_stats_scan.c`).
//!
//! Each structure prints its attributes in a fixed order with no terminator
//! of its own; the enclosing list ends them. Text fields are kept as bytes
//! because addresses may be 8-bit (SMTPUTF8) and must reach the peer
//! unchanged.

use super::codec::{AttrFunc, AttrScan, AttrWriter};
use super::DecodeError;

/// One recipient as sent to delivery agents and the bounce daemon
/// (`RECIPIENT`, docs/postfix-ipc.md §6.3).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WireRecipient {
    /// Original recipient from the `O` record, or empty.
    pub original: Vec<u8>,
    /// The address, internal (unquoted) form.
    pub address: Vec<u8>,
    /// Byte offset of this recipient's `R` record in the queue file; the
    /// agent overwrites the record type there with `D` when it is done.
    pub offset: u64,
    /// DSN ORCPT (`rfc822;...`) or empty.
    pub dsn_orcpt: Vec<u8>,
    /// DSN NOTIFY bits (`dsn_notify`), 0 when none was given.
    pub dsn_notify: u32,
}

impl AttrFunc for WireRecipient {
    fn print(&self, w: &mut AttrWriter) {
        w.str("original_recipient", &self.original)
            .str("recipient", &self.address)
            .long("offset", self.offset)
            .str("dsn_orig_rcpt", &self.dsn_orcpt)
            .int("notify_flags", self.dsn_notify);
    }

    fn scan(s: &mut AttrScan<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            original: s.str("original_recipient")?,
            address: s.str("recipient")?,
            offset: s.long("offset")?,
            dsn_orcpt: s.str("dsn_orig_rcpt")?,
            dsn_notify: s.int("notify_flags")?,
        })
    }
}

/// Delivery status notification fields (`DSN`, docs/postfix-ipc.md §6.3).
///
/// In a delivery agent's reply this is the *hop status*: all empty unless
/// the next hop itself should be avoided for a while.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WireDsn {
    /// RFC 3463 status `d.ddd.ddd` (first digit 2, 4 or 5), or empty. Note
    /// that its wire name is `status`, like the integer that may follow.
    pub status: Vec<u8>,
    /// Diagnostic type (`smtp`, `x-unix`, ...) or empty.
    pub diag_type: Vec<u8>,
    /// Diagnostic text or empty.
    pub diag_text: Vec<u8>,
    /// Remote MTA name type (`dns`) or empty.
    pub mta_type: Vec<u8>,
    /// Remote MTA name or empty.
    pub mta_name: Vec<u8>,
    /// `failed`, `delayed`, `delivered`, ... or empty (the client fills it).
    pub action: Vec<u8>,
    /// Free text reason.
    pub reason: Vec<u8>,
}

impl WireDsn {
    /// A DSN with only a status and a reason, as Postfix's `DSN_SIMPLE`.
    pub fn simple(status: &str, reason: &str) -> Self {
        Self {
            status: status.into(),
            reason: reason.into(),
            ..Self::default()
        }
    }

    /// True when every field is empty (a hop status saying "no problem").
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl AttrFunc for WireDsn {
    fn print(&self, w: &mut AttrWriter) {
        w.str("status", &self.status)
            .str("diag_type", &self.diag_type)
            .str("diag_text", &self.diag_text)
            .str("mta_type", &self.mta_type)
            .str("mta_mname", &self.mta_name)
            .str("action", &self.action)
            .str("reason", &self.reason);
    }

    fn scan(s: &mut AttrScan<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            status: s.str("status")?,
            diag_type: s.str("diag_type")?,
            diag_text: s.str("diag_text")?,
            mta_type: s.str("mta_type")?,
            mta_name: s.str("mta_mname")?,
            action: s.str("action")?,
            reason: s.str("reason")?,
        })
    }
}

/// A `struct timeval` as it sits inside `MSG_STATS` on LP64.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timeval {
    /// Seconds since the epoch; 0 with `usec` 0 means "not known".
    pub sec: i64,
    /// Microseconds.
    pub usec: i64,
}

/// Message delivery statistics (`MSG_STATS`), sent as the `time` data
/// attribute holding the raw 88-byte LP64 struct.
///
/// # Compatibility
/// The receiver rejects any other payload size (`msg_stats_scan: size
/// mis-match`), so the layout is fixed: five timevals of two little-endian
/// i64 each, an i32 reuse count and 4 zero bytes of padding. This matches
/// x86-64 and aarch64 Linux, the platforms Postfix runs on here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MsgStats {
    /// When the message entered the queue (`T` record).
    pub incoming_arrival: Timeval,
    /// When the queue manager admitted it to `active/`.
    pub active_arrival: Timeval,
    /// When the agent received the request (the agent sets it if zero).
    pub agent_handoff: Timeval,
    /// When the agent's connection was set up.
    pub conn_setup_done: Timeval,
    /// When delivery finished.
    pub deliver_done: Timeval,
    /// How often the agent's connection had been used before.
    pub reuse_count: i32,
}

/// Wire size of [`MsgStats`].
pub const MSG_STATS_SIZE: usize = 88;

impl MsgStats {
    /// The raw struct bytes.
    pub fn to_bytes(&self) -> [u8; MSG_STATS_SIZE] {
        let mut out = [0u8; MSG_STATS_SIZE];
        let tvs = [
            self.incoming_arrival,
            self.active_arrival,
            self.agent_handoff,
            self.conn_setup_done,
            self.deliver_done,
        ];
        for (i, tv) in tvs.iter().enumerate() {
            out[i * 16..i * 16 + 8].copy_from_slice(&tv.sec.to_le_bytes());
            out[i * 16 + 8..i * 16 + 16].copy_from_slice(&tv.usec.to_le_bytes());
        }
        out[80..84].copy_from_slice(&self.reuse_count.to_le_bytes());
        out
    }

    /// Parses the raw struct; `None` unless exactly 88 bytes. Padding is
    /// ignored (the sender does not promise to zero it).
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() != MSG_STATS_SIZE {
            return None;
        }
        let i64_at = |o: usize| i64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
        let tv = |i: usize| Timeval {
            sec: i64_at(i * 16),
            usec: i64_at(i * 16 + 8),
        };
        Some(Self {
            incoming_arrival: tv(0),
            active_arrival: tv(1),
            agent_handoff: tv(2),
            conn_setup_done: tv(3),
            deliver_done: tv(4),
            reuse_count: i32::from_le_bytes(b[80..84].try_into().expect("4 bytes")),
        })
    }
}

impl AttrFunc for MsgStats {
    fn print(&self, w: &mut AttrWriter) {
        w.data("time", &self.to_bytes());
    }

    fn scan(s: &mut AttrScan<'_>) -> Result<Self, DecodeError> {
        let raw = s.data("time")?;
        Self::from_bytes(&raw).ok_or(DecodeError::BadSize {
            name: "time".to_owned(),
            expected: MSG_STATS_SIZE,
            found: raw.len(),
        })
    }
}
