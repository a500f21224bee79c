//! campaign - the fault campaign: our queue manager and Postfix's oqmgr(8)
//! side by side in private Postfix instances, under kills, destination
//! faults, damaged queue files, trigger floods, storage faults, bad
//! settings and reloads, with every accepted message accounted for.
//!
//! # What and why
//! A queue manager is trusted when no fault an operator meets can lose
//! mail, duplicate it, or stop delivery without saying why. Each case
//! here starts a fresh instance ([`rig::Rig`]: real Postfix, real smtpd,
//! cleanup, trivial-rewrite, smtp, bounce, smtp-sinks) with one queue
//! manager in the qmgr slot, puts mail through it while the fault
//! happens, lifts the fault, drains the queue (`postqueue -f` when it
//! stops moving) and then accounts for every accepted recipient
//! ([`ledger`]): delivered, bounced with a notice, still queued, in
//! `corrupt/`, lost, duplicated. It also records whether the queue
//! manager logged a warning whenever mail stopped moving ([`Stop`]).
//! The same case runs with each [`Side`]; the table ([`results`]) puts
//! the rows next to each other.
//!
//! # Cases
//! - [`qmgr_kills`]: SIGKILL of the queue manager at random moments under
//!   load, in rounds of fresh instances;
//! - [`agent_kills`]: SIGKILL of smtp, trivial-rewrite, bounce/defer/trace
//!   and cleanup processes under load;
//! - [`destination_faults`]: refused, tarpit, 4xx, 5xx and 421 at one
//!   destination while another keeps working;
//! - [`damaged_files`]: the catalogue of damaged and odd queue entries
//!   ([`damage_kinds`]);
//! - [`trigger_floods`]: random bytes, NUL-less requests, slow writers and
//!   idle connections on `public/qmgr`;
//! - [`storage_faults`]: a full queue file system, unwritable `defer/` and
//!   `bounce/`;
//! - [`settings_faults`]: nonsense queue manager settings;
//! - [`lifecycle`]: `postfix reload`, `stop`/`start` and `abort` under load.
//!
//! # Invariants
//! - every wait is bounded; a case that cannot run says why in its row;
//! - one case runs at a time (the machine is shared), ours first, then
//!   oqmgr, so partial output still compares like with like;
//! - randomness comes from one seeded generator: `--seed` replays a run's
//!   choices (not its timing).

pub mod agent_kills;
pub mod damage_kinds;
pub mod damaged_files;
pub mod destination_faults;
pub mod dumps;
pub mod inject;
pub mod ledger;
pub mod lifecycle;
pub mod procs;
pub mod qmgr_kills;
pub mod queue_template;
pub mod results;
pub mod rig;
pub mod settings_faults;
pub mod storage_faults;
pub mod trigger_floods;

use std::time::Duration;

use rand::SeedableRng;
use rand_xorshift::XorShiftRng;

pub use ledger::Tally;
pub use rig::Side;

use inject::Injected;
use rig::{Drained, Rig};

/// How long a campaign runs its cases.
#[derive(Debug, Clone)]
pub struct Options {
    /// Queue managers to run, in order.
    pub sides: Vec<Side>,
    /// SIGKILLs of the queue manager per side, over all rounds.
    pub qmgr_kills: u32,
    /// Kills per round (fresh instance per round).
    pub kills_per_round: u32,
    /// Longest random wait before a kill, after the process appeared.
    pub kill_max_delay: Duration,
    /// SIGKILLs per agent case.
    pub agent_kills: u32,
    /// Background load, messages per second.
    pub rate: f64,
    /// How long a fault lasts in destination, trigger and storage cases.
    pub fault_secs: f64,
    /// How long a damaged file sits with the queue manager before the
    /// drain.
    pub damaged_secs: f64,
    /// Settle time in bad-settings cases.
    pub setting_secs: f64,
    /// A drain gives up after this long without progress.
    pub stall: Duration,
    /// Only cases whose name contains one of these (all when empty).
    pub filter: Vec<String>,
    /// Seed of every random choice.
    pub seed: u64,
    /// Repeats of each non-kill case (its tallies are summed).
    pub repeats: u32,
    /// Plant the damaged entries not marked `isolate` all in one
    /// instance (the short form) instead of one instance each.
    pub damaged_batch: bool,
}

