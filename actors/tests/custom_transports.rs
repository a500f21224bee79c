#![allow(clippy::disallowed_methods)] // tests wait on real daemons in real time
//! Custom transports end to end: a private Postfix with our daemon as
//! qmgr, `transport_maps` routing one domain to a webhook transport, two to
//! maildir transports (one unwritable), the rest to Postfix's smtp agent
//! and smtp-sink. Checks sent, bounce with a returned notice, deferral with
//! the server down, the dead destination, and recovery.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use oqmgr_actors::postfix::attr::base64;
use oqmgr_devtools::sandbox::{free_port, QmgrChoice, Sandbox, SmtpSink};

/// A tiny HTTP server: answers every POST with `status`, keeps the bodies.
struct HookServer {
    /// The port.
    port: u16,
    /// What to answer.
    status: Arc<AtomicU16>,
    /// Bodies received.
    bodies: Arc<Mutex<Vec<String>>>,
    /// Set to stop the accept loop.
    stop: Arc<AtomicBool>,
    /// The accept loop.
    thread: Option<JoinHandle<()>>,
}

impl HookServer {
    fn start(port: u16, status: Arc<AtomicU16>, bodies: Arc<Mutex<Vec<String>>>) -> HookServer {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind hook port");
        let stop = Arc::new(AtomicBool::new(false));
        let (st, b, s) = (Arc::clone(&status), Arc::clone(&bodies), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                if let Some(body) = read_request(&mut conn) {
                    b.lock().unwrap().push(body);
                    let code = st.load(Ordering::SeqCst);
                    let text = if code < 300 { "OK" } else { "Nope" };
                    let _ = write!(
                        conn,
                        "HTTP/1.1 {code} {text}\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhook says\r\n"
                    );
                }
            }
        });
        HookServer {
            port,
            status,
            bodies,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops listening (later connections are refused).
    fn shut(mut self) -> (Arc<AtomicU16>, Arc<Mutex<Vec<String>>>) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        (Arc::clone(&self.status), Arc::clone(&self.bodies))
    }
}

/// Reads one request; returns its body.
fn read_request(conn: &mut TcpStream) -> Option<String> {
    let mut got = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        got.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some(i) = text.find("\r\n\r\n") {
            let len: usize = text[..i]
                .to_ascii_lowercase()
                .lines()
                .find_map(|l| {
                    l.strip_prefix("content-length:")
                        .map(|v| v.trim().to_string())
                })
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if got.len() >= i + 4 + len {
                return Some(text[i + 4..].to_string());
            }
        }
    }
}

fn chown_postfix(p: &Path) {
    let ok = std::process::Command::new("chown")
        .arg("postfix:")
        .arg(p)
        .status()
        .unwrap()
        .success();
    assert!(ok, "chown {}", p.display());
}

/// The base64 message of a JSON body, decoded.
fn message_of(body: &str) -> String {
    let start = body.find("\"message_base64\":\"").expect("message field") + 18;
    let end = start + body[start..].find('"').unwrap();
    String::from_utf8(base64::decode(&body.as_bytes()[start..end]).expect("base64")).unwrap()
}

