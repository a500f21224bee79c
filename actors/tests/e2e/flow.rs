//! flow - scenarios 1 to 6: mail moving through the queue manager on its
//! own (fan-out, local and mixed transports, temporary and permanent
//! failures, expiry, delay warnings, dead destinations).
//!
//! Each `fn name(q) -> ScenarioOutcome` runs the scenario against queue manager `q`;
//! each `fn expect_name(o)` states what Postfix 3.7.11's oqmgr produces.

use super::env::{all_done, all_settled, Env, Setup, Spec};
use super::outcome::{RecipientRow, ScenarioOutcome};

/// The sender of every scenario message: a local user, so notices land in a
/// mailbox we can read (root's mail is delivered as `default_privs`).
pub const SENDER: &str = "root@local.test";

/// Builds an expected row.
pub fn row(
    message: &str,
    recipient: &str,
    result: &str,
    queue: &str,
    history: &[&str],
    relay: &str,
    status: &str,
) -> RecipientRow {
    RecipientRow {
        message: message.into(),
        recipient: recipient.into(),
        result: result.into(),
        queue: queue.into(),
        history: history.iter().map(|s| s.to_string()).collect(),
        relay: relay.into(),
        status: status.into(),
    }
}

/// The row of a message delivered once to smtp-sink port `port`.
pub fn sink_row(message: &str, recipient: &str, port: &str) -> RecipientRow {
    row(
        message,
        recipient,
        "sent",
        "removed",
        &["sent"],
        &format!("127.0.0.1[127.0.0.1]:{port}"),
        "dsn=2.0.0 status=sent (250 2.0.0 Ok)",
    )
}

/// The row of message `message` delivered by local(8) into root's
/// mailbox (`root@local.test`, the [`SENDER`] too).
pub fn local_row(message: &str) -> RecipientRow {
    row(
        message,
        SENDER,
        "sent",
        "removed",
        &["sent"],
        "local",
        "dsn=2.0.0 status=sent (delivered to mailbox)",
    )
}

/// The row of a notice delivered into root's mailbox.
pub fn notice_row(message: &str) -> RecipientRow {
    local_row(message)
}

/// What sink `sink` records for one transaction of message `tag` from
/// `from` to `rcpts`, each RCPT with the ORCPT the smtp client adds.
pub fn got(sink: &str, tag: &str, from: &str, rcpts: &[&str]) -> String {
    let rcpt: String = rcpts
        .iter()
        .map(|r| format!(" RCPT <{r}> ORCPT=rfc822;{r}"))
        .collect();
    format!("{sink} {tag}: MAIL <{from}>{rcpt}")
}

/// Compares an outcome with the expected one, showing both in full.
pub fn assert_outcome(got: &ScenarioOutcome, want: &ScenarioOutcome) {
    assert!(
        got == want,
        "outcomes differ\n--- got ---\n{}--- want ---\n{}",
        got.render(),
        want.render()
    );
}

/// Messages and recipients of scenario 1.
const FANOUT_MESSAGES: usize = 20;
/// The three recipients of every scenario-1 message, one per sink.
const FANOUT_RCPTS: [(&str, &str); 3] = [
    ("u1@d1.test", "d1"),
    ("u2@d2.test", "d2"),
    ("u3@d3.test", "d3"),
];

/// Scenario 1: Twenty messages, each to three recipients in three domains served by
/// three smtp-sinks: every recipient delivered exactly once.
pub fn fanout(q: &Setup) -> ScenarioOutcome {
    let mut env = Env::start(
        q,
        &Spec {
            ports: &["d1", "d2", "d3"],
            smtp_routes: &[("d1.test", "d1"), ("d2.test", "d2"), ("d3.test", "d3")],
            raw_routes: &[],
            settings: &[],
        },
    );
    for (_, p) in FANOUT_RCPTS {
        env.start_sink(p, &[]);
    }
    let rcpts: Vec<&str> = FANOUT_RCPTS.iter().map(|(r, _)| *r).collect();
    for i in 0..FANOUT_MESSAGES {
        env.send(&format!("m{i:02}"), SENDER, &rcpts);
    }
    let n = FANOUT_MESSAGES * rcpts.len();
    let mut o = env.wait_outcome(|o| all_done(o, n, "sent"));
    let dups = env.log().sent_counts().values().filter(|&&c| c > 1).count();
    o.fact(format!("recipients delivered more than once: {dups}"));
    for (_, p) in FANOUT_RCPTS {
        let c = env.stop_sink(p);
        o.fact(format!("sink {p} messages: {}", c.messages));
    }
    env.finish(o)
}

