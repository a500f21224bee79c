//! Logging in Postfix's formats; mirrors `postfix/src/global/maillog_client.c`,
//! `postfix/src/util/msg_logger.c`, `msg_syslog.c`, `msg_output.c` (the
//! `printable()` clean-up) and `global/mail_task.c` (the tag).
//!
//! Two destinations, exactly one active (as in Postfix, where using both
//! could make postlogd(8) loop):
//! * **postlog**: when `maillog_file` is set (or, before main.cf is known,
//!   when master passed `POSTLOG_SERVICE`), each line is one datagram to
//!   postlogd's socket (`$queue_directory/public/$postlog_service_name`),
//!   text `Mon DD HH:MM:SS host tag[pid]: text` (local time, day
//!   zero-padded, host = first label of `myhostname`). postlogd writes it to
//!   the maillog unchanged.
//! * **syslog**: one datagram to `/dev/log`, text as glibc's `syslog(3)`
//!   builds it for `openlog(tag, LOG_PID|LOG_NDELAY, facility)`:
//!   `<facility|level>Mon  D HH:MM:SS tag[pid]: text` (day space-padded,
//!   no host name, no trailing newline).
//!
//! Severities: info (no prefix), `warning: `, `error: `, `fatal: `,
//! `panic: `; syslog levels info, warning, err, crit, crit. Text is cleaned
//! like Postfix's `printable()`: it ends at a NUL, every non-printable ASCII
//! byte becomes `?`, and non-ASCII bytes become `?` unless `smtputf8_enable`
//! (then valid UTF-8 passes). It is cut at 2000 bytes.
//!
//! The tag is `<syslog_name>/<name>`: `syslog_name` from main.cf/`-o` if the
//! caller knows it, else `$MAIL_LOGTAG`, else `postfix`. Compatibility
//! difference: Postfix uses the basename of `argv[0]` as `<name>`; this module
//! uses the service name (`-n`, which master sets whenever the command is
//! not called `qmgr`), so a replacement installed under another file name
//! still logs as `postfix/qmgr` and log parsers keep working.
//!
//! A send failure reconnects once and retries (postlogd or syslogd may have
//! been restarted); a second failure drops the line, as Postfix does. Sends
//! are blocking datagram writes, as Postfix's are: a stalled postlogd can
//! stall the caller. The socket is connected at [`Logger::new`], so create
//! the logger before a chroot (a later reconnect by path fails inside the
//! jail, as it does for Postfix).

use std::io::{self, Write};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use super::args::MasterArgs;
pub use super::log_format::{
    facility_code, postlog_record, prepare_time_zone, printable, syslog_record, LocalTime,
    Severity, DEV_LOG, MAX_TEXT,
};

/// The main.cf parameters logging depends on; `None` means "not known"
/// (main.cf not read yet), in which case the environment decides, as in
/// Postfix's bootstrap logging.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogParams {
    /// `syslog_name` (default `postfix`).
    pub syslog_name: Option<String>,
    /// `syslog_facility` (default `mail`).
    pub syslog_facility: Option<String>,
    /// `maillog_file` (empty: use syslog).
    pub maillog_file: Option<String>,
    /// `maillog_file_prefixes` (default `/var, /dev/stdout`).
    pub maillog_file_prefixes: Option<String>,
    /// `myhostname`.
    pub myhostname: Option<String>,
    /// `queue_directory`.
    pub queue_directory: Option<PathBuf>,
    /// `postlog_service_name` (default `postlog`).
    pub postlog_service_name: Option<String>,
    /// `smtputf8_enable` (default yes): lets UTF-8 through `printable()`.
    pub smtputf8_enable: Option<bool>,
}

/// Where log records go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogSink {
    /// syslog datagrams.
    Syslog {
        /// Socket path, normally `/dev/log`.
        socket: PathBuf,
        /// Facility code (shifted, `LOG_MAIL` = 16).
        facility: u8,
    },
    /// postlogd datagrams.
    Postlog {
        /// postlogd's socket.
        socket: PathBuf,
        /// Host name put in every record (only its first label is used).
        hostname: String,
    },
}

