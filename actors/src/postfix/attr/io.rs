//! attr0 over a UNIX-domain stream with per-operation timeouts (Postfix:
//! `attr_print0.c`/`attr_scan0.c` on a `VSTREAM` with `ipc_timeout`).
//!
//! [`AttrStream`] buffers what it reads and hands out one decoded list at a
//! time; bytes of a following list stay buffered. Every read and write is
//! bounded by the stream's timeout (`qmgr_ipc_timeout`, 60 s by default),
//! so a peer that stops talking cannot hang the caller.

use std::fmt;
use std::io;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::{check_announcement, take_list, AttrList, DecodeError, EncodeError, Limits};
use crate::postfix::log::errno_text;

/// Why a conversation with a Postfix service failed.
#[derive(Debug)]
pub enum IpcError {
    /// `connect()` to the service socket failed.
    Connect(io::Error),
    /// A read or write failed.
    Io(io::Error),
    /// An operation took longer than the stream's timeout.
    Timeout {
        /// What was going on: `connect`, `read`, `write`.
        op: &'static str,
    },
    /// The peer closed the connection before a complete list arrived
    /// (Postfix: `premature disconnect`).
    Eof,
    /// The peer sent something that is not a valid message (Postfix:
    /// `malformed response`), including a wrong protocol announcement.
    Decode(DecodeError),
    /// Our own request could not be encoded (a value with a NUL byte); no
    /// byte was sent.
    Encode(EncodeError),
}

impl fmt::Display for IpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // `%m` texts, as Postfix logs them; callers say what was
            // connected to (`connect to transport private/smtp: ...`).
            Self::Connect(e) | Self::Io(e) => f.write_str(&errno_text(e)),
            Self::Timeout { op } => write!(f, "timeout during {op}"),
            Self::Eof => write!(f, "premature disconnect"),
            Self::Decode(e) => write!(f, "malformed response: {e}"),
            Self::Encode(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for IpcError {}

impl From<EncodeError> for IpcError {
    fn from(e: EncodeError) -> Self {
        Self::Encode(e)
    }
}

impl From<DecodeError> for IpcError {
    fn from(e: DecodeError) -> Self {
        Self::Decode(e)
    }
}

/// An attr0 conversation over one UNIX-domain stream.
#[derive(Debug)]
pub struct AttrStream {
    /// The connection.
    stream: UnixStream,
    /// Bytes read but not yet decoded.
    rbuf: Vec<u8>,
    /// Decoding bounds.
    limits: Limits,
    /// Bound on each connect, read and write.
    timeout: Duration,
}

impl AttrStream {
    /// Connects to a service socket (e.g. `<queue_directory>/private/rewrite`).
    ///
    /// # Errors
    /// [`IpcError::Connect`] or [`IpcError::Timeout`].
    pub async fn connect(path: &Path, timeout: Duration) -> Result<Self, IpcError> {
        let stream = match connect_now(path) {
            Ok(Some(stream)) => stream,
            Ok(None) => tokio::time::timeout(timeout, UnixStream::connect(path))
                .await
                .map_err(|_| IpcError::Timeout { op: "connect" })?
                .map_err(IpcError::Connect)?,
            Err(e) => return Err(IpcError::Connect(e)),
        };
        Ok(Self::new(stream, Limits::default(), timeout))
    }

    /// Wraps an already connected stream.
    pub fn new(stream: UnixStream, limits: Limits, timeout: Duration) -> Self {
        Self {
            stream,
            rbuf: Vec::new(),
            limits,
            timeout,
        }
    }

    /// The per-operation timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Changes the per-operation timeout (a delivery agent's reply may take
    /// as long as the delivery itself, far beyond the IPC timeout).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Reads the server's announcement and checks it names `expected`.
    ///
    /// # Errors
    /// EOF before or inside the list is [`IpcError::Eof`] (never taken as
    /// success); another name is [`IpcError::Decode`] with
    /// [`DecodeError::Mismatch`].
    pub async fn read_announcement(&mut self, expected: &str) -> Result<(), IpcError> {
        let list = self.read_list().await?;
        check_announcement(&list, expected)?;
        Ok(())
    }

    /// Writes pre-encoded bytes (one or more complete lists).
    ///
    /// # Errors
    /// [`IpcError::Io`] or [`IpcError::Timeout`].
    pub async fn write_all(&mut self, bytes: &[u8]) -> Result<(), IpcError> {
        tokio::time::timeout(self.timeout, self.stream.write_all(bytes))
            .await
            .map_err(|_| IpcError::Timeout { op: "write" })?
            .map_err(IpcError::Io)
    }

    /// Reads one complete list.
    ///
    /// # Errors
    /// [`IpcError::Eof`] when the peer closes first, [`IpcError::Decode`]
    /// for malformed or over-long input, I/O errors and timeouts.
    pub async fn read_list(&mut self) -> Result<AttrList, IpcError> {
        loop {
            match take_list(&mut self.rbuf, &self.limits) {
                Ok(list) => return Ok(list),
                Err(DecodeError::Truncated) => {}
                Err(e) => return Err(e.into()),
            }
            // decode_list enforces max_list_len on complete names/values;
            // this guards the bytes still inside an unfinished token.
            if self.rbuf.len() > self.limits.max_list_len {
                return Err(DecodeError::ListTooLong {
                    limit: self.limits.max_list_len,
                }
                .into());
            }
            // Grow the read size with the buffer, so a long list costs a
            // logarithmic number of re-scans rather than one per 4 KiB.
            self.rbuf.reserve(self.rbuf.len().max(4096));
            let n = tokio::time::timeout(self.timeout, self.stream.read_buf(&mut self.rbuf))
                .await
                .map_err(|_| IpcError::Timeout { op: "read" })?
                .map_err(IpcError::Io)?;
            if n == 0 {
                return Err(IpcError::Eof);
            }
        }
    }

    /// The underlying stream (e.g. to wait for the peer's close).
    pub fn into_inner(self) -> UnixStream {
        self.stream
    }
}

/// A non-blocking connect that completes at once, as a local stream
/// connect does (the listener's backlog takes it, or it fails with
/// `EAGAIN` when full: Postfix's non-blocking `unix_connect` sees the
/// same). Saves tokio's wait for writability and its `SO_ERROR` query, a
/// system call per delivery. `Ok(None)` when the connect is still in
/// progress (not seen on Linux): the caller then waits as tokio does.
fn connect_now(path: &Path) -> io::Result<Option<UnixStream>> {
    use std::os::fd::FromRawFd;
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: an all-zero sockaddr_un is a valid (empty) address.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    let bytes = path.as_os_str().as_bytes();
    // One byte stays for the terminating NUL, as the kernel wants it.
    if bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "path must be shorter than SUN_LEN and contain no NUL",
        ));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    let len = (std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1) as libc::socklen_t;
    // SAFETY: plain socket(2); the result is checked.
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh socket owned by nobody else; the std stream
    // takes ownership and closes it on every path below.
    let std_stream = unsafe { std::os::unix::net::UnixStream::from_raw_fd(fd) };
    // SAFETY: `addr` is a valid sockaddr_un of at least `len` bytes.
    let rc = unsafe { libc::connect(fd, std::ptr::addr_of!(addr).cast::<libc::sockaddr>(), len) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EINPROGRESS) => Ok(None),
            _ => Err(e),
        };
    }
    // The socket is already non-blocking, as tokio requires.
    UnixStream::from_std(std_stream).map(Some)
}
