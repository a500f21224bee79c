//! Scanner actors: the walk of one queue directory and the admission of
//! its files (Postfix: `qmgr_scan.c`, and the calls of `qmgr_active.c`
//! `qmgr_active_feed` and `qmgr_message.c` into the queue files).
//!
//! One [`ScannerActor`] per queue (`incoming`, `deferred`) serves that
//! queue's walk: `ScanStart` has the store take a fresh listing, `ScanNext`
//! hands out the store's next file, and `Admit` moves a file into
//! `active/` and reads its envelope and first batch of recipients. The
//! event loop awaits each answer and puts it on its bus for the
//! supervisor, where the effect that asked for it was. All
//! file access goes through the
//! [`QueueStore`](crate::queue_store::QueueStore) contract, so tests use
//! the simulator's queue files (the `oqmgr-devtools` package's `simworld`)
//! and the daemon real directories.
//!
//! # Invariants
//! - a listing is a snapshot taken at scan start (Postfix reads the
//!   directory as it goes; a snapshot is the deterministic equivalent); a
//!   listed file that left the queue meanwhile is never admitted twice
//!   (the store skips it, or its admission fails);
//! - every `ScanNext` and `Admit` is answered (`ScanResult`,
//!   `Admitted`/`AdmitFailed`): the supervisor keeps one admission in
//!   flight and would stall forever on a lost answer.

use std::sync::Arc;

use actix::{Actor, Context, Handler, Message, MessageResult};
use oqmgr::effect::Msg;
use oqmgr::entry::MessageId;
use oqmgr::message::MessageInfo;
use oqmgr::name::Name;
use oqmgr::scan::{QueueName, ScanFlags};

use crate::host::Host;

/// Starts a new walk of the queue.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ScanStart {
    /// The scan's flags (kept for the log; the supervisor owns them).
    pub flags: ScanFlags,
}

/// Asks for the next file of the walk; answered with `Msg::ScanResult`.
#[derive(Debug, Message)]
#[rtype(result = "Msg")]
pub struct ScanNext;

/// Admits one file; answered with `Msg::Admitted` or `Msg::AdmitFailed`.
#[derive(Debug, Message)]
#[rtype(result = "Msg")]
pub struct Admit {
    /// Its queue ID.
    pub id: String,
    /// The scan's flags, which become the message's.
    pub flags: ScanFlags,
    /// The number the core gave the message.
    pub message: MessageId,
    /// Read at most this many recipients now.
    pub batch: u32,
}

/// The scanner of one queue directory.
pub struct ScannerActor {
    /// Which queue.
    queue: QueueName,
    /// The scheduler's shared state.
    host: Arc<Host>,
    /// When the walk in progress started (timed for the metrics).
    walk_started: Option<tokio::time::Instant>,
}

impl ScannerActor {
    /// A scanner of `queue` with no walk in progress.
    pub fn new(queue: QueueName, host: Arc<Host>) -> ScannerActor {
        ScannerActor {
            queue,
            host,
            walk_started: None,
        }
    }
}

impl Actor for ScannerActor {
    type Context = Context<Self>;
}

impl Handler<ScanStart> for ScannerActor {
    type Result = ();
    fn handle(&mut self, msg: ScanStart, _ctx: &mut Context<Self>) {
        let files = self.host.store().scan_start(self.queue);
        if self.host.metrics().is_some() {
            self.walk_started = Some(crate::clock::io_now());
        }
        tracing::debug!(queue = %self.queue, flags = %msg.flags, files, "scan start");
    }
}

impl Handler<ScanNext> for ScannerActor {
    type Result = MessageResult<ScanNext>;
    fn handle(&mut self, _msg: ScanNext, _ctx: &mut Context<Self>) -> MessageResult<ScanNext> {
        let found = self.host.store().scan_next(self.queue);
        if found.is_none() {
            if let (Some(m), Some(started)) = (self.host.metrics(), self.walk_started.take()) {
                m.scanned(self.queue, crate::clock::io_now() - started);
            }
        }
        MessageResult(Msg::ScanResult {
            queue: self.queue,
            id: found.map(Into::into),
        })
    }
}

impl Handler<Admit> for ScannerActor {
    type Result = MessageResult<Admit>;
    fn handle(&mut self, msg: Admit, _ctx: &mut Context<Self>) -> MessageResult<Admit> {
        let now = self.host.clock().now();
        let read = {
            let mut store = self.host.store();
            store
                .admit(self.queue, &msg.id, msg.flags, now)
                .and_then(|env| store.read(&msg.id, msg.batch).map(|b| (env, b)))
        };
        match read {
            Ok((env, batch)) => {
                let id = Name::from(msg.id);
                self.host
                    .registry()
                    .insert_queue_id(msg.message, id.clone());
                MessageResult(Msg::Admitted {
                    info: Box::new(MessageInfo {
                        message: msg.message,
                        id,
                        sender: env.sender.into(),
                        create_time: env.create_time,
                        warning: env.warning,
                        flags: msg.flags | env.flags,
                        single_rcpt: env.single_rcpt,
                    }),
                    recipients: batch.recipients,
                    more: batch.more,
                })
            }
            Err(why) => {
                // The store has logged whatever Postfix logs for this file
                // (`QueueStore` contract); a second line would be noise in
                // a log parser's eyes.
                tracing::debug!(queue = %self.queue, id = %msg.id, "not admitted: {why}");
                MessageResult(Msg::AdmitFailed { id: msg.id.into() })
            }
        }
    }
}
