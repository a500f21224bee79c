//! Reading trigger requests from master(8)'s listen endpoints; mirrors the
//! accept/read part of `postfix/src/master/trigger_server.c`.
//!
//! A trigger is a short byte string (qmgr: `I`, `D`, `A`, `F`, `W`, often
//! with a trailing NUL from socket clients). This module only moves bytes:
//! decoding them into scan requests is the core's job.
//!
//! * `unix` endpoint (fd 6 is a listening AF_UNIX stream socket): accept
//!   connections (`EAGAIN` means nothing to do) and serve each on its own,
//!   up to [`MAX_CLIENTS`] at a time: wait at most [`CLIENT_WAIT`] for data
//!   (a silent client is dropped), report busy to master, do exactly one
//!   read of at most [`TRIGGER_BUF_SIZE`] bytes, report idle, hand the bytes
//!   on, close the connection (the client waits for that close). The busy
//!   report, the read and the idle report run without a pause between
//!   them, so master never sees two busy reports in a row (it would panic).
//! * `fifo` endpoint (fd 6 is a FIFO master opened read-write, so it never
//!   shows EOF): when readable, report busy, one non-blocking read of at
//!   most [`TRIGGER_BUF_SIZE`] bytes (writers' bytes may coalesce), report
//!   idle.
//!
//! Invariants: every request yields exactly the bytes of that one read (an
//! empty vector when the client closed without writing, as Postfix also
//! calls its handler with length 0); no read is larger than 1 KiB, so a
//! hostile client cannot make us allocate more. When the idle report fails
//! master is gone: the bytes already read are still delivered, then the
//! stream ends, and the caller should exit 0.
//!
//! Before taking a request (accept, or fifo read) the stream checks whether
//! master is gone and, if so, ends without touching it: on `postfix reload`
//! master closes the status socket and at once re-sends its wakeup, which
//! must be left for the new process.
//!
//! Compatibility:
//! * Postfix serves one connection at a time and blocks its whole process
//!   for up to 10 s on a silent client; here each client waits alone, so a
//!   client that writes `I` and waits, or writes nothing, holds up neither
//!   other clients nor scheduling.
//! * Like Postfix, a request is read as soon as data is there, with or
//!   without the NUL that Postfix clients send in a second write. Closing
//!   between those two writes makes the second fail (postkick dies of
//!   SIGPIPE; stock Postfix has that race), so a connection whose request
//!   came without its NUL stays open up to [`NUL_LINGER`] for it, after the
//!   request has been handed on.
//!
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt};
use futures::stream::{self, BoxStream, FuturesUnordered, Stream, StreamExt};
use tokio::io::unix::AsyncFd;
use tokio::net::UnixStream;

use super::args::ServiceType;
use super::log::errno_text;
use super::master::MasterStatus;

/// Largest trigger request read at once (`TRIGGER_BUF_SIZE`).
pub const TRIGGER_BUF_SIZE: usize = 1024;

/// How long an accepted client may stay silent before it is dropped.
pub const CLIENT_WAIT: Duration = Duration::from_secs(10);

/// One listen endpoint, registered with the tokio reactor.
#[derive(Debug)]
pub enum Endpoint {
    /// `-t unix`: a listening stream socket (accepted by hand, so that
    /// master's liveness can be checked between readiness and accept).
    Unix(AsyncFd<OwnedFd>),
    /// `-t fifo`: the FIFO's read-write descriptor.
    Fifo(AsyncFd<OwnedFd>),
}

impl Endpoint {
    /// Registers `fd` as an endpoint of `kind`; needs a tokio runtime.
    /// Sets non-blocking mode (master already does; the flag is shared with
    /// master's copy, so this changes nothing for master).
    pub fn new(kind: ServiceType, fd: OwnedFd) -> io::Result<Endpoint> {
        need_runtime()?;
        set_nonblocking(&fd)?;
        match kind {
            ServiceType::Unix => Ok(Endpoint::Unix(register_readable(fd)?)),
            ServiceType::Fifo => Ok(Endpoint::Fifo(register_readable(fd)?)),
            ServiceType::Pass => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "unsupported transport type: pass",
            )),
        }
    }
}

/// What one request produced.
#[derive(Debug)]
struct Request {
    /// The bytes of the one read (possibly empty), or `None` if the read
    /// failed (nothing to deliver).
    bytes: Option<Vec<u8>>,
    /// The idle report failed: master is gone, end the stream after this.
    last: bool,
}