impl Options {
    /// The full campaign (≥ 1,000 queue manager kills per side).
    pub fn full(sides: Vec<Side>) -> Options {
        Options {
            sides,
            qmgr_kills: 1000,
            kills_per_round: 50,
            kill_max_delay: Duration::from_millis(1200),
            agent_kills: 40,
            rate: 40.0,
            fault_secs: 10.0,
            damaged_secs: 4.0,
            setting_secs: 4.0,
            stall: Duration::from_secs(30),
            filter: Vec::new(),
            seed: 13,
            repeats: 1,
            damaged_batch: false,
        }
    }

    /// The short form for CI: 20 kills, every damaged file once, a few
    /// seconds per case.
    pub fn short(sides: Vec<Side>) -> Options {
        Options {
            qmgr_kills: 20,
            kills_per_round: 20,
            kill_max_delay: Duration::from_millis(600),
            agent_kills: 6,
            rate: 30.0,
            fault_secs: 3.0,
            damaged_secs: 2.0,
            setting_secs: 2.0,
            stall: Duration::from_secs(12),
            damaged_batch: true,
            ..Options::full(sides)
        }
    }

    /// True when case `name` is selected.
    pub fn wants(&self, name: &str) -> bool {
        self.filter.is_empty() || self.filter.iter().any(|f| name.contains(f.as_str()))
    }
}

/// Whether mail stopped moving, and if so whether the queue manager said
/// why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// Everything drained.
    None,
    /// Mail stayed, and the queue manager logged this warning (the first).
    Logged(String),
    /// Mail stayed and the queue manager logged nothing.
    Silent,
}

/// What happened to a planted entry (damaged-file cases).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planted {
    /// Where it ended: `gone`, `in place`, or the queue it was moved to
    /// (`corrupt`, `active`, ...).
    pub fate: String,
    /// Complete copies of its message the sinks received.
    pub copies: u32,
    /// Queue manager warnings naming it.
    pub warnings: Vec<String>,
    /// For a link: the file outside the queue it points to is unchanged.
    pub target_intact: Option<bool>,
}

/// One row: one case with one queue manager.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// Case name.
    pub case: String,
    /// Case group (e.g. `damaged`).
    pub group: &'static str,
    /// `ours` or `oqmgr`.
    pub side: &'static str,
    /// The accounting.
    pub tally: Tally,
    /// Whether mail stopped, and whether that was explained.
    pub stop: Stop,
    /// Seconds the final drain took.
    pub drain_secs: f64,
    /// The planted entry (damaged-file cases).
    pub planted: Option<Planted>,
    /// Short remarks (lost examples, counts, odd entries).
    pub notes: Vec<String>,
    /// Why the case could not run, if it could not.
    pub error: Option<String>,
}

impl CaseResult {
    /// An empty result for `case`.
    pub fn new(case: &str, group: &'static str, side: &Side) -> CaseResult {
        CaseResult {
            case: case.to_string(),
            group,
            side: side.label(),
            tally: Tally::default(),
            stop: Stop::None,
            drain_secs: 0.0,
            planted: None,
            notes: Vec::new(),
            error: None,
        }
    }

    /// A result that says the case could not run.
    pub fn failed(mut self, why: impl Into<String>) -> CaseResult {
        self.error = Some(why.into());
        self
    }
}

/// A case of the campaign.
#[derive(Debug, Clone)]
pub struct Case {
    /// Unique name (`group/what`).
    pub name: String,
    /// Group.
    pub group: &'static str,
    /// One line on what it does.
    pub about: String,
    /// What to run.
    pub kind: CaseKind,
}

