#![allow(clippy::disallowed_methods)] // tests wait on real daemons in real time
//! The actors take the simulator's decisions, in the simulator's order:
//! every scenario of `tests/scenarios/` (subfolders included, found by
//! walking the folder, so a new scenario is covered without a word here)
//! runs through the simulator and through the actors, and the two traces
//! and summaries must be equal byte for byte: agent numbers, same-instant
//! completions, log lines and step counts included.
//!
//! Both hosts carry out the core's effects through one event loop
//! (`oqmgr::events`): one global FIFO bus, timers by (time, arming
//! number). The actor run hosts every entity in its actor (supervisor,
//! transports, destinations, scanners) on a paused tokio clock, with the
//! simulator's world (`oqmgr_devtools::simworld`) where the daemon has its
//! queue directory and delivery agents. What is compared is the hosting:
//! mailboxes, the registry, actor start and stop, the scanners behind the
//! queue-store contract, and the actors' event loop against the
//! simulator's.
//!
//! Set `DUMP_TRACES=DIR` to write both outputs of every case to `DIR`.

mod harness;

use harness::{load, run_actors, scenario, scenario_files, simulate, Run};

/// Runs one scenario through both hosts and says where they differ.
fn differences(name: &str, s: &oqmgr::sim::scenario::Scenario) -> Option<String> {
    let sim = simulate(s);
    let act = run_actors(s);
    if let Some(dir) = std::env::var_os("DUMP_TRACES") {
        let dir = std::path::Path::new(&dir);
        let file = name.replace('/', "_");
        let both = |r: &Run| format!("{}\n{}", r.trace, r.summary);
        std::fs::write(dir.join(format!("{file}.sim")), both(&sim)).unwrap();
        std::fs::write(dir.join(format!("{file}.act")), both(&act)).unwrap();
    }
    if act == sim {
        return None;
    }
    let (s_lines, a_lines): (Vec<&str>, Vec<&str>) =
        (sim.trace.lines().collect(), act.trace.lines().collect());
    let at = s_lines.iter().zip(&a_lines).position(|(x, y)| x != y);
    let what = match at {
        Some(i) => format!(
            "trace line {}: simulator `{}`, actors `{}`",
            i + 1,
            s_lines[i],
            a_lines[i]
        ),
        None if s_lines.len() != a_lines.len() => format!(
            "traces of {} (simulator) and {} (actors) lines",
            s_lines.len(),
            a_lines.len()
        ),
        None => format!(
            "summaries differ:\n{}\n-- actors:\n{}",
            sim.summary, act.summary
        ),
    };
    Some(format!("{name}: {what}"))
}

#[test]
fn every_scenario_runs_on_the_actors_as_in_the_simulator() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/scenarios");
    let files = scenario_files();
    assert!(
        files.len() >= 40,
        "scenarios not found under {}",
        root.display()
    );
    let mut failed = Vec::new();
    for path in &files {
        let name = path
            .strip_prefix(&root)
            .unwrap_or(path)
            .display()
            .to_string();
        failed.extend(differences(&name, &load(path)));
    }
    assert!(
        failed.is_empty(),
        "{} of {} scenarios differ:\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
}

/// More corners of the hosting, written here rather than as scenarios: a
/// transport whose agent cannot be reached (the transport dies, mail goes
/// to `retry`), a flush trigger reviving a dead destination early, a
/// forgotten destination's timer outliving it, a destination rate delay,
/// and a tiny active queue.
#[test]
fn more_corners_run_as_in_the_simulator() {
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
    let failed: Vec<String> = cases
        .iter()
        .filter_map(|(name, toml)| differences(name, &scenario(toml)))
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
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
