//! Messages to people: verbosity, stderr lines, and cleaning untrusted text.
//!
//! stdout is for results only; everything here goes to stderr. The level is
//! set once from `-q`/`-v`/`-vv` and read by the macros, which prefix every
//! line with `ferry: `. Nothing here ever sees a secret: callers redact.

use std::sync::atomic::{AtomicI8, Ordering};

static LEVEL: AtomicI8 = AtomicI8::new(0);

/// -1 quiet, 0 normal, 1 verbose (-v), 2 debug (-vv).
pub fn set_level(level: i8) {
    LEVEL.store(level, Ordering::Relaxed);
}

pub fn level() -> i8 {
    LEVEL.load(Ordering::Relaxed)
}

/// Prints `ferry: MSG` to stderr unless -q.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => {
        if $crate::msg::level() >= 0 { eprintln!("ferry: {}", format_args!($($arg)*)) }
    };
}

/// Prints `ferry: warning: MSG` to stderr unless -q.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => {
        if $crate::msg::level() >= 0 {
            eprintln!("ferry: warning: {}", format_args!($($arg)*))
        }
    };
}

/// Prints `ferry: MSG` to stderr under -v and -vv.
#[macro_export]
macro_rules! verbose {
    ($($arg:tt)*) => {
        if $crate::msg::level() >= 1 { eprintln!("ferry: {}", format_args!($($arg)*)) }
    };
}

/// Prints `ferry: MSG` to stderr under -vv only.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => {
        if $crate::msg::level() >= 2 { eprintln!("ferry: {}", format_args!($($arg)*)) }
    };
}

/// Server-supplied text made safe to print on one line: control characters
/// (terminal escapes, newlines) become spaces, and it is cut at `max` chars.
pub fn clean(text: &str, max: usize) -> String {
    let mut out: String =
        text.chars().take(max).map(|c| if c.is_control() { ' ' } else { c }).collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_strips_escapes_and_cuts() {
        assert_eq!(clean("bad\x1b[31m red\nline", 100), "bad [31m red line");
        assert_eq!(clean("abcdef", 3), "abc…");
    }
}