/// Why logging could not be configured; `Display` is Postfix's fatal text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogError {
    /// `syslog_facility` names no known facility.
    BadFacility(String),
    /// `maillog_file` outside `maillog_file_prefixes`.
    BadMaillogFile(String, String),
}

impl std::fmt::Display for LogError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogError::BadFacility(v) => write!(f, "parameter syslog_facility: unrecognized value: {v}"),
            LogError::BadMaillogFile(file, prefixes) => write!(
                f,
                "maillog_file value '{file}' does not match any prefix in maillog_file_prefixes ({prefixes})"
            ),
        }
    }
}

impl std::error::Error for LogError {}

/// Everything a [`Logger`] needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// `syslog_name/service`, e.g. `postfix/qmgr`.
    pub tag: String,
    /// Destination.
    pub sink: LogSink,
    /// `-V`: copy every line to stderr too.
    pub also_stderr: bool,
    /// `-v` count: verbosity for callers that log debug detail.
    pub verbose: u32,
    /// Let valid UTF-8 through (from `smtputf8_enable`).
    pub utf8: bool,
}

impl LogConfig {
    /// Decides tag and destination the way `maillog_client_init()` does,
    /// from the command line, what is known of main.cf, and the environment
    /// (`MAIL_LOGTAG`, `POSTLOG_SERVICE`, `POSTLOG_HOSTNAME`).
    pub fn resolve(
        args: &MasterArgs,
        params: &LogParams,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<LogConfig, LogError> {
        let nonempty = |v: Option<String>| v.filter(|s| !s.is_empty());
        let prefix = params
            .syslog_name
            .clone()
            .or_else(|| nonempty(env("MAIL_LOGTAG")))
            .unwrap_or_else(|| "postfix".to_string());
        let tag = format!("{prefix}/{}", args.service_name);
        let env_socket = nonempty(env("POSTLOG_SERVICE"));
        let postlog_socket = match &params.maillog_file {
            Some(file) if file.is_empty() => None,
            Some(file) => {
                let prefixes = params
                    .maillog_file_prefixes
                    .clone()
                    .unwrap_or_else(|| "/var, /dev/stdout".to_string());
                let ok = prefixes
                    .split(|c: char| c == ',' || c.is_ascii_whitespace())
                    .filter(|p| !p.is_empty())
                    .any(|p| file.starts_with(p));
                if !ok {
                    return Err(LogError::BadMaillogFile(file.clone(), prefixes));
                }
                match &params.queue_directory {
                    Some(q) => Some(
                        q.join("public").join(
                            params
                                .postlog_service_name
                                .clone()
                                .unwrap_or_else(|| "postlog".to_string()),
                        ),
                    ),
                    None => env_socket.map(PathBuf::from),
                }
            }
            None => env_socket.map(PathBuf::from),
        };
        let sink = match postlog_socket {
            Some(socket) => LogSink::Postlog {
                socket,
                hostname: params
                    .myhostname
                    .clone()
                    .filter(|h| !h.is_empty())
                    .or_else(|| nonempty(env("POSTLOG_HOSTNAME")))
                    .unwrap_or_else(|| "amnesiac".to_string()),
            },
            None => {
                let name = params
                    .syslog_facility
                    .clone()
                    .unwrap_or_else(|| "mail".to_string());
                let facility = facility_code(&name).ok_or(LogError::BadFacility(name))?;
                LogSink::Syslog {
                    socket: PathBuf::from(DEV_LOG),
                    facility,
                }
            }
        };
        Ok(LogConfig {
            tag,
            sink,
            also_stderr: args.stderr_log > 0,
            verbose: args.verbose,
            utf8: params.smtputf8_enable.unwrap_or(true),
        })
    }
}

/// Sends Postfix-format log records to the configured sink.
#[derive(Debug)]
pub struct Logger {
    /// Tag, destination and options.
    config: LogConfig,
    /// Our pid, printed in every record.
    pid: u32,
    /// Connected socket; `None` until a connect succeeds.
    socket: Mutex<Option<UnixDatagram>>,
}

impl Logger {
    /// Creates a logger and connects at once (like `LOG_NDELAY` and
    /// postlog's "connect now"), so that logging keeps working after a
    /// chroot. A failed connect is retried at the next line.
    pub fn new(config: LogConfig) -> Logger {
        prepare_time_zone();
        let logger = Logger {
            config,
            pid: std::process::id(),
            socket: Mutex::new(None),
        };
        {
            let mut sock = logger.socket.lock().unwrap_or_else(|p| p.into_inner());
            *sock = logger.connect().ok();
        }
        logger
    }

