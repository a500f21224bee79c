//! resolver - trivial-rewrite lookups for the queue store, answered
//! synchronously (Postfix: `global/resolve_clnt.c`, `rewrite_clnt.c` and
//! `clnt_stream.c` as oqmgr uses them from `qmgr_message_resolve`, which
//! blocks on the answer).
//!
//! The queue store runs on the actors' thread and its
//! [`QueueStore`](crate::queue_store::QueueStore) calls are synchronous, like
//! oqmgr's own: a lookup on `private/rewrite` is a local round trip of a few
//! microseconds, and doing it in place costs far less than handing it to
//! another thread (two context switches per batch, measured as about a
//! tenth of the daemon's CPU). The wire format is in
//! [`crate::postfix::rewrite`]; the transport is a blocking `UnixStream`
//! with read and write timeouts.
//!
//! # Behaviour, as Postfix's client
//! - one connection, reused; closed after `ipc_idle` (5 s) without use or
//!   `ipc_ttl` (1000 s) after it opened, and when the server's reply asks
//!   for it (non-zero server flags);
//! - a one-entry cache of the last answer, valid `cache_ttl` (30 s); empty
//!   addresses are never cached;
//! - a failed exchange is logged (`problem talking to service rewrite:
//!   <system error>`), the connection dropped, and the request retried
//!   after `retry_delay`, for ever: mail is never misrouted for want of an
//!   answer. While trivial-rewrite is down the scheduler waits, as oqmgr
//!   does. As Postfix's client, the first attempt stays quiet when the
//!   server had merely closed a cached connection (end of file, `EPIPE`)
//!   or its socket is missing (`ENOENT`, a restart): the retry warns if
//!   that persists ([`Problem::warning`]). An answer without a transport or
//!   recipient is retried too, with Postfix's `resolve_clnt: null
//!   transport result for: <address>` warning.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::clock::io_now;
use crate::postfix::attr::protocol;
use crate::postfix::attr::{check_announcement, decode_list, AttrList, DecodeError, Limits};
use crate::postfix::log::errno_text;
use crate::postfix::rewrite::{
    decode_rewrite_reply, encode_resolve_request, encode_rewrite_request, quote_822_local,
    unquote_822_local, ResolveClass, ResolveReply, RewriteRule,
};

/// The client's settings; the defaults are Postfix's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolverConfig {
    /// Bound on each connect, read and write (`ipc_timeout`).
    pub ipc_timeout: Duration,
    /// Close the connection after this long without requests (`ipc_idle`, 5 s).
    pub ipc_idle: Duration,
    /// Close the connection this long after connecting (`ipc_ttl`, 1000 s).
    pub ipc_ttl: Duration,
    /// Pause between failed attempts (Postfix: 1 s).
    pub retry_delay: Duration,
    /// Lifetime of the last answer in the cache (Postfix: 30 s).
    pub cache_ttl: Duration,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        Self {
            ipc_timeout: Duration::from_secs(60),
            ipc_idle: Duration::from_secs(5),
            ipc_ttl: Duration::from_secs(1000),
            retry_delay: Duration::from_secs(1),
            cache_ttl: Duration::from_secs(30),
        }
    }
}

/// An open connection.
struct Conn {
    /// The socket (announcement already checked).
    stream: UnixStream,
    /// Bytes read and not yet decoded.
    rbuf: Vec<u8>,
    /// When it was opened (`ipc_ttl`).
    opened: Instant,
    /// When it was last used (`ipc_idle`).
    used: Instant,
}

/// The last resolve answer. Refilled in place, so that a fan-out's
/// alternating addresses (every lookup a miss) reuse its buffers rather
/// than allocate five new ones per lookup.
struct Cached {
    /// The request's class.
    class: ResolveClass,
    /// The request's sender.
    sender: Vec<u8>,
    /// The request's address.
    address: Vec<u8>,
    /// The answer.
    reply: ResolveReply,
    /// When it stops being valid.
    expires: Instant,
}

/// The client's state.
struct Client {
    /// `<queue_directory>/private/<rewrite_service_name>`.
    socket: PathBuf,
    /// Timeouts, idle and TTL limits, cache lifetime.
    config: ResolverConfig,
    /// Decoding limits.
    limits: Limits,
    /// The connection, if open.
    conn: Option<Conn>,
    /// The last answer.
    cache: Option<Cached>,
}

