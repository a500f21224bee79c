//! inject - the campaign's mail source: tagged messages over SMTP into the
//! instance's smtpd, with a record of exactly what Postfix accepted.
//!
//! # What and why
//! Every message carries a unique tag in its `Message-ID` and `Subject`
//! (`<TAG@campaign.test>`) and a last body line `end-of TAG`, so a copy
//! found at a sink, in a bounce notice or in a queue file can be traced
//! back to it, and a copy cut short is recognised. A message counts as
//! accepted only when smtpd answered `250` to the final dot; a recipient
//! only when its `RCPT` got `250`. When the connection breaks after the dot
//! was sent and before the answer came, the message is "unsure": it may or
//! may not be in the queue, and the ledger leaves it out of every count
//! rather than guess.
//!
//! Sessions reconnect after any error (smtpd or cleanup killed, Postfix
//! stopped, a full disk answering 452), so one source survives every fault
//! the campaign injects. Pacing is by schedule (message `i` is due at
//! `start + i / rate`), so a stall in Postfix is not hidden by a slower
//! source.
//!
//! # Invariants
//! - tags are unique within one [`Injector`] (`PREFIX-NNNNNN`);
//! - every wait is bounded (connect 5 s, each reply 30 s).

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use oqmgr_actors::clock::tooling_now;

/// Domain of every tag's Message-ID.
pub const TAG_DOMAIN: &str = "campaign.test";

/// Envelope sender of injected mail; its domain routes to the notice sink.
pub const SENDER: &str = "sender@origin.test";

/// One message Postfix accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// Its tag.
    pub tag: String,
    /// The recipients smtpd accepted (`RCPT` answered 250).
    pub rcpts: Vec<String>,
}

/// What a source did, so far or in total.
#[derive(Debug, Clone, Default)]
pub struct Injected {
    /// Messages accepted, in acceptance order.
    pub accepted: Vec<Accepted>,
    /// Messages whose fate is unknown (connection lost after the dot).
    pub unsure: u64,
    /// Messages refused (4xx/5xx at MAIL, RCPT, DATA or the dot).
    pub refused: u64,
    /// The first few refusal replies, for the report.
    pub refusals: Vec<String>,
}

/// How to inject.
#[derive(Debug, Clone)]
pub struct InjectPlan {
    /// smtpd's port on 127.0.0.1.
    pub port: u16,
    /// Tag prefix (unique per source within a rig).
    pub prefix: String,
    /// Recipients of every message.
    pub rcpts: Vec<String>,
    /// Messages per second over all sessions (0: as fast as possible).
    pub rate: f64,
    /// Stop after this many attempts (`None`: until stopped).
    pub limit: Option<u64>,
    /// Parallel SMTP sessions.
    pub sessions: usize,
}

/// A running source (threads); stop with [`Injector::stop`].
#[derive(Debug)]
pub struct Injector {
    /// Set to end every session.
    stop: Arc<AtomicBool>,
    /// The record shared by the sessions.
    record: Arc<Mutex<Injected>>,
    /// Session threads.
    threads: Vec<JoinHandle<()>>,
}

/// The Message-ID of a tag.
pub fn message_id(tag: &str) -> String {
    format!("<{tag}@{TAG_DOMAIN}>")
}

/// Every tag named in `text` (`<TAG@campaign.test>`), in order.
pub fn tags_in(text: &[u8]) -> Vec<String> {
    let needle = format!("@{TAG_DOMAIN}>");
    let needle = needle.as_bytes();
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(pos) = find(&text[at..], needle) {
        let end = at + pos;
        if let Some(open) = text[..end].iter().rposition(|&b| b == b'<') {
            let tag = &text[open + 1..end];
            if !tag.is_empty() && tag.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-') {
                found.push(String::from_utf8_lossy(tag).into_owned());
            }
        }
        at = end + needle.len();
    }
    found
}

