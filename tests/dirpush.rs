//! `ferry push ROOTFS IMAGE`: a directory tree pushed to the real registry
//! comes back identical through `pull --unpack` and through skopeo and
//! umoci, the same tree always gives the same digest, and `--docker-types`
//! gives the media types old registries want.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, FileTimes};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::common::{Env, Run, output_within, require_tool};
use crate::harness::{Auth, Registry, sha256};

const LIMIT: Duration = Duration::from_secs(90);
const MTIME: u64 = 1_650_000_000;

/// Runs ferry against `reg` with `envs` added, TMPDIR inside the test's
/// home so the test can see that nothing is left there.
fn ferry(env: &Env, reg: &Registry, envs: &[(&str, &str)], args: &[&str]) -> Run {
    let ca = reg.ca_cert().display().to_string();
    let mut all = vec!["--ca-cert", ca.as_str()];
    all.extend_from_slice(args);
    let mut cmd = env.command(&all);
    let tmp = env.path().join("tmp");
    fs::create_dir_all(&tmp).unwrap();
    cmd.env("TMPDIR", &tmp);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    output_within(cmd, LIMIT)
}

fn json(run: &Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("--json output: {e}\n{run:?}"))
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 test path")
}

fn set_mtime(path: &Path, secs: u64) {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
    File::open(path).unwrap().set_times(FileTimes::new().set_modified(t).set_accessed(t)).unwrap();
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// The long name: a 120-character directory holding a 90-character file.
fn long_path() -> String {
    format!("{}/{}", "d".repeat(120), "f".repeat(90))
}

/// A tree with every kind of entry the layer keeps, and Charliecloud's
/// `ch/` beside them. With `times`, every file and directory gets a fixed
/// mtime (directories last, since filling them changes theirs).
fn make_tree(root: &Path, times: bool) {
    for d in ["bin", "etc/sub/deeper", "empty", "private", &"d".repeat(120), "ch"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    let files: &[(&str, u32, &str)] = &[
        ("bin/tool", 0o755, "#!/bin/sh\necho tool\n"),
        ("bin/su", 0o4755, "setuid\n"),
        ("bin/sg", 0o2755, "setgid\n"),
        ("etc/conf", 0o644, "key=value\n"),
        ("etc/sub/deeper/secret", 0o600, "deep\n"),
        ("private/x", 0o640, ""),
    ];
    for (name, mode, data) in files {
        fs::write(root.join(name), data).unwrap();
        chmod(&root.join(name), *mode);
    }
    fs::write(root.join(long_path()), "long name\n").unwrap();
    fs::hard_link(root.join("bin/tool"), root.join("bin/tool-hard")).unwrap();
    symlink("tool", root.join("bin/rel-link")).unwrap();
    symlink("/etc/conf", root.join("abs-link")).unwrap();
    symlink("../nowhere", root.join("etc/dangling")).unwrap();
    symlink("etc/sub", root.join("dir-link")).unwrap();
    let fifo = root.join("fifo");
    let out = Command::new("mkfifo").arg(&fifo).output().expect("mkfifo");
    assert!(out.status.success());
    chmod(&fifo, 0o644);
    let _socket = std::os::unix::net::UnixListener::bind(root.join("socket")).unwrap();
    // Charliecloud's metadata: not part of the layer.
    fs::write(root.join("ch/environment"), "PATH=/bin:/usr/bin\nGREETING=hello world\n").unwrap();
    fs::write(root.join("ch/config.pulled.json"), "{\"stale\": true}").unwrap();

    chmod(&root.join("private"), 0o750);
    chmod(&root.join("etc/sub"), 0o700);
    chmod(&root.join("empty"), 0o755);
    if times {
        for (i, (name, _, _)) in files.iter().enumerate() {
            set_mtime(&root.join(name), MTIME + i as u64);
        }
        set_mtime(&root.join(long_path()), MTIME + 100);
        for d in [&"d".repeat(120), "etc/sub/deeper", "etc/sub", "etc", "bin", "empty", "private"] {
            set_mtime(&root.join(d), MTIME + 200);
        }
    }
}

/// What a tree holds, path by path: type, mode without setuid and setgid,
/// mtime, link target, contents, and which earlier path a file shares its
/// inode with. `ch/`, FIFOs and sockets are left out (unpack skips FIFOs,
/// the layer skips sockets).
fn tree(root: &Path) -> BTreeMap<String, String> {
    fn walk(
        root: &Path,
        dir: &Path,
        inodes: &mut HashMap<u64, String>,
        out: &mut BTreeMap<String, String>,
    ) {
        let mut names: Vec<_> =
            fs::read_dir(dir).expect("read_dir").map(|e| e.expect("entry").path()).collect();
        names.sort();
        for p in names {
            let rel = p.strip_prefix(root).expect("under root").display().to_string();
            if rel == "ch" {
                continue;
            }
            let m = fs::symlink_metadata(&p).expect("lstat");
            let mode = m.mode() & 0o1777;
            let ft = m.file_type();
            let what = if ft.is_symlink() {
                format!("symlink -> {}", fs::read_link(&p).expect("readlink").display())
            } else if ft.is_fifo() || ft.is_socket() {
                continue;
            } else if m.is_dir() {
                walk(root, &p, inodes, out);
                format!("dir {mode:o} mtime {}", m.mtime())
            } else {
                let same = inodes.entry(m.ino()).or_insert_with(|| rel.clone()).clone();
                let data = fs::read(&p).expect("read");
                format!(
                    "file {mode:o} mtime {} inode of {same} {:?}",
                    m.mtime(),
                    String::from_utf8_lossy(&data)
                )
            };
            out.insert(rel, what);
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut HashMap::new(), &mut out);
    out
}

/// Names and types of the entries of the one layer of the image `name`
/// in the layout `dir`.
fn layer_entries(dir: &Path) -> Vec<(String, tar::EntryType)> {
    let index: Value = serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    let blob = |d: &str| fs::read(dir.join("blobs/sha256").join(&d["sha256:".len()..])).unwrap();
    let manifest: Value =
        serde_json::from_slice(&blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{manifest:#}");
    let gz = blob(layers[0]["digest"].as_str().unwrap());
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut plain).unwrap();
    let mut archive = tar::Archive::new(&plain[..]);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.path().unwrap().display().to_string(), e.header().entry_type())
        })
        .collect()
}

#[track_caller]
fn assert_empty(dir: &Path) {
    let left: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "left in {}: {left:?}", dir.display());
}

