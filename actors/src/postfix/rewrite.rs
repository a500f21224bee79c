//! trivial-rewrite(8) client: resolve recipients and rewrite redirect
//! targets over `private/rewrite` (Postfix: `resolve_clnt.c`,
//! `rewrite_clnt.c`, `clnt_stream.c`, `quote_822_local.c`).
//!
//! One long-lived connection carries synchronous request/reply pairs. The
//! server announces `trivial_rewrite_protocol` on every new connection. A
//! non-zero *server flags* value in a reply asks the client to hang up
//! after it (the server is about to restart, for example after a table
//! changed).
//!
//! The client keeps a single-entry cache per request kind, valid 30 s:
//! recipients are sorted before they are resolved, so runs of the same
//! address hit it, and nothing more elaborate pays off (§5.4).
//!
//! On any failure (connect, I/O, timeout, malformed reply, wrong
//! announcement, empty transport, empty recipient for a non-empty address)
//! the client logs a warning, waits [`ClientConfig::retry_delay`],
//! reconnects and tries again, like Postfix, which tries forever;
//! [`ClientConfig::max_attempts`] bounds that for callers that prefer an
//! error.
//!
//! # Compatibility
//! `ipc_idle` (5 s) closes an idle connection, `ipc_ttl` (1000 s) any
//! connection, and a connection that turned readable while idle (the
//! server went away) is replaced before the next request, as Postfix's
//! `clnt_stream` does.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use crate::postfix::attr::{
    decode_one_list, protocol, AttrList, AttrStream, AttrWriter, DecodeError, EncodeError,
    IpcError, Limits,
};

/// Resolve reply flag bits (`RESOLVE_FLAG_*`, `RESOLVE_CLASS_*`).
pub mod resolve_flags {
    /// Final delivery.
    pub const FINAL: u32 = 1;
    /// Routed by relayhost or transport map.
    pub const ROUTED: u32 = 2;
    /// Bad address syntax: send to `error`, `5.1.3 bad address syntax`.
    pub const ERROR: u32 = 4;
    /// Table lookup failed: send to `retry`, `4.3.0 address resolver failure`.
    pub const FAIL: u32 = 8;
    /// `mydestination` / `inet_interfaces` domain.
    pub const CLASS_LOCAL: u32 = 256;
    /// `virtual_alias_domains`.
    pub const CLASS_ALIAS: u32 = 512;
    /// `virtual_mailbox_domains`.
    pub const CLASS_VIRTUAL: u32 = 1024;
    /// `relay_domains`.
    pub const CLASS_RELAY: u32 = 2048;
    /// Everything else.
    pub const CLASS_DEFAULT: u32 = 4096;
}

/// Which routing a resolve request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResolveClass {
    /// Normal delivery (`resolve`).
    Resolve,
    /// Address-verification probes (`verify`), which use the
    /// `address_verify_*` overrides.
    Verify,
}

impl ResolveClass {
    /// The `request` value on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Resolve => "resolve",
            Self::Verify => "verify",
        }
    }
}

/// Which rewriting context a rewrite request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RewriteRule {
    /// `local` (what qmgr uses for redirect targets).
    Local,
    /// `remote`.
    Remote,
}

impl RewriteRule {
    /// The `rule` value on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Remote => "remote",
        }
    }
}

/// A resolve reply (exactly five attributes, in order).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolveReply {
    /// Server flags: non-zero asks the client to disconnect after this reply.
    pub server_flags: u32,
    /// master.cf service of the delivery agent (`smtp`, `local`, `error`, ...).
    pub transport: Vec<u8>,
    /// Next hop (domain, `[host]:port`, or for `error`/`retry` a DSN text).
    pub nexthop: Vec<u8>,
    /// The recipient after rewriting (internal form).
    pub recipient: Vec<u8>,
    /// [`resolve_flags`].
    pub flags: u32,
}

