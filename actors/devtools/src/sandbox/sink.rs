//! smtp-sink, Postfix's test SMTP server, as the remote side of sandbox
//! tests: started on a loopback port, counted, killed on drop.

use std::io;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// A running `smtp-sink` (Postfix's test SMTP server), killed on drop.
#[derive(Debug)]
pub struct SmtpSink {
    /// The smtp-sink process (taken by [`SmtpSink::stop`]).
    child: Option<Child>,
    /// The loopback port it listens on.
    port: u16,
}

impl SmtpSink {
    /// Runs `smtp-sink -u nobody -c EXTRA... 127.0.0.1:PORT 1024` (`-u` is
    /// required as root; `-c` prints session and message counters on
    /// stdout, readable after [`SmtpSink::stop`]). Waits up to 5 s for the
    /// port to accept connections.
    pub fn start(port: u16, extra_args: &[&str]) -> io::Result<SmtpSink> {
        SmtpSink::spawn(port, extra_args, true)
    }

    /// Like [`SmtpSink::start`] but without `-c` and with stdout and stderr
    /// discarded. For long runs: `-c` writes a counters line per message,
    /// and an unread stdout pipe fills after a few thousand messages and
    /// then blocks the sink (and the delivery agents talking to it).
    pub fn start_quiet(port: u16, extra_args: &[&str]) -> io::Result<SmtpSink> {
        SmtpSink::spawn(port, extra_args, false)
    }

    /// Starts smtp-sink, with `-c` and piped output if `counters`.
    fn spawn(port: u16, extra_args: &[&str], counters: bool) -> io::Result<SmtpSink> {
        let output = || {
            if counters {
                Stdio::piped()
            } else {
                Stdio::null()
            }
        };
        let child = Command::new("smtp-sink")
            .args(["-u", "nobody"])
            .args(if counters { &["-c"][..] } else { &[][..] })
            .args(extra_args)
            .arg(format!("127.0.0.1:{port}"))
            .arg("1024")
            .stdin(Stdio::null())
            .stdout(output())
            .stderr(output())
            .spawn()?;
        let mut sink = SmtpSink {
            child: Some(child),
            port,
        };
        let deadline = oqmgr_actors::clock::tooling_now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            let exited = match sink.child.as_mut() {
                Some(c) => c.try_wait()?.is_some(),
                None => true,
            };
            if oqmgr_actors::clock::tooling_now() >= deadline || exited {
                return Err(io::Error::other(format!(
                    "smtp-sink on port {port} did not start"
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(sink)
    }

    /// The port the sink listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The sink's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the sink and returns what it printed (stdout: counters).
    pub fn stop(mut self) -> io::Result<Output> {
        let child = self
            .child
            .take()
            .ok_or_else(|| io::Error::other("smtp-sink already stopped"))?;
        // SIGTERM lets smtp-sink print its final counters line.
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        child.wait_with_output()
    }
}

/// The last `sess= quit= mesg=` counters line `smtp-sink -c` printed
/// (lines end in `\r`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkCounters {
    /// SMTP sessions accepted.
    pub sessions: u64,
    /// Sessions that ended with QUIT.
    pub quits: u64,
    /// Messages received (bounces included).
    pub messages: u64,
}

impl SinkCounters {
    /// Parses the last complete counters line of smtp-sink's stdout.
    pub fn parse_last(stdout: &[u8]) -> Option<SinkCounters> {
        let text = String::from_utf8_lossy(stdout);
        let line = text.split(['\r', '\n']).rfind(|l| l.starts_with("sess="))?;
        let mut values = [None; 3];
        for field in line.split_whitespace() {
            let (name, value) = field.split_once('=')?;
            let slot = match name {
                "sess" => 0,
                "quit" => 1,
                "mesg" => 2,
                _ => continue,
            };
            values[slot] = value.parse().ok();
        }
        Some(SinkCounters {
            sessions: values[0]?,
            quits: values[1]?,
            messages: values[2]?,
        })
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
