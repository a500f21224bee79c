#![allow(clippy::disallowed_methods)] // tests wait on real daemons in real time
//! Files written by our writer, pointer records, and in-place edits, all
//! checked with real Postfix's `postcat` and with our reader: marking a
//! recipient done, rewriting `W` to -1, killing the trace record, locking
//! and time stamps.

mod support;

use oqmgr_actors::postfix::queue_file::{read_envelope, ReadLimits, TRACE_RECORD};
use oqmgr_actors::postfix::queue_file_write::{
    kill_record, mark_recipient_done, rewrite_warn_time, set_next_attempt, try_lock_exclusive,
    try_lock_shared, unlock,
};
use oqmgr_actors::postfix::record::{
    decode_logical, encode_record, fixed_width_number, padding_record, rec,
};
use oqmgr_devtools::queue_file_writer::{NewRecipient, QueueFileWriter, DEFAULT_LINE_LIMIT};
use oqmgr_devtools::sandbox::{QmgrChoice, Sandbox};
use std::fs::{File, OpenOptions};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::postcat::{expected_postcat, run_postcat};

/// A sandbox only used for its config directory (postcat -c).
fn sandbox() -> Sandbox {
    Sandbox::builder()
        .qmgr(QmgrChoice::None)
        .start()
        .expect("sandbox starts")
}

