//! First-pass measurements of a delivery run, as SCHEDULER_README's
//! tables of concurrency-limited deliveries report them (`percentage
//! deferred`, `client concurrency average/stddev`, `timed-out in
//! connect/greeting`).
//!
//! SCHEDULER_README counts the first delivery attempt of each recipient
//! only, and its concurrency column is the destination's window as the
//! feedback debug log shows it after each delivery. [`FirstPass`] holds
//! those counts; [`FirstPass::from_trace`] fills it from a simulator
//! trace (the message admitted first, up to its first deferral or
//! removal), and a host that reads Postfix's maillog fills it with
//! [`FirstPass::recipient`] and [`FirstPass::window`].
//!
//! # Invariants
//! - `deferred <= recipients`, and each timeout count `<= deferred`;
//! - window samples of the `retry` and `error` pseudo-destinations are
//!   not taken: they are not the site under test.

use std::collections::HashMap;
use std::fmt;

use crate::route::{ERROR, RETRY};

/// Why a first attempt was deferred, as far as the tables tell causes apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// The connection timed out (`connect to ...: Connection timed out`).
    ConnectTimeout,
    /// No greeting came in time (`timed out while receiving the initial
    /// server greeting`).
    GreetingTimeout,
    /// Anything else (a 421, a suspended destination, a 4xx).
    Other,
}

impl Cause {
    /// The cause a deferral reason names.
    pub fn of(reason: &str) -> Cause {
        if reason.contains("Connection timed out") {
            Cause::ConnectTimeout
        } else if reason.contains("initial server greeting") {
            Cause::GreetingTimeout
        } else {
            Cause::Other
        }
    }
}

/// First-pass counts of one run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FirstPass {
    /// Recipients with a first outcome.
    pub recipients: u64,
    /// Of those, deferred.
    pub deferred: u64,
    /// Deferred after a connect timeout.
    pub connect_timeouts: u64,
    /// Deferred after a greeting timeout.
    pub greeting_timeouts: u64,
    /// The window after each delivery's feedback, in order.
    pub windows: Vec<u32>,
    /// Times the destination was declared dead.
    pub dead: u32,
}

impl FirstPass {
    /// Counts one recipient's first outcome; `deferred` names the reason
    /// when it was deferred.
    pub fn recipient(&mut self, deferred: Option<&str>) {
        self.recipients += 1;
        if let Some(reason) = deferred {
            self.deferred += 1;
            match Cause::of(reason) {
                Cause::ConnectTimeout => self.connect_timeouts += 1,
                Cause::GreetingTimeout => self.greeting_timeouts += 1,
                Cause::Other => {}
            }
        }
    }

    /// Adds one window sample.
    pub fn window(&mut self, window: u32) {
        self.windows.push(window);
    }

    /// Deferred recipients in percent of recipients (0 without any).
    pub fn deferred_percent(&self) -> f64 {
        if self.recipients == 0 {
            return 0.0;
        }
        100.0 * self.deferred as f64 / self.recipients as f64
    }

    /// Mean and (population) standard deviation of the window samples.
    pub fn window_mean_sd(&self) -> (f64, f64) {
        if self.windows.is_empty() {
            return (0.0, 0.0);
        }
        let n = self.windows.len() as f64;
        let mean = self.windows.iter().map(|&w| f64::from(w)).sum::<f64>() / n;
        let var = self
            .windows
            .iter()
            .map(|&w| (f64::from(w) - mean).powi(2))
            .sum::<f64>()
            / n;
        (mean, var.sqrt())
    }

