//! queue_file - reading a queue file's envelope the way oqmgr does (mirrors
//! `qmgr_message_read()` in `postfix/src/oqmgr/qmgr_message.c`).
//!
//! # What is read
//! [`read_envelope`] walks the records from offset 0, follows `p` pointers,
//! skips the message content (from `data_offset`, `data_size` bytes; only
//! `X` may follow), and collects what the queue manager needs: the `C` size
//! record, arrival and create times, sender, the named attributes qmgr uses
//! (docs/postfix-queue-files.md §3.9), DSN ENVID/RET, `W` warning time and its offset, VERP,
//! redirect, content filter, and a batch of recipients with their record
//! offsets and pending `O`/`o`/`n` values.
//!
//! # Batching
//! At most `recipient_limit × fudge_factor / 100` recipients are kept per
//! read. When the batch fills, the offset after the last kept `R` is saved
//! ([`FileEnvelope::has_more_recipients`]); [`FileEnvelope::refill`] resumes from
//! there, taking no lock and skipping non-recipient records. On the first
//! read, the rest of the file is still examined for non-recipient records:
//! all of it when the `C` record says MIXED, otherwise the reader jumps to
//! the content and reads only the extracted segment.
//!
//! # Errors and warnings
//! Postfix logs a warning and declares the file corrupt; we return an
//! [`EnvelopeError`] whose [`EnvelopeError::warnings`] are Postfix's exact
//! warning texts. Warnings about ignored records (out-of-order originals,
//! malformed DSN flags, bad VERP, duplicate attributes) are collected in
//! [`FileEnvelope::warnings`]. Payloads are interpreted as C strings (up to the
//! first NUL) and kept as bytes: addresses need not be UTF-8.
//!
//! # Differences from Postfix
//! - Records longer than the reader's limit are an error instead of an
//!   unbounded allocation; seek errors and a broken pre-1.0 layout are
//!   errors instead of fatal exits.

use std::io::{Read, Seek};

use super::queue_file_parse::{
    atol, check_verp, parse_size_fields, split_nameval, trunc, SizeFields,
};
use super::record::{
    c_str, rec, PointerFollower, RecordError, RecordReader, WalkedRanges, DEFAULT_RECORD_LIMIT,
};

pub use super::queue_file_parse::{EnvelopeError, ReadLimits};

/// `C` flag: recipient records are mixed with other records.
pub const READ_FLAG_MIXED_RCPT_OTHER: i32 = 1;
/// `C` flag bits that may legally be set (MIXED and the DSN NOTIFY bits).
pub const READ_FLAG_USER: i32 = 0x1f;
/// DSN NOTIFY=NEVER.
pub const DSN_NOTIFY_NEVER: i32 = 1;
/// DSN NOTIFY=SUCCESS.
pub const DSN_NOTIFY_SUCCESS: i32 = 2;
/// DSN NOTIFY=FAILURE.
pub const DSN_NOTIFY_FAILURE: i32 = 4;
/// DSN NOTIFY=DELAY.
pub const DSN_NOTIFY_DELAY: i32 = 8;
/// DSN RET=FULL.
pub const DSN_RET_FULL: i32 = 1;
/// DSN RET=HDRS.
pub const DSN_RET_HDRS: i32 = 2;
/// Trace flag: MTA-requested address probe.
pub const TRACE_MTA_VRFY: i32 = 1 << 8;
/// Trace flag: user-requested address probe.
pub const TRACE_USR_VRFY: i32 = 1 << 9;
/// Trace flag: record and deliver (`sendmail -v`).
pub const TRACE_RECORD: i32 = 1 << 10;
/// Trace flag: a delay warning was sent.
pub const TRACE_REC_DLY_SENT: i32 = 1 << 13;
/// Trace flags a queue file may carry.
pub const TRACE_FLAGS_MASK: i32 =
    TRACE_MTA_VRFY | TRACE_USR_VRFY | TRACE_RECORD | TRACE_REC_DLY_SENT;

/// True for a valid DSN NOTIFY value: NEVER alone, or a non-empty subset of
/// SUCCESS, FAILURE, DELAY.
pub fn dsn_notify_ok(n: i32) -> bool {
    n == DSN_NOTIFY_NEVER
        || (n != 0 && n & !(DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY) == 0)
}

