#![allow(clippy::disallowed_methods)] // tests wait on real daemons in real time
//! The actors make the same scheduling decisions as the simulator.
//!
//! Each test runs one scenario twice: through the simulator (`oqmgr::sim`,
//! the reference host: one FIFO bus, a timer heap) and through the actix
//! actors (one mailbox per entity, tokio timers on a paused clock, a fake
//! agent answering like the simulator's world), then compares per
//! destination what was delivered and deferred and the order of its
//! scheduling decisions.
//!
//! # Where the two hosts may differ, and what is compared
//! The simulator delivers *every* message in one global send order and
//! takes events from its timer heap one at a time, in arming order, emptying
//! its bus after each. The actors keep order only per sender→receiver pair,
//! and tokio wakes everything due at one virtual instant together. Three
//! consequences, all seen while writing these tests:
//! - **Zero-time connections.** The simulator answers `AllocAgent` from its
//!   timer heap, i.e. after its bus is empty, even with no connect delay; an
//!   actor answer made "now" would land between messages still in flight,
//!   and a window could grow on a different busy count. The scenarios give
//!   agents a realistic 1 ms connection time, so both hosts answer once all
//!   else at that instant has settled (a paused tokio clock fires a timer
//!   only when every task is idle).
//! - **Several agents ready at one instant.** Their `AgentReady`s reach the
//!   transport's mailbox back to back, so it handles the second before the
//!   destination's `Capacity` answer to the first: its view is one step
//!   behind. It may ask for one connection early (that one finds no work and
//!   is closed), so agent *numbers* differ and are dropped from the compared
//!   `select` lines. With several destinations competing for scarce agents,
//!   the stale view can also give an agent to another destination of the
//!   ring one millisecond earlier; the built-in scenario (random latencies)
//!   shows this (same totals, different per-ms interleaving). The scenarios
//!   here avoid that state: one destination, spare capacity everywhere, or
//!   one agent per instant (rate delay), so entry, time, busy and window of
//!   every `select` must agree exactly.
//! - **Reports due at one instant** may be handled in another order (seen:
//!   reverse arming order). Window feedback does not depend on which entry
//!   finished, so the `unthrottle`/`throttle`/`dead` lines agree, but `done`
//!   lines are not compared.
//!
//! Summaries (per-destination sent/deferred/bounced, concurrency, delays,
//! file totals) must agree exactly, except the host's own step count and
//! stop time.

mod harness;

use harness::{per_destination, run_actors, scenario, simulate};

