//! remote - scenarios 11: what the remote side receives when the queue
//! manager decides the shape of each delivery: VERP (one recipient and one
//! sender per transaction), recipient limits over several destinations and
//! transports, and the FILTER and REDIRECT header actions.

use super::env::{all_done, Env, Setup, Spec};
use super::flow::{assert_outcome, got, local_row, sink_row, SENDER};
use super::outcome::ScenarioOutcome;

/// The VERP list sender of scenario 11a.
const LIST: &str = "list@src.test";
/// Its three recipients.
const VERP_RCPTS: [&str; 3] = ["v1@d0.test", "v2@d0.test", "v3@d0.test"];

/// Scenario 11a: `sendmail -XV -f list@src.test v1 v2 v3`: the message
/// asks for VERP, so each recipient gets a transaction of its own whose
/// sender names it (`list+v1=d0.test@src.test`).
pub fn verp(q: &Setup) -> ScenarioOutcome {
    let mut env = Env::start(
        q,
        &Spec {
            ports: &["d0"],
            smtp_routes: &[("d0.test", "d0")],
            raw_routes: &[],
            settings: &[],
        },
    );
    env.start_sink("d0", &[]);
    env.send_with(&["-XV"], "verp1", LIST, &VERP_RCPTS);
    let o = env.wait_outcome(|o| all_done(o, VERP_RCPTS.len(), "sent"));
    env.finish(o)
}

/// Expectation of [`verp`].
pub fn expect_verp(o: &ScenarioOutcome) {
    let mut want = ScenarioOutcome::default();
    let mut received = Vec::new();
    for r in VERP_RCPTS {
        want.rows.push(sink_row("verp1", r, "d0"));
        let (local, domain) = r.split_once('@').expect("an address");
        let mut line = got("d0", "verp1", "", &[r]);
        line = line.replace("MAIL <>", &format!("MAIL <list+{local}={domain}@src.test>"));
        received.push(line);
    }
    want.rows.sort();
    want.set_received(received);
    assert_outcome(o, &want);
}

/// Recipients of scenario 11b: address and the sink it reaches.
const LIMIT_RCPTS: [(&str, &str); 10] = [
    ("a1@da.test", "a"),
    ("a2@da.test", "a"),
    ("a3@da.test", "a"),
    ("a4@da.test", "a"),
    ("b1@db.test", "b"),
    ("b2@db.test", "b"),
    ("b3@db.test", "b"),
    ("c1@dc.test", "c"),
    ("c2@dc.test", "c"),
    ("root@local.test", "local"),
];

/// Scenario 11b: one message to ten recipients over three smtp sites and
/// local delivery, with `smtp_destination_recipient_limit = 2`, and one site
/// (`dc.test`) over a transport `one` taking one recipient per delivery
/// (which also gives each of its recipients a queue of its own): the
/// sinks see transactions of 2+2, 2+1 and 1+1 recipients.
pub fn recipient_limits(q: &Setup) -> ScenarioOutcome {
    let mut env = Env::start_with(
        q,
        &Spec {
            ports: &["a", "b", "c"],
            smtp_routes: &[("da.test", "a"), ("db.test", "b"), ("dc.test", "one:c")],
            raw_routes: &[],
            settings: &[
                ("smtp_destination_recipient_limit", "2"),
                ("one_destination_recipient_limit", "1"),
            ],
        },
        |b, _| b.master_cf_line("one unix - - n - - smtp"),
    );
    for p in ["a", "b", "c"] {
        env.start_sink(p, &[]);
    }
    let rcpts: Vec<&str> = LIMIT_RCPTS.iter().map(|(r, _)| *r).collect();
    env.send("lim1", SENDER, &rcpts);
    let o = env.wait_outcome(|o| all_done(o, rcpts.len(), "sent"));
    env.finish(o)
}

/// Expectation of [`recipient_limits`].
pub fn expect_recipient_limits(o: &ScenarioOutcome) {
    let mut want = ScenarioOutcome::default();
    for (r, p) in LIMIT_RCPTS {
        want.rows.push(if p == "local" {
            local_row("lim1")
        } else {
            sink_row("lim1", r, p)
        });
    }
    want.rows.sort();
    want.set_received(vec![
        got("a", "lim1", SENDER, &["a1@da.test", "a2@da.test"]),
        got("a", "lim1", SENDER, &["a3@da.test", "a4@da.test"]),
        got("b", "lim1", SENDER, &["b1@db.test", "b2@db.test"]),
        got("b", "lim1", SENDER, &["b3@db.test"]),
        got("c", "lim1", SENDER, &["c1@dc.test"]),
        got("c", "lim1", SENDER, &["c2@dc.test"]),
    ]);
    assert_outcome(o, &want);
}

/// Scenario 11c: `header_checks` actions. `Subject: filter-me` gets
/// `FILTER smtp:[127.0.0.1]:<f>`: the message goes to the filter sink with
/// all its recipients, whatever their domains. `Subject: redirect-me`
/// gets `REDIRECT boss@dr.test`: one delivery, to that address only.
pub fn header_actions(q: &Setup) -> ScenarioOutcome {
    let mut env = Env::start_with(
        q,
        &Spec {
            ports: &["f", "d1", "d2", "r"],
            smtp_routes: &[("d1.test", "d1"), ("d2.test", "d2"), ("dr.test", "r")],
            raw_routes: &[],
            settings: &[("header_checks", "regexp:$config_directory/header_checks")],
        },
        |b, ports| {
            b.config_file(
                "header_checks",
                format!(
                    "/^Subject: filter-me/ FILTER smtp:[127.0.0.1]:{}\n\
                     /^Subject: redirect-me/ REDIRECT boss@dr.test\n",
                    ports["f"]
                ),
            )
        },
    );
    for p in ["f", "d1", "d2", "r"] {
        env.start_sink(p, &[]);
    }
    let rcpts = ["u1@d1.test", "u2@d2.test"];
    env.send_subject("filt1", "filter-me", SENDER, &rcpts);
    env.send_subject("redir1", "redirect-me", SENDER, &rcpts);
    let o = env.wait_outcome(|o| all_done(o, 3, "sent"));
    env.finish(o)
}

/// Expectation of [`header_actions`].
pub fn expect_header_actions(o: &ScenarioOutcome) {
    let mut want = ScenarioOutcome {
        rows: vec![
            sink_row("filt1", "u1@d1.test", "f"),
            sink_row("filt1", "u2@d2.test", "f"),
            sink_row("redir1", "boss@dr.test", "r"),
        ],
        ..ScenarioOutcome::default()
    };
    want.rows.sort();
    want.set_received(vec![
        got("f", "filt1", SENDER, &["u1@d1.test", "u2@d2.test"]),
        got("r", "redir1", SENDER, &["boss@dr.test"])
            .replace("ORCPT=rfc822;boss@dr.test", "ORCPT=rfc822;u1@d1.test"),
    ]);
    assert_outcome(o, &want);
}
