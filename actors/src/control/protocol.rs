//! The control socket's wire format: one JSON object per line, one request
//! and one reply per connection, both carrying the protocol version `v`.
//!
//! Requests (`cmd`):
//! - `{"v":1,"cmd":"state","detail":false}`: the live state and the
//!   daemon's own facts (every read command of `oqmgr ctl` is a view of
//!   it);
//! - `{"v":1,"cmd":"suspend","target":{"destination":"smtp:b.example"},
//!   "for_ms":300000,"reason":"..."}` (targets: `destination`, `transport`,
//!   `domain`);
//! - `{"v":1,"cmd":"resume","target":{...}}`;
//! - `{"v":1,"cmd":"flush","dest":"smtp:b.example"}`.
//!
//! Replies: `{"v":1,"ok":true,...}` with `state` and `daemon` for `state`,
//! `done` (the log lines of what was done) for the others;
//! `{"v":1,"ok":false,"error":"..."}` for a request refused.

use oqmgr::control::Command;
use oqmgr::live_state::LiveState;
use serde::{Deserialize, Serialize};

use super::live_query::DaemonInfo;

/// The protocol version this build speaks.
pub const VERSION: u32 = 1;
/// The socket's name in the queue directory's `private/`.
pub const SOCKET: &str = "oqmgr-ctl";
/// The longest request line accepted, newline included.
pub const MAX_REQUEST: usize = 64 * 1024;

/// A request, decoded.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    /// The live state; with every admitted message and entry when
    /// `detail`.
    State {
        /// Include the per-message detail.
        detail: bool,
    },
    /// An operator command.
    Command(Command),
}

impl Request {
    /// Decodes one request line; the error is the reply's text.
    pub fn decode(line: &[u8]) -> Result<Request, String> {
        let value: serde_json::Value =
            serde_json::from_slice(line).map_err(|e| format!("malformed JSON: {e}"))?;
        let v = value.get("v").and_then(serde_json::Value::as_u64);
        if v != Some(u64::from(VERSION)) {
            return Err(format!(
                "unsupported protocol version {} (this daemon speaks {VERSION})",
                v.map_or("(none)".into(), |v| v.to_string())
            ));
        }
        match value.get("cmd").and_then(serde_json::Value::as_str) {
            Some("state") => Ok(Request::State {
                detail: value
                    .get("detail")
                    .and_then(serde_json::Value::as_bool)
                    .unwrap_or(false),
            }),
            Some("restore") => Err("unknown command \"restore\"".into()),
            Some(_) => {
                let command: Command =
                    serde_json::from_value(value).map_err(|e| format!("bad request: {e}"))?;
                check(&command)?;
                Ok(Request::Command(command))
            }
            None => Err("no \"cmd\" in the request".into()),
        }
    }

    /// The request line (without its newline).
    pub fn encode(&self) -> String {
        let mut value = match self {
            Request::State { detail } => serde_json::json!({"cmd": "state", "detail": detail}),
            Request::Command(c) => serde_json::to_value(c).expect("commands serialize"),
        };
        value["v"] = VERSION.into();
        value.to_string()
    }
}

/// Refuses what the types let through: empty names, a zero duration.
fn check(command: &Command) -> Result<(), String> {
    use oqmgr::control::Target;
    let target_ok = |t: &Target| match t {
        Target::Destination(d) => Target::destination(d).map(|_| ()),
        Target::Transport(t) | Target::Domain(t) if t.is_empty() => {
            Err("an empty name is no target".to_string())
        }
        _ => Ok(()),
    };
    match command {
        Command::Suspend {
            target, duration, ..
        } => {
            target_ok(target)?;
            if *duration == Some(0) {
                return Err("a suspension lasts more than 0 s".into());
            }
            Ok(())
        }
        Command::Resume { target } => target_ok(target),
        Command::Flush { dest } => Target::destination(dest).map(|_| ()),
        Command::Restore { .. } => Err("unknown command \"restore\"".into()),
    }
}

/// A reply.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// The protocol version.
    pub v: u32,
    /// The request was carried out.
    pub ok: bool,
    /// Why not, when it was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The live state (`state`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<LiveState>,
    /// The daemon's own facts (`state`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daemon: Option<DaemonInfo>,
    /// What was done, in the words of the log (commands).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub done: Vec<String>,
}

impl Reply {
    /// A refusal.
    pub fn error(text: impl Into<String>) -> Reply {
        Reply {
            v: VERSION,
            ok: false,
            error: Some(text.into()),
            ..Reply::default()
        }
    }

    /// The reply line, newline included.
    pub fn line(&self) -> String {
        let mut text = serde_json::to_string(self).expect("replies serialize");
        text.push('\n');
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oqmgr::control::Target;

    #[test]
    fn requests_round_trip() {
        for r in [
            Request::State { detail: true },
            Request::Command(Command::Suspend {
                target: Target::Destination("smtp:b.example".into()),
                duration: Some(300_000),
                reason: Some("maintenance".into()),
            }),
            Request::Command(Command::Resume {
                target: Target::Domain("*.example".into()),
            }),
            Request::Command(Command::Flush {
                dest: "smtp:b.example".into(),
            }),
        ] {
            assert_eq!(Request::decode(r.encode().as_bytes()), Ok(r));
        }
        assert_eq!(
            Request::Command(Command::Flush {
                dest: "smtp:b".into()
            })
            .encode(),
            r#"{"cmd":"flush","dest":"smtp:b","v":1}"#
        );
    }

    #[test]
    fn bad_requests_are_refused_with_a_reason() {
        let refused = |line: &str| Request::decode(line.as_bytes()).unwrap_err();
        assert!(refused("{nope").starts_with("malformed JSON"));
        assert!(refused(r#"{"cmd":"state"}"#).contains("protocol version (none)"));
        assert!(refused(r#"{"v":2,"cmd":"state"}"#).contains("version 2"));
        assert!(refused(r#"{"v":1}"#).contains("no \"cmd\""));
        assert!(refused(r#"{"v":1,"cmd":"reboot"}"#).starts_with("bad request"));
        assert!(refused(r#"{"v":1,"cmd":"restore","suspensions":[]}"#).contains("restore"));
        assert!(refused(r#"{"v":1,"cmd":"flush","dest":"nocolon"}"#).contains("not a destination"));
        assert!(
            refused(r#"{"v":1,"cmd":"suspend","target":{"transport":"smtp"},"for_ms":0}"#)
                .contains("more than 0")
        );
    }
}
