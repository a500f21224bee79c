#![allow(clippy::disallowed_methods)] // tests wait on real sockets in real time
//! The metrics listener (`oqmgr_actors::metrics::http_server`) on a
//! scheduler with the in-memory store: `/metrics` counts what happened in
//! either text format, `/` and `/status.json` serve the status page, other
//! methods and paths are refused, and a client that sends nothing, or too
//! many clients at once, never hold up scheduling or other requests.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::Actor;
use oqmgr::params::Params;
use oqmgr_actors::clock::Clock;
use oqmgr_actors::control::live_query::DaemonInfo;
use oqmgr_actors::metrics::http_server::{bind, MetricsServer, HEADER_TIMEOUT, MAX_CONNECTIONS};
use oqmgr_actors::metrics::{Metrics, MetricsConfig};
use oqmgr_actors::scheduler::Scheduler;
use oqmgr_devtools::simworld::{InstantAgent, SimStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One answer: status code, headers (lower-case names), body.
struct Answer {
    status: u16,
    headers: String,
    body: String,
}

/// Sends `request` (with `Connection: close`) and reads the answer.
async fn http(addr: SocketAddr, method: &str, path: &str, extra: &str) -> Answer {
    let mut s = TcpStream::connect(addr).await.expect("connects");
    let request =
        format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{extra}\r\n");
    s.write_all(request.as_bytes()).await.unwrap();
    let mut raw = String::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_string(&mut raw))
        .await
        .expect("answered in time")
        .unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Answer {
        status,
        headers: head.to_lowercase(),
        body: body.to_string(),
    }
}

/// The value of the sample line starting with `name` in `text`.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn metrics_status_page_and_bad_clients() {
    actix::System::new().block_on(async move {
        let (params, _) = Params::from_pairs(&[]).expect("defaults resolve");
        let store = Arc::new(Mutex::new(SimStore::empty()));
        let clock = Clock::wall();
        let config = MetricsConfig::new("127.0.0.1:0", false, None, None).unwrap();
        let metrics = Arc::new(Metrics::new(config));
        let scheduler = Scheduler::builder(params, store.clone())
            .with_transport("smtp", InstantAgent.start().recipient())
            .with_clock(clock)
            .with_metrics(Arc::clone(&metrics))
            .start();
        let listener = bind("127.0.0.1:0".parse().unwrap()).expect("binds");
        let addr = listener.local_addr().unwrap();
        let info = DaemonInfo {
            pid: 1,
            version: "test".into(),
            ..DaemonInfo::default()
        };
        Arc::new(MetricsServer::new(scheduler.clone(), metrics, info))
            .start(listener)
            .expect("starts");

        // A client that connects and says nothing, and as many as the
        // server serves at once less one.
        let silent = TcpStream::connect(addr).await.unwrap();
        let mut idle = Vec::new();
        for _ in 0..MAX_CONNECTIONS - 2 {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }

        // Mail moves meanwhile, and /metrics counts it.
        let now = clock.now();
        for i in 0..5 {
            store.lock().unwrap().add(
                &format!("Q00000{i}"),
                false,
                "s@origin.example",
                &[format!("u{i}@a.example")],
                now,
                now,
                oqmgr::message::Warning::None,
            );
        }
        scheduler.trigger(b"I");
        let mut text = String::new();
        for _ in 0..100 {
            let a = http(addr, "GET", "/metrics", "").await;
            assert_eq!(a.status, 200, "{}", a.body);
            assert!(
                a.headers
                    .contains("content-type: text/plain; version=0.0.4"),
                "{}",
                a.headers
            );
            text = a.body;
            // A delivery is counted when its agent answers, its message's
            // removal when the completion is done, a moment later: wait
            // for both.
            if sample(
                &text,
                r#"oqmgr_deliveries_total{transport="smtp",status="done"}"#,
            ) == Some(5.0)
                && sample(&text, r#"oqmgr_messages_total{fate="removed"}"#) == Some(5.0)
                && sample(&text, "oqmgr_active_messages") == Some(0.0)
            {
                break;
            }
            actix::clock::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            sample(
                &text,
                r#"oqmgr_deliveries_total{transport="smtp",status="done"}"#
            ),
            Some(5.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, r#"oqmgr_triggers_total{request="scan_incoming"}"#),
            Some(1.0)
        );
        assert!(
            sample(
                &text,
                r#"oqmgr_scan_duration_seconds_count{queue="incoming"}"#
            ) >= Some(1.0)
        );
        assert_eq!(
            sample(&text, r#"oqmgr_messages_total{fate="removed"}"#),
            Some(5.0)
        );
        assert_eq!(sample(&text, "oqmgr_active_messages"), Some(0.0));

        // OpenMetrics when asked for.
        let a = http(
            addr,
            "GET",
            "/metrics",
            "Accept: application/openmetrics-text; version=1.0.0\r\n",
        )
        .await;
        assert!(
            a.headers
                .contains("content-type: application/openmetrics-text"),
            "{}",
            a.headers
        );
        assert!(a.body.ends_with("# EOF\n"));

        // The page and its JSON.
        let a = http(addr, "GET", "/", "").await;
        assert_eq!(a.status, 200);
        assert!(a.headers.contains("content-type: text/html"));
        assert!(a.body.contains("fetch(\"status.json\""), "{}", a.body);
        let a = http(addr, "GET", "/status.json", "").await;
        assert_eq!(a.status, 200);
        let json: serde_json::Value = serde_json::from_str(&a.body).expect("JSON");
        assert_eq!(json["daemon"], "oqmgr test (pid 1)");
        assert_eq!(json["messages"][1], 20000);
        assert!(
            json["series"].is_array() && json["destinations"].is_array(),
            "{json}"
        );

        // Nothing else, and nothing that changes anything.
        for (method, path, want) in [
            ("POST", "/metrics", 405),
            ("PUT", "/", 405),
            ("DELETE", "/status.json", 405),
            ("GET", "/favicon.ico", 404),
            ("GET", "/metrics/../x", 404),
        ] {
            let a = http(addr, method, path, "Content-Length: 0\r\n").await;
            assert_eq!(a.status, want, "{method} {path}: {}", a.body);
        }
        let a = http(addr, "POST", "/metrics", "Content-Length: 0\r\n").await;
        assert!(a.headers.contains("allow: get, head"), "{}", a.headers);

        // One more than the server serves at once is closed at once (the
        // requests above have given their slots back by now).
        actix::clock::sleep(Duration::from_millis(200)).await;
        idle.push(TcpStream::connect(addr).await.unwrap());
        actix::clock::sleep(Duration::from_millis(100)).await;
        let mut last = TcpStream::connect(addr).await.unwrap();
        let mut got = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(2), last.read_to_end(&mut got)).await;
        assert!(
            matches!(closed, Ok(Ok(0))),
            "the extra connection is closed: {closed:?}"
        );
        drop(idle);

        // The silent client is dropped after the header timeout.
        let mut silent = silent;
        let mut got = Vec::new();
        let read = tokio::time::timeout(HEADER_TIMEOUT * 3, silent.read_to_end(&mut got)).await;
        assert!(read.is_ok(), "the server gives up on a silent client");
        actix::System::current().stop();
    });
}
