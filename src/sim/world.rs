//! The simulated world: the mail that arrives, the queue directories,
//! and the delivery agents with the servers behind them.
//!
//! Stands in for everything the daemon does through I/O: files in
//! `incoming/`, `active/` and `deferred/` with their "next attempt" stamps,
//! directory scans, envelope reading in batches, and the servers behind
//! each next hop with their latency, connection limit, outages and
//! per-recipient failures (`servers.rs`, run by `attempt.rs`). The queue
//! files and their directories are in `queues.rs`, the scenario's routing
//! of recipients in `routes.rs`; this file runs arrivals and admissions. The
//! scenario's operator commands are among its events too; when one is due
//! it goes back to the host, which runs it (the entities are the host's).
//!
//! [`World`] is what a host hands the core's I/O effects to. Both hosts
//! use it: the simulator calls it from its own loop, and the actor tests
//! plug it in where the daemon has its queue directory and delivery
//! agents (the `oqmgr-devtools` package's `simworld`). Everything it
//! schedules goes into the host's [`EventLoop`], under the same arming
//! numbers in both hosts, so same-instant events fire in the same order.
//!
//! # Invariants
//! - a file is in exactly one place; only an admission moves it into
//!   `active/`, only a completion moves it out;
//! - all randomness comes from the one seeded generator, drawn in the
//!   order deliveries start;
//! - the summary's rows are made on a destination's first delivery, so a
//!   destination that never had one has none.

use std::collections::{HashSet, VecDeque};

use crate::effect::{Addr, DestId, Msg};
use crate::entry::{DeliveryReport, Recipient};
use crate::events::{Event, EventLoop};
use crate::message::{Verdict, Warning};
use crate::name::{FastMap, FastState, Name, SortKey};
use crate::route::Routed;
use crate::scan::{QueueName, ScanFlags};
use crate::sim::attempt::{Appending, AttemptState};
use crate::sim::report::{self, Stats};
use crate::sim::rng::Rng;
use crate::sim::scenario::{CommandAt, Scenario};
use crate::time::{Duration, Instant};

pub use crate::sim::queues::{Envelope, File, Place, Queues};
pub use crate::sim::routes::{domain_of, resolve, resolve_with, route};
pub use crate::sim::servers::{attempt, greeting_timeout, listen, sample, Attempt, Listen, Server};

use crate::sim::queues::{activate, envelope};
use crate::sim::routes::read;

/// Appends `n` in decimal, zero-padded to `width` digits (`{:0width$}`).
pub(crate) fn push_decimal(out: &mut String, n: u64, width: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for _ in (digits.len() - at)..width {
        out.push('0');
    }
    // One copy of the digits, not a push (and a capacity check) each.
    out.push_str(std::str::from_utf8(&digits[at..]).expect("ASCII digits"));
}

/// Something the world schedules for itself.
#[derive(Debug)]
pub enum Happening {
    /// Message `index` of arrival group `group` appears in its queue.
    Arrive {
        /// The arrival group.
        group: usize,
        /// The message within it.
        index: u32,
    },
    /// A connection to the server of that number closes.
    Release(u32),
    /// The greeting timeout of a connection waiting in the listen queue
    /// of a server.
    Greeting {
        /// The server's number.
        server: u32,
        /// The connection's number.
        conn: u64,
    },
    /// The next defer log append of a delivery of that file.
    Append(Name, Box<Appending>),
    /// The scenario's operator command of that number: handed back to the
    /// host, which runs it ([`World::fire`]).
    Command(usize),
    /// An agent reports: the delivery ends for the summary, and the report
    /// goes to the destination.
    Report {
        /// The destination.
        id: DestId,
        /// Its summary row.
        row: u32,
        /// The report.
        report: DeliveryReport,
    },
}

/// What the world keeps for one destination: its summary row, made on its
/// first delivery, and the number of the server behind its next hop. A
/// host keeps it with the destination so that neither is looked up by name
/// again.
#[derive(Clone, Copy, Debug)]
pub struct Peer {
    /// The summary row (`u32::MAX` until the first delivery).
    pub(crate) row: u32,
    /// The server's number.
    pub(crate) server: u32,
}

/// Where an arrival group stands: only its next message sits among the
/// timers (a million queued arrivals would cost more memory than the
/// recipients they bring). Its arming number is the one it would have had
/// had every arrival been armed at the start, so ties break as before.
#[derive(Clone, Copy, Debug)]
struct ArrivalGroup {
    /// Arming number of the group's first message.
    first_seq: u64,
    /// Messages in the group.
    count: u32,
}

