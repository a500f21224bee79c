//! attr0 list encoder, bounded tokenizer and strict scanner (Postfix:
//! `attr_print0.c`, `attr_scan0.c`).
//!
//! Encoding is infallible except for one input error: a value that holds a
//! NUL byte cannot be written (the peer would read it as the end of the
//! value and lose sync), so [`AttrWriter`] remembers the first such value and
//! [`AttrWriter::finish`] reports it.
//!
//! Decoding is split in two steps. [`decode_list`] cuts one list out of a
//! byte slice, enforcing [`Limits`]; it reports [`DecodeError::Truncated`]
//! when the slice ends first, which the socket reader uses to ask for more
//! bytes. [`AttrScan`] then walks the list the way Postfix's `attr_scan`
//! does with `ATTR_FLAG_STRICT`: in order, nothing missing, nothing extra.

use super::{DecodeError, EncodeError, Limits};

/// The pairs of an `ATTR_TYPE_HASH` table, in wire order.
pub type Table = Vec<(Vec<u8>, Vec<u8>)>;

/// Where one name or value lies in its list's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    /// Offset of the first byte.
    start: u32,
    /// Length in bytes (the NUL after it excluded).
    len: u32,
}

impl Span {
    /// The bytes of this span in `bytes`.
    fn of(self, bytes: &[u8]) -> &[u8] {
        let start = self.start as usize;
        &bytes[start..start + self.len as usize]
    }
}

/// One decoded attribute, as it appeared on the wire: spans into the
/// list's bytes, so decoding allocates nothing per attribute (a delivery
/// agent's reply has eleven).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Attr {
    /// `name NUL value NUL`.
    Pair {
        /// Attribute name (never empty, never `{` or `}`).
        name: Span,
        /// Raw value bytes (text, decimal digits or base64).
        value: Span,
    },
    /// An anonymous name/value table (`ATTR_TYPE_HASH`): `{ NUL`, pairs,
    /// `} NUL`.
    Table(Vec<(Span, Span)>),
}

/// One decoded attribute list (everything before its terminator).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AttrList {
    /// The list's bytes as they came off the wire (its terminator
    /// excluded); the attributes point into them.
    bytes: Vec<u8>,
    /// The attributes in wire order.
    attrs: Vec<Attr>,
}

impl AttrList {
    /// A strict scanner over this list (missing and extra attributes are
    /// errors), the way every qmgr-side Postfix reader works.
    pub fn scan(&self) -> AttrScan<'_> {
        AttrScan {
            bytes: &self.bytes,
            attrs: &self.attrs,
            pos: 0,
            skip_extra: false,
        }
    }

    /// A scanner that skips attributes it was not asked for (Postfix's
    /// `ATTR_FLAG_MISSING` without `ATTR_FLAG_EXTRA`, as the bounce daemon
    /// reads requests).
    pub fn scan_lenient(&self) -> AttrScan<'_> {
        AttrScan {
            bytes: &self.bytes,
            attrs: &self.attrs,
            pos: 0,
            skip_extra: true,
        }
    }

    /// The number of top-level attributes (a table counts as one).
    pub fn len(&self) -> usize {
        self.attrs.len()
    }

    /// True for the empty list (a bare terminator).
    pub fn is_empty(&self) -> bool {
        self.attrs.is_empty()
    }
}

const TABLE_OPEN: &[u8] = b"{";
const TABLE_CLOSE: &[u8] = b"}";

/// Builds attr0 bytes; several lists may be written back to back.
#[derive(Debug, Default)]
pub struct AttrWriter {
    /// Bytes written so far.
    buf: Vec<u8>,
    /// First value that could not be encoded (holds a NUL byte).
    error: Option<EncodeError>,
}