fn send(sb: &Sandbox, from: &str, to: &str, subject: &str) {
    let text = format!("Subject: {subject}\nFrom: {from}\n\nbody of {subject}\n");
    let out = sb.sendmail(&["-f", from, to], text.as_bytes()).unwrap();
    assert!(out.status.success(), "sendmail: {out:?}");
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

#[test]
fn webhook_maildir_and_smtp_side_by_side() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let maildirs = tmp.path().join("maildirs");
    std::fs::create_dir(&maildirs).unwrap();
    chown_postfix(&maildirs);
    // Owned by root, not writable by the daemon (it runs as postfix).
    let readonly = tmp.path().join("ro");
    std::fs::create_dir(&readonly).unwrap();
    std::fs::set_permissions(&readonly, std::fs::Permissions::from_mode(0o755)).unwrap();

    let sink = SmtpSink::start(free_port().unwrap(), &[]).unwrap();
    let hook_port = free_port().unwrap();
    let status = Arc::new(AtomicU16::new(200));
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let server = HookServer::start(hook_port, Arc::clone(&status), Arc::clone(&bodies));

    let toml = format!(
        "[transport.hooks]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{hook_port}/in\"\ntimeout = \"3s\"\n\n\
         [transport.mdir]\nkind = \"maildir\"\nroot = \"{}\"\n\n\
         [transport.mdir_ro]\nkind = \"maildir\"\nroot = \"{}\"\n",
        maildirs.display(),
        readonly.display()
    );
    let sb = Sandbox::builder()
        .qmgr(QmgrChoice::Command(PathBuf::from(env!(
            "CARGO_BIN_EXE_oqmgr"
        ))))
        .in_flow_delay("0s")
        .main_cf(
            "transport_maps",
            format!(
                "inline:{{ hook.example=hooks:hook.example, box.example=mdir:box.example, \
                 ro.example=mdir_ro:ro.example, other.example=smtp:[127.0.0.1]:{} }}",
                sink.port()
            ),
        )
        // One failed delivery is a failed cohort: the destination dies.
        .main_cf("initial_destination_concurrency", "1")
        .main_cf("minimal_backoff_time", "30s")
        .main_cf("maximal_backoff_time", "60s")
        .main_cf("queue_run_delay", "30s")
        .config_file("oqmgr.toml", toml)
        .start()
        .expect("sandbox starts");
    let wait = |what: &str, cond: &dyn Fn(&str) -> bool| {
        let ok = sb.wait_for(Duration::from_secs(20), || cond(&sb.maillog()));
        assert!(ok, "waiting for {what}; maillog:\n{}", sb.maillog());
    };
    let sent_line = |log: &str, to: &str| {
        log.lines()
            .find(|l| l.contains(&format!("to=<{to}>")) && l.contains("status=sent"))
            .map(str::to_string)
    };

    // 1. Sent, through all three kinds of transport.
    send(&sb, "s@other.example", "a@hook.example", "hooked");
    send(&sb, "s@other.example", "b@box.example", "boxed");
    send(&sb, "s@other.example", "c@other.example", "relayed");
    send(&sb, "s@other.example", "d@ro.example", "refused");
    wait("three deliveries and one deferral", &|log| {
        ["a@hook.example", "b@box.example", "c@other.example"]
            .iter()
            .all(|to| sent_line(log, to).is_some())
            && log.contains("to=<d@ro.example>")
    });
    let log = sb.maillog();
    let a = sent_line(&log, "a@hook.example").unwrap();
    assert!(
        a.contains(&format!("relay=127.0.0.1[127.0.0.1]:{hook_port}, delay="))
            && a.contains("dsn=2.0.0")
            && a.contains("said: 200 OK (hook says)"),
        "{a}"
    );
    assert!(
        a.contains("postfix/qmgr["),
        "logged under the daemon's name: {a}"
    );
    let body = bodies.lock().unwrap()[0].clone();
    assert!(
        body.contains("\"recipients\":[{\"address\":\"a@hook.example\""),
        "{body}"
    );
    assert!(body.contains("\"sender\":\"s@other.example\""), "{body}");
    assert!(message_of(&body).contains("Subject: hooked\n"), "{body}");
    let b = sent_line(&log, "b@box.example").unwrap();
    assert!(
        b.contains("relay=mdir,") && b.contains("(delivered to maildir)"),
        "{b}"
    );
    let new = files_in(&maildirs.join("box.example/b/new"));
    assert_eq!(new.len(), 1, "{new:?}");
    let text = std::fs::read_to_string(&new[0]).unwrap();
    assert!(text.starts_with("Return-Path: <s@other.example>\nDelivered-To: b@box.example\n"));
    assert!(
        text.contains("Subject: boxed\n") && text.ends_with("body of boxed\n"),
        "{text}"
    );
    let c = sent_line(&log, "c@other.example").unwrap();
    assert!(
        c.contains(&format!("relay=127.0.0.1[127.0.0.1]:{}", sink.port())),
        "{c}"
    );
    let d = log
        .lines()
        .find(|l| l.contains("to=<d@ro.example>"))
        .unwrap();
    assert!(
        d.contains("dsn=4.2.0, status=deferred (maildir delivery failed: create")
            && d.contains("Permission denied"),
        "{d}"
    );

    let sink_port = sink.port();
    // 2. A 4xx from the hook bounces; the notice goes back to the sender.
    status.store(422, Ordering::SeqCst);
    send(&sb, "s@other.example", "e@hook.example", "rejected");
    wait("the bounce and its notice", &|log| {
        log.contains("to=<e@hook.example>")
            && log.lines().any(|l| {
                l.contains("to=<s@other.example>")
                    && l.contains("status=sent")
                    && l.contains(&format!("relay=127.0.0.1[127.0.0.1]:{sink_port}"))
            })
    });
    let log = sb.maillog();
    let e = log
        .lines()
        .find(|l| l.contains("to=<e@hook.example>"))
        .unwrap();
    assert!(
        e.contains("dsn=5.0.0, status=bounced (webhook 127.0.0.1[127.0.0.1]:")
            && e.contains("said: 422 Nope (hook says)"),
        "{e}"
    );
    let notice_id = log
        .lines()
        .find(|l| l.contains("from=<>,"))
        .and_then(|l| l.split(": from=<>").next())
        .and_then(|l| l.rsplit(' ').next())
        .expect("a bounce notice from=<>")
        .to_string();
    assert!(
        log.lines().any(
            |l| l.contains(&format!("{notice_id}: to=<s@other.example>"))
                && l.contains("status=sent")
        ),
        "notice {notice_id} delivered:\n{log}"
    );

    // 3. The server goes down: deferral with a hop status, then the
    // destination is dead and new mail waits without an attempt.
    let (status, bodies) = server.shut();
    status.store(200, Ordering::SeqCst);
    send(&sb, "s@other.example", "f@hook.example", "down");
    wait("the refused delivery", &|log| {
        log.contains("to=<f@hook.example>")
    });
    let log = sb.maillog();
    let f = log
        .lines()
        .find(|l| l.contains("to=<f@hook.example>"))
        .unwrap();
    assert!(
        f.contains("relay=none,")
            && f.contains(&format!(
                "dsn=4.4.1, status=deferred (connect to 127.0.0.1[127.0.0.1]:{hook_port}: Connection refused)"
            )),
        "{f}"
    );
    send(&sb, "s@other.example", "g@hook.example", "dead");
    wait("the dead destination", &|log| {
        log.contains("to=<g@hook.example>")
    });
    let log = sb.maillog();
    let g = log
        .lines()
        .find(|l| l.contains("to=<g@hook.example>"))
        .unwrap();
    assert!(
        g.contains("status=deferred (delivery temporarily suspended: connect to 127.0.0.1"),
        "{g}"
    );
    let posts_before = bodies.lock().unwrap().len();

    // 4. Recovery: the server is back, a flush retries the dead queue.
    let server = HookServer::start(hook_port, status, Arc::clone(&bodies));
    let out = sb.postqueue(&["-f"]).unwrap();
    assert!(out.status.success(), "{out:?}");
    wait("delivery after recovery", &|log| {
        sent_line(log, "f@hook.example").is_some() && sent_line(log, "g@hook.example").is_some()
    });
    assert_eq!(bodies.lock().unwrap().len(), posts_before + 2);
    // Everything left the queue but the unwritable maildir's message.
    let ok = sb.wait_for(Duration::from_secs(10), || {
        sb.queue_files("active").is_empty() && sb.queue_files("deferred").len() == 1
    });
    assert!(ok, "{:?}", sb.queue_files("deferred"));
    server.shut();
    drop(sink);
}