/// Expectation of [`fanout`].
pub fn expect_fanout(o: &ScenarioOutcome) {
    let mut want = ScenarioOutcome::default();
    for i in 0..FANOUT_MESSAGES {
        for (r, p) in FANOUT_RCPTS {
            want.rows.push(sink_row(&format!("m{i:02}"), r, p));
        }
    }
    want.rows.sort();
    want.fact("recipients delivered more than once: 0");
    let mut received = Vec::new();
    for (r, p) in FANOUT_RCPTS {
        want.fact(format!("sink {p} messages: {FANOUT_MESSAGES}"));
        for i in 0..FANOUT_MESSAGES {
            received.push(got(p, &format!("m{i:02}"), SENDER, &[r]));
        }
    }
    want.set_received(received);
    assert_outcome(o, &want);
}

/// Scenario 2: Local delivery into a mailbox, and one message whose recipients span
/// three transports (smtp, local, discard).
pub fn local_and_mixed(q: &Setup) -> ScenarioOutcome {
    let mut env = Env::start(
        q,
        &Spec {
            ports: &["d1"],
            smtp_routes: &[("d1.test", "d1")],
            raw_routes: &[("discard.test", "discard:dropped by e2e")],
            settings: &[],
        },
    );
    env.start_sink("d1", &[]);
    env.send("local1", SENDER, &["root@local.test"]);
    env.send(
        "mixed1",
        SENDER,
        &["u1@d1.test", "root@local.test", "x@discard.test"],
    );
    let mut o = env.wait_outcome(|o| all_done(o, 4, "sent"));
    let mbox = env.mailbox("root");
    for tag in ["local1", "mixed1"] {
        let found = mbox.contains(&format!("Subject: {tag}\n"));
        o.fact(format!("root mailbox has {tag}: {found}"));
    }
    o.fact(format!(
        "sink d1 messages: {}",
        env.stop_sink("d1").messages
    ));
    env.finish(o)
}

/// Expectation of [`local_and_mixed`].
pub fn expect_local_and_mixed(o: &ScenarioOutcome) {
    let mut want = ScenarioOutcome {
        rows: vec![
            local_row("local1"),
            local_row("mixed1"),
            sink_row("mixed1", "u1@d1.test", "d1"),
            row(
                "mixed1",
                "x@discard.test",
                "sent",
                "removed",
                &["sent"],
                "none",
                "dsn=2.0.0 status=sent (dropped by e2e)",
            ),
        ],
        facts: Vec::new(),
        received: Vec::new(),
    };
    want.rows.sort();
    want.fact("root mailbox has local1: true");
    want.fact("root mailbox has mixed1: true");
    want.fact("sink d1 messages: 1");
    want.set_received(vec![got("d1", "mixed1", SENDER, &["u1@d1.test"])]);
    assert_outcome(o, &want);
}

/// Scenario 3: A 4xx reply to RCPT: the message is deferred with the minimal
/// backoff (30 s here, so periodic deferred scans every second leave it
/// alone), and `postqueue -f` delivers it once the sink accepts mail.
pub fn temporary_failure(q: &Setup) -> ScenarioOutcome {
    let mut env = Env::start(
        q,
        &Spec {
            ports: &["d1"],
            smtp_routes: &[("d1.test", "d1")],
            raw_routes: &[],
            settings: &[
                ("minimal_backoff_time", "30s"),
                ("maximal_backoff_time", "60s"),
            ],
        },
    );
    env.start_sink("d1", &["-r", "RCPT"]);
    env.send("t1", SENDER, &["u1@d1.test"]);
    let mut o = ScenarioOutcome::default();
    let deferred = env.wait(|| {
        env.qid_of("t1")
            .and_then(|q| env.queue_of(&q))
            .is_some_and(|q| q == "deferred")
    });
    o.fact(format!("t1 reached deferred/: {deferred}"));
    if let Some(path) = env.qid_of("t1").and_then(|q| {
        env.sb
            .queue_files("deferred")
            .into_iter()
            .find(|(id, _)| *id == q)
            .map(|(_, p)| p)
    }) {
        let ahead = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .map(|t| {
                t.duration_since(std::time::SystemTime::now())
                    .map_or(0, |d| d.as_secs())
            })
            .unwrap_or(0);
        o.fact(format!(
            "backoff stamp 25..=30 s ahead: {}",
            (25..=30).contains(&ahead)
        ));
    }
    // Three periodic deferred scans pass; none may retry before the stamp.
    std::thread::sleep(std::time::Duration::from_millis(3000));
    let attempts = env.log().deliveries.len();
    o.fact(format!("attempts before flush: {attempts}"));
    o.fact(format!("first attempt: {}", env.first_status("t1")));
    env.stop_sink("d1");
    env.start_sink("d1", &[]);
    env.admin("postqueue", &["-f"]);
    let rows = env.wait_outcome(|o| all_done(o, 1, "sent"));
    o.rows = rows.rows;
    o.fact(format!(
        "sink d1 messages: {}",
        env.stop_sink("d1").messages
    ));
    env.finish(o)
}

