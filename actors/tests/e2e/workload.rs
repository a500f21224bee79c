//! workload - scenario 12 and the rejected-request test: the wire dialect
//! seen from the Postfix daemons. A mixed workload must leave no warning
//! from any Postfix program (an agent or the bounce daemon of another
//! release warns about every request in the wrong dialect); our daemon
//! forced into the wrong dialect must say so itself.

use oqmgr_actors::postfix::dialect::Dialect;
use oqmgr_devtools::sandbox::PostfixInstall;

use super::env::{all_settled, Env, Setup, Spec, LONG_BACKOFF};
use super::flow::{assert_outcome, got, local_row, notice_row, refused_row, row, sink_row, SENDER};
use super::outcome::{Log, ScenarioOutcome};

/// A delay notice that names no time (see [`mixed_workload`]).
const DELAY_TEMPLATE: &str = "delay_template = <<EOF
Charset: us-ascii
From: MAILER-DAEMON (Mail RecipientLine System)
Subject: Delayed Mail (still being retried)
Postmaster-Subject: Postmaster Warning: Delayed Mail

This is the mail system at host $myhostname: your message is delayed.
EOF
";

/// The UTF-8 recipient of scenario 12.
const UTF8_RCPT: &str = "j\u{fc}rgen@d1.test";

/// Every `warning:` line in `log`, as `program: text` with the queue ID
/// masked; both queue managers are called `qmgr`.
fn warnings(env: &Env, log: &Log) -> Vec<String> {
    let mut found: Vec<String> = log
        .lines
        .iter()
        .filter(|(_, m)| m.starts_with("warning: "))
        .map(|(p, m)| {
            let p = p.rsplit('/').next().unwrap_or(p);
            let p = if p == "oqmgr" { "qmgr" } else { p };
            format!("{p}: {}", env.norm.apply(m, log))
        })
        .collect();
    found.sort();
    found
}

/// Scenario 12: a mixed workload (multi-recipient, local, deferred with a
/// delay warning, bounced, bounced with VERP, DSN success, SMTPUTF8) with
/// the queue manager under test:
/// every result as with oqmgr, and not one warning from any Postfix
/// program. An agent or bounce daemon that gets a request in another
/// release's dialect warns (`unexpected attribute ...`), so this is the
/// dialect check with real peers.
pub fn mixed_workload(q: &Setup) -> ScenarioOutcome {
    let mut env = Env::start_with(
        q,
        &Spec {
            ports: &["d1", "dead", "bad"],
            smtp_routes: &[
                ("d1.test", "d1"),
                ("dead.test", "dead"),
                ("bad.test", "bad"),
            ],
            raw_routes: &[],
            settings: &[
                LONG_BACKOFF[0],
                LONG_BACKOFF[1],
                ("delay_warning_time", "1s"),
                // The VERP notice goes to root+x=bad.test@local.test.
                ("recipient_delimiter", "+"),
                ("bounce_template_file", "$config_directory/bounce.cf"),
            ],
        },
        // The built-in delay notice states delay_warning_time in hours,
        // and bounce(8) warns when that is 0 (the 1 s here).
        |b, _| b.config_file("bounce.cf", DELAY_TEMPLATE),
    );
    env.start_sink("d1", &[]);
    env.start_sink("bad", &["-f", "RCPT"]);
    env.send(
        "multi",
        SENDER,
        &["u1@d1.test", "u2@d1.test", "root@local.test"],
    );
    env.send("late", SENDER, &["u@dead.test"]);
    env.send("bounce", SENDER, &["x@bad.test"]);
    env.send_with(&["-XV"], "verpb", SENDER, &["x@bad.test"]);
    // A DSN-capable remote server takes over the success notice; local
    // delivery sends one.
    env.send_with(
        &["-N", "success"],
        "dsn",
        SENDER,
        &["u3@d1.test", "root@local.test"],
    );
    // Postfix 3.7's sendmail has no -SMTPUTF8: a UTF-8 envelope asks for
    // it. smtp-sink does not offer SMTPUTF8, so smtp(8) returns it.
    env.send_subject("utf8", "gr\u{fc}\u{df}e", SENDER, &[UTF8_RCPT]);
    let mut o = env.wait_outcome(|o| all_settled(o, 14, |r| r.message == "late"));
    let log = env.log();
    let found = warnings(&env, &log);
    o.fact(format!("warnings: {}", found.len()));
    for w in found {
        o.fact(format!("warning {w}"));
    }
    env.finish(o)
}

