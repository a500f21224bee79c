//! Plays the queue manager's part around a sandbox: enqueue with sendmail,
//! wait for cleanup to finish, move the file to `active/`, read its
//! envelope and build delivery requests from it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use oqmgr::entry::{Dsn, EntryId, Outcome};
use oqmgr_actors::daemon::bridge::reply_report;
use oqmgr_actors::postfix::attr::{Timeval, WireRecipient};
use oqmgr_actors::postfix::deliver_request::{DeliveryError, DeliveryReply};
use oqmgr_actors::postfix::deliver_request::{DeliveryRequest, EntryContext};
use oqmgr_actors::postfix::dialect::Dialect;
use oqmgr_actors::postfix::queue_file::{self, read_envelope, FileEnvelope, ReadLimits};
use oqmgr_actors::postfix::queue_file_write::mode_is_ready;
use oqmgr_devtools::sandbox::{QmgrChoice, Sandbox};

/// Per-operation IPC timeout for tests: generous, but a hang still fails.
pub const IPC_TIMEOUT: Duration = Duration::from_secs(20);
/// How long to wait for a log line or a file.
pub const WAIT: Duration = Duration::from_secs(20);

/// A sandbox without qmgr (mail stays in `incoming/`) plus `main_cf`.
pub fn sandbox(main_cf: &[(&str, &str)]) -> Sandbox {
    let mut b = Sandbox::builder().qmgr(QmgrChoice::None);
    for (k, v) in main_cf {
        b = b.main_cf(*k, *v);
    }
    b.start().expect("sandbox starts")
}

/// The dialect of the sandbox's Postfix, learned the way the daemon does.
pub fn dialect(sb: &Sandbox) -> Dialect {
    let learned = oqmgr_actors::postfix::dialect::learn(
        None,
        &sb.postfix_install().command_directory,
        &sb.config_dir(),
        oqmgr_actors::postfix::dialect::POSTCONF_TIMEOUT,
    );
    assert!(learned.warnings.is_empty(), "{:?}", learned.warnings);
    learned.dialect
}

/// Queue IDs of complete files in `incoming/`.
pub fn ready_incoming(sb: &Sandbox) -> Vec<String> {
    sb.queue_files("incoming")
        .into_iter()
        .filter(|(_, p)| {
            fs::metadata(p)
                .map(|m| mode_is_ready(m.permissions().mode()))
                .unwrap_or(false)
        })
        .map(|(id, _)| id)
        .collect()
}

/// Waits until a complete file not in `before` shows up in `incoming/`.
pub fn wait_new_incoming(sb: &Sandbox, before: &[String]) -> String {
    let mut found = None;
    let ok = sb.wait_for(WAIT, || {
        found = ready_incoming(sb)
            .into_iter()
            .find(|id| !before.contains(id));
        found.is_some()
    });
    assert!(
        ok,
        "no new queue file in incoming/; maillog:\n{}",
        sb.maillog()
    );
    found.unwrap()
}

/// Waits until `incoming/ID` exists and cleanup has finished it.
pub fn wait_ready(sb: &Sandbox, id: &str) {
    let ok = sb.wait_for(WAIT, || ready_incoming(sb).iter().any(|i| i == id));
    assert!(
        ok,
        "{id} not ready in incoming/; maillog:\n{}",
        sb.maillog()
    );
}

/// Submits a message with `sendmail ARGS` and returns its queue ID once
/// cleanup has finished the file.
pub fn enqueue(sb: &Sandbox, args: &[&str], message: &[u8]) -> String {
    let before = ready_incoming(sb);
    let out = sb.sendmail(args, message).expect("sendmail runs");
    assert!(out.status.success(), "sendmail failed: {out:?}");
    wait_new_incoming(sb, &before)
}

/// Moves `incoming/ID` to `active/ID`, as qmgr does when it admits a file.
pub fn activate(sb: &Sandbox, id: &str) -> PathBuf {
    let from = sb.queue_dir().join("incoming").join(id);
    let to = sb.queue_dir().join("active").join(id);
    fs::rename(&from, &to).expect("rename incoming -> active");
    to
}

/// Reads the envelope of a queue file with the project's reader.
pub fn envelope(path: &Path, id: &str) -> FileEnvelope {
    let f = fs::File::open(path).expect("open queue file");
    read_envelope(f, id, &ReadLimits::default()).expect("envelope reads")
}

/// The record type byte at `offset` (`R` pending, `D` done).
pub fn record_type_at(path: &Path, offset: u64) -> u8 {
    fs::read(path).expect("read queue file")[offset as usize]
}

/// A queue-file recipient as it goes on the wire.
pub fn wire_recipient(r: &queue_file::FileRecipient) -> WireRecipient {
    WireRecipient::from(r)
}

/// The delivery request qmgr would build for `env` to `nexthop` with all
/// of the envelope's recipients.
pub fn request(env: &FileEnvelope, id: &str, nexthop: &str, conn_flags: u32) -> DeliveryRequest {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    let ctx = EntryContext {
        queue_id: id.as_bytes(),
        nexthop: nexthop.as_bytes(),
        conn_flags,
        active_arrival: Timeval {
            sec: now.as_secs() as i64,
            usec: i64::from(now.subsec_micros()),
        },
        smtputf8_enable: true,
    };
    DeliveryRequest::for_entry(
        env,
        &ctx,
        env.recipients.iter().map(WireRecipient::from).collect(),
    )
}

/// The private socket of a service.
pub fn private(sb: &Sandbox, service: &str) -> PathBuf {
    sb.queue_dir().join("private").join(service)
}

/// Lines of the maillog containing `needle`.
pub fn log_lines(sb: &Sandbox, needle: &str) -> Vec<String> {
    sb.maillog()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}

/// What the daemon's agent bridge makes of a delivery's result: the
/// report's outcome and hop status (`daemon::bridge::reply_report`, the
/// mapping the daemon runs). A failed exchange is a test failure here.
pub fn outcome(r: &Result<DeliveryReply, DeliveryError>) -> (Outcome, Option<Dsn>) {
    let reply = r.as_ref().expect("the agent answers");
    let report = reply_report(EntryId(1), reply);
    (report.outcome, report.hop)
}
