//! content - the message content of a queue file, as bytes (Postfix:
//! `global/mail_copy.c`, the part that copies the content records of a
//! queue file to a mailbox or pipe).
//!
//! A queue file keeps the message between the `M` record and the `X`
//! record (docs/postfix-queue-files.md §3.7): every `N` record is one line whose newline was
//! dropped, every `L` record is a fragment of a longer line (no newline
//! after it), `w` records are padding, and `p` records jump elsewhere in the
//! file (cleanup uses them when a milter replaced the body). The first
//! content record sits at the `C` record's `data_offset`.
//!
//! [`ContentReader`] turns that back into the message text, lines ending in
//! `\n`, as a [`std::io::Read`], so a transport can stream a large message
//! without holding it in memory; [`read_content`] collects it with a bound.
//!
//! # Invariants
//! - A record longer than the reader's record limit, a truncated record, a
//!   pointer loop, or any record type other than `N`, `L`, `w`, `p` before
//!   the `X` record is an error ([`ContentError`]); the text read so far is
//!   not a message and must not be delivered.
//! - A last line written as fragments only (`L` with no closing `N`) gets a
//!   newline, as Postfix's copy routine adds one.

use std::fs::File;
use std::io::{self, Read, Seek};
use std::path::Path;

use crate::postfix::mail_open_ok::{open_queue_file, Access};
use crate::postfix::record::{rec, PointerFollower, RecordError, RecordReader};

/// Why the content could not be read.
#[derive(Debug)]
pub enum ContentError {
    /// The file could not be opened or read.
    Io(io::Error),
    /// A record is malformed (length, truncation, pointer loop).
    Record(RecordError),
    /// A record of a type that has no place in the content.
    Unexpected {
        /// The record type byte.
        rtype: u8,
        /// Its offset in the file.
        offset: u64,
    },
    /// The file ended before the `X` record.
    Truncated,
    /// `data_offset` is not a usable offset.
    BadOffset(i64),
    /// The message is larger than the caller's bound.
    TooLarge {
        /// The bound, in bytes.
        limit: usize,
    },
}

impl std::fmt::Display for ContentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ContentError::Io(e) => write!(
                f,
                "read message content: {}",
                crate::postfix::log::errno_text(e)
            ),
            ContentError::Record(e) => write!(f, "read message content: {e}"),
            ContentError::Unexpected { rtype, offset } => write!(
                f,
                "unexpected record type '{}' at offset {offset} in message content",
                char::from(*rtype).escape_default()
            ),
            ContentError::Truncated => write!(f, "message content ends before its end record"),
            ContentError::BadOffset(o) => write!(f, "invalid message content offset {o}"),
            ContentError::TooLarge { limit } => {
                write!(f, "message content larger than {limit} bytes")
            }
        }
    }
}

impl std::error::Error for ContentError {}

impl From<io::Error> for ContentError {
    fn from(e: io::Error) -> Self {
        ContentError::Io(e)
    }
}

impl From<RecordError> for ContentError {
    fn from(e: RecordError) -> Self {
        ContentError::Record(e)
    }
}

impl From<ContentError> for io::Error {
    fn from(e: ContentError) -> Self {
        match e {
            ContentError::Io(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
        }
    }
}

/// Streams the content of a queue file as message text.
pub struct ContentReader<R> {
    /// The records.
    records: RecordReader<R>,
    /// The Postfix loop guard for `p` records.
    pointers: PointerFollower,
    /// Decoded bytes not yet handed out.
    pending: Vec<u8>,
    /// How much of `pending` was handed out.
    consumed: usize,
    /// The type of the last text record (`N` or `L`).
    last: u8,
    /// The `X` record was reached.
    done: bool,
}

impl ContentReader<File> {
    /// Opens the queue file at `path` (never through a link, never a
    /// FIFO) and positions the reader at `data_offset` (the `C` record's
    /// second field).
    ///
    /// # Errors
    /// The file cannot be opened, or the offset is not positive.
    pub fn open(path: &Path, data_offset: i64) -> Result<Self, ContentError> {
        ContentReader::new(open_queue_file(path, Access::Read, None)?, data_offset)
    }
}

impl<R: Read + Seek> ContentReader<R> {
    /// A reader over `file`, starting at `data_offset`.
    ///
    /// # Errors
    /// A non-positive offset or a failed seek.
    pub fn new(file: R, data_offset: i64) -> Result<Self, ContentError> {
        let offset = u64::try_from(data_offset)
            .ok()
            .filter(|&o| o > 0)
            .ok_or(ContentError::BadOffset(data_offset))?;
        let mut records = RecordReader::new(file);
        records.seek_to(offset)?;
        Ok(ContentReader {
            records,
            pointers: PointerFollower::default(),
            pending: Vec::new(),
            consumed: 0,
            last: rec::NORM,
            done: false,
        })
    }