impl ResolveReply {
    /// Reads the reply strictly from a decoded list.
    ///
    /// # Errors
    /// Strictness and number errors.
    pub fn from_list(list: &AttrList) -> Result<Self, DecodeError> {
        let mut s = list.scan();
        let r = Self {
            server_flags: s.int("flags")?,
            transport: s.str("transport")?,
            nexthop: s.str("nexthop")?,
            recipient: s.str("recipient")?,
            flags: s.int("flags")?,
        };
        s.finish()?;
        Ok(r)
    }

    /// Encodes the reply as trivial-rewrite sends it.
    ///
    /// # Errors
    /// [`EncodeError::NulInValue`].
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut w = AttrWriter::new();
        w.int("flags", self.server_flags)
            .str("transport", &self.transport)
            .str("nexthop", &self.nexthop)
            .str("recipient", &self.recipient)
            .int("flags", self.flags)
            .end();
        w.finish()
    }
}

/// Decodes a complete resolve reply (one list, nothing after it).
///
/// # Errors
/// Truncation, trailing data, strictness and number errors.
pub fn decode_resolve_reply(input: &[u8]) -> Result<ResolveReply, DecodeError> {
    ResolveReply::from_list(&decode_one_list(input, &Limits::default())?)
}

/// Encodes a resolve request: `request`, `sender`, `address` (internal form).
///
/// # Errors
/// [`EncodeError::NulInValue`].
pub fn encode_resolve_request(
    class: ResolveClass,
    sender: &[u8],
    address: &[u8],
) -> Result<Vec<u8>, EncodeError> {
    let mut w = AttrWriter::new();
    w.str("request", class.as_str())
        .str("sender", sender)
        .str("address", address)
        .end();
    w.finish()
}

/// Encodes a rewrite request: `request`, `rule`, `address` (external form).
///
/// # Errors
/// [`EncodeError::NulInValue`].
pub fn encode_rewrite_request(rule: RewriteRule, external: &[u8]) -> Result<Vec<u8>, EncodeError> {
    let mut w = AttrWriter::new();
    w.str("request", "rewrite")
        .str("rule", rule.as_str())
        .str("address", external)
        .end();
    w.finish()
}

/// Reads a rewrite reply: server flags and the rewritten (external) address.
///
/// # Errors
/// Strictness and number errors.
pub fn decode_rewrite_reply(list: &AttrList) -> Result<(u32, Vec<u8>), DecodeError> {
    let mut s = list.scan();
    let flags = s.int("flags")?;
    let address = s.str("address")?;
    s.finish()?;
    Ok((flags, address))
}

/// Encodes a rewrite reply as trivial-rewrite sends it.
///
/// # Errors
/// [`EncodeError::NulInValue`].
pub fn encode_rewrite_reply(server_flags: u32, external: &[u8]) -> Result<Vec<u8>, EncodeError> {
    let mut w = AttrWriter::new();
    w.int("flags", server_flags).str("address", external).end();
    w.finish()
}

/// A request as trivial-rewrite reads it (the inverse of
/// [`encode_resolve_request`] and [`encode_rewrite_request`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RewriteRequest {
    /// `resolve` or `verify`.
    Resolve {
        /// Routing class.
        class: ResolveClass,
        /// Envelope sender.
        sender: Vec<u8>,
        /// Recipient, internal form.
        address: Vec<u8>,
    },
    /// `rewrite`.
    Rewrite {
        /// Rewriting context.
        rule: RewriteRule,
        /// Address, external form.
        address: Vec<u8>,
    },
}

