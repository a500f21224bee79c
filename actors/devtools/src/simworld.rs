//! The simulator's world under the actors: its queue files behind the
//! [`QueueStore`] contract ([`SimStore`], which the scanner actors use),
//! and its agents, servers and arrivals as the event loop's [`Outside`]
//! ([`Simulated`]). A [`SimStore`] of an empty world, with files added by
//! hand, is also the in-memory store of the other actor tests.
//!
//! Both share one [`World`], the value the simulator itself runs. With
//! them the actor scheduler on a paused tokio clock runs a scenario the
//! way `oqmgr simulate` does: same arrivals, same answers under the same
//! arming numbers, same random draws in the same order. Only the hosting
//! of the core's entities differs (actors with mailboxes and a registry,
//! against values in memory), which is what `actors/tests/actors.rs`
//! compares, trace and summary byte for byte.
//!
//! [`InstantAgent`] is the delivery agent the tests on an in-memory store
//! need when only the flow matters: it delivers every recipient at once.
//!
//! # Invariants
//! - the world is locked only inside one call, never across an await.

use std::sync::{Arc, Mutex, MutexGuard};

use oqmgr::effect::DestId;
use oqmgr::entry::{AgentId, Dsn, Recipient};
use oqmgr::events::EventLoop;
use oqmgr::message::{Verdict, Warning};
use oqmgr::name::{Name, SortKey};
use oqmgr::scan::{QueueName, ScanFlags};
use oqmgr::sim::scenario::{CommandAt, Scenario};
use oqmgr::sim::world::{File, Happening, Place, World};
use oqmgr::time::{Duration, Instant};
use oqmgr_actors::agent::Deliver;
use oqmgr_actors::host::Host;
use oqmgr_actors::outside::Outside;
use oqmgr_actors::queue_store::{AdmittedEnvelope, Batch, Completion, QueueStore, StoreError};

/// A delivery agent that delivers every recipient at once.
pub struct InstantAgent;

impl actix::Actor for InstantAgent {
    type Context = actix::Context<Self>;
}

impl actix::Handler<Deliver> for InstantAgent {
    type Result = actix::MessageResult<Deliver>;
    fn handle(&mut self, m: Deliver, _c: &mut actix::Context<Self>) -> Self::Result {
        actix::MessageResult(oqmgr::entry::DeliveryReport {
            entry: m.entry.id,
            outcome: oqmgr::entry::Outcome::Done,
            hop: None,
            recipients: vec![oqmgr::entry::RecipientStatus::Sent; m.entry.recipients.len()],
        })
    }
}

/// A world shared by the store and the outside.
pub type SharedWorld = Arc<Mutex<World>>;

/// Locks the world (a poisoned lock is taken over, as the host does with
/// its store).
fn lock(world: &SharedWorld) -> MutexGuard<'_, World> {
    world.lock().unwrap_or_else(|e| e.into_inner())
}

/// The world's queue files as a [`QueueStore`].
pub struct SimStore(pub SharedWorld);

impl SimStore {
    /// The store of an empty world: no scenario, so every recipient goes
    /// to `smtp:<domain>`, and no delay warnings.
    pub fn empty() -> SimStore {
        let world = World::new(Scenario::default(), 0, Duration::ZERO);
        SimStore(Arc::new(Mutex::new(world)))
    }

    /// Adds a file to `incoming/` or `deferred/`, as cleanup or an earlier
    /// run would have left it; `now` is its arrival and next-attempt stamp.
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &self,
        id: &str,
        deferred: bool,
        sender: &str,
        recipients: &[String],
        now: Instant,
        create_time: Instant,
        warning: Warning,
    ) {
        let file = File {
            id: id.into(),
            place: if deferred {
                Place::Deferred
            } else {
                Place::Incoming
            },
            mtime: now,
            sender: sender.into(),
            create_time,
            arrival: now,
            warning,
            recipients: recipients
                .iter()
                .map(|r| (r.as_str().into(), false))
                .collect(),
            cursor: 0,
            single_rcpt: false,
        };
        lock(&self.0)
            .queues
            .files
            .insert(SortKey::from(id), Box::new(file));
    }
}

impl QueueStore for SimStore {
    fn scan_start(&mut self, queue: QueueName) -> usize {
        lock(&self.0).scan_start(queue)
    }

