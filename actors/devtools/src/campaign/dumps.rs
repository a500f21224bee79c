//! dumps - what the campaign's smtp-sinks received, read back from their
//! per-transaction dump files (`smtp-sink -d`).
//!
//! # What and why
//! smtp-sink writes one file per completed transaction (it removes the
//! file of a transaction cut short), holding its own `X-Rcpt-Args:` line
//! per recipient, then the message as received. A copy of an injected
//! message names its tag (`<TAG@campaign.test>`) and ends with `end-of
//! TAG`; a non-delivery notice names the tag of the message it returns and
//! carries one `Final-Recipient:` / `Action:` pair per recipient. From
//! these the ledger counts, per tag and recipient, how often it was
//! delivered and whether its sender got a notice.
//!
//! # Invariants
//! - a file without its `end-of` line is not a delivery (a partial write
//!   seen while the sink was still writing it);
//! - files are read in name order, so two reads of one folder agree.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use super::inject::{find, tags_in};

/// Deliveries per (tag, recipient), and notices per (tag, recipient).
#[derive(Debug, Clone, Default)]
pub struct SinkRecord {
    /// Complete copies of injected messages, per (tag, recipient).
    pub delivered: BTreeMap<(String, String), u32>,
    /// Recipients named `Action: failed` in a notice, per (tag, recipient).
    pub noticed: BTreeMap<(String, String), u32>,
    /// Transactions not traced to any tag (other mail, partial copies).
    pub other: u64,
}

impl SinkRecord {
    /// Total complete copies received (all tags and recipients).
    pub fn deliveries(&self) -> u64 {
        self.delivered.values().map(|&n| u64::from(n)).sum()
    }
}

/// Reads every dump file in `dir` (a missing folder is empty) into `rec`.
pub fn read_dumps(dir: &Path, rec: &mut SinkRecord) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        if let Ok(bytes) = fs::read(&path) {
            read_transaction(&bytes, rec);
        }
    }
}

/// Counts the dump files in `dir` (a cheap progress measure).
pub fn count_dumps(dir: &Path) -> usize {
    fs::read_dir(dir).map_or(0, |e| e.count())
}

/// The address of an `X-Rcpt-Args:` value (`<addr> ORCPT=...`).
fn rcpt_of(args: &str) -> String {
    let first = args.split_whitespace().next().unwrap_or("");
    first
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_ascii_lowercase()
}

/// Adds one transaction to `rec`.
pub fn read_transaction(bytes: &[u8], rec: &mut SinkRecord) {
    let text = String::from_utf8_lossy(bytes);
    let rcpts: Vec<String> = text
        .lines()
        .take_while(|l| !l.starts_with("Received:"))
        .filter_map(|l| l.strip_prefix("X-Rcpt-Args: "))
        .map(rcpt_of)
        .collect();
    let finals = notice_failures(&text);
    let tags = tags_in(bytes);
    let Some(tag) = tags.first() else {
        rec.other += 1;
        return;
    };
    if !finals.is_empty() || text.contains("MAILER-DAEMON") {
        // A notice: it returns the message `tag`.
        for r in finals {
            *rec.noticed.entry((tag.clone(), r)).or_default() += 1;
        }
        return;
    }
    if find(bytes, format!("end-of {tag}").as_bytes()).is_none() {
        rec.other += 1;
        return;
    }
    for r in rcpts {
        *rec.delivered.entry((tag.clone(), r)).or_default() += 1;
    }
}

/// Recipients a notice reports as failed (`Final-Recipient:` followed by
/// `Action: failed` in its delivery-status part).
fn notice_failures(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("Final-Recipient:") {
            let addr = v.rsplit(';').next().unwrap_or("").trim();
            current = Some(addr.to_ascii_lowercase());
        } else if let Some(v) = line.strip_prefix("Action:") {
            if let Some(addr) = current.take() {
                if v.trim().eq_ignore_ascii_case("failed") {
                    out.push(addr);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_a_copy_and_a_notice() {
        let mut rec = SinkRecord::default();
        read_transaction(
            b"X-Mail-Args: <s@origin.test>\nX-Rcpt-Args: <U1@ok.test> ORCPT=rfc822;u1@ok.test\n\
              X-Rcpt-Args: <u2@ok.test>\nReceived: from x\nMessage-ID: <c-000001@campaign.test>\n\n\
              body\nend-of c-000001\n\n",
            &mut rec,
        );
        read_transaction(
            b"X-Rcpt-Args: <u1@ok.test>\nReceived: x\nMessage-ID: <c-000002@campaign.test>\n\ncut",
            &mut rec,
        );
        read_transaction(
            b"X-Mail-Args: <>\nX-Rcpt-Args: <sender@origin.test>\nReceived: x\n\
              From: MAILER-DAEMON@sandbox.test (Mail Delivery System)\n\
              Message-Id: <2026@sandbox.test>\n\nFinal-Recipient: rfc822; u3@fault.test\n\
              Action: failed\n\nFinal-Recipient: rfc822; u4@fault.test\nAction: delayed\n\n\
              Message-ID: <c-000001@campaign.test>\n",
            &mut rec,
        );
        let key = |t: &str, r: &str| (t.to_string(), r.to_string());
        assert_eq!(rec.delivered.get(&key("c-000001", "u1@ok.test")), Some(&1));
        assert_eq!(rec.delivered.get(&key("c-000001", "u2@ok.test")), Some(&1));
        assert_eq!(rec.delivered.len(), 2, "the cut copy is not a delivery");
        assert_eq!(rec.noticed.len(), 1);
        assert_eq!(rec.noticed.get(&key("c-000001", "u3@fault.test")), Some(&1));
        assert_eq!(rec.other, 1);
        assert_eq!(rec.deliveries(), 2);
    }
}
