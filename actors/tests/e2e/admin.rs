//! admin - scenarios 7 to 9: the administrator's tools acting on a live
//! queue (postsuper, postqueue, defer_transports), double-bounce discard,
//! and a corrupt queue file.

use super::env::{all_done, Env, Setup, Spec};
use super::flow::{assert_outcome, got, refused, row, sink_row, SENDER};
use super::outcome::ScenarioOutcome;

/// Tag, recipient and port of each scenario-7 message.
const ADMIN_MESSAGES: [(&str, &str, &str); 5] = [
    ("held", "u@h.test", "h"),
    ("requeued", "u@r.test", "r"),
    ("deleted", "u@d.test", "d"),
    ("by-id", "u@i.test", "i"),
    ("by-site", "u@s.test", "s"),
];

/// True when message `tag`'s latest file is in queue `queue`.
fn in_queue(env: &Env, tag: &str, queue: &str) -> bool {
    env.qid_of(tag)
        .and_then(|q| env.queue_of(&q))
        .is_some_and(|q| q == queue)
}

/// The latest queue ID of message `tag` (it must have been logged).
fn qid(env: &Env, tag: &str) -> String {
    env.wait(|| env.qid_of(tag).is_some());
    env.qid_of(tag).unwrap_or_else(|| {
        panic!(
            "message {tag} never logged; queues {:?}; maillog:\n{}",
            env.present(),
            env.sb.maillog()
        )
    })
}

/// Where message `tag`'s latest file is (`none` when gone).
fn where_is(env: &Env, tag: &str) -> String {
    env.qid_of(tag)
        .and_then(|q| env.queue_of(&q))
        .unwrap_or_else(|| "none".into())
}

/// Scenario 7: Five messages deferred to five closed ports (long backoff, so only
/// the tools move them), then: `postsuper -h` (to hold/), `postsuper -d`
/// (deleted), sinks started, `postqueue -i` (that one message delivered),
/// `postqueue -s s.test` (the fast-flush site delivered), `postsuper -r`
/// (to maildrop/; once pickup is kicked, requeued under a new queue ID
/// and delivered), `postsuper -H` (back to
/// deferred/; delivered only by the following `postqueue -f`).
pub fn admin_tools(q: &Setup) -> ScenarioOutcome {
    let routes: Vec<(&str, &str)> = ADMIN_MESSAGES
        .iter()
        .map(|(_, r, p)| (r.trim_start_matches("u@"), *p))
        .collect();
    let ports: Vec<&str> = ADMIN_MESSAGES.iter().map(|(_, _, p)| *p).collect();
    let mut env = Env::start(
        q,
        &Spec {
            ports: &ports,
            smtp_routes: &routes,
            raw_routes: &[],
            settings: &[
                ("minimal_backoff_time", "60s"),
                ("maximal_backoff_time", "120s"),
                ("fast_flush_domains", "s.test"),
            ],
        },
    );
    for (tag, rcpt, _) in ADMIN_MESSAGES {
        env.send(tag, SENDER, &[rcpt]);
    }
    let mut o = ScenarioOutcome::default();
    let all_deferred = env.wait(|| {
        ADMIN_MESSAGES
            .iter()
            .all(|(t, _, _)| in_queue(&env, t, "deferred"))
    });
    o.fact(format!("all five deferred first: {all_deferred}"));

    env.admin("postsuper", &["-h", &qid(&env, "held")]);
    o.fact(format!("after -h held is in: {}", where_is(&env, "held")));
    env.admin("postsuper", &["-d", &qid(&env, "deleted")]);
    o.fact(format!(
        "after -d deleted is in: {}",
        where_is(&env, "deleted")
    ));
    for p in ["h", "r", "i", "s"] {
        env.start_sink(p, &[]);
    }

    env.admin("postqueue", &["-i", &qid(&env, "by-id")]);
    let by_id = env.wait(|| env.outcome().rows_of("by-id").any(|r| r.result == "sent"));
    o.fact(format!("postqueue -i delivered by-id: {by_id}"));
    env.admin("postqueue", &["-s", "s.test"]);
    let by_site = env.wait(|| env.outcome().rows_of("by-site").any(|r| r.result == "sent"));
    o.fact(format!("postqueue -s delivered by-site: {by_site}"));
    o.fact(format!(
        "requeued untouched by -i and -s: {}",
        where_is(&env, "requeued")
    ));

    let old = qid(&env, "requeued");
    env.admin("postsuper", &["-r", &old]);
    o.fact(format!(
        "after -r the old file is in: {}",
        env.queue_of(&old).unwrap_or_else(|| "none".into())
    ));
    // postsuper does not wake pickup; without this the requeued file
    // waits in maildrop/ for pickup's 60 s wakeup.
    env.sb.kick_service("pickup", b"W").expect("kick pickup");
    let requeued = env.wait(|| {
        env.outcome()
            .rows_of("requeued")
            .any(|r| r.result == "sent")
    });
    o.fact(format!("postsuper -r delivered requeued: {requeued}"));
    o.fact(format!(
        "postsuper -r gave a new queue ID: {}",
        env.qid_of("requeued").is_some_and(|q| q != old)
    ));

    env.admin("postsuper", &["-H", &qid(&env, "held")]);
    o.fact(format!("after -H held is in: {}", where_is(&env, "held")));
    // Periodic deferred scans (every second) must not retry it before its
    // backoff stamp: -H keeps the time stamps.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    o.fact(format!(
        "2.5 s after -H held is in: {}",
        where_is(&env, "held")
    ));
    env.admin("postqueue", &["-f"]);
    let rows = env.wait_outcome(|o| {
        o.rows.len() == 5
            && o.rows
                .iter()
                .all(|r| r.queue == "removed" && (r.result == "sent" || r.result == "deleted"))
    });
    o.rows = rows.rows;
    for p in ["h", "r", "i", "s"] {
        o.fact(format!("sink {p} messages: {}", env.stop_sink(p).messages));
    }
    env.finish(o)
}

