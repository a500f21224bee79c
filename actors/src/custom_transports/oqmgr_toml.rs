//! oqmgr_toml - `$config_directory/oqmgr.toml`: transport names served by the
//! built-in transports (no Postfix counterpart: master.cf names Postfix's
//! agents; this file names ours), and the opt-in metrics listener
//! ([`crate::metrics`]).
//!
//! ```toml
//! [transport.hooks]
//! kind = "webhook"
//! url = "http://127.0.0.1:8080/in"
//! timeout = "10s"                  # default 30s; units ms, s, m, h
//! on_4xx = "bounce"                # or "defer"; default bounce
//! max_message_size = 10240000      # bytes; default 10240000
//! [transport.hooks.nexthop_urls]   # optional, by next hop
//! "vip.example" = "http://127.0.0.1:8081/vip"
//!
//! [transport.mdir]
//! kind = "maildir"
//! root = "/var/mail/maildirs"      # must be absolute
//!
//! [metrics]
//! listen = "127.0.0.1:9165"        # see crate::metrics for the rest
//! ```
//! The file is read through figment (TOML provider). A missing file means
//! no custom transports and no metrics. Anything else wrong (syntax, an
//! unknown kind or field, a bad URL, time, path or listen address) is an
//! [`OqmgrTomlError`] naming the file and the field, for a `fatal:` line:
//! the daemon must not run with mail routed to a transport it cannot
//! serve, nor quietly without the metrics it was asked for, or serving
//! them where it was not meant to.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Format, Toml};
use figment::Figment;
use serde::Deserialize;

use actix::Actor;

use super::http::Url;
use super::maildir::{Maildir, MaildirConfig};
use super::webhook::{On4xx, Webhook, WebhookConfig};
use super::Registrations;
use crate::clock::Clock;
use crate::metrics::MetricsConfig;

/// The file's name in the config directory.
pub const FILE_NAME: &str = "oqmgr.toml";

/// Default bound on one webhook request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Default largest message posted (Postfix's `message_size_limit`).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 10_240_000;

/// One configured transport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransportKind {
    /// POST to an HTTP endpoint.
    Webhook(WebhookConfig),
    /// Deliver into a Maildir tree.
    Maildir(MaildirConfig),
}

/// The file, checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OqmgrToml {
    /// Custom transports by name.
    pub transports: BTreeMap<String, TransportKind>,
    /// The metrics listener, when `[metrics]` is there.
    pub metrics: Option<MetricsConfig>,
}

/// Why the file is unusable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OqmgrTomlError {
    /// The file.
    pub path: PathBuf,
    /// The field (`transport.hooks.url`), or empty for the whole file.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for OqmgrTomlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.path.display(), self.message)
        } else {
            write!(
                f,
                "{}: {}: {}",
                self.path.display(),
                self.field,
                self.message
            )
        }
    }
}

impl std::error::Error for OqmgrTomlError {}

/// The file as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFile {
    /// `[transport.<name>]` tables.
    #[serde(default)]
    transport: BTreeMap<String, RawTransport>,
    /// `[metrics]`.
    metrics: Option<RawMetrics>,
}

/// `[metrics]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    /// `IP:port`.
    listen: String,
    /// Allows a non-loopback `listen`.
    #[serde(default)]
    allow_non_loopback: bool,
    /// Destinations with series of their own.
    top_destinations: Option<u64>,
    /// The status page's chart span.
    history: Option<String>,
}

/// One `[transport.<name>]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTransport {
    /// `webhook` or `maildir`.
    kind: String,
    /// webhook: the endpoint.
    url: Option<String>,
    /// webhook: endpoints by next hop.
    nexthop_urls: Option<BTreeMap<String, String>>,
    /// webhook: the request bound.
    timeout: Option<String>,
    /// webhook: `bounce` or `defer`.
    on_4xx: Option<String>,
    /// webhook: largest message.
    max_message_size: Option<u64>,
    /// maildir: the tree.
    root: Option<String>,
}

/// Reads `config_dir/oqmgr.toml`; empty when there is none.
///
/// # Errors
/// [`OqmgrTomlError`].
pub fn load(config_dir: &Path) -> Result<OqmgrToml, OqmgrTomlError> {
    let path = config_dir.join(FILE_NAME);
    if !path.exists() {
        return Ok(OqmgrToml::default());
    }
    let text = std::fs::read_to_string(&path).map_err(|e| OqmgrTomlError {
        path: path.clone(),
        field: String::new(),
        message: crate::postfix::log::errno_text(&e),
    })?;
    parse(&path, &text)
}

