//! `oqmgr simulate`: runs a scenario through the scheduling core on a
//! virtual clock and prints its trace and summary.
//!
//! Scenarios are TOML files read through figment, so a malformed one is
//! reported with the file and the field at fault.

use std::path::{Path, PathBuf};

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

/// `oqmgr simulate`'s options.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct SimulateArgs {
    /// Scenario file (TOML); without one, a built-in scenario runs.
    #[arg(value_name = "SCENARIO.toml")]
    pub file: Option<PathBuf>,
    /// Seed of the random choices (default: the scenario's).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Print the summary only, not the trace.
    #[arg(long)]
    pub summary_only: bool,
}

/// Runs `oqmgr simulate`; returns the exit code.
pub fn main(args: SimulateArgs) -> i32 {
    let scenario = match &args.file {
        Some(path) => match load_scenario(path) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("oqmgr simulate: {e}");
                return 1;
            }
        },
        None => Scenario::builtin(),
    };
    let options = Options {
        seed: args.seed,
        trace: !args.summary_only,
        ..Options::default()
    };
    let (trace, summary) = simulate(scenario, options);
    print!("{trace}");
    if !trace.is_empty() {
        println!();
    }
    print!("{summary}");
    0
}
