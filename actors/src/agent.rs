//! The delivery agent contract (Postfix: `qmgr_deliver.c` and the
//! `deliver_request` protocol of `deliver_request.c`, seen from the queue
//! manager).
//!
//! A transport's mail leaves the scheduler through a [`DeliveryAgent`],
//! registered per transport name with the scheduler builder. Two kinds of
//! agents plug in here through the same seam: a bridge to Postfix's own
//! delivery agents (smtp, local, error... over `private/<service>`), and
//! custom transports written as Rust actors.
//!
//! # The contract
//! 1. **Connect.** When a transport needs a connection (the core's
//!    `AllocAgent`), the scheduler sends [`Connect`] to the agent's optional
//!    connect recipient. `Ok(())` means "ready": the transport will hand it
//!    one delivery. `Err(dsn)` means the agent cannot be reached: the core
//!    declares the whole transport dead for `transport_retry_time` and defers
//!    its waiting mail with that reason (Postfix: `4.3.0 mail transport
//!    unavailable`). An agent without a connect recipient is ready at once
//!    while its mailbox is open.
//! 2. **Deliver.** A ready connection gets at most one [`Deliver`] at a time.
//!    The agent must answer it with a [`DeliveryReport`] whose `entry` is the
//!    request's entry ID and whose `recipients` follow the entry's order.
//!    Set `hop` only when the *site* failed (refused, 421, timeout): it alone
//!    drives negative feedback and can make the destination dead. A recipient's
//!    own 4xx is `Outcome::Defer` with `hop: None`.
//! 3. **Record.** Like Postfix agents, the agent itself records each
//!    recipient's fate in the queue file (marks it done, appends defer and
//!    bounce logs); the scheduler only counts.
//! 4. **Close.** A connection that got no work is released with [`Close`]
//!    (optional recipient).
//!
//! # Failure
//! An agent that stops, or drops a request unanswered, is reported to the
//! destination as `Outcome::Crash`: the core treats it like a crashed Postfix
//! agent, so the mail is deferred, never lost, and the site gets no feedback
//! (docs/postfix-ipc.md §7.5).
//!
//! An agent that took the request but can act on none of it (the Postfix
//! agent of another release rejecting its dialect) answers
//! `Outcome::Refused`, after recording the recipients as deferred (step 3):
//! the core then declares the whole transport dead for
//! `transport_retry_time`, with `hop` as the reason (default `4.3.0 mail
//! transport unavailable`), as for a refused [`Connect`].

use actix::{Message, Recipient};
use oqmgr::effect::DestKey;
use oqmgr::entry::{AgentId, DeliveryReport, Dsn, Entry};

/// One delivery request: a batch of recipients of one message for one
/// destination, answered with a [`DeliveryReport`].
#[derive(Clone, Debug, Message)]
#[rtype(result = "DeliveryReport")]
pub struct Deliver {
    /// The connection chosen by the transport (answered `Ok` to [`Connect`]).
    pub agent: AgentId,
    /// The destination: transport name and queue name.
    pub dest: DestKey,
    /// The next hop to deliver to (Postfix: the request's `nexthop`).
    pub nexthop: String,
    /// The queue ID of the message file, so the agent can read it and mark
    /// recipients done; empty if the scheduler lost track of it (a bug).
    pub queue_id: String,
    /// The request: entry ID, message number and recipients.
    pub entry: Entry,
}

/// A transport asks for a connection to its delivery agent.
#[derive(Clone, Debug, Message)]
#[rtype(result = "Result<(), Dsn>")]
pub struct Connect {
    /// The transport name.
    pub transport: String,
    /// The number of this connection.
    pub agent: AgentId,
}

/// A connection that got no work is released.
#[derive(Clone, Debug, Message)]
#[rtype(result = "()")]
pub struct Close {
    /// The transport name.
    pub transport: String,
    /// The connection.
    pub agent: AgentId,
}

/// A delivery agent as registered for one transport name.
#[derive(Clone)]
pub struct DeliveryAgent {
    /// Where delivery requests go.
    pub deliver: Recipient<Deliver>,
    /// Where connection requests go; `None`: always ready while `deliver`
    /// is connected.
    pub connect: Option<Recipient<Connect>>,
    /// Where idle connections are released; `None`: nothing to release.
    pub close: Option<Recipient<Close>>,
}

impl DeliveryAgent {
    /// An agent that needs no connection step.
    pub fn new(deliver: Recipient<Deliver>) -> DeliveryAgent {
        DeliveryAgent {
            deliver,
            connect: None,
            close: None,
        }
    }

    /// Adds a connection step (the agent may refuse, killing the transport
    /// for a while).
    pub fn with_connect(mut self, connect: Recipient<Connect>) -> DeliveryAgent {
        self.connect = Some(connect);
        self
    }

    /// Adds a release step for connections that got no work.
    pub fn with_close(mut self, close: Recipient<Close>) -> DeliveryAgent {
        self.close = Some(close);
        self
    }
}

impl std::fmt::Debug for DeliveryAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryAgent")
            .field("connect", &self.connect.is_some())
            .field("close", &self.close.is_some())
            .finish()
    }
}

/// The reason a transport without a reachable agent is deferred with
/// (Postfix's wording).
pub fn unavailable() -> Dsn {
    Dsn::new("4.3.0", "mail transport unavailable")
}

/// The report for a request whose agent vanished without answering.
pub fn crashed(entry: &Entry) -> DeliveryReport {
    DeliveryReport {
        entry: entry.id,
        outcome: oqmgr::entry::Outcome::Crash,
        hop: None,
        recipients: Vec::new(),
    }
}