    /// The configuration in use.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    fn connect(&self) -> io::Result<UnixDatagram> {
        let path = match &self.config.sink {
            LogSink::Syslog { socket, .. } | LogSink::Postlog { socket, .. } => socket,
        };
        let sock = UnixDatagram::unbound()?;
        sock.connect(path)?;
        Ok(sock)
    }

    /// The bytes one line becomes at the sink.
    pub fn record(&self, severity: Severity, text: &str) -> Vec<u8> {
        let text = printable(text, self.config.utf8);
        let now = LocalTime::now();
        match &self.config.sink {
            LogSink::Syslog { facility, .. } => {
                syslog_record(*facility, now, &self.config.tag, self.pid, severity, &text)
            }
            LogSink::Postlog { hostname, .. } => {
                postlog_record(now, hostname, &self.config.tag, self.pid, severity, &text)
            }
        }
    }

    /// Logs one line.
    pub fn log(&self, severity: Severity, text: &str) {
        let rec = self.record(severity, text);
        {
            let mut sock = self.socket.lock().unwrap_or_else(|p| p.into_inner());
            let sent = sock.as_ref().map(|s| s.send(&rec).is_ok()).unwrap_or(false);
            if !sent {
                *sock = self.connect().ok();
                if let Some(s) = sock.as_ref() {
                    let _ = s.send(&rec);
                }
            }
        }
        if self.config.also_stderr {
            let mut line = format!("{}: ", self.config.tag).into_bytes();
            if let Some(label) = severity.label() {
                line.extend_from_slice(format!("{label}: ").as_bytes());
            }
            line.extend_from_slice(&printable(text, self.config.utf8));
            line.push(b'\n');
            let _ = io::stderr().write_all(&line);
        }
    }
}

/// The process-wide logger used by the free functions and the tracing
/// subscriber; replaced as configuration becomes known.
static GLOBAL: RwLock<Option<Arc<Logger>>> = RwLock::new(None);

/// Installs `logger` as the process-wide logger (replacing any earlier one).
pub fn install(logger: Logger) -> Arc<Logger> {
    let logger = Arc::new(logger);
    *GLOBAL.write().unwrap_or_else(|p| p.into_inner()) = Some(logger.clone());
    logger
}

/// The process-wide logger, if installed.
pub fn global() -> Option<Arc<Logger>> {
    GLOBAL.read().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Logs through the process-wide logger, or to stderr as
/// `<program>: [severity: ]text` when none is installed yet.
pub fn log(severity: Severity, text: &str) {
    match global() {
        Some(logger) => logger.log(severity, text),
        None => {
            let prog = std::env::args().next().unwrap_or_default();
            let prog = prog.rsplit('/').next().unwrap_or("");
            let label = severity
                .label()
                .map(|l| format!("{l}: "))
                .unwrap_or_default();
            let _ = writeln!(io::stderr(), "{prog}: {label}{text}");
        }
    }
}

/// `msg_info`.
pub fn info(text: &str) {
    log(Severity::Info, text)
}

/// `msg_warn`.
pub fn warning(text: &str) {
    log(Severity::Warning, text)
}

/// `msg_error`.
pub fn error(text: &str) {
    log(Severity::Error, text)
}

/// `msg_fatal`: logs and exits with status 1.
pub fn fatal(text: &str) -> ! {
    log(Severity::Fatal, text);
    std::process::exit(1)
}

/// `msg_panic`: logs and aborts (a core dump, as Postfix's `abort()`).
pub fn panic(text: &str) -> ! {
    log(Severity::Panic, text);
    std::process::abort()
}

/// An OS error as Postfix's `%m` prints it (`strerror` text, without
/// Rust's " (os error N)").
pub fn errno_text(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => {
            // SAFETY: strerror returns a pointer to a NUL-terminated string
            // that stays valid until the next strerror call on this thread;
            // it is copied at once.
            let text = unsafe { std::ffi::CStr::from_ptr(libc::strerror(code)) };
            text.to_string_lossy().into_owned()
        }
        None => err.to_string(),
    }
}

