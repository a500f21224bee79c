//! `$name` expansion of parameter values (Postfix: `mac_parse.c`,
//! `mac_expand.c`, `compat_level.c`, as used by `mail_conf_eval`).
//!
//! A value may refer to other parameters; every reference is replaced by
//! the referenced value, itself expanded (recursively, as daemons do).
//!
//! # Syntax
//! - `$name`, `${name}`, `$(name)`: the value of `name`; empty when unset.
//!   A bare name is letters, digits and `_`. `$$` is a literal `$`.
//! - `${name?text}`: `text` (expanded) when `name` is set and not empty,
//!   else nothing. `${name:text}`: `text` when `name` is unset or empty.
//! - `${name?{text1}:{text2}}`: one or the other (Postfix 3.0+); white space
//!   is allowed around the braces and the operators.
//! - `${{left} op {right}?{a}:{b}}`: relational test, `op` one of `==`,
//!   `!=`, `<`, `<=`, `>=`, `>`; numbers compare numerically when both sides
//!   are all digits, else as byte strings. The suffix form `<level` (and the
//!   other operators followed by `level`) compares compatibility levels such
//!   as `3.6`, as in the `relay_domains` and `smtputf8_enable` defaults.
//!   Without `?`/`:` the test itself expands to `true` or nothing.
//!
//! # Errors
//! Postfix stops with "macro processing error" on a syntax error; we return
//! an [`ExpandError`] with the same detail Postfix logs, and the caller
//! drops that one parameter with a warning.
//!
//! # Limits
//! Nesting deeper than 100 levels (a value that refers to itself), more
//! than [`MAX_STEPS`] references in one value, or a result longer than
//! [`MAX_LEN`] bytes is an error: Postfix would loop or grow without bound.

use std::cmp::Ordering;
use std::fmt;

/// Deepest reference nesting, as in Postfix (`unreasonable macro call
/// nesting`).
const MAX_DEPTH: usize = 100;

/// Most references evaluated while expanding one value; stops the
/// exponential case `a = $b$b`, `b = $c$c`, … even when it expands to
/// nothing.
pub const MAX_STEPS: usize = 100_000;

/// Longest expanded value, in bytes.
pub const MAX_LEN: usize = 1 << 20;

/// Characters Postfix skips as white space inside expressions.
const WHITESPACE: &[char] = &[' ', '\t', '\r', '\n'];

/// Characters that may form a relational operator (for diagnostics).
const OPERATOR_CHARS: &[char] = &[
    '<', '>', '!', '=', '?', '+', '-', '*', '/', '~', '&', '|', '%',
];

/// Why a value could not be expanded; the text follows Postfix's warnings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpandError(pub String);

impl fmt::Display for ExpandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ExpandError {}

/// Expands `value`, looking names up with `lookup` (`None` = unset).
pub fn expand<'a, F>(value: &str, lookup: F) -> Result<String, ExpandError>
where
    F: Fn(&str) -> Option<&'a str>,
{
    let mut ctx = Expansion {
        lookup,
        out: String::new(),
        depth: 0,
        steps: 0,
    };
    ctx.parse(value)?;
    Ok(ctx.out)
}

/// The state of one expansion.
struct Expansion<F> {
    /// Parameter lookup.
    lookup: F,
    /// The result so far.
    out: String,
    /// Current reference nesting.
    depth: usize,
    /// References evaluated so far.
    steps: usize,
}

fn err<T>(message: String) -> Result<T, ExpandError> {
    Err(ExpandError(message))
}

/// At most `n` characters of `s`, for diagnostics.
fn head(s: &str, n: usize) -> &str {
    s.char_indices().nth(n).map_or(s, |(i, _)| &s[..i])
}

/// `s` without leading Postfix white space.
fn skip_ws(s: &str) -> &str {
    s.trim_start_matches(WHITESPACE)
}

