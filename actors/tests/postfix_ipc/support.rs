//! Plays the queue manager's part around a sandbox: enqueue with sendmail,
//! wait for cleanup to finish, move the file to `active/`, read its
//! envelope and build delivery requests from it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use oqmgr_actors::postfix::agent::{flags, DeliveryRequest};
use oqmgr_actors::postfix::attr::{MsgStats, Recipient, Timeval};
use oqmgr_actors::postfix::dialect::Dialect;
use oqmgr_actors::postfix::queue_file::{self, read_envelope, Envelope, ReadLimits};
use oqmgr_actors::postfix::queue_file_write::mode_is_ready;
use oqmgr_actors::sandbox::{QmgrChoice, Sandbox};

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

/// The dialect of the installed Postfix, asked the way the daemon will.
pub fn dialect(sb: &Sandbox) -> Dialect {
    Dialect::detect(Some(&sb.config_dir())).expect("postconf mail_version")
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
pub fn envelope(path: &Path, id: &str) -> Envelope {
    let f = fs::File::open(path).expect("open queue file");
    read_envelope(f, id, &ReadLimits::default()).expect("envelope reads")
}

/// The record type byte at `offset` (`R` pending, `D` done).
pub fn record_type_at(path: &Path, offset: u64) -> u8 {
    fs::read(path).expect("read queue file")[offset as usize]
}

/// A queue-file recipient as it goes on the wire.
pub fn wire_recipient(r: &queue_file::Recipient) -> Recipient {
    Recipient {
        original: r.orig_rcpt.clone(),
        address: r.address.clone(),
        offset: r.offset,
        dsn_orcpt: r.dsn_orcpt.clone(),
        dsn_notify: r.dsn_notify as u32,
    }
}

/// The delivery request qmgr would build for `env` to `nexthop` with all
/// of the envelope's recipients.
pub fn request(env: &Envelope, id: &str, nexthop: &str, extra_flags: u32) -> DeliveryRequest {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    DeliveryRequest {
        flags: flags::DEFAULT | extra_flags | (env.trace_flags as u32 & flags::TRACE_MASK),
        queue_name: b"active".to_vec(),
        queue_id: id.into(),
        data_offset: env.data_offset as u64,
        data_size: env.cont_length as u64,
        nexthop: nexthop.into(),
        encoding: env.encoding.clone(),
        sendopts: env.smtputf8 as u32,
        sender: env.sender.clone().unwrap_or_default(),
        dsn_envid: env.dsn_envid.clone(),
        dsn_ret: env.dsn_ret as u32,
        stats: MsgStats {
            incoming_arrival: Timeval {
                sec: env.arrival_sec,
                usec: env.arrival_usec,
            },
            active_arrival: Timeval {
                sec: now.as_secs() as i64,
                usec: i64::from(now.subsec_micros()),
            },
            ..MsgStats::default()
        },
        client_name: env.client_name.clone(),
        client_addr: env.client_addr.clone(),
        client_port: env.client_port.clone(),
        client_proto: env.client_proto.clone(),
        client_helo: env.client_helo.clone(),
        sasl_method: env.sasl_method.clone(),
        sasl_username: env.sasl_username.clone(),
        sasl_sender: env.sasl_sender.clone(),
        log_ident: env.log_ident.clone(),
        rewrite_context: env.rewrite_context.clone(),
        recipients: env.recipients.iter().map(wire_recipient).collect(),
    }
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
