//! testing - support for the unit tests of code that works on queue files.
//!
//! The daemon names queue files relative to the queue directory, its
//! working directory (as Postfix's daemons do). Unit tests of that code
//! share one scratch queue directory per test process, made the working
//! directory once by [`queue_dir`]; each test uses queue IDs of its own.
//! No other unit test depends on the working directory.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The queue directories the scratch queue directory has.
const QUEUES: [&str; 8] = [
    "incoming", "active", "deferred", "defer", "bounce", "trace", "corrupt", "private",
];

/// The scratch queue directory of this test process, now the working
/// directory: made on first use, with the usual queue directories, and
/// kept until the process ends.
pub(crate) fn queue_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("oqmgr-unit-queue")
            .tempdir()
            .expect("a scratch queue directory")
            .keep();
        for q in QUEUES {
            std::fs::create_dir(dir.join(q)).expect("a queue directory");
        }
        std::env::set_current_dir(&dir).expect("chdir to the scratch queue directory");
        dir
    })
}
