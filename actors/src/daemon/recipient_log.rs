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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postfix::queue_file::TRACE_RECORD;
    use crate::postfix::record::rec;
    use crate::testing::{active_message, block_on, bounce_service, logged, record_type};

    /// A site whose services' sockets are in `sockets`.
    fn site(sockets: &std::path::Path) -> Site {
        Site {
            ipc_timeout: std::time::Duration::from_secs(5),
            ..Site::defaults(sockets.to_path_buf())
        }
    }

    #[test]
    fn a_failed_append_names_the_service_and_what_happened() {
        let sockets = tempfile::tempdir().unwrap();
        let site = site(sockets.path());
        let (m, r) = active_message("RLOG1", &["a@x.example"], 0, 0);
        let record = RecipientLog::new(&site, &m, "none", Instant::ZERO);
        let dsn = || WireDsn::simple("4.4.1", "down");
        // No service at all.
        let (ok, lines) = logged(|| block_on(record.append("defer", &r[0], dsn())));
        assert!(!ok);
        assert_eq!(
            lines,
            ["warning: RLOG1: defer service failure: connect to private/defer: No such file or directory"]
        );
        // A service that hangs up, then one that answers a failure.
        bounce_service(sockets.path(), "defer", vec![None, Some(1)]);
        let (ok, lines) = logged(|| block_on(record.append("defer", &r[0], dsn())));
        assert!(!ok);
        assert_eq!(
            lines,
            ["warning: RLOG1: defer service failure: premature end-of-input on private/defer socket"]
        );
        let (ok, lines) = logged(|| block_on(record.append("defer", &r[0], dsn())));
        assert!(!ok);
        assert_eq!(lines, ["warning: RLOG1: defer service failure"]);
        // A bounce daemon's failure is the caller's to report (it defers).
        bounce_service(sockets.path(), "bounce", vec![Some(1)]);
        let (ok, lines) = logged(|| block_on(record.append("bounce", &r[0], dsn())));
        assert!(!ok);
        assert!(lines.is_empty(), "{lines:?}");
    }

    #[test]
    fn a_trace_record_names_the_agent_and_carries_the_message_flags() {
        let sockets = tempfile::tempdir().unwrap();
        let site = site(sockets.path());
        let seen = bounce_service(sockets.path(), "trace", vec![Some(0), Some(0)]);
        let (m, r) = active_message("RLOG2", &["a@x.example"], TRACE_RECORD, 0);
        let hooks = RecipientLog::new(&site, &m, "hooks", Instant::ZERO);
        assert!(block_on(hooks.append(
            "trace",
            &r[0],
            WireDsn::simple("2.0.0", "ok")
        )));
        let qmgr = RecipientLog::new(&site, &m, "none", Instant::ZERO);
        assert!(block_on(qmgr.append(
            "trace",
            &r[0],
            WireDsn::simple("2.0.0", "ok")
        )));
        let requests = seen.lock().unwrap().clone();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        assert!(text(&requests[0]).contains("reason\0delivery via hooks: ok\0"));
        assert!(text(&requests[1]).contains("reason\0ok\0"));
        let flags = format!("flags\0{}\0", TRACE_RECORD);
        assert!(
            text(&requests[0]).contains(&flags),
            "{:?}",
            text(&requests[0])
        );
    }

    #[test]
    fn status_lines_and_done_marks() {
        let sockets = tempfile::tempdir().unwrap();
        let site = site(sockets.path());
        let (m, r) = active_message("RLOG3", &["a@x.example", "b@x.example"], 0, 0);
        let handoff = Instant::from_secs(1_700_000_002);
        let record = RecipientLog::new(&site, &m, "hooks", handoff);
        let ((), lines) = logged(|| {
            record.log(
                &r[1],
                &Dsn::new("2.0.0", "fine"),
                "sent",
                Instant::from_secs(1_700_000_003),
            )
        });
        assert_eq!(
            lines,
            ["RLOG3: to=<b@x.example>, relay=hooks, delay=3, delays=1/1/0/1, dsn=2.0.0, status=sent (fine)"]
        );
        record.mark_done(&r[1]).unwrap();
        assert_eq!(record_type("RLOG3", r[0].offset), rec::RCPT);
        assert_eq!(record_type("RLOG3", r[1].offset), rec::DONE);
        // A file that is gone: the caller learns why.
        std::fs::remove_file("active/RLOG3").unwrap();
        assert_eq!(
            record.mark_done(&r[0]).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }
}
