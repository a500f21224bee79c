#![allow(clippy::disallowed_methods)] // tests wait on real daemons in real time
//! Reading Postfix configuration: main.cf fixtures in temporary config
//! directories, `-o` overrides, errors, and our `$name` expansion checked
//! against real Postfix's `postconf -c DIR -xh NAME`.
//!
//! Method: every test writes its own main.cf into a fresh directory that
//! is removed on drop, so tests never touch /etc/postfix. The comparison
//! tests run postconf (installed by `actors/scripts/test`) on the same file
//! and compare value by value; postconf collapses runs of white space when
//! printing, so both sides are compared with white space collapsed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use oqmgr::params::Params;
use oqmgr_actors::config::{load, mail_params, ConfigError, Defaults};
use serde::Serialize;

/// A config directory under the system temp dir, removed on drop.
struct TempConfig {
    /// The directory.
    dir: PathBuf,
}

impl TempConfig {
    /// A fresh directory holding `main_cf` as main.cf.
    fn new(main_cf: &str) -> TempConfig {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("oqmgr-config-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("main.cf"), main_cf).unwrap();
        TempConfig { dir }
    }

    fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const NO_OVERRIDES: &[&str] = &[];

fn settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("../../snapshots/actors");
    settings.set_sort_maps(true);
    settings
}

/// What a fixture resolves to, end to end.
#[derive(Serialize)]
struct Outcome {
    /// Warnings from reading main.cf and expanding.
    load_warnings: Vec<String>,
    /// Warnings from resolving.
    param_warnings: Vec<String>,
    /// The resolved global parameters.
    global: oqmgr::params::GlobalParams,
    /// The resolved `smtp` transport.
    smtp: oqmgr::params::TransportParams,
}

#[test]
fn main_cf_and_overrides_resolve_end_to_end() {
    let cf = TempConfig::new(
        "# A fixture with references, conditionals, continuations and -o.\n\
         default_destination_concurrency_limit = $limit\n\
         limit = 1${two}\n\
         two = 2\n\
         smtp_destination_rate_delay = ${slow?{5s}:{0s}}\n\
         smtp_destination_concurrency_positive_feedback =\n\
         \t1/concurrency\n\
         queue_run_delay = 100s\n\
         defer_transports = $deferred_list\n\
         deferred_list = uucp,\n\
         # comment inside a continued line\n\
         \x20 bsmtp\n\
         bounce_queue_lifetime = ${broken\n\
         qmgr_fudge_factor = 5\n",
    );
    let overrides = [
        "slow = yes",
        "queue_run_delay=200s",
        "multi_instance_name=postfix-b",
    ];
    let (raw, load_warnings) = load(cf.path(), &overrides).unwrap();
    assert_eq!(raw["default_destination_concurrency_limit"], "12");
    assert_eq!(raw["smtp_destination_rate_delay"], "5s");
    assert_eq!(raw["syslog_name"], "postfix-b");
    assert_eq!(raw["config_directory"], cf.path().display().to_string());
    assert_eq!(raw["deferred_list"], "uucp,  bsmtp");
    assert!(
        !raw.contains_key("bounce_queue_lifetime"),
        "a broken value is dropped"
    );

    // Like Postfix's oqmgr, the daemon stops on the out-of-range fudge
    // factor; with it corrected, everything else resolves.
    let fatal = mail_params::resolve(&raw).unwrap_err();
    assert_eq!(
        fatal.message,
        "invalid qmgr_fudge_factor parameter value 5 < 10"
    );
    let mut raw = raw;
    raw.insert("qmgr_fudge_factor".into(), "10".into());
    let (params, param_warnings) = Params::resolve(&raw).unwrap();
    let (smtp, smtp_warnings) = params.transport("smtp");
    assert_eq!(smtp_warnings, []);
    let outcome = Outcome {
        load_warnings: load_warnings.into_iter().map(|w| w.message).collect(),
        param_warnings: param_warnings.into_iter().map(|w| w.message).collect(),
        global: params.global,
        smtp,
    };
    settings().bind(|| insta::assert_yaml_snapshot!(outcome));
}

#[test]
fn errors_name_the_file_and_line() {
    let cf = TempConfig::new("a = 1\n\n# c\nno equals sign\n  here\n");
    let err = load(cf.path(), NO_OVERRIDES).unwrap_err();
    let main_cf = cf.path().join("main.cf");
    assert!(
        matches!(err, ConfigError::Syntax { line: 4, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "{}, line 4: missing '=' after attribute name: \"no equals sign  here\"",
            main_cf.display()
        )
    );

    let missing = cf.path().join("nowhere");
    let err = load(&missing, NO_OVERRIDES).unwrap_err();
    assert!(matches!(err, ConfigError::Io { .. }), "{err:?}");
    assert!(err
        .to_string()
        .starts_with(&format!("open {}", missing.join("main.cf").display())));

    let good = TempConfig::new("a = 1\n");
    let err = load(good.path(), &["=x"]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid \"-o =x\" option value: missing attribute name"
    );
}

#[test]
fn later_entries_and_overrides_win() {
    let cf = TempConfig::new("x = 1\nx = 2\ny = $x\n");
    let (raw, warnings) = load(cf.path(), &["x=3"]).unwrap();
    assert_eq!(raw["y"], "3");
    let messages: Vec<String> = warnings.into_iter().map(|w| w.message).collect();
    let main_cf = cf.path().join("main.cf");
    assert_eq!(
        messages,
        [format!(
            "{}, line 2: overriding earlier entry: x=1",
            main_cf.display()
        )]
    );
}

/// Runs `postconf -c dir -xh names…` and returns one value per name.
fn postconf_values(dir: &Path, names: &[&str]) -> Vec<String> {
    let out = Command::new("postconf")
        .arg("-c")
        .arg(dir)
        .arg("-xh")
        .args(names)
        .output()
        .expect("postconf must be installed (actors/scripts/test installs it)");
    assert!(
        out.status.success(),
        "postconf: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let values: Vec<String> = text.lines().map(str::to_string).collect();
    assert_eq!(values.len(), names.len(), "postconf printed {text:?}");
    values
}

/// Collapses white space the way postconf's printer does.
fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Our expansion of each name equals real Postfix's.
fn assert_same_as_postconf(main_cf: &str, names: &[&str]) {
    let cf = TempConfig::new(main_cf);
    let (raw, _) = load(cf.path(), NO_OVERRIDES).unwrap();
    let theirs = postconf_values(cf.path(), names);
    for (name, theirs) in names.iter().zip(theirs) {
        let ours = raw.get(*name).map(|v| collapse(v)).unwrap_or_default();
        assert_eq!(ours, theirs, "{name} in main.cf:\n{main_cf}");
    }
}

#[test]
fn syslog_name_default_matches_postconf() {
    assert_same_as_postconf(
        "",
        &["syslog_name", "myhostname", "mydomain", "mydestination"],
    );
    assert_same_as_postconf("multi_instance_name = postfix-out\n", &["syslog_name"]);
    assert_same_as_postconf(
        "multi_instance_name =\nmydomain = example.org\n",
        &["syslog_name", "myhostname", "mydestination"],
    );
}

#[test]
fn tricky_expansions_match_postconf() {
    // Known parameters only: postconf refuses to print names it does not
    // know, but a name referenced from a known parameter counts as known.
    let main_cf = "# nested references, all three reference forms, $$\n\
        smtpd_banner = $myhostname ${foo} $(foo)\n\
        \x20 continued\n\
        # a comment between continuation lines\n\
        \n\
        \tand tab\n\
        foo = ${bar}x$$y\n\
        bar = $(baz)-${multi_instance_name:{no instance}}\n\
        baz = ${mail_name?{$mail_name}:{none}}\n\
        relayhost = ${nosuch?{set}}${nosuch:unset}${foo?A:B}\n\
        default_filter_nexthop = ${{$bar} == {Postfix-no instance} ? {match} : {nomatch}}\n\
        myorigin = ${{$compatibility_level} <level {3.6} ? {old} : {new}}\n\
        compatibility_level = 3.6\n\
        recipient_delimiter = ${{10} < {9} ? {numeric} : {wrong}}\n\
        double_bounce_sender = ${{10} < {9x} ? {bytes} : {wrong}}\n";
    let names = [
        "smtpd_banner",
        "foo",
        "bar",
        "baz",
        "relayhost",
        "default_filter_nexthop",
        "myorigin",
        "recipient_delimiter",
        "double_bounce_sender",
        "relay_domains",
        "smtputf8_enable",
        "fast_flush_domains",
    ];
    assert_same_as_postconf(main_cf, &names);
    // White space inside names and operands, bare tests, braces in text.
    let main_cf = "mail_name = Postfix\n\
        smtpd_banner = ${ mail_name }|${mail_name ? {x} : {y}}|$(mail_name:x)|\
        ${{a}=={a}}|${{a}=={b}}|${nosuch?{a}:{b}}|${mail_name?{{nested}}}\n\
        relayhost = ${{ $mail_name } == {Postfix} ? {t} : {f}}\n\
        myorigin = ${{$mail_name}=={Postfix}?yes}${{$mail_name}!={Postfix}:no}\n";
    assert_same_as_postconf(main_cf, &["smtpd_banner", "relayhost", "myorigin"]);
    // The same defaults at the built-in compatibility level 0.
    assert_same_as_postconf(
        "",
        &["relay_domains", "smtputf8_enable", "fast_flush_domains"],
    );
}

/// The shell defaults are the texts `postconf -d` prints.
#[test]
fn shell_defaults_match_postconf_d() {
    let defaults = Defaults::shell_defaults();
    let names: Vec<&str> = defaults.iter().map(|(n, _)| *n).collect();
    let out = Command::new("postconf")
        .arg("-dh")
        .args(&names)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let printed: Vec<&str> = text.lines().collect();
    assert_eq!(printed.len(), names.len());
    for ((name, ours), theirs) in defaults.iter().zip(printed) {
        assert_eq!(*ours, theirs, "default of {name}");
    }
}
