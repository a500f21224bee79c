//! control - `oqmgr ctl` against a real Postfix with our queue manager
//! (ours only: Postfix's oqmgr has no control socket).
//!
//! Mail flows to five domains, each to its own smtp-sink. `suspend` of
//! one: from then on its sink receives no transaction, its mail is
//! deferred with the operator's reason and `postqueue -p` shows it, and
//! the other four keep delivering. `postfix reload` and `kill -9` of the
//! queue manager: still suspended (the state file). `resume`: its mail is
//! delivered within 2 s, without `postqueue -f`. And `why` on a dead
//! destination names its last error and its next attempt.

use std::fs;
use std::process::Command;
use std::time::Duration;

use super::env::{Env, Setup, Spec};
use super::flow::SENDER;
use super::outcome::ScenarioOutcome;

/// The five domains, each served by the sink of the same name.
const DOMAINS: [&str; 5] = ["d1", "d2", "d3", "d4", "d5"];

/// Runs `oqmgr ctl -c <instance> ARGS`; returns its status and output.
pub fn ctl(env: &Env, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_oqmgr"))
        .arg("ctl")
        .arg("-c")
        .arg(env.sb.config_dir())
        .args(args)
        .output()
        .expect("oqmgr ctl runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Transactions sink `name` has received so far (its dump files).
fn sink_transactions(env: &Env, name: &str) -> usize {
    let prefix = format!("sink-{name}-");
    fs::read_dir(env.sb.dir())
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .map(|e| fs::read_dir(e.path()).map_or(0, |f| f.count()))
                .sum()
        })
        .unwrap_or(0)
}

/// `n` rows of `tag`-prefixed messages to `domain` with `result`.
fn count(o: &ScenarioOutcome, domain: &str, result: &str) -> usize {
    o.rows
        .iter()
        .filter(|r| r.recipient.ends_with(&format!("@{domain}.test")) && r.result == result)
        .count()
}