/// Expectation of [`temporary_failure`].
pub fn expect_temporary_failure(o: &ScenarioOutcome) {
    let mut want = ScenarioOutcome::default();
    let mut r = sink_row("t1", "u1@d1.test", "d1");
    r.history = vec!["deferred".into(), "sent".into()];
    want.rows.push(r);
    want.fact("t1 reached deferred/: true");
    want.fact("backoff stamp 25..=30 s ahead: true");
    want.fact("attempts before flush: 1");
    want.fact("first attempt: relay=127.0.0.1[127.0.0.1]:d1 dsn=4.3.0 status=deferred (host 127.0.0.1[127.0.0.1] said: 450 4.3.0 Error: command failed (in reply to RCPT TO command))");
    want.fact("sink d1 messages: 1");
    // The refusing sink saw no DATA, so it dumped nothing.
    want.set_received(vec![got("d1", "t1", SENDER, &["u1@d1.test"])]);
    assert_outcome(o, &want);
}

/// Scenario 4: A 5xx reply to RCPT: the recipient bounces and the non-delivery
/// notice reaches the (local) sender's mailbox.
pub fn permanent_failure(q: &Setup) -> ScenarioOutcome {
    let mut env = Env::start(
        q,
        &Spec {
            ports: &["d1"],
            smtp_routes: &[("d1.test", "d1")],
            raw_routes: &[],
            settings: &[],
        },
    );
    env.start_sink("d1", &["-f", "RCPT"]);
    env.send("p1", SENDER, &["u1@d1.test"]);
    let mut o =
        env.wait_outcome(|o| o.rows.len() == 2 && o.rows.iter().all(|r| r.queue == "removed"));
    let mbox = env.mailbox("root");
    o.fact(format!(
        "root mailbox has a returned p1: {}",
        mbox.contains("Undelivered Mail Returned to Sender") && mbox.contains("Subject: p1")
    ));
    env.finish(o)
}

/// Expectation of [`permanent_failure`].
pub fn expect_permanent_failure(o: &ScenarioOutcome) {
    let mut want = ScenarioOutcome {
        rows: vec![
            row(
                "p1",
                "u1@d1.test",
                "bounced",
                "removed",
                &["bounced"],
                "127.0.0.1[127.0.0.1]:d1",
                "dsn=5.3.0 status=bounced (host 127.0.0.1[127.0.0.1] said: 500 5.3.0 Error: command failed (in reply to RCPT TO command))",
            ),
            notice_row("bounce-of:p1"),
        ],
        facts: Vec::new(),
        received: Vec::new(),
    };
    want.rows.sort();
    want.fact("root mailbox has a returned p1: true");
    assert_outcome(o, &want);
}

/// The deferral text for a closed port named `port`.
pub fn refused(port: &str) -> String {
    format!(
        "dsn=4.4.1 status=deferred (connect to 127.0.0.1[127.0.0.1]:{port}: Connection refused)"
    )
}

/// The row of a message deferred once to the closed port `port` and still
/// in `deferred/`.
pub fn refused_row(message: &str, recipient: &str, port: &str) -> RecipientRow {
    row(
        message,
        recipient,
        "deferred",
        "deferred",
        &["deferred"],
        "none",
        &refused(port),
    )
}

