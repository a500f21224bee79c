//! agent_kills - SIGKILL of the processes the queue manager talks to: smtp
//! delivery agents, trivial-rewrite, the bounce daemon (as `bounce`,
//! `defer` and `trace`) and cleanup, under load.
//!
//! Every message has an `ok.test` recipient and one the `fault` sink
//! refuses with 5xx, so each case has deliveries, bounce notices and
//! defer/trace traffic in flight. `agent_kills` times, at random 0.1–0.8 s
//! intervals, one live process of the service is killed (master starts a
//! new one on demand). A smtp agent killed after the remote side took the
//! message but before it recorded the delivery causes a second copy
//! later; that is SMTP's own duplicate window, the same for both queue
//! managers, and shows as "duplicated".

use std::time::Duration;

use rand::RngExt;

use oqmgr_actors::clock::tooling_now;

use super::rig::{Rig, RigSpec, Side};
use super::{conclude, pause, procs, Case, CaseKind, CaseResult, Ctx};

/// The services of each case.
const TARGETS: [(&str, &[&str], &str); 4] = [
    ("smtp", &["smtp"], "smtp delivery agents"),
    (
        "trivial-rewrite",
        &["rewrite"],
        "trivial-rewrite (address resolution)",
    ),
    (
        "bounce",
        &["bounce", "defer", "trace"],
        "the bounce daemon as bounce, defer and trace",
    ),
    (
        "cleanup",
        &["cleanup"],
        "cleanup (new mail and bounce notices)",
    ),
];

/// The case list of this group.
pub fn cases() -> Vec<Case> {
    TARGETS
        .iter()
        .map(|(name, services, what)| Case {
            name: format!("kill/{name}"),
            group: "kills",
            about: format!("SIGKILL of {what} at random moments under load"),
            kind: CaseKind::AgentKills(services),
        })
        .collect()
}

/// Waits up to `limit` for a live process of one of `services`.
fn pick(rig: &Rig, services: &[&str], rng: &mut impl RngExt, limit: Duration) -> Option<i32> {
    let start = tooling_now();
    while tooling_now() - start < limit {
        let pids: Vec<i32> = services.iter().flat_map(|s| rig.service_pids(s)).collect();
        if !pids.is_empty() {
            return Some(pids[rng.random_range(0..pids.len())]);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Runs the case with `side`.
pub fn run(ctx: &mut Ctx, case: &Case, side: &Side, services: &[&str]) -> CaseResult {
    let opts = ctx.opts;
    let row = CaseResult::new(&case.name, case.group, side);
    let rig = match Rig::start_with_sinks(side, &RigSpec::default(), &["-f", "RCPT"]) {
        Ok(r) => r,
        Err(e) => return row.failed(e),
    };
    let mark = rig.log_mark();
    let source = rig.inject("a", &["u1@ok.test", "x@fault.test"], opts.rate, None);
    let mut kills = 0;
    let mut misses = 0;
    while kills < opts.agent_kills && misses < 10 {
        pause(ctx.rng.random_range(0.1..0.8));
        match pick(&rig, services, &mut ctx.rng, Duration::from_secs(2)) {
            Some(pid) if procs::signal(pid, libc::SIGKILL) => kills += 1,
            _ => misses += 1,
        }
    }
    let injected = source.stop();
    let mut row = conclude(&rig, row, &injected, mark, opts.stall);
    row.notes.insert(0, format!("{kills} kills"));
    if misses > 0 {
        row.notes
            .push(format!("no {} process found {misses} time(s)", services[0]));
    }
    row
}
