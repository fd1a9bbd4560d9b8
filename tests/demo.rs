//! `make demo` stays true: its script runs to the end with this build.

use std::process::Command;
use std::time::Duration;

use crate::common::{ferry_bin, output_within, require_tool};

#[test]
fn the_demo_runs_and_cleans_up() {
    require_tool("docker-registry", "docker-registry");
    require_tool("openssl", "openssl");
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("bash");
    cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/demo.sh"))
        .env("FERRY", ferry_bin())
        .env("TMPDIR", tmp.path());
    let run = output_within(cmd, Duration::from_secs(120));
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("hello from a ferry image"), "{run:?}");
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "the demo left files behind: {left:?}");
}
