//! The queue manager daemon run by master(8) (Postfix: `oqmgr/qmgr.c`
//! `main`, `pre_init`, `post_init`, `qmgr_loop`, on the trigger-server
//! skeleton of `master/trigger_server.c`).
//!
//! Installed with one master.cf line in place of Postfix's queue manager:
//! ```text
//! qmgr      unix  n       -       n       300     1       oqmgr-rs
//! ```
//! (the command is looked up in `daemon_directory`; see the README for a
//! path outside it).
//!
//! # Start-up, in Postfix's order
//! 1. argv as master builds it ([`MasterArgs`](crate::postfix::args::MasterArgs)); refuse a terminal, a
//!    process limit other than 1 and extra words, with Postfix's texts.
//! 2. main.cf through figment ([`crate::config::load`]) with the `-o`
//!    overrides last; logging switches to syslog or postlogd under the
//!    service's `syslog_name`. The wire dialect is learned from the
//!    installed Postfix and logged ([`crate::postfix::dialect::learn`]).
//! 3. chdir to `queue_directory`, take descriptors 3..6 from master, then
//!    chroot (`-c`) and drop to `mail_owner` (`-u`).
//! 4. Move whatever is in `active/` back to `incoming/`
//!    ([`dirstore::recover_active`]); start the scheduler: the supervisor
//!    scans `incoming/` and `deferred/` at once and `deferred/` every
//!    `queue_run_delay`.
//! 5. Serve triggers from `public/qmgr` and master's wakeups until master
//!    goes away (reload or stop): then exit 0, leaving files in `active/`
//!    for the next instance, as oqmgr does.
//!
//! # Parts
//! [`dirstore::DirStore`] (queue files), [`resolver::Resolver`]
//! (trivial-rewrite, blocking, as oqmgr's), [`bridge::PostfixAgents`] (delivery agents),
//! [`worker::Worker`] (bounce, defer and trace daemons; file moves),
//! [`adhoc`] (status lines), custom transports from `oqmgr.toml` or
//! [`main_with`] ([`crate::custom_transports`]). Flow control: the daemon puts one
//! token in master's flow pipe for each file it takes from `incoming/`, as
//! it takes it, and tops the pipe up to `default_process_limit` after a
//! second without any, so cleanup(8) is never throttled by a silent queue
//! manager and an idle daemon does not poll ([`dirstore::Flow`]).

pub mod active_table;
pub mod adhoc;
pub mod bounce_log;
pub mod bridge;
pub mod dirstore;
pub mod envelope;
pub mod recipient_log;
pub mod resolver;
pub mod worker;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use oqmgr::params::Params;

use crate::clock::Clock;
use crate::config;
use crate::config::mail_params::flag;
use crate::custom_transports::{self, Framework, Registrations};
use crate::postfix::chroot_uid::chroot_uid;
use crate::postfix::dialect::{self, Dialect};
use crate::postfix::log::{self, LogConfig, LogParams, Logger};
use crate::postfix::log_subscriber::PostfixSubscriber;
use crate::postfix::master::MasterChannel;
use crate::postfix::queue_file_parse::ReadLimits;
use crate::postfix::queue_id::QueueHashing;
use crate::scheduler::{abort_on_panic, Scheduler};
use oqmgr::params::RawParams;

use active_table::{ActiveTable, Site};
use dirstore::{DirStore, Flow, Routing};

/// How often an idle daemon tops the flow-control pipe up.
const FLOW_IDLE: Duration = Duration::from_secs(1);

/// One main.cf value, or `default`.
fn get<'a>(raw: &'a RawParams, name: &str, default: &'a str) -> &'a str {
    raw.get(name).map(String::as_str).unwrap_or(default)
}

/// The logging parameters from main.cf.
fn log_params(raw: &RawParams) -> LogParams {
    let s = |n: &str| raw.get(n).cloned();
    LogParams {
        syslog_name: s("syslog_name"),
        syslog_facility: s("syslog_facility"),
        maillog_file: s("maillog_file"),
        maillog_file_prefixes: s("maillog_file_prefixes"),
        myhostname: s("myhostname"),
        queue_directory: s("queue_directory").map(PathBuf::from),
        postlog_service_name: s("postlog_service_name"),
        smtputf8_enable: s("smtputf8_enable").map(|v| v.eq_ignore_ascii_case("yes")),
    }
}

/// Runs the daemon; never returns.
pub fn main() -> ! {
    main_with(|_| {})
}

