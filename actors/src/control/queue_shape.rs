//! `oqmgr ctl shape`: qshape's age-bucket table (Postfix: `qshape`, with
//! its buckets and layout, so scripts that read qshape's output keep
//! working), and the queue-file reading behind it and behind `ctl why`.
//!
//! A [`Shape`] counts recipients by row (recipient domain, or destination)
//! and by the age of their message: the first column is the total, the
//! next ones hold ages below 5, 10, 20, 40 ... 1280 minutes, the last the
//! older ones (ten buckets of five minutes, doubling, as qshape's
//! defaults). Rows are sorted by total, most first, then by the length of
//! the name (then by name, where qshape leaves ties to its hash order); the
//! `TOTAL` row comes first. Domains are lower-cased, with `MAILER-DAEMON`
//! for the null address, as qshape prints them.
//!
//! The disk queues are read as qshape reads them: every file of the queue
//! directory (hash subdirectories included) whose name is a queue ID and
//! whose mode says it is complete (0700 of 0733), links never followed;
//! the arrival time from the `T` record after `C`, the recipients from the
//! `R` records (done ones are `D` and not counted), pointers followed, the
//! message content skipped by the length the `C` record gives.
//! The active queue comes from the scheduler's memory instead
//! ([`Shape::from_live`]).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use oqmgr::control::nexthop_domain;
use oqmgr::live_state::LiveState;

use crate::postfix::record::{PointerFollower, RecordReader};

/// Minutes per bucket step (qshape's `-t`).
const TICK_MINUTES: u64 = 5;
/// Buckets (qshape's `-b`).
const BUCKETS: usize = 10;
/// Screen width qshape lays the table out for.
const WIDTH: usize = 80;
/// The narrowest name column.
const MIN_NAME_WIDTH: usize = 18;

/// What one queue file holds, as far as shape and why need it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueuedFile {
    /// Queue ID.
    pub id: String,
    /// Arrival time (seconds since the epoch, from the `T` record).
    pub arrival: i64,
    /// The file's modification time: the next attempt of a deferred file.
    pub mtime: i64,
    /// The envelope sender.
    pub sender: String,
    /// Recipients not yet done.
    pub recipients: Vec<String>,
}

/// The recipients' counts by row and age.
#[derive(Clone, Debug, Default)]
pub struct Shape {
    /// Per row: the total, then one count per bucket.
    rows: BTreeMap<String, [u64; BUCKETS + 1]>,
}

/// The bucket (1-based) of a message `age` seconds old (qshape's rule).
fn bucket(age: i64) -> usize {
    let minutes = age.max(0) as f64 / 60.0 / TICK_MINUTES as f64;
    if minutes < 1.0 {
        return 1;
    }
    (2 + minutes.log2().floor() as usize).min(BUCKETS)
}

/// The domain of an address as qshape prints it.
pub fn address_domain(address: &str) -> String {
    if address.is_empty() {
        return "MAILER-DAEMON".into();
    }
    let lower = address.to_lowercase();
    let domain = lower.rsplit_once('@').map_or(lower.as_str(), |(_, d)| d);
    let mut d = domain.to_string();
    while d.contains("..") {
        d = d.replace("..", ".");
    }
    let trimmed = d.strip_prefix('.').unwrap_or(&d);
    let trimmed = if trimmed.len() > 1 {
        trimmed.strip_suffix('.').unwrap_or(trimmed)
    } else {
        trimmed
    };
    trimmed.to_string()
}

impl Shape {
    /// Counts `n` recipients of row `name`, of a message `age` seconds old.
    pub fn add(&mut self, name: &str, age: i64, n: u64) {
        let b = bucket(age);
        for key in ["TOTAL", name] {
            let row = match self.rows.get_mut(key) {
                Some(row) => row,
                None => self.rows.entry(key.to_string()).or_default(),
            };
            row[0] += n;
            row[b] += n;
        }
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &Shape) {
        for (name, counts) in &other.rows {
            let row = self.rows.entry(name.clone()).or_default();
            for (a, b) in row.iter_mut().zip(counts) {
                *a += b;
            }
        }
    }

