#![allow(clippy::disallowed_methods)] // the demo waits on real daemons in real time
//! The README's main job, small: `oqmgr-demo` runs both queue managers on
//! a relay workload in private Postfix instances and prints the comparison
//! table (what `actors/scripts/demo` runs, on a tiny workload).

use std::process::Command;

#[test]
fn demo_runs_both_queue_managers() {
    let ours = oqmgr_devtools::ours_for_test();
    let out = Command::new(env!("CARGO_BIN_EXE_oqmgr-demo"))
        .args(["--messages", "20", "--recipients", "2", "--domains", "2"])
        .arg("--ours")
        .arg(ours)
        .output()
        .expect("oqmgr-demo runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("| ours | 40 | 0 | 0 |"), "{text}");
    assert!(text.contains("| postfix oqmgr | 40 | 0 | 0 |"), "{text}");
    assert!(text.contains("throughput ours/postfix oqmgr"), "{text}");
}
