//! site - what every part of the daemon needs to reach the queue and the
//! other Postfix services: the queue directory and its hashing, the wire
//! dialect, IPC timeouts, and the few settings that shape records and log
//! lines (Postfix: the `var_*` globals of `mail_params.c` that qmgr and the
//! delivery-status clients read).
//!
//! Built once at start-up from the [`Settings`] ([`Site::new`]) and shared
//! read-only ([`std::sync::Arc`]) by the queue store, the completion
//! worker, the agent bridge and the custom-transport framework.
//!
//! # Invariants
//! - [`Site::path`] names a queue file relative to the queue directory,
//!   the daemon's working directory; [`Site::private`] names a socket by
//!   the absolute queue directory (`/` inside a chroot).

use std::path::PathBuf;
use std::time::Duration;

use crate::config::settings::Settings;
use crate::postfix::dialect::Dialect;
use crate::postfix::queue_id::QueueHashing;

/// What every part of the daemon needs of the settings, in the form it
/// uses them.
#[derive(Clone, Debug)]
pub struct Site {
    /// `queue_directory` (the daemon has chdir-ed there; kept absolute for
    /// sockets and logs).
    pub queue_dir: PathBuf,
    /// `hash_queue_names`, `hash_queue_depth`.
    pub hashing: QueueHashing,
    /// Wire dialect of this Postfix version.
    pub dialect: Dialect,
    /// `qmgr_ipc_timeout`: bound on each IPC connect, read and write.
    pub ipc_timeout: Duration,
    /// How long to wait for a delivery agent's reply: the agents' own
    /// watchdog, `daemon_timeout` (a slow SMTP delivery is not a crash).
    pub agent_reply_timeout: Duration,
    /// `delay_logging_resolution_limit`.
    pub delay_resolution: u32,
    /// `disable_verp_bounces`.
    pub disable_verp_bounces: bool,
    /// `smtputf8_enable`.
    pub smtputf8_enable: bool,
    /// `minimal_backoff_time`: the retry delay when the bounce daemon
    /// fails, so a file whose bounces were not sent is kept.
    pub minimal_backoff: Duration,
    /// `soft_bounce`: custom transports defer what they would bounce.
    pub soft_bounce: bool,
}

impl Site {
    /// The site of `settings`, with the queue directory as the daemon sees
    /// it (`/` inside a chroot) and the wire dialect of the running
    /// Postfix.
    pub fn new(settings: &Settings, queue_dir: PathBuf, dialect: Dialect) -> Site {
        let global = &settings.params.global;
        Site {
            queue_dir,
            hashing: QueueHashing::new(&settings.hash_queue_names, settings.hash_queue_depth),
            dialect,
            ipc_timeout: Duration::from_millis(global.ipc_timeout.as_millis()),
            agent_reply_timeout: settings.daemon_timeout,
            delay_resolution: settings.delay_logging_resolution_limit,
            disable_verp_bounces: global.disable_verp_bounces,
            smtputf8_enable: settings.smtputf8_enable,
            minimal_backoff: Duration::from_millis(global.minimal_backoff_time.as_millis()),
            soft_bounce: settings.soft_bounce,
        }
    }

    /// The site of an unconfigured Postfix 3.7 ([`Settings::defaults`]) on
    /// the queue directory `queue_dir`; tools and tests start from it.
    pub fn defaults(queue_dir: PathBuf) -> Site {
        let dialect = Dialect::from_mail_version("3.7.11").expect("a fixed version parses");
        Site::new(&Settings::defaults(), queue_dir, dialect)
    }

    /// The path of `id` in `queue`, relative to the queue directory.
    pub fn path(&self, queue: &str, id: &str) -> PathBuf {
        PathBuf::from(self.hashing.queue_path(queue, id))
    }

    /// The socket of a `private/` service.
    pub fn private(&self, service: &str) -> PathBuf {
        // Built in one allocation: this runs for every agent connection.
        let mut path = PathBuf::with_capacity(
            self.queue_dir.as_os_str().len() + "/private/".len() + service.len(),
        );
        path.push(&self.queue_dir);
        path.push("private");
        path.push(service);
        path
    }
}
