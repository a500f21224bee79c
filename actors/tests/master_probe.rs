#![allow(clippy::disallowed_methods)] // tests wait on real daemons in real time
//! The master(8) child protocol under a real Postfix 3.7 master: the
//! `master_probe` example runs in the `qmgr` slot of a private instance,
//! and these tests check what it recorded and logged.
//!
//! Covered: argv as master builds it (`-l -n qmgr -t unix -u`), privilege
//! drop to mail_owner, flow-pipe top-up, triggers from master's wakeup
//! (`W`), `postqueue -f` (`FADI`) and `postkick` over both `unix` and
//! `fifo` endpoints, Postfix-shaped log lines in the maillog (via a real
//! postlogd), clean exit on `postfix reload` (a new generation starts) and
//! death on `postfix stop`, with no "bad command startup" from master.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use oqmgr_devtools::sandbox::{postfix_daemon_directory, QmgrChoice, Sandbox};

/// The probe example. `cargo test` builds examples, but a filtered run
/// (`cargo test --test master_probe`) does not, and a stale probe would test
/// old code; so build it here (a no-op when fresh), once per test binary.
fn probe_path() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("test exe path");
            let profile_dir = exe
                .parent()
                .and_then(Path::parent)
                .expect("target profile dir");
            let release = profile_dir.file_name().is_some_and(|n| n == "release");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
            let mut cmd = Command::new(cargo);
            cmd.args([
                "build",
                "--quiet",
                "--example",
                "master_probe",
                "--manifest-path",
            ])
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"));
            if release {
                cmd.arg("--release");
            }
            let status = cmd.status().expect("run cargo build");
            assert!(status.success(), "building the master_probe example failed");
            let probe = profile_dir.join("examples").join("master_probe");
            assert!(probe.exists(), "{} missing", probe.display());
            probe
        })
        .clone()
}

/// The probe's record file.
fn record(sb: &Sandbox) -> String {
    std::fs::read_to_string(sb.queue_dir().join("probe-record")).unwrap_or_default()
}

fn wait_record(sb: &Sandbox, needle: &str) -> bool {
    sb.wait_for(Duration::from_secs(15), || record(sb).contains(needle))
}

/// The pid on the last `start` line.
fn last_start_pid(text: &str) -> Option<u32> {
    text.lines()
        .filter_map(|l| l.strip_prefix("start pid="))
        .next_back()
        .and_then(|rest| rest.split(' ').next())
        .and_then(|p| p.parse().ok())
}

/// The numeric uid of mail_owner (`postfix`).
fn postfix_uid() -> String {
    let out = Command::new("id").args(["-u", "postfix"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Whether `pid` is still a running process. A zombie counts as gone: once
/// master has exited, reaping is up to init, which in some containers never
/// happens.
fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    if unsafe { libc::kill(pid as i32, 0) } != 0 {
        return false;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next());
    !matches!(state, Some('Z') | Some('X'))
}

fn run(tool: &str, sb: &Sandbox, args: &[&str]) {
    let out = Command::new(tool)
        .arg("-c")
        .arg(sb.config_dir())
        .args(args)
        .output()
        .expect(tool);
    assert!(out.status.success(), "{tool} {args:?}: {out:?}");
}

/// Splits a maillog line into (timestamp, host, tag, pid, text); `None`
/// if it does not have Postfix's shape `Mon DD HH:MM:SS host tag[pid]: text`.
fn shape(line: &str) -> Option<(String, String, String, u32, String)> {
    let (stamp, rest) = (line.get(..15)?, line.get(16..)?);
    let b = stamp.as_bytes();
    let stamp_ok = b[0].is_ascii_uppercase()
        && b[1].is_ascii_lowercase()
        && b[2].is_ascii_lowercase()
        && b[3] == b' '
        && b[4..6].iter().all(u8::is_ascii_digit)
        && b[6] == b' '
        && b[9] == b':'
        && b[12] == b':';
    if !stamp_ok {
        return None;
    }
    let (host, rest) = rest.split_once(' ')?;
    let (tag_pid, text) = rest.split_once(": ")?;
    let (tag, pid) = tag_pid.strip_suffix(']')?.split_once('[')?;
    Some((
        stamp.to_string(),
        host.to_string(),
        tag.to_string(),
        pid.parse().ok()?,
        text.to_string(),
    ))
}

/// Checks the maillog: our lines have the same shape and host as master's.
fn check_log_shape(sb: &Sandbox, probe_pid: u32) {
    let log = sb.maillog();
    let ours: Vec<_> = log
        .lines()
        .filter_map(shape)
        .filter(|s| s.3 == probe_pid)
        .collect();
    let master = log
        .lines()
        .filter_map(shape)
        .find(|s| s.2 == "postfix/master")
        .expect("master logged");
    assert!(!ours.is_empty(), "no lines from pid {probe_pid}:\n{log}");
    for line in &ours {
        assert_eq!(line.2, "postfix/qmgr", "{line:?}");
        assert_eq!(
            line.1, master.1,
            "host field differs from master's: {line:?}"
        );
    }
    let texts: Vec<&str> = ours.iter().map(|l| l.4.as_str()).collect();
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("probe started, service qmgr")),
        "{texts:?}"
    );
    assert!(texts.contains(&"warning: probe warning"), "{texts:?}");
}

