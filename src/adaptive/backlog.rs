//! The supervisor's memory of deferred files, by destination (ours; oqmgr
//! admits deferred files as its scans find them, `qmgr_active.c`
//! `qmgr_active_feed`, and knows nothing of a file before reading it).
//!
//! Under oqmgr's policy a deferred file is read whenever a scan finds it
//! due, even when its only destination is known to be dead: it is read,
//! routed to `retry` and deferred again. After an hour's outage of a busy
//! site each queue run reads its whole backlog at once (a retry storm),
//! and when the site is back its mail waits for each file's own backoff.
//! And a destination with a large backlog fills the whole active queue
//! while mail for every other destination waits in `incoming/`.
//!
//! [`Backlog`] remembers, for each file the supervisor deferred whose
//! recipients all went to one destination, that destination, when the
//! file is due and when it expires. Scans pass such files by (a skip costs
//! no read), and the supervisor admits them itself ([`Backlog::release`]):
//! - not while their destination is dead: it says so with
//!   `Msg::SiteStatus` when it dies and after each probe that fails
//!   (`crate::adaptive::probe`), and the word holds for a `hold` time
//!   (`minimal_backoff_time`). When it runs out without news, one file
//!   is admitted, whatever its due time, to become the site's probe; a
//!   file whose message has expired is admitted to be returned;
//! - all due at once when the destination comes back (it says so, or a
//!   message for it is delivered), but paced: a destination gets a file
//!   only while it holds fewer than its bound of messages in memory
//!   (twice its concurrency limit), so its retries come at the rate it
//!   delivers them, not in a storm;
//! - otherwise when due, as a scan would have found them;
//! - destinations with files to release take turns (round robin).
//!
//! When the active queue is three quarters full, a newly admitted message
//! whose recipients all go to a destination that already holds more than
//! its fair share of the active queue (the limit divided by the
//! destinations holding messages, plus one) is *postponed*: it goes back
//! to `deferred/` due at once, without an attempt, remembered, and is
//! released when its destination has room. So the scan moves on to mail
//! for other destinations, and equal destinations deliver equally
//! however unequal their backlogs.
//!
//! # Invariants
//! - a file is remembered at most once, under one destination;
//!   `files` and the per-destination queues hold the same queue IDs;
//! - at most [`Backlog::LIMIT`] files are remembered; past that, files are
//!   deferred and found by scans exactly as under oqmgr;
//! - nothing here walks a hash map: every map is ordered, and the round
//!   robin walks destinations in name order from a cursor;
//! - `with_files` holds exactly the destinations with remembered files, so
//!   a release costs the number of those, not of all destinations with
//!   mail in memory.
//!
//! # Parameters
//! `qmgr_message_active_limit` (fair share, congestion),
//! `maximal_backoff_time` (how long a dead site's files wait), the
//! transports' `_destination_concurrency_limit` (the pacing bound).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound::{Excluded, Unbounded};

use crate::effect::DestKey;
use crate::entry::MessageId;
use crate::name::Name;
use crate::time::{Duration, Instant};

/// What is remembered of one deferred file.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Memo {
    /// Its one destination.
    dest: DestKey,
    /// When it is due (its next-attempt stamp; now, when postponed).
    due: Instant,
    /// When its message expires (queue lifetime from its creation).
    expires: Instant,
    /// When it was remembered.
    since: Instant,
}

/// One destination's remembered files and what it holds in memory.
#[derive(Clone, Debug, Default)]
struct Site {
    /// Remembered queue IDs, in the order they were deferred, those of one
    /// instant by queue ID (two hosts may finish them in another order).
    ids: BTreeSet<(Instant, Name)>,
    /// Messages in the active queue with an entry for it.
    in_memory: u32,
    /// It came back from the dead at this time: every file remembered
    /// before is due.
    revived: Option<Instant>,
}

