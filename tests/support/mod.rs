//! Shared test helpers: the one place that configures insta, and the
//! scenario loader the trace tests share with `oqmgr simulate`'s format.

use std::path::Path;

use figment::providers::{Format, Toml};
use figment::Figment;
use oqmgr::sim::scenario::Scenario;

/// insta settings every snapshot test uses: snapshots live in the single
/// top-level `snapshots/` folder (the path is relative to `tests/`, where
/// the asserting test files are), maps are sorted so nothing depends on
/// hash order, and no redactions are needed because core output is
/// deterministic by design.
pub fn settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("../snapshots");
    settings.set_sort_maps(true);
    settings.set_prepend_module_to_snapshot(true);
    settings
}

/// Reads a scenario file the way `oqmgr simulate` does.
pub fn load(path: &Path) -> Scenario {
    let scenario: Scenario = Figment::from(Toml::file(path))
        .extract()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if let Err(why) = scenario.check() {
        panic!("{}: {why}", path.display());
    }
    scenario
}

/// A scenario's opening `#` comment (its goal and method) as one line, for
/// a snapshot's description.
pub fn first_comment(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .take_while(|l| l.starts_with('#'))
        .map(|l| l.trim_start_matches('#').trim())
        .collect::<Vec<_>>()
        .join(" ")
}
