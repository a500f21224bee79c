//! bridge - Postfix's delivery agents behind the agent contract (Postfix:
//! `qmgr_transport.c` `qmgr_transport_alloc` and `qmgr_deliver.c`).
//!
//! [`PostfixAgents`] is the daemon's default [`DeliveryAgent`]: it serves
//! every transport name that has no custom agent, by talking to
//! `private/<transport>` as oqmgr does. `Connect` opens the connection and
//! waits for the agent's `delivery_request_protocol` announcement (a refused
//! or silent socket makes the transport dead: `4.3.0 mail transport
//! unavailable`); `Deliver` sends one request built from the admitted
//! envelope and reads the agent's one reply; `Close` hangs up an idle
//! connection. The agent itself marks recipients done and writes the
//! bounce, defer and trace records, as with oqmgr.
//!
//! # Outcome mapping (docs/postfix-ipc.md §7.5)
//! - reply status 0: `Done`; otherwise `Defer` ([`reply_report`]);
//! - a hop status in a deferring reply: negative feedback with
//!   `delivery temporarily suspended: <reason>`; no hop status: positive;
//! - a lost connection, a missing or malformed reply: `Crash` (the mail is
//!   deferred, the transport stays alive). oqmgr throttles the transport
//!   when the request cannot even be written; here that case is a crash
//!   too, as the connection was already up.
//! - "try again" without a hop status, while the agent recorded no
//!   deferral for any recipient of the request in the defer logfile
//!   ([`bounce_log::recorded_any`]) and the queue file is still in
//!   `active/` ([`rejected`]): the agent rejected the request itself (one
//!   of another Postfix release: `unexpected attribute smtputf8 ...
//!   (expecting: sendopts)`). oqmgr defers such mail without a word or a
//!   reason; here it is `Refused`: a warning naming the service
//!   ([`rejection_warning`]), the recipients deferred through the worker
//!   with `4.3.0 mail transport unavailable` (the reason `postqueue -p`
//!   shows), and the transport dead for `transport_retry_time`, as oqmgr
//!   treats a request it cannot hand over. An agent whose own defer or
//!   bounce service failed answers the same way (after its `defer service
//!   failure` warning) and is treated the same. Address probes are not
//!   checked (their deferrals go to the verify or trace service).

use std::collections::HashMap;
use std::sync::Arc;

use actix::{Actor, ActorFutureExt, Context, Handler, ResponseActFuture, WrapFuture};
use oqmgr::entry::{AgentId, DeliveryReport, Dsn, EntryId, Outcome};

use super::active_table::{message_for, wire_bytes, wire_recipient, ActiveTable};
use super::bounce_log;
use super::site::Site;
use super::worker::{Job, Worker};
use crate::agent::{self, Close, Connect, Deliver, DeliveryAgent};
use crate::postfix::deliver_request::{
    AgentConnection, DeliveryError, DeliveryReply, DeliveryRequest, EntryContext,
};
use crate::postfix::queue_file::{TRACE_MTA_VRFY, TRACE_USR_VRFY};

/// The bridge to Postfix's delivery agents.
pub struct PostfixAgents {
    /// Paths, dialect and timeouts.
    site: Arc<Site>,
    /// Admitted messages (the envelope of each request).
    active: ActiveTable,
    /// Open connections waiting for a request, by transport and number.
    idle: HashMap<(String, AgentId), AgentConnection>,
    /// Where the recipients of a rejected request are deferred.
    worker: Option<Worker>,
}

impl PostfixAgents {
    /// A bridge for `site`.
    pub fn new(site: Arc<Site>, active: ActiveTable) -> PostfixAgents {
        PostfixAgents {
            site,
            active,
            idle: HashMap::new(),
            worker: None,
        }
    }

    /// Defers the recipients of requests an agent rejects through
    /// `worker` (without one they are only logged and the message
    /// deferred).
    pub fn with_worker(mut self, worker: Worker) -> PostfixAgents {
        self.worker = Some(worker);
        self
    }

