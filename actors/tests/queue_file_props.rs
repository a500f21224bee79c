#![allow(clippy::disallowed_methods)] // tests wait on real daemons in real time
//! Property tests (record and writer/reader round trips, no panics on any
//! input) and bad-input tests with Postfix's warning texts.

use oqmgr_actors::postfix::queue_file::{read_envelope, EnvelopeError, ReadLimits};
use oqmgr_actors::postfix::record::{
    decode_all, encode_length, encode_record, encoded_len, fixed_width_number, rec, RecordError,
};
use oqmgr_devtools::queue_file_writer::{NewRecipient, QueueFileWriter, DEFAULT_LINE_LIMIT};
use proptest::prelude::*;
use std::io::Cursor;

/// Bytes without NUL (Postfix payloads are C strings).
fn text(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(1u8..=255, 0..max)
}

/// Attribute-safe text: printable, no white space at either end.
fn word(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(33u8..=126, 1..max)
}

/// A valid DSN NOTIFY value, or 0 for none.
fn notify() -> impl Strategy<Value = i32> {
    prop_oneof![Just(0), Just(1), 2..=14i32].prop_map(|n| if n > 1 { n & 14 } else { n })
}

prop_compose! {
    fn recipient()(dsn_notify in notify(), dsn_orcpt in word(40), orig in prop::option::of(text(40)),
                   address in text(60)) -> NewRecipient {
        NewRecipient { dsn_notify, dsn_orcpt, orig_rcpt: orig, address }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn records_round_trip(recs in prop::collection::vec((any::<u8>(), prop::collection::vec(any::<u8>(), 0..400)), 0..40)) {
        let mut bytes = Vec::new();
        for (t, p) in &recs {
            encode_record(&mut bytes, *t, p);
        }
        let decoded = decode_all(&bytes).unwrap();
        prop_assert_eq!(decoded.len(), recs.len());
        let mut offset = 0u64;
        for (d, (t, p)) in decoded.iter().zip(&recs) {
            prop_assert_eq!(d.offset, offset);
            prop_assert_eq!(d.rtype, *t);
            prop_assert_eq!(&d.payload, p);
            offset += encoded_len(p.len()) as u64;
        }
        prop_assert_eq!(offset, bytes.len() as u64);
    }

    #[test]
    fn lengths_round_trip(len in 0usize..(1 << 31)) {
        let mut out = Vec::new();
        encode_length(&mut out, len);
        prop_assert_eq!(out.len() + 1, encoded_len(len) - len);
        let mut value = 0usize;
        for (i, b) in out.iter().enumerate() {
            value |= usize::from(b & 0x7f) << (7 * i);
            prop_assert_eq!(b & 0x80 != 0, i + 1 < out.len());
        }
        prop_assert_eq!(value, len);
    }

    #[test]
    fn writer_reader_round_trip(
        sec in 1i64..4_000_000_000, usec in 0i64..1_000_000,
        sender in text(60),
        rcpts in prop::collection::vec(recipient(), 1..40),
        extracted in prop::collection::vec(text(40), 0..5),
        lines in prop::collection::vec(text(3000), 1..6),
        warn in prop::option::of(1i64..4_000_000_000),
        batch in 1usize..12,
    ) {
        let mut w = QueueFileWriter::new();
        w.arrival(sec, usec).sender(&sender);
        if let Some(t) = warn {
            w.warn_time(t);
        }
        for r in &rcpts {
            w.recipient(r);
        }
        for l in &lines {
            w.content_line(l, DEFAULT_LINE_LIMIT);
        }
        for r in &extracted {
            w.extracted_record(rec::RCPT, r);
        }
        let bytes = w.finish();
        let limits = ReadLimits { recipient_limit: batch, ..ReadLimits::default() };
        let mut env = read_envelope(Cursor::new(&bytes), "PROP", &limits).unwrap();
        prop_assert_eq!(env.arrival_sec, sec);
        prop_assert_eq!(env.arrival_usec, usec);
        prop_assert_eq!(env.sender.as_deref(), Some(sender.as_slice()));
        prop_assert_eq!(env.warn_time, warn.unwrap_or(0));
        let mut got = env.recipients.clone();
        while env.has_more_recipients() {
            prop_assert!(env.recipients.len() <= batch);
            env.refill(Cursor::new(&bytes), "PROP", &limits).unwrap();
            got.extend(env.recipients.iter().cloned());
        }
        prop_assert!(env.warnings.is_empty(), "{:?}", env.warnings);
        prop_assert_eq!(got.len(), rcpts.len() + extracted.len());
        for (g, r) in got.iter().zip(&rcpts) {
            prop_assert_eq!(&g.address, &r.address);
            prop_assert_eq!(g.dsn_notify, r.dsn_notify);
            prop_assert_eq!(&g.dsn_orcpt, &r.dsn_orcpt);
            let want_orig = r.orig_rcpt.clone().unwrap_or_default();
            prop_assert_eq!(&g.orig_rcpt, &want_orig);
            prop_assert_eq!(bytes[g.offset as usize], rec::RCPT);
        }
        for (g, r) in got[rcpts.len()..].iter().zip(&extracted) {
            prop_assert_eq!(&g.address, r);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        let _ = read_envelope(Cursor::new(&bytes), "ANY", &ReadLimits::default());
    }

    #[test]
    fn mutated_files_never_panic(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        batch in 1usize..5,
    ) {
        let mut bytes = sample();
        for (i, b) in flips {
            let i = i.index(bytes.len());
            bytes[i] = b;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        let limits = ReadLimits { recipient_limit: batch, ..ReadLimits::default() };
        if let Ok(mut env) = read_envelope(Cursor::new(&bytes), "MUT", &limits) {
            let mut rounds = 0;
            while env.has_more_recipients() && rounds < 100 {
                if env.refill(Cursor::new(&bytes), "MUT", &limits).is_err() {
                    break;
                }
                rounds += 1;
            }
        }
    }
}

/// A small valid file.
fn sample() -> Vec<u8> {
    let mut w = QueueFileWriter::new();
    w.arrival(1_795_888_636, 5).sender(b"s@example.com");
    for i in 0..4 {
        w.recipient(&NewRecipient {
            dsn_notify: 2,
            dsn_orcpt: format!("rfc822;r{i}@example.net").into_bytes(),
            orig_rcpt: Some(format!("r{i}@example.net").into_bytes()),
            address: format!("r{i}@example.net").into_bytes(),
        });
    }
    w.content_line(b"Subject: x", DEFAULT_LINE_LIMIT)
        .extracted_attr(b"encoding", b"7bit");
    w.finish()
}

/// Reads `bytes`, expecting failure; returns the warning lines.
fn rejected(bytes: &[u8]) -> (EnvelopeError, Vec<String>) {
    let e = read_envelope(Cursor::new(bytes), "QID", &ReadLimits::default())
        .expect_err("file must be rejected");
    let w = e.warnings("QID", "active/QID");
    (e, w)
}

/// Replaces the records of `sample()` after C with `envelope`.
fn with_envelope(envelope: &[(u8, &[u8])]) -> Vec<u8> {
    let mut w = QueueFileWriter::new();
    for (t, p) in envelope {
        w.envelope_record(*t, p);
    }
    w.content_line(b"x", DEFAULT_LINE_LIMIT);
    w.finish()
}

#[test]
fn every_truncation_is_a_typed_error() {
    let bytes = sample();
    for len in 0..bytes.len() {
        let (e, w) = rejected(&bytes[..len]);
        assert!(
            matches!(e, EnvelopeError::MissingEndRecord(_)),
            "cut at {len}: {e:?}"
        );
        assert_eq!(
            w.last().unwrap(),
            "QID: message rejected: missing end record"
        );
    }
    assert!(read_envelope(Cursor::new(&bytes), "QID", &ReadLimits::default()).is_ok());
}

#[test]
fn record_level_errors() {
    let mut huge = sample()[..97].to_vec();
    huge.push(rec::NORM);
    encode_length(&mut huge, 1 << 30);
    let (e, w) = rejected(&huge);
    assert!(matches!(
        e,
        EnvelopeError::MissingEndRecord(Some(RecordError::IllegalLength { len, .. })) if len == 1 << 30
    ));
    assert_eq!(
        w[0],
        "active/QID: illegal length 1073741824, record type 78"
    );

    let mut bits = sample()[..97].to_vec();
    bits.extend_from_slice(&[b'S', 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]);
    let (_, w) = rejected(&bits);
    assert_eq!(w[0], "active/QID: too many length bits, record type 83");

    let mut garbage = sample();
    let at = 97;
    garbage[at] = b'Z';
    let (_, w) = rejected(&garbage);
    assert_eq!(w, ["Unexpected record type 'Z' at offset 97"]);

    let mut ptr = sample()[..97].to_vec();
    encode_record(&mut ptr, rec::PTR, b"   12x");
    let (_, w) = rejected(&ptr);
    assert_eq!(w, ["active/QID: malformed pointer record value: 12x"]);
}

#[test]
fn envelope_level_errors_use_postfix_texts() {
    let t: &[u8] = b"1795888636 1";
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            with_envelope(&[(rec::FROM, b"s")]),
            "QID: message rejected: missing arrival time record",
        ),
        (
            with_envelope(&[(rec::TIME, t)]),
            "QID: message rejected: missing sender record",
        ),
        (
            with_envelope(&[(rec::TIME, t), (rec::ATTR, b"=x")]),
            "QID: bad attribute record: missing attribute name: =x",
        ),
        (
            with_envelope(&[(rec::TIME, t), (rec::ATTR, b"a b")]),
            "QID: bad attribute record: missing '=' after attribute name: a b",
        ),
        (
            with_envelope(&[(rec::SIZE, b"1 2")]),
            "QID: message rejected: weird size record",
        ),
        (
            with_envelope(&[(rec::SIZE, b"0 2 3")]),
            "QID: invalid size record: 0 2 3",
        ),
        (
            with_envelope(&[(rec::SIZE, b"1 2 3 64")]),
            "QID: invalid flags in size record: 1 2 3 64",
        ),
    ];
    for (bytes, want) in cases {
        // Our writer adds its own C record first; a second one is only
        // parsed for the content length, so corrupt the first instead.
        let mut bytes = bytes;
        if let Some(pos) = find_second_size(&bytes) {
            bytes = swap_size_records(bytes, pos);
        }
        let (_, w) = rejected(&bytes);
        assert_eq!(w, [want]);
    }

    // No C record at all (a raw file).
    let mut raw = Vec::new();
    encode_record(&mut raw, rec::TIME, t);
    encode_record(&mut raw, rec::FROM, b"s");
    encode_record(&mut raw, rec::END, b"");
    let (_, w) = rejected(&raw);
    assert_eq!(w, ["QID: message rejected: missing size record"]);
}

/// Offset of a second `C` record written as an envelope record.
fn find_second_size(bytes: &[u8]) -> Option<usize> {
    let recs = decode_all(bytes).ok()?;
    recs.iter()
        .skip(1)
        .find(|r| r.rtype == rec::SIZE)
        .map(|r| r.offset as usize)
}

/// Builds a file whose first record is the test's `C` record: the test `C`
/// moves to the front and the writer's real one is dropped.
fn swap_size_records(bytes: Vec<u8>, pos: usize) -> Vec<u8> {
    let recs = decode_all(&bytes).unwrap();
    let mut out = Vec::new();
    let test_c = recs.iter().find(|r| r.offset as usize == pos).unwrap();
    encode_record(&mut out, rec::SIZE, &test_c.payload);
    for r in recs.iter().skip(1).filter(|r| r.offset as usize != pos) {
        encode_record(&mut out, r.rtype, &r.payload);
    }
    out
}

#[test]
fn ignored_records_are_warned_about() {
    let t: &[u8] = b"1795888636 1";
    let bytes = with_envelope(&[
        (rec::TIME, t),
        (rec::FROM, b""),
        (rec::VERP, b"+="),
        (rec::ATTR, b"ret_flags=3"),
        (rec::ATTR, b"log_ident=A"),
        (rec::ATTR, b"log_ident=B"),
        (rec::ORCP, b"first"),
        (rec::ORCP, b"second"),
        (rec::ATTR, b"notify_flags=17"),
        (rec::RCPT, b"r@example.net"),
        (rec::ORCP, b"dangling"),
    ]);
    let env = read_envelope(Cursor::new(&bytes), "QID", &ReadLimits::default()).unwrap();
    assert_eq!(
        env.warnings,
        [
            "QID: ignoring VERP request for null sender",
            "QID: ignoring malformed DSN RET flags in queue file record:3",
            "QID: ignoring multiple log_ident attribute: B",
            "QID: ignoring out-of-order original recipient <first>",
            "QID: ignoring malformed DSN notify flags <17>",
            "QID: ignoring out-of-order original recipient <dangling>",
        ]
    );
    assert_eq!(env.recipients[0].orig_rcpt, b"second");
    assert_eq!(env.log_ident, b"A");
    assert_eq!(env.sender.as_deref(), Some(&b""[..]));
}

#[test]
fn pointer_loops_are_too_many_reverse_jumps() {
    // R, then a pointer back to that R: Postfix gives up after 10000
    // backward jumps; we give up at the first jump into bytes already read,
    // with the same warning.
    let mut w = QueueFileWriter::new();
    w.arrival(1_795_888_636, 1).sender(b"s@example.com");
    let r_offset = w.next_envelope_offset();
    w.envelope_record(rec::RCPT, b"r@example.net");
    w.envelope_record(rec::PTR, fixed_width_number(r_offset as i64).as_bytes());
    w.content_line(b"x", DEFAULT_LINE_LIMIT);
    let bytes = w.finish();
    for batch in [1, 20_000] {
        let limits = ReadLimits {
            recipient_limit: batch,
            ..ReadLimits::default()
        };
        let e = read_envelope(Cursor::new(&bytes), "QID", &limits).unwrap_err();
        assert!(
            matches!(e, EnvelopeError::Pointer(RecordError::TooManyReverseJumps)),
            "{e:?}"
        );
        assert_eq!(
            e.warnings("QID", "active/QID"),
            ["active/QID: too many reverse jump records"]
        );
    }
}

/// Reads `bytes` as the daemon does (first read, then refills until none
/// is left or one fails) with batches of `batch`: the recipient offsets
/// handed out, and the error that ended the reading, if any.
fn read_all(bytes: &[u8], batch: usize) -> (Vec<u64>, Option<EnvelopeError>) {
    let limits = ReadLimits {
        recipient_limit: batch,
        ..ReadLimits::default()
    };
    let mut env = match read_envelope(Cursor::new(bytes), "QID", &limits) {
        Ok(env) => env,
        Err(e) => return (Vec::new(), Some(e)),
    };
    let mut out: Vec<u64> = env.recipients.iter().map(|r| r.offset).collect();
    let mut rounds = 0;
    while env.has_more_recipients() {
        assert!(rounds <= bytes.len(), "refill does not advance");
        if let Err(e) = env.refill(Cursor::new(bytes), "QID", &limits) {
            return (out, Some(e));
        }
        out.extend(env.recipients.iter().map(|r| r.offset));
        rounds += 1;
    }
    (out, None)
}

#[test]
fn a_pointer_loop_over_recipients_hands_none_out_twice() {
    // Found by fuzzing (actors/fuzz/README.md): a pointer back over
    // recipient records made every refill read the same recipients again,
    // until 10000 backward jumps: 20,000 copies of three recipients in the
    // fault campaign (docs/fault-campaign.md, pointer-loop-3-recipients).
    let mut w = QueueFileWriter::new();
    w.arrival(1_795_888_636, 1).sender(b"s@example.com");
    let first = w.next_envelope_offset();
    for i in 0..3 {
        w.envelope_record(rec::RCPT, format!("r{i}@example.net").as_bytes());
    }
    w.envelope_record(rec::PTR, fixed_width_number(first as i64).as_bytes());
    w.content_line(b"x", DEFAULT_LINE_LIMIT);
    let bytes = w.finish();
    for batch in [1, 2, 3, 4, 20_000] {
        let (offsets, end) = read_all(&bytes, batch);
        let mut unique = offsets.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), offsets.len(), "batch {batch}: {offsets:?}");
        assert!(
            matches!(
                end,
                Some(EnvelopeError::Pointer(RecordError::TooManyReverseJumps))
            ),
            "batch {batch}: {end:?}"
        );
    }
    // The fuzzer's own 130-byte input (its first byte is the batch size
    // less one).
    let found = include_bytes!("../fuzz/regressions/queue_file/pointer-loop-refill");
    let (offsets, end) = read_all(&found[1..], usize::from(found[0]) + 1);
    assert!(offsets.len() <= 1, "{offsets:?}");
    assert!(end.is_some());
}

