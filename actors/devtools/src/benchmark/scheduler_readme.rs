//! SCHEDULER_README's active-limiter experiment on real Postfix: the
//! deferred share of first delivery attempts when a server answers 421
//! above 5 connections, with Postfix's oqmgr and with ours in the same
//! run.
//!
//! # The experiment
//! A receiving instance (Postfix's own qmgr) whose smtpd, at most 10
//! processes, admits 5 connections per client through anvil
//! (`smtpd_client_connection_count_limit = 5`, with no client exempt:
//! loopback is in `mynetworks`, which the default exception list names),
//! sleeps 1 s per recipient (`smtpd_client_restrictions = sleep 1`,
//! evaluated at each RCPT TO) and discards the mail. A sending instance
//! with the queue manager under test relays one message with N
//! recipients to it: 2 recipients per delivery, concurrency limit 20,
//! initial concurrency 5, no connection caching (our queue manager sends
//! no caching hints, so the comparison is between the "no" rows), and
//! the feedback debug log on. The run ends when every recipient has a
//! first outcome in the sender's maillog; later attempts are not looked
//! at, as SCHEDULER_README counts the first pass only.
//!
//! # What is measured
//! [`FirstPass`]: the first outcome of each recipient (`status=` lines
//! of the delivery agents, `retry` included), and the window of every
//! `qmgr_queue_(un)throttle: queue ... window N` line. Postfix's oqmgr
//! logs that line after every delivery; ours only when the feedback
//! code runs (not when the slow-start bound holds it back), so our
//! sample count can be a little lower.
//!
//! # Running it
//! `oqmgr-scheduler-readme [--recipients N] [--runs R] [--feedback LIST]
//! [--cohort-limit L] [--ours PATH] [--parent DIR]` ([`Args`]); about five
//! minutes per run with 2,000 recipients. Needs root. Results and their
//! reading: docs/scheduler-readme-reproduction.md.
//!
//! # Invariants
//! - both instances are private sandboxes, stopped on every path;
//! - every wait is bounded by the run's deadline.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use oqmgr::sim::first_pass::FirstPass;

use super::instance::now;
use super::logtail::LogTail;
use crate::sandbox::{QmgrChoice, Sandbox, SandboxBuilder};

/// The recipient domain; mail for it is relayed to the receiver.
const DOMAIN: &str = "limited.example";

/// One run's settings.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Recipients of the one message.
    pub recipients: u32,
    /// `default_destination_concurrency_positive_feedback`.
    pub positive: String,
    /// `default_destination_concurrency_negative_feedback`.
    pub negative: String,
    /// `default_destination_concurrency_failed_cohort_limit`, when set.
    pub cohort_limit: Option<u32>,
    /// Longest the first pass may take.
    pub timeout: Duration,
    /// Folder to create both instances in (default: the system's).
    pub parent: Option<PathBuf>,
}

/// A sandbox builder in `setup`'s folder.
fn builder(setup: &Setup) -> SandboxBuilder {
    match &setup.parent {
        Some(dir) => Sandbox::builder().parent_dir(dir),
        None => Sandbox::builder(),
    }
}

/// The receiving instance: anvil's limit of 5, 1 s per recipient, discard.
fn receiver(setup: &Setup) -> Result<Sandbox, String> {
    builder(setup)
        .qmgr(QmgrChoice::PostfixQmgr)
        .smtpd_port(true)
        .main_cf("mydestination", DOMAIN)
        .main_cf("local_transport", "discard")
        .main_cf("default_process_limit", "10")
        .main_cf("smtpd_client_restrictions", "sleep 1")
        .main_cf("smtpd_client_connection_count_limit", "5")
        .main_cf("smtpd_client_event_limit_exceptions", "")
        .start()
        .map_err(|e| format!("receiving instance: {e}"))
}

/// The sending instance with `qmgr`, relaying to `port`.
fn sender(qmgr: &QmgrChoice, port: u16, setup: &Setup) -> Result<Sandbox, String> {
    let mut b = builder(setup)
        .qmgr(qmgr.clone())
        .main_cf("relayhost", format!("[127.0.0.1]:{port}"))
        .main_cf("smtp_destination_recipient_limit", "2")
        .main_cf("smtp_destination_concurrency_limit", "20")
        .main_cf("smtp_initial_destination_concurrency", "5")
        .main_cf(
            "default_destination_concurrency_positive_feedback",
            &setup.positive,
        )
        .main_cf(
            "default_destination_concurrency_negative_feedback",
            &setup.negative,
        )
        .main_cf("destination_concurrency_feedback_debug", "yes")
        .main_cf("smtp_connection_cache_on_demand", "no");
    if let Some(limit) = setup.cohort_limit {
        b = b.main_cf(
            "default_destination_concurrency_failed_cohort_limit",
            limit.to_string(),
        );
    }
    b.start().map_err(|e| format!("sending instance: {e}"))
}

