//! Delivery requests and what comes back from them (Postfix: `qmgr_entry.c`,
//! `qmgr_deliver.c`, the `RECIPIENT` and `DSN` structures).
//!
//! An [`Entry`] is one delivery request: a batch of recipients of one message
//! for one destination. It waits in its destination's `todo` list, is handed
//! to an agent (then it is `busy`), and ends with a [`DeliveryReport`].
//! Entries move between actors (a dead destination hands its `todo` entries
//! to the `retry` transport), so they carry their recipients by value.
//!
//! # Invariants
//! - an entry always has at least one recipient;
//! - every entry holds one reference on its message until it is done.

use std::fmt;

/// Sequential message number assigned by the host at admission; the
/// simulator uses it as the queue ID, the daemon maps it to one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(pub u64);

/// Sequential entry number, unique for the life of the process, so that a
/// late report can never be matched to a different entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryId(pub u64);

/// A delivery agent connection, numbered by the transport that asked for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AgentId(pub u64);

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "m{}", self.0)
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "e{}", self.0)
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a{}", self.0)
    }
}

/// One recipient as the queue file gives it (Postfix: `RECIPIENT`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient {
    /// Offset of its `R` record in the queue file, so an agent can mark it
    /// done in place; 0 in the simulator.
    pub offset: u64,
    /// The address to deliver to (after resolving).
    pub address: String,
    /// The original recipient (`O` record), or empty.
    pub orig_address: String,
    /// DSN original recipient (`o` record), or empty.
    pub dsn_orcpt: String,
    /// DSN notify flags (`n` record), 0 when unset.
    pub dsn_notify: u32,
}

impl Recipient {
    /// A recipient with only an address, as the simulator makes them.
    pub fn new(address: impl Into<String>) -> Recipient {
        Recipient {
            offset: 0,
            address: address.into(),
            orig_address: String::new(),
            dsn_orcpt: String::new(),
            dsn_notify: 0,
        }
    }
}

/// An enhanced status code and its text (Postfix: `DSN`, reduced to what the
/// scheduler keeps: the hop status of a dead site or transport).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dsn {
    /// `4.4.1`-style status.
    pub status: String,
    /// Human-readable reason.
    pub reason: String,
}

impl Dsn {
    /// A status and its reason.
    pub fn new(status: impl Into<String>, reason: impl Into<String>) -> Dsn {
        Dsn {
            status: status.into(),
            reason: reason.into(),
        }
    }

    /// True when `status` is an RFC 3463 enhanced status code as Postfix
    /// accepts one (`dsn_util.c` `dsn_valid`): a class digit 2, 4 or 5, a
    /// dot, one to three digits, a dot, one to three digits, then the end
    /// or white space (text may follow it). The one check of a status code
    /// in the project: the core's hop status, the custom transports'
    /// results, the queue manager's own defer records.
    pub fn valid_status(status: impl AsRef<[u8]>) -> bool {
        let digits = |s: &[u8]| s.iter().take_while(|b| b.is_ascii_digit()).count();
        let code = status.as_ref();
        let Some((&class, rest)) = code.split_first() else {
            return false;
        };
        let Some(rest) = rest.strip_prefix(b".").filter(|_| b"245".contains(&class)) else {
            return false;
        };
        let subject = digits(rest);
        let Some(rest) = rest[subject..]
            .strip_prefix(b".")
            .filter(|_| (1..=3).contains(&subject))
        else {
            return false;
        };
        let detail = digits(rest);
        // C's isspace(), vertical tab included.
        let space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r');
        (1..=3).contains(&detail) && rest.get(detail).map_or(true, space)
    }

    /// The `retry` queue name Postfix builds from a dead site's status:
    /// `"<status> <reason>"`; the error agent turns it back into a DSN.
    pub fn retry_nexthop(&self) -> String {
        format!("{} {}", self.status, self.reason)
    }
}

impl fmt::Display for Dsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.reason)
    }
}

/// One delivery request (Postfix: `QMGR_ENTRY`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Unique number of this request.
    pub id: EntryId,
    /// The message whose recipients these are.
    pub message: MessageId,
    /// The recipients, at least one, in routing order.
    pub recipients: Vec<Recipient>,
}

/// How a delivery ended, from the scheduler's point of view (Postfix:
/// `qmgr_deliver_update`): the agent's overall status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every recipient finished: delivered or bounced.
    Done,
    /// At least one recipient was deferred; the message must be retried.
    Defer,
    /// The agent died or spoke garbage; nothing is known of the recipients.
    Crash,
    /// The agent could not take the request and acted on no recipient (a
    /// request it rejects, as an agent of another Postfix release does):
    /// the host has recorded the recipients as deferred, and the whole
    /// transport is unusable. Postfix treats a request it cannot hand over
    /// this way: the transport is dead for `transport_retry_time`, with the
    /// report's `hop` as the reason (default `4.3.0 mail transport
    /// unavailable`), and its waiting mail is deferred with it.
    Refused,
}

/// What became of one recipient, for traces, summaries and the framework that
/// writes bounce and defer records for custom transports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RecipientStatus {
    /// Delivered (`status=sent`).
    Sent,
    /// Temporarily failed (`status=deferred`).
    Deferred,
    /// Permanently failed (`status=bounced`).
    Bounced,
}

/// The answer to one delivery request (Postfix: the agent's reply).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryReport {
    /// The request this answers.
    pub entry: EntryId,
    /// The overall outcome.
    pub outcome: Outcome,
    /// The site-level status: `Some` when the destination itself failed
    /// (connection refused, 421, timeout). Only this drives negative
    /// feedback; a recipient's 4xx says nothing about the site.
    pub hop: Option<Dsn>,
    /// Per-recipient results, in the entry's order (may be empty for a crash).
    pub recipients: Vec<RecipientStatus>,
}

#[cfg(test)]
mod tests {
    use super::Dsn;

    #[test]
    fn status_codes_are_checked_as_postfix_dsn_valid_does() {
        for good in [
            "2.0.0",
            "4.4.1",
            "5.1.1",
            "4.123.456",
            "5.0.0 text",
            "4.3.0\t",
            "4.3.0\x0b",
        ] {
            assert!(Dsn::valid_status(good), "{good:?}");
        }
        for bad in [
            "", "4", "4.", "4.4", "4.4.", "3.0.0", "4.1234.1", "4.1.1234", "4.a.1", "4.1.1x",
            "44.1.1", "4..1", "4.1.", ".4.1",
        ] {
            assert!(!Dsn::valid_status(bad), "{bad:?}");
        }
    }
}
