//! The simulated remote servers: how each next hop answers a delivery
//! agent (latency, connection and process limits, listen queues, outages,
//! per-recipient failures), as pure functions of the scenario, the
//! server's state and the random source. `attempt.rs` runs them for the
//! world's agents.

use crate::entry::{Dsn, Outcome, RecipientStatus};
use crate::route::{ERROR, RETRY};
use crate::sim::rng::Rng;
use crate::sim::scenario::{Latency, ListenOverflow, OutageKind, Scenario, ServerBehaviour};
use crate::time::{Duration, Instant};

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
