//! differences - the differences from oqmgr found side by side (issue 12):
//! `postsuper -e` on mail with a real deferral reason, the clog warning's
//! "N of M", the unknown-transport warning's text, and what `-v` logs.

use std::fs;

use super::env::{Env, Setup, Spec, LONG_BACKOFF};
use super::flow::{assert_outcome, got, notice_row, refused, row, sink_row, SENDER};
use super::ops::one_sink;
use super::outcome::ScenarioOutcome;

/// Where message `tag`'s latest file is (`none` when gone).
fn where_is(env: &Env, tag: &str) -> String {
    env.qid_of(tag)
        .and_then(|q| env.queue_of(&q))
        .unwrap_or_else(|| "none".into())
}

/// Log lines (message part) containing `needle`, in order.
fn lines_with(env: &Env, needle: &str) -> Vec<String> {
    env.log()
        .grep(needle)
        .into_iter()
        .map(String::from)
        .collect()
}

/// `postsuper -e` on a message deferred by a refused connection: returned
/// to the sender with that reason (the defer log's), without a new
/// delivery attempt or an "administratively expired" deferral.
pub fn force_expire(q: &Setup) -> ScenarioOutcome {
    let env = Env::start(
        q,
        &Spec {
            ports: &["dead"],
            smtp_routes: &[("dead.test", "dead")],
            raw_routes: &[],
            // Long backoff: only the admin tools move the message.
            settings: &LONG_BACKOFF,
        },
    );
    env.send("x1", SENDER, &["u1@dead.test"]);
    let mut o = ScenarioOutcome::default();
    let deferred = env.wait(|| where_is(&env, "x1") == "deferred");
    o.fact(format!("deferred first: {deferred}"));
    let qid = env.qid_of("x1").expect("x1 was logged");
    env.admin("postsuper", &["-e", &qid]);
    env.admin("postqueue", &["-i", &qid]);
    let rows = env.wait_outcome(|o| {
        o.rows.len() == 2
            && o.rows
                .iter()
                .all(|r| r.queue == "removed" && r.result != "pending")
    });
    o.rows = rows.rows;
    let mbox = env.mailbox("root");
    o.fact(format!(
        "returned with the refused connection as reason: {}",
        mbox.contains("Subject: x1") && mbox.contains("Connection refused")
    ));
    o.fact(format!(
        "'administratively expired' in log or notice: {}",
        !lines_with(&env, "administratively expired").is_empty()
            || mbox.contains("administratively expired")
    ));
    o.fact(format!(
        "force-expired lines: {}",
        lines_with(&env, "status=force-expired, returned to sender").len()
    ));
    env.finish(o)
}

/// Expectation of [`force_expire`].
pub fn expect_force_expire(o: &ScenarioOutcome) {
    let mut want = ScenarioOutcome {
        rows: vec![
            row(
                "x1",
                "u1@dead.test",
                "expired",
                "removed",
                &["deferred"],
                "none",
                &refused("dead"),
            ),
            notice_row("bounce-of:x1"),
        ],
        ..ScenarioOutcome::default()
    };
    want.rows.sort();
    for f in [
        "deferred first: true",
        "returned with the refused connection as reason: true",
        "'administratively expired' in log or notice: false",
        "force-expired lines: 1",
    ] {
        want.fact(f);
    }
    assert_outcome(o, &want);
}

/// Messages of the clog scenario.
const CLOG_MESSAGES: usize = 8;

/// Eight messages for one slow destination (`qmgr_message_active_limit =
/// 10`, so more than 2 entries clog it): one warning block, whose "N of M"
/// counts the messages active then (all of them for this destination, so
/// no "this may slow down other mail deliveries").
pub fn clog_warning(q: &Setup) -> ScenarioOutcome {
    clog(q, false)
}

/// The same eight messages after one for another destination of the same
/// transport, still being delivered when the block is written: the share
/// is below 0.9 ("this may slow down ...") and the advice is a transport
/// of its own for the clogging destination.
pub fn clog_peers(q: &Setup) -> ScenarioOutcome {
    clog(q, true)
}

