//! envelope - the message-level envelope fields an admitted message keeps
//! in core, packed (Postfix: the envelope members of `QMGR_MESSAGE` in
//! `postfix/src/oqmgr/qmgr.h`, which are `char *` pointers, all empty
//! ones sharing one static empty string).
//!
//! A [`queue_file::FileEnvelope`] is the reader's working form: 17 byte strings
//! at 24 bytes each plus the reading state (recipient batch, warnings,
//! pointer guard), over 600 bytes before any text, and one heap block per
//! non-empty string (client name, address, port, protocol, HELO,
//! rewrite context ...). Kept as is for every message in `active/`, it
//! made our queue manager use 60 % more memory per in-core message than
//! oqmgr (the benchmark's `memory` workload). [`HeldEnvelope`] keeps:
//! - as plain fields, with the `FileEnvelope`'s names and types, what the
//!   completion worker, the custom transports and the store read on their
//!   own (sender, encoding, DSN, VERP, trace flags, offsets, times);
//! - packed in one boxed byte string, the rest (content filter, inspector,
//!   redirect, client and SASL attributes, log ident, rewrite context,
//!   and five numbers), which only a delivery request needs:
//!   [`HeldEnvelope::envelope`] rebuilds the full `FileEnvelope` for it.
//!
//! [`queue_file::FileEnvelope`]: crate::postfix::queue_file::FileEnvelope
//!
//! # Invariants
//! - `HeldEnvelope::from(env).envelope()` equals `env` with the reading
//!   state left out (`recipients`, `warnings`, `pointers`, `walked`, `rcpt_offset`,
//!   `seen_all_non_rcpt`, `opened_log` at their defaults): the shared copy
//!   is message-level only, as the `FileEnvelope` stored before it was.
//! - The packed string is written and read only here. Its layout: the
//!   [`PACKED_FIELDS`] byte strings in the order of `HeldEnvelope::from`,
//!   each a LEB128 varint tag (0 for `None`, `len + 1` before `len` bytes
//!   otherwise), then `rcpt_count`, `cont_length`, `create_time`,
//!   `warn_time` and `single_rcpt` as zigzag LEB128 varints. It is empty
//!   (no allocation) when there is nothing to keep.

use crate::postfix::queue_file::FileEnvelope;

/// Where the content filter is in the packed order (the order of the
/// array in `HeldEnvelope::from`: filter, inspector, redirect, then the
/// client, SASL, log ident and rewrite context strings).
const FILTER_XPORT: usize = 0;
/// Where the redirect address is in the packed order.
const REDIRECT_ADDR: usize = 2;
/// The first [`OPTIONAL`] packed strings are `Option`s (an empty value is
/// not an absent one); the rest are plain byte strings.
const OPTIONAL: usize = 3;
/// Number of packed byte strings.
const PACKED_FIELDS: usize = 13;

/// An admitted message's envelope, message-level fields only, packed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeldEnvelope {
    /// `C` field 1: content bytes from `data_offset` to the `X` record.
    pub data_size: i64,
    /// `C` field 2: offset of the first content record.
    pub data_offset: i64,
    /// `C` field 4 (MIXED, DSN NOTIFY summary bits).
    pub read_flags: i32,
    /// `C` field 6: SMTPUTF8 flags.
    pub smtputf8: i32,
    /// `T` seconds.
    pub arrival_sec: i64,
    /// `T` microseconds.
    pub arrival_usec: i64,
    /// Envelope sender; `None` if no `S` record was seen.
    pub sender: Option<Vec<u8>>,
    /// DSN ENVID, empty if none.
    pub dsn_envid: Vec<u8>,
    /// DSN RET, 0 if none.
    pub dsn_ret: i32,
    /// `encoding` attribute.
    pub encoding: Vec<u8>,
    /// Trace flags.
    pub trace_flags: i32,
    /// Offset of the `A trace_flags=1024` record, or 0.
    pub trace_flags_offset: u64,
    /// Offset of the first `W` record, or 0.
    pub warn_offset: u64,
    /// VERP delimiters, if VERP was accepted.
    pub verp_delims: Option<Vec<u8>>,
    /// The other fields, packed (see the module invariants).
    packed: Box<[u8]>,
}

