//! Simulator scenarios: what arrives, when, and how the simulated world
//! answers.
//!
//! A scenario is plain data (deserialized by the host, e.g. from TOML with
//! figment, which names the file and the field of any error). Durations are
//! written as Postfix writes times: an integer with an optional unit
//! `ms`, `s`, `m`, `h`, `d`, `w` (seconds without one).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::params::{Params, RawParams};
use crate::time::Duration;

/// A duration as a scenario writes it: `"90s"`, `"5m"`, `"250ms"` or a
/// bare number of seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span(pub Duration);

impl Span {
    /// Parses `N[unit]`.
    pub fn parse(text: &str) -> Result<Span, String> {
        let text = text.trim();
        let digits = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (num, unit) = text.split_at(digits);
        let n: u64 = num.parse().map_err(|_| {
            format!("bad time value {text:?}: expected a number and an optional unit")
        })?;
        let ms = match unit {
            "ms" => 1,
            "" | "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            _ => {
                return Err(format!(
                    "bad time unit in {text:?}: use ms, s, m, h, d or w"
                ))
            }
        };
        Ok(Span(Duration(n.saturating_mul(ms))))
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Span;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a time such as \"30s\", \"5m\", \"250ms\", or a number of seconds")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Span, E> {
                Ok(Span(Duration::from_secs(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Span, E> {
                u64::try_from(v)
                    .map(|v| Span(Duration::from_secs(v)))
                    .map_err(|_| E::custom("a time cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Span, E> {
                Span::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A whole scenario.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Random seed for latencies and failures (overridden by `--seed`).
    #[serde(default)]
    pub seed: u64,
    /// Stop at this virtual time even if mail remains (default 7 days).
    #[serde(default)]
    pub until: Option<Span>,
    /// Main.cf parameters, by Postfix name.
    #[serde(default)]
    pub params: BTreeMap<String, toml_value::Value>,
    /// Mail arriving over time.
    #[serde(default)]
    pub arrivals: Vec<Arrival>,
    /// Trigger bytes sent at given times (as `postqueue -f` would).
    #[serde(default)]
    pub triggers: Vec<TriggerAt>,
    /// Operator commands run at given times (as `oqmgr ctl` would).
    #[serde(default)]
    pub commands: Vec<CommandAt>,
    /// Domain → `transport:nexthop`; unlisted domains go to `smtp:<domain>`.
    #[serde(default)]
    pub routes: BTreeMap<String, String>,
    /// Behaviour of transports' delivery agents.
    #[serde(default)]
    pub transports: BTreeMap<String, TransportBehaviour>,
    /// Behaviour of simulated servers by next hop; `"*"` is the default.
    #[serde(default)]
    pub destinations: BTreeMap<String, ServerBehaviour>,
}

/// A group of messages arriving.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arrival {
    /// When the first one arrives.
    #[serde(default)]
    pub at: Span,
    /// How many messages.
    #[serde(default = "one")]
    pub count: u32,
    /// Spacing between messages (0: all at once).
    #[serde(default)]
    pub every: Span,
    /// Recipients per message.
    #[serde(default = "one")]
    pub recipients: u32,
    /// Recipient domains, used in turn.
    pub domains: Vec<String>,
    /// Envelope sender; `""` is the null sender.
    #[serde(default = "default_sender")]
    pub sender: String,
    /// Local part of recipients (numbered: `user1`, `user2`, ...).
    #[serde(default = "default_user")]
    pub user: String,
    /// Number the local parts (default); `false` uses `user` as it is.
    #[serde(default = "yes")]
    pub numbered: bool,
    /// Queue the files appear in: `incoming` (default) or `deferred`.
    #[serde(default = "default_queue")]
    pub queue: String,
    /// How long before arrival the message was created (expiry counts from
    /// creation).
    #[serde(default)]
    pub age: Span,
    /// The messages ask for VERP (`sendmail -V`): one recipient per
    /// delivery.
    #[serde(default)]
    pub verp: bool,
}

fn yes() -> bool {
    true
}
fn one() -> u32 {
    1
}
fn default_sender() -> String {
    "sender@origin.example".into()
}
fn default_user() -> String {
    "user".into()
}
fn default_queue() -> String {
    "incoming".into()
}

/// Trigger bytes at a time.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerAt {
    /// When.
    pub at: Span,
    /// The bytes, e.g. `"FADI"`.
    pub bytes: String,
}

/// An operator command at a time: `suspend`, `resume` or `flush` as
/// `oqmgr ctl` takes them ([`crate::control::Command::parse`]), or
/// `destinations [--transport T] [--state S] [--top N]`, whose table goes
/// into the trace.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandAt {
    /// When.
    pub at: Span,
    /// The command line, e.g. `"suspend smtp:b.example --for 5m"`.
    pub run: String,
}

/// What a scenario's command line asks of the host.
#[derive(Clone, Debug, PartialEq)]
pub enum Operator {
    /// An operator command for the supervisor (`Msg::Control`).
    Control(crate::control::Command),
    /// The `destinations` table of the live state, printed into the trace
    /// ([`crate::live_state::DestinationFilter::trace_table`]).
    Destinations(crate::live_state::DestinationFilter),
}

impl CommandAt {
    /// What the command line asks for, checked.
    pub fn parse(&self) -> Result<Operator, String> {
        let words: Vec<&str> = self.run.split_whitespace().collect();
        if words.first() == Some(&"destinations") {
            let filter = crate::live_state::DestinationFilter::parse(&words[1..])?;
            return Ok(Operator::Destinations(filter));
        }
        crate::control::Command::parse(&self.run).map(Operator::Control)
    }
}

/// How a transport's agents behave.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransportBehaviour {
    /// Time to connect to an agent.
    #[serde(default)]
    pub connect: Span,
    /// Periods when the agent cannot be reached (the transport dies).
    #[serde(default)]
    pub down: Vec<Period>,
    /// How long the bounce daemon holds a message's defer log locked for
    /// each deferred recipient an agent appends (0: no lock is modelled).
    /// An append that finds the log locked waits 0.75 to 1.25 s and tries
    /// again, as Postfix's `deliver_flock` does with the default
    /// `deliver_lock_delay` of 1s; the agent reports after its last one.
    #[serde(default)]
    pub defer_log_lock: Span,
}

/// A period of time.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Period {
    /// Start (inclusive).
    pub from: Span,
    /// End (exclusive).
    pub to: Span,
    /// For outages: `refused` (default) or `timeout`.
    #[serde(default)]
    pub kind: OutageKind,
}

/// How a server fails during an outage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutageKind {
    /// Connection refused at once.
    #[default]
    Refused,
    /// Connection attempt times out after `timeout`.
    Timeout,
}

