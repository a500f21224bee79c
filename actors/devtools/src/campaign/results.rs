//! results - the campaign's tables (Markdown), and the comparison of our
//! rows with oqmgr's.
//!
//! Two tables: every case but the damaged files, one row per case and
//! queue manager with the ledger's counts, whether mail stopped (`-`,
//! `logged`, `SILENT`) and the drain time; and the damaged-file catalogue,
//! one row per kind and queue manager with the planted entry's fate, the
//! copies delivered, whether a warning named it, and for our rows a
//! verdict against oqmgr (this run's row, or the catalogue's expectation
//! when oqmgr did not run).

use super::damaged_files::{expectation, index_of, shortfalls, Reference};
use super::ledger::COUNT_NAMES;
use super::{CaseResult, Stop, Tally};

/// `-`, `logged` or `SILENT`.
pub fn stop_word(s: &Stop) -> &'static str {
    match s {
        Stop::None => "-",
        Stop::Logged(_) => "logged",
        Stop::Silent => "SILENT",
    }
}

/// Shortens `s` to `n` characters.
fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

/// `values` joined by `sep`.
fn joined(values: &[u64], sep: &str) -> String {
    values
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(sep)
}

/// A table cell: no pipes or line breaks.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The notes column of a row.
fn notes_of(r: &CaseResult) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(e) = &r.error {
        parts.push(format!("DID NOT RUN: {e}"));
    }
    if let Stop::Logged(w) = &r.stop {
        parts.push(format!("`{}`", clip(w, 90)));
    }
    parts.extend(r.notes.iter().map(|n| clip(n, 120)));
    cell(&parts.join("; "))
}

/// The main table (all rows but damaged files).
pub fn main_table(rows: &[CaseResult]) -> String {
    let mut out = String::from(
        "| case | qmgr | msgs | rcpts | delivered | bounced | queued | corrupt | lost | dup | stop | drain s | notes |\n\
         |---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|---|\n",
    );
    for r in rows
        .iter()
        .filter(|r| r.planted.is_none() && r.group != "damaged")
    {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.1} | {} |\n",
            cell(&r.case),
            r.side,
            r.tally.messages,
            joined(&r.tally.counts(), " | "),
            stop_word(&r.stop),
            r.drain_secs,
            notes_of(r)
        ));
    }
    out
}

/// The oqmgr reference for a damaged-file row: this run's oqmgr row if
/// there is one, else the catalogue's expectation.
pub fn reference(rows: &[CaseResult], ours: &CaseResult) -> Option<Reference> {
    let theirs = rows
        .iter()
        .find(|r| r.side == "oqmgr" && r.case == ours.case && r.planted.is_some());
    let expect = expectation(index_of(ours.case.strip_prefix("damaged/")?)?);
    match theirs {
        Some(t) => Some(Reference::from_row(t.planted.as_ref()?, &t.stop, &expect)),
        None => Some(Reference::from_catalogue(&expect)),
    }
}

/// Our shortfalls against oqmgr for a damaged-file row (`None` for oqmgr
/// rows and rows without a planted entry).
pub fn damaged_verdict(rows: &[CaseResult], r: &CaseResult) -> Option<Vec<String>> {
    if r.side != "ours" {
        return None;
    }
    let p = r.planted.as_ref()?;
    Some(shortfalls(p, &r.stop, &reference(rows, r)?))
}

/// For an oqmgr row: how it differs from the catalogue's expectation
/// (the catalogue needs updating when it does).
pub fn catalogue_drift(r: &CaseResult) -> Option<Vec<String>> {
    if r.side != "oqmgr" {
        return None;
    }
    let p = r.planted.as_ref()?;
    let i = index_of(r.case.strip_prefix("damaged/")?)?;
    let expect = expectation(i);
    let want = Reference::from_catalogue(&expect);
    let got = Reference::from_row(p, &r.stop, &expect);
    let mut out = Vec::new();
    if got.fate != want.fate {
        out.push(format!("fate {} (catalogue: {})", got.fate, want.fate));
    }
    if p.copies < want.copies.0 || p.copies > want.copies.1 {
        out.push(format!(
            "copies {} (catalogue: {:?})",
            p.copies, want.copies
        ));
    }
    if got.logs != want.logs {
        out.push(format!("warning {} (catalogue: {})", got.logs, want.logs));
    }
    if got.stopped != want.stopped {
        out.push(format!(
            "other mail stopped {} (catalogue: {})",
            got.stopped, want.stopped
        ));
    }
    Some(out)
}

