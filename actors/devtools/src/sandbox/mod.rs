//! sandbox - a private, throw-away Postfix instance for tests, the demo
//! and benchmarks.
//!
//! # Synopsis
//! ```no_run
//! use oqmgr_devtools::sandbox::{QmgrChoice, Sandbox};
//! let sb = Sandbox::builder()
//!     .qmgr(QmgrChoice::PostfixOqmgr)
//!     .main_cf("default_transport", "discard")
//!     .start()
//!     .unwrap();
//! sb.sendmail(&["-f", "a@example.com", "b@example.com"], b"Subject: hi\n\nbody\n")
//!     .unwrap();
//! assert!(sb.wait_for_log("status=sent", std::time::Duration::from_secs(10)));
//! ```
//!
//! # Description
//! [`Sandbox::builder`] writes a complete instance into a fresh temporary
//! folder `DIR` (mode 0755, so the `postfix` user can traverse it):
//! `DIR/etc` (main.cf, master.cf), `DIR/spool` (queue_directory), `DIR/data`
//! (data_directory) and `DIR/maillog` (maillog_file, via a `postlog`
//! service). [`SandboxBuilder::start`] runs `postfix -c DIR/etc start`.
//! Dropping the [`Sandbox`] stops master (SIGTERM to the pid in
//! `spool/pid/master.pid`, then a bounded wait, then SIGKILL) and removes
//! `DIR` unless the environment variable `OQMGR_KEEP_SANDBOX` is set (then
//! the path is printed to stderr for post-mortems).
//!
//! The configuration avoids every trap listed in
//! `docs/postfix-sandbox.md`: config files are back-dated (Postfix sleeps
//! while main.cf is younger than ~2 s), no service is chrooted (Debian's
//! chroot has no /etc files), `compatibility_level = 3.6`, empty
//! `mydestination`, loopback-only `inet_interfaces`, no DNS anywhere
//! (`smtp_dns_support_level = disabled`, native host lookups, no peer name
//! lookups), and `alias_maps`/`local_recipient_maps` empty so that local
//! delivery never reads the system's /etc/aliases.
//!
//! # Which Postfix
//! The system's Postfix (the one whose `postconf` is on `PATH`) unless
//! [`SandboxBuilder::postfix`] names another build ([`PostfixInstall`],
//! e.g. Postfix 3.11 built under a prefix). main.cf then names that
//! build's `command_directory` and `daemon_directory`, and the sandbox
//! runs its `postfix`, `sendmail` and admin tools by absolute path, so the
//! instance never mixes two builds.
//!
//! # The qmgr slot
//! [`QmgrChoice`] selects what runs as `qmgr`: nothing (mail stays in
//! `incoming/`, useful to inspect queue files written by cleanup), Postfix's
//! own qmgr or oqmgr, or an arbitrary program. Postfix 3.7's master runs
//! `daemon_directory + "/" + command`, so an absolute command path does not
//! work; for [`QmgrChoice::Command`] the sandbox writes a relative path
//! that climbs out of the (canonical) daemon_directory:
//! `../../../../opt/x/oqmgr`. (A private daemon_directory of symlinks also
//! works but makes `postfix start` log one "symlink leaves directory"
//! warning per daemon.) The program's basename should not be `qmgr`, or
//! master omits `-n qmgr` from its arguments.
//!
//! # Invariants
//! - Ports are chosen by binding 127.0.0.1:0 and releasing the socket; a
//!   race with another process grabbing the same port is possible but rare.
//! - Every process the sandbox starts is stopped by pid, never by name.
//! - Waits are bounded ([`Sandbox::wait_for_log`] takes a timeout; stopping
//!   gives master at most 10 s before SIGKILL).

