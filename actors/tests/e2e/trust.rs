//! trust - the queue manager meets what it must not trust (issue 13): a
//! FIFO, a symbolic link and a directory with queue-file names, unwritable
//! queue directories, addresses that are not UTF-8. Each scenario runs
//! with Postfix's oqmgr and with ours, judged by the same expectation.
//!
//! The `plant_*` helpers are public so that a longer fault campaign can
//! reuse them: each makes one kind of damaged entry, owned by `postfix`
//! like a file cleanup left.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::env::{all_done, Env, Setup, Spec};
use super::flow::{assert_outcome, got, sink_row, SENDER};
use super::ops::one_sink;
use super::outcome::ScenarioOutcome;
use oqmgr_actors::postfix::queue_id::QueueHashing;
use oqmgr_devtools::queue_file_writer::{NewRecipient, QueueFileWriter, DEFAULT_LINE_LIMIT};

/// A damaged queue entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Special {
    /// A FIFO (opening it for reading blocks until a writer comes).
    Fifo,
    /// A symbolic link to a deliverable queue file outside the queue.
    Link,
    /// A directory.
    Dir,
}

/// `chown -h postfix: path` (the link itself, not its target).
fn chown_postfix(path: &Path) {
    let ok = Command::new("chown")
        .args(["-h", "postfix:"])
        .arg(path)
        .status()
        .expect("chown runs")
        .success();
    assert!(ok, "chown postfix: {}", path.display());
}

/// The path of `id` in `queue` below the queue directory, creating a
/// missing hash folder (owned by postfix, as Postfix makes them).
pub fn queue_path(env: &Env, queue: &str, id: &str) -> PathBuf {
    let rel = QueueHashing::default().queue_path(queue, id);
    let path = env.sb.queue_dir().join(rel);
    let parent = path.parent().expect("a queue folder");
    if !parent.exists() {
        fs::create_dir_all(parent).expect("hash folder");
        chown_postfix(parent);
        fs::set_permissions(parent, fs::Permissions::from_mode(0o700)).expect("mode");
    }
    path
}

/// A deliverable queue file (sender [`SENDER`], one recipient `rcpt`,
/// Message-ID `<tag@e2e.test>`), as cleanup would write it.
pub fn queue_file_bytes(tag: &str, rcpt: &[u8]) -> Vec<u8> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64;
    let mut w = QueueFileWriter::new();
    w.arrival(now, 0)
        .attr(b"rewrite_context", b"local")
        .sender(SENDER.as_bytes())
        .recipient(&NewRecipient {
            orig_rcpt: Some(rcpt.to_vec()),
            address: rcpt.to_vec(),
            ..NewRecipient::default()
        });
    w.content_line(
        format!("Message-ID: <{tag}@e2e.test>").as_bytes(),
        DEFAULT_LINE_LIMIT,
    )
    .content_line(format!("Subject: {tag}").as_bytes(), DEFAULT_LINE_LIMIT)
    .content_line(b"", DEFAULT_LINE_LIMIT)
    .content_line(format!("body of {tag}").as_bytes(), DEFAULT_LINE_LIMIT);
    w.finish()
}

/// Plants a damaged entry `id` in `queue`; for a link, the target is a
/// deliverable queue file (to `u9@d1.test`) in `$DIR/outside/`, whose
/// path is returned.
pub fn plant(env: &Env, queue: &str, id: &str, kind: Special) -> Option<PathBuf> {
    let path = queue_path(env, queue, id);
    let mut target = None;
    match kind {
        Special::Fifo => {
            let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
            // SAFETY: a valid NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o700) }, 0, "mkfifo");
        }
        Special::Dir => fs::create_dir(&path).expect("mkdir"),
        Special::Link => {
            let outside = env.sb.dir().join("outside");
            fs::create_dir_all(&outside).expect("outside folder");
            fs::set_permissions(&outside, fs::Permissions::from_mode(0o755)).expect("mode");
            let file = outside.join(id);
            fs::write(&file, queue_file_bytes("linked", b"u9@d1.test")).expect("target");
            chown_postfix(&file);
            fs::set_permissions(&file, fs::Permissions::from_mode(0o700)).expect("mode");
            std::os::unix::fs::symlink(&file, &path).expect("symlink");
            target = Some(file);
        }
    }
    chown_postfix(&path);
    if kind != Special::Link {
        fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).expect("mode");
    }
    target
}

