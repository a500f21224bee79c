//! record - Postfix queue file records (mirrors `postfix/src/global/record.c`
//! and `rec_type.h`).
//!
//! # Format
//! A queue file is a sequence of records: one type byte, the payload length
//! as little-endian base-128 (7 bits per byte, bit 0x80 = "more bytes
//! follow"), then the payload. Postfix readers accept at most 5 length bytes
//! (shift < 32) and, because the shifted value is computed in a C `int`, any
//! length of 2^31 or more comes out negative and is rejected; we reject the
//! same inputs with typed errors.
//!
//! # Invariants
//! - Reading never allocates more than the configured record limit
//!   ([`DEFAULT_RECORD_LIMIT`] unless changed): Postfix itself reads with no
//!   limit and trusts its front ends; a corrupt or hostile file must not make
//!   us allocate gigabytes, so an oversized length is
//!   [`RecordError::IllegalLength`].
//! - The reader tracks its file offset itself, so record offsets (needed to
//!   mark recipients done in place) cost no `lseek` system call.
//! - Payloads are raw bytes. Postfix treats them as C strings, so consumers
//!   that interpret a payload should look only at [`c_str`] of it (the bytes
//!   before the first NUL), as Postfix does.
//!
//! # Pointer records
//! `p` records hold a 15-character, right-aligned decimal absolute offset
//! (`%15ld`). Zero is a placeholder (ignored); any other value means "go on
//! reading there". [`PointerFollower`] applies Postfix's loop guard: at most
//! 10000 jumps to an offset at or before the previous jump target.
//! [`WalkedRanges`] adds one of ours: a jump into bytes the same walk has
//! already read can only loop, so it fails at once (with Postfix's "too
//! many reverse jump records") instead of after 10000 rounds. A loop over
//! recipient records would otherwise hand out the same recipients again
//! on every round (see `actors/fuzz/README.md`).

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};

/// Record type bytes (`rec_type.h`). Pseudo types (`c`, `<`, `i`, `o`, `n`)
/// are stored on disk as `A name=value` records by current Postfix.
pub mod rec {
    /// First record: sizes, offsets and read flags (docs/postfix-queue-files.md §3.8).
    pub const SIZE: u8 = b'C';
    /// Arrival time `"<sec> <usec>"`.
    pub const TIME: u8 = b'T';
    /// Queue file creation time (pseudo, `A create_time=`).
    pub const CTIME: u8 = b'c';
    /// Sender full name.
    pub const FULL: u8 = b'F';
    /// Legacy inspector transport.
    pub const INSP: u8 = b'I';
    /// Content filter `transport:nexthop` (outside the content).
    pub const FILT: u8 = b'L';
    /// Envelope sender.
    pub const FROM: u8 = b'S';
    /// Finished recipient (was `R`).
    pub const DONE: u8 = b'D';
    /// Recipient to deliver.
    pub const RCPT: u8 = b'R';
    /// Original recipient of the next `R`.
    pub const ORCP: u8 = b'O';
    /// Canceled recipient.
    pub const DRCP: u8 = b'/';
    /// Next delay-warning time (`%15ld`; -1 = sent).
    pub const WARN: u8 = b'W';
    /// Named attribute `name=value`.
    pub const ATTR: u8 = b'A';
    /// Killed record.
    pub const KILL: u8 = b'K';
    /// Redirect address.
    pub const RDR: u8 = b'>';
    /// Cleanup flags (client → cleanup stream only).
    pub const FLGS: u8 = b'f';
    /// Cleanup delay (client → cleanup stream only).
    pub const DELAY: u8 = b'd';
    /// Milter count (client → cleanup stream only).
    pub const MILT_COUNT: u8 = b'm';
    /// Start of message content.
    pub const MESG: u8 = b'M';
    /// Content line fragment without newline (same byte as `FILT`).
    pub const CONT: u8 = b'L';
    /// Content line.
    pub const NORM: u8 = b'N';
    /// Content padding.
    pub const DTXT: u8 = b'w';
    /// Start of the extracted segment.
    pub const XTRA: u8 = b'X';
    /// Legacy return-receipt address.
    pub const RRTO: u8 = b'r';
    /// Legacy errors-to address.
    pub const ERTO: u8 = b'e';
    /// Priority (unused).
    pub const PRIO: u8 = b'P';
    /// Pointer to another offset.
    pub const PTR: u8 = b'p';
    /// VERP delimiters.
    pub const VERP: u8 = b'V';
    /// DSN RET (pseudo, `A ret_flags=`).
    pub const DSN_RET: u8 = b'<';
    /// DSN ENVID (pseudo, `A envelope_id=`).
    pub const DSN_ENVID: u8 = b'i';
    /// DSN ORCPT (pseudo, `A dsn_orig_rcpt=`).
    pub const DSN_ORCPT: u8 = b'o';
    /// DSN NOTIFY (pseudo, `A notify_flags=`).
    pub const DSN_NOTIFY: u8 = b'n';
    /// End of message.
    pub const END: u8 = b'E';

