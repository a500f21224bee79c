//! Fuzz target: arbitrary bytes as a trigger buffer, on the whole reading
//! path that does not need a socket: the stand-alone (`-S`) single bounded
//! read, the core decoder `oqmgr::trigger::TriggerRequest::decode`, and the
//! trace renderer `oqmgr::trigger::render`.
//!
//! Besides "no panic", it checks the properties the queue manager relies
//! on: one read never yields more than `TRIGGER_BUF_SIZE` bytes; decoding
//! ignores byte order ("FADI" means "IDAF"), duplicates and unknown bytes,
//! and a buffer means the union of its parts (so coalesced fifo writes act
//! like separate ones); the rendered trace is printable ASCII, a fixed
//! width per byte, and asks for the same scans as the bytes themselves.

#![no_main]

use libfuzzer_sys::fuzz_target;
use oqmgr::trigger::{render, TriggerRequest};
use oqmgr_actors::postfix::trigger_server::{read_stand_alone_request, TRIGGER_BUF_SIZE};

fuzz_target!(|data: &[u8]| {
    // The stand-alone read: one read of at most TRIGGER_BUF_SIZE bytes, an
    // empty input is an error rather than an empty request.
    match read_stand_alone_request(data) {
        Ok(buf) => {
            assert!(!data.is_empty());
            assert_eq!(buf.len(), data.len().min(TRIGGER_BUF_SIZE));
            assert_eq!(buf, data[..buf.len()]);
        }
        Err(_) => assert!(data.is_empty()),
    }

    let req = TriggerRequest::decode(data);

    // Order does not matter: reversed and sorted buffers decode equally.
    let mut reversed = data.to_vec();
    reversed.reverse();
    assert_eq!(TriggerRequest::decode(&reversed), req, "reversed");
    let mut sorted = data.to_vec();
    sorted.sort_unstable();
    assert_eq!(TriggerRequest::decode(&sorted), req, "sorted");

    // Duplicates collapse.
    let doubled = [data, data].concat();
    assert_eq!(TriggerRequest::decode(&doubled), req, "doubled");

    // Unknown bytes are ignored: only the request letters count.
    let letters: Vec<u8> = data
        .iter()
        .copied()
        .filter(|b| b"IWDAF".contains(b))
        .collect();
    assert_eq!(TriggerRequest::decode(&letters), req, "letters only");

    // A buffer is the union of any split of it (coalesced fifo writes).
    let cut = usize::from(data.first().copied().unwrap_or(0)) % (data.len() + 1);
    let (a, b) = data.split_at(cut);
    let (ra, rb) = (TriggerRequest::decode(a), TriggerRequest::decode(b));
    assert_eq!(ra.incoming | rb.incoming, req.incoming, "split incoming");
    assert_eq!(ra.deferred | rb.deferred, req.deferred, "split deferred");
    assert_eq!(ra.flush_dead() || rb.flush_dead(), req.flush_dead());

    // The trace form: printable ASCII, 1 char per request letter or digit,
    // 4 per other byte, and it names the same request as the bytes.
    let shown = render(data);
    assert!(shown.bytes().all(|c| c.is_ascii_graphic()), "{shown:?}");
    let width: usize = data
        .iter()
        .map(|b| if b.is_ascii_alphanumeric() { 1 } else { 4 })
        .sum();
    assert_eq!(shown.len(), width);
    assert_eq!(TriggerRequest::decode(shown.as_bytes()), req, "render");
});
