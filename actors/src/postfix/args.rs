//! Command-line options that master(8) hands to a child; mirrors the option
//! loop of `postfix/src/master/trigger_server.c` (and its siblings in
//! `mail_server.h`) together with the argv built by `master_ent.c`.
//!
//! master(8) starts the queue manager as `<command> [-l] [-z] [-n service]
//! -t <type> [-d] [-v] [-u] [-c] [-o stress=…] [-s N] [master.cf words…]`.
//! [`MasterArgs::parse`] accepts exactly the option letters the Postfix 3.7
//! trigger-server skeleton accepts (`cdDi:lm:n:o:s:St:uvVz`), with the same
//! getopt rules: option letters may be clustered (`-lu`), an option's value
//! may be glued on (`-nqmgr`) or be the next word, `--` ends the options, and
//! the first word that is not an option ends them too (Postfix uses glibc's
//! `+` mode, so no permutation).
//!
//! Every rejection is a [`ArgsError`] whose `Display` is the text Postfix
//! logs after `fatal: `, so the daemon can log it and exit 1 exactly as the
//! stock daemon would. Nothing here panics on any input.
//!
//! Compatibility notes:
//! * `-i N` and `-m N` become `max_idle` / `max_use` entries in
//!   [`MasterArgs::overrides`], in command-line order with the `-o` ones,
//!   because Postfix applies them as ordinary parameter updates.
//! * stock qmgr only rejects extra words when its first trigger arrives; a
//!   replacement should call [`MasterArgs::reject_extra_args`] at startup,
//!   which gives the same text earlier.

use std::fmt;

/// The option letters of the Postfix 3.7 trigger-server skeleton; a letter
/// followed by `:` takes a value.
const OPTSTRING: &str = "cdDi:lm:n:o:s:St:uvVz";

/// Largest `-s` value accepted; master(8) passes more than one listen
/// descriptor only for multi-address inet services.
const MAX_SOCKET_COUNT: i64 = 256;

/// The kind of listen endpoint master(8) passes on fd 6 (`-t` value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceType {
    /// `unix`: a listening AF_UNIX stream socket; each trigger is one
    /// accepted connection.
    Unix,
    /// `fifo`: a named pipe opened read-write by master(8); triggers are read
    /// straight from it.
    Fifo,
    /// `pass`: descriptor passing. Postfix supports it for trigger servers,
    /// this crate does not (see [`ArgsError::UnsupportedType`]).
    Pass,
}

/// Why the command line was refused. `Display` is Postfix's fatal text
/// without the `fatal: ` prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArgsError {
    /// An option letter outside the option string, or one that needs a
    /// value given as the last word (getopt reports both the same way).
    InvalidOption(char),
    /// `-o` without a usable `name=value`; the second field is the reason.
    BadOverride(String, &'static str),
    /// `-s` with a count that is not a positive number.
    BadSocketCount(String),
    /// No `-t` and not stand-alone.
    NoTransport,
    /// `-t` named a type a trigger server cannot serve.
    UnsupportedType(String),
    /// A solitary service started without `-l`.
    NeedsSolitary(String),
    /// Words left after the options when the service takes none.
    UnexpectedArgument(String),
    /// stdin is a terminal and neither `-d` nor `-S` was given.
    ByHand,
}

impl fmt::Display for ArgsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgsError::InvalidOption(c) => write!(f, "invalid option: {c}"),
            ArgsError::BadOverride(value, why) => {
                write!(f, "invalid \"-o {value}\" option value: {why}")
            }
            ArgsError::BadSocketCount(value) => write!(f, "invalid socket_count: {value}"),
            ArgsError::NoTransport => write!(f, "no transport type specified"),
            ArgsError::UnsupportedType(t) => write!(f, "unsupported transport type: {t}"),
            ArgsError::NeedsSolitary(s) => {
                write!(f, "service {s} requires a process limit of 1")
            }
            ArgsError::UnexpectedArgument(a) => {
                write!(f, "unexpected command-line argument: {a}")
            }
            ArgsError::ByHand => write!(f, "do not run this command by hand"),
        }
    }
}