/// If `s` is white space then `{`, the balanced `{...}` payload and the
/// text after it (trailing white space skipped). `Ok(None)` when no `{`
/// follows; an error when the braces do not balance.
fn curly(s: &str) -> Result<Option<(&str, &str)>, ExpandError> {
    let t = skip_ws(s);
    if !t.starts_with('{') {
        return Ok(None);
    }
    let mut level = 0usize;
    for (i, c) in t.char_indices() {
        match c {
            '{' => level += 1,
            '}' => {
                level -= 1;
                if level == 0 {
                    return Ok(Some((&t[1..i], skip_ws(&t[i + 1..]))));
                }
            }
            _ => {}
        }
    }
    err(format!("unbalanced {{}} in attribute expression: \"{t}\""))
}

impl<'a, F> Expansion<F>
where
    F: Fn(&str) -> Option<&'a str>,
{
    /// Appends text to the result, within [`MAX_LEN`].
    fn emit(&mut self, text: &str) -> Result<(), ExpandError> {
        if self.out.len() + text.len() > MAX_LEN {
            return err(format!("expansion result longer than {MAX_LEN} bytes"));
        }
        self.out.push_str(text);
        Ok(())
    }

    /// Splits `text` into literal text and references (`mac_parse`) and
    /// expands each reference into the result.
    fn parse(&mut self, text: &str) -> Result<(), ExpandError> {
        let mut rest = text;
        while let Some(dollar) = rest.find('$') {
            self.emit(&rest[..dollar])?;
            let after = &rest[dollar + 1..];
            if let Some(tail) = after.strip_prefix('$') {
                self.emit("$")?;
                rest = tail;
                continue;
            }
            let (expr, tail) = match after.chars().next() {
                Some(open @ ('{' | '(')) => {
                    let close = if open == '{' { '}' } else { ')' };
                    let mut level = 0usize;
                    let mut end = None;
                    for (i, c) in after.char_indices() {
                        if c == open {
                            level += 1;
                        } else if c == close {
                            level -= 1;
                            if level == 0 {
                                end = Some(i);
                                break;
                            }
                        }
                    }
                    let Some(end) = end else {
                        return err(format!("truncated macro reference: \"{text}\""));
                    };
                    (&after[1..end], &after[end + 1..])
                }
                _ => {
                    let len = after
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(after.len());
                    (&after[..len], &after[len..])
                }
            };
            if expr.is_empty() {
                return err(format!("empty macro name: \"{text}\""));
            }
            self.reference(expr)?;
            rest = tail;
        }
        self.emit(rest)
    }

    /// Expands `text` into a separate string (an operand of a relational
    /// test), sharing the nesting and work limits.
    fn expand_apart(&mut self, text: &str) -> Result<String, ExpandError> {
        let saved = std::mem::take(&mut self.out);
        let result = self.parse(text);
        let operand = std::mem::replace(&mut self.out, saved);
        result.map(|()| operand)
    }

    /// Evaluates one reference: the text between `${` and `}` or after `$`
    /// (`mac_expand_callback`).
    fn reference(&mut self, expr: &str) -> Result<(), ExpandError> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return err(format!("more than {MAX_STEPS} macro references"));
        }
        if self.depth >= MAX_DEPTH {
            return err(format!("unreasonable macro call nesting: \"{expr}\""));
        }
        self.depth += 1;
        let result = self.reference_inner(expr);
        self.depth -= 1;
        result
    }

    fn reference_inner(&mut self, expr: &str) -> Result<(), ExpandError> {
        // `value` is what the name or test yields (None = unset); `op` is
        // the conditional operator, if any, and `rest` what follows it.
        let (value, op, rest): (Option<String>, Option<char>, &str) = match curly(expr)? {
            Some((left, after)) => {
                let (truth, after) = self.relational(left, after)?;
                let value = Some(if truth { "true" } else { "" }.to_string());
                match after.chars().next() {
                    None => (value, None, ""),
                    Some(c @ ('?' | ':')) => (value, Some(c), &after[1..]),
                    Some(_) => {
                        let at = head(after, 20);
                        return err(format!("\"?\" or \":\" expected at: \"...}}>>>{at}\""));
                    }
                }
            }
            None => {
                let start = skip_ws(expr);
                let name_len = start
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(start.len());
                let name = &start[..name_len];
                let after = skip_ws(&start[name_len..]);
                let value = (self.lookup)(name).map(str::to_string);
                match after.chars().next() {
                    None => (value, None, ""),
                    Some(c @ ('?' | ':')) => (value, Some(c), &after[1..]),
                    Some(_) => {
                        let done = expr.len() - start.len() + name_len;
                        let at = head(&expr[done..], 20);
                        return err(format!(
                            "attribute name syntax error at: \"...{}>>>{at}\"",
                            &expr[..done]
                        ));
                    }
                }
            }
        };
        let non_empty = value.as_deref().is_some_and(|v| !v.is_empty());
        match op {
            None => match value {
                // Recursive expansion of the value, as mail_conf_eval does.
                Some(v) if !v.is_empty() => self.parse(&v),
                _ => Ok(()),
            },
            Some('?') => {
                let (if_true, rest) = match curly(rest)? {
                    Some(found) => found,
                    None => (rest, ""),
                };
                if non_empty {
                    self.parse(if_true)?;
                }
                if rest.is_empty() {
                    return Ok(());
                }
                let Some(rest) = rest.strip_prefix(':') else {
                    let at = head(rest, 20);
                    return err(format!("\":\" expected at: \"...{if_true}}}>>>{at}\""));
                };
                self.if_false(non_empty, rest)
            }
            Some(_) => self.if_false(non_empty, rest),
        }
    }

    /// The `:text` part: expanded only when the value was unset or empty.
    fn if_false(&mut self, non_empty: bool, rest: &str) -> Result<(), ExpandError> {
        let (if_false, rest) = match curly(rest)? {
            Some(found) => found,
            None => (rest, ""),
        };
        if !non_empty {
            self.parse(if_false)?;
        }
        if !rest.is_empty() {
            let at = head(rest, 20);
            return err(format!("unexpected input at: \"...{if_false}}}>>>{at}\""));
        }
        Ok(())
    }

    /// Parses and evaluates `{left} op {right}`, given `left` and the text
    /// after it; returns the truth value and the text after `{right}`.
    fn relational<'s>(
        &mut self,
        left: &str,
        after: &'s str,
    ) -> Result<(bool, &'s str), ExpandError> {
        let op_len = after
            .find(|c: char| !OPERATOR_CHARS.contains(&c))
            .unwrap_or(after.len());
        let op = &after[..op_len];
        if !matches!(op, "==" | "!=" | "<" | "<=" | ">=" | ">") {
            let at = head(after, 20);
            return err(format!(
                "\"==\" or \"!=\" or \"<\" or \"<=\" or \">=\" or \">\" expected at: \"...{left}}}>>>{at}\""
            ));
        }
        let mut rest = &after[op_len..];
        let suffix_len = rest
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        let suffix = &rest[..suffix_len];
        if !suffix.is_empty() && suffix != "level" {
            return err(format!("bad operator suffix at: \"...{op}>>>{suffix}\""));
        }
        rest = &rest[suffix_len..];
        let Some((right, rest)) = curly(rest)? else {
            let at = head(rest, 20);
            return err(format!(
                "\"{{expression}}\" expected at: \"...{{{left}}} {op}>>>{at}\""
            ));
        };
        let left = self.expand_apart(left)?;
        let right = self.expand_apart(right)?;
        let order = if suffix == "level" {
            compat_level(&left)?.cmp(&compat_level(&right)?)
        } else if all_digits(&left) && all_digits(&right) {
            let number = |s: &str| {
                s.parse::<i64>()
                    .or_else(|_| err(format!("mac_exp_eval: bad conversion: {s}")))
            };
            number(&left)?.cmp(&number(&right)?)
        } else {
            left.as_bytes().cmp(right.as_bytes())
        };
        let truth = match op {
            "==" => order == Ordering::Equal,
            "!=" => order != Ordering::Equal,
            "<" => order == Ordering::Less,
            "<=" => order != Ordering::Greater,
            ">=" => order != Ordering::Less,
            _ => order == Ordering::Greater,
        };
        Ok((truth, rest))
    }
}

