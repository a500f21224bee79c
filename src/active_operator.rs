//! The supervisor's side of the operator's commands (ours: Postfix has no
//! suspension; `flush` of one destination stands in for `postqueue -s`).
//!
//! A suspension ([`crate::control::Suspension`]) is kept by the
//! supervisor, which routes new entries of a suspended destination to
//! `retry` itself (`route`), tells the transports to hold their
//! destinations back (`Msg::AdminSuspend`), defers what they hand back
//! (`Msg::Withdrawn`) and notes each file it defers, so that the end of the
//! suspension (`resume`, its time running out, or a restored one found
//! over at start) retries exactly those files. A `flush` of one
//! destination revives it and retries the files it deferred lately. It
//! also describes the supervisor for `oqmgr ctl` ([`Supervisor::live`]).
//!
//! Every command leaves a `control:` log line and a trace line, so that
//! nothing an operator does goes unrecorded.
//!
//! # Invariants
//! - `control.version` changes whenever the suspensions in force do
//!   (hosts save them to the state file then);
//! - a suspension's end timer is acted on only while the suspension it
//!   was armed for is still in force and due.

use std::collections::BTreeMap;

use super::Supervisor;
use crate::control::{Command, Suspension, Target};
use crate::destination::reroute;
use crate::effect::{Addr, DestKey, Effect, Effects, LogLevel, Msg, Timer};
use crate::entry::{Entry, MessageId};
use crate::live_state::{LiveMessage, LiveSupervisor};
use crate::name::Name;
use crate::scan::{QueueName, Scan, ScanFlags};
use crate::time::{Duration, Instant};
use crate::trace::TraceEvent;

impl Supervisor {
    /// A suspension's end timer fired: ends it if it is still due.
    pub(super) fn suspension_end(&mut self, now: Instant, generation: u64, out: &mut Effects) {
        let target = self.control.timers.remove(&generation);
        let due = target
            .as_ref()
            .and_then(|t| self.control.suspensions.get(t));
        if due.is_some_and(|s| s.until.is_some_and(|u| u <= now)) {
            let s = self
                .control
                .suspensions
                .remove(&target.expect("found above"))
                .expect("found above");
            self.end_suspension(s, "ended", out);
        }
    }

    /// A destination answered a `flush`: retries the messages it deferred
    /// lately that the supervisor deferred for it.
    pub(super) fn flush_report(
        &mut self,
        dest: DestKey,
        found: bool,
        messages: Vec<MessageId>,
        out: &mut Effects,
    ) {
        let ids: BTreeMap<Name, ()> = messages
            .iter()
            .filter_map(|m| self.control.recently_deferred.get(m))
            .map(|id| (id.clone(), ()))
            .collect();
        let ids: Vec<Name> = ids.into_keys().collect();
        let what = if found { "revived" } else { "not in memory" };
        log(
            out,
            format!(
                "control: flush {dest}: {what}; {} deferred message(s) retried now",
                ids.len()
            ),
        );
        out.trace(|| TraceEvent::Control(format!("flush {dest} {what} retry={}", ids.len())));
        self.retry(ids, out);
    }

    /// Carries out an operator's command (`crate::control`).
    pub(super) fn command(&mut self, now: Instant, command: Command, out: &mut Effects) {
        match command {
            Command::Suspend {
                target,
                duration,
                reason,
            } => {
                let until = duration.map(|ms| now + Duration::from_millis(ms));
                let deferred = self
                    .control
                    .suspensions
                    .remove(&target)
                    .map(|old| old.deferred)
                    .unwrap_or_default();
                let s = Suspension {
                    target: target.clone(),
                    since: now,
                    until,
                    reason,
                    deferred,
                };
                let how = match duration {
                    Some(ms) => format!(" for {}s", ms / 1000),
                    None => " until resumed".into(),
                };
                let why = s
                    .reason
                    .as_ref()
                    .map_or(String::new(), |r| format!(" ({r})"));
                log(out, format!("control: suspend {target}{how}{why}"));
                self.start_suspension(s, out);
            }
            Command::Resume { target } => match self.control.suspensions.remove(&target) {
                Some(s) => self.end_suspension(s, "resumed", out),
                None => out.push(Effect::Log(
                    LogLevel::Warning,
                    format!("control: resume {target}: it is not suspended"),
                )),
            },
            Command::Flush { dest } => {
                let (transport, queue) = dest.split_once(':').unwrap_or((&dest, ""));
                log(out, format!("control: flush {dest}"));
                let transport = Name::from(transport);
                let queue = Name::from(queue);
                if self.control.transports.contains(&transport) {
                    out.send(Addr::Transport(transport), Msg::FlushOne(queue));
                } else {
                    let dest = DestKey { transport, queue };
                    log(out, format!("control: flush {dest}: not in memory"));
                }
            }
            Command::Restore { suspensions } => {
                for s in suspensions {
                    match s.until {
                        Some(until) if until <= now => {
                            self.end_suspension(s, "ended while the queue manager was stopped", out)
                        }
                        _ => {
                            log(out, format!("control: suspension of {} restored", s.target));
                            self.start_suspension(s, out);
                        }
                    }
                }
            }
        }
    }

