//! Helpers for comparing our record decoding with `postcat -o -d -v`.
//!
//! `postcat -o -d -v FILE` prints every record in reading order (pointers
//! followed, padding and pointer records shown) as
//! `%9lu %3d <name>: <value>` (offset, decimal type). Segment markers print
//! `*** MESSAGE CONTENTS FILE ***` and so on; time records print as
//! `asctime(localtime())`, so postcat runs with `TZ=UTC` and we format our
//! numbers the same way.

#![allow(dead_code)]

use oqmgr_actors::postfix::queue_file_parse::{atol, split_nameval};
use oqmgr_actors::postfix::record::{c_str, rec, record_type_name, Record};
use std::path::Path;
use std::process::Command;

/// `asctime(gmtime(t))` without the newline: `Sat Nov  8 19:44:06 2026`.
pub fn asctime_utc(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Civil-from-days (proleptic Gregorian), after H. Hinnant.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let wday = (days + 4).rem_euclid(7); // 1970-01-01 was a Thursday.
    const WD: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MO: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{} {}{:3} {:02}:{:02}:{:02} {}",
        WD[wday as usize],
        MO[(month - 1) as usize],
        day,
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        year
    )
}

/// The lines `postcat -o -d -v` prints for `records` (from
/// `decode_logical`), with `path` as the file name in markers.
pub fn expected_postcat(records: &[Record], path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_content = false;
    for r in records {
        let head = format!("{:9} {:3} ", r.offset, r.rtype);
        let text = String::from_utf8_lossy(c_str(&r.payload)).into_owned();
        let name = record_type_name(r.rtype).unwrap_or("unknown");
        let line = match r.rtype {
            rec::MESG => {
                in_content = true;
                format!("*** MESSAGE CONTENTS {path} ***")
            }
            rec::XTRA => {
                in_content = false;
                format!("*** HEADER EXTRACTED {path} ***")
            }
            rec::END => format!("*** MESSAGE FILE END {path} ***"),
            rec::TIME | rec::WARN => format!("{name}: {}", asctime_utc(atol(c_str(&r.payload)))),
            rec::CONT if in_content => format!("unterminated_text: {text}"),
            rec::ATTR => match split_nameval(c_str(&r.payload)) {
                Ok((n, v)) if n == b"create_time" => {
                    format!("create_time: {}", asctime_utc(atol(v)))
                }
                Ok((n, v)) => format!(
                    "named_attribute: {}={}",
                    String::from_utf8_lossy(n),
                    String::from_utf8_lossy(v)
                ),
                Err(_) => continue,
            },
            _ => format!("{name}: {text}"),
        };
        out.push(head + &line);
    }
    out
}

/// Runs `postcat -c CONFIG -o -d -v PATH` with TZ=UTC; returns its stdout
/// lines (lossy UTF-8, as `expected_postcat` renders payloads).
pub fn run_postcat(config_dir: &Path, path: &Path) -> Vec<String> {
    let out = Command::new("postcat")
        .env("TZ", "UTC")
        .arg("-c")
        .arg(config_dir)
        .args(["-o", "-d", "-v"])
        .arg(path)
        .output()
        .expect("postcat runs");
    assert!(out.status.success(), "postcat failed: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("*** ENVELOPE RECORDS"))
        .map(str::to_string)
        .collect()
}
