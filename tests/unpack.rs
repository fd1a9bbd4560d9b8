//! `ferry unpack` and `ferry pull --unpack`: root filesystems that match
//! what umoci makes of the same image, hostile layers that must not write
//! outside the tree, and layers whose content contradicts the config.
//!
//! The images are OCI layouts the tests write entry by entry (raw tar
//! headers, so hostile names get through); the registry tests push them
//! with skopeo and pull them back with `--unpack`.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::json;

use crate::common::{Env, Run, output_within, require_tool};
use crate::harness::{Auth, Registry, sha256};

const LIMIT: Duration = Duration::from_secs(60);
const TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const TAR_GZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const MTIME: u64 = 1_650_000_000;

/// One tar entry.
#[derive(Clone)]
enum E {
    Dir(&'static str, u32),
    File(&'static str, u32, &'static str),
    Link(&'static str, &'static str),
    Sym(&'static str, &'static str),
    Fifo(&'static str),
}

/// A tar of `entries`, names written into the header as they are (the
/// tar crate's builder would refuse `..`).
fn tar(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (i, e) in entries.iter().enumerate() {
        let mut h = tar::Header::new_ustar();
        let (name, kind, mode, data, link) = match e {
            E::Dir(n, m) => (*n, tar::EntryType::Directory, *m, "", ""),
            E::File(n, m, d) => (*n, tar::EntryType::Regular, *m, *d, ""),
            E::Link(n, t) => (*n, tar::EntryType::Link, 0o644, "", *t),
            E::Sym(n, t) => (*n, tar::EntryType::Symlink, 0o777, "", *t),
            E::Fifo(n) => (*n, tar::EntryType::Fifo, 0o644, "", ""),
        };
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_mtime(MTIME + i as u64);
        h.set_uid(0);
        h.set_gid(0);
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_cksum();
        b.append(&h, data.as_bytes()).expect("tar entry");
    }
    b.into_inner().expect("finish tar")
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(data).expect("gzip");
    gz.finish().expect("gzip")
}

fn write_blob(dir: &Path, data: &[u8]) -> String {
    let digest = sha256(data);
    let path = dir.join("blobs/sha256").join(&digest["sha256:".len()..]);
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    fs::write(path, data).expect("write blob");
    digest
}

/// A layer: its tar, whether to gzip it, and the diff_id the config
/// claims (None: the right one).
struct Layer {
    tar: Vec<u8>,
    gzip: bool,
    diff_id: Option<String>,
    media_type: Option<&'static str>,
}

fn layer(entries: &[E]) -> Layer {
    Layer { tar: tar(entries), gzip: true, diff_id: None, media_type: None }
}

/// Writes an OCI layout at `dir` holding one image named `img`.
fn write_layout(dir: &Path, layers: &[Layer]) {
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for l in layers {
        let blob = if l.gzip { gzip(&l.tar) } else { l.tar.clone() };
        let media_type = l.media_type.unwrap_or(if l.gzip { TAR_GZ } else { TAR });
        descs.push(
            json!({"mediaType": media_type, "digest": write_blob(dir, &blob), "size": blob.len()}),
        );
        diff_ids.push(l.diff_id.clone().unwrap_or_else(|| sha256(&l.tar)));
    }
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/usr/bin:/bin", "LANG=C.UTF-8"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "ferry tests"}],
    }))
    .expect("config");
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": write_blob(dir, &config),
            "size": config.len(),
        },
        "layers": descs,
    }))
    .expect("manifest");
    let digest = write_blob(dir, &manifest);
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest,
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "img"},
        }],
    });
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).expect("json")).expect("index");
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).expect("marker");
}

fn ferry(env: &Env, args: &[&str]) -> Run {
    output_within(env.command(args), LIMIT)
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 test path")
}

