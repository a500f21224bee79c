//! Concurrency feedback of one destination (Postfix: `qmgr_queue.c`'s
//! `qmgr_queue_unthrottle` and `qmgr_queue_throttle`).
//!
//! A success opens a ready destination's window by the transport's
//! positive feedback while the window is below `busy + initial` (slow
//! start); a site failure closes it by the negative feedback and counts a
//! failed pseudo-cohort (`1 / window`). At `failed_cohort_limit` cohorts
//! the site is declared dead until `minimal_backoff_time` has passed;
//! revival resumes with what is in flight, or the initial window. Under
//! the adaptive policy a learned ceiling takes over positive feedback
//! (`adaptive_success`, in `destination_adaptive.rs`).
//!
//! Every change of the window is a trace line, and with
//! `destination_concurrency_feedback_debug` the log line Postfix writes
//! ([`fmt_g`] formats its numbers as C's `%g` does).
//!
//! # Invariants
//! - the window stays between 1 and the limit (when there is one) while
//!   ready, and is 0 once dead;
//! - `fail_cohorts` is zeroed by every success.
//!
//! # Compatibility
//! `<transport>_destination_concurrency_positive_feedback`,
//! `<transport>_destination_concurrency_negative_feedback`,
//! `<transport>_destination_concurrency_failed_cohort_limit`,
//! `minimal_backoff_time`, `destination_concurrency_feedback_debug`.

use super::{Destination, Status};
use crate::effect::{Addr, Effect, Effects, LogLevel, Timer};
use crate::entry::Dsn;
use crate::route::{ERROR, RETRY};
use crate::time::Instant;
use crate::trace::{TraceEvent, WindowCause, WindowState};

impl Destination {
    /// Positive feedback, or revival of a dead site (Postfix:
    /// `qmgr_queue_unthrottle`).
    pub(super) fn unthrottle(&mut self, _now: Instant, out: &mut Effects) {
        self.fail_cohorts = 0.0;
        if matches!(self.status, Status::Dead(_)) {
            self.status = Status::Ready;
            // Back from the dead the right concurrency is unknown: resume
            // with what is still in flight, or start slow again.
            self.window = if self.busy.is_empty() {
                self.params.init_dest_concurrency.max(1)
            } else {
                self.busy.len() as u32
            };
            self.success = 0.0;
            self.failure = 0.0;
            self.adaptive_revive();
            self.trace_window(WindowCause::Revive, 0.0, out);
            return;
        }
        if self.status != Status::Ready {
            return;
        }
        if self.adaptive_success(out) {
            return;
        }
        let limit = self.params.dest_concurrency_limit;
        if (limit == 0 || limit > self.window)
            && self.window < self.busy.len() as u32 + self.params.init_dest_concurrency
        {
            let feedback = self.params.positive_feedback.value(self.window);
            self.success += feedback;
            // Loop, not `if`: a feedback above 1 (or rounding) may owe more
            // than one step.
            while self.success + feedback / 2.0 >= 1.0 {
                self.window += 1;
                self.success -= 1.0;
                self.failure = 0.0;
            }
            if limit > 0 && self.window > limit {
                self.window = limit;
            }
            self.trace_window(WindowCause::Success, feedback, out);
        }
    }

    /// Negative feedback; declares the site dead after enough failed
    /// pseudo-cohorts (Postfix: `qmgr_queue_throttle`).
    pub(super) fn throttle(&mut self, now: Instant, dsn: &Dsn, out: &mut Effects) {
        assert!(
            self.status == Status::Ready,
            "throttle {} while not ready",
            self.key
        );
        self.fail_cohorts += 1.0 / f64::from(self.window);
        let cohort_limit = self.params.fail_cohort_limit;
        let dead = cohort_limit > 0 && self.fail_cohorts >= f64::from(cohort_limit);
        let mut feedback = 0.0;
        if !dead {
            feedback = self.params.negative_feedback.value(self.window);
            self.failure -= feedback;
            while self.failure - feedback / 2.0 < 0.0 {
                self.window = self.window.saturating_sub(1);
                self.success = 0.0;
                self.failure += 1.0;
            }
            self.window = self.window.max(1);
            self.adaptive_failure();
            self.trace_window(WindowCause::Failure, feedback, out);
            return;
        }
        self.window = 0;
        self.trace_window(WindowCause::Failure, feedback, out);
        self.status = Status::Dead(dsn.clone());
        self.generation += 1;
        let until = now + self.global.minimal_backoff_time;
        self.dead_until = until;
        self.dead_since = now;
        out.push(Effect::Arm {
            owner: Addr::Destination(self.id),
            at: until,
            timer: Timer::Unthrottle(self.generation),
        });
        out.trace(|| TraceEvent::Throttle {
            dest: self.key.clone(),
            until,
            reason: dsn.to_string(),
        });
        self.site_dead(out);
    }

    pub(super) fn trace_window(&self, cause: WindowCause, feedback: f64, out: &mut Effects) {
        let state = WindowState {
            limit: self.params.dest_concurrency_limit,
            window: self.window,
            success: self.success,
            failure: self.failure,
            fail_cohorts: self.fail_cohorts,
            feedback,
        };
        let pseudo = self.key.transport == RETRY || self.key.transport == ERROR;
        if self.global.feedback_debug && !pseudo {
            out.push(Effect::Log(
                LogLevel::Info,
                format!(
                    "qmgr_queue_{}: queue {}: limit {} window {} success {} failure {} fail_cohorts {}",
                    if cause == WindowCause::Failure { "throttle" } else { "unthrottle" },
                    self.key.queue,
                    state.limit,
                    state.window,
                    fmt_g(state.success),
                    fmt_g(state.failure),
                    fmt_g(state.fail_cohorts)
                ),
            ));
        }
        out.trace(|| TraceEvent::Window {
            dest: self.key.clone(),
            cause,
            state,
        });
    }
}

/// Formats like C's `%g`: six significant digits, no trailing zeros, so the
/// feedback debug lines read as Postfix's do.
pub fn fmt_g(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let magnitude = v.abs().log10().floor() as i32;
    if !(-5..6).contains(&magnitude) {
        return format!("{v:e}");
    }
    let decimals = (5 - magnitude).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}