impl RewriteRequest {
    /// Reads a request strictly from a decoded list.
    ///
    /// # Errors
    /// Strictness errors; [`DecodeError::Invalid`] for an unknown request
    /// or rule.
    pub fn from_list(list: &AttrList) -> Result<Self, DecodeError> {
        let mut s = list.scan();
        let kind = s.str("request")?;
        let req = match kind.as_slice() {
            b"resolve" | b"verify" => Self::Resolve {
                class: if kind == b"resolve" {
                    ResolveClass::Resolve
                } else {
                    ResolveClass::Verify
                },
                sender: s.str("sender")?,
                address: s.str("address")?,
            },
            b"rewrite" => {
                let rule = match s.str("rule")?.as_slice() {
                    b"local" => RewriteRule::Local,
                    b"remote" => RewriteRule::Remote,
                    other => {
                        return Err(DecodeError::Invalid(format!(
                            "rewrite rule {:?}",
                            String::from_utf8_lossy(other)
                        )))
                    }
                };
                Self::Rewrite {
                    rule,
                    address: s.str("address")?,
                }
            }
            other => {
                return Err(DecodeError::Invalid(format!(
                    "request {:?}",
                    String::from_utf8_lossy(other)
                )))
            }
        };
        s.finish()?;
        Ok(req)
    }
}

/// Splits off a source route (`@a,@b:`) that is never quoted or unquoted.
fn split_route(addr: &[u8]) -> (&[u8], &[u8]) {
    if addr.first() == Some(&b'@') {
        if let Some(i) = addr.iter().position(|&b| b == b':') {
            return addr.split_at(i + 1);
        }
    }
    (&[], addr)
}

/// True when a local part may be written without quotes (an RFC 822
/// dot-string; 8-bit bytes are left alone).
fn is_dot_string(local: &[u8]) -> bool {
    const SPECIALS: &[u8] = b"()<>@,;:\\\"[]";
    !local.is_empty()
        && local[0] != b'.'
        && local[local.len() - 1] != b'.'
        && !local.windows(2).any(|w| w == b"..")
        && !local
            .iter()
            .any(|&c| c == b' ' || c.is_ascii_control() || SPECIALS.contains(&c))
}

/// Internal → external form: quotes the local part when it is not a plain
/// dot-string (Postfix `quote_822_local`, 8-bit clean).
pub fn quote_822_local(addr: &[u8]) -> Vec<u8> {
    let (route, rest) = split_route(addr);
    let at = rest.iter().rposition(|&b| b == b'@').unwrap_or(rest.len());
    let (local, domain) = rest.split_at(at);
    let mut out = route.to_vec();
    if is_dot_string(local) {
        out.extend_from_slice(local);
    } else {
        out.push(b'"');
        for &c in local {
            if matches!(c, b'"' | b'\\' | b'\r') {
                out.push(b'\\');
            }
            out.push(c);
        }
        out.push(b'"');
    }
    out.extend_from_slice(domain);
    out
}

/// External → internal form: removes quotes and backslash escapes from the
/// local part; text after the last unquoted `@` is left alone (Postfix
/// `unquote_822_local`).
pub fn unquote_822_local(addr: &[u8]) -> Vec<u8> {
    let (route, rest) = split_route(addr);
    let mut out = route.to_vec();
    let mut in_quote = false;
    let mut bare_at: Option<(usize, usize)> = None;
    let mut i = 0;
    while i < rest.len() {
        let c = rest[i];
        match c {
            b'"' => {
                in_quote = !in_quote;
                i += 1;
                continue;
            }
            b'@' if !in_quote => bare_at = Some((out.len(), i)),
            b'\\' if i + 1 < rest.len() => i += 1,
            b'\\' => {
                i += 1;
                continue;
            }
            _ => {}
        }
        out.push(rest[i]);
        i += 1;
    }
    if let Some((dst, src)) = bare_at {
        out.truncate(dst);
        out.extend_from_slice(&rest[src..]);
    }
    out
}

/// Client settings; defaults are Postfix's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// Bound on each connect, read and write (`qmgr_ipc_timeout`, 60 s).
    pub ipc_timeout: Duration,
    /// Close the connection after this long without requests (`ipc_idle`, 5 s).
    pub ipc_idle: Duration,
    /// Close the connection this long after connecting (`ipc_ttl`, 1000 s).
    pub ipc_ttl: Duration,
    /// Pause between failed attempts (Postfix: 1 s).
    pub retry_delay: Duration,
    /// Give up after this many attempts; `None` retries forever, as Postfix.
    pub max_attempts: Option<u32>,
    /// Lifetime of the single-entry caches (Postfix: 30 s).
    pub cache_ttl: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            ipc_timeout: Duration::from_secs(60),
            ipc_idle: Duration::from_secs(5),
            ipc_ttl: Duration::from_secs(1000),
            retry_delay: Duration::from_secs(1),
            max_attempts: None,
            cache_ttl: Duration::from_secs(30),
        }
    }
}

