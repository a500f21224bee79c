//! Shared test helpers: the one place insta settings are built, so every
//! snapshot lands in the top-level `snapshots/` folder.

use std::path::Path;

use figment::providers::{Format, Toml};
use figment::Figment;
use oqmgr::sim::scenario::Scenario;

/// Insta settings writing to `snapshots/` at the repository root.
pub fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path("../snapshots");
    s.set_prepend_module_to_snapshot(true);
    s
}

/// Reads a scenario file the way `oqmgr simulate` does.
pub fn load(path: &Path) -> Scenario {
    Figment::from(Toml::file(path))
        .extract()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