use std::fs;
use std::io::{self, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

mod install;
pub mod processes;
mod sink;
pub use install::PostfixInstall;
pub use sink::{SinkCounters, SmtpSink};
use std::time::{Duration, SystemTime};

/// Which program, if any, fills the `qmgr` slot of master.cf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QmgrChoice {
    /// No `qmgr` service at all: cleanup leaves new mail in `incoming/`.
    None,
    /// Postfix's default queue manager, `qmgr`.
    PostfixQmgr,
    /// Postfix's old queue manager, `oqmgr` (the one we replace).
    PostfixOqmgr,
    /// Any executable (typically our `oqmgr` binary), named in master.cf by
    /// a relative path climbing out of daemon_directory.
    Command(PathBuf),
}

/// Configures a [`Sandbox`] before it starts. Obtain with
/// [`Sandbox::builder`].
#[derive(Debug, Clone)]
pub struct SandboxBuilder {
    /// Extra or overriding main.cf parameters, in insertion order (later
    /// ones win, as in main.cf itself).
    main_cf: Vec<(String, String)>,
    /// Extra master.cf lines appended verbatim after the standard services.
    master_cf_lines: Vec<String>,
    /// What runs as the `qmgr` service.
    qmgr: QmgrChoice,
    /// Extra arguments on the `qmgr` line (e.g. `-o name=value`).
    qmgr_args: Vec<String>,
    /// The Postfix build; `None`: the system's.
    postfix: Option<PostfixInstall>,
    /// Whether to run an smtpd on a free loopback port.
    smtpd: bool,
    /// `in_flow_delay`; `None` means the default of the chosen qmgr mode
    /// (`0s` without a queue manager, Postfix's `1s` otherwise).
    in_flow_delay: Option<String>,
    /// Extra files for the config directory (`oqmgr.toml`): name, text.
    config_files: Vec<(String, String)>,
    /// Folder to create the instance in; `None` means the system temp dir.
    /// Benchmarks put it on tmpfs (`/dev/shm`) to take the disk out.
    parent_dir: Option<PathBuf>,
}

/// A running private Postfix instance; stops and cleans up on drop.
#[derive(Debug)]
pub struct Sandbox {
    /// Root folder of the instance (etc/, spool/, data/, maillog).
    dir: PathBuf,
    /// The Postfix build it runs.
    postfix: PostfixInstall,
    /// The loopback port smtpd listens on, if requested.
    smtpd_port: Option<u16>,
    /// Set once master has been stopped, so Drop does not stop it twice.
    stopped: bool,
}

/// Counter making temp dir names unique within one process.
static SANDBOX_SEQ: AtomicU32 = AtomicU32::new(0);

/// Returns a loopback TCP port that was free a moment ago (bound, then
/// released).
pub fn free_port() -> io::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// The system Postfix's daemon_directory, asked from `postconf -d` so that
/// the system main.cf is not involved ([`PostfixInstall::system`]).
pub fn postfix_daemon_directory() -> io::Result<PathBuf> {
    Ok(PostfixInstall::system()?.daemon_directory)
}

impl SandboxBuilder {
    /// Adds or overrides one main.cf parameter (`name = value`).
    pub fn main_cf(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.main_cf.push((name.into(), value.into()));
        self
    }

    /// Appends one line (or several, with embedded newlines) to master.cf.
    pub fn master_cf_line(mut self, line: impl Into<String>) -> Self {
        self.master_cf_lines.push(line.into());
        self
    }

    /// Chooses what runs in the `qmgr` slot (default [`QmgrChoice::None`]).
    pub fn qmgr(mut self, choice: QmgrChoice) -> Self {
        self.qmgr = choice;
        self
    }

