//! oqmgr-demo - our queue manager in a real Postfix, on a real workload,
//! next to Postfix's own oqmgr (`actors/scripts/demo`).
//!
//! For each queue manager in turn (ours, then Postfix's `oqmgr`) the demo
//! brings up a private Postfix instance ([`Sandbox`]) with that program in
//! the `qmgr` slot, one smtp-sink per destination domain on loopback
//! (`transport_maps` sends `dN.example` to sink N), injects the workload
//! with `smtp-source` into the instance's smtpd, prints progress every
//! second from the maillog, and finishes with a summary: deliveries,
//! deferrals, elapsed time, throughput, and the comparison.
//!
//! ```text
//! oqmgr-demo [--messages N] [--recipients R] [--domains D] [--only-ours] [--ours PATH]
//! ```
//!
//! Nothing here is a test: the numbers vary with the machine. The
//! benchmark (`actors/scripts/bench`) measures properly, alternating runs.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::benchmark::logtail::{LogStatus, LogTail};
use crate::benchmark::probe::QmgrProbe;
use crate::sandbox::{free_port, QmgrChoice, Sandbox, SmtpSink};
use oqmgr_actors::clock::tooling_now;

/// The workload.
#[derive(Clone, Debug)]
struct Workload {
    /// Messages in total.
    messages: usize,
    /// Recipients per message.
    recipients: usize,
    /// Destination domains (one smtp-sink each).
    domains: usize,
}

/// What one run produced.
#[derive(Clone, Debug)]
struct RunResult {
    /// Which queue manager.
    name: String,
    /// `status=sent` lines.
    sent: usize,
    /// `status=deferred` lines.
    deferred: usize,
    /// `status=bounced` lines.
    bounced: usize,
    /// Seconds from the first injection to the last delivery.
    seconds: f64,
    /// True when every delivery arrived before the time limit.
    complete: bool,
    /// CPU seconds (user + system) of the queue manager process.
    qmgr_cpu: Option<f64>,
}

/// `oqmgr-demo`'s options.
#[derive(Clone, Debug, clap::Parser)]
#[command(
    name = "oqmgr-demo",
    about = "Run our queue manager and Postfix's oqmgr in private Postfix \
             instances on the same workload and compare"
)]
pub struct DemoArgs {
    /// Messages in total.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    pub messages: u64,
    /// Recipients per message.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub recipients: u64,
    /// Destination domains (one smtp-sink each).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..))]
    pub domains: u64,
    /// Run our queue manager only, not Postfix's oqmgr after it.
    #[arg(long)]
    pub only_ours: bool,
    /// Our daemon (default: `oqmgr` next to this program).
    #[arg(long, value_name = "PATH")]
    pub ours: Option<PathBuf>,
}

/// Set by SIGINT/SIGTERM: the demo stops its runs and tears the sandbox
/// Postfix instances down instead of leaving them running.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// The signal handler: only an atomic store, which is async-signal-safe.
extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// True once the user asked to stop.
fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Runs the demo; returns the exit code.
pub fn main(args: DemoArgs) -> i32 {
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    let workload = Workload {
        messages: args.messages as usize,
        recipients: args.recipients as usize,
        domains: args.domains as usize,
    };
    let only_ours = args.only_ours;
    let Some(ours) = args.ours.clone().or_else(crate::ours_next_to_me) else {
        eprintln!(
            "oqmgr-demo: our oqmgr binary is not next to this program: build it \
             (cargo build -p oqmgr-actors --bin oqmgr) or give --ours PATH"
        );
        return 1;
    };
    println!(
        "workload: {} messages x {} recipient(s) over {} domain(s), injected over SMTP, relayed to smtp-sink",
        workload.messages, workload.recipients, workload.domains
    );
    let mut results = Vec::new();
    let mut runs = vec![("ours", QmgrChoice::Command(ours))];
    if !only_ours {
        runs.push(("postfix oqmgr", QmgrChoice::PostfixOqmgr));
    }
    for (name, choice) in runs {
        if interrupted() {
            break;
        }
        println!("\n== {name} ==");
        match run(name, choice, &workload) {
            Ok(r) => results.push(r),
            Err(e) => {
                eprintln!("{name}: {e}");
                return 1;
            }
        }
    }
    println!(
        "\n| queue manager | delivered | deferred | bounced | seconds | deliveries/s | qmgr CPU s |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in &results {
        println!(
            "| {}{} | {} | {} | {} | {:.1} | {:.0} | {} |",
            r.name,
            if r.complete { "" } else { " (incomplete)" },
            r.sent,
            r.deferred,
            r.bounced,
            r.seconds,
            r.sent as f64 / r.seconds.max(0.001),
            r.qmgr_cpu.map_or("?".to_string(), |c| format!("{c:.2}")),
        );
    }
    if let [a, b] = results.as_slice() {
        println!(
            "\nthroughput ours/postfix oqmgr: {:.2}x",
            (a.sent as f64 / a.seconds.max(0.001)) / (b.sent as f64 / b.seconds.max(0.001))
        );
    }
    if interrupted() {
        eprintln!("interrupted; the sandbox instances were stopped");
        return 130;
    }
    i32::from(!results.iter().all(|r| r.complete))
}

