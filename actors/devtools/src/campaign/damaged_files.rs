//! damaged_files - plants entries from the damage catalogue
//! ([`super::damage_kinds`]) in a live queue and sees what the queue
//! manager makes of them while normal mail flows.
//!
//! # A run
//! A fresh instance with healthy sinks and a background source; the
//! entries are planted (files are written at mode 0600 and made ready
//! last, as cleanup does, so no queue manager reads half a file), the
//! queue manager is kicked (`I`, and `D` for `deferred/`), and after
//! `damaged_secs` the source stops, locks are released and the queue
//! drains (planted entries that stay put do not hold the drain up). Then,
//! per entry: where it ended ([`Planted::fate`]), how many copies of its
//! message the sinks got, the queue manager's warnings naming it, whether
//! a file a link pointed to outside the queue is unchanged, and whether
//! bytes that must reach the sink did.
//!
//! The full campaign runs each kind in an instance of its own. The short
//! form plants every kind not marked `isolate` in one instance (one row
//! per kind, plus a row for the shared background mail) and the others
//! one by one.

use std::ffi::{CString, OsStr};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use oqmgr_actors::clock::tooling_now;
use oqmgr_actors::postfix::queue_id::QueueHashing;

use super::damage_kinds::{catalogue, DamageKind, Entry, Expect, Made, Plant};
use super::queue_template::{id_for, tag_for, Template};
use super::rig::{file_name, make_dir, walk, Rig, RigSpec, Side, ALL_QUEUES};
use super::{judge, pause, Case, CaseKind, CaseResult, Ctx, Planted, Stop};

/// The case list of this group.
pub fn cases() -> Vec<Case> {
    catalogue()
        .iter()
        .enumerate()
        .map(|(i, k)| Case {
            name: format!("damaged/{}", k.name),
            group: "damaged",
            about: k.about.to_string(),
            kind: CaseKind::Damaged(i),
        })
        .collect()
}

/// uid and gid of the `postfix` user (the mail owner).
pub fn mail_owner() -> Option<(u32, u32)> {
    let name = CString::new("postfix").ok()?;
    // SAFETY: getpwnam returns a pointer into static storage or NULL; we
    // copy the two fields out at once, in this single-threaded use.
    unsafe {
        let pw = libc::getpwnam(name.as_ptr());
        if pw.is_null() {
            None
        } else {
            Some(((*pw).pw_uid, (*pw).pw_gid))
        }
    }
}

/// lchown(2): changes the owner of `path` itself, never a link's target.
fn lchown(path: &Path, owner: (u32, u32)) -> Result<(), String> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: `c` is a valid NUL-terminated path for the call's duration.
    if unsafe { libc::lchown(c.as_ptr(), owner.0, owner.1) } == 0 {
        Ok(())
    } else {
        Err(format!(
            "lchown {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ))
    }
}

/// One planted entry and what is needed to judge it.
struct Planting {
    /// Catalogue index.
    index: usize,
    /// How it was planted.
    plant: Plant,
    /// Its path(s) in the queue.
    paths: Vec<PathBuf>,
    /// The file a link points to, outside the queue.
    outside: Option<PathBuf>,
    /// A held lock (released before the drain).
    lock: Option<File>,
    /// The case's tag.
    tag: String,
    /// The case's queue ID.
    id: String,
}

/// Writes `bytes` as a ready queue file at `path` the way cleanup does:
/// created 0600, filled, owned, stamped, then given its final mode.
fn write_file(
    path: &Path,
    bytes: &[u8],
    p: &Plant,
    owner: (u32, u32),
) -> Result<Option<File>, String> {
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    if !p.root_owned {
        lchown(path, owner)?;
    }
    let lock = if p.locked {
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(format!("flock {}", path.display()));
        }
        Some(f.try_clone().map_err(err)?)
    } else {
        None
    };
    if p.future_secs > 0 {
        #[allow(clippy::disallowed_methods)] // a file stamp, not a schedule
        let then = SystemTime::now() + Duration::from_secs(p.future_secs);
        f.set_times(fs::FileTimes::new().set_accessed(then).set_modified(then))
            .map_err(err)?;
    }
    fs::set_permissions(path, fs::Permissions::from_mode(p.mode)).map_err(err)?;
    Ok(lock)
}

