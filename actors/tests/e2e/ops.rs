//! ops - scenario 10: the queue manager restarted under load (`postfix
//! reload`, `kill -9`), and the two sendmail report modes (`-bv` address
//! verification, `-v` verbose delivery report).

use super::env::{all_done, Env, Setup};
use super::flow::{assert_outcome, got, notice_row, row, sink_row, SENDER};
use super::outcome::ScenarioOutcome;

/// Messages sent before and again after the disruption.
const HALF: usize = 10;

/// A world with one live sink `d1` serving `d1.test`, started with
/// `sink_args`.
pub fn one_sink(q: &Setup, sink_args: &[&str]) -> Env {
    Env::one_sink(q, &[], sink_args)
}

/// After a queue manager restart in mid-flow: waits until all `n`
/// recipients are logged `sent` and no file is in `active/`; every file
/// still queued is then in `incoming/` (the new queue manager
/// found it locked by a delivery agent the old one had started, "skipped,
/// still being delivered", and moved it back; the agent's `D` mark then
/// resets the 60 s park stamp, so the file waits for the next incoming scan
/// trigger, which may or may not come from later mail), then runs
/// `postqueue -f` and waits until every file is gone.
fn settle_after_restart(env: &Env, o: &mut ScenarioOutcome, n: usize) {
    let all_sent =
        |o: &ScenarioOutcome| o.rows.len() == n && o.rows.iter().all(|r| r.result == "sent");
    env.wait_outcome(all_sent);
    // Files delivered by the running queue manager leave active/ a moment
    // after their `sent` line; wait for that.
    // Not a fact of the outcome: under heavy load a file can stay in
    // active/ longer than the wait, which says nothing about correctness.
    env.wait(|| env.present().values().all(|q| q == "incoming"));
    env.admin("postqueue", &["-f"]);
    let rows = env.wait_outcome(|o| all_done(o, n, "sent"));
    o.rows = rows.rows;
}

/// Waits until some mail sits in `active/` (a delivery is in flight) and
/// says whether that happened.
fn wait_in_flight(env: &Env) -> bool {
    env.wait(|| !env.sb.queue_files("active").is_empty())
}

/// Sends messages `{prefix}{from..to}` to `u1@d1.test`.
fn send_range(env: &Env, prefix: &str, range: std::ops::Range<usize>) {
    for i in range {
        env.send(&format!("{prefix}{i:02}"), SENDER, &["u1@d1.test"]);
    }
}

/// What sink d1 records for messages `{prefix}00..` sent by [`send_range`].
fn sent_range(prefix: &str) -> Vec<String> {
    (0..2 * HALF)
        .map(|i| got("d1", &format!("{prefix}{i:02}"), SENDER, &["u1@d1.test"]))
        .collect()
}

/// Scenario 10a: `postfix reload` while mail flows: master replaces the queue
/// manager; every message is still delivered exactly once.
pub fn reload(q: &Setup) -> ScenarioOutcome {
    // A one-second DATA reply keeps deliveries in flight at the reload.
    let mut env = one_sink(q, &["-w", "1"]);
    let mut o = ScenarioOutcome::default();
    let first = env.wait(|| env.sb.qmgr_pid().is_some());
    let before = env.sb.qmgr_pid();
    o.fact(format!("qmgr running before reload: {first}"));
    send_range(&env, "r", 0..HALF);
    o.fact(format!(
        "reloaded with mail in active/: {}",
        wait_in_flight(&env)
    ));
    env.admin("postfix", &["reload"]);
    send_range(&env, "r", HALF..2 * HALF);
    settle_after_restart(&env, &mut o, 2 * HALF);
    let replaced = env.wait(|| env.sb.qmgr_pid().is_some_and(|p| Some(p) != before));
    o.fact(format!("qmgr replaced by reload: {replaced}"));
    o.fact(format!(
        "master logged the reload: {}",
        !env.log().grep("reload -- version").is_empty()
    ));
    let dups = env.log().sent_counts().values().filter(|&&c| c > 1).count();
    o.fact(format!("recipients delivered more than once: {dups}"));
    o.fact(format!(
        "sink d1 messages: {}",
        env.stop_sink("d1").messages
    ));
    env.finish(o)
}

/// Expectation of [`reload`].
pub fn expect_reload(o: &ScenarioOutcome) {
    let mut want = ScenarioOutcome::default();
    for i in 0..2 * HALF {
        want.rows
            .push(sink_row(&format!("r{i:02}"), "u1@d1.test", "d1"));
    }
    want.fact("qmgr running before reload: true");
    want.fact("reloaded with mail in active/: true");
    want.fact("qmgr replaced by reload: true");
    want.fact("master logged the reload: true");
    want.fact("recipients delivered more than once: 0");
    want.fact(format!("sink d1 messages: {}", 2 * HALF));
    want.set_received(sent_range("r"));
    assert_outcome(o, &want);
}

