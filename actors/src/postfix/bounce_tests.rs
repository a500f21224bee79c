//! Bounce/defer/trace/verify/flush request tests: the layouts and traces of
//! docs/postfix-ipc.md §8.2 and docs/postfix-interop.md §13.2, §13.4 in
//! both dialects, round trips, and a fake server.

use std::time::Duration;

use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

use super::*;
use crate::postfix::attr::encode_announcement;
use crate::postfix::attr::tests::{arb_dsn, arb_recipient, strace};

fn info(flags: u32, id: &str, sender: &str) -> BounceMessage {
    BounceMessage {
        flags,
        queue_name: b"active".to_vec(),
        queue_id: id.into(),
        sender: sender.into(),
        ..BounceMessage::default()
    }
}

/// docs/postfix-ipc.md §8.2 (delay warning), docs/postfix-interop.md §13.2
/// (bounce flush), §13.4 (trace flush).
fn spec_cases() -> Vec<(BounceRequest, &'static str)> {
    vec![
        (
            BounceRequest::Warn(info(0, "AA2ABB4035", "sender6@test.example.com")),
            r"nrequest\0002\0flags\0000\0queue_name\0active\0queue_id\0AA2ABB4035\0encoding\0\0smtputf8\0000\0sender\0sender6@test.example.com\0envelope_id\0\0ret_flags\0000\0\0",
        ),
        (
            BounceRequest::Flush(info(0, "8481CB4033", "sender@test.example.com")),
            r"nrequest\0001\0flags\0000\0queue_name\0active\0queue_id\08481CB4033\0encoding\0\0smtputf8\0000\0sender\0sender@test.example.com\0envelope_id\0\0ret_flags\0000\0\0",
        ),
        (
            BounceRequest::Trace(info(1024, "6590BB403B", "root@test.example.com")),
            r"nrequest\0005\0flags\0001024\0queue_name\0active\0queue_id\0006590BB403B\0encoding\0\0smtputf8\0000\0sender\0root@test.example.com\0envelope_id\0\0ret_flags\0000\0\0",
        ),
    ]
}

#[test]
fn requests_match_postfix_3_7_traces() {
    for (req, trace) in spec_cases() {
        let bytes = req.encode(Dialect::Smtputf8).unwrap();
        assert_eq!(bytes, strace(trace), "{req:?}");
        assert_eq!(
            BounceRequest::decode(&bytes, Dialect::Smtputf8, &Limits::default()),
            Ok(req)
        );
    }
}

#[test]
fn requests_in_3_10_dialect_rename_smtputf8() {
    // Postfix 3.10+ abounce.c/defer.c send MAIL_ATTR_SENDOPTS in the same slot.
    for (req, trace) in spec_cases() {
        let expected = trace.replace(r"\0smtputf8\0", r"\0sendopts\0");
        let bytes = req.encode(Dialect::Sendopts).unwrap();
        assert_eq!(bytes, strace(&expected));
        assert!(matches!(
            BounceRequest::decode(&bytes, Dialect::Smtputf8, &Limits::default()),
            Err(DecodeError::Unexpected { .. })
        ));
    }
}

#[test]
fn append_and_verp_layouts() {
    let rcpt = WireRecipient {
        address: b"u@x".to_vec(),
        offset: 7,
        ..WireRecipient::default()
    };
    let (dsn, replaced) = defer_dsn(WireDsn::simple("4.3.0", "mail transport unavailable"));
    assert!(!replaced);
    let req = BounceRequest::Append {
        flags: 0,
        queue_id: b"ID".to_vec(),
        recipient: rcpt,
        dsn,
    };
    assert_eq!(
        req.encode(Dialect::Sendopts).unwrap(),
        strace(
            r"nrequest\0000\0flags\0000\0queue_id\0ID\0original_recipient\0\0recipient\0u@x\0offset\0007\0dsn_orig_rcpt\0\0notify_flags\0000\0status\0004.3.0\0diag_type\0\0diag_text\0\0mta_type\0\0mta_mname\0\0action\0delayed\0reason\0mail transport unavailable\0\0"
        )
    );
    let verp = BounceRequest::Verp {
        info: info(0, "ID", "s@x"),
        delimiters: b"+=".to_vec(),
    };
    let bytes = verp.encode(Dialect::Smtputf8).unwrap();
    assert!(bytes.ends_with(b"ret_flags\x000\0verp_delimiters\0+=\0\0"));
    assert_eq!(
        BounceRequest::decode(&bytes, Dialect::Smtputf8, &Limits::default()),
        Ok(verp)
    );
}

#[test]
fn defer_dsn_replaces_non_4xx_codes() {
    for (code, replaced) in [
        ("4.4.1", false),
        ("5.1.1", true),
        ("", true),
        ("4.x", true),
        ("2.0.0", true),
    ] {
        let (d, r) = defer_dsn(WireDsn::simple(code, "why"));
        assert_eq!(r, replaced, "{code}");
        assert_eq!(
            d.status,
            if replaced {
                b"4.0.0".to_vec()
            } else {
                code.as_bytes().to_vec()
            }
        );
        assert_eq!(d.action, b"delayed");
    }
}

