//! From resolved recipients to delivery requests (Postfix: the second half of
//! `qmgr_message_resolve`, `qmgr_message_sort`, `qmgr_message_assign`).
//!
//! The host resolves each recipient to a transport and next hop (the daemon
//! asks trivial-rewrite; the simulator uses the scenario's routes). This
//! module then applies the queue manager's own rules: administrative expiry,
//! null recipients, double-bounce discard, `defer_transports`, one queue per
//! recipient when a transport takes one recipient per delivery; sorts; and
//! groups consecutive recipients of the same queue into entries of at most
//! the transport's recipient limit.
//!
//! # Compatibility
//! `defer_transports`, `double_bounce_sender`, `recipient_delimiter`,
//! `owner_request_special`, `<transport>_destination_recipient_limit`.

use std::cmp::Ordering;

use crate::effect::DestKey;
use crate::entry::Recipient;
use crate::name::Name;
use crate::params::GlobalParams;
use crate::scan::ScanFlags;

/// The `retry` pseudo-transport: the error agent deferring with the next hop
/// text as the reason.
pub const RETRY: &str = "retry";
/// The `error` pseudo-transport: the error agent bouncing with the next hop
/// text as the reason.
pub const ERROR: &str = "error";

/// The reason `defer_transports` gives (Postfix: `qmgr_message_resolve`).
pub const DEFERRED_TRANSPORT: &str = "deferred transport";
/// The reason `postsuper -e` (forced expiry) gives.
pub const ADMIN_EXPIRED: &str = "message is administratively expired";

/// Why the queue manager deferred recipients itself, without a delivery
/// attempt (the operator's metrics count them by it). Read back from the
/// reason of the `retry` route (its next hop, `"<status> <reason>"`), as
/// the reason is all that travels with such an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum QmgrDeferral {
    /// Its transport is listed in `defer_transports`.
    DeferTransports,
    /// Its destination is suspended by the operator.
    Suspended,
    /// Its destination is dead (failed cohorts).
    DeadDestination,
    /// Its transport is dead (no agent could be reached).
    DeadTransport,
    /// Forced expiry (`postsuper -e`).
    ForcedExpiry,
}

impl QmgrDeferral {
    /// Every cause, in a fixed order.
    pub const ALL: [QmgrDeferral; 5] = [
        QmgrDeferral::DeferTransports,
        QmgrDeferral::Suspended,
        QmgrDeferral::DeadDestination,
        QmgrDeferral::DeadTransport,
        QmgrDeferral::ForcedExpiry,
    ];

    /// The cause of a deferral with this reason text (the DSN's text,
    /// without its status). A transport's death carries whatever its
    /// agent said, so it is what the others are not.
    pub fn of_reason(reason: &str) -> QmgrDeferral {
        if reason == DEFERRED_TRANSPORT {
            QmgrDeferral::DeferTransports
        } else if reason.starts_with(crate::control::SUSPENDED) {
            QmgrDeferral::Suspended
        } else if reason.starts_with(crate::destination::DEAD_SITE) {
            QmgrDeferral::DeadDestination
        } else if reason == ADMIN_EXPIRED {
            QmgrDeferral::ForcedExpiry
        } else {
            QmgrDeferral::DeadTransport
        }
    }

    /// The cause of the deferral a `retry` next hop (`"<status> <reason>"`)
    /// stands for.
    pub fn of_retry_nexthop(nexthop: &str) -> QmgrDeferral {
        QmgrDeferral::of_reason(nexthop.split_once(' ').map_or("", |(_, reason)| reason))
    }

    /// Its name in the metrics.
    pub fn word(self) -> &'static str {
        match self {
            QmgrDeferral::DeferTransports => "defer_transports",
            QmgrDeferral::Suspended => "suspended",
            QmgrDeferral::DeadDestination => "dead_destination",
            QmgrDeferral::DeadTransport => "dead_transport",
            QmgrDeferral::ForcedExpiry => "forced_expiry",
        }
    }
}

/// One recipient as resolved by the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Routed {
    /// The recipient, its address already replaced by the resolved one.
    pub recipient: Recipient,
    /// Transport name from the resolver.
    pub transport: Name,
    /// Next hop from the resolver.
    pub nexthop: Name,
    /// The resolver said the address is local (`RESOLVE_CLASS_LOCAL`).
    pub class_local: bool,
}

