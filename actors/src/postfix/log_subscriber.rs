//! A `tracing` subscriber that writes events as Postfix log lines through
//! the process-wide [`Logger`](super::log::Logger); the daemon's analogue of
//! Postfix routing every `msg_*()` call through `msg_output()`.
//!
//! Level map: `ERROR` → `error: `, `WARN` → `warning: `, `INFO` → info,
//! `DEBUG` → info only with `-v`, `TRACE` → info only with `-v -v` (Postfix's
//! verbose lines are plain info lines). `fatal:`/`panic:` are not tracing
//! levels: call [`super::log::fatal`] / [`super::log::panic`], which also
//! end the process.
//!
//! The line is the event's `message`, then any other fields as
//! ` name=value` (Postfix lines have no fields; code that wants an exact
//! Postfix line puts everything into the message). Spans are accepted and
//! ignored: Postfix has no notion of them.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

use super::log::{self, Severity};

/// The subscriber; install with `tracing::subscriber::set_global_default`.
#[derive(Debug)]
pub struct PostfixSubscriber {
    /// Most detailed level passed on.
    max_level: Level,
    /// Source of span ids (spans are otherwise ignored).
    next_span: AtomicU64,
}

impl PostfixSubscriber {
    /// Passes INFO and above, plus DEBUG for `verbose >= 1` and TRACE for
    /// `verbose >= 2` (the `-v` count).
    pub fn new(verbose: u32) -> PostfixSubscriber {
        let max_level = match verbose {
            0 => Level::INFO,
            1 => Level::DEBUG,
            _ => Level::TRACE,
        };
        PostfixSubscriber {
            max_level,
            next_span: AtomicU64::new(1),
        }
    }
}

/// Severity for a tracing level.
pub fn severity_of(level: &Level) -> Severity {
    match *level {
        Level::ERROR => Severity::Error,
        Level::WARN => Severity::Warning,
        _ => Severity::Info,
    }
}

/// Collects the message and the other fields of one event.
#[derive(Default)]
struct Line {
    /// The `message` field.
    message: String,
    /// ` name=value` for every other field.
    rest: String,
}

impl Visit for Line {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.rest, " {}={}", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.rest, " {}={:?}", field.name(), value);
        }
    }
}

impl Subscriber for PostfixSubscriber {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= self.max_level
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::from_level(
            self.max_level,
        ))
    }

    fn new_span(&self, _span: &Attributes<'_>) -> Id {
        Id::from_u64(self.next_span.fetch_add(1, Ordering::Relaxed).max(1))
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        // Room for a typical line, so that formatting it does not grow the
        // buffer step by step.
        let mut line = Line {
            message: String::with_capacity(160),
            rest: String::new(),
        };
        event.record(&mut line);
        line.message.push_str(&line.rest);
        log::log(severity_of(event.metadata().level()), &line.message);
    }

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postfix::log::{install, LogConfig, LogSink, Logger};
    use std::os::unix::net::UnixDatagram;

    #[test]
    fn events_become_postfix_lines() {
        let dir = std::env::temp_dir().join(format!("oqmgr-sub-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("postlog");
        let server = UnixDatagram::bind(&path).unwrap();
        server
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        install(Logger::new(LogConfig {
            tag: "postfix/qmgr".into(),
            sink: LogSink::Postlog {
                socket: path,
                hostname: "h".into(),
            },
            also_stderr: false,
            verbose: 0,
            utf8: true,
        }));
        tracing::subscriber::with_default(PostfixSubscriber::new(0), || {
            tracing::info!("B147AB402B: removed");
            tracing::debug!("hidden without -v");
            let _span = tracing::info_span!("ignored").entered();
            tracing::warn!(queue = "active", "odd file");
            tracing::error!("bad thing");
        });
        tracing::subscriber::with_default(PostfixSubscriber::new(1), || {
            tracing::debug!("shown with -v")
        });
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        for _ in 0..4 {
            let n = server.recv(&mut buf).unwrap();
            let line = String::from_utf8_lossy(&buf[..n]).into_owned();
            got.push(line.split_once("]: ").unwrap().1.to_string());
        }
        assert_eq!(
            got,
            [
                "B147AB402B: removed",
                "warning: odd file queue=active",
                "error: bad thing",
                "shown with -v"
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