    /// Types allowed in the envelope segment.
    pub const ENVELOPE: &[u8] = b"MCTcFILSDRO/WVA>K<ion";
    /// Types allowed in the content segment.
    pub const CONTENT: &[u8] = b"XLNw";
    /// Types allowed in the extracted segment.
    pub const EXTRACT: &[u8] = b"EDRO/PreAFIL>Kon";
}

/// Largest record payload we agree to read by default (1 MiB). Postfix's
/// own front ends keep records far below this (lines are split at
/// `line_length_limit`, 2048 by default).
pub const DEFAULT_RECORD_LIMIT: usize = 1 << 20;

/// Most length bytes a reader accepts (shifts 0, 7, 14, 21, 28).
pub const MAX_LENGTH_BYTES: usize = 5;

/// Width of the payload of `p`, `W` and each `C` field (`%15ld`).
pub const FIXED_FIELD_WIDTH: usize = 15;

/// Postfix's limit on backward pointer jumps within one file.
pub const REVERSE_JUMP_LIMIT: u32 = 10_000;

/// The printable name Postfix gives a record type (`rec_type_name`), as
/// printed by `postcat`; `None` for unknown types.
pub fn record_type_name(rtype: u8) -> Option<&'static str> {
    Some(match rtype {
        rec::SIZE => "message_size",
        rec::TIME => "message_arrival_time",
        rec::CTIME => "queue_file_create_time",
        rec::FULL => "sender_fullname",
        rec::INSP => "content_inspector",
        rec::FILT => "content_filter",
        rec::FROM => "sender",
        rec::DONE => "done_recipient",
        rec::DRCP => "canceled_recipient",
        rec::RCPT => "recipient",
        rec::ORCP => "original_recipient",
        rec::WARN => "warning_message_time",
        rec::ATTR => "named_attribute",
        rec::PTR => "pointer_record",
        rec::KILL => "killed_record",
        rec::MESG => "message_content",
        rec::NORM => "regular_text",
        rec::DTXT => "padding",
        rec::XTRA => "extracted_info",
        rec::RRTO => "return_receipt",
        rec::ERTO => "errors_to",
        rec::PRIO => "priority",
        rec::VERP => "verp_delimiters",
        rec::END => "message_end",
        rec::RDR => "redirect_to",
        rec::FLGS => "flags",
        rec::DSN_RET => "dsn_return_flags",
        rec::DSN_ENVID => "dsn_envelope_id",
        rec::DSN_ORCPT => "dsn_original_recipient",
        rec::DSN_NOTIFY => "dsn_notify_flags",
        _ => return None,
    })
}

/// The part of a payload Postfix sees: everything before the first NUL.
pub fn c_str(payload: &[u8]) -> &[u8] {
    match payload.iter().position(|&b| b == 0) {
        Some(n) => &payload[..n],
        None => payload,
    }
}

/// One record as read from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// File offset of the type byte (what "marking" overwrites).
    pub offset: u64,
    /// The type byte.
    pub rtype: u8,
    /// The payload, exactly as stored.
    pub payload: Vec<u8>,
}

