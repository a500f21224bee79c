//! The `oqmgr-demo` binary: our queue manager and Postfix's oqmgr on one
//! workload in private Postfix instances (see `oqmgr_devtools::demo`; run
//! it with `actors/scripts/demo`).

use clap::Parser;

fn main() {
    let args = oqmgr_devtools::demo::DemoArgs::parse();
    std::process::exit(oqmgr_devtools::demo::main(args));
}
