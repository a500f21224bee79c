//! recipient_log - what is recorded about one recipient once it is
//! settled: its record in the bounce, defer or trace log (through the
//! bounce daemon), its status line, and its `D` mark in the queue file
//! (Postfix: `global/bounce.c` `bounce_append`, `defer.c` `defer_append`,
//! `trace.c` `trace_append`, `sent.c`, `deliver_completed.c`,
//! `log_adhoc.c`).
//!
//! Postfix's delivery agents do this for the mail they deliver. Two parts
//! of the daemon do it in an agent's place: the completion worker
//! ([`super::worker`]: double-bounce discards, and deferrals when the
//! `retry` agent cannot take them) and the custom-transport framework
//! ([`crate::custom_transports::framework`]: every recipient a custom
//! transport answered for). Both go through [`RecipientLog`], so records,
//! status lines and queue-file edits are written one way.
//!
//! # Invariants
//! - Queue files are named relative to the queue directory, which is the
//!   daemon's working directory (the daemon chdirs there at start, as
//!   Postfix's daemons do); the services' sockets are reached through the
//!   absolute `queue_directory`.
//! - Queue files are opened only through
//!   [`crate::postfix::mail_open_ok::open_queue_file`].
//! - A service that cannot be reached, hangs up or answers no status is
//!   named in a warning saying what happened (`<id>: defer service
//!   failure: connect to private/defer: No such file or directory`); a
//!   defer or trace service that answers with a failure gets Postfix's
//!   `<id>: defer service failure`. (A failed bounce APPEND is not
//!   warned about there: as in Postfix, the caller defers the recipient
//!   instead, and that line says why.)

use std::io;

use oqmgr::entry::{Dsn, Recipient};
use oqmgr::time::Instant;

use super::active_table::{timeval, wire_recipient, ActiveMessage};
use super::adhoc::{status_line, Times};
use super::site::Site;
use crate::postfix::attr::{IpcError, Timeval, WireDsn};
use crate::postfix::bounce::{self, BounceRequest};
use crate::postfix::log::errno_text;
use crate::postfix::mail_open_ok::{open_queue_file, Access};
use crate::postfix::queue_file::TRACE_FLAGS_MASK;
use crate::postfix::queue_file_write::mark_recipient_done;

/// The recording of the recipients of one message handed to one agent.
#[derive(Clone, Copy, Debug)]
pub struct RecipientLog<'a> {
    /// Paths, sockets, dialect, timeouts, delay resolution.
    site: &'a Site,
    /// The message.
    message: &'a ActiveMessage,
    /// What status lines show as `relay=`: the agent, or `none` for the
    /// queue manager's own lines.
    relay: &'a str,
    /// When the agent got the recipients (wall clock); for the queue
    /// manager's own lines, when it decided.
    handoff: Instant,
}

impl<'a> RecipientLog<'a> {
    /// Records for `message`'s recipients handed to `relay` at `handoff`.
    pub fn new(
        site: &'a Site,
        message: &'a ActiveMessage,
        relay: &'a str,
        handoff: Instant,
    ) -> RecipientLog<'a> {
        RecipientLog {
            site,
            message,
            relay,
            handoff,
        }
    }

    /// Appends `r` with `dsn` (its action set) to the logfile of `service`
    /// (`bounce`, `defer` or `trace`) through the bounce daemon; true when
    /// the service recorded it. A trace record names the agent (`delivery
    /// via <relay>: <reason>`), as `trace_append` writes it.
    pub async fn append(&self, service: &str, r: &Recipient, mut dsn: WireDsn) -> bool {
        let id = self.message.queue_id.as_str();
        if service == "trace" && self.relay != "none" {
            let mut reason = format!("delivery via {}: ", self.relay).into_bytes();
            reason.extend_from_slice(&dsn.reason);
            dsn.reason = reason;
        }
        let request = BounceRequest::Append {
            flags: (self.message.env.trace_flags & TRACE_FLAGS_MASK) as u32,
            queue_id: id.as_bytes().to_vec(),
            recipient: wire_recipient(r),
            dsn,
        };
        let site = self.site;
        let sent = bounce::send(
            &site.queue_dir,
            service,
            &request,
            site.dialect,
            site.ipc_timeout,
        )
        .await;
        match sent {
            Ok(0) => true,
            Ok(_) => {
                if service != "bounce" {
                    tracing::warn!("{id}: {service} service failure");
                }
                false
            }
            Err(e) => {
                tracing::warn!(
                    "{id}: {service} service failure: {}",
                    ipc_failure(&format!("private/{service}"), &e)
                );
                false
            }
        }
    }

    /// Logs `r`'s status line: `status=<word>` with `dsn`, the result
    /// known at `now` (wall clock).
    pub fn log(&self, r: &Recipient, dsn: &Dsn, word: &str, now: Instant) {
        let m = self.message;
        let times = Times {
            arrival: Timeval {
                sec: m.env.arrival_sec,
                usec: m.env.arrival_usec,
            },
            active: m.active_arrival,
            handoff: timeval(self.handoff),
            now: timeval(now),
        };
        tracing::info!(
            "{}",
            status_line(
                &m.queue_id,
                r,
                self.relay,
                &times,
                self.site.delay_resolution,
                dsn,
                word
            )
        );
    }

    /// Marks `r` done (`D`) in the message's file in `active/`. The caller
    /// decides what a failure means.
    pub fn mark_done(&self, r: &Recipient) -> io::Result<()> {
        let path = self.site.path("active", &self.message.queue_id);
        open_queue_file(&path, Access::Write, None).and_then(|f| mark_recipient_done(&f, r.offset))
    }
}

/// What went wrong talking to the service at `endpoint`, in Postfix's
/// words where it has some (no Rust error text in a log line).
pub fn ipc_failure(endpoint: &str, e: &IpcError) -> String {
    match e {
        IpcError::Connect(e) => format!("connect to {endpoint}: {}", errno_text(e)),
        IpcError::Io(e) => format!("{endpoint} socket: {}", errno_text(e)),
        IpcError::Timeout { .. } => format!("timeout on {endpoint} socket"),
        IpcError::Eof => format!("premature end-of-input on {endpoint} socket"),
        IpcError::Decode(e) => format!("malformed response from {endpoint} socket: {e}"),
        IpcError::Encode(e) => format!("request not sent: {e}"),
    }
}
