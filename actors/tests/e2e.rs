#![allow(clippy::disallowed_methods)] // tests wait on real daemons in real time
//! e2e - end-to-end scenarios against a real Postfix 3.7 instance, run with
//! Postfix's own oqmgr(8) (`postfix/oqmgr/*.c`) and with ours in the qmgr
//! slot, judged by the same expectations.
//!
//! # What and why
//! Each scenario is a function `fn name(q: &QmgrChoice) -> Outcome` that
//! starts a private instance (`oqmgr_actors::sandbox`, own folder, ports and
//! maillog) with queue manager `q`, runs a workload with real cleanup,
//! pickup, smtp, local, error, discard, bounce, flush, smtp-sink and the
//! admin tools, and returns an [`e2e::outcome::Outcome`]: per (message,
//! recipient) the final result, the queue the file ends in, the collapsed
//! history of `status=` words and the last relay/dsn/status text, all taken
//! from the maillog with queue IDs, ports, paths and timing removed, plus
//! scenario facts (sink counters, mailbox contents, files found). Two runs
//! compare with `assert_eq!`.
//!
//! `scenario!` makes three tests per scenario: `postfix` (Postfix's oqmgr
//! meets the written expectation), `ours` (our daemon meets the same one)
//! and `side_by_side` (both outcomes are equal). A new scenario may start
//! as `pending` (its two tests with our daemon ignored) and become `wired`;
//! every scenario below is wired. `OQMGR_E2E_BIN=/path/to/program` puts
//! another program in "our" slot; with Postfix's own
//! `$(postconf -dh daemon_directory)/oqmgr` all 45 scenario tests pass,
//! which proves the outcomes are deterministic enough to compare.
//! `OQMGR_E2E_PRINT=1 ... -- --nocapture` prints each `postfix` outcome.
//!
//! # Scenarios and what they pin
//! - `fanout` (1): 20 messages x 3 recipients over 3 domains, each routed
//!   by `transport_maps` to its own smtp-sink: 60 `sent` rows, no recipient
//!   logged `sent` twice, each sink received exactly 20 messages.
//! - `local_and_mixed` (2): local(8) delivery into `$DIR/mail/root`
//!   (`mydestination = local.test`, `mail_spool_directory`), and one message
//!   to smtp + local + discard recipients: each transport logs its own
//!   `sent` line and the file is removed once all three are done.
//! - `temporary_failure` (3): smtp-sink `-r RCPT` (450): deferred with the
//!   minimal backoff (file stamped `minimal_backoff_time` ahead, no retry by
//!   the 1 s periodic scans), delivered after the sink is replaced and
//!   `postqueue -f` (its `A` ignores the stamp).
//! - `permanent_failure` (4): smtp-sink `-f RCPT` (500): `bounced`, and the
//!   non-delivery notice (`bounce-of:p1`) is delivered to the local sender.
//! - `expiry` (5a): `maximal_queue_lifetime = 0`: one failed attempt, then
//!   `status=expired, returned to sender` and a notice to the sender.
//! - `delay_cleared` (5c): `confirm_delay_cleared = yes` after a delay
//!   warning: the recovered delivery also sends the sender a "Successful
//!   Mail Delivery Report" (the trace flush with `REC_DLY_SENT`).
//! - `delay_warning` (5b): `delay_warning_time = 1s`: exactly one delay
//!   notice, sent at the first deferral; later delivery when the sink comes
//!   up (automatic retry, 2-3 s backoff).
//! - `dead_destination` (6): `smtp_initial_destination_concurrency = 1`
//!   makes one connection failure a whole failed cohort, so the destination
//!   is dead after the first message; later mail for it is deferred by the
//!   `retry` transport (`postfix/error`, relay `none`) with `delivery
//!   temporarily suspended: connect to ...: Connection refused`, while mail
//!   to a live sink on the same transport is delivered.
//! - `admin_tools` (7): five messages deferred to closed ports (60 s
//!   backoff); `postsuper -h` → `hold/`; `postsuper -d` → gone, logged by
//!   postsuper; `postqueue -i ID` delivers that one message; `postqueue -s
//!   s.test` (with `fast_flush_domains = s.test`) delivers that site;
//!   `postsuper -r` → `maildrop/`, then (pickup kicked) a new queue ID and
//!   delivery; `postsuper -H` → `deferred/` with its old stamp (not retried
//!   by periodic scans), delivered by `postqueue -f`.
//! - `defer_transports` (8a): `defer_transports = smtp`: every periodic
//!   retry is deferred by `retry` (`dsn=4.3.2 ... (deferred transport)`);
//!   `postqueue -f` (its `F`) overrides it and the mail is delivered.
//! - `double_bounce` (8b): mail to `double-bounce@local.test` is discarded
//!   by the queue manager itself (`relay=none ... status=sent
//!   (undeliverable postmaster notification discarded)`), next to a normal
//!   local delivery of the same message.
//! - `corrupt_file` (9): a hand-made `incoming/ABCDE12345` (`C\x05hello`,
//!   mode 0700, owner postfix) ends in `corrupt/` with the two warnings of
//!   the spec (§13.9) while five other messages are delivered.
//! - `reload` (10a) and `kill_qmgr` (10b): `postfix reload` / `kill -9` of
//!   the queue manager while deliveries are in flight (sink `-w 1`): master
//!   runs a new queue manager, every message is delivered (reload: exactly
//!   once); files whose delivery agent still held the lock go back to
//!   `incoming/` ("skipped, still being delivered") and are removed after
//!   `postqueue -f`.
//! - `verify_probe` (10c): `sendmail -bv`: each recipient is probed
//!   (`status=deliverable`, smtp `dsn=2.1.5`, the sink receives no
//!   message), and the report (`dsn-of:untagged`: the probe has no
//!   Message-ID of ours) reaches the sender's mailbox.
//! - `verbose_report` (10d): `sendmail -v`: delivered, and a delivery status
//!   report reaches the sender.
//!
//! # Real Postfix 3.7.11 versus the spec (docs/postfix-internals.md)
//! - §2.3 says mail released with `postsuper -H` is "picked up by the next
//!   periodic deferred scan". It keeps the time stamps of its last
//!   deferral, so periodic scans skip it until its backoff has passed;
//!   only `postqueue -f` (`A`) takes it at once.
//! - §2.3 `postsuper -r` "(pickup handles it)": postsuper does not wake
//!   pickup, so the file waits in `maildrop/` up to pickup's wakeup period
//!   (60 s); the scenario kicks `public/pickup`. Queue managers are not
//!   involved.
//! - §4.3 step 5 ("skipped, still being delivered", file stamped now+60 s
//!   and moved back to `incoming/`) happens after every reload or restart
//!   in mid-flow, for each file a delivery agent of the old queue manager
//!   still holds. The stamp does not last: the agent's `D` mark (a write to
//!   the file) resets the mtime to the write time, so the file is taken by
//!   the next incoming scan, which only a trigger starts (new mail,
//!   `postqueue -f`, master's 300 s wakeup). The spec does not say so;
//!   the scenarios flush with `postqueue -f` after all mail is sent.
//! - Under heavy load with a 1 s backoff, a periodic retry found a file
//!   still locked by the error agent that had just deferred it (the agent
//!   replies before it closes the file): "skipped, still being delivered"
//!   and 60 s in `incoming/` (§4.3 step 5). Hence 2 s minimal backoff here.
//! - The rest matched the spec exactly where it gives text: double-bounce
//!   line (§10.2), corrupt-file warnings (§13.9), `deferred transport` with
//!   dsn 4.3.2 (§13.6), `delivery temporarily suspended` via `retry`
//!   (§13.7), delay warning at the first deferral with
//!   `delay_warning_time = 1s` (§13.5), expiry with
//!   `maximal_queue_lifetime = 0` (§13.5, plus the startup warning
//!   `bounce_queue_lifetime is larger than maximal_queue_lifetime -
//!   adjusting bounce_queue_lifetime`), master's `killed by signal 9`
//!   warning and restart without throttling after `kill -9` (§1.9).
//!
//! # Parameters and compatibility
//! Needs Postfix 3.7 and smtp-sink installed, and root (chown to postfix,
//! smtp-sink `-u nobody`). Each scenario takes 2-13 s; the 15 tests that run
//! now finish in well under a minute on 2 cores. A scenario never waits more
//! than 20 s for one condition, so a queue manager that does nothing fails
//! with the evidence (rows `(no recipient logged)`, `pending`, queue
//! `incoming`) instead of hanging.

