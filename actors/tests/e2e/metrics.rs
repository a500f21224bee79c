//! metrics - the metrics listener and the status page of our queue manager
//! in a real Postfix (ours only: Postfix's queue managers have none), read
//! by a real Prometheus and a real headless browser (Debian's
//! `prometheus` and `chromium`, which `actors/scripts/test` installs).
//!
//! Mail flows to three smtp-sinks (one slow) and a closed port. Chromium
//! loads the status page while the slow destination is busy: the page
//! shows it and the dead destination, draws charts, updates itself, and
//! logs nothing to its console. Then the scrape passes `promtool check
//! metrics`, counts what the maillog shows (deliveries done over smtp, the
//! recipients the queue manager deferred itself because their destination
//! is dead), and Prometheus, scraping every second, returns the delivered
//! count the maillog shows through its query API. `oqmgr ctl status`
//! names the listener, and after `postfix reload` the next queue manager
//! serves the same port.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use oqmgr_devtools::sandbox::free_port;

use super::control::ctl;
use super::env::{Env, Setup, Spec, WAIT};
use super::flow::SENDER;
use super::outcome::ScenarioOutcome;

/// One plain HTTP GET: status and body ((0, "") when nothing answers).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
        return (0, String::new());
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(request.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

/// `text` percent-encoded for a URL query.
fn query_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of the sample line `name` (with its labels) in `text`.
pub fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A Prometheus server scraping one target every second, stopped on drop.
pub struct Prometheus {
    /// The server.
    child: Child,
    /// Its web address.
    addr: SocketAddr,
}

impl Prometheus {
    /// Starts `prometheus` with its files under `dir`, scraping `target`.
    pub fn start(dir: &Path, target: SocketAddr) -> Prometheus {
        let dir = dir.join("prometheus");
        std::fs::create_dir_all(&dir).expect("prometheus folder");
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: oqmgr\n    static_configs:\n      \
                 - targets: ['{target}']\n"
            ),
        )
        .expect("prometheus.yml");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port().expect("free port"))
            .parse()
            .unwrap();
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("log file");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus runs (apt-get install prometheus; actors/scripts/test does)");
        Prometheus { child, addr }
    }

    /// True once it serves queries (within [`WAIT`]).
    pub fn ready(&self) -> bool {
        wait_until(WAIT, || http_get(self.addr, "/-/ready").0 == 200)
    }

    /// The value of the instant query `promql`, when it has one.
    pub fn query(&self, promql: &str) -> Option<f64> {
        let (status, body) = http_get(
            self.addr,
            &format!("/api/v1/query?query={}", query_encode(promql)),
        );
        if status != 200 {
            return None;
        }
        let json: serde_json::Value = serde_json::from_str(&body).ok()?;
        json["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `cond` every 200 ms until it holds or `limit` passes.
fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = oqmgr_actors::clock::tooling_now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What headless Chromium saw of a page: the DOM after `budget` of
/// virtual time, and its console lines.
pub struct PageLoad {
    /// The serialised DOM.
    pub dom: String,
    /// Console messages the browser logged (`...:CONSOLE...` lines).
    pub console: Vec<String>,
}

/// Loads `url` in headless Chromium for `budget` of virtual time (timers
/// run; the page's requests are real).
pub fn chromium(url: &str, profile: &Path, budget: Duration) -> PageLoad {
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--virtual-time-budget={}", budget.as_millis()))
        .arg("--dump-dom")
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("chromium runs (apt-get install chromium; actors/scripts/test does)");
    PageLoad {
        dom: String::from_utf8_lossy(&out.stdout).into_owned(),
        console: String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.contains(":CONSOLE"))
            .map(str::to_string)
            .collect(),
    }
}

/// `data-updates="N"` of the page's body.
fn updates(dom: &str) -> u32 {
    dom.split("data-updates=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The scenario; facts say what held.
pub fn metrics_and_status_page(q: &Setup) -> ScenarioOutcome {
    let port = free_port().expect("free port");
    let listen: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let toml =
        format!("[metrics]\nlisten = \"{listen}\"\ntop_destinations = 10\nhistory = \"5m\"\n");
    let mut env = Env::start_with(
        q,
        &Spec {
            ports: &["d1", "d2", "d3", "dead"],
            smtp_routes: &[
                ("d1.test", "d1"),
                ("d2.test", "d2"),
                ("d3.test", "d3"),
                ("dead.test", "dead"),
            ],
            raw_routes: &[],
            settings: &[
                ("minimal_backoff_time", "300s"),
                ("maximal_backoff_time", "600s"),
                ("smtp_initial_destination_concurrency", "1"),
                // d2 (2 s per message) stays busy while the page loads.
                ("smtp_destination_concurrency_limit", "2"),
            ],
        },
        move |b, _| b.config_file("oqmgr.toml", toml.clone()),
    );
    env.start_sink("d1", &[]);
    env.start_sink("d2", &["-w", "2"]);
    env.start_sink("d3", &[]);
    let mut o = ScenarioOutcome::default();
    let t0 = oqmgr_actors::clock::tooling_now();
    let phase = |name: &str| eprintln!("metrics: {name} at {:.1} s", t0.elapsed().as_secs_f64());
    let prometheus = Prometheus::start(env.sb.dir(), listen);

    // The dead destination first (two messages: the second is deferred by
    // the queue manager itself), then mail to all three sinks.
    env.send("x1", SENDER, &["u@dead.test"]);
    env.wait(|| env.outcome().rows_of("x1").any(|r| r.queue == "deferred"));
    env.send("x2", SENDER, &["u@dead.test"]);
    env.wait(|| env.outcome().rows_of("x2").any(|r| r.queue == "deferred"));
    for i in 0..10 {
        for d in ["d1", "d2", "d3"] {
            env.send(&format!("m{i}-{d}"), SENDER, &[&format!("u{i}@{d}.test")]);
        }
    }
    phase("mail sent");

    // The status page while d2 (2 s per message, two at a time) is busy.
    let d2 = format!("smtp:[127.0.0.1]:{}", env.ports["d2"]);
    let dead = format!("smtp:[127.0.0.1]:{}", env.ports["dead"]);
    let busy = wait_until(WAIT, || {
        http_get(listen, "/status.json")
            .1
            .contains(&format!("\"destination\":\"{d2}\""))
    });
    let profile: PathBuf = env.sb.dir().join("chromium");
    let page = chromium(
        &format!("http://{listen}/"),
        &profile,
        Duration::from_secs(8),
    );
    phase("page loaded");
    eprintln!(
        "metrics: page updates {}, console {:?}",
        updates(&page.dom),
        page.console
    );
    o.fact(format!(
        "the page shows the busy ({busy}) and the dead destination: {}",
        page.dom.contains(&format!("<td>{d2}</td>"))
            && page.dom.contains(&format!("<td>{dead}</td>"))
    ));
    o.fact(format!(
        "the page draws window and busy of d2: {}",
        page.dom.contains(&format!("<figcaption>{d2}")) && page.dom.contains("class=\"window\"")
    ));
    o.fact(format!(
        "the page updated itself: {}",
        updates(&page.dom) >= 3
    ));
    o.fact(format!(
        "the page shows no problem: {}",
        page.dom.contains("<div id=\"problems\"></div>")
    ));
    o.fact(format!(
        "the browser console stayed empty: {}",
        page.console.is_empty()
    ));

    // Everything delivered; the scrape counts what the maillog shows.
    let all = env.wait(|| {
        env.outcome()
            .rows
            .iter()
            .filter(|r| r.result == "sent")
            .count()
            == 30
    });
    let sent = || {
        env.log()
            .lines
            .iter()
            .filter(|(prog, msg)| prog.ends_with("/smtp") && msg.contains(" status=sent "))
            .count()
    };
    let maillog_sent = sent();
    phase("delivered");
    let (status, text) = http_get(listen, "/metrics");
    let done = sample(
        &text,
        r#"oqmgr_deliveries_total{transport="smtp",status="done"}"#,
    );
    o.fact(format!(
        "all 30 delivered ({all}); /metrics answers ({status}) with the maillog's {maillog_sent} status=sent lines: {}",
        done == Some(maillog_sent as f64)
    ));
    let dead_deferred = sample(
        &text,
        r#"oqmgr_qmgr_deferred_recipients_total{cause="dead_destination"}"#,
    );
    let retry_lines = env
        .log()
        .lines
        .iter()
        .filter(|(_, msg)| msg.contains("status=deferred (delivery temporarily suspended"))
        .count();
    o.fact(format!(
        "the queue manager's own deferrals for the dead destination equal the maillog's ({retry_lines}): {}",
        dead_deferred == Some(retry_lines as f64) && retry_lines >= 1
    ));
    o.fact(format!(
        "delays before, in and after the queue manager are counted: {}",
        ["before_qmgr", "in_qmgr", "agent"].iter().all(|part| {
            sample(
                &text,
                &format!(r#"oqmgr_delivery_delay_seconds_count{{transport="smtp",part="{part}"}}"#),
            )
            .is_some_and(|n| n >= 30.0)
        })
    ));
    let checked = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(text.as_bytes())?;
            child.wait_with_output()
        })
        .expect("promtool runs");
    let said = String::from_utf8_lossy(&checked.stderr).into_owned();
    eprintln!("metrics: promtool check metrics: {}{said}", checked.status);
    o.fact(format!(
        "promtool check metrics passes: {}",
        checked.status.success()
    ));

    // Prometheus has scraped it and answers with the same count.
    let ready = prometheus.ready();
    let mut got = None;
    let agreed = wait_until(WAIT, || {
        got = prometheus.query(r#"sum(oqmgr_deliveries_total{transport="smtp",status="done"})"#);
        got == Some(maillog_sent as f64)
    });
    phase("prometheus agreed");
    eprintln!("metrics: prometheus says {got:?}, the maillog {maillog_sent}");
    o.fact(format!(
        "prometheus ({ready}) returns the maillog's delivered count: {agreed}"
    ));
    o.fact(format!(
        "the maillog did not change meanwhile: {}",
        sent() == maillog_sent
    ));
    let (_, status) = ctl(&env, &["status"]);
    o.fact(format!(
        "ctl status names the listener: {}",
        status.contains(&format!(
            "metrics: http://{listen}/metrics, status page http://{listen}/"
        ))
    ));

    // After postfix reload the next queue manager serves the same port.
    let pid = env.sb.qmgr_pid();
    env.admin("postfix", &["reload"]);
    let replaced = env.wait(|| env.sb.qmgr_pid().is_some_and(|p| Some(p) != pid));
    let new_pid = env.sb.qmgr_pid().unwrap_or(0);
    let serves = wait_until(WAIT, || {
        http_get(listen, "/status.json")
            .1
            .contains(&format!("(pid {new_pid})"))
    });
    phase("reloaded");
    o.fact(format!(
        "after postfix reload ({replaced}) the new queue manager serves the port: {serves}"
    ));
    drop(prometheus);
    env.finish(o)
}

/// Expectation of [`metrics_and_status_page`].
pub fn expect_metrics_and_status_page(o: &ScenarioOutcome) {
    let mut want = ScenarioOutcome::default();
    for fact in [
        "the page shows the busy (true) and the dead destination: true",
        "the page draws window and busy of d2: true",
        "the page updated itself: true",
        "the page shows no problem: true",
        "the browser console stayed empty: true",
        "all 30 delivered (true); /metrics answers (200) with the maillog's 30 status=sent lines: true",
        "the queue manager's own deferrals for the dead destination equal the maillog's (1): true",
        "delays before, in and after the queue manager are counted: true",
        "promtool check metrics passes: true",
        "prometheus (true) returns the maillog's delivered count: true",
        "the maillog did not change meanwhile: true",
        "ctl status names the listener: true",
        "after postfix reload (true) the new queue manager serves the port: true",
    ] {
        want.fact(fact);
    }
    assert_eq!(o.facts, want.facts, "{}", o.render());
}

/// Prints the real exposition, status JSON and `ctl status` of a small
/// workload: the examples of docs/control.md come from here (run with
/// `--ignored --nocapture`).
pub fn metrics_outputs(q: &Setup) {
    let port = free_port().expect("free port");
    let listen: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let toml = format!("[metrics]\nlisten = \"{listen}\"\n");
    let mut env = Env::start_with(
        q,
        &Spec {
            ports: &["d1", "d2", "dead"],
            smtp_routes: &[("d1.test", "d1"), ("d2.test", "d2"), ("dead.test", "dead")],
            raw_routes: &[],
            settings: &[
                ("minimal_backoff_time", "300s"),
                ("maximal_backoff_time", "600s"),
                ("smtp_initial_destination_concurrency", "1"),
            ],
        },
        move |b, _| b.config_file("oqmgr.toml", toml.clone()),
    );
    env.start_sink("d1", &[]);
    env.start_sink("d2", &["-w", "3"]);
    env.send("x1", SENDER, &["u@dead.test"]);
    env.wait(|| env.outcome().rows_of("x1").any(|r| r.queue == "deferred"));
    env.send("x2", SENDER, &["u@dead.test"]);
    env.wait(|| env.outcome().rows_of("x2").any(|r| r.queue == "deferred"));
    for i in 0..6 {
        env.send(&format!("a{i}"), SENDER, &["u@d1.test", "v@d2.test"]);
    }
    std::thread::sleep(Duration::from_secs(4));
    let (_, status) = ctl(&env, &["status"]);
    println!("# oqmgr ctl status\n{status}");
    println!(
        "# curl -s http://{listen}/metrics\n{}",
        http_get(listen, "/metrics").1
    );
    println!(
        "# curl -s http://{listen}/status.json\n{}",
        http_get(listen, "/status.json").1
    );
    let page = chromium(
        &format!("http://{listen}/"),
        &env.sb.dir().join("chromium"),
        Duration::from_secs(4),
    );
    let shot = std::env::temp_dir().join("oqmgr-status-page.png");
    let _ = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1200,900",
        ])
        .arg(format!(
            "--user-data-dir={}",
            env.sb.dir().join("chromium").display()
        ))
        .arg("--virtual-time-budget=4000")
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("http://{listen}/"))
        .output();
    println!(
        "# the page after 4 s: {} updates; screenshot in {}",
        updates(&page.dom),
        shot.display()
    );
    drop(env);
}
