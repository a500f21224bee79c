//! The `oqmgr-bench` binary: queue managers compared in a real Postfix
//! (see `oqmgr_actors::benchmark` for workloads and options).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Our daemon is built next to this program (same cargo target dir).
    let default_ours = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("oqmgr")))
        .unwrap_or_else(|| "oqmgr".into());
    std::process::exit(oqmgr_actors::benchmark::main(&args, default_ours));
}