/// One recipient as read from the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecipient {
    /// Offset of the `R` record's type byte (for marking it `D`).
    pub offset: u64,
    /// DSN ORCPT (`type;address`), empty if none.
    pub dsn_orcpt: Vec<u8>,
    /// DSN NOTIFY bits, 0 if unspecified.
    pub dsn_notify: i32,
    /// Original recipient (`O`), empty if none.
    pub orig_rcpt: Vec<u8>,
    /// The recipient address (internal form).
    pub address: Vec<u8>,
}

/// What the queue manager knows about a message after reading its envelope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileEnvelope {
    /// `C` field 1: content bytes from `data_offset` to the `X` record.
    pub data_size: i64,
    /// `C` field 2: offset of the first content record (0 = no `C` seen).
    pub data_offset: i64,
    /// `C` field 3 as seen by the latest read (for `nrcpt=` in logs).
    pub rcpt_count: i32,
    /// `C` field 4 (MIXED, DSN NOTIFY summary bits).
    pub read_flags: i32,
    /// `C` field 5: message content length (`size=`); data_size if 0.
    pub cont_length: i64,
    /// `C` field 6: SMTPUTF8 flags.
    pub smtputf8: i32,
    /// `T` seconds (0 = none seen).
    pub arrival_sec: i64,
    /// `T` microseconds.
    pub arrival_usec: i64,
    /// `create_time` (defaults to `arrival_sec`).
    pub create_time: i64,
    /// Envelope sender; `None` until an `S` record was seen. Empty = null
    /// sender.
    pub sender: Option<Vec<u8>>,
    /// `(size, nrcpt)` as logged in "from=<…>, size=…, nrcpt=… (queue
    /// active)" when the `S` record was read; `None` if none was read.
    pub opened_log: Option<(i64, i32)>,
    /// Content filter (`L` outside the content), last one wins.
    pub filter_xport: Option<Vec<u8>>,
    /// Legacy inspector transport (`I`), last one wins.
    pub inspect_xport: Option<Vec<u8>>,
    /// Redirect address (`>`), last one wins.
    pub redirect_addr: Option<Vec<u8>>,
    /// DSN ENVID, empty if none.
    pub dsn_envid: Vec<u8>,
    /// DSN RET (FULL=1, HDRS=2), 0 if none.
    pub dsn_ret: i32,
    /// `encoding` attribute (`7bit`, `8bit` or empty).
    pub encoding: Vec<u8>,
    /// Client name for logging (`log_client_name` or legacy).
    pub client_name: Vec<u8>,
    /// Client address for logging.
    pub client_addr: Vec<u8>,
    /// Client port for logging.
    pub client_port: Vec<u8>,
    /// Client protocol for logging.
    pub client_proto: Vec<u8>,
    /// Client HELO name for logging.
    pub client_helo: Vec<u8>,
    /// `sasl_method`, first wins.
    pub sasl_method: Vec<u8>,
    /// `sasl_username`, first wins.
    pub sasl_username: Vec<u8>,
    /// `sasl_sender`, first wins.
    pub sasl_sender: Vec<u8>,
    /// `log_ident` (upstream queue ID), first wins.
    pub log_ident: Vec<u8>,
    /// `rewrite_context`, first wins; `local` by default.
    pub rewrite_context: Vec<u8>,
    /// Trace flags (masked), first non-zero wins; may gain REC_DLY_SENT.
    pub trace_flags: i32,
    /// Offset of the `A trace_flags=1024` record (to kill it later), or 0.
    pub trace_flags_offset: u64,
    /// Offset of the first `W` record, or 0.
    pub warn_offset: u64,
    /// Its value: next warning time, -1 = sent, 0 = none.
    pub warn_time: i64,
    /// VERP delimiters, if VERP was accepted.
    pub verp_delims: Option<Vec<u8>>,
    /// True when VERP forces one recipient per delivery.
    pub single_rcpt: bool,
    /// The current batch of recipients.
    pub recipients: Vec<FileRecipient>,
    /// Where the next refill starts; 0 when all recipients were read.
    pub rcpt_offset: u64,
    /// True once every non-recipient record has been examined.
    pub seen_all_non_rcpt: bool,
    /// Warnings about ignored records, in Postfix's words (queue ID
    /// included), from all reads so far.
    pub warnings: Vec<String>,
    /// Pointer loop guard, kept across refills as Postfix keeps it per file:
    /// a pointer loop around a recipient would otherwise make every refill
    /// find "more recipients" forever.
    pub pointers: PointerFollower,
    /// The bytes the walk through the file has read up to `rcpt_offset`:
    /// a pointer back into them is a loop (see `record::WalkedRanges`), and
    /// a loop over recipient records would hand the same recipients out on
    /// every refill.
    pub walked: WalkedRanges,
}