/// What a tree holds, path by path: type, mode, link target, contents,
/// and mtime for files and directories.
fn tree(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let mut names: Vec<_> =
            fs::read_dir(dir).expect("read_dir").map(|e| e.expect("entry").path()).collect();
        names.sort();
        for p in names {
            let rel = p.strip_prefix(root).expect("under root").display().to_string();
            let m = fs::symlink_metadata(&p).expect("lstat");
            let mode = m.mode() & 0o7777;
            let what = if m.file_type().is_symlink() {
                format!("symlink -> {}", fs::read_link(&p).expect("readlink").display())
            } else if m.file_type().is_fifo() {
                "fifo".to_string()
            } else if m.is_dir() {
                walk(root, &p, out);
                format!("dir {mode:o} mtime {}", m.mtime())
            } else {
                let data = fs::read(&p).expect("read");
                format!(
                    "file {mode:o} links {} mtime {} {:?}",
                    m.nlink(),
                    m.mtime(),
                    String::from_utf8_lossy(&data)
                )
            };
            out.insert(rel, what);
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    // ch/ is ferry's own record of the config, written at unpack time:
    // its mtimes differ between two unpacks of the same image.
    if let Some(ch) = out.get_mut("ch") {
        *ch = "dir (ferry's)".to_string();
    }
    for (k, v) in out.iter_mut() {
        if let Some(rest) = k.strip_prefix("ch/") {
            *v = format!("ferry's {rest}: {}", v.split(" mtime ").next().unwrap_or(""));
        }
    }
    out
}

/// Layers exercising whiteouts, opaque directories, hard links, symlinks
/// and type changes, one of them an uncompressed tar.
fn tricky_layers() -> Vec<Layer> {
    use E::*;
    let mut plain = layer(&[
        Dir("etc", 0o755),
        File("etc/keep", 0o644, "kept\n"),
        File("etc/gone", 0o644, "whited out\n"),
        Dir("opq", 0o755),
        File("opq/old", 0o644, "old\n"),
        Dir("opq/sub", 0o700),
        File("opq/sub/deep", 0o600, "deep\n"),
        File("f2d", 0o644, "file then dir\n"),
        Dir("d2s", 0o755),
        File("d2s/inner", 0o644, "dir then symlink\n"),
        Sym("s2f", "etc/keep"),
        File("bin-sh", 0o755, "#!shell\n"),
        Link("bin-sh-hard", "bin-sh"),
        Fifo("fifo"),
        Dir("dir/", 0o750),
        Dir("dir/nested", 0o755),
    ]);
    plain.gzip = false;
    vec![
        plain,
        layer(&[
            File("etc/.wh.gone", 0o644, ""),
            Dir("opq", 0o755),
            File("opq/.wh..wh..opq", 0o644, ""),
            File("opq/new", 0o644, "new\n"),
            Dir("f2d", 0o711),
            File("f2d/x", 0o644, "x\n"),
            Sym("d2s", "etc"),
            File("s2f", 0o640, "symlink then file\n"),
            File("etc/keep", 0o664, "kept, changed\n"),
            Link("etc/hard", "etc/keep"),
            Sym("abs", "/etc/keep"),
            Sym("rel", "../../../etc/keep"),
        ]),
        layer(&[
            File(".wh.bin-sh", 0o644, ""),
            Dir("dir/nested/more", 0o755),
            File("dir/.wh.nested", 0o644, ""),
            File("dir/file", 0o644, "in dir\n"),
        ]),
    ]
}

#[test]
fn root_filesystem_matches_umoci() {
    require_tool("umoci", "umoci");
    let env = Env::new();
    let layout = env.path().join("layout");
    write_layout(&layout, &tricky_layers());

    let rootfs = env.path().join("rootfs");
    let run = ferry(&env, &["-v", "unpack", &format!("{}:img", s(&layout)), s(&rootfs)]);
    run.ok();
    assert!(run.stderr.contains("fifo"), "the FIFO is noted under -v: {}", run.stderr);

    let bundle = env.path().join("bundle");
    let out = Command::new("umoci")
        .args(["unpack", "--rootless", "--image", &format!("{}:img", s(&layout)), s(&bundle)])
        .output()
        .expect("run umoci");
    assert!(out.status.success(), "umoci: {}", String::from_utf8_lossy(&out.stderr));

    let mut ours = tree(&rootfs);
    let theirs = tree(&bundle.join("rootfs"));
    // Charliecloud's files are ours alone; umoci skips the FIFO as a
    // normal user would have to.
    ours.retain(|k, _| k != "ch" && !k.starts_with("ch/"));
    let theirs: BTreeMap<_, _> = theirs.into_iter().filter(|(k, _)| k != "fifo").collect();
    assert_eq!(ours, theirs, "ferry (left) and umoci (right) differ");
    assert!(!ours.contains_key("opq/old") && ours.contains_key("opq/new"), "{ours:#?}");

    assert_eq!(
        fs::read_to_string(rootfs.join("ch/environment")).unwrap(),
        "PATH=/usr/bin:/bin\nLANG=C.UTF-8\n"
    );
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(rootfs.join("ch/config.pulled.json")).unwrap()).unwrap();
    assert_eq!(config["config"]["Cmd"][0], "/bin/sh");
    // Nothing temporary is left beside ROOTFS.
    let beside: Vec<_> = fs::read_dir(env.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("ferry-"))
        .collect();
    assert!(beside.is_empty(), "{beside:?}");
}

