//! Reading main.cf (Postfix: `readlline.c` `readllines`, `dict.c`
//! `dict_load_fp`, `split_nameval.c`).
//!
//! # Syntax (as Postfix reads it)
//! - A logical line is a line that starts with a non-space character, plus
//!   every following line that starts with white space (a continuation).
//!   Continuations are joined as they are, without the newline, so
//!   `a = b` followed by `  c` reads as `a = b  c`.
//! - Blank lines and comment lines (first non-space character `#`) are
//!   dropped wherever they appear, even between a line and its
//!   continuation, and never end a logical line.
//! - Each logical line is `name = value`; white space around the name and
//!   the value is removed. A later entry for the same name wins (with a
//!   warning when the values differ).
//! - Text that begins the file with white space has nothing to continue:
//!   Postfix warns and skips it, and so do we.
//!
//! # Errors
//! A logical line without a name or without `=` is a [`ConfigError::Syntax`]
//! naming the file and the line where the logical line starts, as Postfix's
//! fatal error does. The file is read whole, up to [`MAX_MAIN_CF`] bytes;
//! bytes that are not UTF-8 are replaced (they can only matter in values the
//! scheduler does not read).

use std::path::{Path, PathBuf};

use oqmgr::params::ConfigWarning;

use super::ConfigError;

/// Largest main.cf we read; a real one is a few kilobytes.
pub const MAX_MAIN_CF: u64 = 16 << 20;

/// One `name = value` entry of main.cf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MainCfEntry {
    /// Parameter name.
    pub name: String,
    /// Raw value, not yet `$name`-expanded.
    pub value: String,
    /// Line number (1-based) where the logical line starts.
    pub line: usize,
}

/// The parsed contents of one main.cf file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MainCf {
    /// The file the entries came from (for messages and figment metadata).
    pub path: PathBuf,
    /// Entries in file order; for a repeated name the last one counts.
    pub entries: Vec<MainCfEntry>,
    /// Postfix-style warnings found while reading (duplicate entries, and
    /// misplaced continuation text, whose `param` is empty).
    pub warnings: Vec<ConfigWarning>,
}

/// C's `isspace` in the C locale.
fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// Splits `name = value` (Postfix: `split_nameval`): the name runs up to
/// white space or `=`, white space around the name and the value is
/// dropped. The error is Postfix's wording.
pub fn split_nameval(text: &str) -> Result<(&str, &str), &'static str> {
    let text = text.trim_start_matches(is_c_space);
    let name_len = text
        .find(|c: char| is_c_space(c) || c == '=')
        .unwrap_or(text.len());
    if name_len == 0 {
        return Err("missing attribute name");
    }
    let Some(value) = text[name_len..]
        .trim_start_matches(is_c_space)
        .strip_prefix('=')
    else {
        return Err("missing '=' after attribute name");
    };
    Ok((&text[..name_len], value.trim_matches(is_c_space)))
}

impl MainCf {
    /// Reads and parses `path`.
    pub fn read(path: &Path) -> Result<MainCf, ConfigError> {
        let io = |source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        };
        let size = std::fs::metadata(path).map_err(io)?.len();
        if size > MAX_MAIN_CF {
            return Err(ConfigError::TooLarge {
                path: path.to_path_buf(),
                size,
            });
        }
        let bytes = std::fs::read(path).map_err(io)?;
        MainCf::parse(path, &String::from_utf8_lossy(&bytes))
    }

    /// Parses `text` as the contents of `path`.
    pub fn parse(path: &Path, text: &str) -> Result<MainCf, ConfigError> {
        let mut main_cf = MainCf {
            path: path.to_path_buf(),
            entries: Vec::new(),
            warnings: Vec::new(),
        };
        // The logical line being collected and the line it started on.
        let mut current: Option<(String, usize)> = None;
        for (index, physical) in text.split('\n').enumerate() {
            let trimmed = physical.trim_start_matches(is_c_space);
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let starts_with_space = physical.starts_with(is_c_space);
            match &mut current {
                Some((logical, _)) if starts_with_space => logical.push_str(physical),
                _ => {
                    if let Some((logical, line)) = current.take() {
                        main_cf.add(&logical, line)?;
                    }
                    current = Some((physical.to_string(), index + 1));
                }
            }
        }
        if let Some((logical, line)) = current {
            main_cf.add(&logical, line)?;
        }
        Ok(main_cf)
    }

    /// Adds one logical line (Postfix: `split_nameval` and the duplicate
    /// check of `dict_load_fp`).
    fn add(&mut self, logical: &str, line: usize) -> Result<(), ConfigError> {
        let path = self.path.display().to_string();
        if logical.starts_with(is_c_space) {
            let shown: String = logical.chars().take(30).collect();
            let more = if logical.chars().count() > 30 {
                "..."
            } else {
                ""
            };
            self.warnings.push(ConfigWarning {
                param: String::new(),
                message: format!(
                    "{path}: logical line must not start with whitespace: \"{shown}{more}\""
                ),
            });
            return Ok(());
        }
        let (name, value) = split_nameval(logical).map_err(|message| ConfigError::Syntax {
            path: self.path.clone(),
            line,
            message: message.to_string(),
            text: logical.to_string(),
        })?;
        if let Some(old) = self.entries.iter().rev().find(|e| e.name == name) {
            if old.value != value {
                self.warnings.push(ConfigWarning {
                    param: name.to_string(),
                    message: format!(
                        "{path}, line {line}: overriding earlier entry: {name}={}",
                        old.value
                    ),
                });
            }
        }
        self.entries.push(MainCfEntry {
            name: name.to_string(),
            value: value.to_string(),
            line,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<MainCf, ConfigError> {
        MainCf::parse(Path::new("/x/main.cf"), text)
    }

    fn pairs(m: &MainCf) -> Vec<(String, String, usize)> {
        m.entries
            .iter()
            .map(|e| (e.name.clone(), e.value.clone(), e.line))
            .collect()
    }

    #[test]
    fn logical_lines_join_continuations_across_comments() {
        let text = "# c\n\na = b\n\n# mid\n  c\n\t d  \nx=1\r\n   \n#\ny =\n";
        let m = parse(text).unwrap();
        let want = [
            ("a".to_string(), "b  c\t d".to_string(), 3),
            ("x".to_string(), "1".to_string(), 8),
            ("y".to_string(), String::new(), 11),
        ];
        assert_eq!(pairs(&m), want);
        assert!(m.warnings.is_empty());
    }

    #[test]
    fn leading_whitespace_at_start_is_skipped_with_a_warning() {
        let m = parse("  orphan = 1\n  more\nreal = 2\n").unwrap();
        assert_eq!(pairs(&m), [("real".to_string(), "2".to_string(), 3)]);
        assert_eq!(
            m.warnings[0].message,
            "/x/main.cf: logical line must not start with whitespace: \"  orphan = 1  more\""
        );
    }

    #[test]
    fn duplicates_warn_when_values_differ() {
        let m = parse("a = 1\na = 1\na = 2\n").unwrap();
        assert_eq!(m.warnings.len(), 1);
        assert_eq!(
            m.warnings[0].message,
            "/x/main.cf, line 3: overriding earlier entry: a=1"
        );
    }

    #[test]
    fn syntax_errors_name_file_and_line() {
        let e = parse("a = 1\n\nbroken line\n  continued\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/x/main.cf, line 3: missing '=' after attribute name: \"broken line  continued\""
        );
        let e = parse("= 1\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/x/main.cf, line 1: missing attribute name: \"= 1\""
        );
    }
}