/// Our content reader against files written by Postfix's cleanup: the
/// text equals what `postcat -bh` prints, long lines (split into `L`
/// fragments) included.
#[test]
fn content_reader_matches_postcat_on_cleanup_files() {
    use oqmgr_actors::custom_transports::content::read_content;
    use oqmgr_actors::postfix::queue_file::{read_envelope, ReadLimits};

    let sb = Sandbox::builder()
        .qmgr(QmgrChoice::None)
        .start()
        .expect("sandbox starts");
    let long = "x".repeat(5000);
    let messages = [
        "Subject: plain\n\nline one\n\nline three\n".to_string(),
        format!("Subject: long\n\n{long}\nafter\n"),
        "Subject: no final newline\n\nlast".to_string(),
        "Subject: 8bit\n\ncaf\u{e9} \u{2603}\n.\n..dots\n".to_string(),
    ];
    for m in &messages {
        let out = sb
            .sendmail(&["-i", "-f", "s@x.example", "r@y.example"], m.as_bytes())
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    let ok = sb.wait_for(Duration::from_secs(20), || {
        sb.queue_files("incoming").len() == messages.len()
            && sb.queue_files("incoming").iter().all(|(_, p)| {
                std::fs::metadata(p)
                    .map(|m| m.permissions().mode() & 0o777 == 0o700)
                    .unwrap_or(false)
            })
    });
    assert!(ok, "{}", sb.maillog());
    let mut seen = 0;
    for (id, path) in sb.queue_files("incoming") {
        let env = read_envelope(
            std::fs::File::open(&path).unwrap(),
            &id,
            &ReadLimits::default(),
        )
        .expect("envelope");
        let ours = read_content(&path, env.data_offset, 1 << 20).expect("content");
        let postcat = sb.postcat(&["-bh", "-q", &id]).unwrap();
        assert!(postcat.status.success(), "{postcat:?}");
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&postcat.stdout),
            "{id}"
        );
        let text = String::from_utf8(ours).unwrap();
        let sent = messages
            .iter()
            .find(|m| text.contains(m.lines().next().unwrap()))
            .expect("one of ours");
        let body = sent.split_once("\n\n").unwrap().1;
        let body = if body.ends_with('\n') {
            body.to_string()
        } else {
            format!("{body}\n")
        };
        assert!(text.ends_with(&format!("\n\n{body}")), "{id}: {text:?}");
        seen += 1;
    }
    assert_eq!(seen, messages.len());
}

