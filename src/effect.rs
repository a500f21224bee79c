//! The vocabulary between core entities and their hosts.
//!
//! The core is a set of entities (the supervisor, one per transport, one per
//! destination) that never call each other. Each takes `(now, Msg)` and
//! pushes [`Effect`]s: messages for other entities, timers, and requests for
//! the host to do I/O. Two hosts carry out the same effects, both through
//! one [`crate::events::EventLoop`]: the actix actors (one actor per entity,
//! each step a message to it) and the simulator (entities in memory, on a
//! virtual clock). The loop routes `Send`, `Arm` and `FlushAll` itself, in
//! one global order, so both hosts take the same decisions in the same
//! order.
//!
//! # Invariants
//! - an entity only ever learns about another through a `Msg`;
//! - a timer is never cancelled: each carries a generation number and the
//!   entity ignores a stale one, which is cheaper and cannot race.

use crate::control::{Command, Target};
use crate::entry::{AgentId, DeliveryReport, Dsn, Entry, MessageId, Recipient};
use crate::message::{MessageInfo, Verdict};
use crate::name::Name;
use crate::route::Routed;
use crate::scan::{QueueName, ScanFlags};
use crate::time::Instant;
use crate::trace::TraceEvent;

/// The name of a destination: transport plus queue name (Postfix keeps one
/// `QMGR_QUEUE` per such pair).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DestKey {
    /// The transport (master.cf service) name.
    pub transport: Name,
    /// The queue name: the next hop, or `user@nexthop` when the transport's
    /// recipient limit is 1.
    pub queue: Name,
}

impl std::fmt::Display for DestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.transport, self.queue)
    }
}

/// The number of one destination, for addressing it (Postfix points at a
/// `QMGR_QUEUE`; here entities only exchange messages, so they need a name
/// for it that is cheap to carry and to look up).
///
/// Every message to or about a destination used to carry its [`DestKey`],
/// and each hop cost a hash of two names and a search of a map of ten
/// thousand destinations, mostly cache misses. A `DestId` is its
/// transport's number (given by the host that creates the transport) and a
/// slot in that transport's table (given by the transport when it creates
/// the destination), so a host finds the entity by indexing, and the
/// transport finds its view of the destination the same way.
///
/// # Invariants
/// - no two destinations of one host ever have the same id: a slot is
///   reused only after the transport has sent `Stop` to its previous
///   holder, and the id also carries the destination's epoch (its
///   transport's count of destinations created), so a message still meant
///   for a forgotten destination (a timer, or an answer it sent after its
///   transport forgot it) can be told from one for the slot's new holder;
/// - ids appear in no trace or log line: those keep the names, so traces
///   do not depend on how slots are handed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DestId {
    /// The transport's number (see [`crate::transport::Transport::new`]).
    pub transport: u32,
    /// The destination's slot in its transport's table.
    pub slot: u32,
    /// The destination's epoch, as in [`Effect::Spawn`].
    pub epoch: u64,
}

impl std::fmt::Display for DestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "t{}.d{}.e{}", self.transport, self.slot, self.epoch)
    }
}

/// Which entity a message is for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Addr {
    /// The one supervisor (active queue, admission, completion).
    Supervisor,
    /// The transport of that name.
    Transport(Name),
    /// One destination queue, by number.
    Destination(DestId),
}

/// Timers an entity arms for itself; each carries the entity's generation
/// at arming time so that a stale one is ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// Supervisor: `queue_run_delay` elapsed, start a deferred scan.
    QueueRun,
    /// Transport: `transport_retry_time` elapsed, revive a dead transport.
    TransportRetry(u64),
    /// Transport: the rate delay after an agent became ready has elapsed.
    RateDelay(AgentId),
    /// Destination: `minimal_backoff_time` elapsed, revive a dead site.
    Unthrottle(u64),
    /// Destination: `_destination_rate_delay` elapsed, resume delivery.
    Resume(u64),
    /// Destination, adaptive policy: try the held entry of a dead site
    /// (`crate::adaptive::probe`).
    Probe(u64),
    /// Supervisor: a suspension's `--for` elapsed (the number says which).
    SuspensionEnd(u64),
}

