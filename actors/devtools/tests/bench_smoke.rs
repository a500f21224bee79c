//! Smoke test of `oqmgr-bench`: a few hundred messages through the relay
//! and intrinsic workloads with our queue manager (plain, and observed:
//! metrics on and the operator's tools in use) and Postfix's oqmgr, and
//! the memory workload with ours and 50 messages in core, checking only
//! that the benchmark completes and prints its table (timings and sizes on
//! a shared machine prove nothing, so none are asserted).

use std::process::Command;

/// Runs `oqmgr-bench` with `args` (our daemon as `--ours`), asserts that it
/// succeeded and printed each of `rows` as measured (not "did not
/// finish"), and returns its standard output.
fn bench_rows(args: &[&str], rows: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_oqmgr-bench"))
        .args(args)
        .arg("--ours")
        .arg(oqmgr_devtools::ours_for_test())
        .output()
        .expect("oqmgr-bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {}\n{stdout}\n{stderr}",
        out.status
    );
    for row in rows {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("no row {row:?}:\n{stdout}\n{stderr}"));
        assert!(!line.contains("did not finish"), "{line}\n{stderr}");
    }
    stdout
}

#[test]
fn bench_completes_and_prints_a_table() {
    let stdout = bench_rows(
        &[
            "--workloads",
            "relay,intrinsic",
            "--messages",
            "200",
            "--runs",
            "1",
            "--qmgrs",
            "ours,ours-observed,oqmgr",
        ],
        &[
            "| relay | throughput (msg/s",
            "| intrinsic | throughput (msg/s",
            "| relay | qmgr CPU per 10k msgs",
            "| intrinsic | qmgr peak RSS",
        ],
    );
    assert!(
        stdout.contains("| workload | metric |"),
        "no table:\n{stdout}"
    );
    assert!(stdout.contains("Postfix 3."), "no machine line:\n{stdout}");
    assert!(
        stdout.contains(
            "| ours | ours, observed | Postfix oqmgr | ours / best Postfix | observed / ours |"
        ),
        "no observed column:\n{stdout}"
    );
}

/// The memory workload with our daemon alone and 50 messages in core
/// (about 7 s: two instances, each waiting for a steady RSS twice). The
/// figures are not asserted, only that every row was measured.
#[test]
fn memory_workload_completes() {
    let stdout = bench_rows(
        &[
            "--workloads",
            "memory",
            "--in-core",
            "50",
            "--runs",
            "1",
            "--qmgrs",
            "ours",
        ],
        &[
            "| memory | bytes per in-core message, 1 recipient",
            "| memory | bytes per in-core message, 5 recipients in 5 domains",
            "| memory | bytes per in-core recipient, 5 recipients in 5 domains",
            "| memory | qmgr idle RSS",
        ],
    );
    assert!(
        stdout.contains("50 messages (1 recipient) and 20 (5 recipients) held in core"),
        "{stdout}"
    );
}
