//! damage_kinds - the catalogue of damaged and odd entries a queue manager
//! may find in `incoming/` or `deferred/`.
//!
//! Each kind says how to make its entry from the real template
//! ([`super::queue_template`]) and what Postfix 3.7.11's oqmgr did with it
//! in the full campaign ([`Expect`]): where the entry ended, how many
//! copies of its message reached the sink, whether the queue manager
//! logged a warning naming it. The short form holds our daemon to at least
//! that; the full campaign also reports when oqmgr no longer does it.
//!
//! Groups: intact controls (`valid*`); truncation and garbage; lying or
//! duplicated size records; missing, empty, odd and huge envelope records;
//! pointer loops; state carried by the file system (mode, owner, mtime,
//! lock, hash folder); entries that are not regular files (FIFO, links,
//! directory, hard link); and names that are not queue IDs.

use oqmgr_actors::postfix::record::{encode_length, fixed_width_number, rec};

use super::queue_template::{edited, envelope_index, Template};

/// What oqmgr did with a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect {
    /// Where the entry ended: `gone`, `in place`, or a queue name.
    pub fate: &'static str,
    /// Copies of its message delivered: at least the first, at most the
    /// second (equal unless timing decides, as for a hard link).
    pub copies: (u32, u32),
    /// A queue manager warning named it.
    pub logs: bool,
    /// Other mail stopped moving (the queue manager gave up).
    pub stops: bool,
}

/// The entry to plant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A regular file with these bytes.
    File(Vec<u8>),
    /// A named pipe.
    Fifo,
    /// A symbolic link to a file outside the queue with these bytes
    /// (`None`: to a path that does not exist).
    Symlink(Option<Vec<u8>>),
    /// A directory.
    Dir,
    /// A file with these bytes under two queue IDs (hard links).
    HardLink(Vec<u8>),
}

/// How to plant one entry.
#[derive(Debug, Clone)]
pub struct Plant {
    /// `incoming` or `deferred` (hashed: planted in its hash folder, or in
    /// `hash` when given).
    pub queue: &'static str,
    /// The entry's name (bytes: some are not UTF-8).
    pub name: Vec<u8>,
    /// The hash folder to use in `deferred/` instead of the right one.
    pub hash: Option<&'static str>,
    /// The entry.
    pub entry: Entry,
    /// Permission bits.
    pub mode: u32,
    /// Owned by root instead of the mail owner.
    pub root_owned: bool,
    /// Modification time this far in the future (seconds).
    pub future_secs: u64,
    /// Held locked (flock) by the campaign until the drain.
    pub locked: bool,
    /// Bytes that must reach the sink unchanged (an address).
    pub sink_bytes: Option<Vec<u8>>,
}

/// What a kind's maker is given.
#[derive(Debug, Clone)]
pub struct Made<'a> {
    /// The template.
    pub template: &'a Template,
    /// The case's tag.
    pub tag: String,
    /// The case's queue ID.
    pub id: String,
}

impl Made<'_> {
    /// The intact, tagged template.
    pub fn intact(&self) -> Vec<u8> {
        self.template.tagged(&self.tag)
    }

    /// A plain plant of `bytes` as `incoming/ID`, mode 0700.
    pub fn file(&self, bytes: Vec<u8>) -> Plant {
        Plant {
            queue: "incoming",
            name: self.id.clone().into_bytes(),
            hash: None,
            entry: Entry::File(bytes),
            mode: 0o700,
            root_owned: false,
            future_secs: 0,
            locked: false,
            sink_bytes: None,
        }
    }

    /// A plant of `entry` as `incoming/ID`.
    pub fn entry(&self, entry: Entry) -> Plant {
        Plant {
            entry,
            ..self.file(Vec::new())
        }
    }

    /// The template with its records edited (offsets kept right).
    pub fn edit(&self, f: impl FnOnce(&mut Vec<(u8, Vec<u8>)>, &mut Vec<u64>)) -> Vec<u8> {
        edited(self.template, &self.tag, f)
    }

    /// The template with one envelope record's payload replaced.
    pub fn set(&self, rtype: u8, payload: &[u8]) -> Vec<u8> {
        self.edit(|recs, _| {
            let i = envelope_index(recs, rtype).expect("template has the record");
            recs[i].1 = payload.to_vec();
        })
    }

    /// The template with a record inserted after the first `after` record.
    pub fn insert(&self, after: u8, rtype: u8, payload: &[u8]) -> Vec<u8> {
        self.edit(|recs, old| {
            let i = envelope_index(recs, after).expect("template has the record") + 1;
            recs.insert(i, (rtype, payload.to_vec()));
            old.insert(i, u64::MAX);
        })
    }
}

