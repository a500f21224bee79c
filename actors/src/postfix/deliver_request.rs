//! Delivery agent protocol: one request to `private/<transport>`, one reply
//! (Postfix: `qmgr_deliver.c`, `deliver_request.c`, `verp_sender.c`).
//!
//! The queue manager connects, waits for `delivery_request_protocol`,
//! writes one 23-attribute request list followed by one list per
//! recipient, reads a reply of hop status ([`WireDsn`]) plus an integer status,
//! and closes at once: the agent blocks until that close, so a slow close
//! keeps an agent process busy for nothing.
//!
//! [`AgentConnection::connect`] is the first half (qmgr's pending
//! allocation: connect and wait for the announcement, then pick the entry);
//! [`AgentConnection::deliver`] the second; [`deliver`] does both.
//! [`DeliveryRequest::for_entry`] builds a request from a queue-file
//! [`FileEnvelope`] the way `qmgr_deliver_send_request` does.
//!
//! What the reply means for the scheduler (docs/postfix-ipc.md §7.5)
//! is the agent bridge's to say (`crate::daemon::bridge`).
//!
//! # Invariants
//! - Requests are byte-exact in attribute order and count; agents read
//!   strictly and reject anything else with status −1.
//! - A request has at least one recipient ([`EncodeError::Invalid`] if not).
//!
//! # Compatibility
//! Attribute 8 is `smtputf8` before Postfix 3.10 and `sendopts` since
//! ([`Dialect`]). Crash handling follows 3.7.11 (HISTORY 20240209): a crash
//! defers the message and gives no feedback; it does not kill the transport.

use std::borrow::Cow;
use std::path::Path;
use std::time::Duration;

use crate::postfix::attr::{
    decode_list, protocol, AttrList, AttrStream, AttrWriter, DecodeError, EncodeError, IpcError,
    Limits, MsgStats, Timeval, WireDsn, WireRecipient,
};
use crate::postfix::dialect::Dialect;
use crate::postfix::queue_file::{self, FileEnvelope};

/// Delivery request flag bits (`DEL_REQ_FLAG_*`, docs/postfix-ipc.md §7.4).
pub mod flags {
    /// Delete successful recipients (part of the default).
    pub const SUCCESS: u32 = 1;
    /// Bounce failed recipients (part of the default; alone with an `I` record).
    pub const BOUNCE: u32 = 2;
    /// The default: [`SUCCESS`] | [`BOUNCE`].
    pub const DEFAULT: u32 = SUCCESS | BOUNCE;
    /// MTA address-verification probe.
    pub const MTA_VRFY: u32 = 256;
    /// User address probe (`sendmail -bv`).
    pub const USR_VRFY: u32 = 512;
    /// Record every result in `trace` (`sendmail -v`).
    pub const RECORD: u32 = 1024;
    /// Agent may reuse a cached connection.
    pub const CONN_LOAD: u32 = 2048;
    /// Agent may cache its connection afterwards.
    pub const CONN_STORE: u32 = 4096;
    /// Record deliveries that follow a delay warning.
    pub const REC_DLY_SENT: u32 = 8192;
    /// The message trace flags qmgr copies into the request.
    pub const TRACE_MASK: u32 = MTA_VRFY | USR_VRFY | RECORD | REC_DLY_SENT;
}

/// Send-option bits (`SMTPUTF8_FLAG_*`; 3.10+ adds REQUIRETLS bits 16, 32).
pub mod sendopts {
    /// The client asked for SMTPUTF8.
    pub const REQUESTED: u32 = 1;
    /// A header needs SMTPUTF8.
    pub const HEADER: u32 = 2;
    /// The envelope sender needs SMTPUTF8.
    pub const SENDER: u32 = 4;
    /// A recipient in this request needs SMTPUTF8 (delivery requests only).
    pub const RECIPIENT: u32 = 8;
}

