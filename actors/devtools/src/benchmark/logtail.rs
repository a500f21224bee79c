//! Follows a sandbox's maillog and tallies delivery results as they appear.
//!
//! Delivery agents log one line per recipient, e.g.
//! `... postfix/smtp[9]: 4Fx..: to=<r@d1.example>, relay=..., delay=0.12,
//! delays=..., dsn=2.0.0, status=sent (...)`. The tail reads only bytes
//! appended since the last call (the log grows to megabytes; re-reading it
//! at every poll would cost more than the queue manager being measured),
//! keeps an unfinished last line for the next call, and counts results per
//! (status, recipient domain). It also keeps every `delay=` of a `sent`
//! line, in log order, for latency percentiles.
//!
//! # Invariants
//! - A line is tallied once, when complete (ends in `\n`).
//! - Lines that do not parse are ignored, never fatal: the log also holds
//!   every other daemon's chatter.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;

/// The outcome a delivery line reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogStatus {
    /// `status=sent`: delivered (or discarded).
    Sent,
    /// `status=deferred`: will be retried.
    Deferred,
    /// `status=bounced`: failed for good.
    Bounced,
}

/// One parsed delivery line.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedDelivery {
    /// Domain of the recipient (`to=<user@domain>`), lower case as logged.
    pub domain: String,
    /// The reported status.
    pub status: LogStatus,
    /// `delay=`: seconds from queue entry to this result.
    pub delay: f64,
}

/// Parses a delivery line; `None` for any other log line.
pub fn parse_delivery(line: &str) -> Option<LoggedDelivery> {
    let to_at = line.find(": to=<")? + ": to=<".len();
    let rest = &line[to_at..];
    let address = &rest[..rest.find('>')?];
    let domain = address.rsplit_once('@').map_or("", |(_, d)| d).to_string();
    let delay_at = rest.find(" delay=")? + " delay=".len();
    let delay_text = &rest[delay_at..];
    let delay: f64 = delay_text[..delay_text.find(',')?].parse().ok()?;
    let status_at = rest.find(" status=")? + " status=".len();
    let status = match rest[status_at..].split([' ', ',']).next()? {
        "sent" => LogStatus::Sent,
        "deferred" => LogStatus::Deferred,
        "bounced" => LogStatus::Bounced,
        _ => return None,
    };
    Some(LoggedDelivery {
        domain,
        status,
        delay,
    })
}

/// Incremental reader of one maillog.
#[derive(Debug)]
pub struct LogTail {
    /// The maillog file.
    path: PathBuf,
    /// Bytes consumed so far.
    offset: u64,
    /// An incomplete last line, kept until its newline arrives.
    partial: Vec<u8>,
    /// Result counts per (status, domain).
    counts: HashMap<(LogStatus, String), u64>,
    /// Result counts per status, all domains.
    totals: HashMap<LogStatus, u64>,
    /// (domain, delay) of every `sent` line, in log order.
    sent_delays: Vec<(String, f64)>,
    /// The first line that says master throttled a service (a queue
    /// manager that cannot start), if any.
    pub throttled: Option<String>,
}

impl LogTail {
    /// A tail positioned at the start of `path` (which may not exist yet).
    pub fn new(path: PathBuf) -> LogTail {
        LogTail {
            path,
            offset: 0,
            partial: Vec::new(),
            counts: HashMap::new(),
            totals: HashMap::new(),
            sent_delays: Vec::new(),
            throttled: None,
        }
    }

    /// Reads what was appended since the last call and tallies complete
    /// lines. A missing file is not an error (postlogd has not written yet).
    pub fn update(&mut self) -> io::Result<()> {
        self.update_with(|_| {})
    }

    /// Like [`LogTail::update`], and hands each complete line to `seen`
    /// after tallying it.
    pub fn update_with(&mut self, mut seen: impl FnMut(&str)) -> io::Result<()> {
        let mut file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        file.seek(SeekFrom::Start(self.offset))?;
        let mut fresh = Vec::new();
        let read = file.read_to_end(&mut fresh)?;
        self.offset += read as u64;
        self.partial.extend_from_slice(&fresh);
        let Some(last_newline) = self.partial.iter().rposition(|b| *b == b'\n') else {
            return Ok(());
        };
        let rest = self.partial.split_off(last_newline + 1);
        let complete = std::mem::replace(&mut self.partial, rest);
        for line in String::from_utf8_lossy(&complete).lines() {
            self.tally(line);
            seen(line);
        }
        Ok(())
    }

