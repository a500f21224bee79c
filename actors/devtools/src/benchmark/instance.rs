//! One benchmark instance: a [`Sandbox`] plus the means to load it and to
//! watch it (maillog tail, qmgr CPU probe), with every wait bounded.
//!
//! A queue manager under test may be broken (ours, while it is being
//! written): it may never start (master throttles it), never deliver, or
//! crawl. Every wait here therefore ends in one of three ways: the
//! condition holds; the overall deadline of the run passes; or nothing
//! was delivered, deferred or bounced for `stall` seconds. The last two,
//! and master's "bad command startup -- throttling", come back as an error
//! text, which the runner records as "did not finish" before moving on.

use super::logtail::{LogStatus, LogTail};
use super::observer::Observer;
use super::probe::QmgrProbe;
use crate::sandbox::{free_port, Sandbox, SandboxBuilder};
use std::fs::File;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How often the maillog is polled while waiting.
const POLL: Duration = Duration::from_millis(20);
/// How often `/proc` is scanned for the qmgr's CPU and memory.
const SAMPLE: Duration = Duration::from_millis(250);

/// The sender every injected message carries.
pub const SENDER: &str = "bench@origin.example";

/// A running instance under load.
#[derive(Debug)]
pub struct Instance {
    /// The Postfix instance (stopped on drop).
    pub sb: Sandbox,
    /// Tally of delivery lines in its maillog.
    pub tail: LogTail,
    /// CPU and memory of its qmgr processes.
    probe: QmgrProbe,
    /// Running smtp-source processes (killed on drop).
    sources: Vec<Child>,
    /// When the whole run must be over.
    deadline: Instant,
    /// Longest wait allowed without any new delivery line.
    stall: Duration,
    /// When the probe last sampled.
    last_sample: Instant,
    /// The operator's tools in use, for the `ours-observed` column.
    pub observer: Option<Observer>,
}

/// The current time, from the clock sanctioned for tooling.
pub fn now() -> Instant {
    oqmgr_actors::clock::tooling_now()
}

