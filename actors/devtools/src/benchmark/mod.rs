//! oqmgr-bench - queue managers compared in a real Postfix, same run, as
//! ratios.
//!
//! # Synopsis
//! `oqmgr-bench [--workloads LIST] [--messages N] [--runs R] [--qmgrs LIST]
//! [--ours PATH] [--backlog M] [--live L] [--in-core N] [--stall SECS]
//! [--timeout SECS]`
//!
//! # Description
//! Runs each workload of [`workloads`] in a fresh private Postfix 3.7
//! instance ([`crate::sandbox`]) once per queue manager per run, the queue
//! managers interleaved (A B C A B C ...) so that drift on a shared
//! machine hits all of them alike. Any program can fill the qmgr slot:
//! Postfix's `qmgr` and `oqmgr`, and ours (the `oqmgr` binary). A run that
//! fails (sandbox does not start, master throttles the service, no
//! delivery progress for `--stall` seconds, or the per-run time limit) is
//! recorded as "did not finish", the queue manager is skipped for the rest
//! of that workload, and the benchmark goes on.
//!
//! Results: per workload, metric and queue manager the median and the
//! spread (min–max) over the runs, and the ratio of ours to the best
//! Postfix queue manager (the higher or lower median, by the metric's
//! direction); then a markdown table with the machine (cores, date,
//! Postfix version) and the command.
//!
//! # Options
//! - `--workloads` comma-separated names (default `all`): `relay`,
//!   `relay-fanout`, `intrinsic`, `intrinsic-fanout`, `backlog`, `dead`,
//!   `recovery`, `memory`; `cost` means `relay,intrinsic`.
//! - `--messages N` (10000): messages per throughput run; the `dead`
//!   workload sends N/2 live and N/2 dead; `recovery` defers N/10 (10–500).
//! - `--runs R` (3): runs per queue manager.
//! - `--qmgrs` (`ours,oqmgr,qmgr`): columns, in this order;
//!   `ours-observed` is ours with the metrics on and the operator's tools
//!   in use every second ([`observer`]), for the cost of watching.
//! - `--ours PATH`: our binary (default: `oqmgr` next to this program).
//! - `--backlog M` (10000), `--live L` (200): the backlog workload.
//! - `--in-core N` (5000, at most 10000): messages the memory workload
//!   holds in core with 1 recipient (2N/5 with 5 recipients).
//! - `--stall SECS` (30), `--timeout SECS` (default 60 s + 20 ms per
//!   delivery of the run).
//!
//! # Invariants
//! - Every wait is bounded; every process started is stopped by pid.
//! - Only the interval measured counts: setup and preload are excluded.

pub mod instance;
pub mod logtail;
pub mod memory;
pub mod observer;
pub mod probe;
pub mod scheduler_readme;
pub mod summary;
pub mod workloads;

use crate::sandbox::QmgrChoice;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;
use summary::{Column, Metric, ReportRow, RunOutcome};
use workloads::{Workload, WorkloadParams};

/// A queue manager under test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contender {
    /// Our binary at this path.
    Ours(PathBuf),
    /// Our binary with the metrics on and, every second, `/metrics` and
    /// `/status.json` fetched and the control socket asked for the live
    /// state ([`observer`]).
    OursObserved(PathBuf),
    /// Postfix's oqmgr.
    PostfixOqmgr,
    /// Postfix's qmgr.
    PostfixQmgr,
}

impl Contender {
    /// Column header.
    pub fn label(&self) -> &'static str {
        match self {
            Contender::Ours(_) => "ours",
            Contender::OursObserved(_) => "ours, observed",
            Contender::PostfixOqmgr => "Postfix oqmgr",
            Contender::PostfixQmgr => "Postfix qmgr",
        }
    }

    /// What the sandbox puts in the qmgr slot.
    pub fn choice(&self) -> QmgrChoice {
        match self {
            Contender::Ours(path) | Contender::OursObserved(path) => {
                QmgrChoice::Command(path.clone())
            }
            Contender::PostfixOqmgr => QmgrChoice::PostfixOqmgr,
            Contender::PostfixQmgr => QmgrChoice::PostfixQmgr,
        }
    }
}

/// Everything the command line sets.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Workloads, in running order.
    pub workloads: Vec<Workload>,
    /// Runs per queue manager per workload.
    pub runs: u32,
    /// Queue managers, in column order.
    pub contenders: Vec<Contender>,
    /// Sizes and limits.
    pub params: WorkloadParams,
}

