//! adhoc - the per-recipient status line the queue manager logs itself
//! (Postfix: `postfix/src/global/log_adhoc.c` and `util/format_tv.c`).
//!
//! Shape: `<id>: to=<rcpt>[, orig_to=<orig>], relay=R, delay=D,
//! delays=a/b/0/d, dsn=X.Y.Z, status=WORD (text)`: `a` is arrival →
//! admission, `b` admission → hand-off, `d` hand-off → now. The queue
//! manager's own lines (relay `none`) hand off at `now`; custom transports
//! ([`crate::custom_transports`]) log through the same function. Times are
//! printed with at most two significant digits and at most
//! `delay_logging_resolution_limit` decimals, never with trailing zeros, so
//! log parsers (pflogsumm, qshape users' scripts) see Postfix's numbers.

use oqmgr::entry::{Dsn, Recipient};

use super::active_table::loggable_text;
use crate::postfix::attr::Timeval;

/// Formats a delay of `micros` microseconds with `resolution` decimals at
/// most and two significant digits.
pub fn format_delay(micros: u64, resolution: u32) -> String {
    let resolution = resolution.min(6);
    let (secs, frac) = (micros / 1_000_000, micros % 1_000_000);
    let mut step: u64 = 10u64.pow(6 - resolution);
    if resolution > 0 {
        if secs >= 10 {
            step = 1_000_000;
        } else if secs >= 1 {
            step = step.max(100_000);
        } else {
            while frac >= 100 * step && step < 1_000_000 {
                step *= 10;
            }
        }
    } else {
        step = 1_000_000;
    }
    let rounded = micros + step / 2;
    let (secs, mut frac) = (rounded / 1_000_000, rounded % 1_000_000);
    let mut out = secs.to_string();
    if frac >= step {
        out.push('.');
        let mut place = 100_000;
        while frac >= step && place > 0 {
            out.push(char::from(b'0' + (frac / place) as u8));
            frac %= place;
            place /= 10;
        }
    }
    out
}

/// The instants of one status line.
#[derive(Clone, Copy, Debug)]
pub struct Times {
    /// The message's arrival (`T` record).
    pub arrival: Timeval,
    /// Admission to `active/`.
    pub active: Timeval,
    /// Hand-off to the delivery agent or transport actor; `now` for the
    /// queue manager's own lines (then `b` runs to `now` and `d` is 0).
    pub handoff: Timeval,
    /// The result.
    pub now: Timeval,
}

/// Microseconds from `a` to `b`, 0 if negative (a clock step).
fn micros(a: Timeval, b: Timeval) -> u64 {
    let a = a.sec as i128 * 1_000_000 + a.usec as i128;
    let b = b.sec as i128 * 1_000_000 + b.usec as i128;
    (b - a).clamp(0, u64::MAX as i128) as u64
}

/// A delivery agent's status line (`log_adhoc`): `<id>: to=<..>[,
/// orig_to=<..>], relay=R, delay=D, delays=a/b/c/d, dsn=X, status=W (text)`.
pub fn status_line(
    id: &str,
    r: &Recipient,
    relay: &str,
    t: &Times,
    resolution: u32,
    dsn: &Dsn,
    word: &str,
) -> String {
    let f = |m| format_delay(m, resolution);
    let mut line = format!("{id}: to=<{}>", loggable_text(&r.address));
    if !r.orig_address.is_empty() && !r.orig_address.eq_ignore_ascii_case(&r.address) {
        line.push_str(&format!(", orig_to=<{}>", loggable_text(&r.orig_address)));
    }
    line.push_str(&format!(
        ", relay={relay}, delay={}, delays={}/{}/0/{}, dsn={}, status={word} ({})",
        f(micros(t.arrival, t.now)),
        f(micros(t.arrival, t.active)),
        f(micros(t.active, t.handoff)),
        f(micros(t.handoff, t.now)),
        dsn.status,
        dsn.reason
    ));
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_look_like_postfix_agents() {
        let tv = |sec, usec| Timeval { sec, usec };
        let t = Times {
            arrival: tv(100, 0),
            active: tv(100, 500_000),
            handoff: tv(101, 0),
            now: tv(101, 250_000),
        };
        let mut r = Recipient::new("u@hook.example");
        let line = status_line(
            "4AB2C",
            &r,
            "hooks",
            &t,
            2,
            &Dsn::new("2.0.0", "ok"),
            "sent",
        );
        assert_eq!(
            line,
            "4AB2C: to=<u@hook.example>, relay=hooks, delay=1.3, delays=0.5/0.5/0/0.25, dsn=2.0.0, status=sent (ok)"
        );
        r.orig_address = "alias@x".into();
        let line = status_line("A", &r, "h", &t, 2, &Dsn::new("5.1.1", "no"), "bounced");
        assert!(line.starts_with("A: to=<u@hook.example>, orig_to=<alias@x>, relay=h,"));
    }

    #[test]
    fn delays_print_like_postfix() {
        // The examples of docs/postfix-logs.md §10.3 (resolution 2 unless
        // said).
        let cases: &[(u64, u32, &str)] = &[
            (3_000, 2, "0"),
            (5_000, 2, "0.01"),
            (84_000, 2, "0.08"),
            (123_456, 2, "0.12"),
            (995_000, 2, "1"),
            (1_149_999, 2, "1.1"),
            (1_150_000, 2, "1.2"),
            (9_960_000, 2, "10"),
            (12_499_900, 2, "12"),
            (12_500_000, 2, "13"),
            (50_000, 2, "0.05"),
            (100_000, 2, "0.1"),
            (3_000, 3, "0.003"),
            (84_000, 3, "0.084"),
            (1_700_000, 0, "2"),
            (0, 2, "0"),
        ];
        for &(micros, res, want) in cases {
            assert_eq!(format_delay(micros, res), want, "{micros} us at {res}");
        }
    }

    #[test]
    fn orig_to_only_when_different() {
        let t = |sec| Timeval { sec, usec: 0 };
        // The queue manager's own lines: hand-off is the time of the line.
        let times = |a, b, c| Times {
            arrival: t(a),
            active: t(b),
            handoff: t(c),
            now: t(c),
        };
        let mut r = Recipient::new("u@x");
        r.orig_address = "U@X".into();
        let line = status_line(
            "ABC",
            &r,
            "none",
            &times(10, 11, 13),
            2,
            &Dsn::new("2.0.0", "why"),
            "sent",
        );
        assert_eq!(
            line,
            "ABC: to=<u@x>, relay=none, delay=3, delays=1/2/0/0, dsn=2.0.0, status=sent (why)"
        );
        r.orig_address = "v@x".into();
        let line = status_line(
            "ABC",
            &r,
            "none",
            &times(10, 10, 10),
            2,
            &Dsn::new("4.3.0", "r"),
            "deferred",
        );
        assert!(line.contains(", orig_to=<v@x>, relay=none, delay=0, delays=0/0/0/0,"));
    }
}