    /// Adds arguments to the `qmgr` line of master.cf (e.g. `-o`,
    /// `mail_version=3.7.11`), after the command.
    pub fn qmgr_args(mut self, args: &[&str]) -> Self {
        self.qmgr_args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Runs this Postfix build instead of the system's.
    pub fn postfix(mut self, install: PostfixInstall) -> Self {
        self.postfix = Some(install);
        self
    }

    /// Runs an smtpd on a free loopback port (see [`Sandbox::smtpd_port`]).
    pub fn smtpd_port(mut self, enable: bool) -> Self {
        self.smtpd = enable;
        self
    }

    /// Sets `in_flow_delay` (a Postfix time value such as `0s` or `1s`).
    pub fn in_flow_delay(mut self, value: impl Into<String>) -> Self {
        self.in_flow_delay = Some(value.into());
        self
    }

    /// Writes one more file into the config directory (e.g. `oqmgr.toml`).
    pub fn config_file(mut self, name: impl Into<String>, text: impl Into<String>) -> Self {
        self.config_files.push((name.into(), text.into()));
        self
    }

    /// Creates the instance folder under `parent` instead of the system
    /// temp dir (e.g. `/dev/shm` to put the queue on tmpfs). `parent` must
    /// be traversable by the `postfix` user.
    pub fn parent_dir(mut self, parent: impl Into<PathBuf>) -> Self {
        self.parent_dir = Some(parent.into());
        self
    }

    /// Writes the instance and starts it with `postfix -c DIR/etc start`.
    /// On failure the partial instance is torn down and the error carries
    /// the tail of the maillog (where Postfix puts the real reason).
    pub fn start(self) -> io::Result<Sandbox> {
        processes::warn_if_postlog_queue_small();
        let postfix = match &self.postfix {
            Some(p) => p.clone(),
            None => PostfixInstall::system()?,
        };
        let dir = make_temp_dir(self.parent_dir.as_deref())?;
        let mut sandbox = Sandbox {
            dir,
            postfix,
            smtpd_port: None,
            // Nothing to stop until `postfix start` ran.
            stopped: true,
        };
        if self.smtpd {
            sandbox.smtpd_port = Some(free_port()?);
        }
        self.write_files(&sandbox)?;
        sandbox.stopped = false;
        let out = Command::new(sandbox.postfix.command("postfix"))
            .arg("-c")
            .arg(sandbox.config_dir())
            .arg("start")
            .stdin(Stdio::null())
            .output()?;
        if !out.status.success() || !sandbox.master_pid_file().exists() {
            return Err(io::Error::other(format!(
                "postfix start failed ({}): {}{}\nmaillog:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                sandbox.maillog()
            )));
        }
        Ok(sandbox)
    }

    /// Creates etc/, spool/, data/ and writes the
    /// back-dated main.cf and master.cf.
    fn write_files(&self, sb: &Sandbox) -> io::Result<()> {
        let dir = &sb.dir;
        let etc = sb.config_dir();
        fs::create_dir(&etc)?;
        fs::set_permissions(&etc, fs::Permissions::from_mode(0o755))?;
        fs::create_dir(sb.queue_dir())?;
        fs::set_permissions(sb.queue_dir(), fs::Permissions::from_mode(0o755))?;
        let data = dir.join("data");
        fs::create_dir(&data)?;
        // data_directory must belong to mail_owner, mode 0700.
        chown_to_postfix(&data)?;
        fs::set_permissions(&data, fs::Permissions::from_mode(0o700))?;

        let real_daemon_dir = sb.postfix.daemon_directory.clone();
        let (daemon_dir, qmgr_command) = match &self.qmgr {
            QmgrChoice::None => (real_daemon_dir, None),
            QmgrChoice::PostfixQmgr => (real_daemon_dir, Some("qmgr".to_string())),
            QmgrChoice::PostfixOqmgr => (real_daemon_dir, Some("oqmgr".to_string())),
            QmgrChoice::Command(program) => {
                let real = real_daemon_dir.canonicalize()?;
                let command = climbing_command_path(&real, program)?;
                (real, Some(command))
            }
        };
        let flow_delay = self.in_flow_delay.clone().unwrap_or_else(|| {
            if qmgr_command.is_none() {
                "0s".into()
            } else {
                "1s".into()
            }
        });

        let d = dir.display().to_string();
        let daemon = daemon_dir.display().to_string();
        let command = sb.postfix.command_directory.display().to_string();
        let mut settings: Vec<(String, String)> = [
            ("compatibility_level", "3.6"),
            ("queue_directory", &format!("{d}/spool")),
            ("data_directory", &format!("{d}/data")),
            ("daemon_directory", &daemon),
            ("command_directory", &command),
            ("maillog_file", &format!("{d}/maillog")),
            ("maillog_file_prefixes", &d),
            ("myhostname", "sandbox.test"),
            ("mydomain", "sandbox.test"),
            ("myorigin", "$myhostname"),
            ("mydestination", ""),
            ("inet_interfaces", "127.0.0.1"),
            ("inet_protocols", "ipv4"),
            ("mynetworks", "127.0.0.0/8"),
            ("smtp_dns_support_level", "disabled"),
            ("smtp_host_lookup", "native"),
            ("lmtp_host_lookup", "native"),
            ("smtpd_peername_lookup", "no"),
            ("alias_maps", ""),
            ("alias_database", ""),
            ("local_recipient_maps", ""),
            ("biff", "no"),
            ("in_flow_delay", &flow_delay),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        // A caller's setting replaces the default in place instead of
        // following it: Postfix would take the later line anyway, but every
        // program it starts would log "overriding earlier entry", and those
        // extra lines are what fill the postlog queue (see `host`).
        for (name, value) in &self.main_cf {
            match settings.iter_mut().find(|(k, _)| k == name) {
                Some(slot) => slot.1 = value.clone(),
                None => settings.push((name.clone(), value.clone())),
            }
        }
        let mut main_cf =
            String::from("# private Postfix instance written by oqmgr-actors::sandbox\n");
        for (name, value) in &settings {
            main_cf.push_str(&format!("{name} = {value}\n"));
        }

        let mut master_cf =
            String::from("# service type private unpriv chroot wakeup maxproc command\n");
        if let Some(port) = sb.smtpd_port {
            master_cf.push_str(&format!("127.0.0.1:{port} inet n - n - - smtpd\n"));
        }
        master_cf.push_str(STANDARD_SERVICES);
        if let Some(cmd) = &qmgr_command {
            let mut line = format!("qmgr unix n - n 300 1 {cmd}");
            for arg in &self.qmgr_args {
                line.push(' ');
                line.push_str(arg);
            }
            master_cf.push_str(&line);
            master_cf.push('\n');
        }
        for line in &self.master_cf_lines {
            master_cf.push_str(line);
            master_cf.push('\n');
        }

        write_backdated(&etc.join("main.cf"), &main_cf)?;
        write_backdated(&etc.join("master.cf"), &master_cf)?;
        for (name, text) in &self.config_files {
            write_backdated(&etc.join(name), text)?;
        }
        Ok(())
    }
}

/// master.cf services every sandbox runs (none chrooted; no qmgr, no smtpd:
/// those depend on the builder).
const STANDARD_SERVICES: &str = "\
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
local unix - n n - - local
lmtp unix - - n - - lmtp
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
";

/// True when a NUL-separated command line (`/proc/PID/cmdline`) is that of
/// a process serving master's `qmgr` service: argv\[0\] has the basename
/// `qmgr`, or master passed `-n qmgr` (it does when the command's basename
/// is something else, such as `oqmgr`).
pub fn is_qmgr_cmdline(raw: &[u8]) -> bool {
    let args: Vec<&[u8]> = raw.split(|b| *b == 0).collect();
    let Some(argv0) = args.first() else {
        return false;
    };
    let base = argv0.rsplit(|b| *b == b'/').next().unwrap_or(argv0);
    base == b"qmgr" || args.windows(2).any(|w| w[0] == b"-n" && w[1] == b"qmgr")
}

/// Creates a fresh, uniquely named folder under the system temp dir with
/// mode 0755 (a 0700 folder makes master die on data/master.lock).
fn make_temp_dir(parent: Option<&Path>) -> io::Result<PathBuf> {
    #[allow(clippy::disallowed_methods)] // a unique folder name, not a schedule
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let seq = SANDBOX_SEQ.fetch_add(1, Ordering::Relaxed);
    let parent = parent.map_or_else(std::env::temp_dir, Path::to_path_buf);
    let dir = parent.join(format!(
        "oqmgr-sandbox-{}-{seq}-{nanos:x}",
        std::process::id()
    ));
    fs::create_dir(&dir)?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))?;
    // Absolute and free of symlinks, as /proc shows the working folders
    // that `processes::kill_leftovers` compares with it.
    dir.canonicalize()
}

