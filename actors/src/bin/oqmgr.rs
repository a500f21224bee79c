//! The `oqmgr` binary: a Postfix queue manager daemon and its simulator.
//!
//! `oqmgr simulate [SCENARIO.toml] [--seed N] [--summary-only]` runs the
//! scheduling core on a virtual clock; `oqmgr bench-scheduler` measures it;
//! `oqmgr demo` runs it in a private Postfix next to Postfix's oqmgr.
//! Started by master(8) (any other arguments) it is the queue manager
//! daemon ([`oqmgr_actors::daemon`]).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.first().map(String::as_str) {
        Some("simulate") => oqmgr_actors::simulate::main(&args[1..]),
        Some("demo") => oqmgr_actors::demo::main(&args[1..]),
        Some("bench-scheduler") => oqmgr_actors::bench::main(&args[1..]),
        // Anything else is master(8) starting the daemon (its argv starts
        // with options such as `-l -n qmgr -t unix -u`).
        _ => oqmgr_actors::daemon::main(),
    };
    std::process::exit(code);
}
