//! The `memory` workload: the queue manager's resident memory per message
//! and per recipient it holds in core (issue 5: "memory per in-core
//! message and recipient no more than oqmgr's").
//!
//! Peak RSS of a throughput run mixes two things: what one in-core
//! message costs, and how many messages a queue manager chooses to keep in
//! `active/` (ours admits eagerly, Postfix's oqmgr keeps a few hundred).
//! This workload separates them by making every queue manager hold the
//! same N messages at once:
//!
//! 1. Start a fresh instance whose destinations are *tarpits*: loopback
//!    listeners that never accept, so the kernel completes the smtp
//!    client's connection and the client then waits for a greeting that
//!    never comes (`smtp_helo_timeout`, 300 s, far beyond a run). Nothing
//!    is delivered, deferred or bounced during the run; with the default
//!    destination concurrency a handful of messages sit in delivery
//!    agents and the rest wait in the queue manager's queues.
//! 2. Wait until the qmgr process is up and its `VmRSS` and `VmHWM` are
//!    steady: the idle figure.
//! 3. Inject N messages and wait until `active/` holds all N and
//!    `incoming/` none, then until `VmRSS` and `VmHWM` are steady again
//!    (each within [`STEADY_SLACK_KIB`] over [`STEADY_FOR`]).
//! 4. Report (loaded RSS − idle RSS) / N, in bytes, and the same per
//!    recipient; then stop the instance (master's SIGTERM takes the
//!    waiting smtp clients with it; the queue folder is removed).
//!
//! Two phases, each in its own instance: N messages with 1 recipient
//! (`r@d1.example`, one tarpit), and 2N/5 messages to the fan-out alias
//! (5 recipients in 5 domains, one tarpit each, so 5 queues): 2N
//! recipients. "Bytes per added recipient" is the difference of the two
//! per-message figures divided by 4: what a fifth recipient costs beyond
//! the message itself.
//!
//! # Limits
//! All three queue managers must really hold everything: Postfix's
//! `qmgr_message_active_limit` (20,000 messages) and
//! `qmgr_message_recipient_limit` (20,000 in-core recipients; for qmgr
//! also `default_recipient_limit`, 20,000 per transport) bound N to
//! 10,000 ([`MAX_IN_CORE`]); the command line refuses more.
//!
//! # Invariants
//! - The same qmgr process is measured idle and loaded; a restart in
//!   between fails the run.
//! - Every wait is bounded (the run's deadline; no new file in `active/`
//!   for `--stall` seconds).

use super::instance::{now, Instance};
use super::probe::{resident, Resident};
use super::summary::{Better, Metric};
use super::workloads::{
    builder, fanout_alias, transport_map, Measured, WorkloadParams, FANOUT_DOMAINS,
};
use crate::sandbox::{QmgrChoice, Sandbox};
use std::net::TcpListener;
use std::time::{Duration, Instant};

/// Largest N the workload accepts: 2N recipients in core must stay within
/// Postfix's 20,000-recipient limits.
pub const MAX_IN_CORE: u64 = 10_000;

/// How long RSS and HWM must stay within [`STEADY_SLACK_KIB`] to count as
/// steady.
const STEADY_FOR: Duration = Duration::from_secs(1);
/// How far RSS may move while steady, in KiB (allocator noise, a timer
/// firing).
const STEADY_SLACK_KIB: u64 = 32;
/// How often RSS is read while waiting for it to settle.
const STEADY_POLL: Duration = Duration::from_millis(100);