impl FileEnvelope {
    /// True if recipients remain in the file after the current batch.
    pub fn has_more_recipients(&self) -> bool {
        self.rcpt_offset != 0
    }

    /// Reads the next batch of recipients, replacing [`FileEnvelope::recipients`]
    /// (the caller has finished with the previous batch). Takes no lock.
    pub fn refill<R: Read + Seek>(
        &mut self,
        file: R,
        queue_id: &str,
        limits: &ReadLimits,
    ) -> Result<(), EnvelopeError> {
        self.recipients.clear();
        read_pass(self, file, queue_id, limits)
    }
}

/// Reads a queue file's envelope for the first time (from offset 0).
pub fn read_envelope<R: Read + Seek>(
    file: R,
    queue_id: &str,
    limits: &ReadLimits,
) -> Result<FileEnvelope, EnvelopeError> {
    let mut env = FileEnvelope {
        read_flags: READ_FLAG_MIXED_RCPT_OTHER,
        ..FileEnvelope::default()
    };
    read_pass(&mut env, file, queue_id, limits)?;
    Ok(env)
}

/// Per-read scratch state (`qmgr_message_read` locals).
#[derive(Default)]
struct Pending {
    /// Pending `O` for the next `R`.
    orig_rcpt: Option<Vec<u8>>,
    /// Pending DSN ORCPT for the next `R`.
    dsn_orcpt: Option<Vec<u8>>,
    /// Pending DSN NOTIFY for the next `R` (0 = none).
    dsn_notify: i32,
    /// `C` field 3 from this read.
    nrcpt: i32,
    /// A `log_client_*` attribute was seen: legacy names no longer apply.
    have_log_client_attr: bool,
    /// [`set_bit`] flags of attributes already set in this read.
    attrs_set: u16,
    /// Bytes read by the walk so far: [`FileEnvelope::walked`], then this
    /// read's ranges before `seg_start`.
    walk: WalkedRanges,
    /// Where the range being read now began (the last seek).
    seg_start: u64,
    /// [`Pending::walk`] up to the end of the batch, once it filled: the
    /// next refill's [`FileEnvelope::walked`].
    walk_at_fill: Option<WalkedRanges>,
}

/// How the record loop ended.
enum Stop {
    /// `E` reached, or the batch filled after everything was seen.
    Normal,
    /// A warning was logged and the file is corrupt.
    Failed(EnvelopeError),
}