/// Scenario 5a: `maximal_queue_lifetime = 0`: after the first failed attempt the
/// message is returned to the sender as expired.
pub fn expiry(q: &Setup) -> ScenarioOutcome {
    let env = Env::start(
        q,
        &Spec {
            ports: &["dead"],
            smtp_routes: &[("dead.test", "dead")],
            raw_routes: &[],
            settings: &[("maximal_queue_lifetime", "0")],
        },
    );
    env.send("e1", SENDER, &["u1@dead.test"]);
    let mut o =
        env.wait_outcome(|o| o.rows.len() == 2 && o.rows.iter().all(|r| r.queue == "removed"));
    let mbox = env.mailbox("root");
    o.fact(format!(
        "root mailbox has a returned e1: {}",
        mbox.contains("Undelivered Mail Returned to Sender") && mbox.contains("Subject: e1")
    ));
    env.finish(o)
}

/// Expectation of [`expiry`].
pub fn expect_expiry(o: &ScenarioOutcome) {
    let mut want = ScenarioOutcome {
        rows: vec![
            row(
                "e1",
                "u1@dead.test",
                "expired",
                "removed",
                &["deferred"],
                "none",
                &refused("dead"),
            ),
            notice_row("bounce-of:e1"),
        ],
        facts: Vec::new(),
        received: Vec::new(),
    };
    want.rows.sort();
    want.fact("root mailbox has a returned e1: true");
    assert_outcome(o, &want);
}

/// Scenario 5b: `delay_warning_time = 1s`: the first deferral already sends one
/// delay warning; the message is delivered once the destination answers.
pub fn delay_warning(q: &Setup) -> ScenarioOutcome {
    let mut env = Env::start(
        q,
        &Spec {
            ports: &["d1"],
            smtp_routes: &[("d1.test", "d1")],
            raw_routes: &[],
            settings: &[("delay_warning_time", "1s")],
        },
    );
    env.send("w1", SENDER, &["u1@d1.test"]);
    let warned = env.wait_outcome(|o| o.rows_of("delay-of:w1").any(|r| r.queue == "removed"));
    env.start_sink("d1", &[]);
    let mut o = env.wait_outcome(|o| o.rows.len() == 2 && all_done(o, 2, "sent"));
    o.fact(format!(
        "warning before delivery: {}",
        warned.rows_of("delay-of:w1").count() == 1
    ));
    o.fact(format!("first attempt: {}", env.first_status("w1")));
    let notices = env.log().grep("sender delay notification").len();
    o.fact(format!("delay notices: {notices}"));
    let mbox = env.mailbox("root");
    o.fact(format!(
        "root mailbox has a delay warning: {}",
        mbox.contains("Delayed Mail (still being retried)")
    ));
    o.fact(format!(
        "sink d1 messages: {}",
        env.stop_sink("d1").messages
    ));
    env.finish(o)
}

/// Expectation of [`delay_warning`].
pub fn expect_delay_warning(o: &ScenarioOutcome) {
    let mut w = sink_row("w1", "u1@d1.test", "d1");
    w.history = vec!["deferred".into(), "sent".into()];
    let mut want = ScenarioOutcome {
        rows: vec![w, notice_row("delay-of:w1")],
        facts: Vec::new(),
        received: Vec::new(),
    };
    want.rows.sort();
    want.fact("warning before delivery: true");
    want.fact("delay notices: 1");
    want.fact(format!("first attempt: relay=none {}", refused("d1")));
    want.fact("root mailbox has a delay warning: true");
    want.fact("sink d1 messages: 1");
    want.set_received(vec![got("d1", "w1", SENDER, &["u1@d1.test"])]);
    assert_outcome(o, &want);
}