impl AttrWriter {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty writer with room for `bytes` (a request whose size is
    /// roughly known is then written without growing the buffer).
    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            buf: Vec::with_capacity(bytes),
            error: None,
        }
    }

    fn name(&mut self, name: &str) {
        // Names are protocol constants chosen by this crate; a NUL or empty
        // name would silently desynchronise the peer, so it is our bug.
        assert!(
            !name.is_empty() && !name.contains('\0') && name != "{" && name != "}",
            "invalid attribute name {name:?}"
        );
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
    }

    fn value(&mut self, name: &str, value: &[u8]) {
        if value.contains(&0) && self.error.is_none() {
            self.error = Some(EncodeError::NulInValue {
                name: name.to_owned(),
            });
        }
        self.buf.extend_from_slice(value);
        self.buf.push(0);
    }

    /// `ATTR_TYPE_STR`: raw bytes.
    pub fn str(&mut self, name: &str, value: impl AsRef<[u8]>) -> &mut Self {
        self.name(name);
        self.value(name, value.as_ref());
        self
    }

    /// `ATTR_TYPE_INT`: decimal text of an unsigned 32-bit number (Postfix
    /// sends −1 as `4294967295`; use [`i32 as u32`](u32) for that).
    pub fn int(&mut self, name: &str, value: u32) -> &mut Self {
        self.number(name, u64::from(value))
    }

    /// `ATTR_TYPE_LONG`: decimal text of an unsigned 64-bit number.
    pub fn long(&mut self, name: &str, value: u64) -> &mut Self {
        self.number(name, value)
    }

    /// Decimal digits written straight into the buffer (no NUL possible,
    /// no temporary string: a delivery request carries a dozen numbers).
    fn number(&mut self, name: &str, value: u64) -> &mut Self {
        use std::io::Write;
        self.name(name);
        let _ = write!(self.buf, "{value}");
        self.buf.push(0);
        self
    }

    /// `ATTR_TYPE_DATA`: standard base64 of the bytes.
    pub fn data(&mut self, name: &str, value: &[u8]) -> &mut Self {
        self.name(name);
        let text = super::base64::encode(value);
        self.value(name, text.as_bytes());
        self
    }

    /// `ATTR_TYPE_HASH`: an anonymous table of pairs.
    pub fn table<K: AsRef<[u8]>, V: AsRef<[u8]>>(&mut self, pairs: &[(K, V)]) -> &mut Self {
        self.buf.extend_from_slice(TABLE_OPEN);
        self.buf.push(0);
        for (k, v) in pairs {
            let (k, v) = (k.as_ref(), v.as_ref());
            if (k.is_empty() || k == TABLE_CLOSE || k.contains(&0)) && self.error.is_none() {
                self.error = Some(EncodeError::BadTableKey);
            }
            self.buf.extend_from_slice(k);
            self.buf.push(0);
            self.value("table value", v);
        }
        self.buf.extend_from_slice(TABLE_CLOSE);
        self.buf.push(0);
        self
    }

    /// `ATTR_TYPE_FUNC`: let a nested structure write its attributes inline
    /// (no grouping, no terminator of its own).
    pub fn func<T: AttrFunc>(&mut self, value: &T) -> &mut Self {
        value.print(self);
        self
    }

    /// `ATTR_TYPE_END`: terminate the current list.
    pub fn end(&mut self) -> &mut Self {
        self.buf.push(0);
        self
    }

    /// The encoded bytes, or the first encoding error.
    pub fn finish(self) -> Result<Vec<u8>, EncodeError> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.buf),
        }
    }
}

