//! Scenario traces: every `tests/scenarios/*.toml` runs through the
//! simulator and its whole trace plus summary is snapshotted, so any change
//! in a scheduling decision shows up as a reviewed diff.

use oqmgr::sim::{simulate, Options};

use crate::support::{first_comment, load, settings};

#[test]
fn scenarios() {
    insta::glob!("scenarios/*.toml", |path| {
        let scenario = load(path);
        let (trace, summary) = simulate(scenario, Options::default());
        let mut s = settings();
        s.set_input_file(path);
        s.set_description(first_comment(path));
        s.bind(|| insta::assert_snapshot!(format!("{trace}\n{summary}")));
    });
}

#[test]
fn same_seed_same_trace_other_seed_other_trace() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios/lognormal_latency_is_seeded.toml");
    let run = |seed| {
        simulate(
            load(&path),
            Options {
                seed: Some(seed),
                ..Options::default()
            },
        )
    };
    let (a, sa) = run(7);
    let (b, sb) = run(7);
    assert_eq!(
        a, b,
        "same scenario and seed must give a byte-identical trace"
    );
    assert_eq!(sa, sb);
    let (c, _) = run(8);
    assert_ne!(
        a, c,
        "the seed must matter, or the test above proves nothing"
    );
}

#[test]
fn summary_only_runs_reach_the_same_summary() {
    // Untraced runs skip building trace events; nothing they decide or count
    // may depend on them.
    insta::glob!("scenarios/*.toml", |path| {
        let traced = simulate(load(path), Options::default()).1;
        let untraced = simulate(
            load(path),
            Options {
                trace: false,
                ..Options::default()
            },
        )
        .1;
        assert_eq!(traced, untraced, "{}", path.display());
    });
}
