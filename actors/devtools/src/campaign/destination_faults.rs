//! destination_faults - one destination misbehaves while another works.
//!
//! Every message has a recipient at `ok.test` (a healthy sink) and one at
//! `fault.test`, whose port has, for `fault_secs`:
//! - `refused`: nothing listening (connection refused);
//! - `tarpit`: a listener that accepts and never says a word;
//! - `4xx`: smtp-sink answering 450 to every RCPT;
//! - `5xx`: smtp-sink answering 500 to every RCPT (bounces with notices);
//! - `421`: smtp-sink answering 421 and hanging up at the greeting.
//!
//! Then the fault is lifted (a healthy sink on the port; tarpit
//! connections are dropped) and the queue drains. The row notes how much
//! `ok.test` mail was delivered while the fault lasted: a fault at one
//! destination must not hold up the others.

use std::time::Duration;

use super::rig::{Rig, RigSpec, Side};
use super::{conclude, group_cases, pause, Case, CaseKind, CaseResult, Ctx};

/// The faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Connection refused.
    Refused,
    /// Accepts, never answers.
    Tarpit,
    /// 450 to RCPT.
    Soft,
    /// 500 to RCPT.
    Hard,
    /// 421 at the greeting.
    Shutdown,
}

/// The case list of this group.
pub fn cases() -> Vec<Case> {
    group_cases(
        "destination",
        "destination",
        &[
            (Fault::Refused, "refused", "connection refused"),
            (Fault::Tarpit, "tarpit", "accepts and never answers"),
            (Fault::Soft, "4xx", "450 to every RCPT"),
            (Fault::Hard, "5xx", "500 to every RCPT (bounces)"),
            (Fault::Shutdown, "421", "421 and hang-up at the greeting"),
        ],
        " at fault.test while ok.test works, then repaired",
        CaseKind::Destination,
    )
}

/// Puts `fault` on the rig's fault port.
fn apply(rig: &mut Rig, fault: Fault) -> Result<(), String> {
    match fault {
        Fault::Refused => {
            rig.close_port("fault");
            Ok(())
        }
        Fault::Tarpit => rig.tarpit("fault"),
        Fault::Soft => rig.sink("fault", &["-r", "RCPT"]),
        Fault::Hard => rig.sink("fault", &["-f", "RCPT"]),
        Fault::Shutdown => rig.sink("fault", &["-Q", "CONNECT"]),
    }
}

/// Runs the case with `side`.
pub fn run(ctx: &mut Ctx, case: &Case, side: &Side, fault: Fault) -> CaseResult {
    let opts = ctx.opts;
    let row = CaseResult::new(&case.name, case.group, side);
    let mut rig = match Rig::start_with_sinks(side, &RigSpec::default(), &[]) {
        Ok(r) => r,
        Err(e) => return row.failed(e),
    };
    if let Err(e) = apply(&mut rig, fault) {
        return row.failed(e);
    }
    let mark = rig.log_mark();
    let source = rig.inject("d", &["u1@ok.test", "x@fault.test"], opts.rate, None);
    pause(opts.fault_secs);
    let during = source.snapshot().accepted;
    // Give the last accepted ones a moment to reach ok.test.
    pause(1.0);
    let sinks = rig.sink_record();
    let ok_during = during
        .iter()
        .filter(|m| {
            sinks
                .delivered
                .contains_key(&(m.tag.clone(), "u1@ok.test".to_string()))
        })
        .count();
    let during = during.len();
    let injected = source.stop();
    if let Err(e) = rig.sink("fault", &[]) {
        return row.failed(e);
    }
    let _ = rig.sb.postqueue(&["-f"]);
    let mut row = conclude(
        &rig,
        row,
        &injected,
        mark,
        opts.stall.max(Duration::from_secs(20)),
    );
    row.notes
        .insert(0, format!("ok.test during fault: {ok_during}/{during}"));
    row
}