fn no_master_complaints(sb: &Sandbox) {
    let log = sb.maillog();
    for bad in [
        "bad command startup",
        "exit status",
        "killed by signal",
        "fatal:",
    ] {
        assert!(!log.contains(bad), "maillog has {bad:?}:\n{log}");
    }
}

fn start(choice: QmgrChoice, extra_master_cf: Option<String>) -> Sandbox {
    let mut b = Sandbox::builder().qmgr(choice).in_flow_delay("1s");
    if let Some(line) = extra_master_cf {
        b = b.master_cf_line(line);
    }
    b.start().expect("sandbox starts")
}

#[test]
fn unix_service_under_real_master() {
    let mut sb = start(QmgrChoice::Command(probe_path()), None);
    // master's boot-time wakeup spawns the probe at once.
    assert!(
        wait_record(&sb, "trigger pid="),
        "record:\n{}\nmaillog:\n{}",
        record(&sb),
        sb.maillog()
    );
    let text = record(&sb);
    let pid = last_start_pid(&text).expect("start line");
    let start_line = text.lines().find(|l| l.starts_with("start ")).unwrap();
    assert!(
        start_line.contains("/master_probe -l -n qmgr -t unix -u gen="),
        "{start_line}"
    );
    assert!(
        text.contains(&format!("privs uid={} gid=", postfix_uid()))
            && text.contains(" jailed=false"),
        "{text}"
    );
    assert!(text.contains("flow Put(100, 100)"), "{text}");
    assert!(text.contains(&format!("trigger pid={pid} W")), "{text}");

    // Postfix's trigger clients write the request and its NUL in two
    // writes, and the trigger server hands a request on as soon as bytes
    // arrive (as Postfix's reads once), so the NUL may or may not be part
    // of what the probe records: match the request bytes only.
    run("postqueue", &sb, &["-f"]);
    assert!(
        wait_record(&sb, &format!("trigger pid={pid} FADI")),
        "{}",
        record(&sb)
    );
    run("postkick", &sb, &["public", "qmgr", "I"]);
    assert!(
        wait_record(&sb, &format!("trigger pid={pid} I")),
        "{}",
        record(&sb)
    );
    assert!(
        sb.wait_for_log("trigger I", Duration::from_secs(5)),
        "{}",
        sb.maillog()
    );
    check_log_shape(&sb, pid);

    // Reload: the old process leaves cleanly, a new one starts and gets the
    // wakeup master re-sends.
    run("postfix", &sb, &["reload"]);
    assert!(
        wait_record(&sb, &format!("gone pid={pid}")),
        "{}",
        record(&sb)
    );
    assert!(
        sb.wait_for(Duration::from_secs(10), || last_start_pid(&record(&sb))
            != Some(pid))
    );
    let new_pid = last_start_pid(&record(&sb)).unwrap();
    assert!(
        wait_record(&sb, &format!("trigger pid={new_pid} W")),
        "{}",
        record(&sb)
    );
    assert!(
        sb.wait_for(Duration::from_secs(5), || !alive(pid)),
        "old probe {pid} still alive"
    );

    // Stop: SIGTERM to the process group; the probe dies with master.
    run("postfix", &sb, &["stop"]);
    assert!(
        sb.wait_for(Duration::from_secs(10), || !alive(new_pid)),
        "probe {new_pid} survived stop"
    );
    no_master_complaints(&sb);
    sb.stop().unwrap();
}