#[test]
fn verify_and_flush_requests() {
    let v = VerifyUpdate {
        address: b"a@b".to_vec(),
        recipient_status: 2,
        reason: b"no".to_vec(),
    };
    assert_eq!(
        v.encode().unwrap(),
        strace(r"request\0update\0address\0a@b\0recipient_status\0002\0reason\0no\0\0")
    );
    let f = FlushAdd {
        site: b"example.org".to_vec(),
        queue_id: b"ID".to_vec(),
    };
    assert_eq!(
        f.encode().unwrap(),
        strace(r"request\0add\0site\0example.org\0queue_id\0ID\0\0")
    );
}

#[test]
fn status_replies() {
    let l =
        |s: &str| crate::postfix::attr::decode_one_list(&strace(s), &Limits::default()).unwrap();
    assert_eq!(decode_status_reply(&l(r"status\0000\0\0")), Ok(0));
    assert_eq!(decode_status_reply(&l(r"status\0004294967295\0\0")), Ok(-1));
    assert_eq!(decode_status_reply(&l(r"extra\0x\0status\0004\0\0")), Ok(4));
    assert!(decode_status_reply(&l(r"\0")).is_err());
    assert!(decode_status_reply(&l(r"status\0-1\0\0")).is_err());
    assert_eq!(decode_status(&strace(r"status\0000\0\0")), Ok(0));
    assert_eq!(
        decode_status(&strace(r"status\0000\0")),
        Err(DecodeError::Truncated)
    );
}

fn arb_info() -> impl Strategy<Value = BounceMessage> {
    let text = || proptest::collection::vec(1u8..=255, 0..20);
    (
        any::<u32>(),
        text(),
        text(),
        text(),
        any::<u32>(),
        text(),
        text(),
        any::<u32>(),
    )
        .prop_map(
            |(flags, queue_name, queue_id, encoding, sendopts, sender, dsn_envid, dsn_ret)| {
                BounceMessage {
                    flags,
                    queue_name,
                    queue_id,
                    encoding,
                    sendopts,
                    sender,
                    dsn_envid,
                    dsn_ret,
                }
            },
        )
}

fn arb_bounce() -> impl Strategy<Value = BounceRequest> {
    prop_oneof![
        arb_info().prop_map(BounceRequest::Flush),
        arb_info().prop_map(BounceRequest::Warn),
        arb_info().prop_map(BounceRequest::Trace),
        (arb_info(), proptest::collection::vec(1u8..=255, 0..3))
            .prop_map(|(info, delimiters)| BounceRequest::Verp { info, delimiters }),
        (
            any::<u32>(),
            proptest::collection::vec(1u8..=255, 0..12),
            arb_recipient(),
            arb_dsn()
        )
            .prop_map(|(flags, queue_id, recipient, dsn)| BounceRequest::Append {
                flags,
                queue_id,
                recipient,
                dsn
            }),
    ]
}

proptest! {
    #[test]
    fn verify_and_flush_round_trip(address in proptest::collection::vec(1u8..=255, 0..30),
                                   status in any::<u32>(), reason in proptest::collection::vec(1u8..=255, 0..30)) {
        let one = |b: &[u8]| crate::postfix::attr::decode_one_list(b, &Limits::default()).unwrap();
        let v = VerifyUpdate { address: address.clone(), recipient_status: status, reason: reason.clone() };
        prop_assert_eq!(VerifyUpdate::from_list(&one(&v.encode().unwrap())), Ok(v));
        let f = FlushAdd { site: address, queue_id: reason };
        prop_assert_eq!(FlushAdd::from_list(&one(&f.encode().unwrap())), Ok(f));
    }

    #[test]
    fn bounce_requests_round_trip(r in arb_bounce(), sendopts in any::<bool>()) {
        let d = if sendopts { Dialect::Sendopts } else { Dialect::Smtputf8 };
        let bytes = r.encode(d).unwrap();
        prop_assert_eq!(BounceRequest::decode(&bytes, d, &Limits::default()), Ok(r));
        for cut in 0..bytes.len() {
            prop_assert!(BounceRequest::decode(&bytes[..cut], d, &Limits::default()).is_err());
        }
    }
}

#[tokio::test]
async fn send_talks_to_a_fake_bounce_daemon() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("private")).unwrap();
    let l = UnixListener::bind(dir.path().join("private/defer")).unwrap();
    let server = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        s.write_all(&encode_announcement(protocol::DELIVERY_STATUS))
            .await
            .unwrap();
        let mut got = vec![0u8; 4096];
        let n = s.read(&mut got).await.unwrap();
        got.truncate(n);
        s.write_all(b"status\x004294967295\0\0").await.unwrap();
        got
    });
    let (req, trace) = spec_cases().remove(0);
    let status = send(
        dir.path(),
        "defer",
        &req,
        Dialect::Smtputf8,
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(status, -1);
    assert_eq!(server.await.unwrap(), strace(trace));
    // No such service.
    assert!(matches!(
        send(
            dir.path(),
            "bounce",
            &req,
            Dialect::Smtputf8,
            Duration::from_secs(10)
        )
        .await,
        Err(IpcError::Connect(_))
    ));
}