/// One pass over the file: the first read or a refill.
fn read_pass<R: Read + Seek>(
    env: &mut FileEnvelope,
    file: R,
    queue_id: &str,
    limits: &ReadLimits,
) -> Result<(), EnvelopeError> {
    let save_offset = env.rcpt_offset;
    let mut reader =
        RecordReader::new(file).with_limit(limits.record_limit.unwrap_or(DEFAULT_RECORD_LIMIT));
    if env.rcpt_offset != 0 {
        reader.seek_to(env.rcpt_offset)?;
        env.rcpt_offset = 0;
    }
    let mut p = Pending {
        walk: env.walked.clone(),
        seg_start: reader.position(),
        ..Pending::default()
    };
    let stop = record_loop(env, &mut reader, queue_id, limits, &mut p);
    let normal = matches!(stop, Stop::Normal);
    let id = queue_id;
    if let Some(o) = p.dsn_orcpt.take() {
        if normal {
            env.warnings.push(format!(
                "{id}: ignoring out-of-order DSN original recipient <{}>",
                trunc(&o, 200)
            ));
        }
    }
    if let Some(o) = p.orig_rcpt.take() {
        if normal {
            env.warnings.push(format!(
                "{id}: ignoring out-of-order original recipient <{}>",
                trunc(&o, 200)
            ));
        }
    }
    if limits.confirm_delay_cleared && env.warn_time < 0 {
        env.trace_flags |= TRACE_REC_DLY_SENT;
    }
    if env.create_time == 0 {
        env.create_time = env.arrival_sec;
    }
    if env.rewrite_context.is_empty() {
        env.rewrite_context = b"local".to_vec();
    }
    let failure = match stop {
        Stop::Failed(e) => Some(e),
        Stop::Normal if env.arrival_sec == 0 => Some(EnvelopeError::MissingArrivalTime),
        Stop::Normal if env.sender.is_none() => Some(EnvelopeError::MissingSender),
        Stop::Normal if env.data_offset == 0 => Some(EnvelopeError::MissingSizeRecord),
        Stop::Normal => None,
    };
    match failure {
        None => {
            env.walked = p.walk_at_fill.take().unwrap_or_default();
            Ok(())
        }
        Some(e) => {
            env.rcpt_offset = save_offset;
            Err(e)
        }
    }
}