/// The packed part, read back.
#[derive(Debug, Default)]
struct Unpacked<'a> {
    /// The byte strings, in packed order.
    fields: [Option<&'a [u8]>; PACKED_FIELDS],
    /// `C` field 3 as the admission read saw it.
    rcpt_count: i32,
    /// `C` field 5: message content length.
    cont_length: i64,
    /// `create_time`.
    create_time: i64,
    /// Next warning time, -1 = sent, 0 = none.
    warn_time: i64,
    /// VERP forces one recipient per delivery.
    single_rcpt: bool,
}

impl From<FileEnvelope> for HeldEnvelope {
    fn from(env: FileEnvelope) -> HeldEnvelope {
        let packed = pack(&Unpacked {
            fields: [
                env.filter_xport.as_deref(),
                env.inspect_xport.as_deref(),
                env.redirect_addr.as_deref(),
                Some(&env.client_name),
                Some(&env.client_addr),
                Some(&env.client_port),
                Some(&env.client_proto),
                Some(&env.client_helo),
                Some(&env.sasl_method),
                Some(&env.sasl_username),
                Some(&env.sasl_sender),
                Some(&env.log_ident),
                Some(&env.rewrite_context),
            ],
            rcpt_count: env.rcpt_count,
            cont_length: env.cont_length,
            create_time: env.create_time,
            warn_time: env.warn_time,
            single_rcpt: env.single_rcpt,
        });
        HeldEnvelope {
            data_size: env.data_size,
            data_offset: env.data_offset,
            read_flags: env.read_flags,
            smtputf8: env.smtputf8,
            arrival_sec: env.arrival_sec,
            arrival_usec: env.arrival_usec,
            sender: env.sender,
            dsn_envid: env.dsn_envid,
            dsn_ret: env.dsn_ret,
            encoding: env.encoding,
            trace_flags: env.trace_flags,
            trace_flags_offset: env.trace_flags_offset,
            warn_offset: env.warn_offset,
            verp_delims: env.verp_delims,
            packed,
        }
    }
}

impl HeldEnvelope {
    /// The full envelope (reading state at its defaults), for a delivery
    /// request.
    pub fn envelope(&self) -> FileEnvelope {
        let cold = unpack(&self.packed, PACKED_FIELDS);
        let mut fields = cold.fields.into_iter();
        let mut next = || fields.next().flatten().map(<[u8]>::to_vec);
        let filter_xport = next();
        let inspect_xport = next();
        let redirect_addr = next();
        let mut text = || next().unwrap_or_default();
        FileEnvelope {
            data_size: self.data_size,
            data_offset: self.data_offset,
            rcpt_count: cold.rcpt_count,
            read_flags: self.read_flags,
            cont_length: cold.cont_length,
            smtputf8: self.smtputf8,
            arrival_sec: self.arrival_sec,
            arrival_usec: self.arrival_usec,
            create_time: cold.create_time,
            sender: self.sender.clone(),
            filter_xport,
            inspect_xport,
            redirect_addr,
            dsn_envid: self.dsn_envid.clone(),
            dsn_ret: self.dsn_ret,
            encoding: self.encoding.clone(),
            client_name: text(),
            client_addr: text(),
            client_port: text(),
            client_proto: text(),
            client_helo: text(),
            sasl_method: text(),
            sasl_username: text(),
            sasl_sender: text(),
            log_ident: text(),
            rewrite_context: text(),
            trace_flags: self.trace_flags,
            trace_flags_offset: self.trace_flags_offset,
            warn_offset: self.warn_offset,
            warn_time: cold.warn_time,
            verp_delims: self.verp_delims.clone(),
            single_rcpt: cold.single_rcpt,
            ..FileEnvelope::default()
        }
    }

    /// The content filter (`L` record), if any.
    pub fn filter_xport(&self) -> Option<&[u8]> {
        unpack(&self.packed, FILTER_XPORT + 1).fields[FILTER_XPORT]
    }

    /// The redirect address (`>` record), if any.
    pub fn redirect_addr(&self) -> Option<&[u8]> {
        unpack(&self.packed, REDIRECT_ADDR + 1).fields[REDIRECT_ADDR]
    }
}

