//! Scheduling events, one line each (Postfix: the `destination_concurrency_feedback_debug`
//! log lines, widened to every decision).
//!
//! Every state change in the core pushes one [`TraceEvent`]. Hosts print
//! them: the simulator as its trace (prefixed with the virtual time), the
//! daemon through `tracing` and its introspection sink. The `Display` form is
//! the contract that snapshot tests pin, so numbers are printed with fixed
//! precision and fields in a fixed order, never with `%g`-style formatting.

use std::fmt;

use crate::effect::DestKey;
use crate::entry::{AgentId, EntryId, MessageId, Outcome};
use crate::scan::{QueueName, ScanFlags};
use crate::time::Instant;

/// Why a window changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowCause {
    /// Positive feedback after a delivery without a site problem.
    Success,
    /// Negative feedback after a site-level failure.
    Failure,
    /// A dead destination came back (timer, flush, or success).
    Revive,
    /// A rate-delay suspension ended.
    Resume,
}

/// Window state as the feedback debug line shows it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WindowState {
    /// The transport's concurrency limit (0 = none).
    pub limit: u32,
    /// The window after the change (0 = dead).
    pub window: u32,
    /// Positive feedback accumulator.
    pub success: f64,
    /// Negative feedback accumulator.
    pub failure: f64,
    /// Pseudo-cohort failure count.
    pub fail_cohorts: f64,
    /// The feedback amount applied (0 when none was).
    pub feedback: f64,
}

