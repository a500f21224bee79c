//! queue_id - Postfix queue IDs and hashed queue paths (mirrors
//! `postfix/src/global/mail_queue.c`, `mail_queue.h` and
//! `postfix/src/util/dir_forest.c`).
//!
//! # Forms
//! - Short (`enable_long_queue_ids = no`): 5 upper-case hex digits of the
//!   microseconds, then the inode in upper-case hex (`B147AB402B`).
//! - Long (`enable_long_queue_ids = yes`): seconds in base 52 (≥ 6 digits),
//!   microseconds in base 52 (exactly 4), `z`, inode in base 51 (so it has
//!   no `z`). A name is long iff its last `z` is at index ≥ 10.
//!
//! Anything of 1–255 characters from `[A-Za-z0-9_]` is an acceptable queue
//! file name ([`queue_id_ok`]); scans skip other names (such as cleanup's
//! temporary `<usec>.<pid>` files).
//!
//! # Hashing
//! In queues listed in `hash_queue_names` (default `deferred, defer`,
//! compared case-insensitively) a file lives under `hash_queue_depth`
//! one-character directory levels taken from the hash key: the ID itself
//! for short IDs, the microseconds re-printed as 5 hex digits for long IDs
//! (so both forms spread alike); `_` fills levels beyond the key's length.

/// Longest accepted queue file name (`VALID_HOSTNAME_LEN`).
pub const MAX_QUEUE_ID_LEN: usize = 255;

/// Digits of the long-ID alphabet (value 0…51): no vowels.
const SAFE_ALPHABET: &[u8; 52] = b"0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz";

/// Width of the long ID's seconds + microseconds prefix before `z`.
const LONG_TIME_WIDTH: usize = 10;

/// True if `name` is an acceptable queue file name (`mail_queue_id_ok`).
pub fn queue_id_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_QUEUE_ID_LEN
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Value of one long-ID digit in `base` (52 or 51), if valid.
fn safe_digit(b: u8, base: u64) -> Option<u64> {
    let v = SAFE_ALPHABET.iter().position(|&c| c == b)? as u64;
    (v < base).then_some(v)
}

/// Decodes a base-52/51 string (most significant digit first).
fn decode_safe(s: &[u8], base: u64) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &b| {
        acc.checked_mul(base)?.checked_add(safe_digit(b, base)?)
    })
}

/// Index of the `z` separating time and inode in a long ID, if `id` is one.
fn long_separator(id: &str) -> Option<usize> {
    id.rfind('z').filter(|&i| i >= LONG_TIME_WIDTH)
}

/// The key whose leading characters name the hash directories of `id`.
/// For long IDs, a microseconds field that does not decode hashes as 0,
/// as in Postfix.
pub fn hash_key(id: &str) -> String {
    match long_separator(id) {
        Some(z) => {
            let usec = decode_safe(&id.as_bytes()[z - 4..z], 52).unwrap_or(0);
            format!("{usec:05X}")
        }
        None => id.to_string(),
    }
}

/// Queue hashing parameters (`hash_queue_names`, `hash_queue_depth`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueHashing {
    /// Queue names that are hashed (compared case-insensitively).
    pub names: Vec<String>,
    /// Directory levels in hashed queues (≥ 1).
    pub depth: usize,
}

impl Default for QueueHashing {
    /// Postfix 3.7 defaults: `deferred, defer`, depth 1.
    fn default() -> Self {
        QueueHashing {
            names: vec!["deferred".into(), "defer".into()],
            depth: 1,
        }
    }
}

impl QueueHashing {
    /// Parses `hash_queue_names` (comma/space separated) and a depth.
    pub fn new(names: &str, depth: usize) -> Self {
        QueueHashing {
            names: names
                .split(|c: char| c == ',' || c.is_ascii_whitespace())
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            depth: depth.max(1),
        }
    }

    /// True if `queue` is hashed.
    pub fn is_hashed(&self, queue: &str) -> bool {
        self.names.iter().any(|n| n.eq_ignore_ascii_case(queue))
    }

    /// The directory holding `id` in `queue`, relative to queue_directory,
    /// with a trailing `/` (`mail_queue_dir`): `deferred/B/`, `active/`.
    pub fn queue_dir(&self, queue: &str, id: &str) -> String {
        let mut out = String::new();
        self.push_dir(&mut out, queue, id);
        out
    }

    /// Appends [`QueueHashing::queue_dir`] to `out` (one buffer for a whole
    /// path: the daemon builds several per message).
    fn push_dir(&self, out: &mut String, queue: &str, id: &str) {
        out.push_str(queue);
        out.push('/');
        if self.is_hashed(queue) {
            let key = hash_key(id);
            let mut chars = key.chars();
            for _ in 0..self.depth {
                out.push(chars.next().unwrap_or('_'));
                out.push('/');
            }
        }
    }

