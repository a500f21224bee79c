//! `oqmgr simulate`: runs a scenario through the scheduling core on a
//! virtual clock and prints its trace and summary.
//!
//! Scenarios are TOML files read through figment, so a malformed one is
//! reported with the file and the field at fault.

use std::path::Path;

use figment::providers::{Format, Toml};
use figment::Figment;
use oqmgr::sim::scenario::Scenario;
use oqmgr::sim::{simulate, Options};

/// Reads a scenario file.
pub fn load_scenario(path: &Path) -> Result<Scenario, String> {
    if !path.is_file() {
        return Err(format!("{}: no such scenario file", path.display()));
    }
    let scenario = Figment::from(Toml::file(path))
        .extract::<Scenario>()
        .map_err(|e| {
            let mut text = String::new();
            for err in e {
                let field = err.path.join(".");
                if !text.is_empty() {
                    text.push('\n');
                }
                if field.is_empty() {
                    text.push_str(&format!("{}: {}", path.display(), err.kind));
                } else {
                    text.push_str(&format!(
                        "{}: field `{}`: {}",
                        path.display(),
                        field,
                        err.kind
                    ));
                }
            }
            text
        })?;
    scenario
        .check()
        .map_err(|why| format!("{}: {why}", path.display()))?;
    Ok(scenario)
}

/// Parses the command line after `simulate` and runs; returns the exit code.
pub fn main(args: &[String]) -> i32 {
    let mut file = None;
    let mut options = Options::default();
    let mut summary_only = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--seed" => match it.next().map(|s| s.parse::<u64>()) {
                Some(Ok(seed)) => options.seed = Some(seed),
                _ => {
                    eprintln!("oqmgr simulate: --seed needs a non-negative integer");
                    return 2;
                }
            },
            "--summary-only" => summary_only = true,
            "-h" | "--help" => {
                println!("usage: oqmgr simulate [SCENARIO.toml] [--seed N] [--summary-only]");
                return 0;
            }
            s if s.starts_with('-') => {
                eprintln!("oqmgr simulate: unknown option {s}");
                return 2;
            }
            s => file = Some(s.to_string()),
        }
    }
    let scenario = match &file {
        Some(path) => match load_scenario(Path::new(path)) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("oqmgr simulate: {e}");
                return 1;
            }
        },
        None => Scenario::builtin(),
    };
    options.trace = !summary_only;
    let (trace, summary) = simulate(scenario, options);
    print!("{trace}");
    if !trace.is_empty() {
        println!();
    }
    print!("{summary}");
    0
}