/// Accepts one connection on a unix endpoint. Outer `None`: master is
/// gone, nothing was accepted. Inner `None`: nothing to serve (lost accept
/// race, an accept error, already logged).
///
/// Master's liveness is checked after the endpoint turns readable and
/// before accepting: on `postfix reload` master closes the status socket
/// and at once re-sends its wakeup, which must stay queued for the new
/// process. (Taking it here would leave the service without a process
/// until the next wakeup, 300 s later; stock qmgr likewise exits without
/// reading it.)
async fn accept_conn(
    listener: &AsyncFd<OwnedFd>,
    status: &MasterStatus,
) -> Option<Option<UnixStream>> {
    let mut guard = match listener.readable().await {
        Ok(g) => g,
        Err(e) => {
            tracing::error!("accept connection: {}", errno_text(&e));
            tokio::time::sleep(Duration::from_millis(100)).await;
            return Some(None);
        }
    };
    if status.is_gone_now() {
        return None;
    }
    let conn = match guard.try_io(|fd| accept(fd.get_ref())) {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            tracing::error!("accept connection: {}", errno_text(&e));
            // Back off briefly so a persistent error cannot spin the loop.
            tokio::time::sleep(Duration::from_millis(100)).await;
            return Some(None);
        }
        // EAGAIN: another process won the connection, or stale readiness.
        Err(_would_block) => return Some(None),
    };
    drop(guard);
    match UnixStream::from_std(conn) {
        Ok(c) => Some(Some(c)),
        Err(e) => {
            tracing::error!("accept connection: {}", errno_text(&e));
            Some(None)
        }
    }
}

/// `accept4(2)`: non-blocking and close-on-exec from the start.
fn accept(listener: &OwnedFd) -> io::Result<std::os::unix::net::UnixStream> {
    // SAFETY: null address pointers are allowed; the result is a new
    // descriptor that nothing else owns.
    let fd = unsafe {
        libc::accept4(
            listener.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    };
    if fd < 0 {
        Err(io::Error::last_os_error())
    } else {
        // SAFETY: fresh descriptor from accept4, owned only here.
        Ok(unsafe { std::os::unix::net::UnixStream::from_raw_fd(fd) })
    }
}

/// What became of one accepted connection.
enum Served {
    /// The request was read; `linger` holds the connection when the
    /// client may still be writing its NUL.
    Request(Request, Option<UnixStream>),
    /// Nothing to deliver (a silent client).
    Nothing,
}

/// Waits for the client's request (at most [`CLIENT_WAIT`]) and serves it
/// at once, as Postfix does: one read of what is there, with or without
/// the NUL that Postfix clients send in a second write.
async fn serve_connection(conn: UnixStream, status: MasterStatus) -> Served {
    // Readiness may be reported without data (tokio's readiness is a
    // hint), so peek before reporting busy: a spurious wake-up must neither
    // drop the client early nor send master a busy/idle pair for nothing.
    let deadline = crate::clock::io_now() + CLIENT_WAIT;
    loop {
        match tokio::time::timeout_at(deadline, conn.readable()).await {
            Ok(Ok(())) => {}
            _ => return Served::Nothing,
        }
        match conn.try_io(tokio::io::Interest::READABLE, || peek(&conn)) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            // Data, end of input, or an error the one real read will see.
            _ => break,
        }
    }
    let request = serve(&status, |buf| read_conn(&conn, buf));
    let unfinished = request
        .bytes
        .as_ref()
        .is_some_and(|b| !b.is_empty() && !b.contains(&0) && b.len() < TRIGGER_BUF_SIZE);
    Served::Request(request, unfinished.then_some(conn))
}

/// How long a connection whose request came without its NUL stays open
/// for that NUL, after the request was served. Postfix clients write the
/// request and its NUL in two writes and wait for the server to close;
/// closing between the two makes the second write fail (postkick dies of
/// SIGPIPE), a race stock Postfix has too. The request itself is not
/// delayed: it is handed on before the wait.
pub const NUL_LINGER: Duration = Duration::from_millis(50);

