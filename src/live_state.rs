//! The live state of a running scheduler, as the operator sees it (no
//! Postfix counterpart: Postfix shows none of it; `qshape` reads the queue
//! files instead).
//!
//! Each core entity describes itself on request ([`crate::active::Supervisor::live`],
//! [`crate::transport::Transport::live`], [`crate::destination::Destination::live`]);
//! a host gathers the answers into one [`LiveState`]: the daemon for `oqmgr
//! ctl` (and the metrics and status page built on the same query), the
//! simulator for a scenario's `destinations` command. The plain-text forms
//! are made here, once, from a `LiveState`, so the daemon and the simulator
//! print the same tables: [`render_destinations`] and [`why_destination`].
//!
//! Times are core [`Instant`](crate::time::Instant)s in milliseconds (the daemon's are since the
//! Unix epoch, the simulator's since the start of the run); the renderers
//! take the host's way of printing one.
//!
//! # Invariants
//! - describing an entity changes nothing in it;
//! - every list is sorted (destinations and transports by name), so the
//!   same state renders the same text.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::control::{Suspension, Target};
use crate::effect::DestKey;
use crate::entry::{DeliveryReport, Outcome, RecipientStatus};

/// Delivery outcomes counted since some start: per delivery (every agent
/// answers one), and per recipient where the agent says (custom transports
/// and the simulator do; Postfix's own agents answer per delivery only and
/// log each recipient themselves).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Deliveries answered.
    pub deliveries: u64,
    /// Of those, answered other than done (a recipient or the site
    /// deferred, the agent crashed or refused).
    pub deferred_deliveries: u64,
    /// Recipients delivered.
    pub sent: u64,
    /// Deferred (a recipient may count several times).
    pub deferred: u64,
    /// Bounced.
    pub bounced: u64,
}

impl Tally {
    /// Counts one delivery report.
    pub fn count(&mut self, report: &DeliveryReport) {
        self.deliveries += 1;
        if report.outcome != Outcome::Done {
            self.deferred_deliveries += 1;
        }
        for s in &report.recipients {
            match s {
                RecipientStatus::Sent => self.sent += 1,
                RecipientStatus::Deferred => self.deferred += 1,
                RecipientStatus::Bounced => self.bounced += 1,
            }
        }
    }

    /// Adds another tally.
    pub fn add(&mut self, other: &Tally) {
        self.deliveries += other.deliveries;
        self.deferred_deliveries += other.deferred_deliveries;
        self.sent += other.sent;
        self.deferred += other.deferred;
        self.bounced += other.bounced;
    }
}

/// Where a destination is in its life, as the operator sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum LiveDestState {
    /// Deliveries may start while busy is below the window.
    Ready,
    /// Waiting out `_destination_rate_delay`.
    RateDelayed {
        /// Until when (ms).
        until_ms: u64,
    },
    /// Declared dead after failed cohorts.
    Dead {
        /// Since when (ms).
        since_ms: u64,
        /// When the unthrottle timer revives it (ms).
        until_ms: u64,
        /// The last error, deferred mail's reason.
        reason: String,
    },
    /// Held back by an operator's suspension.
    Suspended,
}

impl LiveDestState {
    /// The one word `ctl destinations --state` filters on.
    pub fn word(&self) -> &'static str {
        match self {
            LiveDestState::Ready => "ready",
            LiveDestState::RateDelayed { .. } => "rate-delayed",
            LiveDestState::Dead { .. } => "dead",
            LiveDestState::Suspended => "suspended",
        }
    }
}

