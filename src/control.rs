//! Operator commands and suspensions (no Postfix counterpart: oqmgr(8)
//! offers only `defer_transports`, which needs a reload, and `postqueue -f`,
//! which retries the whole queue).
//!
//! An operator steers the running scheduler with [`Command`]s, which a host
//! delivers to the supervisor as `Msg::Control` (the daemon from its control
//! socket, the simulator from a scenario's `[[commands]]`):
//! - `suspend TARGET [--for DURATION] [--reason TEXT]`: no delivery attempt
//!   for the matching destinations. The supervisor routes their new entries
//!   to the `retry` transport with the suspension's reason (as a dead
//!   destination's are), and each matching destination in memory hands its
//!   waiting entries back (`Msg::Withdrawn`) to be deferred the same way;
//!   deliveries already on the wire finish. The queue ID of every message so
//!   deferred is remembered with the suspension.
//! - `resume TARGET`: the suspension ends (also by itself at the end of
//!   `--for`), and exactly the files it deferred are made due now and a
//!   deferred scan starts (`Effect::Retry`), with no flush of the queue.
//! - `flush DEST`: a dead destination is revived now and the files it
//!   deferred that the supervisor still remembers are retried now.
//!
//! A target is a destination (`transport:nexthop`), a whole transport
//! (`--transport T`) or a next-hop domain pattern (`--domain PATTERN`:
//! `example.com` or `*.example.com`, matched against the destination's
//! next-hop domain on every transport but `retry` and `error`).
//!
//! # Invariants
//! - the supervisor's table is the truth about suspensions; destinations
//!   keep only whether they hold back deliveries now, and are forgotten when
//!   idle like any other;
//! - nothing here changes scheduling while no command was given: the table
//!   is empty and every check is skipped;
//! - the table iterates in key order, so traces do not depend on the order
//!   in which commands arrived beyond their effects.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::effect::DestKey;
use crate::entry::{Dsn, MessageId};
use crate::name::Name;
use crate::route::{ERROR, RETRY};
use crate::time::{Duration, Instant};

/// What a suspension or resume applies to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// One destination, `transport:nexthop` as `ctl destinations` lists it.
    Destination(String),
    /// Every destination of a transport.
    Transport(String),
    /// Every destination whose next-hop domain matches: `example.com`, or
    /// `*.example.com` for its subdomains (lower case).
    Domain(String),
}

impl Target {
    /// A destination target from `transport:nexthop`.
    pub fn destination(text: &str) -> Result<Target, String> {
        match text.split_once(':') {
            Some((t, q)) if !t.is_empty() && !q.is_empty() => {
                Ok(Target::Destination(format!("{t}:{}", q.to_lowercase())))
            }
            _ => Err(format!(
                "{text:?} is not a destination: write transport:nexthop, e.g. smtp:example.com"
            )),
        }
    }

    /// True when this target covers `key`.
    pub fn matches(&self, key: &DestKey) -> bool {
        match self {
            Target::Destination(d) => {
                d.len() == key.transport.len() + 1 + key.queue.len()
                    && d.starts_with(key.transport.as_str())
                    && d[key.transport.len()..].starts_with(':')
                    && d.ends_with(key.queue.as_str())
            }
            Target::Transport(t) => key.transport.as_str() == t,
            Target::Domain(pattern) => {
                key.transport.as_str() != RETRY
                    && key.transport.as_str() != ERROR
                    && domain_matches(pattern, nexthop_domain(&key.queue))
            }
        }
    }

    /// The transport this target is confined to, if any.
    pub fn transport(&self) -> Option<&str> {
        match self {
            Target::Destination(d) => d.split_once(':').map(|(t, _)| t),
            Target::Transport(t) => Some(t),
            Target::Domain(_) => None,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Destination(d) => f.write_str(d),
            Target::Transport(t) => write!(f, "transport {t}"),
            Target::Domain(d) => write!(f, "domain {d}"),
        }
    }
}

/// The domain of a queue name: the next hop without `[...]`, a port, or a
/// `user@` (queues of transports that take one recipient per delivery).
pub fn nexthop_domain(queue: &str) -> &str {
    let host = queue.rsplit_once('@').map_or(queue, |(_, d)| d);
    let host = host
        .strip_prefix('[')
        .map_or(host, |h| h.split(']').next().unwrap_or(h));
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// True when `domain` matches `pattern` (`*.x` matches subdomains of `x`).
pub fn domain_matches(pattern: &str, domain: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(parent) => {
            domain.len() > parent.len() + 1
                && domain.ends_with(parent)
                && domain.as_bytes()[domain.len() - parent.len() - 1] == b'.'
        }
        None => domain.eq_ignore_ascii_case(pattern),
    }
}

