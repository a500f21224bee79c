//! Reads a running queue manager's CPU time and peak memory from `/proc`.
//!
//! master(8) starts the `qmgr` service as its child and restarts it when it
//! exits, so the probe looks for *every* child of master that serves the
//! qmgr slot and sums their CPU. A child serves the slot when its `argv[0]`
//! basename is `qmgr` (master leaves `-n qmgr` out then) or its arguments
//! carry `-n qmgr` (any other program, Postfix's oqmgr and ours included).
//!
//! # Invariants
//! - A process's CPU is kept at its last sample once it is gone: the probe
//!   cannot read a dead process, so CPU spent after the last sample of an
//!   exited qmgr is lost (at most one sampling interval). Callers sample
//!   right before they read and before they stop master.
//! - Peak RSS is the largest `VmHWM` seen of any qmgr process.

use std::collections::BTreeMap;
use std::fs;

/// One qmgr process as last sampled.
#[derive(Debug, Clone, Copy, Default)]
struct ProcSample {
    /// user + system CPU, in clock ticks.
    ticks: u64,
    /// `VmHWM` (peak resident set) in KiB.
    hwm_kib: u64,
}

/// Follows the qmgr-slot children of one master process.
#[derive(Debug)]
pub struct QmgrProbe {
    /// The master whose children are examined.
    master: i32,
    /// Every qmgr process seen so far, by pid, with its last sample.
    seen: BTreeMap<i32, ProcSample>,
}

impl QmgrProbe {
    /// A probe for the qmgr children of `master`; nothing sampled yet.
    pub fn new(master: i32) -> QmgrProbe {
        QmgrProbe {
            master,
            seen: BTreeMap::new(),
        }
    }

    /// Scans `/proc` for qmgr children of master and refreshes every live
    /// one's sample. Unreadable entries (processes that just exited) are
    /// skipped.
    pub fn sample(&mut self) {
        for pid in crate::sandbox::processes::process_ids() {
            let Some(stat) = read_stat(pid) else { continue };
            if stat.ppid != self.master || !serves_qmgr_slot(pid) {
                continue;
            }
            let hwm_kib = read_hwm_kib(pid).unwrap_or(0);
            let slot = self.seen.entry(pid).or_default();
            slot.ticks = slot.ticks.max(stat.ticks);
            slot.hwm_kib = slot.hwm_kib.max(hwm_kib);
        }
    }

    /// Total CPU seconds (user + system) of all qmgr processes seen.
    pub fn cpu_seconds(&self) -> f64 {
        let ticks: u64 = self.seen.values().map(|s| s.ticks).sum();
        ticks as f64 / clock_ticks_per_second()
    }

    /// The largest peak RSS of any qmgr process seen, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        self.seen.values().map(|s| s.hwm_kib).max().unwrap_or(0)
    }
}

/// The fields of `/proc/PID/stat` the probe uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Parent pid (field 4).
    pub ppid: i32,
    /// utime + stime (fields 14 and 15), in clock ticks.
    pub ticks: u64,
}

/// Reads and parses `/proc/PID/stat`.
fn read_stat(pid: i32) -> Option<Stat> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Parses a `/proc/PID/stat` line. The command name (field 2) is in
/// parentheses and may itself hold spaces and parentheses, so fields are
/// counted from the *last* `)`.
pub fn parse_stat(line: &str) -> Option<Stat> {
    let (_, rest) = line.rsplit_once(')')?;
    // rest starts at field 3 (state): field k is at index k - 3.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Stat {
        ppid,
        ticks: utime.saturating_add(stime),
    })
}

/// True when the process's command line says it serves master's `qmgr`
/// service.
fn serves_qmgr_slot(pid: i32) -> bool {
    let Ok(raw) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    is_qmgr_cmdline(&raw)
}

/// The rule of [`serves_qmgr_slot`], shared with the sandbox.
pub use crate::sandbox::is_qmgr_cmdline;

/// `VmHWM` of `/proc/PID/status`, in KiB.
fn read_hwm_kib(pid: i32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_hwm_kib(&status)
}

/// Extracts `VmHWM:   1234 kB` from a `/proc/PID/status` text.
pub fn parse_hwm_kib(status: &str) -> Option<u64> {
    parse_status_kib(status, "VmHWM")
}

/// Extracts a `NAME:   1234 kB` field (`VmRSS`, `VmHWM`, ...) from a
/// `/proc/PID/status` text, in KiB.
pub fn parse_status_kib(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Resident set of one process, from `/proc/PID/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resident {
    /// `VmRSS`: resident now, KiB.
    pub rss_kib: u64,
    /// `VmHWM`: the most ever resident, KiB.
    pub hwm_kib: u64,
}

/// Reads `VmRSS` and `VmHWM` of `pid`; `None` once it is gone.
pub fn resident(pid: i32) -> Option<Resident> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(Resident {
        rss_kib: parse_status_kib(&status, "VmRSS")?,
        hwm_kib: parse_status_kib(&status, "VmHWM")?,
    })
}

/// `sysconf(_SC_CLK_TCK)`, 100 if unknown.
fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let line =
            "4242 (o) q(mgr) S 17 4242 17 0 -1 4194560 500 0 0 0 123 45 0 0 20 0 1 0 99 1000 200";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                ppid: 17,
                ticks: 168
            })
        );
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 2"), None);
    }

    #[test]
    fn qmgr_slot_is_recognised_by_name_or_service_flag() {
        assert!(is_qmgr_cmdline(b"qmgr\0-l\0-t\0unix\0-u\0"));
        assert!(is_qmgr_cmdline(b"oqmgr\0-l\0-n\0qmgr\0-t\0unix\0-u\0"));
        assert!(is_qmgr_cmdline(
            b"../../../../opt/x/oqmgr\0-l\0-n\0qmgr\0-t\0unix\0-u\0"
        ));
        assert!(!is_qmgr_cmdline(b"smtpd\0-n\x00127.0.0.1:25\0-t\0inet\0"));
        assert!(!is_qmgr_cmdline(b"pickup\0-l\0-t\0unix\0-u\0"));
        assert!(!is_qmgr_cmdline(b""));
    }

    #[test]
    fn hwm_is_read_in_kib() {
        let status = "Name:\tqmgr\nVmPeak:\t  9000 kB\nVmHWM:\t    4321 kB\nVmRSS:\t 4000 kB\n";
        assert_eq!(parse_hwm_kib(status), Some(4321));
        assert_eq!(parse_hwm_kib("Name: x\n"), None);
        assert_eq!(parse_status_kib(status, "VmRSS"), Some(4000));
        assert_eq!(parse_status_kib(status, "VmPeak"), Some(9000));
        // A prefix of another field's name is not that field.
        assert_eq!(parse_status_kib(status, "Vm"), None);
        assert_eq!(parse_status_kib("VmRSS:\tlots kB\n", "VmRSS"), None);
    }
}
