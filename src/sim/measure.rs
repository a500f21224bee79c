//! Measurements of simulator traces that compare scheduling policies
//! (docs/adaptive-policy.md): how soon a site that came back gets mail,
//! how its connection limit is met, how retries are spread, and how fairly
//! destinations share the deliveries. No Postfix counterpart: these read
//! the trace lines of `crate::trace` as [`super::first_pass`] does.
//!
//! Times are milliseconds of virtual time, as the trace prints them in
//! seconds with three decimals.
//!
//! # Invariants
//! - every function reads the trace only; the same trace gives the same
//!   figures;
//! - `retry` and `error` pseudo-destinations are never counted as sites.

use std::collections::BTreeMap;

/// One trace line: time, event word, the rest.
fn lines(trace: &str) -> impl Iterator<Item = (u64, &str, &str)> {
    trace.lines().filter_map(|line| {
        let (at, event) = line.trim_start().split_once(' ')?;
        let (secs, millis) = at.split_once('.')?;
        let at = secs.parse::<u64>().ok()? * 1000 + millis.parse::<u64>().ok()?;
        let (kind, rest) = event.split_once(' ').unwrap_or((event, ""));
        Some((at, kind, rest))
    })
}

/// When deliveries to `dest` (`transport:nexthop`) ended: `Ok` for those
/// that ended well, `Err` with the site's answer for those deferred by a
/// site failure.
pub fn outcomes(trace: &str, dest: &str) -> Vec<(u64, Result<(), String>)> {
    let prefix = format!("{dest} e");
    lines(trace)
        .filter(|(_, kind, rest)| *kind == "done" && rest.starts_with(&prefix))
        .filter_map(|(at, _, rest)| {
            let (head, hop) = match rest.split_once(" hop=\"") {
                Some((head, hop)) => (head, Some(hop.trim_end_matches('"'))),
                None => (rest, None),
            };
            match (head.rsplit(' ').next(), hop) {
                (Some("done"), _) => Some((at, Ok(()))),
                (_, Some(hop)) => Some((at, Err(hop.to_string()))),
                _ => None,
            }
        })
        .collect()
}

/// When the site `dest` answered with text containing `needle` (such as
/// `": 421 "`).
pub fn answers(trace: &str, dest: &str, needle: &str) -> Vec<u64> {
    outcomes(trace, dest)
        .into_iter()
        .filter_map(|(at, r)| r.err().filter(|hop| hop.contains(needle)).map(|_| at))
        .collect()
}

/// When deferred files were read again (admissions from `deferred/`: the
/// retries).
pub fn retries(trace: &str) -> Vec<u64> {
    lines(trace)
        .filter(|(_, kind, rest)| *kind == "admit" && rest.contains(" from=deferred "))
        .map(|(at, _, _)| at)
        .collect()
}

/// When each file left the queue delivered (`remove`), by queue ID.
pub fn removals(trace: &str) -> BTreeMap<String, u64> {
    lines(trace)
        .filter(|(_, kind, _)| *kind == "remove")
        .filter_map(|(at, _, rest)| {
            let id = rest.split(' ').nth(1)?.strip_prefix("id=")?;
            Some((id.to_string(), at))
        })
        .collect()
}

/// The most of the sorted `times` that fall within any span of `width`.
pub fn peak(times: &[u64], width: u64) -> usize {
    let mut first = 0;
    let mut most = 0;
    for (i, &t) in times.iter().enumerate() {
        while t - times[first] >= width {
            first += 1;
        }
        most = most.max(i + 1 - first);
    }
    most
}

/// Jain's fairness index of `shares`: 1 when all are equal, `1/n` when one
/// has everything (1 for no shares or only zeros).
pub fn jain(shares: &[f64]) -> f64 {
    let sum: f64 = shares.iter().sum();
    let squares: f64 = shares.iter().map(|x| x * x).sum();
    if squares == 0.0 {
        return 1.0;
    }
    sum * sum / (shares.len() as f64 * squares)
}

/// The lowest Jain index of the deliveries to `dests` over the windows of
/// `width` that start every second from 0, counting in each window the
/// destinations still backlogged at its end (mail for each is queued from
/// 0 until its last delivery, as when it all arrives at once); windows
/// with fewer than two such destinations are left out. Returns the index,
/// where its window starts and the number of windows.
pub fn worst_jain(trace: &str, dests: &[&str], width: u64) -> (f64, u64, usize) {
    let done: Vec<Vec<u64>> = dests
        .iter()
        .map(|d| {
            outcomes(trace, d)
                .into_iter()
                .filter(|(_, r)| r.is_ok())
                .map(|(at, _)| at)
                .collect()
        })
        .collect();
    let last: Vec<u64> = done
        .iter()
        .map(|d| d.last().copied().unwrap_or(0))
        .collect();
    let (mut worst, mut at, mut windows) = (1.0_f64, 0, 0);
    let mut start = 0;
    loop {
        let shares: Vec<f64> = done
            .iter()
            .zip(&last)
            .filter(|(_, &last)| last >= start + width)
            .map(|(d, _)| {
                d.iter()
                    .filter(|&&t| t >= start && t < start + width)
                    .count() as f64
            })
            .collect();
        if shares.len() < 2 {
            break;
        }
        let index = jain(&shares);
        if index < worst {
            (worst, at) = (index, start);
        }
        windows += 1;
        start += 1000;
    }
    (worst, at, windows)
}

/// The `q`-quantile (0 to 1) of `values`, the nearest rank; 0 for none.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "\
      0.000 admit m1 id=Q000001 from=incoming rcpt=1
      1.000 done smtp:a.example e1 done
      1.500 done smtp:a.example e2 defer hop=\"4.7.0 host a.example[127.0.0.1] refused to talk to me: 421 4.7.0 too many connections\"
      2.000 done smtp:b.example e3 done
      2.000 remove m1 id=Q000001
    300.000 admit m2 id=Q000002 from=deferred rcpt=1
";

    #[test]
    fn reads_outcomes_answers_retries_and_removals() {
        let a = outcomes(TRACE, "smtp:a.example");
        assert_eq!(a.len(), 2);
        assert_eq!(a[0], (1000, Ok(())));
        assert_eq!(answers(TRACE, "smtp:a.example", ": 421 "), vec![1500]);
        assert_eq!(retries(TRACE), vec![300_000]);
        assert_eq!(removals(TRACE).get("Q000001"), Some(&2000));
    }

    #[test]
    fn peaks_quantiles_and_fairness() {
        assert_eq!(peak(&[0, 10, 20, 1000, 1005], 1000), 4);
        assert_eq!(peak(&[0, 10, 20, 1010, 1015], 1000), 3);
        assert_eq!(quantile(&[3.0, 1.0, 2.0, 4.0], 0.5), 2.0);
        assert_eq!(quantile(&[3.0, 1.0, 2.0, 4.0], 0.99), 4.0);
        assert!((jain(&[1.0, 1.0, 1.0]) - 1.0).abs() < 1e-12);
        assert!((jain(&[3.0, 0.0, 0.0]) - 1.0 / 3.0).abs() < 1e-12);
    }
}