/// Position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The message text for `tag` (LF line ends; the session sends CRLF).
pub fn message_text(tag: &str, rcpts: &[String]) -> String {
    format!(
        "From: {SENDER}\nTo: {}\nSubject: {tag}\nMessage-ID: {}\n\nfault campaign message {tag}\nend-of {tag}\n",
        rcpts.join(", "),
        message_id(tag)
    )
}

impl Injector {
    /// Starts `plan.sessions` sessions.
    pub fn start(plan: InjectPlan) -> Injector {
        let stop = Arc::new(AtomicBool::new(false));
        let record = Arc::new(Mutex::new(Injected::default()));
        let next = Arc::new(AtomicU64::new(0));
        let start = tooling_now();
        let threads = (0..plan.sessions.max(1))
            .map(|_| {
                let (plan, stop, record, next) =
                    (plan.clone(), stop.clone(), record.clone(), next.clone());
                std::thread::spawn(move || session_loop(&plan, &stop, &record, &next, start))
            })
            .collect();
        Injector {
            stop,
            record,
            threads,
        }
    }

    /// A copy of the record so far.
    pub fn snapshot(&self) -> Injected {
        self.record.lock().expect("injector record").clone()
    }

    /// True once every session ended (limit reached).
    pub fn finished(&self) -> bool {
        self.threads.iter().all(JoinHandle::is_finished)
    }

    /// Ends every session (each finishes its current message first) and
    /// returns the record.
    pub fn stop(mut self) -> Injected {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.snapshot()
    }
}