/// What one maillog line adds to the first pass: a window sample, or the
/// first outcome of a recipient not `seen` before.
pub fn observe(pass: &mut FirstPass, seen: &mut HashSet<String>, line: &str) {
    if line.contains("qmgr_queue_throttle: queue ")
        || line.contains("qmgr_queue_unthrottle: queue ")
    {
        if let Some(w) = number_after(line, " window ") {
            pass.window(w);
            if w == 0 {
                pass.dead += 1;
            }
        }
        return;
    }
    let Some(at) = line.find(": to=<") else {
        return;
    };
    let rest = &line[at + ": to=<".len()..];
    let Some(address) = rest.split('>').next() else {
        return;
    };
    let Some((_, status)) = rest.split_once(" status=") else {
        return;
    };
    let deferred = if let Some(reason) = status.strip_prefix("deferred") {
        Some(reason.trim_start())
    } else if status.starts_with("sent") || status.starts_with("bounced") {
        None
    } else {
        return;
    };
    if seen.insert(address.to_string()) {
        pass.recipient(deferred);
    }
}

/// The decimal number after `name` in `line`.
fn number_after(line: &str, name: &str) -> Option<u32> {
    let at = line.find(name)? + name.len();
    line[at..].split(' ').next()?.parse().ok()
}

/// Runs the experiment once with `qmgr` and returns its first pass.
pub fn run(qmgr: &QmgrChoice, setup: &Setup) -> Result<FirstPass, String> {
    let recv = receiver(setup)?;
    let port = recv
        .smtpd_port()
        .ok_or("the receiving instance has no smtpd")?;
    let send = sender(qmgr, port, setup)?;
    let recipients: Vec<String> = (1..=setup.recipients)
        .map(|i| format!("user{i}@{DOMAIN}"))
        .collect();
    let mut args = vec!["-f", "sender@sandbox.test"];
    args.extend(recipients.iter().map(String::as_str));
    let out = send
        .sendmail(&args, b"Subject: SCHEDULER_README 421 experiment\n\nbody\n")
        .map_err(|e| format!("sendmail: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "sendmail failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let deadline = now() + setup.timeout;
    let mut tail = LogTail::new(send.maillog_path());
    let mut pass = FirstPass::default();
    let mut seen = HashSet::new();
    while pass.recipients < u64::from(setup.recipients) {
        tail.update_with(|line| observe(&mut pass, &mut seen, line))
            .map_err(|e| format!("reading the maillog: {e}"))?;
        if let Some(line) = &tail.throttled {
            return Err(format!("master throttled a service: {line}"));
        }
        if now() >= deadline {
            return Err(format!(
                "first pass unfinished after {:?}: {pass}",
                setup.timeout
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(pass)
}

/// The queue managers compared, by label.
pub fn contenders(ours: PathBuf) -> Vec<(&'static str, QmgrChoice)> {
    vec![
        ("Postfix oqmgr", QmgrChoice::PostfixOqmgr),
        ("ours", QmgrChoice::Command(ours)),
    ]
}

/// `oqmgr-scheduler-readme`'s options.
#[derive(Clone, Debug, clap::Parser)]
#[command(
    name = "oqmgr-scheduler-readme",
    about = "SCHEDULER_README's 421 experiment on real Postfix, Postfix's oqmgr and ours"
)]
pub struct Args {
    /// Recipients of the one message (the paper's 2000).
    #[arg(long, default_value_t = 2000, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub recipients: u32,
    /// Runs per queue manager and feedback setting.
    #[arg(long, default_value_t = 1, value_name = "R",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// Feedback settings, each `POSITIVE[:NEGATIVE]` (the same for both
    /// when NEGATIVE is left out).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,1/concurrency",
        value_name = "LIST"
    )]
    pub feedback: Vec<String>,
    /// `default_destination_concurrency_failed_cohort_limit` (Postfix's
    /// default when left out).
    #[arg(long, value_name = "L")]
    pub cohort_limit: Option<u32>,
    /// Our queue manager (default: `oqmgr` built next to this program).
    #[arg(long, value_name = "PATH")]
    pub ours: Option<PathBuf>,
    /// Folder for the instances, instead of the system's temporary one (it
    /// must exist and the `postfix` user must be able to traverse it).
    #[arg(long, value_name = "DIR")]
    pub parent: Option<PathBuf>,
}

/// The runs of one queue manager with one feedback setting.
struct Row {
    /// `POSITIVE[:NEGATIVE]` as given.
    feedback: String,
    /// The queue manager.
    label: &'static str,
    /// Its first passes.
    passes: Vec<FirstPass>,
}

/// Runs every feedback setting with every queue manager, interleaved,
/// prints each run and then a markdown table; returns 1 when ours is more
/// than 3 points from oqmgr's deferred share (means over the runs) for any
/// setting, or a run did not finish.
pub fn main(args: Args) -> i32 {
    let ours = args
        .ours
        .or_else(crate::ours_next_to_me)
        .unwrap_or_else(|| PathBuf::from("oqmgr"));
    let contenders = contenders(ours);
    let mut rows: Vec<Row> = Vec::new();
    for fb in &args.feedback {
        let (positive, negative) = fb.split_once(':').unwrap_or((fb, fb));
        let setup = Setup {
            recipients: args.recipients,
            positive: positive.to_string(),
            negative: negative.to_string(),
            cohort_limit: args.cohort_limit,
            timeout: Duration::from_secs(60 + u64::from(args.recipients)),
            parent: args.parent.clone(),
        };
        let first = rows.len();
        for (label, _) in &contenders {
            rows.push(Row {
                feedback: fb.clone(),
                label,
                passes: Vec::new(),
            });
        }
        for r in 1..=args.runs {
            for (i, (label, choice)) in contenders.iter().enumerate() {
                let started = now();
                match run(choice, &setup) {
                    Ok(pass) => {
                        println!(
                            "feedback {fb}, {label}, run {r}: {pass} in {:.0} s",
                            started.elapsed().as_secs_f64()
                        );
                        rows[first + i].passes.push(pass);
                    }
                    Err(e) => println!("feedback {fb}, {label}, run {r}: did not finish: {e}"),
                }
            }
        }
    }
    println!("\n| feedback | queue manager | runs | deferred % | concurrency mean | sd |");
    println!("|---|---|---|---|---|---|");
    let mut ok = true;
    for chunk in rows.chunks(contenders.len()) {
        let deferred = |v: &[FirstPass]| mean(v, FirstPass::deferred_percent);
        for r in chunk {
            let v = &r.passes;
            let each: Vec<String> = v
                .iter()
                .map(|p| format!("{:.1}", p.deferred_percent()))
                .collect();
            println!(
                "| {} | {} | {} | {} ({}) | {} | {} |",
                r.feedback,
                r.label,
                v.len(),
                fmt(deferred(v), 1),
                each.join(", "),
                fmt(mean(v, |p| p.window_mean_sd().0), 2),
                fmt(mean(v, |p| p.window_mean_sd().1), 2),
            );
            ok &= v.len() == args.runs as usize;
        }
        match (deferred(&chunk[0].passes), deferred(&chunk[1].passes)) {
            (Some(oq), Some(us)) if (us - oq).abs() <= 3.0 => {}
            _ => ok = false,
        }
    }
    i32::from(!ok)
}

/// The mean of one figure over the runs.
fn mean<T>(v: &[T], f: impl Fn(&T) -> f64) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().map(f).sum::<f64>() / v.len() as f64)
}