    /// Decodes records until some text is pending or the `X` record is
    /// reached.
    fn fill(&mut self) -> Result<(), ContentError> {
        self.pending.clear();
        self.consumed = 0;
        let mut payload = Vec::new();
        while self.pending.is_empty() && !self.done {
            let Some((rtype, offset)) = self.records.read_into(&mut payload)? else {
                return Err(ContentError::Truncated);
            };
            match rtype {
                rec::NORM | rec::CONT => {
                    self.pending.extend_from_slice(&payload);
                    if rtype == rec::NORM {
                        self.pending.push(b'\n');
                    }
                    self.last = rtype;
                }
                rec::DTXT => {}
                rec::PTR => {
                    if let Some(target) = self.pointers.follow(&payload)? {
                        self.records.seek_to(target)?;
                    }
                }
                rec::XTRA => {
                    self.done = true;
                    if self.last == rec::CONT {
                        self.pending.push(b'\n');
                    }
                }
                other => {
                    return Err(ContentError::Unexpected {
                        rtype: other,
                        offset,
                    })
                }
            }
        }
        Ok(())
    }
}

impl<R: Read + Seek> Read for ContentReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.consumed == self.pending.len() {
            if self.done {
                return Ok(0);
            }
            self.fill()?;
        }
        let n = buf.len().min(self.pending.len() - self.consumed);
        buf[..n].copy_from_slice(&self.pending[self.consumed..self.consumed + n]);
        self.consumed += n;
        Ok(n)
    }
}

impl<R: Read + Seek> ContentReader<R> {
    /// The next piece of decoded text (one or more lines), with the typed
    /// error that [`Read`] can only report as an `io::Error`; `None` after
    /// the `X` record.
    ///
    /// # Errors
    /// [`ContentError`].
    pub fn next_chunk(&mut self) -> Result<Option<&[u8]>, ContentError> {
        if self.consumed == self.pending.len() {
            if self.done {
                return Ok(None);
            }
            self.fill()?;
        }
        let piece = &self.pending[self.consumed..];
        self.consumed = self.pending.len();
        Ok((!piece.is_empty()).then_some(piece))
    }
}

/// Reads the whole content of the queue file at `path`, at most `limit`
/// bytes.
///
/// # Errors
/// [`ContentError`], including [`ContentError::TooLarge`] past `limit`.
pub fn read_content(path: &Path, data_offset: i64, limit: usize) -> Result<Vec<u8>, ContentError> {
    let reader = ContentReader::open(path, data_offset)?;
    collect(reader, limit)
}