/// One destination in memory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LiveDestination {
    /// Transport name.
    pub transport: String,
    /// Queue name (the next hop, or `user@nexthop`).
    pub queue: String,
    /// The next hop handed to agents.
    pub nexthop: String,
    /// Its state.
    pub state: LiveDestState,
    /// Deliveries allowed at once (0 while dead).
    pub window: u32,
    /// `_destination_concurrency_limit` (0: none).
    pub limit: u32,
    /// Deliveries in flight.
    pub busy: u32,
    /// Entries waiting.
    pub todo: u32,
    /// Recipients in waiting entries.
    pub todo_recipients: u64,
    /// Positive feedback accumulator.
    pub success: f64,
    /// Negative feedback accumulator.
    pub failure: f64,
    /// Failed pseudo-cohorts since the last success.
    pub fail_cohorts: f64,
    /// Delivery outcomes since the destination came into memory.
    pub tally: Tally,
    /// Median of the recent delivery times (entry queued to reply), ms.
    pub delay_p50_ms: Option<u64>,
    /// 99th percentile of the same, ms.
    pub delay_p99_ms: Option<u64>,
    /// When the oldest waiting entry was queued here (ms).
    pub oldest_waiting_ms: Option<u64>,
    /// Message numbers and recipient counts of every entry (waiting and
    /// in flight), when asked for in detail.
    #[serde(default)]
    pub entries: Vec<(u64, u32)>,
}

impl LiveDestination {
    /// A destination of that name with nothing in it: ready, no window,
    /// no limit, no counts.
    pub fn new(transport: &str, queue: &str) -> LiveDestination {
        LiveDestination {
            transport: transport.into(),
            queue: queue.into(),
            nexthop: queue.into(),
            state: LiveDestState::Ready,
            window: 0,
            limit: 0,
            busy: 0,
            todo: 0,
            todo_recipients: 0,
            success: 0.0,
            failure: 0.0,
            fail_cohorts: 0.0,
            tally: Tally::default(),
            delay_p50_ms: None,
            delay_p99_ms: None,
            oldest_waiting_ms: None,
            entries: Vec::new(),
        }
    }

    /// `transport:queue`.
    pub fn name(&self) -> String {
        format!("{}:{}", self.transport, self.queue)
    }

    /// Its core key.
    pub fn key(&self) -> DestKey {
        DestKey {
            transport: self.transport.as_str().into(),
            queue: self.queue.as_str().into(),
        }
    }
}

/// One transport.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LiveTransport {
    /// Its name.
    pub name: String,
    /// Why it is dead, if it is.
    pub dead: Option<String>,
    /// When a dead transport is retried (ms).
    pub dead_until_ms: Option<u64>,
    /// Agent connections being set up.
    pub pending: u32,
    /// An allocation waits out `_transport_rate_delay`.
    pub rate_locked: bool,
    /// Destinations in memory.
    pub destinations: u32,
}

/// One admitted message, when asked for in detail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LiveMessage {
    /// Message number.
    pub message: u64,
    /// Queue ID.
    pub id: String,
    /// When it was queued (ms).
    pub created_ms: u64,
}

/// The supervisor: the active queue, scans, totals, suspensions.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveSupervisor {
    /// Messages in the active queue.
    pub messages: u64,
    /// Recipients in memory.
    pub recipients: u64,
    /// `qmgr_message_active_limit`.
    pub message_limit: u32,
    /// `qmgr_message_recipient_limit`.
    pub recipient_limit: u32,
    /// Completions handed to the host and not done yet.
    pub completing: u64,
    /// The incoming scan's flags while it runs.
    pub incoming_scan: Option<String>,
    /// The deferred scan's flags while it runs.
    pub deferred_scan: Option<String>,
    /// When the last incoming scan finished (ms).
    pub incoming_scan_done_ms: Option<u64>,
    /// When the last deferred scan finished (ms).
    pub deferred_scan_done_ms: Option<u64>,
    /// Files removed (every recipient done) since start.
    pub removed: u64,
    /// Files deferred since start.
    pub deferred: u64,
    /// Files returned to sender since start.
    pub expired: u64,
    /// The active queue has no room: new mail waits on disk.
    pub full: bool,
    /// `defer_transports`.
    pub defer_transports: Vec<String>,
    /// Suspensions in force, by target.
    pub suspensions: Vec<Suspension>,
    /// The admitted messages, when asked for in detail.
    #[serde(default)]
    pub active: Vec<LiveMessage>,
}

