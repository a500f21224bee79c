//! The scheduling trace as `-v` log lines (Postfix: the `msg_verbose`
//! lines of oqmgr, e.g. `qmgr.c` `qmgr_trigger_event`).
//!
//! With `-v` the daemon logs each scheduling event of the core
//! ([`oqmgr::trace::TraceEvent`]) for the operator, in the style of
//! Postfix's verbose lines rather than the simulator's: no leading time
//! (the log line has its own), times of day as the log writes them
//! (`until=Dec  5 19:45:53`) instead of seconds since the epoch, and each
//! trigger request byte as oqmgr logs it (`request: 87 (W)`), not as an
//! escaped string. Lines start with `scheduler: ` so they read apart from
//! Postfix's own.
//!
//! The trace's `Display` form stays the simulator's snapshot contract;
//! this module only rewrites it.

use oqmgr::time::Instant;
use oqmgr::trace::TraceEvent;

use super::log_format::LocalTime;

/// The `-v` lines for `event`, which happened at `now` (the scheduler's
/// clock); `wall` is the time of day at `now`, in seconds since the epoch
/// ([`LocalTime::epoch_seconds`]).
pub fn lines(event: &TraceEvent, now: Instant, wall: i64) -> Vec<String> {
    if let TraceEvent::Trigger(rendered) = event {
        return unrender(rendered).into_iter().map(request_line).collect();
    }
    vec![format!(
        "scheduler: {}",
        local_times(&event.to_string(), now, wall)
    )]
}

/// oqmgr's line for one trigger byte: its code, and itself when it is a
/// letter or digit, else `?`.
pub fn request_line(byte: u8) -> String {
    let shown = if byte.is_ascii_alphanumeric() {
        char::from(byte)
    } else {
        '?'
    };
    format!("request: {byte} ({shown})")
}

/// The trigger bytes back from the core's rendering (letters and digits as
/// they are, any other byte as `\xNN`).
fn unrender(rendered: &str) -> Vec<u8> {
    let bytes = rendered.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i..i + 4)
            .filter(|w| w.starts_with(b"\\x"))
            .and_then(|w| std::str::from_utf8(&w[2..]).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(b) => {
                out.push(b);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

/// Rewrites every `until=SECONDS.MILLIS` of a trace line as the local time
/// of day it stands for.
fn local_times(line: &str, now: Instant, wall: i64) -> String {
    const KEY: &str = "until=";
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find(KEY) {
        out.push_str(&rest[..at + KEY.len()]);
        rest = &rest[at + KEY.len()..];
        let end = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        match parse_instant(&rest[..end]) {
            Some(until) => {
                // Whole seconds, rounded as Postfix's timers are.
                let ahead = (until.0 as i128 - now.0 as i128).div_euclid(1000);
                let secs = (i128::from(wall) + ahead).clamp(0, i128::from(i32::MAX));
                out.push_str(&LocalTime::at(secs as libc::time_t).to_string());
            }
            None => out.push_str(&rest[..end]),
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// An [`Instant`] as its `Display` writes it (`SECONDS.MILLIS`).
fn parse_instant(text: &str) -> Option<Instant> {
    let (secs, millis) = text.split_once('.')?;
    let secs: u64 = secs.parse().ok()?;
    let millis: u64 = millis.parse().ok().filter(|_| millis.len() == 3)?;
    Some(Instant(secs.checked_mul(1000)?.checked_add(millis)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_read_as_oqmgr_logs_them() {
        let event = TraceEvent::Trigger(oqmgr::trigger::render(b"W\x00A"));
        let got = lines(&event, Instant(0), 0);
        assert_eq!(
            got,
            ["request: 87 (W)", "request: 0 (?)", "request: 65 (A)"]
        );
    }

    #[test]
    fn times_read_as_times_of_day() {
        let now = Instant(5_000);
        let wall = 86_400 * 3;
        let line = local_times("dead smtp:a until=305.000 reason=\"x\"", now, wall);
        let want = LocalTime::at(wall + 300);
        assert_eq!(line, format!("dead smtp:a until={want} reason=\"x\""));
        assert!(!line.contains("305.000"), "{line}");
        assert_eq!(
            local_times("defer m1 id=Q until=bogus", now, wall),
            "defer m1 id=Q until=bogus"
        );
    }
}