/// Waits at most [`NUL_LINGER`] for the rest of a client's request (its
/// NUL), reads and drops it, then closes the connection.
async fn linger(conn: UnixStream) {
    // Readiness may be stale (left over from the request's own read) or a
    // hint without data: only a read that finds the NUL, the end of input
    // or an error ends the wait early, or the client could be cut off
    // between its two writes after all.
    let deadline = crate::clock::io_now() + NUL_LINGER;
    let mut rest = [0u8; TRIGGER_BUF_SIZE];
    while let Ok(Ok(())) = tokio::time::timeout_at(deadline, conn.readable()).await {
        match conn.try_read(&mut rest) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            _ => return,
        }
    }
}

/// Connections served at the same time on one unix endpoint; more wait in
/// the listen queue. A silent client holds its slot up to [`CLIENT_WAIT`],
/// so the bound keeps a flood of idle connections from taking every
/// descriptor the daemon needs for its agents.
pub const MAX_CLIENTS: usize = 128;

/// The requests of one unix endpoint, served concurrently: accepting goes
/// on while earlier clients are still waited for, so no client holds up
/// another (Postfix serves one at a time and waits up to 10 s on each).
/// Ends when master is found gone (after the clients already accepted are
/// served) or an idle report fails.
fn unix_requests(listener: AsyncFd<OwnedFd>, status: MasterStatus) -> BoxStream<'static, Vec<u8>> {
    /// The endpoint's serving state.
    struct State {
        listener: AsyncFd<OwnedFd>,
        status: MasterStatus,
        clients: FuturesUnordered<BoxFuture<'static, Served>>,
        /// Master is gone: accept no more.
        gone: bool,
        /// An idle report failed: end the stream.
        ended: bool,
    }
    /// One step of the state.
    enum Event {
        Served(Served),
        Accepted(Option<Option<UnixStream>>),
    }
    let state = State {
        listener,
        status,
        clients: FuturesUnordered::new(),
        gone: false,
        ended: false,
    };
    stream::unfold(state, |mut st| async move {
        loop {
            if st.ended || (st.gone && st.clients.is_empty()) {
                return None;
            }
            let accepting = !st.gone && st.clients.len() < MAX_CLIENTS;
            let event = tokio::select! {
                Some(served) = st.clients.next(), if !st.clients.is_empty() => Event::Served(served),
                accepted = accept_conn(&st.listener, &st.status), if accepting => {
                    Event::Accepted(accepted)
                }
            };
            match event {
                Event::Accepted(None) => st.gone = true,
                Event::Accepted(Some(None)) => {}
                Event::Accepted(Some(Some(conn))) => {
                    let status = st.status.clone();
                    st.clients.push(serve_connection(conn, status).boxed());
                }
                Event::Served(Served::Nothing) => {}
                Event::Served(Served::Request(request, rest)) => {
                    if let Some(conn) = rest {
                        // On its own: it must end even while nobody asks
                        // the stream for the next request.
                        tokio::spawn(linger(conn));
                    }
                    st.ended = request.last;
                    if let Some(bytes) = request.bytes {
                        return Some((bytes, st));
                    }
                }
            }
        }
    })
    .boxed()
}

/// Looks whether a byte (or the end of input) is waiting, without
/// consuming it; `WouldBlock` when nothing is.
fn peek(conn: &UnixStream) -> io::Result<()> {
    let mut byte = 0u8;
    // SAFETY: a one-byte stack buffer; MSG_PEEK leaves the data queued for
    // the real read.
    let n = unsafe {
        libc::recv(
            conn.as_raw_fd(),
            std::ptr::addr_of_mut!(byte).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// One read from an accepted connection.
fn read_conn(conn: &UnixStream, buf: &mut [u8]) -> io::Result<usize> {
    conn.try_read(buf)
}

/// Serves one readable event on a fifo endpoint. Outer `None`: master is
/// gone (checked before reading, as for sockets); inner `None`: a spurious
/// wake-up (another reader took the bytes).
async fn read_fifo(fifo: &AsyncFd<OwnedFd>, status: &MasterStatus) -> Option<Option<Request>> {
    let mut guard = match fifo.readable().await {
        Ok(g) => g,
        Err(e) => {
            tracing::error!("read trigger fifo: {}", errno_text(&e));
            tokio::time::sleep(Duration::from_millis(100)).await;
            return Some(None);
        }
    };
    if status.is_gone_now() {
        return None;
    }
    // Readiness may be stale (the bytes were already read); checking the
    // fill level first avoids a busy/idle pair for nothing.
    if let Ok(0) = bytes_waiting(fifo.get_ref()) {
        guard.clear_ready();
        return Some(None);
    }
    let request = serve(status, |buf| read_fd(fifo.get_ref(), buf));
    if request.bytes.is_none() {
        // EAGAIN: another reader was faster; wait for the next edge.
        guard.clear_ready();
    }
    Some(Some(request))
}

/// Bytes waiting in a pipe or FIFO (`FIONREAD`).
fn bytes_waiting(fd: &OwnedFd) -> io::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int through the pointer.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) } < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n.max(0) as usize)
    }
}

