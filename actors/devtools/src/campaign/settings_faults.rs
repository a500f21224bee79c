//! settings_faults - nonsense queue manager settings in main.cf, as an
//! operator's typo would put them there.
//!
//! Each case starts an instance with one bad setting of a parameter only
//! the queue manager reads, sends mail for `setting_secs` and drains
//! briefly. Postfix's oqmgr stops with a fatal on most of them (master
//! then restarts it every `service_throttle_time`, and the mail waits);
//! on some it runs and misbehaves without a word (a negative concurrency
//! limit delivers nothing). The row says whether mail stopped and whether
//! the queue manager said why. `actors/tests/bad_settings.rs` compares the
//! texts value by value; this group checks what an operator sees: mail
//! moving, or a line saying why not.

use std::time::Duration;

use super::rig::{Rig, RigSpec, Side};
use super::{judge, pause, Case, CaseKind, CaseResult, Ctx};

/// The settings (`name`, `value`).
pub const SETTINGS: [(&str, &str); 16] = [
    ("qmgr_message_active_limit", "10 20"),
    ("qmgr_message_active_limit", "0"),
    ("qmgr_fudge_factor", "150"),
    ("default_destination_concurrency_limit", "-1"),
    ("default_destination_recipient_limit", "-2"),
    ("queue_run_delay", "0"),
    ("minimal_backoff_time", "-1"),
    ("maximal_queue_lifetime", "101d"),
    ("bounce_queue_lifetime", "soon"),
    ("confirm_delay_cleared", "1"),
    ("default_destination_concurrency_positive_feedback", ""),
    ("smtp_destination_concurrency_limit", "ten"),
    ("smtp_initial_destination_concurrency", "0"),
    ("qmgr_message_recipient_limit", "10"),
    ("maximal_queue_lifetime", "3"),
    ("destination_concurrency_feedback_debug", "No"),
];

/// The case list of this group.
pub fn cases() -> Vec<Case> {
    SETTINGS
        .iter()
        .map(|(name, value)| Case {
            name: format!("setting/{name}={value}"),
            group: "settings",
            about: format!("main.cf `{name} = {value}`"),
            kind: CaseKind::Setting(name, value),
        })
        .collect()
}

/// Runs the case with `side`.
pub fn run(ctx: &mut Ctx, case: &Case, side: &Side, name: &str, value: &str) -> CaseResult {
    let opts = ctx.opts;
    let row = CaseResult::new(&case.name, case.group, side);
    let spec = RigSpec {
        settings: vec![(name.to_string(), value.to_string())],
        ..RigSpec::default()
    };
    let rig = match Rig::start_with_sinks(side, &spec, &[]) {
        Ok(r) => r,
        Err(e) => return row.failed(e),
    };
    let mark = 0;
    let source = rig.inject("c", &["u1@ok.test"], opts.rate / 2.0, None);
    pause(opts.setting_secs);
    let injected = source.stop();
    let stall = Duration::from_secs_f64(opts.setting_secs + 2.0);
    let drained = rig.drain(Duration::from_secs(2), stall, stall * 2);
    let mut row = row;
    judge(&rig, &mut row, &injected, mark, &drained);
    let shown = match &row.stop {
        super::Stop::Logged(l) => Some(l.clone()),
        _ => None,
    };
    // The text after `program[pid]: `, so restarts do not count as news.
    let text = |l: &str| l.split_once("]: ").map_or(l, |(_, t)| t).to_string();
    let shown = shown.map(|l| text(&l));
    if let Some(line) = rig
        .qmgr_warnings(mark)
        .into_iter()
        .find(|l| l.contains(name) && Some(text(l)) != shown)
    {
        row.notes.insert(0, line);
    }
    row
}
