//! The command line: options, commands and help texts.
//!
//! Parsing only: nothing here touches the network or the disk, except
//! reading the password from standard input for `--password-stdin`. Global
//! options may stand before or after the command. A test keeps the help
//! texts and man/ferry.1 in step, so an option is listed in both or none.

use std::ffi::OsString;
use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};

pub const USAGE: &str = "\
ferry: move container images between registries, OCI layouts and directories

Usage: ferry [OPTIONS] COMMAND [ARGS]

Commands:
  inspect IMAGE         Show what the registry holds for IMAGE
  tags REPO             List every tag of a repository
  catalog HOST[:PORT]   List every repository of a registry
  digest IMAGE          Print the manifest digest of IMAGE
  login HOST[:PORT]     Check credentials and store them in the auth file
  logout HOST[:PORT]    Remove stored credentials for a registry
  pull IMAGE... DIR     Fetch images into the OCI image layout DIR
  unpack DIR[:REF] ROOTFS
                        Make an image of a layout into a directory tree
  push DIR[:REF] IMAGE  Send an image of the OCI image layout DIR to IMAGE
  push ROOTFS IMAGE     Push the directory tree ROOTFS as a one-layer image
  copy SRC DST          Copy an image from one registry to another
  delete IMAGE          Delete the manifest IMAGE names from its registry
  help [COMMAND]        Show this help or a command's

Options:
  -v, --verbose         Show each request and auth step (-vv: headers too)
  -q, --quiet           Show no progress or info lines, only errors
      --json            Print results as one JSON document
      --auth            Authenticated mode: use credentials, ask if none found
      --username USER   User name for the registry
      --password-stdin  Read the password from standard input
      --password-many   Forget credentials after each use (one-time passwords)
      --authfile FILE   Auth file to read first and for login to write
      --ca-cert FILE    Trust the PEM certificates in FILE (repeatable)
      --tls-no-verify   Do not verify TLS certificates (insecure)
      --plain-http      Talk to the registry over plain http
      --timeout SECS    Connect and read timeout [default: 30]
      --retries N       Retries after network errors, 429 and 5xx [default: 4]
  -h, --help            Show help
      --version         Show the version

IMAGE is [HOST[:PORT]/]PATH[:TAG][@DIGEST]; the host defaults to Docker Hub
or $FERRY_DEFAULT_REGISTRY. See ferry(1) for environment and exit status.
";

pub const INSPECT_HELP: &str = "\
Usage: ferry inspect [OPTIONS] IMAGE

Show the canonical reference, digest, media type, size and platforms of
IMAGE; for a single manifest also its config and layers.

Options:
      --raw             Print the manifest bytes exactly as served
      --config          Print the image config
      --arch PLATFORM   Platform for --config on a multi-platform image
                        (ARCH, OS/ARCH or OS/ARCH/VARIANT) [default: host]
";

pub const PULL_HELP: &str = "\
Usage: ferry pull [OPTIONS] IMAGE... DIR

Fetch each IMAGE into the OCI image layout DIR (created if absent), named
in DIR/index.json by its full reference (HOST/PATH:TAG). Blobs already in
DIR are not fetched again; a blob cut off is resumed, also by the next run.

Options:
      --arch PLATFORM   Platform to take from a multi-platform image (ARCH,
                        OS/ARCH or OS/ARCH/VARIANT), or \"all\" to keep the
                        whole index [default: host]
      --verify          Re-hash blobs already in DIR instead of trusting
                        their size
      --oci-types       Store Docker-type images with OCI media types, for
                        skopeo and umoci; their manifest digests change
      --unpack ROOTFS   Also unpack the image into the directory ROOTFS
                        (one IMAGE only); see `ferry unpack --help`
      --force           With --unpack: replace a non-empty ROOTFS
      --preserve-owners With --unpack, as root: keep owners and setuid bits
";

pub const UNPACK_HELP: &str = "\
Usage: ferry unpack [OPTIONS] DIR[:REF] ROOTFS

Apply the layers of image REF of the OCI image layout DIR (REF may be left
out when DIR holds one image) to a new directory tree ROOTFS, for ch-run or
an apptainer sandbox. The tree is built beside ROOTFS and renamed into
place; the image config goes to ROOTFS/ch/config.pulled.json and its
environment to ROOTFS/ch/environment (for ch-run --set-env).