#[test]
fn a_tree_pushed_and_pulled_back_is_the_same_tree() {
    let reg = Registry::start(Auth::None);
    let env = Env::new();
    let src = env.path().join("src");
    make_tree(&src, true);
    let image = reg.repo("trees/one:1");

    let run = ferry(&env, &reg, &[], &["--json", "push", s(&src), &image]);
    run.ok();
    let summary = json(&run);
    let digest = summary["images"][0]["digest"].as_str().unwrap().to_string();
    assert_eq!(sha256(&reg.skopeo_raw(&image)), digest, "{summary:#}");
    assert_eq!(summary["blobs_uploaded"], 2, "{summary:#}");
    assert_empty(&env.path().join("tmp"));

    // The manifest and config as a registry client sees them.
    let raw: Value = serde_json::from_slice(&reg.skopeo_raw(&image)).unwrap();
    assert_eq!(raw["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(raw["config"]["mediaType"], "application/vnd.oci.image.config.v1+json");
    assert_eq!(raw["layers"][0]["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip");
    let config: Value =
        serde_json::from_str(&ferry(&env, &reg, &[], &["inspect", "--config", &image]).ok().stdout)
            .unwrap();
    assert_eq!(config["history"].as_array().unwrap().len(), 1, "{config:#}");
    assert_eq!(config["history"][0]["created_by"], "ferry push");
    assert_eq!(config["created"], "1970-01-01T00:00:00Z");
    assert_eq!(
        config["config"]["Env"],
        serde_json::json!(["PATH=/bin:/usr/bin", "GREETING=hello world"])
    );
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 1);
    assert_eq!(config["os"], "linux");

    // Back through pull --unpack: the same tree, minus setuid and setgid.
    let layout = env.path().join("layout");
    let back = env.path().join("back");
    ferry(&env, &reg, &[], &["pull", "--unpack", s(&back), &image, s(&layout)]).ok();
    let (ours, theirs) = (tree(&src), tree(&back));
    assert_eq!(ours, theirs, "pushed (left) and pulled back (right) differ");
    for path in ["bin/tool-hard", "abs-link", "empty", &long_path()] {
        assert!(theirs.contains_key(path), "{path} missing: {theirs:#?}");
    }
    assert!(theirs["bin/tool-hard"].contains("inode of bin/tool "), "{theirs:#?}");
    let mode = |p: &str| fs::symlink_metadata(back.join(p)).unwrap().mode() & 0o7777;
    assert_eq!((mode("bin/su"), mode("bin/sg")), (0o755, 0o755));
    assert_eq!(
        fs::read_to_string(back.join("ch/environment")).unwrap(),
        "PATH=/bin:/usr/bin\nGREETING=hello world\n"
    );
    let pulled_config = fs::read_to_string(back.join("ch/config.pulled.json")).unwrap();
    assert!(!pulled_config.contains("stale"), "{pulled_config}");

    // The layer itself: the FIFO is there, the socket and ch/ are not.
    let entries = layer_entries(&layout);
    assert!(entries.contains(&("fifo".into(), tar::EntryType::Fifo)), "{entries:?}");
    assert!(entries.iter().all(|(n, _)| n != "socket" && !n.starts_with("ch")), "{entries:?}");
    let names: Vec<&String> = entries.iter().map(|(n, _)| n).collect();
    assert_eq!(names.first().map(|n| n.as_str()), Some("abs-link"), "sorted: {names:?}");

    // Pushed again, the pulled-back tree gives the image of the original
    // without its FIFO (which unpack skips): times, modes and
    // ch/environment all came back.
    // Unpack does not set the times of symlinks; std cannot either.
    fs::remove_file(src.join("fifo")).unwrap();
    for root in [&src, &back] {
        for link in ["bin/rel-link", "abs-link", "etc/dangling", "dir-link"] {
            let out = Command::new("touch")
                .args(["-h", "-d", &format!("@{MTIME}")])
                .arg(root.join(link))
                .output()
                .expect("touch");
            assert!(out.status.success(), "{out:?}");
        }
    }
    let a = json(ferry(&env, &reg, &[], &["--json", "push", s(&src), &reg.repo("t/a:1")]).ok());
    let b = json(ferry(&env, &reg, &[], &["--json", "push", s(&back), &reg.repo("t/b:1")]).ok());
    assert_eq!(a["layer"]["diff_id"], b["layer"]["diff_id"], "{a:#}\n{b:#}");
    assert_eq!(a["images"][0]["digest"], b["images"][0]["digest"]);
    assert_ne!(a["images"][0]["digest"], digest.as_str(), "the FIFO was in the first");
}

#[test]
fn the_same_tree_gives_the_same_digest() {
    let reg = Registry::start(Auth::None);
    let env = Env::new();
    let src = env.path().join("src");
    make_tree(&src, true);

    let digest_of = |run: &Run| json(run)["images"][0]["digest"].as_str().unwrap().to_string();
    let first = ferry(&env, &reg, &[], &["--json", "push", s(&src), &reg.repo("same/a:1")]);
    let second = ferry(&env, &reg, &[], &["--json", "push", s(&src), &reg.repo("same/a:2")]);
    assert_eq!(digest_of(first.ok()), digest_of(second.ok()));
    let summary = json(&second);
    assert_eq!(summary["blobs_uploaded"], 0, "{summary:#}");
    assert_eq!(summary["blobs_present"], 2, "{summary:#}");

    // Another tree with the same content, made later elsewhere: with
    // SOURCE_DATE_EPOCH before both, every time is clamped to it.
    std::thread::sleep(Duration::from_millis(1100));
    let other = env.path().join("elsewhere/other");
    make_tree(&other, false);
    let epoch = [("SOURCE_DATE_EPOCH", "1000000000")];
    let a = ferry(&env, &reg, &epoch, &["--json", "push", s(&src), &reg.repo("same/b:1")]);
    let b = ferry(&env, &reg, &epoch, &["--json", "push", s(&other), &reg.repo("same/c:1")]);
    assert_eq!(digest_of(a.ok()), digest_of(b.ok()));
    assert_ne!(digest_of(&a), digest_of(&first), "SOURCE_DATE_EPOCH changes times and date");
    let config: Value = serde_json::from_str(
        &ferry(&env, &reg, &[], &["inspect", "--config", &reg.repo("same/c:1")]).ok().stdout,
    )
    .unwrap();
    assert_eq!(config["created"], "2001-09-09T01:46:40Z");
    assert_eq!(config["history"][0]["created"], "2001-09-09T01:46:40Z");

    let bad = ferry(
        &env,
        &reg,
        &[("SOURCE_DATE_EPOCH", "yesterday")],
        &["push", s(&src), &reg.repo("x/y:1")],
    );
    bad.expect_code(2);
    assert!(bad.stderr.starts_with("ferry: SOURCE_DATE_EPOCH"), "{}", bad.stderr);
}

#[test]
fn docker_types_for_old_registries_and_other_tools_read_the_image() {
    let reg = Registry::start(Auth::None);
    let env = Env::new();
    let src = env.path().join("src");
    make_tree(&src, true);
    let image = reg.repo("old/style:1");
    let run = ferry(
        &env,
        &reg,
        &[],
        &["push", "--docker-types", "--arch", "linux/arm64/v8", s(&src), &image],
    );
    run.ok();
    assert!(run.stderr.contains("pushed"), "{}", run.stderr);
    let raw: Value = serde_json::from_slice(&reg.skopeo_raw(&image)).unwrap();
    assert_eq!(raw["mediaType"], "application/vnd.docker.distribution.manifest.v2+json");
    assert_eq!(raw["config"]["mediaType"], "application/vnd.docker.container.image.v1+json");
    assert_eq!(raw["layers"][0]["mediaType"], "application/vnd.docker.image.rootfs.diff.tar.gzip");
    let inspect = ferry(&env, &reg, &[], &["inspect", &image]);
    assert!(inspect.ok().stdout.contains("platform linux/arm64/v8 "), "{}", inspect.stdout);

    // skopeo copies the OCI image into a layout and umoci unpacks it into
    // the same tree.
    let oci = reg.repo("new/style:1");
    ferry(&env, &reg, &[], &["push", s(&src), &oci]).ok();
    let layout = env.path().join("by-skopeo");
    let out = Command::new(require_tool("skopeo", "skopeo"))
        .env_remove("REGISTRY_AUTH_FILE")
        .env("XDG_RUNTIME_DIR", "/nonexistent-ferry-tests")
        .args(["copy", "--quiet", "--src-cert-dir"])
        .arg(reg.cert_dir())
        .arg(format!("docker://{oci}"))
        .arg(format!("oci:{}:img", layout.display()))
        .output()
        .expect("run skopeo");
    assert!(out.status.success(), "skopeo: {}", String::from_utf8_lossy(&out.stderr));
    let bundle = env.path().join("bundle");
    let out = Command::new(require_tool("umoci", "umoci"))
        .args(["unpack", "--rootless", "--image", &format!("{}:img", s(&layout)), s(&bundle)])
        .output()
        .expect("run umoci");
    assert!(out.status.success(), "umoci: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(tree(&src), tree(&bundle.join("rootfs")), "pushed (left), umoci (right)");
}

#[test]
fn what_a_directory_is_and_options_that_do_not_fit() {
    let reg = Registry::start(Auth::None);
    let env = Env::new();
    let src = env.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("index.json"), "{}").unwrap();
    let image = reg.repo("x/y:1");

    let run = ferry(&env, &reg, &[], &["push", s(&src), &image]);
    run.expect_code(2);
    assert!(run.stderr.contains("index.json but no oci-layout"), "{}", run.stderr);

    fs::remove_file(src.join("index.json")).unwrap();
    let run = ferry(&env, &reg, &[], &["push", "--all", s(&src), &reg.host_port()]);
    run.expect_code(2);
    assert!(run.stderr.contains("--all takes an OCI image layout"), "{}", run.stderr);

    // An empty tree is an image of one empty layer.
    ferry(&env, &reg, &[], &["push", s(&src), &image]).ok();

    // A layout with --docker-types or --arch is refused before any upload.
    let layout = env.path().join("layout");
    ferry(&env, &reg, &[], &["pull", &image, s(&layout)]).ok();
    let target = reg.repo("x/z:1");
    for extra in [&["--docker-types"][..], &["--arch", "arm64"]] {
        let mut args = vec!["push"];
        args.extend_from_slice(extra);
        args.extend([s(&layout), target.as_str()]);
        let run = ferry(&env, &reg, &[], &args);
        run.expect_code(2);
        assert!(run.stderr.contains("apply when pushing a directory tree"), "{}", run.stderr);
    }
}
