//! outcome - what one end-to-end run produced, normalised so that two runs
//! (Postfix's oqmgr and ours) compare with `assert_eq!`.
//!
//! The maillog is the ground truth: every Postfix program logs per-recipient
//! results in the `log_adhoc` format (`<id>: to=<R>, relay=..., dsn=...,
//! status=WORD (TEXT)`), cleanup logs `<id>: message-id=<TAG@...>` for each
//! new queue file, and the bounce daemon logs which notice answers which
//! message (`<id>: sender non-delivery notification: <newid>`). From these
//! lines we name every queue file after the message it carries (the TAG we
//! put in its Message-ID, or `bounce-of:TAG` etc. for notices), so queue IDs,
//! time stamps, delays and pids never reach the [`ScenarioOutcome`].
//!
//! Normalisation: the sandbox folder becomes `$DIR`, each loopback port
//! becomes the symbolic name the scenario gave it (`:d1`), and any queue ID
//! (ours, or the one smtp-sink invents in `queued as ...`) becomes `QID`.

use std::collections::{BTreeMap, BTreeSet};

/// One recipient of one message at the end of a run.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RecipientRow {
    /// The message: the TAG of its Message-ID, `bounce-of:TAG` (sender
    /// non-delivery notice), `delay-of:TAG` (delay warning), `dsn-of:TAG`
    /// (delivery status report), `untagged` (no known Message-ID).
    pub message: String,
    /// The recipient address as logged in `to=<...>`.
    pub recipient: String,
    /// Final result: the last `status=` word (`sent`, `bounced`,
    /// `deferred`, `deliverable`, ...), replaced by `expired` when the queue
    /// manager returned the message to its sender, or `deleted` when
    /// postsuper removed it.
    pub result: String,
    /// Where the message's file is at the end: a queue name (`deferred`,
    /// `hold`, ...), `removed` (gone, and a `removed` line was logged) or
    /// `missing` (gone without such a line: a transient state).
    pub queue: String,
    /// The `status=` words logged for this recipient in order, runs of the
    /// same word collapsed (`deferred, sent`).
    pub history: Vec<String>,
    /// The `relay=` of the last per-recipient line, normalised.
    pub relay: String,
    /// `dsn=X.Y.Z status=WORD (TEXT)` of the last per-recipient line,
    /// normalised.
    pub status: String,
}

/// A normalised run: sorted rows plus sorted scenario-specific facts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScenarioOutcome {
    /// One row per (message, recipient), sorted.
    pub rows: Vec<RecipientRow>,
    /// Observations a scenario adds (sink counters, files found, log
    /// events), sorted; each a short `name: value` line.
    pub facts: Vec<String>,
    /// What the sinks received: one line per distinct SMTP/LMTP
    /// transaction (`SINK TAG: MAIL <sender> RCPT <rcpt> ...`), sorted,
    /// ending in ` (N times)` when the same one came N > 1 times.
    pub received: Vec<String>,
}

impl ScenarioOutcome {
    /// Adds one fact (kept sorted).
    pub fn fact(&mut self, text: impl Into<String>) {
        self.facts.push(text.into());
        self.facts.sort();
    }

    /// Sets [`ScenarioOutcome::received`] from one line per transaction: sorted,
    /// repeats counted.
    pub fn set_received(&mut self, mut lines: Vec<String>) {
        lines.sort();
        self.received.clear();
        for chunk in lines.chunk_by(|a, b| a == b) {
            self.received.push(match chunk.len() {
                1 => chunk[0].clone(),
                n => format!("{} ({n} times)", chunk[0]),
            });
        }
    }

    /// The rows of message `message`.
    pub fn rows_of<'a>(&'a self, message: &'a str) -> impl Iterator<Item = &'a RecipientRow> + 'a {
        self.rows.iter().filter(move |r| r.message == message)
    }

    /// A compact multi-line rendering for reports and failure messages.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for r in &self.rows {
            out.push_str(&format!(
                "{} -> {}: {} [{}] history={} relay={} {}\n",
                r.message,
                r.recipient,
                r.result,
                r.queue,
                r.history.join(","),
                r.relay,
                r.status
            ));
        }
        for f in &self.facts {
            out.push_str(&format!("fact {f}\n"));
        }
        for r in &self.received {
            out.push_str(&format!("received {r}\n"));
        }
        out
    }
}

