//! The control socket server: `private/oqmgr-ctl` in the queue directory.
//!
//! The socket is made after chroot and the switch to `mail_owner`, inside
//! `private/` (mode 0700, owned by `mail_owner`, as `postfix start` makes
//! it), with mode 0600 itself: only root and `mail_owner` reach it, as
//! Postfix's private services. Each connection is also checked by its peer
//! credentials (root or the daemon's own user). A stale socket left by an
//! earlier instance (`kill -9`) is replaced; the socket is never removed
//! at exit, as the next instance may already have made its own.
//!
//! Each connection carries one request line and gets one reply line
//! ([`super::protocol`]). It runs as a task of its own on the actors'
//! thread, and every wait in it is bounded: the request must arrive within
//! [`READ_TIMEOUT`] and be at most [`super::protocol::MAX_REQUEST`] bytes,
//! the reply must be taken within [`WRITE_TIMEOUT`], and at most
//! [`MAX_CONNECTIONS`] are served at once. A request that breaks a rule gets
//! an error reply when one can still be written, else the connection is
//! dropped; either way a warning is logged, and the scheduler never waits
//! for a client.
//!
//! The suspensions are saved to the state file after every command that
//! changes them, every [`SAVE_EVERY`] when the set of files they deferred
//! grew, and at exit ([`ControlServer::save_now`]).

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use oqmgr::control::Command;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;

use super::live_query::{live_state, DaemonInfo, InspectSuspensions};
use super::protocol::{Reply, Request, MAX_REQUEST, SOCKET, VERSION};
use super::state_file::StateFile;
use crate::scheduler::Scheduler;

/// How long a client may take to send its request.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client may take to read its reply.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more are turned away.
pub const MAX_CONNECTIONS: usize = 16;
/// How often the suspensions are saved when the files they deferred
/// changed.
pub const SAVE_EVERY: Duration = Duration::from_secs(1);

