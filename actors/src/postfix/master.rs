//! The child side of the master(8) process protocol; mirrors
//! `postfix/src/master/master_proto.c` (status updates) and the descriptor
//! and environment conventions of `master_spawn.c`.
//!
//! master(8) forks every daemon with fixed descriptors: 3 and 4 the shared
//! flow-control pipe (see [`crate::postfix::flow`]), 5 a stream socket back
//! to master ("status socket"), 6 and up the listen endpoints (see
//! [`crate::postfix::trigger_server`]). It adds `GENERATION` (octal) to the
//! environment. The child reports busy/idle on fd 5 as a 12-byte host-order
//! record `{ i32 pid, u32 generation, i32 avail }`, and treats fd 5 becoming
//! readable (EOF: master closed its end on reload or exit) or a failed
//! status write as "master is gone", after which it must exit 0.
//!
//! [`MasterChannel::from_env`] claims those descriptors once (marking them
//! close-on-exec so delivery helpers we might spawn do not inherit master's
//! pipes, which would keep master from noticing our death), then:
//! * [`MasterChannel::triggers`] gives the raw trigger bytes as a `Stream`,
//! * [`MasterStatus::set_available`] writes status records,
//! * [`MasterStatus::gone`] resolves when master has gone away,
//! * [`MasterChannel::flow`] hands out the flow-control pipe.
//!
//! Start-up order for a daemon (as `actors/examples/master_probe.rs` does):
//! parse [`MasterArgs`]; install a bootstrap logger from the environment;
//! read main.cf (with the `-o` overrides) and install the configured
//! logger; `chdir(queue_directory)`; [`MasterChannel::from_env`]; open
//! whatever needs root; [`super::chroot_uid::chroot_uid`] (`-c`, `-u`);
//! then, on the runtime, [`MasterChannel::triggers`] and
//! [`MasterChannel::master_gone`] (exit 0 when it resolves or the trigger
//! stream ends).
//!
//! Invariants: each status write is exactly one 12-byte `write(2)` (master
//! complains about partial records); a failed write is remembered so that
//! `gone()` resolves even if fd 5 never turns readable.
//!
//! Compatibility: stop (`postfix stop`/`abort`) arrives as SIGTERM to the
//! whole process group and the stock daemon simply dies by the default
//! action; a daemon using this module must not install a SIGTERM handler.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

use super::args::{MasterArgs, ServiceType};
use super::flow::FlowPipe;
use super::trigger_server::{self, Endpoint, TriggerStream};

/// Read end of the flow-control pipe.
pub const FLOW_READ_FD: RawFd = 3;
/// Write end of the flow-control pipe.
pub const FLOW_WRITE_FD: RawFd = 4;
/// Status socket shared with master(8).
pub const STATUS_FD: RawFd = 5;
/// First listen endpoint.
pub const LISTEN_FD: RawFd = 6;

/// Size of one status record on Linux (three 4-byte integers).
pub const STATUS_RECORD_LEN: usize = 12;

/// Set once the inherited descriptors have been claimed, so that two
/// `OwnedFd`s can never own the same descriptor number.
static CLAIMED: AtomicBool = AtomicBool::new(false);

/// Why the master(8) channel could not be set up. `Display` follows
/// Postfix's fatal texts where Postfix has one.
#[derive(Debug)]
pub enum MasterError {
    /// `GENERATION` held something other than digits.
    BadGeneration(String),
    /// A descriptor master(8) should have passed is not open.
    MissingDescriptor(RawFd, io::Error),
    /// `from_env` was called a second time in this process.
    AlreadyClaimed,
    /// `-t pass` (descriptor passing) is not implemented here.
    UnsupportedType(&'static str),
    /// Stand-alone (`-S`) mode has no master channel.
    StandAlone,
}

impl std::fmt::Display for MasterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MasterError::BadGeneration(g) => write!(f, "bad generation: {g}"),
            MasterError::MissingDescriptor(fd, e) => {
                write!(
                    f,
                    "descriptor {fd} from master(8) is not open: {}",
                    super::log::errno_text(e)
                )
            }
            MasterError::AlreadyClaimed => write!(f, "master(8) descriptors were already claimed"),
            MasterError::UnsupportedType(t) => write!(f, "unsupported transport type: {t}"),
            MasterError::StandAlone => write!(f, "stand-alone mode has no master(8) channel"),
        }
    }
}