/// One scheduling decision or state change.
#[derive(Clone, Debug, PartialEq)]
pub enum TraceEvent {
    /// Trigger bytes arrived.
    Trigger(String),
    /// A queue scan started.
    ScanStart(QueueName, ScanFlags),
    /// A message entered the active queue.
    Admit {
        /// The message.
        message: MessageId,
        /// Its queue ID.
        id: String,
        /// Where it came from.
        from: QueueName,
        /// Recipients read in this batch.
        recipients: usize,
    },
    /// An entry was queued at a destination.
    Enqueue {
        /// Destination.
        dest: DestKey,
        /// Entry.
        entry: EntryId,
        /// Its message.
        message: MessageId,
        /// Recipients in it.
        recipients: usize,
    },
    /// A transport asked for a delivery agent.
    Alloc {
        /// Transport.
        transport: String,
        /// Connection number.
        agent: AgentId,
    },
    /// An entry was selected for delivery (it becomes busy).
    Select {
        /// Destination.
        dest: DestKey,
        /// Entry.
        entry: EntryId,
        /// Agent.
        agent: AgentId,
        /// Busy entries after the selection.
        busy: u32,
        /// Window at the time.
        window: u32,
    },
    /// Adaptive policy: the held entry of a dead destination was sent to
    /// an agent alone, to find out whether the site is back.
    Probe {
        /// Destination.
        dest: DestKey,
        /// Entry.
        entry: EntryId,
        /// Agent.
        agent: AgentId,
    },
    /// A delivery ended.
    Done {
        /// Destination.
        dest: DestKey,
        /// Entry.
        entry: EntryId,
        /// Outcome.
        outcome: Outcome,
        /// Site status text, when the site failed.
        hop: Option<String>,
    },
    /// A window changed (positive or negative feedback, revival).
    Window {
        /// Destination.
        dest: DestKey,
        /// Why.
        cause: WindowCause,
        /// State after the change.
        state: WindowState,
    },
    /// A destination was declared dead until the given time.
    Throttle {
        /// Destination.
        dest: DestKey,
        /// Until when.
        until: Instant,
        /// The stored reason.
        reason: String,
    },
    /// A destination was suspended for its rate delay.
    Suspend {
        /// Destination.
        dest: DestKey,
        /// Until when.
        until: Instant,
    },
    /// A transport was declared dead.
    TransportThrottle {
        /// Transport.
        transport: String,
        /// Until when.
        until: Instant,
        /// Reason.
        reason: String,
    },
    /// A dead transport came back.
    TransportUnthrottle(String),
    /// A transport's agent waits for the transport rate delay.
    RateDelay {
        /// Transport.
        transport: String,
        /// Agent.
        agent: AgentId,
        /// Until when.
        until: Instant,
    },
    /// Entries were moved to the `retry` transport without an attempt.
    DeferTodo {
        /// From this destination.
        dest: DestKey,
        /// Entries moved.
        entries: usize,
        /// To this retry queue.
        to: String,
    },
    /// An entry was rerouted because its transport or destination is dead.
    Reroute {
        /// The destination it was meant for.
        dest: DestKey,
        /// Entry.
        entry: EntryId,
        /// The retry queue it goes to.
        to: String,
    },
    /// Recipients deferred by the queue manager itself.
    DeferNow {
        /// Message.
        message: MessageId,
        /// Count.
        recipients: usize,
        /// Reason.
        reason: String,
    },
    /// A double-bounce recipient was discarded.
    Discard {
        /// Message.
        message: MessageId,
        /// Address.
        address: String,
    },
    /// A destination asked to be forgotten and was.
    Forget(DestKey),
    /// Adaptive policy: a newly admitted message goes back to `deferred/`
    /// untried, due at once, as its one destination holds more than its
    /// share of the active queue.
    Postpone {
        /// Message.
        message: MessageId,
        /// Queue ID.
        id: String,
        /// Its destination.
        dest: DestKey,
        /// Messages that destination holds in memory.
        held: u32,
    },
    /// Adaptive policy: the supervisor admits a deferred file it
    /// remembered, for a destination with room.
    Release {
        /// The file's destination.
        dest: DestKey,
        /// Queue ID.
        id: String,
    },
    /// A message was deferred until its next attempt.
    Defer {
        /// Message.
        message: MessageId,
        /// Queue ID.
        id: String,
        /// Next attempt.
        until: Instant,
    },
    /// A delay warning was sent.
    Warn {
        /// Message.
        message: MessageId,
        /// Queue ID.
        id: String,
    },
    /// The sender is told the delay is over (`confirm_delay_cleared`).
    DelayCleared {
        /// Message.
        message: MessageId,
        /// Queue ID.
        id: String,
    },
    /// A message was returned to its sender.
    Expire {
        /// Message.
        message: MessageId,
        /// Queue ID.
        id: String,
        /// `expired` or `force-expired`.
        status: &'static str,
    },
    /// A message left the queue.
    Remove {
        /// Message.
        message: MessageId,
        /// Queue ID.
        id: String,
    },
    /// The `F` trigger revived dead transports and destinations.
    Flush,
    /// An operator's command took effect (`crate::control`), in words.
    Control(String),
    /// A suspended destination handed its waiting entries back.
    Withdraw {
        /// Destination.
        dest: DestKey,
        /// Entries handed back.
        entries: usize,
    },
    /// A clog warning was logged for a destination.
    Clog {
        /// Destination.
        dest: DestKey,
        /// Entries it holds.
        entries: usize,
    },
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Done => "done",
            Outcome::Defer => "defer",
            Outcome::Crash => "crash",
            Outcome::Refused => "refused",
        })
    }
}

impl fmt::Display for WindowCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WindowCause::Success => "unthrottle",
            WindowCause::Failure => "throttle",
            WindowCause::Revive => "revive",
            WindowCause::Resume => "resume",
        })
    }
}