/// Bytes per in-core message, 1 recipient.
const PER_MSG_1: Metric = Metric {
    name: "bytes per in-core message, 1 recipient",
    unit: "B",
    better: Better::Lower,
};
/// Bytes per in-core message, 5 recipients.
const PER_MSG_5: Metric = Metric {
    name: "bytes per in-core message, 5 recipients in 5 domains",
    unit: "B",
    better: Better::Lower,
};
/// Bytes per in-core recipient, 5 recipients per message.
const PER_RCPT_5: Metric = Metric {
    name: "bytes per in-core recipient, 5 recipients in 5 domains",
    unit: "B",
    better: Better::Lower,
};
/// Difference of the two per-message figures over 4.
const PER_ADDED_RCPT: Metric = Metric {
    name: "bytes per added recipient (5-rcpt msg - 1-rcpt msg) / 4",
    unit: "B",
    better: Better::Lower,
};
/// The idle queue manager.
const IDLE_RSS: Metric = Metric {
    name: "qmgr idle RSS",
    unit: "MiB",
    better: Better::Lower,
};

/// Messages held in the fan-out phase: 2N/5 (at least 1).
pub fn fanout_messages(p: &WorkloadParams) -> u64 {
    (p.in_core * 2 / 5).max(1)
}

/// The workload: both phases, then the per-message and per-recipient
/// figures.
pub fn memory(qmgr: &QmgrChoice, p: &WorkloadParams) -> Result<Measured, String> {
    let n1 = p.in_core;
    let one = hold(qmgr, p, n1, "r@d1.example", &FANOUT_DOMAINS[..1])?;
    let n5 = fanout_messages(p);
    let five = hold(qmgr, p, n5, "fan@fan.example", &FANOUT_DOMAINS)?;
    let per_msg_1 = one.bytes_per(n1);
    let per_msg_5 = five.bytes_per(n5);
    Ok(vec![
        (PER_MSG_1, per_msg_1),
        (PER_MSG_5, per_msg_5),
        (PER_RCPT_5, five.bytes_per(n5 * 5)),
        (PER_ADDED_RCPT, (per_msg_5 - per_msg_1) / 4.0),
        (IDLE_RSS, one.idle.rss_kib as f64 / 1024.0),
    ])
}

/// Resident memory of one phase, idle and with everything in core.
#[derive(Debug, Clone, Copy)]
struct Held {
    /// Before the injection.
    idle: Resident,
    /// With all messages in `active/`, steady.
    loaded: Resident,
}

impl Held {
    /// (loaded − idle) VmRSS in bytes, over `count`.
    fn bytes_per(&self, count: u64) -> f64 {
        let grown = self.loaded.rss_kib as f64 - self.idle.rss_kib as f64;
        grown * 1024.0 / count.max(1) as f64
    }
}

/// One phase: a fresh instance routing `domains` to tarpits; `count`
/// messages to `rcpt` held in core.
fn hold(
    qmgr: &QmgrChoice,
    p: &WorkloadParams,
    count: u64,
    rcpt: &str,
    domains: &[&str],
) -> Result<Held, String> {
    // Declared before the instance so that they outlive it (locals drop
    // in reverse order): the smtp clients see no reset before master stops.
    let mut tarpits = Vec::new();
    let mut routes = Vec::new();
    for domain in domains {
        let listener =
            TcpListener::bind("127.0.0.1:0").map_err(|e| format!("tarpit listener: {e}"))?;
        let port = listener
            .local_addr()
            .map_err(|e| format!("tarpit listener: {e}"))?
            .port();
        routes.push((*domain, port));
        tarpits.push(listener);
    }
    let settings = [
        ("virtual_alias_maps", fanout_alias()),
        ("transport_maps", transport_map(&routes)),
    ];
    let mut inst = Instance::start(
        builder(qmgr, &settings),
        p.deadline(count),
        p.stall,
        p.observe,
    )?;
    let idle_deadline = now() + Duration::from_secs(30);
    let pid = qmgr_pid(&inst.sb, idle_deadline)?;
    let idle = steady(pid, idle_deadline)?;

    inst.inject(count, rcpt)?;
    inst.wait_on("all messages in active/", "active queue", |_, sb| {
        let active = count_files(sb, "active");
        let done = active >= count && count_files(sb, "incoming") == 0;
        (done, active)
    })?;
    let loaded = steady(pid, p.deadline(count))?;
    if inst.sb.qmgr_pid() != Some(pid) {
        return Err(format!("the qmgr (pid {pid}) was restarted during the run"));
    }
    let in_active = count_files(&inst.sb, "active");
    if in_active != count {
        return Err(format!("active/ holds {in_active} files, not {count}"));
    }
    Ok(Held { idle, loaded })
}