impl Instance {
    /// Starts `builder` and attaches the tail and the probe; with
    /// `observe`, turns our metrics on and starts an [`Observer`].
    pub fn start(
        builder: SandboxBuilder,
        deadline: Instant,
        stall: Duration,
        observe: bool,
    ) -> Result<Instance, String> {
        let metrics = if observe {
            let port = free_port().map_err(|e| format!("no free port: {e}"))?;
            Some(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        } else {
            None
        };
        let builder = match metrics {
            Some(addr) => builder.config_file("oqmgr.toml", Observer::config(addr)),
            None => builder,
        };
        let sb = builder
            .start()
            .map_err(|e| format!("sandbox did not start: {e}"))?;
        let observer = metrics.map(|addr| Observer::start(addr, sb.queue_dir()));
        if let Some(o) = &observer {
            if !o.wait_first_answer(Duration::from_secs(15)) {
                return Err(
                    "the queue manager's metrics and control socket did not answer within 15 s of start"
                        .into(),
                );
            }
        }
        let master = sb
            .master_pid()
            .ok_or_else(|| "master wrote no pid file".to_string())?;
        let tail = LogTail::new(sb.maillog_path());
        let mut probe = QmgrProbe::new(master);
        probe.sample();
        Ok(Instance {
            sb,
            tail,
            probe,
            sources: Vec::new(),
            deadline,
            stall,
            last_sample: now(),
            observer,
        })
    }

    /// Starts `smtp-source` injecting `count` messages to `rcpt` into the
    /// instance's smtpd over 10 sessions that stay open; returns at once.
    pub fn inject(&mut self, count: u64, rcpt: &str) -> Result<(), String> {
        let port = self
            .sb
            .smtpd_port()
            .ok_or_else(|| "instance has no smtpd".to_string())?;
        let err_path = self
            .sb
            .dir()
            .join(format!("smtp-source-{}.err", self.sources.len()));
        let err = File::create(&err_path).map_err(|e| format!("{}: {e}", err_path.display()))?;
        let child = Command::new("smtp-source")
            .args([
                "-s",
                "10",
                "-d",
                "-m",
                &count.to_string(),
                "-f",
                SENDER,
                "-t",
                rcpt,
            ])
            .arg(format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .map_err(|e| format!("smtp-source did not start: {e}"))?;
        self.sources.push(child);
        Ok(())
    }

    /// The qmgr's CPU seconds so far (sampled now).
    pub fn qmgr_cpu(&mut self) -> f64 {
        self.probe.sample();
        self.last_sample = now();
        self.probe.cpu_seconds()
    }

    /// The qmgr's peak RSS in MiB so far (sampled now).
    pub fn qmgr_peak_rss_mib(&mut self) -> f64 {
        self.probe.sample();
        self.probe.peak_rss_kib() as f64 / 1024.0
    }

    /// Runs `postqueue -f` (flush: ignore retry times, forget dead sites,
    /// scan the deferred queue).
    pub fn flush(&self) -> Result<(), String> {
        let out = self
            .sb
            .postqueue(&["-f"])
            .map_err(|e| format!("postqueue -f: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "postqueue -f failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// Polls until `done` holds for the tally (and the instance), or fails
    /// on the deadline, a stall, master throttling the qmgr, or an
    /// smtp-source that failed.
    pub fn wait(
        &mut self,
        what: &str,
        mut done: impl FnMut(&LogTail, &Sandbox) -> bool,
    ) -> Result<(), String> {
        self.wait_on(what, "delivery", |tail, sb| {
            let progress = tail.total(LogStatus::Sent)
                + tail.total(LogStatus::Deferred)
                + tail.total(LogStatus::Bounced);
            (done(tail, sb), progress)
        })
    }

    /// As [`Instance::wait`], for waits where no delivery line is expected
    /// (mail held in the active queue): `check` returns whether the wait
    /// is over and a progress count (e.g. files in `active/`); the stall
    /// limit applies to that count, named `progress_name` in the error.
    pub fn wait_on(
        &mut self,
        what: &str,
        progress_name: &str,
        mut check: impl FnMut(&LogTail, &Sandbox) -> (bool, u64),
    ) -> Result<(), String> {
        let mut seen = None;
        let mut last_progress = now();
        loop {
            self.tail
                .update()
                .map_err(|e| format!("reading maillog: {e}"))?;
            let (done, progress) = check(&self.tail, &self.sb);
            if done {
                return Ok(());
            }
            if let Some(line) = &self.tail.throttled {
                return Err(format!("master throttled a service: {}", line.trim()));
            }
            self.check_sources()?;
            let t = now();
            if t.duration_since(self.last_sample) >= SAMPLE {
                self.probe.sample();
                self.last_sample = t;
            }
            if seen != Some(progress) {
                seen = Some(progress);
                last_progress = t;
            } else if t.duration_since(last_progress) >= self.stall {
                return Err(format!(
                    "no {progress_name} progress for {} s while waiting for {what} ({})",
                    self.stall.as_secs(),
                    self.tail.summary()
                ));
            }
            if t >= self.deadline {
                return Err(format!(
                    "timed out waiting for {what} ({})",
                    self.tail.summary()
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Fails if an smtp-source exited unsuccessfully (its stderr is in the
    /// sandbox folder; the first line is quoted).
    fn check_sources(&mut self) -> Result<(), String> {
        for (i, child) in self.sources.iter_mut().enumerate() {
            if let Ok(Some(status)) = child.try_wait() {
                if !status.success() {
                    let err =
                        std::fs::read_to_string(self.sb.dir().join(format!("smtp-source-{i}.err")))
                            .unwrap_or_default();
                    return Err(format!(
                        "smtp-source failed ({status}): {}",
                        err.lines().next().unwrap_or("")
                    ));
                }
            }
        }
        Ok(())
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        for child in &mut self.sources {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
