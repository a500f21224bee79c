//! Shared names: transports, queue names and next hops (Postfix keeps them
//! as `char *` owned by `QMGR_TRANSPORT` and `QMGR_QUEUE` and passes
//! pointers around).
//!
//! Every message between entities names its transport or destination, and a
//! million recipients share a few thousand such names. Copying each as a
//! `String` made allocation and copying the largest cost of scheduling. A
//! [`Name`] is an immutable, reference-counted string: cloning it is a
//! counter increment, and equal names made from one another compare by
//! pointer before they compare bytes.
//!
//! # Invariants
//! `Name` behaves exactly like the text it holds: `Eq`, `Ord`, `Hash` and
//! `Display` are those of `str` (byte order), so maps keyed by names, sorted
//! output and traces are the same as with `String`s. `Debug` prints the text
//! quoted, as a `String` would.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

/// An immutable, cheaply cloned string.
#[derive(Clone)]
pub struct Name(Arc<str>);

impl Name {
    /// A name holding `text`.
    pub fn new(text: &str) -> Name {
        Name(Arc::from(text))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The same name in lower case (`str::to_lowercase`); shares this
    /// one's text when lowering changes nothing, which is the usual case for
    /// resolver output, so no copy is made per recipient.
    pub fn to_lowercase(&self) -> Name {
        if self.0.is_ascii() {
            if self.0.bytes().any(|b| b.is_ascii_uppercase()) {
                Name::from(self.0.to_ascii_lowercase())
            } else {
                self.clone()
            }
        } else {
            let lower = self.0.to_lowercase();
            if *lower == *self.0 {
                self.clone()
            } else {
                Name::from(lower)
            }
        }
    }
}

impl Default for Name {
    fn default() -> Name {
        Name::new("")
    }
}

impl Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || *self.0 == *other.0
    }
}

impl Eq for Name {}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Name) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Name {
    #[inline]
    fn cmp(&self, other: &Name) -> Ordering {
        if Arc::ptr_eq(&self.0, &other.0) {
            Ordering::Equal
        } else {
            self.0.cmp(&other.0)
        }
    }
}

/// A key for ordered maps of many short names (queue IDs): the name with
/// its first eight bytes as one big-endian number, zero-padded. Comparing
/// those numbers orders as `str` does (padding sorts a proper prefix
/// first), so most comparisons of a map search are one integer compare
/// instead of a `memcmp` call; equal heads fall back to the text.
#[derive(Clone, Debug)]
pub struct SortKey {
    /// The first eight bytes.
    head: u64,
    /// The name.
    name: Name,
}

impl SortKey {
    /// The key of `name`.
    pub fn new(name: &Name) -> SortKey {
        let mut head = 0u64;
        for (i, &c) in name.as_bytes().iter().take(8).enumerate() {
            head |= u64::from(c) << (56 - 8 * i);
        }
        SortKey {
            head,
            name: name.clone(),
        }
    }

    /// The name.
    pub fn name(&self) -> &Name {
        &self.name
    }
}

impl PartialEq for SortKey {
    fn eq(&self, other: &SortKey) -> bool {
        self.head == other.head && self.name == other.name
    }
}

impl Eq for SortKey {}

