//! The metrics listener: a small HTTP/1.1 server (hyper) on a thread of
//! its own, serving `/metrics`, the status page `/` and its JSON
//! `/status.json`, and sampling the status page's history.
//!
//! It runs on its own thread and tokio runtime, so parsing requests and
//! encoding answers never take the scheduling thread; what it shows comes
//! from the live-state query ([`crate::control::live_query::live_state`]),
//! whose messages each actor answers between two of its steps. Every wait
//! is bounded: request headers must arrive within [`HEADER_TIMEOUT`], a
//! connection lives at most [`CONNECTION_LIFETIME`], at most
//! [`MAX_CONNECTIONS`] are served at once (more are closed at once), and a
//! scheduler that does not answer within [`STATE_TIMEOUT`] gets a 503.
//! Only `GET` and `HEAD` are served, and no route changes anything.
//!
//! The listening socket is made by [`bind`] before the daemon drops
//! privileges, with `SO_REUSEPORT`, so the queue manager master(8) starts
//! at a `postfix reload` can listen while the old one finishes (the kernel
//! lets only sockets of the same user share the port).

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ACCEPT, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use oqmgr::live_state::LiveState;
use tokio::sync::Semaphore;

use super::exposition::{self, Format};
use super::history::{status_json, History};
use super::{Metrics, SAMPLE_EVERY};
use crate::control::live_query::{live_state, DaemonInfo};
use crate::postfix::log_format::LocalTime;
use crate::scheduler::Scheduler;

/// How long a client may take to send its request headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one connection is kept (scrapers reconnect).
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 16;
/// How long a request waits for the scheduler's state.
pub const STATE_TIMEOUT: Duration = Duration::from_secs(10);
/// Series the status page draws at most.
pub const PAGE_SERIES: usize = 8;

/// The status page.
const PAGE: &str = include_str!("status_page.html");

/// Makes the listening socket (`SO_REUSEADDR`, `SO_REUSEPORT`).
pub fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(128)?;
    Ok(socket.into())
}

/// What the server needs.
pub struct MetricsServer {
    /// The running scheduler.
    scheduler: Scheduler,
    /// What is counted as it happens, and the configuration.
    metrics: Arc<Metrics>,
    /// The daemon's facts.
    info: DaemonInfo,
    /// The status page's samples.
    history: Mutex<History>,
    /// Bounds the connections served at once.
    slots: Arc<Semaphore>,
}

impl MetricsServer {
    /// A server for `scheduler`.
    pub fn new(scheduler: Scheduler, metrics: Arc<Metrics>, info: DaemonInfo) -> MetricsServer {
        let history = History::new(metrics.config.samples(), metrics.config.top);
        MetricsServer {
            scheduler,
            metrics,
            info,
            history: Mutex::new(history),
            slots: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
        }
    }

    /// Serves `listener` and samples the history on a new thread.
    ///
    /// # Errors
    /// The thread or its runtime could not be made.
    pub fn start(self: Arc<Self>, listener: std::net::TcpListener) -> io::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || runtime.block_on(self.run(listener)))?;
        Ok(())
    }

    /// The thread's work: the sampler and the accept loop.
    async fn run(self: Arc<Self>, listener: std::net::TcpListener) {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(
                    "metrics: cannot serve: {}",
                    crate::postfix::log::errno_text(&e)
                );
                return;
            }
        };
        let sampler = Arc::clone(&self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Some(state) = sampler.state().await {
                    sampler
                        .history
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(&state);
                }
            }
        });
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("metrics: accept: {}", crate::postfix::log::errno_text(&e));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() else {
                tracing::warn!(
                    "metrics: closed a connection from {peer}: more than {MAX_CONNECTIONS} at once"
                );
                continue;
            };
            let server = Arc::clone(&self);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let server = Arc::clone(&server);
                    async move { Ok::<_, Infallible>(server.answer(req).await) }
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service);
                let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
                drop(slot);
            });
        }
    }

    /// The scheduler's state now, `None` when it does not answer in time.
    async fn state(&self) -> Option<LiveState> {
        tokio::time::timeout(STATE_TIMEOUT, live_state(self.scheduler.host(), false))
            .await
            .ok()
            .flatten()
    }

    /// Answers one request.
    async fn answer(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        match req.uri().path() {
            "/" => body(StatusCode::OK, "text/html; charset=utf-8", PAGE.into()),
            "/metrics" => {
                let format =
                    Format::from_accept(req.headers().get(ACCEPT).and_then(|v| v.to_str().ok()));
                let Some(state) = self.state().await else {
                    return unavailable();
                };
                let mut info = self.info.clone();
                info.tally = self.scheduler.host().tally();
                let text = exposition::encode(&self.metrics, &state, &info, format);
                body(StatusCode::OK, format.content_type(), text.into())
            }
            "/status.json" => {
                let Some(state) = self.state().await else {
                    return unavailable();
                };
                let json = {
                    let history = self.history.lock().unwrap_or_else(|e| e.into_inner());
                    status_json(&state, &self.info, &history, PAGE_SERIES, &|ms| {
                        LocalTime::at((ms / 1000) as libc::time_t).to_string()
                    })
                };
                match serde_json::to_vec(&json) {
                    Ok(bytes) => body(StatusCode::OK, "application/json", bytes.into()),
                    Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}\n")),
                }
            }
            _ => text(
                StatusCode::NOT_FOUND,
                "not found: try /, /metrics or /status.json\n",
            ),
        }
    }
}

/// A response with `bytes` of `content_type`, never cached.
fn body(status: StatusCode, content_type: &'static str, bytes: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(bytes));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A plain-text response.
fn text(status: StatusCode, words: &str) -> Response<Full<Bytes>> {
    body(
        status,
        "text/plain; charset=utf-8",
        Bytes::copy_from_slice(words.as_bytes()),
    )
}

/// The scheduler did not answer in time (or is shutting down).
fn unavailable() -> Response<Full<Bytes>> {
    text(
        StatusCode::SERVICE_UNAVAILABLE,
        "the queue manager did not answer in time\n",
    )
}