/// The record loop proper.
fn record_loop<R: Read + Seek>(
    env: &mut FileEnvelope,
    reader: &mut RecordReader<R>,
    id: &str,
    limits: &ReadLimits,
    p: &mut Pending,
) -> Stop {
    let mut buf = Vec::new();
    let batch_limit = limits.batch_limit();
    loop {
        let mut expected: &[u8] = ENV_OR_EXTRACT;
        let mut curr = reader.position();
        if env.data_offset > 0 && curr == env.data_offset as u64 {
            let Some(target) = curr.checked_add(env.data_size.max(0) as u64) else {
                return Stop::Failed(EnvelopeError::MissingEndRecord(None));
            };
            if let Err(e) = reader.seek_to(target) {
                return Stop::Failed(EnvelopeError::Io(e));
            }
            p.walk.add(p.seg_start, curr);
            p.seg_start = target;
            curr = target;
            expected = b"X";
        }
        let rtype = match reader.read_into(&mut buf) {
            Ok(Some((t, _))) => t,
            Ok(None) => return Stop::Failed(EnvelopeError::MissingEndRecord(None)),
            Err(e) => return Stop::Failed(EnvelopeError::MissingEndRecord(Some(e))),
        };
        let start = c_str(&buf);
        if rtype == rec::PTR {
            match env.pointers.follow(&buf) {
                Ok(None) => {}
                Ok(Some(target)) => {
                    p.walk.add(p.seg_start, reader.position());
                    if p.walk.contains(target) {
                        return Stop::Failed(EnvelopeError::Pointer(
                            RecordError::TooManyReverseJumps,
                        ));
                    }
                    if let Err(e) = reader.seek_to(target) {
                        return Stop::Failed(EnvelopeError::Pointer(RecordError::Io(e)));
                    }
                    p.seg_start = target;
                }
                Err(e) => return Stop::Failed(EnvelopeError::Pointer(e)),
            }
            continue;
        }
        if rtype == 0 {
            // Postfix's reader returns the type as an int: 0 reads as "no record".
            return Stop::Failed(EnvelopeError::MissingEndRecord(None));
        }
        if !expected.contains(&rtype) {
            return Stop::Failed(EnvelopeError::UnexpectedRecordType {
                rtype,
                offset: curr,
            });
        }
        if rtype == rec::END {
            env.seen_all_non_rcpt = true;
            return Stop::Normal;
        }
        // Named attributes that stand for pseudo record types.
        let mut rtype = rtype;
        let mut value: &[u8] = start;
        let mut attr_name: &[u8] = b"";
        if rtype == rec::ATTR {
            match split_nameval(start) {
                Err(error) => {
                    return Stop::Failed(EnvelopeError::BadAttribute {
                        error,
                        text: trunc(start, 200),
                    })
                }
                Ok((name, val)) => {
                    attr_name = name;
                    value = val;
                    if let Some(mapped) = attr_pseudo_type(name) {
                        rtype = mapped;
                    }
                }
            }
        }
        let collecting = env.rcpt_offset == 0;
        match rtype {
            rec::RCPT => {
                if collecting {
                    env.recipients.push(FileRecipient {
                        offset: curr,
                        dsn_orcpt: p.dsn_orcpt.take().unwrap_or_default(),
                        dsn_notify: std::mem::take(&mut p.dsn_notify),
                        orig_rcpt: p.orig_rcpt.take().unwrap_or_default(),
                        address: value.to_vec(),
                    });
                    if env.recipients.len() as f64 >= batch_limit {
                        env.rcpt_offset = reader.position();
                        let mut walked = p.walk.clone();
                        walked.add(p.seg_start, env.rcpt_offset);
                        p.walk_at_fill = Some(walked);
                        if env.seen_all_non_rcpt {
                            return Stop::Normal;
                        }
                        if env.read_flags & READ_FLAG_MIXED_RCPT_OTHER != 0 {
                            continue;
                        }
                        if curr as i128 > env.data_offset as i128 {
                            env.seen_all_non_rcpt = true;
                            return Stop::Normal;
                        }
                        // Skip the remaining envelope recipients; the jump
                        // lands on the content start, which switches the
                        // expected types to `X`.
                        p.walk.add(p.seg_start, reader.position());
                        if let Err(e) = reader.seek_to(env.data_offset.max(0) as u64) {
                            return Stop::Failed(EnvelopeError::Io(e));
                        }
                        p.seg_start = env.data_offset.max(0) as u64;
                    }
                }
                continue;
            }
            rec::DONE | rec::DRCP => {
                if collecting {
                    p.dsn_orcpt = None;
                    p.orig_rcpt = None;
                    p.dsn_notify = 0;
                }
                continue;
            }
            rec::DSN_ORCPT => {
                if let Some(old) = p.dsn_orcpt.take() {
                    env.warnings.push(format!(
                        "{id}: ignoring out-of-order DSN original recipient address <{}>",
                        trunc(&old, 200)
                    ));
                }
                if collecting {
                    p.dsn_orcpt = Some(value.to_vec());
                }
                continue;
            }
            rec::DSN_NOTIFY => {
                if p.dsn_notify != 0 {
                    env.warnings.push(format!(
                        "{id}: ignoring out-of-order DSN notify flags <{}>",
                        p.dsn_notify
                    ));
                    p.dsn_notify = 0;
                }
                if collecting {
                    let n = atol(value) as i32;
                    if !all_digits(value) || n == 0 || !dsn_notify_ok(n) {
                        env.warnings.push(format!(
                            "{id}: ignoring malformed DSN notify flags <{}>",
                            trunc(value, 200)
                        ));
                    } else {
                        p.dsn_notify = n;
                    }
                }
                continue;
            }
            rec::ORCP => {
                if let Some(old) = p.orig_rcpt.take() {
                    env.warnings.push(format!(
                        "{id}: ignoring out-of-order original recipient <{}>",
                        trunc(&old, 200)
                    ));
                }
                if collecting {
                    p.orig_rcpt = Some(value.to_vec());
                }
                continue;
            }
            _ => {}
        }
        if env.seen_all_non_rcpt {
            continue;
        }
        if let Err(e) = non_recipient(env, rtype, attr_name, value, curr, id, limits, p) {
            return Stop::Failed(e);
        }
    }
}

/// Types accepted outside the content: envelope ∪ extracted.
const ENV_OR_EXTRACT: &[u8] = b"MCTcFILSDRO/WVA>K<ionEPre";

/// The pseudo record type a named attribute stands for (`rec_attr_map`).
fn attr_pseudo_type(name: &[u8]) -> Option<u8> {
    Some(match name {
        b"dsn_orig_rcpt" => rec::DSN_ORCPT,
        b"notify_flags" => rec::DSN_NOTIFY,
        b"envelope_id" => rec::DSN_ENVID,
        b"ret_flags" => rec::DSN_RET,
        b"create_time" => rec::CTIME,
        _ => return None,
    })
}