/// Messages to entities, from other entities or from the host.
#[derive(Clone, Debug, PartialEq)]
pub enum Msg {
    // ---- to the supervisor, from the host ----
    /// Trigger bytes as read from the `public/qmgr` socket or FIFO.
    Trigger(Vec<u8>),
    /// The answer to [`Effect::ScanNext`]: the next queue file, or `None`
    /// when the scan reached its end.
    ScanResult {
        /// The queue that was scanned.
        queue: QueueName,
        /// The file's queue ID, if any.
        id: Option<Name>,
    },
    /// The answer to [`Effect::Admit`]: the message's first recipients,
    /// resolved by the host (trivial-rewrite in the daemon).
    Admitted {
        /// What the host read from the envelope. Boxed: it is the largest
        /// message by far, and every message and effect is as big as the
        /// largest, so every other one was copied at its size.
        info: Box<MessageInfo>,
        /// The recipients read in this batch, resolved.
        recipients: Vec<Routed>,
        /// True when more recipients remain on file (a refill will follow).
        more: bool,
    },
    /// The answer to [`Effect::Refill`]: the next recipients of an admitted
    /// message, resolved.
    Refilled {
        /// The message.
        message: MessageId,
        /// The recipients read in this batch, resolved.
        recipients: Vec<Routed>,
        /// True when still more remain on file.
        more: bool,
        /// The file could not be read: the message is kept for a later
        /// attempt (marked deferred), so recipients not yet read are never
        /// dropped with a file removed as "done".
        read_error: bool,
    },
    /// The file could not be admitted (not ready, locked, corrupt, gone).
    AdmitFailed {
        /// The queue ID.
        id: Name,
    },
    /// The host finished carrying out one [`Effect::Complete`] (only to a
    /// supervisor that counts completions).
    Completed,
    // ---- to the supervisor, from entities ----
    /// A delivery request finished, or was retired without an attempt.
    EntryDone {
        /// Its message.
        message: MessageId,
        /// How many recipients it held.
        recipients: u32,
        /// True when the message must be retried later.
        deferred: bool,
    },
    /// Adaptive policy: a destination died or came back
    /// (`crate::adaptive::backlog` holds or releases its deferred files).
    SiteStatus {
        /// The destination.
        dest: DestKey,
        /// It is dead now (else it came back).
        dead: bool,
    },
    /// Recipients the queue manager itself deferred because even the
    /// `retry` path is dead (Postfix writes their defer log records).
    DeferNow {
        /// The entry being retired.
        entry: Entry,
        /// The reason recorded for each recipient (boxed, as it is rare
        /// and would otherwise set the size of every message).
        dsn: Box<Dsn>,
    },
    // ---- to a transport ----
    /// Queue an entry for one of this transport's destinations.
    Enqueue {
        /// The queue name.
        queue: Name,
        /// The next hop handed to the agent.
        nexthop: Name,
        /// The request.
        entry: Entry,
        /// Messages in the active queue as the entry is made (Postfix's
        /// `qmgr_message_count`, the base of the clog warning).
        active: u32,
    },
    /// A destination's spare capacity changed: `min(window - busy, todo)`
    /// while ready, else 0.
    Capacity {
        /// The destination.
        dest: DestId,
        /// Deliveries it could start now.
        slots: u32,
    },
    /// A destination is empty and asks to be forgotten (when ready) or
    /// kept as a dead-destination cache entry (when dead); `received` counts
    /// the entries it was ever given, so the transport can tell whether one
    /// is still on its way.
    Idle {
        /// The destination.
        dest: DestId,
        /// Entries received so far.
        received: u64,
        /// It is dead: it stays in memory to remember that, unless the
        /// cache is full.
        dead: bool,
    },
    /// Adaptive policy: the concurrency ceiling a destination learned
    /// (`crate::adaptive::window`), sent by a destination about to be
    /// forgotten to its transport, and by the transport to the next
    /// destination of the same name.
    Learned {
        /// The destination.
        dest: DestId,
        /// What it learned.
        learned: crate::adaptive::window::Learned,
    },
    /// A destination had no work for the agent it was offered.
    NoWork {
        /// The destination.
        dest: DestId,
        /// The agent to place elsewhere or close.
        agent: AgentId,
    },
    /// A delivery over this transport completed without a crash.
    Revive,
    /// A delivery agent refused a request (`Outcome::Refused`): the
    /// transport is dead for `transport_retry_time` with this reason.
    Refused(Dsn),
    /// From the host: a connection to the delivery agent is ready.
    AgentReady(AgentId),
    /// From the host: the agent could not be reached (Postfix kills the
    /// transport for `transport_retry_time`).
    AgentFailed {
        /// The connection that failed.
        agent: AgentId,
        /// Why, e.g. `4.3.0 mail transport unavailable`.
        dsn: Dsn,
    },
    // ---- to a destination ----
    /// A new entry for this destination, from its transport.
    Accept {
        /// The request.
        entry: Entry,
        /// Messages in the active queue as the entry was made.
        active: u32,
        /// Whether the transport has other destinations (the clog
        /// warning then suggests a transport of its own).
        peers: bool,
    },
    /// The transport offers an agent: start the oldest todo entry.
    Take(AgentId),
    /// The agent's answer for a busy entry.
    Report(DeliveryReport),
    /// Move every todo entry to `retry` (the transport died).
    DeferTodo(Dsn),
    /// The transport agreed this destination is idle: stop.
    Stop,
    // ---- operator commands (`crate::control`) ----
    /// From the host: an operator's command, to the supervisor.
    Control(Command),
    /// To transports, then their destinations: hold back every destination
    /// `target` covers; each hands its waiting entries back (`Withdrawn`).
    AdminSuspend(Target),
    /// To transports, then their destinations: `target`'s suspension ended.
    AdminResume(Target),
    /// To a transport, then the destination of that queue name: revive it
    /// if dead and report the messages it deferred (`FlushReport`).
    FlushOne(Name),
    /// To the supervisor: the waiting entries of a destination that was
    /// just suspended, to be deferred with the suspension's reason.
    Withdrawn {
        /// The destination.
        dest: DestKey,
        /// Its next hop (to route the entries back when the suspension
        /// ended meanwhile).
        nexthop: Name,
        /// Its entries, none started.
        entries: Vec<Entry>,
    },
    /// To the supervisor: the answer to `FlushOne`.
    FlushReport {
        /// The destination.
        dest: DestKey,
        /// Whether it was in memory.
        found: bool,
        /// The messages it deferred lately.
        messages: Vec<MessageId>,
    },
    // ---- to transports and destinations ----
    /// The `F` trigger: forget dead state now.
    Flush,
    /// A timer this entity armed.
    Timer(Timer),
}

