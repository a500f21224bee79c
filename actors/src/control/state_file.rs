//! The suspensions' state file, `$data_directory/oqmgr-suspensions.json`:
//! what keeps a suspension in force across `postfix reload`, stop and
//! start, and `kill -9` of the queue manager.
//!
//! The queue manager may run chrooted in the queue directory, and
//! `data_directory` lies outside it. So [`StateFile::open`] opens the
//! directory before chroot and keeps the handle; every later access goes
//! through it (`openat`, `renameat`), never through a path. A save writes
//! a temporary file beside the real one, syncs it and renames it over the
//! old one, so a crash leaves either the old or the new file, never half
//! of one. Neither name is followed if it is a symbolic link.
//!
//! The file holds `{"v":1,"suspensions":[...]}` with times in milliseconds
//! since the epoch, and the queue IDs each suspension deferred (retried
//! when it ends).

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use oqmgr::control::Suspension;
use serde::{Deserialize, Serialize};

/// The file's name in `data_directory`.
pub const NAME: &str = "oqmgr-suspensions.json";
/// The temporary name a save writes first.
const TEMP: &str = "oqmgr-suspensions.json.tmp";
/// The largest state file read back (a corrupt or planted giant is refused).
const MAX_SIZE: u64 = 64 << 20;

/// The file's contents.
#[derive(Debug, Serialize, Deserialize)]
struct Contents {
    /// Format version.
    v: u32,
    /// The suspensions in force.
    suspensions: Vec<Suspension>,
}

/// A handle on `data_directory`, for the state file.
#[derive(Debug)]
pub struct StateFile {
    /// The open directory.
    dir: OwnedFd,
}

/// `name` as a C string (the names here are constants).
fn c(name: &str) -> CString {
    CString::new(name).expect("no NUL in a constant name")
}

impl StateFile {
    /// Opens `data_directory` (before chroot).
    pub fn open(data_directory: &Path) -> io::Result<StateFile> {
        use std::os::unix::ffi::OsStrExt;
        let path = CString::new(data_directory.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
        // SAFETY: a valid C string; the descriptor is owned below.
        let fd = unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just opened and is owned by nobody else.
        Ok(StateFile {
            dir: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Reads the suspensions back; `Ok(None)` when there is no file.
    pub fn load(&self) -> io::Result<Option<Vec<Suspension>>> {
        let name = c(NAME);
        // SAFETY: a valid directory descriptor and C string.
        let fd = unsafe {
            libc::openat(
                self.dir.as_raw_fd(),
                name.as_ptr(),
                libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK,
            )
        };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::NotFound {
                Ok(None)
            } else {
                Err(e)
            };
        }
        // SAFETY: just opened, owned here.
        let file = unsafe { File::from_raw_fd(fd) };
        if !file.metadata()?.file_type().is_file() {
            return Err(io::Error::other("not a regular file"));
        }
        let mut text = Vec::new();
        file.take(MAX_SIZE).read_to_end(&mut text)?;
        let contents: Contents = serde_json::from_slice(&text)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        Ok(Some(contents.suspensions))
    }

    /// Replaces the file with `suspensions`, atomically.
    pub fn save(&self, suspensions: &[Suspension]) -> io::Result<()> {
        let text = serde_json::to_vec(&Contents {
            v: 1,
            suspensions: suspensions.to_vec(),
        })
        .map_err(io::Error::other)?;
        let temp = c(TEMP);
        // SAFETY: a valid directory descriptor and C string.
        let fd = unsafe {
            libc::openat(
                self.dir.as_raw_fd(),
                temp.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o600,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: just opened, owned here.
        let mut file = unsafe { File::from_raw_fd(fd) };
        file.write_all(&text)?;
        file.sync_all()?;
        drop(file);
        let name = c(NAME);
        // SAFETY: valid descriptors and C strings.
        let rc = unsafe {
            libc::renameat(
                self.dir.as_raw_fd(),
                temp.as_ptr(),
                self.dir.as_raw_fd(),
                name.as_ptr(),
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // The rename itself is made durable with the directory.
        // SAFETY: a valid descriptor.
        unsafe { libc::fsync(self.dir.as_raw_fd()) };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oqmgr::control::Target;
    use oqmgr::time::Instant;

    #[test]
    fn saves_and_loads_through_the_directory_handle() {
        let dir = tempfile::tempdir().unwrap();
        let f = StateFile::open(dir.path()).unwrap();
        assert!(f.load().unwrap().is_none());
        let s = Suspension {
            target: Target::Destination("smtp:b.example".into()),
            since: Instant(1_000),
            until: Some(Instant(301_000)),
            reason: Some("maintenance".into()),
            deferred: ["ABC123".to_string()].into(),
        };
        f.save(std::slice::from_ref(&s)).unwrap();
        // Moving the directory does not matter: the handle is kept.
        let moved = dir.path().with_extension("moved");
        std::fs::rename(dir.path(), &moved).unwrap();
        assert_eq!(f.load().unwrap(), Some(vec![s]));
        assert!(!moved.join(TEMP).exists(), "the temporary file was renamed");
        f.save(&[]).unwrap();
        assert_eq!(f.load().unwrap(), Some(vec![]));
        std::fs::write(moved.join(NAME), "{half").unwrap();
        assert!(f.load().is_err());
        std::fs::remove_dir_all(&moved).unwrap();
    }
}
