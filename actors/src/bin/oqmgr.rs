//! The `oqmgr` binary: a Postfix queue manager daemon and its simulator.
//!
//! `oqmgr simulate [SCENARIO.toml] [--seed N] [--summary-only]` runs the
//! scheduling core on a virtual clock; `oqmgr bench-scheduler` measures it;
//! `oqmgr demo` runs it in a private Postfix next to Postfix's oqmgr.
//! Started by master(8) (any other arguments) it is the queue manager
//! daemon ([`oqmgr_actors::daemon`]).
//!
//! # Allocator
//! The binary allocates through mimalloc instead of glibc's malloc: the
//! scheduler makes and frees some ten small blocks per delivery (queue-file
//! records, recipient lists, delivery requests and reports), and glibc's
//! `malloc`/`free` (with its periodic `malloc_consolidate`) were about a
//! sixth of the instructions of `bench-scheduler`; with mimalloc the same
//! run took about a third less user CPU at 1,000,000 recipients, for the
//! same peak memory. Transparent huge pages are off for it (`no_thp`):
//! with them on, the kernel spent the saving zeroing and compacting huge
//! pages (system time rose from 0.7 to 2.8 s on that run). Only the binary
//! chooses an allocator; the core and the library stay allocator-agnostic.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