impl Drop for Injector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// One session thread: connect, send due messages, reconnect on errors.
fn session_loop(
    plan: &InjectPlan,
    stop: &AtomicBool,
    record: &Mutex<Injected>,
    next: &AtomicU64,
    start: std::time::Instant,
) {
    let mut session: Option<Session> = None;
    while !stop.load(Ordering::SeqCst) {
        let n = next.fetch_add(1, Ordering::SeqCst);
        if plan.limit.is_some_and(|l| n >= l) {
            break;
        }
        if plan.rate > 0.0 {
            let due = start + Duration::from_secs_f64(n as f64 / plan.rate);
            while tooling_now() < due && !stop.load(Ordering::SeqCst) {
                std::thread::sleep((due - tooling_now()).min(Duration::from_millis(50)));
            }
            if stop.load(Ordering::SeqCst) {
                break;
            }
        }
        let tag = format!("{}-{n:06}", plan.prefix);
        // Up to 50 connection attempts (5 s) per message: a stopped or
        // killed smtpd comes back, a full disk may not.
        let mut outcome = Outcome::Refused(String::new());
        for _ in 0..50 {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            if session.is_none() {
                session = Session::open(plan.port).ok();
            }
            let Some(s) = session.as_mut() else {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            };
            match s.send(&tag, &plan.rcpts) {
                Ok(o) => {
                    outcome = o;
                    break;
                }
                Err(SendError::BeforeDot) => {
                    session = None;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(SendError::AfterDot) => {
                    session = None;
                    outcome = Outcome::Unsure;
                    break;
                }
            }
        }
        let mut r = record.lock().expect("injector record");
        match outcome {
            Outcome::Accepted(rcpts) => r.accepted.push(Accepted { tag, rcpts }),
            Outcome::Unsure => r.unsure += 1,
            Outcome::Refused(why) if why.is_empty() && stop.load(Ordering::SeqCst) => {}
            Outcome::Refused(why) => {
                r.refused += 1;
                if r.refusals.len() < 3 && !why.is_empty() && !r.refusals.contains(&why) {
                    r.refusals.push(why);
                }
            }
        }
    }
    if let Some(mut s) = session {
        let _ = s.command("QUIT");
    }
}

/// How one message ended.
enum Outcome {
    /// 250 to the dot, with these recipients.
    Accepted(Vec<String>),
    /// Connection lost after the dot was sent.
    Unsure,
    /// Refused with this reply, or never sent (empty).
    Refused(String),
}

/// Where a session broke.
enum SendError {
    /// Nothing was committed: the message can be sent again.
    BeforeDot,
    /// The dot was sent: Postfix may have the message.
    AfterDot,
}

/// One SMTP session.
struct Session {
    /// Reader half.
    reader: BufReader<TcpStream>,
    /// Writer half.
    writer: TcpStream,
    /// The last reply line read.
    last: String,
}

impl Session {
    /// Connects and greets (EHLO).
    fn open(port: u16) -> io::Result<Session> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_write_timeout(Some(Duration::from_secs(30)))?;
        let mut s = Session {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
            last: String::new(),
        };
        if s.reply()? / 100 != 2 || s.command("EHLO campaign.test")? / 100 != 2 {
            return Err(io::Error::other("greeting refused"));
        }
        Ok(s)
    }

    /// Reads one (possibly multi-line) reply; returns its code and keeps
    /// its last line in `last`.
    fn reply(&mut self) -> io::Result<u32> {
        loop {
            self.last.clear();
            if self.reader.read_line(&mut self.last)? == 0 {
                return Err(io::Error::other("connection closed"));
            }
            let code: u32 = self
                .last
                .get(..3)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| io::Error::other(format!("bad reply {:?}", self.last)))?;
            if self.last.as_bytes().get(3) != Some(&b'-') {
                return Ok(code);
            }
        }
    }

    /// Sends one command line and reads the reply.
    fn command(&mut self, cmd: &str) -> io::Result<u32> {
        self.writer.write_all(format!("{cmd}\r\n").as_bytes())?;
        self.reply()
    }

    /// The last reply line, trimmed.
    fn last_reply(&self) -> String {
        self.last.trim().to_string()
    }

    /// One transaction.
    fn send(&mut self, tag: &str, rcpts: &[String]) -> Result<Outcome, SendError> {
        let before = |_| SendError::BeforeDot;
        if self
            .command(&format!("MAIL FROM:<{SENDER}>"))
            .map_err(before)?
            / 100
            != 2
        {
            let why = self.last_reply();
            let _ = self.command("RSET");
            return Ok(Outcome::Refused(why));
        }
        let mut ok = Vec::new();
        let mut why = String::new();
        for r in rcpts {
            if self.command(&format!("RCPT TO:<{r}>")).map_err(before)? / 100 == 2 {
                ok.push(r.clone());
            } else {
                why = self.last_reply();
            }
        }
        if ok.is_empty() || self.command("DATA").map_err(before)? != 354 {
            if !ok.is_empty() {
                why = self.last_reply();
            }
            self.command("RSET").map_err(before)?;
            return Ok(Outcome::Refused(why));
        }
        let mut data = String::new();
        for line in message_text(tag, &ok).lines() {
            if line.starts_with('.') {
                data.push('.');
            }
            data.push_str(line);
            data.push_str("\r\n");
        }
        self.writer.write_all(data.as_bytes()).map_err(before)?;
        self.writer
            .write_all(b".\r\n")
            .map_err(|_| SendError::AfterDot)?;
        match self.reply() {
            Ok(250) => Ok(Outcome::Accepted(ok)),
            Ok(_) => Ok(Outcome::Refused(self.last_reply())),
            Err(_) => Err(SendError::AfterDot),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_tags_in_text() {
        let text = b"Message-ID: <cmp-000001@campaign.test>\nX: <other@sandbox.test>\n\
                     In-Reply-To: <a b@campaign.test> <k-2@campaign.test>";
        assert_eq!(tags_in(text), vec!["cmp-000001", "k-2"]);
        assert_eq!(message_id("x-1"), "<x-1@campaign.test>");
        assert!(message_text("t-1", &["a@b".into()]).ends_with("end-of t-1\n"));
    }
}
