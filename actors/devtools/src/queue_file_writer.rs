//! queue_file_writer - writing whole queue files as cleanup(8) does, for
//! tests and tools (mirrors the output side of Postfix's
//! `cleanup/cleanup_envelope.c`, `cleanup_out_recipient.c`,
//! `cleanup_final.c`).
//!
//! [`QueueFileWriter`] assembles the three segments (envelope after the
//! `C` record, content, extracted) and [`QueueFileWriter::finish`] lays them
//! out as `C` envelope `M` content `X` extracted `E`, filling the `C`
//! record (`%15ld` × 6, 95 bytes) from the real offsets, recipient count,
//! DSN/MIXED read flags, content length and SMTPUTF8 flags, so the result
//! is byte-identical to what cleanup writes for the same records. The
//! daemon never writes queue files; this is test tooling.

use oqmgr_actors::postfix::queue_file::{READ_FLAG_MIXED_RCPT_OTHER, TRACE_RECORD};
use oqmgr_actors::postfix::queue_file_parse::atol;
use oqmgr_actors::postfix::record::{encode_record, encoded_len, fixed_width_number, rec};

/// Length of the `C` record (type, length byte, 95 payload bytes).
pub const SIZE_RECORD_LEN: usize = 97;

/// Postfix's default `line_length_limit`: longer content lines are split
/// into `L` fragments.
pub const DEFAULT_LINE_LIMIT: usize = 2048;

/// One recipient to write: `[A notify_flags] [A dsn_orig_rcpt] O R`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewRecipient {
    /// DSN NOTIFY bits (0 = not written).
    pub dsn_notify: i32,
    /// DSN ORCPT (`rfc822;addr`), not written if empty.
    pub dsn_orcpt: Vec<u8>,
    /// Original recipient (`O`), written if `Some` (cleanup always writes
    /// one, possibly empty).
    pub orig_rcpt: Option<Vec<u8>>,
    /// The address (`R`).
    pub address: Vec<u8>,
}

/// Builds a queue file in memory. See the module documentation.
#[derive(Debug, Clone, Default)]
pub struct QueueFileWriter {
    /// Envelope records after `C`, before `M`.
    envelope: Vec<u8>,
    /// Content records (between `M` and `X`).
    content: Vec<u8>,
    /// Extracted records (between `X` and `E`).
    extracted: Vec<u8>,
    /// Recipients written (`C` field 3).
    rcpt_count: i64,
    /// Read flags (`C` field 4).
    read_flags: i32,
    /// True after an envelope recipient record (for the MIXED flag).
    in_rcpt: bool,
    /// `C` field 5 override; defaults to the content size.
    cont_length: Option<i64>,
    /// `C` field 6.
    smtputf8: i32,
}

/// True for envelope records that belong to a recipient group (cleanup's
/// `MDRO/Kon` minus `M`, with `A` mapped to its pseudo type).
fn is_rcpt_group(rtype: u8, payload: &[u8]) -> bool {
    match rtype {
        rec::ATTR => {
            payload.starts_with(b"notify_flags=") || payload.starts_with(b"dsn_orig_rcpt=")
        }
        _ => b"DRO/Kon".contains(&rtype),
    }
}

impl QueueFileWriter {
    /// An empty file.
    pub fn new() -> Self {
        QueueFileWriter::default()
    }

    /// Appends a raw envelope record. As in cleanup, a non-recipient record
    /// after recipient records sets the MIXED read flag, an `R` counts as a
    /// recipient, and `A notify_flags=N` adds N's bits (shifted left by one)
    /// to the read flags.
    pub fn envelope_record(&mut self, rtype: u8, payload: &[u8]) -> &mut Self {
        if is_rcpt_group(rtype, payload) {
            self.in_rcpt = true;
        } else if self.in_rcpt {
            self.read_flags |= READ_FLAG_MIXED_RCPT_OTHER;
        }
        self.count_recipient_bits(rtype, payload);
        encode_record(&mut self.envelope, rtype, payload);
        self
    }

    /// Updates the recipient count and DSN read flags for one record.
    fn count_recipient_bits(&mut self, rtype: u8, payload: &[u8]) {
        if rtype == rec::RCPT {
            self.rcpt_count += 1;
        }
        if rtype == rec::ATTR {
            if let Some(v) = payload.strip_prefix(b"notify_flags=") {
                self.read_flags |= (atol(v) as i32 & 0xf) << 1;
            }
        }
    }

    /// `T sec usec` followed by `A create_time=sec`, as cleanup writes them.
    pub fn arrival(&mut self, sec: i64, usec: i64) -> &mut Self {
        self.envelope_record(rec::TIME, format!("{sec} {usec}").as_bytes());
        self.attr(b"create_time", sec.to_string().as_bytes())
    }

