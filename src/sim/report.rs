//! The end-of-run summary of a simulation: per destination, what was
//! delivered, deferred and bounced, how many deliveries ran at once, and how
//! long recipients waited; then totals. Printed with fixed precision so it
//! can be snapshot-tested like the trace.
//!
//! Counters live in rows, one per destination name, found by name once
//! (when a destination first needs one) and by row number afterwards: the
//! simulator keeps each live destination's row number, so a delivery's
//! counters cost an index, not a hash of two names in a map of ten
//! thousand.

use std::fmt::Write;

use crate::effect::DestKey;
use crate::entry::RecipientStatus;
use crate::name::FastMap;
use crate::sim::world::Queues;
use crate::time::{Duration, Instant};

/// Counters of one destination.
#[derive(Clone, Debug, Default)]
pub struct DestStats {
    /// Recipients delivered.
    pub sent: u64,
    /// Recipient deferrals (one recipient may count several times).
    pub deferred: u64,
    /// Recipients bounced.
    pub bounced: u64,
    /// Deliveries in flight now.
    pub busy: u32,
    /// Most deliveries in flight at once.
    pub max_busy: u32,
    /// Integral of busy over time, in delivery-milliseconds.
    pub busy_ms: u64,
    /// When busy last changed.
    pub since: Instant,
    /// First and last time it had a delivery in flight.
    pub span: Option<(Instant, Instant)>,
    /// Arrival-to-outcome delays of delivered recipients, in ms.
    pub delays: Vec<u64>,
}

/// Counters of a whole run.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Per destination name, in order of first use (the summary sorts
    /// them before it prints).
    pub dests: Vec<(DestKey, DestStats)>,
    /// Row numbers in `dests` by name (a hash map for lookups only).
    rows: FastMap<DestKey, u32>,
    /// Messages that arrived.
    pub arrived: u64,
    /// Files removed after full delivery.
    pub removed: u64,
    /// Deferrals of whole files.
    pub deferred_files: u64,
    /// Delay warnings sent.
    pub warned: u64,
    /// Delay-cleared notices sent.
    pub delay_cleared: u64,
    /// Files returned to sender.
    pub expired: u64,
    /// Recipients returned with them.
    pub returned: u64,
    /// Double-bounce recipients discarded.
    pub discarded: u64,
    /// Recipients deferred by the queue manager itself.
    pub deferred_by_qmgr: u64,
    /// Selections (scheduling decisions that started a delivery).
    pub selections: u64,
}

impl Stats {
    /// The row of `dest`, made empty on first use. The key is cloned only
    /// for a new row.
    pub fn row(&mut self, dest: &DestKey) -> u32 {
        if let Some(&row) = self.rows.get(dest) {
            return row;
        }
        let row = u32::try_from(self.dests.len()).expect("fewer than 2^32 destinations");
        self.dests.push((dest.clone(), DestStats::default()));
        self.rows.insert(dest.clone(), row);
        row
    }

    /// A delivery to `dest` started.
    pub fn select(&mut self, now: Instant, dest: &DestKey) {
        self.selections += 1;
        let row = self.row(dest);
        self.dests[row as usize].1.busy_change(now, 1);
    }

    /// A delivery to `dest` ended.
    pub fn done(&mut self, now: Instant, dest: &DestKey) {
        let row = self.row(dest);
        self.done_at(now, row);
    }

    /// A delivery to the destination of row `row` ended.
    pub fn done_at(&mut self, now: Instant, row: u32) {
        self.dests[row as usize].1.busy_change(now, -1);
    }

    /// A delivery to the destination of row `row` started at `now`
    /// ([`Stats::select`] by row).
    pub fn select_at(&mut self, now: Instant, row: u32) {
        self.selections += 1;
        self.dests[row as usize].1.busy_change(now, 1);
    }

    /// The recipients of a delivery to the destination of row `row` came
    /// (or will come) to `statuses`, `delay` after their arrival
    /// ([`Stats::recipient`] for each, by row).
    pub fn outcome_at(&mut self, row: u32, statuses: &[RecipientStatus], delay: Duration) {
        let d = &mut self.dests[row as usize].1;
        for &status in statuses {
            d.recipient(status, delay);
        }
    }

    /// Counts one recipient's outcome.
    pub fn recipient(&mut self, dest: &DestKey, status: RecipientStatus, delay: Duration) {
        let row = self.row(dest);
        self.dests[row as usize].1.recipient(status, delay);
    }
}

impl DestStats {
    /// Updates the concurrency figures.
    fn busy_change(&mut self, now: Instant, delta: i32) {
        let d = self;
        if d.busy > 0 {
            d.busy_ms += u64::from(d.busy) * now.saturating_since(d.since).as_millis();
        }
        d.busy = d.busy.saturating_add_signed(delta);
        d.max_busy = d.max_busy.max(d.busy);
        d.since = now;
        d.span = Some(match d.span {
            None => (now, now),
            Some((first, _)) => (first, now),
        });
    }

    /// Counts one recipient's outcome.
    fn recipient(&mut self, status: RecipientStatus, delay: Duration) {
        let d = self;
        match status {
            RecipientStatus::Sent => {
                d.sent += 1;
                d.delays.push(delay.as_millis());
            }
            RecipientStatus::Deferred => d.deferred += 1,
            RecipientStatus::Bounced => d.bounced += 1,
        }
    }
}

fn secs(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

fn percentile(sorted: &[u64], p: u64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (sorted.len() as u64 * p).div_ceil(100).max(1) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// Renders the summary.
pub fn summary(stats: &Stats, queues: &Queues, end: Instant, steps: u64) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<40} {:>7} {:>7} {:>7} {:>6} {:>5} {:>9} {:>9}",
        "destination", "sent", "defer", "bounce", "conc", "max", "p50", "p99"
    );
    let (mut sent, mut deferred, mut bounced) = (0, 0, 0);
    let mut dests: Vec<(&DestKey, &DestStats)> = stats.dests.iter().map(|(k, d)| (k, d)).collect();
    dests.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for (key, d) in dests {
        let mut delays = d.delays.clone();
        delays.sort_unstable();
        let mean = match d.span {
            Some((first, last)) if last > first => {
                d.busy_ms as f64 / last.saturating_since(first).as_millis() as f64
            }
            _ => f64::from(d.max_busy),
        };
        let _ = writeln!(
            s,
            "{:<40} {:>7} {:>7} {:>7} {:>6.2} {:>5} {:>9} {:>9}",
            key.to_string(),
            d.sent,
            d.deferred,
            d.bounced,
            mean,
            d.max_busy,
            secs(percentile(&delays, 50)),
            secs(percentile(&delays, 99)),
        );
        sent += d.sent;
        deferred += d.deferred;
        bounced += d.bounced;
    }
    let left = queues.files.len();
    let _ = writeln!(
        s,
        "total: arrived={} removed={} expired={} returned_rcpt={} warned={} delay_cleared={} discarded={} \
         rcpt_sent={} rcpt_deferrals={} rcpt_bounced={} deferred_by_qmgr={} file_deferrals={} \
         left_in_queue={} selections={} steps={} end={}",
        stats.arrived,
        stats.removed,
        stats.expired,
        stats.returned,
        stats.warned,
        stats.delay_cleared,
        stats.discarded,
        sent,
        deferred,
        bounced,
        stats.deferred_by_qmgr,
        stats.deferred_files,
        left,
        stats.selections,
        steps,
        end
    );
    s
}