/// Non-empty and only ASCII digits (Postfix's `alldig`).
fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// A compatibility level `major[.minor[.patch]]` as a comparable triple.
fn compat_level(s: &str) -> Result<(u32, u32, u32), ExpandError> {
    let mut parts = [0u32; 3];
    for (index, part) in s.split('.').enumerate() {
        let n = (index < 3 && all_digits(part))
            .then(|| part.parse::<u32>().ok())
            .flatten();
        let Some(n) = n else {
            return err(format!("malformed compatibility level syntax: \"{s}\""));
        };
        parts[index] = n;
    }
    Ok((parts[0], parts[1], parts[2]))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn run(vars: &[(&str, &str)], value: &str) -> Result<String, ExpandError> {
        let map: BTreeMap<&str, &str> = vars.iter().copied().collect();
        expand(value, |name| map.get(name).copied())
    }

    #[test]
    fn expands_like_mac_expand() {
        let vars = [
            ("a", "A"),
            ("e", ""),
            ("n", "$a-$e"),
            ("lvl", "3.6"),
            ("two", "2"),
        ];
        let cases: &[(&str, &str)] = &[
            ("x$a y", "xA y"),
            ("${a}${a}", "AA"),
            ("$(a)", "A"),
            ("$$a", "$a"),
            ("$n", "A-"),
            ("$unset.", "."),
            ("${a?yes}", "yes"),
            ("${e?yes}", ""),
            ("${unset?yes}", ""),
            ("${a:no}", ""),
            ("${e:no}", "no"),
            ("${a?{y}:{n}}", "y"),
            ("${unset ? {y} : {n}}", "n"),
            ("${a?{$n}:{n}}", "A-"),
            ("${a??x:{b}y}", "?x:{b}y"),
            ("${a? x}", " x"),
            ("${{$a} == {A}?{eq}:{ne}}", "eq"),
            ("${{10} > {9}?{num}:{str}}", "num"),
            ("${{10a} > {9}?{num}:{str}}", "str"),
            ("${{$a} != {A}}", ""),
            ("${{$a} == {A}}", "true"),
            ("${{$lvl} <level {2} ? {old} : {new}}", "new"),
            ("${{$two} <level {3.6} ? {old} : {new}}", "old"),
        ];
        for (value, want) in cases {
            assert_eq!(run(&vars, value).as_deref(), Ok(*want), "value {value:?}");
        }
    }

    #[test]
    fn reports_syntax_errors() {
        let vars = [("a", "A"), ("loop", "x$loop")];
        let cases: &[(&str, &str)] = &[
            ("${a", "truncated macro reference"),
            ("$", "empty macro name"),
            ("$-x", "empty macro name"),
            ("${a b}", "attribute name syntax error"),
            ("${a?{x}y}", "\":\" expected"),
            ("${a:{x}y}", "unexpected input"),
            ("${a?{x}", "truncated macro reference"),
            ("${{a} = {b}}", "expected at"),
            ("${{a} ==x {b}}", "bad operator suffix"),
            ("${{a} == b}", "\"{expression}\" expected"),
            ("${{x} <level {2}}", "malformed compatibility level"),
            ("$loop", "unreasonable macro call nesting"),
        ];
        for (value, want) in cases {
            let got = run(&vars, value).expect_err(value);
            assert!(got.0.contains(want), "value {value:?}: {got}");
        }
    }

    #[test]
    fn exponential_expansion_is_bounded() {
        let names: Vec<String> = (0..40).map(|i| format!("v{i}")).collect();
        let values: Vec<String> = (0..40).map(|i| format!("$v{}$v{}", i + 1, i + 1)).collect();
        let map: BTreeMap<&str, &str> = names
            .iter()
            .map(String::as_str)
            .zip(values.iter().map(String::as_str))
            .collect();
        let got = expand("$v0", |n| map.get(n).copied());
        assert!(got.is_err());
    }
}