/// The cases' parameters, by group.
#[derive(Debug, Clone)]
pub enum CaseKind {
    /// [`qmgr_kills`].
    QmgrKills,
    /// [`agent_kills`]: the master.cf services to kill.
    AgentKills(&'static [&'static str]),
    /// [`destination_faults`].
    Destination(destination_faults::Fault),
    /// [`damaged_files`]: index into [`damage_kinds::catalogue`].
    Damaged(usize),
    /// [`trigger_floods`].
    Trigger(trigger_floods::Flood),
    /// [`storage_faults`].
    Storage(storage_faults::Fault),
    /// [`settings_faults`]: a main.cf setting.
    Setting(&'static str, &'static str),
    /// [`lifecycle`].
    Lifecycle(lifecycle::Event),
}

/// The cases of one group from `(parameter, short name, what)` rows: named
/// `PREFIX/short name`, described as `what` + `tail`.
pub fn group_cases<T: Copy>(
    prefix: &str,
    group: &'static str,
    rows: &[(T, &str, &str)],
    tail: &str,
    kind: fn(T) -> CaseKind,
) -> Vec<Case> {
    rows.iter()
        .map(|&(t, name, what)| Case {
            name: format!("{prefix}/{name}"),
            group,
            about: format!("{what}{tail}"),
            kind: kind(t),
        })
        .collect()
}

/// Every case, in running order.
pub fn cases() -> Vec<Case> {
    let mut all = Vec::new();
    all.extend(qmgr_kills::cases());
    all.extend(agent_kills::cases());
    all.extend(destination_faults::cases());
    all.extend(damaged_files::cases());
    all.extend(trigger_floods::cases());
    all.extend(storage_faults::cases());
    all.extend(settings_faults::cases());
    all.extend(lifecycle::cases());
    all
}

/// Per-run shared state handed to cases.
pub struct Ctx<'a> {
    /// The options.
    pub opts: &'a Options,
    /// The seeded generator.
    pub rng: XorShiftRng,
    /// The queue file every damaged-file case starts from (made once).
    pub template: Option<queue_template::Template>,
}

impl Ctx<'_> {
    /// A new context for `opts`.
    pub fn new(opts: &Options) -> Ctx<'_> {
        Ctx {
            opts,
            rng: XorShiftRng::seed_from_u64(opts.seed),
            template: None,
        }
    }
}

/// Runs one case with one side.
pub fn run_case(ctx: &mut Ctx, case: &Case, side: &Side) -> CaseResult {
    let mut total: Option<CaseResult> = None;
    let repeats = match case.kind {
        CaseKind::QmgrKills => 1,
        _ => ctx.opts.repeats.max(1),
    };
    for _ in 0..repeats {
        let r = match &case.kind {
            CaseKind::QmgrKills => qmgr_kills::run(ctx, case, side),
            CaseKind::AgentKills(services) => agent_kills::run(ctx, case, side, services),
            CaseKind::Destination(f) => destination_faults::run(ctx, case, side, *f),
            CaseKind::Damaged(i) => damaged_files::run(ctx, case, side, *i),
            CaseKind::Trigger(f) => trigger_floods::run(ctx, case, side, *f),
            CaseKind::Storage(f) => storage_faults::run(ctx, case, side, *f),
            CaseKind::Setting(name, value) => settings_faults::run(ctx, case, side, name, value),
            CaseKind::Lifecycle(e) => lifecycle::run(ctx, case, side, *e),
        };
        total = Some(match total {
            None => r,
            Some(t) => merge(t, r),
        });
    }
    total.expect("at least one repeat")
}

/// Sums two runs of one case (the worse stop wins; notes are joined).
pub fn merge(mut a: CaseResult, b: CaseResult) -> CaseResult {
    a.tally.add(&b.tally);
    a.drain_secs = a.drain_secs.max(b.drain_secs);
    a.stop = match (&a.stop, b.stop) {
        (Stop::Silent, _) | (_, Stop::Silent) => Stop::Silent,
        (Stop::Logged(l), _) => Stop::Logged(l.clone()),
        (_, s) => s,
    };
    for n in b.notes {
        if !a.notes.contains(&n) {
            a.notes.push(n);
        }
    }
    a.error = a.error.or(b.error);
    a.planted = a.planted.or(b.planted);
    a
}