/// Writes `text` to `path` and sets its mtime 10 s in the past, so Postfix
/// programs do not wait for the file to "cool down".
fn write_backdated(path: &Path, text: &str) -> io::Result<()> {
    let file = fs::File::create(path)?;
    (&file).write_all(text.as_bytes())?;
    #[allow(clippy::disallowed_methods)] // back-date config past Postfix's cool-down
    let then = SystemTime::now() - Duration::from_secs(10);
    file.set_modified(then)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o644))
}

/// Gives `path` to the `postfix` user (mail_owner), as data_directory
/// requires.
fn chown_to_postfix(path: &Path) -> io::Result<()> {
    let status = Command::new("chown").arg("postfix:").arg(path).status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "chown postfix: {} failed",
            path.display()
        )))
    }
}

/// Spells `program` relative to the canonical `daemon_dir`: one `..` per
/// component of `daemon_dir`, then the absolute program path without its
/// leading `/`. master prepends `daemon_dir/`, so the result resolves to
/// `program` (an absolute command would become `daemon_dir//abs/path`).
fn climbing_command_path(daemon_dir: &Path, program: &Path) -> io::Result<String> {
    let program = program.canonicalize()?;
    let ups = daemon_dir
        .components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .count();
    let rest = program
        .strip_prefix("/")
        .map_err(|_| io::Error::other("canonical path is not absolute"))?;
    let rest = rest
        .to_str()
        .filter(|r| !r.chars().any(char::is_whitespace))
        .ok_or_else(|| io::Error::other("qmgr command path must be UTF-8 without spaces"))?;
    Ok(format!("{}{rest}", "../".repeat(ups)))
}