/// An operator's command to the scheduler.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase")]
pub enum Command {
    /// Hold back deliveries to `target`.
    Suspend {
        /// What.
        target: Target,
        /// For how long (`None`: until resumed).
        #[serde(default, rename = "for_ms")]
        duration: Option<u64>,
        /// Why, recorded in each deferred recipient's reason.
        #[serde(default)]
        reason: Option<String>,
    },
    /// End the suspension of `target` and retry what it deferred.
    Resume {
        /// What.
        target: Target,
    },
    /// Revive a dead destination and retry its deferred mail now.
    Flush {
        /// The destination, `transport:nexthop`.
        dest: String,
    },
    /// Suspensions read back from the daemon's state file at start-up.
    Restore {
        /// The suspensions, with their absolute end times.
        suspensions: Vec<Suspension>,
    },
}

impl Command {
    /// Parses a command as written after `oqmgr ctl` (the simulator's
    /// `[[commands]] run = "..."`): `suspend TARGET [--for D] [--reason
    /// TEXT]`, `resume TARGET`, `flush DEST`, where TARGET is a
    /// destination, `--transport T` or `--domain PATTERN`. Words are split
    /// on white space; a reason of several words is quoted with `"`.
    pub fn parse(text: &str) -> Result<Command, String> {
        let words = split_words(text)?;
        let mut it = words.iter().map(String::as_str);
        let verb = it.next().ok_or("empty command")?;
        let mut target = None;
        let mut duration = None;
        let mut reason = None;
        while let Some(w) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .map(str::to_string)
                    .ok_or(format!("{name} needs a value"))
            };
            match w {
                "--transport" => target = Some(Target::Transport(value(w)?)),
                "--domain" => target = Some(Target::Domain(value(w)?.to_lowercase())),
                "--for" => duration = Some(parse_duration(&value(w)?)?.as_millis()),
                "--reason" => reason = Some(value(w)?),
                w if w.starts_with('-') => return Err(format!("unknown option {w}")),
                w => target = Some(Target::destination(w)?),
            }
        }
        let target = target.ok_or(format!("{verb}: which destination?"))?;
        match verb {
            "suspend" => Ok(Command::Suspend {
                target,
                duration,
                reason,
            }),
            "resume" => Ok(Command::Resume { target }),
            "flush" => match target {
                Target::Destination(dest) => Ok(Command::Flush { dest }),
                _ => Err("flush takes one destination (transport:nexthop)".into()),
            },
            other => Err(format!("unknown command {other:?}")),
        }
    }
}

/// Splits on white space, keeping `"quoted words"` together.
fn split_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').ok_or("unterminated quote")?;
            words.push(quoted[..end].to_string());
            rest = quoted[end + 1..].trim_start();
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            words.push(rest[..end].to_string());
            rest = rest[end..].trim_start();
        }
    }
    Ok(words)
}

/// Parses a duration as Postfix writes times: a number and an optional
/// unit `s`, `m`, `h`, `d`, `w` (seconds without one).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(digits);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("bad duration {text:?}: write e.g. 30s, 5m, 2h, 1d"))?;
    let secs = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => {
            return Err(format!(
                "bad duration unit in {text:?}: use s, m, h, d or w"
            ))
        }
    };
    if n == 0 {
        return Err(format!("bad duration {text:?}: must be more than 0"));
    }
    Ok(Duration::from_secs(n.saturating_mul(secs)))
}

/// One suspension in force.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspension {
    /// What it holds back.
    pub target: Target,
    /// When it began (core time).
    pub since: Instant,
    /// When it ends by itself (`None`: when resumed).
    pub until: Option<Instant>,
    /// The operator's reason, if one was given.
    pub reason: Option<String>,
    /// Queue IDs of the files it deferred, retried when it ends.
    #[serde(default)]
    pub deferred: BTreeSet<String>,
}