#[test]
fn fifo_service_under_real_master() {
    let daemon_dir = postfix_daemon_directory().unwrap().canonicalize().unwrap();
    let probe = probe_path().canonicalize().unwrap();
    let ups = daemon_dir
        .components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .count();
    let relative = format!(
        "{}{}",
        "../".repeat(ups),
        probe.to_str().unwrap().trim_start_matches('/')
    );
    let mut sb = start(
        QmgrChoice::None,
        Some(format!("qmgr fifo n - y 300 1 {relative}")),
    );
    assert!(
        wait_record(&sb, "trigger pid="),
        "record:\n{}\nmaillog:\n{}",
        record(&sb),
        sb.maillog()
    );
    let text = record(&sb);
    let pid = last_start_pid(&text).unwrap();
    assert!(text.contains(" -l -n qmgr -t fifo -u -c gen="), "{text}");
    // -c: chrooted to the queue directory, and still unprivileged.
    assert!(
        text.contains(&format!("privs uid={} gid=", postfix_uid()))
            && text.contains(" jailed=true"),
        "{text}"
    );
    // Over a FIFO no NUL is appended.
    assert!(text.contains(&format!("trigger pid={pid} W\n")), "{text}");
    run("postqueue", &sb, &["-f"]);
    assert!(
        wait_record(&sb, &format!("trigger pid={pid} FADI\n")),
        "{}",
        record(&sb)
    );
    run("postkick", &sb, &["public", "qmgr", "D"]);
    assert!(
        wait_record(&sb, &format!("trigger pid={pid} D\n")),
        "{}",
        record(&sb)
    );
    check_log_shape(&sb, pid);
    run("postfix", &sb, &["reload"]);
    assert!(
        wait_record(&sb, &format!("gone pid={pid}")),
        "{}",
        record(&sb)
    );
    run("postfix", &sb, &["stop"]);
    no_master_complaints(&sb);
    sb.stop().unwrap();
}

/// Without master: bad arguments are fatal, with Postfix's text, logged
/// through the postlog socket named by the environment (bootstrap logging,
/// before main.cf is read), and exit status 1.
#[test]
fn bad_arguments_are_fatal_and_logged() {
    let dir = std::env::temp_dir().join(format!("oqmgr-probe-args-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let sock_path = dir.join("postlog");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // Errors found while parsing are logged under the program name (the
    // service name is not known yet); later checks under the service name.
    let cases: &[(&[&str], &str, &str)] = &[
        (
            &["-l", "-x"],
            "postfix/master_probe",
            "fatal: invalid option: x",
        ),
        (
            &["-l", "-n", "qmgr", "-t", "inet"],
            "postfix/master_probe",
            "fatal: unsupported transport type: inet",
        ),
        (
            &["-n", "qmgr", "-t", "unix"],
            "postfix/qmgr",
            "fatal: service qmgr requires a process limit of 1",
        ),
        (
            &["-l", "-n", "qmgr", "-t", "unix", "junk"],
            "postfix/qmgr",
            "fatal: unexpected command-line argument: junk",
        ),
    ];
    for (args, want_tag, expect) in cases {
        let out = Command::new(probe_path())
            .args(*args)
            .env_clear()
            .env("POSTLOG_SERVICE", &sock_path)
            .env("POSTLOG_HOSTNAME", "box.example.org")
            .env("MAIL_LOGTAG", "postfix")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        let mut buf = [0u8; 4096];
        let n = sock.recv(&mut buf).expect("a log datagram");
        let line = String::from_utf8_lossy(&buf[..n]).into_owned();
        let (_, host, tag, _, text) = shape(&line).unwrap_or_else(|| panic!("bad shape: {line}"));
        assert_eq!(host, "box");
        assert_eq!(tag, *want_tag, "{line}");
        assert_eq!(text, *expect, "{line}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Stock qmgr's lines in a sandbox maillog parse with the same shape
/// checker the probe's lines pass, with the same host field as master's.
#[test]
fn stock_qmgr_lines_have_the_checked_shape() {
    let sb = Sandbox::builder()
        .qmgr(QmgrChoice::PostfixQmgr)
        .main_cf("default_transport", "discard:shape test")
        .start()
        .expect("sandbox starts");
    let out = sb
        .sendmail(
            &["-f", "s@example.com", "r@example.net"],
            b"Subject: x\n\nx\n",
        )
        .unwrap();
    assert!(out.status.success());
    assert!(
        sb.wait_for_log("status=sent", Duration::from_secs(20)),
        "{}",
        sb.maillog()
    );
    let log = sb.maillog();
    let master_host = log
        .lines()
        .filter_map(shape)
        .find(|s| s.2 == "postfix/master")
        .unwrap()
        .1;
    let qmgr: Vec<_> = log
        .lines()
        .filter_map(shape)
        .filter(|s| s.2 == "postfix/qmgr")
        .collect();
    assert!(!qmgr.is_empty(), "{log}");
    assert!(qmgr.iter().all(|s| s.1 == master_host));
    assert!(
        qmgr.iter()
            .any(|s| s.4.contains(": from=<s@example.com>, size=")),
        "{qmgr:?}"
    );
}
