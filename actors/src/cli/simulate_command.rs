//! `oqmgr simulate`: runs a scenario through the scheduling core on a
//! virtual clock and prints its trace and summary.
//!
//! Scenarios are TOML files read through figment, so a malformed one is
//! reported with the file and the field at fault.

use std::path::{Path, PathBuf};

use figment::providers::{Format, Toml};
use figment::Figment;
use oqmgr::sim::scenario::{toml_value::Value, Scenario};
use oqmgr::sim::series::Series;
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

/// `scenario` with each `name=value` of `overrides` set in its `[params]`,
/// checked again.
fn with_overrides(mut scenario: Scenario, overrides: &[String]) -> Result<Scenario, String> {
    for o in overrides {
        let (name, value) = o
            .split_once('=')
            .ok_or_else(|| format!("-o {o}: expected name=value"))?;
        scenario
            .params
            .insert(name.trim().into(), Value::Text(value.trim().into()));
    }
    scenario.check().map_err(|why| format!("-o: {why}"))?;
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
    /// A main.cf parameter over the scenario's `[params]` (such as
    /// `oqmgr_scheduling_policy=adaptive`); repeatable.
    #[arg(short = 'o', value_name = "name=value")]
    pub overrides: Vec<String>,
    /// Draw the schedule (per destination: window, deliveries in flight,
    /// deliveries and deferrals so far, window cuts and raises, probes,
    /// dead periods) into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
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
    let scenario = match with_overrides(scenario, &args.overrides) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("oqmgr simulate: {e}");
            return 2;
        }
    };
    let options = Options {
        seed: args.seed,
        // The picture is drawn from the trace.
        trace: !args.summary_only || args.plot.is_some(),
        ..Options::default()
    };
    let (trace, summary) = simulate(scenario, options);
    if let Some(path) = &args.plot {
        let mut title = match &args.file {
            Some(file) => format!("oqmgr simulate {}", file.display()),
            None => "oqmgr simulate (built-in scenario)".to_string(),
        };
        for o in &args.overrides {
            title.push_str(&format!(" -o {o}"));
        }
        if let Err(e) = super::plot::draw(&Series::from_trace(&trace), &title, path) {
            eprintln!("oqmgr simulate: {e}");
            return 1;
        }
    }
    if !args.summary_only {
        print!("{trace}");
        if !trace.is_empty() {
            println!();
        }
    }
    print!("{summary}");
    0
}
