//! `oqmgr check`: the configuration as the queue manager would read it,
//! without starting (Postfix: the start-up checks of `mail_params.c`
//! `mail_params_init` and of oqmgr's own parameter tables).
//!
//! `oqmgr check [-c DIR] [-o name=value]...` reads main.cf as the daemon
//! does and reports every setting that would stop the queue manager (with
//! the fatal text it would log) and every warning it would log, one line
//! each naming the parameter; the exit status is 1 when any would stop it.
//! `oqmgr.toml` (custom transports, metrics) is checked the same way.

use std::path::PathBuf;

use crate::config::{self, mail_params};

/// `oqmgr check`'s options.
#[derive(Clone, Debug, clap::Args)]
pub struct CheckArgs {
    /// Configuration directory (default: $MAIL_CONFIG, else what
    /// `postconf -h config_directory` says, else /etc/postfix).
    #[arg(short = 'c', value_name = "config_dir")]
    pub config_dir: Option<PathBuf>,
    /// A parameter setting as master.cf would give it, after main.cf.
    #[arg(short = 'o', value_name = "name=value")]
    pub overrides: Vec<String>,
}

/// Runs `oqmgr check`: prints one line per problem and a summary; 1 when
/// some setting would stop the queue manager, else 0.
pub fn main(args: &CheckArgs) -> i32 {
    let dir = config::config_directory(args.config_dir.as_deref());
    let (raw, load_warnings) = match config::load(&dir, &args.overrides) {
        Ok(loaded) => loaded,
        Err(e) => {
            println!("fatal: {e}");
            return 1;
        }
    };
    let report = mail_params::check(&raw);
    let mut fatals: Vec<(String, String)> = report
        .fatals
        .into_iter()
        .map(|f| (f.param, f.message))
        .collect();
    if let Err(e) = crate::custom_transports::oqmgr_toml::load(&dir) {
        fatals.push(("oqmgr.toml".into(), e.to_string()));
    }
    let warnings: Vec<_> = load_warnings.into_iter().chain(report.warnings).collect();
    for (param, message) in &fatals {
        println!("{param}: fatal: {message}");
    }
    for w in &warnings {
        println!("{}: warning: {}", w.param, w.message);
    }
    let main_cf = dir.join("main.cf");
    if fatals.is_empty() {
        println!(
            "{}: ok ({} warning{})",
            main_cf.display(),
            warnings.len(),
            if warnings.len() == 1 { "" } else { "s" }
        );
        0
    } else {
        println!(
            "{}: {} bad setting{}: the queue manager stops with \"fatal: {}\"",
            main_cf.display(),
            fatals.len(),
            if fatals.len() == 1 { "" } else { "s" },
            fatals[0].1
        );
        1
    }
}
