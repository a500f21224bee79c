#![allow(clippy::disallowed_methods)] // tests wait on real daemons in real time
//! Our syslog records against glibc's own `syslog(3)`, byte for byte (time
//! stamp masked). There is no syslogd here, so the test re-runs itself in a
//! private mount namespace (`unshare -m`) with a tmpfs on /dev, where it can
//! bind its own `/dev/log` without touching the machine's. Where namespaces
//! are not allowed (unprivileged CI containers) the test says so and passes
//! without checking; the record format is also pinned by unit tests in
//! `postfix::log_format`.

use std::ffi::CString;
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::Duration;

use oqmgr_actors::postfix::log::{LogConfig, LogSink, Logger, Severity};

const INNER: &str = "OQMGR_SYSLOG_GLIBC_INNER";

#[test]
fn syslog_records_match_glibc() {
    if std::env::var_os(INNER).is_some() {
        inner();
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let script =
        "mount -t tmpfs tmpfs /dev && exec \"$0\" --exact syslog_records_match_glibc --nocapture";
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script])
        .arg(&exe)
        .env(INNER, "1")
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            eprintln!("SKIPPED: cannot run unshare: {e}");
            return;
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success()
        && (stderr.contains("unshare failed") || stderr.contains("Operation not permitted"))
    {
        eprintln!("SKIPPED: no private mount namespace here: {stderr}");
        return;
    }
    assert!(
        out.status.success(),
        "inner run failed:\n{}\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("INNER-OK"),
        "{out:?}"
    );
}

/// Runs inside the namespace: glibc and our logger write to the same
/// `/dev/log`; the records must agree apart from the time stamp.
fn inner() {
    let server = UnixDatagram::bind("/dev/log").expect("bind /dev/log in the namespace");
    server
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let tag = CString::new("postfix/qmgr").unwrap();
    // SAFETY: `tag` outlives every syslog call (openlog keeps the pointer).
    unsafe {
        libc::openlog(
            tag.as_ptr(),
            libc::LOG_PID | libc::LOG_NDELAY,
            libc::LOG_MAIL,
        )
    };
    let ours = Logger::new(LogConfig {
        tag: "postfix/qmgr".into(),
        sink: LogSink::Syslog {
            socket: "/dev/log".into(),
            facility: 16,
        },
        also_stderr: false,
        verbose: 0,
        utf8: true,
    });
    let cases = [
        (Severity::Info, libc::LOG_INFO, "", "B147AB402B: removed"),
        (
            Severity::Warning,
            libc::LOG_WARNING,
            "warning: ",
            "odd file",
        ),
        (Severity::Error, libc::LOG_ERR, "error: ", "bad thing"),
        (
            Severity::Fatal,
            libc::LOG_CRIT,
            "fatal: ",
            "watchdog timeout",
        ),
    ];
    let mut buf = [0u8; 4096];
    for (severity, level, prefix, text) in cases {
        // As Postfix's msg_syslog_print calls it: facility | level, with the
        // severity prefix in the format.
        let fmt = CString::new("%s%s").unwrap();
        let (p, t) = (CString::new(prefix).unwrap(), CString::new(text).unwrap());
        // SAFETY: format and arguments are valid C strings.
        unsafe { libc::syslog(libc::LOG_MAIL | level, fmt.as_ptr(), p.as_ptr(), t.as_ptr()) };
        let n = server.recv(&mut buf).unwrap();
        let theirs = buf[..n].to_vec();
        ours.log(severity, text);
        let n = server.recv(&mut buf).unwrap();
        let mine = buf[..n].to_vec();
        let mask = |rec: &[u8]| -> Vec<u8> {
            let close = rec.iter().position(|&b| b == b'>').expect("priority");
            let mut v = rec.to_vec();
            // "Mon dd hh:mm:ss " after the priority: mask the clock only.
            for b in &mut v[close + 8..close + 16] {
                *b = b'#';
            }
            v
        };
        assert_eq!(
            String::from_utf8_lossy(&mask(&mine)),
            String::from_utf8_lossy(&mask(&theirs)),
            "ours vs glibc"
        );
    }
    println!("INNER-OK");
}