    /// Counts one file's recipients by domain, or by `by_dest(address)`.
    pub fn add_file(&mut self, f: &QueuedFile, now: i64) {
        for r in &f.recipients {
            self.add(&address_domain(r), now - f.arrival, 1);
        }
    }

    /// The active queue from the scheduler's memory (a `detail` state):
    /// each entry's recipients count for its destination's next-hop domain
    /// (`by_destination`: for the destination), aged by its message.
    pub fn from_live(state: &LiveState, by_destination: bool) -> Shape {
        let created: BTreeMap<u64, u64> = state
            .supervisor
            .active
            .iter()
            .map(|m| (m.message, m.created_ms))
            .collect();
        let mut shape = Shape::default();
        let now = state.now_ms as i64 / 1000;
        for d in &state.destinations {
            let name = if by_destination {
                d.name()
            } else {
                address_domain(nexthop_domain(&d.queue))
            };
            for (message, n) in &d.entries {
                let created = created.get(message).map_or(now, |ms| *ms as i64 / 1000);
                shape.add(&name, now - created, u64::from(*n));
            }
        }
        shape
    }

    /// The table, laid out as qshape lays it out.
    pub fn render(&self) -> String {
        let total = self.rows.get("TOTAL").copied().unwrap_or_default();
        let mut heads = Vec::with_capacity(BUCKETS + 1);
        let mut widths = Vec::with_capacity(BUCKETS + 1);
        let mut name_width = WIDTH as i64;
        let mut t = 0u64;
        for (i, count) in total.iter().enumerate() {
            let head = match i {
                0 => "T".to_string(),
                i if i == BUCKETS => format!("{t}+"),
                _ => t.to_string(),
            };
            let mut l = count.to_string().len().max(head.len());
            l = if l > 2 { l + 1 } else { 3 };
            name_width -= l as i64;
            widths.push(l);
            heads.push(head);
            if i + 1 < BUCKETS {
                t += if t == 0 { TICK_MINUTES } else { t };
            }
        }
        let name_width = (name_width.max(MIN_NAME_WIDTH as i64)) as usize;
        let mut out = String::new();
        let mut line = |name: &str, cells: &[String]| {
            let len = name.chars().count();
            if len > name_width {
                let skip = |n: usize| name.chars().skip(len - n).collect::<String>();
                if name.starts_with('.') {
                    out.push_str(".+");
                    out.push_str(&skip(name_width - 2));
                } else {
                    out.push('+');
                    out.push_str(&skip(name_width - 1));
                }
            } else {
                let _ = write!(out, "{name:>name_width$}");
            }
            for (cell, w) in cells.iter().zip(&widths) {
                let _ = write!(out, "{cell:>w$}");
            }
            out.push('\n');
        };
        line("", &heads);
        let mut rows: Vec<(&String, &[u64; BUCKETS + 1])> = self.rows.iter().collect();
        rows.sort_by(|a, b| {
            b.1[0]
                .cmp(&a.1[0])
                .then(a.0.len().cmp(&b.0.len()))
                .then(a.0.cmp(b.0))
        });
        let (empty_name, empty) = (String::new(), [0; BUCKETS + 1]);
        if rows.is_empty() {
            rows.push((&empty_name, &empty));
        }
        for (name, counts) in rows {
            let name = if name.is_empty() { "TOTAL" } else { name };
            let cells: Vec<String> = counts.iter().map(u64::to_string).collect();
            line(name, &cells);
        }
        out
    }
}

