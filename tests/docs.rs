//! The help texts and man/ferry.1 describe the same commands and options,
//! the man page is clean roff, and help fits a terminal.

use std::collections::BTreeSet;
use std::process::Command;

use crate::common::{Env, require_tool};

const COMMANDS: &[&str] = &[
    "inspect", "tags", "catalog", "digest", "login", "logout", "pull", "unpack", "push", "copy",
    "delete",
];

/// Every `--long-option` in `text`.
fn long_options(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("--") {
        let start = i + at;
        let before_ok =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'-');
        let mut end = start + 2;
        while end < bytes.len() && (bytes[end].is_ascii_lowercase() || bytes[end] == b'-') {
            end += 1;
        }
        let name = text[start..end].trim_end_matches('-');
        if before_ok && name.len() > 2 {
            found.insert(name.to_string());
        }
        i = end.max(start + 2);
    }
    found
}

fn man_text() -> String {
    let roff = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/man/ferry.1"))
        .expect("read man/ferry.1");
    roff.replace("\\-", "-")
}

fn all_help(env: &Env) -> String {
    let mut text = env.run(["--help"]).ok().stdout.clone();
    for c in COMMANDS {
        let run = env.run([c, "--help"]);
        run.ok();
        assert!(
            run.stdout.starts_with(&format!("Usage: ferry {c}")),
            "{c} --help:\n{}",
            run.stdout
        );
        text.push_str(&run.stdout);
    }
    text
}

#[test]
fn help_and_man_page_list_the_same_options() {
    let env = Env::new();
    let help = long_options(&all_help(&env));
    let man = long_options(&man_text());
    let missing_in_man: Vec<_> = help.difference(&man).collect();
    let missing_in_help: Vec<_> = man.difference(&help).collect();
    assert!(missing_in_man.is_empty(), "in --help but not in man/ferry.1: {missing_in_man:?}");
    assert!(missing_in_help.is_empty(), "in man/ferry.1 but not in --help: {missing_in_help:?}");
}

#[test]
fn help_and_man_page_list_the_same_commands() {
    let env = Env::new();
    let help = env.run(["--help"]).ok().stdout.clone();
    let man = man_text();
    for c in COMMANDS {
        assert!(help.contains(&format!("\n  {c} ")), "{c} missing from --help");
        assert!(man.contains(&format!(".BI {c} ")), "{c} missing from man/ferry.1 COMMANDS");
    }
}

#[test]
fn help_fits_80_columns() {
    let env = Env::new();
    for line in all_help(&env).lines() {
        assert!(line.chars().count() <= 80, "help line wider than 80 columns: {line}");
    }
}

#[test]
fn man_page_is_clean_roff() {
    let mandoc = require_tool("mandoc", "mandoc");
    let out = Command::new(mandoc)
        .args(["-Tlint", "-W", "warning"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/man/ferry.1"))
        .output()
        .expect("run mandoc");
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && report.trim().is_empty(), "mandoc -Tlint:\n{report}");
}

#[test]
fn version_and_usage_errors() {
    let env = Env::new();
    let v = env.run(["--version"]);
    assert_eq!(v.ok().stdout.trim(), format!("ferry {}", env!("CARGO_PKG_VERSION")));
    let bad = env.run(["frobnicate"]);
    bad.expect_code(2);
    assert!(bad.stderr.starts_with("ferry: unknown command"), "{}", bad.stderr);
    assert!(bad.stdout.is_empty());
    let bad_ref = env.run(["inspect", "Upper/Case"]);
    bad_ref.expect_code(2);
    assert_eq!(bad_ref.stderr.lines().count(), 1, "{}", bad_ref.stderr);
}
