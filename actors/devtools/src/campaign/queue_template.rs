//! queue_template - the real queue file every damaged-file case starts
//! from, and record-level editing that keeps its offsets right.
//!
//! # The template
//! [`Template::capture`] runs a private instance without a queue manager,
//! hands one message to `sendmail` and takes the file cleanup(8) leaves in
//! `incoming/`: a real Postfix queue file. Its tag is a placeholder of the
//! same length as every case's tag, so a case swaps it in without changing
//! a record length. Kinds that change records rebuild the file with
//! correct offsets ([`rebuild`]: the size record's data offset and size,
//! the recipient count, and every pointer), so each kind has exactly the
//! damage it names and no other.

use std::fs;
use std::time::Duration;

use crate::sandbox::Sandbox;
use oqmgr_actors::postfix::record::{decode_all, encode_record, fixed_width_number, rec};

use super::inject::{find, message_text, SENDER};

/// The tag in the template, replaced by each case's tag (same length).
pub const PLACEHOLDER: &str = "dmg-placeholder";

/// The template's only recipient.
pub const TEMPLATE_RCPT: &str = "u9@ok.test";

/// A real cleanup(8) queue file with [`PLACEHOLDER`] as its tag.
#[derive(Debug, Clone)]
pub struct Template {
    /// The file as cleanup wrote it.
    pub bytes: Vec<u8>,
}

/// The tag of damaged-file case number `index` (as long as the
/// placeholder).
pub fn tag_for(index: usize) -> String {
    format!("dmg-{index:011}")
}

/// The queue ID planted by case number `index`.
pub fn id_for(index: usize) -> String {
    format!("DA{:08X}", 0x100 + index)
}

impl Template {
    /// Captures a fresh queue file from a private instance.
    pub fn capture() -> Result<Template, String> {
        let sb = Sandbox::builder()
            .start()
            .map_err(|e| format!("template instance: {e}"))?;
        let text = message_text(PLACEHOLDER, &[TEMPLATE_RCPT.to_string()]);
        let out = sb
            .sendmail(&["-f", SENDER, TEMPLATE_RCPT], text.as_bytes())
            .map_err(|e| format!("sendmail: {e}"))?;
        if !out.status.success() {
            return Err(format!("sendmail failed: {out:?}"));
        }
        let mut found = None;
        sb.wait_for(Duration::from_secs(20), || {
            found = sb.queue_files("incoming").into_iter().find_map(|(_, p)| {
                use std::os::unix::fs::PermissionsExt;
                let ready = fs::metadata(&p).is_ok_and(|m| m.permissions().mode() & 0o700 == 0o700);
                ready.then(|| fs::read(&p).ok()).flatten()
            });
            found.is_some()
        });
        let bytes = found.ok_or("cleanup left no queue file in 20 s")?;
        if find(&bytes, PLACEHOLDER.as_bytes()).is_none() {
            return Err("template lacks its tag".into());
        }
        Ok(Template { bytes })
    }

    /// The template with `tag` in place of the placeholder.
    pub fn tagged(&self, tag: &str) -> Vec<u8> {
        assert_eq!(tag.len(), PLACEHOLDER.len(), "tags keep record lengths");
        replace_all(&self.bytes, PLACEHOLDER.as_bytes(), tag.as_bytes())
    }

    /// The template's records with `tag` swapped in.
    pub fn records(&self, tag: &str) -> Vec<(u8, Vec<u8>)> {
        decode_all(&self.tagged(tag))
            .expect("cleanup's file decodes")
            .into_iter()
            .map(|r| (r.rtype, r.payload))
            .collect()
    }
}

/// `hay` with every `from` replaced by `to`.
pub fn replace_all(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut at = 0;
    while let Some(pos) = find(&hay[at..], from) {
        out.extend_from_slice(&hay[at..at + pos]);
        out.extend_from_slice(to);
        at += pos + from.len();
    }
    out.extend_from_slice(&hay[at..]);
    out
}

/// Lays `records` out as a queue file, fixing what depends on positions:
/// the `C` record's data size, data offset and recipient count (its other
/// fields are kept), and every non-zero `p` pointer (it keeps pointing at
/// the record it pointed at, which must still be there).
pub fn rebuild(records: &[(u8, Vec<u8>)]) -> Vec<u8> {
    rebuild_from(records, &offsets(records))
}

/// The offset of each record in the layout of `records` (as written).
fn offsets(records: &[(u8, Vec<u8>)]) -> Vec<u64> {
    let mut at = 0u64;
    records
        .iter()
        .map(|(t, p)| {
            let here = at;
            let mut one = Vec::new();
            encode_record(&mut one, *t, p);
            at += one.len() as u64;
            here
        })
        .collect()
}