/// smtp(8)'s reason for returning mail that needs SMTPUTF8 to a server
/// without it: Postfix 3.7's, then the wording of later releases.
const NO_SMTPUTF8: [&str; 2] = [
    "SMTPUTF8 is required, but was not offered by host 127.0.0.1[127.0.0.1]",
    "message requires SMTPUTF8, but no server was found that supports SMTPUTF8. \
     The last attempted server was 127.0.0.1[127.0.0.1]",
];

/// Expectation of [`mixed_workload`].
pub fn expect_mixed_workload(o: &ScenarioOutcome) {
    // The release's own wording, whichever of the known ones it is.
    let no_smtputf8 = o
        .rows_of("utf8")
        .find_map(|r| NO_SMTPUTF8.iter().find(|t| r.status.contains(*t)))
        .unwrap_or(&NO_SMTPUTF8[0]);
    // Returned by the sink that refuses every RCPT.
    let rejected_row = |m: &str| {
        row(
            m,
            "x@bad.test",
            "bounced",
            "removed",
            &["bounced"],
            "127.0.0.1[127.0.0.1]:bad",
            "dsn=5.3.0 status=bounced (host 127.0.0.1[127.0.0.1] said: 500 5.3.0 Error: \
             command failed (in reply to RCPT TO command))",
        )
    };
    let mut want = ScenarioOutcome {
        rows: vec![
            sink_row("multi", "u1@d1.test", "d1"),
            sink_row("multi", "u2@d1.test", "d1"),
            local_row("multi"),
            refused_row("late", "u@dead.test", "dead"),
            notice_row("delay-of:late"),
            rejected_row("bounce"),
            notice_row("bounce-of:bounce"),
            rejected_row("verpb"),
            row(
                "bounce-of:verpb",
                "root+x=bad.test@local.test",
                "sent",
                "removed",
                &["sent"],
                "local",
                "dsn=2.0.0 status=sent (delivered to mailbox)",
            ),
            sink_row("dsn", "u3@d1.test", "d1"),
            local_row("dsn"),
            notice_row("dsn-of:dsn"),
            row(
                "utf8",
                UTF8_RCPT,
                "bounced",
                "removed",
                &["bounced"],
                "127.0.0.1[127.0.0.1]:d1",
                &format!("dsn=5.6.7 status=bounced ({no_smtputf8})"),
            ),
            notice_row("bounce-of:utf8"),
        ],
        ..ScenarioOutcome::default()
    };
    want.rows.sort();
    want.fact("warnings: 0");
    want.set_received(vec![
        got("d1", "multi", SENDER, &["u1@d1.test", "u2@d1.test"]),
        got("d1", "dsn", SENDER, &["u3@d1.test"]) + " NOTIFY=SUCCESS",
    ]);
    assert_outcome(o, &want);
}

/// The line our daemon logs at start about the dialect it chose
/// (`none` when it logged none).
pub fn dialect_line(env: &Env) -> String {
    env.sb
        .wait_for_log("Postfix mail_version ", super::env::WAIT);
    let log = env.log();
    log.lines
        .iter()
        .find(|(p, m)| p.ends_with("/qmgr") && m.starts_with("Postfix mail_version "))
        .map_or_else(|| "none".into(), |(_, m)| m.clone())
}

/// Our daemon, started on `postfix` with nothing configured, learns its
/// version from that build's `postconf` and says so.
pub fn learned_dialect(q: &Setup) -> String {
    dialect_line(&Env::one_sink(q, &[], &[]))
}