/// Why the client gave up (only with [`ClientConfig::max_attempts`]).
#[derive(Debug)]
pub struct RewriteError {
    /// Attempts made.
    pub attempts: u32,
    /// The last failure.
    pub last: String,
}

impl std::fmt::Display for RewriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "problem talking to service rewrite after {} attempts: {}",
            self.attempts, self.last
        )
    }
}

impl std::error::Error for RewriteError {}

/// An open connection and its age.
#[derive(Debug)]
struct Conn {
    /// The stream, announcement already checked.
    stream: AttrStream,
    /// When it was opened (for `ipc_ttl`).
    opened: Instant,
    /// When it was last used (for `ipc_idle`).
    used: Instant,
}

/// One cached reply.
#[derive(Clone, Debug)]
struct Cached<K, V> {
    /// Request key.
    key: K,
    /// Reply.
    value: V,
    /// When it stops being valid.
    expires: Instant,
}

/// Cache key of a resolve request: (class, sender, address).
type ResolveKey = (ResolveClass, Vec<u8>, Vec<u8>);

/// Cache key of a rewrite request: (rule, internal address).
type RewriteKey = (RewriteRule, Vec<u8>);

/// The trivial-rewrite client.
#[derive(Debug)]
pub struct RewriteClient {
    /// `<queue_directory>/private/<rewrite_service_name>`.
    socket: PathBuf,
    /// Settings.
    config: ClientConfig,
    /// The connection, if open.
    conn: Option<Conn>,
    /// Last resolve: (class, sender, address) → reply.
    resolve_cache: Option<Cached<ResolveKey, ResolveReply>>,
    /// Last rewrite: (rule, internal address) → internal result.
    rewrite_cache: Option<Cached<RewriteKey, Vec<u8>>>,
    /// Requests actually sent to the server (not answered from cache).
    requests_sent: u64,
    /// Connections opened (announcement checked) so far.
    connects: u64,
}

impl RewriteClient {
    /// A client for the socket at `socket` (no connection is made yet).
    pub fn new(socket: impl AsRef<Path>, config: ClientConfig) -> Self {
        Self {
            socket: socket.as_ref().to_path_buf(),
            config,
            conn: None,
            resolve_cache: None,
            rewrite_cache: None,
            requests_sent: 0,
            connects: 0,
        }
    }

    /// How many requests went to the server (cache hits excluded).
    pub fn requests_sent(&self) -> u64 {
        self.requests_sent
    }

    /// How many connections were opened (reconnects included).
    pub fn connects(&self) -> u64 {
        self.connects
    }

    /// True while a connection is open.
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Drops the cached replies (tests; a table change).
    pub fn clear_cache(&mut self) {
        self.resolve_cache = None;
        self.rewrite_cache = None;
    }

    /// Resolves one recipient (`address` in internal form).
    ///
    /// # Errors
    /// Only after [`ClientConfig::max_attempts`] failed attempts.
    pub async fn resolve(
        &mut self,
        class: ResolveClass,
        sender: &[u8],
        address: &[u8],
    ) -> Result<ResolveReply, RewriteError> {
        let key = (class, sender.to_vec(), address.to_vec());
        if let Some(c) = &self.resolve_cache {
            // Empty addresses are never cached, as in Postfix.
            if !address.is_empty() && c.key == key && crate::clock::io_now() < c.expires {
                return Ok(c.value.clone());
            }
        }
        let request = encode_resolve_request(class, sender, address).map_err(|e| RewriteError {
            attempts: 0,
            last: e.to_string(),
        })?;
        let reply = self
            .exchange(&request, |list| {
                let r = ResolveReply::from_list(list).map_err(|e| e.to_string())?;
                if r.transport.is_empty() {
                    return Err(format!(
                        "resolve_clnt: null transport result for: <{}>",
                        String::from_utf8_lossy(address)
                    ));
                }
                if r.recipient.is_empty() && !address.is_empty() {
                    return Err(format!(
                        "resolve_clnt: null recipient result for: <{}>",
                        String::from_utf8_lossy(address)
                    ));
                }
                Ok((r.server_flags, r))
            })
            .await?;
        let expires = crate::clock::io_now() + self.config.cache_ttl;
        self.resolve_cache = Some(Cached {
            key,
            value: reply.clone(),
            expires,
        });
        Ok(reply)
    }