/// Why a record could not be read or a pointer not followed.
#[derive(Debug)]
pub enum RecordError {
    /// The underlying file failed.
    Io(io::Error),
    /// EOF inside the length bytes (Postfix: "unexpected EOF reading length").
    TruncatedLength {
        /// Offset of the record's type byte.
        offset: u64,
        /// The record type.
        rtype: u8,
    },
    /// More than [`MAX_LENGTH_BYTES`] length bytes ("too many length bits").
    TooManyLengthBits {
        /// Offset of the record's type byte.
        offset: u64,
        /// The record type.
        rtype: u8,
    },
    /// Length ≥ 2^31 (negative in Postfix) or above our record limit
    /// ("illegal length").
    IllegalLength {
        /// Offset of the record's type byte.
        offset: u64,
        /// The record type.
        rtype: u8,
        /// The decoded length.
        len: u64,
        /// The limit in force.
        limit: usize,
    },
    /// EOF inside the payload ("unexpected EOF in data").
    TruncatedPayload {
        /// Offset of the record's type byte.
        offset: u64,
        /// The record type.
        rtype: u8,
        /// The declared length.
        len: u64,
        /// How many payload bytes were there.
        got: u64,
    },
    /// A `p` payload that is not decimal digits ("malformed pointer record
    /// value").
    MalformedPointer {
        /// The payload text (lossy).
        text: String,
    },
    /// More than [`REVERSE_JUMP_LIMIT`] backward jumps ("too many reverse
    /// jump records").
    TooManyReverseJumps,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Io(e) => f.write_str(&crate::postfix::log::errno_text(e)),
            RecordError::TruncatedLength { rtype, .. } => {
                write!(f, "unexpected EOF reading length, record type {rtype}")
            }
            RecordError::TooManyLengthBits { rtype, .. } => {
                write!(f, "too many length bits, record type {rtype}")
            }
            RecordError::IllegalLength { rtype, len, .. } => {
                write!(f, "illegal length {len}, record type {rtype}")
            }
            RecordError::TruncatedPayload { rtype, len, .. } => write!(
                f,
                "unexpected EOF in data, record type {rtype} length {len}"
            ),
            RecordError::MalformedPointer { text } => {
                write!(f, "malformed pointer record value: {text}")
            }
            RecordError::TooManyReverseJumps => write!(f, "too many reverse jump records"),
        }
    }
}

impl std::error::Error for RecordError {}

impl From<io::Error> for RecordError {
    fn from(e: io::Error) -> Self {
        RecordError::Io(e)
    }
}

/// Appends the base-128 length encoding of `len` to `out` (`rec_put`).
pub fn encode_length(out: &mut Vec<u8>, len: usize) {
    let mut rest = len;
    loop {
        let mut byte = (rest & 0x7f) as u8;
        rest >>= 7;
        if rest != 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if rest == 0 {
            break;
        }
    }
}

/// Total bytes a record with a payload of `payload_len` bytes occupies.
pub fn encoded_len(payload_len: usize) -> usize {
    let mut n = 1;
    let mut rest = payload_len >> 7;
    while rest != 0 {
        n += 1;
        rest >>= 7;
    }
    1 + n + payload_len
}

/// Appends one encoded record to `out`.
pub fn encode_record(out: &mut Vec<u8>, rtype: u8, payload: &[u8]) {
    out.push(rtype);
    encode_length(out, payload.len());
    out.extend_from_slice(payload);
}

/// The `%15ld` payload used by `p` and `W` records.
pub fn fixed_width_number(value: i64) -> String {
    format!("{value:>width$}", width = FIXED_FIELD_WIDTH)
}

/// A padding record of `total_len` bytes in all (type and length byte
/// included) whose payload is spaces ending in `0` (`rec_pad`): with type
/// `p` it is a placeholder pointer. At least 3 bytes are produced.
pub fn padding_record(rtype: u8, total_len: usize) -> Vec<u8> {
    let width = total_len.saturating_sub(2).max(1);
    let mut out = Vec::with_capacity(total_len.max(3));
    encode_record(&mut out, rtype, format!("{:>width$}", "0").as_bytes());
    out
}

/// Parses a `p` payload the way `rec_goto` does: leading white space is
/// skipped, the rest must be decimal digits (empty means 0) that fit in a
/// signed 64-bit offset.
pub fn parse_pointer(payload: &[u8]) -> Result<u64, RecordError> {
    let text = c_str(payload);
    let start = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(text.len());
    // Postfix reports the value after the skipped white space.
    let malformed = || RecordError::MalformedPointer {
        text: String::from_utf8_lossy(&text[start..]).into_owned(),
    };
    let mut value: u64 = 0;
    for &b in &text[start..] {
        if !b.is_ascii_digit() {
            return Err(malformed());
        }
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .filter(|&v| v <= i64::MAX as u64)
            .ok_or_else(malformed)?;
    }
    Ok(value)
}

/// Loop guard for following `p` records within one file (`rec_goto`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PointerFollower {
    /// Target of the previous non-zero jump.
    saved_offset: u64,
    /// Jumps to an offset at or before `saved_offset` so far.
    reverse_count: u32,
}

