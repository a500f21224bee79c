//! The `oqmgr` command line for people: `--help`, `--version` and the
//! subcommands that are not the daemon (`simulate`, `check`), parsed with
//! clap. (The demo and the benchmarks are tools of their own, in the
//! `oqmgr-devtools` package: the daemon binary carries none of them.)
//!
//! The same binary is the queue manager daemon that master(8) starts with
//! its own argv (`-l -n qmgr -t unix -u ...`); those options keep
//! Postfix's getopt meaning ([`crate::postfix::args`]), so a word decides
//! which parser runs ([`is_for_people`]): a subcommand name, `help`,
//! `--help`/`-h` or `--version` go to clap, anything else to the daemon.
//! `-V` stays master's "log to stderr" and `-v` its verbose switch.
//!
//! `oqmgr check [-c DIR] [-o name=value]...` reads main.cf as the daemon
//! does and reports every setting that would stop the queue manager (with
//! the fatal text it would log) and every warning it would log, one line
//! each naming the parameter; the exit status is 1 when any would stop it.

pub mod simulate_command;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{self, mail_params};
use simulate_command::SimulateArgs;

/// What `oqmgr --help` says about the daemon after the subcommands.
const DAEMON_HELP: &str = "\
Run without a subcommand, oqmgr is a Postfix queue manager daemon for
master(8), in place of qmgr(8) or oqmgr(8), installed with one master.cf
line such as:

  qmgr  unix  n  -  n  300  1  oqmgr

master(8) starts it with Postfix's daemon options (-l -n qmgr -t unix -u,
-v for verbose logging, -o name=value); it does not run by hand.";

/// The words that select the command line for people.
const PEOPLE_WORDS: [&str; 6] = ["simulate", "check", "help", "--help", "-h", "--version"];

/// `oqmgr`'s command line for people.
#[derive(Debug, Parser)]
#[command(
    name = "oqmgr",
    version,
    about = "A Postfix queue manager (oqmgr(8) compatible), its simulator and tools",
    after_help = DAEMON_HELP,
    disable_version_flag = true
)]
pub struct Cli {
    /// Print the version (long form only: `-V` is master(8)'s option).
    #[arg(long, action = clap::ArgAction::Version)]
    version: Option<bool>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario through the scheduling core on a virtual clock and
    /// print its trace and summary.
    Simulate(SimulateArgs),
    /// Check the Postfix configuration as the queue manager would read it,
    /// without starting; names every bad setting.
    Check(CheckArgs),
}

/// `oqmgr check`'s options.
#[derive(Clone, Debug, clap::Args)]
pub struct CheckArgs {
    /// Configuration directory (default: $MAIL_CONFIG, else what
    /// `postconf -h config_directory` says, else /etc/postfix).
    #[arg(short = 'c', value_name = "config_dir")]
    pub config_dir: Option<PathBuf>,
    /// A parameter setting as master.cf would give it, after main.cf.
    #[arg(short = 'o', value_name = "name=value")]
    pub overrides: Vec<String>,
}

/// True when `args` (without the program name) are for the command line
/// for people rather than master(8)'s argv for the daemon.
pub fn is_for_people(args: &[String]) -> bool {
    args.first()
        .is_some_and(|word| PEOPLE_WORDS.contains(&word.as_str()))
}

/// Parses the command line for people (with the program name first) and
/// runs it; returns the exit status. Help and version go to stdout with
/// status 0, a usage error to stderr with status 2.
pub fn main(argv: &[String]) -> i32 {
    let cli = match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    match cli.command {
        Command::Simulate(args) => simulate_command::main(args),
        Command::Check(args) => check(&args),
    }
}

/// Runs `oqmgr check`: prints one line per problem and a summary; 1 when
/// some setting would stop the queue manager, else 0.
pub fn check(args: &CheckArgs) -> i32 {
    let dir = config::config_directory(args.config_dir.as_deref());
    let (raw, load_warnings) = match config::load(&dir, &args.overrides) {
        Ok(loaded) => loaded,
        Err(e) => {
            println!("fatal: {e}");
            return 1;
        }
    };
    let report = mail_params::check(&raw);
    let mut fatals: Vec<(String, String)> = report
        .fatals
        .into_iter()
        .map(|f| (f.param, f.message))
        .collect();
    if let Err(e) = crate::transports::config::load(&dir) {
        fatals.push(("oqmgr.toml".into(), e.to_string()));
    }
    let warnings: Vec<_> = load_warnings.into_iter().chain(report.warnings).collect();
    for (param, message) in &fatals {
        println!("{param}: fatal: {message}");
    }
    for w in &warnings {
        println!("{}: warning: {}", w.param, w.message);
    }
    let main_cf = dir.join("main.cf");
    if fatals.is_empty() {
        println!(
            "{}: ok ({} warning{})",
            main_cf.display(),
            warnings.len(),
            if warnings.len() == 1 { "" } else { "s" }
        );
        0
    } else {
        println!(
            "{}: {} bad setting{}: the queue manager stops with \"fatal: {}\"",
            main_cf.display(),
            fatals.len(),
            if fatals.len() == 1 { "" } else { "s" },
            fatals[0].1
        );
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn master_argv_goes_to_the_daemon() {
        for argv in [
            &["-l", "-n", "qmgr", "-t", "unix", "-u"][..],
            &["-V"],
            &["-v", "-l"],
            &[],
        ] {
            assert!(!is_for_people(&words(argv)), "{argv:?}");
        }
        for argv in [
            &["--help"][..],
            &["--version"],
            &["check", "-c", "/x"],
            &["simulate"],
        ] {
            assert!(is_for_people(&words(argv)), "{argv:?}");
        }
    }

    #[test]
    fn the_command_line_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["oqmgr", "check", "-c", "/etc/p", "-o", "a=b"]).unwrap();
        match cli.command {
            Command::Check(c) => {
                assert_eq!(c.config_dir, Some(PathBuf::from("/etc/p")));
                assert_eq!(c.overrides, ["a=b"]);
            }
            other => panic!("{other:?}"),
        }
    }
}