impl Sandbox {
    /// Starts configuring a sandbox: no qmgr, no smtpd, no extra settings.
    pub fn builder() -> SandboxBuilder {
        SandboxBuilder {
            main_cf: Vec::new(),
            master_cf_lines: Vec::new(),
            qmgr: QmgrChoice::None,
            qmgr_args: Vec::new(),
            postfix: None,
            smtpd: false,
            in_flow_delay: None,
            config_files: Vec::new(),
            parent_dir: None,
        }
    }

    /// Root folder of the instance.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The Postfix build the instance runs.
    pub fn postfix_install(&self) -> &PostfixInstall {
        &self.postfix
    }

    /// `DIR/etc`: pass as `-c` to Postfix tools.
    pub fn config_dir(&self) -> PathBuf {
        self.dir.join("etc")
    }

    /// `DIR/spool`: the queue_directory.
    pub fn queue_dir(&self) -> PathBuf {
        self.dir.join("spool")
    }

    /// The loopback port of the sandbox's smtpd, if one was requested.
    pub fn smtpd_port(&self) -> Option<u16> {
        self.smtpd_port
    }

    /// `spool/pid/master.pid`, written by master once it runs.
    fn master_pid_file(&self) -> PathBuf {
        self.queue_dir().join("pid").join("master.pid")
    }

    /// The pid of the running master (from `spool/pid/master.pid`), if any.
    pub fn master_pid(&self) -> Option<i32> {
        read_pid(&self.master_pid_file())
    }

    /// `DIR/maillog`, for readers that follow it incrementally.
    pub fn maillog_path(&self) -> PathBuf {
        self.dir.join("maillog")
    }