/// A batch of recipients for one destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedEntry {
    /// Destination.
    pub dest: DestKey,
    /// Next hop to hand to the agent.
    pub nexthop: Name,
    /// Recipients, at least one.
    pub recipients: Vec<Recipient>,
}

/// The routing result for one batch of recipients.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Delivery requests in queue order.
    pub entries: Vec<PlannedEntry>,
    /// Double-bounce recipients to log and discard.
    pub discards: Vec<Recipient>,
}

/// Applies the queue manager's routing rules to resolved recipients.
/// `recipient_limit` gives each transport's recipients-per-delivery limit;
/// `single_rcpt` forces one recipient per delivery (a VERP message).
pub fn plan(
    routed: Vec<Routed>,
    flags: ScanFlags,
    single_rcpt: bool,
    g: &GlobalParams,
    recipient_limit: &mut dyn FnMut(&str) -> u32,
) -> Plan {
    let mut planner = Planner::default();
    planner.plan(routed, flags, single_rcpt, g, recipient_limit);
    planner.out
}

/// [`plan`] with its buffers kept between batches: a supervisor routes
/// every admitted batch, and allocating the sorting buffer and the list of
/// entries anew for each (usually of one recipient) cost more than the
/// routing. The buffers keep the capacity of the largest batch routed.
#[derive(Debug, Default)]
pub struct Planner {
    /// Recipients bound to their destinations, before sorting.
    bound: Vec<(DestKey, Name, Recipient)>,
    /// The last plan made; its caller takes the entries and discards.
    pub out: Plan,
}

impl Planner {
    /// Like [`plan`], leaving the result in `self.out` (emptied first).
    pub fn plan(
        &mut self,
        routed: Vec<Routed>,
        flags: ScanFlags,
        single_rcpt: bool,
        g: &GlobalParams,
        recipient_limit: &mut dyn FnMut(&str) -> u32,
    ) -> &mut Plan {
        self.out.entries.clear();
        self.out.discards.clear();
        self.bound.clear();
        plan_into(
            &mut self.out,
            &mut self.bound,
            routed,
            flags,
            single_rcpt,
            g,
            recipient_limit,
        );
        &mut self.out
    }
}

/// The body of [`plan`], filling `out` by way of `bound`, both empty.
fn plan_into(
    out: &mut Plan,
    bound: &mut Vec<(DestKey, Name, Recipient)>,
    routed: Vec<Routed>,
    flags: ScanFlags,
    single_rcpt: bool,
    g: &GlobalParams,
    recipient_limit: &mut dyn FnMut(&str) -> u32,
) {
    // The limit is asked twice per recipient, and a batch mostly names one
    // transport: remember the last answer (a transport's limit does not
    // change within a batch), compared by the shared name's pointer.
    let mut last: Option<(Name, u32)> = None;
    let mut recipient_limit = |transport: &Name| match &last {
        Some((name, limit)) if name == transport => *limit,
        _ => {
            let limit = recipient_limit(transport);
            last = Some((transport.clone(), limit));
            limit
        }
    };
    bound.reserve(routed.len());
    for r in routed {
        let (transport, nexthop) = if r.recipient.address.is_empty() {
            (
                Name::from(ERROR),
                Name::from("5.1.3 null recipient address"),
            )
        } else if flags.contains(ScanFlags::FORCE_EXPIRE) {
            (
                Name::from(RETRY),
                Name::from(format!("4.7.0 {ADMIN_EXPIRED}")),
            )
        } else if r.class_local && is_double_bounce(&r.recipient.address, g) {
            out.discards.push(r.recipient);
            continue;
        } else if !flags.contains(ScanFlags::FLUSH_DFXP)
            && g.defer_transports.iter().any(|t| *t == r.transport)
        {
            (
                Name::from(RETRY),
                Name::from(format!("4.3.2 {DEFERRED_TRANSPORT}")),
            )
        } else {
            (r.transport, r.nexthop)
        };
        let one_per_recipient =
            transport != RETRY && transport != ERROR && recipient_limit(&transport) == 1;
        let queue = if one_per_recipient {
            Name::from(
                format!(
                    "{}@{}",
                    strip_extension(local_part(&r.recipient.address), g),
                    nexthop
                )
                .to_lowercase(),
            )
        } else {
            // Shares the next hop's text unless it has capitals: no copy
            // per recipient.
            nexthop.to_lowercase()
        };
        bound.push((DestKey { transport, queue }, nexthop, r.recipient));
    }
    // A batch from one file is mostly sorted already (one recipient per
    // message, or a list in domain order); skip the sort when it is.
    let in_order = |a: &(DestKey, Name, Recipient), b: &(DestKey, Name, Recipient)| {
        a.0.transport
            .as_bytes()
            .cmp(b.0.transport.as_bytes())
            .then_with(|| a.0.queue.as_bytes().cmp(b.0.queue.as_bytes()))
            .then_with(|| address_order(&a.2.address, &b.2.address))
    };
    if bound
        .windows(2)
        .any(|w| in_order(&w[0], &w[1]) == Ordering::Greater)
    {
        bound.sort_by(in_order);
    }
    // At most one entry per recipient; sized once instead of grown.
    out.entries.reserve(bound.len());
    for (dest, nexthop, recipient) in bound.drain(..) {
        let limit = if single_rcpt {
            1
        } else {
            recipient_limit(&dest.transport)
        };
        match out.entries.last_mut() {
            Some(last)
                if last.dest == dest && (limit == 0 || (last.recipients.len() as u32) < limit) =>
            {
                last.recipients.push(recipient)
            }
            _ => out.entries.push(PlannedEntry {
                dest,
                nexthop,
                recipients: vec![recipient],
            }),
        }
    }
}

