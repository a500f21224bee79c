#![allow(clippy::disallowed_methods)] // tests wait on real sockets in real time
//! The control socket (`oqmgr_actors::control::server`) against bad
//! clients: a malformed, oversized, wrongly versioned or slow request gets
//! an error reply or is dropped, is logged, and never blocks or changes
//! scheduling: while a slow client holds its connection open, a good
//! request is answered and mail is delivered, and the live state after the
//! bad requests has no suspension and the same counters as mail alone
//! gives. Then a suspend and a resume through the socket do what they say.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::Actor;
use oqmgr::params::Params;
use oqmgr::time::Instant;
use oqmgr_actors::clock::Clock;
use oqmgr_actors::control::live_query::{live_state, DaemonInfo};
use oqmgr_actors::control::protocol::{Reply, SOCKET};
use oqmgr_actors::control::server::{bind, ControlServer, READ_TIMEOUT};
use oqmgr_actors::scheduler::Scheduler;
use oqmgr_devtools::simworld::{InstantAgent, SimStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// Sends `bytes` on a new connection and reads the reply (empty when the
/// server dropped the connection).
async fn exchange(path: &std::path::Path, bytes: &[u8]) -> String {
    let mut s = UnixStream::connect(path).await.expect("connects");
    let _ = s.write_all(bytes).await;
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply).await;
    reply
}

fn reply(text: &str) -> Reply {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text:?}"))
}

#[test]
fn bad_requests_never_block_or_change_scheduling() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(SOCKET);
    actix::System::new().block_on(async move {
        let (params, _) = Params::from_pairs(&[]).expect("defaults resolve");
        let store = Arc::new(Mutex::new(SimStore::empty()));
        let clock = Clock::wall();
        let scheduler = Scheduler::builder(params, store.clone())
            .with_transport("smtp", InstantAgent.start().recipient())
            .with_clock(clock)
            .start();
        let server = Arc::new(ControlServer::new(
            scheduler.clone(),
            DaemonInfo::default(),
            None,
        ));
        server.start(bind(dir.path()).expect("binds"));

        // A slow client: connects and says nothing.
        let mut slow = UnixStream::connect(&path).await.unwrap();
        // Bad requests, each answered with its reason.
        let bad = [
            (&b"{nope\n"[..], "malformed JSON"),
            (b"{\"v\":9,\"cmd\":\"state\"}\n", "unsupported protocol version 9"),
            (b"{\"v\":1,\"cmd\":\"suspend\"}\n", "bad request"),
            (b"{\"v\":1,\"cmd\":\"restore\",\"suspensions\":[]}\n", "unknown command"),
        ];
        for (request, why) in bad {
            let r = reply(&exchange(&path, request).await);
            assert!(!r.ok && r.error.as_deref().unwrap_or("").contains(why), "{r:?}");
        }
        let r = reply(&exchange(&path, &vec![b'x'; 70_000]).await);
        assert!(r.error.unwrap().contains("longer than"));

        // Mail moves meanwhile, and a good request is answered while the
        // slow client still holds its connection.
        let now = clock.now();
        store.lock().unwrap().add(
            "Q000001",
            false,
            "s@origin.example",
            &["u@a.example".to_string()],
            now,
            now,
            oqmgr::message::Warning::None,
        );
        scheduler.trigger(b"I");
        let mut removed = 0;
        for _ in 0..100 {
            let r = reply(&exchange(&path, b"{\"v\":1,\"cmd\":\"state\"}\n").await);
            removed = r.state.expect("a state").supervisor.removed;
            if removed == 1 {
                break;
            }
            actix::clock::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(removed, 1, "the message was delivered");
        let state = live_state(scheduler.host(), false).await.unwrap();
        assert!(state.supervisor.suspensions.is_empty());
        assert_eq!((state.supervisor.messages, state.supervisor.deferred), (0, 0));
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_millis(10), slow.read_to_end(&mut got)).await;
        assert!(read.is_err(), "the slow client is still waiting: {got:?}");

        // The slow client is answered with a timeout, then dropped.
        let mut got = String::new();
        tokio::time::timeout(READ_TIMEOUT * 2, slow.read_to_string(&mut got))
            .await
            .expect("the server gives up on a slow client")
            .unwrap();
        assert!(got.contains("timeout reading the request"), "{got}");

        // A suspend and a resume through the socket.
        let r = reply(
            &exchange(
                &path,
                b"{\"v\":1,\"cmd\":\"suspend\",\"target\":{\"destination\":\"smtp:b.example\"},\"reason\":\"test\"}\n",
            )
            .await,
        );
        assert_eq!(r.done, ["control: suspend smtp:b.example until resumed (test)"]);
        let state = live_state(scheduler.host(), false).await.unwrap();
        assert_eq!(state.supervisor.suspensions.len(), 1);
        assert!(state.supervisor.suspensions[0].since > Instant::ZERO);
        let r = reply(
            &exchange(
                &path,
                b"{\"v\":1,\"cmd\":\"resume\",\"target\":{\"destination\":\"smtp:b.example\"}}\n",
            )
            .await,
        );
        assert_eq!(
            r.done,
            ["control: suspension of smtp:b.example resumed; 0 deferred message(s) retried now"]
        );
        actix::System::current().stop();
    });
}
