#![allow(clippy::disallowed_methods)] // tests wait on real daemons in real time
//! Our postlogd records against Postfix's own, byte for byte (pid and time
//! stamp masked): Postfix's postlog(1) command, configured with a
//! maillog_file, sends its record to `$queue_directory/public/postlog`,
//! where this test has bound a datagram socket in place of postlogd; our
//! [`Logger`] sends the same severity and text to the same socket.
//!
//! Covers the severity prefixes, the host's first label, `printable()`
//! (control characters, UTF-8 with `smtputf8_enable = yes`) and the
//! 2000-byte cut.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::Duration;

use oqmgr_actors::postfix::log::{LogConfig, LogSink, Logger, Severity};

/// Replaces the clock (`HH:MM:SS`) and the `[pid]` digits with `#`.
fn mask(rec: &[u8]) -> String {
    let text = String::from_utf8_lossy(rec).into_owned();
    let mut out: Vec<char> = text.chars().collect();
    for c in out.iter_mut().take(15).skip(7) {
        *c = '#';
    }
    let s: String = out.into_iter().collect();
    let open = s.find('[').expect("pid");
    let close = s.find("]: ").expect("pid end");
    format!("{}[#]{}", &s[..open], &s[close + 1..])
}

#[test]
fn records_match_postfix_postlog_command() {
    let dir = std::env::temp_dir().join(format!("oqmgr-postlog-fmt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("etc")).unwrap();
    std::fs::create_dir_all(dir.join("q/public")).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let d = dir.display();
    std::fs::write(
        dir.join("etc/main.cf"),
        format!(
            "compatibility_level = 3.6\nqueue_directory = {d}/q\nmaillog_file = {d}/maillog\n\
             maillog_file_prefixes = {d}\nmyhostname = box.example.org\n"
        ),
    )
    .unwrap();
    // Postfix waits while main.cf is younger than ~2 s: back-date it.
    let old = std::time::SystemTime::now() - Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(dir.join("etc/main.cf"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    let sock = UnixDatagram::bind(dir.join("q/public/postlog")).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let ours = Logger::new(LogConfig {
        tag: "postfix/qmgr".into(),
        sink: LogSink::Postlog {
            socket: dir.join("q/public/postlog"),
            hostname: "box.example.org".into(),
        },
        also_stderr: false,
        verbose: 0,
        utf8: true,
    });
    let long = "x".repeat(3000);
    let cases = [
        ("info", Severity::Info, "B147AB402B: removed"),
        (
            "warn",
            Severity::Warning,
            "saving corrupt file \"ABCDE12345\" from queue \"active\" to queue \"corrupt\"",
        ),
        (
            "error",
            Severity::Error,
            "accept connection: Too many open files",
        ),
        ("fatal", Severity::Fatal, "watchdog timeout"),
        ("info", Severity::Info, "tab\there\x01 caf\u{e9} \u{20ac}"),
        ("info", Severity::Info, long.as_str()),
    ];
    let mut buf = vec![0u8; 8192];
    for (priority, severity, text) in cases {
        let out = Command::new("postlog")
            .arg("-c")
            .arg(dir.join("etc"))
            .args(["-t", "postfix/qmgr", "-p", priority, text])
            .output()
            .expect("run postlog");
        // postlog -p fatal exits 1 after logging; the others exit 0.
        assert!(out.status.code().is_some(), "{out:?}");
        let n = sock.recv(&mut buf).expect("postlog's record");
        let theirs = mask(&buf[..n]);
        ours.log(severity, text);
        let n = sock.recv(&mut buf).expect("our record");
        let mine = mask(&buf[..n]);
        assert_eq!(mine, theirs, "severity {priority}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
