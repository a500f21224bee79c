//! trigger_floods - misbehaving clients on the queue manager's trigger
//! socket (`public/qmgr`) while mail flows.
//!
//! For `fault_secs`, with background mail to `ok.test`:
//! - `random-bytes`: 100 clients a second, each writing 1–2,000 random
//!   bytes and hanging up;
//! - `nul-less`: 20 clients writing `I` without the terminating NUL and
//!   then holding the connection open;
//! - `slow-writer`: 10 clients writing `I` one byte every half second;
//! - `idle`: 50 clients connecting and never writing.
//!
//! The row notes how much of the mail accepted during the flood reached
//! the sink during it, and how often master logged that a trigger to the
//! queue manager timed out (cleanup's own wake-ups lost in the backlog).
//! No request may hold up another, and none may hold up delivery.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, RngExt, SeedableRng};
use rand_xorshift::XorShiftRng;

use oqmgr_actors::clock::tooling_now;

use super::rig::{Rig, RigSpec, Side};
use super::{conclude, group_cases, pause, Case, CaseKind, CaseResult, Ctx};

/// The floods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flood {
    /// Random bytes, then hang up.
    RandomBytes,
    /// `I` without NUL, then hold.
    NulLess,
    /// One byte every half second.
    SlowWriter,
    /// Connect and hold, writing nothing.
    Idle,
}

/// The case list of this group.
pub fn cases() -> Vec<Case> {
    group_cases(
        "trigger",
        "trigger",
        &[
            (
                Flood::RandomBytes,
                "random-bytes",
                "100 clients/s writing random bytes",
            ),
            (
                Flood::NulLess,
                "nul-less",
                "20 clients writing `I` without NUL, then holding the connection,",
            ),
            (
                Flood::SlowWriter,
                "slow-writer",
                "10 clients writing one byte every 0.5 s",
            ),
            (
                Flood::Idle,
                "idle",
                "50 clients that connect and never write",
            ),
        ],
        " on public/qmgr while mail flows",
        CaseKind::Trigger,
    )
}

/// Connects to the trigger socket with short timeouts.
fn connect(path: &PathBuf) -> Option<UnixStream> {
    let s = UnixStream::connect(path).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(1))).ok()?;
    Some(s)
}

/// Runs `flood` against `socket` until `stop`.
fn flood(kind: Flood, socket: PathBuf, stop: Arc<AtomicBool>, seed: u64) {
    let mut rng = XorShiftRng::seed_from_u64(seed);
    let mut held: Vec<UnixStream> = Vec::new();
    let running = || !stop.load(Ordering::SeqCst);
    match kind {
        Flood::RandomBytes => {
            while running() {
                if let Some(mut s) = connect(&socket) {
                    let mut buf = vec![0u8; rng.random_range(1..=2000)];
                    rng.fill_bytes(&mut buf);
                    let _ = s.write_all(&buf);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Flood::NulLess | Flood::Idle => {
            let n = if kind == Flood::NulLess { 20 } else { 50 };
            while held.len() < n && running() {
                if let Some(mut s) = connect(&socket) {
                    if kind == Flood::NulLess {
                        let _ = s.write_all(b"I");
                    }
                    held.push(s);
                }
            }
            while running() {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Flood::SlowWriter => {
            held.extend((0..10).filter_map(|_| connect(&socket)));
            let mut last = tooling_now();
            while running() {
                if tooling_now() - last >= Duration::from_millis(500) {
                    last = tooling_now();
                    held.retain_mut(|s| s.write_all(b"I").is_ok());
                    while held.len() < 10 {
                        match connect(&socket) {
                            Some(s) => held.push(s),
                            None => break,
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Runs the case with `side`.
pub fn run(ctx: &mut Ctx, case: &Case, side: &Side, kind: Flood) -> CaseResult {
    let opts = ctx.opts;
    let row = CaseResult::new(&case.name, case.group, side);
    let rig = match Rig::start_with_sinks(side, &RigSpec::default(), &[]) {
        Ok(r) => r,
        Err(e) => return row.failed(e),
    };
    let mark = rig.log_mark();
    let source = rig.inject("t", &["u1@ok.test"], opts.rate, None);
    pause(0.5);
    let stop = Arc::new(AtomicBool::new(false));
    let socket = rig.sb.queue_dir().join("public/qmgr");
    let seed = ctx.rng.random_range(0..u64::MAX);
    let thread = {
        let stop = stop.clone();
        std::thread::spawn(move || flood(kind, socket, stop, seed))
    };
    pause(opts.fault_secs);
    let during = source.snapshot().accepted.len();
    let delivered = rig.sink_record().deliveries();
    stop.store(true, Ordering::SeqCst);
    let _ = thread.join();
    let injected = source.stop();
    let timeouts = rig
        .log_from(mark)
        .lines()
        .filter(|l| l.contains("trigger") && l.contains("timeout"))
        .count();
    let mut row = conclude(&rig, row, &injected, mark, opts.stall);
    row.notes
        .insert(0, format!("delivered during flood: {delivered}/{during}"));
    if timeouts > 0 {
        row.notes
            .push(format!("{timeouts} trigger timeout line(s) from master"));
    }
    row
}