mod e2e {
    pub mod admin;
    pub mod differences;
    pub mod env;
    pub mod flow;
    pub mod ops;
    pub mod outcome;
    pub mod trust;
}

use oqmgr_actors::sandbox::QmgrChoice;
use scenarios as s;
use std::path::PathBuf;

/// Our daemon in the qmgr slot. `OQMGR_E2E_BIN` overrides the program (for
/// instance Postfix's own oqmgr by absolute path, to prove that a
/// side-by-side run of two identical queue managers compares equal).
fn ours() -> QmgrChoice {
    let path = std::env::var_os("OQMGR_E2E_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_oqmgr")));
    QmgrChoice::Command(path)
}

/// Runs one scenario and reports its wall time on stderr (shown with
/// `--nocapture`), to keep an eye on the suite's time budget; with
/// `OQMGR_E2E_PRINT` set, also the rendered outcome.
fn timed(name: &str, run: impl FnOnce() -> e2e::outcome::Outcome) -> e2e::outcome::Outcome {
    let start = std::time::Instant::now();
    let o = run();
    eprintln!("scenario {name}: {:.1} s", start.elapsed().as_secs_f64());
    if std::env::var_os("OQMGR_E2E_PRINT").is_some() {
        eprintln!("{}", o.render());
    }
    o
}