    /// Starts the bridge and returns it as a [`DeliveryAgent`] with
    /// connect and close steps.
    pub fn start_agent(self) -> DeliveryAgent {
        let addr = self.start();
        DeliveryAgent::new(addr.clone().recipient())
            .with_connect(addr.clone().recipient())
            .with_close(addr.recipient())
    }
}

impl Actor for PostfixAgents {
    type Context = Context<Self>;
}

impl Handler<Connect> for PostfixAgents {
    type Result = ResponseActFuture<Self, Result<(), Dsn>>;

    fn handle(&mut self, msg: Connect, _ctx: &mut Context<Self>) -> Self::Result {
        let socket = self.site.private(&msg.transport);
        let timeout = self.site.ipc_timeout;
        Box::pin(
            async move { AgentConnection::connect(&socket, timeout).await }
                .into_actor(self)
                .map(move |result, act, _| match result {
                    Ok(conn) => {
                        act.idle.insert((msg.transport, msg.agent), conn);
                        Ok(())
                    }
                    Err(e) => {
                        tracing::warn!(
                            "connect to transport private/{}: {}",
                            msg.transport,
                            error_text(&e)
                        );
                        Err(agent::unavailable())
                    }
                }),
        )
    }
}

impl Handler<Close> for PostfixAgents {
    type Result = ();

    fn handle(&mut self, msg: Close, _ctx: &mut Context<Self>) {
        self.idle.remove(&(msg.transport, msg.agent));
    }
}

impl Handler<Deliver> for PostfixAgents {
    type Result = ResponseActFuture<Self, DeliveryReport>;

    fn handle(&mut self, msg: Deliver, _ctx: &mut Context<Self>) -> Self::Result {
        let entry_id = msg.entry.id;
        let crash = agent::crashed(&msg.entry);
        let conn = self
            .idle
            .remove(&(msg.dest.transport.to_string(), msg.agent));
        let Some(message) = message_for(&self.active, &msg.queue_id) else {
            return Box::pin(async move { crash }.into_actor(self));
        };
        let ctx = EntryContext {
            queue_id: msg.queue_id.as_bytes(),
            nexthop: &wire_bytes(&msg.nexthop),
            conn_flags: 0,
            active_arrival: message.active_arrival,
            smtputf8_enable: self.site.smtputf8_enable,
        };
        let recipients: Vec<_> = msg.entry.recipients.iter().map(wire_recipient).collect();
        // Encoded here, from the shared envelope unpacked for this one
        // write (a few small copies per request, against ~400 bytes saved
        // per message held in core).
        let (dialect, timeout) = (self.site.dialect, self.site.ipc_timeout);
        let env = message.env.envelope();
        let request = DeliveryRequest::encode_for_entry(&env, &ctx, &recipients, dialect);
        // The socket path only for a request without a connection (the
        // usual request comes after `Connect` and finds one).
        let link = match conn {
            Some(c) => Ok(c),
            None => Err(self.site.private(&msg.dest.transport)),
        };
        let reply_timeout = self.site.agent_reply_timeout;
        let transport = msg.dest.transport.clone();
        let probe = message.env.trace_flags & (TRACE_MTA_VRFY | TRACE_USR_VRFY) != 0;
        let entry_recipients = msg.entry.recipients;
        Box::pin(
            async move {
                let mut conn = match link {
                    Ok(c) => c,
                    Err(socket) => AgentConnection::connect(&socket, timeout).await?,
                };
                // The agent answers when the delivery is done; only its own
                // watchdog (`daemon_timeout`) bounds that, not the IPC timeout.
                conn.set_reply_timeout(reply_timeout);
                conn.deliver_encoded(request).await
            }
            .into_actor(self)
            .map(move |result, act, _| match result {
                Err(e) => {
                    tracing::warn!(
                        "{}: lost connection with {transport}: {}",
                        message.queue_id,
                        error_text(&e)
                    );
                    crash
                }
                Ok(reply)
                    if reply.status != 0
                        && reply.hop.status.is_empty()
                        && !probe
                        && rejected(&act.site, &message.queue_id, &entry_recipients) =>
                {
                    tracing::warn!(
                        "{}",
                        rejection_warning(&transport, &message.queue_id, entry_recipients.len())
                    );
                    let dsn = agent::unavailable();
                    if let Some(worker) = &act.worker {
                        worker.send(Job::Defer {
                            message: Arc::clone(&message),
                            recipients: entry_recipients,
                            dsn: dsn.clone(),
                        });
                    }
                    DeliveryReport {
                        entry: entry_id,
                        outcome: Outcome::Refused,
                        hop: Some(dsn),
                        recipients: Vec::new(),
                    }
                }
                Ok(reply) => reply_report(entry_id, &reply),
            }),
        )
    }
}