/// The simulated world of one run.
#[derive(Debug)]
pub struct World {
    /// The scenario.
    pub(crate) scenario: Scenario,
    /// `delay_warning_time`, for the warning due time of new files.
    delay_warning_time: Duration,
    /// Arrival groups, by index in the scenario.
    groups: Vec<ArrivalGroup>,
    /// One shared copy of each group's sender.
    senders: Vec<Name>,
    /// Transport names and next hops made so far, so that each recipient
    /// shares them instead of holding copies (lookups only).
    names: HashSet<Name, FastState>,
    /// Transport and next hop by recipient domain, as the scenario routes
    /// them: a million recipients share a few thousand domains, and one
    /// lookup here replaces a route search and two name lookups each
    /// (lookups only).
    routes: FastMap<Box<str>, (Name, Name)>,
    /// Queue directories.
    pub queues: Queues,
    /// Remote servers, by number.
    pub(crate) servers: Vec<Server>,
    /// Server numbers by next hop (lookups only).
    server_numbers: FastMap<Name, u32>,
    /// Listen queues, and the senders' defer log locks.
    pub(crate) attempts: AttemptState,
    /// The one random source.
    pub(crate) rng: Rng,
    /// Arrivals not yet happened.
    arrivals_left: u64,
    /// Queue ID counter.
    next_file: u64,
    /// When the last wakeup for new mail was sent: files arriving in the
    /// same instant share one, as cleanup's triggers would share one read.
    last_wakeup: Option<Instant>,
    /// A buffer for the queue IDs and addresses made at each arrival.
    scratch: String,
    /// Counters for the summary.
    pub(crate) stats: Stats,
}

impl World {
    /// The world of `scenario` (checked by the caller), drawing from
    /// `seed`; new files fall due for a delay warning `delay_warning_time`
    /// after their creation (never when zero).
    pub fn new(mut scenario: Scenario, seed: u64, delay_warning_time: Duration) -> World {
        scenario.destinations.entry("*".into()).or_default();
        World {
            scenario,
            delay_warning_time,
            groups: Vec::new(),
            senders: Vec::new(),
            names: HashSet::default(),
            routes: FastMap::default(),
            queues: Queues::default(),
            servers: Vec::new(),
            server_numbers: FastMap::default(),
            attempts: AttemptState::default(),
            rng: Rng::new(seed),
            arrivals_left: 0,
            next_file: 0,
            last_wakeup: None,
            scratch: String::new(),
            stats: Stats::default(),
        }
    }

    /// The scenario.
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// Arms the scenario's arrivals, operator commands and triggers.
    /// Arming numbers are handed out as if every arrival were armed now,
    /// group by group, but only each group's first is queued; commands
    /// and then triggers come after.
    pub fn start(&mut self, lp: &mut EventLoop<Happening>) {
        for group in 0..self.scenario.arrivals.len() {
            let a = &self.scenario.arrivals[group];
            let g = ArrivalGroup {
                first_seq: lp.reserve(u64::from(a.count)),
                count: a.count,
            };
            self.arrivals_left += u64::from(a.count);
            self.senders.push(Name::from(&a.sender));
            self.groups.push(g);
            self.queue_arrival(lp, group, 0);
        }
        for (i, c) in self.scenario.commands.iter().enumerate() {
            lp.at(Instant::ZERO + c.at.0, Event::World(Happening::Command(i)));
        }
        for t in &self.scenario.triggers {
            let at = Instant::ZERO + t.at.0;
            let bytes = t.bytes.clone().into_bytes();
            lp.at(at, Event::Send(Addr::Supervisor, Msg::Trigger(bytes)));
        }
    }

    /// Nothing left to do: every arrival happened and every file is gone.
    pub fn idle(&self) -> bool {
        self.arrivals_left == 0 && self.queues.files.is_empty()
    }

    /// Makes `name` the shared copy of its text, so that recipients routed
    /// from now on carry it (names recognised as the same copy compare by
    /// pointer instead of by text).
    pub fn share_name(&mut self, name: Name) {
        self.names.replace(name);
    }

    /// What the world keeps for a destination whose next hop is
    /// `nexthop`, made when the host creates it.
    pub fn peer(&mut self, nexthop: &Name) -> Peer {
        let server = match self.server_numbers.get(nexthop) {
            Some(&n) => n,
            None => {
                let n = u32::try_from(self.servers.len()).expect("fewer than 2^32 servers");
                self.servers.push(Server::default());
                self.server_numbers.insert(nexthop.clone(), n);
                n
            }
        };
        Peer {
            row: u32::MAX,
            server,
        }
    }

