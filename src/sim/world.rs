//! The simulated world: queue directories and remote servers.
//!
//! Stands in for everything the daemon does through I/O: files in
//! `incoming/`, `active/` and `deferred/` with their "next attempt" stamps,
//! directory scans, envelope reading in batches, and the servers behind
//! each next hop with their latency, connection limit, outages and
//! per-recipient failures.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashSet, VecDeque};

use crate::entry::{Dsn, Outcome, Recipient, RecipientStatus};
use crate::message::Warning;
use crate::name::{FastMap, FastState, Name, SortKey};
use crate::route::{Routed, ERROR, RETRY};
use crate::scan::QueueName;
use crate::sim::rng::Rng;
use crate::sim::scenario::{Latency, ListenOverflow, OutageKind, Scenario, ServerBehaviour};
use crate::time::{Duration, Instant};

/// Where a simulated queue file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// `incoming/`.
    Incoming,
    /// `active/`.
    Active,
    /// `deferred/`.
    Deferred,
}

/// One simulated queue file.
#[derive(Clone, Debug)]
pub struct File {
    /// Queue ID (shared with the map key and scan listings).
    pub id: Name,
    /// Where it is.
    pub place: Place,
    /// Next attempt (`mtime` of a deferred file).
    pub mtime: Instant,
    /// Envelope sender (shared by the files of one arrival group).
    pub sender: Name,
    /// Creation time.
    pub create_time: Instant,
    /// Arrival in the queue (for delays).
    pub arrival: Instant,
    /// Delay-warning state (`W` record).
    pub warning: Warning,
    /// VERP: one recipient per delivery.
    pub single_rcpt: bool,
    /// Recipients and whether each is done (boxed: no spare capacity is
    /// kept for a million addresses).
    pub recipients: Vec<(Box<str>, bool)>,
    /// Read position for batches.
    pub cursor: usize,
}

/// The simulated queue directories.
#[derive(Debug, Default)]
pub struct Queues {
    /// Files by queue ID (IDs sort in arrival order). Boxed: IDs arrive
    /// in order, which leaves B-tree nodes about half full, and half-empty
    /// slots of a pointer cost far less than half-empty slots of a file.
    pub files: BTreeMap<SortKey, Box<File>>,
    /// The listing each scan walks.
    pub listing: BTreeMap<QueueName, VecDeque<Name>>,
}

impl Queues {
    /// Takes a new listing of a queue (Postfix scans read the directory
    /// as they go; a snapshot at start is the deterministic equivalent).
    pub fn start_scan(&mut self, queue: QueueName) {
        let want = match queue {
            QueueName::Incoming => Place::Incoming,
            QueueName::Deferred => Place::Deferred,
        };
        let ids = self
            .files
            .values()
            .filter(|f| f.place == want)
            .map(|f| f.id.clone())
            .collect();
        self.listing.insert(queue, ids);
    }

    /// The next file of a scan still in that queue.
    pub fn next(&mut self, queue: QueueName) -> Option<Name> {
        let want = match queue {
            QueueName::Incoming => Place::Incoming,
            QueueName::Deferred => Place::Deferred,
        };
        let list = self.listing.get_mut(&queue)?;
        while let Some(id) = list.pop_front() {
            if self
                .files
                .get(&SortKey::new(&id))
                .is_some_and(|f| f.place == want)
            {
                return Some(id);
            }
        }
        None
    }

    /// Reads the next batch of undone recipients; true when more remain.
    pub fn read_batch<Q>(&mut self, id: &Q, batch: u32) -> (Vec<String>, bool)
    where
        SortKey: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.read_batch_with(id, batch, str::to_string)
    }

    /// Like [`Queues::read_batch`], turning each address into what `f`
    /// makes of it without copying it first.
    pub fn read_batch_with<Q, T>(
        &mut self,
        id: &Q,
        batch: u32,
        f: impl FnMut(&str) -> T,
    ) -> (Vec<T>, bool)
    where
        SortKey: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let file = self.files.get_mut(id).expect("reading a file that exists");
        file.read_batch_with(batch, f)
    }

    /// Marks a recipient done (an agent's `D` record).
    pub fn mark_done<Q>(&mut self, id: &Q, address: &str)
    where
        SortKey: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        if let Some(file) = self.files.get_mut(id) {
            file.mark_done(address);
        }
    }
}

impl File {
    /// Reads the next batch of undone recipients, turning each address
    /// into what `f` makes of it; true when more remain. A method of the
    /// file, so that a host holding the file already does not search the
    /// queue for it again.
    pub fn read_batch_with<T>(
        &mut self,
        batch: u32,
        mut f: impl FnMut(&str) -> T,
    ) -> (Vec<T>, bool) {
        // Sized once: growing from empty reallocates for every batch.
        let left = self.recipients.len().saturating_sub(self.cursor);
        let mut out = Vec::with_capacity(left.min(batch as usize));
        while self.cursor < self.recipients.len() && out.len() < batch as usize {
            let (addr, done) = &self.recipients[self.cursor];
            if !done {
                out.push(f(addr));
            }
            self.cursor += 1;
        }
        let more = self.recipients[self.cursor..].iter().any(|(_, done)| !done);
        (out, more)
    }

