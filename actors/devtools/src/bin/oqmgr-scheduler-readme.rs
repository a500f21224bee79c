//! The `oqmgr-scheduler-readme` binary: SCHEDULER_README's 421 experiment
//! on real Postfix with Postfix's oqmgr and ours (see
//! `oqmgr_devtools::benchmark::scheduler_readme`).

use clap::Parser;

fn main() {
    let args = oqmgr_devtools::benchmark::scheduler_readme::Args::parse();
    std::process::exit(oqmgr_devtools::benchmark::scheduler_readme::main(args));
}