/// Makes the listening socket `private_dir/oqmgr-ctl`, mode 0600,
/// replacing a stale one (only a socket: anything else there is an error).
pub fn bind(private_dir: &Path) -> io::Result<std::os::unix::net::UnixListener> {
    let path = private_dir.join(SOCKET);
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(&path)?,
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = std::os::unix::net::UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// What the server needs: the scheduler, the daemon's facts, the state
/// file.
pub struct ControlServer {
    /// The running scheduler.
    scheduler: Scheduler,
    /// The daemon's facts, less the tally (read at each request).
    info: DaemonInfo,
    /// Where suspensions are saved, if `data_directory` could be opened.
    state_file: Option<StateFile>,
    /// The suspensions' version last saved.
    saved: AtomicU64,
    /// Bounds the connections served at once.
    slots: Arc<Semaphore>,
}

impl ControlServer {
    /// A server for `scheduler`.
    pub fn new(scheduler: Scheduler, info: DaemonInfo, state_file: Option<StateFile>) -> Self {
        ControlServer {
            scheduler,
            info,
            state_file,
            saved: AtomicU64::new(0),
            slots: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
        }
    }

    /// Reads the state file and puts its suspensions back in force; a
    /// file that cannot be read is logged and left alone.
    pub async fn restore(&self) {
        let Some(file) = &self.state_file else {
            return;
        };
        match file.load() {
            Ok(Some(suspensions)) if !suspensions.is_empty() => {
                let command = Command::Restore { suspensions };
                let _ = self.scheduler.host().command(command).await;
                self.save_now().await;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(
                "control: cannot read the state file {}: {}; no suspension restored",
                super::state_file::NAME,
                crate::postfix::log::errno_text(&e)
            ),
        }
    }

    /// Saves the suspensions if they changed since the last save.
    pub async fn save_now(&self) {
        let Some(file) = &self.state_file else {
            return;
        };
        let Ok((version, suspensions)) = self.scheduler.supervisor().send(InspectSuspensions).await
        else {
            return;
        };
        if version == self.saved.load(Ordering::Relaxed) {
            return;
        }
        match file.save(&suspensions) {
            Ok(()) => self.saved.store(version, Ordering::Relaxed),
            Err(e) => tracing::warn!(
                "control: cannot save the state file {}: {}",
                super::state_file::NAME,
                crate::postfix::log::errno_text(&e)
            ),
        }
    }

    /// Serves `listener` and saves changed suspensions every
    /// [`SAVE_EVERY`], as tasks on the current actix System.
    pub fn start(self: Arc<Self>, listener: std::os::unix::net::UnixListener) {
        let saver = Arc::clone(&self);
        actix::spawn(async move {
            let mut tick = actix::clock::interval(SAVE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                saver.save_now().await;
            }
        });
        let listener = match UnixListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(
                    "control: cannot serve {SOCKET}: {}",
                    crate::postfix::log::errno_text(&e)
                );
                return;
            }
        };
        actix::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        let server = Arc::clone(&self);
                        actix::spawn(async move { server.connection(stream).await });
                    }
                    Err(e) => {
                        tracing::warn!("control: accept: {}", crate::postfix::log::errno_text(&e));
                        actix::clock::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
    }

    /// Serves one connection: one request, one reply.
    async fn connection(self: Arc<Self>, mut stream: UnixStream) {
        let uid = stream.peer_cred().map(|c| c.uid()).ok();
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        if !uid.is_some_and(|u| u == 0 || u == me) {
            tracing::warn!(
                "control: rejected connection from uid {}: only root and the mail owner may use {SOCKET}",
                uid.map_or("unknown".into(), |u| u.to_string())
            );
            return;
        }
        let who = format!("uid {}", uid.unwrap_or(0));
        let Ok(_slot) = Arc::clone(&self.slots).try_acquire_owned() else {
            tracing::warn!("control: rejected request from {who}: more than {MAX_CONNECTIONS} connections at once");
            self.reply(
                &mut stream,
                &Reply::error("too many control connections; try again"),
            )
            .await;
            return;
        };
        let line = match tokio::time::timeout(READ_TIMEOUT, read_line(&mut stream)).await {
            Err(_) => {
                tracing::warn!(
                    "control: rejected request from {who}: no complete request within {} s",
                    READ_TIMEOUT.as_secs()
                );
                self.reply(&mut stream, &Reply::error("timeout reading the request"))
                    .await;
                return;
            }
            Ok(Err(why)) => {
                tracing::warn!("control: rejected request from {who}: {why}");
                self.reply(&mut stream, &Reply::error(why)).await;
                // Take (a bounded part of) what the client still sends, so
                // closing does not reset the connection before it has read
                // the reply.
                let mut sink = [0u8; 4096];
                let mut left = 4 * MAX_REQUEST;
                let _ = tokio::time::timeout(Duration::from_secs(1), async {
                    while left > 0 {
                        match stream.read(&mut sink).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => left = left.saturating_sub(n),
                        }
                    }
                })
                .await;
                return;
            }
            Ok(Ok(line)) => line,
        };
        let request = match Request::decode(&line) {
            Ok(r) => r,
            Err(why) => {
                tracing::warn!("control: rejected request from {who}: {why}");
                self.reply(&mut stream, &Reply::error(why)).await;
                return;
            }
        };
        let reply = self.answer(request).await;
        self.reply(&mut stream, &reply).await;
    }

    /// Carries out one request.
    async fn answer(&self, request: Request) -> Reply {
        match request {
            Request::State { detail } => {
                let Some(state) = live_state(self.scheduler.host(), detail).await else {
                    return Reply::error("the scheduler is shutting down");
                };
                let mut info = self.info.clone();
                info.tally = self.scheduler.host().tally();
                Reply {
                    v: VERSION,
                    ok: true,
                    state: Some(state),
                    daemon: Some(info),
                    ..Reply::default()
                }
            }
            Request::Command(command) => {
                let changes = matches!(command, Command::Suspend { .. } | Command::Resume { .. });
                let Some(done) = self.scheduler.host().command(command).await else {
                    return Reply::error("the scheduler is shutting down");
                };
                if changes {
                    self.save_now().await;
                }
                Reply {
                    v: VERSION,
                    ok: true,
                    done,
                    ..Reply::default()
                }
            }
        }
    }

    /// Writes `reply`, giving up after [`WRITE_TIMEOUT`].
    async fn reply(&self, stream: &mut UnixStream, reply: &Reply) {
        let line = reply.line();
        match tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(line.as_bytes())).await {
            Ok(Ok(())) => {
                let _ = stream.shutdown().await;
            }
            Ok(Err(_)) => {}
            Err(_) => tracing::warn!(
                "control: dropped a client that did not read its reply within {} s",
                WRITE_TIMEOUT.as_secs()
            ),
        }
    }
}

/// Reads one request line (up to its newline, or the end of the stream),
/// refusing more than [`MAX_REQUEST`] bytes.
async fn read_line(stream: &mut UnixStream) -> Result<Vec<u8>, String> {
    let mut line = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            if line.is_empty() {
                return Err("empty request".into());
            }
            return Ok(line);
        }
        if let Some(end) = chunk[..n].iter().position(|&b| b == b'\n') {
            line.extend_from_slice(&chunk[..end]);
            if line.len() > MAX_REQUEST {
                return Err(format!("request longer than {MAX_REQUEST} bytes"));
            }
            return Ok(line);
        }
        line.extend_from_slice(&chunk[..n]);
        if line.len() > MAX_REQUEST {
            return Err(format!("request longer than {MAX_REQUEST} bytes"));
        }
    }
}
