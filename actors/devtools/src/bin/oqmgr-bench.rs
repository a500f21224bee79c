//! The `oqmgr-bench` binary: queue managers compared in a real Postfix
//! (see `oqmgr_devtools::benchmark` for workloads and options).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Our daemon is built next to this program (same cargo target dir).
    let default_ours = oqmgr_devtools::ours_next_to_me().unwrap_or_else(|| "oqmgr".into());
    std::process::exit(oqmgr_devtools::benchmark::main(&args, default_ours));
}