/// One run with `choice` in the qmgr slot.
fn run(name: &str, choice: QmgrChoice, w: &Workload) -> std::io::Result<RunResult> {
    let mut sinks = Vec::new();
    let mut map = Vec::new();
    for d in 0..w.domains {
        let port = free_port()?;
        sinks.push(SmtpSink::start(port, &[])?);
        map.push(format!("d{d}.example=smtp:[127.0.0.1]:{port}"));
    }
    let sb = Sandbox::builder()
        .qmgr(choice)
        .smtpd_port(true)
        .main_cf("transport_maps", format!("inline:{{{}}}", map.join(", ")))
        .main_cf("smtp_connection_cache_on_demand", "yes")
        .start()?;
    let port = sb
        .smtpd_port()
        .ok_or_else(|| std::io::Error::other("no smtpd port"))?;
    let expected = w.messages * w.recipients;
    let started = tooling_now();
    let mut injectors = Vec::new();
    for d in 0..w.domains {
        let share = w.messages / w.domains + usize::from(d < w.messages % w.domains);
        if share == 0 {
            continue;
        }
        injectors.push(
            Command::new(smtp_source())
                .args(["-s", "4", "-m", &share.to_string(), "-r"])
                .arg(w.recipients.to_string())
                .args(["-f", "demo@sender.example", "-t"])
                .arg(format!("user@d{d}.example"))
                .arg(format!("127.0.0.1:{port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()?,
        );
    }
    let limit = Duration::from_secs(60 + (expected as u64) / 20);
    let mut tail = LogTail::new(sb.maillog_path());
    let mut probe = sb.master_pid().map(QmgrProbe::new);
    let mut last;
    loop {
        std::thread::sleep(Duration::from_secs(1));
        if let Err(e) = tail.update() {
            eprintln!("{name}: maillog: {e}");
        }
        if let Some(p) = &mut probe {
            p.sample();
        }
        let now = (
            tail.total(LogStatus::Sent) as usize,
            tail.total(LogStatus::Deferred) as usize,
            tail.total(LogStatus::Bounced) as usize,
        );
        let elapsed = started.elapsed();
        print!(
            "\r{name}: {:>6.1}s  delivered {}/{expected}  deferred {}  bounced {}  (queue: incoming {} active {} deferred {})   ",
            elapsed.as_secs_f64(),
            now.0,
            now.1,
            now.2,
            sb.queue_files("incoming").len(),
            sb.queue_files("active").len(),
            sb.queue_files("deferred").len(),
        );
        let _ = std::io::stdout().flush();
        last = now;
        if now.0 + now.2 >= expected || elapsed > limit || interrupted() {
            break;
        }
    }
    println!();
    // smtp-source has finished by now unless smtpd failed; never hang on it.
    for mut i in injectors {
        if !matches!(i.try_wait(), Ok(Some(_))) {
            let _ = i.kill();
            let _ = i.wait();
        }
    }
    // Polled once a second: the figure is good to about a second, which
    // is why the demo is not the benchmark.
    let seconds = started.elapsed().as_secs_f64();
    let qmgr_cpu = probe.map(|mut p| {
        p.sample();
        p.cpu_seconds()
    });
    Ok(RunResult {
        name: name.to_string(),
        sent: last.0,
        deferred: last.1,
        bounced: last.2,
        seconds,
        complete: last.0 + last.2 >= expected,
        qmgr_cpu,
    })
}

/// Where smtp-source is (master scrubs nothing here, but the PATH of a
/// fresh shell may lack /usr/sbin).
fn smtp_source() -> PathBuf {
    ["/usr/sbin/smtp-source", "/usr/bin/smtp-source"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("smtp-source"))
}