/// The clog scenarios, with or without a peer destination.
fn clog(q: &Setup, peer: bool) -> ScenarioOutcome {
    let mut env = Env::start(
        q,
        &Spec {
            ports: &["slow", "peer"],
            smtp_routes: &[("slow.test", "slow"), ("peer.test", "peer")],
            raw_routes: &[],
            settings: &[("qmgr_message_active_limit", "10")],
        },
    );
    // Three seconds per DATA: nothing finishes while the mail comes in.
    env.start_sink("slow", &["-w", "3"]);
    env.start_sink("peer", &["-w", "8"]);
    let mut expected = CLOG_MESSAGES;
    if peer {
        env.send("p0", SENDER, &["u@peer.test"]);
        expected += 1;
    }
    for i in 0..CLOG_MESSAGES {
        env.send(&format!("c{i}"), SENDER, &["u@slow.test"]);
    }
    let mut o = env.wait_outcome(|o| {
        o.rows.len() == expected
            && o.rows
                .iter()
                .all(|r| r.result == "sent" && r.queue == "removed")
    });
    let log = env.log();
    let heads = log.grep("active queue entries");
    o.fact(format!("clog warnings: {}", heads.len()));
    for head in heads {
        // "mail for [127.0.0.1]:PORT is using up N of M active queue entries"
        let words: Vec<&str> = head.split_whitespace().collect();
        let n_of_m = words
            .iter()
            .position(|w| *w == "of")
            .map(|i| (words[i - 1], words[i + 1]));
        o.fact(format!(
            "N equals M (all active mail is for this site): {}",
            n_of_m.is_some_and(|(n, m)| n == m)
        ));
    }
    let advice: Vec<String> = log
        .lines
        .iter()
        .filter(|(_, m)| m.starts_with("warning: ") && is_clog_advice(m))
        .map(|(_, m)| env.norm.apply(m, &log))
        .collect();
    o.fact(format!("clog advice: {}", advice.join(" / ")));
    env.finish(o)
}

/// A line of the clog warning block after its first.
fn is_clog_advice(line: &str) -> bool {
    [
        "this may slow down",
        "you may need",
        "so that Postfix",
        "please avoid flushing",
        "lots of deferred mail",
        "to turn off these warnings",
    ]
    .iter()
    .any(|p| line.contains(p))
}

/// Expectation of [`clog_warning`].
pub fn expect_clog_warning(o: &ScenarioOutcome) {
    expect_clog(
        o,
        false,
        "warning: you may need to reduce smtp connect and helo timeouts / \
         warning: so that Postfix quickly skips unavailable hosts / \
         warning: you may need to increase the main.cf minimal_backoff_time and maximal_backoff_time / \
         warning: so that Postfix wastes less time on undeliverable mail / \
         warning: you may need to increase the master.cf smtp process limit / ",
    );
}

/// Expectation of [`clog_peers`].
pub fn expect_clog_peers(o: &ScenarioOutcome) {
    expect_clog(
        o,
        true,
        "warning: this may slow down other mail deliveries / \
         warning: you may need a separate master.cf transport for [127.0.0.1]:slow / ",
    );
}

/// The expectation of both clog scenarios: every message sent, one
/// warning block with `advice` in the middle.
fn expect_clog(o: &ScenarioOutcome, peer: bool, advice: &str) {
    let mut want = ScenarioOutcome {
        rows: (0..CLOG_MESSAGES)
            .map(|i| sink_row(&format!("c{i}"), "u@slow.test", "slow"))
            .collect(),
        ..ScenarioOutcome::default()
    };
    let mut received: Vec<_> = (0..CLOG_MESSAGES)
        .map(|i| got("slow", &format!("c{i}"), SENDER, &["u@slow.test"]))
        .collect();
    if peer {
        want.rows.push(sink_row("p0", "u@peer.test", "peer"));
        received.push(got("peer", "p0", SENDER, &["u@peer.test"]));
    }
    want.rows.sort();
    want.set_received(received);
    want.fact("clog warnings: 1");
    want.fact(format!(
        "N equals M (all active mail is for this site): {}",
        !peer
    ));
    want.fact(format!(
        "clog advice: {advice}\
         warning: please avoid flushing the whole queue when you have / \
         warning: lots of deferred mail, that is bad for performance / \
         warning: to turn off these warnings specify: qmgr_clog_warn_time = 0"
    ));
    assert_outcome(o, &want);
}

