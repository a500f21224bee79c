//! The trivial-rewrite(8) protocol as qmgr speaks it over
//! `private/rewrite`: resolve and rewrite requests and replies, and the
//! quoting of local parts between internal and external form (Postfix:
//! `resolve_clnt.c`, `rewrite_clnt.c`, `quote_822_local.c`;
//! docs/postfix-ipc.md §5).
//!
//! The server announces `trivial_rewrite_protocol` on every new
//! connection; then each request gets one reply. A non-zero *server flags*
//! value in a reply asks the client to hang up after it (the server is
//! about to restart, for example after a table changed). The client the
//! daemon runs, with its connection, cache and retries, is
//! [`crate::daemon::resolver`].

use crate::postfix::attr::{
    decode_one_list, AttrList, AttrWriter, DecodeError, EncodeError, Limits,
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

#[cfg(test)]
#[path = "rewrite_tests.rs"]
mod tests;