/// A structure that Postfix sends inline with `ATTR_TYPE_FUNC`
/// (`rcpt_print`, `dsn_print`, `msg_stats_print` and their scanners).
pub trait AttrFunc: Sized {
    /// Write this structure's attributes, in wire order, without terminator.
    fn print(&self, w: &mut AttrWriter);
    /// Read this structure's attributes from the scanner's current position.
    fn scan(s: &mut AttrScan<'_>) -> Result<Self, DecodeError>;
}

/// Reads bytes up to the next NUL, at most `max` bytes before it.
fn token(input: &[u8], at: usize, max: usize) -> Result<Option<&[u8]>, usize> {
    let rest = &input[at..];
    match rest.iter().take(max + 1).position(|&b| b == 0) {
        Some(n) => Ok(Some(&rest[..n])),
        // No NUL within the limit: too long if the limit was reachable,
        // otherwise the input simply ends early.
        None if rest.len() > max => Err(max),
        None => Ok(None),
    }
}

/// Cuts the first attribute list out of `input`.
///
/// Returns the list and the number of bytes it used (terminator included).
///
/// # Errors
/// [`DecodeError::Truncated`] when `input` ends before the terminator (read
/// more and retry); a length or count error when a limit is exceeded (never
/// allocates beyond the limits); [`DecodeError::BadTable`] for a table that
/// is not closed properly.
pub fn decode_list(input: &[u8], limits: &Limits) -> Result<(AttrList, usize), DecodeError> {
    let (attrs, used) = cut_list(input, limits)?;
    let list = AttrList {
        bytes: input[..used - 1].to_vec(),
        attrs,
    };
    Ok((list, used))
}

/// As [`decode_list`] on the front of `buf`, taking the bytes it used out
/// of `buf` (the rest stays, for the next list). When the list is all
/// there is, the buffer itself becomes the list's storage: nothing is
/// copied.
///
/// # Errors
/// As [`decode_list`]; `buf` is left as it was.
pub fn take_list(buf: &mut Vec<u8>, limits: &Limits) -> Result<AttrList, DecodeError> {
    let (attrs, used) = cut_list(buf, limits)?;
    let bytes = if used == buf.len() {
        let mut bytes = std::mem::take(buf);
        bytes.truncate(used - 1);
        bytes
    } else {
        let bytes = buf[..used - 1].to_vec();
        buf.drain(..used);
        bytes
    };
    Ok(AttrList { bytes, attrs })
}

/// Finds the attributes of the first list in `input`: their spans and the
/// number of bytes the list used (terminator included).
fn cut_list(input: &[u8], limits: &Limits) -> Result<(Vec<Attr>, usize), DecodeError> {
    // Offsets are kept in 32 bits: a list longer than that is refused
    // whatever the limits say.
    let max_list_len = limits.max_list_len.min(u32::MAX as usize - 1);
    let mut at = 0usize;
    let mut count = 0usize;
    let mut attrs = Vec::new();
    let mut table: Option<Vec<(Span, Span)>> = None;
    let span = |at: usize, len: usize| Span {
        start: at as u32,
        len: len as u32,
    };
    loop {
        if at > max_list_len {
            return Err(DecodeError::ListTooLong {
                limit: limits.max_list_len,
            });
        }
        let name = match token(input, at, limits.max_name_len) {
            Ok(Some(n)) => n,
            Ok(None) => return Err(DecodeError::Truncated),
            Err(limit) => return Err(DecodeError::NameTooLong { limit }),
        };
        let name_span = span(at, name.len());
        at += name.len() + 1;
        if name.is_empty() {
            if table.is_some() {
                return Err(DecodeError::BadTable);
            }
            return Ok((attrs, at));
        }
        if name == TABLE_OPEN {
            if table.is_some() {
                return Err(DecodeError::BadTable);
            }
            table = Some(Vec::new());
            continue;
        }
        if name == TABLE_CLOSE {
            match table.take() {
                Some(t) => attrs.push(Attr::Table(t)),
                None => return Err(DecodeError::BadTable),
            }
            continue;
        }
        count += 1;
        if count > limits.max_attrs {
            return Err(DecodeError::TooManyAttributes {
                limit: limits.max_attrs,
            });
        }
        let value = match token(input, at, limits.max_value_len) {
            Ok(Some(v)) => v,
            Ok(None) => return Err(DecodeError::Truncated),
            Err(limit) => {
                return Err(DecodeError::ValueTooLong {
                    name: lossy(name),
                    limit,
                });
            }
        };
        let value_span = span(at, value.len());
        at += value.len() + 1;
        match table.as_mut() {
            Some(t) => t.push((name_span, value_span)),
            None => {
                if attrs.capacity() == 0 {
                    // Most lists qmgr reads have about a dozen attributes:
                    // one allocation instead of four growths.
                    attrs.reserve(16);
                }
                attrs.push(Attr::Pair {
                    name: name_span,
                    value: value_span,
                });
            }
        }
    }
}

/// Decodes `input` as exactly one list with nothing after it.
///
/// # Errors
/// As [`decode_list`], plus [`DecodeError::TrailingData`].
pub fn decode_one_list(input: &[u8], limits: &Limits) -> Result<AttrList, DecodeError> {
    let (list, used) = decode_list(input, limits)?;
    if used != input.len() {
        return Err(DecodeError::TrailingData {
            extra: input.len() - used,
        });
    }
    Ok(list)
}

pub(crate) fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Walks a decoded list in order, as Postfix's `attr_scan` does.
#[derive(Debug)]
pub struct AttrScan<'a> {
    /// The list's bytes.
    bytes: &'a [u8],
    /// The attributes of the list.
    attrs: &'a [Attr],
    /// Index of the next unread attribute.
    pos: usize,
    /// Skip unrequested attributes instead of failing (no EXTRA check).
    skip_extra: bool,
}