/// The scenario; facts say what held.
pub fn control_suspend_resume(q: &Setup) -> ScenarioOutcome {
    let ports: Vec<&str> = DOMAINS.iter().copied().chain(["dead"]).collect();
    let routes: Vec<(String, &str)> = DOMAINS
        .iter()
        .map(|d| (format!("{d}.test"), *d))
        .chain([("dead.test".to_string(), "dead")])
        .collect();
    let routes: Vec<(&str, &str)> = routes.iter().map(|(d, p)| (d.as_str(), *p)).collect();
    let mut env = Env::start(
        q,
        &Spec {
            ports: &ports,
            smtp_routes: &routes,
            raw_routes: &[],
            settings: &[
                // Only the scenario moves deferred mail: a resume must
                // not be mistaken for a periodic retry.
                ("minimal_backoff_time", "300s"),
                ("maximal_backoff_time", "600s"),
                ("smtp_initial_destination_concurrency", "1"),
            ],
        },
    );
    for d in DOMAINS {
        env.start_sink(d, &[]);
    }
    let mut o = ScenarioOutcome::default();
    let t0 = oqmgr_actors::clock::tooling_now();
    let phase = |name: &str| eprintln!("control: {name} at {:.1} s", t0.elapsed().as_secs_f64());
    let dest3 = format!("smtp:[127.0.0.1]:{}", env.ports["d3"]);
    let send_round = |env: &Env, round: &str| {
        for d in DOMAINS {
            env.send(&format!("{round}-{d}"), SENDER, &[&format!("u@{d}.test")]);
        }
    };
    // Round 1: everything flows.
    send_round(&env, "r1");
    let flowed = env.wait(|| {
        DOMAINS
            .iter()
            .all(|d| count(&env.outcome(), d, "sent") == 1)
    });
    o.fact(format!("round 1 delivered to all five: {flowed}"));

    phase("round 1 delivered");
    // Suspend d3.
    let (ok, text) = ctl(&env, &["suspend", &dest3, "--reason", "e2e maintenance"]);
    o.fact(format!("suspend ok: {ok}"));
    o.fact(format!(
        "suspend says what it did: {}",
        text.contains(&format!("suspend {dest3} until resumed (e2e maintenance)"))
    ));
    let before = sink_transactions(&env, "d3");
    for round in ["r2", "r3"] {
        send_round(&env, round);
    }
    let settled = env.wait(|| {
        let out = env.outcome();
        DOMAINS
            .iter()
            .filter(|d| **d != "d3")
            .all(|d| count(&out, d, "sent") == 3)
            && count(&out, "d3", "deferred") == 2
    });
    o.fact(format!("others delivered, d3 deferred: {settled}"));
    o.fact(format!(
        "d3 sink got no transaction while suspended: {}",
        sink_transactions(&env, "d3") == before
    ));
    let queue = env.admin("postqueue", &["-p"]);
    o.fact(format!(
        "postqueue -p shows the reason: {}",
        queue.contains("delivery suspended by the administrator: e2e maintenance")
    ));
    let (_, dests) = ctl(&env, &["destinations", "--state", "suspended"]);
    o.fact(format!(
        "destinations lists it suspended: {}",
        dests.contains(&dest3) && dests.contains("suspended")
    ));
    let logged = !env
        .log()
        .grep(&format!("control: suspend {dest3} until resumed"))
        .is_empty();
    o.fact(format!("the suspend is logged: {logged}"));

    phase("d3 suspended, others delivered");
    // Reload, then kill -9: the suspension survives both.
    let pid = env.sb.qmgr_pid();
    env.admin("postfix", &["reload"]);
    let replaced = env.wait(|| env.sb.qmgr_pid().is_some_and(|p| Some(p) != pid));
    phase("new qmgr after reload");
    let (_, status) = ctl_when_up(&env, &["status"]);
    o.fact(format!(
        "after reload ({replaced}): status lists the suspension: {}",
        status.contains(&format!("{dest3}: since"))
            && status.contains("until resumed: e2e maintenance")
    ));
    if let Some(pid) = env.sb.qmgr_pid() {
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is a
        // child of this sandbox's master, found through /proc.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        // master(8) starts the next queue manager on demand: new mail's
        // trigger does it.
        env.send("r4-d3", SENDER, &["u@d3.test"]);
        env.wait(|| env.sb.qmgr_pid().is_some_and(|p| p != pid));
        phase("new qmgr after kill -9");
    }
    phase("reloaded and killed");
    let still = env.wait(|| count(&env.outcome(), "d3", "deferred") == 3);
    let (_, status) = ctl_when_up(&env, &["status"]);
    o.fact(format!(
        "after kill -9: new mail still deferred ({still}), status lists it: {}",
        status.contains("until resumed: e2e maintenance")
    ));
    o.fact(format!(
        "d3 sink still got nothing: {}",
        sink_transactions(&env, "d3") == before
    ));

    phase("still suspended");
    // Resume: the three deferred messages go out at once.
    let start = oqmgr_actors::clock::tooling_now();
    let (ok, text) = ctl(&env, &["resume", &dest3]);
    let delivered = env.sb.wait_for(Duration::from_secs(20), || {
        count(&env.outcome(), "d3", "sent") == 4
    });
    let took = start.elapsed();
    eprintln!("resume to delivery of 3 deferred messages: {took:?}; ctl said: {text}");
    o.fact(format!("resume ok: {ok}"));
    o.fact(format!(
        "resume retried the 3 deferred messages: {}",
        text.contains("3 deferred message(s) retried now")
    ));
    o.fact(format!(
        "d3 mail delivered after resume: {delivered}, within 2 s: {}",
        took <= Duration::from_secs(2)
    ));

    phase("resumed");
    // why on a dead destination.
    env.send("x1", SENDER, &["u@dead.test"]);
    env.wait(|| env.outcome().rows_of("x1").any(|r| r.queue == "deferred"));
    env.send("x2", SENDER, &["u@dead.test"]);
    env.wait(|| env.outcome().rows_of("x2").any(|r| r.queue == "deferred"));
    let dead = format!("smtp:[127.0.0.1]:{}", env.ports["dead"]);
    let (_, why) = ctl(&env, &["why", &dead]);
    eprintln!("why {dead}: {why}");
    o.fact(format!(
        "why names it dead with its last error and next attempt: {}",
        why.contains("dead since")
            && why
                .contains("last error: 4.4.1 delivery temporarily suspended: connect to 127.0.0.1")
            && why.contains("Connection refused")
            && why.contains("next attempt at")
    ));
    let (_, why_id) = ctl(&env, &["why", &env.qid_of("x2").unwrap_or_default()]);
    eprintln!("why x2: {why_id}");
    o.fact(format!(
        "why QUEUE_ID gives its next attempt and reason: {}",
        why_id.contains("in deferred/ until its next attempt at")
            && why_id.contains("Connection refused")
    ));
    env.finish(o)
}