/// Writes `bytes` into the sandbox folder and returns the path.
fn put(sb: &Sandbox, name: &str, bytes: &[u8]) -> PathBuf {
    let path = sb.dir().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Asserts that postcat and our decoder agree on the file at `path`.
fn same_as_postcat(sb: &Sandbox, path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    let records = decode_logical(&bytes, 100_000).expect("decodes");
    assert_eq!(
        expected_postcat(&records, &path.display().to_string()),
        run_postcat(&sb.config_dir(), path)
    );
}

/// A file with most record kinds, as our writer produces it.
fn sample() -> QueueFileWriter {
    let mut w = QueueFileWriter::new();
    w.arrival(1_795_888_636, 714_083)
        .attr(b"rewrite_context", b"remote")
        .attr(b"log_client_address", b"192.0.2.1")
        .attr(b"log_ident", b"UPSTREAM1")
        .attr(b"sasl_method", b"PLAIN")
        .full_name(b"Some One")
        .sender(b"sender@example.com")
        .trace_record()
        .envelope_record(rec::VERP, b"-=")
        .attr(b"envelope_id", b"ENV1")
        .attr(b"ret_flags", b"1")
        .warn_time(1_795_900_000);
    for i in 0..5 {
        w.recipient(&NewRecipient {
            dsn_notify: if i == 0 { 1 } else { 6 },
            dsn_orcpt: format!("rfc822;o{i}@example.net").into_bytes(),
            orig_rcpt: Some(format!("o{i}@example.net").into_bytes()),
            address: format!("r{i}@example.net").into_bytes(),
        });
    }
    w.content_line(b"Subject: sample", DEFAULT_LINE_LIMIT)
        .content_line(&[b'y'; 5000], DEFAULT_LINE_LIMIT)
        .content_line(b"", DEFAULT_LINE_LIMIT)
        .content_line(b"body", DEFAULT_LINE_LIMIT)
        .extracted_attr(b"encoding", b"8bit")
        .extracted_record(rec::FILT, b"smtp:[127.0.0.1]:10025")
        .extracted_record(rec::ORCP, b"x@example.org")
        .extracted_record(rec::RCPT, b"x@example.org");
    w
}

#[test]
fn written_file_reads_the_same_in_postcat_and_our_reader() {
    let sb = sandbox();
    let bytes = sample().finish();
    let path = put(&sb, "written", &bytes);
    same_as_postcat(&sb, &path);

    let env = read_envelope(Cursor::new(&bytes), "W1", &ReadLimits::default()).unwrap();
    assert!(env.warnings.is_empty(), "{:?}", env.warnings);
    assert_eq!(env.arrival_sec, 1_795_888_636);
    assert_eq!(env.arrival_usec, 714_083);
    assert_eq!(env.create_time, 1_795_888_636);
    assert_eq!(env.rewrite_context, b"remote");
    assert_eq!(env.client_addr, b"192.0.2.1");
    assert_eq!(env.log_ident, b"UPSTREAM1");
    assert_eq!(env.sasl_method, b"PLAIN");
    assert_eq!(env.sender.as_deref(), Some(&b"sender@example.com"[..]));
    assert_eq!(env.trace_flags, TRACE_RECORD);
    assert_eq!(env.verp_delims.as_deref(), Some(&b"-="[..]));
    assert_eq!(env.dsn_envid, b"ENV1");
    assert_eq!(env.dsn_ret, 1);
    assert_eq!(env.warn_time, 1_795_900_000);
    assert_eq!(env.encoding, b"8bit");
    assert_eq!(
        env.filter_xport.as_deref(),
        Some(&b"smtp:[127.0.0.1]:10025"[..])
    );
    assert_eq!(env.recipients.len(), 6);
    assert_eq!(env.recipients[0].dsn_notify, 1);
    assert_eq!(env.recipients[1].dsn_notify, 6);
    assert_eq!(env.recipients[4].orig_rcpt, b"o4@example.net");
    assert_eq!(env.recipients[5].address, b"x@example.org");
    // The C record: NEVER|SUCCESS|FAILURE bits shifted, not MIXED.
    assert_eq!(env.read_flags, (1 | 6) << 1);
    assert_eq!(env.opened_log.map(|o| o.1), Some(6));
}

#[test]
fn pointer_records_are_followed_like_postfix() {
    let sb = sandbox();
    // cleanup (with milters) leaves a placeholder after the last envelope
    // recipient; adding a recipient later points it into a heap after `E`
    // that ends with a pointer back.
    let mut w = QueueFileWriter::new();
    w.arrival(1_795_888_636, 1).sender(b"s@example.com");
    w.recipient(&NewRecipient {
        address: b"a@example.net".to_vec(),
        orig_rcpt: Some(b"a@example.net".to_vec()),
        ..NewRecipient::default()
    });
    let placeholder = w.next_envelope_offset();
    w.envelope_record(rec::PTR, fixed_width_number(0).as_bytes());
    let resume = w.next_envelope_offset();
    w.content_line(b"Subject: p", DEFAULT_LINE_LIMIT);
    let mut bytes = w.finish();
    let heap = bytes.len() as u64;
    encode_record(&mut bytes, rec::ORCP, b"b@example.net");
    let r_offset = bytes.len() as u64;
    encode_record(&mut bytes, rec::RCPT, b"b@example.net");
    encode_record(
        &mut bytes,
        rec::PTR,
        fixed_width_number(resume as i64).as_bytes(),
    );
    let mut patch = Vec::new();
    encode_record(
        &mut patch,
        rec::PTR,
        fixed_width_number(heap as i64).as_bytes(),
    );
    bytes[placeholder as usize..placeholder as usize + patch.len()].copy_from_slice(&patch);
    // A padding record the way cleanup tops up a short sender.
    assert_eq!(padding_record(rec::PTR, 17).len(), 17);

    let path = put(&sb, "pointers", &bytes);
    same_as_postcat(&sb, &path);
    let env = read_envelope(Cursor::new(&bytes), "P1", &ReadLimits::default()).unwrap();
    let got: Vec<(&[u8], u64)> = env
        .recipients
        .iter()
        .map(|r| (r.address.as_slice(), r.offset))
        .collect();
    assert_eq!(got[1], (&b"b@example.net"[..], r_offset));
    assert_eq!(got.len(), 2);
}

#[test]
fn in_place_edits_match_postfix_views() {
    let sb = sandbox();
    let bytes = sample().finish();
    let path = put(&sb, "edited", &bytes);
    let env = read_envelope(Cursor::new(&bytes), "E1", &ReadLimits::default()).unwrap();

    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    mark_recipient_done(&file, env.recipients[2].offset).unwrap();
    rewrite_warn_time(&file, env.warn_offset, -1).unwrap();
    kill_record(&file, env.trace_flags_offset).unwrap();
    drop(file);

    same_as_postcat(&sb, &path);
    let out = run_postcat(&sb.config_dir(), &path).join("\n");
    assert!(out.contains("done_recipient: r2@example.net"), "{out}");
    assert!(out.contains("killed_record: trace_flags=1024"), "{out}");
    assert!(
        out.contains("warning_message_time: Wed Dec 31 23:59:59 1969"),
        "{out}"
    );

    let edited = std::fs::read(&path).unwrap();
    assert_eq!(edited.len(), bytes.len(), "edits never change the size");
    let limits = ReadLimits {
        confirm_delay_cleared: true,
        ..ReadLimits::default()
    };
    let after = read_envelope(Cursor::new(&edited), "E1", &limits).unwrap();
    assert_eq!(after.recipients.len(), env.recipients.len() - 1);
    assert!(after
        .recipients
        .iter()
        .all(|r| r.address != b"r2@example.net"));
    assert_eq!(after.warn_time, -1);
    // trace_flags was killed; confirm_delay_cleared adds REC_DLY_SENT.
    assert_eq!(after.trace_flags, 1 << 13);
}

#[test]
fn locks_and_time_stamps() {
    let dir = std::env::temp_dir().join(format!("oqmgr-lock-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ABCDE1");
    std::fs::write(&path, sample().finish()).unwrap();
    let a = File::open(&path).unwrap();
    let b = File::open(&path).unwrap();
    assert!(try_lock_exclusive(&a).unwrap());
    assert!(
        !try_lock_exclusive(&b).unwrap(),
        "second exclusive lock fails"
    );
    assert!(!try_lock_shared(&b).unwrap(), "agents cannot lock either");
    unlock(&a).unwrap();
    assert!(try_lock_shared(&b).unwrap());
    assert!(
        !try_lock_exclusive(&a).unwrap(),
        "qmgr sees 'still being delivered'"
    );

    let when = UNIX_EPOCH + Duration::from_secs(2_000_000_000);
    set_next_attempt(&path, when).unwrap();
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.modified().unwrap(), when);
    assert_eq!(meta.accessed().unwrap(), when);
    assert!(set_next_attempt(&dir.join("missing"), SystemTime::now()).is_err());
    // A link is stamped itself: the file it points to keeps its times.
    let link = dir.join("link");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    set_next_attempt(&link, UNIX_EPOCH + Duration::from_secs(1_000_000_000)).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), when);
    std::fs::remove_dir_all(&dir).unwrap();
}
