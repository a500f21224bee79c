//! adhoc - the per-recipient status line the queue manager logs itself
//! (Postfix: `postfix/src/global/log_adhoc.c` and `util/format_tv.c`).
//!
//! Shape: `<id>: to=<rcpt>[, orig_to=<orig>], relay=none, delay=D,
//! delays=a/b/0/0, dsn=X.Y.Z, status=WORD (text)`. For the queue manager's
//! own lines `a` is arrival → admission and `b` admission → now. Times are
//! printed with at most two significant digits and at most
//! `delay_logging_resolution_limit` decimals, never with trailing zeros, so
//! log parsers (pflogsumm, qshape users' scripts) see Postfix's numbers.

use crate::postfix::attr::Timeval;

/// Microseconds between two `Timeval`s, 0 when `later` is earlier (a clock
/// step must not print a negative delay).
fn micros_between(earlier: Timeval, later: Timeval) -> u64 {
    let a = earlier.sec as i128 * 1_000_000 + earlier.usec as i128;
    let b = later.sec as i128 * 1_000_000 + later.usec as i128;
    (b - a).clamp(0, u64::MAX as i128) as u64
}

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

/// One status line. `arrival` is the message's `T` time, `active` its
/// admission, `now` the time of the event.
#[allow(clippy::too_many_arguments)]
pub fn status_line(
    queue_id: &str,
    to: &str,
    orig_to: &str,
    arrival: Timeval,
    active: Timeval,
    now: Timeval,
    resolution: u32,
    dsn_status: &str,
    word: &str,
    reason: &str,
) -> String {
    let mut line = format!("{queue_id}: to=<{to}>");
    if !orig_to.is_empty() && !orig_to.eq_ignore_ascii_case(to) {
        line.push_str(&format!(", orig_to=<{orig_to}>"));
    }
    let f = |m| format_delay(m, resolution);
    line.push_str(&format!(
        ", relay=none, delay={}, delays={}/{}/0/0, dsn={dsn_status}, status={word} ({reason})",
        f(micros_between(arrival, now)),
        f(micros_between(arrival, active)),
        f(micros_between(active, now)),
    ));
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_print_like_postfix() {
        // The examples of the spec's section 10.3 (resolution 2 unless said).
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
        let line = status_line(
            "ABC",
            "u@x",
            "U@X",
            t(10),
            t(11),
            t(13),
            2,
            "2.0.0",
            "sent",
            "why",
        );
        assert_eq!(
            line,
            "ABC: to=<u@x>, relay=none, delay=3, delays=1/2/0/0, dsn=2.0.0, status=sent (why)"
        );
        let line = status_line(
            "ABC",
            "u@x",
            "v@x",
            t(10),
            t(10),
            t(10),
            2,
            "4.3.0",
            "deferred",
            "r",
        );
        assert!(line.contains(", orig_to=<v@x>, relay=none, delay=0, delays=0/0/0/0,"));
    }
}