/// One per-recipient log line, before normalisation.
#[derive(Debug, Clone)]
pub struct RecipientLine {
    /// Queue ID the line is about.
    pub qid: String,
    /// `to=<...>`.
    pub recipient: String,
    /// `relay=...`.
    pub relay: String,
    /// `dsn=...`.
    pub dsn: String,
    /// The status word.
    pub word: String,
    /// The text in parentheses after the status word.
    pub text: String,
}

/// The facts extracted from one maillog.
#[derive(Debug, Default)]
pub struct Log {
    /// Every line's message part (after `program[pid]: `), with program.
    pub lines: Vec<(String, String)>,
    /// Queue ID → message label.
    pub label: BTreeMap<String, String>,
    /// Queue IDs in order of first appearance.
    pub qids: Vec<String>,
    /// Per-recipient lines in log order.
    pub deliveries: Vec<RecipientLine>,
    /// Queue IDs the queue manager returned to the sender as expired.
    pub expired: BTreeSet<String>,
    /// Queue IDs logged `removed` by the queue manager.
    pub removed: BTreeSet<String>,
    /// Queue IDs logged `removed` by postsuper.
    pub deleted: BTreeSet<String>,
}

/// Splits `Mon DD HH:MM:SS host program[pid]: message` into (program,
/// message). Lines of another shape are skipped.
fn split_line(line: &str) -> Option<(&str, &str)> {
    let (head, msg) = line.split_once("]: ")?;
    let prog_start = head.rfind(' ')? + 1;
    let prog = head[prog_start..].split('[').next()?;
    Some((prog, msg))
}

/// A queue ID as Postfix 3.7 writes short ones: hex digits, upper case, at
/// least 6 characters (we never enable long queue IDs).
fn is_qid(s: &str) -> bool {
    s.len() >= 6
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
}

/// The value of `name=<...>` or `name=...,` in a log message.
fn field<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    let start = msg.find(&format!("{name}="))? + name.len() + 1;
    let rest = &msg[start..];
    if let Some(inner) = rest.strip_prefix('<') {
        return inner.find('>').map(|e| &inner[..e]);
    }
    Some(rest.split([',', ' ']).next().unwrap_or(""))
}

impl Log {
    /// Parses a whole maillog.
    pub fn parse(text: &str) -> Log {
        let mut log = Log::default();
        let mut notices = Vec::new();
        for line in text.lines() {
            let Some((prog, msg)) = split_line(line) else {
                continue;
            };
            log.lines.push((prog.to_string(), msg.to_string()));
            let Some((qid, rest)) = msg.split_once(": ") else {
                continue;
            };
            if !is_qid(qid) {
                continue;
            }
            if !log.qids.iter().any(|q| q == qid) {
                log.qids.push(qid.to_string());
            }
            if let Some(mid) = rest.strip_prefix("message-id=") {
                let mid = mid.trim_start_matches('<').trim_end_matches('>');
                if let Some(tag) = mid.strip_suffix("@e2e.test") {
                    log.label.entry(qid.to_string()).or_insert(tag.to_string());
                }
            } else if rest.starts_with("to=<") {
                let (word, text) = status_of(rest);
                log.deliveries.push(RecipientLine {
                    qid: qid.to_string(),
                    recipient: field(rest, "to").unwrap_or("").to_string(),
                    relay: field(rest, "relay").unwrap_or("").to_string(),
                    dsn: field(rest, "dsn").unwrap_or("").to_string(),
                    word,
                    text,
                });
            } else if rest.contains("status=expired, returned to sender")
                || rest.contains("status=force-expired, returned to sender")
            {
                log.expired.insert(qid.to_string());
            } else if rest == "removed" {
                if prog.ends_with("postsuper") {
                    log.deleted.insert(qid.to_string());
                } else {
                    log.removed.insert(qid.to_string());
                }
            } else {
                for (what, kind) in [
                    ("sender non-delivery notification: ", "bounce-of"),
                    ("sender delay notification: ", "delay-of"),
                    ("sender delivery status notification: ", "dsn-of"),
                    (
                        "postmaster non-delivery notification: ",
                        "postmaster-bounce-of",
                    ),
                ] {
                    if let Some(new) = rest.strip_prefix(what) {
                        notices.push((qid.to_string(), kind, new.trim().to_string()));
                    }
                }
            }
        }
        // Notices are labelled after the message they answer; their own
        // Message-ID (made up by the bounce daemon) must not win.
        for (orig, kind, new) in notices {
            let base = log.label.get(&orig).cloned().unwrap_or("untagged".into());
            log.label.insert(new, format!("{kind}:{base}"));
        }
        log
    }