/// The first steps of every daemon master(8) starts, before main.cf is
/// read: parse argv as master built it, log from the environment alone
/// (as Postfix's bootstrap logging does, so that argument errors reach the
/// maillog; under the program name when argv itself is bad), then refuse a
/// terminal, a process limit other than 1 and extra words. Any failure is
/// logged as Postfix's fatal text and ends the process.
pub fn bootstrap() -> MasterArgs {
    let env = |name: &str| std::env::var(name).ok();
    let argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    // Until argv is known good, log under the program name.
    let argv0 = argv.first().cloned().unwrap_or_default();
    if let Ok(fallback) = MasterArgs::parse(&[argv0.as_str(), "-S"], env) {
        if let Ok(cfg) = LogConfig::resolve(&fallback, &LogParams::default(), env) {
            install(Logger::new(cfg));
        }
    }
    let (mut args, type_name) = match MasterArgs::parse_options(&argv, env) {
        Ok(parsed) => parsed,
        Err(e) => fatal(&e.to_string()),
    };
    // SAFETY: isatty only inspects descriptor 0.
    let on_tty = unsafe { libc::isatty(0) } == 1;
    if let Err(e) = args.refuse_terminal(on_tty) {
        // Postfix says this on the terminal too, under the bare program
        // name, so that whoever typed the command sees why it stopped;
        // it checks the terminal before the service type.
        eprintln!("{}: fatal: {e}", args.process_name);
        fatal(&e.to_string());
    }
    if let Err(e) = args.check_type(type_name) {
        fatal(&e.to_string());
    }
    if let Ok(cfg) = LogConfig::resolve(&args, &LogParams::default(), env) {
        install(Logger::new(cfg));
    }
    if let Err(e) = args.require_solitary().and(args.reject_extra_args()) {
        fatal(&e.to_string());
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> MasterArgs {
        MasterArgs::parse(words, |_| None).unwrap()
    }

    #[test]
    fn resolve_uses_environment_before_main_cf() {
        let env = |n: &str| match n {
            "POSTLOG_SERVICE" => Some("/q/public/postlog".to_string()),
            "POSTLOG_HOSTNAME" => Some("mx.example.com".to_string()),
            "MAIL_LOGTAG" => Some("postfix-out".to_string()),
            _ => None,
        };
        let c = LogConfig::resolve(
            &args(&["oqmgr", "-n", "qmgr", "-t", "unix", "-V"]),
            &LogParams::default(),
            env,
        )
        .unwrap();
        assert_eq!(c.tag, "postfix-out/qmgr");
        assert_eq!(
            c.sink,
            LogSink::Postlog {
                socket: "/q/public/postlog".into(),
                hostname: "mx.example.com".into()
            }
        );
        assert!(c.also_stderr);
        let c = LogConfig::resolve(
            &args(&["qmgr", "-t", "unix"]),
            &LogParams::default(),
            |_| None,
        )
        .unwrap();
        assert_eq!(c.tag, "postfix/qmgr");
        assert_eq!(
            c.sink,
            LogSink::Syslog {
                socket: DEV_LOG.into(),
                facility: 16
            }
        );
    }

    #[test]
    fn resolve_prefers_main_cf() {
        let env =
            |n: &str| (n == "POSTLOG_SERVICE" || n == "MAIL_LOGTAG").then(|| "/env".to_string());
        let params = LogParams {
            syslog_name: Some("postfix-in".into()),
            maillog_file: Some("/var/log/mail.log".into()),
            myhostname: Some("box.example".into()),
            queue_directory: Some("/spool".into()),
            ..LogParams::default()
        };
        let c = LogConfig::resolve(&args(&["qmgr", "-t", "unix"]), &params, env).unwrap();
        assert_eq!(c.tag, "postfix-in/qmgr");
        assert_eq!(
            c.sink,
            LogSink::Postlog {
                socket: "/spool/public/postlog".into(),
                hostname: "box.example".into()
            }
        );
        let syslog = LogParams {
            maillog_file: Some(String::new()),
            syslog_facility: Some("local3".into()),
            ..LogParams::default()
        };
        let c = LogConfig::resolve(&args(&["qmgr", "-t", "unix"]), &syslog, env).unwrap();
        assert_eq!(
            c.sink,
            LogSink::Syslog {
                socket: DEV_LOG.into(),
                facility: 152
            }
        );
        let bad = LogParams {
            syslog_facility: Some("mial".into()),
            ..LogParams::default()
        };
        assert_eq!(
            LogConfig::resolve(&args(&["qmgr", "-t", "unix"]), &bad, |_| None)
                .unwrap_err()
                .to_string(),
            "parameter syslog_facility: unrecognized value: mial"
        );
        let outside = LogParams {
            maillog_file: Some("/tmp/x".into()),
            ..LogParams::default()
        };
        assert!(matches!(
            LogConfig::resolve(&args(&["qmgr", "-t", "unix"]), &outside, |_| None),
            Err(LogError::BadMaillogFile(..))
        ));
        let no_host = LogParams {
            maillog_file: Some("/var/x".into()),
            queue_directory: Some("/q".into()),
            ..LogParams::default()
        };
        let c = LogConfig::resolve(&args(&["qmgr", "-t", "unix"]), &no_host, |_| None).unwrap();
        assert_eq!(
            c.sink,
            LogSink::Postlog {
                socket: "/q/public/postlog".into(),
                hostname: "amnesiac".into()
            }
        );
    }

    #[test]
    fn logger_sends_one_datagram_per_line() {
        let dir = std::env::temp_dir().join(format!("oqmgr-log-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("postlog");
        let server = UnixDatagram::bind(&path).unwrap();
        let logger = Logger::new(LogConfig {
            tag: "postfix/qmgr".into(),
            sink: LogSink::Postlog {
                socket: path.clone(),
                hostname: "test.example".into(),
            },
            also_stderr: false,
            verbose: 0,
            utf8: true,
        });
        logger.log(Severity::Info, "hello\nworld");
        logger.log(Severity::Error, "bad");
        let mut buf = [0u8; 4096];
        let n = server.recv(&mut buf).unwrap();
        let line = String::from_utf8_lossy(&buf[..n]).into_owned();
        let suffix = format!(" test postfix/qmgr[{}]: hello?world", std::process::id());
        assert!(line.ends_with(&suffix), "{line}");
        assert_eq!(line.len(), "Nov 05 07:57:06".len() + suffix.len(), "{line}");
        let n = server.recv(&mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).ends_with("]: error: bad"));
        // The server restarts: the logger reconnects.
        drop(server);
        std::fs::remove_file(&path).unwrap();
        let server = UnixDatagram::bind(&path).unwrap();
        logger.log(Severity::Warning, "again");
        let n = server.recv(&mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).ends_with("]: warning: again"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn syslog_sink_gets_glibc_shaped_datagrams() {
        let dir = std::env::temp_dir().join(format!("oqmgr-syslog-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log");
        let server = UnixDatagram::bind(&path).unwrap();
        let logger = Logger::new(LogConfig {
            tag: "postfix/qmgr".into(),
            sink: LogSink::Syslog {
                socket: path.clone(),
                facility: 16,
            },
            also_stderr: false,
            verbose: 0,
            utf8: false,
        });
        logger.log(Severity::Fatal, "caf\u{e9}");
        let mut buf = [0u8; 4096];
        let n = server.recv(&mut buf).unwrap();
        let line = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(line.starts_with("<18>"), "{line}");
        // "<18>Mon dd hh:mm:ss " is 20 bytes, day space-padded.
        assert_eq!(&line[7..8], " ", "{line}");
        assert_ne!(&line[8..9], "0", "{line}");
        assert_eq!(
            &line[20..],
            format!("postfix/qmgr[{}]: fatal: caf??", std::process::id())
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn errno_text_is_strerror() {
        assert_eq!(
            errno_text(&io::Error::from_raw_os_error(libc::ENOENT)),
            "No such file or directory"
        );
        assert_eq!(errno_text(&io::Error::other("plain")), "plain");
    }
}