/// Where a host-performed deferral or bounce record is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogLevel {
    /// `info` (Postfix: `msg_info`).
    Info,
    /// `warning:` (Postfix: `msg_warn`).
    Warning,
}

/// What an entity asks its host to do.
#[derive(Clone, Debug, PartialEq)]
#[must_use]
pub enum Effect {
    /// Deliver `msg` to entity `to`, after every message sent before it.
    Send(Addr, Msg),
    /// Create the destination entity before the `Send` that follows.
    Spawn {
        /// Its number, by which every message for it is addressed.
        id: DestId,
        /// Its name.
        key: DestKey,
        /// Its next hop.
        nexthop: Name,
        /// Distinguishes this incarnation from earlier destinations of the
        /// same name, so a timer armed by a forgotten one cannot act on it.
        epoch: u64,
    },
    /// Deliver `Msg::Timer(timer)` to `owner` at `at`.
    Arm {
        /// Who armed it: always the entity whose step produced the effect
        /// (the actors' host runs the timer on that entity's actor).
        owner: Addr,
        /// When it fires.
        at: Instant,
        /// What it is.
        timer: Timer,
    },
    /// Connect to the transport's delivery agent; answer with
    /// `AgentReady` or `AgentFailed`.
    AllocAgent {
        /// The transport.
        transport: Name,
        /// The number of this connection.
        agent: AgentId,
    },
    /// Close an agent connection that got no work.
    CloseAgent {
        /// The transport.
        transport: Name,
        /// The connection.
        agent: AgentId,
    },
    /// Send a delivery request over a ready agent; the answer goes back to
    /// the destination as `Msg::Report`.
    Deliver {
        /// The connection.
        agent: AgentId,
        /// The destination's number (where the report goes).
        id: DestId,
        /// The destination's name.
        dest: DestKey,
        /// Its next hop.
        nexthop: Name,
        /// The request.
        entry: Entry,
    },
    /// (Re)start a scan of a queue directory with these flags.
    ScanStart {
        /// Which queue.
        queue: QueueName,
        /// Scan flags (ALL, FLUSH...).
        flags: ScanFlags,
    },
    /// Ask a scan for its next file; answer with `Msg::ScanResult`.
    ScanNext(QueueName),
    /// Move a file into `active/`, read and resolve its envelope; answer
    /// with `Msg::Admitted` or `Msg::AdmitFailed`.
    Admit {
        /// The queue it was found in.
        queue: QueueName,
        /// Its queue ID.
        id: Name,
        /// The scan's flags, which become the message's flags.
        flags: ScanFlags,
        /// The number the message gets in the core.
        message: MessageId,
        /// Read at most this many recipients now; the rest by `Refill`.
        batch: u32,
    },
    /// Send `Msg::Flush` to every transport (the `F` trigger).
    FlushAll,
    /// Make these deferred files due now (as the flush daemon does for
    /// `postqueue -s`: their next-attempt stamp becomes now); a deferred
    /// scan follows. Files no longer in `deferred/` are skipped.
    Retry(Vec<Name>),
    /// Read the next batch of recipients of an admitted message; answer
    /// with `Msg::Refilled`.
    Refill {
        /// The message.
        message: MessageId,
        /// Read at most this many recipients.
        batch: u32,
    },
    /// Log a recipient as discarded (`status=sent (undeliverable
    /// postmaster notification discarded)`) and mark it done.
    Discard {
        /// Its message.
        message: MessageId,
        /// The recipient.
        recipient: Recipient,
    },
    /// Write defer log records for recipients the queue manager defers
    /// itself, and log them as deferred.
    DeferRecipients {
        /// Their message.
        message: MessageId,
        /// The recipients.
        recipients: Vec<Recipient>,
        /// The reason.
        dsn: Dsn,
    },
    /// The sender is told the delay is over, before the verdict of the
    /// same message. A record for the simulator's count and trace: a host
    /// on real queue files has nothing to do for it, as the notice rides
    /// on the message's `REC_DLY_SENT` trace flag, set when the file is
    /// read, and goes out with the completion's trace flush.
    DelayCleared(MessageId),
    /// The message's last entry finished: carry out the verdict (bounce
    /// flush, warning, expiry, backoff and move, or removal).
    Complete {
        /// The message.
        message: MessageId,
        /// What to do with its file.
        verdict: Verdict,
    },
    /// A log line in Postfix's words.
    Log(LogLevel, String),
    /// A scheduling event for traces and introspection.
    Trace(TraceEvent),
}