/// The damaged-file table.
pub fn damaged_table(rows: &[CaseResult]) -> String {
    let mut out = String::from(
        "| kind | qmgr | fate | copies | warning naming it | other mail | verdict |\n\
         |---|---|---|--:|---|---|---|\n",
    );
    for r in rows.iter().filter(|r| r.group == "damaged") {
        let (fate, copies, warn) = match &r.planted {
            Some(p) => (
                p.fate.clone(),
                p.copies.to_string(),
                p.warnings
                    .first()
                    .map_or("-".to_string(), |w| format!("`{}`", clip(w, 80))),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        let verdict = match (damaged_verdict(rows, r), catalogue_drift(r)) {
            (Some(v), _) if v.is_empty() => "as well as oqmgr".to_string(),
            (Some(v), _) => format!("WORSE: {}", v.join("; ")),
            (None, Some(d)) if !d.is_empty() => format!("differs from catalogue: {}", d.join("; ")),
            _ => String::new(),
        };
        let mut other = stop_word(&r.stop).to_string();
        if r.planted.is_none() || !r.notes.is_empty() || r.error.is_some() {
            let n = notes_of(r);
            if !n.is_empty() {
                other = format!("{other} ({n})");
            }
        }
        if r.planted.is_none() {
            let t = &r.tally;
            other = format!(
                "{other}; {} rcpts: {} delivered, {} lost, {} dup",
                t.accepted, t.delivered, t.lost, t.duplicated
            );
        }
        if let Some(false) = r.planted.as_ref().and_then(|p| p.target_intact) {
            other.push_str("; TARGET OUTSIDE THE QUEUE MODIFIED");
        }
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            cell(r.case.trim_start_matches("damaged/")),
            r.side,
            cell(&fate),
            copies,
            cell(&warn),
            cell(&other),
            cell(&verdict)
        ));
    }
    out
}

/// Totals per queue manager over all rows.
pub fn totals(rows: &[CaseResult]) -> String {
    let mut out = String::from(
        "| qmgr | rows | rcpts | delivered | bounced | queued | corrupt | lost | dup | silent stops |\n\
         |---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n",
    );
    for side in ["ours", "oqmgr"] {
        let mine: Vec<&CaseResult> = rows.iter().filter(|r| r.side == side).collect();
        if mine.is_empty() {
            continue;
        }
        let mut t = Tally::default();
        for r in &mine {
            t.add(&r.tally);
        }
        let silent = mine.iter().filter(|r| r.stop == Stop::Silent).count();
        out.push_str(&format!(
            "| {side} | {} | {} | {silent} |\n",
            mine.len(),
            joined(&t.counts(), " | ")
        ));
    }
    out
}

/// Everything, as one Markdown text.
pub fn render(rows: &[CaseResult]) -> String {
    format!(
        "### Cases\n\n{}\n### Damaged queue entries\n\n{}\n### Totals\n\n{}",
        main_table(rows),
        damaged_table(rows),
        totals(rows)
    )
}

/// One progress line for a finished row (stderr while the campaign runs).
pub fn progress_line(r: &CaseResult) -> String {
    let planted = r
        .planted
        .as_ref()
        .map(|p| {
            let target = match p.target_intact {
                Some(true) => " target=intact",
                Some(false) => " target=MODIFIED",
                None => "",
            };
            format!(
                " planted: {} x{} warn={}{target}",
                p.fate,
                p.copies,
                !p.warnings.is_empty()
            )
        })
        .unwrap_or_default();
    let counts: Vec<String> = COUNT_NAMES
        .iter()
        .zip(r.tally.counts())
        .map(|(n, v)| format!("{n}={v}"))
        .collect();
    format!(
        "{:<44} {:<5} {} stop={} drain={:.1}s{planted}{}",
        r.case,
        r.side,
        counts.join(" "),
        stop_word(&r.stop),
        r.drain_secs,
        r.error
            .as_ref()
            .map(|e| format!(" ERROR {e}"))
            .unwrap_or_default()
    )
}