Options:
      --arch PLATFORM   Platform to take when REF is a multi-platform image
                        [default: host]
      --force           Replace ROOTFS even when it is not empty
      --preserve-owners As root: keep owners, groups, setuid and setgid bits
";

pub const PUSH_HELP: &str = "\
Usage: ferry push [OPTIONS] DIR[:REF] IMAGE
       ferry push [OPTIONS] --all DIR REGISTRY[/PREFIX]
       ferry push [OPTIONS] ROOTFS IMAGE

Send the image REF of the OCI image layout DIR to IMAGE, digests unchanged:
blobs the registry lacks, then platform manifests, then the index or
manifest under IMAGE's tag. REF may be left out when DIR holds one image.
With --all, every image named in DIR goes to its own repository under
REGISTRY/PREFIX (docker.io/library/alpine:3.20 becomes
REGISTRY/PREFIX/library/alpine:3.20).

A directory without an oci-layout file (and without index.json) is a root
filesystem ROOTFS: it becomes a new image of one gzip layer, built the same
way every time, so the same tree gives the same digest. Owners become 0:0,
setuid and setgid bits are dropped, ROOTFS/ch is left out and
ROOTFS/ch/environment gives the image's environment. SOURCE_DATE_EPOCH
dates the image and clamps file times.

Options:
      --all             Push every image of DIR, re-rooted on REGISTRY
      --chunk-size SIZE Upload in PATCH chunks of SIZE bytes (K, M, G
                        suffixes) for registries or proxies that refuse
                        large bodies [default: one PUT per blob]
      --arch PLATFORM   With ROOTFS: the platform of the image (ARCH,
                        OS/ARCH or OS/ARCH/VARIANT) [default: host]
      --docker-types    With ROOTFS: Docker v2 media types instead of OCI
                        ones, for old registries
";

pub const COPY_HELP: &str = "\
Usage: ferry copy [OPTIONS] SRC DST

Copy the image SRC to DST, registry to registry, with no temporary file:
each blob DST lacks streams from SRC, checked on the way; blobs of the
same registry are mounted. Digests are kept.

Options:
      --arch PLATFORM   Copy one platform of a multi-platform image (ARCH,
                        OS/ARCH or OS/ARCH/VARIANT) [default: all]
      --chunk-size SIZE Upload in PATCH chunks of SIZE bytes
";

pub const DELETE_HELP: &str = "\
Usage: ferry delete [OPTIONS] IMAGE

Resolve IMAGE's tag to its digest and delete that manifest from the
registry; every tag naming the same manifest goes with it. Registries
often have deletes disabled (HTTP 405).
";

pub const TAGS_HELP: &str = "\
Usage: ferry tags [OPTIONS] REPO

List every tag of REPO ([HOST[:PORT]/]PATH), one per line, following the
registry's pagination.
";

pub const CATALOG_HELP: &str = "\
Usage: ferry catalog [OPTIONS] HOST[:PORT]

List every repository of the registry, one per line, following the
registry's pagination. Most public registries do not offer a catalog.
";

pub const DIGEST_HELP: &str = "\
Usage: ferry digest [OPTIONS] IMAGE

Print the manifest digest of IMAGE, asking with HEAD and falling back to
fetching and hashing the manifest.
";

pub const LOGIN_HELP: &str = "\
Usage: ferry login [OPTIONS] HOST[:PORT]

Check credentials against the registry, then store them in the auth file
(--authfile, $REGISTRY_AUTH_FILE, or ~/.config/containers/auth.json) with
mode 0600. Without --username and --password-stdin, ask on the terminal.
";

pub const LOGOUT_HELP: &str = "\
Usage: ferry logout [OPTIONS] HOST[:PORT]

Remove the stored credentials for HOST[:PORT] from the auth file.
";

