//! The data of `oqmgr simulate --plot` (`oqmgr::sim::series`), pinned for
//! two schedules, not the pixels: oqmgr's window meeting a 421 limit
//! (throttles and raises), and the adaptive policy probing a dead site
//! (dead period, probes, revival).

use oqmgr::sim::series::Series;
use oqmgr::sim::{simulate, Options};

use crate::support::{load, settings};

#[test]
fn plot_series_of_two_schedules() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    let mut text = String::new();
    for file in [
        "limiter_421_with_default_feedback.toml",
        "adaptive_probe_revives_a_dead_site.toml",
    ] {
        let (trace, _) = simulate(load(&root.join(file)), Options::default());
        text.push_str(&format!("== {file}\n{}", Series::from_trace(&trace)));
    }
    settings().bind(|| insta::assert_snapshot!(text));
}
