//! Delivery agent protocol tests: the trace of docs/postfix-interop.md
//! §13.1 byte for byte in both dialects, reply parsing, round trips and a
//! fake agent on a real socket.

use std::time::Duration;

use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

use super::*;
use crate::postfix::attr::encode_announcement;
use crate::postfix::attr::tests::{arb_dsn, arb_recipient, arb_stats, strace};
use crate::postfix::attr::{Limits, Timeval};
use crate::postfix::queue_file::FileEnvelope;

/// The delivery request of docs/postfix-interop.md §13.1 (stock oqmgr, Postfix 3.7.11).
const TRACE_13_1: &str = r"flags\0003\0queue_name\0active\0queue_id\0B147AB402B\0offset\000292\0size\000283\0nexthop\0[127.0.0.1]:2526\0encoding\0\0smtputf8\0000\0sender\0sender@test.example.com\0envelope_id\0\0ret_flags\0000\0time\0/BULawAAAABj5QoAAAAAAPwVC2sAAAAA6FkLAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\0log_client_name\0\0log_client_address\0\0log_client_port\0\0log_protocol_name\0\0log_helo_name\0\0sasl_method\0\0sasl_username\0\0sasl_sender\0\0log_ident\0\0rewrite_context\0local\0recipient_count\0001\0\0original_recipient\0user@remote.example.org\0recipient\0user@remote.example.org\0offset\000265\0dsn_orig_rcpt\0rfc822;user@remote.example.org\0notify_flags\0000\0\0";

fn request_13_1() -> DeliveryRequest {
    DeliveryRequest {
        flags: flags::DEFAULT,
        queue_name: b"active".to_vec(),
        queue_id: b"B147AB402B".to_vec(),
        data_offset: 292,
        data_size: 283,
        nexthop: b"[127.0.0.1]:2526".to_vec(),
        sender: b"sender@test.example.com".to_vec(),
        stats: MsgStats {
            incoming_arrival: Timeval {
                sec: 1_795_888_636,
                usec: 714_083,
            },
            active_arrival: Timeval {
                sec: 1_795_888_636,
                usec: 743_912,
            },
            ..MsgStats::default()
        },
        rewrite_context: b"local".to_vec(),
        recipients: vec![WireRecipient {
            original: b"user@remote.example.org".to_vec(),
            address: b"user@remote.example.org".to_vec(),
            offset: 265,
            dsn_orcpt: b"rfc822;user@remote.example.org".to_vec(),
            dsn_notify: 0,
        }],
        ..DeliveryRequest::default()
    }
}

#[test]
fn request_matches_postfix_3_7_trace() {
    let bytes = request_13_1().encode(Dialect::Smtputf8).unwrap();
    assert_eq!(bytes, strace(TRACE_13_1));
    let back = decode_delivery_request(&bytes, Dialect::Smtputf8, &Limits::default()).unwrap();
    assert_eq!(back, request_13_1());
}

#[test]
fn request_in_3_10_dialect_renames_only_attribute_8() {
    // Postfix 3.10+ (mail_proto.h MAIL_ATTR_SENDOPTS, qmgr_deliver.c):
    // same position, same value, new name.
    let expected = TRACE_13_1.replace(r"\0smtputf8\0", r"\0sendopts\0");
    assert_ne!(expected, TRACE_13_1);
    let bytes = request_13_1().encode(Dialect::Sendopts).unwrap();
    assert_eq!(bytes, strace(&expected));
    // A strict reader of one release rejects the other's name.
    assert_eq!(
        decode_delivery_request(&bytes, Dialect::Smtputf8, &Limits::default()),
        Err(DecodeError::Unexpected {
            found: "sendopts".into(),
            expected: "smtputf8".into()
        })
    );
    assert_eq!(
        decode_delivery_request(&strace(TRACE_13_1), Dialect::Sendopts, &Limits::default()),
        Err(DecodeError::Unexpected {
            found: "smtputf8".into(),
            expected: "sendopts".into()
        })
    );
}

#[test]
fn request_without_recipients_is_refused() {
    let mut r = request_13_1();
    r.recipients.clear();
    assert!(matches!(
        r.encode(Dialect::Smtputf8),
        Err(EncodeError::Invalid(_))
    ));
    let head = TRACE_13_1.split("original_recipient").next().unwrap();
    let zero = head.replace(r"recipient_count\0001", r"recipient_count\0000");
    assert!(matches!(
        decode_delivery_request(&strace(&zero), Dialect::Smtputf8, &Limits::default()),
        Err(DecodeError::Invalid(_))
    ));
    // A count of 1 with the recipient list missing is a truncated request.
    assert_eq!(
        decode_delivery_request(&strace(head), Dialect::Smtputf8, &Limits::default()),
        Err(DecodeError::Truncated)
    );
}

