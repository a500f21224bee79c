//! oqmgr-campaign - runs the fault campaign (see
//! `oqmgr_devtools::campaign` and docs/fault-campaign.md) with our queue
//! manager and Postfix's oqmgr side by side and prints the tables.
//!
//! Must run as root (private Postfix instances, chown to `postfix`, a
//! tmpfs mount). Progress goes to stderr, one line per finished row; the
//! Markdown tables go to stdout and, with `--out`, to a file.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use oqmgr_devtools::campaign::{self, results, Options, Side};

/// Which queue managers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Sides {
    /// Ours, then oqmgr, case by case.
    Both,
    /// Only ours.
    Ours,
    /// Only Postfix's oqmgr.
    Oqmgr,
}

/// The fault campaign: kills, destination faults, damaged queue files,
/// trigger floods, storage faults, bad settings and reloads, with our
/// queue manager and Postfix's oqmgr(8), every accepted message accounted
/// for.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// The short form (20 kills, damaged files in one instance, a few
    /// seconds per case), as CI runs it.
    #[arg(long)]
    short: bool,
    /// Queue managers to run.
    #[arg(long, value_enum, default_value = "both")]
    sides: Sides,
    /// Our daemon [default: `oqmgr` next to this program].
    #[arg(long)]
    ours: Option<PathBuf>,
    /// SIGKILLs of the queue manager per side.
    #[arg(long)]
    qmgr_kills: Option<u32>,
    /// Kills per round (a fresh instance per round).
    #[arg(long)]
    kills_per_round: Option<u32>,
    /// Longest random wait before a kill, in milliseconds.
    #[arg(long)]
    kill_max_delay_ms: Option<u64>,
    /// SIGKILLs per agent case.
    #[arg(long)]
    agent_kills: Option<u32>,
    /// Background load, messages per second.
    #[arg(long)]
    rate: Option<f64>,
    /// Seconds a destination, trigger or storage fault lasts.
    #[arg(long)]
    fault_secs: Option<f64>,
    /// Seconds a damaged entry sits with the queue manager.
    #[arg(long)]
    damaged_secs: Option<f64>,
    /// Repeats of every case but the queue manager kills.
    #[arg(long)]
    repeats: Option<u32>,
    /// Seed of the random choices.
    #[arg(long)]
    seed: Option<u64>,
    /// Only cases whose name contains one of these (repeatable), e.g.
    /// `--case damaged/ --case kill/qmgr`.
    #[arg(long = "case")]
    cases: Vec<String>,
    /// A Postfix installed under this prefix (its `sbin` is put first in
    /// PATH, so `postfix`, `postconf` and the daemons are its own).
    #[arg(long)]
    postfix_root: Option<PathBuf>,
    /// Also write the tables to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// List the cases and exit.
    #[arg(long)]
    list: bool,
}

/// Set by SIGINT or SIGTERM.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// The signal handler: only records the signal.
extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// On SIGINT or SIGTERM, stops every instance and sink the campaign
/// started (their `Drop` never runs when the process is cut short) and
/// exits 130.
fn clean_up_on_signals() {
    let handler = on_signal as extern "C" fn(libc::c_int);
    // SAFETY: the handler only stores to an atomic (async-signal-safe).
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
    }
    std::thread::spawn(|| loop {
        if INTERRUPTED.load(Ordering::SeqCst) {
            let killed = campaign::rig::abandon_all();
            eprintln!(
                "oqmgr-campaign: interrupted; stopped {} process(es)",
                killed.len()
            );
            std::process::exit(130);
        }
        std::thread::sleep(Duration::from_millis(100));
    });
}

fn main() {
    let cli = Cli::parse();
    clean_up_on_signals();
    if cli.list {
        for c in campaign::cases() {
            let expect = match c.kind {
                campaign::CaseKind::Damaged(i) => {
                    let e = campaign::damaged_files::expectation(i);
                    let copies = if e.copies.0 == e.copies.1 {
                        e.copies.0.to_string()
                    } else {
                        format!("{}-{}", e.copies.0, e.copies.1)
                    };
                    format!(
                        " [oqmgr: {}, {copies} copies, warning {}{}]",
                        e.fate,
                        if e.logs { "yes" } else { "no" },
                        if e.stops { ", stops" } else { "" }
                    )
                }
                _ => String::new(),
            };
            println!("{:<48} {}{expect}", c.name, c.about);
        }
        return;
    }
    if let Some(root) = &cli.postfix_root {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![root.join("sbin"), root.join("bin")];
        dirs.extend(std::env::split_paths(&path));
        let joined = std::env::join_paths(dirs).expect("PATH entries without ':'");
        // SAFETY: set before any thread is started.
        unsafe { std::env::set_var("PATH", joined) };
    }
    let ours = cli.ours.clone().or_else(oqmgr_devtools::ours_next_to_me);
    let mut sides = Vec::new();
    if cli.sides != Sides::Oqmgr {
        match ours {
            Some(p) => sides.push(Side::Ours(p)),
            None => {
                eprintln!(
                    "oqmgr-campaign: no `oqmgr` next to this program; build it or pass --ours"
                );
                std::process::exit(2);
            }
        }
    }
    if cli.sides != Sides::Ours {
        sides.push(Side::Oqmgr);
    }
    let mut opts = if cli.short {
        Options::short(sides)
    } else {
        Options::full(sides)
    };
    opts.qmgr_kills = cli.qmgr_kills.unwrap_or(opts.qmgr_kills);
    opts.kills_per_round = cli.kills_per_round.unwrap_or(opts.kills_per_round);
    if let Some(ms) = cli.kill_max_delay_ms {
        opts.kill_max_delay = Duration::from_millis(ms);
    }
    opts.agent_kills = cli.agent_kills.unwrap_or(opts.agent_kills);
    opts.rate = cli.rate.unwrap_or(opts.rate);
    opts.fault_secs = cli.fault_secs.unwrap_or(opts.fault_secs);
    opts.damaged_secs = cli.damaged_secs.unwrap_or(opts.damaged_secs);
    opts.repeats = cli.repeats.unwrap_or(opts.repeats);
    opts.seed = cli.seed.unwrap_or(opts.seed);
    opts.filter = cli.cases.clone();
    eprintln!("oqmgr-campaign: {opts:?}");
    let rows = campaign::run(&opts, |r| eprintln!("{}", results::progress_line(r)));
    let text = results::render(&rows);
    println!("{text}");
    if let Some(out) = &cli.out {
        if let Err(e) = std::fs::write(out, &text) {
            eprintln!("oqmgr-campaign: {}: {e}", out.display());
            std::process::exit(1);
        }
    }
}
