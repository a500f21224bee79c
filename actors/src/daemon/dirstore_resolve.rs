//! Resolving a batch of recipients read from a queue file (Postfix: the
//! start of `qmgr_message.c`'s `qmgr_message_resolve`).
//!
//! A message with a content filter (`FILT` record) sends every recipient
//! to the filter's `transport[:nexthop]`, the next hop defaulting to
//! `default_filter_nexthop`, then the recipient's domain, then
//! `myhostname`; address-verification probes ignore the filter. Other
//! recipients are resolved through trivial-rewrite ([`super::Resolver`]),
//! in the `verify` class for an MTA verification probe; a resolver failure
//! sends the recipient to `retry` and bad syntax to `error`, as Postfix
//! does. A redirect (`REDIRECT` record) is applied by the caller before.
//!
//! # Invariants
//! - one routed recipient per recipient read, in the same order;
//! - every byte of an address reaches the core losslessly (`super::text`).

use super::{text, DirStore};
use crate::daemon::active_table::{core_recipient, HeldEnvelope};
use crate::postfix::queue_file::{FileRecipient, TRACE_MTA_VRFY, TRACE_USR_VRFY};
use crate::postfix::rewrite::{resolve_flags, ResolveClass};
use oqmgr::route::Routed;

impl DirStore {
    /// Resolves one batch the way `qmgr_message_resolve` begins: redirect,
    /// content filter, then trivial-rewrite; errors become `retry`/`error`.
    pub(super) fn resolve(&self, env: &HeldEnvelope, batch: Vec<FileRecipient>) -> Vec<Routed> {
        let probe = env.trace_flags & (TRACE_MTA_VRFY | TRACE_USR_VRFY) != 0;
        if let (Some(filter), false) = (env.filter_xport(), probe) {
            return batch
                .into_iter()
                .map(|r| {
                    let (transport, nexthop) = self.filter_route(filter, &r.address);
                    Routed {
                        recipient: core_recipient(&r, r.address.clone()),
                        transport: transport.into(),
                        nexthop: nexthop.into(),
                        class_local: false,
                    }
                })
                .collect();
        }
        let class = if env.trace_flags & TRACE_MTA_VRFY != 0 {
            ResolveClass::Verify
        } else {
            ResolveClass::Resolve
        };
        let sender = env.sender.as_deref().unwrap_or_default();
        let addresses = batch.iter().map(|r| r.address.as_slice());
        let replies = self.resolver.resolve(class, sender, addresses);
        batch
            .into_iter()
            .zip(replies)
            .map(|(r, reply)| {
                let (transport, nexthop, flags) = if reply.flags & resolve_flags::FAIL != 0 {
                    (
                        "retry".to_string(),
                        "4.3.0 address resolver failure".to_string(),
                        0,
                    )
                } else if reply.flags & resolve_flags::ERROR != 0 {
                    (
                        "error".to_string(),
                        "5.1.3 bad address syntax".to_string(),
                        0,
                    )
                } else {
                    (text(&reply.transport), text(&reply.nexthop), reply.flags)
                };
                Routed {
                    recipient: core_recipient(&r, reply.recipient),
                    transport: transport.into(),
                    nexthop: nexthop.into(),
                    class_local: flags & resolve_flags::CLASS_LOCAL != 0,
                }
            })
            .collect()
    }

    /// Transport and next hop for a content filter `transport[:nexthop]`.
    pub(super) fn filter_route(&self, filter: &[u8], address: &[u8]) -> (String, String) {
        let filter = text(filter);
        let (transport, hop) = filter.split_once(':').unwrap_or((filter.as_str(), ""));
        let nexthop = if !hop.is_empty() {
            hop.to_string()
        } else if !self.routing.default_filter_nexthop.is_empty() {
            self.routing.default_filter_nexthop.clone()
        } else {
            match address.iter().rposition(|&b| b == b'@') {
                Some(at) => text(&address[at + 1..]),
                None => self.routing.myhostname.clone(),
            }
        };
        (transport.to_string(), nexthop)
    }
}
