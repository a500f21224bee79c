//! The `oqmgr` binary: a Postfix queue manager daemon and its simulator.
//!
//! `oqmgr simulate [SCENARIO.toml] [--seed N] [--summary-only]` runs the
//! scheduling core on a virtual clock; `oqmgr check` checks the
//! configuration; `oqmgr ctl ...` shows and steers a running queue manager
//! (`docs/control.md`); `--help` and `--version` say what it is
//! ([`oqmgr_actors::cli`]). Started by master(8) (any other arguments) it
//! is the queue manager daemon ([`oqmgr_actors::daemon`]). The demo and
//! the benchmarks are separate programs (`oqmgr-demo`,
//! `oqmgr-bench-scheduler`, `oqmgr-bench` in `actors/devtools`).
//!
//! # Allocator
//! The binary allocates through mimalloc instead of glibc's malloc: the
//! scheduler makes and frees some ten small blocks per delivery (queue-file
//! records, recipient lists, delivery requests and reports), and glibc's
//! `malloc`/`free` (with its periodic `malloc_consolidate`) were about a
//! sixth of the instructions of the scheduler benchmark; with mimalloc the same
//! run took about a third less user CPU at 1,000,000 recipients, for the
//! same peak memory. Transparent huge pages are off for it (`no_thp`):
//! with them on, the kernel spent the saving zeroing and compacting huge
//! pages (system time rose from 0.7 to 2.8 s on that run). Only the binary
//! chooses an allocator; the core and the library stay allocator-agnostic.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    // `--help`, `--version` and the subcommands are for people; anything
    // else is master(8) starting the daemon (its argv starts with options
    // such as `-l -n qmgr -t unix -u`), or someone who typed the daemon's
    // name, whom the daemon tells not to run it by hand.
    if oqmgr_actors::cli::is_for_people(argv.get(1..).unwrap_or_default()) {
        std::process::exit(oqmgr_actors::cli::main(&argv));
    }
    oqmgr_actors::daemon::main()
}