/// One delivery request (`DELIVER_REQUEST` as qmgr sends it,
/// docs/postfix-ipc.md §7.2).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeliveryRequest {
    /// Delivery flags ([`flags`]).
    pub flags: u32,
    /// Queue the file is in; qmgr always sends `active`.
    pub queue_name: Vec<u8>,
    /// Queue ID (file name).
    pub queue_id: Vec<u8>,
    /// Offset of the message content (`C` record `data_offset`).
    pub data_offset: u64,
    /// Content length (`C` record `cont_length`).
    pub data_size: u64,
    /// The destination's next hop; for `error`/`retry` the `"<dsn> <text>"`.
    pub nexthop: Vec<u8>,
    /// Body encoding: `7bit`, `8bit` or empty.
    pub encoding: Vec<u8>,
    /// Send options ([`sendopts`]); see [`request_sendopts`].
    pub sendopts: u32,
    /// Envelope sender, VERP-expanded when VERP is on ([`verp_sender`]).
    pub sender: Vec<u8>,
    /// DSN ENVID or empty.
    pub dsn_envid: Vec<u8>,
    /// DSN RET bits, 0 if none.
    pub dsn_ret: u32,
    /// Message statistics.
    pub stats: MsgStats,
    /// Client host name for logging.
    pub client_name: Vec<u8>,
    /// Client address for logging.
    pub client_addr: Vec<u8>,
    /// Client port for logging.
    pub client_port: Vec<u8>,
    /// Client protocol (`SMTP`, `ESMTP`, ...) for logging.
    pub client_proto: Vec<u8>,
    /// Client HELO name for logging.
    pub client_helo: Vec<u8>,
    /// SASL method.
    pub sasl_method: Vec<u8>,
    /// SASL user name.
    pub sasl_username: Vec<u8>,
    /// SASL sender.
    pub sasl_sender: Vec<u8>,
    /// Log identifier.
    pub log_ident: Vec<u8>,
    /// Address rewriting context: `local` or `remote`.
    pub rewrite_context: Vec<u8>,
    /// The recipients (at least one; exactly one with VERP).
    pub recipients: Vec<WireRecipient>,
}

impl DeliveryRequest {
    /// Encodes the request list and the recipient lists, ready to write.
    ///
    /// # Errors
    /// [`EncodeError::Invalid`] for an empty recipient list (the agent
    /// would reject it); [`EncodeError::NulInValue`] for a value with NUL.
    pub fn encode(&self, dialect: Dialect) -> Result<Vec<u8>, EncodeError> {
        Fields {
            flags: self.flags,
            queue_name: &self.queue_name,
            queue_id: &self.queue_id,
            data_offset: self.data_offset,
            data_size: self.data_size,
            nexthop: &self.nexthop,
            encoding: &self.encoding,
            sendopts: self.sendopts,
            sender: &self.sender,
            dsn_envid: &self.dsn_envid,
            dsn_ret: self.dsn_ret,
            stats: &self.stats,
            client_name: &self.client_name,
            client_addr: &self.client_addr,
            client_port: &self.client_port,
            client_proto: &self.client_proto,
            client_helo: &self.client_helo,
            sasl_method: &self.sasl_method,
            sasl_username: &self.sasl_username,
            sasl_sender: &self.sasl_sender,
            log_ident: &self.log_ident,
            rewrite_context: &self.rewrite_context,
            recipients: &self.recipients,
        }
        .encode(dialect)
    }
}

/// A request's fields, borrowed from wherever they live: what goes on the
/// wire, so that [`DeliveryRequest::encode`] and
/// [`DeliveryRequest::encode_for_entry`] cannot differ.
struct Fields<'a> {
    flags: u32,
    queue_name: &'a [u8],
    queue_id: &'a [u8],
    data_offset: u64,
    data_size: u64,
    nexthop: &'a [u8],
    encoding: &'a [u8],
    sendopts: u32,
    sender: &'a [u8],
    dsn_envid: &'a [u8],
    dsn_ret: u32,
    stats: &'a MsgStats,
    client_name: &'a [u8],
    client_addr: &'a [u8],
    client_port: &'a [u8],
    client_proto: &'a [u8],
    client_helo: &'a [u8],
    sasl_method: &'a [u8],
    sasl_username: &'a [u8],
    sasl_sender: &'a [u8],
    log_ident: &'a [u8],
    rewrite_context: &'a [u8],
    recipients: &'a [WireRecipient],
}