/// Waits (until `deadline`) for master to start the qmgr.
fn qmgr_pid(sb: &Sandbox, deadline: Instant) -> Result<i32, String> {
    loop {
        if let Some(pid) = sb.qmgr_pid() {
            return Ok(pid);
        }
        if now() >= deadline {
            return Err("no qmgr process appeared".into());
        }
        std::thread::sleep(STEADY_POLL);
    }
}

/// Reads `pid`'s resident set until RSS and HWM have both stayed within
/// [`STEADY_SLACK_KIB`] for [`STEADY_FOR`]; returns the last reading.
fn steady(pid: i32, deadline: Instant) -> Result<Resident, String> {
    let gone = || format!("the qmgr (pid {pid}) exited");
    let mut window: Vec<Resident> = Vec::new();
    let need = (STEADY_FOR.as_millis() / STEADY_POLL.as_millis()) as usize + 1;
    loop {
        let r = resident(pid).ok_or_else(gone)?;
        window.push(r);
        if window.len() > need {
            window.remove(0);
        }
        if window.len() == need && settled(&window) {
            return Ok(r);
        }
        if now() >= deadline {
            return Err(format!(
                "qmgr RSS did not settle (last {} KiB, HWM {} KiB)",
                r.rss_kib, r.hwm_kib
            ));
        }
        std::thread::sleep(STEADY_POLL);
    }
}

/// True when RSS and HWM each moved at most [`STEADY_SLACK_KIB`] over
/// `window`.
fn settled(window: &[Resident]) -> bool {
    let spread = |f: fn(&Resident) -> u64| {
        let max = window.iter().map(f).max().unwrap_or(0);
        let min = window.iter().map(f).min().unwrap_or(0);
        max - min
    };
    spread(|r| r.rss_kib) <= STEADY_SLACK_KIB && spread(|r| r.hwm_kib) <= STEADY_SLACK_KIB
}

/// Files directly in queue folder `queue` (`active` and `incoming` are
/// not hashed in the sandbox's default `hash_queue_names`). Counted from
/// the directory entries' types alone (no path, no stat, no sort), since
/// it runs every poll with thousands of files present.
fn count_files(sb: &Sandbox, queue: &str) -> u64 {
    std::fs::read_dir(sb.queue_dir().join(queue)).map_or(0, |entries| {
        entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .count() as u64
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(rss_kib: u64, hwm_kib: u64) -> Resident {
        Resident { rss_kib, hwm_kib }
    }

    #[test]
    fn steadiness_needs_both_rss_and_hwm_still() {
        assert!(settled(&[r(1000, 2000), r(1010, 2000), r(1032, 2010)]));
        assert!(!settled(&[r(1000, 2000), r(1033, 2000)]));
        assert!(!settled(&[r(1000, 2000), r(1000, 2100)]));
    }

    #[test]
    fn per_message_figures_are_bytes_of_growth() {
        let h = Held {
            idle: r(4000, 4000),
            loaded: r(6000, 6100),
        };
        assert_eq!(h.bytes_per(2048), 1000.0);
        // Shrinking (allocator returning memory) shows as negative, not as
        // a wrapped unsigned number.
        let h = Held {
            idle: r(6000, 6000),
            loaded: r(5000, 6000),
        };
        assert!(h.bytes_per(1024) < 0.0);
    }

    #[test]
    fn fanout_holds_two_fifths() {
        let mut p = WorkloadParams {
            messages: 1,
            backlog: 1,
            live: 1,
            in_core: 5000,
            stall: Duration::from_secs(1),
            timeout: None,
            observe: false,
        };
        assert_eq!(fanout_messages(&p), 2000);
        p.in_core = 1;
        assert_eq!(fanout_messages(&p), 1);
    }
}
