//! lifecycle - `postfix reload`, `stop` + `start` and `abort` + `start`
//! while mail flows.
//!
//! With mail to `ok.test` and to a `fault.test` answering 4xx (deferrals
//! in flight), the event happens three times across `fault_secs`; then
//! the source stops, the fault is lifted and the queue drains. A reload
//! makes master replace the queue manager (the old one exits when master
//! goes away from it); `stop` ends every process in order; `abort` is
//! `postfix abort`, master's immediate stop. The source reconnects while
//! smtpd is down, so mail refused meanwhile is not counted as accepted.

use std::time::Duration;

use super::rig::{Rig, RigSpec, Side};
use super::{conclude, group_cases, pause, procs, Case, CaseKind, CaseResult, Ctx};

/// The events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// `postfix reload`.
    Reload,
    /// `postfix stop`, then `postfix start`.
    StopStart,
    /// `postfix abort`, then `postfix start`.
    AbortStart,
}

/// The case list of this group.
pub fn cases() -> Vec<Case> {
    group_cases(
        "lifecycle",
        "lifecycle",
        &[
            (Event::Reload, "reload", "postfix reload"),
            (Event::StopStart, "stop-start", "postfix stop, then start"),
            (
                Event::AbortStart,
                "abort-start",
                "postfix abort, then start",
            ),
        ],
        ", three times under load",
        CaseKind::Lifecycle,
    )
}

/// Runs the case with `side`.
pub fn run(ctx: &mut Ctx, case: &Case, side: &Side, event: Event) -> CaseResult {
    let opts = ctx.opts;
    let row = CaseResult::new(&case.name, case.group, side);
    let mut rig = match Rig::start_with_sinks(side, &RigSpec::default(), &["-r", "RCPT"]) {
        Ok(r) => r,
        Err(e) => return row.failed(e),
    };
    let mark = rig.log_mark();
    let source = rig.inject("l", &["u1@ok.test", "x@fault.test"], opts.rate, None);
    let mut failures = Vec::new();
    for _ in 0..3 {
        pause(opts.fault_secs / 3.0);
        let steps: &[&str] = match event {
            Event::Reload => &["reload"],
            Event::StopStart => &["stop", "start"],
            Event::AbortStart => &["abort", "start"],
        };
        let master = rig.master();
        for step in steps {
            if *step == "start" {
                // `stop` and `abort` return before master is gone, and
                // `start` refuses while it runs.
                if let Some(pid) = master {
                    rig.sb
                        .wait_for(Duration::from_secs(15), || procs::is_zombie(pid));
                }
            }
            match rig.sb.postfix(&[step]) {
                Ok(o) if o.status.success() => {}
                Ok(o) => failures.push(format!(
                    "postfix {step}: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                )),
                Err(e) => failures.push(format!("postfix {step}: {e}")),
            }
        }
    }
    let injected = source.stop();
    if let Err(e) = rig.sink("fault", &[]) {
        return row.failed(e);
    }
    let _ = rig.sb.postqueue(&["-f"]);
    let mut row = conclude(&rig, row, &injected, mark, opts.stall);
    row.notes.extend(failures);
    row
}
