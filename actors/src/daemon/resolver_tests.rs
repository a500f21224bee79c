//! Tests of the trivial-rewrite client the daemon runs: Postfix's warning
//! texts, and a scripted trivial-rewrite on a real socket for retries,
//! caching, server-requested hang-ups, idle connections and rewrites.

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::postfix::attr::{decode_list, encode_announcement, AttrWriter};
use crate::postfix::rewrite::resolve_flags;

#[test]
fn warnings_follow_postfix_and_spare_a_stale_first_attempt() {
    let enoent = || Problem::Io(io::Error::from_raw_os_error(libc::ENOENT));
    assert_eq!(enoent().warning("rewrite", 1), None);
    assert_eq!(Problem::Closed.warning("rewrite", 1), None);
    assert_eq!(
        enoent().warning("rewrite", 2).as_deref(),
        Some("problem talking to service rewrite: No such file or directory")
    );
    assert_eq!(
        Problem::Closed.warning("rewrite", 2).as_deref(),
        Some("problem talking to service rewrite: lost connection")
    );
    let refused = Problem::Io(io::Error::from_raw_os_error(libc::ECONNREFUSED));
    assert_eq!(
        refused.warning("rewrite", 1).as_deref(),
        Some("problem talking to service rewrite: Connection refused")
    );
    let timeout = Problem::Io(io::Error::from(io::ErrorKind::WouldBlock));
    assert_eq!(
        timeout.warning("rewrite", 1).as_deref(),
        Some("problem talking to service rewrite: Connection timed out")
    );
    let null = Problem::Unusable("resolve_clnt: null transport result for: <a@b>".into());
    assert_eq!(
        null.warning("rewrite", 1).as_deref(),
        Some("resolve_clnt: null transport result for: <a@b>")
    );
}

#[test]
fn a_server_that_hangs_up_or_answers_nothing_usable_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("rewrite");
    let listener = UnixListener::bind(&socket).unwrap();
    let good = ResolveReply {
        server_flags: 0,
        transport: b"smtp".to_vec(),
        nexthop: b"b.example".to_vec(),
        recipient: b"a@b.example".to_vec(),
        flags: 0,
    };
    let empty = ResolveReply {
        transport: Vec::new(),
        ..good.clone()
    };
    let answers = vec![None, Some(empty), Some(good.clone())];
    let server = std::thread::spawn(move || {
        for answer in answers {
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(&encode_announcement(protocol::TRIVIAL_REWRITE))
                .unwrap();
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf).unwrap();
            // None: hang up without an answer.
            if let Some(reply) = answer {
                s.write_all(&reply.encode().unwrap()).unwrap();
            }
        }
    });
    let resolver = Resolver::new(
        &socket,
        ResolverConfig {
            ipc_timeout: Duration::from_secs(5),
            retry_delay: Duration::from_millis(10),
            ..ResolverConfig::default()
        },
    );
    let got = resolver.resolve(ResolveClass::Resolve, b"s@x", [&b"a@b.example"[..]]);
    assert_eq!(got, vec![good]);
    server.join().unwrap();
}