    fn scan_next(&mut self, queue: QueueName) -> Option<String> {
        lock(&self.0).scan_next(queue).map(|id| id.to_string())
    }

    fn admit(
        &mut self,
        queue: QueueName,
        id: &str,
        flags: ScanFlags,
        now: Instant,
    ) -> Result<AdmittedEnvelope, StoreError> {
        let envelope = lock(&self.0)
            .admit_envelope(queue, &SortKey::from(id), flags, now)
            .ok_or(StoreError::Gone)?;
        Ok(AdmittedEnvelope {
            sender: envelope.sender.to_string(),
            create_time: envelope.create_time,
            warning: envelope.warning,
            flags: ScanFlags::NONE,
            single_rcpt: envelope.single_rcpt,
        })
    }

    fn read(&mut self, id: &str, batch: u32) -> Result<Batch, StoreError> {
        let mut world = lock(&self.0);
        let key = SortKey::from(id);
        if !world.queues.files.contains_key(&key) {
            return Err(StoreError::Gone);
        }
        let (recipients, more) = world.read(&key, batch);
        Ok(Batch { recipients, more })
    }

    fn discard(&mut self, id: &str, recipient: &Recipient) {
        lock(&self.0).discard(&SortKey::from(id), recipient);
    }

    fn defer_recipients(&mut self, _id: &str, recipients: &[Recipient], _dsn: &Dsn) {
        lock(&self.0).defer_recipients(recipients.len());
    }

    fn delay_cleared(&mut self, _id: &str) {
        lock(&self.0).delay_cleared();
    }

    fn complete(&mut self, id: &str, verdict: &Verdict, _done: Completion) {
        lock(&self.0).complete(&SortKey::from(id), verdict);
    }

    fn retry(&mut self, ids: &[Name], now: Instant) {
        lock(&self.0).retry(ids, now);
    }
}

/// What a run that ended reports: the loop's time and the messages it
/// delivered.
pub type OnStop = Box<dyn FnOnce(Instant, u64)>;

/// The world's agents, servers and arrivals as the event loop's outside.
pub struct Simulated {
    /// The world.
    world: SharedWorld,
    /// The run's stop time and step limit.
    limits: (Instant, u64),
    /// Told when the loop ends.
    on_stop: Option<OnStop>,
}

impl Simulated {
    /// The outside of `world`, stopping the run at `until` or after
    /// `max_steps` messages, as the simulator does, and calling `on_stop`
    /// at the end.
    pub fn new(world: SharedWorld, until: Instant, max_steps: u64, on_stop: OnStop) -> Simulated {
        Simulated {
            world,
            limits: (until, max_steps),
            on_stop: Some(on_stop),
        }
    }
}

impl Outside for Simulated {
    type Event = Happening;

    fn start(&mut self, lp: &mut EventLoop<Happening>) {
        lock(&self.world).start(lp);
    }

    fn connect(
        &mut self,
        _host: &Arc<Host>,
        lp: &mut EventLoop<Happening>,
        transport: Name,
        agent: AgentId,
    ) {
        lock(&self.world).alloc_agent(lp, transport, agent);
    }

    fn deliver(
        &mut self,
        _host: &Arc<Host>,
        lp: &mut EventLoop<Happening>,
        id: DestId,
        request: Deliver,
    ) {
        let mut world = lock(&self.world);
        let nexthop = Name::from(request.nexthop.as_str());
        // Looked up by name for each delivery: the simulator keeps it with
        // its destination, but the result is the same.
        let mut peer = world.peer(&nexthop);
        let file = SortKey::from(request.queue_id.as_str());
        world.deliver(
            lp,
            &mut peer,
            id,
            &request.dest,
            &nexthop,
            request.entry,
            &file,
        );
    }

    fn close(&mut self, _host: &Arc<Host>, _transport: Name, _agent: AgentId) {}

    fn fire(&mut self, lp: &mut EventLoop<Happening>, event: Happening) -> Option<CommandAt> {
        lock(&self.world).fire(lp, event)
    }

    fn finished(&self) -> bool {
        lock(&self.world).idle()
    }

    fn limits(&self) -> Option<(Instant, u64)> {
        Some(self.limits)
    }

    fn stopped(&mut self, lp: &EventLoop<Happening>) {
        if let Some(report) = self.on_stop.take() {
            report(lp.now(), lp.steps());
        }
    }
}
