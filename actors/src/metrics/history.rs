//! The status page's memory: window and busy of the busiest destinations,
//! sampled every [`super::SAMPLE_EVERY`] over the last
//! [`super::MetricsConfig::history`], and the page's JSON (`/status.json`).
//!
//! [`History`] is a ring of at most [`super::MetricsConfig::samples`]
//! samples; each keeps the [`super::MetricsConfig::top`] busiest
//! destinations of its moment (most mail in memory, busy plus waiting, as
//! `oqmgr ctl destinations --top` ranks them), so memory is bounded
//! whatever the queue holds. [`status_json`] turns the ring and a live
//! state into what the page draws: one row per destination in memory (the
//! busiest first, at most [`TABLE_ROWS`]) and one series per destination
//! seen in the ring, most load first.
//!
//! # Invariants
//! - the ring never holds more than its capacity, nor a sample more than
//!   `top` destinations;
//! - series and rows are sorted (by load, then name), never in hash order.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use oqmgr::live_state::{destination_detail, DestinationFilter, LiveState};
use serde::Serialize;

use crate::control::live_query::DaemonInfo;

/// Most rows of the destinations table the page gets.
pub const TABLE_ROWS: usize = 500;

/// One destination at one sample.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Point {
    /// `transport:queue`, shared by the samples that name it.
    name: Arc<str>,
    /// Its window.
    window: u32,
    /// Its deliveries in flight.
    busy: u32,
}

/// One moment.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Sample {
    /// When (ms).
    at_ms: u64,
    /// The busiest destinations then.
    points: Vec<Point>,
}

/// The ring of samples.
#[derive(Debug)]
pub struct History {
    /// Oldest first.
    samples: VecDeque<Sample>,
    /// Most samples kept.
    capacity: usize,
    /// Destinations kept per sample.
    top: usize,
}

impl History {
    /// An empty ring of `capacity` samples of the `top` busiest.
    pub fn new(capacity: usize, top: usize) -> History {
        History {
            samples: VecDeque::with_capacity(capacity.min(4096)),
            capacity: capacity.max(1),
            top,
        }
    }

    /// Records the busiest destinations of `state`, forgetting the oldest
    /// sample when full.
    pub fn push(&mut self, state: &LiveState) {
        let busiest = DestinationFilter {
            top: Some(self.top),
            ..DestinationFilter::default()
        }
        .apply(state);
        // Names already in the ring are shared, not copied again.
        let known: BTreeMap<&str, &Arc<str>> = self
            .samples
            .back()
            .map(|s| s.points.iter().map(|p| (&*p.name, &p.name)).collect())
            .unwrap_or_default();
        let points = busiest
            .iter()
            .map(|d| {
                let name = d.name();
                Point {
                    name: known
                        .get(name.as_str())
                        .map_or_else(|| Arc::from(name.as_str()), |n| Arc::clone(n)),
                    window: d.window,
                    busy: d.busy,
                }
            })
            .collect();
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(Sample {
            at_ms: state.now_ms,
            points,
        });
    }

    /// Samples held.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// True when nothing was sampled yet.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// One series per destination in the ring, most load (busy summed
    /// over the samples) first, at most `max`. A destination absent from
    /// a sample (not among the busiest then) has no point there.
    pub fn series(&self, max: usize) -> Vec<Series> {
        let mut by_name: BTreeMap<&str, Series> = BTreeMap::new();
        let mut load: BTreeMap<&str, u64> = BTreeMap::new();
        for s in &self.samples {
            for p in &s.points {
                by_name
                    .entry(&p.name)
                    .or_insert_with(|| Series {
                        destination: p.name.to_string(),
                        points: Vec::new(),
                    })
                    .points
                    .push([s.at_ms, u64::from(p.window), u64::from(p.busy)]);
                *load.entry(&p.name).or_default() += u64::from(p.busy) + 1;
            }
        }
        let mut series: Vec<(u64, Series)> = by_name
            .into_iter()
            .map(|(name, s)| (load[name], s))
            .collect();
        // Stable: equal loads keep name order.
        series.sort_by_key(|(load, _)| std::cmp::Reverse(*load));
        series.into_iter().take(max).map(|(_, s)| s).collect()
    }
}

/// Window and busy of one destination over time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Series {
    /// `transport:queue`.
    pub destination: String,
    /// `[ms, window, busy]`, oldest first.
    pub points: Vec<[u64; 3]>,
}

/// One row of the page's destinations table.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    /// `transport:queue`.
    pub destination: String,
    /// `ready`, `rate-delayed`, `dead`, `suspended`.
    pub state: &'static str,
    /// Window, limit (0: none), busy, waiting.
    pub window: u32,
    /// `_destination_concurrency_limit`.
    pub limit: u32,
    /// In flight.
    pub busy: u32,
    /// Waiting.
    pub todo: u32,
    /// Deliveries answered done since it came into memory.
    pub done: u64,
    /// Answered otherwise.
    pub deferred: u64,
    /// Recent delivery times, ms.
    pub p50_ms: Option<u64>,
    /// Recent delivery times, ms.
    pub p99_ms: Option<u64>,
    /// Age of the oldest waiting entry, ms.
    pub oldest_ms: Option<u64>,
    /// The `ctl destinations` detail column.
    pub detail: String,
}

