//! The `oqmgr` binary explains itself (issue 12): `--help` and
//! `--version` answer, every subcommand has `--help`, and the daemon typed
//! by hand on a terminal says why it stops, on the terminal, in the words
//! of Postfix's daemons (checked against Postfix's own oqmgr).

use std::path::PathBuf;
use std::process::{Command, Output};

fn ours() -> &'static str {
    env!("CARGO_BIN_EXE_oqmgr")
}

fn run(args: &[&str]) -> Output {
    Command::new(ours())
        .args(args)
        .output()
        .expect("oqmgr runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn help_and_version_answer() {
    let help = run(&["--help"]);
    assert!(help.status.success());
    let text = stdout(&help);
    for word in ["simulate", "check", "master(8)"] {
        assert!(text.contains(word), "--help names {word}: {text}");
    }
    let version = run(&["--version"]);
    assert!(version.status.success());
    assert_eq!(
        stdout(&version).trim(),
        format!("oqmgr {}", env!("CARGO_PKG_VERSION"))
    );
    // The demo and the benchmarks are programs of the tooling package, not
    // subcommands of the daemon.
    for gone in ["demo", "bench-scheduler"] {
        assert!(!text.contains(gone), "--help names {gone}: {text}");
    }
    for sub in ["simulate", "check"] {
        let out = run(&[sub, "--help"]);
        assert!(out.status.success(), "{sub} --help: {out:?}");
        assert!(stdout(&out).contains(&format!("Usage: oqmgr {sub}")));
    }
    let bad = run(&["check", "--bogus"]);
    assert_eq!(bad.status.code(), Some(2));
}

/// Runs `program` on a pseudo-terminal (script(1)) with the configuration
/// in `config` (Postfix reads main.cf before it looks at the terminal)
/// and returns what the terminal showed.
fn on_terminal(program: &str, config: &std::path::Path) -> String {
    let out = Command::new("script")
        .args(["-qc", program, "/dev/null"])
        .env("MAIL_CONFIG", config)
        .output()
        .expect("script(1) from util-linux runs");
    String::from_utf8_lossy(&out.stdout).replace('\r', "")
}

#[test]
fn by_hand_on_a_terminal_it_says_so_like_postfix() {
    let postfix = Command::new("postconf")
        .args(["-dh", "daemon_directory"])
        .output()
        .expect("postconf must be installed");
    let dir = std::env::temp_dir().join(format!("oqmgr-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("main.cf"), "").unwrap();
    let theirs = PathBuf::from(String::from_utf8_lossy(&postfix.stdout).trim()).join("oqmgr");
    let theirs = on_terminal(&theirs.display().to_string(), &dir);
    assert_eq!(
        theirs.trim(),
        "oqmgr: fatal: do not run this command by hand"
    );
    // Ours under the same name as Postfix's, so the lines compare.
    let link = dir.join("oqmgr");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(ours(), &link).unwrap();
    let got = on_terminal(&link.display().to_string(), &dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(got.trim(), theirs.trim());
}