/// Non-empty and all ASCII digits (`alldig`).
fn all_digits(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(u8::is_ascii_digit)
}

/// Handles one non-recipient record on the first read.
#[allow(clippy::too_many_arguments)]
fn non_recipient(
    env: &mut FileEnvelope,
    rtype: u8,
    name: &[u8],
    value: &[u8],
    curr: u64,
    id: &str,
    limits: &ReadLimits,
    p: &mut Pending,
) -> Result<(), EnvelopeError> {
    let text = || trunc(value, 100);
    match rtype {
        rec::SIZE => {
            if env.data_offset == 0 {
                match parse_size_fields(value) {
                    SizeFields::Modern(f) => {
                        env.data_size = f.data_size;
                        env.data_offset = f.data_offset;
                        p.nrcpt = f.rcpt_count;
                        if let Some(flags) = f.read_flags {
                            env.read_flags = flags;
                        }
                        if let Some(len) = f.cont_length {
                            env.cont_length = len;
                        }
                        if let Some(u) = f.smtputf8 {
                            env.smtputf8 = u;
                        }
                        if env.data_offset <= 0 || env.data_size <= 0 {
                            return Err(EnvelopeError::InvalidSizeRecord { text: text() });
                        }
                        if env.read_flags & !READ_FLAG_USER != 0 {
                            return Err(EnvelopeError::InvalidSizeFlags { text: text() });
                        }
                    }
                    SizeFields::Legacy(data_size) => {
                        env.data_size = data_size;
                        return Err(EnvelopeError::LegacyQueueFile);
                    }
                    SizeFields::Weird => return Err(EnvelopeError::WeirdSizeRecord),
                }
            }
            if env.cont_length == 0 {
                env.cont_length = env.data_size;
            } else if env.cont_length < 0 {
                return Err(EnvelopeError::InvalidSizeRecord { text: text() });
            }
        }
        rec::TIME if env.arrival_sec == 0 => {
            env.arrival_sec = atol(value);
            let digits = value.iter().take_while(|b| b.is_ascii_digit()).count();
            env.arrival_usec = atol(&value[digits..]);
        }
        rec::CTIME if env.create_time == 0 => {
            env.create_time = atol(value);
        }
        rec::FILT => env.filter_xport = Some(value.to_vec()),
        rec::INSP => env.inspect_xport = Some(value.to_vec()),
        rec::RDR => env.redirect_addr = Some(value.to_vec()),
        rec::FROM if env.sender.is_none() => {
            env.sender = Some(value.to_vec());
            env.opened_log = Some((env.cont_length, p.nrcpt));
        }
        rec::DSN_ENVID => env.dsn_envid = value.to_vec(),
        rec::DSN_RET => {
            let n = atol(value) as i32;
            if !all_digits(value) || n == 0 || !(n == DSN_RET_FULL || n == DSN_RET_HDRS) {
                env.warnings.push(format!(
                    "{id}: ignoring malformed DSN RET flags in queue file record:{}",
                    text()
                ));
            } else {
                env.dsn_ret = n;
            }
        }
        rec::ATTR => named_attribute(env, name, value, curr, id, p),
        rec::WARN if env.warn_offset == 0 => {
            env.warn_offset = curr;
            env.warn_time = atol(value);
        }
        rec::VERP if env.verp_delims.is_none() => match &env.sender {
            None => env
                .warnings
                .push(format!("{id}: ignoring VERP request for null sender")),
            Some(s) if s.is_empty() => env
                .warnings
                .push(format!("{id}: ignoring VERP request for null sender")),
            Some(_) if !check_verp(value, &limits.verp_filter) => env
                .warnings
                .push(format!("{id}: ignoring bad VERP request: \"{}\"", text())),
            Some(_) => {
                env.single_rcpt = true;
                env.verp_delims = Some(value.to_vec());
            }
        },
        _ => {}
    }
    Ok(())
}

