//! The attr0 attribute protocol spoken by every internal Postfix service
//! (Postfix: `attr.h`, `attr_print0.c`, `attr_scan0.c`, `mail_proto.h`).
//!
//! A message is one or more *lists*; a list is `name NUL value NUL` pairs
//! followed by a single NUL. Numbers travel as unsigned decimal text
//! (−1 arrives as `4294967295`), binary data as base64, nested structures
//! ([`WireRecipient`], [`WireDsn`], [`MsgStats`]) inline with no grouping.
//!
//! Every internal server speaks first: right after `accept` it sends the
//! list `protocol NUL <name> NUL NUL`, and a client checks the name before
//! it writes anything ([`decode_announcement`], [`AttrStream::read_announcement`]).
//!
//! # Layout
//! - `codec`: [`AttrWriter`] (encoder), [`decode_list`] (bounded tokenizer),
//!   [`AttrScan`] (strict in-order reader), [`AttrFunc`] (nested structures).
//! - `structs`: [`WireRecipient`], [`WireDsn`], [`MsgStats`].
//! - `io`: [`AttrStream`], the same over a `tokio::net::UnixStream` with a
//!   per-operation timeout (`qmgr_ipc_timeout`).
//!
//! # Invariants
//! - Decoding never panics and never allocates more than [`Limits`] allow:
//!   over-long names, values, lists or too many attributes are typed
//!   errors, so a confused or hostile peer cannot exhaust memory.
//! - Readers are strict like Postfix's qmgr-side readers
//!   (docs/postfix-ipc.md §6.2): attributes in order, none missing,
//!   none extra, numbers all digits.
//! - An EOF where an announcement or reply was due is always an error
//!   (Postfix's own reader can mistake it for success).
//!
//! # Compatibility
//! Postfix 3.6+ (announcements). The hash type (`{`…`}`) is supported for
//! completeness; nothing qmgr speaks uses it.

pub mod base64;
mod codec;
mod io;
mod structs;

use std::fmt;

pub use codec::{
    decode_list, decode_one_list, take_list, AttrFunc, AttrList, AttrScan, AttrWriter, Table,
};
pub use io::{AttrStream, IpcError};
pub use structs::{MsgStats, Timeval, WireDsn, WireRecipient, MSG_STATS_SIZE};

/// Bounds applied while decoding, so that no peer can make us allocate
/// without limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest attribute name accepted (Postfix names are under 32 bytes).
    pub max_name_len: usize,
    /// Longest value accepted. DSN texts quoting a remote server's multi-line
    /// reply are the longest values in practice (a few KiB).
    pub max_value_len: usize,
    /// Most attributes in one list (table entries included); Postfix itself
    /// caps tables at 1024.
    pub max_attrs: usize,
    /// Most bytes one list may occupy on the wire.
    pub max_list_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_name_len: 128,
            max_value_len: 100 * 1024,
            max_attrs: 1024,
            max_list_len: 1024 * 1024,
        }
    }
}

/// Why an attribute list could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The input ended before the list terminator.
    Truncated,
    /// A name exceeded [`Limits::max_name_len`].
    NameTooLong {
        /// The limit in force.
        limit: usize,
    },
    /// A value exceeded [`Limits::max_value_len`].
    ValueTooLong {
        /// The attribute name.
        name: String,
        /// The limit in force.
        limit: usize,
    },
    /// The list had more than [`Limits::max_attrs`] attributes.
    TooManyAttributes {
        /// The limit in force.
        limit: usize,
    },
    /// The list exceeded [`Limits::max_list_len`] bytes.
    ListTooLong {
        /// The limit in force.
        limit: usize,
    },
    /// A `{`/`}` table was opened twice, closed without opening, or left open.
    BadTable,
    /// The list ended before an expected attribute (MISSING check).
    Missing {
        /// The name that was due.
        expected: String,
    },
    /// Another attribute stood where `expected` was due (strict order).
    Unexpected {
        /// What arrived.
        found: String,
        /// What was due.
        expected: String,
    },
    /// An attribute followed the last expected one (EXTRA check).
    Extra {
        /// What arrived.
        found: String,
    },
    /// A number was not all decimal digits or did not fit
    /// (Postfix: `malformed numerical data`).
    BadNumber {
        /// The attribute name.
        name: String,
        /// The offending text.
        value: String,
    },
    /// A data attribute was not valid base64.
    BadBase64 {
        /// The attribute name.
        name: String,
    },
    /// A data payload had the wrong size (`msg_stats_scan: size mis-match`).
    BadSize {
        /// The attribute name.
        name: String,
        /// Bytes required.
        expected: usize,
        /// Bytes received.
        found: usize,
    },
    /// A string-equals check failed (wrong protocol name, for instance).
    Mismatch {
        /// The attribute name.
        name: String,
        /// The value required.
        expected: String,
        /// The value received.
        found: String,
    },
    /// Bytes followed a message that should have ended the input.
    TrailingData {
        /// How many bytes were left.
        extra: usize,
    },
    /// A value was outside what the protocol allows (named in the text).
    Invalid(String),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => write!(f, "premature end of input"),
            Self::NameTooLong { limit } => write!(f, "attribute name longer than {limit} bytes"),
            Self::ValueTooLong { name, limit } => {
                write!(f, "value of attribute {name} longer than {limit} bytes")
            }
            Self::TooManyAttributes { limit } => write!(f, "more than {limit} attributes"),
            Self::ListTooLong { limit } => write!(f, "attribute list longer than {limit} bytes"),
            Self::BadTable => write!(f, "unbalanced attribute table"),
            Self::Missing { expected } => write!(f, "missing attribute {expected}"),
            Self::Unexpected { found, expected } => {
                write!(f, "unexpected attribute {found} (expecting: {expected})")
            }
            Self::Extra { found } => write!(f, "unexpected attribute {found} after the last one"),
            Self::BadNumber { name, value } => {
                write!(f, "malformed numerical data in attribute {name}: {value:?}")
            }
            Self::BadBase64 { name } => write!(f, "malformed base64 data in attribute {name}"),
            Self::BadSize {
                name,
                expected,
                found,
            } => {
                write!(
                    f,
                    "attribute {name}: size mis-match ({found} bytes, want {expected})"
                )
            }
            Self::Mismatch {
                name,
                expected,
                found,
            } => {
                write!(f, "unexpected {name} {found:?} (expected: {expected:?})")
            }
            Self::TrailingData { extra } => write!(f, "{extra} bytes after the end of the message"),
            Self::Invalid(what) => write!(f, "invalid value: {what}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Why a message could not be encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// A value contained a NUL byte, which attr0 cannot carry.
    NulInValue {
        /// The attribute name.
        name: String,
    },
    /// A table key was empty, `}` or contained NUL.
    BadTableKey,
    /// A field broke a protocol rule (named in the text).
    Invalid(String),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NulInValue { name } => write!(f, "value of attribute {name} contains a NUL byte"),
            Self::BadTableKey => write!(f, "attribute table key is empty, `}}` or contains NUL"),
            Self::Invalid(what) => write!(f, "cannot encode: {what}"),
        }
    }
}