/// Everything `oqmgr ctl` shows, gathered at one moment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveState {
    /// When it was gathered (ms).
    pub now_ms: u64,
    /// The supervisor.
    pub supervisor: LiveSupervisor,
    /// Transports by name.
    pub transports: Vec<LiveTransport>,
    /// Destinations by name.
    pub destinations: Vec<LiveDestination>,
}

impl LiveState {
    /// Sorts the lists (hosts gather them in no particular order).
    pub fn sort(&mut self) {
        self.transports.sort_by(|a, b| a.name.cmp(&b.name));
        self.destinations
            .sort_by(|a, b| (&a.transport, &a.queue).cmp(&(&b.transport, &b.queue)));
    }

    /// The destination of that key, if in memory.
    pub fn destination(&self, key: &DestKey) -> Option<&LiveDestination> {
        self.destinations
            .iter()
            .find(|d| d.transport == key.transport.as_str() && d.queue == key.queue.as_str())
    }

    /// The suspension covering `key`, if any.
    pub fn suspension(&self, key: &DestKey) -> Option<&Suspension> {
        self.supervisor
            .suspensions
            .iter()
            .find(|s| s.target.matches(key))
    }

    /// Rows for `ctl destinations`: every destination in memory, plus each
    /// suspended destination that is not (it has no mail in memory: all of
    /// it was deferred).
    pub fn rows(&self) -> Vec<LiveDestination> {
        let mut rows = self.destinations.clone();
        for s in &self.supervisor.suspensions {
            if let Target::Destination(name) = &s.target {
                let (t, q) = name.split_once(':').unwrap_or((name, ""));
                if !rows.iter().any(|d| d.transport == t && d.queue == q) {
                    rows.push(LiveDestination {
                        state: LiveDestState::Suspended,
                        ..LiveDestination::new(t, q)
                    });
                }
            }
        }
        rows.sort_by(|a, b| (&a.transport, &a.queue).cmp(&(&b.transport, &b.queue)));
        rows
    }
}

/// Which rows `ctl destinations` shows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationFilter {
    /// Only this transport.
    pub transport: Option<String>,
    /// Only this state: `dead`, `suspended`, `busy` (deliveries in
    /// flight), `ready`, `rate-delayed`.
    pub state: Option<String>,
    /// Only the N with the most mail (busy + waiting), most first.
    pub top: Option<usize>,
}

impl DestinationFilter {
    /// Parses `[--transport T] [--state S] [--top N]` (the simulator's
    /// `destinations` command).
    pub fn parse(words: &[&str]) -> Result<DestinationFilter, String> {
        let mut f = DestinationFilter::default();
        let mut it = words.iter();
        while let Some(w) = it.next() {
            let value = it.next().ok_or(format!("{w} needs a value"))?;
            match *w {
                "--transport" => f.transport = Some(value.to_string()),
                "--state" => match *value {
                    "dead" | "suspended" | "busy" | "ready" | "rate-delayed" => {
                        f.state = Some(value.to_string())
                    }
                    other => return Err(format!("unknown state {other:?}")),
                },
                "--top" => f.top = Some(value.parse().map_err(|_| format!("bad --top {value:?}"))?),
                other => return Err(format!("unknown option {other}")),
            }
        }
        Ok(f)
    }

    /// The rows of `state` this filter keeps, in the order shown.
    pub fn apply(&self, state: &LiveState) -> Vec<LiveDestination> {
        let mut rows: Vec<LiveDestination> = state
            .rows()
            .into_iter()
            .filter(|d| self.transport.as_deref().map_or(true, |t| d.transport == t))
            .filter(|d| match self.state.as_deref() {
                None => true,
                Some("busy") => d.busy > 0,
                Some(word) => d.state.word() == word,
            })
            .collect();
        if let Some(n) = self.top {
            // Stable: equal loads keep name order.
            rows.sort_by_key(|d| std::cmp::Reverse(d.busy + d.todo));
            rows.truncate(n);
        }
        rows
    }

    /// The table of the rows of `state` this filter keeps, with times as
    /// a trace prints them (seconds since the start): what a scenario's
    /// `destinations` command prints into the trace, in both hosts.
    pub fn trace_table(&self, state: &LiveState) -> String {
        let rows = self.apply(state);
        render_destinations(state, &rows, &|ms| crate::time::Instant(ms).to_string())
    }
}

