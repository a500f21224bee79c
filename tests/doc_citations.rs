//! Citations resolve: code and docs cite only what is in this repository.
//!
//! Every `docs/<file>` named in a `.rs`, `.md` or `.toml` file or a script
//! of the repository must exist; the old notes that lived outside it
//! (`postfix-internals.md`) are cited nowhere in code. A `§N.M` in a code
//! comment is a section of the Postfix notes, which are in several pages
//! (`docs/postfix-protocol.md` lists them): the section must be there, and
//! the comment must name the page that holds it.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// The repository's root (the core package is at the top).
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The files whose citations are checked: `.rs`, `.md`, `.toml`, and the
/// scripts of `actors/scripts/`; build output and VCS data left out.
fn cited_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("a readable folder") {
        let path = entry.expect("a folder entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if !name.starts_with('.') && name != "target" {
                cited_files(&path, out);
            }
            continue;
        }
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let script = path.parent().is_some_and(|p| p.ends_with("actors/scripts"));
        // This file names what it looks for.
        if path == root().join("tests/doc_citations.rs") {
            continue;
        }
        if matches!(ext, "rs" | "md" | "toml") || script {
            out.push(path);
        }
    }
}

/// The `docs/...` paths `text` names.
fn docs_paths(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("docs/") {
        let before = rest[..at].chars().next_back();
        let tail = &rest[at..];
        let len = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || "_-./".contains(c)))
            .unwrap_or(tail.len());
        let path = tail[..len].trim_end_matches('.');
        // `docs/` as a word of its own, not the end of another path.
        if before.map_or(true, |c| !(c.is_ascii_alphanumeric() || "_-./".contains(c))) {
            out.push(path.to_string());
        }
        rest = &tail[len.max(5)..];
    }
    out
}

/// The pages of the protocol notes: those the contents of
/// `docs/postfix-protocol.md` link to, as `docs/<page>`.
fn protocol_pages() -> Vec<String> {
    let index = fs::read_to_string(root().join("docs/postfix-protocol.md")).expect("the notes");
    let mut pages: Vec<String> = index
        .split("](")
        .skip(1)
        .filter_map(|after| after.split_once(')'))
        .map(|(link, _)| link)
        .filter(|link| link.starts_with("postfix-") && link.ends_with(".md"))
        .map(|link| format!("docs/{link}"))
        .collect();
    pages.sort();
    pages.dedup();
    pages
}

/// The section numbers of the protocol notes (`1`, `1.2`, ...), each with
/// the page that holds it.
fn protocol_sections() -> BTreeMap<String, String> {
    let mut sections = BTreeMap::new();
    for page in protocol_pages() {
        let notes = fs::read_to_string(root().join(&page)).expect("a page of the notes");
        for n in notes
            .lines()
            .filter_map(|l| l.strip_prefix("## ").or_else(|| l.strip_prefix("### ")))
            .filter_map(|h| h.split_whitespace().next())
            .map(|n| n.trim_end_matches('.').to_string())
            .filter(|n| n.starts_with(|c: char| c.is_ascii_digit()))
        {
            let other = sections.insert(n.clone(), page.clone());
            assert!(other.is_none(), "§{n} is on two pages of the notes");
        }
    }
    sections
}

/// The `§N.M` numbers `text` cites.
fn section_refs(text: &str) -> Vec<String> {
    text.split('§')
        .skip(1)
        .map(|after| {
            let n: String = after
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            n.trim_end_matches('.').to_string()
        })
        .filter(|n| !n.is_empty())
        .collect()
}

/// The comments of a Rust source, in blocks: consecutive comment lines are
/// one block, a trailing comment on a code line is one of its own.
fn comment_blocks(source: &str) -> Vec<(usize, String)> {
    let mut blocks: Vec<(usize, String)> = Vec::new();
    let mut open = false;
    for (n, line) in source.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("//") {
            if open {
                let block = blocks.last_mut().expect("an open block");
                block.1.push('\n');
                block.1.push_str(trimmed);
            } else {
                blocks.push((n + 1, trimmed.to_string()));
            }
            open = true;
        } else {
            open = false;
            if let Some(at) = line.find("// ") {
                blocks.push((n + 1, line[at..].to_string()));
            }
        }
    }
    blocks
}

#[test]
fn every_cited_docs_file_exists_and_sections_name_the_notes() {
    let root = root();
    let mut files = Vec::new();
    cited_files(&root, &mut files);
    files.sort();
    let sections = protocol_sections();
    assert!(
        sections.contains_key("7.5") && sections.contains_key("13.9"),
        "the notes have their sections"
    );
    let mut problems = Vec::new();
    for file in &files {
        let Ok(text) = fs::read_to_string(file) else {
            continue;
        };
        let shown = file.strip_prefix(&root).unwrap_or(file).display();
        for cited in docs_paths(&text) {
            if !root.join(&cited).exists() {
                problems.push(format!("{shown}: cites {cited}, which does not exist"));
            }
        }
        if file.extension().is_some_and(|e| e == "rs") {
            if text.contains("postfix-internals") {
                problems.push(format!(
                    "{shown}: cites the old postfix-internals.md (the pages that \
                     docs/postfix-protocol.md lists have its sections)"
                ));
            }
            for (line, block) in comment_blocks(&text) {
                let refs = section_refs(&block);
                if refs.is_empty() {
                    continue;
                }
                for r in refs {
                    match sections.get(&r) {
                        None => problems.push(format!(
                            "{shown}:{line}: §{r} is not a section of the Postfix notes \
                             (docs/postfix-protocol.md lists their pages)"
                        )),
                        Some(page) if !block.contains(page.as_str()) => problems.push(format!(
                            "{shown}:{line}: a citation of §{r} that does not name {page}"
                        )),
                        Some(_) => {}
                    }
                }
            }
        }
    }
    assert!(files.len() > 100, "the walk found the repository's files");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_checks_catch_what_they_are_for() {
    assert_eq!(
        docs_paths("see `docs/postfix-protocol.md` §7.5 and docs/x.md."),
        ["docs/postfix-protocol.md", "docs/x.md"]
    );
    assert!(docs_paths("https://docs.rs/foo and src/docs/y").is_empty());
    assert_eq!(section_refs("(§8.2, §13.2) and §9."), ["8.2", "13.2", "9"]);
    let blocks = comment_blocks("//! a\n//! §1.2\nfn f() {} // x §3\n");
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0], (1, "//! a\n//! §1.2".to_string()));
}
