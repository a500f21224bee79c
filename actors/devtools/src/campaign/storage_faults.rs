//! storage_faults - the queue file system fills up, or the bounce daemon
//! cannot write its logs.
//!
//! - `full-disk`: the instance lives on a 64 MB tmpfs of its own (its
//!   maillog and the sinks' dumps do not). Mail to `ok.test` and to a
//!   `fault.test` that answers 4xx (so defer logs must be written) flows
//!   for a second, then a ballast file fills the file system to the last
//!   block for `fault_secs` while the source keeps trying (smtpd answers
//!   452, cleanup fails); then the ballast goes, the fault is lifted and
//!   the queue drains.
//! - `defer-unwritable`: `defer/` and its hash folders lose their write
//!   bit (mode 0500) before any deferral, with `fault.test` answering 4xx;
//!   repaired after `fault_secs`.
//! - `bounce-unwritable`: the same for `bounce/`, with `fault.test`
//!   answering 5xx.
//!
//! The drain time after the repair is the row's drain time. Master's lines
//! about crashed or throttled services during the fault are counted.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::rig::{make_dir, Rig, RigSpec, Side};
use super::{conclude, group_cases, pause, Case, CaseKind, CaseResult, Ctx};

/// The faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The queue file system is full.
    FullDisk,
    /// `defer/` is not writable.
    DeferUnwritable,
    /// `bounce/` is not writable.
    BounceUnwritable,
}

/// The case list of this group.
pub fn cases() -> Vec<Case> {
    group_cases(
        "storage",
        "storage",
        &[
            (
                Fault::FullDisk,
                "full-disk",
                "the queue file system fills to the last block",
            ),
            (
                Fault::DeferUnwritable,
                "defer-unwritable",
                "defer/ loses its write bit while mail is deferred",
            ),
            (
                Fault::BounceUnwritable,
                "bounce-unwritable",
                "bounce/ loses its write bit while mail bounces",
            ),
        ],
        ", then repaired",
        CaseKind::Storage,
    )
}

/// A tmpfs mounted for one case; unmounted on drop.
struct Mount {
    /// Mount point.
    dir: PathBuf,
}

impl Mount {
    /// Mounts a tmpfs of `mb` MB at a fresh folder.
    fn tmpfs(mb: u32) -> Result<Mount, String> {
        let dir = std::env::temp_dir().join(format!("oqmgr-campaign-fs-{}", std::process::id()));
        let _ = fs::create_dir(&dir);
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mb}m,mode=0755"),
                "tmpfs",
            ])
            .arg(&dir)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            let _ = fs::remove_dir(&dir);
            return Err(format!(
                "mount tmpfs: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Mount { dir })
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        let _ = fs::remove_dir(&self.dir);
    }
}

/// Writes zeros to `path` until the file system is full; returns bytes.
fn fill(path: &Path) -> u64 {
    let Ok(mut f) = fs::File::create(path) else {
        return 0;
    };
    let block = vec![0u8; 1 << 16];
    let mut n = 0u64;
    while f.write_all(&block).is_ok() {
        n += block.len() as u64;
    }
    // The last partial block.
    for size in [4096usize, 512, 1] {
        while f.write_all(&block[..size]).is_ok() {
            n += size as u64;
        }
    }
    n
}

/// Sets `mode` on `dir` and every folder below it.
fn chmod_tree(dir: &Path, mode: u32) {
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(mode));
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                chmod_tree(&e.path(), mode);
            }
        }
    }
}

/// Master's lines about services that crashed or were throttled.
fn master_trouble(log: &str) -> usize {
    log.lines()
        .filter(|l| {
            l.contains("postfix/master[")
                && (l.contains("exit status")
                    || l.contains("killed by signal")
                    || l.contains("throttling"))
        })
        .count()
}

/// Runs the case with `side`.
pub fn run(ctx: &mut Ctx, case: &Case, side: &Side, fault: Fault) -> CaseResult {
    let opts = ctx.opts;
    let row = CaseResult::new(&case.name, case.group, side);
    let mount = if fault == Fault::FullDisk {
        match Mount::tmpfs(64) {
            Ok(m) => Some(m),
            Err(e) => return row.failed(e),
        }
    } else {
        None
    };
    let spec = RigSpec {
        parent: mount.as_ref().map(|m| m.dir.clone()),
        ..RigSpec::default()
    };
    let fault_sink: &[&str] = if fault == Fault::BounceUnwritable {
        &["-f", "RCPT"]
    } else {
        &["-r", "RCPT"]
    };
    let mut rig = match Rig::start_with_sinks(side, &spec, fault_sink) {
        Ok(r) => r,
        Err(e) => return row.failed(e),
    };
    let logs_dir = match fault {
        Fault::DeferUnwritable => Some(rig.sb.queue_dir().join("defer")),
        Fault::BounceUnwritable => Some(rig.sb.queue_dir().join("bounce")),
        Fault::FullDisk => None,
    };
    if let Some(d) = &logs_dir {
        if let Err(e) = make_dir(d, 0o700) {
            return row.failed(e);
        }
        chmod_tree(d, 0o500);
    }
    let mark = rig.log_mark();
    let source = rig.inject("s", &["u1@ok.test", "x@fault.test"], opts.rate, None);
    let mut notes = Vec::new();
    let ballast = mount.as_ref().map(|m| m.dir.join("ballast"));
    if let Some(b) = &ballast {
        pause(1.0);
        notes.push(format!("filled {} MB", fill(b) >> 20));
    }
    pause(opts.fault_secs);
    let trouble = master_trouble(&rig.log_from(mark));
    let injected = source.stop();
    if let Some(b) = &ballast {
        let _ = fs::remove_file(b);
    }
    if let Some(d) = &logs_dir {
        chmod_tree(d, 0o700);
    }
    if let Err(e) = rig.sink("fault", &[]) {
        return row.failed(e);
    }
    let _ = rig.sb.postqueue(&["-f"]);
    let mut row = conclude(&rig, row, &injected, mark, opts.stall);
    row.notes.extend(notes);
    if trouble > 0 {
        row.notes.push(format!(
            "{trouble} master line(s) on crashed/throttled services"
        ));
    }
    drop(rig);
    drop(mount);
    row
}
