//! The `oqmgr-bench-scheduler` binary: the scheduling core's own speed
//! (see `oqmgr_devtools::scheduler_bench`).
//!
//! It allocates through mimalloc, as the `oqmgr` binary does, so that its
//! figures stand for the daemon's (`actors/src/bin/oqmgr.rs` says why the
//! daemon uses it).

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args = oqmgr_devtools::scheduler_bench::BenchArgs::parse();
    std::process::exit(oqmgr_devtools::scheduler_bench::main(args));
}
