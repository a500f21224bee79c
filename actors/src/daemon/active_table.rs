//! active_table - what the daemon keeps about each message in `active/`
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

use std::borrow::Cow;
use std::sync::Arc;

use dashmap::DashMap;
use oqmgr::name::Name;
use oqmgr::time::Instant;

use crate::postfix::attr::{Timeval, WireRecipient};
use crate::postfix::queue_file::FileRecipient;

pub use super::envelope::HeldEnvelope;

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

/// The admitted message a delivery request for `queue_id` is about; when
/// there is none (a bug, see the invariant above) a warning says so and
/// the caller reports the delivery as crashed.
pub fn message_for(active: &ActiveTable, queue_id: &str) -> Option<Arc<ActiveMessage>> {
    let found = active.get(queue_id).map(|m| Arc::clone(&m));
    if found.is_none() {
        tracing::warn!("{queue_id}: delivery request for a message not in the active queue");
    }
    found
}

/// A core recipient for a file recipient, after resolving.
pub fn core_recipient(r: &FileRecipient, address: Vec<u8>) -> oqmgr::entry::Recipient {
    oqmgr::entry::Recipient {
        offset: r.offset,
        address: core_text(address),
        orig_address: core_text(r.orig_rcpt.clone()),
        dsn_orcpt: core_text(r.dsn_orcpt.clone()),
        dsn_notify: r.dsn_notify.max(0) as u32,
    }
}

/// The wire form of a core recipient, for delivery and bounce requests:
/// the very bytes the queue file and trivial-rewrite gave.
pub fn wire_recipient(r: &oqmgr::entry::Recipient) -> WireRecipient {
    WireRecipient {
        original: wire_bytes(&r.orig_address).into_owned(),
        address: wire_bytes(&r.address).into_owned(),
        offset: r.offset,
        dsn_orcpt: wire_bytes(&r.dsn_orcpt).into_owned(),
        dsn_notify: r.dsn_notify,
    }
}

/// Starts a core string that stands for bytes other than plain UTF-8.
const RAW_MARK: char = '\u{FFFF}';
/// In a marked string, U+F700 + b stands for the byte b.
const RAW_BYTE: u32 = 0xF700;

/// Addresses, next hops and senders are bytes in queue files and on the
/// wire; the core keeps `String`s (it sorts, compares and names queues by
/// them). Valid UTF-8 is kept as it is. Anything else (an address in
/// Latin-1, as cleanup accepts with `smtputf8_enable = no`) becomes a
/// marked string: [`RAW_MARK`], then the valid characters as they are and
/// every other byte as one code point of a Private Use block (characters
/// of that block are escaped the same way, byte by byte). UTF-8 that
/// itself starts with the mark is marked too, so [`wire_bytes`] gives back
/// exactly the bytes that came in, for every input.
pub fn core_text(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) if !s.starts_with(RAW_MARK) => s,
        Ok(s) => marked(s.as_bytes()),
        Err(e) => marked(e.as_bytes()),
    }
}

/// The marked form of `bytes` (see [`core_text`]).
fn marked(bytes: &[u8]) -> String {
    let byte = |b: u8| char::from_u32(RAW_BYTE + u32::from(b)).expect("a Private Use code point");
    let mut out = String::with_capacity(bytes.len() + 8);
    out.push(RAW_MARK);
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if (RAW_BYTE..=RAW_BYTE + 0xFF).contains(&u32::from(c)) {
                out.extend(c.to_string().bytes().map(byte));
            } else {
                out.push(c);
            }
        }
        out.extend(chunk.invalid().iter().copied().map(byte));
    }
    out
}

/// The bytes a core string stands for (the inverse of [`core_text`]).
pub fn wire_bytes(text: &str) -> Cow<'_, [u8]> {
    let Some(rest) = text.strip_prefix(RAW_MARK) else {
        return Cow::Borrowed(text.as_bytes());
    };
    let mut out = Vec::with_capacity(rest.len());
    for c in rest.chars() {
        match u32::from(c).checked_sub(RAW_BYTE) {
            Some(b) if b <= 0xFF => out.push(b as u8),
            _ => out.extend_from_slice(c.to_string().as_bytes()),
        }
    }
    Cow::Owned(out)
}

/// Bytes as one of our log lines shows them: valid UTF-8 as it is, each
/// byte of an invalid sequence as `?`, as Postfix's `printable()` shows
/// it (the logger then applies the rest of `printable()`).
pub fn loggable(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        out.extend(std::iter::repeat_n('?', chunk.invalid().len()));
    }
    out
}

/// A core string (see [`core_text`]) as a log line shows it.
pub fn loggable_text(text: &str) -> Cow<'_, str> {
    if text.starts_with(RAW_MARK) {
        Cow::Owned(loggable(&wire_bytes(text)))
    } else {
        Cow::Borrowed(text)
    }
}

/// A core instant as a `Timeval`.
pub fn timeval(at: Instant) -> Timeval {
    let ms = at.as_millis();
    Timeval {
        sec: (ms / 1000) as i64,
        usec: ((ms % 1000) * 1000) as i64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_survive_the_core_exactly() {
        let cases: &[&[u8]] = &[
            b"plain@example.com",
            "j\u{f6}rg@b\u{fc}cher.example".as_bytes(),
            b"r\xe9mi@d1.test",
            b"\xff\xfe\x80",
            b"r\xe9mi\xef\x9c\x80@x",    // an invalid byte and U+F700
            "\u{f7e9}@x".as_bytes(),     // U+F7E9 alone is valid UTF-8
            "\u{ffff}lead@x".as_bytes(), // UTF-8 starting with the mark
            "\u{ffff}".as_bytes(),
            b"",
        ];
        for &bytes in cases {
            let core = core_text(bytes.to_vec());
            assert_eq!(&*wire_bytes(&core), bytes, "{core:?}");
        }
        // Plain UTF-8 is kept as it is.
        assert_eq!(core_text(b"a@b".to_vec()), "a@b");
        assert_ne!(
            core_text("\u{f7e9}@x".as_bytes().to_vec()),
            core_text(b"\xe9@x".to_vec())
        );
    }

    #[test]
    fn logs_show_invalid_bytes_as_postfix_does() {
        let core = core_text(b"r\xe9mi@d1.test".to_vec());
        assert_eq!(loggable_text(&core), "r?mi@d1.test");
        assert_eq!(loggable_text("j\u{f6}rg@x"), "j\u{f6}rg@x");
        assert_eq!(loggable(b"\xffa"), "?a");
    }

    #[test]
    fn requests_carry_the_original_bytes() {
        let file = FileRecipient {
            offset: 1,
            address: b"r\xe9mi@d1.test".to_vec(),
            orig_rcpt: b"R\xe9mi@d1.test".to_vec(),
            dsn_orcpt: b"rfc822;r\xe9mi@d1.test".to_vec(),
            dsn_notify: 0,
        };
        let wire = wire_recipient(&core_recipient(&file, file.address.clone()));
        assert_eq!(wire.address, file.address);
        assert_eq!(wire.original, file.orig_rcpt);
        assert_eq!(wire.dsn_orcpt, file.dsn_orcpt);
    }
}