    /// Measures the first pass of the message admitted first in a
    /// simulator trace: the entries enqueued for it, each counted once
    /// when it ends (all its recipients with its outcome), until the
    /// message is deferred or removed. The window is sampled after each
    /// delivery to a real destination ends, once its feedback (if any)
    /// is applied.
    pub fn from_trace(trace: &str) -> FirstPass {
        let mut pass = FirstPass::default();
        let mut message: Option<String> = None;
        // Entry → recipients, for the entries of that message.
        let mut entries: HashMap<String, u64> = HashMap::new();
        let mut window = 0;
        // A delivery ended and its window sample is still to be taken.
        let mut pending = false;
        for line in trace.lines() {
            let Some((_, event)) = line.trim_start().split_once(' ') else {
                continue;
            };
            let (kind, rest) = event.split_once(' ').unwrap_or((event, ""));
            let feedback = matches!(kind, "unthrottle" | "throttle" | "revive" | "resume");
            let own = !is_pseudo(rest);
            if feedback && own {
                window = field(rest, "window=").unwrap_or(window);
            }
            if pending {
                pass.window(window);
                pending = false;
            }
            match kind {
                "admit" if message.is_none() => {
                    message = rest.split(' ').next().map(str::to_string);
                }
                "enqueue" => {
                    // `enqueue DEST eN mM rcpt=K`, DEST may hold spaces.
                    let mut words = rest.rsplitn(4, ' ');
                    let (Some(rcpt), Some(m), Some(e)) = (words.next(), words.next(), words.next())
                    else {
                        continue;
                    };
                    if Some(m) == message.as_deref() {
                        let n = rcpt.trim_start_matches("rcpt=").parse().unwrap_or(0);
                        entries.insert(e.to_string(), n);
                    }
                }
                "done" => {
                    // `done DEST eN OUTCOME[ hop="..."]`.
                    let (head, hop) = match rest.split_once(" hop=\"") {
                        Some((head, hop)) => (head, hop.trim_end_matches('"')),
                        None => (rest, ""),
                    };
                    let mut words = head.rsplitn(3, ' ');
                    let (Some(outcome), Some(e)) = (words.next(), words.next()) else {
                        continue;
                    };
                    if let Some(n) = entries.remove(e) {
                        let deferred = (outcome != "done").then_some(hop);
                        for _ in 0..n {
                            pass.recipient(deferred);
                        }
                    }
                    pending = own;
                }
                "select" if own => window = field(rest, "window=").unwrap_or(window),
                "dead" if own => pass.dead += 1,
                "defer" | "remove" if rest.split(' ').next() == message.as_deref() => break,
                _ => {}
            }
        }
        if pending {
            pass.window(window);
        }
        pass
    }
}

/// Whether a trace line's destination is the `retry` or `error` one.
fn is_pseudo(rest: &str) -> bool {
    rest.starts_with(&format!("{RETRY}:")) || rest.starts_with(&format!("{ERROR}:"))
}

/// The number after ` name` in a trace line.
fn field(rest: &str, name: &str) -> Option<u32> {
    let at = rest.find(&format!(" {name}"))? + 1 + name.len();
    let digits: &str = rest[at..].split([' ', ',']).next()?;
    digits.parse().ok()
}

impl fmt::Display for FirstPass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (mean, sd) = self.window_mean_sd();
        write!(
            f,
            "deferred {:.1}% ({} of {} recipients), concurrency {:.2} sd {:.2} ({} samples), \
             timed out in connect {} / greeting {}, dead {}",
            self.deferred_percent(),
            self.deferred,
            self.recipients,
            mean,
            sd,
            self.windows.len(),
            self.connect_timeouts,
            self.greeting_timeouts,
            self.dead
        )
    }
}

#[cfg(test)]
mod tests {
    use super::FirstPass;

    #[test]
    fn counts_the_first_message_and_samples_windows_after_feedback() {
        let trace = "\
      0.000 admit m1 id=Q1 from=incoming rcpt=4
      0.000 enqueue smtp:a e1 m1 rcpt=2
      0.000 enqueue smtp:a e2 m1 rcpt=2
      0.000 select smtp:a e1 a1 busy=1 window=5
      0.000 select smtp:a e2 a2 busy=2 window=5
      2.000 done smtp:a e1 done
      2.000 unthrottle smtp:a limit=20 window=6 success=0.000 failure=0.000 fail_cohorts=0.000 feedback=1.000
      2.000 done smtp:a e2 defer hop=\"4.4.1 connect to a[127.0.0.1]:25: Connection timed out\"
      2.000 defer m1 id=Q1 until=300.000
      2.000 done smtp:a e9 done
";
        let pass = FirstPass::from_trace(trace);
        assert_eq!((pass.recipients, pass.deferred), (4, 2));
        assert_eq!((pass.connect_timeouts, pass.greeting_timeouts), (2, 0));
        // e2 ends without feedback: the window it sees is still 6.
        assert_eq!(pass.windows, vec![6, 6]);
        assert_eq!(pass.deferred_percent(), 50.0);
        assert_eq!(pass.window_mean_sd(), (6.0, 0.0));
    }
}