impl Fields<'_> {
    /// The request list and the recipient lists, ready to write.
    fn encode(&self, dialect: Dialect) -> Result<Vec<u8>, EncodeError> {
        if self.recipients.is_empty() {
            return Err(EncodeError::Invalid(
                "delivery request without recipients".into(),
            ));
        }
        let count = u32::try_from(self.recipients.len())
            .map_err(|_| EncodeError::Invalid("too many recipients".into()))?;
        // Attribute names, numbers and separators take about 600 bytes; the
        // variable parts are summed so the buffer is allocated once.
        let variable: usize = [
            self.queue_id,
            self.nexthop,
            self.encoding,
            self.sender,
            self.dsn_envid,
            self.client_name,
            self.client_addr,
            self.client_port,
            self.client_proto,
            self.client_helo,
            self.sasl_method,
            self.sasl_username,
            self.sasl_sender,
            self.log_ident,
            self.rewrite_context,
        ]
        .iter()
        .map(|v| v.len())
        .sum::<usize>()
            + self
                .recipients
                .iter()
                .map(|r| 96 + r.original.len() + r.address.len() + r.dsn_orcpt.len())
                .sum::<usize>();
        let mut w = AttrWriter::with_capacity(640 + variable);
        w.int("flags", self.flags)
            .str("queue_name", self.queue_name)
            .str("queue_id", self.queue_id)
            .long("offset", self.data_offset)
            .long("size", self.data_size)
            .str("nexthop", self.nexthop)
            .str("encoding", self.encoding)
            .int(dialect.sendopts_attr(), self.sendopts)
            .str("sender", self.sender)
            .str("envelope_id", self.dsn_envid)
            .int("ret_flags", self.dsn_ret)
            .func(self.stats)
            .str("log_client_name", self.client_name)
            .str("log_client_address", self.client_addr)
            .str("log_client_port", self.client_port)
            .str("log_protocol_name", self.client_proto)
            .str("log_helo_name", self.client_helo)
            .str("sasl_method", self.sasl_method)
            .str("sasl_username", self.sasl_username)
            .str("sasl_sender", self.sasl_sender)
            .str("log_ident", self.log_ident)
            .str("rewrite_context", self.rewrite_context)
            .int("recipient_count", count)
            .end();
        for r in self.recipients {
            w.func(r).end();
        }
        w.finish()
    }
}

impl From<&queue_file::FileRecipient> for WireRecipient {
    fn from(r: &queue_file::FileRecipient) -> Self {
        Self {
            original: r.orig_rcpt.clone(),
            address: r.address.clone(),
            offset: r.offset,
            dsn_orcpt: r.dsn_orcpt.clone(),
            // The reader keeps only valid NOTIFY values (0..=15).
            dsn_notify: r.dsn_notify as u32,
        }
    }
}

/// What the queue manager adds to an envelope to make one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryContext<'a> {
    /// The queue ID.
    pub queue_id: &'a [u8],
    /// The destination's next hop (or `"<dsn> <text>"` for error/retry).
    pub nexthop: &'a [u8],
    /// Connection-cache flags of the destination ([`flags::CONN_LOAD`],
    /// [`flags::CONN_STORE`]), 0 normally.
    pub conn_flags: u32,
    /// When the message entered the active queue.
    pub active_arrival: Timeval,
    /// `smtputf8_enable`.
    pub smtputf8_enable: bool,
}

impl DeliveryRequest {
    /// Builds the request for `recipients` of the message read into `env`,
    /// as `qmgr_deliver_send_request` does: trace flags plus connection
    /// flags plus the default (or BOUNCE alone with an `I` record),
    /// per-request send options, and the VERP sender when VERP is on.
    pub fn for_entry(
        env: &FileEnvelope,
        ctx: &EntryContext<'_>,
        recipients: Vec<WireRecipient>,
    ) -> Self {
        let p = Prepared::new(env, ctx, &recipients);
        Self {
            flags: p.flags,
            queue_name: b"active".to_vec(),
            queue_id: ctx.queue_id.to_vec(),
            data_offset: env.data_offset.max(0) as u64,
            data_size: env.cont_length.max(0) as u64,
            nexthop: ctx.nexthop.to_vec(),
            encoding: env.encoding.clone(),
            sendopts: p.sendopts,
            sender: p.sender.into_owned(),
            dsn_envid: env.dsn_envid.clone(),
            dsn_ret: env.dsn_ret as u32,
            stats: p.stats,
            client_name: env.client_name.clone(),
            client_addr: env.client_addr.clone(),
            client_port: env.client_port.clone(),
            client_proto: env.client_proto.clone(),
            client_helo: env.client_helo.clone(),
            sasl_method: env.sasl_method.clone(),
            sasl_username: env.sasl_username.clone(),
            sasl_sender: env.sasl_sender.clone(),
            log_ident: env.log_ident.clone(),
            rewrite_context: env.rewrite_context.clone(),
            recipients,
        }
    }