/// What is at `path` now, without following a link.
pub fn kind_at(path: &Path) -> &'static str {
    match fs::symlink_metadata(path) {
        Err(_) => "nothing",
        Ok(m) if m.file_type().is_symlink() => "link",
        Ok(m) if m.file_type().is_fifo() => "fifo",
        Ok(m) if m.is_dir() => "dir",
        Ok(m) if m.is_file() => "file",
        Ok(_) => "other",
    }
}

/// The distinct warnings logged about `name`, sorted, with the postfix
/// user's uid written `postfix` (the number depends on the machine).
fn warnings_about(env: &Env, name: &str) -> Vec<String> {
    let uid = fs::metadata(env.sb.queue_dir().join("incoming"))
        .map(|m| m.uid())
        .unwrap_or(0);
    let mut lines: Vec<String> = env
        .log()
        .grep(name)
        .into_iter()
        .filter(|l| l.starts_with("warning:") || l.starts_with("fatal:"))
        .map(|l| l.replace(&format!(" uid {uid}: "), " uid postfix: "))
        .collect();
    lines.sort();
    lines.dedup();
    lines
}

/// The special entries of [`special_files`]: queue, id, kind.
const SPECIALS: [(&str, &str, Special); 4] = [
    ("incoming", "ABCDEF12345", Special::Fifo),
    ("deferred", "ABCDEF12346", Special::Fifo),
    ("incoming", "ABCDEF12347", Special::Link),
    ("incoming", "BADDIR12345", Special::Dir),
];
/// Messages sent past the special entries.
const SPECIAL_FLOW: usize = 5;

/// A FIFO in `incoming/` and in `deferred/`, a link in `incoming/` to a
/// deliverable queue file outside the queue, and a directory with a
/// queue-file name: each is refused with Postfix's `not a regular file`
/// warning and left where it is, nothing outside the queue is read or
/// changed, and the mail sent meanwhile is delivered.
pub fn special_files(q: &Setup) -> ScenarioOutcome {
    let mut env = one_sink(q, &[]);
    let mut target = None;
    for (queue, id, kind) in SPECIALS {
        target = target.or(plant(&env, queue, id, kind));
    }
    let target = target.expect("a link target");
    let target_bytes = fs::read(&target).expect("target readable");
    for i in 0..SPECIAL_FLOW {
        env.send(&format!("s{i}"), SENDER, &["u1@d1.test"]);
    }
    let mut o = env.wait_outcome(|o| all_done(o, SPECIAL_FLOW, "sent"));
    // Every special entry is met by some scan (the deferred one by a
    // periodic scan, every second here).
    env.wait(|| {
        SPECIALS
            .iter()
            .all(|(_, id, _)| !warnings_about(&env, id).is_empty())
    });
    for (queue, id, _) in SPECIALS {
        for w in warnings_about(&env, id) {
            o.fact(format!("log: {w}"));
        }
        let path = queue_path(&env, queue, id);
        o.fact(format!("{queue}/{id} is: {}", kind_at(&path)));
        o.fact(format!(
            "{id} in active/: {}",
            kind_at(&env.sb.queue_dir().join("active").join(id))
        ));
    }
    o.fact(format!(
        "link target unchanged: {}",
        fs::read(&target).is_ok_and(|b| b == target_bytes)
    ));
    o.fact(format!(
        "sink d1 messages: {}",
        env.stop_sink("d1").messages
    ));
    env.finish(o)
}