/// One kind of damaged entry.
#[derive(Debug, Clone, Copy)]
pub struct DamageKind {
    /// Short name (`damaged/NAME`).
    pub name: &'static str,
    /// What the entry is.
    pub about: &'static str,
    /// Known to stop a queue manager: the short form gives it its own
    /// instance.
    pub isolate: bool,
    /// What oqmgr did.
    pub oqmgr: Expect,
    /// Makes the entry.
    pub make: fn(&Made) -> Plant,
}

/// Shorthand for an expectation where other mail keeps moving.
const fn ex(fate: &'static str, copies: u32, logs: bool) -> Expect {
    Expect {
        fate,
        copies: (copies, copies),
        logs,
        stops: false,
    }
}

/// Every kind, in catalogue order.
pub fn catalogue() -> Vec<DamageKind> {
    let mut all = content_kinds();
    all.extend(envelope_kinds());
    all.extend(file_system_kinds());
    all.extend(special_kinds());
    all.extend(name_kinds());
    all
}

/// A record with a raw, possibly lying, length field.
fn raw_record(rtype: u8, length: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = vec![rtype];
    out.extend_from_slice(length);
    out.extend_from_slice(payload);
    out
}

/// Intact controls, truncation, garbage and size-record damage.
fn content_kinds() -> Vec<DamageKind> {
    vec![
        DamageKind {
            name: "valid",
            about: "an intact copy of cleanup's file (control)",
            isolate: false,
            oqmgr: ex("gone", 1, false),
            make: |m| m.file(m.intact()),
        },
        DamageKind {
            name: "valid-deferred",
            about: "an intact file in its deferred/ hash folder (control)",
            isolate: false,
            oqmgr: ex("gone", 1, false),
            make: |m| Plant {
                queue: "deferred",
                ..m.file(m.intact())
            },
        },
        DamageKind {
            name: "empty",
            about: "a zero-length file",
            isolate: false,
            oqmgr: ex("corrupt", 0, true),
            make: |m| m.file(Vec::new()),
        },
        DamageKind {
            name: "size-record-only",
            about: "only the C record",
            isolate: false,
            oqmgr: ex("corrupt", 0, true),
            make: |m| m.file(m.intact()[..97].to_vec()),
        },
        DamageKind {
            name: "truncated-half",
            about: "the first half of the file",
            isolate: false,
            oqmgr: ex("corrupt", 0, true),
            make: |m| {
                let b = m.intact();
                m.file(b[..b.len() / 2].to_vec())
            },
        },
        DamageKind {
            name: "no-end-record",
            about: "everything but the final E record",
            isolate: false,
            oqmgr: ex("corrupt", 0, true),
            make: |m| {
                let b = m.intact();
                m.file(b[..b.len() - 2].to_vec())
            },
        },
        DamageKind {
            name: "garbage",
            about: "512 pseudo-random bytes",
            isolate: false,
            oqmgr: ex("corrupt", 0, true),
            make: |m| {
                let mut x: u32 = 0x1234_5678;
                let bytes = (0..512)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        x as u8
                    })
                    .collect();
                m.file(bytes)
            },
        },
        DamageKind {
            name: "bad-size-record",
            about: "a C record of five letters (`C\\x05hello`)",
            isolate: false,
            oqmgr: ex("corrupt", 0, true),
            make: |m| m.file(b"C\x05hello".to_vec()),
        },
        DamageKind {
            name: "size-record-lies",
            about: "a C record whose data offset lies past the end of the file",
            isolate: false,
            oqmgr: ex("corrupt", 0, true),
            make: |m| {
                let b = m.intact();
                let fields = [600, 99_999_999, 1, 0, 600, 0]
                    .iter()
                    .map(|v| fixed_width_number(*v))
                    .collect::<Vec<_>>()
                    .join(" ");
                let mut out = Vec::new();
                oqmgr_actors::postfix::record::encode_record(
                    &mut out,
                    rec::SIZE,
                    fields.as_bytes(),
                );
                out.extend_from_slice(&b[97..]);
                m.file(out)
            },
        },
        DamageKind {
            name: "two-size-records",
            about: "a second C record right after the first",
            isolate: false,
            oqmgr: ex("corrupt", 0, true),
            make: |m| {
                let b = m.intact();
                let mut out = b[..97].to_vec();
                out.extend_from_slice(&b[..97]);
                out.extend_from_slice(&b[97..]);
                m.file(out)
            },
        },
        DamageKind {
            name: "bytes-after-end",
            about: "64 bytes of junk after the E record",
            isolate: false,
            oqmgr: ex("gone", 1, false),
            make: |m| {
                let mut b = m.intact();
                b.extend(std::iter::repeat_n(b'Z', 64));
                m.file(b)
            },
        },
    ]
}

