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
//! One module per subcommand: [`simulate_command`] (`oqmgr simulate`, the
//! simulator, `docs/simulator.md`, with [`plot`] for `--plot`),
//! [`check_command`] (`oqmgr check`) and [`ctl_command`] (`oqmgr ctl`,
//! the running queue manager's view and controls, `docs/control.md`).

pub mod check_command;
pub mod ctl_command;
pub mod plot;
pub mod simulate_command;

use clap::{Parser, Subcommand};

use check_command::CheckArgs;
use ctl_command::CtlArgs;
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
const PEOPLE_WORDS: [&str; 7] = [
    "simulate",
    "check",
    "ctl",
    "help",
    "--help",
    "-h",
    "--version",
];

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
    /// Show and steer the running queue manager (status, destinations,
    /// why, shape, suspend, resume, flush) through its control socket.
    Ctl(CtlArgs),
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
        Command::Check(args) => check_command::main(&args),
        Command::Ctl(args) => ctl_command::main(args),
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
                assert_eq!(c.config_dir, Some(std::path::PathBuf::from("/etc/p")));
                assert_eq!(c.overrides, ["a=b"]);
            }
            other => panic!("{other:?}"),
        }
    }
}