    /// A world event is due. An operator command of the scenario is the
    /// host's to run (it needs the entities): it comes back.
    pub fn fire(&mut self, lp: &mut EventLoop<Happening>, event: Happening) -> Option<CommandAt> {
        match event {
            Happening::Arrive { group, index } => {
                self.arrive(lp, group, index);
                // Every file of one instant lands before the queue manager
                // looks, as when cleanup outpaces it; one wakeup then
                // covers them all.
                while let Some(next) = lp.next_numbered_now() {
                    let Happening::Arrive { group, index } = next else {
                        unreachable!("only arrivals are numbered");
                    };
                    self.arrive(lp, group, index);
                }
            }
            Happening::Release(server) => self.release(lp, server),
            Happening::Greeting { server, conn } => self.greeting_timeout(lp, server, conn),
            Happening::Append(file, appending) => self.append(lp, file, appending),
            Happening::Report { id, row, report } => {
                self.stats.done_at(lp.now(), row);
                lp.send(Addr::Destination(id), Msg::Report(report));
            }
            Happening::Command(i) => return Some(self.scenario.commands[i].clone()),
        }
        None
    }

    /// Queues message `index` of arrival group `group`, if there is one,
    /// under the arming number it was given at the start.
    fn queue_arrival(&mut self, lp: &mut EventLoop<Happening>, group: usize, index: u32) {
        let g = self.groups[group];
        if index >= g.count {
            return;
        }
        let a = &self.scenario.arrivals[group];
        let at = Instant::ZERO + a.at.0 + Duration(a.every.0.as_millis() * u64::from(index));
        lp.at_numbered(
            at,
            g.first_seq + u64::from(index),
            Happening::Arrive { group, index },
        );
    }

    fn arrive(&mut self, lp: &mut EventLoop<Happening>, group: usize, index: u32) {
        self.arrivals_left -= 1;
        self.queue_arrival(lp, group, index + 1);
        let now = lp.now();
        // One buffer for every file of the run: a new one per file was
        // allocated, then grown for the first address, then freed.
        let mut text = std::mem::take(&mut self.scratch);
        text.clear();
        // Borrowed, not cloned: a group may list thousands of domains.
        let a = &self.scenario.arrivals[group];
        self.next_file += 1;
        // Written out rather than `format!`ed: this runs for every file and
        // recipient of a run, and the formatting machinery cost more than
        // the scheduling it feeds.
        text.push('Q');
        push_decimal(&mut text, self.next_file, 6);
        let id = Name::from(text.as_str());
        let recipients = (0..a.recipients)
            .map(|r| {
                let n = index * a.recipients + r;
                let domain = &a.domains[(n as usize) % a.domains.len().max(1)];
                text.clear();
                text.push_str(&a.user);
                if a.numbered {
                    push_decimal(&mut text, u64::from(n) + 1, 0);
                }
                text.push('@');
                text.push_str(domain);
                (Box::from(text.as_str()), false)
            })
            .collect();
        self.scratch = text;
        let warn = self.delay_warning_time;
        let create_time = now - a.age.0;
        let place = if a.queue == "deferred" {
            Place::Deferred
        } else {
            Place::Incoming
        };
        self.queues.files.insert(
            SortKey::new(&id),
            Box::new(File {
                id,
                place,
                mtime: now,
                sender: self.senders[group].clone(),
                create_time,
                arrival: now,
                warning: if warn.is_zero() {
                    Warning::None
                } else {
                    Warning::Due(create_time + warn)
                },
                recipients,
                cursor: 0,
                single_rcpt: a.verp,
            }),
        );
        self.stats.arrived += 1;
        if place == Place::Incoming && self.last_wakeup != Some(now) {
            // cleanup(8) wakes the queue manager after each new file; files
            // of one instant share one wakeup.
            self.last_wakeup = Some(now);
            lp.send(Addr::Supervisor, Msg::Trigger(b"W".to_vec()));
        }
    }

    /// Starts a new walk of `queue`; returns how many files it lists.
    pub fn scan_start(&mut self, queue: QueueName) -> usize {
        self.queues.start_scan(queue);
        self.queues.listing.get(&queue).map_or(0, VecDeque::len)
    }

