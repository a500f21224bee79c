//! Inbound flow control through master(8)'s shared pipe; mirrors
//! `postfix/src/master/mail_flow.c` and the token arithmetic at the end of
//! `qmgr_loop()` in `postfix/src/oqmgr/qmgr.c`.
//!
//! fds 3 (read end) and 4 (write end) are one non-blocking pipe shared by
//! every Postfix daemon. A token is one NUL byte. cleanup(8) takes a token
//! per message it enqueues and, when `in_flow_delay` > 0 and the pipe is
//! empty, sleeps up to that delay. The queue manager refills: one token per
//! message it moves out of `incoming/`, and, once no `incoming/` scan is in
//! progress, tops the pipe up to `default_process_limit`, reading off any
//! excess. Without this refill intake crawls at about one message per
//! second per cleanup process.
//!
//! Invariants: never blocks (the pipe is non-blocking; a full pipe or an
//! empty one just ends the transfer early, `EAGAIN` is not an error);
//! transfers go in chunks of at most 1 KiB from a stack buffer, so no
//! request size can cause a large allocation.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

/// Chunk size of one pipe read or write (Postfix's `BUFFER_SIZE`).
const CHUNK: usize = 1024;

/// Handle on the flow-control pipe; cheap to clone.
#[derive(Clone, Debug)]
pub struct FlowPipe {
    /// Both ends, shared by clones.
    inner: Arc<Ends>,
}

/// The two pipe ends.
#[derive(Debug)]
struct Ends {
    /// fd 3: tokens are taken (read) here.
    read: OwnedFd,
    /// fd 4: tokens are put (written) here.
    write: OwnedFd,
}

/// What [`FlowPipe::regulate`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowAction {
    /// Nothing to do (pipe at the limit, or mid-scan with nothing fed).
    None,
    /// Wrote this many tokens (asked, actually written).
    Put(usize, usize),
    /// Read off this many excess tokens (asked, actually read).
    Got(usize, usize),
}

/// What the token count should change by, given the pipe's current
/// `count`, `limit` (= `default_process_limit`), whether this loop pass
/// fed a message from `incoming/`, and whether an `incoming/` scan is still
/// in progress. Positive: put tokens; negative: take them. Pure, so the
/// scheduling core and tests can reason about it without a pipe.
pub fn flow_adjustment(
    count: usize,
    limit: usize,
    fed_from_incoming: bool,
    incoming_scan_active: bool,
) -> i64 {
    if count < limit {
        if fed_from_incoming {
            1
        } else if !incoming_scan_active {
            (limit - count) as i64
        } else {
            0
        }
    } else {
        -((count - limit) as i64)
    }
}

impl FlowPipe {
    /// Wraps the two ends (normally fds 3 and 4 from master(8)).
    pub fn new(read: OwnedFd, write: OwnedFd) -> FlowPipe {
        FlowPipe {
            inner: Arc::new(Ends { read, write }),
        }
    }