/// Compares the decisions that must agree and returns a summary of them.
fn compare(name: &str, toml: &str, kinds: &[&str]) -> String {
    let s = scenario(toml);
    let sim = simulate(&s);
    let act = run_actors(&s);
    if std::env::var_os("DUMP_TRACES").is_some() {
        std::fs::write(format!("/tmp/{name}.sim"), sim.trace.join("\n")).unwrap();
        std::fs::write(format!("/tmp/{name}.act"), act.trace.join("\n")).unwrap();
    }
    let sim_dest = per_destination(&sim.trace, kinds);
    let act_dest = per_destination(&act.trace, kinds);
    assert!(
        !sim_dest.is_empty(),
        "{name}: the simulator made no decisions"
    );
    for (dest, lines) in &sim_dest {
        let got = act_dest.get(dest).cloned().unwrap_or_default();
        assert_eq!(
            &got, lines,
            "{name}: decisions for {dest} differ (left: actors, right: simulator)"
        );
    }
    assert_eq!(
        act_dest.keys().collect::<Vec<_>>(),
        sim_dest.keys().collect::<Vec<_>>(),
        "{name}: different destinations"
    );
    assert_eq!(act.summary, sim.summary, "{name}: summaries differ");
    let mut out = String::new();
    out.push_str(&format!("summary (both hosts):\n{}\n", sim.summary));
    for (dest, lines) in &sim_dest {
        out.push_str(&format!("{dest}: {} decisions\n", lines.len()));
        for line in lines {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out
}

/// Snapshots `text` under `snapshots/actors/`, with the scenario it came
/// from in the header.
fn snapshot(name: &str, scenario: &str, text: &str) {
    let mut settings = insta::Settings::clone_current();
    let dedented: Vec<&str> = scenario.trim().lines().map(str::trim).collect();
    settings.set_description(dedented.join("\n"));
    settings.set_snapshot_path("../../snapshots/actors");
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_snapshot!(name, text));
}

#[test]
fn slow_start_to_the_limit() {
    let toml = r#"
        seed = 1
        [params]
        smtp_destination_concurrency_limit = 10
        [[arrivals]]
        count = 60
        domains = ["a.example"]
        [transports.smtp]
        connect = "1ms"
        [destinations."*"]
        latency = { dist = "fixed", value = "1s" }
        "#;
    let text = compare("slow_start", toml, &["select", "unthrottle"]);
    assert!(text.contains("window=10"), "{text}");
    snapshot("slow_start_to_the_limit", toml, &text);
}

/// A destination that refuses connections dies after a failed cohort, its
/// waiting mail goes to `retry`, it is revived after `minimal_backoff_time`,
/// dies again while the outage lasts, and finally delivers everything. A
/// healthy destination next to it is not affected.
#[test]
fn dead_after_cohort_failure_then_revived() {
    let toml = r#"
        seed = 2
        [params]
        minimal_backoff_time = 60
        maximal_backoff_time = 120
        queue_run_delay = 60
        [[arrivals]]
        count = 12
        domains = ["down.example", "up.example"]
        [transports.smtp]
        connect = "1ms"
        [transports.retry]
        connect = "1ms"
        [destinations."*"]
        latency = { dist = "fixed", value = "1s" }
        [destinations."down.example"]
        latency = { dist = "fixed", value = "1s" }
        outages = [{ from = "0s", to = "100s" }]
        "#;
    let kinds = [
        "select",
        "dead",
        "revive",
        "throttle",
        "unthrottle",
        "reroute",
    ];
    let text = compare("dead_revive", toml, &kinds);
    assert!(text.contains("dead smtp:down.example"), "{text}");
    assert!(text.contains("revive smtp:down.example"), "{text}");
    snapshot("dead_after_cohort_failure_then_revived", toml, &text);
}

/// With a transport rate delay only one delivery starts per second, so the
/// order of selections is the transport's round robin: the small backlog
/// takes every other turn instead of waiting behind the big one. Here the
/// global selection order is compared too: one select per virtual second
/// leaves no room for same-instant reordering.
#[test]
fn round_robin_across_unequal_backlogs() {
    let toml = r#"
        seed = 3
        [params]
        smtp_transport_rate_delay = 1
        [[arrivals]]
        count = 12
        domains = ["big.example"]
        [[arrivals]]
        count = 4
        domains = ["small.example"]
        [transports.smtp]
        connect = "1ms"
        [destinations."*"]
        latency = { dist = "fixed", value = "500ms" }
        "#;
    let text = compare("round_robin", toml, &["select"]);
    let s = scenario(toml);
    let order = |trace: &[String]| -> Vec<String> {
        trace
            .iter()
            .filter(|l| l.split_whitespace().nth(1) == Some("select"))
            .map(|l| l.split_whitespace().nth(2).unwrap_or("").to_string())
            .collect()
    };
    let sim = order(&harness::simulate(&s).trace);
    let act = order(&run_actors(&s).trace);
    assert_eq!(act, sim, "global selection order differs");
    // The small destination is done within the first 2 * 4 selections.
    let last_small = sim.iter().rposition(|d| d == "smtp:small.example");
    assert_eq!(last_small, Some(7), "{sim:?}");
    snapshot(
        "round_robin_across_unequal_backlogs",
        toml,
        &format!("{text}global order: {}\n", sim.join(" ")),
    );
}

/// More corners of the core, compared without a snapshot: a transport whose
/// agent cannot be reached (the transport dies, mail goes to `retry`), a
/// flush trigger reviving a dead destination early, a destination rate
/// delay (suspend/resume timers in the destination actor), a forgotten
/// destination's timer outliving it, and a tiny
/// active queue (admission limits in the supervisor).
#[test]
fn other_scenarios_agree() {
    let cases = [
        (
            "transport_down",
            r#"
            seed = 4
            [params]
            transport_retry_time = 30
            minimal_backoff_time = 60
            queue_run_delay = 60
            [[arrivals]]
            count = 6
            domains = ["a.example", "b.example"]
            [transports.smtp]
            connect = "1ms"
            down = [{ from = "0s", to = "45s" }]
            [transports.retry]
            connect = "1ms"
            "#,
        ),
        (
            "flush_revives",
            r#"
            seed = 5
            [params]
            minimal_backoff_time = 300
            queue_run_delay = 300
            [[arrivals]]
            count = 8
            domains = ["down.example"]
            [[triggers]]
            at = "30s"
            bytes = "FADI"
            [transports.smtp]
            connect = "1ms"
            [transports.retry]
            connect = "1ms"
            [destinations."down.example"]
            outages = [{ from = "0s", to = "20s" }]
            "#,
        ),
        (
            // A dead destination revived by a flush is forgotten; a new one
            // of the same name dies later. The first one's revival timer
            // must not revive the second early (nor reach it at all).
            "stale_timer",
            r#"
            seed = 8
            [params]
            minimal_backoff_time = 300
            queue_run_delay = 1000
            [[arrivals]]
            count = 3
            domains = ["down.example"]
            [[arrivals]]
            at = "40s"
            count = 3
            domains = ["down.example"]
            [[triggers]]
            at = "30s"
            bytes = "F"
            [transports.smtp]
            connect = "1ms"
            [transports.retry]
            connect = "1ms"
            [destinations."down.example"]
            outages = [{ from = "0s", to = "500s" }]
            "#,
        ),
        (
            "destination_rate_delay",
            r#"
            seed = 6
            [params]
            smtp_destination_rate_delay = 2
            [[arrivals]]
            count = 5
            domains = ["slow.example", "other.example"]
            [transports.smtp]
            connect = "1ms"
            "#,
        ),
        (
            "active_limit",
            r#"
            seed = 7
            [params]
            qmgr_message_active_limit = 3
            [[arrivals]]
            count = 20
            every = "100ms"
            recipients = 2
            domains = ["a.example", "b.example", "c.example"]
            [transports.smtp]
            connect = "1ms"
            [destinations."*"]
            latency = { dist = "fixed", value = "700ms" }
            "#,
        ),
    ];
    for (name, toml) in cases {
        let text = compare(
            name,
            toml,
            &[
                "select",
                "dead",
                "revive",
                "throttle",
                "unthrottle",
                "reroute",
                "suspend",
                "resume",
            ],
        );
        assert!(text.contains("select"), "{name}: {text}");
    }
}

/// An agent whose actor is gone: connections still succeed (a separate
/// connect actor answers), but the delivery request cannot be handed over.
/// The contract says this is a crash: the entry is reported as such, the
/// destination gets no feedback (as with Postfix 3.7.11 and later), and the
/// message is deferred, not lost.
#[test]
fn vanished_agent_is_a_crash_and_mail_is_deferred() {
    use actix::{Actor, ActorContext, Context, Handler};
    use oqmgr_actors::agent::{Connect, Deliver, DeliveryAgent};

    /// Accepts every connection.
    struct Door;
    impl Actor for Door {
        type Context = Context<Self>;
    }
    impl Handler<Connect> for Door {
        type Result = Result<(), oqmgr::entry::Dsn>;
        fn handle(&mut self, _m: Connect, _c: &mut Context<Self>) -> Self::Result {
            Ok(())
        }
    }
    /// Stops as soon as it starts.
    struct Gone;
    impl Actor for Gone {
        type Context = Context<Self>;
        fn started(&mut self, ctx: &mut Context<Self>) {
            ctx.stop();
        }
    }
    impl Handler<Deliver> for Gone {
        type Result = actix::MessageResult<Deliver>;
        fn handle(&mut self, m: Deliver, _c: &mut Context<Self>) -> Self::Result {
            unreachable!("a stopped actor got {m:?}")
        }
    }
    let trace = harness::run_one_message(
        || {
            let agent =
                DeliveryAgent::new(Gone.start().recipient()).with_connect(Door.start().recipient());
            vec![("smtp".to_string(), agent)]
        },
        "user@a.example",
        5,
    );
    let text = trace.join("\n");
    assert!(text.contains("done smtp:a.example e1 crash"), "{text}");
    assert!(!text.contains("throttle"), "{text}");
    assert!(text.contains("defer m1 id=Q000001"), "{text}");
}

/// A transport with no registered agent cannot connect: the core declares
/// the transport dead and, with no `retry` agent either, the scheduler
/// defers the recipients itself.
#[test]
fn transport_without_agent_dies_and_defers() {
    let trace = harness::run_one_message(Vec::new, "user@a.example", 5);
    let text = trace.join("\n");
    assert!(text.contains("dead transport smtp"), "{text}");
    assert!(text.contains("dead transport retry"), "{text}");
    assert!(text.contains("defer-now m1 rcpt=1"), "{text}");
    assert!(text.contains("defer m1 id=Q000001"), "{text}");
}
