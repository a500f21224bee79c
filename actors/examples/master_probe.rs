//! master_probe - a test-only daemon that exercises the master(8) child
//! protocol of `oqmgr_actors::postfix` under a real Postfix master.
//!
//! Run it in the `qmgr` slot of a private instance (see
//! `actors/tests/master_probe.rs`). It goes through the same start-up
//! sequence the real daemon must follow, and writes what it sees to
//! `$queue_directory/probe-record` (one line per event) so the test can
//! check it:
//!
//! ```text
//! start pid=<pid> argv=<argv joined by spaces> gen=<generation>
//! privs uid=<uid> gid=<gid> jailed=<true if chrooted to the queue dir>
//! flow <FlowAction debug>
//! trigger pid=<pid> <bytes, escaped>
//! gone pid=<pid>
//! ```
//!
//! It also logs `probe started` (info), `probe warning` (warning) and one
//! info line per trigger through the Postfix-format logger.
//!
//! Sequence: parse argv (Postfix's fatal texts on error) → read the few
//! main.cf parameters it needs with `postconf` (honouring `-o`) → switch
//! logging to the configured destination → chdir(queue_directory) → claim
//! fds 3..6 → open the record file (needs root) → drop privileges (`-u`,
//! `-c`) → actix System on a current-thread runtime: top up the flow pipe,
//! then serve triggers until master goes away (exit 0). SIGTERM (postfix
//! stop) kills it by the default action, like stock qmgr.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::Command;

use futures::StreamExt;
use oqmgr_actors::postfix::args::MasterArgs;
use oqmgr_actors::postfix::chroot_uid::chroot_uid;
use oqmgr_actors::postfix::log::{self, LogConfig, LogParams, Logger};
use oqmgr_actors::postfix::log_subscriber::PostfixSubscriber;
use oqmgr_actors::postfix::master::MasterChannel;

/// main.cf parameters the probe asks postconf for, in output order.
const PARAMS: [&str; 10] = [
    "queue_directory",
    "mail_owner",
    "syslog_name",
    "syslog_facility",
    "maillog_file",
    "maillog_file_prefixes",
    "myhostname",
    "postlog_service_name",
    "smtputf8_enable",
    "default_process_limit",
];

/// Runs `postconf -x -h` for [`PARAMS`], with `-c $MAIL_CONFIG` and the
/// `-o` overrides from argv. master(8) scrubs PATH, so the program is
/// looked for in the usual places.
fn read_params(args: &MasterArgs) -> Vec<String> {
    let program = ["/usr/sbin/postconf", "/usr/bin/postconf"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("postconf");
    let mut cmd = Command::new(program);
    if let Ok(dir) = std::env::var("MAIL_CONFIG") {
        cmd.arg("-c").arg(dir);
    }
    for (name, value) in &args.overrides {
        cmd.arg("-o").arg(format!("{name}={value}"));
    }
    cmd.arg("-x").arg("-h").args(PARAMS);
    let out = match cmd.output() {
        Ok(out) if out.status.success() => out,
        Ok(out) => log::fatal(&format!(
            "postconf: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => log::fatal(&format!("postconf: {}", log::errno_text(&e))),
    };
    let values: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    if values.len() != PARAMS.len() {
        log::fatal("postconf: unexpected output");
    }
    values
}

/// Printable form of trigger bytes: ASCII graphic as is, others `\xNN`.
fn escape(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() {
                (b as char).to_string()
            } else {
                format!("\\x{b:02x}")
            }
        })
        .collect()
}

fn main() {
    let env = |name: &str| std::env::var(name).ok();
    // argv, bootstrap logging and the start-up checks, as the daemon does.
    let args = log::bootstrap();

    let v = read_params(&args);
    let params = LogParams {
        queue_directory: Some(PathBuf::from(&v[0])),
        syslog_name: Some(v[2].clone()),
        syslog_facility: Some(v[3].clone()),
        maillog_file: Some(v[4].clone()),
        maillog_file_prefixes: Some(v[5].clone()),
        myhostname: Some(v[6].clone()),
        postlog_service_name: Some(v[7].clone()),
        smtputf8_enable: Some(v[8] == "yes"),
    };
    let (queue_dir, mail_owner) = (PathBuf::from(&v[0]), v[1].clone());
    let process_limit: usize = v[9].parse().unwrap_or(100);
    match LogConfig::resolve(&args, &params, env) {
        Ok(cfg) => {
            log::install(Logger::new(cfg));
        }
        Err(e) => log::fatal(&e.to_string()),
    }
    let _ = tracing::subscriber::set_global_default(PostfixSubscriber::new(args.verbose));

    if let Err(e) = std::env::set_current_dir(&queue_dir) {
        log::fatal(&format!(
            "chdir(\"{}\"): {}",
            queue_dir.display(),
            log::errno_text(&e)
        ));
    }
    let mut channel = match MasterChannel::from_env(&args) {
        Ok(c) => c,
        Err(e) => log::fatal(&e.to_string()),
    };
    // Opened as root, before privileges go: the spool directory is root's.
    let mut record = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o644)
        .open("probe-record")
    {
        Ok(f) => f,
        Err(e) => log::fatal(&format!("open probe-record: {}", log::errno_text(&e))),
    };
    let pid = std::process::id();
    let argv: Vec<String> = std::env::args().collect();
    let generation = channel.status().generation();
    let _ = writeln!(
        record,
        "start pid={pid} argv={} gen={generation}",
        argv.join(" ")
    );

    let root = args.chroot.then_some(queue_dir.as_path());
    let user = args.unprivileged.then_some(mail_owner.as_str());
    if let Err(e) = chroot_uid(root, user) {
        log::fatal(&e.to_string());
    }
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    // Inside the jail the queue directory is "/", so the record file is
    // visible at the root.
    let jailed = std::path::Path::new("/probe-record").exists();
    let _ = writeln!(record, "privs uid={uid} gid={gid} jailed={jailed}");
    log::info(&format!(
        "probe started, service {} generation {generation}",
        args.service_name
    ));
    tracing::warn!("probe warning");

    let system = actix_rt::System::new();
    system.block_on(async move {
        if let Some(flow) = channel.flow() {
            match flow.regulate(process_limit, false, false) {
                Ok(action) => {
                    let _ = writeln!(record, "flow {action:?}");
                }
                Err(e) => tracing::warn!("flow: {}", log::errno_text(&e)),
            }
        }
        let gone = channel.master_gone();
        let mut triggers = match channel.triggers() {
            Ok(t) => t,
            Err(e) => log::fatal(&format!("listen endpoints: {}", log::errno_text(&e))),
        };
        tokio::pin!(gone);
        loop {
            tokio::select! {
                got = triggers.next() => match got {
                    Some(bytes) => {
                        let _ = writeln!(record, "trigger pid={pid} {}", escape(&bytes));
                        log::info(&format!("trigger {}", escape(&bytes)));
                    }
                    None => break,
                },
                _ = &mut gone => break,
            }
        }
        let _ = writeln!(record, "gone pid={pid}");
    });
    std::process::exit(0);
}