impl std::error::Error for MasterError {}

/// Availability as master(8) counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Availability {
    /// `MASTER_STAT_TAKEN`: busy with a request.
    Taken = 0,
    /// `MASTER_STAT_AVAIL`: idle, may be given work.
    Avail = 1,
}

/// Master went away (a status write failed, or fd 5 reported EOF).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MasterGone;

impl std::fmt::Display for MasterGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("master disconnect")
    }
}

impl std::error::Error for MasterGone {}

/// Decodes `GENERATION`: digits only (else `bad generation: …`), read as
/// octal up to the first 8 or 9, wrapping like C's `strtoul` cast to
/// `unsigned`. Absent means 0.
pub fn parse_generation(value: Option<&str>) -> Result<u32, MasterError> {
    let Some(text) = value else { return Ok(0) };
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(MasterError::BadGeneration(text.to_string()));
    }
    let mut n: u64 = 0;
    for b in text.bytes().take_while(|b| (b'0'..=b'7').contains(b)) {
        // strtoul saturates to ULONG_MAX on overflow; the cast keeps the low
        // 32 bits.
        n = n
            .checked_mul(8)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .unwrap_or(u64::MAX);
    }
    Ok(n as u32)
}

/// The 12 bytes of one status record, host byte order.
pub fn status_record(pid: i32, generation: u32, avail: Availability) -> [u8; STATUS_RECORD_LEN] {
    let mut rec = [0u8; STATUS_RECORD_LEN];
    rec[0..4].copy_from_slice(&pid.to_ne_bytes());
    rec[4..8].copy_from_slice(&generation.to_ne_bytes());
    rec[8..12].copy_from_slice(&(avail as i32).to_ne_bytes());
    rec
}

/// Shared state behind [`MasterStatus`].
#[derive(Debug)]
struct StatusInner {
    /// fd 5 (or a test socket).
    fd: OwnedFd,
    /// Our pid, as master(8) knows it.
    pid: i32,
    /// Generation from `GENERATION`, echoed in every record.
    generation: u32,
    /// Set when a write failed: master is gone even if fd 5 stays quiet.
    failed: AtomicBool,
    /// Wakes `gone()` waiters after a failed write.
    failed_notify: Notify,
}

/// Handle on the status socket; cheap to clone.
#[derive(Clone, Debug)]
pub struct MasterStatus {
    /// Shared state (descriptor, identity, failure flag).
    inner: Arc<StatusInner>,
}

impl MasterStatus {
    /// Wraps a status socket. `pid` is normally `std::process::id()`.
    pub fn new(fd: OwnedFd, pid: i32, generation: u32) -> MasterStatus {
        MasterStatus {
            inner: Arc::new(StatusInner {
                fd,
                pid,
                generation,
                failed: AtomicBool::new(false),
                failed_notify: Notify::new(),
            }),
        }
    }

    /// The generation echoed in status records.
    pub fn generation(&self) -> u32 {
        self.inner.generation
    }

    /// Tells master(8) we are idle (`true`) or busy (`false`). One 12-byte
    /// write; anything else means master is gone, and `gone()` resolves.
    pub fn set_available(&self, available: bool) -> Result<(), MasterGone> {
        let avail = if available {
            Availability::Avail
        } else {
            Availability::Taken
        };
        self.notify(avail)
    }

    /// Writes one status record (see [`MasterStatus::set_available`]).
    pub fn notify(&self, avail: Availability) -> Result<(), MasterGone> {
        let rec = status_record(self.inner.pid, self.inner.generation, avail);
        // SAFETY: `rec` is a live 12-byte buffer and the descriptor is owned
        // by `self.inner` for the duration of the call.
        let n = unsafe { libc::write(self.inner.fd.as_raw_fd(), rec.as_ptr().cast(), rec.len()) };
        if n == rec.len() as isize {
            Ok(())
        } else {
            self.inner.failed.store(true, Ordering::SeqCst);
            self.inner.failed_notify.notify_waiters();
            Err(MasterGone)
        }
    }

