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
//!    service's `syslog_name`; the values are checked in Postfix's order
//!    and typed once ([`Settings::resolve`]), and the parts below get what
//!    they need of them ([`Site`], the reader's limits, the resolver's
//!    times). The wire dialect is learned from the
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
//! Beside them, the control socket `private/oqmgr-ctl` for `oqmgr ctl`
//! ([`crate::control`]): `data_directory` is opened before chroot for the
//! suspensions' state file, the socket is made after the switch to
//! `mail_owner`, the saved suspensions are put back in force as the
//! scheduler starts, and saved once more at exit. With `[metrics]` in
//! `oqmgr.toml`, the metrics listener is bound before the switch to
//! `mail_owner` and served on a thread of its own ([`crate::metrics`]).
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
pub mod site;
pub mod worker;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;

use crate::clock::Clock;
use crate::config;
use crate::config::settings::Settings;
use crate::control;
use crate::custom_transports::{self, Framework, Registrations};
use crate::metrics;
use crate::postfix::chroot_uid::chroot_uid;
use crate::postfix::dialect::{self, Dialect};
use crate::postfix::log::{self, LogConfig, LogParams, Logger};
use crate::postfix::log_subscriber::PostfixSubscriber;
use crate::postfix::master::MasterChannel;
use crate::scheduler::{abort_on_panic, Scheduler};
use oqmgr::params::RawParams;

use active_table::ActiveTable;
use dirstore::{DirStore, Flow, Routing};
use site::Site;