/// How a simulated server answers.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerBehaviour {
    /// Latency of one delivery.
    #[serde(default)]
    pub latency: Latency,
    /// Connections the server accepts at once; more get `421` (0: no limit).
    /// Counted when a server process takes the connection, as Postfix's
    /// `smtpd_client_connection_count_limit` is.
    #[serde(default)]
    pub connection_limit: u32,
    /// How long the `421` above `connection_limit` takes to reach the
    /// client (smtpd answers before any protocol exchange); a fixed
    /// latency draws no random number.
    #[serde(default = "default_limit_latency")]
    pub limit_latency: Latency,
    /// Server processes (0: no limit): connections beyond them wait in the
    /// listen queue until a session ends.
    #[serde(default)]
    pub process_limit: u32,
    /// Connections that may wait for a process (the kernel's queue of
    /// accepted connections); with `process_limit` only.
    #[serde(default)]
    pub listen_queue: u32,
    /// What a connection finds when the listen queue is full.
    #[serde(default)]
    pub listen_overflow: ListenOverflow,
    /// How long a client waits for the greeting (`smtp_helo_timeout`)
    /// before it gives up on a connection that no process took.
    #[serde(default = "default_greeting_timeout")]
    pub greeting_timeout: Span,
    /// Periods when the server is down.
    #[serde(default)]
    pub outages: Vec<Period>,
    /// Time a timed-out connection attempt takes.
    #[serde(default = "default_timeout")]
    pub timeout: Span,
    /// Share of recipients answered with a 4xx (deferred).
    #[serde(default)]
    pub defer_rate: f64,
    /// Share of recipients answered with a 5xx (bounced).
    #[serde(default)]
    pub bounce_rate: f64,
}

fn default_timeout() -> Span {
    Span(Duration::from_secs(30))
}

fn default_limit_latency() -> Latency {
    Latency::Fixed {
        value: Span(Duration::from_millis(50)),
    }
}

fn default_greeting_timeout() -> Span {
    Span(Duration::from_secs(300))
}

/// What happens to a connection that finds the server's listen queue
/// full (SCHEDULER_README's two "busy server" experiments).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenOverflow {
    /// The server drops the connection request: the client's connect
    /// times out after `timeout` (a BSD kernel with a full queue).
    #[default]
    Drop,
    /// The handshake completes but no process ever takes the connection:
    /// the client times out waiting for the greeting (a Linux kernel
    /// with a full accept queue).
    Stall,
}

impl Default for ServerBehaviour {
    fn default() -> ServerBehaviour {
        ServerBehaviour {
            latency: Latency::default(),
            connection_limit: 0,
            limit_latency: default_limit_latency(),
            process_limit: 0,
            listen_queue: 0,
            listen_overflow: ListenOverflow::Drop,
            greeting_timeout: default_greeting_timeout(),
            outages: Vec::new(),
            timeout: default_timeout(),
            defer_rate: 0.0,
            bounce_rate: 0.0,
        }
    }
}

/// A latency distribution.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "dist", rename_all = "lowercase", deny_unknown_fields)]
pub enum Latency {
    /// Always the same.
    Fixed {
        /// The latency.
        value: Span,
    },
    /// Uniform between two bounds.
    Uniform {
        /// Lower bound.
        min: Span,
        /// Upper bound.
        max: Span,
    },
    /// Exponential with a mean.
    Exponential {
        /// Mean.
        mean: Span,
    },
    /// Log-normal with a median and a shape.
    Lognormal {
        /// Median.
        median: Span,
        /// Sigma of the underlying normal.
        sigma: f64,
    },
}