    /// The bytes of `for_entry(env, ctx, recipients).encode(dialect)`,
    /// written straight from the envelope: the queue manager sends one
    /// request per delivery, and building the owned request first copies a
    /// dozen envelope fields only to encode and drop them.
    ///
    /// # Errors
    /// As [`DeliveryRequest::encode`].
    pub fn encode_for_entry(
        env: &FileEnvelope,
        ctx: &EntryContext<'_>,
        recipients: &[WireRecipient],
        dialect: Dialect,
    ) -> Result<Vec<u8>, EncodeError> {
        let p = Prepared::new(env, ctx, recipients);
        Fields {
            flags: p.flags,
            queue_name: b"active",
            queue_id: ctx.queue_id,
            data_offset: env.data_offset.max(0) as u64,
            data_size: env.cont_length.max(0) as u64,
            nexthop: ctx.nexthop,
            encoding: &env.encoding,
            sendopts: p.sendopts,
            sender: &p.sender,
            dsn_envid: &env.dsn_envid,
            dsn_ret: env.dsn_ret as u32,
            stats: &p.stats,
            client_name: &env.client_name,
            client_addr: &env.client_addr,
            client_port: &env.client_port,
            client_proto: &env.client_proto,
            client_helo: &env.client_helo,
            sasl_method: &env.sasl_method,
            sasl_username: &env.sasl_username,
            sasl_sender: &env.sasl_sender,
            log_ident: &env.log_ident,
            rewrite_context: &env.rewrite_context,
            recipients,
        }
        .encode(dialect)
    }
}

/// What a request computes from the envelope rather than copies, as
/// `qmgr_deliver_send_request` does: trace flags plus connection flags
/// plus the default (or BOUNCE alone with an `I` record), per-request send
/// options, and the VERP sender when VERP is on.
struct Prepared<'a> {
    /// Request flags.
    flags: u32,
    /// The sender, rewritten for VERP (else borrowed as it is).
    sender: Cow<'a, [u8]>,
    /// Send options.
    sendopts: u32,
    /// Arrival times.
    stats: MsgStats,
}

impl<'a> Prepared<'a> {
    fn new(env: &'a FileEnvelope, ctx: &EntryContext<'_>, recipients: &[WireRecipient]) -> Self {
        let sender = env.sender.as_deref().unwrap_or_default();
        let verp = env.verp_delims.as_deref().filter(|d| d.len() == 2);
        let sender = match (verp, recipients.first()) {
            (Some(d), Some(r)) => Cow::Owned(verp_sender([d[0], d[1]], sender, r)),
            _ => Cow::Borrowed(sender),
        };
        let base = if env.inspect_xport.is_some() {
            flags::BOUNCE
        } else {
            flags::DEFAULT
        };
        Prepared {
            flags: (env.trace_flags as u32 & flags::TRACE_MASK) | ctx.conn_flags | base,
            sender,
            sendopts: request_sendopts(
                env.smtputf8 as u32,
                recipients,
                ctx.smtputf8_enable,
                verp.is_some(),
            ),
            stats: MsgStats {
                incoming_arrival: Timeval {
                    sec: env.arrival_sec,
                    usec: env.arrival_usec,
                },
                active_arrival: ctx.active_arrival,
                ..MsgStats::default()
            },
        }
    }
}

/// Decodes a complete request the way an agent reads it
/// (`deliver_request_get`, strict): the inverse of [`DeliveryRequest::encode`].
///
/// # Errors
/// Any strictness, number or limit error; [`DecodeError::Invalid`] for a
/// zero recipient count; [`DecodeError::TrailingData`] for bytes after the
/// last recipient list.
pub fn decode_delivery_request(
    input: &[u8],
    dialect: Dialect,
    limits: &Limits,
) -> Result<DeliveryRequest, DecodeError> {
    let (head, mut at) = decode_list(input, limits)?;
    let mut s = head.scan();
    let mut req = DeliveryRequest {
        flags: s.int("flags")?,
        queue_name: s.str("queue_name")?,
        queue_id: s.str("queue_id")?,
        data_offset: s.long("offset")?,
        data_size: s.long("size")?,
        nexthop: s.str("nexthop")?,
        encoding: s.str("encoding")?,
        sendopts: s.int(dialect.sendopts_attr())?,
        sender: s.str("sender")?,
        dsn_envid: s.str("envelope_id")?,
        dsn_ret: s.int("ret_flags")?,
        stats: s.func()?,
        client_name: s.str("log_client_name")?,
        client_addr: s.str("log_client_address")?,
        client_port: s.str("log_client_port")?,
        client_proto: s.str("log_protocol_name")?,
        client_helo: s.str("log_helo_name")?,
        sasl_method: s.str("sasl_method")?,
        sasl_username: s.str("sasl_username")?,
        sasl_sender: s.str("sasl_sender")?,
        log_ident: s.str("log_ident")?,
        rewrite_context: s.str("rewrite_context")?,
        recipients: Vec::new(),
    };
    let count = s.int("recipient_count")?;
    s.finish()?;
    if count == 0 {
        return Err(DecodeError::Invalid("recipient_count 0".into()));
    }
    for _ in 0..count {
        // Each list is bounded by the limits, and a missing list ends the
        // input, so a huge claimed count cannot make us allocate ahead.
        let (list, used) = decode_list(&input[at..], limits)?;
        at += used;
        let mut s = list.scan();
        req.recipients.push(s.func()?);
        s.finish()?;
    }
    if at != input.len() {
        return Err(DecodeError::TrailingData {
            extra: input.len() - at,
        });
    }
    Ok(req)
}