/// The usage text.
pub const USAGE: &str = "usage: oqmgr-bench [--workloads all|relay,relay-fanout,intrinsic,intrinsic-fanout,backlog,dead,recovery,memory,cost] \
[--messages N] [--runs R] [--qmgrs ours,ours-observed,oqmgr,qmgr] [--ours PATH] [--backlog M] [--live L] [--in-core N] [--stall SECS] [--timeout SECS]";

/// Parses the command line (without the program name). `default_ours` is
/// used when `--ours` is absent.
pub fn parse_args(args: &[String], default_ours: PathBuf) -> Result<BenchOptions, String> {
    let mut workloads = Workload::ALL.to_vec();
    let mut runs = 3;
    let mut qmgrs = vec!["ours".to_string(), "oqmgr".into(), "qmgr".into()];
    let mut ours = default_ours;
    let mut params = WorkloadParams {
        messages: 10_000,
        backlog: 10_000,
        live: 200,
        in_core: 5_000,
        stall: Duration::from_secs(30),
        timeout: None,
        observe: false,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        let number = |text: String| -> Result<u64, String> {
            match text.parse::<u64>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!("{flag}: not a positive number: {text:?}")),
            }
        };
        match flag.as_str() {
            "--workloads" => {
                workloads = Vec::new();
                for name in value()?.split(',').filter(|n| !n.is_empty()) {
                    for w in
                        Workload::parse(name).ok_or_else(|| format!("unknown workload {name:?}"))?
                    {
                        if !workloads.contains(&w) {
                            workloads.push(w);
                        }
                    }
                }
            }
            "--messages" => params.messages = number(value()?)?,
            "--runs" => {
                runs =
                    u32::try_from(number(value()?)?).map_err(|_| "--runs: too large".to_string())?
            }
            "--qmgrs" => {
                qmgrs = value()?
                    .split(',')
                    .filter(|n| !n.is_empty())
                    .map(String::from)
                    .collect()
            }
            "--ours" => ours = PathBuf::from(value()?),
            "--backlog" => params.backlog = number(value()?)?,
            "--live" => params.live = number(value()?)?,
            "--in-core" => {
                params.in_core = number(value()?)?;
                if params.in_core > memory::MAX_IN_CORE {
                    return Err(format!(
                        "--in-core: at most {} (2N recipients in core must stay within \
                         Postfix's 20000-recipient limits)",
                        memory::MAX_IN_CORE
                    ));
                }
            }
            "--stall" => params.stall = Duration::from_secs(number(value()?)?),
            "--timeout" => params.timeout = Some(Duration::from_secs(number(value()?)?)),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown option {other:?}\n{USAGE}")),
        }
    }
    let mut contenders = Vec::new();
    for name in &qmgrs {
        let c = match name.as_str() {
            "ours" => Contender::Ours(ours.clone()),
            "ours-observed" => Contender::OursObserved(ours.clone()),
            "oqmgr" => Contender::PostfixOqmgr,
            "qmgr" => Contender::PostfixQmgr,
            other => {
                return Err(format!(
                    "unknown queue manager {other:?} (ours, ours-observed, oqmgr, qmgr)"
                ))
            }
        };
        if !contenders.contains(&c) {
            contenders.push(c);
        }
    }
    if workloads.is_empty() || contenders.is_empty() {
        return Err(format!("nothing to run\n{USAGE}"));
    }
    Ok(BenchOptions {
        workloads,
        runs,
        contenders,
        params,
    })
}

/// All outcomes of one workload: `outcomes[contender][run]`.
#[derive(Debug, Clone)]
pub struct WorkloadResult {
    /// The workload.
    pub workload: Workload,
    /// Per contender (in option order), per run.
    pub outcomes: Vec<Vec<RunOutcome>>,
}

/// Runs one workload once with one contender, turning every failure into
/// "did not finish".
fn run_once(workload: Workload, contender: &Contender, params: &WorkloadParams) -> RunOutcome {
    if let Contender::Ours(path) | Contender::OursObserved(path) = contender {
        if !path.is_file() {
            return RunOutcome::DidNotFinish(format!("{} not found", path.display()));
        }
    }
    let params = WorkloadParams {
        observe: matches!(contender, Contender::OursObserved(_)),
        ..params.clone()
    };
    match workloads::run(workload, &contender.choice(), &params) {
        Ok(measured) => RunOutcome::Done(measured),
        Err(why) => RunOutcome::DidNotFinish(why),
    }
}