impl PointerFollower {
    /// Decides where a `p` record leads: `Ok(None)` for a placeholder (keep
    /// reading after it), `Ok(Some(offset))` to seek there.
    pub fn follow(&mut self, payload: &[u8]) -> Result<Option<u64>, RecordError> {
        let target = parse_pointer(payload)?;
        if target == 0 {
            return Ok(None);
        }
        if target <= self.saved_offset {
            self.reverse_count += 1;
            if self.reverse_count > REVERSE_JUMP_LIMIT {
                return Err(RecordError::TooManyReverseJumps);
            }
        }
        self.saved_offset = target;
        Ok(Some(target))
    }
}

/// The byte ranges one walk through a file has read so far, `p` records
/// included. Cleanup only ever links records it appended, so a well-formed
/// file never leads a reader back into bytes it has read: a pointer whose
/// target lies in a walked range is a loop.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WalkedRanges {
    /// Start offset to end offset (exclusive) of each range read; disjoint.
    ranges: BTreeMap<u64, u64>,
}

impl WalkedRanges {
    /// Records that `start..end` was read.
    pub fn add(&mut self, start: u64, end: u64) {
        if end > start {
            let end = self.ranges.get(&start).map_or(end, |&e| e.max(end));
            self.ranges.insert(start, end);
        }
    }

    /// True if `offset` lies in a range read so far.
    pub fn contains(&self, offset: u64) -> bool {
        self.ranges
            .range(..=offset)
            .next_back()
            .is_some_and(|(_, &end)| offset < end)
    }
}

/// Buffered, offset-tracking record reader over a seekable stream.
#[derive(Debug)]
pub struct RecordReader<R> {
    /// The buffered stream.
    inner: BufReader<R>,
    /// Offset of the next unread byte.
    pos: u64,
    /// Largest payload accepted.
    limit: usize,
}

impl<R: Read + Seek> RecordReader<R> {
    /// Wraps a stream positioned at offset 0, with [`DEFAULT_RECORD_LIMIT`].
    pub fn new(inner: R) -> Self {
        RecordReader {
            inner: BufReader::with_capacity(8192, inner),
            pos: 0,
            limit: DEFAULT_RECORD_LIMIT,
        }
    }

    /// Changes the largest payload accepted.
    pub fn with_limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Offset of the next record.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Moves to an absolute offset (cheaply, within the buffer if possible).
    pub fn seek_to(&mut self, offset: u64) -> io::Result<()> {
        let delta = offset as i128 - self.pos as i128;
        if let Ok(d) = i64::try_from(delta) {
            self.inner.seek_relative(d)?;
        } else {
            self.inner.seek(SeekFrom::Start(offset))?;
        }
        self.pos = offset;
        Ok(())
    }

    /// Gives back the underlying stream.
    pub fn into_inner(self) -> R {
        self.inner.into_inner()
    }

    /// Reads one byte; `None` at EOF.
    fn byte(&mut self) -> io::Result<Option<u8>> {
        let buf = self.inner.fill_buf()?;
        let Some(&b) = buf.first() else {
            return Ok(None);
        };
        self.inner.consume(1);
        self.pos += 1;
        Ok(Some(b))
    }

    /// Reads the next record into `payload` (cleared first) and returns its
    /// type and offset; `Ok(None)` at a clean end of file.
    pub fn read_into(&mut self, payload: &mut Vec<u8>) -> Result<Option<(u8, u64)>, RecordError> {
        payload.clear();
        let offset = self.pos;
        let Some(rtype) = self.byte()? else {
            return Ok(None);
        };
        let mut len: u64 = 0;
        let mut nbytes = 0;
        loop {
            if nbytes == MAX_LENGTH_BYTES {
                return Err(RecordError::TooManyLengthBits { offset, rtype });
            }
            let Some(b) = self.byte()? else {
                return Err(RecordError::TruncatedLength { offset, rtype });
            };
            len |= u64::from(b & 0x7f) << (7 * nbytes);
            nbytes += 1;
            if b & 0x80 == 0 {
                break;
            }
        }
        // Postfix computes in a 32-bit int: 2^31 and up is negative, illegal.
        if len > i32::MAX as u64 || len > self.limit as u64 {
            return Err(RecordError::IllegalLength {
                offset,
                rtype,
                len,
                limit: self.limit,
            });
        }
        // `take` makes the allocation follow the bytes actually present.
        let got = (&mut self.inner).take(len).read_to_end(payload)? as u64;
        self.pos += got;
        if got != len {
            return Err(RecordError::TruncatedPayload {
                offset,
                rtype,
                len,
                got,
            });
        }
        Ok(Some((rtype, offset)))
    }