/// Collects effects; entity methods push into it, hosts drain it.
#[derive(Debug, Default)]
#[must_use]
pub struct Effects {
    /// Effects in the order they were produced.
    pub list: Vec<Effect>,
    /// Trace events are not wanted: they are not even built, which keeps
    /// their string copies off the hot path of long runs.
    untraced: bool,
}

impl Effects {
    /// An empty collector.
    pub fn new() -> Effects {
        Effects::default()
    }

    /// Appends one effect.
    pub fn push(&mut self, effect: Effect) {
        self.list.push(effect);
    }

    /// Appends a message to another entity.
    pub fn send(&mut self, to: Addr, msg: Msg) {
        self.list.push(Effect::Send(to, msg));
    }

    /// A collector that drops trace events unbuilt.
    pub fn untraced() -> Effects {
        Effects {
            list: Vec::new(),
            untraced: true,
        }
    }

    /// Appends the trace event `event` builds, if traces are wanted.
    pub fn trace(&mut self, event: impl FnOnce() -> TraceEvent) {
        if !self.untraced {
            self.list.push(Effect::Trace(event()));
        }
    }

    /// Takes every collected effect, leaving the collector empty.
    pub fn drain(&mut self) -> std::vec::Drain<'_, Effect> {
        self.list.drain(..)
    }
}