    /// The whole maillog so far (empty if none yet; invalid UTF-8 replaced).
    pub fn maillog(&self) -> String {
        fs::read(self.dir.join("maillog"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Polls the maillog every 50 ms until a line contains `pattern` (plain
    /// substring) or `timeout` passes; returns whether it appeared.
    pub fn wait_for_log(&self, pattern: &str, timeout: Duration) -> bool {
        self.wait_for(timeout, || self.maillog().contains(pattern))
    }

    /// Polls `cond` every 50 ms until it holds or `timeout` passes.
    pub fn wait_for(&self, timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
        let deadline = oqmgr_actors::clock::tooling_now() + timeout;
        loop {
            if cond() {
                return true;
            }
            if oqmgr_actors::clock::tooling_now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs `sendmail -C DIR/etc ARGS` with `message` on stdin.
    pub fn sendmail(&self, args: &[&str], message: &[u8]) -> io::Result<Output> {
        let mut child = Command::new(self.postfix.command("sendmail"))
            .arg("-C")
            .arg(self.config_dir())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut stdin = child.stdin.take().expect("stdin was piped");
        // A write error (sendmail gave up early) shows in its exit status.
        let _ = stdin.write_all(message);
        drop(stdin);
        child.wait_with_output()
    }

    /// Runs `postqueue -c DIR/etc ARGS`.
    pub fn postqueue(&self, args: &[&str]) -> io::Result<Output> {
        self.admin_tool("postqueue", args)
    }

    /// Runs `postsuper -c DIR/etc ARGS`.
    pub fn postsuper(&self, args: &[&str]) -> io::Result<Output> {
        self.admin_tool("postsuper", args)
    }

    /// Runs `postcat -c DIR/etc ARGS`.
    pub fn postcat(&self, args: &[&str]) -> io::Result<Output> {
        self.admin_tool("postcat", args)
    }

    /// Runs a Postfix admin tool of the instance's build that takes `-c
    /// config_dir`.
    pub fn admin_tool(&self, tool: &str, args: &[&str]) -> io::Result<Output> {
        Command::new(self.postfix.command(tool))
            .arg("-c")
            .arg(self.config_dir())
            .args(args)
            .stdin(Stdio::null())
            .output()
    }

    /// Sends qmgr one trigger request (`b'I'` scan incoming, `b'D'` scan
    /// deferred, `b'A'` ignore time stamps, `b'F'` flush dead-site caches,
    /// `b'W'` wakeup) over `public/qmgr`, as `postkick` does. Done in
    /// process because `postkick` dies of SIGPIPE when qmgr closes the
    /// connection before postkick's trailing write.
    pub fn kick_qmgr(&self, requests: &[u8]) -> io::Result<()> {
        let mut stream =
            std::os::unix::net::UnixStream::connect(self.queue_dir().join("public/qmgr"))?;
        stream.write_all(requests)
    }

    /// Sends `requests` to the trigger socket `public/SERVICE` of any
    /// trigger-driven daemon, as `postkick public SERVICE` does; e.g.
    /// `kick_service("pickup", b"W")` makes pickup scan `maildrop/` now
    /// instead of at its next wakeup (mail requeued by `postsuper -r`
    /// waits there otherwise).
    pub fn kick_service(&self, service: &str, requests: &[u8]) -> io::Result<()> {
        let mut stream =
            std::os::unix::net::UnixStream::connect(self.queue_dir().join("public").join(service))?;
        stream.write_all(requests)
    }

    /// Every file in queue `queue_name` (e.g. "incoming", "active"), hashed
    /// subdirectories included, as (queue id, path), sorted by queue id.
    pub fn queue_files(&self, queue_name: &str) -> Vec<(String, PathBuf)> {
        let mut found = Vec::new();
        let mut stack = vec![self.queue_dir().join(queue_name)];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                match entry.file_type() {
                    Ok(t) if t.is_dir() => stack.push(path),
                    Ok(t) if t.is_file() => {
                        let id = entry.file_name().to_string_lossy().into_owned();
                        found.push((id, path));
                    }
                    _ => {}
                }
            }
        }
        found.sort();
        found
    }

    /// Runs `postfix -c DIR/etc ARGS` (e.g. `reload`, `flush`).
    pub fn postfix(&self, args: &[&str]) -> io::Result<Output> {
        Command::new(self.postfix.command("postfix"))
            .arg("-c")
            .arg(self.config_dir())
            .args(args)
            .stdin(Stdio::null())
            .output()
    }

    /// The pid of the process master runs in the `qmgr` slot, if one is
    /// alive: a child of master whose argv carries `-n qmgr` (master adds
    /// it when the command's basename is not `qmgr`) or whose argv\[0\] has
    /// the basename `qmgr`. Found through /proc, never by name alone, so a
    /// queue manager of another instance is never picked.
    pub fn qmgr_pid(&self) -> Option<i32> {
        let master = self.master_pid()?;
        for pid in processes::process_ids() {
            if parent_pid(pid) != Some(master) || !process_alive(pid) {
                continue;
            }
            let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
                continue;
            };
            if is_qmgr_cmdline(&cmdline) {
                return Some(pid);
            }
        }
        None
    }

    /// Writes `bytes` as `queue_name/id` (the folder must exist; hashed
    /// queues need the hash folder in `id`'s place), mode 0700 and owned by
    /// the `postfix` user, as cleanup leaves a finished file. For planting
    /// hand-made (e.g. corrupt) queue files.
    pub fn plant_queue_file(
        &self,
        queue_name: &str,
        id: &str,
        bytes: &[u8],
    ) -> io::Result<PathBuf> {
        let path = self.queue_dir().join(queue_name).join(id);
        let file = fs::File::create(&path)?;
        (&file).write_all(bytes)?;
        chown_to_postfix(&path)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o700))?;
        Ok(path)
    }

    /// Stops master: SIGTERM to the pid in spool/pid/master.pid (master
    /// passes it on to its children), waits up to 10 s for it to go, then
    /// SIGKILL; then kills whatever still works inside the instance's
    /// folder (a master that hung before writing its pid file, see
    /// [`processes`]). Idempotent.
    pub fn stop(&mut self) -> io::Result<()> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        let result = self.stop_master();
        processes::kill_leftovers(&self.dir);
        result
    }