    /// Marks the first undone recipient with this address done.
    pub fn mark_done(&mut self, address: &str) {
        if let Some(r) = self
            .recipients
            .iter_mut()
            .find(|(a, d)| &**a == address && !d)
        {
            r.1 = true;
        }
    }
}

/// Resolves a recipient the way the scenario's routes say.
pub fn resolve(scenario: &Scenario, address: &str) -> Routed {
    resolve_with(scenario, address, &mut |text| Name::from(text))
}

/// Like [`resolve`], with `name` making the transport and next hop names,
/// so that a host can hand out shared copies instead of new ones.
pub fn resolve_with(
    scenario: &Scenario,
    address: &str,
    name: &mut dyn FnMut(&str) -> Name,
) -> Routed {
    let (transport, nexthop) = route(scenario, domain_of(address), name);
    Routed {
        recipient: Recipient::new(address),
        class_local: transport == "local",
        transport,
        nexthop,
    }
}

/// The domain part of an address as [`resolve_with`] routes it: after the
/// last `@`, empty when there is none.
pub fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map_or("", |(_, d)| d)
}

/// The transport and next hop of a recipient domain, as the scenario's
/// routes say; the answer depends on the domain alone, so a host may keep
/// it for the next recipient of the same domain.
pub fn route(
    scenario: &Scenario,
    domain: &str,
    name: &mut dyn FnMut(&str) -> Name,
) -> (Name, Name) {
    // Lower case without a copy when it already is.
    let lowered;
    let domain = if domain.bytes().any(|b| b.is_ascii_uppercase()) {
        lowered = domain.to_ascii_lowercase();
        lowered.as_str()
    } else {
        domain
    };
    match scenario.routes.get(domain) {
        Some(route) => match route.split_once(':') {
            Some((t, n)) => (name(t), name(if n.is_empty() { domain } else { n })),
            None => (name(route), name(domain)),
        },
        None => (name("smtp"), name(domain)),
    }
}

/// One simulated remote server's state.
#[derive(Debug, Default)]
pub struct Server {
    /// Connections open now (each holds a server process).
    pub active: u32,
    /// Connections in the listen queue, waiting for a process.
    pub waiting: u32,
}

/// Where a new connection goes, as [`listen`] decides.
#[derive(Clone, Debug)]
pub enum Listen {
    /// A process takes it now: [`attempt`] says how it goes.
    Serve,
    /// Every process is busy: it waits in the listen queue, at most the
    /// greeting timeout, and [`attempt`] runs when a process takes it.
    Wait,
    /// The listen queue is full too: the attempt fails as it says.
    Overflow(Attempt),
}

/// Decides whether a new connection to `nexthop`'s server is served now,
/// waits for a process, or overflows the listen queue. Servers without a
/// `process_limit` serve at once; so does every server while it is down
/// ([`attempt`] answers for the outage) and the pseudo-transports.
pub fn listen(
    scenario: &Scenario,
    server: &Server,
    transport: &str,
    nexthop: &str,
    recipients: usize,
    now: Instant,
) -> Listen {
    if transport == RETRY || transport == ERROR {
        return Listen::Serve;
    }
    let behaviour = behaviour(scenario, nexthop);
    let at = Duration(now.as_millis());
    let down = behaviour
        .outages
        .iter()
        .any(|p| p.from.0 <= at && at < p.to.0);
    if down || behaviour.process_limit == 0 || server.active < behaviour.process_limit {
        return Listen::Serve;
    }
    if server.waiting < behaviour.listen_queue {
        return Listen::Wait;
    }
    Listen::Overflow(match behaviour.listen_overflow {
        ListenOverflow::Drop => site_failure(
            behaviour.timeout.0,
            "4.4.1",
            format!("connect to {nexthop}[127.0.0.1]:25: Connection timed out"),
            recipients,
        ),
        ListenOverflow::Stall => greeting_timeout(scenario, nexthop, recipients),
    })
}

/// A connection no process took within the greeting timeout: the client
/// gives up after waiting that long.
pub fn greeting_timeout(scenario: &Scenario, nexthop: &str, recipients: usize) -> Attempt {
    site_failure(
        behaviour(scenario, nexthop).greeting_timeout.0,
        "4.4.2",
        format!(
            "conversation with {nexthop}[127.0.0.1] timed out while receiving the initial server greeting"
        ),
        recipients,
    )
}

/// A whole delivery deferred for a problem with the site, after `latency`.
fn site_failure(latency: Duration, status: &str, reason: String, recipients: usize) -> Attempt {
    Attempt {
        latency,
        outcome: Outcome::Defer,
        hop: Some(Dsn::new(status, reason)),
        recipients: vec![RecipientStatus::Deferred; recipients],
        connected: false,
    }
}