/// One step of a scripted trivial-rewrite.
#[derive(Clone, Debug)]
enum Step {
    /// Answer one resolve request with these server flags and transport.
    Reply(u32, &'static str),
    /// Read one request and hang up without an answer.
    HangUp,
    /// Answer one rewrite request with the address and `.rw`.
    Rewrite,
}

/// A trivial-rewrite at `socket` that plays `script`, one step per
/// request, announcing itself on every connection; what it saw goes to
/// the returned log (`connect`, `resolve a@x`, `rewrite "a b"@x`, ...).
fn scripted_server(socket: &Path, script: Vec<Step>) -> Arc<Mutex<Vec<String>>> {
    let listener = UnixListener::bind(socket).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        let mut steps = script.into_iter();
        'conn: for conn in listener.incoming() {
            let mut s = conn.unwrap();
            log.lock().unwrap().push("connect".to_string());
            s.write_all(&encode_announcement(protocol::TRIVIAL_REWRITE))
                .unwrap();
            let mut buf = Vec::new();
            loop {
                let (list, used) = loop {
                    match decode_list(&buf, &Limits::default()) {
                        Ok(x) => break x,
                        Err(_) => {
                            let mut chunk = [0u8; 1024];
                            match s.read(&mut chunk) {
                                Ok(0) | Err(_) => continue 'conn,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                    }
                };
                buf.drain(..used);
                let mut sc = list.scan();
                let kind = sc.text("request").unwrap();
                let reply = match steps.next().unwrap_or(Step::HangUp) {
                    Step::HangUp => {
                        log.lock().unwrap().push(format!("{kind}: hang up"));
                        continue 'conn;
                    }
                    Step::Reply(server_flags, transport) => {
                        sc.str("sender").unwrap();
                        let addr = sc.str("address").unwrap();
                        let line = format!("{kind} {}", String::from_utf8_lossy(&addr));
                        log.lock().unwrap().push(line);
                        ResolveReply {
                            server_flags,
                            transport: transport.into(),
                            nexthop: b"hop".to_vec(),
                            recipient: addr,
                            flags: resolve_flags::CLASS_DEFAULT,
                        }
                        .encode()
                        .unwrap()
                    }
                    Step::Rewrite => {
                        sc.str("rule").unwrap();
                        let mut addr = sc.str("address").unwrap();
                        let line = format!("rewrite {}", String::from_utf8_lossy(&addr));
                        log.lock().unwrap().push(line);
                        addr.extend_from_slice(b".rw");
                        let mut w = AttrWriter::new();
                        w.int("flags", 0).str("address", addr).end();
                        w.finish().unwrap()
                    }
                };
                s.write_all(&reply).unwrap();
            }
        }
    });
    seen
}

/// Fast retries; the other settings as given.
fn quick(config: ResolverConfig) -> ResolverConfig {
    ResolverConfig {
        ipc_timeout: Duration::from_secs(5),
        retry_delay: Duration::from_millis(10),
        ..config
    }
}

/// One resolve of `address` for sender `s`.
fn resolve_one(r: &Resolver, class: ResolveClass, address: &str) -> ResolveReply {
    r.resolve(class, b"s", [address.as_bytes()]).remove(0)
}

#[test]
fn caches_the_last_answer_retries_and_honours_server_flags() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("rewrite");
    let seen = scripted_server(
        &socket,
        vec![
            Step::Reply(0, "smtp"),
            Step::Reply(1, "local"), // the server asks us to hang up after this
            Step::HangUp,            // the next connection dies mid-request
            Step::Reply(0, ""),      // an empty transport: retried
            Step::Reply(0, "relay"),
            Step::Rewrite,
        ],
    );
    let r = Resolver::new(&socket, quick(ResolverConfig::default()));
    let a = resolve_one(&r, ResolveClass::Resolve, "a@x");
    assert_eq!(a.transport, b"smtp");
    // The same request again: answered from the cache, nothing sent.
    assert_eq!(resolve_one(&r, ResolveClass::Resolve, "a@x"), a);
    // Another class is another request.
    assert_eq!(
        resolve_one(&r, ResolveClass::Verify, "a@x").transport,
        b"local"
    );
    // The hang-up and the empty transport are retried on new connections.
    assert_eq!(
        resolve_one(&r, ResolveClass::Resolve, "d@x").transport,
        b"relay"
    );
    // Redirect targets travel quoted (external form) and come back
    // unquoted.
    assert_eq!(r.rewrite_local(b"a b@x"), b"a b@x.rw");
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "connect",
            "resolve a@x",
            "verify a@x",
            "connect",
            "resolve: hang up",
            "connect",
            "resolve d@x",
            "connect",
            "resolve d@x",
            "rewrite \"a b\"@x",
        ]
    );
}

#[test]
fn an_idle_connection_is_replaced_and_the_cache_expires() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("rewrite");
    let seen = scripted_server(&socket, vec![Step::Reply(0, "smtp"); 3]);
    let r = Resolver::new(
        &socket,
        quick(ResolverConfig {
            ipc_idle: Duration::from_millis(50),
            cache_ttl: Duration::from_millis(100),
            ..ResolverConfig::default()
        }),
    );
    resolve_one(&r, ResolveClass::Resolve, "a@x");
    resolve_one(&r, ResolveClass::Resolve, "b@x");
    #[allow(clippy::disallowed_methods)] // the client's timers run in real time here
    std::thread::sleep(Duration::from_millis(150));
    // The cache expired and the connection idled out.
    resolve_one(&r, ResolveClass::Resolve, "b@x");
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "connect",
            "resolve a@x",
            "resolve b@x",
            "connect",
            "resolve b@x"
        ]
    );
}

#[test]
fn an_empty_address_is_never_answered_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("rewrite");
    let seen = scripted_server(&socket, vec![Step::Reply(0, "local"); 2]);
    let r = Resolver::new(&socket, quick(ResolverConfig::default()));
    resolve_one(&r, ResolveClass::Resolve, "");
    resolve_one(&r, ResolveClass::Resolve, "");
    assert_eq!(*seen.lock().unwrap(), ["connect", "resolve ", "resolve "]);
}