/// Options every command shares.
#[derive(Debug, Default)]
pub struct Global {
    pub verbosity: i8,
    pub json: bool,
    pub auth: bool,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_many: bool,
    pub authfile: Option<PathBuf>,
    pub ca_certs: Vec<PathBuf>,
    pub tls_no_verify: bool,
    pub plain_http: bool,
    pub timeout: Duration,
    pub retries: u32,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Help(Option<String>),
    Version,
    Inspect {
        image: String,
        raw: bool,
        config: bool,
        arch: Option<String>,
    },
    Tags {
        repo: String,
    },
    Catalog {
        registry: String,
    },
    Digest {
        image: String,
    },
    Login {
        registry: String,
    },
    Logout {
        registry: String,
    },
    Pull {
        images: Vec<String>,
        dir: String,
        arch: Option<String>,
        verify: bool,
        /// Docker-type manifests and lists stored with OCI media types.
        oci_types: bool,
        unpack: Option<UnpackTo>,
    },
    Unpack {
        source: String,
        rootfs: UnpackTo,
        arch: Option<String>,
    },
    Push {
        source: String,
        dest: String,
        all: bool,
        chunk_size: Option<u64>,
        /// For a ROOTFS: the platform written into the config.
        arch: Option<String>,
        /// For a ROOTFS: Docker v2 media types.
        docker_types: bool,
    },
    Copy {
        src: String,
        dst: String,
        arch: Option<String>,
        chunk_size: Option<u64>,
    },
    Delete {
        image: String,
    },
}

/// Where and how `unpack` and `pull --unpack` make a root filesystem.
#[derive(Debug, PartialEq, Eq)]
pub struct UnpackTo {
    pub rootfs: PathBuf,
    pub force: bool,
    pub preserve_owners: bool,
}

/// The help text of `command`, or the general one.
pub fn help(command: Option<&str>) -> Result<&'static str> {
    Ok(match command {
        None => USAGE,
        Some("inspect") => INSPECT_HELP,
        Some("tags") => TAGS_HELP,
        Some("catalog") => CATALOG_HELP,
        Some("digest") => DIGEST_HELP,
        Some("login") => LOGIN_HELP,
        Some("logout") => LOGOUT_HELP,
        Some("pull") => PULL_HELP,
        Some("unpack") => UNPACK_HELP,
        Some("push") => PUSH_HELP,
        Some("copy") => COPY_HELP,
        Some("delete") => DELETE_HELP,
        Some(other) => return Err(unknown_command(other)),
    })
}

fn unknown_command(name: &str) -> Error {
    Error::usage(format!("unknown command \"{}\"", crate::msg::clean(name, 40)))
        .with_hint("see `ferry --help` for the commands")
}

fn usage_err(e: pico_args::Error) -> Error {
    Error::usage(e.to_string()).with_hint("see `ferry --help`")
}

