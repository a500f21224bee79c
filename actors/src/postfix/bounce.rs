//! Requests the queue manager itself makes to bounce(8) (as `bounce`,
//! `defer`, `trace`), verify(8) and flush(8) (Postfix: `abounce.c`,
//! `bounce.c`, `defer.c`, `trace.c`, `verify_clnt.c`, `flush_clnt.c`,
//! `mail_command_client.c`).
//!
//! Every request here is one connection: connect, read the announcement,
//! write one list, read `status <int>`, close. Which service receives a
//! request matters (the bounce daemon picks its log directory, `bounce/`,
//! `defer/` or `trace/`, from the service name), so [`send`] takes it
//! explicitly (FLUSH goes to `bounce` for hard failures but to `defer` for
//! expiry).
//!
//! qmgr sends FLUSH, WARN, VERP and TRACE "asynchronously" with a 1000 s
//! limit per step, and APPEND synchronously with `ipc_timeout`; here both
//! are `async` and the caller passes the limit as `timeout`.
//!
//! # Compatibility
//! The send-options attribute is `smtputf8` before Postfix 3.10 and
//! `sendopts` since ([`Dialect`]). The bounce daemon reads with the MISSING
//! check only, and status replies are read the same way (extra attributes
//! skipped), as `mail_command_client` does.

use std::path::Path;
use std::time::Duration;

use crate::postfix::attr::{
    decode_list, protocol, AttrList, AttrStream, AttrWriter, DecodeError, EncodeError, IpcError,
    Limits, WireDsn, WireRecipient,
};
use crate::postfix::dialect::Dialect;

/// `nrequest` codes (`BOUNCE_CMD_*`).
pub mod nrequest {
    /// Append one recipient's entry to the log of this service.
    pub const APPEND: u32 = 0;
    /// Send the notice for everything logged, then delete the log.
    pub const FLUSH: u32 = 1;
    /// Send a delay warning; keep the log.
    pub const WARN: u32 = 2;
    /// Like FLUSH, one notice per recipient with a VERP sender.
    pub const VERP: u32 = 3;
    /// One-recipient bounce without a log (not sent by oqmgr).
    pub const ONE: u32 = 4;
    /// Send a delivery status (success) report from the `trace` log.
    pub const TRACE: u32 = 5;
}

/// Bounce request `flags` bits (`BOUNCE_FLAG_*`).
pub mod bounce_flags {
    /// Keep the log when the request fails (the value 0).
    pub const NONE: u32 = 0;
    /// Delete the log if the request fails (qmgr never sets it).
    pub const CLEAN: u32 = 1;
    /// After the notice, mark each logged recipient done in the queue file.
    pub const DELRCPT: u32 = 2;
}

/// The message-level fields shared by FLUSH, WARN, VERP and TRACE.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BounceMessage {
    /// Request flags ([`bounce_flags`], or the message trace flags for TRACE).
    pub flags: u32,
    /// Queue the file is in (`active`).
    pub queue_name: Vec<u8>,
    /// Queue ID.
    pub queue_id: Vec<u8>,
    /// Body encoding (`7bit`, `8bit`, empty).
    pub encoding: Vec<u8>,
    /// Send options from the `C` record (not per-recipient bits).
    pub sendopts: u32,
    /// Envelope sender (not VERP-expanded).
    pub sender: Vec<u8>,
    /// DSN ENVID or empty.
    pub dsn_envid: Vec<u8>,
    /// DSN RET bits.
    pub dsn_ret: u32,
}

/// One request to the bounce daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BounceRequest {
    /// Return the logged failures (`bounce` service) or, with
    /// [`bounce_flags::DELRCPT`], expire the deferred ones (`defer`).
    Flush(BounceMessage),
    /// Delay warning (`defer` service).
    Warn(BounceMessage),
    /// FLUSH with a VERP sender per recipient.
    Verp {
        /// The message.
        info: BounceMessage,
        /// The two VERP delimiter characters.
        delimiters: Vec<u8>,
    },
    /// Success/trace report (`trace` service).
    Trace(BounceMessage),
    /// Log one recipient (qmgr uses `defer` for recipients it defers itself,
    /// `trace` for recorded discards).
    Append {
        /// The message trace flags.
        flags: u32,
        /// Queue ID.
        queue_id: Vec<u8>,
        /// The recipient.
        recipient: WireRecipient,
        /// Why; the client sets `action` (`delayed` for defer).
        dsn: WireDsn,
    },
}

