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

use crate::effect::{Addr, DestId, DestKey, Msg};
use crate::entry::{AgentId, DeliveryReport, Dsn, Entry, RecipientStatus};
use crate::events::{Event, EventLoop};
use crate::name::{FastMap, Name, SortKey};
use crate::sim::world::{self, Attempt, Happening, Listen, Peer, World};
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
    /// The message's file.
    file: SortKey,
    /// What is being delivered.
    entry: Entry,
}

/// A delivery whose deferred recipients are being appended to their
/// message's defer log, one at a time, before the agent reports.
#[derive(Debug)]
pub struct Appending {
    /// The destination to report to.
    id: DestId,
    /// Its summary row.
    row: u32,
    /// Appends still to make.
    left: usize,
    /// How long each holds the lock.
    hold: Duration,
    /// The report, sent after the last append.
    report: DeliveryReport,
}

/// Every server's listen queue, and every message's defer log lock.
#[derive(Debug, Default)]
pub(crate) struct AttemptState {
    /// Waiting connections, oldest first, by server number.
    queues: Vec<VecDeque<Waiting>>,
    /// The last connection number handed out.
    conns: u64,
    /// Until when each message's defer log is locked, by queue ID
    /// (lookups only).
    defer_locks: FastMap<Name, Instant>,
}

impl AttemptState {
    /// A message left the active queue: its defer log lock goes.
    pub(crate) fn forget(&mut self, file: &Name) {
        if !self.defer_locks.is_empty() {
            self.defer_locks.remove(file);
        }
    }
}

impl World {
    /// Connects to `transport`'s delivery agent: it is ready (or found
    /// down) after the transport's connect time.
    pub fn alloc_agent(&mut self, lp: &mut EventLoop<Happening>, transport: Name, agent: AgentId) {
        let behaviour = self
            .scenario
            .transports
            .get(transport.as_str())
            .cloned()
            .unwrap_or_default();
        let now = lp.now();
        let at = Duration(now.as_millis());
        let down = behaviour.down.iter().any(|p| p.from.0 <= at && at < p.to.0);
        let msg = if down {
            Msg::AgentFailed {
                agent,
                dsn: Dsn::new("4.3.0", "mail transport unavailable"),
            }
        } else {
            Msg::AgentReady(agent)
        };
        lp.at(
            now + behaviour.connect.0,
            Event::Send(Addr::Transport(transport), msg),
        );
    }

    /// Starts the delivery of `entry` (of queue file `file`) that
    /// destination `id`, whose world state is `peer`, asked for.
    #[allow(clippy::too_many_arguments)]
    pub fn deliver(
        &mut self,
        lp: &mut EventLoop<Happening>,
        peer: &mut Peer,
        id: DestId,
        dest: &DestKey,
        nexthop: &Name,
        entry: Entry,
        file: &SortKey,
    ) {
        if peer.row == u32::MAX {
            peer.row = self.stats.row(dest);
        }
        let (row, server_no) = (peer.row, peer.server);
        let now = lp.now();
        let server = &self.servers[server_no as usize];
        let recipients = entry.recipients.len();
        match world::listen(
            &self.scenario,
            server,
            &dest.transport,
            nexthop,
            recipients,
            now,
        ) {
            Listen::Serve => {
                let attempt = self.serve(lp, server_no, &dest.transport, nexthop, recipients);
                self.stats.select_at(now, row);
                self.report(lp, id, row, &dest.transport, file, entry, attempt);
            }
            Listen::Overflow(attempt) => {
                self.stats.select_at(now, row);
                self.report(lp, id, row, &dest.transport, file, entry, attempt);
            }
            Listen::Wait => {
                self.stats.select_at(now, row);
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
                    file: file.clone(),
                    entry,
                });
                let timeout = world::greeting_timeout(&self.scenario, nexthop, 0).latency;
                lp.at(
                    now + timeout,
                    Event::World(Happening::Greeting {
                        server: server_no,
                        conn,
                    }),
                );
            }
        }
    }

    /// A session with server `server_no` ended: its process takes the
    /// oldest waiting connections, until one holds it.
    pub(crate) fn release(&mut self, lp: &mut EventLoop<Happening>, server_no: u32) {
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
            let attempt = self.serve(lp, server_no, &w.transport, &w.nexthop, recipients);
            let held = attempt.connected;
            self.report(lp, w.id, w.row, &w.transport, &w.file, w.entry, attempt);
            if held {
                return;
            }
        }
    }

    /// Connection `conn` waited the whole greeting timeout: if no process
    /// took it, the client gives up now.
    pub(crate) fn greeting_timeout(
        &mut self,
        lp: &mut EventLoop<Happening>,
        server_no: u32,
        conn: u64,
    ) {
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
        self.report(lp, w.id, w.row, &w.transport, &w.file, w.entry, attempt);
    }

    /// A process of server `server_no` takes a connection now.
    fn serve(
        &mut self,
        lp: &mut EventLoop<Happening>,
        server_no: u32,
        transport: &str,
        nexthop: &str,
        n: usize,
    ) -> Attempt {
        let now = lp.now();
        let server = &mut self.servers[server_no as usize];
        let attempt = world::attempt(
            &self.scenario,
            &mut self.rng,
            server,
            transport,
            nexthop,
            n,
            now,
        );
        if attempt.connected {
            server.active += 1;
            let done = now + attempt.latency;
            lp.at(done, Event::World(Happening::Release(server_no)));
        }
        attempt
    }

    /// Records how `attempt` went and sends its report when it ends.
    #[allow(clippy::too_many_arguments)]
    fn report(
        &mut self,
        lp: &mut EventLoop<Happening>,
        id: DestId,
        row: u32,
        transport: &str,
        file: &SortKey,
        entry: Entry,
        attempt: Attempt,
    ) {
        let now = lp.now();
        let done: Instant = now + attempt.latency;
        let mut found = self.queues.files.get_mut(file);
        let arrival = found.as_ref().map_or(now, |f| f.arrival);
        self.stats
            .outcome_at(row, &attempt.recipients, done.saturating_since(arrival));
        if let Some(f) = &mut found {
            for (r, status) in entry.recipients.iter().zip(&attempt.recipients) {
                if *status != RecipientStatus::Deferred {
                    f.mark_done(&r.address);
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
                row,
                left: deferred,
                hold,
                report,
            };
            lp.at(
                done,
                Event::World(Happening::Append(file.name().clone(), Box::new(appending))),
            );
            return;
        }
        lp.at(done, Event::World(Happening::Report { id, row, report }));
    }

    /// The next defer log append of a delivery of `file`: made now if
    /// the log is free, else tried again after Postfix's lock delay.
    pub(crate) fn append(
        &mut self,
        lp: &mut EventLoop<Happening>,
        file: Name,
        mut a: Box<Appending>,
    ) {
        let now = lp.now();
        let locked = self.attempts.defer_locks.get(&file).copied();
        if locked.is_some_and(|until| now < until) {
            let wait = Duration::from_millis(750 + (500.0 * self.rng.unit()) as u64);
            lp.at(now + wait, Event::World(Happening::Append(file, a)));
            return;
        }
        let free = now + a.hold;
        self.attempts.defer_locks.insert(file.clone(), free);
        a.left -= 1;
        if a.left > 0 {
            lp.at(free, Event::World(Happening::Append(file, a)));
        } else {
            let Appending {
                id, row, report, ..
            } = *a;
            lp.at(free, Event::World(Happening::Report { id, row, report }));
        }
    }
}