/// The supervisor's memory of deferred files (see the module text).
#[derive(Debug, Default)]
pub struct Backlog {
    /// Remembered files by queue ID.
    files: BTreeMap<Name, Memo>,
    /// Per destination: its remembered files and load.
    sites: BTreeMap<DestKey, Site>,
    /// The destinations with remembered files: the only ones a release
    /// looks at, however many destinations hold mail.
    with_files: BTreeSet<DestKey>,
    /// Destinations that said they are dead, until when the word holds.
    dead: BTreeMap<DestKey, Instant>,
    /// The destinations of each message in memory (adaptive policy only).
    messages: BTreeMap<MessageId, Vec<DestKey>>,
    /// Destinations holding at least one message in memory.
    holding: usize,
    /// The destination that got the last release (the round robin).
    cursor: Option<DestKey>,
}

impl Backlog {
    /// Most files remembered at once.
    pub const LIMIT: usize = 200_000;

    /// Message `message` has (or now gets) an entry for `dest`.
    pub fn routed(&mut self, message: MessageId, dest: &DestKey) {
        let dests = self.messages.entry(message).or_default();
        if dests.contains(dest) {
            return;
        }
        dests.push(dest.clone());
        let site = self.sites.entry(dest.clone()).or_default();
        site.in_memory += 1;
        if site.in_memory == 1 {
            self.holding += 1;
        }
    }

    /// Message `message` left the active queue, `delivered` (nothing
    /// deferred: its destinations are alive, whatever they said) or not;
    /// returns its destination when it had exactly one.
    pub fn finished(
        &mut self,
        now: Instant,
        message: MessageId,
        delivered: bool,
    ) -> Option<DestKey> {
        let dests = self.messages.remove(&message)?;
        for dest in &dests {
            if delivered && self.dead.remove(dest).is_some() {
                // Delivered: the site is back, whatever it last said.
                if let Some(site) = self.sites.get_mut(dest) {
                    site.revived = Some(now);
                }
            }
            if let Some(site) = self.sites.get_mut(dest) {
                site.in_memory -= 1;
                if site.in_memory == 0 {
                    self.holding -= 1;
                }
            }
        }
        self.forget_idle(&dests);
        match dests.as_slice() {
            [one] => Some(one.clone()),
            _ => None,
        }
    }

    /// Remembers that file `id` was deferred until `due`, all its
    /// recipients for `dest`, its message expiring at `expires`; false
    /// when the memory is full.
    pub fn remember(
        &mut self,
        id: &Name,
        dest: &DestKey,
        (due, expires): (Instant, Instant),
        now: Instant,
    ) -> bool {
        if self.files.len() >= Self::LIMIT || self.files.contains_key(id) {
            return false;
        }
        let memo = Memo {
            dest: dest.clone(),
            due,
            expires,
            since: now,
        };
        self.files.insert(id.clone(), memo);
        self.sites
            .entry(dest.clone())
            .or_default()
            .ids
            .insert((now, id.clone()));
        self.with_files.insert(dest.clone());
        true
    }

    /// True when a scan should pass file `id` by: it is remembered, and
    /// [`Backlog::release`] admits it.
    pub fn skips(&self, id: &Name) -> bool {
        self.files.contains_key(id)
    }

    /// File `id` was admitted some other way (a flush) or is gone: it is
    /// forgotten.
    pub fn forget(&mut self, id: &Name) {
        if let Some(memo) = self.files.remove(id) {
            if let Some(site) = self.sites.get_mut(&memo.dest) {
                site.ids.remove(&(memo.since, id.clone()));
            }
            self.forget_idle(&[memo.dest]);
        }
    }

