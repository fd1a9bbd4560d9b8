//! ferry moves container images between OCI/Docker registries, local OCI
//! image layouts and root-filesystem directories: one static, blocking,
//! thread-free binary.
//!
//! The crate, module by module:
//! - `main`: parses the command line, runs one command, turns the result
//!   into an exit status and a one-line error on stderr.
//! - `cli`: options, commands and the help texts.
//! - `commands`: inspect, tags, catalog, digest, login and logout.
//! - `pull`: images into an OCI layout: platform choice, blobs streamed,
//!   hashed, resumed (within a run with `Range`, across runs from the
//!   partial file) and renamed into place only when verified.
//! - `convert`: `pull --oci-types`: Docker manifests and lists rewritten
//!   with OCI media types, blobs untouched; bytes in, bytes out.
//! - `unpack`: an image of a layout applied, layer by layer, to a root
//!   filesystem directory: whiteouts, diff_id checks, and the path policy
//!   that keeps every write inside the tree.
//! - `push`: layouts to registries (`push`, `push --all`), `delete`, and
//!   `Pusher`, the uploader push and copy share: HEAD, mount, POST and
//!   PUT (or PATCH chunks), fresh sessions on failure, manifests last.
//! - `dirimage`: `push ROOTFS IMAGE`: a directory tree made into a
//!   reproducible one-layer image (sorted tar, fixed gzip, owners 0:0),
//!   streamed to an unlinked temporary file and handed to `Pusher`; also
//!   the rule telling a root filesystem from a layout.
//! - `copy`: registry to registry, each blob streamed from the source GET
//!   into the destination upload, verified on the way.
//! - `layout`: the OCI image layout on disk: its lock, blob paths, partial
//!   files, atomic writes and `index.json` entries.
//! - `remote`: the distribution API of one registry (manifests, small
//!   blobs, tags, catalog), checking everything fetched.
//! - `http`: `Http`, every call to one registry, one after another:
//!   retries, redirects followed by hand, 401 handed to `auth`.
//! - `auth`: escalation from anonymous to Basic or Bearer, token cache.
//! - `challenge`: our own `WWW-Authenticate` parser.
//! - `creds`: credentials from options, environment, auth files, helpers
//!   and the terminal; the auth file `login` writes.
//! - `tls`: roots, certs.d, the verifier that accepts a server certificate
//!   the user supplied byte for byte, and the ureq connector.
//! - `reference`: image references and registries.
//! - `digest`: validated digests, the hashing writer, the bounded reader.
//! - `manifest`: media types, manifests, indexes, configs, platforms.
//! - `url`: origins, `Location`/`Link` resolution, query encoding.
//! - `error`, `msg`: the error type with its exit codes; stderr messages.
//!
//! How `ferry inspect` flows: `cli` → `commands::inspect` → `Reference`
//! → `Remote::manifest` → `Http::send` (→ `Auth` on 401) → bounded read,
//! digest checks, `manifest::parse` → stdout.
//!
//! How `ferry pull` flows: `cli` → `pull::pull` → per image
//! `Remote::manifest` → `Layout::open` (made and locked once the first
//! manifest is in) → platform chosen on an index (with `--oci-types` a
//! Docker manifest or list converted by `convert`) →
//! config via `Remote::small_blob`, layers via `Remote::blob` streamed
//! through a `LimitReader` and a `DigestWriter` into `.ferry/partial/` →
//! size and digest checked → fsync, rename into `blobs/` → manifests (as
//! served or converted) → `index.json`.
//!
//! How `ferry push` flows: `cli` → `push::push` → `index.json` of the
//! layout (read, not locked) → per image a `Pusher` for its registry →
//! per blob `HEAD` (present?) → mount from a repository of the run →
//! `POST` a session → `PUT ?digest=` streaming the file through `Verify`
//! (`Http` with `Body::Stream`: no replay; a failure starts a new session)
//! → `HEAD` to check → platform manifests by digest → the top document
//! under the tag (or its own digest), byte for byte with its own media
//! type.
//!
//! Invariants: no thread and no async runtime (ureq gets connect and read
//! timeouts only, so it resolves names inline); every response body is
//! read through a bound; a digest is validated before it becomes a URL or
//! a path; `Authorization` never leaves the registry's origin and never
//! goes to a plain-http realm of an https registry; no secret is printed;
//! no file is ever under its final name before it is complete and
//! verified; unpacking never writes outside the target directory.

mod auth;
mod challenge;
mod cli;
mod commands;
mod convert;
mod copy;
mod creds;
mod digest;
mod dirimage;
mod error;
mod http;
mod layout;
mod manifest;
mod msg;
mod pull;
mod push;
mod reference;
mod remote;
mod tls;
mod unpack;
mod url;

use cli::Command;
use commands::Ctx;
use error::Result;

fn main() {
    let code = match run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("ferry: {}", e.msg);
            if let Some(hint) = &e.hint {
                eprintln!("hint: {hint}");
            }
            e.kind.exit_code()
        }
    };
    std::process::exit(code);
}

fn run() -> Result<()> {
    let args = std::env::args_os().skip(1).collect();
    let (global, command) = cli::parse(args, &mut std::io::stdin())?;
    msg::set_level(global.verbosity);
    let mut ctx = Ctx::new(global);
    match command {
        Command::Help(topic) => {
            print!("{}", cli::help(topic.as_deref())?);
            Ok(())
        }
        Command::Version => {
            println!("ferry {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Inspect { image, raw, config, arch } => {
            commands::inspect(&mut ctx, &image, raw, config, arch.as_deref())
        }
        Command::Tags { repo } => commands::tags(&mut ctx, &repo),
        Command::Catalog { registry } => commands::catalog(&mut ctx, &registry),
        Command::Digest { image } => commands::digest(&mut ctx, &image),
        Command::Login { registry } => commands::login(&mut ctx, &registry),
        Command::Logout { registry } => commands::logout(&mut ctx, &registry),
        Command::Pull { images, dir, arch, verify, oci_types, unpack: None } => {
            pull::pull(&mut ctx, &images, &dir, arch.as_deref(), verify, oci_types)
        }
        Command::Pull { images, dir, arch, verify, oci_types, unpack: Some(to) } => {
            pull::pull(&mut ctx, &images, &dir, arch.as_deref(), verify, oci_types)?;
            // The layout names the image by its canonical reference; cli
            // lets --unpack through with exactly one image.
            let name = reference::Reference::parse(&images[0])?.canonical();
            let opts = unpack::Options { force: to.force, preserve_owners: to.preserve_owners };
            let dir = std::path::Path::new(&dir);
            unpack::unpack_from(dir, Some(&name), &to.rootfs, arch.as_deref(), opts).map(|_| ())
        }
        Command::Unpack { source, rootfs: to, arch } => {
            let opts = unpack::Options { force: to.force, preserve_owners: to.preserve_owners };
            unpack::unpack(&mut ctx, &source, &to.rootfs, arch.as_deref(), opts)
        }
        Command::Push { source, dest, all, chunk_size, arch, docker_types } => {
            let opts = dirimage::Options { arch: arch.as_deref(), docker_types, chunk_size };
            dirimage::push_command(&mut ctx, &source, &dest, all, &opts)
        }
        Command::Copy { src, dst, arch, chunk_size } => {
            copy::copy(&mut ctx, &src, &dst, arch.as_deref(), chunk_size)
        }
        Command::Delete { image } => push::delete(&mut ctx, &image),
    }
}
