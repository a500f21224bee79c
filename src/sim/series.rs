//! The data of a schedule's picture (`oqmgr simulate --plot`; no Postfix
//! counterpart): per destination, its window and busy count over time, its
//! deliveries and deferrals so far, and the moments its window was cut or
//! raised, it was probed, and the periods it was dead. Read from a
//! simulator trace as [`super::first_pass`] reads it, so the picture shows
//! exactly the decisions the trace pins; the drawing itself is the
//! command's (`actors/src/cli/plot.rs`).
//!
//! # Invariants
//! - step series hold a point only where the value changes, in time order;
//! - cumulative series never decrease;
//! - `retry` and `error` pseudo-destinations are left out; destinations
//!   come in name order.

use std::collections::BTreeMap;
use std::fmt;

use crate::route::{ERROR, RETRY};

/// What one destination did over a run. Times are milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DestSeries {
    /// `transport:nexthop`.
    pub dest: String,
    /// The window from each time on.
    pub window: Vec<(u64, u32)>,
    /// Deliveries in flight from each time on.
    pub busy: Vec<(u64, u32)>,
    /// Deliveries that ended well, so far.
    pub delivered: Vec<(u64, u64)>,
    /// Deliveries deferred (or crashed), so far.
    pub deferred: Vec<(u64, u64)>,
    /// Negative feedback (`throttle`), with the window after it.
    pub throttles: Vec<(u64, u32)>,
    /// Positive feedback that raised the window, with the window after it.
    pub unthrottles: Vec<(u64, u32)>,
    /// Adaptive policy: a dead destination's probe was sent.
    pub probes: Vec<u64>,
    /// When it was dead: from, and until (`None`: still at the end).
    pub dead: Vec<(u64, Option<u64>)>,
}

/// What every destination did over a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Series {
    /// Per destination, in name order.
    pub dests: Vec<DestSeries>,
    /// The time of the last trace line.
    pub end: u64,
}

impl DestSeries {
    /// Adds a step to `series` when the value changes.
    fn step<T: Copy + PartialEq>(series: &mut Vec<(u64, T)>, at: u64, value: T) {
        if series.last().map(|(_, v)| *v) != Some(value) {
            series.push((at, value));
        }
    }

    /// The window now (0 before any).
    fn window_now(&self) -> u32 {
        self.window.last().map_or(0, |(_, w)| *w)
    }
}

impl Series {
    /// Reads the series of every real destination from a simulator trace.
    pub fn from_trace(trace: &str) -> Series {
        let mut dests: BTreeMap<String, DestSeries> = BTreeMap::new();
        let mut end = 0;
        for line in trace.lines() {
            let Some((at, event)) = line.trim_start().split_once(' ') else {
                continue;
            };
            let Some(at) = millis(at) else {
                continue;
            };
            end = at;
            let mut words = event.split(' ');
            let (Some(kind), Some(dest)) = (words.next(), words.next()) else {
                continue;
            };
            if !dest.contains(':')
                || dest.starts_with(&format!("{RETRY}:"))
                || dest.starts_with(&format!("{ERROR}:"))
            {
                continue;
            }
            let d = dests.entry(dest.to_string()).or_insert_with(|| DestSeries {
                dest: dest.to_string(),
                ..DestSeries::default()
            });
            let field = |name: &str| number(event, name);
            match kind {
                "select" | "probe" => {
                    if let Some(w) = field("window=") {
                        DestSeries::step(&mut d.window, at, w);
                    }
                    let busy = d.busy.last().map_or(0, |(_, b)| *b) + 1;
                    DestSeries::step(&mut d.busy, at, busy);
                    if kind == "probe" {
                        d.probes.push(at);
                    }
                }
                "done" => {
                    let busy = d.busy.last().map_or(0, |(_, b)| *b).saturating_sub(1);
                    DestSeries::step(&mut d.busy, at, busy);
                    let outcome = event
                        .split(" hop=")
                        .next()
                        .and_then(|h| h.rsplit(' ').next());
                    let series = if outcome == Some("done") {
                        &mut d.delivered
                    } else {
                        &mut d.deferred
                    };
                    let so_far = series.last().map_or(0, |(_, n)| *n) + 1;
                    series.push((at, so_far));
                }
                "throttle" | "unthrottle" | "revive" | "resume" => {
                    let Some(w) = field("window=") else {
                        continue;
                    };
                    let before = d.window_now();
                    DestSeries::step(&mut d.window, at, w);
                    if kind == "throttle" {
                        d.throttles.push((at, w));
                    } else if kind == "unthrottle" && w > before {
                        d.unthrottles.push((at, w));
                    }
                    if kind == "revive" {
                        if let Some((_, until @ None)) = d.dead.last_mut() {
                            *until = Some(at);
                        }
                    }
                }
                "dead" => d.dead.push((at, None)),
                _ => {}
            }
        }
        Series {
            dests: dests.into_values().collect(),
            end,
        }
    }
}

