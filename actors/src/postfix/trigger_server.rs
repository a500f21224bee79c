//! Reading trigger requests from master(8)'s listen endpoints; mirrors the
//! accept/read part of `postfix/src/master/trigger_server.c`.
//!
//! A trigger is a short byte string (qmgr: `I`, `D`, `A`, `F`, `W`, often
//! with a trailing NUL from socket clients). This module only moves bytes:
//! decoding them into scan requests is the core's job.
//!
//! * `unix` endpoint (fd 6 is a listening AF_UNIX stream socket): accept one
//!   connection (`EAGAIN` means nothing to do), wait at most
//!   [`CLIENT_WAIT`] for data (a silent client is dropped), report busy to
//!   master, do exactly one read of at most [`TRIGGER_BUF_SIZE`] bytes,
//!   report idle, close the connection (the client waits for that close).
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
//! * Postfix blocks its whole process for up to 10 s on a silent client;
//!   here only this stream waits, the rest of the daemon runs.
//! * Postfix trigger clients write the request and then a NUL in a second
//!   write. Stock Postfix reads as soon as data is there, so it sometimes
//!   gets the request without the NUL and closes before the NUL write,
//!   which then fails (postkick dies of SIGPIPE). Here a request without a
//!   NUL waits up to [`NUL_GRACE`] for one before the single read.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::stream::{self, BoxStream, Stream, StreamExt};
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

    /// Waits for the next request and returns its bytes, with busy/idle
    /// reports around the read; a failed idle report sets
    /// [`Request::last`]. `None` when master is found gone before a
    /// request is taken.
    async fn next_request(&self, status: &MasterStatus) -> Option<Request> {
        loop {
            let got = match self {
                Endpoint::Unix(listener) => accept_one(listener, status).await?,
                Endpoint::Fifo(fifo) => read_fifo(fifo, status).await?,
            };
            if let Some(request) = got {
                return Some(request);
            }
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

/// Serves one connection on a unix endpoint. Outer `None`: master is gone,
/// nothing was accepted. Inner `None`: nothing to read (lost accept race,
/// silent client).
///
/// Master's liveness is checked after the endpoint turns readable and
/// before accepting: on `postfix reload` master closes the status socket
/// and at once re-sends its wakeup, which must stay queued for the new
/// process. (Taking it here would leave the service without a process
/// until the next wakeup, 300 s later; stock qmgr likewise exits without
/// reading it.)
async fn accept_one(listener: &AsyncFd<OwnedFd>, status: &MasterStatus) -> Option<Option<Request>> {
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
    let conn = match UnixStream::from_std(conn) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("accept connection: {}", errno_text(&e));
            return Some(None);
        }
    };
    Some(serve_connection(conn, status).await)
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

/// Waits for the client's request (at most [`CLIENT_WAIT`]) and serves it.
async fn serve_connection(conn: UnixStream, status: &MasterStatus) -> Option<Request> {
    // The accepted socket is dropped (closed) when this function returns,
    // which is what the client waits for. Readiness may be reported without
    // data (tokio's readiness is a hint), so peek before reporting busy: a
    // spurious wake-up must neither drop the client early nor send master a
    // busy/idle pair for nothing.
    let deadline = crate::clock::io_now() + CLIENT_WAIT;
    let mut first_data: Option<tokio::time::Instant> = None;
    loop {
        match tokio::time::timeout_at(deadline, conn.readable()).await {
            Ok(Ok(())) => {}
            _ => return None,
        }
        let peeked = match conn.try_io(tokio::io::Interest::READABLE, || peek(&conn)) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            // An error: let the one real read see (and skip) it.
            Err(_) => None,
            Ok(p) => Some(p),
        };
        if let Some(Peek { len, has_nul }) = peeked {
            // Postfix clients write the request and its NUL terminator in
            // two writes; reading between them and closing makes the NUL
            // write fail (postkick dies of SIGPIPE). Stock Postfix has the
            // same race; we narrow it by waiting briefly for the NUL.
            let start = *first_data.get_or_insert_with(crate::clock::io_now);
            let settled = len == 0 || has_nul || len >= TRIGGER_BUF_SIZE;
            let now = crate::clock::io_now();
            if !settled && now < start + NUL_GRACE && now < deadline {
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
        }
        return Some(serve(status, |buf| read_conn(&conn, buf)));
    }
}

/// How long to wait for the NUL that Postfix trigger clients send after
/// the request bytes, before reading what is there.
pub const NUL_GRACE: Duration = Duration::from_secs(1);

/// What a peek at an accepted connection found.
struct Peek {
    /// Bytes waiting (0 = the client closed without more data).
    len: usize,
    /// Whether they include a NUL (the end of a Postfix trigger request).
    has_nul: bool,
}

/// Looks at the waiting bytes without consuming them.
fn peek(conn: &UnixStream) -> io::Result<Peek> {
    let mut buf = [0u8; TRIGGER_BUF_SIZE];
    // SAFETY: stack buffer of the given length; MSG_PEEK leaves the data
    // queued for the real read.
    let n = unsafe {
        libc::recv(
            conn.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        let len = n as usize;
        Ok(Peek {
            len,
            has_nul: buf[..len].contains(&0),
        })
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
    let per_endpoint = endpoints.into_iter().map(move |endpoint| {
        stream::unfold(Some((endpoint, status.clone())), |state| async move {
            let (endpoint, status) = state?;
            loop {
                let request = endpoint.next_request(&status).await?;
                match (request.bytes, request.last) {
                    (Some(bytes), false) => return Some((bytes, Some((endpoint, status)))),
                    // Deliver what was read, then end: master is gone.
                    (Some(bytes), true) => return Some((bytes, None)),
                    (None, true) => return None,
                    (None, false) => continue,
                }
            }
        })
        .boxed()
    });
    TriggerStream {
        inner: stream::select_all(per_endpoint).boxed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postfix::master::{status_record, Availability, MasterChannel};
    use std::io::{Read, Write};
    use std::os::fd::FromRawFd;
    use std::path::PathBuf;

    /// A private directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let dir =
                std::env::temp_dir().join(format!("oqmgr-ts-{tag}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn status_pair() -> (MasterStatus, std::os::unix::net::UnixStream) {
        let (ours, master) = std::os::unix::net::UnixStream::pair().unwrap();
        (MasterStatus::new(ours.into(), 4242, 3), master)
    }

    fn read_records(master: &mut std::os::unix::net::UnixStream, n: usize) -> Vec<[u8; 12]> {
        (0..n)
            .map(|_| {
                let mut rec = [0u8; 12];
                master.read_exact(&mut rec).unwrap();
                rec
            })
            .collect()
    }

    /// One busy/idle pair per request, nothing for spurious wake-ups.
    fn assert_no_more_records(master: &mut std::os::unix::net::UnixStream) {
        master.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 12];
        match master.read(&mut buf) {
            // EOF (our side was dropped) or nothing queued: no extra record.
            Ok(0) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            other => panic!("unexpected extra status bytes: {other:?}"),
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn unix_trigger_bytes_arrive_between_busy_and_idle() {
        let dir = TempDir::new("unix");
        let path = dir.0.join("qmgr");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let (status, mut master) = status_pair();
        runtime().block_on(async {
            let mut chan =
                MasterChannel::from_parts(status, vec![(ServiceType::Unix, listener.into())], None);
            let mut triggers = chan.triggers().unwrap();
            assert!(chan.triggers().is_err(), "endpoints are taken once");
            for request in [&b"FADI\0"[..], b"W\0", b"I"] {
                let mut client = std::os::unix::net::UnixStream::connect(&path).unwrap();
                client.write_all(request).unwrap();
                assert_eq!(triggers.next().await.unwrap(), request);
                // The server closed the connection after its one read.
                let mut rest = Vec::new();
                client.read_to_end(&mut rest).unwrap();
                assert!(rest.is_empty());
            }
            // More than 1 KiB: only the first KiB is one request.
            let mut client = std::os::unix::net::UnixStream::connect(&path).unwrap();
            client.write_all(&[b'A'; 3000]).unwrap();
            assert_eq!(triggers.next().await.unwrap().len(), TRIGGER_BUF_SIZE);
            // Nothing more: no request, and no busy/idle pair.
            let idle = tokio::time::timeout(Duration::from_millis(50), triggers.next()).await;
            assert!(idle.is_err());
        });
        let recs = read_records(&mut master, 8);
        for pair in recs.chunks(2) {
            assert_eq!(pair[0], status_record(4242, 3, Availability::Taken));
            assert_eq!(pair[1], status_record(4242, 3, Availability::Avail));
        }
        assert_no_more_records(&mut master);
    }

    #[test]
    fn silent_client_is_dropped_after_ten_seconds() {
        let dir = TempDir::new("silent");
        let path = dir.0.join("qmgr");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let (status, _master) = status_pair();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let mut chan =
                MasterChannel::from_parts(status, vec![(ServiceType::Unix, listener.into())], None);
            let mut triggers = chan.triggers().unwrap();
            let start = crate::clock::io_now();
            let silent = std::os::unix::net::UnixStream::connect(&path).unwrap();
            let path2 = path.clone();
            let talker = tokio::spawn(async move {
                // Connect after the silent one, so its request waits behind it.
                tokio::time::sleep(Duration::from_secs(1)).await;
                let mut c = std::os::unix::net::UnixStream::connect(&path2).unwrap();
                c.write_all(b"D\0").unwrap();
                c
            });
            assert_eq!(triggers.next().await.unwrap(), b"D\0");
            assert!(
                start.elapsed() >= CLIENT_WAIT,
                "waited {:?}",
                start.elapsed()
            );
            drop(talker.await.unwrap());
            drop(silent);
        });
    }

    #[test]
    fn fifo_reads_coalesced_bytes() {
        let dir = TempDir::new("fifo");
        let path = dir.0.join("qmgr");
        let cpath = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: valid C string; master opens its FIFO read-write the same way.
        let fd = unsafe {
            assert_eq!(libc::mkfifo(cpath.as_ptr(), 0o622), 0);
            let fd = libc::open(cpath.as_ptr(), libc::O_RDWR | libc::O_NONBLOCK);
            assert!(fd >= 0);
            OwnedFd::from_raw_fd(fd)
        };
        let (status, mut master) = status_pair();
        runtime().block_on(async {
            let mut chan = MasterChannel::from_parts(status, vec![(ServiceType::Fifo, fd)], None);
            let mut triggers = chan.triggers().unwrap();
            let mut writer = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            writer.write_all(b"I").unwrap();
            writer.write_all(b"D").unwrap();
            assert_eq!(triggers.next().await.unwrap(), b"ID");
            // Nothing more written: no request, and no busy/idle pair.
            let idle = tokio::time::timeout(Duration::from_millis(50), triggers.next()).await;
            assert!(idle.is_err());
            writer.write_all(b"W").unwrap();
            assert_eq!(triggers.next().await.unwrap(), b"W");
        });
        let recs = read_records(&mut master, 4);
        for pair in recs.chunks(2) {
            assert_eq!(pair[0], status_record(4242, 3, Availability::Taken));
            assert_eq!(pair[1], status_record(4242, 3, Availability::Avail));
        }
        assert_no_more_records(&mut master);
    }

    #[test]
    fn request_read_before_master_left_is_delivered_then_stream_ends() {
        let dir = TempDir::new("gone");
        let path = dir.0.join("qmgr");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        // Status writes fail (EPIPE) but fd 5 is not readable: master left
        // while the request was being served.
        let (ours, _master) = std::os::unix::net::UnixStream::pair().unwrap();
        ours.shutdown(std::net::Shutdown::Write).unwrap();
        let status = MasterStatus::new(ours.into(), 1, 1);
        runtime().block_on(async {
            let mut chan =
                MasterChannel::from_parts(status, vec![(ServiceType::Unix, listener.into())], None);
            let gone = chan.master_gone();
            let mut triggers = chan.triggers().unwrap();
            let mut client = std::os::unix::net::UnixStream::connect(&path).unwrap();
            client.write_all(b"A\0").unwrap();
            assert_eq!(triggers.next().await.unwrap(), b"A\0");
            assert!(triggers.next().await.is_none());
            tokio::time::timeout(Duration::from_secs(5), gone)
                .await
                .unwrap();
        });
    }

    #[test]
    fn request_pending_after_master_left_stays_for_the_next_process() {
        let dir = TempDir::new("reload");
        let path = dir.0.join("qmgr");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        // master keeps its own copy of the listener; so does this test.
        let _masters_copy = listener.try_clone().unwrap();
        let (status, master) = status_pair();
        let mut client = std::os::unix::net::UnixStream::connect(&path).unwrap();
        client.write_all(b"W\0").unwrap();
        // Reload: master closes the status socket, the wakeup is pending.
        drop(master);
        runtime().block_on(async {
            let mut chan =
                MasterChannel::from_parts(status, vec![(ServiceType::Unix, listener.into())], None);
            let mut triggers = chan.triggers().unwrap();
            assert!(triggers.next().await.is_none());
            // Not accepted, so not closed:
            // the client still waits, its request queued for the next process.
            client.set_nonblocking(true).unwrap();
            let mut buf = [0u8; 1];
            let err = client.read(&mut buf).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        });
    }

    #[test]
    fn stand_alone_request_is_one_bounded_read() {
        assert_eq!(read_stand_alone_request(&b"FADI\0"[..]).unwrap(), b"FADI\0");
        assert_eq!(
            read_stand_alone_request(&[b'x'; 5000][..]).unwrap().len(),
            TRIGGER_BUF_SIZE
        );
        assert!(read_stand_alone_request(&b""[..]).is_err());
    }

    #[test]
    fn endpoints_need_a_runtime() {
        let (status, _master) = status_pair();
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut chan = MasterChannel::from_parts(status, vec![(ServiceType::Fifo, a.into())], None);
        assert!(chan.triggers().is_err());
    }
}