    /// Number of tokens in the pipe (`FIONREAD` on the read end).
    pub fn count(&self) -> io::Result<usize> {
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one c_int through the pointer.
        let rc = unsafe { libc::ioctl(self.inner.read.as_raw_fd(), libc::FIONREAD, &mut n) };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n.max(0) as usize)
        }
    }

    /// Writes up to `n` tokens; returns how many went in. Stops early,
    /// without error, when the pipe is full.
    pub fn put(&self, n: usize) -> io::Result<usize> {
        let zeros = [0u8; CHUNK];
        let fd = self.inner.write.as_raw_fd();
        // SAFETY: `zeros` is valid for `len` <= CHUNK bytes.
        pump(n, |len| unsafe {
            libc::write(fd, zeros.as_ptr().cast(), len)
        })
    }

    /// Reads and discards up to `n` tokens; returns how many were taken.
    /// Stops early, without error, when the pipe is empty.
    pub fn get(&self, n: usize) -> io::Result<usize> {
        let mut sink = [0u8; CHUNK];
        let fd = self.inner.read.as_raw_fd();
        // SAFETY: `sink` is valid for `len` <= CHUNK bytes.
        pump(n, |len| unsafe {
            libc::read(fd, sink.as_mut_ptr().cast(), len)
        })
    }

    /// The end-of-loop step of the queue manager: see [`flow_adjustment`].
    /// When the count cannot be read it is taken as 0, so the pipe is
    /// refilled rather than starved (Postfix logs a warning and does the
    /// same with its -1).
    pub fn regulate(
        &self,
        limit: usize,
        fed_from_incoming: bool,
        incoming_scan_active: bool,
    ) -> io::Result<FlowAction> {
        let count = match self.count() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("mail_flow_count: {}", super::log::errno_text(&e));
                0
            }
        };
        let delta = flow_adjustment(count, limit, fed_from_incoming, incoming_scan_active);
        Ok(match delta {
            0 => FlowAction::None,
            d if d > 0 => FlowAction::Put(d as usize, self.put(d as usize)?),
            d => FlowAction::Got(
                d.unsigned_abs() as usize,
                self.get(d.unsigned_abs() as usize)?,
            ),
        })
    }
}

/// Moves up to `n` tokens in chunks with `step` (a non-blocking read or
/// write of at most `len` <= CHUNK bytes, returning the syscall's result).
/// A full or empty pipe (EAGAIN) or end of file ends it early without
/// error: tokens are a hint, never worth blocking the queue manager for.
fn pump(n: usize, mut step: impl FnMut(usize) -> isize) -> io::Result<usize> {
    let mut done = 0;
    while done < n {
        let rc = step((n - done).min(CHUNK));
        if rc < 0 {
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::WouldBlock => break,
                io::ErrorKind::Interrupted => continue,
                _ => return Err(e),
            }
        }
        if rc == 0 {
            break;
        }
        done += rc as usize;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::FromRawFd;

    fn pipe() -> FlowPipe {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills two descriptors we then own.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
        assert_eq!(rc, 0);
        // SAFETY: fresh descriptors owned by nobody else.
        unsafe { FlowPipe::new(OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    #[test]
    fn adjustment_follows_qmgr_loop() {
        assert_eq!(flow_adjustment(0, 100, false, false), 100);
        assert_eq!(flow_adjustment(40, 100, false, false), 60);
        assert_eq!(flow_adjustment(40, 100, true, true), 1);
        assert_eq!(flow_adjustment(40, 100, true, false), 1);
        assert_eq!(flow_adjustment(40, 100, false, true), 0);
        assert_eq!(flow_adjustment(100, 100, false, false), 0);
        assert_eq!(flow_adjustment(130, 100, true, false), -30);
        assert_eq!(flow_adjustment(5, 0, false, false), -5);
    }

    #[test]
    fn regulate_tops_up_and_reads_off() {
        let p = pipe();
        assert_eq!(p.count().unwrap(), 0);
        assert_eq!(
            p.regulate(100, false, false).unwrap(),
            FlowAction::Put(100, 100)
        );
        assert_eq!(p.count().unwrap(), 100);
        assert_eq!(p.regulate(100, true, false).unwrap(), FlowAction::None);
        p.get(3).unwrap();
        assert_eq!(p.regulate(100, true, true).unwrap(), FlowAction::Put(1, 1));
        assert_eq!(p.count().unwrap(), 98);
        p.put(2500).unwrap();
        assert_eq!(
            p.regulate(100, false, false).unwrap(),
            FlowAction::Got(2498, 2498)
        );
        assert_eq!(p.count().unwrap(), 100);
    }

    #[test]
    fn full_and_empty_pipes_do_not_block_or_fail() {
        let p = pipe();
        assert_eq!(p.get(10).unwrap(), 0);
        // A pipe holds 64 KiB by default; asking for far more stops at full.
        let put = p.put(1 << 20).unwrap();
        assert!(put > 0 && put < (1 << 20), "put {put}");
        assert_eq!(p.count().unwrap(), put);
        assert_eq!(p.get(1 << 21).unwrap(), put);
    }
}