/// The local part: everything before the last `@` (the whole address when
/// there is none).
pub fn local_part(address: &str) -> &str {
    address.rsplit_once('@').map_or(address, |(l, _)| l)
}

fn is_double_bounce(address: &str, g: &GlobalParams) -> bool {
    local_part(address).eq_ignore_ascii_case(&g.double_bounce_sender)
}

/// Removes an address extension (`user+ext` → `user`), except where Postfix
/// keeps the whole local part: special addresses, `owner-x` and `x-request`
/// when `-` is a delimiter, and when nothing would remain before it.
fn strip_extension<'a>(local: &'a str, g: &GlobalParams) -> &'a str {
    if g.recipient_delimiter.is_empty()
        || local.eq_ignore_ascii_case("postmaster")
        || local.eq_ignore_ascii_case("mailer-daemon")
        || local.eq_ignore_ascii_case(&g.double_bounce_sender)
    {
        return local;
    }
    if g.owner_request_special && g.recipient_delimiter.contains('-') {
        let lower = local.to_ascii_lowercase();
        if lower.starts_with("owner-") || lower.ends_with("-request") {
            return local;
        }
    }
    match local.find(|c| g.recipient_delimiter.contains(c)) {
        Some(0) | None => local,
        Some(at) => &local[..at],
    }
}

