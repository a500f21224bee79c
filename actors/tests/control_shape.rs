#![allow(clippy::disallowed_methods)] // compares with qshape on the wall clock
//! `oqmgr ctl shape` of a disk queue prints what Postfix's `qshape` prints
//! for the same files, byte for byte (same buckets, rows, layout), and, in
//! the ignored `shape_speed_vs_qshape`, how long each takes on 10,000
//! files (run it with `--ignored --nocapture`; the numbers are reported in
//! docs/control.md, not asserted).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use oqmgr_devtools::queue_file_writer::{NewRecipient, QueueFileWriter, DEFAULT_LINE_LIMIT};

/// Seconds since the epoch now.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Writes `n` deferred files under `queue_dir`, hashed one level as
/// Postfix hashes `deferred/`, with ages in the middle of five-minute
/// slots (so a second between the two runs changes no bucket) and
/// recipients over a few domains (upper case and a trailing dot too),
/// and every fiftieth from the null sender.
fn plant(queue_dir: &Path, n: usize) {
    let now = unix_now();
    for i in 0..n {
        let id = format!("{:05X}{:06X}", i * 7919 % 0xFFFFF, i);
        let age = (i as i64 * 13 % 5000) * 300 + 150;
        let mut w = QueueFileWriter::new();
        w.arrival(now - age, 0).sender(if i % 50 == 0 {
            b""
        } else {
            b"s@origin.example"
        });
        let domains = [
            "a.example",
            "B.example",
            "c.example.",
            "mx.a.example",
            "d.test",
        ];
        for r in 0..(1 + i % 3) {
            w.recipient(&NewRecipient {
                address: format!("u{r}@{}", domains[(i + r) % domains.len()]).into_bytes(),
                orig_rcpt: Some(Vec::new()),
                ..NewRecipient::default()
            });
        }
        w.content_line(b"Subject: shape", DEFAULT_LINE_LIMIT);
        let dir = queue_dir.join("deferred").join(&id[..1]);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join(&id);
        fs::write(&path, w.finish()).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).unwrap();
    }
}

/// A configuration directory whose main.cf names `queue_dir`.
fn config(dir: &Path, queue_dir: &Path) -> std::path::PathBuf {
    let etc = dir.join("etc");
    fs::create_dir_all(&etc).unwrap();
    fs::write(
        etc.join("main.cf"),
        format!("queue_directory = {}\n", queue_dir.display()),
    )
    .unwrap();
    etc
}

/// Runs `program ARGS`, returns stdout and the wall time it took.
fn timed(program: &str, args: &[&str]) -> (String, std::time::Duration) {
    let start = std::time::Instant::now();
    let out = Command::new(program).args(args).output().expect("runs");
    let took = start.elapsed();
    assert!(out.status.success(), "{program} {args:?}: {out:?}");
    (String::from_utf8(out.stdout).unwrap(), took)
}

/// Both tables for `n` planted files, and the time each took.
fn both(n: usize) -> ((String, std::time::Duration), (String, std::time::Duration)) {
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("spool");
    plant(&queue, n);
    let etc = config(dir.path(), &queue);
    let etc = etc.to_str().unwrap();
    let ours = timed(
        env!("CARGO_BIN_EXE_oqmgr"),
        &["ctl", "-c", etc, "shape", "--queue", "deferred"],
    );
    let theirs = timed("qshape", &["-c", etc, "deferred"]);
    (ours, theirs)
}

#[test]
fn shape_prints_what_qshape_prints() {
    if Command::new("qshape").arg("-h").output().is_err() {
        eprintln!("qshape is not installed; skipped");
        return;
    }
    let ((ours, _), (theirs, _)) = both(400);
    // qshape leaves rows of equal total and length in its hash order;
    // ours sorts them by name. Compare the header and TOTAL exactly and
    // the other rows as a set.
    let (o, t): (Vec<&str>, Vec<&str>) = (ours.lines().collect(), theirs.lines().collect());
    assert_eq!(o[..2], t[..2], "\nours:\n{ours}\nqshape:\n{theirs}");
    let (mut o2, mut t2) = (o[2..].to_vec(), t[2..].to_vec());
    o2.sort();
    t2.sort();
    assert_eq!(o2, t2, "\nours:\n{ours}\nqshape:\n{theirs}");
}

#[test]
#[ignore = "a measurement: run with --ignored --nocapture"]
fn shape_speed_vs_qshape() {
    let ((ours, our_time), (theirs, their_time)) = both(10_000);
    assert_eq!(ours.lines().count(), theirs.lines().count());
    eprintln!(
        "10000 deferred files: oqmgr ctl shape {:.3} s, qshape {:.3} s (ratio {:.1}x)",
        our_time.as_secs_f64(),
        their_time.as_secs_f64(),
        their_time.as_secs_f64() / our_time.as_secs_f64()
    );
    eprintln!("ours:\n{ours}qshape:\n{theirs}");
}