    /// A destination is dead (the word holds until `now + hold`), or came
    /// back.
    pub fn site_status(&mut self, dest: &DestKey, dead: bool, now: Instant, hold: Duration) {
        if dead {
            self.dead.insert(dest.clone(), now + hold);
            if self.dead.len() > Self::LIMIT {
                // Sites that died and were never heard of again.
                self.dead.retain(|_, until| *until > now);
            }
            return;
        }
        self.dead.remove(dest);
        if let Some(site) = self.sites.get_mut(dest) {
            site.revived = Some(now);
        }
    }

    /// Messages `dest` holds in memory, and the destinations holding any.
    pub fn load(&self, dest: &DestKey) -> (u32, usize) {
        let held = self.sites.get(dest).map_or(0, |s| s.in_memory);
        (held, self.holding)
    }

    /// True when another file can be remembered.
    pub fn has_room(&self) -> bool {
        self.files.len() < Self::LIMIT
    }

    /// The next remembered file to admit at `now`, taking destinations in
    /// turn; `bound(dest)` is how many messages a destination may hold in
    /// memory, `hold` how long a dead site's word holds again once a file
    /// went to it as a probe. The file is forgotten: its admission is the
    /// caller's.
    pub fn release(
        &mut self,
        now: Instant,
        hold: Duration,
        bound: &mut dyn FnMut(&DestKey) -> u32,
    ) -> Option<(Name, DestKey)> {
        // The destinations after the cursor, then those up to it: the
        // ordered set walked once around.
        let (after, upto) = match &self.cursor {
            Some(c) => (
                self.with_files.range((Excluded(c), Unbounded)),
                self.with_files.range(..=c),
            ),
            None => (self.with_files.range(..), self.with_files.range(..)),
        };
        let take = if self.cursor.is_some() { usize::MAX } else { 0 };
        let found = after
            .chain(upto.take(take))
            .find(|dest| {
                let Some(site) = self.sites.get(*dest) else {
                    return false;
                };
                let Some((_, id)) = site.ids.first() else {
                    return false;
                };
                let memo = &self.files[id];
                match self.dead.get(*dest) {
                    Some(until) => now >= *until || now >= memo.expires,
                    None => {
                        let due = memo.due <= now || site.revived.is_some_and(|r| memo.since <= r);
                        due && site.in_memory < bound(dest)
                    }
                }
            })
            .cloned()?;
        if let Some(until) = self.dead.get_mut(&found) {
            if now >= *until {
                // No news for a while: this file goes as a probe, and the
                // next waits as long again.
                *until = now + hold;
            }
        }
        let site = self.sites.get_mut(&found).expect("found above");
        let (_, id) = site.ids.pop_first().expect("found above");
        self.files.remove(&id);
        self.cursor = Some(found.clone());
        self.forget_idle(std::slice::from_ref(&found));
        Some((id, found))
    }