    /// Puts `s` in force: arms its end, tells the transports.
    pub(super) fn start_suspension(&mut self, s: Suspension, out: &mut Effects) {
        self.control.version += 1;
        out.trace(|| {
            TraceEvent::Control(format!(
                "suspend {} until={} reason={:?}",
                s.target,
                s.until.map_or("-".into(), |u| u.to_string()),
                s.dsn().reason
            ))
        });
        if let Some(until) = s.until {
            self.control.generation += 1;
            self.control
                .timers
                .insert(self.control.generation, s.target.clone());
            out.push(Effect::Arm {
                owner: Addr::Supervisor,
                at: until,
                timer: Timer::SuspensionEnd(self.control.generation),
            });
        }
        let target = s.target.clone();
        self.control.suspensions.insert(target.clone(), s);
        self.tell_transports(&target, || Msg::AdminSuspend(target.clone()), out);
    }

    /// Ends suspension `s` (already out of the table): tells the
    /// transports, and retries the files it deferred.
    pub(super) fn end_suspension(&mut self, s: Suspension, how: &str, out: &mut Effects) {
        self.control.version += 1;
        let ids: Vec<Name> = s
            .deferred
            .iter()
            .map(|id| Name::from(id.as_str()))
            .collect();
        log(
            out,
            format!(
                "control: suspension of {} {how}; {} deferred message(s) retried now",
                s.target,
                ids.len()
            ),
        );
        out.trace(|| TraceEvent::Control(format!("resume {} {how} retry={}", s.target, ids.len())));
        let target = s.target;
        self.tell_transports(&target, || Msg::AdminResume(target.clone()), out);
        // Destinations another suspension still covers are held again.
        let others: Vec<Target> = self.control.suspensions.keys().cloned().collect();
        for other in others {
            self.tell_transports(&other, || Msg::AdminSuspend(other.clone()), out);
        }
        self.retry(ids, out);
    }

    /// Sends `msg()` to every transport `target` may cover.
    pub(super) fn tell_transports(
        &self,
        target: &Target,
        msg: impl Fn() -> Msg,
        out: &mut Effects,
    ) {
        for t in &self.control.transports {
            if target.transport().map_or(true, |only| only == t.as_str()) {
                out.send(Addr::Transport(t.clone()), msg());
            }
        }
    }

    /// Makes files `ids` due now and scans `deferred/` for them.
    pub(super) fn retry(&mut self, ids: Vec<Name>, out: &mut Effects) {
        if ids.is_empty() {
            return;
        }
        out.push(Effect::Retry(ids));
        self.request(QueueName::Deferred, ScanFlags::START, out);
    }

    /// Defers the entries a suspended destination handed back, or routes
    /// them back to it when its suspension ended meanwhile.
    pub(super) fn withdrawn(
        &mut self,
        dest: DestKey,
        nexthop: Name,
        entries: Vec<Entry>,
        out: &mut Effects,
    ) {
        let active = u32::try_from(self.messages.len()).unwrap_or(u32::MAX);
        let covering = self
            .control
            .covering(&dest)
            .map(|s| (s.target.clone(), s.dsn()));
        for entry in entries {
            match &covering {
                Some((target, dsn)) => {
                    if let Some(m) = self.messages.get(&entry.message) {
                        let qid = m.info.id.clone();
                        self.control.note_held(target, &qid);
                    }
                    reroute(&dest, entry, dsn, active, out);
                }
                None => out.send(
                    Addr::Transport(dest.transport.clone()),
                    Msg::Enqueue {
                        queue: dest.queue.clone(),
                        nexthop: nexthop.clone(),
                        entry,
                        active,
                    },
                ),
            }
        }
    }

    /// Describes the supervisor for the operator (`oqmgr ctl status`);
    /// `detail` adds every admitted message.
    pub fn live(&self, detail: bool) -> LiveSupervisor {
        let scan = |s: &Scan| s.running().map(|f| f.to_string());
        LiveSupervisor {
            messages: self.messages.len() as u64,
            recipients: self.recipient_count,
            message_limit: self.global.message_active_limit,
            recipient_limit: self.global.message_recipient_limit,
            completing: self.completing,
            incoming_scan: scan(&self.incoming),
            deferred_scan: scan(&self.deferred),
            incoming_scan_done_ms: self.scan_done[0].map(Instant::as_millis),
            deferred_scan_done_ms: self.scan_done[1].map(Instant::as_millis),
            removed: self.totals[0],
            deferred: self.totals[1],
            expired: self.totals[2],
            full: !self.has_room(),
            defer_transports: self.global.defer_transports.clone(),
            suspensions: self.control.suspensions.values().cloned().collect(),
            active: if detail {
                self.messages
                    .iter()
                    .map(|(id, m)| LiveMessage {
                        message: id.0,
                        id: m.info.id.to_string(),
                        created_ms: m.info.create_time.as_millis(),
                    })
                    .collect()
            } else {
                Vec::new()
            },
        }
    }

    /// The suspensions in force and a number that changes whenever they
    /// do (hosts save them when it changes).
    pub fn suspensions(&self) -> (u64, Vec<Suspension>) {
        (
            self.control.version,
            self.control.suspensions.values().cloned().collect(),
        )
    }
}

/// Logs an operator action (`info`).
fn log(out: &mut Effects, text: String) {
    out.push(Effect::Log(LogLevel::Info, text));
}