    /// The next file of the walk of `queue`.
    pub fn scan_next(&mut self, queue: QueueName) -> Option<Name> {
        self.queues.next(queue)
    }

    /// Admits file `id` from `queue` and reads its first `batch`
    /// recipients; `None` when it is not there, or a deferred file not
    /// due yet (Postfix skips files stamped more than a second ahead
    /// unless the scan has ALL).
    pub fn admit(
        &mut self,
        queue: QueueName,
        id: &SortKey,
        flags: ScanFlags,
        now: Instant,
        batch: u32,
    ) -> Option<(Envelope, Vec<Routed>, bool)> {
        let file = activate(&mut self.queues, queue, id, flags, now)?;
        // The file is read through the reference found above: searching
        // a million-file queue again costs more than the reading.
        let (recipients, more) = read(
            file,
            batch,
            &self.scenario,
            &mut self.names,
            &mut self.routes,
        );
        Some((envelope(file), recipients, more))
    }

    /// Admits file `id` from `queue` without reading recipients (a host
    /// that reads them with [`World::read`]); `None` as for
    /// [`World::admit`].
    pub fn admit_envelope(
        &mut self,
        queue: QueueName,
        id: &SortKey,
        flags: ScanFlags,
        now: Instant,
    ) -> Option<Envelope> {
        activate(&mut self.queues, queue, id, flags, now).map(|file| envelope(file))
    }

    /// Reads the next `batch` undone recipients of admitted file `id`;
    /// true when more remain.
    ///
    /// # Panics
    /// When there is no such file.
    pub fn read(&mut self, id: &SortKey, batch: u32) -> (Vec<Routed>, bool) {
        let file = self
            .queues
            .files
            .get_mut(id)
            .expect("reading a file that exists");
        read(
            file,
            batch,
            &self.scenario,
            &mut self.names,
            &mut self.routes,
        )
    }

    /// A recipient the queue manager discarded (a double bounce).
    pub fn discard(&mut self, id: &SortKey, recipient: &Recipient) {
        self.queues.mark_done(id, &recipient.address);
        self.stats.discarded += 1;
    }

    /// Recipients the queue manager deferred itself.
    pub fn defer_recipients(&mut self, count: usize) {
        self.stats.deferred_by_qmgr += count as u64;
    }

    /// Makes the deferred files `ids` due at `now` (an operator's resume
    /// or flush); files no longer in `deferred/` are skipped.
    pub fn retry(&mut self, ids: &[Name], now: Instant) {
        for id in ids {
            if let Some(file) = self.queues.files.get_mut(&SortKey::new(id)) {
                if file.place == Place::Deferred {
                    file.mtime = now;
                }
            }
        }
    }

    /// The sender of a message was told its delay is over.
    pub fn delay_cleared(&mut self) {
        self.stats.delay_cleared += 1;
    }

    /// Carries out the verdict on admitted file `id`.
    ///
    /// # Panics
    /// When there is no such file.
    pub fn complete(&mut self, id: &SortKey, verdict: &Verdict) {
        self.attempts.forget(id.name());
        match *verdict {
            Verdict::Remove => {
                self.queues.files.remove(id);
                self.stats.removed += 1;
            }
            Verdict::Defer { until, warn } => {
                let file = self
                    .queues
                    .files
                    .get_mut(id)
                    .expect("deferring a file that exists");
                file.place = Place::Deferred;
                file.mtime = until;
                file.cursor = 0;
                if warn {
                    file.warning = Warning::Sent;
                    self.stats.warned += 1;
                }
                self.stats.deferred_files += 1;
            }
            Verdict::Expire { .. } => {
                let file = self
                    .queues
                    .files
                    .remove(id)
                    .expect("expiring a file that exists");
                self.stats.expired += 1;
                self.stats.returned += file.recipients.iter().filter(|(_, d)| !d).count() as u64;
            }
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The summary of a run that ended at `now` after `steps` messages.
    pub fn summary(&self, now: Instant, steps: u64) -> String {
        report::summary(&self.stats, &self.queues, now, steps)
    }
}

#[cfg(test)]
mod tests {
    use super::push_decimal;

    #[test]
    fn decimals_pad_like_format() {
        for (n, width) in [
            (0, 6),
            (7, 6),
            (123_456, 6),
            (1_234_567, 6),
            (42, 0),
            (0, 0),
        ] {
            let mut s = String::new();
            push_decimal(&mut s, n, width);
            assert_eq!(s, format!("{n:0width$}"));
        }
    }
}