/// What a simulated delivery attempt comes to.
#[derive(Clone, Debug)]
pub struct Attempt {
    /// How long it takes.
    pub latency: Duration,
    /// Overall outcome.
    pub outcome: Outcome,
    /// Site status, when the site failed.
    pub hop: Option<Dsn>,
    /// Per-recipient results.
    pub recipients: Vec<RecipientStatus>,
    /// Whether it held a server connection.
    pub connected: bool,
}

/// Decides how a delivery attempt to `nexthop` goes at `now`.
pub fn attempt(
    scenario: &Scenario,
    rng: &mut Rng,
    server: &Server,
    transport: &str,
    nexthop: &str,
    recipients: usize,
    now: Instant,
) -> Attempt {
    if transport == RETRY || transport == ERROR {
        // The error agent answers at once with the next hop text as the
        // reason: defer for retry, bounce for error.
        let (outcome, status) = if transport == RETRY {
            (Outcome::Defer, RecipientStatus::Deferred)
        } else {
            (Outcome::Done, RecipientStatus::Bounced)
        };
        return Attempt {
            latency: Duration::ZERO,
            outcome,
            hop: None,
            recipients: vec![status; recipients],
            connected: false,
        };
    }
    let behaviour = behaviour(scenario, nexthop);
    let site_failure = |latency: Duration, status: &str, reason: String| {
        site_failure(latency, status, reason, recipients)
    };
    let at = Duration(now.as_millis());
    if let Some(p) = behaviour
        .outages
        .iter()
        .find(|p| p.from.0 <= at && at < p.to.0)
    {
        return match p.kind {
            OutageKind::Refused => site_failure(
                Duration::from_millis(10),
                "4.4.1",
                format!("connect to {nexthop}[127.0.0.1]:25: Connection refused"),
            ),
            OutageKind::Timeout => site_failure(
                behaviour.timeout.0,
                "4.4.1",
                format!("connect to {nexthop}[127.0.0.1]:25: Connection timed out"),
            ),
        };
    }
    if behaviour.connection_limit > 0 && server.active >= behaviour.connection_limit {
        return site_failure(
            sample(&behaviour.limit_latency, rng),
            "4.7.0",
            format!(
                "host {nexthop}[127.0.0.1] refused to talk to me: 421 4.7.0 too many connections"
            ),
        );
    }
    let latency = sample(&behaviour.latency, rng);
    let statuses: Vec<RecipientStatus> = (0..recipients)
        .map(|_| {
            let x = rng.unit();
            if x < behaviour.bounce_rate {
                RecipientStatus::Bounced
            } else if x < behaviour.bounce_rate + behaviour.defer_rate {
                RecipientStatus::Deferred
            } else {
                RecipientStatus::Sent
            }
        })
        .collect();
    let outcome = if statuses.contains(&RecipientStatus::Deferred) {
        Outcome::Defer
    } else {
        Outcome::Done
    };
    Attempt {
        latency,
        outcome,
        hop: None,
        recipients: statuses,
        connected: true,
    }
}

/// The behaviour of `nexthop`'s server; the simulation always installs a
/// `"*"` default before it runs.
fn behaviour<'a>(scenario: &'a Scenario, nexthop: &str) -> &'a ServerBehaviour {
    scenario
        .destinations
        .get(nexthop)
        .or_else(|| scenario.destinations.get("*"))
        .expect("the simulation installs a \"*\" server behaviour")
}

/// Draws one latency.
pub fn sample(latency: &Latency, rng: &mut Rng) -> Duration {
    let ms = match latency {
        Latency::Fixed { value } => value.0.as_millis() as f64,
        Latency::Uniform { min, max } => {
            let (lo, hi) = (min.0.as_millis() as f64, max.0.as_millis() as f64);
            lo + (hi - lo).max(0.0) * rng.unit()
        }
        Latency::Exponential { mean } => -(mean.0.as_millis() as f64) * (1.0 - rng.unit()).ln(),
        Latency::Lognormal { median, sigma } => {
            median.0.as_millis() as f64 * (sigma * rng.normal()).exp()
        }
    };
    Duration::from_millis(ms.round().clamp(0.0, 86_400_000.0) as u64)
}

/// Reads and resolves the next batch of a file's undone recipients,
/// routing each domain once (`routes`) and sharing transport and next hop
/// names (`names`).
pub(crate) fn read(
    file: &mut File,
    batch: u32,
    scenario: &Scenario,
    names: &mut HashSet<Name, FastState>,
    routes: &mut FastMap<Box<str>, (Name, Name)>,
) -> (Vec<Routed>, bool) {
    file.read_batch_with(batch, |address| {
        let domain = domain_of(address);
        let (transport, nexthop) = match routes.get(domain) {
            Some(route) => route.clone(),
            None => {
                let mut intern = |text: &str| match names.get(text) {
                    Some(name) => name.clone(),
                    None => {
                        let name = Name::from(text);
                        names.insert(name.clone());
                        name
                    }
                };
                let found = route(scenario, domain, &mut intern);
                routes.insert(domain.into(), found.clone());
                found
            }
        };
        Routed {
            recipient: Recipient::new(address),
            class_local: transport == "local",
            transport,
            nexthop,
        }
    })
}

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
