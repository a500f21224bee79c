//! webhook - a built-in transport that POSTs each message as JSON to an
//! HTTP endpoint (no Postfix counterpart; it plays the part of a delivery
//! agent such as smtp(8), with HTTP status codes for SMTP replies).
//!
//! One POST per delivery request (one message, one destination, a batch of
//! recipients), body `application/json`:
//! ```json
//! {"queue_id":"4Xk2C1","transport":"hooks","nexthop":"hook.example",
//!  "sender":"a@example.com","recipients":[{"address":"u@hook.example",
//!  "original":"u@hook.example"}],"message_base64":"U3ViamVjdDog..."}
//! ```
//! The URL is the transport's `url`, or the one configured for the
//! request's next hop in `nexthop_urls`.
//!
//! # Results
//! | answer | every recipient | hop status |
//! |---|---|---|
//! | 2xx | sent `2.0.0` | |
//! | 4xx | bounced `5.0.0` (or deferred `4.0.0` with `on_4xx = "defer"`) | |
//! | 5xx, 1xx, 3xx, malformed, lost connection | deferred `4.0.0`/`4.4.2` | |
//! | refused, unreachable, connect or response timeout | deferred `4.4.1`/`4.4.2` | yes: the destination may go dead |
//!
//! The status text names the peer and the HTTP answer, e.g. `webhook
//! 127.0.0.1[127.0.0.1]:8080 said: 422 Unprocessable Entity (bad
//! recipient)`, and the status lines show the peer as `relay=`.

use std::collections::BTreeMap;
use std::time::Duration;

use actix::{Actor, Context, Handler, ResponseFuture};

use super::http::{self, HttpError, Url};
use super::{Delivery, Dsn, RcptResult, Reply};
use crate::daemon::active_table::wire_bytes;
use crate::postfix::attr::base64;

/// What a 4xx answer means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum On4xx {
    /// Bounce the recipients (`5.0.0`).
    Bounce,
    /// Defer them (`4.0.0`).
    Defer,
}

/// A webhook transport's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookConfig {
    /// The default endpoint.
    pub url: Url,
    /// Endpoints by next hop (lower case).
    pub nexthop_urls: BTreeMap<String, Url>,
    /// Bound on one whole request (connect, send, answer).
    pub timeout: Duration,
    /// What a 4xx answer means.
    pub on_4xx: On4xx,
    /// Largest message posted; a larger one bounces (`5.3.4`).
    pub max_message_size: usize,
}

/// The webhook transport actor.
pub struct Webhook {
    /// Settings.
    config: WebhookConfig,
}

impl Webhook {
    /// A webhook transport with these settings.
    pub fn new(config: WebhookConfig) -> Webhook {
        Webhook { config }
    }
}

impl Actor for Webhook {
    type Context = Context<Self>;
}

impl Handler<Delivery> for Webhook {
    type Result = ResponseFuture<Reply>;

    fn handle(&mut self, d: Delivery, _ctx: &mut Context<Self>) -> Self::Result {
        let config = self.config.clone();
        Box::pin(async move { deliver(&config, d).await })
    }
}

/// One delivery.
pub async fn deliver(config: &WebhookConfig, d: Delivery) -> Reply {
    let url = config
        .nexthop_urls
        .get(&d.nexthop.to_ascii_lowercase())
        .unwrap_or(&config.url)
        .clone();
    let limit = config.max_message_size;
    let content = d.content.clone();
    let text = tokio::task::spawn_blocking(move || content.read_all(limit)).await;
    let text = match text {
        Ok(Ok(t)) => t,
        Ok(Err(super::content::ContentError::TooLarge { .. })) => {
            return Reply::all(
                &d,
                RcptResult::bounced("5.3.4", "message too big for the webhook"),
            )
        }
        Ok(Err(e)) => return Reply::all(&d, RcptResult::deferred("4.3.0", e.to_string())),
        Err(e) => return Reply::all(&d, RcptResult::deferred("4.3.0", e.to_string())),
    };
    let body = json_body(&d, &text);
    match http::post(&url, "application/json", body.as_bytes(), config.timeout).await {
        Err(e) => {
            let code = match &e {
                HttpError::Connect { .. } => "4.4.1",
                _ => "4.4.2",
            };
            let dsn = Dsn::new(code, e.to_string());
            let peer = match &e {
                HttpError::Connect { peer, .. }
                | HttpError::Timeout { peer }
                | HttpError::Io { peer, .. }
                | HttpError::Malformed { peer, .. } => peer.clone(),
            };
            let reply = if e.is_site_failure() {
                Reply::site_failure(&d, dsn)
            } else {
                Reply::all(&d, RcptResult::deferred(dsn.status, dsn.reason))
            };
            reply.with_relay(if matches!(e, HttpError::Connect { .. }) {
                "none".to_string()
            } else {
                peer
            })
        }
        Ok((r, peer)) => {
            let said = said(&peer, &r);
            let result = match r.status {
                200..=299 => RcptResult::sent(said),
                400..=499 if config.on_4xx == On4xx::Bounce => RcptResult::bounced("5.0.0", said),
                _ => RcptResult::deferred("4.0.0", said),
            };
            Reply::all(&d, result).with_relay(peer)
        }
    }
}

