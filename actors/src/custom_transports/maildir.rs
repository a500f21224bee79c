//! maildir - a built-in transport that delivers into a Maildir tree, one
//! folder per recipient (Postfix: `local/maildir.c` and `virtual/maildir.c`,
//! the delivery half).
//!
//! A recipient `user@domain` gets `<root>/<domain>/<user>/{tmp,new,cur}`
//! (created on first delivery, mode 0700; the domain in lower case). The
//! message is written to `tmp/<unique>`, synced, and renamed into
//! `new/<unique>`, so a mail reader never sees a partial file. Unique
//! names follow the Maildir convention `<sec>.M<usec>P<pid>Q<n>.<host>`.
//! The text starts with `Return-Path: <sender>` and `Delivered-To:
//! <recipient>`, as Postfix's local and virtual agents write them.
//!
//! # Results
//! - delivered: `2.0.0 delivered to maildir`;
//! - a recipient whose local part or domain cannot name a folder (empty,
//!   `.`/`..`, a `/`, a leading `.`, a NUL): bounced `5.1.3`;
//! - permission denied (the daemon runs as `mail_owner`, which must own or
//!   be allowed to write under `root`): deferred `4.2.0` with the path and
//!   the system error, so the administrator can fix it before the mail
//!   expires;
//! - disk full (`ENOSPC`): deferred `4.3.0 mail system full`; quota
//!   (`EDQUOT`): deferred `4.2.2 mailbox full`;
//! - any other error: deferred `4.2.0`.
//!
//! A failed delivery removes its `tmp/` file.
//!
//! # Ownership
//! The queue manager runs as `mail_owner` (`postfix`), so the tree and its
//! files belong to that user (folders 0700, files 0600), as in a virtual
//! mailbox store served by an IMAP server running under one account; give
//! `root` to `mail_owner` (or a group it is in, with group write). When the
//! qmgr service is chrooted (master.cf), `root` is inside the chroot.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use actix::{Actor, Context, Handler, ResponseFuture};

use super::{Content, Delivery, Dsn, RcptResult, Reply};
use crate::clock::Clock;
use crate::daemon::active_table::timeval;
use crate::daemon::active_table::wire_bytes;

/// A maildir transport's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaildirConfig {
    /// The top of the tree.
    pub root: PathBuf,
}

/// The maildir transport actor.
pub struct Maildir {
    /// Settings.
    config: MaildirConfig,
    /// For unique names.
    clock: Clock,
    /// The host name in unique names.
    host: String,
}

impl Maildir {
    /// A maildir transport with these settings.
    pub fn new(config: MaildirConfig, clock: Clock) -> Maildir {
        let host = crate::config::system_host_name().replace(['/', ':'], "_");
        Maildir {
            config,
            clock,
            host,
        }
    }
}

impl Actor for Maildir {
    type Context = Context<Self>;
}

impl Handler<Delivery> for Maildir {
    type Result = ResponseFuture<Reply>;

    fn handle(&mut self, d: Delivery, _ctx: &mut Context<Self>) -> Self::Result {
        let root = self.config.root.clone();
        let clock = self.clock;
        let host = self.host.clone();
        Box::pin(async move {
            let n = d.recipients.len();
            let job = tokio::task::spawn_blocking(move || {
                let results: Vec<RcptResult> = d
                    .recipients
                    .iter()
                    .map(|r| {
                        // A folder name is text: an address that is not
                        // UTF-8 goes lossily.
                        let bytes = wire_bytes(&r.address);
                        let address = String::from_utf8_lossy(&bytes);
                        deliver_one(&root, &d.content, &d.sender, &address, &clock, &host)
                    })
                    .collect();
                results
            });
            match job.await {
                Ok(results) => Reply::new(results),
                Err(e) => Reply::new(vec![RcptResult::deferred("4.3.0", e.to_string()); n]),
            }
        })
    }
}

/// Counter for unique names within this process.
static SEQ: AtomicU64 = AtomicU64::new(0);

