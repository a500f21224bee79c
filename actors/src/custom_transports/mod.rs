//! custom_transports - custom delivery transports written in Rust, run inside the
//! queue manager beside Postfix's delivery agents (Postfix: the delivery
//! agent side of `global/deliver_request.c`, `deliver_completed.c`,
//! `bounce.c`, `defer.c`, `sent.c`, `trace.c`, `log_adhoc.c`).
//!
//! A custom transport is an actix actor that handles [`Delivery`]: one
//! message, one destination, a batch of recipients. It answers a [`Reply`]
//! with one [`RcptResult`] per recipient (sent, deferred or bounced, each with
//! a DSN status and text) and, when the *site* failed (refused, timed out),
//! a hop status. Everything else is done for it, exactly as a Postfix
//! delivery agent does it, by the [`framework`]:
//! - recipients that were sent or bounced are marked done (`D`) in the
//!   queue file;
//! - bounced and deferred recipients are appended to the `bounce` and
//!   `defer` logs through the bounce daemon, and sent ones to the `trace`
//!   log when DSN NOTIFY=SUCCESS, `sendmail -v` or `confirm_delay_cleared`
//!   ask for it, so bounce notices, delay warnings and success reports are
//!   Postfix's own;
//! - each recipient gets the standard status line, `<id>: to=<..>,
//!   relay=<..>, delay=.., delays=a/b/c/d, dsn=.., status=.. (text)`;
//! - the reply becomes the scheduler's
//!   [`DeliveryReport`](oqmgr::entry::DeliveryReport): the transport
//!   inherits windows, feedback, dead destinations (from the hop status),
//!   rate delays, recipient limits, deferral and expiry.
//!
//! Address-verification probes never reach the actor: the framework
//! answers them "deliverable", as it cannot know better.
//!
//! # Routing and registration
//! Mail is routed exactly as Postfix routes it: trivial-rewrite's answer
//! (`transport_maps`, `default_transport`, ...) names the transport. When
//! that name is registered here, the daemon hands the delivery to the
//! actor instead of `private/<name>`; no master.cf line is needed.
//! Registration is either in code, [`Registrations::add`] passed to
//! [`crate::daemon::main_with`] (or [`Framework::agent`] with
//! [`SchedulerBuilder::with_agent`](crate::scheduler::SchedulerBuilder::with_agent)
//! for a scheduler of your own), or in `$config_directory/oqmgr.toml` for
//! the built-in kinds ([`oqmgr_toml`]):
//! ```toml
//! [transport.hooks]
//! kind = "webhook"
//! url = "http://127.0.0.1:8080/in"
//! timeout = "10s"
//!
//! [transport.mdir]
//! kind = "maildir"
//! root = "/var/mail/maildirs"
//! ```
//!
//! # Example
//! A transport that accepts mail for `ok` local parts and bounces the rest:
//! ```no_run
//! use actix::{Actor, Context, Handler};
//! use oqmgr_actors::custom_transports::{Delivery, RcptResult, Reply};
//!
//! struct Picky;
//!
//! impl Actor for Picky {
//!     type Context = Context<Self>;
//! }
//!
//! impl Handler<Delivery> for Picky {
//!     type Result = Reply;
//!
//!     fn handle(&mut self, d: Delivery, _: &mut Context<Self>) -> Reply {
//!         // The raw message, as the sender wrote it (bounded read).
//!         let text = match d.content.read_all(1 << 20) {
//!             Ok(t) => t,
//!             Err(e) => return Reply::all(&d, RcptResult::deferred("4.3.0", e.to_string())),
//!         };
//!         let results = d
//!             .recipients
//!             .iter()
//!             .map(|r| match r.address.split('@').next() {
//!                 Some("ok") => RcptResult::sent(format!("accepted {} bytes", text.len())),
//!                 _ => RcptResult::bounced("5.1.1", "no such user here"),
//!             })
//!             .collect();
//!         Reply::new(results)
//!     }
//! }
//!
//! fn main() {
//!     // The whole daemon, with `picky` as one more transport name.
//!     oqmgr_actors::daemon::main_with(|reg| {
//!         reg.add("picky", Picky.start().recipient());
//!     });
//! }
//! ```
//!
//! # Failure
//! An actor that stops, or drops a request, makes the delivery a crash:
//! the mail is deferred, never lost. A reply with fewer results than
//! recipients defers the missing ones (`4.3.0`).

pub mod content;
pub mod framework;
pub mod http;
pub mod maildir;
pub mod oqmgr_toml;
pub mod webhook;

use std::fs::File;
use std::path::PathBuf;

use actix::{Message, MessageResponse, Recipient};
pub use framework::{Framework, Registrations};
pub use oqmgr::entry::{Dsn, Recipient as Rcpt, RecipientStatus};