/// Expectation of [`special_files`].
pub fn expect_special_files(o: &ScenarioOutcome) {
    let mut want = ScenarioOutcome::default();
    for i in 0..SPECIAL_FLOW {
        want.rows
            .push(sink_row(&format!("s{i}"), "u1@d1.test", "d1"));
    }
    let hashed = QueueHashing::default().queue_path("deferred", "ABCDEF12346");
    for (queue, id, kind) in SPECIALS {
        let path = if queue == "deferred" {
            hashed.clone()
        } else {
            format!("{queue}/{id}")
        };
        want.fact(format!(
            "log: warning: {path}: uid postfix: not a regular file"
        ));
        let what = match kind {
            Special::Fifo => "fifo",
            Special::Link => "link",
            Special::Dir => "dir",
        };
        want.fact(format!("{queue}/{id} is: {what}"));
        want.fact(format!("{id} in active/: nothing"));
    }
    want.fact("link target unchanged: true");
    want.fact(format!("sink d1 messages: {SPECIAL_FLOW}"));
    want.set_received(
        (0..SPECIAL_FLOW)
            .map(|i| got("d1", &format!("s{i}"), SENDER, &["u1@d1.test"]))
            .collect(),
    );
    assert_outcome(o, &want);
}

/// Sets the mode of queue folder `name` (the postfix user is then refused
/// where the mode says so; the tests run as root, which is not).
pub fn chmod_queue_dir(env: &Env, name: &str, mode: u32) {
    fs::set_permissions(
        env.sb.queue_dir().join(name),
        fs::Permissions::from_mode(mode),
    )
    .expect("chmod queue folder");
}

/// The distinct `fatal:` lines logged so far, queue IDs masked.
fn fatals(env: &Env) -> Vec<String> {
    let log = env.log();
    let mut lines: Vec<String> = log
        .grep("fatal: ")
        .into_iter()
        .map(|l| env.norm.apply(l, &log))
        .collect();
    lines.sort();
    lines.dedup();
    lines
}

/// A world with port `d1` for `d1.test` and no sink yet (connections are
/// refused, so mail is deferred with a defer log).
fn no_sink(q: &Setup) -> Env {
    Env::start(
        q,
        &Spec {
            ports: &["d1"],
            smtp_routes: &[("d1.test", "d1")],
            raw_routes: &[],
            settings: &[],
        },
    )
}

/// `defer/` unwritable while a deferred message with a defer log is
/// retried: the queue manager cannot reset the defer log and stops with
/// Postfix's fatal, leaving the file in `active/`; after the repair and a
/// flush the message is delivered.
pub fn unwritable_defer(q: &Setup) -> ScenarioOutcome {
    let mut env = no_sink(q);
    env.send("w1", SENDER, &["u1@d1.test"]);
    let mut o = ScenarioOutcome::default();
    let deferred = env.wait(|| {
        env.qid_of("w1")
            .and_then(|q| env.queue_of(&q))
            .is_some_and(|q| q == "deferred")
    });
    o.fact(format!("deferred first: {deferred}"));
    chmod_queue_dir(&env, "defer", 0o000);
    env.start_sink("d1", &[]);
    let stopped = env.wait(|| !fatals(&env).is_empty());
    o.fact(format!("stopped with a fatal: {stopped}"));
    for f in fatals(&env) {
        o.fact(format!("log: {f}"));
    }
    o.fact(format!(
        "w1 left in: {}",
        env.qid_of("w1")
            .and_then(|q| env.queue_of(&q))
            .unwrap_or_else(|| "none".into())
    ));
    chmod_queue_dir(&env, "defer", 0o700);
    env.admin("postqueue", &["-f"]);
    o.rows = env.wait_outcome(|o| all_done(o, 1, "sent")).rows;
    o.fact(format!(
        "sink d1 messages: {}",
        env.stop_sink("d1").messages
    ));
    env.finish(o)
}

/// Expectation of [`unwritable_defer`].
pub fn expect_unwritable_defer(o: &ScenarioOutcome) {
    let mut want = ScenarioOutcome::default();
    let mut r = sink_row("w1", "u1@d1.test", "d1");
    r.history = vec!["deferred".into(), "sent".into()];
    want.rows.push(r);
    want.fact("deferred first: true");
    want.fact("stopped with a fatal: true");
    want.fact("log: fatal: qmgr_message_alloc: QID: remove defer QID: Permission denied");
    want.fact("w1 left in: active");
    want.fact("sink d1 messages: 1");
    want.set_received(vec![got("d1", "w1", SENDER, &["u1@d1.test"])]);
    assert_outcome(o, &want);
}

