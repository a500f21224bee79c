//! procs - the processes of one private Postfix instance, found by service
//! name through /proc, and killed by pid.
//!
//! master(8) starts every service as its own child, with `-n SERVICE` in
//! argv when the command's basename differs from the service name (and the
//! bare command otherwise). A process belongs to the instance when its
//! parent is the instance's master, so a daemon of another instance (or of
//! the host's own Postfix) is never touched.

use std::fs;

use crate::sandbox::processes::process_ids;

/// The parent pid of `pid` (the field after the state letter of
/// /proc/PID/stat, which follows the parenthesised command name).
pub fn parent_of(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// The master.cf service name a master child serves: the word after `-n`,
/// or the basename of argv\[0\].
pub fn service_of(pid: i32) -> Option<String> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    service_in_cmdline(&raw)
}

/// [`service_of`] for a NUL-separated command line.
pub fn service_in_cmdline(raw: &[u8]) -> Option<String> {
    let args: Vec<&[u8]> = raw.split(|b| *b == 0).collect();
    if let Some(w) = args.windows(2).find(|w| w[0] == b"-n") {
        return Some(String::from_utf8_lossy(w[1]).into_owned());
    }
    let argv0 = args.first().filter(|a| !a.is_empty())?;
    let base = argv0.rsplit(|b| *b == b'/').next().unwrap_or(argv0);
    Some(String::from_utf8_lossy(base).into_owned())
}

/// Live children of `master` that serve `service`.
pub fn service_pids(master: i32, service: &str) -> Vec<i32> {
    process_ids()
        .filter(|&pid| parent_of(pid) == Some(master))
        .filter(|&pid| service_of(pid).as_deref() == Some(service))
        .filter(|&pid| !is_zombie(pid))
        .collect()
}

/// True when `pid` is a zombie (or gone).
pub fn is_zombie(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}

/// Sends `signal` to `pid`; true when it was delivered.
pub fn signal(pid: i32, signal: i32) -> bool {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(pid, signal) == 0 }
}

/// Where `pid` sleeps in the kernel (`/proc/PID/wchan`), for reports of a
/// process that stopped moving (e.g. `anon_pipe_read`).
pub fn wchan(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_service() {
        assert_eq!(
            service_in_cmdline(b"smtp\0-n\0relay\0-t\0unix\0").as_deref(),
            Some("relay")
        );
        assert_eq!(
            service_in_cmdline(b"/usr/lib/postfix/sbin/cleanup\0-z\0-t\0unix\0").as_deref(),
            Some("cleanup")
        );
        assert_eq!(service_in_cmdline(b""), None);
        let me = std::process::id() as i32;
        assert!(parent_of(me).is_some());
        assert!(!is_zombie(me));
    }
}
