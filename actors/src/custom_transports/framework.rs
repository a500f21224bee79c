//! framework - the Postfix side of a custom transport: what a Postfix
//! delivery agent does around the delivery itself (Postfix:
//! `global/deliver_completed.c`, `bounce.c` `bounce_append`, `defer.c`
//! `defer_append`, `sent.c`, `trace.c`, `verify.c` `verify_append`,
//! `log_adhoc.c`).
//!
//! [`Framework`] is the scheduler's [`DeliveryAgent`] for one transport
//! name. Per [`Deliver`] it builds a [`Delivery`] from the admitted
//! envelope, hands it to the transport actor, and then, per recipient, in
//! Postfix's order (records, status lines and `D` marks are written by
//! [`RecipientLog`], as for the recipients the queue manager settles
//! itself):
//! - **sent**: `trace` APPEND when `sendmail -v` (RECORD), a delay-cleared
//!   confirmation (REC_DLY_SENT with NOTIFY unset or DELAY) or NOTIFY=SUCCESS
//!   asks for it; then the `status=sent` line; then `D`. A failed trace
//!   APPEND turns it into a deferral `4.3.0 <id>: trace service failed`.
//! - **bounced**: `bounce` APPEND (action `failed`, plus `trace` with
//!   RECORD); then `status=bounced`; then `D`. If the bounce daemon fails the
//!   recipient is deferred with `4.3.0 bounce or trace service failure`, so
//!   the bounce is not lost.
//! - **deferred**: `defer` APPEND (action `delayed`; a failure is a warning
//!   `<id>: defer service failure`), the `status=deferred` line regardless,
//!   `trace` with RECORD. No `D`.
//!
//! Probes: with the message's MTA_VRFY flag the verify service is told
//! each recipient is deliverable; with USR_VRFY (`sendmail -bv`) a `trace`
//! record says so; either way the actor is not called.
//!
//! The [`DeliveryReport`]: `Done` when no recipient stayed deferred, else
//! `Defer` with the reply's hop status (negative feedback); per-recipient
//! statuses in order.
//!
//! # Times
//! `delays=a/b/c/d` as Postfix agents print them: a = arrival → admission,
//! b = admission → hand-off to the actor, c = 0 (no separate connection
//! step), d = hand-off → result.
//!
//! With `soft_bounce = yes` a bounce becomes a deferral (`defer` APPEND,
//! code `4.x.y`, logged `status=SOFTBOUNCE`), as in Postfix agents.
//!
//! # Compatibility
//! Not done (unlike Postfix agents): the fast-flush notice after a
//! deferral, `delivery_status_filter`.

use std::sync::Arc;

use actix::{Actor, Context, Handler, ResponseFuture};
use oqmgr::entry::{DeliveryReport, Dsn, Outcome, Recipient, RecipientStatus};

use super::{Content, CustomTransport, Delivery, RcptResult, Reply};
use crate::agent::{self, Deliver, DeliveryAgent};
use crate::clock::Clock;
use crate::daemon::active_table::{message_for, wire_bytes, ActiveMessage, ActiveTable};
use crate::daemon::recipient_log::RecipientLog;
use crate::daemon::site::Site;
use crate::postfix::attr::WireDsn;
use crate::postfix::bounce::{self, VerifyUpdate};
use crate::postfix::log::errno_text;
use crate::postfix::queue_file::{
    DSN_NOTIFY_DELAY, DSN_NOTIFY_SUCCESS, TRACE_MTA_VRFY, TRACE_RECORD, TRACE_REC_DLY_SENT,
    TRACE_USR_VRFY,
};
use crate::scheduler::SchedulerBuilder;

/// What every custom transport of one daemon shares.
#[derive(Clone)]
pub struct Framework {
    /// Paths, dialect, timeouts, delay resolution.
    site: Arc<Site>,
    /// Admitted messages.
    active: ActiveTable,
    /// The daemon's clock.
    clock: Clock,
}

impl Framework {
    /// The framework of a daemon with these settings and this active table.
    pub fn new(site: Arc<Site>, active: ActiveTable, clock: Clock) -> Framework {
        Framework {
            site,
            active,
            clock,
        }
    }