/// Seconds with one decimal, or `-`.
fn secs(ms: Option<u64>) -> String {
    match ms {
        Some(ms) => format!("{}.{}s", ms / 1000, ms % 1000 / 100),
        None => "-".into(),
    }
}

/// A span in words, rounded down to what matters: `45s`, `12m`, `3h`, `2d`.
pub fn span(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// The `ctl destinations` table of `rows`; `time` prints an absolute time.
pub fn render_destinations(
    state: &LiveState,
    rows: &[LiveDestination],
    time: &dyn Fn(u64) -> String,
) -> String {
    let width = rows
        .iter()
        .map(|d| d.transport.len() + 1 + d.queue.len())
        .max()
        .unwrap_or(0)
        .max("destination".len());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<width$} {:<12} {:>6} {:>5} {:>4} {:>5} {:>6} {:>6} {:>6} {:>6} {:>7}  detail",
        "destination",
        "state",
        "window",
        "limit",
        "busy",
        "todo",
        "done",
        "defer",
        "p50",
        "p99",
        "oldest",
    );
    for d in rows {
        let detail = destination_detail(state, d, time);
        let oldest = d
            .oldest_waiting_ms
            .map_or("-".into(), |t| span(state.now_ms.saturating_sub(t)));
        let _ = writeln!(
            out,
            "{:<width$} {:<12} {:>6} {:>5} {:>4} {:>5} {:>6} {:>6} {:>6} {:>6} {:>7}  {}",
            d.name(),
            d.state.word(),
            d.window,
            if d.limit == 0 {
                "-".into()
            } else {
                d.limit.to_string()
            },
            d.busy,
            d.todo,
            d.tally.deliveries - d.tally.deferred_deliveries,
            d.tally.deferred_deliveries,
            secs(d.delay_p50_ms),
            secs(d.delay_p99_ms),
            oldest,
            detail
        );
    }
    let mut trimmed: String = out
        .lines()
        .map(|l| l.trim_end().to_string() + "\n")
        .collect();
    if trimmed.is_empty() {
        trimmed.push('\n');
    }
    trimmed
}

/// The `detail` column of a destination: when a rate delay ends; since
/// when a dead one is dead, when it is retried, its failed cohorts and
/// last error; a suspension's end and reason; empty when ready.
pub fn destination_detail(
    state: &LiveState,
    d: &LiveDestination,
    time: &dyn Fn(u64) -> String,
) -> String {
    match &d.state {
        LiveDestState::Ready => String::new(),
        LiveDestState::RateDelayed { until_ms } => format!("until {}", time(*until_ms)),
        LiveDestState::Dead {
            since_ms,
            until_ms,
            reason,
        } => format!(
            "since {}, retry {}, cohorts {:.1}: {reason}",
            time(*since_ms),
            time(*until_ms),
            d.fail_cohorts
        ),
        LiveDestState::Suspended => match state.suspension(&d.key()) {
            Some(s) => suspension_words(s, time),
            None => String::new(),
        },
    }
}

/// `until T (reason)` / `until resumed (reason)` for a suspension.
pub fn suspension_words(s: &Suspension, time: &dyn Fn(u64) -> String) -> String {
    let until = match s.until {
        Some(t) => format!("until {}", time(t.as_millis())),
        None => "until resumed".into(),
    };
    match &s.reason {
        Some(r) => format!("{until}: {r}"),
        None => until,
    }
}