    /// The label of queue ID `qid` (`untagged` when unknown).
    pub fn label_of(&self, qid: &str) -> String {
        self.label.get(qid).cloned().unwrap_or("untagged".into())
    }

    /// Number of `status=sent` lines per (label, recipient).
    pub fn sent_counts(&self) -> BTreeMap<(String, String), usize> {
        let mut counts = BTreeMap::new();
        for d in self.deliveries.iter().filter(|d| d.word == "sent") {
            *counts
                .entry((self.label_of(&d.qid), d.recipient.clone()))
                .or_default() += 1;
        }
        counts
    }

    /// Message parts of lines containing `needle`.
    pub fn grep(&self, needle: &str) -> Vec<&str> {
        self.lines
            .iter()
            .filter(|(_, m)| m.contains(needle))
            .map(|(_, m)| m.as_str())
            .collect()
    }
}

/// The status word and parenthesised text of a per-recipient line.
fn status_of(rest: &str) -> (String, String) {
    let Some(start) = rest.find("status=") else {
        return (String::new(), String::new());
    };
    let tail = &rest[start + "status=".len()..];
    match tail.split_once(' ') {
        Some((word, text)) => (word.to_string(), {
            let t = text.trim();
            let t = t.strip_prefix('(').unwrap_or(t);
            t.strip_suffix(')').unwrap_or(t).to_string()
        }),
        None => (tail.to_string(), String::new()),
    }
}

/// Rewrites run-specific details out of log text.
#[derive(Debug, Clone, Default)]
pub struct Normaliser {
    /// (literal, replacement) pairs, applied in order.
    pairs: Vec<(String, String)>,
}

impl Normaliser {
    /// Replaces the sandbox folder `dir` by `$DIR`.
    pub fn new(dir: &std::path::Path) -> Normaliser {
        Normaliser {
            pairs: vec![(dir.display().to_string(), "$DIR".into())],
        }
    }

    /// Names a loopback port: `:PORT` becomes `:name` and ` PORT` (as in
    /// `port 2525`) becomes ` name`.
    pub fn port(&mut self, port: u16, name: &str) {
        self.pairs.push((format!(":{port}"), format!(":{name}")));
    }

    /// Applies the replacements, then masks queue IDs.
    pub fn apply(&self, text: &str, log: &Log) -> String {
        let mut s = text.to_string();
        for (from, to) in &self.pairs {
            s = s.replace(from, to);
        }
        for q in &log.qids {
            s = s.replace(q.as_str(), "QID");
        }
        if let Some(i) = s.find("queued as ") {
            let end = s[i + 10..]
                .find(|c: char| !c.is_ascii_alphanumeric())
                .map_or(s.len(), |e| i + 10 + e);
            s.replace_range(i + 10..end, "QID");
        }
        s
    }
}

/// Builds the rows from a parsed log and a map queue ID → queue name (for
/// files still present).
pub fn rows(log: &Log, present: &BTreeMap<String, String>, norm: &Normaliser) -> Vec<RecipientRow> {
    // (label, recipient) → (last qid, deliveries)
    let mut by_key: BTreeMap<(String, String), (String, Vec<&RecipientLine>)> = BTreeMap::new();
    for d in &log.deliveries {
        let key = (log.label_of(&d.qid), d.recipient.clone());
        let slot = by_key
            .entry(key)
            .or_insert_with(|| (d.qid.clone(), Vec::new()));
        slot.0 = d.qid.clone();
        slot.1.push(d);
    }
    let mut out = Vec::new();
    for ((message, recipient), (qid, ds)) in by_key {
        let last = ds.last().expect("at least one delivery per key");
        let mut history: Vec<String> = Vec::new();
        for d in &ds {
            if history.last() != Some(&d.word) {
                history.push(d.word.clone());
            }
        }
        let result = if log.expired.contains(&qid) && last.word == "deferred" {
            "expired".to_string()
        } else if log.deleted.contains(&qid) {
            "deleted".to_string()
        } else {
            last.word.clone()
        };
        let queue = match present.get(&qid) {
            Some(q) => q.clone(),
            None if log.removed.contains(&qid) || log.deleted.contains(&qid) => "removed".into(),
            None => "missing".into(),
        };
        out.push(RecipientRow {
            message,
            recipient,
            result,
            queue,
            history,
            relay: norm.apply(&last.relay, log),
            status: norm.apply(
                &format!("dsn={} status={} ({})", last.dsn, last.word, last.text),
                log,
            ),
        });
    }
    // Tagged messages without any per-recipient line yet (stuck in a
    // queue, or never admitted) still show, so a queue manager that does
    // nothing fails with evidence rather than an empty outcome.
    for qid in &log.qids {
        let Some(label) = log.label.get(qid) else {
            continue;
        };
        if out.iter().any(|r| &r.message == label) {
            continue;
        }
        let queue = match present.get(qid) {
            Some(q) => q.clone(),
            None if log.removed.contains(qid) || log.deleted.contains(qid) => "removed".into(),
            None => "missing".into(),
        };
        out.push(RecipientRow {
            message: label.clone(),
            recipient: "(no recipient logged)".into(),
            result: "pending".into(),
            queue,
            history: Vec::new(),
            relay: String::new(),
            status: String::new(),
        });
    }
    out.sort();
    out.dedup();
    out
}