    /// Drops the records of destinations that hold nothing and remember
    /// nothing, and takes those that remember nothing off the release
    /// walk.
    fn forget_idle(&mut self, dests: &[DestKey]) {
        for dest in dests {
            let Some(site) = self.sites.get(dest) else {
                self.with_files.remove(dest);
                continue;
            };
            if site.ids.is_empty() {
                self.with_files.remove(dest);
                if site.in_memory == 0 {
                    self.sites.remove(dest);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dest(name: &str) -> DestKey {
        DestKey {
            transport: "smtp".into(),
            queue: name.into(),
        }
    }

    fn at(secs: u64) -> Instant {
        Instant::from_secs(secs)
    }

    /// Files `ids` remembered for `d`, deferred at `now` until `due`.
    fn remember(b: &mut Backlog, d: &DestKey, ids: &[&str], due: u64, now: u64) {
        for id in ids {
            let expires = at(5 * 86400);
            assert!(b.remember(&Name::from(*id), d, (at(due), expires), at(now)));
        }
    }

    fn release(b: &mut Backlog, now: u64, bound: u32) -> Option<String> {
        b.release(at(now), Duration::from_secs(300), &mut |_| bound)
            .map(|(id, _)| id.to_string())
    }

    #[test]
    fn due_files_come_back_in_deferral_order_and_scans_pass_them_by() {
        let mut b = Backlog::default();
        let a = dest("a.example");
        remember(&mut b, &a, &["Q3", "Q1"], 100, 10);
        remember(&mut b, &a, &["Q2"], 100, 20);
        assert!(b.skips(&Name::from("Q1")));
        assert_eq!(release(&mut b, 50, 10), None, "not due yet");
        let order: Vec<_> = std::iter::from_fn(|| release(&mut b, 100, 10)).collect();
        assert_eq!(order, ["Q1", "Q3", "Q2"], "one instant by queue ID");
        assert!(!b.skips(&Name::from("Q1")));
    }

    #[test]
    fn a_dead_site_keeps_its_files_but_one_probe_after_the_hold() {
        let mut b = Backlog::default();
        let a = dest("a.example");
        remember(&mut b, &a, &["Q1", "Q2", "Q3"], 100, 10);
        b.site_status(&a, true, at(90), Duration::from_secs(300));
        assert_eq!(release(&mut b, 200, 10), None, "dead: held past due");
        assert_eq!(release(&mut b, 390, 10).as_deref(), Some("Q1"), "one probe");
        assert_eq!(release(&mut b, 391, 10), None, "and the hold starts again");
        b.site_status(&a, false, at(400), Duration::from_secs(300));
        assert_eq!(release(&mut b, 400, 10).as_deref(), Some("Q2"));
    }

    #[test]
    fn a_site_back_gets_its_files_at_once_but_paced() {
        let mut b = Backlog::default();
        let a = dest("a.example");
        remember(&mut b, &a, &["Q1", "Q2", "Q3"], 5000, 10);
        b.site_status(&a, true, at(10), Duration::from_secs(300));
        b.site_status(&a, false, at(60), Duration::from_secs(300));
        let m = MessageId(1);
        assert_eq!(
            release(&mut b, 60, 1).as_deref(),
            Some("Q1"),
            "due at revival"
        );
        b.routed(m, &a);
        assert_eq!(release(&mut b, 60, 1), None, "holds its bound");
        assert_eq!(b.finished(at(61), m, true), Some(a.clone()));
        assert_eq!(release(&mut b, 61, 1).as_deref(), Some("Q2"));
    }

    #[test]
    fn destinations_take_turns() {
        let mut b = Backlog::default();
        let (a, c) = (dest("a.example"), dest("c.example"));
        remember(&mut b, &a, &["A1", "A2"], 0, 1);
        remember(&mut b, &c, &["C1", "C2"], 0, 1);
        let order: Vec<_> = std::iter::from_fn(|| release(&mut b, 10, 10)).collect();
        assert_eq!(order, ["A1", "C1", "A2", "C2"]);
    }

    #[test]
    fn an_expired_message_is_not_held_for_a_dead_site() {
        let mut b = Backlog::default();
        let a = dest("a.example");
        let expires = at(1000);
        assert!(b.remember(&Name::from("Q1"), &a, (at(100), expires), at(10)));
        b.site_status(&a, true, at(999), Duration::from_secs(300));
        assert_eq!(release(&mut b, 999, 10), None);
        assert_eq!(release(&mut b, 1000, 10).as_deref(), Some("Q1"));
    }

    #[test]
    fn loads_count_messages_per_destination() {
        let mut b = Backlog::default();
        let (a, c) = (dest("a.example"), dest("c.example"));
        b.routed(MessageId(1), &a);
        b.routed(MessageId(1), &a);
        b.routed(MessageId(2), &a);
        b.routed(MessageId(2), &c);
        assert_eq!(b.load(&a), (2, 2));
        assert_eq!(
            b.finished(at(1), MessageId(2), false),
            None,
            "two destinations"
        );
        assert_eq!(b.load(&a), (1, 1));
        assert_eq!(b.load(&c), (0, 1));
    }
}
