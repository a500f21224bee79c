#![allow(clippy::disallowed_methods)] // paused tokio time only
//! `qmgr_message_active_limit` bounds what a store with slow completions
//! holds: a message counts against the limit until its completion is
//! carried out (the daemon's completion worker may wait long on the bounce
//! daemon or a slow disk), not only until the scheduler is done with it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{Actor, Context, Handler, MessageResult};
use oqmgr::entry::{DeliveryReport, Dsn, Outcome, Recipient, RecipientStatus};
use oqmgr::message::{Verdict, Warning};
use oqmgr::params::Params;
use oqmgr::scan::{QueueName, ScanFlags};
use oqmgr::time::Instant;
use oqmgr_actors::agent::{Deliver, DeliveryAgent};
use oqmgr_actors::clock::Clock;
use oqmgr_actors::queue_store::{
    AdmittedEnvelope, Batch, Completion, QueueStore, SharedStore, StoreError,
};
use oqmgr_actors::scheduler::Scheduler;
use oqmgr_devtools::simworld::SimStore;

/// Messages queued.
const MESSAGES: usize = 12;
/// `qmgr_message_active_limit`.
const LIMIT: usize = 3;

/// A memory store whose completions finish only when the test lets them.
struct SlowStore {
    inner: SimStore,
    /// Completions carried out in memory but not reported done yet.
    held: Arc<Mutex<Vec<Completion>>>,
    /// Admitted and not yet reported done (the store's memory).
    holding: Arc<AtomicUsize>,
    /// The most `holding` ever was.
    peak: Arc<AtomicUsize>,
}

impl QueueStore for SlowStore {
    fn scan_start(&mut self, queue: QueueName) -> usize {
        self.inner.scan_start(queue)
    }
    fn scan_next(&mut self, queue: QueueName) -> Option<String> {
        self.inner.scan_next(queue)
    }
    fn admit(
        &mut self,
        queue: QueueName,
        id: &str,
        flags: ScanFlags,
        now: Instant,
    ) -> Result<AdmittedEnvelope, StoreError> {
        let admitted = self.inner.admit(queue, id, flags, now)?;
        let now_holding = self.holding.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now_holding, Ordering::SeqCst);
        Ok(admitted)
    }
    fn read(&mut self, id: &str, batch: u32) -> Result<Batch, StoreError> {
        self.inner.read(id, batch)
    }
    fn discard(&mut self, id: &str, recipient: &Recipient) {
        self.inner.discard(id, recipient)
    }
    fn defer_recipients(&mut self, id: &str, recipients: &[Recipient], dsn: &Dsn) {
        self.inner.defer_recipients(id, recipients, dsn)
    }
    fn complete(&mut self, id: &str, verdict: &Verdict, done: Completion) {
        self.inner.complete(id, verdict, Completion::unobserved());
        let holding = Arc::clone(&self.holding);
        self.held.lock().unwrap().push(Completion::new(move || {
            holding.fetch_sub(1, Ordering::SeqCst);
            drop(done);
        }));
    }
    fn completes_later(&self) -> bool {
        true
    }
}

/// An agent that delivers everything at once.
struct Delivers;

impl Actor for Delivers {
    type Context = Context<Self>;
}

impl Handler<Deliver> for Delivers {
    type Result = MessageResult<Deliver>;
    fn handle(&mut self, msg: Deliver, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(DeliveryReport {
            entry: msg.entry.id,
            outcome: Outcome::Done,
            hop: None,
            recipients: vec![RecipientStatus::Sent; msg.entry.recipients.len()],
        })
    }
}

#[test]
fn slow_completions_hold_back_admission_at_the_active_limit() {
    let held = Arc::new(Mutex::new(Vec::new()));
    let holding = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    // Every recipient goes to smtp:example.net.
    let inner = SimStore::empty();
    for i in 0..MESSAGES {
        inner.add(
            &format!("Q{i:04}"),
            false,
            "s@example.com",
            &[format!("r{i}@example.net")],
            Instant::ZERO,
            Instant::ZERO,
            Warning::None,
        );
    }
    let store = SlowStore {
        inner,
        held: Arc::clone(&held),
        holding: Arc::clone(&holding),
        peak: Arc::clone(&peak),
    };
    let released = actix_rt::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap()
    })
    .block_on({
        let held = Arc::clone(&held);
        async move {
            let (params, _) =
                Params::from_pairs(&[("qmgr_message_active_limit", &LIMIT.to_string())])
                    .expect("valid");
            let shared: SharedStore = Arc::new(Mutex::new(store));
            let agent = DeliveryAgent::new(Delivers.start().recipient());
            let scheduler = Scheduler::builder(params, shared)
                .with_clock(Clock::starting_at(Instant::ZERO))
                .with_agent("smtp", agent)
                .start();
            scheduler.trigger(b"I");
            // The completion worker finishes one completion per second.
            let mut released = 0;
            for _ in 0..10 * MESSAGES {
                actix::clock::sleep(Duration::from_secs(1)).await;
                let next = held.lock().unwrap().pop();
                if let Some(done) = next {
                    drop(done);
                    released += 1;
                }
            }
            released
        }
    });
    assert_eq!(released, MESSAGES, "every message completes in the end");
    let peak = peak.load(Ordering::SeqCst);
    assert!(
        peak <= LIMIT,
        "{peak} messages held at once with qmgr_message_active_limit = {LIMIT}"
    );
}