impl std::error::Error for ArgsError {}

/// What master(8) told the child on its command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MasterArgs {
    /// Basename of `argv[0]`; Postfix's `process_name` parameter.
    pub process_name: String,
    /// `-n` value, else the process name; Postfix's `service_name`.
    pub service_name: String,
    /// `-t` value; `None` only in stand-alone mode.
    pub service_type: Option<ServiceType>,
    /// `-l`: master.cf process limit is 1.
    pub solitary: bool,
    /// `-z`: master.cf process limit is 0 (unlimited).
    pub unlimited: bool,
    /// `-c`: chroot to `queue_directory` after pre-init.
    pub chroot: bool,
    /// `-u`: drop privileges to `mail_owner` after pre-init.
    pub unprivileged: bool,
    /// Cleared by `-d` (master runs in the foreground); only disables the
    /// "run by hand" terminal check.
    pub daemon_mode: bool,
    /// `-D` or `MAIL_DEBUG` in the environment: run `debugger_command`.
    /// Recorded, not acted upon.
    pub debug: bool,
    /// Number of `-v` (plus one if `MAIL_VERBOSE` is set).
    pub verbose: u32,
    /// Number of `-V`: also log to stderr.
    pub stderr_log: u32,
    /// `-S`: stand-alone, the one request comes on stdin.
    pub stand_alone: bool,
    /// `-s N`: listen descriptors 6 .. 6+N-1 (default 1).
    pub socket_count: usize,
    /// Parameter updates in command-line order: `-o name=value` (trimmed
    /// like Postfix's split_nameval) and `-i`/`-m` as `max_idle`/`max_use`.
    pub overrides: Vec<(String, String)>,
    /// Words after the options (master.cf words that are not options).
    pub extra: Vec<String>,
}

