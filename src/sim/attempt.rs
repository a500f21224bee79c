//! Delivery attempts in the simulator: a delivery agent connects to the
//! simulated server behind the next hop, maybe waits in its listen queue,
//! and reports (the simulator's stand-in for `smtp(8)` and the remote
//! `smtpd(8)`).
//!
//! A server with a `process_limit` serves that many sessions at once.
//! Further connections wait in its listen queue, first come first served,
//! until a session ends; a connection that no process took within the
//! client's greeting timeout fails as Postfix's SMTP client reports it,
//! and one that finds the queue full overflows (a dropped connection
//! request times out on connect, a stalled one on the greeting). These
//! are the busy servers of SCHEDULER_README's first two experiments; the
//! third (a 421 above `connection_limit`) is checked when a process takes
//! the connection, as `smtpd(8)` asks `anvil(8)` only then.
//!
//! On the sending side, a transport with a `defer_log_lock` makes each
//! deferred recipient an append to its message's defer log under the
//! bounce daemon's lock: an agent that finds the log locked sleeps about
//! a second (Postfix's `deliver_flock`) before it can report. With all
//! recipients in one message, as in SCHEDULER_README's experiments, two
//! rejections a few milliseconds apart are enough: on real Postfix a
//! third of the 421s reached the queue manager 0.75 to 1.25 s late.
//!
//! # Invariants
//! - a server's `waiting` count is the length of its listen queue here;
//! - a connection leaves the queue once: taken by a process, or timed out
//!   (its timer then finds it gone and does nothing);
//! - the busy count of the summary starts when the agent connects and
//!   ends with the report, queue time included, as the agent is busy.

use std::collections::VecDeque;

use super::{Event, Simulation};
use crate::effect::{Addr, DestId, DestKey, Msg};
use crate::entry::{DeliveryReport, Entry, MessageId, RecipientStatus};
use crate::name::{FastMap, Name};
use crate::sim::world::{self, Attempt, Listen};
use crate::time::{Duration, Instant};

/// A connection waiting for a server process.
#[derive(Debug)]
struct Waiting {
    /// Its number, which its greeting timer names.
    conn: u64,
    /// The destination that asked for the delivery.
    id: DestId,
    /// Its summary row.
    row: u32,
    /// Its transport (for the server's answer).
    transport: Name,
    /// The next hop.
    nexthop: Name,
    /// What is being delivered.
    entry: Entry,
}

/// A delivery whose deferred recipients are being appended to their
/// message's defer log, one at a time, before the agent reports.
#[derive(Debug)]
pub(super) struct Appending {
    /// The destination to report to.
    id: DestId,
    /// Appends still to make.
    left: usize,
    /// How long each holds the lock.
    hold: Duration,
    /// The report, sent after the last append.
    report: DeliveryReport,
}

/// Every server's listen queue, and every message's defer log lock.
#[derive(Debug, Default)]
pub(super) struct AttemptState {
    /// Waiting connections, oldest first, by server number.
    queues: Vec<VecDeque<Waiting>>,
    /// The last connection number handed out.
    conns: u64,
    /// Until when each message's defer log is locked (lookups only).
    defer_locks: FastMap<MessageId, Instant>,
}

impl AttemptState {
    /// A message left the active queue: its defer log lock goes.
    pub(super) fn forget(&mut self, message: MessageId) {
        if !self.defer_locks.is_empty() {
            self.defer_locks.remove(&message);
        }
    }
}

impl Simulation {
    /// Starts the delivery of `entry` that destination `id` asked for.
    pub(super) fn attempt(&mut self, id: DestId, dest: &DestKey, nexthop: &Name, entry: Entry) {
        // The destination that asked is live (in its slot, or stopping
        // only in a host that lets it): its server and summary row are
        // kept with it.
        let d = self
            .dests
            .get_mut(id)
            .expect("delivery for a live destination");
        if d.stats == u32::MAX {
            d.stats = self.stats.row(dest);
        }
        let (row, server_no) = (d.stats, d.server);
        let server = &self.servers[server_no as usize];
        let recipients = entry.recipients.len();
        match world::listen(
            &self.scenario,
            server,
            &dest.transport,
            nexthop,
            recipients,
            self.now,
        ) {
            Listen::Serve => {
                let attempt = self.serve(server_no, &dest.transport, nexthop, recipients);
                self.stats.select_at(self.now, row);
                self.report(id, row, &dest.transport, entry, attempt);
            }
            Listen::Overflow(attempt) => {
                self.stats.select_at(self.now, row);
                self.report(id, row, &dest.transport, entry, attempt);
            }
            Listen::Wait => {
                self.stats.select_at(self.now, row);
                self.servers[server_no as usize].waiting += 1;
                let queues = &mut self.attempts.queues;
                if queues.len() <= server_no as usize {
                    queues.resize_with(server_no as usize + 1, VecDeque::new);
                }
                self.attempts.conns += 1;
                let conn = self.attempts.conns;
                queues[server_no as usize].push_back(Waiting {
                    conn,
                    id,
                    row,
                    transport: dest.transport.clone(),
                    nexthop: nexthop.clone(),
                    entry,
                });
                let timeout = world::greeting_timeout(&self.scenario, nexthop, 0).latency;
                self.schedule(
                    self.now + timeout,
                    Event::Greeting {
                        server: server_no,
                        conn,
                    },
                );
            }
        }
    }

