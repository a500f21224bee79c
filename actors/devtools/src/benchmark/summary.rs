//! Summaries of benchmark runs: median and spread per metric and queue
//! manager, the ratio of ours to the best Postfix queue manager, and the
//! final markdown table.
//!
//! Figures drift from run to run on a shared machine, so the report only
//! compares queue managers measured in the *same* invocation (runs
//! interleaved A B C A B C), as ratios.

use std::fmt::Write as _;

/// Which direction of a metric is good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    /// Throughput-like: more is better.
    Higher,
    /// Cost- or latency-like: less is better.
    Lower,
}

/// What one number means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    /// Row label within its workload, e.g. "throughput".
    pub name: &'static str,
    /// Unit shown after the label, e.g. "msg/s".
    pub unit: &'static str,
    /// Which direction is good (decides "best of Postfix").
    pub better: Better,
}

/// The outcome of one run of one workload with one queue manager.
#[derive(Debug, Clone, PartialEq)]
pub enum RunOutcome {
    /// The run completed with these measurements.
    Done(Vec<(Metric, f64)>),
    /// The run failed or timed out; the text says why.
    DidNotFinish(String),
}

/// Median, minimum and maximum of a set of runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunStats {
    /// Median (mean of the middle two for an even count).
    pub median: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Number of values.
    pub count: usize,
}

impl RunStats {
    /// Statistics of `values`; `None` when empty or any value is NaN.
    pub fn of(values: &[f64]) -> Option<RunStats> {
        if values.is_empty() || values.iter().any(|v| v.is_nan()) {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(RunStats {
            median,
            min: v[0],
            max: v[n - 1],
            count: n,
        })
    }
}

/// Nearest-rank percentile `p` (0 < p <= 1) of `values`; `None` if empty.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = (p * v.len() as f64).ceil().max(1.0) as usize;
    Some(v[rank.min(v.len()) - 1])
}