/// Collects a reader's text, at most `limit` bytes.
///
/// # Errors
/// [`ContentError`], including [`ContentError::TooLarge`] past `limit`.
pub fn collect<R: Read + Seek>(
    mut reader: ContentReader<R>,
    limit: usize,
) -> Result<Vec<u8>, ContentError> {
    let mut out = Vec::new();
    while let Some(piece) = reader.next_chunk()? {
        if out.len() + piece.len() > limit {
            return Err(ContentError::TooLarge { limit });
        }
        out.extend_from_slice(piece);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postfix::record::{encode_record, fixed_width_number};
    use std::io::Cursor;

    /// A file with an envelope stub, content records and `X`/`E`; returns
    /// it and the content's offset.
    fn file(content: &[(u8, &[u8])]) -> (Vec<u8>, i64) {
        let mut out = Vec::new();
        encode_record(&mut out, rec::TIME, b"1 0");
        encode_record(&mut out, rec::MESG, b"");
        let offset = out.len() as i64;
        for (t, p) in content {
            encode_record(&mut out, *t, p);
        }
        encode_record(&mut out, rec::XTRA, b"");
        encode_record(&mut out, rec::END, b"");
        (out, offset)
    }

    fn read(bytes: Vec<u8>, offset: i64) -> Result<Vec<u8>, ContentError> {
        collect(ContentReader::new(Cursor::new(bytes), offset)?, 1 << 20)
    }

    #[test]
    fn lines_fragments_and_padding() {
        let (f, o) = file(&[
            (rec::NORM, b"Subject: x"),
            (rec::NORM, b""),
            (rec::CONT, b"long "),
            (rec::NORM, b"line"),
            (rec::DTXT, b"pad"),
            (rec::NORM, b"end"),
        ]);
        assert_eq!(read(f, o).unwrap(), b"Subject: x\n\nlong line\nend\n");
    }

    #[test]
    fn a_trailing_fragment_gets_a_newline() {
        let (f, o) = file(&[(rec::NORM, b"a"), (rec::CONT, b"b")]);
        assert_eq!(read(f, o).unwrap(), b"a\nb\n");
    }

    #[test]
    fn empty_content() {
        let (f, o) = file(&[]);
        assert_eq!(read(f, o).unwrap(), b"");
    }

    #[test]
    fn pointers_are_followed() {
        // Content: N "one", p -> tail, (dead record), tail: N "two", p 0 back? no: X.
        let mut out = Vec::new();
        encode_record(&mut out, rec::MESG, b"");
        let offset = out.len() as i64;
        encode_record(&mut out, rec::NORM, b"one");
        let ptr_at = out.len();
        encode_record(&mut out, rec::PTR, fixed_width_number(0).as_bytes());
        encode_record(&mut out, rec::NORM, b"skipped");
        let tail = out.len();
        encode_record(&mut out, rec::NORM, b"two");
        encode_record(&mut out, rec::XTRA, b"");
        // Patch the pointer to the tail (same width).
        let mut ptr = Vec::new();
        encode_record(
            &mut ptr,
            rec::PTR,
            fixed_width_number(tail as i64).as_bytes(),
        );
        out[ptr_at..ptr_at + ptr.len()].copy_from_slice(&ptr);
        assert_eq!(read(out, offset).unwrap(), b"one\ntwo\n");
    }

    #[test]
    fn garbage_is_a_typed_error() {
        let (f, o) = file(&[(rec::NORM, b"a"), (rec::RCPT, b"x@y")]);
        assert!(matches!(
            read(f, o),
            Err(ContentError::Unexpected { rtype: b'R', .. })
        ));
        // Truncated: no X record.
        let (mut f, o) = file(&[(rec::NORM, b"abc")]);
        f.truncate(f.len() - 4);
        assert!(matches!(read(f, o), Err(ContentError::Truncated)));
        // Truncated inside a record payload.
        let (mut f, o) = file(&[(rec::NORM, b"abcdef")]);
        f.truncate(o as usize + 4);
        assert!(matches!(read(f, o), Err(ContentError::Record(_))));
        assert!(matches!(
            ContentReader::new(Cursor::new(Vec::new()), 0),
            Err(ContentError::BadOffset(0))
        ));
    }

    #[test]
    fn a_bound_is_kept() {
        let (f, o) = file(&[(rec::NORM, b"0123456789")]);
        let r = collect(ContentReader::new(Cursor::new(f), o).unwrap(), 5);
        assert!(matches!(r, Err(ContentError::TooLarge { limit: 5 })));
    }

    proptest::proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300), off in 1i64..50) {
            let _ = read(bytes, off);
        }

        #[test]
        fn lines_round_trip(lines in proptest::collection::vec("[ -~]{0,40}", 0..20)) {
            let recs: Vec<(u8, &[u8])> = lines.iter().map(|l| (rec::NORM, l.as_bytes())).collect();
            let (f, o) = file(&recs);
            let want: String = lines.iter().map(|l| format!("{l}\n")).collect();
            proptest::prop_assert_eq!(read(f, o).unwrap(), want.into_bytes());
        }
    }
}