/// Runs the daemon with custom transports: `register` is called once,
/// inside the actix System, to add transport actors
/// ([`crate::custom_transports`]) beside those of `oqmgr.toml`; never returns.
pub fn main_with(register: impl FnOnce(&mut Registrations)) -> ! {
    let env = |name: &str| std::env::var(name).ok();
    let args = log::bootstrap();

    let config_dir = config::config_directory(None);
    let overrides: Vec<String> = args
        .overrides
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect();
    let (raw, config_warnings) = match config::load(&config_dir, &overrides) {
        Ok(loaded) => loaded,
        Err(e) => log::fatal(&e.to_string()),
    };
    match LogConfig::resolve(&args, &log_params(&raw), env) {
        Ok(cfg) => {
            log::install(Logger::new(cfg));
        }
        Err(e) => log::fatal(&e.to_string()),
    }
    let _ = tracing::subscriber::set_global_default(PostfixSubscriber::new(args.verbose));
    for w in config_warnings {
        tracing::warn!("{}", w.message);
    }
    // Read before chroot: the file lives in the config directory.
    let custom = match custom_transports::oqmgr_toml::load(&config_dir) {
        Ok(kinds) => kinds,
        Err(e) => log::fatal(&e.to_string()),
    };
    let (params, param_warnings) = match config::mail_params::resolve(&raw) {
        Ok(resolved) => resolved,
        Err(fatal) => log::fatal(&fatal.message),
    };
    for w in param_warnings {
        tracing::warn!("{}", w.message);
    }

    // Before chdir and chroot: postconf lives outside the queue directory.
    let dialect = learn_dialect(&raw, &config_dir, &args.overrides);

    let queue_dir = PathBuf::from(get(&raw, "queue_directory", "/var/spool/postfix"));
    if let Err(e) = std::env::set_current_dir(&queue_dir) {
        log::fatal(&format!(
            "chdir(\"{}\"): {}",
            queue_dir.display(),
            log::errno_text(&e)
        ));
    }
    let mut channel = match MasterChannel::from_env(&args) {
        Ok(c) => c,
        Err(e) => log::fatal(&e.to_string()),
    };
    let mail_owner = get(&raw, "mail_owner", "postfix").to_string();
    let root = args.chroot.then_some(queue_dir.as_path());
    let user = args.unprivileged.then_some(mail_owner.as_str());
    if let Err(e) = chroot_uid(root, user) {
        log::fatal(&e.to_string());
    }
    // Inside a chroot the queue directory is "/": sockets are found there.
    let queue_dir = if args.chroot {
        PathBuf::from("/")
    } else {
        queue_dir
    };
    let site = Arc::new(site(&raw, &params, queue_dir, dialect));
    abort_on_panic();

    let process_limit: usize = get(&raw, "default_process_limit", "100")
        .parse()
        .unwrap_or(100);
    let rewrite_socket = site.private(get(&raw, "rewrite_service_name", "rewrite"));
    let limits = ReadLimits {
        recipient_limit: params.global.message_recipient_limit as usize,
        fudge_factor: params.global.fudge_factor,
        verp_filter: get(&raw, "verp_delimiter_filter", "-=+")
            .as_bytes()
            .to_vec(),
        confirm_delay_cleared: params.global.confirm_delay_cleared,
        record_limit: None,
    };
    let routing = Routing {
        default_filter_nexthop: params.global.default_filter_nexthop.clone(),
        myhostname: get(&raw, "myhostname", "localhost").to_string(),
    };

    // `ipc_idle` and `ipc_ttl` bound the trivial-rewrite connection's life.
    let raw_times = (
        get(&raw, "ipc_idle", "5s").to_string(),
        get(&raw, "ipc_ttl", "1000s").to_string(),
    );
    let system = actix_rt::System::new();
    system.block_on(async move {
        let clock = Clock::wall();
        dirstore::recover_active(&site, clock.wall_now());
        let resolver = resolver::Resolver::new(
            &rewrite_socket,
            resolver::ResolverConfig {
                ipc_timeout: site.ipc_timeout,
                ipc_idle: seconds(&raw_times.0, 5),
                ipc_ttl: seconds(&raw_times.1, 1000),
                ..resolver::ResolverConfig::default()
            },
        );
        let worker = match worker::Worker::start(Arc::clone(&site), clock) {
            Ok(w) => w,
            Err(e) => log::fatal(&format!("start completion worker: {}", log::errno_text(&e))),
        };
        let agents_worker = worker.clone();
        let active: ActiveTable = Arc::default();
        let flow = channel.flow().map(|pipe| Flow {
            pipe,
            process_limit,
            taken: Arc::default(),
        });
        let taken = flow.as_ref().map(|f| Arc::clone(&f.taken));
        let store = DirStore::new(
            Arc::clone(&site),
            clock,
            limits,
            routing,
            resolver,
            Arc::clone(&active),
            worker,
        )
        .with_flow(flow);
        let framework = Framework::new(Arc::clone(&site), Arc::clone(&active), clock);
        let agents = bridge::PostfixAgents::new(Arc::clone(&site), active)
            .with_worker(agents_worker)
            .start_agent();
        let mut registrations = Registrations::default();
        custom_transports::oqmgr_toml::start(&custom, clock, &mut registrations);
        register(&mut registrations);
        for name in registrations.names() {
            tracing::info!("transport {name}: served inside the queue manager");
        }
        let scheduler = registrations
            .register(
                &framework,
                Scheduler::builder(params, Arc::new(Mutex::new(store))),
            )
            .with_default_agent(agents)
            .with_clock(clock)
            .start();

        if let (Some(flow), Some(taken)) = (channel.flow(), taken) {
            // The store puts a token per file as it takes it; this tops the
            // pipe up to the process limit after a quiet second.
            actix::spawn(async move {
                let mut tick = actix::clock::interval(FLOW_IDLE);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    if taken.swap(0, Ordering::Relaxed) > 0 {
                        continue;
                    }
                    if let Err(e) = flow.regulate(process_limit, false, false) {
                        tracing::warn!("mail_flow: {}", log::errno_text(&e));
                    }
                }
            });
        }
        let gone = channel.master_gone();
        let mut triggers = match channel.triggers() {
            Ok(t) => t,
            Err(e) => log::fatal(&format!("listen endpoints: {}", log::errno_text(&e))),
        };
        tokio::pin!(gone);
        loop {
            tokio::select! {
                got = triggers.next() => match got {
                    Some(bytes) => scheduler.trigger(&bytes),
                    None => break,
                },
                _ = &mut gone => break,
            }
        }
    });
    std::process::exit(0);
}