impl std::error::Error for EncodeError {}

/// Encodes the announcement a server sends on accept: `protocol NUL name NUL NUL`.
pub fn encode_announcement(name: &str) -> Vec<u8> {
    let mut w = AttrWriter::new();
    w.str("protocol", name).end();
    w.finish().expect("protocol names contain no NUL")
}

/// Checks a complete announcement list against the expected protocol name.
///
/// # Errors
/// [`DecodeError::Truncated`] for an empty or cut input (EOF is failure,
/// never "0 attributes read"), [`DecodeError::Mismatch`] for another
/// protocol, strictness errors for anything else in the list.
pub fn decode_announcement(input: &[u8], expected: &str) -> Result<(), DecodeError> {
    let list = decode_one_list(input, &Limits::default())?;
    check_announcement(&list, expected)
}

/// Checks an already-decoded list as the announcement of `expected`.
pub fn check_announcement(list: &AttrList, expected: &str) -> Result<(), DecodeError> {
    let mut s = list.scan();
    s.streq("protocol", expected)?;
    s.finish()
}

/// Protocol names announced by the services qmgr talks to
/// (docs/postfix-ipc.md §6.4).
pub mod protocol {
    /// Delivery agents (`private/<transport>`).
    pub const DELIVERY_REQUEST: &str = "delivery_request_protocol";
    /// bounce(8) as `bounce`, `defer` and `trace`.
    pub const DELIVERY_STATUS: &str = "delivery_status_protocol";
    /// trivial-rewrite(8).
    pub const TRIVIAL_REWRITE: &str = "trivial_rewrite_protocol";
    /// verify(8); the double `r` is Postfix's own spelling.
    pub const ADDRESS_VERIFICATION: &str = "address_verification_prrotocol";
    /// flush(8).
    pub const QUEUE_FLUSH: &str = "queue_flush_protocol";
}

/// Fuzz entry point: decodes arbitrary bytes every way this crate decodes
/// peer input. It must return without panicking and without allocating
/// beyond [`Limits`], whatever the input.
pub fn fuzz_decode(data: &[u8]) {
    let limits = Limits {
        max_list_len: 64 * 1024,
        ..Limits::default()
    };
    let mut rest = data;
    // Consume as many lists as the input holds, as a stream reader would.
    while let Ok((list, used)) = decode_list(rest, &limits) {
        let _ = list.scan().func::<WireRecipient>();
        let _ = list.scan().func::<WireDsn>();
        let _ = list.scan().func::<MsgStats>();
        let _ = check_announcement(&list, protocol::DELIVERY_REQUEST);
        let _ = crate::postfix::deliver_request::DeliveryReply::from_list(&list);
        let _ = crate::postfix::rewrite::ResolveReply::from_list(&list);
        let _ = crate::postfix::bounce::decode_status_reply(&list);
        let _ = crate::postfix::bounce::VerifyUpdate::from_list(&list);
        let _ = crate::postfix::bounce::FlushAdd::from_list(&list);
        let _ = crate::postfix::rewrite::RewriteRequest::from_list(&list);
        let _ = crate::postfix::rewrite::decode_rewrite_reply(&list);
        rest = &rest[used..];
    }
    for dialect in [
        crate::postfix::dialect::Dialect::Smtputf8,
        crate::postfix::dialect::Dialect::Sendopts,
    ] {
        let _ = crate::postfix::deliver_request::decode_delivery_request(data, dialect, &limits);
        let _ = crate::postfix::bounce::BounceRequest::decode(data, dialect, &limits);
    }
    let _ = crate::postfix::deliver_request::decode_delivery_reply(data);
    let _ = crate::postfix::rewrite::decode_resolve_reply(data);
    let _ = crate::postfix::bounce::decode_status(data);
}

#[cfg(test)]
pub(crate) mod tests;