/// A bad oqmgr.toml stops the daemon with a fatal line naming the file
/// and the field.
#[test]
fn a_bad_oqmgr_toml_is_fatal() {
    let sb = Sandbox::builder()
        .qmgr(QmgrChoice::Command(PathBuf::from(env!(
            "CARGO_BIN_EXE_oqmgr"
        ))))
        .in_flow_delay("0s")
        .config_file(
            "oqmgr.toml",
            "[transport.hooks]\nkind = \"webhook\"\nurl = \"ftp://x/\"\n",
        )
        .start()
        .expect("sandbox starts");
    let want = format!(
        "fatal: {}/oqmgr.toml: transport.hooks.url: \"ftp://x/\": only http:// URLs are supported",
        sb.config_dir().display()
    );
    assert!(
        sb.wait_for(Duration::from_secs(10), || sb.maillog().contains(&want)),
        "{want}\n{}",
        sb.maillog()
    );
}

/// DSN NOTIFY=SUCCESS and `sendmail -bv` through a custom transport: the
/// success report and the verification report are the bounce daemon's.
#[test]
fn success_notices_and_probes() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let maildirs = tmp.path().join("maildirs");
    std::fs::create_dir(&maildirs).unwrap();
    chown_postfix(&maildirs);
    let toml = format!(
        "[transport.mdir]\nkind = \"maildir\"\nroot = \"{}\"\n",
        maildirs.display()
    );
    let sb = Sandbox::builder()
        .qmgr(QmgrChoice::Command(PathBuf::from(env!(
            "CARGO_BIN_EXE_oqmgr"
        ))))
        .in_flow_delay("0s")
        .main_cf("transport_maps", "inline:{ box.example=mdir:box.example }")
        .config_file("oqmgr.toml", toml)
        .start()
        .expect("sandbox starts");
    // Reports for s@box.example land in its maildir too.
    let out = sb
        .sendmail(
            &["-N", "success", "-f", "s@box.example", "n@box.example"],
            b"Subject: notify\n\nhi\n",
        )
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = sb
        .sendmail(&["-bv", "-f", "s@box.example", "v@box.example"], b"")
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let reports = |sb: &Sandbox| {
        let log = sb.maillog();
        log.contains("sender delivery status notification")
            && log.contains("to=<v@box.example>")
            && log.matches("to=<s@box.example>").count() >= 2
    };
    assert!(
        sb.wait_for(Duration::from_secs(20), || reports(&sb)),
        "{}",
        sb.maillog()
    );
    let log = sb.maillog();
    let v = log
        .lines()
        .find(|l| l.contains("to=<v@box.example>"))
        .unwrap();
    assert!(
        v.contains("relay=mdir,") && v.contains("status=deliverable (delivers to mdir)"),
        "{v}"
    );
    // The probe delivered nothing; n@ got its copy; s@ got two reports.
    assert!(files_in(&maildirs.join("box.example/v/new")).is_empty());
    assert_eq!(files_in(&maildirs.join("box.example/n/new")).len(), 1);
    let s_mail: Vec<String> = files_in(&maildirs.join("box.example/s/new"))
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert_eq!(s_mail.len(), 2, "{log}");
    assert!(
        s_mail.iter().any(|m| m.contains("Action: delivered")
            && m.contains("<n@box.example>: delivery via mdir: delivered to maildir")),
        "success DSN: {s_mail:?}"
    );
    assert!(
        s_mail.iter().any(|m| m.contains("Action: deliverable")),
        "verification report: {s_mail:?}"
    );
}