/// The wire dialect of the running Postfix ([`dialect::learn`]), logged:
/// `mail_version` when main.cf or `-o` sets it, else what
/// `$command_directory/postconf` says (the value is compiled in, so the
/// built-in default of the configuration is no answer).
fn learn_dialect(raw: &RawParams, config_dir: &Path, overrides: &[(String, String)]) -> Dialect {
    let in_main_cf = config::MainCf::read(&config_dir.join("main.cf"))
        .map(|cf| cf.entries.iter().any(|e| e.name == "mail_version"))
        .unwrap_or(false);
    let configured = (in_main_cf || overrides.iter().any(|(n, _)| n == "mail_version"))
        .then(|| get(raw, "mail_version", ""));
    let command_dir = Path::new(get(raw, "command_directory", "/usr/sbin"));
    let learned = dialect::learn(
        configured,
        command_dir,
        config_dir,
        dialect::POSTCONF_TIMEOUT,
    );
    for w in &learned.warnings {
        tracing::warn!("{w}");
    }
    tracing::info!("{}", learned.info_line());
    learned.dialect
}

/// The daemon-wide settings from main.cf.
fn site(raw: &RawParams, params: &Params, queue_dir: PathBuf, dialect: Dialect) -> Site {
    let depth = get(raw, "hash_queue_depth", "1").parse().unwrap_or(1);
    Site {
        queue_dir,
        hashing: QueueHashing::new(get(raw, "hash_queue_names", "deferred, defer"), depth),
        dialect,
        ipc_timeout: Duration::from_millis(params.global.ipc_timeout.as_millis()),
        agent_reply_timeout: seconds(get(raw, "daemon_timeout", "18000s"), 18000),
        delay_resolution: get(raw, "delay_logging_resolution_limit", "2")
            .parse()
            .unwrap_or(2),
        disable_verp_bounces: params.global.disable_verp_bounces,
        smtputf8_enable: flag(raw, "smtputf8_enable", true),
        minimal_backoff: Duration::from_millis(params.global.minimal_backoff_time.as_millis()),
        soft_bounce: flag(raw, "soft_bounce", false),
    }
}

/// A Postfix time value in seconds (`conv_time`), else `default` seconds.
fn seconds(value: &str, default: u32) -> Duration {
    Duration::from_secs(u64::from(
        oqmgr::params::parse_time(value, 's').unwrap_or(default),
    ))
}
