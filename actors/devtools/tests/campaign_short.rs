#![allow(clippy::disallowed_methods)] // tests wait on real daemons in real time
//! campaign_short - the fault campaign's short form with our queue manager
//! in a real Postfix 3.7 (see docs/fault-campaign.md).
//!
//! # What it asserts
//! For every case it runs: the case ran; no accepted recipient was lost;
//! mail never stopped without a queue manager line saying why; and no
//! recipient was delivered twice, except in the cases listed in
//! [`DUPLICATES_EXPECTED`], where Postfix's own oqmgr duplicates too
//! (SMTP's window between the remote side taking a message and the agent
//! recording it). Every damaged queue entry must be handled at least as
//! well as Postfix's oqmgr handles it: the catalogue
//! (`oqmgr_devtools::campaign::damage_kinds`) records what oqmgr did in the
//! full campaign: where the entry ends, how many copies are delivered,
//! whether a warning names it, whether other mail keeps moving.
//!
//! # Known failures
//! [`KNOWN_FAILURES`] lists the damaged-entry kinds our daemon handles
//! worse than oqmgr today, with the issue item that fixes each. They run
//! too, and the test insists they still fail: when a fix lands, the test
//! fails with "now handled as well as oqmgr: remove it from
//! KNOWN_FAILURES", which is the switch that turns the check on.
//!
//! # Running
//! Needs root and Postfix (as every e2e test) and our `oqmgr` binary
//! built next to the test (`cargo test --workspace` builds it;
//! `OQMGR_CAMPAIGN_BIN=/path` picks another). Environment:
//! - `OQMGR_CAMPAIGN_SIDE_BY_SIDE=1` also runs Postfix's oqmgr and judges
//!   our damaged-entry rows against its rows of this run instead of the
//!   catalogue;
//! - `OQMGR_CAMPAIGN_STRICT=1` treats the known failures as failures (to
//!   check a fix before flipping its entry);
//! - `OQMGR_CAMPAIGN_CASES=a,b` runs only cases whose names contain one
//!   of these instead of [`CI_CASES`].

use std::path::PathBuf;

use oqmgr_devtools::campaign::damaged_files::shortfalls;
use oqmgr_devtools::campaign::queue_template::{rebuild, Template, PLACEHOLDER};
use oqmgr_devtools::campaign::results::{self, reference};
use oqmgr_devtools::campaign::{self, CaseResult, Options, Side, Stop};

/// Damaged-entry kinds our daemon handles worse than oqmgr on main today,
/// each with the issue item that fixes it. None today: the FIFOs, symlinks
/// and the directory (issue 13 items 1-3) are left in place with oqmgr's
/// warning, so the short form requires oqmgr-equal handling of every kind.
const KNOWN_FAILURES: &[(&str, &str)] = &[];

/// Cases where oqmgr also delivers some recipient twice.
const DUPLICATES_EXPECTED: &[&str] = &["kill/smtp", "kill/bounce", "lifecycle/abort-start"];

/// The cases of the CI run (the CLI's `--short` runs every case).
const CI_CASES: &[&str] = &[
    "kill/qmgr",
    "kill/smtp",
    "damaged/",
    "destination/",
    "trigger/nul-less",
    "storage/defer-unwritable",
    "lifecycle/reload",
    "setting/default_destination_concurrency_limit=-1",
];

/// Our daemon: `OQMGR_CAMPAIGN_BIN`, or `oqmgr` next to this test.
fn ours() -> PathBuf {
    std::env::var_os("OQMGR_CAMPAIGN_BIN")
        .map(PathBuf::from)
        .or_else(oqmgr_devtools::ours_next_to_me)
        .expect(
            "our oqmgr binary is not built next to this test: run `cargo build -p oqmgr-actors \
             --bin oqmgr` (cargo test --workspace does) or set OQMGR_CAMPAIGN_BIN",
        )
}

/// What is wrong with one row, if anything (known failures aside).
fn problems(rows: &[CaseResult], r: &CaseResult) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(e) = &r.error {
        out.push(format!("did not run: {e}"));
    }
    if r.tally.lost > 0 {
        out.push(format!("{} recipients lost", r.tally.lost));
    }
    if r.tally.duplicated > 0 && !DUPLICATES_EXPECTED.contains(&r.case.as_str()) {
        out.push(format!("{} recipients duplicated", r.tally.duplicated));
    }
    if r.stop == Stop::Silent {
        out.push("mail stopped and the queue manager said nothing".into());
    }
    if let Some(p) = &r.planted {
        let reference = reference(rows, r).expect("a damaged kind has a reference");
        out.extend(shortfalls(p, &r.stop, &reference));
    }
    out
}

#[test]
fn real_cleanup_files_rebuild_unchanged() {
    let t = Template::capture().expect("template captured");
    assert_eq!(rebuild(&t.records(PLACEHOLDER)), t.bytes);
}

#[test]
fn short_form_with_our_daemon() {
    let mut sides = vec![Side::Ours(ours())];
    if std::env::var_os("OQMGR_CAMPAIGN_SIDE_BY_SIDE").is_some() {
        sides.push(Side::Oqmgr);
    }
    let mut opts = Options::short(sides);
    opts.filter = match std::env::var("OQMGR_CAMPAIGN_CASES") {
        Ok(list) => list.split(',').map(str::to_string).collect(),
        Err(_) => CI_CASES.iter().map(|c| c.to_string()).collect(),
    };
    let strict = std::env::var_os("OQMGR_CAMPAIGN_STRICT").is_some();
    let rows = campaign::run(&opts, |r| eprintln!("{}", results::progress_line(r)));
    eprintln!("{}", results::render(&rows));

    let mut failures = Vec::new();
    let mut still_failing = Vec::new();
    for r in rows.iter().filter(|r| r.side == "ours") {
        let p = problems(&rows, r);
        let known = KNOWN_FAILURES
            .iter()
            .find(|(k, _)| *k == r.case)
            .filter(|_| !strict);
        match known {
            Some((_, why)) if p.is_empty() => failures.push(format!(
                "{}: now handled as well as oqmgr ({why}): remove it from KNOWN_FAILURES",
                r.case
            )),
            Some(_) => still_failing.push(format!("{}: {}", r.case, p.join("; "))),
            None if !p.is_empty() => failures.push(format!("{}: {}", r.case, p.join("; "))),
            None => {}
        }
    }
    eprintln!("known failures (expected): {still_failing:#?}");
    assert!(failures.is_empty(), "campaign short form: {failures:#?}");
    if std::env::var_os("OQMGR_CAMPAIGN_CASES").is_none() {
        let ran: Vec<&str> = rows.iter().map(|r| r.case.as_str()).collect();
        for (k, _) in KNOWN_FAILURES {
            assert!(ran.contains(k), "known failure {k} did not run");
        }
        assert!(
            rows.iter()
                .any(|r| r.case == "kill/qmgr" && r.tally.accepted > 0),
            "the kill case put mail through"
        );
    }
}
