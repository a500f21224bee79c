//! Bad settings, value by value, against Postfix's own oqmgr (issue 13
//! item 6): for each row, Postfix 3.7's oqmgr and ours are started the way
//! master(8) starts them (`-l -n qmgr -t unix`, with `-V` to log on
//! stderr and the setting as `-o`) from an empty private main.cf, outside
//! master. Both then stop, either on the setting (a `fatal:` about it) or,
//! having read their configuration, on the missing master descriptors; the
//! lines logged before that are compared with the row's expectation, and
//! the row also goes through `oqmgr check`.
//!
//! The expectations say what Postfix does, and the test proves it on the
//! installed Postfix each time:
//! - `Stops(text)`: Postfix's oqmgr stops at start-up with `fatal: text`;
//!   ours stops with the same line.
//! - `OursStops(text)`: Postfix accepts the value and misbehaves without a
//!   word (a negative concurrency limit delivers nothing; `soon` is a
//!   zero time); ours stops with `text`.
//! - `StopsAtFirstUse(text)`: a `<transport>_...` value Postfix checks only
//!   when the transport first gets mail (then it stops with `text` in the
//!   middle of delivering); ours stops at start-up with `text`.
//! - `Warns(texts)`: both start and log these warnings.
//! - `Accepts`: both start and log nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What a row expects.
#[derive(Debug, Clone, Copy)]
enum Expect {
    Stops(&'static str),
    OursStops(&'static str),
    StopsAtFirstUse(&'static str),
    Warns(&'static [&'static str]),
    Accepts,
}
use Expect::*;

/// The settings, each `name=value` as a master.cf `-o` would give it.
const ROWS: &[(&str, Expect)] = &[
    // Counts.
    (
        "qmgr_message_active_limit=10 20",
        Stops("bad numerical configuration: qmgr_message_active_limit = 10 20"),
    ),
    (
        "qmgr_message_active_limit=0",
        Stops("invalid qmgr_message_active_limit parameter value 0 < 1"),
    ),
    (
        "qmgr_message_recipient_limit=-5",
        Stops("invalid qmgr_message_recipient_limit parameter value -5 < 1"),
    ),
    (
        "initial_destination_concurrency=0",
        Stops("invalid initial_destination_concurrency parameter value 0 < 1"),
    ),
    (
        "qmgr_fudge_factor=5",
        Stops("invalid qmgr_fudge_factor parameter value 5 < 10"),
    ),
    (
        "qmgr_fudge_factor=150",
        Stops("invalid qmgr_fudge_factor parameter value 150 > 100"),
    ),
    (
        "default_destination_recipient_limit=99999999999",
        Stops("bad numerical configuration: default_destination_recipient_limit = 99999999999"),
    ),
    (
        "local_destination_concurrency_limit=two",
        Stops("bad numerical configuration: local_destination_concurrency_limit = two"),
    ),
    (
        "address_verify_pending_request_limit=lots",
        Stops("bad numerical configuration: address_verify_pending_request_limit = lots"),
    ),
    (
        "default_destination_concurrency_limit=-1",
        OursStops("invalid default_destination_concurrency_limit parameter value -1 < 0"),
    ),
    (
        "default_destination_recipient_limit=-2",
        OursStops("invalid default_destination_recipient_limit parameter value -2 < 0"),
    ),
    (
        "local_destination_recipient_limit=-1",
        OursStops("invalid local_destination_recipient_limit parameter value -1 < 0"),
    ),
    (
        "default_destination_concurrency_failed_cohort_limit=-1",
        OursStops(
            "invalid default_destination_concurrency_failed_cohort_limit parameter value -1 < 0",
        ),
    ),
    // Times.
    (
        "queue_run_delay=0",
        Stops("invalid queue_run_delay: 0 (min 1)"),
    ),
    (
        "queue_run_delay=5 m",
        Stops("parameter queue_run_delay: bad time value or unit: 5 m"),
    ),
    (
        "minimal_backoff_time=-1",
        Stops("parameter minimal_backoff_time: bad time value or unit: -1"),
    ),
    (
        "maximal_backoff_time=4000x",
        Stops("parameter maximal_backoff_time: bad time value or unit: 4000x"),
    ),
    (
        "maximal_queue_lifetime=101d",
        Stops("invalid maximal_queue_lifetime: 8726400 (max 8640000)"),
    ),
    (
        "qmgr_clog_warn_time=1W",
        Stops("parameter qmgr_clog_warn_time: bad time value or unit: 1W"),
    ),
    (
        "transport_retry_time=0s",
        Stops("invalid transport_retry_time: 0 (min 1)"),
    ),
    (
        "qmgr_daemon_timeout=",
        Stops("parameter qmgr_daemon_timeout: bad time value or unit: "),
    ),
    (
        "bounce_queue_lifetime=soon",
        OursStops("parameter bounce_queue_lifetime: bad time value or unit: soon"),
    ),
    (
        "queue_run_delay=soon",
        Stops("invalid queue_run_delay: 0 (min 1)"),
    ),
    (
        "bounce_queue_lifetime=1month",
        OursStops("parameter bounce_queue_lifetime: bad time value or unit: 1month"),
    ),
    ("queue_run_delay=10sec", Accepts),
    ("minimal_backoff_time=2minutes", Accepts),
    // Booleans and strings.
    (
        "helpful_warnings=maybe",
        Stops("bad boolean configuration: helpful_warnings = maybe"),
    ),
    (
        "confirm_delay_cleared=1",
        Stops("bad boolean configuration: confirm_delay_cleared = 1"),
    ),
    (
        "disable_verp_bounces=true",
        Stops("bad boolean configuration: disable_verp_bounces = true"),
    ),
    ("helpful_warnings=YES", Accepts),
    ("destination_concurrency_feedback_debug=No", Accepts),
    (
        "double_bounce_sender=",
        Stops("bad string length 0 < 1: double_bounce_sender = "),
    ),
    (
        "default_destination_concurrency_positive_feedback=",
        Stops("bad string length 0 < 1: default_destination_concurrency_positive_feedback = "),
    ),
    // Read by every Postfix daemon (mail_params_init).
    (
        "hash_queue_depth=0",
        Stops("invalid hash_queue_depth parameter value 0 < 1"),
    ),
    (
        "delay_logging_resolution_limit=9",
        Stops("invalid delay_logging_resolution_limit parameter value 9 > 6"),
    ),
    (
        "smtputf8_enable=maybe",
        Stops("bad boolean configuration: smtputf8_enable = maybe"),
    ),
    (
        "in_flow_delay=11s",
        Stops("invalid in_flow_delay: 11 (max 10)"),
    ),
    ("soft_bounce=YES", Accepts),
    // Per transport.
    (
        "smtp_destination_concurrency_limit=ten",
        StopsAtFirstUse("bad numerical configuration: smtp_destination_concurrency_limit = ten"),
    ),
    (
        "smtp_initial_destination_concurrency=0",
        StopsAtFirstUse("invalid smtp_initial_destination_concurrency parameter value 0 < 1"),
    ),
    (
        "relay_destination_rate_delay=1fortnight",
        StopsAtFirstUse("parameter relay_destination_rate_delay: bad time value or unit: 1fortnight"),
    ),
    // Adjusted with a warning (qmgr_post_init).
    (
        "qmgr_message_recipient_limit=10",
        Warns(&["qmgr_message_recipient_limit is smaller than qmgr_message_active_limit - adjusting qmgr_message_recipient_limit"]),
    ),
    (
        "maximal_queue_lifetime=3",
        Warns(&["bounce_queue_lifetime is larger than maximal_queue_lifetime - adjusting bounce_queue_lifetime"]),
    ),
    // cleanup(8)'s parameter: Postfix's oqmgr never reads it.
    ("delay_warning_time=-4h", Accepts),
    // Ours: Postfix's oqmgr does not read it.
    (
        "oqmgr_scheduling_policy=fastest",
        OursStops("bad oqmgr_scheduling_policy value: fastest; specify oqmgr or adaptive"),
    ),
    ("oqmgr_scheduling_policy=adaptive", Accepts),
];

/// What one start produced: the warnings, and the fatal it stopped on
/// (`None` when it read its configuration and stopped for want of
/// master(8)).
#[derive(Debug, PartialEq)]
struct Start {
    warnings: Vec<String>,
    fatal: Option<String>,
}

/// The fatal lines that mean "configuration read, no master here".
fn is_no_master(fatal: &str) -> bool {
    // Postfix: its event loop refuses the missing listen descriptor; ours:
    // the descriptor check.
    fatal.starts_with("event_enable_read:") || fatal.contains("from master(8)")
}

/// Starts `program` like master(8) with `-o setting`, outside master.
fn start(program: &Path, config: &Path, setting: &str) -> Start {
    let out = Command::new(program)
        .args(["-V", "-l", "-t", "unix", "-n", "qmgr", "-o", setting])
        .env("MAIL_CONFIG", config)
        .stdin(Stdio::null())
        .output()
        .expect("queue manager runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut s = Start {
        warnings: Vec::new(),
        fatal: None,
    };
    for line in stderr.lines() {
        if let Some((_, w)) = line.split_once(": warning: ") {
            s.warnings.push(w.to_string());
        } else if let Some((_, f)) = line.split_once(": fatal: ") {
            s.fatal = Some(f.to_string()).filter(|f| !is_no_master(f));
        }
    }
    assert!(!out.status.success(), "{program:?} {setting}: {stderr}");
    s
}

/// What `oqmgr check -o setting` says: the first fatal, or `None`.
fn check(config: &Path, setting: &str) -> (Option<String>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_oqmgr"))
        .args(["check", "-c"])
        .arg(config)
        .args(["-o", setting])
        .output()
        .expect("oqmgr check runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let first = text
        .lines()
        .find_map(|l| l.split_once(": fatal: ").map(|(_, f)| f.to_string()));
    assert_eq!(
        out.status.success(),
        first.is_none(),
        "exit status says what the lines say: {text}"
    );
    (first, text)
}

/// A private configuration directory with an empty main.cf.
fn empty_config() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("oqmgr-bad-settings-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("main.cf"), "").unwrap();
    dir
}

/// Postfix's oqmgr, where Debian installs it.
fn postfix_oqmgr() -> PathBuf {
    let out = Command::new("postconf")
        .args(["-dh", "daemon_directory"])
        .output()
        .expect("postconf must be installed (actors/scripts/test installs it)");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("oqmgr")
}

#[test]
fn bad_settings_stop_like_postfix_oqmgr() {
    let config = empty_config();
    let theirs = postfix_oqmgr();
    let ours = PathBuf::from(env!("CARGO_BIN_EXE_oqmgr"));
    let mut failures = Vec::new();
    let (mut postfix_stops, mut ours_stops) = (0, 0);
    // Postfix's msg_fatal sleeps a second before it exits: start every row
    // at once.
    let runs: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = ROWS
            .iter()
            .map(|(setting, _)| {
                let (theirs, ours, config) = (&theirs, &ours, &config);
                scope.spawn(move || {
                    (
                        start(theirs, config, setting),
                        start(ours, config, setting),
                        check(config, setting),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for ((setting, expect), (p, o, (checked, report))) in ROWS.iter().zip(runs) {
        let started = |warnings: &[&str]| Start {
            warnings: warnings.iter().map(|w| w.to_string()).collect(),
            fatal: None,
        };
        let stops = |text: &str| Start {
            warnings: Vec::new(),
            fatal: Some(text.to_string()),
        };
        let (want_p, want_o) = match *expect {
            Stops(t) => (stops(t), stops(t)),
            OursStops(t) | StopsAtFirstUse(t) => (started(&[]), stops(t)),
            Warns(w) => (started(w), started(w)),
            Accepts => (started(&[]), started(&[])),
        };
        postfix_stops += usize::from(want_p.fatal.is_some());
        ours_stops += usize::from(want_o.fatal.is_some());
        if p != want_p {
            failures.push(format!(
                "{setting}: Postfix's oqmgr did {p:?}, the row says {want_p:?}"
            ));
        }
        if o != want_o {
            failures.push(format!("{setting}: ours did {o:?}, want {want_o:?}"));
        }
        if checked != want_o.fatal {
            failures.push(format!("{setting}: oqmgr check said:\n{report}"));
        }
    }
    let _ = std::fs::remove_dir_all(&config);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!(
        "{} settings: Postfix's oqmgr stops at start-up on {postfix_stops}, ours on {ours_stops}",
        ROWS.len()
    );
}