#[test]
fn appended_recipients_are_read_once_in_any_batch_size() {
    // Cleanup's layout after recipients are added late (milters): a
    // placeholder pointer after the envelope recipients, patched to point
    // at records appended after `E`, which end with a pointer back. Twice,
    // so that the walk jumps back twice; no jump lands in bytes read.
    let mut w = QueueFileWriter::new();
    w.arrival(1_795_888_636, 1).sender(b"s@example.com");
    for i in 0..3 {
        w.envelope_record(rec::RCPT, format!("r{i}@example.net").as_bytes());
    }
    let placeholders = [w.next_envelope_offset(), 0];
    w.envelope_record(rec::PTR, fixed_width_number(0).as_bytes());
    let resume = w.next_envelope_offset();
    w.envelope_record(rec::RCPT, b"r3@example.net");
    w.content_line(b"x", DEFAULT_LINE_LIMIT);
    let mut bytes = w.finish();
    let mut patch_at = placeholders[0];
    let mut back_to = resume;
    for heap_no in 0..2 {
        let heap = bytes.len() as u64;
        for i in 0..2 {
            let r = format!("h{heap_no}.{i}@example.net");
            encode_record(&mut bytes, rec::RCPT, r.as_bytes());
        }
        let next_placeholder = bytes.len() as u64;
        encode_record(&mut bytes, rec::PTR, fixed_width_number(0).as_bytes());
        let next_resume = bytes.len() as u64;
        encode_record(
            &mut bytes,
            rec::PTR,
            fixed_width_number(back_to as i64).as_bytes(),
        );
        let mut patch = Vec::new();
        encode_record(
            &mut patch,
            rec::PTR,
            fixed_width_number(heap as i64).as_bytes(),
        );
        bytes[patch_at as usize..patch_at as usize + patch.len()].copy_from_slice(&patch);
        patch_at = next_placeholder;
        back_to = next_resume;
    }
    for batch in 1..=9 {
        let (offsets, end) = read_all(&bytes, batch);
        assert!(end.is_none(), "batch {batch}: {end:?}");
        assert_eq!(offsets.len(), 8, "batch {batch}: {offsets:?}");
        let mut unique = offsets.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 8, "batch {batch}: {offsets:?}");
    }
}

