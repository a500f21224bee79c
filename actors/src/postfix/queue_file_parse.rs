//! queue_file_parse - small parsers and the error type behind
//! [`super::queue_file`]: C-library number parsing as Postfix uses it
//! (`atol`, `sscanf`), `split_nameval` for `A` records, the `C` record's
//! fields, VERP delimiter checks, and [`EnvelopeError`] with Postfix's
//! warning texts.
//!
//! Postfix parses numbers with `atol`/`sscanf`: leading white space, an
//! optional sign, then digits up to the first non-digit. We mirror that
//! (saturating instead of undefined behaviour on overflow), because the
//! exact acceptance rules decide which files are corrupt.

use std::fmt;
use std::io;

use super::log::errno_text;
use super::record::RecordError;

/// Tunables of the envelope reader (main.cf parameters).
#[derive(Debug, Clone, PartialEq)]
pub struct ReadLimits {
    /// `qmgr_message_recipient_limit` (20000).
    pub recipient_limit: usize,
    /// `qmgr_fudge_factor` in percent (100).
    pub fudge_factor: u32,
    /// `verp_delimiter_filter` (`-=+`).
    pub verp_filter: Vec<u8>,
    /// `confirm_delay_cleared` (no).
    pub confirm_delay_cleared: bool,
    /// Largest record payload accepted; `None` = the record module default.
    pub record_limit: Option<usize>,
}

impl Default for ReadLimits {
    /// Postfix 3.7 defaults.
    fn default() -> Self {
        ReadLimits {
            recipient_limit: 20_000,
            fudge_factor: 100,
            verp_filter: b"-=+".to_vec(),
            confirm_delay_cleared: false,
            record_limit: None,
        }
    }
}

impl ReadLimits {
    /// Recipients per read: `recipient_limit × fudge_factor / 100` (kept as
    /// a float, as Postfix compares it).
    pub fn batch_limit(&self) -> f64 {
        self.recipient_limit as f64 * (f64::from(self.fudge_factor) / 100.0)
    }
}

/// Why an envelope was rejected (the file is corrupt), or I/O failed.
#[derive(Debug)]
pub enum EnvelopeError {
    /// End of file, a record error, or a type-0 record before `E`.
    MissingEndRecord(Option<RecordError>),
    /// A record type not allowed where it was found.
    UnexpectedRecordType {
        /// The type byte.
        rtype: u8,
        /// Its offset.
        offset: u64,
    },
    /// A `p` record that could not be followed.
    Pointer(RecordError),
    /// An `A` record without a name or `=`.
    BadAttribute {
        /// `missing attribute name` or `missing '=' after attribute name`.
        error: &'static str,
        /// The record text (at most 200 bytes, lossy).
        text: String,
    },
    /// Non-positive data offset/size or negative content length.
    InvalidSizeRecord {
        /// The record text (at most 100 bytes, lossy).
        text: String,
    },
    /// Read-flag bits outside the known set.
    InvalidSizeFlags {
        /// The record text (at most 100 bytes, lossy).
        text: String,
    },
    /// A `C` record with 0 or 2 numbers.
    WeirdSizeRecord,
    /// A pre-1.0 `C` record with one number (not supported; Postfix would
    /// rescan the file the old way).
    LegacyQueueFile,
    /// No `T` record.
    MissingArrivalTime,
    /// No `S` record.
    MissingSender,
    /// No `C` record.
    MissingSizeRecord,
    /// Seeking or reading failed (fatal in Postfix).
    Io(io::Error),
}

impl From<io::Error> for EnvelopeError {
    fn from(e: io::Error) -> Self {
        EnvelopeError::Io(e)
    }
}

impl EnvelopeError {
    /// The warning lines Postfix logs for this failure (without the
    /// `warning: ` prefix), given the queue ID and the file's path as
    /// opened (e.g. `active/B147AB402B`).
    pub fn warnings(&self, queue_id: &str, path: &str) -> Vec<String> {
        let id = queue_id;
        let rejected = |what: &str| vec![format!("{id}: message rejected: {what}")];
        match self {
            EnvelopeError::MissingEndRecord(None) => rejected("missing end record"),
            EnvelopeError::MissingEndRecord(Some(e)) => vec![
                format!("{path}: {e}"),
                format!("{id}: message rejected: missing end record"),
            ],
            EnvelopeError::UnexpectedRecordType { rtype, offset } => vec![format!(
                "Unexpected record type '{}' at offset {offset}",
                char::from(*rtype)
            )],
            EnvelopeError::Pointer(e) => vec![format!("{path}: {e}")],
            EnvelopeError::BadAttribute { error, text } => {
                vec![format!("{id}: bad attribute record: {error}: {text}")]
            }
            EnvelopeError::InvalidSizeRecord { text } => {
                vec![format!("{id}: invalid size record: {text}")]
            }
            EnvelopeError::InvalidSizeFlags { text } => {
                vec![format!("{id}: invalid flags in size record: {text}")]
            }
            EnvelopeError::WeirdSizeRecord => rejected("weird size record"),
            EnvelopeError::LegacyQueueFile => {
                vec![format!("{id}: unsupported pre-1.0 queue file format")]
            }
            EnvelopeError::MissingArrivalTime => rejected("missing arrival time record"),
            EnvelopeError::MissingSender => rejected("missing sender record"),
            EnvelopeError::MissingSizeRecord => rejected("missing size record"),
            EnvelopeError::Io(e) => vec![format!("{path}: {}", errno_text(e))],
        }
    }

    /// True when the file should go to `corrupt/` (everything but I/O).
    pub fn is_corrupt(&self) -> bool {
        !matches!(self, EnvelopeError::Io(_))
    }
}

impl fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.warnings("<id>", "<file>").join("; "))
    }
}

