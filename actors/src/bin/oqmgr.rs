//! The `oqmgr` binary: a Postfix queue manager daemon and its simulator.

fn main() {
    eprintln!("oqmgr: under construction");
    std::process::exit(2);
}
