#![allow(clippy::disallowed_methods)] // tests wait on real daemons in real time
//! Real Postfix oqmgr reads files from our writer: a good file is delivered
//! (and oqmgr's "queue active" line shows the size and recipient count our
//! reader reports); broken files are moved to `corrupt/` with exactly the
//! warnings our reader produces for them.

use oqmgr_actors::postfix::queue_file::{read_envelope, ReadLimits};
use oqmgr_actors::postfix::record::{encode_record, rec};
use oqmgr_devtools::queue_file_writer::{NewRecipient, QueueFileWriter, DEFAULT_LINE_LIMIT};
use oqmgr_devtools::sandbox::{QmgrChoice, Sandbox};
use std::io::Cursor;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

/// Drops `bytes` into incoming/ as a ready file owned by postfix and kicks
/// qmgr.
fn enqueue(sb: &Sandbox, id: &str, bytes: &[u8]) {
    let tmp = sb.queue_dir().join("incoming").join(format!("tmp.{id}"));
    std::fs::write(&tmp, bytes).unwrap();
    let status = Command::new("chown")
        .arg("postfix:")
        .arg(&tmp)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::rename(&tmp, sb.queue_dir().join("incoming").join(id)).unwrap();
    sb.kick_qmgr(b"I").expect("trigger qmgr");
}

/// A deliverable message with `n` recipients.
fn message(n: usize) -> QueueFileWriter {
    let mut w = QueueFileWriter::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    w.arrival(now, 123_456)
        .attr(b"rewrite_context", b"local")
        .sender(b"sender@example.com");
    for i in 0..n {
        w.recipient(&NewRecipient {
            orig_rcpt: Some(format!("r{i}@example.net").into_bytes()),
            address: format!("r{i}@example.net").into_bytes(),
            ..NewRecipient::default()
        });
    }
    w.content_line(b"Subject: from our writer", DEFAULT_LINE_LIMIT)
        .content_line(b"", DEFAULT_LINE_LIMIT)
        .content_line(b"hello", DEFAULT_LINE_LIMIT);
    w
}

fn sandbox() -> Sandbox {
    Sandbox::builder()
        .qmgr(QmgrChoice::PostfixOqmgr)
        .main_cf("default_transport", "discard:ours")
        .start()
        .expect("sandbox starts")
}

#[test]
fn oqmgr_delivers_a_file_from_our_writer() {
    let sb = sandbox();
    let bytes = message(6).finish();
    let env = read_envelope(Cursor::new(&bytes), "ABCDE1234", &ReadLimits::default()).unwrap();
    let (size, nrcpt) = env.opened_log.unwrap();
    enqueue(&sb, "ABCDE1234", &bytes);
    let ok = sb.wait_for(Duration::from_secs(20), || {
        sb.maillog().matches("status=sent (ours)").count() == 6
    });
    assert!(ok, "not all delivered:\n{}", sb.maillog());
    let log = sb.maillog();
    let want =
        format!("ABCDE1234: from=<sender@example.com>, size={size}, nrcpt={nrcpt} (queue active)");
    assert!(log.contains(&want), "missing {want:?} in\n{log}");
    assert!(sb.wait_for_log("ABCDE1234: removed", Duration::from_secs(10)));
}

#[test]
fn oqmgr_rejects_broken_files_with_our_warnings() {
    let sb = sandbox();
    let good = message(2).finish();

    // Garbage record type right after C.
    let mut garbage = good.clone();
    garbage[97] = b'Z';
    // No sender.
    let mut no_sender = QueueFileWriter::new();
    no_sender
        .arrival(1_795_888_636, 1)
        .recipient(&NewRecipient {
            address: b"r@example.net".to_vec(),
            ..NewRecipient::default()
        })
        .content_line(b"x", DEFAULT_LINE_LIMIT);
    // Truncated inside a payload.
    let truncated = good[..good.len() - 20].to_vec();
    // A bad attribute.
    let mut bad_attr = QueueFileWriter::new();
    bad_attr
        .arrival(1_795_888_636, 1)
        .envelope_record(rec::ATTR, b"no equals sign")
        .sender(b"s@example.com")
        .content_line(b"x", DEFAULT_LINE_LIMIT);
    // A size record with invalid flags (first record replaced).
    let mut bad_flags = Vec::new();
    encode_record(&mut bad_flags, rec::SIZE, b"1 2 3 64");
    bad_flags.extend_from_slice(&good[97..]);

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("BAD0001", garbage),
        ("BAD0002", no_sender.finish()),
        ("BAD0003", truncated),
        ("BAD0004", bad_attr.finish()),
        ("BAD0005", bad_flags),
        // Cut inside an envelope record's payload: a record-level warning
        // naming the path, then "missing end record".
        ("BAD0006", good[..125].to_vec()),
        // A length field with too many bytes.
        (
            "BAD0007",
            [&good[..97], &[b'S', 0x80, 0x80, 0x80, 0x80, 0x80, 0x01][..]].concat(),
        ),
    ];
    for (id, bytes) in &cases {
        let err = read_envelope(Cursor::new(bytes), id, &ReadLimits::default())
            .expect_err("our reader rejects it too");
        enqueue(&sb, id, bytes);
        let saved =
            format!("saving corrupt file \"{id}\" from queue \"active\" to queue \"corrupt\"");
        assert!(
            sb.wait_for_log(&saved, Duration::from_secs(20)),
            "{id} not saved as corrupt:\n{}",
            sb.maillog()
        );
        let log = sb.maillog();
        let warnings = err.warnings(id, &format!("active/{id}"));
        if id.ends_with('6') || id.ends_with('7') {
            assert_eq!(warnings.len(), 2, "{warnings:?}");
        }
        for w in warnings {
            let line = format!("warning: {w}\n");
            assert!(log.contains(&line), "{id}: missing {line:?} in\n{log}");
        }
    }
    assert_eq!(sb.queue_files("corrupt").len(), cases.len());
}