/// Postfix's recipient order: by domain, then by whole address, both
/// without regard to case; addresses with no domain sort last.
fn address_order(a: &str, b: &str) -> Ordering {
    // Byte-wise ASCII case folding, as comparing lowered copies would do,
    // without making the copies (this runs for every pair the sort looks at).
    fn domain(s: &str) -> Option<&str> {
        s.rsplit_once('@').map(|(_, d)| d)
    }
    match (domain(a), domain(b)) {
        (Some(x), Some(y)) => fold_cmp(x, y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
    .then_with(|| fold_cmp(a, b))
}

/// Compares like `a.to_ascii_lowercase().cmp(&b.to_ascii_lowercase())`.
fn fold_cmp(a: &str, b: &str) -> Ordering {
    a.bytes()
        .map(|c| c.to_ascii_lowercase())
        .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routed(addr: &str, transport: &str, nexthop: &str) -> Routed {
        Routed {
            recipient: Recipient::new(addr),
            transport: transport.into(),
            nexthop: nexthop.into(),
            class_local: transport == "local",
        }
    }

    fn test_params() -> GlobalParams {
        GlobalParams {
            recipient_delimiter: "+".into(),
            defer_transports: vec!["slow".into()],
            ..GlobalParams::default()
        }
    }

    #[test]
    fn groups_by_queue_up_to_the_limit() {
        let g = test_params();
        let rcpts = vec![
            routed("c@b.example", "smtp", "b.example"),
            routed("a@a.example", "smtp", "a.example"),
            routed("b@b.example", "smtp", "b.example"),
            routed("d@b.example", "smtp", "b.example"),
        ];
        let plan = plan(rcpts, ScanFlags::NONE, false, &g, &mut |_| 2);
        let shape: Vec<(String, Vec<String>)> = plan
            .entries
            .iter()
            .map(|e| {
                (
                    e.dest.to_string(),
                    e.recipients.iter().map(|r| r.address.clone()).collect(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            vec![
                ("smtp:a.example".into(), vec!["a@a.example".into()]),
                (
                    "smtp:b.example".into(),
                    vec!["b@b.example".into(), "c@b.example".into()]
                ),
                ("smtp:b.example".into(), vec!["d@b.example".into()]),
            ]
        );
    }

    #[test]
    fn local_gets_a_queue_per_user_and_double_bounce_is_discarded() {
        let g = test_params();
        let rcpts = vec![
            routed("Joe+Lists@h.example", "local", "h.example"),
            routed("double-bounce@h.example", "local", "h.example"),
            routed("x@slow.example", "slow", "slow.example"),
        ];
        let plan = plan(rcpts, ScanFlags::NONE, false, &g, &mut |t| {
            u32::from(t != "local") * 50 + u32::from(t == "local")
        });
        assert_eq!(plan.discards.len(), 1);
        let dests: Vec<String> = plan.entries.iter().map(|e| e.dest.to_string()).collect();
        assert_eq!(
            dests,
            vec!["local:joe@h.example", "retry:4.3.2 deferred transport"]
        );
        // With FLUSH_DFXP (postqueue -f) the deferred transport is used.
        let plan2 = plan_one("x@slow.example", "slow", ScanFlags::FLUSH_DFXP, &g);
        assert_eq!(plan2, "slow:slow.example");
    }

    #[test]
    fn single_rcpt_makes_one_entry_per_recipient_in_the_same_queue() {
        let g = test_params();
        let rcpts = vec![
            routed("v2@d.example", "smtp", "d.example"),
            routed("v1@d.example", "smtp", "d.example"),
            routed("v3@d.example", "smtp", "d.example"),
        ];
        let shape = |single| {
            plan(rcpts.clone(), ScanFlags::NONE, single, &g, &mut |_| 50)
                .entries
                .iter()
                .map(|e| {
                    let r: Vec<&str> = e.recipients.iter().map(|r| r.address.as_str()).collect();
                    format!("{} {}", e.dest, r.join(","))
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            shape(false),
            ["smtp:d.example v1@d.example,v2@d.example,v3@d.example"]
        );
        // VERP: one request each, still one destination queue (the
        // concurrency limit is per site, not per recipient).
        assert_eq!(
            shape(true),
            [
                "smtp:d.example v1@d.example",
                "smtp:d.example v2@d.example",
                "smtp:d.example v3@d.example"
            ]
        );
    }

    #[test]
    fn the_queue_managers_own_deferrals_are_told_apart() {
        use crate::control::{Suspension, Target};
        let g = test_params();
        let deferred = plan_one("x@slow.example", "slow", ScanFlags::NONE, &g);
        let expired = plan_one("x@slow.example", "smtp", ScanFlags::FORCE_EXPIRE, &g);
        let suspension = |reason: Option<&str>| Suspension {
            target: Target::Transport("smtp".into()),
            since: crate::time::Instant::ZERO,
            until: None,
            reason: reason.map(Into::into),
            deferred: Default::default(),
        };
        let hop = |dest: &str| dest.split_once(':').unwrap().1.to_string();
        for (nexthop, want) in [
            (hop(&deferred), QmgrDeferral::DeferTransports),
            (hop(&expired), QmgrDeferral::ForcedExpiry),
            (
                suspension(None).dsn().retry_nexthop(),
                QmgrDeferral::Suspended,
            ),
            (
                suspension(Some("maintenance")).dsn().retry_nexthop(),
                QmgrDeferral::Suspended,
            ),
            (
                format!(
                    "4.4.1 {}: connect to x: Connection refused",
                    crate::destination::DEAD_SITE
                ),
                QmgrDeferral::DeadDestination,
            ),
            (
                "4.3.0 mail transport unavailable".into(),
                QmgrDeferral::DeadTransport,
            ),
        ] {
            assert_eq!(QmgrDeferral::of_retry_nexthop(&nexthop), want, "{nexthop}");
        }
        let words: Vec<_> = QmgrDeferral::ALL.iter().map(|c| c.word()).collect();
        assert_eq!(
            words,
            [
                "defer_transports",
                "suspended",
                "dead_destination",
                "dead_transport",
                "forced_expiry"
            ]
        );
    }

    fn plan_one(addr: &str, t: &str, flags: ScanFlags, g: &GlobalParams) -> String {
        let p = plan(
            vec![routed(addr, t, "slow.example")],
            flags,
            false,
            g,
            &mut |_| 50,
        );
        p.entries[0].dest.to_string()
    }
}