/// Unpacks `layers` next to a canary; returns the run and the directory.
fn hostile(layers: Vec<Layer>) -> (Env, Run) {
    let env = Env::new();
    let work = env.path().join("work");
    fs::create_dir_all(work.join("etc")).unwrap();
    fs::write(work.join("canary"), "canary\n").unwrap();
    fs::write(work.join("etc/x"), "canary\n").unwrap();
    let layout = env.path().join("layout");
    write_layout(&layout, &layers);
    let run = ferry(&env, &["unpack", s(&layout), s(&work.join("rootfs"))]);
    (env, run)
}

/// The canaries are untouched and nothing but ROOTFS appeared beside them.
#[track_caller]
fn assert_contained(env: &Env) {
    let work = env.path().join("work");
    assert_eq!(fs::read_to_string(work.join("canary")).unwrap(), "canary\n");
    assert_eq!(fs::read_to_string(work.join("etc/x")).unwrap(), "canary\n");
    let mut names: Vec<String> = fs::read_dir(&work)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(
        names == ["canary", "etc"] || names == ["canary", "etc", "rootfs"],
        "beside ROOTFS: {names:?}"
    );
    assert_eq!(fs::read_dir(work.join("etc")).unwrap().count(), 1, "something landed in etc");
}

#[test]
fn hostile_layers_are_refused_and_write_nothing_outside() {
    use E::*;
    let refused: Vec<(&str, Vec<Layer>)> = vec![
        ("../canary", vec![layer(&[File("../canary", 0o644, "pwned\n")])]),
        ("dot-dot inside", vec![layer(&[Dir("a", 0o755), File("a/../../canary", 0o644, "p")])]),
        (
            "symlink then a file through it",
            vec![
                layer(&[Sym("link", "../../work")]),
                layer(&[File("link/canary", 0o644, "pwned\n")]),
            ],
        ),
        (
            "absolute symlink then a file through it",
            vec![layer(&[Sym("e", "/"), File("e/canary", 0o644, "pwned\n")])],
        ),
        ("symlink named .", vec![layer(&[Sym(".", ".."), File("canary", 0o644, "pwned\n")])]),
        ("hard link outside", vec![layer(&[Link("h", "../canary")])]),
        ("hard link to an absolute path", vec![layer(&[Link("h", "/etc/passwd")])]),
        (
            "whiteout under a symlinked directory",
            vec![layer(&[Sym("up", "..")]), layer(&[File("up/.wh.canary", 0o644, "")])],
        ),
    ];
    for (what, layers) in refused {
        let (env, run) = hostile(layers);
        assert_eq!(run.code, 1, "{what}: {run:?}");
        assert!(run.stderr.contains("refusing entry"), "{what}: {}", run.stderr);
        assert!(!env.path().join("work/rootfs").exists(), "{what}: half a tree left");
        assert_contained(&env);
    }

    // Made safe rather than refused: an absolute name lands inside ROOTFS,
    // and a directory replaces the symlink of the same name.
    let (env, run) = hostile(vec![layer(&[
        File("/etc/x", 0o644, "inside\n"),
        Sym("d", "../../work/etc"),
        Dir("d", 0o755),
        File("d/x", 0o644, "inside too\n"),
    ])]);
    run.ok();
    assert_contained(&env);
    let root = env.path().join("work/rootfs");
    assert_eq!(fs::read_to_string(root.join("etc/x")).unwrap(), "inside\n");
    assert!(fs::symlink_metadata(root.join("d")).unwrap().is_dir());
    assert_eq!(fs::read_to_string(root.join("d/x")).unwrap(), "inside too\n");
}

#[test]
fn a_layer_that_contradicts_its_diff_id_leaves_rootfs_as_it_was() {
    let env = Env::new();
    let layout = env.path().join("layout");
    let mut bad = layer(&[E::File("x", 0o644, "x\n")]);
    bad.diff_id = Some(sha256(b"something else"));
    write_layout(&layout, &[layer(&[E::File("a", 0o644, "a\n")]), bad]);
    let rootfs = env.path().join("rootfs");
    fs::create_dir(&rootfs).unwrap();
    fs::write(rootfs.join("old"), "old tree\n").unwrap();

    let run = ferry(&env, &["unpack", "--force", s(&layout), s(&rootfs)]);
    run.expect_code(1);
    assert!(run.stderr.contains("diff_id"), "{}", run.stderr);
    assert!(run.stderr.contains("layer 2 of 2"), "{}", run.stderr);
    assert_eq!(tree(&rootfs).keys().collect::<Vec<_>>(), ["old"]);
    let left: Vec<_> = fs::read_dir(env.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("ferry-"))
        .collect();
    assert!(left.is_empty(), "temporary tree left behind: {left:?}");
}