/// Mail for a transport master.cf does not define: the queue manager
/// warns in Postfix's words and the mail waits.
pub fn unknown_transport(q: &Setup) -> ScenarioOutcome {
    let env = Env::start(
        q,
        &Spec {
            ports: &[],
            smtp_routes: &[],
            raw_routes: &[("nowhere.test", "nosuch:")],
            settings: &[],
        },
    );
    env.send("n1", SENDER, &["u@nowhere.test"]);
    let mut o = env.wait_outcome(|o| o.rows.iter().any(|r| r.result == "deferred"));
    o.rows.retain(|r| r.message == "n1");
    for r in &mut o.rows {
        // Deferred, then retried by the 1 s scans: where it is at this
        // moment is not the point.
        r.queue = "queued".into();
        r.history.dedup();
    }
    let warned = lines_with(&env, "connect to transport private/nosuch");
    o.fact(format!("warnings: {:?}", warned.first()));
    o.fact(format!(
        "Rust error text in the log: {}",
        !lines_with(&env, "os error").is_empty()
    ));
    env.finish(o)
}

/// Expectation of [`unknown_transport`].
pub fn expect_unknown_transport(o: &ScenarioOutcome) {
    let mut want = ScenarioOutcome {
        rows: vec![row(
            "n1",
            "u@nowhere.test",
            "deferred",
            "queued",
            &["deferred"],
            "none",
            "dsn=4.3.0 status=deferred (mail transport unavailable)",
        )],
        ..ScenarioOutcome::default()
    };
    want.fact(
        "warnings: Some(\"warning: connect to transport private/nosuch: No such file or directory\")",
    );
    want.fact("Rust error text in the log: false");
    assert_outcome(o, &want);
}

/// The queue manager run with `-v` (master.cf edited, then `postfix
/// reload`): trigger requests logged as oqmgr logs them, and no line with
/// seconds since the epoch or doubled escapes.
pub fn verbose_log(q: &Setup) -> ScenarioOutcome {
    let env = one_sink(q, &[]);
    let master_cf = env.sb.config_dir().join("master.cf");
    let text = fs::read_to_string(&master_cf).expect("master.cf");
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("qmgr ") {
                format!("{l} -v\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    fs::write(&master_cf, text).expect("master.cf written");
    let before = env.sb.qmgr_pid();
    env.admin("postfix", &["reload"]);
    let mut o = ScenarioOutcome::default();
    let restarted = env.wait(|| env.sb.qmgr_pid().is_some_and(|p| Some(p) != before));
    o.fact(format!("restarted with -v: {restarted}"));
    env.send("v1", SENDER, &["u@d1.test"]);
    let rows = env.wait_outcome(|o| {
        o.rows.len() == 1
            && o.rows
                .iter()
                .all(|r| r.result == "sent" && r.queue == "removed")
    });
    o.rows = rows.rows;
    let log = env.log();
    let requests = log.lines.iter().filter(|(_, m)| is_request_line(m)).count();
    o.fact(format!("request lines logged: {}", requests > 0));
    let epoch = log
        .lines
        .iter()
        .filter(|(_, m)| has_epoch_seconds(m))
        .count();
    o.fact(format!("lines with seconds since the epoch: {epoch}"));
    let escaped = log
        .lines
        .iter()
        .filter(|(_, m)| m.contains("\\\\x"))
        .count();
    o.fact(format!("lines with doubled escapes: {escaped}"));
    env.finish(o)
}

/// `request: 87 (W)`, as oqmgr's verbose trigger lines read.
fn is_request_line(m: &str) -> bool {
    m.strip_prefix("request: ").is_some_and(|rest| {
        let (code, shown) = rest.split_once(' ').unwrap_or(("", ""));
        !code.is_empty()
            && code.bytes().all(|b| b.is_ascii_digit())
            && shown.len() == 3
            && shown.starts_with('(')
            && shown.ends_with(')')
    })
}

/// A ten-digit number of seconds with milliseconds (`1764960000.123`).
fn has_epoch_seconds(m: &str) -> bool {
    m.as_bytes().windows(14).any(|w| {
        w[..10].iter().all(u8::is_ascii_digit)
            && w[10] == b'.'
            && w[11..].iter().all(u8::is_ascii_digit)
    })
}

/// Expectation of [`verbose_log`].
pub fn expect_verbose_log(o: &ScenarioOutcome) {
    let mut want = ScenarioOutcome {
        rows: vec![sink_row("v1", "u@d1.test", "d1")],
        ..ScenarioOutcome::default()
    };
    want.set_received(vec![got("d1", "v1", SENDER, &["u@d1.test"])]);
    for f in [
        "restarted with -v: true",
        "request lines logged: true",
        "lines with seconds since the epoch: 0",
        "lines with doubled escapes: 0",
    ] {
        want.fact(f);
    }
    assert_outcome(o, &want);
}
