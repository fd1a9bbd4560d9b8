//! What packagers and air-gapped users get: the static binary run alone,
//! and the bash completion kept in step with the help texts.
//!
//! The static binary is copied alone into an empty directory and run there,
//! rooted in it, with an empty environment, so no shared library, CA bundle
//! or configuration file of the build machine can be reached. It needs
//! `make static` first, so that test is ignored by `cargo test`; `make
//! static-check` builds the binary and runs it with `--ignored`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::{Env, Run, ferry_bin, output_within, require_tool};
use crate::harness::{Auth, ImageSpec, Registry, sha256};

/// The binary `make static` builds; `FERRY_STATIC_BIN` overrides it.
fn static_bin() -> PathBuf {
    match std::env::var_os("FERRY_STATIC_BIN") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/x86_64-unknown-linux-musl/release/ferry"),
    }
}

/// Runs `/ferry ARGS` inside `root` as its root directory with no
/// environment at all: chroot as root, else a user namespace that maps us
/// to root (`unshare -r`), which permits the chroot.
fn run_rooted(root: &Path, args: &[&str]) -> Run {
    let mut cmd = if is_root() {
        let mut c = Command::new(require_tool("chroot", "coreutils"));
        c.arg(root);
        c
    } else {
        let mut c = Command::new(require_tool("unshare", "util-linux"));
        c.arg("--map-root-user").arg(format!("--root={}", root.display()));
        c
    };
    cmd.env_clear().arg("/ferry").args(args);
    output_within(cmd, Duration::from_secs(60))
}

fn is_root() -> bool {
    // /proc/self/status holds "Uid: REAL EFFECTIVE ..."; no libc call needed.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        .unwrap_or(false)
}

/// A directory holding only `binary` as /ferry and the registry's CA.
fn lonely_root(binary: &Path, reg: &Registry) -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("temporary directory");
    std::fs::copy(binary, root.path().join("ferry")).expect("copy the binary");
    std::fs::copy(reg.ca_cert(), root.path().join("ca.crt")).expect("copy the CA");
    root
}

#[test]
#[ignore = "needs `make static`; run by `make static-check`"]
fn static_binary_pulls_alone_from_a_tls_registry() {
    let binary = static_bin();
    assert!(binary.is_file(), "{} missing: run `make static`", binary.display());
    let reg = Registry::start(Auth::None);
    let p = reg.push("air/gap:1", &ImageSpec::small("static").with_random_layer("data", 3000));

    // The check is only worth something if a dynamic binary fails here:
    // the ordinary host build finds no loader and no libc in this root.
    let host = lonely_root(&ferry_bin(), &reg);
    let dynamic = run_rooted(host.path(), &["--version"]);
    assert_ne!(dynamic.code, 0, "a dynamic binary ran in the empty root: {dynamic:?}");

    // The real job over TLS, trusting only the CA given on the command
    // line: pull the image into a layout inside the root.
    let root = lonely_root(&binary, &reg);
    let pull = ["--ca-cert", "/ca.crt", "pull", &p.reference, "/layout"];
    run_rooted(root.path(), &pull).ok();
    let layout = root.path().join("layout");
    let index = std::fs::read_to_string(layout.join("index.json")).expect("index.json");
    assert!(index.contains(&p.digest), "{index}");
    let img = &p.images[0];
    let mut blobs = vec![(p.digest.clone(), p.raw.len() as u64)];
    blobs.push((img.config_digest.clone(), img.config.len() as u64));
    blobs.extend(img.layers.iter().cloned());
    for (digest, size) in blobs {
        let bytes = std::fs::read(layout.join("blobs/sha256").join(&digest[7..]))
            .unwrap_or_else(|e| panic!("blob {digest} missing from the layout: {e}"));
        assert_eq!((sha256(&bytes), bytes.len() as u64), (digest, size));
    }
    // And make a root filesystem of it, as on a node without a registry.
    run_rooted(root.path(), &["unpack", "/layout", "/rootfs"]).ok();
    let hello = std::fs::read_to_string(root.path().join("rootfs/hello")).expect("rootfs/hello");
    assert_eq!(hello, "hello from static\n");
    assert_eq!(
        std::fs::metadata(root.path().join("rootfs/data")).expect("rootfs/data").len(),
        3000
    );
    let inspect = run_rooted(root.path(), &["--ca-cert", "/ca.crt", "inspect", &p.reference]);
    assert!(inspect.ok().stdout.contains(&format!("digest {}\n", p.digest)), "{inspect:?}");
}

/// The commands `ferry --help` lists: the first word of each line of its
/// "Commands:" section indented by two spaces (deeper lines continue a
/// description).
fn help_commands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.strip_prefix("  ").filter(|rest| !rest.starts_with(' ')))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// The long options a help text's option table defines: on each line that
/// starts with an option, the options before the first other word (the
/// description may name options of other commands).
fn long_options(help: &str) -> BTreeSet<String> {
    help.lines()
        .filter(|l| l.trim_start().starts_with('-'))
        .flat_map(|l| {
            l.split_whitespace()
                .map(|w| w.trim_end_matches(','))
                .take_while(|w| w.starts_with('-'))
                .filter(|w| w.starts_with("--"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// What the completion offers for the command line `words`, the last one
/// being completed.
fn complete(words: &[&str]) -> Vec<String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/completions/ferry.bash");
    let array: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        "source '{script}'; COMP_WORDS=({}); COMP_CWORD={}; _ferry; \
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        array.join(" "),
        words.len() - 1
    );
    let out = Command::new(require_tool("bash", "bash"))
        .args(["--norc", "--noprofile", "-c", &program])
        .output()
        .expect("run bash");
    assert!(out.status.success(), "bash: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

#[test]
fn completion_offers_every_command_and_option_of_the_help() {
    let env = Env::new();
    let help = env.run(["--help"]).ok().stdout.clone();
    let commands = help_commands(&help);
    assert!(commands.len() >= 6, "no commands found in --help:\n{help}");
    let offered = complete(&["ferry", ""]);
    let missing: Vec<_> = commands.iter().filter(|c| !offered.contains(c)).collect();
    assert!(missing.is_empty(), "commands not completed by completions/ferry.bash: {missing:?}");

    // After each command, `--` offers the global options and its own.
    let global = long_options(&help);
    for c in commands.iter().filter(|c| *c != "help") {
        let mut options = global.clone();
        options.extend(long_options(&env.run([c.as_str(), "--help"]).ok().stdout));
        let offered = complete(&["ferry", c, "--"]);
        let missing: Vec<_> = options.iter().filter(|o| !offered.contains(o)).collect();
        assert!(
            missing.is_empty(),
            "`ferry {c} --<TAB>` in completions/ferry.bash lacks {missing:?}"
        );
    }
}

#[test]
fn completion_offers_what_fits_where_the_cursor_is() {
    assert_eq!(complete(&["ferry", "ins"]), ["inspect"]);
    assert_eq!(complete(&["ferry", "--ca-cert", "x.pem", "lo"]), ["login", "logout"]);
    assert_eq!(complete(&["ferry", "inspect", "--ra"]), ["--raw"]);
    // --raw belongs to inspect alone.
    assert!(complete(&["ferry", "tags", "--r"]).iter().all(|o| o != "--raw"));
    assert_eq!(complete(&["ferry", "inspect", "--arch", "linux/arm64/"]), ["linux/arm64/v8"]);
    let files = complete(&["ferry", "--ca-cert", concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.t")]);
    assert_eq!(files, [concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")]);
}