/// Parses `args` (without the program name). `stdin` is read only for
/// `--password-stdin`.
pub fn parse(args: Vec<OsString>, stdin: &mut dyn Read) -> Result<(Global, Command)> {
    let mut p = pico_args::Arguments::from_vec(args);
    let mut g = Global { timeout: Duration::from_secs(30), retries: 4, ..Global::default() };

    let help_flag = p.contains(["-h", "--help"]);
    let version = p.contains("--version");
    while p.contains("-vv") {
        g.verbosity += 2;
    }
    while p.contains(["-v", "--verbose"]) {
        g.verbosity += 1;
    }
    if p.contains(["-q", "--quiet"]) {
        g.verbosity = -1;
    }
    g.verbosity = g.verbosity.min(2);
    g.json = p.contains("--json");
    g.auth = p.contains("--auth");
    g.username = last(&mut p, "--username", |s| Ok::<_, String>(s.to_string()))?;
    let password_stdin = p.contains("--password-stdin");
    g.password_many = p.contains("--password-many");
    g.authfile = last(&mut p, "--authfile", |s| path(std::ffi::OsStr::new(s)))?;
    g.ca_certs = p.values_from_os_str("--ca-cert", path).map_err(usage_err)?;
    g.tls_no_verify = p.contains("--tls-no-verify");
    g.plain_http = p.contains("--plain-http");
    if let Some(t) = last(&mut p, "--timeout", seconds)? {
        g.timeout = t;
    }
    if let Some(r) = last(&mut p, "--retries", |s| s.parse::<u32>())? {
        g.retries = r;
    }
    let raw = p.contains("--raw");
    let config = p.contains("--config");
    let arch = last(&mut p, "--arch", |s| Ok::<_, String>(s.to_string()))?;
    let verify = p.contains("--verify");
    let oci_types = p.contains("--oci-types");
    let unpack_to: Option<PathBuf> =
        p.opt_value_from_os_str("--unpack", path).map_err(usage_err)?;
    let force = p.contains("--force");
    let preserve_owners = p.contains("--preserve-owners");
    let all = p.contains("--all");
    let chunk_size = last(&mut p, "--chunk-size", size)?;
    let docker_types = p.contains("--docker-types");

    let name = p.subcommand().map_err(usage_err)?;
    let mut free = Vec::new();
    for rest in p.finish() {
        let s = rest
            .into_string()
            .map_err(|s| Error::usage(format!("argument is not UTF-8: {}", s.to_string_lossy())))?;
        if s.starts_with('-') && s.len() > 1 {
            return Err(Error::usage(format!("unknown option {}", crate::msg::clean(&s, 40)))
                .with_hint("see `ferry --help`"));
        }
        free.push(s);
    }

    if version {
        return Ok((g, Command::Version));
    }
    let Some(name) = name else {
        if help_flag {
            return Ok((g, Command::Help(None)));
        }
        return Err(Error::usage("no command given").with_hint("see `ferry --help`"));
    };
    if name == "help" {
        let topic = free.first().cloned();
        help(topic.as_deref())?;
        return Ok((g, Command::Help(topic)));
    }
    help(Some(&name))?;
    if help_flag {
        return Ok((g, Command::Help(Some(name))));
    }
    if (raw || config) && name != "inspect" {
        return Err(Error::usage(format!("--raw and --config do not apply to {name}")));
    }
    if arch.is_some() && !matches!(name.as_str(), "inspect" | "pull" | "unpack" | "push" | "copy") {
        return Err(Error::usage(format!("--arch does not apply to {name}")));
    }
    if verify && name != "pull" {
        return Err(Error::usage(format!("--verify does not apply to {name}")));
    }
    if oci_types && name != "pull" {
        return Err(Error::usage(format!("--oci-types does not apply to {name}")));
    }
    if unpack_to.is_some() && name != "pull" {
        return Err(Error::usage(format!("--unpack does not apply to {name}")));
    }
    let unpacks = name == "unpack" || unpack_to.is_some();
    if (force || preserve_owners) && !unpacks {
        return Err(Error::usage(format!(
            "--force and --preserve-owners apply to unpack and pull --unpack, not {name}"
        )));
    }
    if all && name != "push" {
        return Err(Error::usage(format!("--all does not apply to {name}")));
    }
    if docker_types && name != "push" {
        return Err(Error::usage(format!("--docker-types does not apply to {name}")));
    }
    if chunk_size.is_some() && !matches!(name.as_str(), "push" | "copy") {
        return Err(Error::usage(format!("--chunk-size does not apply to {name}")));
    }
    if raw && config {
        return Err(Error::usage("--raw and --config exclude each other"));
    }
    if password_stdin {
        if g.username.is_none() {
            return Err(Error::usage("--password-stdin needs --username"));
        }
        g.password = Some(read_password(stdin)?);
    }

    let one = |what: &str| -> Result<String> {
        match free.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(Error::usage(format!("{name} needs {what}"))
                .with_hint(format!("see `ferry {name} --help`"))),
            _ => Err(Error::usage(format!("{name} takes one {what}, got {}", free.len()))),
        }
    };
    let command = match name.as_str() {
        "inspect" => Command::Inspect { image: one("IMAGE")?, raw, config, arch },
        "tags" => Command::Tags { repo: one("REPO")? },
        "catalog" => Command::Catalog { registry: one("HOST[:PORT]")? },
        "digest" => Command::Digest { image: one("IMAGE")? },
        "login" => Command::Login { registry: one("HOST[:PORT]")? },
        "logout" => Command::Logout { registry: one("HOST[:PORT]")? },
        "pull" => {
            let Some((dir, images)) = free.split_last().filter(|(_, i)| !i.is_empty()) else {
                return Err(
                    Error::usage("pull needs IMAGE... DIR").with_hint("see `ferry pull --help`")
                );
            };
            if unpack_to.is_some() && images.len() != 1 {
                return Err(Error::usage("pull --unpack takes one IMAGE"));
            }
            if unpack_to.is_some() && arch.as_deref() == Some("all") {
                return Err(Error::usage("pull --unpack needs one platform, not --arch all"));
            }
            let unpack = unpack_to.map(|rootfs| UnpackTo { rootfs, force, preserve_owners });
            Command::Pull {
                images: images.to_vec(),
                dir: dir.clone(),
                arch,
                verify,
                oci_types,
                unpack,
            }
        }
        "unpack" => {
            let [source, rootfs] = free.as_slice() else {
                return Err(Error::usage("unpack needs DIR[:REF] ROOTFS")
                    .with_hint("see `ferry unpack --help`"));
            };
            Command::Unpack {
                source: source.clone(),
                rootfs: UnpackTo { rootfs: PathBuf::from(rootfs), force, preserve_owners },
                arch,
            }
        }
        "push" | "copy" => {
            let [from, to] = free.as_slice() else {
                let what = if name == "push" { "DIR[:REF] IMAGE" } else { "SRC DST" };
                return Err(Error::usage(format!("{name} needs {what}"))
                    .with_hint(format!("see `ferry {name} --help`")));
            };
            let (from, to) = (from.clone(), to.clone());
            if name == "push" {
                Command::Push { source: from, dest: to, all, chunk_size, arch, docker_types }
            } else {
                Command::Copy { src: from, dst: to, arch, chunk_size }
            }
        }
        "delete" => Command::Delete { image: one("IMAGE")? },
        other => return Err(unknown_command(other)),
    };
    Ok((g, command))
}