/// What [`learned_dialect`] must find on `postfix`.
pub fn expect_learned_dialect(postfix: &PostfixInstall, line: &str) {
    let dialect = Dialect::from_mail_version(&postfix.mail_version).expect("a release number");
    assert_eq!(
        line,
        format!(
            "Postfix mail_version {} (from {}/postconf -dh mail_version): delivery and \
             bounce requests in the dialect of {} (attribute {})",
            postfix.mail_version,
            postfix.command_directory.display(),
            dialect.releases(),
            dialect.sendopts_attr()
        )
    );
}

/// A `mail_version` of the dialect `postfix` does not speak.
pub fn other_release(postfix: &PostfixInstall) -> &'static str {
    match Dialect::from_mail_version(&postfix.mail_version) {
        Ok(Dialect::Sendopts) => "3.7.11",
        _ => "3.11.6",
    }
}

/// Our daemon forced into the other release's dialect (`q` carries the
/// `-o mail_version=...`): the smtp agent rejects the first request. We
/// must warn naming the service, defer both recipients with a reason
/// `postqueue -p` shows, and take the transport out of service: a second
/// message is deferred without asking the agent again.
pub fn rejected_request(q: &Setup) -> ScenarioOutcome {
    let env = Env::one_sink(q, &LONG_BACKOFF, &[]);
    let all_deferred = |n: usize| {
        move |o: &ScenarioOutcome| {
            o.rows.len() == n
                && o.rows
                    .iter()
                    .all(|r| r.result == "deferred" && r.queue == "deferred")
        }
    };
    env.send("rj1", SENDER, &["u1@d1.test", "u2@d1.test"]);
    env.wait_outcome(all_deferred(2));
    env.send("rj2", SENDER, &["u3@d1.test"]);
    let mut o = env.wait_outcome(all_deferred(3));
    let log = env.log();
    let rejected_by_smtp = log
        .lines
        .iter()
        .filter(|(p, m)| p.ends_with("/smtp") && m.contains("warning: unexpected attribute"))
        .count();
    o.fact(format!(
        "requests the smtp agent rejected: {rejected_by_smtp}"
    ));
    let ours: Vec<String> = warnings(&env, &log)
        .into_iter()
        .filter(|w| w.starts_with("qmgr: warning: private/smtp:"))
        .collect();
    for w in ours {
        o.fact(format!("our warning {w}"));
    }
    o.fact(format!("our dialect line: {}", dialect_line(&env)));
    let queue = env.admin("postqueue", &["-p"]);
    o.fact(format!(
        "postqueue -p reasons: {}",
        queue.matches("(mail transport unavailable)").count()
    ));
    env.finish(o)
}

/// Expectation of [`rejected_request`], our daemon forced to speak as
/// Postfix `forced`.
pub fn expect_rejected_request(o: &ScenarioOutcome, forced: &str) {
    let deferred = |m: &str, r: &str| {
        row(
            m,
            r,
            "deferred",
            "deferred",
            &["deferred"],
            "none",
            "dsn=4.3.0 status=deferred (mail transport unavailable)",
        )
    };
    let mut want = ScenarioOutcome {
        rows: vec![
            deferred("rj1", "u1@d1.test"),
            deferred("rj1", "u2@d1.test"),
            deferred("rj2", "u3@d1.test"),
        ],
        ..ScenarioOutcome::default()
    };
    want.rows.sort();
    want.fact("requests the smtp agent rejected: 1");
    let dialect = Dialect::from_mail_version(forced).expect("a release number");
    want.fact(format!(
        "our dialect line: Postfix mail_version {forced} (set in main.cf or with -o): \
         delivery and bounce requests in the dialect of {} (attribute {})",
        dialect.releases(),
        dialect.sendopts_attr()
    ));
    want.fact(
        "our warning qmgr: warning: private/smtp: request for QID rejected: no status \
         recorded for its 2 recipients (see that agent's warning; is mail_version right?)",
    );
    // One line per deferred message in postqueue -p (its reason groups
    // the recipients).
    want.fact("postqueue -p reasons: 2");
    assert_outcome(o, &want);
}
