//! Shared test helpers: the one place that configures insta.

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