/// [`rebuild`] given where each record sat before the edit (`old`, same
/// length as `records`; edits insert records with offset `u64::MAX`).
fn rebuild_from(records: &[(u8, Vec<u8>)], old: &[u64]) -> Vec<u8> {
    let mut recs: Vec<(u8, Vec<u8>)> = records.to_vec();
    // The record each non-zero pointer aims at, by its old offset.
    let aims: Vec<Option<usize>> = recs
        .iter()
        .map(|(t, p)| {
            let target: u64 = String::from_utf8_lossy(p).trim().parse().unwrap_or(0);
            (*t == rec::PTR && target != 0)
                .then(|| old.iter().position(|&o| o == target))
                .flatten()
        })
        .collect();
    let m = recs.iter().position(|(t, _)| *t == rec::MESG);
    let x = recs.iter().position(|(t, _)| *t == rec::XTRA);
    let rcpts = recs
        .iter()
        .take(m.unwrap_or(recs.len()))
        .filter(|(t, _)| *t == rec::RCPT)
        .count() as i64;
    // Two passes: every rewritten payload has a fixed width, so the
    // offsets after the first pass are final.
    for _ in 0..2 {
        let new = offsets(&recs);
        for (i, (t, p)) in recs.iter_mut().enumerate() {
            if *t == rec::SIZE && i == 0 {
                if let (Some(m), Some(x)) = (m, x) {
                    let data_offset = new[m] + 2;
                    let mut f: Vec<i64> = String::from_utf8_lossy(p)
                        .split_whitespace()
                        .map(|w| w.parse().unwrap_or(0))
                        .collect();
                    f.resize(6, 0);
                    f[0] = new[x] as i64 - data_offset as i64;
                    f[1] = data_offset as i64;
                    f[2] = rcpts;
                    let fields: Vec<String> = f.iter().map(|v| fixed_width_number(*v)).collect();
                    *p = fields.join(" ").into_bytes();
                }
            } else if let Some(j) = aims[i] {
                *p = fixed_width_number(new[j] as i64).into_bytes();
            }
        }
    }
    let mut out = Vec::new();
    for (t, p) in &recs {
        encode_record(&mut out, *t, p);
    }
    out
}

/// Applies `edit` to the template's records (tagged) and rebuilds, keeping
/// pointers aimed at the records they aimed at.
pub fn edited(
    t: &Template,
    tag: &str,
    edit: impl FnOnce(&mut Vec<(u8, Vec<u8>)>, &mut Vec<u64>),
) -> Vec<u8> {
    let mut recs = t.records(tag);
    let mut old = offsets(&recs);
    edit(&mut recs, &mut old);
    assert_eq!(recs.len(), old.len(), "edits keep the offset list in step");
    rebuild_from(&recs, &old)
}

/// Index of the first record of type `rtype` before the content.
pub fn envelope_index(recs: &[(u8, Vec<u8>)], rtype: u8) -> Option<usize> {
    let m = recs.iter().position(|(t, _)| *t == rec::MESG)?;
    recs[..m].iter().position(|(t, _)| *t == rtype)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue_file_writer::{NewRecipient, QueueFileWriter};

    /// A file as cleanup lays it out, built by the project's writer.
    fn sample() -> Template {
        let mut w = QueueFileWriter::new();
        w.arrival(1_700_000_000, 5)
            .sender(SENDER.as_bytes())
            .recipient(&NewRecipient {
                orig_rcpt: Some(TEMPLATE_RCPT.as_bytes().to_vec()),
                address: TEMPLATE_RCPT.as_bytes().to_vec(),
                ..NewRecipient::default()
            });
        for line in message_text(PLACEHOLDER, &[TEMPLATE_RCPT.into()]).lines() {
            w.content_line(line.as_bytes(), 2048);
        }
        Template { bytes: w.finish() }
    }

    #[test]
    fn rebuilding_unchanged_records_gives_the_same_bytes() {
        let t = sample();
        assert_eq!(rebuild(&t.records(PLACEHOLDER)), t.bytes);
        assert_eq!(edited(&t, PLACEHOLDER, |_, _| {}), t.bytes);
    }

    #[test]
    fn an_extra_recipient_moves_the_offsets() {
        let t = sample();
        let out = edited(&t, &tag_for(7), |recs, old| {
            let r = envelope_index(recs, rec::RCPT).unwrap();
            recs.insert(r + 1, (rec::RCPT, b"u8@ok.test".to_vec()));
            old.insert(r + 1, u64::MAX);
        });
        let mut w = QueueFileWriter::new();
        w.arrival(1_700_000_000, 5).sender(SENDER.as_bytes());
        for a in [TEMPLATE_RCPT, "u8@ok.test"] {
            w.recipient(&NewRecipient {
                orig_rcpt: (a == TEMPLATE_RCPT).then(|| a.as_bytes().to_vec()),
                address: a.as_bytes().to_vec(),
                ..NewRecipient::default()
            });
        }
        for line in message_text(&tag_for(7), &[TEMPLATE_RCPT.into()]).lines() {
            w.content_line(line.as_bytes(), 2048);
        }
        assert_eq!(out, w.finish());
        assert_eq!(tag_for(7).len(), PLACEHOLDER.len());
        assert_eq!(id_for(1), "DA00000101");
    }
}