    /// Counts one complete line.
    fn tally(&mut self, line: &str) {
        if self.throttled.is_none() && line.contains("bad command startup -- throttling") {
            self.throttled = Some(line.to_string());
        }
        let Some(d) = parse_delivery(line) else {
            return;
        };
        *self.totals.entry(d.status).or_default() += 1;
        if d.status == LogStatus::Sent {
            self.sent_delays.push((d.domain.clone(), d.delay));
        }
        *self.counts.entry((d.status, d.domain)).or_default() += 1;
    }

    /// Results with `status` for recipients in `domain`.
    pub fn count(&self, status: LogStatus, domain: &str) -> u64 {
        self.counts
            .get(&(status, domain.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// Results with `status`, all domains.
    pub fn total(&self, status: LogStatus) -> u64 {
        self.totals.get(&status).copied().unwrap_or(0)
    }

    /// How many `sent` lines have been seen (a mark for
    /// [`LogTail::sent_delays_since`]).
    pub fn sent_mark(&self) -> usize {
        self.sent_delays.len()
    }

    /// `delay=` of `sent` lines for `domain` seen after `mark`.
    pub fn sent_delays_since(&self, mark: usize, domain: &str) -> Vec<f64> {
        self.sent_delays
            .get(mark..)
            .unwrap_or(&[])
            .iter()
            .filter(|(d, _)| d == domain)
            .map(|(_, delay)| *delay)
            .collect()
    }

    /// A one-line summary of all counts, for failure messages.
    pub fn summary(&self) -> String {
        format!(
            "sent={} deferred={} bounced={}",
            self.total(LogStatus::Sent),
            self.total(LogStatus::Deferred),
            self.total(LogStatus::Bounced)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_lines_parse() {
        let line = "Nov 28 21:30:01 sandbox.test postfix/smtp[123]: 4B2F: to=<r@d1.example>, \
                    orig_to=<fan@fan.example>, relay=127.0.0.1[127.0.0.1]:2525, delay=0.12, \
                    delays=0.01/0/0.05/0.06, dsn=2.0.0, status=sent (250 2.0.0 Ok)";
        assert_eq!(
            parse_delivery(line),
            Some(LoggedDelivery {
                domain: "d1.example".into(),
                status: LogStatus::Sent,
                delay: 0.12
            })
        );
        let deferred = "x postfix/smtp[9]: AB: to=<r@dead.example>, relay=none, delay=31, \
                        delays=1/0/30/0, dsn=4.4.1, status=deferred (connect refused)";
        assert_eq!(
            parse_delivery(deferred).map(|d| (d.status, d.delay)),
            Some((LogStatus::Deferred, 31.0))
        );
        assert_eq!(
            parse_delivery("x postfix/qmgr[1]: AB: from=<a@b>, size=3"),
            None
        );
        assert_eq!(parse_delivery("x: to=<a@b>, delay=zz, status=sent"), None);
        assert_eq!(parse_delivery(": to=<unterminated"), None);
    }

    #[test]
    fn tail_counts_complete_lines_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("maillog");
        let mut tail = LogTail::new(path.clone());
        tail.update().expect("missing file is fine");
        let sent = "a: to=<x@d.example>, delay=1.5, status=sent (ok)\n";
        std::fs::write(&path, format!("{sent}{}", &sent[..20])).expect("write");
        tail.update().expect("update");
        assert_eq!(tail.count(LogStatus::Sent, "d.example"), 1);
        // Finish the partial line and add a throttling notice.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open");
        std::io::Write::write_all(
            &mut f,
            format!("{}master: bad command startup -- throttling\n", &sent[20..]).as_bytes(),
        )
        .expect("append");
        tail.update().expect("update");
        tail.update().expect("update again");
        assert_eq!(tail.count(LogStatus::Sent, "d.example"), 2);
        assert_eq!(tail.total(LogStatus::Sent), 2);
        assert_eq!(tail.sent_delays_since(1, "d.example"), vec![1.5]);
        assert!(tail.throttled.is_some());
    }
}