    /// Reads the next record; `Ok(None)` at a clean end of file.
    pub fn read_record(&mut self) -> Result<Option<Record>, RecordError> {
        let mut payload = Vec::new();
        Ok(self.read_into(&mut payload)?.map(|(rtype, offset)| Record {
            offset,
            rtype,
            payload,
        }))
    }
}

/// Decodes every record of an in-memory file in physical order (pointers
/// not followed), stopping at the first error.
pub fn decode_all(bytes: &[u8]) -> Result<Vec<Record>, RecordError> {
    let mut reader = RecordReader::new(io::Cursor::new(bytes));
    let mut out = Vec::new();
    while let Some(r) = reader.read_record()? {
        out.push(r);
    }
    Ok(out)
}

/// Decodes an in-memory file in reading order, as `postcat` shows it:
/// from offset 0, `p` records included and followed, up to and including
/// the first `E`. Stops at the first error; more than `max_records`
/// records (a pointer loop within the reverse-jump limit) is an error too.
pub fn decode_logical(bytes: &[u8], max_records: usize) -> Result<Vec<Record>, RecordError> {
    let mut reader = RecordReader::new(io::Cursor::new(bytes));
    let mut follower = PointerFollower::default();
    let mut out = Vec::new();
    while let Some(r) = reader.read_record()? {
        if out.len() >= max_records {
            return Err(RecordError::TooManyReverseJumps);
        }
        let (rtype, payload) = (r.rtype, r.payload.clone());
        out.push(r);
        match rtype {
            rec::END => break,
            rec::PTR => {
                if let Some(target) = follower.follow(&payload)? {
                    reader.seek_to(target)?;
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_match_postfix_examples() {
        let mut out = Vec::new();
        encode_record(&mut out, b'S', b"sender@test.example.com");
        assert_eq!(&out[..2], &[b'S', 0x17]);
        let mut out = Vec::new();
        encode_length(&mut out, 300);
        assert_eq!(out, vec![0xac, 0x02]);
        assert_eq!(encoded_len(300), 1 + 2 + 300);
        assert_eq!(encoded_len(127), 1 + 1 + 127);
        assert_eq!(encoded_len(128), 1 + 2 + 128);
    }

    #[test]
    fn six_length_bytes_are_too_many() {
        let bytes = [b'N', 0x80, 0x80, 0x80, 0x80, 0x80, 0x01];
        assert!(matches!(
            decode_all(&bytes),
            Err(RecordError::TooManyLengthBits {
                offset: 0,
                rtype: b'N'
            })
        ));
    }

    #[test]
    fn negative_and_oversized_lengths_are_illegal() {
        // 0x7f << 28 overflows a C int: Postfix sees a negative length.
        let bytes = [b'N', 0xff, 0xff, 0xff, 0xff, 0x7f];
        assert!(matches!(
            decode_all(&bytes),
            Err(RecordError::IllegalLength { .. })
        ));
        let mut bytes = vec![b'N'];
        encode_length(&mut bytes, DEFAULT_RECORD_LIMIT + 1);
        assert!(matches!(
            decode_all(&bytes),
            Err(RecordError::IllegalLength { len, .. }) if len == DEFAULT_RECORD_LIMIT as u64 + 1
        ));
    }

    #[test]
    fn truncation_is_reported() {
        assert!(matches!(
            decode_all(b"N"),
            Err(RecordError::TruncatedLength { .. })
        ));
        assert!(matches!(
            decode_all(&[b'N', 0x80]),
            Err(RecordError::TruncatedLength { .. })
        ));
        assert!(matches!(
            decode_all(&[b'N', 5, b'a']),
            Err(RecordError::TruncatedPayload { len: 5, got: 1, .. })
        ));
    }

    #[test]
    fn pointers_and_padding() {
        assert_eq!(parse_pointer(b"            292").unwrap(), 292);
        assert_eq!(parse_pointer(b"").unwrap(), 0);
        assert!(parse_pointer(b" 12x").is_err());
        assert!(parse_pointer(b"99999999999999999999").is_err());
        let pad = padding_record(rec::PTR, 17);
        assert_eq!(pad.len(), 17);
        assert_eq!(&pad[2..], b"              0");
        let mut f = PointerFollower::default();
        assert_eq!(f.follow(b"              0").unwrap(), None);
        assert_eq!(f.follow(b"100").unwrap(), Some(100));
        for _ in 0..REVERSE_JUMP_LIMIT {
            f.follow(b"100").unwrap();
        }
        assert!(matches!(
            f.follow(b"100"),
            Err(RecordError::TooManyReverseJumps)
        ));
    }
}
