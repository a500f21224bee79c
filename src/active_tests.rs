//! Unit tests of `src/active.rs` (kept apart to keep that file short).

use super::*;
use crate::entry::Recipient;

fn routed(addr: &str) -> Routed {
    Routed {
        recipient: Recipient::new(addr),
        transport: "smtp".into(),
        nexthop: "a.example".into(),
        class_local: false,
    }
}

/// A supervisor that has just admitted message `Q1` with `flags` and
/// `recipients`, and the effects of the admission.
fn admit(flags: ScanFlags, recipients: Vec<Routed>, more: bool) -> (Supervisor, Effects) {
    let (params, _) = Params::from_pairs(&[]).expect("defaults resolve");
    let mut sup = Supervisor::new(params);
    let now = Instant::from_secs(10);
    let mut out = Effects::new();
    sup.start(now, &mut out);
    let scan = Msg::ScanResult {
        queue: QueueName::Incoming,
        id: Some("Q1".into()),
    };
    sup.handle(now, scan, &mut out);
    out.list.clear();
    let info = MessageInfo {
        message: MessageId(1),
        id: "Q1".into(),
        sender: "s@x".into(),
        create_time: now,
        warning: crate::message::Warning::None,
        flags,
        single_rcpt: false,
    };
    let admitted = Msg::Admitted {
        info: Box::new(info),
        recipients,
        more,
    };
    sup.handle(now, admitted, &mut out);
    (sup, out)
}

/// Drives one message through admission, one delivery and a refill
/// answered as `refilled`; returns the verdict.
fn run_with_refill(refilled: Msg) -> Verdict {
    let now = Instant::from_secs(10);
    let (mut sup, mut out) = admit(ScanFlags::NONE, vec![routed("u1@a.example")], true);
    out.list.clear();
    sup.handle(
        now,
        Msg::EntryDone {
            message: MessageId(1),
            recipients: 1,
            deferred: false,
        },
        &mut out,
    );
    assert!(
        out.list.iter().any(|e| matches!(e, Effect::Refill { .. })),
        "a refill is asked for"
    );
    out.list.clear();
    sup.handle(now, refilled, &mut out);
    out.list
        .iter()
        .find_map(|e| match e {
            Effect::Complete { verdict, .. } => Some(verdict.clone()),
            _ => None,
        })
        .expect("the message completes")
}

#[test]
fn a_failed_refill_keeps_the_file_instead_of_removing_it() {
    let failed = Msg::Refilled {
        message: MessageId(1),
        recipients: vec![],
        more: false,
        read_error: true,
    };
    assert!(matches!(run_with_refill(failed), Verdict::Defer { .. }));
    let empty = Msg::Refilled {
        message: MessageId(1),
        recipients: vec![],
        more: false,
        read_error: false,
    };
    assert_eq!(run_with_refill(empty), Verdict::Remove);
}

/// `postsuper -e` mail with defer log records (the store hands over no
/// recipients): returned at once, `force-expired`, nothing delivered.
#[test]
fn a_force_expired_message_with_a_defer_log_is_returned_at_once() {
    let flags = ScanFlags::FORCE_EXPIRE | ScanFlags::EXPIRE_LOGGED;
    let (_, out) = admit(flags, vec![], false);
    assert!(!out
        .list
        .iter()
        .any(|e| matches!(e, Effect::Send(_, Msg::Enqueue { .. }))));
    let verdict = out.list.iter().find_map(|e| match e {
        Effect::Complete { verdict, .. } => Some(verdict.clone()),
        _ => None,
    });
    assert_eq!(
        verdict,
        Some(Verdict::Expire {
            status: "force-expired"
        })
    );
}

/// Admits `id` as message `n` with one recipient (`more` on file).
fn admit_one(sup: &mut Supervisor, now: Instant, id: &str, n: u64, more: bool) {
    let mut out = Effects::new();
    sup.handle(
        now,
        Msg::ScanResult {
            queue: QueueName::Incoming,
            id: Some(id.into()),
        },
        &mut out,
    );
    let info = MessageInfo {
        message: MessageId(n),
        id: id.into(),
        sender: "s@x".into(),
        create_time: now,
        warning: crate::message::Warning::None,
        flags: ScanFlags::NONE,
        single_rcpt: false,
    };
    sup.handle(
        now,
        Msg::Admitted {
            info: Box::new(info),
            recipients: vec![routed("u1@a.example")],
            more,
        },
        &mut out,
    );
}

/// Admits `id` as message `n` with one recipient and finishes its one
/// entry; returns the effects of the finish.
fn admit_and_finish(sup: &mut Supervisor, now: Instant, id: &str, n: u64) -> Effects {
    admit_one(sup, now, id, n, false);
    let mut out = Effects::new();
    sup.handle(
        now,
        Msg::EntryDone {
            message: MessageId(n),
            recipients: 1,
            deferred: false,
        },
        &mut out,
    );
    out
}

fn asks_for_a_file(out: &Effects) -> bool {
    out.list.iter().any(|e| matches!(e, Effect::ScanNext(_)))
}

#[test]
fn a_message_counts_against_the_limit_until_its_completion_is_done() {
    let (params, _) = Params::from_pairs(&[("qmgr_message_active_limit", "1")]).expect("valid");
    let mut sup = Supervisor::new(params).counting_completions();
    let now = Instant::from_secs(10);
    let mut out = Effects::new();
    sup.start(now, &mut out);
    let out = admit_and_finish(&mut sup, now, "Q1", 1);
    assert!(out
        .list
        .iter()
        .any(|e| matches!(e, Effect::Complete { .. })));
    assert!(
        !asks_for_a_file(&out),
        "the active queue is still full while Q1's completion runs"
    );
    let mut out = Effects::new();
    sup.handle(now, Msg::Completed, &mut out);
    assert!(asks_for_a_file(&out), "room again once it is done");
}

#[test]
fn without_completion_reports_a_completed_message_frees_its_slot_at_once() {
    let (params, _) = Params::from_pairs(&[("qmgr_message_active_limit", "1")]).expect("valid");
    let mut sup = Supervisor::new(params);
    let now = Instant::from_secs(10);
    let mut out = Effects::new();
    sup.start(now, &mut out);
    assert!(asks_for_a_file(&admit_and_finish(&mut sup, now, "Q1", 1)));
}