/// `webhook <peer> said: <code> <reason> (<first body line>)`.
fn said(peer: &str, r: &http::Response) -> String {
    let mut text = format!("webhook {peer} said: {} {}", r.status, r.reason);
    let body = String::from_utf8_lossy(&r.body);
    let first = body.lines().next().unwrap_or("").trim();
    if !first.is_empty() {
        let short: String = first.chars().take(200).collect();
        text.push_str(&format!(" ({short})"));
    }
    text.trim_end().to_string()
}

/// The JSON document posted for `d`.
pub fn json_body(d: &Delivery, text: &[u8]) -> String {
    let mut out = String::with_capacity(text.len() * 4 / 3 + 256);
    out.push_str("{\"queue_id\":");
    json_string(&mut out, &d.queue_id);
    out.push_str(",\"transport\":");
    json_string(&mut out, &d.transport);
    out.push_str(",\"nexthop\":");
    json_string(&mut out, &d.nexthop);
    out.push_str(",\"sender\":");
    json_string(&mut out, &d.sender);
    out.push_str(",\"recipients\":[");
    for (i, r) in d.recipients.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"address\":");
        // JSON holds text: an address that is not UTF-8 goes lossily.
        json_string(&mut out, &String::from_utf8_lossy(&wire_bytes(&r.address)));
        out.push_str(",\"original\":");
        json_string(
            &mut out,
            &String::from_utf8_lossy(&wire_bytes(&r.orig_address)),
        );
        out.push('}');
    }
    out.push_str("],\"message_base64\":\"");
    out.push_str(&base64::encode(text));
    out.push_str("\"}");
    out
}