/// `soft_bounce = yes`: what a custom transport bounces is deferred, as
/// with Postfix's agents.
#[test]
fn soft_bounce_defers_bounces() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let maildirs = tmp.path().join("maildirs");
    std::fs::create_dir(&maildirs).unwrap();
    chown_postfix(&maildirs);
    let toml = format!(
        "[transport.mdir]\nkind = \"maildir\"\nroot = \"{}\"\n",
        maildirs.display()
    );
    let sb = Sandbox::builder()
        .qmgr(QmgrChoice::Command(PathBuf::from(env!(
            "CARGO_BIN_EXE_oqmgr"
        ))))
        .in_flow_delay("0s")
        .main_cf("transport_maps", "inline:{ box.example=mdir:box.example }")
        .main_cf("soft_bounce", "yes")
        .config_file("oqmgr.toml", toml)
        .start()
        .expect("sandbox starts");
    // A local part that cannot name a folder: the maildir transport bounces.
    send(&sb, "s@box.example", "a/b@box.example", "unsafe");
    assert!(
        sb.wait_for(Duration::from_secs(20), || sb
            .maillog()
            .contains("to=<a/b@box.example>")),
        "{}",
        sb.maillog()
    );
    let log = sb.maillog();
    let line = log
        .lines()
        .find(|l| l.contains("to=<a/b@box.example>"))
        .unwrap();
    assert!(
        line.contains("dsn=4.1.3, status=SOFTBOUNCE (recipient address \"a/b@box.example\" cannot name a mailbox folder)"),
        "{line}"
    );
    assert!(!log.contains("from=<>"), "no bounce notice: {log}");
    assert!(
        sb.wait_for(Duration::from_secs(10), || sb.queue_files("deferred").len()
            == 1),
        "{log}"
    );
}

/// The example daemon (`examples/custom_transport.rs`, a transport
/// registered in code with `daemon::main_with`) in the qmgr slot.
#[test]
fn the_example_daemon_archives_and_bounces() {
    // Build the example with the cargo that runs this test (same target
    // folder: only the example's own file is compiled).
    let built = std::process::Command::new(env!("CARGO"))
        .args([
            "build",
            "--quiet",
            "-p",
            "oqmgr-actors",
            "--example",
            "custom_transport",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo runs");
    assert!(built.success(), "cargo build --example custom_transport");
    let program = PathBuf::from(env!("CARGO_BIN_EXE_oqmgr"))
        .parent()
        .unwrap()
        .join("examples/custom_transport");
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let archive = tmp.path().join("archive");
    std::fs::create_dir(&archive).unwrap();
    chown_postfix(&archive);
    let sb = Sandbox::builder()
        .qmgr(QmgrChoice::Command(program))
        .in_flow_delay("0s")
        .main_cf("transport_maps", "inline:{ archive.example=archive: }")
        // master(8) passes only these variables to its children.
        .main_cf(
            "import_environment",
            format!(
                "MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C ARCHIVE_DIR={}",
                archive.display()
            ),
        )
        .start()
        .expect("sandbox starts");
    send(&sb, "s@archive.example", "keep@archive.example", "kept");
    send(&sb, "s@archive.example", "nobody@archive.example", "lost");
    let done = |log: &str| {
        log.contains("to=<keep@archive.example>") && log.contains("to=<nobody@archive.example>")
    };
    assert!(
        sb.wait_for(Duration::from_secs(20), || done(&sb.maillog())),
        "{}",
        sb.maillog()
    );
    let log = sb.maillog();
    let keep = log
        .lines()
        .find(|l| l.contains("to=<keep@archive.example>"))
        .unwrap();
    assert!(
        keep.contains("relay=archive,") && keep.contains("status=sent (archived in"),
        "{keep}"
    );
    let nobody = log
        .lines()
        .find(|l| l.contains("to=<nobody@archive.example>"))
        .unwrap();
    assert!(
        nobody.contains("dsn=5.1.1, status=bounced (this address is not archived)"),
        "{nobody}"
    );
    let files = files_in(&archive);
    // The kept message, and the bounce notice to s@archive.example.
    let texts: Vec<String> = files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(
        texts.iter().any(|t| t.starts_with(
            "X-Envelope-From: <s@archive.example>\nX-Envelope-To: <keep@archive.example>\n"
        ) && t.contains("Subject: kept\n")),
        "{texts:?}"
    );
    let ok = sb.wait_for(Duration::from_secs(10), || {
        files_in(&archive).iter().any(|p| {
            std::fs::read_to_string(p)
                .map(|t| t.starts_with("X-Envelope-From: <>\n"))
                .unwrap_or(false)
        })
    });
    assert!(ok, "a bounce notice archived: {}", sb.maillog());
}