/// Parses the text of the file at `path`.
///
/// # Errors
/// [`OqmgrTomlError`].
pub fn parse(path: &Path, text: &str) -> Result<OqmgrToml, OqmgrTomlError> {
    let raw: RawFile = Figment::from(Toml::string(text))
        .extract()
        .map_err(|e| OqmgrTomlError {
            path: path.to_path_buf(),
            field: e.path.join("."),
            message: e.kind.to_string(),
        })?;
    let mut out = BTreeMap::new();
    for (name, t) in raw.transport {
        let err = |field: &str, message: String| OqmgrTomlError {
            path: path.to_path_buf(),
            field: format!("transport.{name}.{field}"),
            message,
        };
        if name.is_empty() || name.contains(['/', ':']) {
            return Err(err("", format!("bad transport name \"{name}\"")));
        }
        let only = |allowed: &[&str]| {
            let given = [
                ("url", t.url.is_some()),
                ("nexthop_urls", t.nexthop_urls.is_some()),
                ("timeout", t.timeout.is_some()),
                ("on_4xx", t.on_4xx.is_some()),
                ("max_message_size", t.max_message_size.is_some()),
                ("root", t.root.is_some()),
            ];
            match given.iter().find(|(f, set)| *set && !allowed.contains(f)) {
                Some((f, _)) => Err(err(f, format!("not a {} setting", t.kind))),
                None => Ok(()),
            }
        };
        let kind = match t.kind.as_str() {
            "webhook" => {
                only(&[
                    "url",
                    "nexthop_urls",
                    "timeout",
                    "on_4xx",
                    "max_message_size",
                ])?;
                let url = t
                    .url
                    .as_deref()
                    .ok_or_else(|| err("url", "missing".into()))?;
                let url = Url::parse(url).map_err(|m| err("url", m))?;
                let mut nexthop_urls = BTreeMap::new();
                for (hop, u) in t.nexthop_urls.unwrap_or_default() {
                    let parsed =
                        Url::parse(&u).map_err(|m| err(&format!("nexthop_urls.{hop}"), m))?;
                    nexthop_urls.insert(hop.to_ascii_lowercase(), parsed);
                }
                let timeout = match t.timeout.as_deref() {
                    None => DEFAULT_TIMEOUT,
                    Some(s) => parse_time(s)
                        .ok_or_else(|| err("timeout", format!("bad time value \"{s}\"")))?,
                };
                let on_4xx = match t.on_4xx.as_deref() {
                    None | Some("bounce") => On4xx::Bounce,
                    Some("defer") => On4xx::Defer,
                    Some(o) => {
                        return Err(err(
                            "on_4xx",
                            format!("\"{o}\": expected \"bounce\" or \"defer\""),
                        ))
                    }
                };
                let max_message_size = t
                    .max_message_size
                    .map_or(DEFAULT_MAX_MESSAGE_SIZE, |n| n as usize);
                TransportKind::Webhook(WebhookConfig {
                    url,
                    nexthop_urls,
                    timeout,
                    on_4xx,
                    max_message_size,
                })
            }
            "maildir" => {
                only(&["root"])?;
                let root = t
                    .root
                    .as_deref()
                    .ok_or_else(|| err("root", "missing".into()))?;
                if !root.starts_with('/') {
                    return Err(err("root", format!("\"{root}\" is not an absolute path")));
                }
                TransportKind::Maildir(MaildirConfig {
                    root: PathBuf::from(root),
                })
            }
            other => {
                return Err(err(
                    "kind",
                    format!("unknown transport kind \"{other}\" (expected webhook or maildir)"),
                ))
            }
        };
        out.insert(name, kind);
    }
    let metrics = match raw.metrics {
        None => None,
        Some(m) => {
            let err = |(field, message): (&str, String)| OqmgrTomlError {
                path: path.to_path_buf(),
                field: format!("metrics.{field}"),
                message,
            };
            let history = match m.history.as_deref() {
                None => None,
                Some(h) => Some(
                    parse_time(h)
                        .ok_or_else(|| err(("history", format!("bad time value \"{h}\""))))?,
                ),
            };
            Some(
                MetricsConfig::new(&m.listen, m.allow_non_loopback, m.top_destinations, history)
                    .map_err(err)?,
            )
        }
    };
    Ok(OqmgrToml {
        transports: out,
        metrics,
    })
}

/// Starts one actor per configured transport and registers it. Must run
/// inside an actix System.
pub fn start(kinds: &BTreeMap<String, TransportKind>, clock: Clock, into: &mut Registrations) {
    for (name, kind) in kinds {
        let actor = match kind {
            TransportKind::Webhook(c) => Webhook::new(c.clone()).start().recipient(),
            TransportKind::Maildir(c) => Maildir::new(c.clone(), clock).start().recipient(),
        };
        into.add(name, actor);
    }
}