/// Expectation of [`admin_tools`].
pub fn expect_admin_tools(o: &ScenarioOutcome) {
    let mut want = ScenarioOutcome::default();
    for (tag, rcpt, port) in ADMIN_MESSAGES {
        if tag == "deleted" {
            want.rows.push(row(
                tag,
                rcpt,
                "deleted",
                "removed",
                &["deferred"],
                "none",
                &refused(port),
            ));
        } else {
            let mut r = sink_row(tag, rcpt, port);
            r.history = vec!["deferred".into(), "sent".into()];
            want.rows.push(r);
        }
    }
    want.rows.sort();
    want.set_received(
        ADMIN_MESSAGES
            .iter()
            .filter(|(tag, _, _)| *tag != "deleted")
            .map(|(tag, rcpt, port)| got(port, tag, SENDER, &[rcpt]))
            .collect(),
    );
    for f in [
        "all five deferred first: true",
        "after -h held is in: hold",
        "after -d deleted is in: none",
        "postqueue -i delivered by-id: true",
        "postqueue -s delivered by-site: true",
        "requeued untouched by -i and -s: deferred",
        "postsuper -r delivered requeued: true",
        "postsuper -r gave a new queue ID: true",
        "after -H held is in: deferred",
        "after -r the old file is in: maildrop",
        "2.5 s after -H held is in: deferred",
        "sink h messages: 1",
        "sink r messages: 1",
        "sink i messages: 1",
        "sink s messages: 1",
    ] {
        want.fact(f);
    }
    assert_outcome(o, &want);
}

/// Scenario 8a: `defer_transports = smtp`: mail for smtp is deferred by the `retry`
/// transport ("deferred transport") on every periodic retry; `postqueue
/// -f` (its `F` request) overrides defer_transports and delivers it.
pub fn defer_transports(q: &Setup) -> ScenarioOutcome {
    let mut env = Env::start(
        q,
        &Spec {
            ports: &["d1"],
            smtp_routes: &[("d1.test", "d1")],
            raw_routes: &[],
            settings: &[("defer_transports", "smtp")],
        },
    );
    env.start_sink("d1", &[]);
    env.send("dt1", SENDER, &["u1@d1.test"]);
    let mut o = ScenarioOutcome::default();
    // A periodic retry (backoff 2-3 s) must stay deferred too.
    let retried = env.wait(|| env.log().grep("(deferred transport)").len() >= 2);
    o.fact(format!("deferred again by periodic retries: {retried}"));
    o.fact(format!("first attempt: {}", env.first_status("dt1")));
    o.fact(format!(
        "sink untouched before flush: {}",
        env.log().grep("status=sent").is_empty()
    ));
    env.admin("postqueue", &["-f"]);
    let rows = env.wait_outcome(|o| all_done(o, 1, "sent"));
    o.rows = rows.rows;
    o.fact(format!(
        "sink d1 messages: {}",
        env.stop_sink("d1").messages
    ));
    env.finish(o)
}