/// The scheduler's report of an agent's reply (Postfix:
/// `qmgr_deliver_update`): status 0 is `Done`, anything else `Defer`; a
/// deferring reply's hop status goes on as it came (the core checks the
/// code, fills in a missing reason and adds "delivery temporarily
/// suspended: ", as `qmgr_deliver_update` does), and a reply without one
/// is positive feedback. A hop status in a reply of status 0 is ignored.
pub fn reply_report(entry: EntryId, reply: &DeliveryReply) -> DeliveryReport {
    let defer = reply.status != 0;
    let hop = (defer && !reply.hop.status.is_empty()).then(|| {
        Dsn::new(
            String::from_utf8_lossy(&reply.hop.status),
            String::from_utf8_lossy(&reply.hop.reason),
        )
    });
    DeliveryReport {
        entry,
        outcome: if defer { Outcome::Defer } else { Outcome::Done },
        hop,
        recipients: Vec::new(),
    }
}

/// True when an agent that answered "try again" without a hop status
/// rejected the request for `recipients` of `queue_id`: the defer logfile
/// holds no record for any of them, while the queue file is still in
/// `active/` (an agent finding it gone, deleted by `postsuper -d` in
/// flight, also answers so, and that says nothing of the agent).
pub fn rejected(site: &Site, queue_id: &str, recipients: &[oqmgr::entry::Recipient]) -> bool {
    let offsets: Vec<u64> = recipients.iter().map(|r| r.offset).collect();
    !bounce_log::recorded_any(site, queue_id, &offsets)
        && std::fs::symlink_metadata(site.queue_dir.join(site.path("active", queue_id)))
            .is_ok_and(|m| m.is_file())
}

/// The warning for a request the agent of `transport` answered "try
/// again" without recording anything for its `n` recipients.
pub fn rejection_warning(transport: &str, queue_id: &str, n: usize) -> String {
    let s = if n == 1 { "" } else { "s" };
    format!(
        "private/{transport}: request for {queue_id} rejected: no status recorded for its \
         {n} recipient{s} (see that agent's warning; is mail_version right?)"
    )
}

