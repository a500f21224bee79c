//! Concurrency feedback values (Postfix: `qmgr_feedback.c`, oqmgr and qmgr).
//!
//! After each delivery the scheduler opens a destination's window a little
//! (positive feedback) or closes it (negative feedback). How much is set by
//! `<transport>_destination_concurrency_{positive,negative}_feedback`, which
//! lets an operator write a fraction such as `1/8` instead of `0.125`, or tie
//! the step to the current window with `1/concurrency` so that a large window
//! moves about one unit per full round of deliveries.
//!
//! # Accepted forms (Postfix 3.7.11, identical in oqmgr and qmgr)
//! - `N`: a constant. `N` is anything C's `strtod` reads at the start of the
//!   text (so `0.5`, `.5`, `5e-1`, `0x1p-1`); text after the number that
//!   does not start with `/` is ignored, exactly as Postfix's `sscanf`
//!   pattern ignores it.
//! - `N/M`: the constant N divided by M, with `0 <= N <= INT_MAX` and
//!   `1/INT_MAX <= M <= INT_MAX`; M must be a whole number token.
//! - `N/concurrency` (the word in any case): N divided by the window at the
//!   time of use.
//! - Whitespace may surround the `/`. The word or denominator is at most 30
//!   characters and nothing may follow it.
//!
//! Whatever the form, the base value must end up within `0..=1`. Anything
//! else is reported as `<param>: ignoring malformed or unreasonable
//! feedback: <value>` and replaced by the constant 1, Postfix's fallback.
//!
//! # Compatibility
//! `N/sqrt_concurrency` is NOT accepted: Postfix 3.7.11 compiles that
//! method out of both queue managers (`#if 0` in `qmgr.h`), so a real
//! Postfix warns and uses 1 for it, and so do we. The
//! [`Feedback::PerSqrtConcurrency`] variant stays for the simulator and for
//! a later Postfix that turns the method on.

use serde::Serialize;

use crate::params::ConfigWarning;

/// A parsed `..._concurrency_{positive,negative}_feedback` value.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub enum Feedback {
    /// `N` or `N/M`: the same amount whatever the window.
    Constant(f64),
    /// `N/concurrency`: N divided by the window at the time of use.
    PerConcurrency(f64),
    /// `N/sqrt_concurrency`: N divided by the square root of the window.
    PerSqrtConcurrency(f64),
}

/// Postfix's `INT_MAX`, the bound on numerator and denominator of `N/M`.
const INT_MAX: f64 = i32::MAX as f64;

/// Longest word or denominator after the `/` (Postfix's `%30s`).
const MAX_DENOMINATOR_LEN: usize = 30;

impl Feedback {
    /// What Postfix uses when a feedback value is unusable: one whole unit.
    pub const FALLBACK: Feedback = Feedback::Constant(1.0);

    /// The feedback amount for a destination whose window is `window`.
    pub fn value(self, window: u32) -> f64 {
        let w = f64::from(window.max(1));
        match self {
            Feedback::Constant(v) => v,
            Feedback::PerConcurrency(n) => n / w,
            Feedback::PerSqrtConcurrency(n) => n / w.sqrt(),
        }
    }

    /// The base value before any division by the window.
    pub fn base(self) -> f64 {
        match self {
            Feedback::Constant(v)
            | Feedback::PerConcurrency(v)
            | Feedback::PerSqrtConcurrency(v) => v,
        }
    }

    /// Parses the value of parameter `param_name`.
    ///
    /// Never fails: a malformed or out-of-range value yields
    /// [`Feedback::FALLBACK`] plus the warning Postfix logs for it
    /// (`qmgr_feedback_init`), so that one typo in main.cf cannot stop mail.
    /// `param_name` is the name to blame; like Postfix, callers pass the
    /// `default_...` name when the value was inherited from it.
    pub fn parse(param_name: &str, text: &str) -> (Feedback, Option<ConfigWarning>) {
        match parse_base(text) {
            Some(fb) if (0.0..=1.0).contains(&fb.base()) => (fb, None),
            _ => {
                let warning = ConfigWarning {
                    param: param_name.to_string(),
                    message: format!(
                        "{param_name}: ignoring malformed or unreasonable feedback: {text}"
                    ),
                };
                (Feedback::FALLBACK, Some(warning))
            }
        }
    }
}

/// Follows Postfix's `sscanf(value, "%lf %1[/] %30s%c")` and the decisions
/// taken on its result, without the final `0..=1` check. `None` when no
/// base value came out (Postfix's "assume error" `-1`).
fn parse_base(text: &str) -> Option<Feedback> {
    let (numerator, used) = strtod_prefix(text)?;
    let rest = text[used..].trim_start_matches(is_c_space);
    let Some(after_slash) = rest.strip_prefix('/') else {
        // Only the number matched: whatever follows is ignored.
        return Some(Feedback::Constant(numerator));
    };
    let word = after_slash.trim_start_matches(is_c_space);
    let word_len = word.find(is_c_space).unwrap_or(word.len());
    if word_len == 0 || word_len > MAX_DENOMINATOR_LEN || word_len != word.len() {
        // Missing denominator, or a character after it (`%c` matched).
        return None;
    }
    if word.eq_ignore_ascii_case("concurrency") {
        return Some(Feedback::PerConcurrency(numerator));
    }
    if !(0.0..=INT_MAX).contains(&numerator) {
        return None;
    }
    match strtod_prefix(word) {
        Some((denominator, used))
            if used == word.len() && (1.0 / INT_MAX..=INT_MAX).contains(&denominator) =>
        {
            Some(Feedback::Constant(numerator / denominator))
        }
        _ => None,
    }
}