    /// The path of `id` in `queue`, relative to queue_directory
    /// (`mail_queue_path`): `deferred/B/B147AB402B`.
    pub fn queue_path(&self, queue: &str, id: &str) -> String {
        let mut out = String::with_capacity(queue.len() + 2 * self.depth + 1 + id.len());
        self.push_dir(&mut out, queue, id);
        out.push_str(id);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Postfix's queue-ID forms, as cleanup(8) makes them: the daemon only
    // hashes and checks names, these check that it reads the forms right.
    /// The parts of a well-formed queue ID.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum QueueIdParts {
        /// Short form.
        Short {
            /// Microseconds (5 hex digits).
            usec: u32,
            /// Inode number (hex).
            inode: u64,
        },
        /// Long form.
        Long {
            /// Seconds since the epoch (base 52).
            sec: u64,
            /// Microseconds (4 base-52 digits).
            usec: u32,
            /// Inode number (base 51).
            inode: u64,
        },
    }

    /// Encodes `value` in the safe alphabet, left-padded with `0` to `pad`.
    fn encode_safe(mut value: u64, base: u64, pad: usize) -> String {
        let mut digits = Vec::new();
        loop {
            digits.push(SAFE_ALPHABET[(value % base) as usize]);
            value /= base;
            if value == 0 {
                break;
            }
        }
        while digits.len() < pad {
            digits.push(b'0');
        }
        digits.reverse();
        String::from_utf8(digits).expect("alphabet is ASCII")
    }

    /// Splits a queue ID into its time and inode parts; `None` if it is not a
    /// well-formed short or long ID (it may still be an acceptable file name).
    fn parse_queue_id(id: &str) -> Option<QueueIdParts> {
        if !queue_id_ok(id) {
            return None;
        }
        if let Some(z) = long_separator(id) {
            let b = id.as_bytes();
            let sec = decode_safe(&b[..z - 4], 52)?;
            let usec = u32::try_from(decode_safe(&b[z - 4..z], 52)?).ok()?;
            let inode = decode_safe(&b[z + 1..], 51)?;
            return Some(QueueIdParts::Long { sec, usec, inode });
        }
        let is_hex = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c))
        };
        if id.len() < 6 || !is_hex(id) {
            return None;
        }
        let usec = u32::from_str_radix(&id[..5], 16).ok()?;
        let inode = u64::from_str_radix(&id[5..], 16).ok()?;
        Some(QueueIdParts::Short { usec, inode })
    }

    /// Builds a short queue ID (`%05X` microseconds, `%lX` inode).
    fn short_queue_id(usec: u32, inode: u64) -> String {
        format!("{usec:05X}{inode:X}")
    }

    /// Builds a long queue ID.
    fn long_queue_id(sec: u64, usec: u32, inode: u64) -> String {
        format!(
            "{}{}z{}",
            encode_safe(sec, 52, 6),
            encode_safe(u64::from(usec), 52, 4),
            encode_safe(inode, 51, 0)
        )
    }

    #[test]
    fn observed_examples() {
        let h = QueueHashing::default();
        assert_eq!(
            h.queue_path("deferred", "B147AB402B"),
            "deferred/B/B147AB402B"
        );
        assert_eq!(h.queue_path("Defer", "B147AB402B"), "Defer/B/B147AB402B");
        assert_eq!(h.queue_path("active", "B147AB402B"), "active/B147AB402B");
        assert_eq!(
            h.queue_path("deferred", "4jcJ344Ng2z5XSf"),
            "deferred/9/4jcJ344Ng2z5XSf"
        );
        assert_eq!(
            parse_queue_id("B147AB402B"),
            Some(QueueIdParts::Short {
                usec: 0xB147A,
                inode: 0xB402B
            })
        );
        let Some(QueueIdParts::Long { usec, .. }) = parse_queue_id("4jcJ344Ng2z5XSf") else {
            panic!("long id not recognised");
        };
        assert_eq!(usec, 618334);
    }

    #[test]
    fn long_ids_round_trip() {
        for (sec, usec, inode) in [
            (1795888636, 618334, 12345),
            (0, 0, 0),
            (u32::MAX as u64, 999_999, 1 << 40),
        ] {
            let id = long_queue_id(sec, usec, inode);
            assert!(queue_id_ok(&id));
            assert_eq!(
                parse_queue_id(&id),
                Some(QueueIdParts::Long { sec, usec, inode })
            );
        }
        assert_eq!(short_queue_id(0x1A, 0xFF), "0001AFF");
    }

    #[test]
    fn names_and_depth() {
        assert!(!queue_id_ok(""));
        assert!(!queue_id_ok("12345.678"));
        assert!(queue_id_ok("example_com"));
        assert!(!queue_id_ok(&"A".repeat(256)));
        let h = QueueHashing::new("deferred defer,Incoming", 3);
        assert_eq!(h.queue_path("incoming", "AB"), "incoming/A/B/_/AB");
    }
}