/// The page's JSON.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StatusJson {
    /// When the state was taken (ms).
    pub now_ms: u64,
    /// `oqmgr VERSION (pid N)`.
    pub daemon: String,
    /// When the daemon started (ms).
    pub started_ms: u64,
    /// The Postfix release and dialect line.
    pub postfix: String,
    /// Messages in the active queue, and the limit.
    pub messages: [u64; 2],
    /// Recipients in memory, and the limit.
    pub recipients: [u64; 2],
    /// Destinations in memory (and suspended ones not in memory).
    pub destinations_total: usize,
    /// The busiest destinations, most mail first.
    pub destinations: Vec<Row>,
    /// Window and busy over time.
    pub series: Vec<Series>,
    /// Time between samples, ms.
    pub sample_every_ms: u64,
}

/// The page's JSON from `state`, `info` and the ring; times in the
/// detail column are printed by `time`.
pub fn status_json(
    state: &LiveState,
    info: &DaemonInfo,
    history: &History,
    series: usize,
    time: &dyn Fn(u64) -> String,
) -> StatusJson {
    let rows = DestinationFilter {
        top: Some(usize::MAX),
        ..DestinationFilter::default()
    }
    .apply(state);
    let s = &state.supervisor;
    StatusJson {
        now_ms: state.now_ms,
        daemon: format!("oqmgr {} (pid {})", info.version, info.pid),
        started_ms: info.started_ms,
        postfix: info.postfix.clone(),
        messages: [s.messages, u64::from(s.message_limit)],
        recipients: [s.recipients, u64::from(s.recipient_limit)],
        destinations_total: rows.len(),
        destinations: rows
            .iter()
            .take(TABLE_ROWS)
            .map(|d| Row {
                destination: d.name(),
                state: d.state.word(),
                window: d.window,
                limit: d.limit,
                busy: d.busy,
                todo: d.todo,
                done: d.tally.deliveries - d.tally.deferred_deliveries,
                deferred: d.tally.deferred_deliveries,
                p50_ms: d.delay_p50_ms,
                p99_ms: d.delay_p99_ms,
                oldest_ms: d.oldest_waiting_ms.map(|t| state.now_ms.saturating_sub(t)),
                detail: destination_detail(state, d, time),
            })
            .collect(),
        series: history.series(series),
        sample_every_ms: super::SAMPLE_EVERY.as_millis() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oqmgr::live_state::{LiveDestState, LiveDestination};

    fn dest(transport: &str, queue: &str, window: u32, busy: u32, todo: u32) -> LiveDestination {
        LiveDestination {
            window,
            limit: 20,
            busy,
            todo,
            ..LiveDestination::new(transport, queue)
        }
    }

    fn state(at: u64, dests: Vec<LiveDestination>) -> LiveState {
        LiveState {
            now_ms: at,
            destinations: dests,
            ..LiveState::default()
        }
    }

    #[test]
    fn the_ring_is_bounded_and_keeps_the_busiest() {
        let mut h = History::new(3, 2);
        for t in 0..5u64 {
            h.push(&state(
                t * 1000,
                vec![
                    dest("smtp", "a", 5, 1, 0),
                    dest("smtp", "b", 9, 4, 3),
                    dest("smtp", "c", 2, t as u32, 0),
                ],
            ));
        }
        assert_eq!(h.len(), 3);
        let series = h.series(10);
        let names: Vec<_> = series.iter().map(|s| s.destination.as_str()).collect();
        // c is among the two busiest from t=2 on (busy 2 > a's 1).
        assert_eq!(names, ["smtp:b", "smtp:c"]);
        assert_eq!(series[0].points, [[2000, 9, 4], [3000, 9, 4], [4000, 9, 4]]);
        assert_eq!(series[1].points, [[2000, 2, 2], [3000, 2, 3], [4000, 2, 4]]);
        assert_eq!(h.series(1).len(), 1);
    }

    #[test]
    fn the_json_lists_rows_busiest_first_with_their_detail() {
        let mut dead = dest("smtp", "dead.example", 0, 0, 0);
        dead.state = LiveDestState::Dead {
            since_ms: 1000,
            until_ms: 301_000,
            reason: "4.4.1 connect: refused".into(),
        };
        let s = state(
            5000,
            vec![dead, dest("smtp", "a", 3, 2, 7), dest("smtp", "b", 1, 1, 0)],
        );
        let mut h = History::new(10, 5);
        h.push(&s);
        let info = DaemonInfo {
            pid: 7,
            version: "0.1.0".into(),
            ..DaemonInfo::default()
        };
        let j = status_json(&s, &info, &h, 8, &|ms| format!("t{ms}"));
        let rows: Vec<_> = j
            .destinations
            .iter()
            .map(|r| r.destination.as_str())
            .collect();
        assert_eq!(rows, ["smtp:a", "smtp:b", "smtp:dead.example"]);
        assert_eq!(j.destinations[2].state, "dead");
        assert_eq!(
            j.destinations[2].detail,
            "since t1000, retry t301000, cohorts 0.0: 4.4.1 connect: refused"
        );
        assert_eq!(j.daemon, "oqmgr 0.1.0 (pid 7)");
        assert_eq!(j.series.len(), 3);
        let text = serde_json::to_string(&j).unwrap();
        assert!(
            text.contains("\"series\":[{\"destination\":\"smtp:a\",\"points\":[[5000,3,2]]}"),
            "{text}"
        );
    }
}