    /// The scheduler agent that serves transport `name` with `actor`.
    pub fn agent(&self, name: &str, actor: CustomTransport) -> DeliveryAgent {
        let addr = Bridge {
            name: name.to_string(),
            fw: self.clone(),
            actor,
        }
        .start();
        DeliveryAgent::new(addr.recipient())
    }
}

/// Transport actors by name, for [`crate::daemon::main_with`] and the
/// scheduler builder.
#[derive(Default)]
pub struct Registrations {
    /// Name and actor, in registration order (a later one wins).
    entries: Vec<(String, CustomTransport)>,
}

impl Registrations {
    /// Registers `actor` as transport `name`.
    pub fn add(&mut self, name: &str, actor: CustomTransport) -> &mut Self {
        self.entries.push((name.to_string(), actor));
        self
    }

    /// The registered names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.entries.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// Adds every registration to `builder` as an agent run by `fw`.
    pub fn register(&self, fw: &Framework, mut builder: SchedulerBuilder) -> SchedulerBuilder {
        for (name, actor) in &self.entries {
            builder = builder.with_agent(name, fw.agent(name, actor.clone()));
        }
        builder
    }
}

/// The agent actor of one custom transport.
struct Bridge {
    /// The transport name.
    name: String,
    /// Shared settings.
    fw: Framework,
    /// The user's actor.
    actor: CustomTransport,
}

impl Actor for Bridge {
    type Context = Context<Self>;
}

impl Handler<Deliver> for Bridge {
    type Result = ResponseFuture<DeliveryReport>;

    fn handle(&mut self, msg: Deliver, _ctx: &mut Context<Self>) -> Self::Result {
        let crash = agent::crashed(&msg.entry);
        let Some(message) = message_for(&self.fw.active, &msg.queue_id) else {
            return Box::pin(async move { crash });
        };
        let fw = self.fw.clone();
        let name = self.name.clone();
        let actor = self.actor.clone();
        Box::pin(async move {
            let handoff = fw.clock.wall_now();
            let flags = message.env.trace_flags;
            let reply = if flags & (TRACE_MTA_VRFY | TRACE_USR_VRFY) != 0 {
                Reply::new(vec![
                    RcptResult::sent(format!("delivers to {name}"));
                    msg.entry.recipients.len()
                ])
            } else {
                let delivery = Delivery {
                    transport: name.clone(),
                    nexthop: msg.nexthop.clone(),
                    queue_id: message.queue_id.to_string(),
                    sender: String::from_utf8_lossy(message.env.sender.as_deref().unwrap_or(b""))
                        .into_owned(),
                    recipients: msg.entry.recipients.clone(),
                    content: Content {
                        path: fw
                            .site
                            .queue_dir
                            .join(fw.site.path("active", &message.queue_id)),
                        data_offset: message.env.data_offset,
                        size_hint: message.env.data_size.max(0) as u64,
                    },
                };
                match actor.send(delivery).await {
                    Ok(reply) => reply,
                    Err(e) => {
                        tracing::warn!("{}: transport {name}: {e}", message.queue_id);
                        return crash;
                    }
                }
            };
            let relay = reply.relay.clone().unwrap_or_else(|| name.clone());
            let rec = Recorder {
                fw: &fw,
                m: &message,
                record: RecipientLog::new(&fw.site, &message, &relay, handoff),
            };
            rec.finish(&msg, reply).await
        })
    }
}

/// Records one delivery's results the Postfix way.
struct Recorder<'a> {
    /// Settings.
    fw: &'a Framework,
    /// The message.
    m: &'a ActiveMessage,
    /// Records, status lines and `D` marks, with this delivery's `relay=`
    /// and hand-off time.
    record: RecipientLog<'a>,
}

