//! The `oqmgr` binary: a Postfix queue manager daemon and its simulator.
//!
//! `oqmgr simulate [SCENARIO.toml] [--seed N] [--summary-only]` runs the
//! scheduling core on a virtual clock.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.first().map(String::as_str) {
        Some("simulate") => oqmgr_actors::simulate::main(&args[1..]),
        Some("bench-scheduler") => oqmgr_actors::bench::main(&args[1..]),
        _ => {
            eprintln!("usage: oqmgr simulate [SCENARIO.toml] [--seed N] [--summary-only]");
            eprintln!("(the daemon mode, run by master(8), is under construction)");
            2
        }
    };
    std::process::exit(code);
}