/// Why mail for destination `key` is not moving now, and when it will,
/// in plain words (one line per cause, most decisive first); `time`
/// prints an absolute time.
pub fn why_destination(
    state: &LiveState,
    key: &DestKey,
    time: &dyn Fn(u64) -> String,
) -> Vec<String> {
    let mut why = Vec::new();
    let name = format!("{key}");
    if let Some(s) = state.suspension(key) {
        let ends = match s.until {
            Some(t) => format!("it ends by itself at {}", time(t.as_millis())),
            None => format!(
                "it lasts until `oqmgr ctl resume {}`",
                target_words(&s.target)
            ),
        };
        let reason = s
            .reason
            .as_deref()
            .map_or(String::new(), |r| format!(": {r}"));
        why.push(format!(
            "{name}: suspended by the administrator ({}) since {}{reason}; its mail is deferred \
             without a delivery attempt and retried at once when the suspension ends; {ends}",
            s.target,
            time(s.since.as_millis())
        ));
    }
    let transport = key.transport.as_str();
    if state
        .supervisor
        .defer_transports
        .iter()
        .any(|t| t == transport)
    {
        why.push(format!(
            "{name}: transport {transport} is listed in defer_transports: its mail is deferred \
             without a delivery attempt until `postqueue -f` or until the setting is removed"
        ));
    }
    if let Some(t) = state.transports.iter().find(|t| t.name == transport) {
        if let Some(reason) = &t.dead {
            why.push(format!(
                "{name}: transport {transport} is dead ({reason}): its delivery agents could not \
                 be reached; it is tried again at {}",
                t.dead_until_ms.map_or("-".into(), time)
            ));
        }
    }
    match state.destination(key) {
        None => {
            if why.is_empty() {
                why.push(format!("{name}: no mail for it in the active queue"));
            }
        }
        Some(d) => {
            match &d.state {
                LiveDestState::Dead {
                    since_ms,
                    until_ms,
                    reason,
                } => why.push(format!(
                "{name}: dead since {} after {:.1} failed cohorts; last error: {reason}; its mail \
                 is deferred without an attempt; next attempt at {} (minimal_backoff_time), or \
                 now with `oqmgr ctl flush {name}`",
                time(*since_ms),
                d.fail_cohorts,
                time(*until_ms)
            )),
                LiveDestState::RateDelayed { until_ms } => why.push(format!(
                    "{name}: waiting out its destination rate delay; next delivery at {}",
                    time(*until_ms)
                )),
                LiveDestState::Suspended => {}
                LiveDestState::Ready if d.todo > 0 && d.busy >= d.window => why.push(format!(
                "{name}: window full: {} deliveries in flight, window {} (limit {}); {} entries \
                 wait for one of them to finish",
                d.busy,
                d.window,
                if d.limit == 0 { "none".into() } else { d.limit.to_string() },
                d.todo
            )),
                LiveDestState::Ready if d.todo > 0 => why.push(format!(
                    "{name}: {} entries wait for a {} delivery agent (window {}, {} in flight)",
                    d.todo, d.transport, d.window, d.busy
                )),
                LiveDestState::Ready if d.busy > 0 => why.push(format!(
                    "{name}: moving: {} deliveries in flight, nothing waiting",
                    d.busy
                )),
                LiveDestState::Ready => why.push(format!("{name}: ready, nothing waiting")),
            }
        }
    }
    if state.supervisor.full {
        why.push(active_full_words(&state.supervisor));
    }
    why
}

/// The words for a full active queue.
pub fn active_full_words(s: &LiveSupervisor) -> String {
    format!(
        "the active queue is full ({} of {} messages, {} of {} recipients): mail in incoming/ \
         and deferred/ waits until deliveries finish",
        s.messages, s.message_limit, s.recipients, s.recipient_limit
    )
}