impl std::error::Error for EnvelopeError {}

/// `atol`: white space, optional sign, digits; 0 if none; saturates.
pub fn atol(s: &[u8]) -> i64 {
    parse_long(s).map(|(v, _)| v).unwrap_or(0)
}

/// One `%ld` conversion: skips white space, reads an optional sign and at
/// least one digit. Returns the value (saturated) and the bytes consumed.
fn parse_long(s: &[u8]) -> Option<(i64, usize)> {
    let mut i = s.iter().take_while(|b| is_c_space(**b)).count();
    let negative = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let digits = s[i..].iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let mut value: i64 = 0;
    for &b in &s[i..i + digits] {
        let d = i64::from(b - b'0');
        value = if negative {
            value.saturating_mul(10).saturating_sub(d)
        } else {
            value.saturating_mul(10).saturating_add(d)
        };
    }
    Some((value, i + digits))
}

/// C `isspace` in the "C" locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// Fields of a Postfix ≥ 1.0 `C` record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeRecord {
    /// Field 1.
    pub data_size: i64,
    /// Field 2.
    pub data_offset: i64,
    /// Field 3.
    pub rcpt_count: i32,
    /// Field 4, if present.
    pub read_flags: Option<i32>,
    /// Field 5, if present.
    pub cont_length: Option<i64>,
    /// Field 6, if present.
    pub smtputf8: Option<i32>,
}

/// Result of scanning a `C` payload as `"%ld %ld %d %d %ld %d"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeFields {
    /// Three or more numbers.
    Modern(SizeRecord),
    /// Exactly one number (pre-1.0 files): the data size.
    Legacy(i64),
    /// None or two.
    Weird,
}

/// Scans a `C` payload; `%d` fields are truncated to 32 bits as a C
/// compiler stores them.
pub fn parse_size_fields(s: &[u8]) -> SizeFields {
    let mut values = [0i64; 6];
    let mut count = 0;
    let mut rest = s;
    while count < 6 {
        match parse_long(rest) {
            Some((v, used)) => {
                values[count] = v;
                count += 1;
                rest = &rest[used..];
            }
            None => break,
        }
    }
    match count {
        0 | 2 => SizeFields::Weird,
        1 => SizeFields::Legacy(values[0]),
        n => SizeFields::Modern(SizeRecord {
            data_size: values[0],
            data_offset: values[1],
            rcpt_count: values[2] as i32,
            read_flags: (n > 3).then_some(values[3] as i32),
            cont_length: (n > 4).then_some(values[4]),
            smtputf8: (n > 5).then_some(values[5] as i32),
        }),
    }
}

/// Splits an `A` payload into name and value (`split_nameval`): white space
/// around both is dropped, the name ends at white space or `=`.
pub fn split_nameval(s: &[u8]) -> Result<(&[u8], &[u8]), &'static str> {
    let np = s.iter().take_while(|b| is_c_space(**b)).count();
    if np == s.len() || s[np] == b'=' {
        return Err("missing attribute name");
    }
    let ep = np
        + s[np..]
            .iter()
            .take_while(|b| !is_c_space(**b) && **b != b'=')
            .count();
    let cp = ep + s[ep..].iter().take_while(|b| is_c_space(**b)).count();
    if s.get(cp) != Some(&b'=') {
        return Err("missing '=' after attribute name");
    }
    let vp = cp + 1 + s[cp + 1..].iter().take_while(|b| is_c_space(**b)).count();
    let mut end = s.len();
    while end > vp && is_c_space(s[end - 1]) {
        end -= 1;
    }
    Ok((&s[np..ep], &s[vp..end]))
}

/// True for valid VERP delimiters: exactly two bytes, each in `filter`.
pub fn check_verp(delims: &[u8], filter: &[u8]) -> bool {
    delims.len() == 2 && delims.iter().all(|b| filter.contains(b))
}

/// At most `max` bytes of `s` as text (`%.200s` in Postfix's warnings).
pub fn trunc(s: &[u8], max: usize) -> String {
    String::from_utf8_lossy(&s[..s.len().min(max)]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_number_rules() {
        assert_eq!(atol(b"  -12x"), -12);
        assert_eq!(atol(b"x"), 0);
        assert_eq!(atol(b"99999999999999999999999"), i64::MAX);
        assert_eq!(parse_size_fields(b"1 2"), SizeFields::Weird);
        assert_eq!(parse_size_fields(b""), SizeFields::Weird);
        assert_eq!(parse_size_fields(b"7"), SizeFields::Legacy(7));
        let SizeFields::Modern(r) = parse_size_fields(b"   283   292   1   0   283   0") else {
            panic!("not modern");
        };
        assert_eq!((r.data_size, r.data_offset, r.rcpt_count), (283, 292, 1));
        assert_eq!(
            (r.read_flags, r.cont_length, r.smtputf8),
            (Some(0), Some(283), Some(0))
        );
        let SizeFields::Modern(r) = parse_size_fields(b"1 2 3 x") else {
            panic!("not modern");
        };
        assert_eq!(r.read_flags, None);
    }

    #[test]
    fn nameval() {
        assert_eq!(split_nameval(b" a = b c "), Ok((&b"a"[..], &b"b c"[..])));
        assert_eq!(split_nameval(b"a="), Ok((&b"a"[..], &b""[..])));
        assert_eq!(split_nameval(b"=x"), Err("missing attribute name"));
        assert_eq!(split_nameval(b"   "), Err("missing attribute name"));
        assert_eq!(
            split_nameval(b"a b=c"),
            Err("missing '=' after attribute name")
        );
        assert!(check_verp(b"+=", b"-=+"));
        assert!(!check_verp(b"+", b"-=+"));
        assert!(!check_verp(b"+x", b"-=+"));
    }
}