/// A blocking trivial-rewrite client shared by the store's calls.
pub struct Resolver {
    /// The client; the lock is uncontended (one actor thread), it only
    /// lets `&self` methods keep the connection.
    client: Mutex<Client>,
}

impl Resolver {
    /// A client for the service at `socket`; nothing is connected yet.
    pub fn new(socket: &Path, config: ResolverConfig) -> Resolver {
        Resolver {
            client: Mutex::new(Client {
                socket: socket.to_path_buf(),
                config,
                limits: Limits::default(),
                conn: None,
                cache: None,
            }),
        }
    }

    /// Resolves `addresses` (in order) for `sender`.
    pub fn resolve<'a>(
        &self,
        class: ResolveClass,
        sender: &[u8],
        addresses: impl IntoIterator<Item = &'a [u8]>,
    ) -> Vec<ResolveReply> {
        let mut client = self.client.lock().unwrap_or_else(|e| e.into_inner());
        addresses
            .into_iter()
            .map(|a| client.resolve(class, sender, a))
            .collect()
    }

    /// Rewrites a redirect target in the `local` context.
    pub fn rewrite_local(&self, address: &[u8]) -> Vec<u8> {
        let mut client = self.client.lock().unwrap_or_else(|e| e.into_inner());
        client.rewrite_local(address)
    }
}

impl Client {
    fn resolve(&mut self, class: ResolveClass, sender: &[u8], address: &[u8]) -> ResolveReply {
        if let Some(c) = &self.cache {
            if !address.is_empty()
                && c.class == class
                && c.address == address
                && c.sender == sender
                && io_now() < c.expires
            {
                return c.reply.clone();
            }
        }
        let request = match encode_resolve_request(class, sender, address) {
            Ok(r) => r,
            // A NUL in an address cannot be asked about; Postfix's reader
            // never produces one, so this is only defence.
            Err(_) => return resolver_failure(address),
        };
        let reply = self.exchange(&request, |list| {
            let r = ResolveReply::from_list(list).map_err(|e| Problem::Garbled(e.to_string()))?;
            let null = if r.transport.is_empty() {
                "transport"
            } else if r.recipient.is_empty() && !address.is_empty() {
                "recipient"
            } else {
                return Ok((r.server_flags, r));
            };
            Err(Problem::Unusable(format!(
                "resolve_clnt: null {null} result for: <{}>",
                String::from_utf8_lossy(address)
            )))
        });
        let expires = io_now() + self.config.cache_ttl;
        match &mut self.cache {
            Some(c) => {
                c.class = class;
                c.sender.clear();
                c.sender.extend_from_slice(sender);
                c.address.clear();
                c.address.extend_from_slice(address);
                c.reply.server_flags = reply.server_flags;
                c.reply.transport.clone_from(&reply.transport);
                c.reply.nexthop.clone_from(&reply.nexthop);
                c.reply.recipient.clone_from(&reply.recipient);
                c.reply.flags = reply.flags;
                c.expires = expires;
            }
            None => {
                self.cache = Some(Cached {
                    class,
                    sender: sender.to_vec(),
                    address: address.to_vec(),
                    reply: reply.clone(),
                    expires,
                })
            }
        }
        reply
    }

    fn rewrite_local(&mut self, address: &[u8]) -> Vec<u8> {
        let Ok(request) = encode_rewrite_request(RewriteRule::Local, &quote_822_local(address))
        else {
            return address.to_vec();
        };
        let external = self.exchange(&request, |list| {
            decode_rewrite_reply(list).map_err(|e| Problem::Garbled(e.to_string()))
        });
        unquote_822_local(&external)
    }