    /// A session with server `server_no` ended: its process takes the
    /// oldest waiting connections, until one holds it.
    pub(super) fn release(&mut self, server_no: u32) {
        self.servers[server_no as usize].active -= 1;
        loop {
            let Some(queue) = self.attempts.queues.get_mut(server_no as usize) else {
                return;
            };
            let Some(w) = queue.pop_front() else {
                return;
            };
            self.servers[server_no as usize].waiting -= 1;
            let recipients = w.entry.recipients.len();
            let attempt = self.serve(server_no, &w.transport, &w.nexthop, recipients);
            let held = attempt.connected;
            self.report(w.id, w.row, &w.transport, w.entry, attempt);
            if held {
                return;
            }
        }
    }

    /// Connection `conn` waited the whole greeting timeout: if no process
    /// took it, the client gives up now.
    pub(super) fn greeting_timeout(&mut self, server_no: u32, conn: u64) {
        let queue = &mut self.attempts.queues[server_no as usize];
        let Some(at) = queue.iter().position(|w| w.conn == conn) else {
            return;
        };
        let w = queue.remove(at).expect("found above");
        self.servers[server_no as usize].waiting -= 1;
        let mut attempt =
            world::greeting_timeout(&self.scenario, &w.nexthop, w.entry.recipients.len());
        // The wait was the timeout.
        attempt.latency = Duration::ZERO;
        self.report(w.id, w.row, &w.transport, w.entry, attempt);
    }

    /// A process of server `server_no` takes a connection now.
    fn serve(&mut self, server_no: u32, transport: &str, nexthop: &str, n: usize) -> Attempt {
        let server = &mut self.servers[server_no as usize];
        let attempt = world::attempt(
            &self.scenario,
            &mut self.rng,
            server,
            transport,
            nexthop,
            n,
            self.now,
        );
        if attempt.connected {
            server.active += 1;
            let done = self.now + attempt.latency;
            self.schedule(done, Event::Release(server_no));
        }
        attempt
    }

    /// Records how `attempt` went and sends its report when it ends.
    fn report(&mut self, id: DestId, row: u32, transport: &str, entry: Entry, attempt: Attempt) {
        let done: Instant = self.now + attempt.latency;
        let mut file = self.queues.files.get_mut(self.ids.get(entry.message));
        let arrival = file.as_ref().map_or(self.now, |f| f.arrival);
        self.stats
            .outcome_at(row, &attempt.recipients, done.saturating_since(arrival));
        if let Some(file) = &mut file {
            for (r, status) in entry.recipients.iter().zip(&attempt.recipients) {
                if *status != RecipientStatus::Deferred {
                    file.mark_done(&r.address);
                }
            }
        }
        let deferred = attempt
            .recipients
            .iter()
            .filter(|s| **s == RecipientStatus::Deferred)
            .count();
        let hold = self
            .scenario
            .transports
            .get(transport)
            .map_or(Duration::ZERO, |t| t.defer_log_lock.0);
        let report = DeliveryReport {
            entry: entry.id,
            outcome: attempt.outcome,
            hop: attempt.hop,
            recipients: attempt.recipients,
        };
        if deferred > 0 && !hold.is_zero() {
            let appending = Appending {
                id,
                left: deferred,
                hold,
                report,
            };
            self.schedule(done, Event::Append(entry.message, Box::new(appending)));
            return;
        }
        self.schedule(
            done,
            Event::Send(Addr::Destination(id), Msg::Report(report)),
        );
    }

    /// The next defer log append of a delivery of `message`: made now if
    /// the log is free, else tried again after Postfix's lock delay.
    pub(super) fn append(&mut self, message: MessageId, mut a: Box<Appending>) {
        let locked = self.attempts.defer_locks.get(&message).copied();
        if locked.is_some_and(|until| self.now < until) {
            let wait = Duration::from_millis(750 + (500.0 * self.rng.unit()) as u64);
            self.schedule(self.now + wait, Event::Append(message, a));
            return;
        }
        let free = self.now + a.hold;
        self.attempts.defer_locks.insert(message, free);
        a.left -= 1;
        if a.left > 0 {
            self.schedule(free, Event::Append(message, a));
        } else {
            let report = a.report;
            self.schedule(
                free,
                Event::Send(Addr::Destination(a.id), Msg::Report(report)),
            );
        }
    }
}
