//! Table tests for feedback parsing (`Feedback::parse`) and use (`value`).
//!
//! Method: each row gives a main.cf value and what Postfix 3.7.11's
//! `qmgr_feedback_init` makes of it. The expectations were checked against
//! a C harness running the same `sscanf` pattern, so the odd cases
//! (trailing junk ignored after a lone number, a space after the
//! denominator rejected, `sqrt_concurrency` rejected) are Postfix's
//! behaviour, not ours.

use oqmgr::feedback::Feedback::{self, Constant, PerConcurrency, PerSqrtConcurrency};

const P: &str = "smtp_destination_concurrency_positive_feedback";

/// `None` in the expectation means: warning, and the fallback constant 1.
const CASES: &[(&str, Option<Feedback>)] = &[
    ("1", Some(Constant(1.0))),
    ("0", Some(Constant(0.0))),
    ("-0", Some(Constant(-0.0))),
    (".5", Some(Constant(0.5))),
    ("1e-1", Some(Constant(0.1))),
    ("0x1p-3", Some(Constant(0.125))),
    ("0.5abc", Some(Constant(0.5))),
    ("0.5 abc", Some(Constant(0.5))),
    ("1/8", Some(Constant(0.125))),
    ("3/4", Some(Constant(0.75))),
    ("1 / 4", Some(Constant(0.25))),
    ("1/ 4", Some(Constant(0.25))),
    (" 1/4", Some(Constant(0.25))),
    ("1/4e0", Some(Constant(0.25))),
    ("5e-1/1", Some(Constant(0.5))),
    ("1/0x10", Some(Constant(0.0625))),
    ("0.5/0.75", Some(Constant(0.5 / 0.75))),
    ("1/000000000000000000000000000004", Some(Constant(0.25))),
    ("1/concurrency", Some(PerConcurrency(1.0))),
    ("1/Concurrency", Some(PerConcurrency(1.0))),
    ("0.5/concurrency", Some(PerConcurrency(0.5))),
    ("0.25 /concurrency", Some(PerConcurrency(0.25))),
    // Rejected: the warning and constant 1.
    ("2", None),
    ("-0.5", None),
    ("5/4", None),
    ("1/0.5", None),
    ("2/concurrency", None),
    ("inf/concurrency", None),
    ("nan", None),
    ("1/sqrt_concurrency", None),
    ("1/4 ", None),
    ("1/4x", None),
    ("1/", None),
    ("/4", None),
    ("", None),
    ("abc", None),
    ("1/0", None),
    ("1/-4", None),
    ("1/4/5", None),
    ("1//4", None),
    ("1/2147483648", None),
    ("2147483648/2147483647", None),
    ("1/0000000000000000000000000000004", None),
    ("1/concurrency x", None),
];

#[test]
fn parse_accepts_what_postfix_accepts() {
    for (text, want) in CASES {
        let (got, warning) = Feedback::parse(P, text);
        match want {
            Some(want) => {
                assert_eq!(got, *want, "value {text:?}");
                assert_eq!(warning, None, "value {text:?}");
            }
            None => {
                assert_eq!(got, Constant(1.0), "value {text:?}");
                let warning = warning.unwrap_or_else(|| panic!("no warning for {text:?}"));
                assert_eq!(warning.param, P);
                assert_eq!(
                    warning.message,
                    format!("{P}: ignoring malformed or unreasonable feedback: {text}")
                );
            }
        }
    }
}

#[test]
fn value_divides_by_the_window() {
    let cases: &[(Feedback, u32, f64)] = &[
        (Constant(0.125), 7, 0.125),
        (PerConcurrency(1.0), 4, 0.25),
        (PerConcurrency(1.0), 0, 1.0),
        (PerSqrtConcurrency(1.0), 16, 0.25),
        (PerSqrtConcurrency(0.5), 1, 0.5),
    ];
    for (fb, window, want) in cases {
        assert_eq!(fb.value(*window), *want, "{fb:?} at window {window}");
    }
}
