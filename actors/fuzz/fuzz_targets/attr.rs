//! Fuzz target: arbitrary bytes into the attr0 decoder and every typed
//! reader built on it (`oqmgr_actors::postfix::attr::fuzz_decode`: list
//! tokenizer, announcement check, delivery/bounce/rewrite/flush/verify
//! request and reply decoders). Decoding must never panic, loop forever,
//! or allocate without bound, whatever a peer daemon sends.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    oqmgr_actors::postfix::attr::fuzz_decode(data);
});