/// The parser on lines shaped like real Postfix 3.7.11 output: labels from
/// Message-IDs, notices named after their message, expiry and removal, and
/// the normaliser's port, folder and queue-ID masking.
#[test]
fn parses_and_normalises_a_maillog() {
    let text = "\
Nov 28 21:31:58 sandbox postfix/cleanup[6790]: 79D0198F4A1: message-id=<e1@e2e.test>
Nov 28 21:31:58 sandbox postfix/smtp[6792]: 79D0198F4A1: to=<u1@dead.test>, relay=none, delay=0.24, delays=0.19/0.05/0/0, dsn=4.4.1, status=deferred (connect to 127.0.0.1[127.0.0.1]:35727: Connection refused)
Nov 28 21:31:58 sandbox postfix/oqmgr[6775]: 79D0198F4A1: from=<root@local.test>, status=expired, returned to sender
Nov 28 21:31:58 sandbox postfix/cleanup[6790]: AB53598F4B9: message-id=<20261128213158.AB53598F4B9@sandbox.test>
Nov 28 21:31:58 sandbox postfix/bounce[6793]: 79D0198F4A1: sender non-delivery notification: AB53598F4B9
Nov 28 21:31:58 sandbox postfix/oqmgr[6775]: 79D0198F4A1: removed
Nov 28 21:31:59 sandbox postfix/local[6797]: AB53598F4B9: to=<root@local.test>, relay=local, delay=0.07, delays=0.01/0.01/0/0.05, dsn=2.0.0, status=sent (delivered to mailbox /tmp/x/mail/root, id AB53598F4B9)
Nov 28 21:31:59 sandbox postfix/cleanup[6790]: C0FFEE12345: message-id=<stuck@e2e.test>
";
    let log = Log::parse(text);
    assert_eq!(log.label_of("79D0198F4A1"), "e1");
    assert_eq!(log.label_of("AB53598F4B9"), "bounce-of:e1");
    assert_eq!(log.label_of("FFFFFFFFFF"), "untagged");
    let mut norm = Normaliser::new(std::path::Path::new("/tmp/x"));
    norm.port(35727, "dead");
    let present = BTreeMap::from([("C0FFEE12345".to_string(), "incoming".to_string())]);
    let got = rows(&log, &present, &norm);
    let want = vec![
        RecipientRow {
            message: "bounce-of:e1".into(),
            recipient: "root@local.test".into(),
            result: "sent".into(),
            queue: "missing".into(),
            history: vec!["sent".into()],
            relay: "local".into(),
            status: "dsn=2.0.0 status=sent (delivered to mailbox $DIR/mail/root, id QID)".into(),
        },
        RecipientRow {
            message: "e1".into(),
            recipient: "u1@dead.test".into(),
            result: "expired".into(),
            queue: "removed".into(),
            history: vec!["deferred".into()],
            relay: "none".into(),
            status: "dsn=4.4.1 status=deferred (connect to 127.0.0.1[127.0.0.1]:dead: Connection refused)".into(),
        },
        RecipientRow {
            message: "stuck".into(),
            recipient: "(no recipient logged)".into(),
            result: "pending".into(),
            queue: "incoming".into(),
            history: Vec::new(),
            relay: String::new(),
            status: String::new(),
        },
    ];
    assert_eq!(got, want);
}