/// Plants kind `index` in `rig`; `work` holds files outside the queue.
fn plant(
    rig: &Rig,
    t: &Template,
    index: usize,
    kind: DamageKind,
    work: &Path,
) -> Result<Planting, String> {
    let owner = mail_owner().ok_or("no postfix user")?;
    let (tag, id) = (tag_for(index), id_for(index));
    let made = Made {
        template: t,
        tag: tag.clone(),
        id: id.clone(),
    };
    let p = (kind.make)(&made);
    let mut dir = rig.sb.queue_dir().join(p.queue);
    if p.queue == "deferred" {
        let hashed = QueueHashing::default().queue_dir("deferred", &id);
        let sub = p.hash.map_or_else(
            || hashed.trim_end_matches('/').to_string(),
            |h| format!("deferred/{h}"),
        );
        dir = rig.sb.queue_dir().join(sub);
        if !dir.exists() {
            make_dir(&dir, 0o700)?;
            lchown(&dir, owner)?;
        }
    }
    let path = dir.join(OsStr::from_bytes(&p.name));
    let mut planting = Planting {
        index,
        plant: p.clone(),
        paths: vec![path.clone()],
        outside: None,
        lock: None,
        tag,
        id: id.clone(),
    };
    match &p.entry {
        Entry::File(bytes) => planting.lock = write_file(&path, bytes, &p, owner)?,
        Entry::HardLink(bytes) => {
            write_file(&path, bytes, &p, owner)?;
            let second = dir.join(format!("DB{}", &id[2..]));
            fs::hard_link(&path, &second).map_err(|e| format!("link: {e}"))?;
            planting.paths.push(second);
        }
        Entry::Fifo => {
            let c = CString::new(path.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
            // SAFETY: `c` is a valid path for the call's duration.
            if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
                return Err(format!("mkfifo: {}", std::io::Error::last_os_error()));
            }
            lchown(&path, owner)?;
            fs::set_permissions(&path, fs::Permissions::from_mode(p.mode))
                .map_err(|e| e.to_string())?;
        }
        Entry::Dir => {
            make_dir(&path, p.mode)?;
            lchown(&path, owner)?;
        }
        Entry::Symlink(target) => {
            let outside = work.join(format!("outside-{id}"));
            if let Some(bytes) = target {
                fs::write(&outside, bytes).map_err(|e| e.to_string())?;
                lchown(&outside, owner)?;
                fs::set_permissions(&outside, fs::Permissions::from_mode(0o700))
                    .map_err(|e| e.to_string())?;
                planting.outside = Some(outside.clone());
            }
            std::os::unix::fs::symlink(&outside, &path).map_err(|e| format!("symlink: {e}"))?;
            lchown(&path, owner)?;
        }
    }
    Ok(planting)
}

/// Where `path` is now: `in place`, `gone`, or the queue holding an entry
/// of the same name.
fn fate_of(rig: &Rig, path: &Path) -> String {
    if fs::symlink_metadata(path).is_ok() {
        return "in place".into();
    }
    let name = path.file_name().unwrap_or_default().to_owned();
    for q in ALL_QUEUES {
        let mut found = false;
        walk(&rig.sb.queue_dir().join(q), &mut |p, _| {
            found |= p.file_name() == Some(name.as_os_str());
        });
        if found {
            return q.to_string();
        }
    }
    "gone".into()
}