    /// The pid-file half of [`Sandbox::stop`].
    fn stop_master(&self) -> io::Result<()> {
        let Some(pid) = read_pid(&self.master_pid_file()) else {
            return Ok(());
        };
        // SAFETY: kill(2) has no memory-safety preconditions.
        if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
            // Already gone (ESRCH): nothing to wait for.
            return Ok(());
        }
        let deadline = oqmgr_actors::clock::tooling_now() + Duration::from_secs(10);
        while process_alive(pid) {
            if oqmgr_actors::clock::tooling_now() >= deadline {
                // SAFETY: as above.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                return Err(io::Error::other(format!(
                    "master pid {pid} ignored SIGTERM for 10 s; killed"
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

/// Reads a Postfix pid file (a decimal number padded with spaces).
fn read_pid(path: &Path) -> Option<i32> {
    let text = fs::read_to_string(path).ok()?;
    let pid: i32 = text.trim().parse().ok()?;
    (pid > 1).then_some(pid)
}

/// The parent pid of `pid`, from /proc/PID/stat (the field after the
/// state letter, which follows the parenthesised command name).
fn parent_pid(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// True while `pid` exists and is not a zombie (master is not our child, so
/// we cannot reap it; a zombie left for a non-reaping init counts as gone).
fn process_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    if unsafe { libc::kill(pid, 0) } != 0 {
        return false;
    }
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state letter follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(true),
        Err(_) => false,
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("sandbox {}: {e}", self.dir.display());
        }
        if std::env::var_os("OQMGR_KEEP_SANDBOX").is_some() {
            eprintln!("sandbox kept at {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
