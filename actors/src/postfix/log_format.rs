//! Postfix log record formats; mirrors the formatting parts of
//! `postfix/src/util/msg_logger.c` (postlogd records), `msg_syslog.c` with
//! glibc's `syslog(3)` (syslog records) and `msg_output.c` (`printable()`).
//!
//! Pure functions from (time, identity, severity, text) to the bytes of one
//! datagram; [`super::log`] decides where they go. Exact shapes:
//! * postlog: `Mon DD HH:MM:SS host tag[pid]: [severity: ]text` — day
//!   zero-padded (`strftime %d`), host = first label of the host name;
//! * syslog: `<pri>Mon  D HH:MM:SS tag[pid]: [severity: ]text` — day
//!   space-padded (glibc's `%e`), no host, `pri` = facility | level.
//!
//! Text is cleaned like `printable()`: cut at the first NUL, non-printable
//! ASCII bytes become `?`, non-ASCII bytes become `?` unless UTF-8 is
//! enabled, and at most [`MAX_TEXT`] bytes are kept.

use std::io::Write;

/// Longest message text logged (`MSG_LOGGER_RECLEN`, `MSG_SYSLOG_RECLEN`).
pub const MAX_TEXT: usize = 2000;

/// Default syslog socket.
pub const DEV_LOG: &str = "/dev/log";

/// Postfix message severities.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// `msg_info`: no prefix.
    Info,
    /// `msg_warn`: `warning: `.
    Warning,
    /// `msg_error`: `error: `.
    Error,
    /// `msg_fatal`: `fatal: `, process exits 1.
    Fatal,
    /// `msg_panic`: `panic: `, process aborts.
    Panic,
}

impl Severity {
    /// Text prefix before the message (without the `: `), none for info.
    pub fn label(self) -> Option<&'static str> {
        match self {
            Severity::Info => None,
            Severity::Warning => Some("warning"),
            Severity::Error => Some("error"),
            Severity::Fatal => Some("fatal"),
            Severity::Panic => Some("panic"),
        }
    }

    /// syslog(3) level.
    pub fn syslog_level(self) -> u8 {
        match self {
            Severity::Info => 6,
            Severity::Warning => 4,
            Severity::Error => 3,
            Severity::Fatal | Severity::Panic => 2,
        }
    }
}

/// syslog facility code (already shifted, as `LOG_MAIL` = 16) for a
/// `syslog_facility` value; `None` for names Postfix does not know.
pub fn facility_code(name: &str) -> Option<u8> {
    Some(match name {
        "kern" => 0,
        "user" => 8,
        "mail" => 16,
        "daemon" => 24,
        "auth" => 32,
        "syslog" => 40,
        "lpr" => 48,
        "news" => 56,
        "uucp" => 64,
        "cron" => 72,
        "authpriv" => 80,
        "ftp" => 88,
        "local0" => 128,
        "local1" => 136,
        "local2" => 144,
        "local3" => 152,
        "local4" => 160,
        "local5" => 168,
        "local6" => 176,
        "local7" => 184,
        _ => return None,
    })
}

/// A broken-down local time, to the second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalTime {
    /// Month, 0 = January.
    pub month: u8,
    /// Day of the month, 1..=31.
    pub day: u8,
    /// Hour 0..=23.
    pub hour: u8,
    /// Minute 0..=59.
    pub minute: u8,
    /// Second 0..=60.
    pub second: u8,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl LocalTime {
    /// The current local time (honours `TZ` and /etc/localtime, read once
    /// by [`prepare_time_zone`] so it still works inside a chroot).
    pub fn now() -> LocalTime {
        LocalTime::at(LocalTime::epoch_seconds())
    }

    /// Seconds since the epoch, now (for converting the scheduler's times
    /// into times of day).
    pub fn epoch_seconds() -> libc::time_t {
        // SAFETY: time(NULL) only reads the clock.
        unsafe { libc::time(std::ptr::null_mut()) }
    }

    /// The local time of `t` seconds since the epoch.
    pub fn at(t: libc::time_t) -> LocalTime {
        // SAFETY: localtime_r with a zeroed out-parameter.
        unsafe {
            let mut tm: libc::tm = std::mem::zeroed();
            if libc::localtime_r(&t, &mut tm).is_null() {
                return LocalTime {
                    month: 0,
                    day: 1,
                    hour: 0,
                    minute: 0,
                    second: 0,
                };
            }
            LocalTime {
                month: tm.tm_mon.clamp(0, 11) as u8,
                day: tm.tm_mday.clamp(1, 31) as u8,
                hour: tm.tm_hour.clamp(0, 23) as u8,
                minute: tm.tm_min.clamp(0, 59) as u8,
                second: tm.tm_sec.clamp(0, 60) as u8,
            }
        }
    }

    fn month_name(self) -> &'static str {
        MONTHS[usize::from(self.month.min(11))]
    }
}

impl std::fmt::Display for LocalTime {
    /// As a syslog line starts: `Dec  5 19:45:53`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {:>2} {:02}:{:02}:{:02}",
            self.month_name(),
            self.day,
            self.hour,
            self.minute,
            self.second
        )
    }
}

/// Loads the time-zone rules now (Postfix calls `tzset()` before entering
/// a chroot jail, where /etc/localtime may be missing).
pub fn prepare_time_zone() {
    extern "C" {
        fn tzset();
    }
    // SAFETY: tzset only initialises libc's time-zone globals.
    unsafe { tzset() }
}

