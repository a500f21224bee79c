//! qmgr_kills - SIGKILL of the queue manager at random moments under load.
//!
//! Each round starts a fresh instance and two sources: the main one (two
//! `ok.test` recipients per message, half the campaign's rate) and a
//! twentieth as much mail that also has a recipient the `fault` sink
//! refuses with 5xx, so bounce notices and mixed outcomes are in flight
//! too. The `ok.test` sink waits a second before answering DATA, so at
//! any moment a few dozen messages sit in `active/` with agents holding
//! their locks: a kill interrupts real work. Then, `kills_per_round` times:
//! wait until master has a queue manager running (kicking `public/qmgr`
//! if none shows up), wait a random 0–`kill_max_delay`, SIGKILL it. A kill
//! right after start-up makes master throttle the service
//! (`service_throttle_time`, 2 s in the rig). After the round the sources
//! stop and the queue drains; the rows of all rounds are summed.

use std::time::Duration;

use rand::RngExt;

use oqmgr_actors::clock::tooling_now;

use super::rig::{walk, Rig, RigSpec, Side};
use super::{merge, procs, Case, CaseKind, CaseResult, Ctx};

/// The case list of this group.
pub fn cases() -> Vec<Case> {
    vec![Case {
        name: "kill/qmgr".into(),
        group: "kills",
        about: "SIGKILL of the queue manager at random moments under load (rounds of fresh \
                instances)"
            .into(),
        kind: CaseKind::QmgrKills,
    }]
}

/// Waits up to `limit` for a live queue manager, kicking `public/qmgr`
/// every half second while there is none.
/// `not` is a pid just killed, which does not count.
pub fn wait_for_qmgr(rig: &Rig, limit: Duration, not: Option<i32>) -> Option<i32> {
    let start = tooling_now();
    let mut last_kick = start;
    loop {
        if let Some(pid) = rig.sb.qmgr_pid().filter(|p| Some(*p) != not) {
            return Some(pid);
        }
        let now = tooling_now();
        if now - start >= limit {
            return None;
        }
        if now - last_kick >= Duration::from_millis(500) {
            let _ = rig.sb.kick_qmgr(b"I");
            last_kick = now;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Entries in the rig's `active/` now.
fn active_files(rig: &Rig) -> usize {
    let mut n = 0;
    walk(&rig.sb.queue_dir().join("active"), &mut |_, _| n += 1);
    n
}

/// Runs every round with `side`.
pub fn run(ctx: &mut Ctx, case: &Case, side: &Side) -> CaseResult {
    let opts = ctx.opts;
    let per_round = opts.kills_per_round.max(1);
    let rounds = opts.qmgr_kills.div_ceil(per_round);
    let mut total = CaseResult::new(&case.name, case.group, side);
    let (mut kills, mut seen, mut in_active) = (0u32, 0usize, Vec::new());
    for round in 0..rounds {
        let want = per_round.min(opts.qmgr_kills - kills);
        let (row, done, reaped, active) = run_round(ctx, case, side, round, want);
        kills += done;
        seen += reaped;
        in_active.extend(active);
        total = if round == 0 { row } else { merge(total, row) };
    }
    total.notes.insert(
        0,
        format!("{kills} kills in {rounds} rounds ({seen} reaped by master as killed by signal 9)"),
    );
    if !in_active.is_empty() {
        in_active.sort_unstable();
        total.notes.insert(
            1,
            format!(
                "files in active/ at the kills: median {}, max {}, none at {}",
                in_active[in_active.len() / 2],
                in_active[in_active.len() - 1],
                in_active.iter().filter(|&&n| n == 0).count()
            ),
        );
    }
    total
}

/// One round: a fresh instance, `want` kills, a drain. Returns the row,
/// the kills sent and the kills master logged.
fn run_round(
    ctx: &mut Ctx,
    case: &Case,
    side: &Side,
    round: u32,
    want: u32,
) -> (CaseResult, u32, usize, Vec<usize>) {
    let opts = ctx.opts;
    let row = CaseResult::new(&case.name, case.group, side);
    let mut rig = match Rig::start_with_sinks(side, &RigSpec::default(), &["-f", "RCPT"]) {
        Ok(r) => r,
        Err(e) => return (row.failed(e), 0, 0, Vec::new()),
    };
    // A second at DATA keeps deliveries in flight (files in active/,
    // agents holding locks) when the kill comes.
    if let Err(e) = rig.sink("ok", &["-w", "1"]) {
        return (row.failed(e), 0, 0, Vec::new());
    }
    let mark = rig.log_mark();
    let main = rig.inject(
        &format!("k{round}"),
        &["u1@ok.test", "u2@ok.test"],
        opts.rate / 2.0,
        None,
    );
    let side_mail = rig.inject(
        &format!("b{round}"),
        &["u3@ok.test", "x@fault.test"],
        opts.rate / 20.0,
        None,
    );
    let mut done = 0;
    let mut misses = 0;
    let mut last = None;
    // Files in active/ at each kill: the work a kill interrupts.
    let mut in_active = Vec::new();
    while done < want && misses < 5 {
        let Some(pid) = wait_for_qmgr(&rig, Duration::from_secs(10), last) else {
            misses += 1;
            continue;
        };
        let delay = ctx
            .rng
            .random_range(0..=opts.kill_max_delay.as_millis() as u64);
        std::thread::sleep(Duration::from_millis(delay));
        let active = active_files(&rig);
        if procs::signal(pid, libc::SIGKILL) {
            done += 1;
            last = Some(pid);
            in_active.push(active);
        }
    }
    let mut injected = main.stop();
    let more = side_mail.stop();
    injected.accepted.extend(more.accepted);
    injected.unsure += more.unsure;
    injected.refused += more.refused;
    let mut row = super::conclude(&rig, row, &injected, mark, opts.stall);
    if misses > 0 {
        row.notes.push(format!(
            "no queue manager appeared {misses} time(s) in 10 s"
        ));
    }
    let reaped = rig
        .log_from(mark)
        .lines()
        .filter(|l| {
            l.contains("postfix/master[")
                && l.contains("qmgr pid")
                && l.contains("killed by signal 9")
        })
        .count();
    (row, done, reaped, in_active)
}