#[test]
fn first_read_sees_all_non_recipient_records_despite_batching() {
    for mixed in [false, true] {
        let mut w = QueueFileWriter::new();
        w.arrival(1_795_888_636, 1).sender(b"s@example.com");
        for i in 0..5 {
            w.envelope_record(rec::RCPT, format!("r{i}@example.net").as_bytes());
        }
        if mixed {
            // A non-recipient record after recipients sets MIXED in `C`.
            w.envelope_record(rec::RDR, b"redirect@example.org");
            w.envelope_record(rec::RCPT, b"r5@example.net");
        }
        w.content_line(b"x", DEFAULT_LINE_LIMIT)
            .extracted_record(rec::FILT, b"smtp:[127.0.0.1]:10025")
            .extracted_attr(b"encoding", b"8bit")
            .extracted_record(rec::RCPT, b"x@example.net");
        let bytes = w.finish();
        let limits = ReadLimits {
            recipient_limit: 2,
            ..ReadLimits::default()
        };
        let mut env = read_envelope(Cursor::new(&bytes), "QID", &limits).unwrap();
        assert_eq!(env.read_flags & 1, i32::from(mixed));
        assert!(env.seen_all_non_rcpt);
        assert_eq!(env.recipients.len(), 2);
        assert_eq!(
            env.encoding, b"8bit",
            "extracted segment seen on first read"
        );
        assert_eq!(
            env.filter_xport.as_deref(),
            Some(&b"smtp:[127.0.0.1]:10025"[..])
        );
        assert_eq!(env.redirect_addr.is_some(), mixed);
        let mut all: Vec<Vec<u8>> = env.recipients.iter().map(|r| r.address.clone()).collect();
        while env.has_more_recipients() {
            env.refill(Cursor::new(&bytes), "QID", &limits).unwrap();
            all.extend(env.recipients.iter().map(|r| r.address.clone()));
        }
        let n = if mixed { 7 } else { 6 };
        assert_eq!(all.len(), n, "{all:?}");
        assert_eq!(all.last().unwrap(), b"x@example.net");
    }
}