    /// `A name=value` in the envelope.
    pub fn attr(&mut self, name: &[u8], value: &[u8]) -> &mut Self {
        self.envelope_record(rec::ATTR, &[name, b"=", value].concat())
    }

    /// `F full name`.
    pub fn full_name(&mut self, name: &[u8]) -> &mut Self {
        self.envelope_record(rec::FULL, name)
    }

    /// `S sender` (empty = null sender).
    pub fn sender(&mut self, sender: &[u8]) -> &mut Self {
        self.envelope_record(rec::FROM, sender)
    }

    /// `W` with the `%15ld` warning time.
    pub fn warn_time(&mut self, when: i64) -> &mut Self {
        self.envelope_record(rec::WARN, fixed_width_number(when).as_bytes())
    }

    /// `A trace_flags=1024` (what `sendmail -v` produces).
    pub fn trace_record(&mut self) -> &mut Self {
        self.attr(b"trace_flags", TRACE_RECORD.to_string().as_bytes())
    }

    /// One envelope recipient group.
    pub fn recipient(&mut self, r: &NewRecipient) -> &mut Self {
        if r.dsn_notify != 0 {
            self.attr(b"notify_flags", r.dsn_notify.to_string().as_bytes());
        }
        if !r.dsn_orcpt.is_empty() {
            self.attr(b"dsn_orig_rcpt", &r.dsn_orcpt);
        }
        if let Some(orig) = &r.orig_rcpt {
            self.envelope_record(rec::ORCP, orig);
        }
        self.envelope_record(rec::RCPT, &r.address)
    }

    /// Appends a raw content record.
    pub fn content_record(&mut self, rtype: u8, payload: &[u8]) -> &mut Self {
        encode_record(&mut self.content, rtype, payload);
        self
    }

    /// One content line (no newline): `L` fragments of `line_limit` bytes
    /// while it is longer, then `N` with the rest.
    pub fn content_line(&mut self, line: &[u8], line_limit: usize) -> &mut Self {
        let limit = line_limit.max(1);
        let mut rest = line;
        while rest.len() > limit {
            encode_record(&mut self.content, rec::CONT, &rest[..limit]);
            rest = &rest[limit..];
        }
        encode_record(&mut self.content, rec::NORM, rest);
        self
    }

    /// Appends a raw extracted-segment record (`R` counts as a recipient).
    pub fn extracted_record(&mut self, rtype: u8, payload: &[u8]) -> &mut Self {
        self.count_recipient_bits(rtype, payload);
        encode_record(&mut self.extracted, rtype, payload);
        self
    }

    /// `A name=value` in the extracted segment.
    pub fn extracted_attr(&mut self, name: &[u8], value: &[u8]) -> &mut Self {
        self.extracted_record(rec::ATTR, &[name, b"=", value].concat())
    }

    /// Sets `C` field 6 (SMTPUTF8 flags).
    pub fn smtputf8(&mut self, flags: i32) -> &mut Self {
        self.smtputf8 = flags;
        self
    }

    /// Overrides the read flags (`C` field 4).
    pub fn read_flags(&mut self, flags: i32) -> &mut Self {
        self.read_flags = flags;
        self
    }

    /// Overrides the content length (`C` field 5).
    pub fn cont_length(&mut self, len: i64) -> &mut Self {
        self.cont_length = Some(len);
        self
    }

    /// Offset the next envelope record would get in the finished file.
    pub fn next_envelope_offset(&self) -> u64 {
        (SIZE_RECORD_LEN + self.envelope.len()) as u64
    }

    /// Lays out the complete file.
    pub fn finish(&self) -> Vec<u8> {
        let data_offset = SIZE_RECORD_LEN + self.envelope.len() + encoded_len(0);
        let data_size = self.content.len() as i64;
        let fields = [
            data_size,
            data_offset as i64,
            self.rcpt_count,
            i64::from(self.read_flags),
            self.cont_length.unwrap_or(data_size),
            i64::from(self.smtputf8),
        ];
        let size_payload = fields
            .iter()
            .map(|v| fixed_width_number(*v))
            .collect::<Vec<_>>()
            .join(" ");
        let mut out =
            Vec::with_capacity(data_offset + self.content.len() + self.extracted.len() + 4);
        encode_record(&mut out, rec::SIZE, size_payload.as_bytes());
        out.extend_from_slice(&self.envelope);
        encode_record(&mut out, rec::MESG, b"");
        out.extend_from_slice(&self.content);
        encode_record(&mut out, rec::XTRA, b"");
        out.extend_from_slice(&self.extracted);
        encode_record(&mut out, rec::END, b"");
        out
    }
}
