//! processes - the processes of private Postfix instances: clean-up of
//! those an instance leaves behind, and the host condition they depend on.
//!
//! # The postlog queue trap
//! With `maillog_file` set, every Postfix program logs by sending one
//! datagram per line to the `postlog` socket, which master(8) owns and
//! hands to postlogd(8) when it is readable. The socket is connected in
//! blocking mode, so when its receive queue is full a sender waits for the
//! reader. Linux limits that queue to `net.unix.max_dgram_qlen` datagrams
//! (10 by default). If master itself is the blocked sender, which happens
//! when a burst of lines arrives before postlogd runs (start-up, or a
//! `postfix reload` that replaces postlogd, on a loaded machine), nothing
//! spawns postlogd any more: master sleeps in `unix_wait_for_peer` for
//! good, no mail moves and nothing is logged. Seen in our test runs as an
//! instance that "never came up" and as an instance that stalled after
//! `postfix reload`. `actors/scripts/install-postfix` raises the limit;
//! [`warn_if_postlog_queue_small`] says so when it was not raised.
//!
//! # Leftovers
//! A master blocked that way may not have written its pid file yet, so
//! stopping by pid misses it. [`kill_leftovers`] finds every process whose
//! working directory lies inside the instance's folder (Postfix programs
//! work in `queue_directory`) and kills it, so a failed start leaks
//! nothing.

use std::fs;
use std::path::Path;
use std::sync::Once;

/// Where Linux keeps the datagram queue limit of unix sockets.
const QLEN_PATH: &str = "/proc/sys/net/unix/max_dgram_qlen";

/// A queue long enough for the bursts of a start-up or reload.
pub const POSTLOG_QUEUE_WANTED: u32 = 1024;

/// The current `net.unix.max_dgram_qlen`, if readable.
pub fn postlog_queue_limit() -> Option<u32> {
    fs::read_to_string(QLEN_PATH).ok()?.trim().parse().ok()
}

/// Prints, once per process, why instances may hang when the datagram
/// queue limit is below [`POSTLOG_QUEUE_WANTED`], and how to raise it.
pub fn warn_if_postlog_queue_small() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if let Some(limit) = postlog_queue_limit().filter(|&l| l < POSTLOG_QUEUE_WANTED) {
            eprintln!(
                "sandbox: warning: net.unix.max_dgram_qlen is {limit}: master(8) can block \
                 for good logging to postlogd during a start or reload; run \
                 actors/scripts/install-postfix or `sysctl -w net.unix.max_dgram_qlen={}`",
                POSTLOG_QUEUE_WANTED
            );
        }
    });
}

/// The pids of all processes visible in /proc now (none if /proc cannot
/// be read). Entries that are not numbers are skipped.
pub fn process_ids() -> impl Iterator<Item = i32> {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
}

/// Kills (SIGKILL) every process whose working directory is `dir` or lies
/// below it, and returns their pids. `dir` must be absolute.
pub fn kill_leftovers(dir: &Path) -> Vec<i32> {
    assert!(dir.is_absolute(), "kill_leftovers needs an absolute folder");
    let me = std::process::id() as i32;
    let mut killed = Vec::new();
    for pid in process_ids() {
        if pid == me {
            continue;
        }
        // Unreadable (gone, or not ours to see): not one of ours.
        let Ok(cwd) = fs::read_link(format!("/proc/{pid}/cwd")) else {
            continue;
        };
        if cwd.starts_with(dir) {
            // SAFETY: kill(2) has no memory-safety preconditions.
            if unsafe { libc::kill(pid, libc::SIGKILL) } == 0 {
                killed.push(pid);
            }
        }
    }
    killed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kills_a_process_working_inside_the_folder_only() {
        let inside = std::env::temp_dir().join(format!("host-test-{}", std::process::id()));
        fs::create_dir_all(&inside).unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .current_dir(&inside)
            .spawn()
            .unwrap();
        let mut outside = std::process::Command::new("sleep")
            .arg("30")
            .current_dir(std::env::temp_dir())
            .spawn()
            .unwrap();
        let killed = kill_leftovers(&inside);
        assert_eq!(killed, vec![child.id() as i32]);
        assert!(!child.wait().unwrap().success());
        assert!(
            outside.try_wait().unwrap().is_none(),
            "outside process untouched"
        );
        outside.kill().unwrap();
        outside.wait().unwrap();
        fs::remove_dir_all(&inside).unwrap();
    }

    #[test]
    fn reads_the_queue_limit() {
        // Linux always has the file; the value is whatever the host set.
        assert!(postlog_queue_limit().is_some_and(|l| l > 0));
    }
}
