//! Concurrency feedback values (Postfix: `qmgr_feedback.c`).
//!
//! INTERFACE SKETCH: parsing is being written.

/// A parsed `..._concurrency_{positive,negative}_feedback` value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Feedback {
    /// `N` or `N/M`: the same amount whatever the window.
    Constant(f64),
    /// `N/concurrency`: N divided by the window at the time of use.
    PerConcurrency(f64),
    /// `N/sqrt_concurrency`: N divided by the square root of the window.
    PerSqrtConcurrency(f64),
}

impl Feedback {
    /// The feedback amount for a destination whose window is `window`.
    pub fn value(self, window: u32) -> f64 {
        let w = f64::from(window.max(1));
        match self {
            Feedback::Constant(v) => v,
            Feedback::PerConcurrency(n) => n / w,
            Feedback::PerSqrtConcurrency(n) => n / w.sqrt(),
        }
    }
}