/// Expectation of [`defer_transports`].
pub fn expect_defer_transports(o: &ScenarioOutcome) {
    let mut want = ScenarioOutcome::default();
    let mut r = sink_row("dt1", "u1@d1.test", "d1");
    r.history = vec!["deferred".into(), "sent".into()];
    want.rows.push(r);
    want.fact("deferred again by periodic retries: true");
    want.fact("first attempt: relay=none dsn=4.3.2 status=deferred (deferred transport)");
    want.fact("sink untouched before flush: true");
    want.fact("sink d1 messages: 1");
    want.set_received(vec![got("d1", "dt1", SENDER, &["u1@d1.test"])]);
    assert_outcome(o, &want);
}

/// Scenario 8b: Mail to the local `double-bounce` address is discarded by the queue
/// manager itself, next to an ordinary local delivery in the same message.
pub fn double_bounce(q: &Setup) -> ScenarioOutcome {
    let env = Env::start(
        q,
        &Spec {
            ports: &[],
            smtp_routes: &[],
            raw_routes: &[],
            settings: &[],
        },
    );
    env.send(
        "db1",
        SENDER,
        &["double-bounce@local.test", "root@local.test"],
    );
    let mut o = env.wait_outcome(|o| all_done(o, 2, "sent"));
    o.fact(format!(
        "root mailbox has db1: {}",
        env.mailbox("root").contains("Subject: db1\n")
    ));
    o.fact(format!(
        "double-bounce mailbox exists: {}",
        env.sb.dir().join("mail/double-bounce").exists()
    ));
    env.finish(o)
}

/// Expectation of [`double_bounce`].
pub fn expect_double_bounce(o: &ScenarioOutcome) {
    let mut want = ScenarioOutcome {
        rows: vec![
            row(
                "db1",
                "double-bounce@local.test",
                "sent",
                "removed",
                &["sent"],
                "none",
                "dsn=2.0.0 status=sent (undeliverable postmaster notification discarded)",
            ),
            row(
                "db1",
                "root@local.test",
                "sent",
                "removed",
                &["sent"],
                "local",
                "dsn=2.0.0 status=sent (delivered to mailbox)",
            ),
        ],
        facts: Vec::new(),
        received: Vec::new(),
    };
    want.rows.sort();
    want.fact("root mailbox has db1: true");
    want.fact("double-bounce mailbox exists: false");
    assert_outcome(o, &want);
}

/// The queue ID we give the planted corrupt file (short-ID syntax).
const CORRUPT_ID: &str = "ABCDE12345";
/// Messages flowing past the corrupt file.
const CORRUPT_FLOW: usize = 5;

/// Scenario 9: A garbage file with a valid queue-ID name and mode 0700 in
/// `incoming/` is moved to `corrupt/` while other mail is delivered.
pub fn corrupt_file(q: &Setup) -> ScenarioOutcome {
    let mut env = Env::start(
        q,
        &Spec {
            ports: &["d1"],
            smtp_routes: &[("d1.test", "d1")],
            raw_routes: &[],
            settings: &[],
        },
    );
    env.start_sink("d1", &[]);
    env.send("c0", SENDER, &["u1@d1.test"]);
    env.sb
        .plant_queue_file("incoming", CORRUPT_ID, b"C\x05hello")
        .expect("plant corrupt file");
    for i in 1..CORRUPT_FLOW {
        env.send(&format!("c{i}"), SENDER, &["u1@d1.test"]);
    }
    let mut o = env.wait_outcome(|o| all_done(o, CORRUPT_FLOW, "sent"));
    let moved = env.wait(|| env.queue_of(CORRUPT_ID).is_some_and(|q| q == "corrupt"));
    o.fact(format!("{CORRUPT_ID} in corrupt/: {moved}"));
    let log = env.log();
    for line in log.grep(CORRUPT_ID) {
        o.fact(format!("log: {line}"));
    }
    o.fact(format!(
        "sink d1 messages: {}",
        env.stop_sink("d1").messages
    ));
    env.finish(o)
}

/// Expectation of [`corrupt_file`].
pub fn expect_corrupt_file(o: &ScenarioOutcome) {
    let mut want = ScenarioOutcome::default();
    for i in 0..CORRUPT_FLOW {
        want.rows
            .push(sink_row(&format!("c{i}"), "u1@d1.test", "d1"));
    }
    want.fact(format!("{CORRUPT_ID} in corrupt/: true"));
    want.fact(format!(
        "log: warning: {CORRUPT_ID}: message rejected: weird size record"
    ));
    want.fact(format!(
        "log: warning: saving corrupt file \"{CORRUPT_ID}\" from queue \"active\" to queue \"corrupt\""
    ));
    want.fact(format!("sink d1 messages: {CORRUPT_FLOW}"));
    want.set_received(
        (0..CORRUPT_FLOW)
            .map(|i| got("d1", &format!("c{i}"), SENDER, &["u1@d1.test"]))
            .collect(),
    );
    assert_outcome(o, &want);
}
