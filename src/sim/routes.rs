//! How the simulator resolves recipients: the scenario's `routes` table
//! stands in for trivial-rewrite (Postfix: the resolve step of
//! `qmgr_message.c`, `qmgr_message_resolve`).
//!
//! A recipient domain listed in `routes` goes to its `transport[:nexthop]`
//! (the next hop defaults to the domain), any other to `smtp` with the
//! domain as next hop; `local` is the local class. Domains are matched in
//! lower case. The world reads a file's recipients in batches ([`read`]),
//! routing each domain once per run and sharing the transport and next hop
//! names, as a million recipients share a few thousand domains.
//!
//! # Invariants
//! - the answer depends on the domain alone (so it may be kept per
//!   domain);
//! - an address without `@` has the empty domain.

use std::collections::HashSet;

use crate::entry::Recipient;
use crate::name::{FastMap, FastState, Name};
use crate::route::Routed;
use crate::sim::queues::File;
use crate::sim::scenario::Scenario;

/// Resolves a recipient the way the scenario's routes say.
pub fn resolve(scenario: &Scenario, address: &str) -> Routed {
    resolve_with(scenario, address, &mut |text| Name::from(text))
}

/// Like [`resolve`], with `name` making the transport and next hop names,
/// so that a host can hand out shared copies instead of new ones.
pub fn resolve_with(
    scenario: &Scenario,
    address: &str,
    name: &mut dyn FnMut(&str) -> Name,
) -> Routed {
    let (transport, nexthop) = route(scenario, domain_of(address), name);
    Routed {
        recipient: Recipient::new(address),
        class_local: transport == "local",
        transport,
        nexthop,
    }
}

/// The domain part of an address as [`resolve_with`] routes it: after the
/// last `@`, empty when there is none.
pub fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map_or("", |(_, d)| d)
}

/// The transport and next hop of a recipient domain, as the scenario's
/// routes say; the answer depends on the domain alone, so a host may keep
/// it for the next recipient of the same domain.
pub fn route(
    scenario: &Scenario,
    domain: &str,
    name: &mut dyn FnMut(&str) -> Name,
) -> (Name, Name) {
    // Lower case without a copy when it already is.
    let lowered;
    let domain = if domain.bytes().any(|b| b.is_ascii_uppercase()) {
        lowered = domain.to_ascii_lowercase();
        lowered.as_str()
    } else {
        domain
    };
    match scenario.routes.get(domain) {
        Some(route) => match route.split_once(':') {
            Some((t, n)) => (name(t), name(if n.is_empty() { domain } else { n })),
            None => (name(route), name(domain)),
        },
        None => (name("smtp"), name(domain)),
    }
}

/// Reads and resolves the next batch of a file's undone recipients,
/// routing each domain once (`routes`) and sharing transport and next hop
/// names (`names`).
pub(crate) fn read(
    file: &mut File,
    batch: u32,
    scenario: &Scenario,
    names: &mut HashSet<Name, FastState>,
    routes: &mut FastMap<Box<str>, (Name, Name)>,
) -> (Vec<Routed>, bool) {
    file.read_batch_with(batch, |address| {
        let domain = domain_of(address);
        let (transport, nexthop) = match routes.get(domain) {
            Some(route) => route.clone(),
            None => {
                let mut intern = |text: &str| match names.get(text) {
                    Some(name) => name.clone(),
                    None => {
                        let name = Name::from(text);
                        names.insert(name.clone());
                        name
                    }
                };
                let found = route(scenario, domain, &mut intern);
                routes.insert(domain.into(), found.clone());
                found
            }
        };
        Routed {
            recipient: Recipient::new(address),
            class_local: transport == "local",
            transport,
            nexthop,
        }
    })
}