/// The last value of an option given several times: a later one wins, as
/// scripts that add to a base command line expect.
fn last<T, E: std::fmt::Display>(
    p: &mut pico_args::Arguments,
    key: &'static str,
    f: fn(&str) -> std::result::Result<T, E>,
) -> Result<Option<T>> {
    let mut value = None;
    while let Some(v) = p.opt_value_from_fn(key, f).map_err(usage_err)? {
        value = Some(v);
    }
    Ok(value)
}

fn path(s: &std::ffi::OsStr) -> std::result::Result<PathBuf, &'static str> {
    if s.is_empty() { Err("empty path") } else { Ok(PathBuf::from(s)) }
}

fn seconds(s: &str) -> std::result::Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(n) if n > 0.0 && n <= 86400.0 => Ok(Duration::from_secs_f64(n)),
        _ => Err(format!("\"{s}\" is not a number of seconds between 0 and 86400")),
    }
}

/// A byte count: digits with an optional K, M or G (powers of 1024).
fn size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&t[..i], t[i..].trim_end_matches(['B', 'b', 'i'])),
        None => (t, ""),
    };
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        _ => return Err(format!("\"{s}\" is not a size (e.g. 5242880, 512K, 16M)")),
    };
    match digits.parse::<u64>().ok().and_then(|n| n.checked_mul(1 << shift)) {
        Some(n) if n > 0 => Ok(n),
        _ => Err(format!("\"{s}\" is not a size above zero (e.g. 5242880, 512K, 16M)")),
    }
}

