//! Walking and moving the files of the queue directories (Postfix:
//! `mail_scan_dir.c` for the walk, `qmgr_move.c` for the move of
//! `active/` back to `incoming/` at start).
//!
//! [`walk`] lists the valid queue IDs below a queue directory, descending
//! its one-character hash directories and never following a link.
//! [`recover_active`] retries whatever a previous instance left in
//! `active/`. [`rename_into`] creates a missing hash subdirectory of the
//! target, and [`system_time`] makes a file time of a wall-clock instant;
//! the completion worker uses both too.
//!
//! # Compatibility
//! - A directory that cannot be opened, or a file of `active/` that
//!   cannot be stamped or renamed for another reason than being gone,
//!   stops the daemon with Postfix's fatal; master starts a new one later.
//! - Names that are not queue IDs are skipped; in `active/` each gets
//!   Postfix's `qmgr_move: ignored: queue active id <name>`.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration as StdDuration, SystemTime, UNIX_EPOCH};

use oqmgr::time::Instant;

use crate::daemon::site::Site;
use crate::postfix::log::{self, errno_text};
use crate::postfix::queue_file_write::set_next_attempt;
use crate::postfix::queue_id::queue_id_ok;

/// Moves every file of `active/` back to `incoming/`, stamped `now` (wall
/// clock), as oqmgr does at start: whatever a previous instance left there (a crash, a
/// `kill -9`) is retried first, and the agents' own locks protect a file an
/// old agent is still delivering. The stamp is set on the entry itself,
/// never through a link; a directory that cannot be read or changed stops
/// the daemon with Postfix's fatal.
pub fn recover_active(site: &Site, now: Instant) {
    let mut names = Vec::new();
    let mut bad = Vec::new();
    if let Err(fatal) = walk(Path::new("active"), 0, &mut names, Some(&mut bad)) {
        log::fatal(&fatal);
    }
    for name in bad {
        tracing::warn!("qmgr_move: ignored: queue active id {name}");
    }
    for id in names {
        let active = site.path("active", &id);
        if let Err(e) = set_next_attempt(&active, system_time(now)) {
            let text = format!(
                "qmgr_move: update {} time stamps: {}",
                active.display(),
                errno_text(&e)
            );
            if e.kind() != io::ErrorKind::NotFound {
                log::fatal(&text);
            }
            tracing::warn!("{text}");
            continue;
        }
        if let Err(e) = rename_into(&active, &site.path("incoming", &id)) {
            let text = format!(
                "qmgr_move: rename {id} from active to incoming: {}",
                errno_text(&e)
            );
            if e.kind() != io::ErrorKind::NotFound {
                log::fatal(&text);
            }
            tracing::warn!("{text}");
        }
    }
}

/// Collects the valid queue IDs below `dir`, descending `depth` levels of
/// one-character hash directories (Postfix: `mail_scan_dir_next`); names
/// that are not queue IDs go to `invalid` when given. A hash entry that is
/// not a directory (a link included: links are never followed) is skipped
/// with a warning. A directory that cannot be opened is Postfix's fatal
/// (`scan_dir_push: open directory ...`), returned as its text; an error
/// while reading one ends that directory with a warning (Postfix ends it
/// silently).
pub fn walk(
    dir: &Path,
    depth: usize,
    out: &mut Vec<String>,
    mut invalid: Option<&mut Vec<String>>,
) -> Result<(), String> {
    let entries = fs::read_dir(dir).map_err(|e| {
        format!(
            "scan_dir_push: open directory {}: {}",
            dir.display(),
            errno_text(&e)
        )
    })?;
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                tracing::warn!(
                    "scan_dir_next: read directory {}: {}",
                    dir.display(),
                    errno_text(&e)
                );
                break;
            }
        };
        let name = entry.file_name();
        let Some(name) = name.to_str().filter(|n| queue_id_ok(n)) else {
            if let Some(bad) = invalid.as_deref_mut() {
                bad.push(name.to_string_lossy().into_owned());
            }
            continue;
        };
        if depth > 0 {
            if name.len() != 1 {
                continue;
            }
            let path = entry.path();
            match fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => walk(&path, depth - 1, out, None)?,
                Ok(m) => tracing::warn!("{}: uid {}: not a directory", path.display(), m.uid()),
                Err(e) => tracing::warn!("{}: {}", path.display(), errno_text(&e)),
            }
        } else {
            out.push(name.to_string());
        }
    }
    Ok(())
}

/// `rename`, creating a missing hash subdirectory of the target once (the
/// queue directories themselves belong to `postfix start`).
pub fn rename_into(from: &Path, to: &Path) -> io::Result<()> {
    match fs::rename(from, to) {
        Err(e) if e.kind() == io::ErrorKind::NotFound && fs::symlink_metadata(from).is_ok() => {
            if let Some(parent) = to.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::rename(from, to)
        }
        other => other,
    }
}

/// A wall-clock instant (Unix milliseconds) as a file time.
pub fn system_time(at: Instant) -> SystemTime {
    UNIX_EPOCH + StdDuration::from_millis(at.as_millis())
}