impl fmt::Display for TraceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use TraceEvent::*;
        match self {
            Trigger(bytes) => write!(f, "trigger {bytes:?}"),
            ScanStart(q, flags) => write!(f, "scan {q} start {flags}"),
            Admit { message, id, from, recipients } => {
                write!(f, "admit {message} id={id} from={from} rcpt={recipients}")
            }
            Enqueue { dest, entry, message, recipients } => {
                write!(f, "enqueue {dest} {entry} {message} rcpt={recipients}")
            }
            Alloc { transport, agent } => write!(f, "alloc {transport} {agent}"),
            Select { dest, entry, agent, busy, window } => {
                write!(f, "select {dest} {entry} {agent} busy={busy} window={window}")
            }
            Probe { dest, entry, agent } => write!(f, "probe {dest} {entry} {agent}"),
            Done { dest, entry, outcome, hop } => {
                write!(f, "done {dest} {entry} {outcome}")?;
                if let Some(hop) = hop {
                    write!(f, " hop=\"{hop}\"")?;
                }
                Ok(())
            }
            Window { dest, cause, state } => write!(
                f,
                "{cause} {dest} limit={} window={} success={:.3} failure={:.3} fail_cohorts={:.3} feedback={:.3}",
                state.limit,
                state.window,
                state.success,
                state.failure,
                state.fail_cohorts,
                state.feedback
            ),
            Throttle { dest, until, reason } => {
                write!(f, "dead {dest} until={until} reason=\"{reason}\"")
            }
            Suspend { dest, until } => write!(f, "suspend {dest} until={until}"),
            TransportThrottle { transport, until, reason } => {
                write!(f, "dead transport {transport} until={until} reason=\"{reason}\"")
            }
            TransportUnthrottle(t) => write!(f, "revive transport {t}"),
            RateDelay { transport, agent, until } => {
                write!(f, "rate-delay {transport} {agent} until={until}")
            }
            DeferTodo { dest, entries, to } => {
                write!(f, "defer-todo {dest} entries={entries} to=\"{to}\"")
            }
            Reroute { dest, entry, to } => write!(f, "reroute {dest} {entry} to=\"{to}\""),
            DeferNow { message, recipients, reason } => {
                write!(f, "defer-now {message} rcpt={recipients} reason=\"{reason}\"")
            }
            Discard { message, address } => write!(f, "discard {message} to=<{address}>"),
            Forget(dest) => write!(f, "forget {dest}"),
            Postpone { message, id, dest, held } => {
                write!(f, "postpone {message} id={id} dest={dest} held={held}")
            }
            Release { dest, id } => write!(f, "release {dest} id={id}"),
            Defer { message, id, until } => write!(f, "defer {message} id={id} until={until}"),
            Warn { message, id } => write!(f, "warn {message} id={id}"),
            DelayCleared { message, id } => write!(f, "delay-cleared {message} id={id}"),
            Expire { message, id, status } => write!(f, "{status} {message} id={id}"),
            Remove { message, id } => write!(f, "remove {message} id={id}"),
            Flush => write!(f, "flush dead"),
            Clog { dest, entries } => write!(f, "clog {dest} entries={entries}"),
            Control(text) => write!(f, "ctl {text}"),
            Withdraw { dest, entries } => write!(f, "withdraw {dest} entries={entries}"),
        }
    }
}

/// One line of a host's trace: a scheduling event, a log line of the
/// core's, a configuration warning, or the end of a run cut short. Both
/// hosts print their traces with this type, so the texts compare.
#[derive(Clone, Debug, PartialEq)]
pub enum Line {
    /// A scheduling event.
    Event(TraceEvent),
    /// A log line the core asked for (`Effect::Log`).
    Log(crate::effect::LogLevel, String),
    /// A configuration warning (a parameter replaced by a safe value).
    ConfigWarning(String),
    /// A scenario's operator command line, as the host runs it.
    Command(String),
    /// A line of what such a command printed (the `destinations` table).
    Output(String),
    /// A bounded run reached its time or step limit.
    Stop {
        /// Messages delivered until then.
        steps: u64,
    },
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::effect::LogLevel;
        match self {
            Line::Event(event) => event.fmt(f),
            Line::Log(LogLevel::Info, text) => write!(f, "log info: {text}"),
            Line::Log(LogLevel::Warning, text) => write!(f, "log warning: {text}"),
            Line::ConfigWarning(text) => write!(f, "config warning: {text}"),
            Line::Command(run) => write!(f, "command: {run}"),
            Line::Output(text) => write!(f, "  {text}"),
            Line::Stop { steps } => write!(f, "stop: limit reached (steps={steps})"),
        }
    }
}

impl Line {
    /// The line as a trace prints it, after the time of its step (right
    /// aligned, seconds with three decimals).
    pub fn stamped(&self, at: Instant) -> String {
        format!("{:>11} {self}", at.to_string())
    }
}