/// Damage inside the envelope records.
fn envelope_kinds() -> Vec<DamageKind> {
    vec![
        DamageKind {
            name: "length-overflow",
            about: "a record whose length field has too many bytes",
            isolate: false,
            oqmgr: ex("corrupt", 0, true),
            make: |m| {
                let b = m.intact();
                let mut out = b[..97].to_vec();
                out.extend(raw_record(
                    rec::FROM,
                    &[0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
                    b"x",
                ));
                out.extend_from_slice(&b[97..]);
                m.file(out)
            },
        },
        DamageKind {
            name: "huge-length",
            about: "a record claiming 200 MB, then the end of the file",
            isolate: false,
            oqmgr: ex("corrupt", 0, true),
            make: |m| {
                let b = m.intact();
                let mut len = Vec::new();
                encode_length(&mut len, 200 << 20);
                let mut out = b[..97].to_vec();
                out.extend(raw_record(rec::FROM, &len, b"short"));
                m.file(out)
            },
        },
        DamageKind {
            name: "no-sender",
            about: "no S record",
            isolate: false,
            oqmgr: ex("corrupt", 0, true),
            make: |m| {
                m.file(m.edit(|recs, old| {
                    let i = envelope_index(recs, rec::FROM).expect("S");
                    recs.remove(i);
                    old.remove(i);
                }))
            },
        },
        DamageKind {
            name: "no-recipients",
            about: "no O or R record",
            isolate: false,
            oqmgr: ex("gone", 0, true),
            make: |m| {
                m.file(m.edit(|recs, old| {
                    while let Some(i) =
                        envelope_index(recs, rec::RCPT).or_else(|| envelope_index(recs, rec::ORCP))
                    {
                        recs.remove(i);
                        old.remove(i);
                    }
                }))
            },
        },
        DamageKind {
            name: "all-done",
            about: "its only recipient already marked done (D)",
            isolate: false,
            oqmgr: ex("gone", 0, false),
            make: |m| {
                m.file(m.edit(|recs, _| {
                    let i = envelope_index(recs, rec::RCPT).expect("R");
                    recs[i].0 = rec::DONE;
                }))
            },
        },
        DamageKind {
            name: "unknown-record",
            about: "an envelope record of unknown type `Z`",
            isolate: false,
            oqmgr: ex("corrupt", 0, true),
            make: |m| m.file(m.insert(rec::TIME, b'Z', b"junk")),
        },
        DamageKind {
            name: "empty-recipient",
            about: "an R record with an empty address",
            isolate: false,
            oqmgr: ex("gone", 0, false),
            make: |m| m.file(m.set(rec::RCPT, b"")),
        },
        DamageKind {
            name: "long-recipient",
            about: "a 100,000-byte recipient address",
            isolate: false,
            oqmgr: ex("deferred", 0, false),
            make: |m| {
                let mut a = vec![b'a'; 100_000];
                a.extend_from_slice(b"@ok.test");
                m.file(m.set(rec::RCPT, &a))
            },
        },
        DamageKind {
            name: "many-recipients",
            about: "1,000 more recipients at ok.test",
            isolate: false,
            oqmgr: ex("gone", 1001, false),
            make: |m| {
                m.file(m.edit(|recs, old| {
                    let i = envelope_index(recs, rec::RCPT).expect("R") + 1;
                    for n in 0..1000 {
                        recs.insert(i, (rec::RCPT, format!("r{n}@ok.test").into_bytes()));
                        old.insert(i, u64::MAX);
                    }
                }))
            },
        },
        DamageKind {
            name: "nul-in-sender",
            about: "a NUL byte inside the sender address",
            isolate: false,
            oqmgr: ex("gone", 1, false),
            make: |m| m.file(m.set(rec::FROM, b"sen\0der@origin.test")),
        },
        DamageKind {
            name: "non-utf8-recipient",
            about: "recipient bytes that are not UTF-8 (`u\\xff\\xfe9@ok.test`)",
            isolate: false,
            oqmgr: ex("gone", 0, false),
            make: |m| Plant {
                sink_bytes: Some(b"u\xff\xfe9@ok.test".to_vec()),
                ..m.file(m.set(rec::RCPT, b"u\xff\xfe9@ok.test"))
            },
        },
        DamageKind {
            name: "bad-arrival-time",
            about: "a T record that is not a number",
            isolate: false,
            oqmgr: ex("corrupt", 0, true),
            make: |m| m.file(m.set(rec::TIME, b"garbage")),
        },
        DamageKind {
            name: "bad-attribute",
            about: "an A record without `=`",
            isolate: false,
            oqmgr: ex("corrupt", 0, true),
            make: |m| m.file(m.insert(rec::TIME, rec::ATTR, b"noequalsign")),
        },
        DamageKind {
            name: "pointer-loop",
            about: "a p record pointing at itself",
            isolate: false,
            oqmgr: ex("corrupt", 0, true),
            make: |m| {
                m.file(m.edit(|recs, old| {
                    let i = envelope_index(recs, rec::FROM).expect("S") + 1;
                    // The pointer aims at the record that will sit at its
                    // own place: the offset list marks it as that record.
                    let me = old.iter().copied().max().unwrap_or(0) + 1_000_000;
                    recs.insert(i, (rec::PTR, fixed_width_number(me as i64).into_bytes()));
                    old.insert(i, me);
                }))
            },
        },
        DamageKind {
            name: "pointer-loop-recipient",
            about: "a p record jumping back to the R record before it",
            isolate: false,
            oqmgr: ex("corrupt", 0, true),
            make: |m| m.file(m.edit(|recs, old| loop_back_over_recipients(recs, old, 0))),
        },
        DamageKind {
            name: "pointer-loop-3-recipients",
            about: "a p record jumping back over three R records",
            isolate: false,
            // Three recipients a pass: a 20,000-recipient batch fills
            // before the 10,000-jump limit. oqmgr delivers each batch,
            // panics ("recipient list not empty on recipient reload") on
            // the refill, and after a few restarts moves the file to
            // corrupt/: hundreds to 40,000 copies, depending on timing.
            oqmgr: Expect {
                copies: (1, 40_000),
                ..ex("corrupt", 0, true)
            },
            make: |m| m.file(m.edit(|recs, old| loop_back_over_recipients(recs, old, 2))),
        },
    ]
}

/// Adds `more` recipients after the template's R record, then a p record
/// jumping back to that R record: every pass over the loop reads the same
/// recipients again, until a reader's reverse-jump limit stops it.
fn loop_back_over_recipients(recs: &mut Vec<(u8, Vec<u8>)>, old: &mut Vec<u64>, more: usize) {
    let r = envelope_index(recs, rec::RCPT).expect("R");
    for n in 0..more {
        recs.insert(r + 1 + n, (rec::RCPT, format!("r{n}@ok.test").into_bytes()));
        old.insert(r + 1 + n, u64::MAX);
    }
    let target = old[r];
    recs.insert(
        r + 1 + more,
        (rec::PTR, fixed_width_number(target as i64).into_bytes()),
    );
    old.insert(r + 1 + more, u64::MAX);
}

/// State carried by the file system.
fn file_system_kinds() -> Vec<DamageKind> {
    vec![
        DamageKind {
            name: "not-ready-0600",
            about: "an intact file with mode 0600 (cleanup still writing)",
            isolate: false,
            oqmgr: ex("in place", 0, false),
            make: |m| Plant {
                mode: 0o600,
                ..m.file(m.intact())
            },
        },
        DamageKind {
            name: "future-mtime",
            about: "an intact file stamped a year ahead",
            isolate: false,
            oqmgr: ex("gone", 1, false),
            make: |m| Plant {
                future_secs: 365 * 86_400,
                ..m.file(m.intact())
            },
        },
        DamageKind {
            name: "locked",
            about: "an intact file another process holds locked",
            isolate: false,
            oqmgr: ex("gone", 1, false),
            make: |m| Plant {
                locked: true,
                ..m.file(m.intact())
            },
        },
        DamageKind {
            name: "root-owned",
            about: "an intact file owned by root, mode 0700",
            isolate: true,
            // oqmgr moves it to active/, cannot open it and stops with a
            // fatal; every restart stops again on its time stamps.
            oqmgr: Expect {
                stops: true,
                ..ex("active", 0, true)
            },
            make: |m| Plant {
                root_owned: true,
                ..m.file(m.intact())
            },
        },
        DamageKind {
            name: "wrong-hash-folder",
            about: "an intact deferred file in another hash folder",
            isolate: false,
            oqmgr: ex("in place", 0, false),
            make: |m| Plant {
                queue: "deferred",
                hash: Some("0"),
                ..m.file(m.intact())
            },
        },
    ]
}

/// Entries that are not one regular file.
fn special_kinds() -> Vec<DamageKind> {
    vec![
        DamageKind {
            name: "fifo-incoming",
            about: "a FIFO in incoming/ (mode 0700, mail owner)",
            isolate: true,
            oqmgr: ex("in place", 0, true),
            make: |m| m.entry(Entry::Fifo),
        },
        DamageKind {
            name: "fifo-deferred",
            about: "a FIFO in its deferred/ hash folder",
            isolate: true,
            oqmgr: ex("in place", 0, true),
            make: |m| Plant {
                queue: "deferred",
                ..m.entry(Entry::Fifo)
            },
        },
        DamageKind {
            name: "symlink-outside",
            about: "a symlink to an intact queue file outside the queue",
            isolate: true,
            oqmgr: ex("in place", 0, true),
            make: |m| m.entry(Entry::Symlink(Some(m.intact()))),
        },
        DamageKind {
            name: "symlink-dangling",
            about: "a symlink to a path that does not exist",
            isolate: true,
            oqmgr: ex("in place", 0, true),
            make: |m| m.entry(Entry::Symlink(None)),
        },
        DamageKind {
            name: "directory",
            about: "a directory with a queue-file name",
            isolate: true,
            oqmgr: ex("in place", 0, true),
            make: |m| m.entry(Entry::Dir),
        },
        DamageKind {
            name: "hard-link",
            about: "one intact file under two queue IDs",
            isolate: false,
            // Each name is a message; the second is skipped only while a
            // delivery agent holds the lock, so oqmgr delivers once or
            // twice depending on timing.
            oqmgr: Expect {
                copies: (1, 2),
                ..ex("gone", 2, false)
            },
            make: |m| m.entry(Entry::HardLink(m.intact())),
        },
    ]
}

/// Names that are not (plain) queue IDs.
fn name_kinds() -> Vec<DamageKind> {
    /// An intact file under another name.
    fn named(m: &Made, name: &[u8]) -> Plant {
        Plant {
            name: name.to_vec(),
            ..m.file(m.intact())
        }
    }
    vec![
        DamageKind {
            name: "name-lower-case",
            about: "an intact file named in lower case",
            isolate: false,
            oqmgr: ex("gone", 1, false),
            make: |m| named(m, m.id.to_ascii_lowercase().as_bytes()),
        },
        DamageKind {
            name: "name-dash",
            about: "an intact file named `DA-NOT-AN-ID`",
            isolate: false,
            oqmgr: ex("in place", 0, false),
            make: |m| named(m, format!("{}-NOT-AN-ID", &m.id[..4]).as_bytes()),
        },
        DamageKind {
            name: "name-dot",
            about: "an intact file whose name starts with a dot",
            isolate: false,
            oqmgr: ex("in place", 0, false),
            make: |m| named(m, format!(".{}", m.id).as_bytes()),
        },
        DamageKind {
            name: "name-space",
            about: "an intact file whose name has a space",
            isolate: false,
            oqmgr: ex("in place", 0, false),
            make: |m| named(m, format!("{} X", m.id).as_bytes()),
        },
        DamageKind {
            name: "name-newline",
            about: "an intact file whose name has a newline",
            isolate: false,
            oqmgr: ex("in place", 0, false),
            make: |m| named(m, format!("{}\nX", m.id).as_bytes()),
        },
        DamageKind {
            name: "name-not-utf8",
            about: "an intact file whose name has bytes that are not UTF-8",
            isolate: false,
            oqmgr: ex("in place", 0, false),
            make: |m| {
                let mut n = m.id.clone().into_bytes();
                n.extend_from_slice(b"\xff\xfe");
                named(m, &n)
            },
        },
        DamageKind {
            name: "name-255",
            about: "an intact file with a 255-character queue-ID name",
            isolate: false,
            oqmgr: ex("gone", 1, false),
            make: |m| {
                let mut n = m.id.clone();
                while n.len() < 255 {
                    n.push('A');
                }
                named(m, n.as_bytes())
            },
        },
    ]
}