/// The text of a message as Postfix logs it: up to the first NUL,
/// non-printable bytes replaced by `?`, at most [`MAX_TEXT`] bytes.
pub fn printable(text: &str, utf8: bool) -> Vec<u8> {
    let text = text.split('\0').next().unwrap_or("");
    let mut out = Vec::with_capacity(text.len().min(MAX_TEXT));
    for c in text.chars() {
        if c.is_ascii() {
            out.push(if c.is_ascii_graphic() || c == ' ' {
                c as u8
            } else {
                b'?'
            });
        } else if utf8 {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        } else {
            out.extend(std::iter::repeat_n(b'?', c.len_utf8()));
        }
        if out.len() >= MAX_TEXT {
            break;
        }
    }
    out.truncate(MAX_TEXT);
    out
}

/// `tag[pid]: [severity: ]text` — the part both formats share.
fn append_body(out: &mut Vec<u8>, tag: &str, pid: u32, severity: Severity, text: &[u8]) {
    // Formatted in place: every logged line comes here.
    let _ = write!(out, "{tag}[{pid}]: ");
    if let Some(label) = severity.label() {
        out.extend_from_slice(label.as_bytes());
        out.extend_from_slice(b": ");
    }
    out.extend_from_slice(text);
}

/// One postlogd datagram: `Mon DD HH:MM:SS host tag[pid]: text`.
pub fn postlog_record(
    time: LocalTime,
    hostname: &str,
    tag: &str,
    pid: u32,
    severity: Severity,
    text: &[u8],
) -> Vec<u8> {
    let host = hostname.split('.').next().unwrap_or("");
    let mut out = record_buffer(host.len() + tag.len() + text.len());
    let _ = write!(
        out,
        "{} {:02} {:02}:{:02}:{:02} {host} ",
        time.month_name(),
        time.day,
        time.hour,
        time.minute,
        time.second
    );
    append_body(&mut out, tag, pid, severity, text);
    out
}

/// A buffer for one record whose variable parts take `variable` bytes: one
/// allocation per line, none while it is filled.
fn record_buffer(variable: usize) -> Vec<u8> {
    // Time stamp, priority, pid, severity label and separators.
    const FIXED: usize = 64;
    Vec::with_capacity(FIXED + variable)
}

/// One syslog datagram as glibc builds it: `<pri>Mon  D HH:MM:SS tag[pid]: text`.
pub fn syslog_record(
    facility: u8,
    time: LocalTime,
    tag: &str,
    pid: u32,
    severity: Severity,
    text: &[u8],
) -> Vec<u8> {
    let mut out = record_buffer(tag.len() + text.len());
    let _ = write!(
        out,
        "<{}>{time} ",
        u32::from(facility) | u32::from(severity.syslog_level()),
    );
    append_body(&mut out, tag, pid, severity, text);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: LocalTime = LocalTime {
        month: 10,
        day: 5,
        hour: 7,
        minute: 57,
        second: 6,
    };

    #[test]
    fn postlog_record_shape() {
        let rec = postlog_record(
            T,
            "test.example.com",
            "postfix/qmgr",
            10552,
            Severity::Info,
            b"B147AB402B: removed",
        );
        assert_eq!(
            String::from_utf8(rec).unwrap(),
            "Nov 05 07:57:06 test postfix/qmgr[10552]: B147AB402B: removed"
        );
        let rec = postlog_record(T, "h", "postfix/qmgr", 1, Severity::Warning, b"x");
        assert_eq!(rec, b"Nov 05 07:57:06 h postfix/qmgr[1]: warning: x");
    }

    #[test]
    fn syslog_record_shape() {
        let rec = syslog_record(16, T, "postfix/qmgr", 9, Severity::Warning, b"x");
        assert_eq!(rec, b"<20>Nov  5 07:57:06 postfix/qmgr[9]: warning: x");
        let rec = syslog_record(16, T, "postfix/qmgr", 9, Severity::Info, b"y");
        assert_eq!(rec, b"<22>Nov  5 07:57:06 postfix/qmgr[9]: y");
        let rec = syslog_record(184, T, "p/q", 9, Severity::Fatal, b"z");
        assert_eq!(rec, b"<186>Nov  5 07:57:06 p/q[9]: fatal: z");
        assert_eq!(
            syslog_record(16, T, "t", 1, Severity::Error, b"e")[..4],
            *b"<19>"
        );
        assert_eq!(
            syslog_record(16, T, "t", 1, Severity::Panic, b"e")[..4],
            *b"<18>"
        );
    }

    #[test]
    fn printable_matches_postfix_cleanup() {
        assert_eq!(printable("a\tb\nc\x7f", true), b"a?b?c?");
        assert_eq!(printable("stop\0here", true), b"stop");
        assert_eq!(printable("caf\u{e9}", true), "caf\u{e9}".as_bytes());
        assert_eq!(printable("caf\u{e9}", false), b"caf??");
        let long = "x".repeat(5000);
        assert_eq!(printable(&long, true).len(), MAX_TEXT);
        let wide = "\u{20ac}".repeat(1000);
        assert_eq!(printable(&wide, true).len(), MAX_TEXT);
    }
}