/// `10s`, `500ms`, `2m`, `1h`, or a bare number of seconds; positive.
pub fn parse_time(s: &str) -> Option<Duration> {
    let s = s.trim();
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let n: u64 = s[..digits].parse().ok()?;
    let ms = match &s[digits..] {
        "ms" => n,
        "" | "s" => n.checked_mul(1000)?,
        "m" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        _ => return None,
    };
    (ms > 0).then(|| Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<BTreeMap<String, TransportKind>, String> {
        parse(Path::new("/etc/postfix/oqmgr.toml"), text)
            .map(|f| f.transports)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_metrics_table() {
        let file = |text: &str| {
            parse(Path::new("/etc/postfix/oqmgr.toml"), text).map_err(|e| e.to_string())
        };
        assert_eq!(file("").unwrap().metrics, None);
        let m = file(
            "[metrics]\nlisten = \"127.0.0.1:9165\"\ntop_destinations = 5\nhistory = \"2m\"\n",
        )
        .unwrap()
        .metrics
        .unwrap();
        assert_eq!(m.listen.port(), 9165);
        assert_eq!((m.top, m.history), (5, Duration::from_secs(120)));
        for (text, want) in [
            (
                "[metrics]\nlisten = \"0.0.0.0:9165\"\n",
                "/etc/postfix/oqmgr.toml: metrics.listen: 0.0.0.0:9165 is not a loopback address",
            ),
            (
                "[metrics]\nlisten = \"x\"\n",
                "metrics.listen: \"x\" is not an IP address",
            ),
            ("[metrics]\n", "metrics"),
            ("[metrics]\nlisten = \"127.0.0.1:1\"\nport = 3\n", "metrics"),
            (
                "[metrics]\nlisten = \"127.0.0.1:1\"\nhistory = \"soon\"\n",
                "metrics.history: bad time value",
            ),
        ] {
            let e = file(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        let open = "[metrics]\nlisten = \"0.0.0.0:9165\"\nallow_non_loopback = true\n";
        assert!(file(open).unwrap().metrics.is_some());
    }

    #[test]
    fn the_documented_example_parses() {
        let got = p(r#"
            [transport.hooks]
            kind = "webhook"
            url = "http://127.0.0.1:8080/in"
            timeout = "10s"
            [transport.hooks.nexthop_urls]
            "VIP.example" = "http://127.0.0.1:8081/vip"

            [transport.mdir]
            kind = "maildir"
            root = "/var/mail/maildirs"
        "#)
        .unwrap();
        let TransportKind::Webhook(w) = &got["hooks"] else {
            panic!("{got:?}")
        };
        assert_eq!(w.timeout, Duration::from_secs(10));
        assert_eq!(w.url.port, 8080);
        assert_eq!(w.nexthop_urls["vip.example"].path, "/vip");
        assert_eq!(w.on_4xx, On4xx::Bounce);
        assert_eq!(
            got["mdir"],
            TransportKind::Maildir(MaildirConfig {
                root: PathBuf::from("/var/mail/maildirs")
            })
        );
        assert!(p("").unwrap().is_empty());
    }

    #[test]
    fn errors_name_the_file_and_field() {
        let cases = [
            (
                "[transport.h]\nkind = \"webhook\"\n",
                "/etc/postfix/oqmgr.toml: transport.h.url: missing",
            ),
            (
                "[transport.h]\nkind = \"webhook\"\nurl = \"ftp://x\"\n",
                "transport.h.url: \"ftp://x\": only http:// URLs",
            ),
            (
                "[transport.h]\nkind = \"webhook\"\nurl = \"http://x/\"\ntimeout = \"soon\"\n",
                "transport.h.timeout: bad time value \"soon\"",
            ),
            (
                "[transport.h]\nkind = \"webhook\"\nurl = \"http://x/\"\non_4xx = \"drop\"\n",
                "transport.h.on_4xx:",
            ),
            (
                "[transport.h]\nkind = \"webhook\"\nurl = \"http://x/\"\nroot = \"/x\"\n",
                "transport.h.root: not a webhook setting",
            ),
            (
                "[transport.m]\nkind = \"maildir\"\nroot = \"rel\"\n",
                "transport.m.root: \"rel\" is not an absolute path",
            ),
            (
                "[transport.m]\nkind = \"smtp\"\n",
                "transport.m.kind: unknown transport kind \"smtp\"",
            ),
            (
                "[transport.m]\nkind = \"maildir\"\nroot = \"/r\"\nroots = 1\n",
                "transport.m",
            ),
            ("[transport.m]\nroot = \"/r\"\n", "transport.m"),
            ("[transport.m\n", "/etc/postfix/oqmgr.toml: "),
            (
                "[transport.m]\nkind = \"maildir\"\nroot = 5\n",
                "transport.m.root",
            ),
        ];
        for (text, want) in cases {
            let e = p(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(e.starts_with("/etc/postfix/oqmgr.toml: "), "{e}");
        }
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_time("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_time("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_time("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_time("7"), Some(Duration::from_secs(7)));
        for bad in ["", "0s", "s", "1d", "-1s", "1.5s", "99999999999999999999h"] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }
}