    /// Whether master is gone right now: a status write failed, or fd 5 is
    /// readable (EOF or error) at this instant. Never blocks.
    pub fn is_gone_now(&self) -> bool {
        if self.inner.failed.load(Ordering::SeqCst) {
            return true;
        }
        let mut pfd = libc::pollfd {
            fd: self.inner.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, zero timeout.
        let n = unsafe { libc::poll(&mut pfd, 1, 0) };
        n > 0 && pfd.revents != 0
    }

    /// Resolves once master(8) is gone: fd 5 turned readable (EOF or error;
    /// master never writes to it) or a status write failed. Must run inside
    /// a tokio runtime with I/O enabled. Registration failures count as
    /// "gone" too, because then we could never notice master leaving.
    pub async fn gone(&self) {
        let failed = self.inner.failed_notify.notified();
        if self.inner.failed.load(Ordering::SeqCst) {
            return;
        }
        // A duplicate descriptor gets its own epoll registration, so several
        // `gone()` futures may wait at once.
        let watch = match self
            .inner
            .fd
            .try_clone()
            .and_then(trigger_server::register_readable)
        {
            Ok(w) => w,
            Err(e) => {
                tracing::error!("watch master status socket: {}", super::log::errno_text(&e));
                return;
            }
        };
        tokio::select! {
            _ = failed => {}
            _ = watch.readable() => {}
        }
    }
}

/// Everything master(8) handed to this process.
#[derive(Debug)]
pub struct MasterChannel {
    /// Status socket handle.
    status: MasterStatus,
    /// Listen endpoints not yet turned into a trigger stream.
    endpoints: Option<Vec<(ServiceType, OwnedFd)>>,
    /// Flow-control pipe, if one was passed.
    flow: Option<FlowPipe>,
}

impl MasterChannel {
    /// Claims fds 3, 4, 5 and 6.. (`-s` of them) and reads `GENERATION`.
    /// Call once, early (before anything else opens descriptors that could
    /// land on those numbers). Marks them close-on-exec.
    pub fn from_env(args: &MasterArgs) -> Result<MasterChannel, MasterError> {
        if args.stand_alone {
            return Err(MasterError::StandAlone);
        }
        let kind = match &args.service_type {
            Some(ServiceType::Pass) | None => return Err(MasterError::UnsupportedType("pass")),
            Some(kind) => kind.clone(),
        };
        let generation = parse_generation(std::env::var("GENERATION").ok().as_deref())?;
        if CLAIMED.swap(true, Ordering::SeqCst) {
            return Err(MasterError::AlreadyClaimed);
        }
        let mut fds = Vec::new();
        for fd in [FLOW_READ_FD, FLOW_WRITE_FD, STATUS_FD]
            .into_iter()
            .chain((0..args.socket_count).map(|i| LISTEN_FD + i as RawFd))
        {
            fds.push(claim(fd)?);
        }
        let mut fds = fds.into_iter();
        let (Some(flow_read), Some(flow_write), Some(status)) =
            (fds.next(), fds.next(), fds.next())
        else {
            unreachable!("three fixed descriptors were claimed above");
        };
        let endpoints = fds.map(|fd| (kind.clone(), fd)).collect();
        Ok(MasterChannel {
            status: MasterStatus::new(status, std::process::id() as i32, generation),
            endpoints: Some(endpoints),
            flow: Some(FlowPipe::new(flow_read, flow_write)),
        })
    }

    /// Builds a channel from explicit descriptors (tests, or a daemon that
    /// got them some other way).
    pub fn from_parts(
        status: MasterStatus,
        endpoints: Vec<(ServiceType, OwnedFd)>,
        flow: Option<FlowPipe>,
    ) -> MasterChannel {
        MasterChannel {
            status,
            endpoints: Some(endpoints),
            flow,
        }
    }

    /// A handle on the status socket.
    pub fn status(&self) -> MasterStatus {
        self.status.clone()
    }

    /// Shorthand for `status().set_available(..)`.
    pub fn set_available(&self, available: bool) -> Result<(), MasterGone> {
        self.status.set_available(available)
    }