impl Suspension {
    /// The reason recorded for each recipient it defers (shown by
    /// `postqueue -p`).
    pub fn dsn(&self) -> Dsn {
        match &self.reason {
            Some(r) => Dsn::new("4.3.2", format!("{SUSPENDED}: {r}")),
            None => Dsn::new("4.3.2", SUSPENDED),
        }
    }
}

/// The reason of mail a suspension defers (before the operator's own
/// words, if any).
pub const SUSPENDED: &str = "delivery suspended by the administrator";

/// Most queue IDs remembered per suspension, and of recently deferred
/// files for `flush`: bounds memory whatever the queue holds (the rest is
/// retried by the periodic scans as usual).
pub const REMEMBERED: usize = 100_000;

/// The supervisor's control state: the suspensions in force, the
/// transports it has routed to (those that must hear of a domain
/// suspension), and the queue IDs of recently deferred messages (for
/// `flush`).
#[derive(Debug, Default)]
pub struct Control {
    /// Suspensions by target.
    pub suspensions: BTreeMap<Target, Suspension>,
    /// Transports routed to so far.
    pub transports: BTreeSet<Name>,
    /// Queue IDs of messages deferred lately, by message number (the
    /// oldest are dropped past [`REMEMBERED`]).
    pub recently_deferred: BTreeMap<MessageId, Name>,
    /// Bumped on every change of the suspensions, so a host can tell when
    /// to save them.
    pub version: u64,
    /// Bumped with each suspension timer armed.
    pub generation: u64,
    /// Which suspension each armed timer ends.
    pub timers: BTreeMap<u64, Target>,
}

impl Control {
    /// The first suspension (in target order) that covers `key`, if any.
    pub fn covering(&self, key: &DestKey) -> Option<&Suspension> {
        if self.suspensions.is_empty() {
            return None;
        }
        self.suspensions.values().find(|s| s.target.matches(key))
    }

    /// Remembers a deferred message's queue ID for `flush`.
    pub fn note_deferred(&mut self, message: MessageId, id: &Name) {
        self.recently_deferred.insert(message, id.clone());
        if self.recently_deferred.len() > REMEMBERED {
            self.recently_deferred.pop_first();
        }
    }

    /// Records that the suspension of `target` deferred file `id`.
    pub fn note_held(&mut self, target: &Target, id: &Name) {
        if let Some(s) = self.suspensions.get_mut(target) {
            if s.deferred.len() < REMEMBERED && s.deferred.insert(id.to_string()) {
                self.version += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(t: &str, q: &str) -> DestKey {
        DestKey {
            transport: t.into(),
            queue: q.into(),
        }
    }

    #[test]
    fn targets_match_what_they_name() {
        let d = Target::destination("smtp:B.example").unwrap();
        assert!(d.matches(&key("smtp", "b.example")));
        assert!(!d.matches(&key("relay", "b.example")));
        assert!(!d.matches(&key("smtp", "xb.example")));
        let t = Target::Transport("relay".into());
        assert!(t.matches(&key("relay", "x")));
        let sub = Target::Domain("*.example".into());
        assert!(sub.matches(&key("smtp", "b.example")));
        assert!(sub.matches(&key("smtp", "[mx.b.example]:2525")));
        assert!(!sub.matches(&key("smtp", "example")));
        assert!(!sub.matches(&key("retry", "b.example")));
        let exact = Target::Domain("b.example".into());
        assert!(exact.matches(&key("lmtp", "user@b.example")));
        assert!(!exact.matches(&key("smtp", "c.b.example")));
    }

    #[test]
    fn commands_parse_as_ctl_writes_them() {
        assert_eq!(
            Command::parse("suspend smtp:b.example --for 5m --reason \"too many 421\""),
            Ok(Command::Suspend {
                target: Target::Destination("smtp:b.example".into()),
                duration: Some(300_000),
                reason: Some("too many 421".into()),
            })
        );
        assert_eq!(
            Command::parse("resume --domain *.Example"),
            Ok(Command::Resume {
                target: Target::Domain("*.example".into())
            })
        );
        assert_eq!(
            Command::parse("flush smtp:b.example"),
            Ok(Command::Flush {
                dest: "smtp:b.example".into()
            })
        );
        assert!(Command::parse("flush --transport smtp").is_err());
        assert!(Command::parse("suspend").is_err());
        assert!(Command::parse("suspend b.example").is_err());
        assert!(Command::parse("suspend smtp:b --for 0").is_err());
        assert!(Command::parse("bogus smtp:b").is_err());
    }
}
