//! attr0 codec tests: byte-exact traces of docs/postfix-interop.md §13, round trips,
//! limits, garbage, and the async stream over a socket pair.

use std::time::Duration;

use proptest::prelude::*;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

use super::*;

/// Turns strace notation into bytes: C escapes, `\NNN` octal with at most
/// three digits (so `\0000` is NUL then `0`, `\08` is NUL then `8`).
pub(crate) fn strace(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        i += 1;
        match b[i] {
            b'0'..=b'7' => {
                let mut v = 0u32;
                let mut n = 0;
                while n < 3 && i < b.len() && (b'0'..=b'7').contains(&b[i]) {
                    v = v * 8 + u32::from(b[i] - b'0');
                    i += 1;
                    n += 1;
                }
                out.push(v as u8);
            }
            b'n' => {
                out.push(b'\n');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

#[test]
fn strace_notation_is_read_like_strace() {
    assert_eq!(strace(r"a\0000\0b\08"), b"a\x000\x00b\x008");
    assert_eq!(
        strace(r"status\0004294967295\0\0"),
        b"status\x004294967295\x00\x00"
    );
}

#[test]
fn announcement_bytes_match_spec() {
    assert_eq!(
        encode_announcement(protocol::TRIVIAL_REWRITE),
        strace(r"protocol\0trivial_rewrite_protocol\0\0")
    );
    decode_announcement(
        &strace(r"protocol\0delivery_request_protocol\0\0"),
        protocol::DELIVERY_REQUEST,
    )
    .unwrap();
}

#[test]
fn announcement_errors_are_typed() {
    let expected = protocol::DELIVERY_REQUEST;
    // EOF before anything is a failure, not "0 attributes read".
    assert_eq!(
        decode_announcement(b"", expected),
        Err(DecodeError::Truncated)
    );
    assert_eq!(
        decode_announcement(b"protocol\0deliv", expected),
        Err(DecodeError::Truncated)
    );
    assert!(matches!(
        decode_announcement(&encode_announcement("foo"), expected),
        Err(DecodeError::Mismatch { .. })
    ));
    assert!(matches!(
        decode_announcement(b"\0", expected),
        Err(DecodeError::Missing { .. })
    ));
    assert!(matches!(
        decode_announcement(b"proto\0x\0\0", expected),
        Err(DecodeError::Unexpected { .. })
    ));
    let mut extra = strace(r"protocol\0delivery_request_protocol\0x\0y\0\0");
    assert!(matches!(
        decode_announcement(&extra, expected),
        Err(DecodeError::Extra { .. })
    ));
    extra = encode_announcement(expected);
    extra.push(b'z');
    assert!(matches!(
        decode_announcement(&extra, expected),
        Err(DecodeError::TrailingData { extra: 1 })
    ));
}

#[test]
fn numbers_are_strict_decimal() {
    let list =
        |v: &str| decode_one_list(format!("n\0{v}\0\0").as_bytes(), &Limits::default()).unwrap();
    assert_eq!(list("4294967295").scan().int("n"), Ok(u32::MAX));
    assert_eq!(list("0").scan().int("n"), Ok(0));
    assert_eq!(list("18446744073709551615").scan().long("n"), Ok(u64::MAX));
    for bad in ["", "-1", "+1", " 1", "1 ", "4294967296", "0x10", "1a"] {
        assert!(
            matches!(
                list(bad).scan().int("n"),
                Err(DecodeError::BadNumber { .. })
            ),
            "{bad:?}"
        );
    }
    assert!(matches!(
        list("18446744073709551616").scan().long("n"),
        Err(DecodeError::BadNumber { .. })
    ));
}

#[test]
fn strict_and_lenient_scans_differ_only_on_extras() {
    let l = decode_one_list(b"a\x001\0skip\0x\0b\x002\0\0", &Limits::default()).unwrap();
    let mut s = l.scan();
    assert_eq!(s.int("a"), Ok(1));
    assert!(matches!(s.int("b"), Err(DecodeError::Unexpected { .. })));
    let mut s = l.scan_lenient();
    assert_eq!(s.int("a"), Ok(1));
    assert_eq!(s.int("b"), Ok(2));
    s.finish().unwrap();
    let mut s = l.scan_lenient();
    assert!(matches!(s.int("zzz"), Err(DecodeError::Missing { .. })));
}

#[test]
fn take_list_keeps_what_follows_and_leaves_a_short_buffer_alone() {
    let mut w = AttrWriter::new();
    w.str("status", "").int("n", 7).end().str("next", "x");
    let mut buf = w.finish().unwrap();
    let first = take_list(&mut buf, &Limits::default()).unwrap();
    let mut s = first.scan();
    assert_eq!(s.str("status").unwrap(), b"");
    assert_eq!(s.int("n").unwrap(), 7);
    s.finish().unwrap();
    // The next list is incomplete: an error, and the bytes stay for later.
    assert_eq!(buf, b"next\0x\0");
    assert_eq!(
        take_list(&mut buf, &Limits::default()),
        Err(DecodeError::Truncated)
    );
    assert_eq!(buf, b"next\0x\0");
    buf.push(0);
    let second = take_list(&mut buf, &Limits::default()).unwrap();
    assert_eq!(second.scan().str("next").unwrap(), b"x");
    assert!(buf.is_empty());
    // Same list through decode_list: same value.
    let mut w = AttrWriter::new();
    w.str("next", "x").end();
    let bytes = w.finish().unwrap();
    assert_eq!(decode_one_list(&bytes, &Limits::default()).unwrap(), second);
}

#[test]
fn tables_round_trip_and_reject_imbalance() {
    let mut w = AttrWriter::new();
    w.str("a", "1")
        .table(&[("k1", "v1"), ("k2", "")])
        .str("b", "2")
        .end();
    let bytes = w.finish().unwrap();
    assert_eq!(bytes, b"a\x001\0{\0k1\0v1\0k2\0\0}\0b\x002\0\0");
    let l = decode_one_list(&bytes, &Limits::default()).unwrap();
    let mut s = l.scan();
    s.str("a").unwrap();
    assert_eq!(
        s.table().unwrap(),
        vec![(b"k1".to_vec(), b"v1".to_vec()), (b"k2".to_vec(), vec![])]
    );
    s.str("b").unwrap();
    s.finish().unwrap();
    for bad in [&b"}\0\0"[..], b"{\0{\0}\0}\0\0", b"{\0k\0v\0\0"] {
        assert_eq!(
            decode_list(bad, &Limits::default()).map(|_| ()),
            Err(DecodeError::BadTable),
            "{bad:?}"
        );
    }
}

#[test]
fn nul_in_value_is_an_encode_error() {
    let mut w = AttrWriter::new();
    w.str("a", b"x\0y").end();
    assert_eq!(
        w.finish(),
        Err(EncodeError::NulInValue { name: "a".into() })
    );
}

#[test]
fn limits_give_typed_errors() {
    let limits = Limits {
        max_name_len: 4,
        max_value_len: 8,
        max_attrs: 3,
        max_list_len: 40,
    };
    assert_eq!(
        decode_list(b"abcde\0", &limits).map(|_| ()),
        Err(DecodeError::NameTooLong { limit: 4 })
    );
    // A long name still arriving is "too long" as soon as the limit passes,
    // without waiting for (or buffering) the rest.
    assert_eq!(
        decode_list(b"abcdefgh", &limits).map(|_| ()),
        Err(DecodeError::NameTooLong { limit: 4 })
    );
    assert_eq!(
        decode_list(b"abcd", &limits).map(|_| ()),
        Err(DecodeError::Truncated)
    );
    assert!(matches!(
        decode_list(b"a\x00123456789\0\0", &limits),
        Err(DecodeError::ValueTooLong { .. })
    ));
    assert_eq!(
        decode_list(b"a\0\0b\0\0c\0\0d\0\0\0", &limits).map(|_| ()),
        Err(DecodeError::TooManyAttributes { limit: 3 })
    );
    let limits = Limits {
        max_list_len: 10,
        ..limits
    };
    assert_eq!(
        decode_list(b"a\x001234\0b\x001234\0\0", &limits).map(|_| ()),
        Err(DecodeError::ListTooLong { limit: 10 })
    );
}

#[test]
fn msg_stats_from_spec_trace() {
    // The `time` value of the delivery request in docs/postfix-interop.md §13.1.
    let b64 = "/BULawAAAABj5QoAAAAAAPwVC2sAAAAA6FkLAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==";
    assert_eq!(b64.len(), 120);
    let stats = MsgStats::from_bytes(&base64::decode(b64.as_bytes()).unwrap()).unwrap();
    assert_eq!(
        stats.incoming_arrival,
        Timeval {
            sec: 1_795_888_636,
            usec: 714_083
        }
    );
    assert_eq!(
        stats.active_arrival,
        Timeval {
            sec: 1_795_888_636,
            usec: 743_912
        }
    );
    assert_eq!(stats.agent_handoff, Timeval::default());
    assert_eq!(stats.reuse_count, 0);
    assert_eq!(base64::encode(&stats.to_bytes()), b64);
    // Any other payload size is refused, as msg_stats_scan does.
    let short = format!("time\0{}\0\0", base64::encode(&[0u8; 80]));
    let l = decode_one_list(short.as_bytes(), &Limits::default()).unwrap();
    assert!(matches!(
        l.scan().func::<MsgStats>(),
        Err(DecodeError::BadSize { found: 80, .. })
    ));
}

#[test]
fn fuzz_decode_survives_spec_traces_and_junk() {
    fuzz_decode(b"");
    fuzz_decode(&strace(r"status\0004.4.1\0diag_type\0\0\0"));
    fuzz_decode(&[0xff; 300]);
    fuzz_decode(b"{\0{\0");
}

fn bytes_no_nul(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(1u8..=255, 0..max)
}

fn name() -> impl Strategy<Value = String> {
    "[a-z_]{1,20}"
}

#[derive(Debug, Clone)]
enum Item {
    Str(String, Vec<u8>),
    Int(String, u32),
    Long(String, u64),
    Data(String, Vec<u8>),
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        (name(), bytes_no_nul(40)).prop_map(|(n, v)| Item::Str(n, v)),
        (name(), any::<u32>()).prop_map(|(n, v)| Item::Int(n, v)),
        (name(), any::<u64>()).prop_map(|(n, v)| Item::Long(n, v)),
        (name(), proptest::collection::vec(any::<u8>(), 0..40)).prop_map(|(n, v)| Item::Data(n, v)),
    ]
}

pub(crate) fn arb_recipient() -> impl Strategy<Value = WireRecipient> {
    (
        bytes_no_nul(30),
        bytes_no_nul(30),
        any::<u64>(),
        bytes_no_nul(30),
        any::<u32>(),
    )
        .prop_map(
            |(original, address, offset, dsn_orcpt, dsn_notify)| WireRecipient {
                original,
                address,
                offset,
                dsn_orcpt,
                dsn_notify,
            },
        )
}

pub(crate) fn arb_dsn() -> impl Strategy<Value = WireDsn> {
    proptest::collection::vec(bytes_no_nul(20), 7).prop_map(|f| WireDsn {
        status: f[0].clone(),
        diag_type: f[1].clone(),
        diag_text: f[2].clone(),
        mta_type: f[3].clone(),
        mta_name: f[4].clone(),
        action: f[5].clone(),
        reason: f[6].clone(),
    })
}

pub(crate) fn arb_stats() -> impl Strategy<Value = MsgStats> {
    (proptest::collection::vec(any::<i64>(), 10), any::<i32>()).prop_map(|(v, reuse_count)| {
        let tv = |i: usize| Timeval {
            sec: v[2 * i],
            usec: v[2 * i + 1],
        };
        MsgStats {
            incoming_arrival: tv(0),
            active_arrival: tv(1),
            agent_handoff: tv(2),
            conn_setup_done: tv(3),
            deliver_done: tv(4),
            reuse_count,
        }
    })
}

/// Encodes a structure inline in a list of its own, decodes it back.
fn round_trip<T: AttrFunc + Clone>(v: &T) -> Result<T, DecodeError> {
    let mut w = AttrWriter::new();
    w.func(v).end();
    let bytes = w.finish().expect("no NUL");
    let list = decode_one_list(&bytes, &Limits::default())?;
    let mut s = list.scan();
    let back = s.func()?;
    s.finish()?;
    Ok(back)
}

proptest! {
    #[test]
    fn any_list_round_trips(items in proptest::collection::vec(item(), 0..30)) {
        let mut w = AttrWriter::new();
        for it in &items {
            match it {
                Item::Str(n, v) => w.str(n, v),
                Item::Int(n, v) => w.int(n, *v),
                Item::Long(n, v) => w.long(n, *v),
                Item::Data(n, v) => w.data(n, v),
            };
        }
        w.end();
        let bytes = w.finish().unwrap();
        let list = decode_one_list(&bytes, &Limits::default()).unwrap();
        let mut s = list.scan();
        for it in &items {
            match it {
                Item::Str(n, v) => prop_assert_eq!(&s.str(n).unwrap(), v),
                Item::Int(n, v) => prop_assert_eq!(s.int(n).unwrap(), *v),
                Item::Long(n, v) => prop_assert_eq!(s.long(n).unwrap(), *v),
                Item::Data(n, v) => prop_assert_eq!(&s.data(n).unwrap(), v),
            }
        }
        prop_assert!(s.finish().is_ok());
        // Every proper prefix is truncated, never misread as a shorter list.
        for cut in 0..bytes.len() {
            prop_assert_eq!(decode_list(&bytes[..cut], &Limits::default()).map(|_| ()), Err(DecodeError::Truncated));
        }
    }

    #[test]
    fn recipient_round_trips(r in arb_recipient()) {
        prop_assert_eq!(round_trip(&r), Ok(r));
    }

    #[test]
    fn dsn_round_trips(d in arb_dsn()) {
        prop_assert_eq!(round_trip(&d), Ok(d));
    }

    #[test]
    fn msg_stats_round_trip(m in arb_stats()) {
        prop_assert_eq!(round_trip(&m), Ok(m));
    }

    #[test]
    fn garbage_gives_typed_errors(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        fuzz_decode(&data);
        let small = Limits { max_name_len: 8, max_value_len: 16, max_attrs: 4, max_list_len: 64 };
        // Whatever comes back, it must respect the limits.
        if let Ok((list, used)) = decode_list(&data, &small) {
            prop_assert!(used <= data.len());
            prop_assert!(list.len() <= 4);
        }
    }

    #[test]
    fn corrupted_structures_never_panic(r in arb_recipient(), pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut w = AttrWriter::new();
        w.func(&r).end();
        let mut bytes = w.finish().unwrap();
        let i = pos.index(bytes.len());
        bytes[i] = byte;
        fuzz_decode(&bytes);
        if let Ok(list) = decode_one_list(&bytes, &Limits::default()) {
            let _ = list.scan().func::<WireRecipient>();
        }
    }
}

fn pair(timeout: Duration) -> (AttrStream, UnixStream) {
    let (a, b) = UnixStream::pair().unwrap();
    (AttrStream::new(a, Limits::default(), timeout), b)
}

#[tokio::test]
async fn stream_reassembles_split_lists_and_keeps_the_rest() {
    let (mut s, mut peer) = pair(Duration::from_secs(5));
    let bytes = strace(r"protocol\0delivery_request_protocol\0\0status\0000\0\0");
    let writer = tokio::spawn(async move {
        for chunk in bytes.chunks(3) {
            peer.write_all(chunk).await.unwrap();
            tokio::task::yield_now().await;
        }
        peer
    });
    s.read_announcement(protocol::DELIVERY_REQUEST)
        .await
        .unwrap();
    let list = s.read_list().await.unwrap();
    assert_eq!(list.scan().int("status"), Ok(0));
    drop(writer.await.unwrap());
    assert!(matches!(s.read_list().await, Err(IpcError::Eof)));
}

#[tokio::test]
async fn stream_eof_and_wrong_protocol_are_errors() {
    let (mut s, peer) = pair(Duration::from_secs(5));
    drop(peer);
    assert!(matches!(
        s.read_announcement(protocol::DELIVERY_REQUEST).await,
        Err(IpcError::Eof)
    ));

    let (mut s, mut peer) = pair(Duration::from_secs(5));
    peer.write_all(&encode_announcement("cleanup_protocol"))
        .await
        .unwrap();
    assert!(matches!(
        s.read_announcement(protocol::DELIVERY_REQUEST).await,
        Err(IpcError::Decode(DecodeError::Mismatch { .. }))
    ));
}

#[tokio::test(start_paused = true)]
async fn stream_read_times_out() {
    let (mut s, _peer) = pair(Duration::from_secs(60));
    assert!(matches!(
        s.read_list().await,
        Err(IpcError::Timeout { op: "read" })
    ));
}

#[tokio::test]
async fn stream_refuses_endless_values() {
    let (a, mut peer) = UnixStream::pair().unwrap();
    let limits = Limits {
        max_value_len: 1000,
        ..Limits::default()
    };
    let mut s = AttrStream::new(a, limits, Duration::from_secs(5));
    tokio::spawn(async move {
        let _ = peer.write_all(b"name\0").await;
        let junk = vec![b'x'; 4096];
        for _ in 0..100 {
            if peer.write_all(&junk).await.is_err() {
                break;
            }
        }
    });
    assert!(matches!(
        s.read_list().await,
        Err(IpcError::Decode(DecodeError::ValueTooLong { .. }))
    ));
}
