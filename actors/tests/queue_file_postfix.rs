#![allow(clippy::disallowed_methods)] // tests wait on real daemons in real time
//! Cross-checks our queue file reader and writer against real Postfix 3.7.
//!
//! A private Postfix without a queue manager (mail stays in `incoming/`)
//! receives messages through `sendmail` and SMTP with many recipients, DSN
//! options, 8-bit and SMTPUTF8 content, long header lines, VERP,
//! `sendmail -v` and `sendmail -t`. For every queue file cleanup writes:
//! - our record decoding must equal `postcat -o -d -v` line for line
//!   (offsets, types, values);
//! - our writer, fed the same records, must reproduce the file byte for
//!   byte (so the `C` record's counts, flags and offsets match cleanup's);
//! - our envelope reader must report what the records say, and batched
//!   reads must yield the same recipients as one big read.

mod support;

use oqmgr_actors::postfix::queue_file::{
    read_envelope, FileEnvelope, ReadLimits, DSN_NOTIFY_DELAY, DSN_NOTIFY_FAILURE,
    DSN_NOTIFY_NEVER, DSN_NOTIFY_SUCCESS, DSN_RET_FULL, DSN_RET_HDRS, READ_FLAG_MIXED_RCPT_OTHER,
    TRACE_RECORD,
};
use oqmgr_actors::postfix::queue_file_parse::{parse_size_fields, SizeFields};
use oqmgr_actors::postfix::queue_file_write::mode_is_ready;
use oqmgr_actors::postfix::record::{decode_all, decode_logical, rec};
use oqmgr_devtools::queue_file_writer::QueueFileWriter;
use oqmgr_devtools::sandbox::{QmgrChoice, Sandbox};
use std::io::{BufRead, BufReader, Cursor, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::postcat::{expected_postcat, run_postcat};

/// A sandbox that keeps mail in incoming/, with delay warnings on (so `W`
/// records appear) and an smtpd for DSN submissions.
fn sandbox() -> Sandbox {
    Sandbox::builder()
        .qmgr(QmgrChoice::None)
        .smtpd_port(true)
        .main_cf("delay_warning_time", "4h")
        .start()
        .expect("sandbox starts")
}

/// Waits until `incoming/` holds `n` complete files; returns them.
fn wait_incoming(sb: &Sandbox, n: usize) -> Vec<(String, PathBuf)> {
    let ok = sb.wait_for(Duration::from_secs(20), || {
        let files = sb.queue_files("incoming");
        files.len() >= n
            && files.iter().all(|(_, p)| {
                std::fs::metadata(p)
                    .map(|m| mode_is_ready(m.permissions().mode()))
                    .unwrap_or(false)
            })
    });
    assert!(
        ok,
        "incoming never reached {n} files; maillog:\n{}",
        sb.maillog()
    );
    sb.queue_files("incoming")
}

/// Submits with sendmail and returns the new queue file (id, bytes).
fn submit(sb: &Sandbox, args: &[&str], message: &[u8]) -> (String, PathBuf, Vec<u8>) {
    let before: Vec<String> = sb
        .queue_files("incoming")
        .into_iter()
        .map(|f| f.0)
        .collect();
    let out = sb.sendmail(args, message).expect("sendmail runs");
    assert!(out.status.success(), "sendmail {args:?}: {out:?}");
    newest(sb, &before)
}

/// The one incoming file not in `before`.
fn newest(sb: &Sandbox, before: &[String]) -> (String, PathBuf, Vec<u8>) {
    let files = wait_incoming(sb, before.len() + 1);
    let (id, path) = files
        .into_iter()
        .find(|(id, _)| !before.contains(id))
        .expect("a new file");
    let bytes = std::fs::read(&path).expect("read queue file");
    (id, path, bytes)
}

/// All checks every real file must pass; returns the envelope.
fn cross_check(sb: &Sandbox, id: &str, path: &Path, bytes: &[u8]) -> FileEnvelope {
    // 1. Record decoding equals postcat.
    let records = decode_logical(bytes, 1_000_000).expect("decodes");
    let ours = expected_postcat(&records, &path.display().to_string());
    let theirs = run_postcat(&sb.config_dir(), path);
    assert_eq!(ours, theirs, "record dump differs from postcat for {id}");

    // 2. Our writer reproduces the file byte for byte.
    assert_eq!(rebuild(bytes), bytes, "writer output differs for {id}");

    // 3. The envelope reader agrees with the records.
    let env = read_envelope(Cursor::new(bytes), id, &ReadLimits::default()).expect("envelope");
    let from_file = std::fs::File::open(path).expect("open queue file");
    let via_file = read_envelope(from_file, id, &ReadLimits::default()).expect("envelope");
    assert_eq!(
        via_file, env,
        "reading the file directly gives the same envelope"
    );
    let r_offsets: Vec<u64> = records
        .iter()
        .filter(|r| r.rtype == rec::RCPT)
        .map(|r| r.offset)
        .collect();
    let got: Vec<u64> = env.recipients.iter().map(|r| r.offset).collect();
    assert_eq!(got, r_offsets, "recipient offsets for {id}");
    assert!(!env.has_more_recipients());
    assert!(env.warnings.is_empty(), "{:?}", env.warnings);
    let SizeFields::Modern(size) = parse_size_fields(&records[0].payload) else {
        panic!("C record");
    };
    assert_eq!(env.data_offset, size.data_offset);
    assert_eq!(env.rcpt_count, 0, "rcpt_count is only kept per read");
    assert_eq!(
        env.opened_log,
        Some((size.cont_length.unwrap(), size.rcpt_count))
    );
    assert_eq!(size.rcpt_count as usize, r_offsets.len());

    // 4. Batched reads (7 at a time) give the same recipients.
    let limits = ReadLimits {
        recipient_limit: 7,
        ..ReadLimits::default()
    };
    let mut batched = read_envelope(Cursor::new(bytes), id, &limits).expect("first batch");
    let mut all = batched.recipients.clone();
    while batched.has_more_recipients() {
        assert!(batched.recipients.len() <= 7);
        batched
            .refill(Cursor::new(bytes), id, &limits)
            .expect("refill");
        all.extend(batched.recipients.iter().cloned());
    }
    assert_eq!(all, env.recipients, "batched recipients for {id}");
    assert_eq!(batched.sender, env.sender);
    assert_eq!(batched.encoding, env.encoding);
    env
}

/// Rebuilds a cleanup-written file (no pointers) with our writer.
fn rebuild(bytes: &[u8]) -> Vec<u8> {
    let records = decode_all(bytes).expect("decodes");
    let SizeFields::Modern(size) = parse_size_fields(&records[0].payload) else {
        panic!("C record");
    };
    let mut w = QueueFileWriter::new();
    w.smtputf8(size.smtputf8.unwrap_or(0));
    let mut segment = 0;
    for r in &records[1..] {
        match (segment, r.rtype) {
            (0, rec::MESG) | (1, rec::XTRA) => segment += 1,
            (2, rec::END) => break,
            (0, t) => {
                w.envelope_record(t, &r.payload);
            }
            (1, t) => {
                w.content_record(t, &r.payload);
            }
            (_, t) => {
                w.extracted_record(t, &r.payload);
            }
        }
    }
    w.finish()
}

#[test]
fn three_hundred_recipients() {
    let sb = sandbox();
    let rcpts: Vec<String> = (0..300)
        .map(|i| format!("user{i}@d{}.example", i % 7))
        .collect();
    let mut args = vec!["-f", "list@example.com"];
    args.extend(rcpts.iter().map(String::as_str));
    let (id, path, bytes) = submit(&sb, &args, b"Subject: many\n\nbody\n");
    let env = cross_check(&sb, &id, &path, &bytes);
    let addrs: Vec<&[u8]> = env
        .recipients
        .iter()
        .map(|r| r.address.as_slice())
        .collect();
    let want: Vec<&[u8]> = rcpts.iter().map(|s| s.as_bytes()).collect();
    assert_eq!(addrs, want);
    assert_eq!(env.sender.as_deref(), Some(&b"list@example.com"[..]));
    assert_eq!(env.read_flags & READ_FLAG_MIXED_RCPT_OTHER, 0);
    assert!(
        env.warn_time > env.arrival_sec,
        "W record from delay_warning_time"
    );
    assert!(env.warn_offset > 0);
    assert_eq!(env.rewrite_context, b"local");
}

#[test]
fn dsn_options_and_verbose_and_verp() {
    let sb = sandbox();
    let (id, path, bytes) = submit(
        &sb,
        &[
            "-f",
            "s@example.com",
            "-N",
            "success,delay",
            "-R",
            "hdrs",
            "-V",
            "envid123",
        ]
        .iter()
        .chain(&["a@example.net", "b@example.org"])
        .copied()
        .collect::<Vec<_>>(),
        b"Subject: dsn\n\nhello\n",
    );
    let env = cross_check(&sb, &id, &path, &bytes);
    assert_eq!(env.dsn_envid, b"envid123");
    assert_eq!(env.dsn_ret, DSN_RET_HDRS);
    for r in &env.recipients {
        assert_eq!(r.dsn_notify, DSN_NOTIFY_SUCCESS | DSN_NOTIFY_DELAY);
        assert_eq!(r.dsn_orcpt, [b"rfc822;".as_slice(), &r.address].concat());
        assert_eq!(r.orig_rcpt, r.address);
    }
    assert_eq!(env.read_flags, (DSN_NOTIFY_SUCCESS | DSN_NOTIFY_DELAY) << 1);

    let (id, path, bytes) = submit(
        &sb,
        &["-v", "-f", "s@example.com", "-XV", "c@example.net"],
        b"Subject: verbose verp\n\nh\n",
    );
    let env = cross_check(&sb, &id, &path, &bytes);
    assert_eq!(env.trace_flags, TRACE_RECORD);
    assert!(env.trace_flags_offset > 0);
    assert_eq!(env.verp_delims.as_deref(), Some(&b"+="[..]));
    assert!(env.single_rcpt);

    let (id, path, bytes) = submit(
        &sb,
        &["-f", "s@example.com", "-XV-=", "d@example.net"],
        b"Subject: verp delims\n\nh\n",
    );
    let env = cross_check(&sb, &id, &path, &bytes);
    assert_eq!(env.verp_delims.as_deref(), Some(&b"-="[..]));
}

#[test]
fn eight_bit_smtputf8_long_headers_and_extracted_recipients() {
    let sb = sandbox();
    let (id, path, bytes) = submit(
        &sb,
        &["-f", "s@example.com", "e@example.net"],
        b"Subject: 8bit\n\nna\xefve caf\xe9 \xff\xfe\n",
    );
    let env = cross_check(&sb, &id, &path, &bytes);
    // Local submissions carry no `A encoding=` record, 8-bit or not.
    assert_eq!(env.encoding, b"");

    let (id, path, bytes) = submit(
        &sb,
        // 3.7's sendmail has no -SMTPUTF8 option (3.10 added it): it
        // detects UTF-8 in the envelope and headers itself.
        &["-f", "s\u{e9}@example.com", "\u{fc}ser@b\u{fc}cher.example"],
        "Subject: caf\u{e9}\n\nUTF-8 body \u{2603}\n".as_bytes(),
    );
    let env = cross_check(&sb, &id, &path, &bytes);
    assert_eq!(
        env.recipients[0].address,
        "\u{fc}ser@b\u{fc}cher.example".as_bytes()
    );
    assert_ne!(env.smtputf8, 0, "SMTPUTF8 requested");

    let long = "x".repeat(5000);
    let msg = format!("Subject: long\nX-Long: {long}\n\n{long}\nend\n");
    let (id, path, bytes) = submit(
        &sb,
        &["-f", "s@example.com", "f@example.net"],
        msg.as_bytes(),
    );
    cross_check(&sb, &id, &path, &bytes);
    let records = decode_all(&bytes).unwrap();
    assert!(
        records.iter().any(|r| r.rtype == rec::CONT),
        "long lines become L records"
    );

    let (id, path, bytes) = submit(
        &sb,
        &["-t", "-f", "s@example.com"],
        b"To: g@example.net\nCc: h@example.org\nBcc: i@example.com\nSubject: t\n\nbody\n",
    );
    let env = cross_check(&sb, &id, &path, &bytes);
    assert_eq!(env.recipients.len(), 3);
    assert!(
        env.recipients
            .iter()
            .all(|r| r.offset as i64 > env.data_offset),
        "sendmail -t recipients live in the extracted segment"
    );
    // cleanup wrote no `A encoding=` record for this 7-bit message.
    assert_eq!(env.encoding, b"");
}

/// One SMTP command/reply step.
fn smtp(stream: &mut TcpStream, reader: &mut BufReader<TcpStream>, line: &str) -> String {
    if !line.is_empty() {
        stream.write_all(line.as_bytes()).unwrap();
        stream.write_all(b"\r\n").unwrap();
    }
    let mut reply = String::new();
    loop {
        let mut l = String::new();
        reader.read_line(&mut l).unwrap();
        reply.push_str(&l);
        if l.len() < 4 || l.as_bytes()[3] != b'-' {
            return reply;
        }
    }
}

#[test]
fn smtp_dsn_orcpt_notify_never_ret_full() {
    let sb = sandbox();
    let port = sb.smtpd_port().unwrap();
    let before: Vec<String> = sb
        .queue_files("incoming")
        .into_iter()
        .map(|f| f.0)
        .collect();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    assert!(smtp(&mut stream, &mut reader, "").starts_with("220"));
    assert!(smtp(&mut stream, &mut reader, "EHLO client.test").starts_with("250"));
    let r = smtp(
        &mut stream,
        &mut reader,
        "MAIL FROM:<s@example.com> RET=FULL ENVID=abc+2Bdef SMTPUTF8 BODY=8BITMIME",
    );
    assert!(r.starts_with("250"), "{r}");
    let r = smtp(
        &mut stream,
        &mut reader,
        "RCPT TO:<x@example.net> NOTIFY=NEVER ORCPT=rfc822;orig+2Bx@example.net",
    );
    assert!(r.starts_with("250"), "{r}");
    let r = smtp(
        &mut stream,
        &mut reader,
        "RCPT TO:<y@example.net> NOTIFY=FAILURE",
    );
    assert!(r.starts_with("250"), "{r}");
    assert!(smtp(&mut stream, &mut reader, "DATA").starts_with("354"));
    let r = smtp(&mut stream, &mut reader, "Subject: smtp\r\n\r\nbody\r\n.");
    assert!(r.starts_with("250"), "{r}");
    smtp(&mut stream, &mut reader, "QUIT");
    let (id, path, bytes) = newest(&sb, &before);
    let env = cross_check(&sb, &id, &path, &bytes);
    assert_eq!(env.dsn_ret, DSN_RET_FULL);
    assert_eq!(env.dsn_envid, b"abc+def");
    assert_eq!(env.recipients[0].dsn_notify, DSN_NOTIFY_NEVER);
    assert_eq!(env.recipients[0].dsn_orcpt, b"rfc822;orig+x@example.net");
    assert_eq!(env.recipients[1].dsn_notify, DSN_NOTIFY_FAILURE);
    assert_eq!(env.client_addr, b"127.0.0.1");
    assert_eq!(env.client_helo, b"client.test");
    assert_eq!(env.client_proto, b"ESMTP");
    // 127.0.0.1 is in local_header_rewrite_clients (permit_inet_interfaces).
    assert_eq!(env.rewrite_context, b"local");
    assert_eq!(env.smtputf8 & 1, 1, "SMTPUTF8 requested on MAIL FROM");
    assert_eq!(env.encoding, b"8bit", "BODY=8BITMIME");
}