/// `x` with `digits` decimals, `-` without a value.
fn fmt(x: Option<f64>, digits: usize) -> String {
    x.map_or("-".into(), |x| format!("{x:.digits$}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maillog_lines_make_a_first_pass() {
        let mut pass = FirstPass::default();
        let mut seen = HashSet::new();
        let lines = [
            "Dec 05 19:32:19 send postfix/oqmgr[20525]: qmgr_queue_unthrottle: feedback 1",
            "Dec 05 19:32:19 send postfix/oqmgr[20525]: qmgr_queue_unthrottle: queue [127.0.0.1]:43257: limit 20 window 6 success 0 failure 0 fail_cohorts 0",
            "Dec 05 19:32:43 send postfix/smtp[1]: 62A8A9D218F: to=<u9@limited.example>, relay=127.0.0.1[127.0.0.1]:43257, delay=26, delays=0.02/24/0/2, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 8502D9D2023)",
            "Dec 05 19:32:44 send postfix/smtp[2]: 62A8A9D218F: to=<u10@limited.example>, relay=127.0.0.1[127.0.0.1]:43257, delay=26, delays=0.06/225/0/0, dsn=4.7.0, status=deferred (host 127.0.0.1[127.0.0.1] refused to talk to me: 421 4.7.0 recv.test Error: too many connections from 127.0.0.1)",
            "Dec 05 19:32:44 send postfix/oqmgr[20525]: qmgr_queue_throttle: queue [127.0.0.1]:43257: limit 20 window 4 success 0 failure 1 fail_cohorts 0.166667",
            // A later attempt of a recipient already counted.
            "Dec 05 19:40:00 send postfix/smtp[3]: 62A8A9D218F: to=<u10@limited.example>, relay=127.0.0.1[127.0.0.1]:43257, delay=500, delays=0.06/225/0/2, dsn=2.0.0, status=sent (250 2.0.0 Ok)",
        ];
        for line in lines {
            observe(&mut pass, &mut seen, line);
        }
        assert_eq!((pass.recipients, pass.deferred), (2, 1));
        assert_eq!(pass.windows, vec![6, 4]);
        assert_eq!(pass.dead, 0);
    }
}