impl BounceRequest {
    /// Encodes the request list.
    ///
    /// # Errors
    /// [`EncodeError::NulInValue`].
    pub fn encode(&self, dialect: Dialect) -> Result<Vec<u8>, EncodeError> {
        let mut w = AttrWriter::new();
        let info = |w: &mut AttrWriter, code: u32, m: &BounceMessage| {
            w.int("nrequest", code)
                .int("flags", m.flags)
                .str("queue_name", &m.queue_name)
                .str("queue_id", &m.queue_id)
                .str("encoding", &m.encoding)
                .int(dialect.sendopts_attr(), m.sendopts)
                .str("sender", &m.sender)
                .str("envelope_id", &m.dsn_envid)
                .int("ret_flags", m.dsn_ret);
        };
        match self {
            Self::Flush(m) => info(&mut w, nrequest::FLUSH, m),
            Self::Warn(m) => info(&mut w, nrequest::WARN, m),
            Self::Trace(m) => info(&mut w, nrequest::TRACE, m),
            Self::Verp {
                info: m,
                delimiters,
            } => {
                info(&mut w, nrequest::VERP, m);
                w.str("verp_delimiters", delimiters);
            }
            Self::Append {
                flags,
                queue_id,
                recipient,
                dsn,
            } => {
                w.int("nrequest", nrequest::APPEND)
                    .int("flags", *flags)
                    .str("queue_id", queue_id)
                    .func(recipient)
                    .func(dsn);
            }
        }
        w.end();
        w.finish()
    }

    /// Decodes one complete request, strictly (the inverse of
    /// [`BounceRequest::encode`]).
    ///
    /// # Errors
    /// Strictness, number and limit errors; [`DecodeError::Invalid`] for an
    /// `nrequest` this module does not send.
    pub fn decode(input: &[u8], dialect: Dialect, limits: &Limits) -> Result<Self, DecodeError> {
        let (list, used) = decode_list(input, limits)?;
        if used != input.len() {
            return Err(DecodeError::TrailingData {
                extra: input.len() - used,
            });
        }
        let mut s = list.scan();
        let code = s.int("nrequest")?;
        let req = if code == nrequest::APPEND {
            Self::Append {
                flags: s.int("flags")?,
                queue_id: s.str("queue_id")?,
                recipient: s.func()?,
                dsn: s.func()?,
            }
        } else {
            let m = BounceMessage {
                flags: s.int("flags")?,
                queue_name: s.str("queue_name")?,
                queue_id: s.str("queue_id")?,
                encoding: s.str("encoding")?,
                sendopts: s.int(dialect.sendopts_attr())?,
                sender: s.str("sender")?,
                dsn_envid: s.str("envelope_id")?,
                dsn_ret: s.int("ret_flags")?,
            };
            match code {
                nrequest::FLUSH => Self::Flush(m),
                nrequest::WARN => Self::Warn(m),
                nrequest::TRACE => Self::Trace(m),
                nrequest::VERP => Self::Verp {
                    info: m,
                    delimiters: s.str("verp_delimiters")?,
                },
                other => return Err(DecodeError::Invalid(format!("nrequest {other}"))),
            }
        };
        s.finish()?;
        Ok(req)
    }
}

/// `verify` update: the result of an MTA address probe (docs/postfix-ipc.md §8.4).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyUpdate {
    /// The probed address.
    pub address: Vec<u8>,
    /// 0 deliverable, 1 deferred, 2 bounced (`DEL_RCPT_STAT_*`).
    pub recipient_status: u32,
    /// Why.
    pub reason: Vec<u8>,
}

impl VerifyUpdate {
    /// Encodes the `update` request.
    ///
    /// # Errors
    /// [`EncodeError::NulInValue`].
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut w = AttrWriter::new();
        w.str("request", "update")
            .str("address", &self.address)
            .int("recipient_status", self.recipient_status)
            .str("reason", &self.reason)
            .end();
        w.finish()
    }

    /// Reads the request as verify(8) does (strictly).
    ///
    /// # Errors
    /// Strictness and number errors.
    pub fn from_list(list: &AttrList) -> Result<Self, DecodeError> {
        let mut s = list.scan();
        s.streq("request", "update")?;
        let u = Self {
            address: s.str("address")?,
            recipient_status: s.int("recipient_status")?,
            reason: s.str("reason")?,
        };
        s.finish()?;
        Ok(u)
    }
}

/// fast-flush `add`: remember that `queue_id` has mail for `site`
/// (docs/postfix-ipc.md §8.5).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlushAdd {
    /// The recipient domain.
    pub site: Vec<u8>,
    /// Queue ID.
    pub queue_id: Vec<u8>,
}