/// The folder of `address` under `root`, or why it has none.
pub fn folder(root: &Path, address: &str) -> Result<PathBuf, String> {
    let (local, domain) = address
        .rsplit_once('@')
        .ok_or_else(|| format!("recipient address \"{address}\" has no domain"))?;
    let domain = domain.to_ascii_lowercase();
    for part in [local, domain.as_str()] {
        if part.is_empty() || part.starts_with('.') || part.contains(['/', '\0']) {
            return Err(format!(
                "recipient address \"{address}\" cannot name a mailbox folder"
            ));
        }
    }
    Ok(root.join(domain).join(local))
}

/// Delivers one copy; the result for that recipient.
pub fn deliver_one(
    root: &Path,
    content: &Content,
    sender: &str,
    address: &str,
    clock: &Clock,
    host: &str,
) -> RcptResult {
    let dir = match folder(root, address) {
        Ok(d) => d,
        Err(why) => return RcptResult::bounced("5.1.3", why),
    };
    let tv = timeval(clock.wall_now());
    let name = format!(
        "{}.M{}P{}Q{}.{host}",
        tv.sec,
        tv.usec,
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    match write(&dir, &name, content, sender, address) {
        Ok(()) => RcptResult::sent("delivered to maildir"),
        Err(Failure::Content(e)) => {
            RcptResult::deferred("4.3.0", format!("error reading message: {e}"))
        }
        Err(Failure::Io(what, path, e)) => {
            let dsn = io_dsn(what, &path, &e);
            RcptResult::deferred(dsn.status, dsn.reason)
        }
    }
}

/// The deferral for an I/O error.
fn io_dsn(what: &str, path: &Path, e: &io::Error) -> Dsn {
    let text = crate::postfix::log::errno_text(e);
    match e.raw_os_error() {
        Some(libc::ENOSPC) => Dsn::new(
            "4.3.0",
            format!("mail system full: {what} {}: {text}", path.display()),
        ),
        Some(libc::EDQUOT) => Dsn::new(
            "4.2.2",
            format!("mailbox full: {what} {}: {text}", path.display()),
        ),
        _ => Dsn::new(
            "4.2.0",
            format!("maildir delivery failed: {what} {}: {text}", path.display()),
        ),
    }
}

/// Why a write failed.
enum Failure {
    /// The queue file's content could not be read.
    Content(super::content::ContentError),
    /// A file system step: what, where, why.
    Io(&'static str, PathBuf, io::Error),
}

/// Creates the folders if needed, writes `tmp/name`, renames it to
/// `new/name`.
fn write(
    dir: &Path,
    name: &str,
    content: &Content,
    sender: &str,
    address: &str,
) -> Result<(), Failure> {
    let mut builder = DirBuilder::new();
    builder.recursive(true).mode(0o700);
    for sub in ["tmp", "new", "cur"] {
        let p = dir.join(sub);
        builder
            .create(&p)
            .map_err(|e| Failure::Io("create", p.clone(), e))?;
    }
    let tmp = dir.join("tmp").join(name);
    let new = dir.join("new").join(name);
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| Failure::Io("create", tmp.clone(), e))?;
    let result = fill(&file, &tmp, content, sender, address).and_then(|()| {
        fs::rename(&tmp, &new).map_err(|e| Failure::Io("rename to", new.clone(), e))
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes the headers and the text, then syncs.
fn fill(
    file: &File,
    tmp: &Path,
    content: &Content,
    sender: &str,
    address: &str,
) -> Result<(), Failure> {
    let io = |e| Failure::Io("write", tmp.to_path_buf(), e);
    let mut out = io::BufWriter::new(file);
    write!(out, "Return-Path: <{sender}>\nDelivered-To: {address}\n").map_err(io)?;
    let mut reader = content.reader().map_err(Failure::Content)?;
    while let Some(piece) = reader.next_chunk().map_err(Failure::Content)? {
        out.write_all(piece).map_err(io)?;
    }
    out.flush().map_err(io)?;
    drop(out);
    file.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postfix::record::{encode_record, rec};
    use oqmgr::entry::RecipientStatus;
    use std::os::unix::fs::PermissionsExt;

    fn queue_file(dir: &Path, lines: &[&str]) -> Content {
        let mut out = Vec::new();
        encode_record(&mut out, rec::MESG, b"");
        let data_offset = out.len() as i64;
        for l in lines {
            encode_record(&mut out, rec::NORM, l.as_bytes());
        }
        encode_record(&mut out, rec::XTRA, b"");
        encode_record(&mut out, rec::END, b"");
        let path = dir.join("QF");
        fs::write(&path, out).unwrap();
        Content {
            path,
            data_offset,
            size_hint: 0,
        }
    }

    #[test]
    fn folders_are_safe() {
        let root = Path::new("/r");
        assert_eq!(folder(root, "U@Ex.COM").unwrap(), Path::new("/r/ex.com/U"));
        for bad in [
            "nodomain",
            "@x",
            "a@",
            "../x@d",
            "a/b@d",
            ".hidden@d",
            "a@..",
            "a@b/c",
        ] {
            assert!(folder(root, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn delivers_atomically_with_unique_names() {
        let t = tempfile::tempdir().unwrap();
        let c = queue_file(t.path(), &["Subject: hi", "", "body"]);
        let root = t.path().join("mail");
        let clock = Clock::wall();
        for _ in 0..2 {
            let r = deliver_one(&root, &c, "s@x", "u@D.example", &clock, "h");
            assert_eq!(r.status, RecipientStatus::Sent, "{r:?}");
        }
        let new = root.join("d.example/u/new");
        let mut files: Vec<_> = fs::read_dir(&new)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert_eq!(files.len(), 2);
        assert_ne!(files[0], files[1]);
        assert_eq!(
            fs::read_to_string(&files[0]).unwrap(),
            "Return-Path: <s@x>\nDelivered-To: u@D.example\nSubject: hi\n\nbody\n"
        );
        assert_eq!(
            fs::read_dir(root.join("d.example/u/tmp")).unwrap().count(),
            0
        );
        assert!(root.join("d.example/u/cur").is_dir());
        let bad = deliver_one(&root, &c, "s@x", "../../etc@x", &clock, "h");
        assert_eq!(bad.status, RecipientStatus::Bounced);
        assert_eq!(bad.dsn.status, "5.1.3");
    }

    #[test]
    fn errors_defer_with_reasons() {
        let t = tempfile::tempdir().unwrap();
        let c = queue_file(t.path(), &["x"]);
        let root = t.path().join("ro");
        fs::create_dir(&root).unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o500)).unwrap();
        let clock = Clock::wall();
        // Root ignores permissions; drop the test's meaning only then.
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            let r = deliver_one(&root, &c, "", "u@d", &clock, "h");
            assert_eq!(r.status, RecipientStatus::Deferred);
            assert_eq!(r.dsn.status, "4.2.0");
            assert!(r.dsn.reason.contains("Permission denied"), "{:?}", r.dsn);
        }
        // Even as root: a file where the tree should be defers 4.2.0.
        let file_root = t.path().join("file");
        fs::write(&file_root, "").unwrap();
        let r = deliver_one(&file_root, &c, "", "u@d", &clock, "h");
        assert_eq!(
            (r.status, r.dsn.status.as_str()),
            (RecipientStatus::Deferred, "4.2.0")
        );
        assert!(r.dsn.reason.contains("Not a directory"), "{:?}", r.dsn);
        // A content error defers 4.3.0 and leaves no tmp file.
        let broken = Content {
            data_offset: 1,
            ..c.clone()
        };
        let root2 = t.path().join("m2");
        let r = deliver_one(&root2, &broken, "", "u@d", &clock, "h");
        assert_eq!(
            (r.status, r.dsn.status.as_str()),
            (RecipientStatus::Deferred, "4.3.0")
        );
        assert_eq!(fs::read_dir(root2.join("d/u/tmp")).unwrap().count(), 0);
        // The mapping of errno values.
        let p = Path::new("/x");
        let d = io_dsn("write", p, &io::Error::from_raw_os_error(libc::ENOSPC));
        assert_eq!(d.status, "4.3.0");
        assert!(d.reason.starts_with("mail system full"), "{d:?}");
        let d = io_dsn("write", p, &io::Error::from_raw_os_error(libc::EDQUOT));
        assert_eq!(d.status, "4.2.2");
        let d = io_dsn("create", p, &io::Error::from_raw_os_error(libc::EACCES));
        assert_eq!(d.status, "4.2.0");
        assert!(d.reason.contains("Permission denied"), "{d:?}");
    }
}