    /// Rewrites one address (internal form in, internal form out); the
    /// wire carries the external (quoted) form both ways.
    ///
    /// # Errors
    /// Only after [`ClientConfig::max_attempts`] failed attempts.
    pub async fn rewrite(
        &mut self,
        rule: RewriteRule,
        address: &[u8],
    ) -> Result<Vec<u8>, RewriteError> {
        let key = (rule, address.to_vec());
        if let Some(c) = &self.rewrite_cache {
            if c.key == key && crate::clock::io_now() < c.expires {
                return Ok(c.value.clone());
            }
        }
        let request =
            encode_rewrite_request(rule, &quote_822_local(address)).map_err(|e| RewriteError {
                attempts: 0,
                last: e.to_string(),
            })?;
        let external = self
            .exchange(&request, |list| {
                decode_rewrite_reply(list).map_err(|e| e.to_string())
            })
            .await?;
        let value = unquote_822_local(&external);
        let expires = crate::clock::io_now() + self.config.cache_ttl;
        self.rewrite_cache = Some(Cached {
            key,
            value: value.clone(),
            expires,
        });
        Ok(value)
    }

    /// Opens a connection unless a usable one exists.
    async fn connection(&mut self) -> Result<&mut Conn, IpcError> {
        let now = crate::clock::io_now();
        if let Some(c) = &mut self.conn {
            let expired = now.duration_since(c.used) >= self.config.ipc_idle
                || now.duration_since(c.opened) >= self.config.ipc_ttl;
            if expired || c.stream.is_stale() {
                self.conn = None;
            }
        }
        if self.conn.is_none() {
            let mut stream = AttrStream::connect(&self.socket, self.config.ipc_timeout).await?;
            stream.read_announcement(protocol::TRIVIAL_REWRITE).await?;
            self.conn = Some(Conn {
                stream,
                opened: now,
                used: now,
            });
        }
        Ok(self.conn.as_mut().expect("connection was just opened"))
    }

    /// Sends `request` and parses the reply with `parse` (which returns
    /// the server flags and the value), retrying as configured.
    async fn exchange<T>(
        &mut self,
        request: &[u8],
        parse: impl Fn(&AttrList) -> Result<(u32, T), String>,
    ) -> Result<T, RewriteError> {
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let result = async {
                let conn = self.connection().await.map_err(|e| e.to_string())?;
                conn.stream
                    .write_all(request)
                    .await
                    .map_err(|e| e.to_string())?;
                let list = conn.stream.read_list().await.map_err(|e| e.to_string())?;
                conn.used = crate::clock::io_now();
                parse(&list)
            }
            .await;
            match result {
                Ok((server_flags, value)) => {
                    self.requests_sent += 1;
                    if server_flags != 0 {
                        // The server asked us to hang up (it will restart).
                        self.conn = None;
                    }
                    return Ok(value);
                }
                Err(last) => {
                    tracing::warn!("problem talking to service rewrite: {last}");
                    self.conn = None;
                    if self.config.max_attempts.is_some_and(|m| attempts >= m) {
                        return Err(RewriteError { attempts, last });
                    }
                    tokio::time::sleep(self.config.retry_delay).await;
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "rewrite_tests.rs"]
mod tests;