/// Every queue ID in `queue` (below `queue_dir`), hash subdirectories
/// included, with its path; links and odd names are skipped.
pub fn queue_files(queue_dir: &Path, queue: &str) -> Vec<(String, PathBuf)> {
    let mut found = Vec::new();
    let mut stack = vec![queue_dir.join(queue)];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                continue;
            };
            if kind.is_dir() && name.len() == 1 {
                stack.push(entry.path());
            } else if kind.is_file()
                && name.len() >= 6
                && name.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                found.push((name.to_string(), entry.path()));
            }
        }
    }
    found.sort();
    found
}

/// Reads what shape and why need of one queue file; `Ok(None)` for a file
/// that is not complete (mode) or not a queue file qshape would read.
pub fn read_queue_file(id: &str, path: &Path) -> io::Result<Option<QueuedFile>> {
    let meta = fs::symlink_metadata(path)?;
    if !meta.file_type().is_file() || meta.permissions().mode() & 0o733 != 0o700 {
        return Ok(None);
    }
    let file = fs::File::open(path)?;
    let mut reader = RecordReader::new(file);
    let mut payload = Vec::new();
    let mut follower = PointerFollower::default();
    let mut out = QueuedFile {
        id: id.to_string(),
        mtime: std::os::unix::fs::MetadataExt::mtime(&meta),
        ..QueuedFile::default()
    };
    let bad = |_| io::Error::new(io::ErrorKind::InvalidData, "bad record");
    let Some((b'C', _)) = reader.read_into(&mut payload).map_err(bad)? else {
        return Ok(None);
    };
    let content_len: u64 = std::str::from_utf8(&payload)
        .ok()
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let Some((b'T', _)) = reader.read_into(&mut payload).map_err(bad)? else {
        return Ok(None);
    };
    out.arrival = std::str::from_utf8(&payload)
        .ok()
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(out.mtime);
    let mut have_sender = false;
    while let Some((rtype, _)) = reader.read_into(&mut payload).map_err(bad)? {
        match rtype {
            b'p' => {
                if let Some(to) = follower.follow(&payload).map_err(bad)? {
                    reader.seek_to(to)?;
                }
            }
            b'R' => out
                .recipients
                .push(String::from_utf8_lossy(&payload).into_owned()),
            b'S' => {
                out.sender = String::from_utf8_lossy(&payload).into_owned();
                have_sender = true;
            }
            b'M' => {
                if !have_sender {
                    break;
                }
                let to = reader.position() + content_len;
                reader.seek_to(to)?;
                if !matches!(
                    reader.read_into(&mut payload).map_err(bad)?,
                    Some((b'X', _))
                ) {
                    return Ok(None);
                }
            }
            b'E' => return Ok(Some(out)),
            _ => {}
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_qshapes() {
        assert_eq!(bucket(0), 1);
        assert_eq!(bucket(299), 1);
        assert_eq!(bucket(300), 2);
        assert_eq!(bucket(599), 2);
        assert_eq!(bucket(600), 3);
        assert_eq!(bucket(1200), 4);
        assert_eq!(bucket(100 * 86400), 10);
    }

    #[test]
    fn domains_as_qshape_prints_them() {
        assert_eq!(address_domain(""), "MAILER-DAEMON");
        assert_eq!(address_domain("U@Example.COM."), "example.com");
        assert_eq!(address_domain("u@a..b"), "a.b");
        assert_eq!(address_domain("local"), "local");
    }

    #[test]
    fn the_table_is_laid_out_as_qshapes() {
        let mut s = Shape::default();
        s.add("b.example", 0, 2);
        s.add("a.example", 400, 1);
        let want = [
            "                                         T  5 10 20 40 80 160 320 640 1280 1280+",
            "                                  TOTAL  3  2  1  0  0  0   0   0   0    0     0",
            "                              b.example  2  2  0  0  0  0   0   0   0    0     0",
            "                              a.example  1  0  1  0  0  0   0   0   0    0     0",
        ];
        assert_eq!(s.render().lines().collect::<Vec<_>>(), want);
    }
}
