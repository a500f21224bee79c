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
//! Compatibility: Postfix blocks its whole process for up to 10 s on a
//! silent client; here only this stream waits, the rest of the daemon runs.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::stream::{self, BoxStream, Stream, StreamExt};
use tokio::io::unix::AsyncFd;
use tokio::net::{UnixListener, UnixStream};

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
    /// `-t unix`: a listening stream socket.
    Unix(UnixListener),
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
            ServiceType::Unix => {
                let std_listener = std::os::unix::net::UnixListener::from(fd);
                Ok(Endpoint::Unix(UnixListener::from_std(std_listener)?))
            }
            ServiceType::Fifo => Ok(Endpoint::Fifo(register_readable(fd)?)),
            ServiceType::Pass => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "unsupported transport type: pass",
            )),
        }
    }

    /// Waits for the next request and returns its bytes, with busy/idle
    /// reports around the read; a failed idle report sets
    /// [`Request::last`].
    async fn next_request(&self, status: &MasterStatus) -> Request {
        loop {
            let got = match self {
                Endpoint::Unix(listener) => accept_one(listener, status).await,
                Endpoint::Fifo(fifo) => read_fifo(fifo, status).await,
            };
            if let Some(request) = got {
                return request;
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

/// Serves one connection on a unix endpoint; `None` when there was nothing
/// to read (lost accept race, silent client).
async fn accept_one(listener: &UnixListener, status: &MasterStatus) -> Option<Request> {
    let conn = match listener.accept().await {
        Ok((conn, _)) => conn,
        Err(e) => {
            if e.kind() != io::ErrorKind::WouldBlock {
                tracing::error!("accept connection: {}", errno_text(&e));
                // Back off briefly so a persistent error cannot spin the loop.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            return None;
        }
    };
    // The accepted socket is dropped (closed) when this function returns,
    // which is what the client waits for. Readiness may be reported without
    // data (tokio's readiness is a hint), so peek before reporting busy: a
    // spurious wake-up must neither drop the client early nor send master a
    // busy/idle pair for nothing.
    let deadline = tokio::time::Instant::now() + CLIENT_WAIT;
    loop {
        match tokio::time::timeout_at(deadline, conn.readable()).await {
            Ok(Ok(())) => {}
            _ => return None,
        }
        match conn.try_io(tokio::io::Interest::READABLE, || peek(&conn)) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            // Data, EOF or an error: let the one real read see it.
            _ => return Some(serve(status, |buf| read_conn(&conn, buf))),
        }
    }
}

/// Whether the connection has data or EOF, without consuming anything.
fn peek(conn: &UnixStream) -> io::Result<usize> {
    let mut byte = 0u8;
    // SAFETY: one-byte buffer on the stack; MSG_PEEK leaves the data queued.
    let n = unsafe {
        libc::recv(
            conn.as_raw_fd(),
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// One read from an accepted connection.
fn read_conn(conn: &UnixStream, buf: &mut [u8]) -> io::Result<usize> {
    conn.try_read(buf)
}

/// Serves one readable event on a fifo endpoint; `None` on a spurious
/// wake-up (another reader took the bytes).
async fn read_fifo(fifo: &AsyncFd<OwnedFd>, status: &MasterStatus) -> Option<Request> {
    let mut guard = match fifo.readable().await {
        Ok(g) => g,
        Err(e) => {
            tracing::error!("read trigger fifo: {}", errno_text(&e));
            tokio::time::sleep(Duration::from_millis(100)).await;
            return None;
        }
    };
    let request = serve(status, |buf| read_fd(fifo.get_ref(), buf));
    if request.bytes.is_none() {
        // EAGAIN: readiness was stale; wait for the next edge.
        guard.clear_ready();
    }
    Some(request)
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
                let request = endpoint.next_request(&status).await;
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
        });
        let recs = read_records(&mut master, 8);
        for pair in recs.chunks(2) {
            assert_eq!(pair[0], status_record(4242, 3, Availability::Taken));
            assert_eq!(pair[1], status_record(4242, 3, Availability::Avail));
        }
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
            let start = tokio::time::Instant::now();
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
            writer.write_all(b"W").unwrap();
            assert_eq!(triggers.next().await.unwrap(), b"W");
        });
        let recs = read_records(&mut master, 4);
        assert_eq!(recs[0], status_record(4242, 3, Availability::Taken));
        assert_eq!(recs[3], status_record(4242, 3, Availability::Avail));
    }

    #[test]
    fn stream_ends_when_master_is_gone() {
        let dir = TempDir::new("gone");
        let path = dir.0.join("qmgr");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let (status, master) = status_pair();
        drop(master);
        runtime().block_on(async {
            let mut chan =
                MasterChannel::from_parts(status, vec![(ServiceType::Unix, listener.into())], None);
            let gone = chan.master_gone();
            let mut triggers = chan.triggers().unwrap();
            let mut client = std::os::unix::net::UnixStream::connect(&path).unwrap();
            client.write_all(b"A\0").unwrap();
            // The request already read is still handed over, then the end.
            assert_eq!(triggers.next().await.unwrap(), b"A\0");
            assert!(triggers.next().await.is_none());
            tokio::time::timeout(Duration::from_secs(5), gone)
                .await
                .unwrap();
        });
    }

    #[test]
    fn endpoints_need_a_runtime() {
        let (status, _master) = status_pair();
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut chan = MasterChannel::from_parts(status, vec![(ServiceType::Fifo, a.into())], None);
        assert!(chan.triggers().is_err());
    }
}