/// Formats a number with three significant figures at most, no exponent.
pub fn fmt_num(x: f64) -> String {
    let a = x.abs();
    if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

/// All results of one (workload, metric) row, by queue manager column.
#[derive(Debug, Clone)]
pub struct ReportRow {
    /// Workload label.
    pub workload: String,
    /// The metric.
    pub metric: Metric,
    /// Per queue-manager column: the values of its completed runs and how
    /// many runs did not finish.
    pub cells: Vec<(Vec<f64>, usize)>,
}

/// Column label and whether it is one of Postfix's own queue managers.
#[derive(Debug, Clone)]
pub struct Column {
    /// Header text, e.g. "Postfix qmgr".
    pub label: String,
    /// True for Postfix's qmgr and oqmgr (candidates for "best of Postfix").
    pub postfix: bool,
    /// True for ours with the operator's tools in use (compared with
    /// plain ours).
    pub observed: bool,
}

/// Renders one cell: "median (min–max)", "did not finish", or a mix.
fn cell_text(values: &[f64], dnf: usize) -> String {
    match RunStats::of(values) {
        None if dnf > 0 => "did not finish".into(),
        None => "–".into(),
        Some(s) => {
            let mut text = if s.count > 1 {
                format!(
                    "{} ({}–{})",
                    fmt_num(s.median),
                    fmt_num(s.min),
                    fmt_num(s.max)
                )
            } else {
                fmt_num(s.median)
            };
            if dnf > 0 {
                let _ = write!(text, " +{dnf} DNF");
            }
            text
        }
    }
}

/// Ratio of the first non-Postfix column's median to the best Postfix
/// median (by the metric's direction); `None` if either is missing or the
/// best is zero.
pub fn ratio(row: &ReportRow, columns: &[Column]) -> Option<f64> {
    let medians: Vec<Option<f64>> = row
        .cells
        .iter()
        .map(|(v, _)| RunStats::of(v).map(|s| s.median))
        .collect();
    let ours = columns
        .iter()
        .zip(&medians)
        .find(|(c, _)| !c.postfix && !c.observed)
        .and_then(|(_, m)| *m)?;
    let postfix = columns
        .iter()
        .zip(&medians)
        .filter(|(c, _)| c.postfix)
        .filter_map(|(_, m)| *m);
    let best = match row.metric.better {
        Better::Higher => postfix.fold(None, |b: Option<f64>, m| Some(b.map_or(m, |b| b.max(m)))),
        Better::Lower => postfix.fold(None, |b: Option<f64>, m| Some(b.map_or(m, |b| b.min(m)))),
    }?;
    (best != 0.0).then(|| ours / best)
}

/// Median of the observed column over plain ours, when both are there.
pub fn observed_ratio(row: &ReportRow, columns: &[Column]) -> Option<f64> {
    let median = |observed: bool| {
        columns
            .iter()
            .zip(&row.cells)
            .find(|(c, _)| !c.postfix && c.observed == observed)
            .and_then(|(_, (v, _))| RunStats::of(v))
            .map(|s| s.median)
    };
    let (plain, observed) = (median(false)?, median(true)?);
    (plain != 0.0).then(|| observed / plain)
}

/// The markdown table of all rows: one column per queue manager, then
/// the ratio of ours to the best Postfix when both are there, and of ours
/// observed to plain ours when both are there.
pub fn markdown_table(rows: &[ReportRow], columns: &[Column]) -> String {
    let ours = columns.iter().any(|c| !c.postfix && !c.observed);
    let with_ratio = ours && columns.iter().any(|c| c.postfix);
    let with_observed = ours && columns.iter().any(|c| c.observed);
    let mut out = String::from("| workload | metric |");
    for c in columns {
        let _ = write!(out, " {} |", c.label);
    }
    if with_ratio {
        out.push_str(" ours / best Postfix |");
    }
    if with_observed {
        out.push_str(" observed / ours |");
    }
    out.push_str("\n|---|---|");
    for _ in columns {
        out.push_str("---:|");
    }
    if with_ratio {
        out.push_str("---:|");
    }
    if with_observed {
        out.push_str("---:|");
    }
    out.push('\n');
    for row in rows {
        let _ = write!(
            out,
            "| {} | {} ({}{}) |",
            row.workload,
            row.metric.name,
            row.metric.unit,
            match row.metric.better {
                Better::Higher => ", higher is better",
                Better::Lower => ", lower is better",
            }
        );
        for (values, dnf) in &row.cells {
            let _ = write!(out, " {} |", cell_text(values, *dnf));
        }
        if with_ratio {
            let r = ratio(row, columns).map_or_else(|| "–".into(), |r| format!("{r:.2}"));
            let _ = write!(out, " {r} |");
        }
        if with_observed {
            let r = observed_ratio(row, columns).map_or_else(|| "–".into(), |r| format!("{r:.2}"));
            let _ = write!(out, " {r} |");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TPUT: Metric = Metric {
        name: "throughput",
        unit: "msg/s",
        better: Better::Higher,
    };

    #[test]
    fn stats_and_percentiles() {
        let s = RunStats::of(&[3.0, 1.0, 2.0]).expect("stats");
        assert_eq!((s.median, s.min, s.max, s.count), (2.0, 1.0, 3.0, 3));
        assert_eq!(RunStats::of(&[4.0, 1.0]).map(|s| s.median), Some(2.5));
        assert_eq!(RunStats::of(&[]), None);
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), Some(50.0));
        assert_eq!(percentile(&v, 0.99), Some(99.0));
        assert_eq!(percentile(&[7.0], 0.99), Some(7.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn table_shows_spread_ratio_and_dnf() {
        let columns = vec![
            Column {
                label: "ours".into(),
                postfix: false,
                observed: false,
            },
            Column {
                label: "Postfix oqmgr".into(),
                postfix: true,
                observed: false,
            },
            Column {
                label: "Postfix qmgr".into(),
                postfix: true,
                observed: false,
            },
        ];
        let rows = vec![
            ReportRow {
                workload: "relay".into(),
                metric: TPUT,
                cells: vec![
                    (vec![500.0, 400.0, 450.0], 0),
                    (vec![380.0], 0),
                    (vec![400.0], 0),
                ],
            },
            ReportRow {
                workload: "intrinsic".into(),
                metric: TPUT,
                cells: vec![(vec![], 3), (vec![380.0], 0), (vec![], 0)],
            },
        ];
        assert_eq!(ratio(&rows[0], &columns), Some(450.0 / 400.0));
        let table = markdown_table(&rows, &columns);
        assert!(table.contains("| relay | throughput (msg/s, higher is better) | 450 (400–500) | 380 | 400 | 1.12 |"), "{table}");
        assert!(
            table.contains("| did not finish | 380 | – | – |"),
            "{table}"
        );
    }

    #[test]
    fn the_observed_column_is_compared_with_plain_ours() {
        let column = |label: &str, observed| Column {
            label: label.into(),
            postfix: false,
            observed,
        };
        let columns = vec![column("ours", false), column("ours, observed", true)];
        let row = ReportRow {
            workload: "relay".into(),
            metric: TPUT,
            cells: vec![
                (vec![400.0, 500.0, 450.0], 0),
                (vec![440.0, 430.0, 420.0], 0),
            ],
        };
        assert_eq!(observed_ratio(&row, &columns), Some(430.0 / 450.0));
        assert_eq!(ratio(&row, &columns), None);
        let table = markdown_table(&[row], &columns);
        assert!(
            table.starts_with("| workload | metric | ours | ours, observed | observed / ours |\n"),
            "{table}"
        );
        assert!(
            table.contains("| 450 (400–500) | 430 (420–440) | 0.96 |"),
            "{table}"
        );
    }
}