/// Appends `s` as a JSON string literal.
fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::custom_transports::{Content, Rcpt, RecipientStatus};
    use crate::postfix::record::{encode_record, rec};
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A loopback port nothing listens on (bound a moment ago, then
    /// released).
    fn closed_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    /// A queue file with `text` as content, and a delivery of it to two
    /// recipients.
    fn delivery(dir: &std::path::Path, text: &str) -> Delivery {
        let mut out = Vec::new();
        encode_record(&mut out, rec::MESG, b"");
        let data_offset = out.len() as i64;
        for l in text.lines() {
            encode_record(&mut out, rec::NORM, l.as_bytes());
        }
        encode_record(&mut out, rec::XTRA, b"");
        let path = dir.join("Q");
        std::fs::write(&path, out).unwrap();
        Delivery {
            transport: "hooks".into(),
            nexthop: "hook.example".into(),
            queue_id: "ABC123".into(),
            sender: "s@x".into(),
            recipients: vec![Rcpt::new("a@hook.example"), Rcpt::new("b@hook.example")],
            content: Content {
                path,
                data_offset,
                size_hint: 0,
            },
        }
    }

    /// A server answering each of `answers` to one connection after
    /// `delay`; returns its port and the bodies it got.
    fn server(
        answers: Vec<&'static str>,
        delay: Duration,
    ) -> (u16, std::thread::JoinHandle<Vec<String>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let h = std::thread::spawn(move || {
            let mut bodies = Vec::new();
            for answer in answers {
                let (mut s, _) = l.accept().unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut got = Vec::new();
                let mut chunk = [0u8; 4096];
                while let Ok(n) = s.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&chunk[..n]);
                    let t = String::from_utf8_lossy(&got).to_string();
                    if let Some(i) = t.find("\r\n\r\n") {
                        let len: usize = t[..i]
                            .lines()
                            .find_map(|l| l.strip_prefix("Content-Length: "))
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                        if got.len() >= i + 4 + len {
                            bodies.push(t[i + 4..].to_string());
                            break;
                        }
                    }
                }
                std::thread::sleep(delay);
                let _ = s.write_all(answer.as_bytes());
            }
            bodies
        });
        (port, h)
    }

    fn config(port: u16, timeout: Duration, on_4xx: On4xx) -> WebhookConfig {
        WebhookConfig {
            url: Url::parse(&format!("http://127.0.0.1:{port}/in")).unwrap(),
            nexthop_urls: BTreeMap::new(),
            timeout,
            on_4xx,
            max_message_size: 1 << 20,
        }
    }

    fn run(config: &WebhookConfig, d: Delivery) -> Reply {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(deliver(config, d))
    }

    fn statuses(r: &Reply) -> Vec<(RecipientStatus, &str)> {
        r.recipients
            .iter()
            .map(|x| (x.status, x.dsn.status.as_str()))
            .collect()
    }

    #[test]
    fn answers_map_to_results() {
        let t = tempfile::tempdir().unwrap();
        let (port, h) = server(
            vec![
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                "HTTP/1.1 404 Not Found\r\nContent-Length: 7\r\n\r\nno user",
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
                "HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n",
            ],
            Duration::ZERO,
        );
        let c = config(port, Duration::from_secs(5), On4xx::Bounce);
        let r = run(&c, delivery(t.path(), "Subject: s\n\nbody\n"));
        assert_eq!(statuses(&r), [(RecipientStatus::Sent, "2.0.0"); 2]);
        assert_eq!(r.hop, None);
        assert_eq!(
            r.relay.as_deref(),
            Some(format!("127.0.0.1[127.0.0.1]:{port}").as_str())
        );
        let r = run(&c, delivery(t.path(), "x\n"));
        assert_eq!(statuses(&r), [(RecipientStatus::Bounced, "5.0.0"); 2]);
        assert!(
            r.recipients[0]
                .dsn
                .reason
                .ends_with("said: 404 Not Found (no user)"),
            "{r:?}"
        );
        let defer4 = config(port, Duration::from_secs(5), On4xx::Defer);
        let r = run(&defer4, delivery(t.path(), "x\n"));
        assert_eq!(statuses(&r), [(RecipientStatus::Deferred, "4.0.0"); 2]);
        let r = run(&c, delivery(t.path(), "x\n"));
        assert_eq!(statuses(&r), [(RecipientStatus::Deferred, "4.0.0"); 2]);
        assert_eq!(r.hop, None, "a 5xx is not a site failure");
        let bodies = h.join().unwrap();
        assert_eq!(bodies.len(), 4);
        let b = &bodies[0];
        assert!(b.starts_with("{\"queue_id\":\"ABC123\",\"transport\":\"hooks\",\"nexthop\":\"hook.example\",\"sender\":\"s@x\""), "{b}");
        assert!(
            b.contains("{\"address\":\"b@hook.example\",\"original\":\"\"}"),
            "{b}"
        );
        let want = base64::encode(b"Subject: s\n\nbody\n");
        assert!(
            b.ends_with(&format!("\"message_base64\":\"{want}\"}}")),
            "{b}"
        );
    }

    #[test]
    fn a_nexthop_can_have_its_own_url() {
        let t = tempfile::tempdir().unwrap();
        let (port, h) = server(
            vec!["HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"],
            Duration::ZERO,
        );
        // The default URL is down; hook.example has its own.
        let mut c = config(closed_port(), Duration::from_secs(5), On4xx::Bounce);
        let own = Url::parse(&format!("http://127.0.0.1:{port}/vip")).unwrap();
        c.nexthop_urls.insert("hook.example".into(), own);
        let mut d = delivery(t.path(), "x\n");
        d.nexthop = "HOOK.example".into();
        let r = run(&c, d);
        assert_eq!(statuses(&r), [(RecipientStatus::Sent, "2.0.0"); 2]);
        assert_eq!(h.join().unwrap().len(), 1);
    }

    #[test]
    fn down_and_slow_servers_are_site_failures() {
        let t = tempfile::tempdir().unwrap();
        let port = closed_port();
        let c = config(port, Duration::from_secs(5), On4xx::Bounce);
        let r = run(&c, delivery(t.path(), "x\n"));
        assert_eq!(statuses(&r), [(RecipientStatus::Deferred, "4.4.1"); 2]);
        let hop = r.hop.expect("a refused connection is a site failure");
        assert!(hop.reason.ends_with("Connection refused"), "{hop:?}");
        assert_eq!(r.relay.as_deref(), Some("none"));

        let (port, h) = server(vec!["HTTP/1.1 200 OK\r\n\r\n"], Duration::from_millis(1500));
        let c = config(port, Duration::from_millis(300), On4xx::Bounce);
        let r = run(&c, delivery(t.path(), "x\n"));
        assert_eq!(statuses(&r), [(RecipientStatus::Deferred, "4.4.2"); 2]);
        assert!(r.hop.is_some(), "{r:?}");
        assert!(r.recipients[0].dsn.reason.contains("timed out"), "{r:?}");
        let _ = h.join();
    }

    #[test]
    fn a_message_too_big_bounces_and_a_broken_file_defers() {
        let t = tempfile::tempdir().unwrap();
        let mut c = config(1, Duration::from_secs(1), On4xx::Bounce);
        c.max_message_size = 3;
        let r = run(&c, delivery(t.path(), "longer than three\n"));
        assert_eq!(statuses(&r), [(RecipientStatus::Bounced, "5.3.4"); 2]);
        let mut d = delivery(t.path(), "x\n");
        d.content.data_offset = 1;
        let r = run(&c, d);
        assert_eq!(statuses(&r), [(RecipientStatus::Deferred, "4.3.0"); 2]);
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut s = String::new();
        json_string(&mut s, "a\"b\\c\nd\u{1}é");
        assert_eq!(s, "\"a\\\"b\\\\c\\nd\\u0001é\"");
    }

    #[test]
    fn said_text() {
        let r = http::Response {
            status: 422,
            reason: "Unprocessable Entity".into(),
            body: b"bad recipient\nmore".to_vec(),
        };
        assert_eq!(
            said("h[1.2.3.4]:80", &r),
            "webhook h[1.2.3.4]:80 said: 422 Unprocessable Entity (bad recipient)"
        );
        let r = http::Response {
            status: 204,
            reason: String::new(),
            body: vec![],
        };
        assert_eq!(said("p", &r), "webhook p said: 204");
    }
}