/// The reference run with Postfix's own oqmgr. When it misses its written
/// expectation it is run once more, as a flake of the reference says
/// nothing about our daemon; our daemon's runs get no second chance. The
/// flake this was added for (after `postfix reload` the instance logged
/// and delivered nothing) turned out to be master(8) blocked writing to a
/// full postlog socket, which hits any queue manager; its cause and cure
/// are in `oqmgr_actors::sandbox::host`.
fn reference(
    name: &str,
    scenario: fn(&QmgrChoice) -> e2e::outcome::Outcome,
    expect: fn(&e2e::outcome::Outcome),
) -> e2e::outcome::Outcome {
    let first = timed(name, || scenario(&QmgrChoice::PostfixOqmgr));
    let meets = |o: &e2e::outcome::Outcome| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| expect(o))).is_ok()
    };
    if meets(&first) {
        return first;
    }
    eprintln!("scenario {name}: Postfix's oqmgr missed the expectation; running it once more");
    timed(name, || scenario(&QmgrChoice::PostfixOqmgr))
}

/// Generates, for one scenario, a module with three tests: `postfix`
/// (Postfix's oqmgr meets the expectation), `ours` (our daemon meets the
/// same expectation) and `side_by_side` (both outcomes are equal).
/// The last argument is `pending` (the two tests using our daemon are
/// ignored) or `wired` (all three run): un-ignoring is a one-word change.
macro_rules! scenario {
    ($name:ident, $expect:path, pending) => {
        scenario!(@gen $name, $expect, #[ignore = "daemon not wired yet"]);
    };
    ($name:ident, $expect:path, wired) => {
        scenario!(@gen $name, $expect, );
    };
    (@gen $name:ident, $expect:path, $(#[$ours_attr:meta])?) => {
        mod $name {
            use super::*;

            #[test]
            fn postfix() {
                $expect(&reference(stringify!($name), scenarios::$name, $expect));
            }

            #[test]
            $(#[$ours_attr])?
            fn ours() {
                $expect(&scenarios::$name(&super::ours()));
            }

            #[test]
            $(#[$ours_attr])?
            fn side_by_side() {
                let theirs = reference(stringify!($name), scenarios::$name, $expect);
                let ours = scenarios::$name(&super::ours());
                e2e::flow::assert_outcome(&ours, &theirs);
            }
        }
    };
}

/// Every scenario function, under one name the macro can reach.
mod scenarios {
    pub use super::e2e::admin::*;
    pub use super::e2e::differences::*;
    pub use super::e2e::flow::*;
    pub use super::e2e::ops::*;
    pub use super::e2e::trust::*;
}

scenario!(fanout, s::expect_fanout, wired);
scenario!(local_and_mixed, s::expect_local_and_mixed, wired);
scenario!(temporary_failure, s::expect_temporary_failure, wired);
scenario!(permanent_failure, s::expect_permanent_failure, wired);
scenario!(expiry, s::expect_expiry, wired);
scenario!(delay_warning, s::expect_delay_warning, wired);
scenario!(delay_cleared, s::expect_delay_cleared, wired);
scenario!(dead_destination, s::expect_dead_destination, wired);
scenario!(admin_tools, s::expect_admin_tools, wired);
scenario!(defer_transports, s::expect_defer_transports, wired);
scenario!(double_bounce, s::expect_double_bounce, wired);
scenario!(corrupt_file, s::expect_corrupt_file, wired);
scenario!(reload, s::expect_reload, wired);
scenario!(kill_qmgr, s::expect_kill_qmgr, wired);
scenario!(verify_probe, s::expect_verify_probe, wired);
scenario!(verbose_report, s::expect_verbose_report, wired);
scenario!(force_expire, s::expect_force_expire, wired);
scenario!(clog_warning, s::expect_clog_warning, wired);
scenario!(unknown_transport, s::expect_unknown_transport, wired);
scenario!(verbose_log, s::expect_verbose_log, wired);
scenario!(special_files, s::expect_special_files, wired);
scenario!(unwritable_defer, s::expect_unwritable_defer, wired);
scenario!(unreadable_incoming, s::expect_unreadable_incoming, wired);
scenario!(non_utf8_address, s::expect_non_utf8_address, wired);