#[test]
fn replies_from_spec_traces() {
    let ok = decode_delivery_reply(&strace(
        r"status\0\0diag_type\0\0diag_text\0\0mta_type\0\0mta_mname\0\0action\0\0reason\0\0status\0000\0\0",
    ))
    .unwrap();
    assert_eq!(
        ok,
        DeliveryReply {
            hop: WireDsn::default(),
            status: 0
        }
    );
    assert_eq!(
        ok.encode().unwrap(),
        strace(
            r"status\0\0diag_type\0\0diag_text\0\0mta_type\0\0mta_mname\0\0action\0\0reason\0\0status\0000\0\0"
        )
    );
    let dead = decode_delivery_reply(&strace(r"status\0004.4.1\0diag_type\0\0diag_text\0\0mta_type\0\0mta_mname\0\0action\0\0reason\0connect to 127.0.0.1[127.0.0.1]:2526: Connection refused\0status\0004294967295\0\0")).unwrap();
    assert_eq!(dead.status, STATUS_DEFER);
    assert_eq!(dead.hop.status, b"4.4.1");
    // Missing final status, or the integer status where the DSN status is
    // due: malformed.
    assert!(decode_delivery_reply(&strace(
        r"status\0\0diag_type\0\0diag_text\0\0mta_type\0\0mta_mname\0\0action\0\0reason\0\0\0"
    ))
    .is_err());
    assert!(decode_delivery_reply(&strace(r"status\0000\0\0")).is_err());
}

fn rcpt(orig: &str, addr: &str) -> WireRecipient {
    WireRecipient {
        original: orig.into(),
        address: addr.into(),
        ..WireRecipient::default()
    }
}

#[test]
fn verp_sender_follows_verp_sender_c() {
    let d = *b"+=";
    assert_eq!(
        verp_sender(d, b"owner@list.org", &rcpt("", "user@dom.com")),
        b"owner+user=dom.com@list.org"
    );
    // The original recipient wins over the rewritten one.
    assert_eq!(
        verp_sender(d, b"owner@list.org", &rcpt("alias@a.org", "user@dom.com")),
        b"owner+alias=a.org@list.org"
    );
    assert_eq!(verp_sender(d, b"owner", &rcpt("", "user")), b"owner+user");
    assert_eq!(verp_sender(d, b"owner@", &rcpt("", "user@")), b"owner+user");
    assert_eq!(verp_sender(d, b"a@b@c", &rcpt("", "x@y@z")), b"a@b+x@y=z@c");
}

#[test]
fn sendopts_gain_recipient_bits_for_utf8_recipients() {
    let ascii = rcpt("", "a@b");
    let utf8 = rcpt("", "j\u{f6}rg@b");
    let latin1 = WireRecipient {
        address: b"j\xf6rg@b".to_vec(),
        ..WireRecipient::default()
    };
    assert_eq!(
        request_sendopts(1, std::slice::from_ref(&ascii), true, true),
        1
    );
    assert_eq!(
        request_sendopts(0, &[ascii.clone(), utf8.clone()], true, false),
        sendopts::RECIPIENT
    );
    assert_eq!(
        request_sendopts(0, std::slice::from_ref(&utf8), true, true),
        sendopts::RECIPIENT | sendopts::SENDER
    );
    assert_eq!(request_sendopts(0, &[utf8], false, true), 0);
    assert_eq!(request_sendopts(2, &[latin1], true, true), 2);
}