/// `ctl` once the new queue manager has made its socket.
fn ctl_when_up(env: &Env, args: &[&str]) -> (bool, String) {
    let mut last = (false, String::new());
    env.wait(|| {
        last = ctl(env, args);
        last.0
    });
    last
}

/// Expectation of [`control_suspend_resume`].
pub fn expect_control_suspend_resume(o: &ScenarioOutcome) {
    let mut want = ScenarioOutcome::default();
    for fact in [
        "round 1 delivered to all five: true",
        "suspend ok: true",
        "suspend says what it did: true",
        "others delivered, d3 deferred: true",
        "d3 sink got no transaction while suspended: true",
        "postqueue -p shows the reason: true",
        "destinations lists it suspended: true",
        "the suspend is logged: true",
        "after reload (true): status lists the suspension: true",
        "after kill -9: new mail still deferred (true), status lists it: true",
        "d3 sink still got nothing: true",
        "resume ok: true",
        "resume retried the 3 deferred messages: true",
        "d3 mail delivered after resume: true, within 2 s: true",
        "why names it dead with its last error and next attempt: true",
        "why QUEUE_ID gives its next attempt and reason: true",
    ] {
        want.fact(fact);
    }
    assert_eq!(o.facts, want.facts, "{}", o.render());
}

/// Prints the real output of every `oqmgr ctl` command on a small
/// workload: the examples of docs/control.md come from here (run with
/// `--ignored --nocapture`).
pub fn control_outputs(q: &Setup) {
    let mut env = Env::start(
        q,
        &Spec {
            ports: &["d1", "d2", "dead"],
            smtp_routes: &[("d1.test", "d1"), ("d2.test", "d2"), ("dead.test", "dead")],
            raw_routes: &[],
            settings: &[
                ("minimal_backoff_time", "300s"),
                ("maximal_backoff_time", "600s"),
                ("smtp_initial_destination_concurrency", "1"),
            ],
        },
    );
    env.start_sink("d1", &[]);
    env.start_sink("d2", &["-w", "3"]);
    let show = |env: &Env, args: &[&str]| {
        let (_, text) = ctl(env, args);
        println!("# oqmgr ctl {}\n{text}", args.join(" "));
    };
    for i in 0..6 {
        env.send(&format!("a{i}"), SENDER, &["u@d1.test", "v@d2.test"]);
    }
    env.send("x1", SENDER, &["u@dead.test"]);
    env.wait(|| env.outcome().rows_of("x1").any(|r| r.queue == "deferred"));
    env.send("x2", SENDER, &["u@dead.test", "w@d1.test"]);
    env.wait(|| env.outcome().rows_of("x2").any(|r| r.queue == "deferred"));
    for i in 6..9 {
        env.send(&format!("a{i}"), SENDER, &["u@d1.test", "v@d2.test"]);
    }
    let dead = format!("smtp:[127.0.0.1]:{}", env.ports["dead"]);
    let d2 = format!("smtp:[127.0.0.1]:{}", env.ports["d2"]);
    show(&env, &["status"]);
    show(&env, &["destinations"]);
    show(&env, &["destinations", "--state", "dead"]);
    show(&env, &["why", &dead]);
    show(&env, &["why", &d2]);
    show(&env, &["why", &env.qid_of("x2").unwrap_or_default()]);
    show(&env, &["why", "u@dead.test"]);
    show(&env, &["shape", "--queue", "deferred"]);
    show(&env, &["shape", "--queue", "active", "--by", "destination"]);
    show(
        &env,
        &[
            "suspend",
            &d2,
            "--for",
            "10m",
            "--reason",
            "provider maintenance",
        ],
    );
    env.send("s1", SENDER, &["v@d2.test"]);
    env.wait(|| env.outcome().rows_of("s1").any(|r| r.queue == "deferred"));
    show(&env, &["destinations", "--state", "suspended"]);
    show(&env, &["why", &d2]);
    show(&env, &["status"]);
    println!("# postqueue -p\n{}", env.admin("postqueue", &["-p"]));
    show(&env, &["resume", &d2]);
    show(&env, &["flush", &dead]);
    std::thread::sleep(std::time::Duration::from_secs(1));
    let log = env.sb.maillog();
    println!("# maillog, the control lines");
    for line in log.lines().filter(|l| l.contains("control: ")) {
        println!("{line}");
    }
    show(&env, &["status", "--json"]);
    drop(env);
}