/// Scenario 5c: `confirm_delay_cleared = yes`: after the delay warning, the
/// recovered delivery also tells the sender the delay has cleared (the
/// queue manager's trace flush with `REC_DLY_SENT`, answered by the bounce
/// daemon with a "Successful Mail Delivery Report", logged as a delivery
/// status notification).
pub fn delay_cleared(q: &Setup) -> ScenarioOutcome {
    let mut env = Env::start(
        q,
        &Spec {
            ports: &["d1"],
            smtp_routes: &[("d1.test", "d1")],
            raw_routes: &[],
            settings: &[
                ("delay_warning_time", "1s"),
                ("confirm_delay_cleared", "yes"),
            ],
        },
    );
    env.send("c1", SENDER, &["u1@d1.test"]);
    env.wait_outcome(|o| o.rows_of("delay-of:c1").any(|r| r.queue == "removed"));
    env.start_sink("d1", &[]);
    let mut o = env.wait_outcome(|o| {
        o.rows_of("c1").any(|r| r.result == "sent")
            && o.rows_of("dsn-of:c1").count() == 1
            && all_done(o, 3, "sent")
    });
    let mbox = env.mailbox("root");
    o.fact(format!(
        "root mailbox has a delay warning: {}",
        mbox.contains("Delayed Mail (still being retried)")
    ));
    o.fact(format!(
        "root mailbox has a delay-cleared notice: {}",
        mbox.contains("Subject: Successful Mail Delivery Report")
    ));
    o.fact(format!(
        "sink d1 messages: {}",
        env.stop_sink("d1").messages
    ));
    env.finish(o)
}

/// Expectation of [`delay_cleared`].
pub fn expect_delay_cleared(o: &ScenarioOutcome) {
    let mut c = sink_row("c1", "u1@d1.test", "d1");
    c.history = vec!["deferred".into(), "sent".into()];
    let mut want = ScenarioOutcome {
        rows: vec![c, notice_row("delay-of:c1"), notice_row("dsn-of:c1")],
        facts: Vec::new(),
        received: Vec::new(),
    };
    want.rows.sort();
    want.fact("root mailbox has a delay warning: true");
    want.fact("root mailbox has a delay-cleared notice: true");
    want.fact("sink d1 messages: 1");
    want.set_received(vec![got("d1", "c1", SENDER, &["u1@d1.test"])]);
    assert_outcome(o, &want);
}

/// Messages per destination in scenario 6 after the first one.
const DEAD_MESSAGES: usize = 4;

/// Scenario 6: A dead destination next to a live one. With
/// `smtp_initial_destination_concurrency = 1` one failed delivery fills a
/// whole cohort, so the first message's connection failure declares the
/// destination dead (deterministically); later mail for it is deferred by
/// the `retry` transport with "delivery temporarily suspended", while mail
/// for the live destination is delivered.
pub fn dead_destination(q: &Setup) -> ScenarioOutcome {
    let mut env = Env::start(
        q,
        &Spec {
            ports: &["live", "dead"],
            smtp_routes: &[("live.test", "live"), ("dead.test", "dead")],
            raw_routes: &[],
            settings: &[
                ("smtp_initial_destination_concurrency", "1"),
                ("minimal_backoff_time", "60s"),
                ("maximal_backoff_time", "120s"),
            ],
        },
    );
    env.start_sink("live", &[]);
    env.send("x0", SENDER, &["u@dead.test"]);
    env.wait_outcome(|o| o.rows_of("x0").any(|r| r.queue == "deferred"));
    for i in 1..=DEAD_MESSAGES {
        env.send(&format!("x{i}"), SENDER, &["u@dead.test"]);
        env.send(&format!("l{i}"), SENDER, &["u@live.test"]);
    }
    let mut o = env
        .wait_outcome(|o| all_settled(o, 1 + 2 * DEAD_MESSAGES, |r| r.recipient == "u@dead.test"));
    o.fact(format!(
        "sink live messages: {}",
        env.stop_sink("live").messages
    ));
    env.finish(o)
}

/// Expectation of [`dead_destination`].
pub fn expect_dead_destination(o: &ScenarioOutcome) {
    let mut want = ScenarioOutcome::default();
    want.rows.push(refused_row("x0", "u@dead.test", "dead"));
    for i in 1..=DEAD_MESSAGES {
        want.rows.push(row(
            &format!("x{i}"),
            "u@dead.test",
            "deferred",
            "deferred",
            &["deferred"],
            "none",
            "dsn=4.4.1 status=deferred (delivery temporarily suspended: connect to 127.0.0.1[127.0.0.1]:dead: Connection refused)",
        ));
        want.rows
            .push(sink_row(&format!("l{i}"), "u@live.test", "live"));
    }
    want.rows.sort();
    want.fact(format!("sink live messages: {DEAD_MESSAGES}"));
    want.set_received(
        (1..=DEAD_MESSAGES)
            .map(|i| got("live", &format!("l{i}"), SENDER, &["u@live.test"]))
            .collect(),
    );
    assert_outcome(o, &want);
}