use content::{ContentError, ContentReader};

/// One delivery request: a batch of recipients of one message for one
/// destination of a custom transport.
#[derive(Debug, Message)]
#[rtype(result = "Reply")]
pub struct Delivery {
    /// The transport name the mail was routed to.
    pub transport: String,
    /// The next hop (trivial-rewrite's answer; the recipient domain when
    /// `transport_maps` gave none).
    pub nexthop: String,
    /// The queue ID.
    pub queue_id: String,
    /// The envelope sender; empty for the null sender (bounces).
    pub sender: String,
    /// The recipients, in the order the reply must follow.
    pub recipients: Vec<Rcpt>,
    /// The message text.
    pub content: Content,
}

/// Where a message's text is: the queue file and its content offset.
#[derive(Clone, Debug)]
pub struct Content {
    /// The queue file.
    pub path: PathBuf,
    /// The first content record (`C` record's `data_offset`).
    pub data_offset: i64,
    /// The size of the content records (`C` record's `data_size`): a
    /// little more than the text, a good guess for buffers.
    pub size_hint: u64,
}

impl Content {
    /// Streams the text (lines end in `\n`).
    ///
    /// # Errors
    /// The queue file cannot be opened or the offset is bad.
    pub fn reader(&self) -> Result<ContentReader<File>, ContentError> {
        ContentReader::open(&self.path, self.data_offset)
    }

    /// Reads the whole text, at most `limit` bytes.
    ///
    /// # Errors
    /// [`ContentError`], including a text longer than `limit`.
    pub fn read_all(&self, limit: usize) -> Result<Vec<u8>, ContentError> {
        content::read_content(&self.path, self.data_offset, limit)
    }
}

/// What became of one recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RcptResult {
    /// Sent, deferred or bounced.
    pub status: RecipientStatus,
    /// The DSN status (`2.0.0`, `4.4.1`, `5.1.1`, ...) and text. A status
    /// whose class does not match (`5.x` for a deferral, ...) is replaced
    /// by `2.0.0`, `4.0.0` or `5.0.0` with a warning, as Postfix does.
    pub dsn: Dsn,
}

impl RcptResult {
    /// Delivered: `2.0.0` and `text` (shown in the status line).
    pub fn sent(text: impl Into<String>) -> RcptResult {
        RcptResult {
            status: RecipientStatus::Sent,
            dsn: Dsn::new("2.0.0", text),
        }
    }

    /// Try again later (`4.x.y`).
    pub fn deferred(status: impl Into<String>, text: impl Into<String>) -> RcptResult {
        RcptResult {
            status: RecipientStatus::Deferred,
            dsn: Dsn::new(status, text),
        }
    }

    /// Permanent failure (`5.x.y`): returned to the sender.
    pub fn bounced(status: impl Into<String>, text: impl Into<String>) -> RcptResult {
        RcptResult {
            status: RecipientStatus::Bounced,
            dsn: Dsn::new(status, text),
        }
    }
}

/// A transport's answer to a [`Delivery`]; a handler may return it
/// directly (synchronous work) or from a `ResponseFuture`.
#[derive(Clone, Debug, Default, PartialEq, Eq, MessageResponse)]
pub struct Reply {
    /// One result per recipient, in the request's order.
    pub recipients: Vec<RcptResult>,
    /// Set only when the destination itself failed (refused, timed out):
    /// negative feedback, which can make the destination dead for a while.
    /// A recipient's own failure is not a hop failure.
    pub hop: Option<Dsn>,
    /// What the status lines show as `relay=` (default: the transport
    /// name).
    pub relay: Option<String>,
}

impl Reply {
    /// A reply with these per-recipient results.
    pub fn new(recipients: Vec<RcptResult>) -> Reply {
        Reply {
            recipients,
            hop: None,
            relay: None,
        }
    }

    /// The same result for every recipient of `d`.
    pub fn all(d: &Delivery, result: RcptResult) -> Reply {
        Reply::new(vec![result; d.recipients.len()])
    }

    /// The destination failed: every recipient deferred with `dsn`, and
    /// `dsn` as the hop status.
    pub fn site_failure(d: &Delivery, dsn: Dsn) -> Reply {
        let mut reply = Reply::all(
            d,
            RcptResult {
                status: RecipientStatus::Deferred,
                dsn: dsn.clone(),
            },
        );
        reply.hop = Some(dsn);
        reply
    }

    /// Sets the `relay=` text.
    pub fn with_relay(mut self, relay: impl Into<String>) -> Reply {
        self.relay = Some(relay.into());
        self
    }
}

/// A transport actor's mailbox, as registered.
pub type CustomTransport = Recipient<Delivery>;