/// Busy report, one read, idle report.
fn serve(status: &MasterStatus, read: impl FnOnce(&mut [u8]) -> io::Result<usize>) -> Request {
    // A failed busy report is ignored, as Postfix does: a request already
    // accepted is served even after "postfix reload".
    let _ = status.set_available(false);
    let mut buf = vec![0u8; TRIGGER_BUF_SIZE];
    let bytes = match read(&mut buf) {
        Ok(n) => {
            buf.truncate(n);
            Some(buf)
        }
        Err(_) => None,
    };
    let last = status.set_available(true).is_err();
    Request { bytes, last }
}

/// `read(2)` on a raw descriptor.
fn read_fd(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` bytes and `fd` is open.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Stand-alone mode (`-S`): the one request is read from stdin with a
/// single read of at most [`TRIGGER_BUF_SIZE`] bytes. An empty or failed
/// read is an error (Postfix: `fatal: read: …`).
pub fn read_stand_alone_request(mut input: impl std::io::Read) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; TRIGGER_BUF_SIZE];
    let n = input.read(&mut buf)?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "read: end of input",
        ));
    }
    buf.truncate(n);
    Ok(buf)
}

/// Fails (instead of letting tokio panic) outside a tokio runtime.
fn need_runtime() -> io::Result<()> {
    tokio::runtime::Handle::try_current()
        .map(|_| ())
        .map_err(|e| io::Error::other(format!("no tokio runtime: {e}")))
}

/// Registers an owned descriptor with the reactor for readability.
pub(crate) fn register_readable(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    need_runtime()?;
    // SAFETY: the AsyncFd takes ownership of the OwnedFd, so the descriptor
    // stays open and unchanged for the AsyncFd's whole life.
    unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
        .map_err(io::Error::from)
}

/// Sets `O_NONBLOCK` on a descriptor.
fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: fcntl flag calls on an open descriptor.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Raw trigger requests from all endpoints, in arrival order per endpoint.
/// Ends when master(8) is found gone by a failed idle report.
pub struct TriggerStream {
    /// The merged per-endpoint streams.
    inner: BoxStream<'static, Vec<u8>>,
}

impl std::fmt::Debug for TriggerStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TriggerStream")
    }
}

impl Stream for TriggerStream {
    type Item = Vec<u8>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Vec<u8>>> {
        self.inner.poll_next_unpin(cx)
    }
}

/// Builds the stream over `endpoints`.
pub fn stream(endpoints: Vec<Endpoint>, status: MasterStatus) -> TriggerStream {
    let per_endpoint = endpoints.into_iter().map(move |endpoint| match endpoint {
        Endpoint::Unix(listener) => unix_requests(listener, status.clone()),
        Endpoint::Fifo(fifo) => fifo_requests(fifo, status.clone()),
    });
    TriggerStream {
        inner: stream::select_all(per_endpoint).boxed(),
    }
}

/// The requests of one fifo endpoint, one non-blocking read per readable
/// event; ends as [`unix_requests`] does.
fn fifo_requests(fifo: AsyncFd<OwnedFd>, status: MasterStatus) -> BoxStream<'static, Vec<u8>> {
    stream::unfold(Some((fifo, status)), |state| async move {
        let (fifo, status) = state?;
        loop {
            let Some(request) = read_fifo(&fifo, &status).await? else {
                continue;
            };
            match (request.bytes, request.last) {
                (Some(bytes), false) => return Some((bytes, Some((fifo, status)))),
                // Deliver what was read, then end: master is gone.
                (Some(bytes), true) => return Some((bytes, None)),
                (None, true) => return None,
                (None, false) => continue,
            }
        }
    })
    .boxed()
}

#[cfg(test)]
#[path = "trigger_server_tests.rs"]
mod tests;