/// C's `isspace` in the C locale.
fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// Reads a floating-point number at the start of `text` the way C's
/// `strtod` does (leading white space, sign, decimal or hex digits,
/// exponent, `inf`, `nan`), returning the value and the bytes consumed, or
/// `None` when no number starts there.
fn strtod_prefix(text: &str) -> Option<(f64, usize)> {
    let bytes = text.as_bytes();
    let mut i = bytes
        .iter()
        .take_while(|b| is_c_space(char::from(**b)))
        .count();
    let sign_at = i;
    let negative = bytes.get(i) == Some(&b'-');
    if matches!(bytes.get(i), Some(b'+' | b'-')) {
        i += 1;
    }
    let signed = |v: f64| if negative { -v } else { v };
    let tail = &text[i..];
    let lower: String = tail
        .chars()
        .take(8)
        .collect::<String>()
        .to_ascii_lowercase();
    if lower.starts_with("infinity") {
        return Some((signed(f64::INFINITY), i + 8));
    }
    if lower.starts_with("inf") {
        return Some((signed(f64::INFINITY), i + 3));
    }
    if lower.starts_with("nan") {
        let mut end = i + 3;
        // `nan(chars)` takes the parenthesised part too, when it is closed.
        if bytes.get(end) == Some(&b'(') {
            let inner = bytes[end + 1..]
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_');
            let close = end + 1 + inner.count();
            if bytes.get(close) == Some(&b')') {
                end = close + 1;
            }
        }
        return Some((f64::NAN, end));
    }
    if lower.starts_with("0x") {
        if let Some((v, used)) = hex_float(&bytes[i + 2..]) {
            return Some((signed(v), i + 2 + used));
        }
    }
    let int_digits = count_digits(&bytes[i..], 10);
    let mut end = i + int_digits;
    let mut frac_digits = 0;
    if bytes.get(end) == Some(&b'.') {
        frac_digits = count_digits(&bytes[end + 1..], 10);
        if int_digits + frac_digits > 0 {
            end += 1 + frac_digits;
        }
    }
    if int_digits + frac_digits == 0 {
        return None;
    }
    end += exponent_len(&bytes[end..], b'e');
    // The slice is plain ASCII digits, '.', sign and exponent: Rust parses it.
    let value: f64 = text[sign_at..end].parse().ok()?;
    Some((value, end))
}

/// Hex mantissa and optional binary exponent after `0x`; `None` without a
/// single hex digit (then `strtod` reads just the `0`).
fn hex_float(bytes: &[u8]) -> Option<(f64, usize)> {
    let mut value = 0.0f64;
    let mut scale = 0i32;
    let mut digits = 0;
    let mut i = 0;
    let mut seen_point = false;
    while let Some(&b) = bytes.get(i) {
        if b == b'.' && !seen_point {
            seen_point = true;
        } else if let Some(d) = char::from(b).to_digit(16) {
            value = value * 16.0 + f64::from(d);
            if seen_point {
                scale -= 4;
            }
            digits += 1;
        } else {
            break;
        }
        i += 1;
    }
    if digits == 0 {
        return None;
    }
    let exp_len = exponent_len(&bytes[i..], b'p');
    if exp_len > 0 {
        let exp: i32 = std::str::from_utf8(&bytes[i + 1..i + exp_len])
            .ok()?
            .parse()
            .unwrap_or(if bytes[i + 1] == b'-' {
                i32::MIN / 2
            } else {
                i32::MAX / 2
            });
        scale = scale.saturating_add(exp);
    }
    Some((value * 2f64.powi(scale), i + exp_len))
}

/// Digits of `radix` at the start of `bytes`.
fn count_digits(bytes: &[u8], radix: u32) -> usize {
    bytes
        .iter()
        .take_while(|b| char::from(**b).is_digit(radix))
        .count()
}

/// Length of an exponent (`e-3`, `p+2`) at the start of `bytes`, or 0 when
/// the marker is not followed by digits (then it is not part of the number).
fn exponent_len(bytes: &[u8], marker: u8) -> usize {
    if !bytes
        .first()
        .is_some_and(|b| b.to_ascii_lowercase() == marker)
    {
        return 0;
    }
    let sign = usize::from(matches!(bytes.get(1), Some(b'+' | b'-')));
    let digits = count_digits(&bytes[1 + sign..], 10);
    if digits == 0 {
        0
    } else {
        1 + sign + digits
    }
}

#[cfg(test)]
mod tests {
    use super::strtod_prefix;

    #[test]
    fn strtod_prefix_reads_like_c() {
        let cases: &[(&str, Option<(f64, usize)>)] = &[
            ("1", Some((1.0, 1))),
            ("  .5x", Some((0.5, 4))),
            ("1.", Some((1.0, 2))),
            ("-2e1", Some((-20.0, 4))),
            ("3e", Some((3.0, 1))),
            ("3e+", Some((3.0, 1))),
            ("0x1p-3", Some((0.125, 6))),
            ("0x.8", Some((0.5, 4))),
            ("0x", Some((0.0, 1))),
            ("0xg", Some((0.0, 1))),
            ("INF", Some((f64::INFINITY, 3))),
            ("-infinity", Some((f64::NEG_INFINITY, 9))),
            (".", None),
            ("", None),
            ("+", None),
            ("x1", None),
        ];
        for (text, want) in cases {
            assert_eq!(strtod_prefix(text), *want, "input {text:?}");
        }
        let (nan, used) = strtod_prefix("nan(12)").unwrap();
        assert!(nan.is_nan());
        assert_eq!(used, 7);
    }
}