/// The agent's reply: hop status plus final status (docs/postfix-ipc.md §7.3).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeliveryReply {
    /// Hop status: empty unless the next hop should be avoided for a while.
    pub hop: WireDsn,
    /// 0 = every recipient finished; anything else (agents send −1 as
    /// `4294967295`) = at least one recipient still needs delivery.
    pub status: u32,
}

/// The reply status agents send for "try again" (−1).
pub const STATUS_DEFER: u32 = u32::MAX;

impl DeliveryReply {
    /// Reads a reply from a decoded list (strict).
    ///
    /// # Errors
    /// Strictness and number errors.
    pub fn from_list(list: &AttrList) -> Result<Self, DecodeError> {
        let mut s = list.scan();
        let hop = s.func()?;
        let status = s.int("status")?;
        s.finish()?;
        Ok(Self { hop, status })
    }

    /// Encodes the reply as an agent sends it.
    ///
    /// # Errors
    /// [`EncodeError::NulInValue`].
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut w = AttrWriter::new();
        w.func(&self.hop).int("status", self.status).end();
        w.finish()
    }
}

/// Decodes a complete reply (one list, nothing after it).
///
/// # Errors
/// As [`DeliveryReply::from_list`], plus truncation and trailing data.
pub fn decode_delivery_reply(input: &[u8]) -> Result<DeliveryReply, DecodeError> {
    let list = crate::postfix::attr::decode_one_list(input, &Limits::default())?;
    DeliveryReply::from_list(&list)
}

/// Why a delivery exchange did not produce a reply.
#[derive(Debug)]
pub enum DeliveryError {
    /// Connect, announcement or request write failed: the transport itself
    /// is unavailable (`connect to transport private/<t>: ...`,
    /// `malformed response`, `write to process (<t>): ...`).
    Transport(IpcError),
    /// The agent vanished or answered garbage after taking the request:
    /// an agent crash (`premature disconnect`, `malformed response`). A
    /// request that cannot be encoded ([`IpcError::Encode`], nothing sent)
    /// is reported here too: defer the message, blame no one.
    Crash(IpcError),
}

impl std::fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Transport(e) => write!(f, "transport unavailable: {e}"),
            Self::Crash(e) => write!(f, "agent crash: {e}"),
        }
    }
}

impl std::error::Error for DeliveryError {}

/// A connected agent that has announced itself and waits for a request
/// (one of qmgr's "pending allocations", docs/postfix-ipc.md §7.1).
///
/// qmgr connects first and picks the queue entry only when the agent is
/// ready, so that an entry is never tied up waiting for a busy transport.
/// Dropping an `AgentConnection` without a request is allowed: the agent
/// accepts a close instead of a request.
#[derive(Debug)]
pub struct AgentConnection {
    /// The stream, announcement already checked.
    stream: AttrStream,
}

impl AgentConnection {
    /// Connects to `socket` (`<queue_directory>/private/<transport>`) and
    /// waits for the `delivery_request_protocol` announcement.
    ///
    /// # Errors
    /// [`DeliveryError::Transport`]: connect failed, timed out, or the
    /// announcement was missing or wrong.
    pub async fn connect(socket: &Path, timeout: Duration) -> Result<Self, DeliveryError> {
        let mut stream = AttrStream::connect(socket, timeout)
            .await
            .map_err(DeliveryError::Transport)?;
        stream
            .read_announcement(protocol::DELIVERY_REQUEST)
            .await
            .map_err(DeliveryError::Transport)?;
        Ok(Self { stream })
    }

    /// Bounds the wait for the agent's reply, which comes only when the
    /// delivery is over (an SMTP delivery may legitimately take many
    /// minutes). By default the wait is bounded by the connect timeout.
    pub fn set_reply_timeout(&mut self, timeout: Duration) {
        self.stream.set_timeout(timeout);
    }

