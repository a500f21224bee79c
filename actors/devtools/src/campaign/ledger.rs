//! ledger - every accepted recipient accounted for: delivered, bounced with
//! a notice, still queued, in `corrupt/`, or lost; and copies beyond one.
//!
//! # Rules
//! Per accepted (tag, recipient), in this order:
//! - delivered: at least one complete copy reached a sink; a second copy,
//!   or a copy and also a notice, counts once as duplicated;
//! - bounced: no copy, and a notice to the sender names it `failed`;
//! - queued: no copy, no notice, and a file carrying the tag is in a live
//!   queue or `hold/` after the drain;
//! - corrupt: the same, in `corrupt/`;
//! - lost: none of the above.
//!
//! Messages whose acceptance is unknown (connection lost after the dot)
//! are not counted; neither are notices or copies of anything else.

use std::collections::BTreeSet;

use super::dumps::SinkRecord;
use super::inject::Injected;
use super::rig::Census;

/// The counts of one case run (recipients, except `messages`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Messages accepted.
    pub messages: u64,
    /// Recipients accepted.
    pub accepted: u64,
    /// Delivered at least once.
    pub delivered: u64,
    /// Returned to the sender with a notice.
    pub bounced: u64,
    /// Still in a queue.
    pub queued: u64,
    /// In `corrupt/`.
    pub corrupt: u64,
    /// Nowhere.
    pub lost: u64,
    /// Delivered more than once, or delivered and also returned.
    pub duplicated: u64,
    /// Messages of unknown acceptance (left out).
    pub unsure: u64,
}

/// Short names of [`Tally::counts`], in order.
pub const COUNT_NAMES: [&str; 7] = ["acc", "dlv", "bnc", "q", "cor", "lost", "dup"];

impl Tally {
    /// The recipient counts in table order: accepted, delivered, bounced,
    /// queued, corrupt, lost, duplicated.
    pub fn counts(&self) -> [u64; 7] {
        [
            self.accepted,
            self.delivered,
            self.bounced,
            self.queued,
            self.corrupt,
            self.lost,
            self.duplicated,
        ]
    }

    /// Adds another run's counts.
    pub fn add(&mut self, o: &Tally) {
        self.messages += o.messages;
        self.accepted += o.accepted;
        self.delivered += o.delivered;
        self.bounced += o.bounced;
        self.queued += o.queued;
        self.corrupt += o.corrupt;
        self.lost += o.lost;
        self.duplicated += o.duplicated;
        self.unsure += o.unsure;
    }
}

/// Accounts for `injected` against what the sinks got and the census.
/// Returns the tally and up to 5 examples of lost recipients.
pub fn account(injected: &Injected, sinks: &SinkRecord, census: &Census) -> (Tally, Vec<String>) {
    let queued: BTreeSet<&str> = census.queued_tags.iter().map(String::as_str).collect();
    let corrupt: BTreeSet<&str> = census.corrupt_tags.iter().map(String::as_str).collect();
    let mut t = Tally {
        messages: injected.accepted.len() as u64,
        unsure: injected.unsure,
        ..Tally::default()
    };
    let mut lost = Vec::new();
    for m in &injected.accepted {
        for r in &m.rcpts {
            t.accepted += 1;
            let key = (m.tag.clone(), r.to_ascii_lowercase());
            let copies = sinks.delivered.get(&key).copied().unwrap_or(0);
            let notices = sinks.noticed.get(&key).copied().unwrap_or(0);
            if copies > 0 {
                t.delivered += 1;
                if copies + notices > 1 {
                    t.duplicated += 1;
                }
            } else if notices > 0 {
                t.bounced += 1;
                if notices > 1 {
                    t.duplicated += 1;
                }
            } else if queued.contains(m.tag.as_str()) {
                t.queued += 1;
            } else if corrupt.contains(m.tag.as_str()) {
                t.corrupt += 1;
            } else {
                t.lost += 1;
                if lost.len() < 5 {
                    lost.push(format!("{} {r}", m.tag));
                }
            }
        }
    }
    (t, lost)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::inject::Accepted;

    #[test]
    fn accounts_each_recipient_once() {
        let msg = |tag: &str, rcpts: &[&str]| Accepted {
            tag: tag.into(),
            rcpts: rcpts.iter().map(|r| r.to_string()).collect(),
        };
        let injected = Injected {
            accepted: vec![
                msg("a", &["u1@ok.test", "u2@ok.test"]),
                msg("b", &["x@fault.test"]),
                msg("c", &["u1@ok.test"]),
                msg("d", &["u1@ok.test"]),
                msg("e", &["u1@ok.test"]),
            ],
            unsure: 1,
            ..Injected::default()
        };
        let mut sinks = SinkRecord::default();
        let k = |t: &str, r: &str| (t.to_string(), r.to_string());
        sinks.delivered.insert(k("a", "u1@ok.test"), 2);
        sinks.delivered.insert(k("a", "u2@ok.test"), 1);
        sinks.noticed.insert(k("b", "x@fault.test"), 1);
        let census = Census {
            queued_tags: vec!["c".into()],
            corrupt_tags: vec!["d".into()],
            ..Census::default()
        };
        let (t, lost) = account(&injected, &sinks, &census);
        assert_eq!(
            t,
            Tally {
                messages: 5,
                accepted: 6,
                delivered: 2,
                bounced: 1,
                queued: 1,
                corrupt: 1,
                lost: 1,
                duplicated: 1,
                unsure: 1,
            }
        );
        assert_eq!(lost, vec!["e u1@ok.test"]);
    }
}