/// Runs everything, interleaving contenders run by run; progress lines go
/// to `progress`.
pub fn run_all(opts: &BenchOptions, progress: &mut dyn Write) -> Vec<WorkloadResult> {
    let mut results = Vec::new();
    for &workload in &opts.workloads {
        let mut outcomes: Vec<Vec<RunOutcome>> = vec![Vec::new(); opts.contenders.len()];
        for run in 1..=opts.runs {
            for (i, contender) in opts.contenders.iter().enumerate() {
                let failed_before = outcomes[i]
                    .iter()
                    .any(|o| matches!(o, RunOutcome::DidNotFinish(_)));
                let outcome = if failed_before {
                    RunOutcome::DidNotFinish("skipped after a failed run".into())
                } else {
                    run_once(workload, contender, &opts.params)
                };
                let _ = writeln!(
                    progress,
                    "[{} run {run}/{}] {}: {}",
                    workload.name(),
                    opts.runs,
                    contender.label(),
                    describe(&outcome)
                );
                outcomes[i].push(outcome);
            }
        }
        results.push(WorkloadResult { workload, outcomes });
    }
    results
}

/// One line per outcome for the progress log.
fn describe(outcome: &RunOutcome) -> String {
    match outcome {
        RunOutcome::DidNotFinish(why) => format!("did not finish: {why}"),
        RunOutcome::Done(m) => m
            .iter()
            .map(|(metric, v)| format!("{} {} {}", metric.name, summary::fmt_num(*v), metric.unit))
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// Table rows: one per (workload, metric), metrics in the order runs
/// reported them, cells in contender order.
pub fn rows(results: &[WorkloadResult]) -> Vec<ReportRow> {
    let mut rows = Vec::new();
    for r in results {
        let mut metrics: Vec<Metric> = Vec::new();
        for outcome in r.outcomes.iter().flatten() {
            if let RunOutcome::Done(m) = outcome {
                for (metric, _) in m {
                    if !metrics.contains(metric) {
                        metrics.push(*metric);
                    }
                }
            }
        }
        for metric in metrics {
            let cells = r
                .outcomes
                .iter()
                .map(|runs| {
                    let values: Vec<f64> = runs
                        .iter()
                        .filter_map(|o| match o {
                            RunOutcome::Done(m) => {
                                m.iter().find(|(x, _)| *x == metric).map(|(_, v)| *v)
                            }
                            RunOutcome::DidNotFinish(_) => None,
                        })
                        .collect();
                    let dnf = runs
                        .iter()
                        .filter(|o| matches!(o, RunOutcome::DidNotFinish(_)))
                        .count();
                    (values, dnf)
                })
                .collect();
            rows.push(ReportRow {
                workload: r.workload.name().to_string(),
                metric,
                cells,
            });
        }
        if r.outcomes
            .iter()
            .flatten()
            .all(|o| matches!(o, RunOutcome::DidNotFinish(_)))
        {
            // Nothing measured at all: still show the workload.
            rows.push(ReportRow {
                workload: r.workload.name().to_string(),
                metric: Metric {
                    name: "(no measurement)",
                    unit: "-",
                    better: summary::Better::Higher,
                },
                cells: r
                    .outcomes
                    .iter()
                    .map(|runs| (Vec::new(), runs.len()))
                    .collect(),
            });
        }
    }
    rows
}

/// The machine line for the table: cores, UTC date, Postfix version.
pub fn machine_line() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let run = |cmd: &str, args: &[&str]| {
        std::process::Command::new(cmd)
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "?".into())
    };
    format!(
        "Machine: {cores} cores (nproc), {}, Postfix {}.",
        run("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        run("postconf", &["-d", "-h", "mail_version"])
    )
}

/// The full report: per-workload summaries with ratios, failure reasons,
/// then the markdown table with machine line and `command`.
pub fn render(opts: &BenchOptions, results: &[WorkloadResult], command: &str) -> String {
    let columns: Vec<Column> = opts
        .contenders
        .iter()
        .map(|c| Column {
            label: c.label().to_string(),
            postfix: matches!(c, Contender::PostfixOqmgr | Contender::PostfixQmgr),
            observed: matches!(c, Contender::OursObserved(_)),
        })
        .collect();
    let rows = rows(results);
    let mut out = String::new();
    for row in &rows {
        out.push_str(&format!(
            "{} / {} ({}):\n",
            row.workload, row.metric.name, row.metric.unit
        ));
        for (column, (values, dnf)) in columns.iter().zip(&row.cells) {
            let text = match summary::RunStats::of(values) {
                Some(s) => format!(
                    "median {} (min {} – max {}, {} runs{})",
                    summary::fmt_num(s.median),
                    summary::fmt_num(s.min),
                    summary::fmt_num(s.max),
                    s.count,
                    if *dnf > 0 {
                        format!(", {dnf} did not finish")
                    } else {
                        String::new()
                    }
                ),
                None => "did not finish".into(),
            };
            out.push_str(&format!("  {:<14} {text}\n", column.label));
        }
        if let Some(r) = summary::ratio(row, &columns) {
            out.push_str(&format!("  ours / best Postfix: {r:.2}\n"));
        }
        if let Some(r) = summary::observed_ratio(row, &columns) {
            out.push_str(&format!("  observed / ours: {r:.2}\n"));
        }
    }
    for r in results {
        for (c, runs) in opts.contenders.iter().zip(&r.outcomes) {
            if let Some(RunOutcome::DidNotFinish(why)) = runs
                .iter()
                .find(|o| matches!(o, RunOutcome::DidNotFinish(_)))
            {
                out.push_str(&format!(
                    "{} / {}: did not finish: {why}\n",
                    r.workload.name(),
                    c.label()
                ));
            }
        }
    }
    out.push('\n');
    let held = if opts.workloads.contains(&Workload::Memory) {
        format!(
            " {} messages (1 recipient) and {} (5 recipients) held in core by the memory workload.",
            opts.params.in_core,
            memory::fanout_messages(&opts.params)
        )
    } else {
        String::new()
    };
    out.push_str(&format!(
        "{} {} messages per throughput run, {} runs per queue manager, interleaved; median (min–max).{held}\n\n",
        machine_line(),
        opts.params.messages,
        opts.runs
    ));
    out.push_str(&summary::markdown_table(&rows, &columns));
    out.push_str(&format!("\nCommand: `{command}`\n"));
    out
}

/// Entry point of the `oqmgr-bench` binary: parses `args`, runs, prints
/// progress on stderr and the report on stdout. Returns the exit code (2
/// for a bad command line; failed runs are results, not errors).
pub fn main(args: &[String], default_ours: PathBuf) -> i32 {
    let opts = match parse_args(args, default_ours) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let results = run_all(&opts, &mut std::io::stderr());
    let command = std::iter::once("actors/scripts/bench".to_string())
        .chain(args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    print!("{}", render(&opts, &results, &command));
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn defaults_and_options() {
        let o = parse_args(&[], PathBuf::from("/x/oqmgr")).expect("defaults");
        assert_eq!(o.workloads, Workload::ALL.to_vec());
        assert_eq!(o.runs, 3);
        assert_eq!(
            o.contenders,
            vec![
                Contender::Ours("/x/oqmgr".into()),
                Contender::PostfixOqmgr,
                Contender::PostfixQmgr
            ]
        );
        let o = parse_args(
            &args("--workloads cost,relay --messages 300 --runs 1 --qmgrs qmgr,oqmgr --backlog 50 --timeout 9 --in-core 700"),
            PathBuf::new(),
        )
        .expect("parses");
        assert_eq!(o.workloads, vec![Workload::Relay, Workload::Intrinsic]);
        assert_eq!((o.params.messages, o.params.backlog, o.runs), (300, 50, 1));
        assert_eq!(
            o.contenders,
            vec![Contender::PostfixQmgr, Contender::PostfixOqmgr]
        );
        assert_eq!(o.params.timeout, Some(Duration::from_secs(9)));
        assert_eq!(o.params.in_core, 700);
        let o = parse_args(
            &args("--qmgrs ours,ours-observed"),
            PathBuf::from("/x/oqmgr"),
        )
        .expect("parses");
        assert_eq!(
            o.contenders,
            vec![
                Contender::Ours("/x/oqmgr".into()),
                Contender::OursObserved("/x/oqmgr".into())
            ]
        );
    }

    #[test]
    fn bad_command_lines_are_errors() {
        for bad in [
            "--messages 0",
            "--messages x",
            "--runs",
            "--workloads nope",
            "--qmgrs postfix",
            "--frob 1",
            "--workloads ,",
            "--in-core 10001",
            "--in-core 0",
        ] {
            assert!(parse_args(&args(bad), PathBuf::new()).is_err(), "{bad}");
        }
    }

    #[test]
    fn missing_binary_does_not_finish() {
        let o = run_once(
            Workload::Relay,
            &Contender::Ours("/nonexistent/oqmgr".into()),
            &parse_args(&[], PathBuf::new()).expect("defaults").params,
        );
        assert!(
            matches!(o, RunOutcome::DidNotFinish(ref why) if why.contains("not found")),
            "{o:?}"
        );
    }
}
