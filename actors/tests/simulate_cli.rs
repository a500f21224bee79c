//! `oqmgr simulate` as a user meets it: a bad scenario is refused with the
//! file and the field at fault, and the built-in scenario runs without one.

use std::path::PathBuf;
use std::process::Command;

use oqmgr_actors::cli::simulate_command::load_scenario;

/// Writes `text` to a scenario file of its own and returns its path.
fn scenario_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("oqmgr-simulate-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn error_of(name: &str, text: &str) -> String {
    let path = scenario_file(name, text);
    let err = load_scenario(&path).expect_err("a bad scenario is refused");
    assert!(
        err.contains(&path.display().to_string()),
        "names the file: {err}"
    );
    err
}

#[test]
fn bad_scenarios_name_the_file_and_the_field() {
    let err = error_of(
        "type.toml",
        "[[arrivals]]\ncount = \"ten\"\ndomains = [\"a.example\"]\n",
    );
    assert!(err.contains("`arrivals.0.count`"), "{err}");
    let err = error_of("unknown.toml", "bogus = 1\n");
    assert!(err.contains("`bogus`"), "{err}");
    let err = error_of(
        "unit.toml",
        "[destinations.\"x\"]\nlatency = { dist = \"fixed\", value = \"5q\" }\n",
    );
    assert!(
        err.contains("`destinations.x.latency`") && err.contains("5q"),
        "{err}"
    );
    let err = error_of("domains.toml", "[[arrivals]]\ndomains = []\n");
    assert!(err.contains("`arrivals.0.domains`"), "{err}");
    let err = error_of("rate.toml", "[destinations.\"*\"]\ndefer_rate = 1.5\n");
    assert!(err.contains("defer_rate"), "{err}");
    let missing = load_scenario(std::path::Path::new("/nonexistent/x.toml")).unwrap_err();
    assert!(missing.contains("no such scenario file"), "{missing}");
}

#[test]
fn the_binary_runs_the_builtin_scenario_and_refuses_bad_options() {
    let bin = env!("CARGO_BIN_EXE_oqmgr");
    let out = Command::new(bin)
        .args(["simulate", "--summary-only"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("total: arrived=200"), "{text}");
    let bad = Command::new(bin)
        .args(["simulate", "--seed", "x"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let file = scenario_file("bad-cli.toml", "bogus = 1\n");
    let refused = Command::new(bin)
        .arg("simulate")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("`bogus`"));
}
