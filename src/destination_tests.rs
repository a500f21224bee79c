//! Unit tests of `destination.rs`: a declined offer, a refused request, a
//! crashed agent, and the `%g` formatting of the feedback debug lines.

use super::*;
use crate::entry::{AgentId, EntryId, Recipient};
use crate::params::Params;

/// The smtp destination `d.example` under `settings`.
fn site(settings: &[(&str, &str)]) -> Destination {
    let (params, _) = Params::from_pairs(settings).expect("settings resolve");
    let (tp, _) = params.transport("smtp");
    let key = DestKey {
        transport: "smtp".into(),
        queue: "d.example".into(),
    };
    let id = DestId {
        transport: 0,
        slot: 0,
        epoch: 1,
    };
    Destination::new(
        id,
        key,
        "d.example".into(),
        1,
        Arc::new(tp),
        Arc::new(params.global.clone()),
    )
}

/// A one-recipient entry of its own message, numbered `n`.
fn accept(n: u64) -> Msg {
    Msg::Accept {
        entry: Entry {
            id: EntryId(n),
            message: MessageId(n),
            recipients: vec![Recipient::new(format!("u{n}@d.example"))],
        },
        active: 1,
        peers: false,
    }
}

/// Entries `effects` starts, by number.
fn started(effects: &mut Effects) -> Vec<u64> {
    effects
        .drain()
        .filter_map(|e| match e {
            Effect::Deliver { entry, .. } => Some(entry.id.0),
            _ => None,
        })
        .collect()
}

/// The entry's message was told it was deferred, and the transport
/// was not revived.
fn assert_deferred_without_revival(out: &Effects) {
    assert!(out.list.iter().any(|e| matches!(
        e,
        Effect::Send(Addr::Supervisor, Msg::EntryDone { deferred: true, .. })
    )));
    assert!(!out
        .list
        .iter()
        .any(|e| matches!(e, Effect::Send(_, Msg::Revive))));
}

#[test]
fn a_declined_take_keeps_the_entry() {
    let mut d = site(&[("smtp_initial_destination_concurrency", "1")]);
    let mut out = Effects::new();
    d.handle(Instant::ZERO, accept(1), &mut out);
    d.handle(Instant::ZERO, accept(2), &mut out);
    d.handle(Instant::ZERO, Msg::Take(AgentId(1)), &mut out);
    assert_eq!(started(&mut out), vec![1]);
    // The window (1) is full: the offer is declined, e2 waits on.
    d.handle(Instant::ZERO, Msg::Take(AgentId(2)), &mut out);
    assert_eq!(started(&mut out), Vec::<u64>::new());
    assert_eq!(d.counts(), (1, 1), "e2 must still be waiting");
}

#[test]
fn a_refused_request_kills_the_transport_not_the_site() {
    let mut d = site(&[]);
    let now = Instant::ZERO;
    let mut out = Effects::new();
    d.handle(now, accept(1), &mut out);
    d.handle(now, Msg::Take(AgentId(1)), &mut out);
    out.list.clear();
    let report = DeliveryReport {
        entry: EntryId(1),
        outcome: Outcome::Refused,
        hop: None,
        recipients: Vec::new(),
    };
    d.handle(now, Msg::Report(report), &mut out);
    let dsn = Dsn::new("4.3.0", "mail transport unavailable");
    assert!(
        out.list.contains(&Effect::Send(
            Addr::Transport("smtp".into()),
            Msg::Refused(dsn)
        )),
        "{:?}",
        out.list
    );
    // The message is told its entry was deferred; the site itself
    // gets no feedback and stays ready, and the transport is not
    // revived.
    assert_deferred_without_revival(&out);
    assert_eq!(d.status(), &Status::Ready);
    assert_eq!(d.counts(), (0, 0));
}

#[test]
fn a_crashed_agent_defers_without_feedback() {
    // One failed cohort would kill the site if a crash counted as one.
    let mut d = site(&[("smtp_destination_concurrency_failed_cohort_limit", "1")]);
    let now = Instant::ZERO;
    let mut out = Effects::new();
    for n in 1..=3 {
        d.handle(now, accept(n), &mut out);
        d.handle(now, Msg::Take(AgentId(n)), &mut out);
        out.list.clear();
        let window = d.window();
        let report = DeliveryReport {
            entry: EntryId(n),
            outcome: Outcome::Crash,
            hop: None,
            recipients: Vec::new(),
        };
        d.handle(now, Msg::Report(report), &mut out);
        assert_deferred_without_revival(&out);
        assert_eq!(d.status(), &Status::Ready, "crash {n}");
        assert_eq!(d.window(), window, "crash {n}: no feedback");
    }
    assert_eq!(d.counts(), (0, 0));
}

#[test]
fn fmt_g_prints_like_c() {
    let cases = [
        (0.0, "0"),
        (1.0, "1"),
        (0.2, "0.2"),
        (0.5333333333, "0.533333"),
        (1.0333333333, "1.03333"),
        (-0.25, "-0.25"),
        (123456.0, "123456"),
    ];
    for (v, want) in cases {
        assert_eq!(fmt_g(v), want, "{v}");
    }
}
