//! Fuzz target: arbitrary bytes as a queue file. The first byte picks a
//! recipient batch size (1–256) so refills and the MIXED/extracted paths
//! are exercised; the rest is the file. Reading must never panic, loop
//! forever, or allocate without bound.

#![no_main]

use libfuzzer_sys::fuzz_target;
use oqmgr_actors::postfix::queue_file::{read_envelope, ReadLimits};
use oqmgr_actors::postfix::record::decode_logical;
use std::io::Cursor;

fuzz_target!(|data: &[u8]| {
    let Some((&batch, file)) = data.split_first() else {
        return;
    };
    let limits = ReadLimits {
        recipient_limit: usize::from(batch) + 1,
        // Small enough that a lying length field cannot cost much memory.
        record_limit: Some(1 << 16),
        ..ReadLimits::default()
    };
    let _ = decode_logical(file, 10_000);
    if let Ok(mut env) = read_envelope(Cursor::new(file), "FUZZ", &limits) {
        // Every refill consumes at least one recipient record, so the
        // number of rounds is bounded by the file size.
        let mut rounds = 0;
        while env.has_more_recipients() {
            assert!(rounds <= file.len(), "refill does not advance");
            if env.refill(Cursor::new(file), "FUZZ", &limits).is_err() {
                break;
            }
            rounds += 1;
        }
    }
});