/// A delivery error for a warning line.
fn error_text(e: &DeliveryError) -> String {
    match e {
        DeliveryError::Transport(e) | DeliveryError::Crash(e) => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use oqmgr::destination::Destination;
    use oqmgr::effect::{DestId, DestKey, Effects, Msg};
    use oqmgr::entry::{Entry, MessageId, Recipient};
    use oqmgr::params::Params;
    use oqmgr::time::Instant;

    use super::*;
    use crate::postfix::attr::WireDsn;
    use crate::postfix::deliver_request::STATUS_DEFER;

    fn reply(status: u32, hop_status: &str, reason: &str) -> DeliveryReply {
        DeliveryReply {
            hop: WireDsn::simple(hop_status, reason),
            status,
        }
    }

    /// The outcome and hop status of the report for `reply`.
    fn mapped(reply: &DeliveryReply) -> (Outcome, Option<Dsn>) {
        let report = reply_report(EntryId(7), reply);
        assert_eq!(report.entry, EntryId(7));
        assert!(report.recipients.is_empty(), "agents mark recipients");
        (report.outcome, report.hop)
    }

    #[test]
    fn replies_map_as_qmgr_deliver_update_reads_them() {
        assert_eq!(mapped(&reply(0, "", "")), (Outcome::Done, None));
        assert_eq!(mapped(&reply(STATUS_DEFER, "", "")), (Outcome::Defer, None));
        // Any status other than 0 is "try again" (agents send -1).
        assert_eq!(mapped(&reply(1, "", "")), (Outcome::Defer, None));
        assert_eq!(
            mapped(&reply(
                STATUS_DEFER,
                "4.4.1",
                "connect to x: Connection refused"
            )),
            (
                Outcome::Defer,
                Some(Dsn::new("4.4.1", "connect to x: Connection refused"))
            )
        );
        // A hop reason without a code, or a hop status with status 0: no
        // negative feedback.
        assert_eq!(
            mapped(&reply(STATUS_DEFER, "", "why")),
            (Outcome::Defer, None)
        );
        assert_eq!(mapped(&reply(0, "4.4.1", "odd")), (Outcome::Done, None));
        // Bytes that are not UTF-8 reach the core's text as U+FFFD.
        let mut odd = reply(STATUS_DEFER, "4.4.1", "");
        odd.hop.reason = b"caf\xe9".to_vec();
        assert_eq!(mapped(&odd).1, Some(Dsn::new("4.4.1", "caf\u{fffd}")));
    }

    /// The hop status the bridge passes on is sanitised by the core, as
    /// `qmgr_deliver_update` does: a bad code becomes 4.0.0, an empty
    /// reason "unknown error", and the reason gets "delivery temporarily
    /// suspended: ". Checked through a core destination that one failure
    /// makes dead.
    #[test]
    fn the_core_sanitises_the_hop_status_the_bridge_passes_on() {
        let (params, _) =
            Params::from_pairs(&[("smtp_initial_destination_concurrency", "1")]).unwrap();
        let (tp, _) = params.transport("smtp");
        let key = DestKey {
            transport: "smtp".into(),
            queue: "site.example".into(),
        };
        let id = DestId {
            transport: 0,
            slot: 0,
            epoch: 1,
        };
        let mut d = Destination::new(
            id,
            key,
            "site.example".into(),
            1,
            Arc::new(tp),
            Arc::new(params.global.clone()),
        );
        let mut out = Effects::new();
        let now = Instant::ZERO;
        for n in 1..=2 {
            let entry = Entry {
                id: EntryId(n),
                message: MessageId(n),
                recipients: vec![Recipient::new(format!("u{n}@site.example"))],
            };
            d.handle(
                now,
                Msg::Accept {
                    entry,
                    active: 2,
                    peers: false,
                },
                &mut out,
            );
        }
        d.handle(now, Msg::Take(AgentId(1)), &mut out);
        out.list.clear();
        let report = reply_report(EntryId(1), &reply(STATUS_DEFER, "9.9", ""));
        d.handle(now, Msg::Report(report), &mut out);
        let effects = format!("{:?}", out.list);
        assert!(
            effects.contains("4.0.0 delivery temporarily suspended: unknown error"),
            "{effects}"
        );
    }

    #[test]
    fn a_rejection_warning_names_the_agent_and_the_count() {
        assert_eq!(
            rejection_warning("smtp", "4AB2C", 1),
            "private/smtp: request for 4AB2C rejected: no status recorded for its 1 recipient \
             (see that agent's warning; is mail_version right?)"
        );
        assert!(rejection_warning("smtp", "4AB2C", 3).contains("its 3 recipients"));
    }
}
