//! The layout on disk survives what happens to machines: a pull killed at
//! any moment leaves only verified blobs under final names and the next run
//! completes; a read-only layout fails cleanly.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::{Env, output_within, require_tool};
use crate::harness::{Auth, ImageSpec, Registry, sha256};

/// Every file under `blobs/` holds exactly the bytes its name promises.
#[track_caller]
fn assert_blobs_verified(layout: &Path) {
    let Ok(dirs) = fs::read_dir(layout.join("blobs")) else { return };
    for alg in dirs {
        let alg = alg.unwrap();
        for blob in fs::read_dir(alg.path()).unwrap() {
            let blob = blob.unwrap();
            let name = format!(
                "{}:{}",
                alg.file_name().to_string_lossy(),
                blob.file_name().to_string_lossy()
            );
            let bytes = fs::read(blob.path()).unwrap();
            assert_eq!(sha256(&bytes), name, "torn or wrong blob under its final name");
        }
    }
    if let Ok(index) = fs::read(layout.join("index.json")) {
        serde_json::from_slice::<serde_json::Value>(&index).expect("index.json is whole JSON");
    }
}

#[test]
fn sigkill_at_random_moments_never_leaves_a_torn_layout() {
    let reg = Registry::start(Auth::None);
    let spec = ImageSpec::small("killed")
        .with_random_layer("one", 24 << 20)
        .with_random_layer("two", 24 << 20);
    let pushed = reg.push("kill/me:1", &spec);
    let env = Env::new();
    let layout = env.path().join("layout");
    let args = [
        "--ca-cert",
        reg.ca_cert().to_str().unwrap(),
        "-q",
        "pull",
        &pushed.reference,
        layout.to_str().unwrap(),
    ];

    // How long an undisturbed pull takes, to spread the kills over it.
    let probe = env.path().join("probe");
    let start = Instant::now();
    let mut probe_args = args.to_vec();
    let probe_str = probe.to_str().unwrap().to_string();
    *probe_args.last_mut().unwrap() = &probe_str;
    env.run(&probe_args).ok();
    let span = start.elapsed().as_micros().max(1000) as u64;

    let mut seed = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    println!("kill seed {seed}, pull takes {span} µs");
    for round in 0..20 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let after = Duration::from_micros(seed % span);
        let mut child =
            env.command(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        std::thread::sleep(after);
        let _ = child.kill();
        child.wait().unwrap();
        assert_blobs_verified(&layout);
        println!("round {round}: killed after {after:?}");
    }

    let run = env.run(args);
    run.ok();
    assert_blobs_verified(&layout);
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], pushed.digest, "{index:#}");
    // Nothing half-done is left behind once a run completes.
    let partial = layout.join(".ferry/partial");
    let left: Vec<_> = fs::read_dir(&partial).map(|d| d.collect()).unwrap_or_default();
    assert!(left.is_empty(), "partial files left: {left:?}");
}

#[test]
fn a_read_only_layout_fails_cleanly() {
    require_tool("unshare", "util-linux");
    let reg = Registry::start(Auth::None);
    let pushed = reg.push("ro/img:1", &ImageSpec::small("read-only"));
    let env = Env::new();
    let mnt = env.path().join("ro");
    fs::create_dir_all(&mnt).unwrap();
    // Root ignores permission bits, so a read-only mount in a private
    // namespace stands for a read-only file system.
    let script = r#"mount -t tmpfs tmpfs "$1" && mkdir "$1/layout" && mount -o remount,ro "$1" || exit 99
"$2" --ca-cert "$4" pull "$3" "$1/layout"; echo "rc=$?"
find "$1/layout" | sort"#;
    let mut cmd = Command::new("unshare");
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", env.path())
        .args(["-m", "sh", "-c", script, "sh"])
        .arg(&mnt)
        .arg(crate::common::ferry_bin())
        .arg(&pushed.reference)
        .arg(reg.ca_cert());
    let run = output_within(cmd, Duration::from_secs(60));
    assert!(run.stdout.contains("rc=1\n"), "{run:?}");
    assert!(run.stderr.contains("Read-only file system"), "{run:?}");
    let errors: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("ferry: ")).collect();
    assert_eq!(errors.len(), 1, "{run:?}");
    let listing: Vec<&str> =
        run.stdout.lines().skip_while(|l| !l.starts_with("rc=")).skip(1).collect();
    assert_eq!(listing.len(), 1, "something was written: {listing:?}");
}

/// Two pulls of different images into one layout at once: both succeed,
/// each keeps its index.json entry, and no blob is torn.
#[test]
fn concurrent_pulls_of_different_images_share_one_layout() {
    let reg = Registry::start(Auth::None);
    let a = reg.push("two/a:1", &ImageSpec::small("con-a").with_random_layer("a", 4 << 20));
    let b = reg.push("two/b:1", &ImageSpec::small("con-b").with_random_layer("b", 4 << 20));
    let env = Env::new();
    let layout = env.path().join("layout");
    let ca = reg.ca_cert().to_str().unwrap().to_string();
    let start = |image: &str| {
        env.command(["--ca-cert", &ca, "-q", "pull", image, layout.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (start(&a.reference), start(&b.reference));
    for child in [first, second] {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert_blobs_verified(&layout);
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let mut digests: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap())
        .collect();
    digests.sort();
    let mut want = vec![a.digest.as_str(), b.digest.as_str()];
    want.sort();
    assert_eq!(digests, want, "{index:#}");
}