/// The password from standard input: its first line, without the newline.
fn read_password(stdin: &mut dyn Read) -> Result<String> {
    let mut buf = Vec::new();
    stdin
        .take(64 * 1024)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io("reading the password from standard input", e))?;
    let text = String::from_utf8(buf)
        .map_err(|_| Error::usage("password on standard input is not UTF-8"))?;
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        return Err(Error::usage("--password-stdin: standard input holds no password"));
    }
    Ok(line.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(args: &str, stdin: &str) -> Result<(Global, Command)> {
        let v = args.split_whitespace().map(OsString::from).collect();
        parse(v, &mut stdin.as_bytes())
    }

    #[test]
    fn options_anywhere() {
        let (g, c) =
            parse_str("-v inspect --json a/b:c --timeout 5 --ca-cert x.pem --ca-cert y.pem", "")
                .unwrap();
        assert_eq!(g.verbosity, 1);
        assert!(g.json);
        assert_eq!(g.timeout, Duration::from_secs(5));
        assert_eq!(g.ca_certs.len(), 2);
        assert_eq!(
            c,
            Command::Inspect { image: "a/b:c".into(), raw: false, config: false, arch: None }
        );
        assert_eq!(parse_str("tags x -vv", "").unwrap().0.verbosity, 2);
        let (g, _) =
            parse_str("--timeout 5 --retries 1 tags x --timeout 1 --retries 0", "").unwrap();
        assert_eq!((g.timeout, g.retries), (Duration::from_secs(1), 0));
        assert_eq!(parse_str("tags x -q", "").unwrap().0.verbosity, -1);
    }

    #[test]
    fn passwords() {
        let (g, _) = parse_str("login h --username u --password-stdin", "s3cret\n").unwrap();
        assert_eq!(g.password.as_deref(), Some("s3cret"));
        assert!(parse_str("login h --password-stdin", "x").is_err());
        assert!(parse_str("login h --username u --password-stdin", "").is_err());
    }

    #[test]
    fn usage_errors() {
        for bad in [
            "",
            "frobnicate",
            "inspect",
            "inspect a b",
            "tags x --raw",
            "inspect x --bogus",
            "digest x --timeout 0",
            "inspect x --raw --config",
            "pull x",
            "pull",
            "tags x --verify",
            "pull x d --raw",
            "push d",
            "push d i x",
            "tags x --all",
            "pull x d --chunk-size 1M",
            "push d i --chunk-size 0",
            "push d i --chunk-size 5X",
            "delete",
            "copy a",
            "delete x --arch amd64",
            "push d i --oci-types",
            "copy a b --oci-types",
        ] {
            let e = parse_str(bad, "").unwrap_err();
            assert_eq!(e.kind, crate::error::Kind::Usage, "{bad}");
        }
        assert_eq!(parse_str("--help", "").unwrap().1, Command::Help(None));
        assert_eq!(parse_str("tags --help", "").unwrap().1, Command::Help(Some("tags".into())));
        assert_eq!(parse_str("help login", "").unwrap().1, Command::Help(Some("login".into())));
        assert_eq!(parse_str("--version", "").unwrap().1, Command::Version);
        assert_eq!(
            parse_str("pull a b --arch all --verify dir", "").unwrap().1,
            Command::Pull {
                images: vec!["a".into(), "b".into()],
                dir: "dir".into(),
                arch: Some("all".into()),
                verify: true,
                oci_types: false,
                unpack: None,
            }
        );
        assert_eq!(
            parse_str("pull --unpack root a dir --force --oci-types", "").unwrap().1,
            Command::Pull {
                images: vec!["a".into()],
                dir: "dir".into(),
                arch: None,
                verify: false,
                oci_types: true,
                unpack: Some(UnpackTo {
                    rootfs: "root".into(),
                    force: true,
                    preserve_owners: false
                }),
            }
        );
        assert_eq!(
            parse_str("unpack lay:x root --preserve-owners", "").unwrap().1,
            Command::Unpack {
                source: "lay:x".into(),
                rootfs: UnpackTo { rootfs: "root".into(), force: false, preserve_owners: true },
                arch: None,
            }
        );
        for bad in ["pull --unpack r a b dir", "unpack x", "tags a --force", "inspect --unpack r a"]
        {
            assert!(parse_str(bad, "").is_err(), "{bad}");
        }
    }

    #[test]
    fn push_copy_delete() {
        assert_eq!(
            parse_str("push --all d r/p --chunk-size 16M", "").unwrap().1,
            Command::Push {
                source: "d".into(),
                dest: "r/p".into(),
                all: true,
                chunk_size: Some(16 << 20),
                arch: None,
                docker_types: false,
            }
        );
        assert_eq!(
            parse_str("push root r/p:1 --docker-types --arch arm64", "").unwrap().1,
            Command::Push {
                source: "root".into(),
                dest: "r/p:1".into(),
                all: false,
                chunk_size: None,
                arch: Some("arm64".into()),
                docker_types: true,
            }
        );
        assert!(parse_str("copy a b --docker-types", "").is_err());
        assert_eq!(
            parse_str("copy a b --arch arm64", "").unwrap().1,
            Command::Copy {
                src: "a".into(),
                dst: "b".into(),
                arch: Some("arm64".into()),
                chunk_size: None
            }
        );
        assert_eq!(size("512KiB"), Ok(512 << 10));
        assert_eq!(size("100"), Ok(100));
        assert!(size("").is_err() && size("1T").is_err());
    }

    #[test]
    fn help_fits_80_columns() {
        for text in [
            USAGE,
            INSPECT_HELP,
            TAGS_HELP,
            CATALOG_HELP,
            DIGEST_HELP,
            LOGIN_HELP,
            LOGOUT_HELP,
            PULL_HELP,
            UNPACK_HELP,
            PUSH_HELP,
            COPY_HELP,
            DELETE_HELP,
        ] {
            for line in text.lines() {
                assert!(line.chars().count() <= 80, "too wide: {line}");
            }
        }
    }
}