impl PartialOrd for SortKey {
    fn partial_cmp(&self, other: &SortKey) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SortKey {
    #[inline]
    fn cmp(&self, other: &SortKey) -> Ordering {
        self.head
            .cmp(&other.head)
            .then_with(|| self.name.cmp(&other.name))
    }
}

impl Borrow<str> for SortKey {
    fn borrow(&self) -> &str {
        &self.name
    }
}

impl From<&str> for SortKey {
    fn from(text: &str) -> SortKey {
        SortKey::new(&Name::from(text))
    }
}

impl From<Name> for SortKey {
    fn from(name: Name) -> SortKey {
        SortKey::new(&name)
    }
}

impl Hash for Name {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The same as `str`'s, which `Borrow<str>` lookups rely on.
        self.as_str().hash(state)
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Name {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

impl PartialEq<Name> for str {
    fn eq(&self, other: &Name) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<Name> for &str {
    fn eq(&self, other: &Name) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<Name> for String {
    fn eq(&self, other: &Name) -> bool {
        self.as_str() == other.as_str()
    }
}

impl From<&str> for Name {
    fn from(text: &str) -> Name {
        Name::new(text)
    }
}

impl From<&String> for Name {
    fn from(text: &String) -> Name {
        Name::new(text)
    }
}

impl From<String> for Name {
    fn from(text: String) -> Name {
        Name(Arc::from(text))
    }
}

impl From<&Name> for Name {
    fn from(name: &Name) -> Name {
        name.clone()
    }
}

impl From<Name> for String {
    fn from(name: Name) -> String {
        name.as_str().to_string()
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, not `write_str`: width and alignment apply as to a `str`.
        f.pad(&self.0)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// A small, fast hasher for maps keyed by names or numbers that are only
/// looked up, never iterated (SipHash's resistance to chosen keys buys
/// nothing here: the keys are our own configuration and queue names, and
/// the maps are bounded by the active queue limits).
///
/// The multiply-rotate scheme of rustc's `FxHasher`, written out so no
/// crate is needed. Its output is deterministic across runs, though no
/// decision may depend on it anyway.
#[derive(Clone, Copy, Debug, Default)]
pub struct FastHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        // The tail in at most two fixed-size loads (overlapping when the
        // tail is shorter than both together), as rustc's FxHasher reads
        // it: a loop of single bytes cost more than the rest of the hash,
        // and a variable-length copy would call `memcpy`.
        let rest = chunks.remainder();
        let n = rest.len();
        if n >= 4 {
            let lo = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes"));
            let hi = u32::from_le_bytes(rest[n - 4..].try_into().expect("4 bytes"));
            self.add(u64::from(lo) | (u64::from(hi) << 32));
        } else if n > 0 {
            let word = u64::from(rest[0])
                | (u64::from(rest[n / 2]) << 8)
                | (u64::from(rest[n - 1]) << 16)
                | ((n as u64) << 24);
            self.add(word);
        }
    }

    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // A product's low bits depend only on its operands' low bits, and
        // hash tables pick buckets by the low bits: names differing only
        // in later bytes (`d1.example`, `d2.example`...) would crowd into
        // few buckets and long probe sequences. Rotating brings the
        // well-mixed high bits down (as rustc's FxHasher does since 2024).
        self.0.rotate_left(26)
    }
}

/// Builds [`FastHasher`]s.
pub type FastState = std::hash::BuildHasherDefault<FastHasher>;

/// A hash map for lookups with [`FastHasher`].
pub type FastMap<K, V> = std::collections::HashMap<K, V, FastState>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn names_order_and_print_like_their_text() {
        let mut words = vec![
            "smtp",
            "Smtp",
            "relay",
            "",
            "smtp2",
            "lmtp",
            "Q000001",
            "Q1000000",
            "Q999999",
            "a\0",
            "a",
            "a\0\0\0\0\0\0\0\0",
            "a\0\0\0\0\0\0\0",
            "abcdefgh",
            "abcdefghi",
            "abcdefgg",
            "abcdefgi1",
        ];
        let mut keys: Vec<SortKey> = words.iter().map(|w| SortKey::from(*w)).collect();
        keys.sort();
        let keyed: Vec<String> = keys.iter().map(|k| k.name().to_string()).collect();
        let mut names: Vec<Name> = words.iter().map(|w| Name::from(*w)).collect();
        words.sort();
        names.sort();
        let printed: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        assert_eq!(printed, words);
        assert_eq!(keyed, words);
        assert_eq!(format!("{:>6}|", Name::from("ab")), "    ab|");
        assert_eq!(format!("{:?}", Name::from("a\"b")), format!("{:?}", "a\"b"));
    }

    #[test]
    fn maps_find_names_by_str() {
        let mut m: BTreeMap<Name, u32> = BTreeMap::new();
        m.insert("smtp".into(), 1);
        assert_eq!(m.get("smtp"), Some(&1));
        let mut h: FastMap<Name, u32> = FastMap::default();
        h.insert("relay".into(), 2);
        assert_eq!(h.get("relay"), Some(&2));
        assert_eq!(h.get("smtp"), None);
    }

    #[test]
    fn lowercasing_shares_text_when_nothing_changes() {
        let n = Name::from("a.example");
        assert!(Arc::ptr_eq(&n.to_lowercase().0, &n.0));
        assert_eq!(Name::from("A.Example").to_lowercase(), "a.example");
        assert_eq!(Name::from("Ä.example").to_lowercase(), "ä.example");
    }
}