    /// Sends `request` and parses the reply, retrying until it works.
    fn exchange<T>(
        &mut self,
        request: &[u8],
        parse: impl Fn(&AttrList) -> Result<(u32, T), Problem>,
    ) -> T {
        let service = self
            .socket
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "rewrite".into());
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.try_exchange(request).and_then(|list| parse(&list)) {
                Ok((server_flags, value)) => {
                    if server_flags != 0 {
                        // The server will restart: hang up now.
                        self.conn = None;
                    }
                    return value;
                }
                Err(problem) => {
                    if let Some(line) = problem.warning(&service, attempt) {
                        tracing::warn!("{line}");
                    }
                    self.conn = None;
                    std::thread::sleep(self.config.retry_delay);
                }
            }
        }
    }

    /// One request and its reply on a usable connection.
    fn try_exchange(&mut self, request: &[u8]) -> Result<AttrList, Problem> {
        let now = io_now();
        if let Some(c) = &self.conn {
            if now.duration_since(c.used) >= self.config.ipc_idle
                || now.duration_since(c.opened) >= self.config.ipc_ttl
            {
                self.conn = None;
            }
        }
        if self.conn.is_none() {
            self.conn = Some(self.connect()?);
        }
        let limits = self.limits;
        let conn = self.conn.as_mut().expect("connected above");
        conn.stream.write_all(request).map_err(Problem::Io)?;
        let list = read_list(conn, &limits)?;
        conn.used = io_now();
        Ok(list)
    }

    /// Connects and checks the server's announcement.
    fn connect(&self) -> Result<Conn, Problem> {
        let stream = UnixStream::connect(&self.socket).map_err(Problem::Io)?;
        let timeout = Some(self.config.ipc_timeout);
        stream
            .set_read_timeout(timeout)
            .and_then(|()| stream.set_write_timeout(timeout))
            .map_err(Problem::Io)?;
        let now = io_now();
        let mut conn = Conn {
            stream,
            rbuf: Vec::new(),
            opened: now,
            used: now,
        };
        let hello = read_list(&mut conn, &self.limits)?;
        check_announcement(&hello, protocol::TRIVIAL_REWRITE)
            .map_err(|e| Problem::Garbled(e.to_string()))?;
        Ok(conn)
    }
}

/// Reads one complete attribute list from the connection.
fn read_list(conn: &mut Conn, limits: &Limits) -> Result<AttrList, Problem> {
    let mut chunk = [0u8; 4096];
    loop {
        match decode_list(&conn.rbuf, limits) {
            Ok((list, used)) => {
                conn.rbuf.drain(..used);
                return Ok(list);
            }
            Err(DecodeError::Truncated) => {}
            Err(e) => return Err(Problem::Garbled(e.to_string())),
        }
        if conn.rbuf.len() > limits.max_list_len {
            return Err(Problem::Garbled("reply too long".into()));
        }
        let n = conn.stream.read(&mut chunk).map_err(Problem::Io)?;
        if n == 0 {
            return Err(Problem::Closed);
        }
        conn.rbuf.extend_from_slice(&chunk[..n]);
    }
}

/// Why an exchange with trivial-rewrite failed.
#[derive(Debug)]
pub enum Problem {
    /// A system call failed (connect, read, write, a timeout).
    Io(io::Error),
    /// The server hung up before answering.
    Closed,
    /// The answer could not be decoded.
    Garbled(String),
    /// A decoded answer that cannot be used: the whole warning line.
    Unusable(String),
}

impl Problem {
    /// The warning for attempt number `attempt` (from 1) with `service`,
    /// in Postfix's words, or `None` for the quiet first attempt after a
    /// cached connection went stale or the socket was missing.
    pub fn warning(&self, service: &str, attempt: u32) -> Option<String> {
        let stale = match self {
            Problem::Closed => true,
            Problem::Io(e) => matches!(e.raw_os_error(), Some(libc::EPIPE | libc::ENOENT)),
            _ => false,
        };
        if attempt == 1 && stale {
            return None;
        }
        let why = match self {
            Problem::Unusable(line) => return Some(line.clone()),
            Problem::Io(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                errno_text(&io::Error::from_raw_os_error(libc::ETIMEDOUT))
            }
            Problem::Io(e) => errno_text(e),
            Problem::Closed => "lost connection".to_string(),
            Problem::Garbled(why) => why.clone(),
        };
        Some(format!("problem talking to service {service}: {why}"))
    }
}

/// What an address whose lookup cannot even be asked resolves to: the
/// resolver's FAIL, which the store turns into `retry` / `4.3.0`.
fn resolver_failure(address: &[u8]) -> ResolveReply {
    ResolveReply {
        server_flags: 0,
        transport: b"retry".to_vec(),
        nexthop: b"4.3.0 address resolver failure".to_vec(),
        recipient: address.to_vec(),
        flags: crate::postfix::rewrite::resolve_flags::FAIL,
    }
}

#[cfg(test)]
#[path = "resolver_tests.rs"]
mod tests;