fn arb_request() -> impl Strategy<Value = DeliveryRequest> {
    let text = || proptest::collection::vec(1u8..=255, 0..20);
    (
        (
            any::<u32>(),
            text(),
            text(),
            any::<u64>(),
            any::<u64>(),
            text(),
            text(),
            any::<u32>(),
        ),
        (
            text(),
            text(),
            any::<u32>(),
            arb_stats(),
            proptest::collection::vec(text(), 10),
        ),
        proptest::collection::vec(arb_recipient(), 1..5),
    )
        .prop_map(
            |((f, qn, qi, off, size, nh, enc, so), (snd, env, ret, stats, logs), recipients)| {
                DeliveryRequest {
                    flags: f,
                    queue_name: qn,
                    queue_id: qi,
                    data_offset: off,
                    data_size: size,
                    nexthop: nh,
                    encoding: enc,
                    sendopts: so,
                    sender: snd,
                    dsn_envid: env,
                    dsn_ret: ret,
                    stats,
                    client_name: logs[0].clone(),
                    client_addr: logs[1].clone(),
                    client_port: logs[2].clone(),
                    client_proto: logs[3].clone(),
                    client_helo: logs[4].clone(),
                    sasl_method: logs[5].clone(),
                    sasl_username: logs[6].clone(),
                    sasl_sender: logs[7].clone(),
                    log_ident: logs[8].clone(),
                    rewrite_context: logs[9].clone(),
                    recipients,
                }
            },
        )
}

proptest! {
    #[test]
    fn requests_round_trip(r in arb_request(), sendopts in any::<bool>()) {
        let d = if sendopts { Dialect::Sendopts } else { Dialect::Smtputf8 };
        let bytes = r.encode(d).unwrap();
        prop_assert_eq!(decode_delivery_request(&bytes, d, &Limits::default()), Ok(r));
        for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
            prop_assert!(decode_delivery_request(&bytes[..cut], d, &Limits::default()).is_err());
        }
    }

    #[test]
    fn replies_round_trip(hop in arb_dsn(), status in any::<u32>()) {
        let r = DeliveryReply { hop, status };
        prop_assert_eq!(decode_delivery_reply(&r.encode().unwrap()), Ok(r));
    }
}

/// A one-shot fake agent: announces, reads the request, then does `act`.
async fn fake_agent(
    listener: UnixListener,
    announcement: Vec<u8>,
    reply: Option<Vec<u8>>,
) -> Vec<u8> {
    let (mut s, _) = listener.accept().await.unwrap();
    s.write_all(&announcement).await.unwrap();
    let mut got = vec![0u8; 65536];
    let n = s.read(&mut got).await.unwrap();
    got.truncate(n);
    if let Some(r) = reply {
        s.write_all(&r).await.unwrap();
        // Like a real agent: wait for qmgr's close.
        let mut b = [0u8; 1];
        assert_eq!(
            s.read(&mut b).await.unwrap(),
            0,
            "qmgr must close after the reply"
        );
    }
    got
}

#[tokio::test]
async fn deliver_against_fake_agents() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("smtp");
    let timeout = Duration::from_secs(10);

    // Success: the agent receives exactly the encoded request.
    let l = UnixListener::bind(&path).unwrap();
    let ok = DeliveryReply::default().encode().unwrap();
    let agent = tokio::spawn(fake_agent(
        l,
        encode_announcement(protocol::DELIVERY_REQUEST),
        Some(ok),
    ));
    let r = deliver(&path, &request_13_1(), Dialect::Smtputf8, timeout).await;
    assert_eq!(r.unwrap(), DeliveryReply::default());
    assert_eq!(agent.await.unwrap(), strace(TRACE_13_1));
    std::fs::remove_file(&path).unwrap();

    // The agent hangs up after reading the request: a crash.
    let l = UnixListener::bind(&path).unwrap();
    let agent = tokio::spawn(fake_agent(
        l,
        encode_announcement(protocol::DELIVERY_REQUEST),
        None,
    ));
    let r = deliver(&path, &request_13_1(), Dialect::Smtputf8, timeout).await;
    agent.await.unwrap();
    assert!(
        matches!(r, Err(DeliveryError::Crash(IpcError::Eof))),
        "{r:?}"
    );
    std::fs::remove_file(&path).unwrap();

    // Wrong announcement: the transport is unusable.
    let l = UnixListener::bind(&path).unwrap();
    let agent = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        s.write_all(&encode_announcement("cleanup_protocol"))
            .await
            .unwrap();
    });
    let r = deliver(&path, &request_13_1(), Dialect::Smtputf8, timeout).await;
    agent.await.unwrap();
    assert!(
        matches!(r, Err(DeliveryError::Transport(IpcError::Decode(_)))),
        "{r:?}"
    );
    std::fs::remove_file(&path).unwrap();

    // No socket at all.
    let r = deliver(&path, &request_13_1(), Dialect::Smtputf8, timeout).await;
    assert!(
        matches!(r, Err(DeliveryError::Transport(IpcError::Connect(_)))),
        "{r:?}"
    );
}