/// `incoming/` unreadable when a scan starts: Postfix's fatal `open
/// directory`; after the repair, new mail is delivered.
pub fn unreadable_incoming(q: &Setup) -> ScenarioOutcome {
    let mut env = one_sink(q, &[]);
    let mut o = ScenarioOutcome::default();
    env.wait(|| env.sb.qmgr_pid().is_some());
    chmod_queue_dir(&env, "incoming", 0o000);
    env.admin("postqueue", &["-f"]);
    let stopped = env.wait(|| !fatals(&env).is_empty());
    o.fact(format!("stopped with a fatal: {stopped}"));
    for f in fatals(&env) {
        o.fact(format!("log: {f}"));
    }
    chmod_queue_dir(&env, "incoming", 0o700);
    env.send("i1", SENDER, &["u1@d1.test"]);
    o.rows = env.wait_outcome(|o| all_done(o, 1, "sent")).rows;
    o.fact(format!(
        "sink d1 messages: {}",
        env.stop_sink("d1").messages
    ));
    env.finish(o)
}

/// Expectation of [`unreadable_incoming`].
pub fn expect_unreadable_incoming(o: &ScenarioOutcome) {
    let mut want = ScenarioOutcome::default();
    want.rows.push(sink_row("i1", "u1@d1.test", "d1"));
    want.fact("stopped with a fatal: true");
    want.fact("log: fatal: scan_dir_push: open directory incoming: Permission denied");
    want.fact("sink d1 messages: 1");
    want.set_received(vec![got("d1", "i1", SENDER, &["u1@d1.test"])]);
    assert_outcome(o, &want);
}

/// The recipient of [`non_utf8_address`]: Latin-1 `é` (one byte, 0xE9),
/// not UTF-8.
pub const LATIN1_RCPT: &[u8] = b"r\xe9mi@d1.test";

/// Sends message `tag` from [`SENDER`] to the raw bytes `rcpt` with
/// sendmail (the command line carries bytes, not text).
pub fn send_raw(env: &Env, tag: &str, rcpt: &[u8]) {
    use std::io::Write;
    use std::os::unix::ffi::OsStrExt;
    let mut child = Command::new(env.sb.postfix_install().command("sendmail"))
        .arg("-C")
        .arg(env.sb.config_dir())
        .args(["-f", SENDER])
        .arg(std::ffi::OsStr::from_bytes(rcpt))
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("sendmail runs");
    let msg = format!("Message-ID: <{tag}@e2e.test>\nSubject: {tag}\n\nbody of {tag}\n");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(msg.as_bytes())
        .expect("message written");
    assert!(child.wait().expect("sendmail ends").success(), "sendmail");
}

/// A recipient address that is not UTF-8 (Latin-1, as old mail software
/// still sends): cleanup accepts it, and what reaches the SMTP server is
/// the same bytes, not U+FFFD.
pub fn non_utf8_address(q: &Setup) -> ScenarioOutcome {
    // With SMTPUTF8 on, trivial-rewrite refuses such an address ("bad
    // address syntax"); without it, the bytes go through.
    let mut env = Env::start(
        q,
        &Spec {
            ports: &["d1"],
            smtp_routes: &[("d1.test", "d1")],
            raw_routes: &[],
            settings: &[("smtputf8_enable", "no")],
        },
    );
    env.start_sink("d1", &[]);
    send_raw(&env, "n1", LATIN1_RCPT);
    let mut o =
        env.wait_outcome(|o| !o.rows.is_empty() && o.rows.iter().all(|r| r.queue == "removed"));
    o.fact(format!(
        "sink d1 messages: {}",
        env.stop_sink("d1").messages
    ));
    env.finish(o)
}

/// Expectation of [`non_utf8_address`]. smtp-sink shows the address with
/// `?` for the byte it does not print; the DSN original recipient, which
/// the SMTP client xtext-encodes, shows the byte itself (`+E9`).
pub fn expect_non_utf8_address(o: &ScenarioOutcome) {
    let mut want = ScenarioOutcome::default();
    want.rows.push(sink_row("n1", "r?mi@d1.test", "d1"));
    want.fact("sink d1 messages: 1");
    want.set_received(vec![
        "d1 n1: MAIL <root@local.test> RCPT <r?mi@d1.test> ORCPT=rfc822;r+E9mi@d1.test".into(),
    ]);
    assert_outcome(o, &want);
}
