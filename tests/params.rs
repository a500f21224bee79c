//! Resolved parameters for main.cf fixtures (yaml snapshots), and the
//! built-in defaults checked against real Postfix's `postconf -d`.
//!
//! Method: each `tests/params/*.cf` file is a main.cf fragment (already
//! `$name`-expanded, as the host hands it over) whose `# transports:` line
//! names the transports to resolve. The snapshot shows the global
//! parameters, each transport's parameters, and every warning, so a
//! change in defaults, bounds or fallbacks shows up as a diff.

use std::process::Command;

use oqmgr::params::{GlobalParams, Params, RawParams, TransportParams, DEFINITIONS, OQMGR_ONLY};
use serde::Serialize;

use crate::support::settings;

/// What a fixture resolves to.
#[derive(Serialize)]
struct Resolved {
    /// Warnings from resolving the global parameters.
    warnings: Vec<String>,
    /// The global parameters.
    global: GlobalParams,
    /// Each named transport, in the order the fixture names them.
    transports: Vec<ResolvedTransport>,
}

/// One transport's parameters and the warnings they raised.
#[derive(Serialize)]
struct ResolvedTransport {
    /// The resolved parameters.
    params: TransportParams,
    /// Warnings about this transport's parameters.
    warnings: Vec<String>,
}

/// Reads a fixture: `name = value` lines, `#` comments, and the list of
/// transports to resolve. Later lines override earlier ones.
fn read_fixture(text: &str) -> (RawParams, Vec<String>) {
    let mut raw = RawParams::new();
    let mut transports = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(list) = line.strip_prefix("# transports:") {
            transports.extend(list.split_whitespace().map(str::to_string));
        } else if !line.is_empty() && !line.starts_with('#') {
            let (name, value) = line
                .split_once('=')
                .expect("fixture lines are name = value");
            raw.insert(name.trim().to_string(), value.trim().to_string());
        }
    }
    (raw, transports)
}

#[test]
fn fixtures_resolve() {
    settings().bind(|| {
        insta::glob!("params/*.cf", |path| {
            let text = std::fs::read_to_string(path).unwrap();
            let (raw, names) = read_fixture(&text);
            let (params, warnings) = Params::resolve(&raw).expect("fixtures hold no fatal value");
            let transports = names
                .iter()
                .map(|name| {
                    let (params, warnings) = params.transport(name);
                    let warnings = warnings.into_iter().map(|w| w.message).collect();
                    ResolvedTransport { params, warnings }
                })
                .collect();
            let warnings = warnings.into_iter().map(|w| w.message).collect();
            let resolved = Resolved {
                warnings,
                global: params.global.clone(),
                transports,
            };
            insta::assert_yaml_snapshot!(resolved);
        });
    });
}

#[test]
fn defaults_raise_no_warnings() {
    let (params, warnings) = Params::resolve(&RawParams::new()).unwrap();
    assert_eq!(warnings, []);
    assert_eq!(params.global, GlobalParams::default());
    let (smtp, warnings) = params.transport("smtp");
    assert_eq!(warnings, []);
    assert_eq!(smtp.dest_concurrency_limit, 20);
}

#[test]
fn later_pairs_override_earlier_ones() {
    let (params, _) =
        Params::from_pairs(&[("qmgr_fudge_factor", "20"), ("qmgr_fudge_factor", "30")]).unwrap();
    assert_eq!(params.global.fudge_factor, 30);
}

#[test]
fn a_scheduling_policy_other_than_oqmgr_or_adaptive_is_fatal() {
    let fatals = Params::from_pairs(&[("oqmgr_scheduling_policy", "fastest")]).unwrap_err();
    assert_eq!(fatals.len(), 1);
    assert_eq!(fatals[0].param, "oqmgr_scheduling_policy");
    assert_eq!(
        fatals[0].message,
        "bad oqmgr_scheduling_policy value: fastest; specify oqmgr or adaptive"
    );
    let (params, _) = Params::from_pairs(&[("oqmgr_scheduling_policy", "adaptive")]).unwrap();
    assert_eq!(
        params.global.scheduling_policy,
        oqmgr::adaptive::SchedulingPolicy::Adaptive
    );
}

#[test]
fn fatals_name_the_parameter() {
    let fatals = Params::from_pairs(&[("queue_run_delay", "later")]).unwrap_err();
    assert_eq!(fatals.len(), 1);
    assert_eq!(fatals[0].param, "queue_run_delay");
    assert_eq!(
        fatals[0].message,
        "parameter queue_run_delay: bad time value or unit: later"
    );
}

/// Every default in the definition table is the one real Postfix 3.7.11
/// prints with `postconf -d`, character for character (our own
/// parameters, which Postfix does not know, aside).
#[test]
fn table_defaults_match_postconf_d() {
    let ours = |name: &str| OQMGR_ONLY.contains(&name);
    let names: Vec<&str> = DEFINITIONS
        .iter()
        .map(|d| d.name)
        .filter(|n| !ours(n))
        .collect();
    let out = Command::new("postconf")
        .arg("-d")
        .args(&names)
        .output()
        .expect("postconf must be installed (actors/scripts/test installs it)");
    assert!(
        out.status.success(),
        "postconf -d failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let printed: RawParams = text
        .lines()
        .filter_map(|l| l.split_once(" ="))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect();
    for def in DEFINITIONS.iter().filter(|d| !ours(d.name)) {
        let want = printed
            .get(def.name)
            .unwrap_or_else(|| panic!("postconf -d lacks {}", def.name));
        assert_eq!(def.default, want, "default of {}", def.name);
    }
}