impl Recorder<'_> {
    /// Applies every recipient's result and builds the report.
    async fn finish(&self, msg: &Deliver, mut reply: Reply) -> DeliveryReport {
        let missing = RcptResult::deferred(
            "4.3.0",
            format!(
                "transport {} gave no result for this recipient",
                msg.dest.transport
            ),
        );
        if reply.recipients.len() != msg.entry.recipients.len() {
            tracing::warn!(
                "{}: transport {} answered {} results for {} recipients",
                self.m.queue_id,
                msg.dest.transport,
                reply.recipients.len(),
                msg.entry.recipients.len()
            );
        }
        reply
            .recipients
            .resize(msg.entry.recipients.len(), missing.clone());
        let mut statuses = Vec::with_capacity(reply.recipients.len());
        for (r, result) in msg.entry.recipients.iter().zip(reply.recipients) {
            statuses.push(self.one(r, result).await);
        }
        let deferred = statuses.contains(&RecipientStatus::Deferred);
        DeliveryReport {
            entry: msg.entry.id,
            outcome: if deferred {
                Outcome::Defer
            } else {
                Outcome::Done
            },
            hop: if deferred { reply.hop } else { None },
            recipients: statuses,
        }
    }

    /// One recipient; returns its final status.
    async fn one(&self, r: &Recipient, result: RcptResult) -> RecipientStatus {
        let flags = self.m.env.trace_flags;
        let (status, dsn) = (result.status, sanitize(result.status, result.dsn));
        if flags & TRACE_MTA_VRFY != 0 {
            return self.verify(r, &dsn).await;
        }
        if flags & TRACE_USR_VRFY != 0 {
            let ok = self.append("trace", r, &dsn, "deliverable").await;
            if ok {
                self.log(r, &dsn, "deliverable");
                self.mark_done(r);
                return RecipientStatus::Sent;
            }
            return self.defer(r, &trace_failed(&self.m.queue_id)).await;
        }
        match status {
            RecipientStatus::Sent => {
                let dly = flags & TRACE_REC_DLY_SENT != 0
                    && (r.dsn_notify == 0 || r.dsn_notify & DSN_NOTIFY_DELAY as u32 != 0);
                let record = flags & TRACE_RECORD != 0 || dly;
                let success = r.dsn_notify & DSN_NOTIFY_SUCCESS as u32 != 0;
                let traced = (!record || self.append("trace", r, &dsn, "delivered").await)
                    && (!success || self.append("trace", r, &dsn, "delivered").await);
                if !traced {
                    return self.defer(r, &trace_failed(&self.m.queue_id)).await;
                }
                self.log(r, &dsn, "sent");
                self.mark_done(r);
                RecipientStatus::Sent
            }
            RecipientStatus::Bounced if self.fw.site.soft_bounce => {
                // soft_bounce: a deferral that says what would have bounced.
                let mut soft = dsn.clone();
                soft.status.replace_range(..1, "4");
                let ok = self.append("defer", r, &soft, "delayed").await
                    && (flags & TRACE_RECORD == 0
                        || self.append("trace", r, &soft, "delayed").await);
                if !ok {
                    let why = Dsn::new("4.3.0", "bounce or trace service failure");
                    return self.defer(r, &why).await;
                }
                self.log(r, &soft, "SOFTBOUNCE");
                RecipientStatus::Deferred
            }
            RecipientStatus::Bounced => {
                let ok = self.append("bounce", r, &dsn, "failed").await
                    && (flags & TRACE_RECORD == 0 || self.append("trace", r, &dsn, "failed").await);
                if !ok {
                    let why = Dsn::new("4.3.0", "bounce or trace service failure");
                    return self.defer(r, &why).await;
                }
                self.log(r, &dsn, "bounced");
                self.mark_done(r);
                RecipientStatus::Bounced
            }
            RecipientStatus::Deferred => self.defer(r, &dsn).await,
        }
    }

    /// `defer_append`: log entry, status line, trace with RECORD (a failed
    /// record is warned about by [`RecipientLog::append`]).
    async fn defer(&self, r: &Recipient, dsn: &Dsn) -> RecipientStatus {
        self.append("defer", r, dsn, "delayed").await;
        self.log(r, dsn, "deferred");
        if self.m.env.trace_flags & TRACE_RECORD != 0 {
            self.append("trace", r, dsn, "delayed").await;
        }
        RecipientStatus::Deferred
    }

    /// `verify_append` for an MTA probe: both addresses are deliverable.
    async fn verify(&self, r: &Recipient, dsn: &Dsn) -> RecipientStatus {
        let site = &self.fw.site;
        let mut addresses = vec![];
        if !r.orig_address.is_empty() {
            addresses.push(r.orig_address.as_str());
        }
        if r.address != r.orig_address {
            addresses.push(r.address.as_str());
        }
        for a in addresses {
            let update = VerifyUpdate {
                address: wire_bytes(a).into_owned(),
                recipient_status: 0,
                reason: dsn.reason.as_bytes().to_vec(),
            };
            if !matches!(
                bounce::verify_update(&site.queue_dir, &update, site.ipc_timeout).await,
                Ok(0)
            ) {
                tracing::warn!("{}: verify service failure", self.m.queue_id);
                return RecipientStatus::Deferred;
            }
        }
        self.log(r, dsn, "deliverable");
        self.mark_done(r);
        RecipientStatus::Sent
    }

    /// One APPEND to `service` with `action`; true on success.
    async fn append(&self, service: &str, r: &Recipient, dsn: &Dsn, action: &str) -> bool {
        let mut wire = WireDsn::simple(&dsn.status, &dsn.reason);
        wire.action = action.as_bytes().to_vec();
        self.record.append(service, r, wire).await
    }

    /// The status line, with the result known now.
    fn log(&self, r: &Recipient, dsn: &Dsn, word: &str) {
        self.record.log(r, dsn, word, self.fw.clock.wall_now());
    }

    /// Marks `r` done in the queue file (`D`); a failure is a warning: the
    /// scheduler still counts the recipient as finished.
    fn mark_done(&self, r: &Recipient) {
        if let Err(e) = self.record.mark_done(r) {
            tracing::warn!(
                "{}: mark recipient done: {}",
                self.m.queue_id,
                errno_text(&e)
            );
        }
    }
}