#[test]
fn for_entry_follows_qmgr_deliver_send_request() {
    let env = FileEnvelope {
        data_offset: 292,
        cont_length: 283,
        smtputf8: 1,
        arrival_sec: 10,
        arrival_usec: 20,
        sender: Some(b"owner@list.org".to_vec()),
        rewrite_context: b"local".to_vec(),
        trace_flags: (flags::RECORD | flags::MTA_VRFY) as i32,
        verp_delims: Some(b"+=".to_vec()),
        ..FileEnvelope::default()
    };
    let ctx = EntryContext {
        queue_id: b"QID",
        nexthop: b"list.org",
        conn_flags: flags::CONN_LOAD | flags::CONN_STORE,
        active_arrival: Timeval { sec: 11, usec: 0 },
        smtputf8_enable: true,
    };
    let r = DeliveryRequest::for_entry(&env, &ctx, vec![rcpt("", "j\u{f6}rg@dom.com")]);
    assert_eq!(
        r.flags,
        flags::RECORD | flags::MTA_VRFY | flags::CONN_LOAD | flags::CONN_STORE | flags::DEFAULT
    );
    assert_eq!(r.sender, "owner+j\u{f6}rg=dom.com@list.org".as_bytes());
    assert_eq!(r.sendopts, 1 | sendopts::RECIPIENT | sendopts::SENDER);
    assert_eq!((r.data_offset, r.data_size), (292, 283));
    assert_eq!(r.stats.incoming_arrival, Timeval { sec: 10, usec: 20 });
    assert_eq!(r.stats.active_arrival, Timeval { sec: 11, usec: 0 });
    assert_eq!(r.queue_name, b"active");
    // An `I` record: BOUNCE alone instead of the default; no VERP, plain sender.
    let env = FileEnvelope {
        inspect_xport: Some(b"x".to_vec()),
        verp_delims: None,
        trace_flags: 0,
        ..env
    };
    let r = DeliveryRequest::for_entry(
        &env,
        &EntryContext {
            conn_flags: 0,
            ..ctx
        },
        vec![rcpt("", "a@b")],
    );
    assert_eq!(r.flags, flags::BOUNCE);
    assert_eq!(r.sender, b"owner@list.org");
    assert_eq!(r.sendopts, 1);
}

#[test]
fn encode_for_entry_writes_what_for_entry_encodes() {
    let base = FileEnvelope {
        data_offset: 292,
        cont_length: 283,
        smtputf8: 1,
        arrival_sec: 10,
        arrival_usec: 20,
        sender: Some(b"owner@list.org".to_vec()),
        encoding: b"8BIT".to_vec(),
        dsn_envid: b"env-1".to_vec(),
        dsn_ret: 2,
        client_name: b"client.example".to_vec(),
        client_addr: b"192.0.2.1".to_vec(),
        client_port: b"25025".to_vec(),
        client_proto: b"ESMTP".to_vec(),
        client_helo: b"helo.example".to_vec(),
        sasl_method: b"PLAIN".to_vec(),
        sasl_username: b"user".to_vec(),
        log_ident: b"QID".to_vec(),
        rewrite_context: b"local".to_vec(),
        trace_flags: (flags::RECORD | flags::MTA_VRFY) as i32,
        verp_delims: Some(b"+=".to_vec()),
        ..FileEnvelope::default()
    };
    let ctx = EntryContext {
        queue_id: b"QID",
        nexthop: b"list.org",
        conn_flags: flags::CONN_LOAD,
        active_arrival: Timeval { sec: 11, usec: 5 },
        smtputf8_enable: true,
    };
    let plain = FileEnvelope {
        verp_delims: None,
        inspect_xport: Some(b"x".to_vec()),
        sender: None,
        ..base.clone()
    };
    let recipients = vec![
        rcpt("orig@x", "j\u{f6}rg@dom.com"),
        rcpt("", "second@dom.com"),
    ];
    for env in [&base, &plain] {
        for dialect in [
            Dialect::from_mail_version("3.7.11").unwrap(),
            Dialect::from_mail_version("3.9.0").unwrap(),
        ] {
            let owned = DeliveryRequest::for_entry(env, &ctx, recipients.clone()).encode(dialect);
            let direct = DeliveryRequest::encode_for_entry(env, &ctx, &recipients, dialect);
            assert_eq!(owned.unwrap(), direct.unwrap());
        }
    }
    // No recipients: both refuse.
    assert!(DeliveryRequest::encode_for_entry(
        &base,
        &ctx,
        &[],
        Dialect::from_mail_version("3.7.11").unwrap()
    )
    .is_err());
}