/// How often an idle daemon tops the flow-control pipe up.
const FLOW_IDLE: Duration = Duration::from_secs(1);

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
    let oqmgr_toml = match custom_transports::oqmgr_toml::load(&config_dir) {
        Ok(file) => file,
        Err(e) => log::fatal(&e.to_string()),
    };
    let (settings, param_warnings) = match Settings::resolve(&raw) {
        Ok(resolved) => resolved,
        Err(fatal) => log::fatal(&fatal.message),
    };
    for w in param_warnings {
        tracing::warn!("{}", w.message);
    }

    // Before chdir and chroot: postconf lives outside the queue directory.
    let (dialect, dialect_line) = learn_dialect(&settings, &config_dir, &args.overrides);
    // Before chroot: data_directory lies outside the queue directory.
    let state_file = raw.get("data_directory").and_then(|dir| {
        match control::state_file::StateFile::open(Path::new(dir)) {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::warn!(
                    "control: open data_directory {dir}: {}; suspensions will not survive a restart",
                    log::errno_text(&e)
                );
                None
            }
        }
    });

    let queue_dir = settings.queue_directory.clone();
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
    // Before the switch to mail_owner: a port below 1024 needs root.
    let metrics_listener = oqmgr_toml.metrics.as_ref().and_then(|config| {
        match metrics::http_server::bind(config.listen) {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::warn!(
                    "metrics: cannot listen on {}: {}; no metrics or status page from this instance",
                    config.listen,
                    log::errno_text(&e)
                );
                None
            }
        }
    });
    let root = args.chroot.then_some(queue_dir.as_path());
    let user = args.unprivileged.then_some(settings.mail_owner.as_str());
    if let Err(e) = chroot_uid(root, user) {
        log::fatal(&e.to_string());
    }
    // After chroot and the switch to mail_owner, so the socket is theirs.
    let ctl_listener = match control::server::bind(Path::new("private")) {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!(
                "control: cannot make private/{}: {}; oqmgr ctl will not reach this instance",
                control::protocol::SOCKET,
                log::errno_text(&e)
            );
            None
        }
    };
    // Inside a chroot the queue directory is "/": sockets are found there.
    let queue_dir = if args.chroot {
        PathBuf::from("/")
    } else {
        queue_dir
    };
    let site = Arc::new(Site::new(&settings, queue_dir, dialect));
    abort_on_panic();

    let global = &settings.params.global;
    let process_limit = settings.default_process_limit;
    let rewrite_socket = site.private(&settings.rewrite_service_name);
    let limits = settings.read_limits();
    let routing = Routing {
        default_filter_nexthop: global.default_filter_nexthop.clone(),
        myhostname: settings.myhostname.clone(),
    };
    // `ipc_idle` and `ipc_ttl` bound the trivial-rewrite connection's life.
    let resolver_config = resolver::ResolverConfig {
        ipc_timeout: site.ipc_timeout,
        ipc_idle: settings.ipc_idle,
        ipc_ttl: settings.ipc_ttl,
        ..resolver::ResolverConfig::default()
    };
    let params = settings.params;
    let system = actix_rt::System::new();
    system.block_on(async move {
        let clock = Clock::wall();
        dirstore::recover_active(&site, clock.wall_now());
        let resolver = resolver::Resolver::new(&rewrite_socket, resolver_config);
        let worker = match worker::Worker::start(Arc::clone(&site), clock) {
            Ok(w) => w,
            Err(e) => log::fatal(&format!("start completion worker: {}", log::errno_text(&e))),
        };
        let agents_worker = worker.clone();
        let active: ActiveTable = Arc::default();
        let active_times = Arc::clone(&active);
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
        custom_transports::oqmgr_toml::start(&oqmgr_toml.transports, clock, &mut registrations);
        register(&mut registrations);
        for name in registrations.names() {
            tracing::info!("transport {name}: served inside the queue manager");
        }
        let metrics = metrics_listener
            .as_ref()
            .and(oqmgr_toml.metrics.clone())
            .map(|config| {
                let times = Arc::clone(&active_times);
                Arc::new(
                    metrics::Metrics::new(config).with_message_times(Box::new(move |id| {
                        times.get(id).map(|m| {
                            (
                                millis(m.env.arrival_sec, m.env.arrival_usec),
                                millis(m.active_arrival.sec, m.active_arrival.usec),
                            )
                        })
                    })),
                )
            });
        let mut builder = registrations
            .register(
                &framework,
                Scheduler::builder(params, Arc::new(Mutex::new(store))),
            )
            .with_default_agent(agents)
            .with_clock(clock);
        if let Some(m) = &metrics {
            builder = builder.with_metrics(Arc::clone(m));
        }
        let scheduler = builder.start();

        let info = control::live_query::DaemonInfo {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").into(),
            started_ms: clock.wall_now().as_millis(),
            postfix: dialect_line,
            tally: Default::default(),
            metrics: metrics
                .as_ref()
                .map(|m| format!("http://{}/", m.config.listen)),
        };
        if let (Some(m), Some(listener)) = (metrics, metrics_listener) {
            let listen = m.config.listen;
            let server =
                metrics::http_server::MetricsServer::new(scheduler.clone(), m, info.clone());
            match Arc::new(server).start(listener) {
                Ok(()) => tracing::info!(
                    "metrics: serving http://{listen}/metrics and the status page http://{listen}/"
                ),
                Err(e) => tracing::warn!("metrics: cannot start: {}", log::errno_text(&e)),
            }
        }
        let ctl = Arc::new(control::server::ControlServer::new(
            scheduler.clone(),
            info,
            state_file,
        ));
        ctl.restore().await;
        if let Some(listener) = ctl_listener {
            Arc::clone(&ctl).start(listener);
        }

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
        ctl.save_now().await;
    });
    std::process::exit(0);
}

/// A `sec`, `usec` time as milliseconds (0 before the epoch).
fn millis(sec: i64, usec: i64) -> u64 {
    u64::try_from(sec.saturating_mul(1000).saturating_add(usec / 1000)).unwrap_or(0)
}

/// The wire dialect of the running Postfix ([`dialect::learn`]), logged:
/// `mail_version` when main.cf or `-o` sets it, else what
/// `$command_directory/postconf` says (the value is compiled in, so the
/// built-in default of the configuration is no answer).
fn learn_dialect(
    settings: &Settings,
    config_dir: &Path,
    overrides: &[(String, String)],
) -> (Dialect, String) {
    let in_main_cf = config::MainCf::read(&config_dir.join("main.cf"))
        .map(|cf| cf.entries.iter().any(|e| e.name == "mail_version"))
        .unwrap_or(false);
    let configured = (in_main_cf || overrides.iter().any(|(n, _)| n == "mail_version"))
        .then_some(settings.mail_version.as_str());
    let learned = dialect::learn(
        configured,
        &settings.command_directory,
        config_dir,
        dialect::POSTCONF_TIMEOUT,
    );
    for w in &learned.warnings {
        tracing::warn!("{w}");
    }
    let line = learned.info_line();
    tracing::info!("{line}");
    (learned.dialect, line)
}