/// `<id>: trace service failed`, deferred.
fn trace_failed(id: &str) -> Dsn {
    Dsn::new("4.3.0", format!("{id}: trace service failed"))
}

/// A DSN whose class fits the result: `2` sent, `4` deferred, `5` bounced;
/// anything else gets `2.0.0`/`4.0.0`/`5.0.0` and a warning (Postfix's
/// "ignoring dsn code"). A failure without text gets `unknown error`, so
/// bounce notices and the defer log always say something; line breaks
/// become spaces, so one result is one log line.
pub fn sanitize(status: RecipientStatus, mut dsn: Dsn) -> Dsn {
    let class = match status {
        RecipientStatus::Sent => b'2',
        RecipientStatus::Deferred => b'4',
        RecipientStatus::Bounced => b'5',
    };
    let code = dsn.status.as_bytes();
    if code.first() != Some(&class) || !Dsn::valid_status(code) {
        tracing::warn!("ignoring dsn code \"{}\"", dsn.status);
        dsn.status = format!("{}.0.0", char::from(class));
    }
    if dsn.reason.is_empty() && status != RecipientStatus::Sent {
        dsn.reason = "unknown error".into();
    }
    // A reason is one log line.
    dsn.reason = dsn.reason.replace(['\r', '\n'], " ");
    dsn
}

#[cfg(test)]
#[path = "framework_tests.rs"]
mod framework_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dsn_classes_are_enforced() {
        let s = sanitize(RecipientStatus::Deferred, Dsn::new("5.1.1", "x"));
        assert_eq!(s, Dsn::new("4.0.0", "x"));
        let s = sanitize(RecipientStatus::Bounced, Dsn::new("5.1.1", "a\r\nb"));
        assert_eq!(s, Dsn::new("5.1.1", "a  b"));
        let s = sanitize(RecipientStatus::Sent, Dsn::new("2.6.0", ""));
        assert_eq!(s, Dsn::new("2.6.0", ""));
        let s = sanitize(RecipientStatus::Bounced, Dsn::new("garbage", ""));
        assert_eq!(s, Dsn::new("5.0.0", "unknown error"));
    }
}