/// After the drain: gives planted entries that oqmgr takes out of the live
/// queues (catalogue fate `gone` or `corrupt`) up to `limit` to leave
/// them, with a `postqueue -f` every 3 s (a locked file waits 60 s
/// otherwise, a file stamped in the future for good, a deferred one its
/// backoff), so a fate is compared once it is final.
fn settle(rig: &Rig, plantings: &[Planting], limit: Duration) {
    let kinds = catalogue();
    let pending = || {
        plantings
            .iter()
            .filter(|p| matches!(kinds[p.index].oqmgr.fate, "gone" | "corrupt"))
            .flat_map(|p| p.paths.iter())
            .any(|path| {
                matches!(
                    fate_of(rig, path).as_str(),
                    "in place" | "incoming" | "active" | "deferred"
                )
            })
    };
    let start = tooling_now();
    let mut last_flush = None;
    while pending() && tooling_now() - start < limit {
        if last_flush
            .is_none_or(|t: std::time::Instant| tooling_now() - t >= Duration::from_secs(3))
        {
            let _ = rig.sb.postqueue(&["-f"]);
            last_flush = Some(tooling_now());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Judges one planted entry after the drain.
fn planted_outcome(rig: &Rig, p: &Planting, mark: u64) -> Planted {
    let sinks = rig.sink_record();
    let copies = sinks
        .delivered
        .iter()
        .filter(|((tag, _), _)| *tag == p.tag)
        .map(|(_, n)| *n)
        .sum();
    let fates: Vec<String> = p.paths.iter().map(|path| fate_of(rig, path)).collect();
    let mut fate = fates[0].clone();
    if fates.iter().any(|f| *f != fate) {
        fate = fates.join("+");
    }
    let lower = p.id.to_ascii_lowercase();
    let warnings = rig
        .qmgr_warnings(mark)
        .into_iter()
        .filter(|w| w.to_ascii_lowercase().contains(&lower))
        .collect();
    let target_intact = match (&p.plant.entry, &p.outside) {
        (Entry::Symlink(Some(bytes)), Some(o)) => Some(fs::read(o).is_ok_and(|b| b == *bytes)),
        _ => None,
    };
    Planted {
        fate,
        copies,
        warnings,
        target_intact,
    }
}

/// True when some sink dump holds `bytes`.
fn sink_has(rig: &Rig, bytes: &[u8]) -> bool {
    let mut found = false;
    walk(&rig.dump_dir("ok"), &mut |p, _| {
        found |= fs::read(p).is_ok_and(|b| super::inject::find(&b, bytes).is_some());
    });
    found
}

/// Runs one kind in an instance of its own.
pub fn run(ctx: &mut Ctx, case: &Case, side: &Side, index: usize) -> CaseResult {
    let mut rows = run_batch(ctx, side, &[index]);
    let mut row = rows.remove(0);
    row.case = case.name.clone();
    row
}

/// Plants every kind in `indices` in one instance; returns one row per
/// kind (the first also carries the background mail's tally when there is
/// only one kind; otherwise a last row `damaged/background` does).
pub fn run_batch(ctx: &mut Ctx, side: &Side, indices: &[usize]) -> Vec<CaseResult> {
    let kinds = catalogue();
    let name = |i: usize| format!("damaged/{}", kinds[i].name);
    let fail = |why: String| -> Vec<CaseResult> {
        indices
            .iter()
            .map(|&i| CaseResult::new(&name(i), "damaged", side).failed(why.clone()))
            .collect()
    };
    if ctx.template.is_none() {
        match Template::capture() {
            Ok(t) => ctx.template = Some(t),
            Err(e) => return fail(e),
        }
    }
    let t = ctx.template.clone().expect("template");
    let opts = ctx.opts;
    let mut rig = match Rig::start_with_sinks(side, &RigSpec::default(), &[]) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let mark = rig.log_mark();
    let source = rig.inject("g", &["u1@ok.test"], opts.rate / 2.0, None);
    pause(0.5);
    let work = rig.work_dir().to_path_buf();
    let mut plantings = Vec::new();
    let mut errors = Vec::new();
    for &i in indices {
        match plant(&rig, &t, i, kinds[i], &work) {
            Ok(p) => plantings.push(p),
            Err(e) => errors.push((i, e)),
        }
    }
    for p in &plantings {
        for path in &p.paths {
            rig.ignore(file_name(path));
        }
    }
    let _ = rig.sb.kick_qmgr(b"I");
    let _ = rig.sb.kick_qmgr(b"D");
    pause(opts.damaged_secs);
    let injected = source.stop();
    for p in &mut plantings {
        p.lock = None;
    }
    let drained = rig.drain(Duration::from_secs(3), opts.stall, opts.stall * 4);
    settle(&rig, &plantings, opts.stall);
    let mut background = CaseResult::new("damaged/background", "damaged", side);
    judge(&rig, &mut background, &injected, mark, &drained);
    let mut rows = Vec::new();
    for p in &plantings {
        let mut row = CaseResult::new(&name(p.index), "damaged", side);
        let planted = planted_outcome(&rig, p, mark);
        if let Some(bytes) = &p.plant.sink_bytes {
            row.notes.push(format!(
                "address bytes kept at the sink: {}",
                sink_has(&rig, bytes)
            ));
        }
        row.stop = background.stop.clone();
        row.planted = Some(planted);
        rows.push(row);
    }
    for (i, e) in errors {
        rows.push(CaseResult::new(&name(i), "damaged", side).failed(e));
    }
    if rows.len() == 1 {
        rows[0].tally = background.tally.clone();
        rows[0].drain_secs = background.drain_secs;
        rows[0].notes.extend(background.notes);
    } else {
        rows.push(background);
    }
    rows
}

/// What oqmgr did with an entry, as a yardstick for ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Where the entry ended.
    pub fate: String,
    /// Copies delivered (least, most).
    pub copies: (u32, u32),
    /// A warning named it.
    pub logs: bool,
    /// Other mail stopped.
    pub stopped: bool,
}

impl Reference {
    /// The catalogue's expectation (other mail kept moving).
    pub fn from_catalogue(e: &Expect) -> Reference {
        Reference {
            fate: e.fate.to_string(),
            copies: e.copies,
            logs: e.logs,
            stopped: e.stops,
        }
    }

    /// What an oqmgr row shows; where the catalogue says the copies
    /// depend on timing, its range stands.
    pub fn from_row(p: &Planted, stop: &Stop, catalogue: &Expect) -> Reference {
        let copies = if catalogue.copies.0 == catalogue.copies.1 {
            (p.copies, p.copies)
        } else {
            catalogue.copies
        };
        Reference {
            fate: p.fate.clone(),
            copies,
            logs: !p.warnings.is_empty(),
            stopped: *stop != Stop::None,
        }
    }
}

/// Ways a planted entry was handled worse than `reference`; empty when it
/// was handled at least as well. `stop` is the row's stop.
pub fn shortfalls(p: &Planted, stop: &Stop, reference: &Reference) -> Vec<String> {
    let mut out = Vec::new();
    let (least, most) = reference.copies;
    // A file kept in corrupt/ is the operator's to inspect: delivering
    // fewer copies of it than oqmgr did before giving up is not worse.
    let fewer_ok = p.fate == "corrupt" && reference.fate == "corrupt";
    if (p.copies < least && !fewer_ok) || p.copies > most {
        let theirs = if least == most {
            least.to_string()
        } else {
            format!("{least}-{most}")
        };
        out.push(format!("{} copies delivered, oqmgr {theirs}", p.copies));
    }
    if reference.logs && p.warnings.is_empty() {
        out.push("no warning naming it (oqmgr logs one)".into());
    }
    if p.fate != reference.fate {
        out.push(format!("ends {}, oqmgr {}", p.fate, reference.fate));
    }
    if p.target_intact == Some(false) {
        out.push("file outside the queue was modified".into());
    }
    if *stop != Stop::None && !reference.stopped {
        out.push(match stop {
            Stop::Silent => "other mail stopped, silently".to_string(),
            _ => "other mail stopped".to_string(),
        });
    }
    out
}

/// The catalogue's expectation for kind `index`.
pub fn expectation(index: usize) -> Expect {
    catalogue()[index].oqmgr
}

/// The catalogue index of the kind named `name` (without `damaged/`).
pub fn index_of(name: &str) -> Option<usize> {
    catalogue().iter().position(|k| k.name == name)
}