/// Milliseconds from the trace's `seconds.millis`.
fn millis(text: &str) -> Option<u64> {
    let (secs, ms) = text.split_once('.')?;
    Some(secs.parse::<u64>().ok()? * 1000 + ms.parse::<u64>().ok()?)
}

/// The number after ` name` in a trace event.
fn number(event: &str, name: &str) -> Option<u32> {
    let at = event.find(&format!(" {name}"))? + 1 + name.len();
    event[at..].split([' ', ',']).next()?.parse().ok()
}

/// Seconds with three decimals, as the trace prints them.
struct Secs(u64);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}", self.0 / 1000, self.0 % 1000)
    }
}

impl fmt::Display for Series {
    /// One line per series: `name: time=value ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "end {}", Secs(self.end))?;
        for d in &self.dests {
            writeln!(f, "{}", d.dest)?;
            let pairs = |f: &mut fmt::Formatter<'_>, name: &str, v: &[(u64, String)]| {
                write!(f, "  {name}:")?;
                for (at, value) in v {
                    write!(f, " {}={value}", Secs(*at))?;
                }
                writeln!(f)
            };
            let show = |v: &[(u64, u32)]| -> Vec<(u64, String)> {
                v.iter().map(|(t, x)| (*t, x.to_string())).collect()
            };
            let show_n = |v: &[(u64, u64)]| -> Vec<(u64, String)> {
                v.iter().map(|(t, x)| (*t, x.to_string())).collect()
            };
            pairs(f, "window", &show(&d.window))?;
            pairs(f, "busy", &show(&d.busy))?;
            pairs(f, "delivered", &show_n(&d.delivered))?;
            pairs(f, "deferred", &show_n(&d.deferred))?;
            pairs(f, "throttle", &show(&d.throttles))?;
            pairs(f, "unthrottle", &show(&d.unthrottles))?;
            let probes: Vec<(u64, String)> = d.probes.iter().map(|t| (*t, "1".into())).collect();
            pairs(f, "probe", &probes)?;
            let dead: Vec<(u64, String)> = d
                .dead
                .iter()
                .map(|(from, to)| (*from, to.map_or("end".into(), |t| Secs(t).to_string())))
                .collect();
            pairs(f, "dead (from=until)", &dead)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_steps_counts_marks_and_dead_periods() {
        let trace = "\
      0.000 select smtp:a e1 a1 busy=1 window=5
      0.000 select smtp:a e2 a2 busy=2 window=5
      1.000 done smtp:a e1 done
      1.000 unthrottle smtp:a limit=20 window=6 success=0.000 failure=0.000 fail_cohorts=0.000 feedback=1.000
      1.010 done smtp:a e2 defer hop=\"4.4.1 connect to a[127.0.0.1]:25: Connection refused\"
      1.010 throttle smtp:a limit=20 window=0 success=0.000 failure=1.000 fail_cohorts=1.000 feedback=0.000
      1.010 dead smtp:a until=301.010 reason=\"4.4.1 no\"
      1.010 select retry:4.4.1 no e3 a3 busy=1 window=5
      3.000 probe smtp:a e2 a4
      4.000 done smtp:a e2 done
      4.000 revive smtp:a limit=20 window=1 success=0.000 failure=0.000 fail_cohorts=0.000 feedback=0.000
";
        let s = Series::from_trace(trace);
        assert_eq!(s.dests.len(), 1, "retry is left out");
        let a = &s.dests[0];
        assert_eq!(a.window, vec![(0, 5), (1000, 6), (1010, 0), (4000, 1)]);
        assert_eq!(
            a.busy,
            vec![(0, 1), (0, 2), (1000, 1), (1010, 0), (3000, 1), (4000, 0)]
        );
        assert_eq!(a.delivered, vec![(1000, 1), (4000, 2)]);
        assert_eq!(a.deferred, vec![(1010, 1)]);
        assert_eq!(a.throttles, vec![(1010, 0)]);
        assert_eq!(a.unthrottles, vec![(1000, 6)]);
        assert_eq!(a.probes, vec![3000]);
        assert_eq!(a.dead, vec![(1010, Some(4000))]);
        assert_eq!(s.end, 4000);
    }
}
