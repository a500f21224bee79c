//! A queue manager with one custom transport written in Rust.
//!
//! The `archive` transport writes each message it is given into
//! `$ARCHIVE_DIR/<queue id>.<n>.eml` (default `/var/spool/archive`) with
//! the envelope on top, bounces recipients whose local part is `nobody`
//! (`5.1.1`), and defers the batch when the folder cannot be written
//! (`4.3.0`). Everything else (windows, feedback, deferral, bounce notices,
//! status lines, trace reports) comes from the daemon.
//!
//! Build it and put it in master.cf's qmgr slot instead of `oqmgr`:
//! ```text
//! cargo build --release --example custom_transport
//! # master.cf:   qmgr unix n - n 300 1 custom_transport
//! # main.cf:     transport_maps = inline:{ archive.example = archive: }
//! ```
//! Mail to `anyone@archive.example` then lands in the archive folder; no
//! master.cf line is needed for `archive` itself.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use actix::{Actor, Context, Handler, ResponseFuture};
use oqmgr_actors::custom_transports::{Delivery, RcptResult, Reply};

/// Writes messages into a folder.
struct Archive {
    /// Where the files go.
    dir: PathBuf,
}

impl Actor for Archive {
    type Context = Context<Self>;
}

/// Makes file names unique within the process.
static SEQ: AtomicU64 = AtomicU64::new(0);

impl Handler<Delivery> for Archive {
    type Result = ResponseFuture<Reply>;

    fn handle(&mut self, d: Delivery, _ctx: &mut Context<Self>) -> Self::Result {
        let dir = self.dir.clone();
        // File I/O off the actor thread.
        Box::pin(async move {
            let n = d.recipients.len();
            tokio::task::spawn_blocking(move || archive(&dir, &d))
                .await
                .unwrap_or_else(|e| {
                    Reply::new(vec![RcptResult::deferred("4.3.0", e.to_string()); n])
                })
        })
    }
}

/// Writes one copy for the batch and answers per recipient.
fn archive(dir: &Path, d: &Delivery) -> Reply {
    let wanted: Vec<bool> = d
        .recipients
        .iter()
        .map(|r| !r.address.starts_with("nobody@"))
        .collect();
    if wanted.iter().any(|w| *w) {
        let name = format!("{}.{}.eml", d.queue_id, SEQ.fetch_add(1, Ordering::Relaxed));
        if let Err(e) = write_copy(&dir.join(name), d) {
            return Reply::all(d, RcptResult::deferred("4.3.0", format!("archive: {e}")));
        }
    }
    let results = wanted
        .iter()
        .map(|&w| {
            if w {
                RcptResult::sent(format!("archived in {}", dir.display()))
            } else {
                RcptResult::bounced("5.1.1", "this address is not archived")
            }
        })
        .collect();
    Reply::new(results)
}

/// The envelope as headers, then the message, streamed from the queue file.
fn write_copy(path: &Path, d: &Delivery) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(fs::File::create(path)?);
    writeln!(out, "X-Envelope-From: <{}>", d.sender)?;
    for r in &d.recipients {
        writeln!(out, "X-Envelope-To: <{}>", r.address)?;
    }
    let mut text = d.content.reader()?;
    std::io::copy(&mut text, &mut out)?;
    out.into_inner()?.sync_all()
}

fn main() {
    let dir =
        std::env::var_os("ARCHIVE_DIR").map_or_else(|| "/var/spool/archive".into(), PathBuf::from);
    oqmgr_actors::daemon::main_with(move |transports| {
        transports.add("archive", Archive { dir }.start().recipient());
    });
}