impl MasterArgs {
    /// Parses `argv` (`argv[0]` first) and the environment switches
    /// `MAIL_VERBOSE`/`MAIL_DEBUG` given as `env` (name → value lookup).
    /// Also checks `-t` ([`MasterArgs::check_type`]).
    pub fn parse<S: AsRef<str>>(
        argv: &[S],
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<MasterArgs, ArgsError> {
        let (mut args, type_name) = MasterArgs::parse_options(argv, env)?;
        args.check_type(type_name)?;
        Ok(args)
    }

    /// The option loop alone: the parsed options and the `-t` value, which
    /// Postfix checks only after the terminal check and its own tables
    /// ([`MasterArgs::check_type`]).
    pub fn parse_options<S: AsRef<str>>(
        argv: &[S],
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<(MasterArgs, Option<String>), ArgsError> {
        let argv0 = argv.first().map(|s| s.as_ref()).unwrap_or("");
        let process_name = basename(argv0).to_string();
        let mut args = MasterArgs {
            service_name: process_name.clone(),
            process_name,
            service_type: None,
            solitary: false,
            unlimited: false,
            chroot: false,
            unprivileged: false,
            daemon_mode: true,
            debug: env("MAIL_DEBUG").is_some(),
            verbose: u32::from(env("MAIL_VERBOSE").is_some()),
            stderr_log: 0,
            stand_alone: false,
            socket_count: 1,
            overrides: Vec::new(),
            extra: Vec::new(),
        };
        let mut type_name: Option<String> = None;
        let mut idx = 1;
        'words: while idx < argv.len() {
            let word = argv[idx].as_ref();
            if word == "--" {
                idx += 1;
                break;
            }
            if !word.starts_with('-') || word == "-" {
                break;
            }
            for (pos, letter) in word[1..].char_indices() {
                let takes_value = match option_spec(letter) {
                    Some(takes_value) => takes_value,
                    None => return Err(ArgsError::InvalidOption(letter)),
                };
                if !takes_value {
                    args.apply_flag(letter);
                    continue;
                }
                let glued = &word[1 + pos + letter.len_utf8()..];
                let value = if !glued.is_empty() {
                    glued.to_string()
                } else if idx + 1 < argv.len() {
                    idx += 1;
                    argv[idx].as_ref().to_string()
                } else {
                    // getopt without a leading ':' reports a missing value
                    // as an unknown option; Postfix then prints the letter.
                    return Err(ArgsError::InvalidOption(letter));
                };
                match letter {
                    't' => type_name = Some(value),
                    other => args.apply_value(other, value)?,
                }
                idx += 1;
                continue 'words;
            }
            idx += 1;
        }
        args.extra = argv[idx.min(argv.len())..]
            .iter()
            .map(|s| s.as_ref().to_string())
            .collect();
        Ok((args, type_name))
    }

    /// Sets the service type from the `-t` value, refusing a missing or
    /// unknown one unless stand-alone.
    pub fn check_type(&mut self, type_name: Option<String>) -> Result<(), ArgsError> {
        let args = self;
        if !args.stand_alone {
            let name = type_name.ok_or(ArgsError::NoTransport)?;
            args.service_type = Some(match name.to_ascii_lowercase().as_str() {
                "unix" => ServiceType::Unix,
                "fifo" => ServiceType::Fifo,
                "pass" => ServiceType::Pass,
                _ => return Err(ArgsError::UnsupportedType(name)),
            });
        } else if let Some(name) = type_name {
            // Stand-alone ignores -t, but keep what was understood.
            args.service_type = match name.to_ascii_lowercase().as_str() {
                "unix" => Some(ServiceType::Unix),
                "fifo" => Some(ServiceType::Fifo),
                "pass" => Some(ServiceType::Pass),
                _ => None,
            };
        }
        Ok(())
    }

    /// Parses the real process arguments and environment.
    pub fn from_env() -> Result<MasterArgs, ArgsError> {
        let argv: Vec<String> = std::env::args_os()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        MasterArgs::parse(&argv, |name| {
            std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
        })
    }

    /// Refuses to run without `-l` (qmgr is solitary), unless stand-alone.
    pub fn require_solitary(&self) -> Result<(), ArgsError> {
        if self.stand_alone || self.solitary {
            Ok(())
        } else {
            Err(ArgsError::NeedsSolitary(self.service_name.clone()))
        }
    }

    /// Refuses leftover words: the queue manager takes no arguments.
    pub fn reject_extra_args(&self) -> Result<(), ArgsError> {
        match self.extra.first() {
            Some(word) => Err(ArgsError::UnexpectedArgument(word.clone())),
            None => Ok(()),
        }
    }

    /// Refuses to run from a terminal unless `-d` or `-S` was given; this
    /// keeps an operator from starting a second queue manager by accident.
    pub fn refuse_terminal(&self, stdin_is_tty: bool) -> Result<(), ArgsError> {
        if self.daemon_mode && !self.stand_alone && stdin_is_tty {
            Err(ArgsError::ByHand)
        } else {
            Ok(())
        }
    }

    fn apply_flag(&mut self, letter: char) {
        match letter {
            'c' => self.chroot = true,
            'd' => self.daemon_mode = false,
            'D' => self.debug = true,
            'l' => self.solitary = true,
            'S' => self.stand_alone = true,
            'u' => self.unprivileged = true,
            'v' => self.verbose = self.verbose.saturating_add(1),
            'V' => self.stderr_log = self.stderr_log.saturating_add(1),
            'z' => self.unlimited = true,
            other => unreachable!("option_spec accepted flag {other}"),
        }
    }

    fn apply_value(&mut self, letter: char, value: String) -> Result<(), ArgsError> {
        match letter {
            'i' => self.overrides.push(("max_idle".into(), value)),
            'm' => self.overrides.push(("max_use".into(), value)),
            'n' => self.service_name = value,
            'o' => {
                let (name, val) = split_nameval(&value)
                    .map_err(|why| ArgsError::BadOverride(value.clone(), why))?;
                self.overrides.push((name.to_string(), val.to_string()));
            }
            's' => {
                self.socket_count = match atoi(&value) {
                    // The upper bound keeps a garbage count from making the
                    // daemon claim thousands of descriptors.
                    n if n > 0 && n <= MAX_SOCKET_COUNT => n as usize,
                    _ => return Err(ArgsError::BadSocketCount(value)),
                }
            }
            other => unreachable!("option_spec accepted valued option {other}"),
        }
        Ok(())
    }
}

/// `Some(takes_value)` when `letter` is in the option string.
fn option_spec(letter: char) -> Option<bool> {
    if letter == ':' {
        return None;
    }
    let at = OPTSTRING.find(letter)?;
    Some(OPTSTRING[at + letter.len_utf8()..].starts_with(':'))
}

/// The last path component, as Postfix's basename(): the whole string when
/// it has no slash or ends in one.
fn basename(path: &str) -> &str {
    match path.rfind('/') {
        Some(at) if at + 1 < path.len() => &path[at + 1..],
        _ => path,
    }
}

/// Splits `name = value` with blanks trimmed around both parts, refusing a
/// missing name or `=` with Postfix's reasons.
pub fn split_nameval(text: &str) -> Result<(&str, &str), &'static str> {
    let rest = text.trim_start_matches(is_space);
    if rest.is_empty() || rest.starts_with('=') {
        return Err("missing attribute name");
    }
    let name_end = rest
        .find(|c: char| is_space(c) || c == '=')
        .unwrap_or(rest.len());
    let (name, after) = rest.split_at(name_end);
    let after = after.trim_start_matches(is_space);
    let Some(value) = after.strip_prefix('=') else {
        return Err("missing '=' after attribute name");
    };
    Ok((name, value.trim_matches(is_space)))
}