    /// Resolves when master(8) is gone; the caller should then exit 0.
    pub fn master_gone(&self) -> impl std::future::Future<Output = ()> + 'static {
        let status = self.status.clone();
        async move { status.gone().await }
    }

    /// The flow-control pipe (a cheap clone), if master passed one.
    pub fn flow(&self) -> Option<FlowPipe> {
        self.flow.clone()
    }

    /// Turns the listen endpoints into one stream of raw trigger requests
    /// (see [`crate::postfix::trigger_server`]). Must be called inside a
    /// tokio runtime; a second call is an error (`AlreadyExists`).
    pub fn triggers(&mut self) -> io::Result<TriggerStream> {
        let endpoints = self.endpoints.take().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::AlreadyExists,
                "trigger endpoints already taken",
            )
        })?;
        let endpoints = endpoints
            .into_iter()
            .map(|(kind, fd)| Endpoint::new(kind, fd))
            .collect::<io::Result<Vec<_>>>()?;
        Ok(trigger_server::stream(endpoints, self.status.clone()))
    }
}

/// Takes ownership of an inherited descriptor after checking it is open,
/// and marks it close-on-exec.
fn claim(fd: RawFd) -> Result<OwnedFd, MasterError> {
    // SAFETY: fcntl on an arbitrary descriptor number has no memory effects.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(MasterError::MissingDescriptor(
            fd,
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: as above; setting FD_CLOEXEC only affects exec.
    unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) };
    // SAFETY: the descriptor is open, was inherited from master(8) and is
    // claimed exactly once per process (guarded by CLAIMED), so nothing else
    // in this process owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::net::UnixStream;

    #[test]
    fn generation_is_octal_digits() {
        assert_eq!(parse_generation(None).unwrap(), 0);
        assert_eq!(parse_generation(Some("16")).unwrap(), 14);
        assert_eq!(parse_generation(Some("2")).unwrap(), 2);
        assert_eq!(parse_generation(Some("")).unwrap(), 0);
        // strtoul stops at the first non-octal digit.
        assert_eq!(parse_generation(Some("178")).unwrap(), 0o17);
        assert_eq!(parse_generation(Some("37777777777")).unwrap(), u32::MAX);
        assert_eq!(
            parse_generation(Some("99999999999999999999999999999")).unwrap(),
            0
        );
        assert_eq!(
            parse_generation(Some("777777777777777777777777")).unwrap(),
            u32::MAX
        );
        assert_eq!(
            parse_generation(Some("1x")).unwrap_err().to_string(),
            "bad generation: 1x"
        );
        assert!(parse_generation(Some("-1")).is_err());
    }

    #[test]
    fn status_record_matches_observed_bytes() {
        // Observed in docs/postfix-interop.md §13.1: pid 0x2938, generation 2.
        assert_eq!(
            status_record(0x2938, 2, Availability::Taken),
            *b"8)\0\0\x02\0\0\0\0\0\0\0"
        );
        assert_eq!(
            status_record(0x2938, 2, Availability::Avail),
            *b"8)\0\0\x02\0\0\0\x01\0\0\0"
        );
    }

    #[test]
    fn writes_records_and_notices_master_leaving() {
        let (ours, mut master) = UnixStream::pair().unwrap();
        let status = MasterStatus::new(ours.into(), 77, 0o16);
        status.set_available(false).unwrap();
        status.set_available(true).unwrap();
        let mut buf = [0u8; 24];
        master.read_exact(&mut buf).unwrap();
        assert_eq!(buf[..12], status_record(77, 14, Availability::Taken));
        assert_eq!(buf[12..], status_record(77, 14, Availability::Avail));
        drop(master);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(5), status.gone())
                .await
                .expect("EOF seen");
        });
        assert_eq!(status.set_available(true), Err(MasterGone));
        // After a failed write gone() resolves at once.
        rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(5), status.gone())
                .await
                .expect("failure seen");
        });
    }

    #[test]
    fn gone_stays_pending_while_master_is_there() {
        let (ours, _master) = UnixStream::pair().unwrap();
        let status = MasterStatus::new(ours.into(), 1, 1);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            assert!(
                tokio::time::timeout(std::time::Duration::from_millis(100), status.gone())
                    .await
                    .is_err()
            );
        });
    }
}