    /// Sends `request`, reads the reply and closes the connection at once
    /// (the agent blocks until that close).
    ///
    /// # Errors
    /// [`DeliveryError::Transport`] if the write fails (Postfix: `write to
    /// process`), [`DeliveryError::Crash`] if the reply is missing or
    /// malformed, or if the request cannot be encoded (nothing is sent).
    pub async fn deliver(
        self,
        request: &DeliveryRequest,
        dialect: Dialect,
    ) -> Result<DeliveryReply, DeliveryError> {
        self.deliver_encoded(request.encode(dialect)).await
    }

    /// [`AgentConnection::deliver`] for a request already encoded (see
    /// [`DeliveryRequest::encode_for_entry`]); an encoding error is a crash
    /// and nothing is sent.
    ///
    /// # Errors
    /// As [`AgentConnection::deliver`].
    pub async fn deliver_encoded(
        mut self,
        encoded: Result<Vec<u8>, EncodeError>,
    ) -> Result<DeliveryReply, DeliveryError> {
        let bytes = encoded.map_err(|e| DeliveryError::Crash(IpcError::Encode(e)))?;
        self.stream
            .write_all(&bytes)
            .await
            .map_err(DeliveryError::Transport)?;
        let list = self
            .stream
            .read_list()
            .await
            .map_err(DeliveryError::Crash)?;
        // Dropping the stream closes it: the agent is waiting for exactly that.
        drop(self);
        DeliveryReply::from_list(&list).map_err(|e| DeliveryError::Crash(IpcError::Decode(e)))
    }
}

/// Connects to the agent listening on `socket`, sends one request and reads
/// its reply ([`AgentConnection::connect`] then
/// [`AgentConnection::deliver`]).
///
/// `timeout` bounds each connect, read and write (`qmgr_ipc_timeout`); the
/// caller adds the long `daemon_timeout` watchdog around the whole call if
/// it wants one.
///
/// # Errors
/// [`DeliveryError`], split by phase so that a caller can tell a dead
/// transport from a crashed agent.
pub async fn deliver(
    socket: &Path,
    request: &DeliveryRequest,
    dialect: Dialect,
    timeout: Duration,
) -> Result<DeliveryReply, DeliveryError> {
    AgentConnection::connect(socket, timeout)
        .await?
        .deliver(request, dialect)
        .await
}

/// The VERP sender for one recipient (Postfix `verp_sender`):
/// `s_local d1 r_local d2 r_domain @ s_domain`, from the recipient's
/// original address when it has one. `delims` must be two bytes.
pub fn verp_sender(delims: [u8; 2], sender: &[u8], rcpt: &WireRecipient) -> Vec<u8> {
    let split = |a: &[u8]| match a.iter().rposition(|&b| b == b'@') {
        Some(i) => (a[..i].to_vec(), Some(a[i + 1..].to_vec())),
        None => (a.to_vec(), None),
    };
    let (s_local, s_domain) = split(sender);
    let addr = if rcpt.original.is_empty() {
        &rcpt.address
    } else {
        &rcpt.original
    };
    let (r_local, r_domain) = split(addr);
    let mut out = s_local;
    out.push(delims[0]);
    out.extend_from_slice(&r_local);
    if let Some(d) = r_domain.filter(|d| !d.is_empty()) {
        out.push(delims[1]);
        out.extend_from_slice(&d);
    }
    if let Some(d) = s_domain.filter(|d| !d.is_empty()) {
        out.push(b'@');
        out.extend_from_slice(&d);
    }
    out
}

/// The send-options value for one request: the queue file's value plus
/// [`sendopts::RECIPIENT`] when `smtputf8_enable` is on and a recipient of
/// *this request* is non-ASCII valid UTF-8, plus [`sendopts::SENDER`] in
/// that case when VERP is on (the sender then embeds the recipient).
pub fn request_sendopts(
    base: u32,
    recipients: &[WireRecipient],
    smtputf8_enable: bool,
    verp: bool,
) -> u32 {
    let mut v = base;
    for r in recipients {
        if smtputf8_enable && !r.address.is_ascii() && std::str::from_utf8(&r.address).is_ok() {
            v |= sendopts::RECIPIENT;
            if verp {
                v |= sendopts::SENDER;
            }
        }
    }
    v
}

#[cfg(test)]
#[path = "deliver_request_tests.rs"]
mod tests;