/// Runs every selected case with every side; calls `each` with each row as
/// it is done.
pub fn run(opts: &Options, mut each: impl FnMut(&CaseResult)) -> Vec<CaseResult> {
    let mut ctx = Ctx::new(opts);
    let mut rows = Vec::new();
    let all = cases();
    let batch: Vec<usize> = all
        .iter()
        .filter(|c| opts.wants(&c.name))
        .filter_map(|c| match c.kind {
            CaseKind::Damaged(i) if !damage_kinds::catalogue()[i].isolate => Some(i),
            _ => None,
        })
        .collect();
    let mut batch_done = !opts.damaged_batch;
    for case in &all {
        if !opts.wants(&case.name) {
            continue;
        }
        if let CaseKind::Damaged(i) = case.kind {
            if opts.damaged_batch && batch.contains(&i) {
                if !batch_done {
                    batch_done = true;
                    for side in &opts.sides {
                        for row in damaged_files::run_batch(&mut ctx, side, &batch) {
                            each(&row);
                            rows.push(row);
                        }
                    }
                }
                continue;
            }
        }
        for side in &opts.sides {
            let row = run_case(&mut ctx, case, side);
            each(&row);
            rows.push(row);
        }
    }
    rows
}

/// The standard end of a case: stop the source, drain, count, judge.
/// `mark` is the maillog position the case started at.
pub fn conclude(
    rig: &Rig,
    mut row: CaseResult,
    injected: &Injected,
    mark: u64,
    stall: Duration,
) -> CaseResult {
    let drained = rig.drain(Duration::from_secs(3), stall, stall * 6);
    judge(rig, &mut row, injected, mark, &drained);
    row
}

/// Accounts for `injected` after `drained` and fills the row.
pub fn judge(rig: &Rig, row: &mut CaseResult, injected: &Injected, mark: u64, drained: &Drained) {
    let census = rig.census();
    let sinks = rig.sink_record();
    let (tally, lost) = ledger::account(injected, &sinks, &census);
    row.drain_secs = drained.secs;
    if !lost.is_empty() {
        row.notes.push(format!("lost e.g. {}", lost.join(", ")));
    }
    if drained.flushes > 0 {
        row.notes.push(format!("postqueue -f x{}", drained.flushes));
    }
    if drained.longest_stall >= 5.0 {
        row.notes
            .push(format!("drain stalled {:.0} s", drained.longest_stall));
    }
    if !census.odd_entries.is_empty() {
        row.notes
            .push(format!("left: {}", census.odd_entries.join(", ")));
    }
    if !census.orphan_logs.is_empty() {
        row.notes.push(format!(
            "{} log(s) without a queue file, e.g. {}",
            census.orphan_logs.len(),
            census.orphan_logs[0]
        ));
    }
    let active = census.per_queue.get("active").copied().unwrap_or(0);
    if active > 0 {
        row.notes.push(format!("{active} file(s) left in active/"));
    }
    if injected.refused > 0 {
        row.notes.push(format!(
            "{} message(s) refused at smtpd ({})",
            injected.refused,
            injected.refusals.join(" / ")
        ));
    }
    let stopped = !drained.empty || tally.lost > 0 || tally.queued > 0;
    row.stop = if !stopped {
        Stop::None
    } else {
        match rig.qmgr_warnings(mark).into_iter().next() {
            Some(w) => Stop::Logged(w),
            None => Stop::Silent,
        }
    };
    row.tally.add(&tally);
}

/// Sleeps for `secs` seconds (fractions allowed).
pub fn pause(secs: f64) {
    std::thread::sleep(Duration::from_secs_f64(secs.max(0.0)));
}