#[test]
fn non_empty_rootfs_needs_force_and_zstd_is_refused() {
    let env = Env::new();
    let layout = env.path().join("layout");
    write_layout(&layout, &[layer(&[E::File("new", 0o644, "new\n")])]);
    let rootfs = env.path().join("rootfs");
    fs::create_dir(&rootfs).unwrap();
    fs::write(rootfs.join("old"), "old\n").unwrap();

    let run = ferry(&env, &["unpack", s(&layout), s(&rootfs)]);
    run.expect_code(1);
    assert!(run.stderr.contains("not empty") && run.stderr.contains("--force"), "{run:?}");
    assert!(rootfs.join("old").exists());
    ferry(&env, &["unpack", "--force", s(&layout), s(&rootfs)]).ok();
    assert!(!rootfs.join("old").exists());
    assert_eq!(fs::read_to_string(rootfs.join("new")).unwrap(), "new\n");

    let zstd_layout = env.path().join("zstd");
    let mut z = layer(&[E::File("z", 0o644, "z\n")]);
    z.media_type = Some("application/vnd.oci.image.layer.v1.tar+zstd");
    write_layout(&zstd_layout, &[z]);
    let run = ferry(&env, &["unpack", s(&zstd_layout), s(&env.path().join("z"))]);
    run.expect_code(1);
    assert!(run.stderr.contains("zstd") && run.stderr.contains("not supported"), "{run:?}");
    assert!(!env.path().join("z").exists());
}

/// Pushes the layout at `layout` to `reg` as `repo_tag` with skopeo.
fn push_layout(reg: &Registry, layout: &Path, repo_tag: &str) -> String {
    let out = Command::new(require_tool("skopeo", "skopeo"))
        .env_remove("REGISTRY_AUTH_FILE")
        .env("XDG_RUNTIME_DIR", "/nonexistent-ferry-tests")
        .args(["copy", "--quiet", "--dest-cert-dir"])
        .arg(reg.cert_dir())
        .arg(format!("oci:{}:img", layout.display()))
        .arg(format!("docker://{}", reg.repo(repo_tag)))
        .output()
        .expect("run skopeo");
    assert!(out.status.success(), "skopeo: {}", String::from_utf8_lossy(&out.stderr));
    reg.repo(repo_tag)
}

#[test]
fn pull_unpack_from_the_registry() {
    let reg = Registry::start(Auth::None);
    let env = Env::new();
    let src = env.path().join("src");
    write_layout(&src, &tricky_layers());
    let image = push_layout(&reg, &src, "tricky/img:1");
    let dir = env.path().join("pulled");
    let rootfs = env.path().join("rootfs");
    let ca = reg.ca_cert().display().to_string();
    ferry(&env, &["--ca-cert", &ca, "pull", "--unpack", s(&rootfs), &image, s(&dir)]).ok();

    let direct = env.path().join("direct");
    ferry(&env, &["unpack", s(&src), s(&direct)]).ok();
    assert_eq!(tree(&rootfs), tree(&direct));
    // The same image again by the name pull gave it.
    let again = env.path().join("again");
    ferry(&env, &["unpack", &format!("{}:{image}", s(&dir)), s(&again)]).ok();
    assert_eq!(tree(&again), tree(&direct));

    // A hostile layer served by the registry is refused the same way.
    let evil = env.path().join("evil");
    write_layout(&evil, &[layer(&[E::Sym("l", ".."), E::File("l/escaped", 0o644, "p")])]);
    let image = push_layout(&reg, &evil, "evil/img:1");
    let rootfs = env.path().join("evil-root");
    let run = ferry(&env, &["--ca-cert", &ca, "pull", "--unpack", s(&rootfs), &image, s(&dir)]);
    run.expect_code(1);
    assert!(run.stderr.contains("refusing entry \"l/escaped\""), "{}", run.stderr);
    assert!(!env.path().join("escaped").exists() && !rootfs.exists());
}