/// Bits of [`Pending::attrs_set`]: which first-wins attributes were seen.
mod set_bit {
    /// `sasl_method`.
    pub const SASL_METHOD: u16 = 1;
    /// `sasl_username`.
    pub const SASL_USERNAME: u16 = 2;
    /// `sasl_sender`.
    pub const SASL_SENDER: u16 = 4;
    /// `log_ident`.
    pub const LOG_IDENT: u16 = 8;
    /// `rewrite_context`.
    pub const REWRITE_CONTEXT: u16 = 16;
    /// Client name (either spelling).
    pub const CLIENT_NAME: u16 = 32;
    /// Client address.
    pub const CLIENT_ADDR: u16 = 64;
    /// Client port.
    pub const CLIENT_PORT: u16 = 128;
    /// Client protocol.
    pub const CLIENT_PROTO: u16 = 256;
    /// Client HELO.
    pub const CLIENT_HELO: u16 = 512;
}

/// Handles an `A` record that is not a pseudo type.
fn named_attribute(
    env: &mut FileEnvelope,
    name: &[u8],
    value: &[u8],
    curr: u64,
    id: &str,
    p: &mut Pending,
) {
    use set_bit::*;
    let (field, bit, kind) = match name {
        b"encoding" => (&mut env.encoding, 0, Kind::LastWins),
        b"client_name" => (&mut env.client_name, CLIENT_NAME, Kind::Legacy),
        b"client_address" => (&mut env.client_addr, CLIENT_ADDR, Kind::Legacy),
        b"client_port" => (&mut env.client_port, CLIENT_PORT, Kind::Legacy),
        b"protocol_name" => (&mut env.client_proto, CLIENT_PROTO, Kind::Legacy),
        b"helo_name" => (&mut env.client_helo, CLIENT_HELO, Kind::Legacy),
        b"log_client_name" => (&mut env.client_name, CLIENT_NAME, Kind::Log),
        b"log_client_address" => (&mut env.client_addr, CLIENT_ADDR, Kind::Log),
        b"log_client_port" => (&mut env.client_port, CLIENT_PORT, Kind::Log),
        b"log_protocol_name" => (&mut env.client_proto, CLIENT_PROTO, Kind::Log),
        b"log_helo_name" => (&mut env.client_helo, CLIENT_HELO, Kind::Log),
        b"sasl_method" => (&mut env.sasl_method, SASL_METHOD, Kind::FirstWins),
        b"sasl_username" => (&mut env.sasl_username, SASL_USERNAME, Kind::FirstWins),
        b"sasl_sender" => (&mut env.sasl_sender, SASL_SENDER, Kind::FirstWins),
        b"log_ident" => (&mut env.log_ident, LOG_IDENT, Kind::FirstWins),
        b"rewrite_context" => (&mut env.rewrite_context, REWRITE_CONTEXT, Kind::FirstWins),
        b"trace_flags" => {
            if env.trace_flags == 0 {
                env.trace_flags = (atol(value) as i32) & TRACE_FLAGS_MASK;
                env.trace_flags_offset = if env.trace_flags == TRACE_RECORD {
                    curr
                } else {
                    0
                };
            }
            return;
        }
        _ => return,
    };
    match kind {
        Kind::LastWins => *field = value.to_vec(),
        Kind::Legacy => {
            if !p.have_log_client_attr && p.attrs_set & bit == 0 {
                *field = value.to_vec();
                p.attrs_set |= bit;
            }
        }
        Kind::Log => {
            *field = value.to_vec();
            p.attrs_set |= bit;
            p.have_log_client_attr = true;
        }
        Kind::FirstWins => {
            if p.attrs_set & bit == 0 {
                *field = value.to_vec();
                p.attrs_set |= bit;
            } else {
                env.warnings.push(format!(
                    "{id}: ignoring multiple {} attribute: {}",
                    String::from_utf8_lossy(name),
                    String::from_utf8_lossy(value)
                ));
            }
        }
    }
}

/// How repeated instances of an attribute combine.
enum Kind {
    /// Each instance replaces the previous one.
    LastWins,
    /// Pre-2.3 client attribute: only while no `log_*` one was seen and the
    /// field is still unset.
    Legacy,
    /// `log_*` client attribute: replaces, and disables the legacy names.
    Log,
    /// The first instance counts; later ones are warned about.
    FirstWins,
}