/// Appends `v` as a LEB128 varint (7 bits a byte, low bits first).
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let low = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(low);
            return;
        }
        out.push(low | 0x80);
    }
}

/// Takes a varint off the front of `buf`; 0 at its end.
fn get_varint(buf: &mut &[u8]) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    while let Some((&b, rest)) = buf.split_first() {
        *buf = rest;
        if shift < 64 {
            v |= u64::from(b & 0x7f) << shift;
        }
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    v
}

/// Appends a signed number, zigzag-coded so small negatives stay short.
fn put_int(out: &mut Vec<u8>, v: i64) {
    put_varint(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// Takes a zigzag-coded number off the front of `buf`.
fn get_int(buf: &mut &[u8]) -> i64 {
    let z = get_varint(buf);
    ((z >> 1) as i64) ^ -((z & 1) as i64)
}

/// Packs `u` (see the module invariants).
fn pack(u: &Unpacked<'_>) -> Box<[u8]> {
    let no_text = u.fields.iter().enumerate().all(|(i, f)| match f {
        None => true,
        Some(bytes) => i >= OPTIONAL && bytes.is_empty(),
    });
    let no_number = u.rcpt_count == 0
        && u.cont_length == 0
        && u.create_time == 0
        && u.warn_time == 0
        && !u.single_rcpt;
    if no_text && no_number {
        return Box::default();
    }
    let text: usize = u.fields.iter().map(|f| f.map_or(0, <[u8]>::len)).sum();
    let mut out = Vec::with_capacity(text + 2 * PACKED_FIELDS + 24);
    for field in &u.fields {
        match field {
            None => put_varint(&mut out, 0),
            Some(bytes) => {
                put_varint(&mut out, bytes.len() as u64 + 1);
                out.extend_from_slice(bytes);
            }
        }
    }
    put_int(&mut out, i64::from(u.rcpt_count));
    put_int(&mut out, u.cont_length);
    put_int(&mut out, u.create_time);
    put_int(&mut out, u.warn_time);
    put_int(&mut out, i64::from(u.single_rcpt));
    out.into_boxed_slice()
}

/// Reads the first `upto` byte strings of a packed string, and the
/// numbers when `upto` is all of them; all absent and zero for the empty
/// string (an absent field and an empty one mean the same to every reader
/// of the `Vec` fields, which rebuild both as empty).
fn unpack(packed: &[u8], upto: usize) -> Unpacked<'_> {
    let mut u = Unpacked::default();
    if packed.is_empty() {
        return u;
    }
    let mut rest = packed;
    for field in u.fields.iter_mut().take(upto) {
        let tag = get_varint(&mut rest) as usize;
        if tag > 0 {
            // Only `pack` writes this string: a short one is our bug.
            let (bytes, tail) = rest.split_at(tag - 1);
            *field = Some(bytes);
            rest = tail;
        }
    }
    if upto >= PACKED_FIELDS {
        u.rcpt_count = get_int(&mut rest) as i32;
        u.cont_length = get_int(&mut rest);
        u.create_time = get_int(&mut rest);
        u.warn_time = get_int(&mut rest);
        u.single_rcpt = get_int(&mut rest) != 0;
    }
    u
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `env` with the reading state at its defaults.
    fn message_level(mut env: FileEnvelope) -> FileEnvelope {
        env.recipients = Vec::new();
        env.warnings = Vec::new();
        env.pointers = Default::default();
        env.walked = Default::default();
        env.rcpt_offset = 0;
        env.seen_all_non_rcpt = false;
        env.opened_log = None;
        env
    }

    #[test]
    fn a_typical_smtp_envelope_round_trips() {
        let env = FileEnvelope {
            data_size: 300,
            data_offset: 180,
            rcpt_count: 1,
            read_flags: 1,
            arrival_sec: 1_700_000_000,
            arrival_usec: 12,
            sender: Some(b"bench@origin.example".to_vec()),
            encoding: b"7bit".to_vec(),
            client_name: b"localhost".to_vec(),
            client_addr: b"127.0.0.1".to_vec(),
            client_port: b"40000".to_vec(),
            client_proto: b"ESMTP".to_vec(),
            client_helo: b"origin.example".to_vec(),
            rewrite_context: b"remote".to_vec(),
            rcpt_offset: 99,
            seen_all_non_rcpt: true,
            opened_log: Some((300, 1)),
            warnings: vec!["w".into()],
            ..FileEnvelope::default()
        };
        let held = HeldEnvelope::from(env.clone());
        assert_eq!(held.envelope(), message_level(env));
        assert_eq!(held.filter_xport(), None);
        assert_eq!(held.redirect_addr(), None);
    }

    #[test]
    fn varints_round_trip_at_the_edges() {
        for v in [
            0,
            1,
            -1,
            63,
            -64,
            64,
            127,
            128,
            i64::from(i32::MIN),
            i64::MAX,
            i64::MIN,
        ] {
            let mut out = Vec::new();
            put_int(&mut out, v);
            let mut buf = &out[..];
            assert_eq!(get_int(&mut buf), v);
            assert!(buf.is_empty());
        }
        let mut out = Vec::new();
        put_varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
    }

    #[test]
    fn empty_cold_fields_take_no_allocation() {
        let held = HeldEnvelope::from(FileEnvelope {
            sender: Some(b"a@b".to_vec()),
            ..FileEnvelope::default()
        });
        assert!(held.packed.is_empty());
        assert_eq!(held.envelope().sender.as_deref(), Some(&b"a@b"[..]));
        // An empty filter is still a filter (`L` with an empty value).
        let held = HeldEnvelope::from(FileEnvelope {
            filter_xport: Some(Vec::new()),
            redirect_addr: Some(b"x@y".to_vec()),
            ..FileEnvelope::default()
        });
        assert_eq!(held.filter_xport(), Some(&b""[..]));
        assert_eq!(held.redirect_addr(), Some(&b"x@y"[..]));
        assert_eq!(held.envelope().inspect_xport, None);
        let held = HeldEnvelope::from(FileEnvelope {
            filter_xport: Some(Vec::new()),
            ..FileEnvelope::default()
        });
        assert_eq!(held.filter_xport(), Some(&b""[..]));
    }

    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..12)
    }

    proptest! {
        #[test]
        fn every_field_round_trips(
            opt in proptest::array::uniform3(proptest::option::of(bytes())),
            text in proptest::array::uniform10(bytes()),
            sender in proptest::option::of(bytes()),
            verp in proptest::option::of(bytes()),
            ints in proptest::array::uniform8(any::<i64>()),
            small in proptest::array::uniform5(any::<i32>()),
            single in any::<bool>(),
        ) {
            let [filter_xport, inspect_xport, redirect_addr] = opt;
            let [client_name, client_addr, client_port, client_proto, client_helo,
                sasl_method, sasl_username, sasl_sender, log_ident, rewrite_context] = text;
            let env = FileEnvelope {
                data_size: ints[0],
                data_offset: ints[1],
                cont_length: ints[2],
                arrival_sec: ints[3],
                arrival_usec: ints[4],
                create_time: ints[5],
                warn_time: ints[6],
                trace_flags_offset: ints[7] as u64,
                warn_offset: ints[7].rotate_left(7) as u64,
                rcpt_count: small[0],
                read_flags: small[1],
                smtputf8: small[2],
                dsn_ret: small[3],
                trace_flags: small[4],
                sender,
                verp_delims: verp,
                single_rcpt: single,
                dsn_envid: client_name.iter().rev().copied().collect(),
                encoding: client_port.clone(),
                filter_xport, inspect_xport, redirect_addr,
                client_name, client_addr, client_port, client_proto, client_helo,
                sasl_method, sasl_username, sasl_sender, log_ident, rewrite_context,
                ..FileEnvelope::default()
            };
            let held = HeldEnvelope::from(env.clone());
            prop_assert_eq!(held.filter_xport(), env.filter_xport.as_deref());
            prop_assert_eq!(held.redirect_addr(), env.redirect_addr.as_deref());
            prop_assert_eq!(held.envelope(), message_level(env));
        }
    }
}