impl FlushAdd {
    /// Encodes the `add` request.
    ///
    /// # Errors
    /// [`EncodeError::NulInValue`].
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut w = AttrWriter::new();
        w.str("request", "add")
            .str("site", &self.site)
            .str("queue_id", &self.queue_id)
            .end();
        w.finish()
    }

    /// Reads the request as flush(8) does (strictly).
    ///
    /// # Errors
    /// Strictness errors.
    pub fn from_list(list: &AttrList) -> Result<Self, DecodeError> {
        let mut s = list.scan();
        s.streq("request", "add")?;
        let add = Self {
            site: s.str("site")?,
            queue_id: s.str("queue_id")?,
        };
        s.finish()?;
        Ok(add)
    }
}

/// Reads a `status <int>` reply the way `mail_command_client` does (the
/// MISSING check only), returning the status as the signed value Postfix
/// meant: 0 success, −1 failure, flush(8) also 3 bad and 4 denied.
///
/// # Errors
/// A missing or malformed `status`.
pub fn decode_status_reply(list: &AttrList) -> Result<i32, DecodeError> {
    let mut s = list.scan_lenient();
    let status = s.int("status")?;
    Ok(status as i32)
}

/// Decodes a complete `status <int>` reply from bytes.
///
/// # Errors
/// Truncation, trailing data, a missing or malformed `status`.
pub fn decode_status(input: &[u8]) -> Result<i32, DecodeError> {
    decode_status_reply(&crate::postfix::attr::decode_one_list(
        input,
        &Limits::default(),
    )?)
}

/// One request/reply exchange with a Postfix command server: connect to
/// `socket`, check `announcement`, write `request`, read the status.
///
/// # Errors
/// Any [`IpcError`]; the caller logs it as Postfix does (`<id>:
/// status=deferred (bounce failed)` for asynchronous requests, `warning:
/// <id>: defer service failure` for APPEND).
pub async fn command(
    socket: &Path,
    announcement: &str,
    request: &[u8],
    timeout: Duration,
) -> Result<i32, IpcError> {
    let mut conn = AttrStream::connect(socket, timeout).await?;
    conn.read_announcement(announcement).await?;
    conn.write_all(request).await?;
    let list = conn.read_list().await?;
    Ok(decode_status_reply(&list)?)
}

/// Sends a bounce-daemon request to `<queue_directory>/private/<service>`.
///
/// # Errors
/// [`IpcError`], including [`IpcError::Encode`] for a request that cannot
/// be encoded.
pub async fn send(
    queue_dir: &Path,
    service: &str,
    request: &BounceRequest,
    dialect: Dialect,
    timeout: Duration,
) -> Result<i32, IpcError> {
    let bytes = request.encode(dialect)?;
    let socket = queue_dir.join("private").join(service);
    command(&socket, protocol::DELIVERY_STATUS, &bytes, timeout).await
}

/// Sends a verify update to `<queue_directory>/private/verify`.
///
/// # Errors
/// [`IpcError`].
pub async fn verify_update(
    queue_dir: &Path,
    update: &VerifyUpdate,
    timeout: Duration,
) -> Result<i32, IpcError> {
    let bytes = update.encode()?;
    let socket = queue_dir.join("private").join("verify");
    command(&socket, protocol::ADDRESS_VERIFICATION, &bytes, timeout).await
}

/// Sends a fast-flush `add` to `<queue_directory>/public/flush` (public,
/// unlike the others). The caller checks `fast_flush_domains` first.
///
/// # Errors
/// [`IpcError`].
pub async fn flush_add(
    queue_dir: &Path,
    add: &FlushAdd,
    timeout: Duration,
) -> Result<i32, IpcError> {
    let bytes = add.encode()?;
    let socket = queue_dir.join("public").join("flush");
    command(&socket, protocol::QUEUE_FLUSH, &bytes, timeout).await
}

/// The DSN a qmgr-side APPEND to `defer` carries (`defer_append`): the code
/// must be a valid `4.x.y`, else `4.0.0` replaces it; action `delayed`.
/// Returns the DSN and whether the code was replaced (Postfix then warns
/// `defer_append: ignoring dsn code "<c>"`).
pub fn defer_dsn(mut dsn: WireDsn) -> (WireDsn, bool) {
    let ok = dsn.status.first() == Some(&b'4') && oqmgr::entry::Dsn::valid_status(&dsn.status);
    if !ok {
        dsn.status = b"4.0.0".to_vec();
    }
    dsn.action = b"delayed".to_vec();
    (dsn, !ok)
}

#[cfg(test)]
#[path = "bounce_tests.rs"]
mod tests;