impl Default for Latency {
    fn default() -> Latency {
        Latency::Fixed {
            value: Span(Duration::from_secs(1)),
        }
    }
}

/// Parameter values as TOML gives them: strings, numbers or booleans, all
/// turned into the text main.cf would hold.
pub mod toml_value {
    use serde::Deserialize;

    /// A main.cf value.
    #[derive(Clone, Debug, PartialEq, Deserialize)]
    #[serde(untagged)]
    pub enum Value {
        /// Text.
        Text(String),
        /// A number.
        Int(i64),
        /// A float (feedback values).
        Float(f64),
        /// `yes`/`no`.
        Bool(bool),
    }

    impl Value {
        /// The main.cf spelling.
        pub fn to_main_cf(&self) -> String {
            match self {
                Value::Text(s) => s.clone(),
                Value::Int(i) => i.to_string(),
                Value::Float(f) => f.to_string(),
                Value::Bool(b) => if *b { "yes" } else { "no" }.to_string(),
            }
        }
    }
}

impl Scenario {
    /// The `[params]` table as main.cf would spell it.
    pub fn raw_params(&self) -> RawParams {
        self.params
            .iter()
            .map(|(k, v)| (k.clone(), v.to_main_cf()))
            .collect()
    }

    /// Checks what the types cannot: every problem is named by its field,
    /// like a parse error, so a bad scenario is refused before it runs.
    pub fn check(&self) -> Result<(), String> {
        if let Err(fatals) = Params::resolve(&self.raw_params()) {
            let f = &fatals[0];
            return Err(format!("field `params.{}`: {}", f.param, f.message));
        }
        for (i, a) in self.arrivals.iter().enumerate() {
            if a.domains.is_empty() {
                return Err(format!(
                    "field `arrivals.{i}.domains`: needs at least one domain"
                ));
            }
            if a.queue != "incoming" && a.queue != "deferred" {
                return Err(format!(
                    "field `arrivals.{i}.queue`: {:?} is not `incoming` or `deferred`",
                    a.queue
                ));
            }
        }
        for (i, c) in self.commands.iter().enumerate() {
            if let Err(why) = c.parse() {
                return Err(format!("field `commands.{i}.run`: {why}"));
            }
        }
        for (name, d) in &self.destinations {
            let field = |f: &str| format!("field `destinations.{name}.{f}`");
            for (f, rate) in [("defer_rate", d.defer_rate), ("bounce_rate", d.bounce_rate)] {
                if !(0.0..=1.0).contains(&rate) {
                    return Err(format!("{}: {rate} is not between 0 and 1", field(f)));
                }
            }
            if d.defer_rate + d.bounce_rate > 1.0 {
                return Err(format!(
                    "{}: defer_rate + bounce_rate exceed 1",
                    field("defer_rate")
                ));
            }
            if d.listen_queue > 0 && d.process_limit == 0 {
                return Err(format!(
                    "{}: a listen queue needs a `process_limit`",
                    field("listen_queue")
                ));
            }
            match &d.latency {
                Latency::Uniform { min, max } if min > max => {
                    return Err(format!("{}: min is above max", field("latency")));
                }
                Latency::Lognormal { sigma, .. } if !(sigma.is_finite() && *sigma >= 0.0) => {
                    return Err(format!("{}: sigma must be 0 or more", field("latency")));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The scenario `oqmgr simulate` runs without a file: three healthy
    /// destinations, one that limits connections with 421, one that is
    /// down for ten minutes, and a flush.
    pub fn builtin() -> Scenario {
        let text = |s: &str| Span::parse(s).expect("built-in scenario times are valid");
        let mut destinations = BTreeMap::new();
        destinations.insert(
            "*".to_string(),
            ServerBehaviour {
                latency: Latency::Lognormal {
                    median: text("400ms"),
                    sigma: 0.5,
                },
                ..ServerBehaviour::default()
            },
        );
        destinations.insert(
            "limited.example".to_string(),
            ServerBehaviour {
                connection_limit: 4,
                ..ServerBehaviour::default()
            },
        );
        destinations.insert(
            "down.example".to_string(),
            ServerBehaviour {
                outages: vec![Period {
                    from: text("0s"),
                    to: text("10m"),
                    kind: OutageKind::Refused,
                }],
                ..ServerBehaviour::default()
            },
        );
        Scenario {
            seed: 1,
            until: None,
            params: BTreeMap::new(),
            arrivals: vec![Arrival {
                at: text("0s"),
                count: 200,
                every: text("100ms"),
                recipients: 3,
                domains: ["a.example", "b.example", "limited.example", "down.example"]
                    .map(String::from)
                    .to_vec(),
                sender: default_sender(),
                user: default_user(),
                numbered: true,
                queue: default_queue(),
                age: Span::default(),
                verp: false,
            }],
            triggers: vec![TriggerAt {
                at: text("11m"),
                bytes: "FADI".into(),
            }],
            commands: Vec::new(),
            routes: BTreeMap::new(),
            transports: BTreeMap::new(),
            destinations,
        }
    }
}
