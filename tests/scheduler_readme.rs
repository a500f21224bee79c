//! SCHEDULER_README's measurements of concurrency-limited deliveries,
//! reproduced: each `tests/scenarios/scheduler_readme/*.toml` is one row
//! of its tables. The snapshot pins the row's first-pass figures and the
//! run's summary (not the trace: tens of thousands of lines); the test
//! also checks the deferred percentage against the figure the scenario
//! names, within 3 points: `# Expect: deferred X` when the reason it
//! differs from the paper is explained there, `# Paper: deferred X`
//! otherwise. docs/scheduler-readme-reproduction.md has the table.

use oqmgr::sim::first_pass::FirstPass;
use oqmgr::sim::{simulate, Options};

use crate::support::{load, settings};

/// The number after `# {label}: deferred ` in the scenario's comment,
/// if it has that line.
///
/// # Panics
/// When the line is there but holds no number.
fn figure(text: &str, label: &str) -> Option<f64> {
    let prefix = format!("# {label}: deferred ");
    let rest = text.lines().find_map(|l| l.strip_prefix(&prefix))?;
    let n = rest.split([' ', ',']).next().unwrap_or_default();
    Some(
        n.parse()
            .unwrap_or_else(|_| panic!("`# {label}: deferred {n}`: not a number")),
    )
}

#[test]
fn rows() {
    insta::glob!("scenarios/scheduler_readme/*.toml", |path| {
        let text = std::fs::read_to_string(path).expect("scenario is readable");
        let (trace, summary) = simulate(load(path), Options::default());
        let pass = FirstPass::from_trace(&trace);
        let paper = figure(&text, "Paper").expect("the scenario names the paper's figure");
        let expected = figure(&text, "Expect").unwrap_or(paper);
        let ours = pass.deferred_percent();
        assert!(
            (ours - expected).abs() <= 3.0,
            "{}: deferred {ours:.1}%, expected {expected}% (paper {paper}%)",
            path.display()
        );
        let mut s = settings();
        s.set_input_file(path);
        s.set_description(
            text.lines()
                .take_while(|l| l.starts_with('#'))
                .map(|l| l.trim_start_matches('#').trim())
                .collect::<Vec<_>>()
                .join(" "),
        );
        s.bind(|| insta::assert_snapshot!(format!("first pass: {pass}\n\n{summary}")));
    });
}