impl<'a> AttrScan<'a> {
    /// The raw value of the next attribute, which must be called `name`.
    fn next_value(&mut self, name: &str) -> Result<&'a [u8], DecodeError> {
        loop {
            let Some(attr) = self.attrs.get(self.pos) else {
                return Err(DecodeError::Missing {
                    expected: name.to_owned(),
                });
            };
            self.pos += 1;
            match attr {
                Attr::Pair { name: n, value } if n.of(self.bytes) == name.as_bytes() => {
                    return Ok(value.of(self.bytes))
                }
                _ if self.skip_extra => continue,
                Attr::Pair { name: n, .. } => {
                    return Err(DecodeError::Unexpected {
                        found: lossy(n.of(self.bytes)),
                        expected: name.to_owned(),
                    })
                }
                Attr::Table(_) => {
                    return Err(DecodeError::Unexpected {
                        found: "{".to_owned(),
                        expected: name.to_owned(),
                    })
                }
            }
        }
    }

    /// `RECV_ATTR_STR`.
    pub fn str(&mut self, name: &str) -> Result<Vec<u8>, DecodeError> {
        self.next_value(name).map(<[u8]>::to_vec)
    }

    /// `RECV_ATTR_STR` for values this crate handles as text; bytes that are
    /// not UTF-8 are replaced (used only for diagnostics such as DSN text).
    pub fn text(&mut self, name: &str) -> Result<String, DecodeError> {
        self.next_value(name).map(lossy)
    }

    /// `RECV_ATTR_STREQ`: the value must equal `expected`.
    pub fn streq(&mut self, name: &str, expected: &str) -> Result<(), DecodeError> {
        let v = self.next_value(name)?;
        if v != expected.as_bytes() {
            return Err(DecodeError::Mismatch {
                name: name.to_owned(),
                expected: expected.to_owned(),
                found: lossy(v),
            });
        }
        Ok(())
    }

    /// `RECV_ATTR_INT`: decimal digits only, must fit 32 bits.
    pub fn int(&mut self, name: &str) -> Result<u32, DecodeError> {
        let v = self.next_value(name)?;
        parse_decimal(v)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| DecodeError::BadNumber {
                name: name.to_owned(),
                value: lossy(v),
            })
    }

    /// `RECV_ATTR_LONG`: decimal digits only, must fit 64 bits.
    pub fn long(&mut self, name: &str) -> Result<u64, DecodeError> {
        let v = self.next_value(name)?;
        parse_decimal(v).ok_or_else(|| DecodeError::BadNumber {
            name: name.to_owned(),
            value: lossy(v),
        })
    }

    /// `RECV_ATTR_DATA`: base64-decoded bytes.
    pub fn data(&mut self, name: &str) -> Result<Vec<u8>, DecodeError> {
        let v = self.next_value(name)?;
        super::base64::decode(v).ok_or_else(|| DecodeError::BadBase64 {
            name: name.to_owned(),
        })
    }

    /// `RECV_ATTR_HASH`: the next attribute must be a table.
    pub fn table(&mut self) -> Result<Table, DecodeError> {
        loop {
            let Some(attr) = self.attrs.get(self.pos) else {
                return Err(DecodeError::Missing {
                    expected: "{".to_owned(),
                });
            };
            self.pos += 1;
            match attr {
                Attr::Table(t) => {
                    return Ok(t
                        .iter()
                        .map(|(k, v)| (k.of(self.bytes).to_vec(), v.of(self.bytes).to_vec()))
                        .collect())
                }
                _ if self.skip_extra => continue,
                Attr::Pair { name, .. } => {
                    return Err(DecodeError::Unexpected {
                        found: lossy(name.of(self.bytes)),
                        expected: "{".to_owned(),
                    })
                }
            }
        }
    }

    /// `RECV_ATTR_FUNC`: a nested structure read inline.
    pub fn func<T: AttrFunc>(&mut self) -> Result<T, DecodeError> {
        T::scan(self)
    }

    /// Ends the scan: in strict mode anything left over is an error (the
    /// EXTRA check).
    pub fn finish(self) -> Result<(), DecodeError> {
        match self.attrs.get(self.pos) {
            Some(_) if self.skip_extra => Ok(()),
            Some(Attr::Pair { name, .. }) => Err(DecodeError::Extra {
                found: lossy(name.of(self.bytes)),
            }),
            Some(Attr::Table(_)) => Err(DecodeError::Extra {
                found: "{".to_owned(),
            }),
            None => Ok(()),
        }
    }
}

/// Parses a non-empty run of ASCII digits without overflow.
///
/// Postfix's reader uses `sscanf("%u")`, which would also take a sign or
/// leading blanks; no Postfix writer produces those, so refusing them only
/// catches garbage earlier.
fn parse_decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}