/// C `isspace` in the C locale.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// C `atoi`: optional blanks and sign, then leading digits; 0 when none.
/// Saturates instead of overflowing.
fn atoi(text: &str) -> i64 {
    let t = text.trim_start_matches(is_space);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let mut n: i64 = 0;
    for b in digits.bytes().take_while(u8::is_ascii_digit) {
        n = n.saturating_mul(10).saturating_add(i64::from(b - b'0'));
    }
    if neg {
        -n
    } else {
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(words: &[&str]) -> Result<MasterArgs, ArgsError> {
        MasterArgs::parse(words, |_| None)
    }

    #[test]
    fn stock_qmgr_line() {
        let a = parse(&["qmgr", "-l", "-t", "unix", "-u"]).unwrap();
        assert_eq!(a.process_name, "qmgr");
        assert_eq!(a.service_name, "qmgr");
        assert_eq!(a.service_type, Some(ServiceType::Unix));
        assert!(a.solitary && a.unprivileged && a.daemon_mode && !a.chroot);
        assert_eq!(a.socket_count, 1);
        assert!(a.extra.is_empty());
        a.require_solitary().unwrap();
        a.reject_extra_args().unwrap();
    }

    #[test]
    fn renamed_binary_gets_service_name_from_n() {
        let a = parse(&[
            "../../../opt/oqmgr",
            "-l",
            "-n",
            "qmgr",
            "-t",
            "fifo",
            "-u",
            "-c",
            "-d",
            "-v",
            "-v",
        ])
        .unwrap();
        assert_eq!(a.process_name, "oqmgr");
        assert_eq!(a.service_name, "qmgr");
        assert_eq!(a.service_type, Some(ServiceType::Fifo));
        assert!(a.chroot && !a.daemon_mode);
        assert_eq!(a.verbose, 2);
    }

    #[test]
    fn clustered_and_glued_values() {
        let a = parse(&[
            "x",
            "-lunqmgr",
            "-tUNIX",
            "-osyslog_name = postfix/alt ",
            "-s2",
            "-i",
            "5",
            "-m7",
        ])
        .unwrap();
        assert!(a.solitary && a.unprivileged);
        assert_eq!(a.service_name, "qmgr");
        assert_eq!(a.service_type, Some(ServiceType::Unix));
        assert_eq!(a.socket_count, 2);
        assert_eq!(
            a.overrides,
            vec![
                ("syslog_name".to_string(), "postfix/alt".to_string()),
                ("max_idle".to_string(), "5".to_string()),
                ("max_use".to_string(), "7".to_string()),
            ]
        );
    }

    #[test]
    fn options_stop_at_first_word_and_double_dash() {
        let a = parse(&["qmgr", "-t", "unix", "extra", "-l"]).unwrap();
        assert!(!a.solitary);
        assert_eq!(a.extra, vec!["extra", "-l"]);
        assert_eq!(
            a.reject_extra_args().unwrap_err().to_string(),
            "unexpected command-line argument: extra"
        );
        assert_eq!(
            a.require_solitary().unwrap_err().to_string(),
            "service qmgr requires a process limit of 1"
        );
        let b = parse(&["qmgr", "-t", "unix", "--", "-l"]).unwrap();
        assert_eq!(b.extra, vec!["-l"]);
        let c = parse(&["qmgr", "-t", "unix", "-"]).unwrap();
        assert_eq!(c.extra, vec!["-"]);
    }

    #[test]
    fn stress_override_from_master_is_accepted() {
        let a = parse(&["smtpd", "-t", "unix", "-o", "stress="]).unwrap();
        assert_eq!(a.overrides, vec![("stress".to_string(), String::new())]);
    }

    #[test]
    fn rejections_carry_postfix_text() {
        let cases: &[(&[&str], &str)] = &[
            (&["qmgr", "-x"], "invalid option: x"),
            (&["qmgr", "-l:"], "invalid option: :"),
            (&["qmgr", "-t"], "invalid option: t"),
            (&["qmgr", "-l"], "no transport type specified"),
            (&["qmgr", "-t", "inet"], "unsupported transport type: inet"),
            (
                &["qmgr", "-t", "unix", "-o", "novalue"],
                "invalid \"-o novalue\" option value: missing '=' after attribute name",
            ),
            (
                &["qmgr", "-t", "unix", "-o", " =v"],
                "invalid \"-o  =v\" option value: missing attribute name",
            ),
            (
                &["qmgr", "-t", "unix", "-s", "0"],
                "invalid socket_count: 0",
            ),
            (
                &["qmgr", "-t", "unix", "-s", "x"],
                "invalid socket_count: x",
            ),
        ];
        for (words, text) in cases {
            assert_eq!(parse(words).unwrap_err().to_string(), *text, "{words:?}");
        }
    }

    #[test]
    fn stand_alone_needs_no_type_and_env_switches_count() {
        let a = MasterArgs::parse(&["qmgr", "-S"], |n| (n == "MAIL_VERBOSE").then(String::new))
            .unwrap();
        assert!(a.stand_alone);
        assert_eq!(a.service_type, None);
        assert_eq!(a.verbose, 1);
        a.require_solitary().unwrap();
        a.refuse_terminal(true).unwrap();
        let b = parse(&["qmgr", "-t", "unix"]).unwrap();
        assert_eq!(
            b.refuse_terminal(true).unwrap_err().to_string(),
            "do not run this command by hand"
        );
        b.refuse_terminal(false).unwrap();
    }

    #[test]
    fn odd_argv0_and_garbage_never_panic() {
        for words in [
            vec![""],
            vec!["/"],
            vec!["a/"],
            vec!["x", "-é"],
            vec!["x", "-nè", "-t", "unix"],
            vec!["x", "-s", "99999999999999999999999", "-t", "unix"],
        ] {
            let _ = parse(&words);
        }
        assert_eq!(
            parse(&["x", "-é"]).unwrap_err(),
            ArgsError::InvalidOption('é')
        );
        assert_eq!(
            parse(&["x", "-nè", "-t", "unix"]).unwrap().service_name,
            "è"
        );
        assert_eq!(basename("a/"), "a/");
        assert_eq!(basename("/usr/x"), "x");
    }
}