/// A target as `oqmgr ctl` takes it.
pub fn target_words(t: &Target) -> String {
    match t {
        Target::Destination(d) => d.clone(),
        Target::Transport(t) => format!("--transport {t}"),
        Target::Domain(d) => format!("--domain {d}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Instant;

    fn ready(queue: &str) -> LiveDestination {
        LiveDestination {
            window: 5,
            limit: 20,
            ..LiveDestination::new("smtp", queue)
        }
    }

    fn key(q: &str) -> DestKey {
        DestKey {
            transport: "smtp".into(),
            queue: q.into(),
        }
    }

    fn time(ms: u64) -> String {
        format!("t{}", ms / 1000)
    }

    fn why(state: &LiveState, q: &str) -> String {
        why_destination(state, &key(q), &time).join("\n")
    }

    #[test]
    fn why_window_full() {
        let mut d = ready("a.example");
        (d.busy, d.todo) = (5, 3);
        let s = LiveState {
            destinations: vec![d],
            ..LiveState::default()
        };
        assert_eq!(
            why(&s, "a.example"),
            "smtp:a.example: window full: 5 deliveries in flight, window 5 (limit 20); 3 entries \
             wait for one of them to finish"
        );
    }

    #[test]
    fn why_dead() {
        let mut d = ready("a.example");
        d.state = LiveDestState::Dead {
            since_ms: 10_000,
            until_ms: 310_000,
            reason: "4.4.1 connect to a.example: Connection refused".into(),
        };
        d.fail_cohorts = 1.0;
        let s = LiveState {
            destinations: vec![d],
            ..LiveState::default()
        };
        let w = why(&s, "a.example");
        assert!(w.contains("dead since t10 after 1.0 failed cohorts"), "{w}");
        assert!(
            w.contains("last error: 4.4.1 connect to a.example: Connection refused"),
            "{w}"
        );
        assert!(w.contains("next attempt at t310"), "{w}");
    }

    #[test]
    fn why_rate_delay() {
        let mut d = ready("a.example");
        d.state = LiveDestState::RateDelayed { until_ms: 5000 };
        let s = LiveState {
            destinations: vec![d],
            ..LiveState::default()
        };
        assert!(why(&s, "a.example").contains("destination rate delay; next delivery at t5"));
    }

    #[test]
    fn why_suspended_even_when_not_in_memory() {
        let mut s = LiveState::default();
        s.supervisor.suspensions.push(Suspension {
            target: Target::Domain("*.example".into()),
            since: Instant(2000),
            until: Some(Instant(302_000)),
            reason: Some("maintenance".into()),
            deferred: Default::default(),
        });
        let w = why(&s, "b.example");
        assert!(
            w.contains("suspended by the administrator (domain *.example) since t2: maintenance"),
            "{w}"
        );
        assert!(w.contains("it ends by itself at t302"), "{w}");
    }

    #[test]
    fn why_transport_dead_and_defer_transports() {
        let mut s = LiveState::default();
        s.transports.push(LiveTransport {
            name: "smtp".into(),
            dead: Some("4.3.0 mail transport unavailable".into()),
            dead_until_ms: Some(60_000),
            pending: 0,
            rate_locked: false,
            destinations: 0,
        });
        s.supervisor.defer_transports.push("smtp".into());
        let w = why(&s, "a.example");
        assert!(
            w.contains("transport smtp is listed in defer_transports"),
            "{w}"
        );
        assert!(
            w.contains("transport smtp is dead (4.3.0 mail transport unavailable)"),
            "{w}"
        );
        assert!(w.contains("tried again at t60"), "{w}");
    }

    #[test]
    fn why_active_queue_full() {
        let mut s = LiveState::default();
        s.supervisor.full = true;
        (s.supervisor.messages, s.supervisor.message_limit) = (20000, 20000);
        let w = why(&s, "a.example");
        assert!(
            w.contains("the active queue is full (20000 of 20000 messages"),
            "{w}"
        );
    }

    #[test]
    fn filters_pick_rows() {
        let mut busy = ready("b.example");
        busy.busy = 2;
        let mut dead = ready("d.example");
        dead.state = LiveDestState::Dead {
            since_ms: 0,
            until_ms: 0,
            reason: "x".into(),
        };
        dead.todo = 9;
        let s = LiveState {
            destinations: vec![busy, dead, ready("a.example")],
            ..LiveState::default()
        };
        let names = |f: DestinationFilter| -> Vec<String> {
            f.apply(&s).iter().map(|d| d.name()).collect()
        };
        let state = |w: &str| DestinationFilter {
            state: Some(w.into()),
            ..Default::default()
        };
        assert_eq!(names(state("busy")), ["smtp:b.example"]);
        assert_eq!(names(state("dead")), ["smtp:d.example"]);
        let top = DestinationFilter {
            top: Some(2),
            ..Default::default()
        };
        assert_eq!(names(top), ["smtp:d.example", "smtp:b.example"]);
    }
}
