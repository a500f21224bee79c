//! The framework with a fake transport actor, in process: a queue file in
//! a temporary queue directory, no Postfix daemons (so bounce-daemon
//! requests fail, as when the bounce service is down).

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, ActorContext, Context, Handler};
use oqmgr::effect::DestKey;
use oqmgr::entry::{AgentId, Entry, EntryId, MessageId, Outcome, Recipient, RecipientStatus};

use super::Framework;
use crate::agent::Deliver;
use crate::clock::Clock;
use crate::custom_transports::{Delivery, Dsn, RcptResult, Reply};
use crate::daemon::active_table::{ActiveMessage, ActiveTable};
use crate::daemon::site::Site;
use crate::postfix::attr::Timeval;
use crate::postfix::queue_file::FileEnvelope;
use crate::postfix::record::{decode_all, encode_record, rec};

/// Answers by local part: `ok` sent, `no` bounced, `later` deferred with
/// a hop status; checks what it was given.
struct Fake;

impl Actor for Fake {
    type Context = Context<Self>;
}

impl Handler<Delivery> for Fake {
    type Result = Reply;

    fn handle(&mut self, d: Delivery, _: &mut Context<Self>) -> Reply {
        assert_eq!(d.sender, "s@x.example");
        assert_eq!(d.nexthop, "hop.example");
        assert_eq!(d.content.read_all(100).unwrap(), b"Subject: t\n\nhi\n");
        let mut r = Reply::new(
            d.recipients
                .iter()
                .map(|r| match r.address.split('@').next() {
                    Some("ok") => RcptResult::sent("fine"),
                    Some("no") => RcptResult::bounced("5.1.1", "unknown"),
                    _ => RcptResult::deferred("4.4.1", "site down"),
                })
                .collect(),
        );
        r.hop = Some(Dsn::new("4.4.1", "site down"));
        r.with_relay("fake[1]")
    }
}

/// A queue file with three recipients; returns it and their offsets.
fn queue_file() -> (Vec<u8>, Vec<u64>, i64) {
    let mut out = Vec::new();
    encode_record(&mut out, rec::TIME, b"1 0");
    encode_record(&mut out, rec::FROM, b"s@x.example");
    let mut offsets = Vec::new();
    for a in ["ok@d", "no@d", "later@d"] {
        offsets.push(out.len() as u64);
        encode_record(&mut out, rec::RCPT, a.as_bytes());
    }
    encode_record(&mut out, rec::MESG, b"");
    let data_offset = out.len() as i64;
    encode_record(&mut out, rec::NORM, b"Subject: t");
    encode_record(&mut out, rec::NORM, b"");
    encode_record(&mut out, rec::NORM, b"hi");
    encode_record(&mut out, rec::XTRA, b"");
    encode_record(&mut out, rec::END, b"");
    (out, offsets, data_offset)
}

/// Settings for a queue directory at `dir`.
fn site(dir: &std::path::Path) -> Arc<Site> {
    Arc::new(Site {
        ipc_timeout: Duration::from_millis(200),
        agent_reply_timeout: Duration::from_secs(5),
        ..Site::defaults(dir.to_path_buf())
    })
}

/// An actor that stops as soon as it starts: its mailbox is closed.
struct Quitter;

impl Actor for Quitter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<Delivery> for Quitter {
    type Result = Reply;

    fn handle(&mut self, _: Delivery, _: &mut Context<Self>) -> Reply {
        unreachable!("a stopped actor gets no messages")
    }
}

#[test]
fn results_are_recorded_and_reported() {
    // Queue files are named relative to the queue directory.
    let dir = crate::testing::queue_dir();
    let (bytes, offsets, data_offset) = queue_file();
    let path = dir.join("active/FWREC");
    std::fs::write(&path, bytes).unwrap();
    let site = site(dir);
    let active: ActiveTable = Arc::default();
    let env = FileEnvelope {
        sender: Some(b"s@x.example".to_vec()),
        data_offset,
        arrival_sec: 1,
        ..FileEnvelope::default()
    };
    active.insert(
        "FWREC".into(),
        Arc::new(ActiveMessage {
            queue_id: "FWREC".into(),
            env: env.into(),
            active_arrival: Timeval { sec: 2, usec: 0 },
        }),
    );
    let recipients: Vec<Recipient> = ["ok@d", "no@d", "later@d"]
        .iter()
        .zip(&offsets)
        .map(|(a, &o)| Recipient {
            offset: o,
            ..Recipient::new(*a)
        })
        .collect();
    let sys = actix::System::new();
    let report = sys.block_on(async move {
        let fw = Framework::new(site, active, Clock::wall());
        let agent = fw.agent("fake", Fake.start().recipient());
        agent
            .deliver
            .send(Deliver {
                agent: AgentId(1),
                dest: DestKey {
                    transport: "fake".into(),
                    queue: "hop.example".into(),
                },
                nexthop: "hop.example".into(),
                queue_id: "FWREC".into(),
                entry: Entry {
                    id: EntryId(7),
                    message: MessageId(1),
                    recipients,
                },
            })
            .await
            .unwrap()
    });
    assert_eq!(report.entry, EntryId(7));
    assert_eq!(report.outcome, Outcome::Defer);
    assert_eq!(report.hop, Some(Dsn::new("4.4.1", "site down")));
    // The bounce service is down: the bounce becomes a deferral, so the
    // failure is not lost; only the sent recipient is marked done.
    assert_eq!(
        report.recipients,
        [
            RecipientStatus::Sent,
            RecipientStatus::Deferred,
            RecipientStatus::Deferred
        ]
    );
    let records = decode_all(&std::fs::read(&path).unwrap()).unwrap();
    let types: Vec<u8> = offsets
        .iter()
        .map(|o| records.iter().find(|r| r.offset == *o).unwrap().rtype)
        .collect();
    assert_eq!(types, [rec::DONE, rec::RCPT, rec::RCPT]);
}

#[test]
fn a_missing_message_or_a_dead_actor_is_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let site = site(dir.path());
    let active: ActiveTable = Arc::default();
    active.insert(
        "GONE".into(),
        Arc::new(ActiveMessage {
            queue_id: "GONE".into(),
            env: FileEnvelope::default().into(),
            active_arrival: Timeval::default(),
        }),
    );
    let sys = actix::System::new();
    let (missing, dead) = sys.block_on(async move {
        let fw = Framework::new(site, active, Clock::wall());
        let deliver = |id: &str| Deliver {
            agent: AgentId(1),
            dest: DestKey {
                transport: "fake".into(),
                queue: "q".into(),
            },
            nexthop: "q".into(),
            queue_id: id.into(),
            entry: Entry {
                id: EntryId(1),
                message: MessageId(1),
                recipients: vec![Recipient::new("ok@d")],
            },
        };
        let live = fw.agent("fake", Fake.start().recipient());
        let missing = live.deliver.send(deliver("NOPE")).await.unwrap();
        let quitter = Quitter.start();
        actix::clock::sleep(Duration::from_millis(20)).await;
        let stopped = fw.agent("quit", quitter.recipient());
        let dead = stopped.deliver.send(deliver("GONE")).await.unwrap();
        (missing, dead)
    });
    assert_eq!(missing.outcome, Outcome::Crash);
    assert_eq!(dead.outcome, Outcome::Crash);
    assert_eq!(dead.entry, EntryId(1));
}
