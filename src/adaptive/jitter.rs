//! Deterministic jitter (no Postfix counterpart: oqmgr never randomizes).
//!
//! The adaptive policy spreads retries and probes so that many messages or
//! destinations that failed together do not come back together. The core
//! reads no clock and no random device, so the "random" part is a hash:
//! a number in `[0, 1)` drawn from a key (a queue ID, a destination name)
//! and a salt (the time of the deferral, a probe count). The same inputs
//! give the same number on every machine and in every run, so traces stay
//! reproducible.
//!
//! # Invariants
//! - [`unit()`] depends on its arguments only (FNV-1a over the key, then the
//!   SplitMix64 finalizer over the key hash mixed with the salt);
//! - its result lies in `[0, 1)`.

/// A number in `[0, 1)` that depends only on `key` and `salt`.
pub fn unit(key: &str, salt: u64) -> f64 {
    // FNV-1a: a stable hash of the key's bytes.
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    // SplitMix64's finalizer spreads nearby salts over the whole range.
    let mut z = h ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::unit;

    #[test]
    fn same_inputs_same_number_and_spread_over_the_range() {
        assert_eq!(unit("Q000001", 7), unit("Q000001", 7));
        assert_ne!(unit("Q000001", 7), unit("Q000001", 8));
        assert_ne!(unit("Q000001", 7), unit("Q000002", 7));
        // Consecutive queue IDs fill every tenth of the range.
        let mut deciles = [0u32; 10];
        for n in 0..1000 {
            let u = unit(&format!("Q{n:06}"), 300_000);
            assert!((0.0..1.0).contains(&u));
            deciles[(u * 10.0) as usize] += 1;
        }
        assert!(
            deciles.iter().all(|&d| (60..=140).contains(&d)),
            "{deciles:?}"
        );
    }
}