/// Scenario 10b: `kill -9` of the queue manager while mail flows: master starts a
/// new one, which puts `active/` back into `incoming/`; every message is
/// delivered at least once (a delivery in flight may be repeated, so the
/// count is not part of the outcome).
pub fn kill_qmgr(q: &Setup) -> ScenarioOutcome {
    // A one-second DATA reply keeps deliveries in flight at the kill.
    let mut env = one_sink(q, &["-w", "1"]);
    let mut o = ScenarioOutcome::default();
    let first = env.wait(|| env.sb.qmgr_pid().is_some());
    o.fact(format!("qmgr running before kill: {first}"));
    send_range(&env, "k", 0..HALF);
    o.fact(format!(
        "killed with mail in active/: {}",
        wait_in_flight(&env)
    ));
    let victim = env.sb.qmgr_pid();
    if let Some(pid) = victim {
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is a
        // child of this sandbox's master, found through /proc.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    send_range(&env, "k", HALF..2 * HALF);
    settle_after_restart(&env, &mut o, 2 * HALF);
    let restarted = env.wait(|| env.sb.qmgr_pid().is_some_and(|p| Some(p) != victim));
    o.fact(format!("a new qmgr runs: {restarted}"));
    let c = env.stop_sink("d1");
    o.fact(format!(
        "sink d1 got every message: {}",
        c.messages >= 2 * HALF as u64
    ));
    // A delivery in flight at the kill may be repeated: which messages
    // arrived counts, not how often.
    let mut o = env.finish(o);
    let once = o
        .received
        .iter()
        .map(|r| r.split(" (").next().unwrap_or(r).to_string())
        .collect();
    o.set_received(once);
    o
}

/// Expectation of [`kill_qmgr`].
pub fn expect_kill_qmgr(o: &ScenarioOutcome) {
    let mut want = ScenarioOutcome::default();
    for i in 0..2 * HALF {
        want.rows
            .push(sink_row(&format!("k{i:02}"), "u1@d1.test", "d1"));
    }
    want.fact("qmgr running before kill: true");
    want.fact("killed with mail in active/: true");
    want.fact("a new qmgr runs: true");
    want.fact("sink d1 got every message: true");
    want.set_received(sent_range("k"));
    assert_outcome(o, &want);
}

/// Scenario 10c: `sendmail -bv`: nothing is delivered; each recipient is probed
/// (`status=deliverable`) and a verification report goes to the sender.
pub fn verify_probe(q: &Setup) -> ScenarioOutcome {
    let mut env = one_sink(q, &[]);
    let out = env
        .sb
        .sendmail(&["-bv", "-f", SENDER, "u1@d1.test", "root@local.test"], b"")
        .expect("sendmail runs");
    assert!(out.status.success(), "sendmail -bv: {out:?}");
    let mut o =
        env.wait_outcome(|o| o.rows.len() == 3 && o.rows.iter().all(|r| r.queue == "removed"));
    let mbox = env.mailbox("root");
    o.fact(format!(
        "root mailbox has the report: {}",
        mbox.contains("Mail Delivery Status Report")
    ));
    o.fact(format!(
        "root mailbox has only the report: {}",
        mbox.matches("\nFrom ").count() == 0 && mbox.starts_with("From MAILER-DAEMON")
    ));
    o.fact(format!(
        "sink d1 messages: {}",
        env.stop_sink("d1").messages
    ));
    env.finish(o)
}

/// Expectation of [`verify_probe`].
pub fn expect_verify_probe(o: &ScenarioOutcome) {
    let mut want = ScenarioOutcome {
        rows: vec![
            row(
                "untagged",
                "u1@d1.test",
                "deliverable",
                "removed",
                &["deliverable"],
                "127.0.0.1[127.0.0.1]:d1",
                "dsn=2.1.5 status=deliverable (250 2.1.5 Ok)",
            ),
            row(
                "untagged",
                "root@local.test",
                "deliverable",
                "removed",
                &["deliverable"],
                "local",
                "dsn=2.0.0 status=deliverable (delivers to mailbox)",
            ),
            notice_row("dsn-of:untagged"),
        ],
        facts: Vec::new(),
        received: Vec::new(),
    };
    want.rows.sort();
    want.fact("root mailbox has the report: true");
    want.fact("root mailbox has only the report: true");
    want.fact("sink d1 messages: 0");
    assert_outcome(o, &want);
}

/// Scenario 10d: `sendmail -v`: the message is delivered and a delivery report goes
/// to the sender.
pub fn verbose_report(q: &Setup) -> ScenarioOutcome {
    let mut env = one_sink(q, &[]);
    env.send_with(&["-v"], "v1", SENDER, &["u1@d1.test"]);
    let mut o = env.wait_outcome(|o| all_done(o, 2, "sent"));
    o.fact(format!(
        "root mailbox has the report: {}",
        env.mailbox("root").contains("Mail Delivery Status Report")
    ));
    o.fact(format!(
        "sink d1 messages: {}",
        env.stop_sink("d1").messages
    ));
    env.finish(o)
}

/// Expectation of [`verbose_report`].
pub fn expect_verbose_report(o: &ScenarioOutcome) {
    let mut want = ScenarioOutcome {
        rows: vec![sink_row("v1", "u1@d1.test", "d1"), notice_row("dsn-of:v1")],
        facts: Vec::new(),
        received: Vec::new(),
    };
    want.rows.sort();
    want.fact("root mailbox has the report: true");
    want.fact("sink d1 messages: 1");
    want.set_received(vec![got("d1", "v1", SENDER, &["u1@d1.test"])]);
    assert_outcome(o, &want);
}
