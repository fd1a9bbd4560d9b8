//! Registry credentials: where they are found, how a terminal is asked for
//! them, and how `ferry login` / `ferry logout` keep them in an auth file.
//!
//! Lookup order (first found wins): `--username` with `--password-stdin`,
//! `FERRY_USERNAME`/`FERRY_PASSWORD`, `CH_IMAGE_USERNAME`/`CH_IMAGE_PASSWORD`,
//! then the auth files in containers/image order with their `credHelpers`,
//! `auths` entries and `credsStore`. The environment comes in as an `Env`
//! snapshot so tests never touch the process environment. This module does
//! not decide when credentials are needed, nor forget them under
//! `--password-many`: `find` is cheap to call again, and that is the
//! caller's business.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, IsTerminal, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_PAD_INDIFFERENT};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::msg;

/// An auth file is a small document the user controls; the bound only keeps
/// `REGISTRY_AUTH_FILE=/dev/zero` from eating memory.
const AUTH_FILE_MAX: u64 = 1 << 20;

/// Bound on what a credential helper may print.
const HELPER_OUTPUT_MAX: u64 = 1 << 20;

/// Bound on one line typed at the prompt (a canonical-mode tty line is 4 KiB).
const ANSWER_MAX: u64 = 64 << 10;

/// The names Docker Hub goes by in auth file keys; all mean one registry.
const DOCKER_HUB_NAMES: [&str; 3] = ["docker.io", "index.docker.io", "registry-1.docker.io"];

/// The server URL docker passes to credential helpers for Docker Hub.
const DOCKER_HUB_HELPER_URL: &str = "https://index.docker.io/v1/";

/// The variable pairs read for credentials, in order.
const ENV_PAIRS: [(&str, &str); 2] =
    [("FERRY_USERNAME", "FERRY_PASSWORD"), ("CH_IMAGE_USERNAME", "CH_IMAGE_PASSWORD")];

const NO_TERMINAL_HINT: &str = "give --username and --password-stdin, set FERRY_USERNAME and \
                                FERRY_PASSWORD, or run ferry login HOST";

/// A username and password for one registry. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Creds {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Creds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Creds")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A snapshot of environment variables. Empty values count as unset, as
/// they do for the XDG variables. `Debug` shows names only, since
/// `FERRY_PASSWORD` may be among them.
#[derive(Clone, Default)]
pub struct Env {
    vars: BTreeMap<OsString, OsString>,
}

impl Env {
    /// The process environment as it is now.
    pub fn from_process() -> Env {
        Env { vars: std::env::vars_os().collect() }
    }

    /// Adds or replaces one variable (for tests and for callers that
    /// build an environment by hand).
    #[cfg_attr(not(test), allow(dead_code))] // tests build environments by hand
    pub fn with(mut self, key: &str, value: impl AsRef<OsStr>) -> Env {
        self.vars.insert(key.into(), value.as_ref().to_owned());
        self
    }

    /// The value of `key` if set, non-empty and valid UTF-8.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.get_os(key)?.to_str()
    }

    /// The value of `key` if set and non-empty.
    pub fn get_os(&self, key: &str) -> Option<&OsStr> {
        self.vars.get(OsStr::new(key)).map(|v| v.as_os_str()).filter(|v| !v.is_empty())
    }

    /// An absolute path from `key`; the XDG spec says relative ones are ignored.
    fn get_abs_path(&self, key: &str) -> Option<PathBuf> {
        self.get_os(key).map(PathBuf::from).filter(|p| p.is_absolute())
    }

    fn home(&self) -> Option<PathBuf> {
        self.get_os("HOME").map(PathBuf::from)
    }
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.vars.keys()).finish()
    }
}

/// Everything credentials may come from, gathered once by the CLI.
#[derive(Clone, Default)]
pub struct Sources {
    /// `--username`.
    pub username: Option<String>,
    /// The password read from stdin for `--password-stdin`.
    pub password: Option<String>,
    /// `--authfile`.
    pub authfile: Option<PathBuf>,
    /// The environment to read variables from.
    pub env: Env,
}

impl fmt::Debug for Sources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sources")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("authfile", &self.authfile)
            .field("env", &self.env)
            .finish()
    }
}

/// Where credentials were found, for `-v` logs. Display reads as a phrase:
/// "credentials for HOST from {origin}".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// `--username` with `--password-stdin`.
    Flags,
    /// An environment pair; holds the username variable's name.
    Env(&'static str),
    /// An `auths` entry in this file.
    AuthFile(PathBuf),
    /// `docker-credential-NAME`, named by `credHelpers` or `credsStore` in `file`.
    Helper { program: String, file: PathBuf },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flags => f.write_str("--username and --password-stdin"),
            Origin::Env(var) => f.write_str(var),
            Origin::AuthFile(path) => write!(f, "auth file {}", path.display()),
            Origin::Helper { program, file } => {
                write!(f, "credential helper {program} (named in {})", file.display())
            }
        }
    }
}

/// Finds credentials for `host` (`HOST[:PORT]` as the registry is named),
/// first found wins. `--username` without a password finds nothing at all:
/// the user said who to be, so the caller should `prompt` for that user
/// rather than pick up someone else from a file. A password without
/// `--username` is a usage error. A malformed auth file or a failing
/// credential helper is an error; a missing file or helper is skipped.
pub fn find(src: &Sources, host: &str) -> Result<Option<(Creds, Origin)>> {
    let host = host.to_ascii_lowercase();

    // Flags.
    match (&src.username, &src.password) {
        (Some(username), Some(password)) => {
            let creds = Creds { username: username.clone(), password: password.clone() };
            return Ok(Some((creds, Origin::Flags)));
        }
        (None, Some(_)) => {
            return Err(Error::usage("--password-stdin needs --username"));
        }
        (Some(_), None) => return Ok(None),
        (None, None) => {}
    }

    // Environment: a pair counts only when both halves are set.
    for (user_var, pass_var) in ENV_PAIRS {
        match (src.env.get(user_var), src.env.get(pass_var)) {
            (Some(username), Some(password)) => {
                let creds = Creds { username: username.into(), password: password.into() };
                return Ok(Some((creds, Origin::Env(user_var))));
            }
            (None, None) => {}
            _ => crate::verbose!("ignoring {user_var}/{pass_var}: only one of the two is set"),
        }
    }

    // Auth files.
    for path in auth_files(src) {
        if let Some(found) = find_in_file(&path, &host, &src.env)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// The auth files to search, in containers/image order, without repeats.
fn auth_files(src: &Sources) -> Vec<PathBuf> {
    let env = &src.env;
    let mut paths = Vec::new();
    paths.extend(src.authfile.clone());
    paths.extend(env.get_os("REGISTRY_AUTH_FILE").map(PathBuf::from));
    paths.extend(env.get_abs_path("XDG_RUNTIME_DIR").map(|d| d.join("containers/auth.json")));
    paths.extend(config_home(env).map(|d| d.join("containers/auth.json")));
    match env.get_os("DOCKER_CONFIG") {
        Some(dir) => paths.push(Path::new(dir).join("config.json")),
        None => paths.extend(env.home().map(|h| h.join(".docker/config.json"))),
    }

    let mut unique: Vec<PathBuf> = Vec::new();
    for path in paths {
        if !unique.contains(&path) {
            unique.push(path);
        }
    }
    unique
}

/// `$XDG_CONFIG_HOME`, else `$HOME/.config`.
fn config_home(env: &Env) -> Option<PathBuf> {
    env.get_abs_path("XDG_CONFIG_HOME").or_else(|| env.home().map(|h| h.join(".config")))
}

/// Looks in one auth file: `credHelpers` for this host, then an `auths`
/// entry holding credentials, then `credsStore`. That is docker's order;
/// docker keeps placeholder `{}` entries in `auths` when a store holds the
/// secret, so an entry without credentials falls through to the store.
fn find_in_file(path: &Path, host: &str, env: &Env) -> Result<Option<(Creds, Origin)>> {
    let Some(doc) = read_json(path)? else {
        return Ok(None);
    };
    let root = doc.as_object().ok_or_else(|| malformed(path, "not a JSON object"))?;

    // credHelpers.
    if let Some(helpers) = root.get("credHelpers") {
        let helpers = helpers
            .as_object()
            .ok_or_else(|| malformed(path, "\"credHelpers\" is not an object"))?;
        for (key, name) in matching(helpers, host) {
            let name = name.as_str().ok_or_else(|| {
                malformed(path, &format!("credHelpers entry {} is not a string", quoted(key)))
            })?;
            if let Some(found) = from_helper(path, name, host, env)? {
                return Ok(Some(found));
            }
        }
    }

    // auths.
    if let Some(auths) = root.get("auths") {
        let auths =
            auths.as_object().ok_or_else(|| malformed(path, "\"auths\" is not an object"))?;
        for (key, entry) in matching(auths, host) {
            if let Some(creds) = decode_entry(path, key, entry)? {
                return Ok(Some((creds, Origin::AuthFile(path.to_path_buf()))));
            }
        }
    }

    // credsStore.
    match root.get("credsStore") {
        None => Ok(None),
        Some(Value::String(name)) if name.is_empty() => Ok(None),
        Some(Value::String(name)) => from_helper(path, name, host, env),
        Some(_) => Err(malformed(path, "\"credsStore\" is not a string")),
    }
}

/// The entries of `map` whose key names `host`, the exact spelling first.
fn matching<'a>(map: &'a Map<String, Value>, host: &str) -> Vec<(&'a String, &'a Value)> {
    let mut found: Vec<_> = map.iter().filter(|(key, _)| key_matches(key, host)).collect();
    found.sort_by_key(|(key, _)| (key.as_str() != host, key.as_str()));
    found
}

/// Whether an auth file key names `host`: `HOST[:PORT]`, optionally with
/// an `http://` or `https://` scheme and a path (`https://index.docker.io/v1/`),
/// and any of Docker Hub's names for Docker Hub.
fn key_matches(key: &str, host: &str) -> bool {
    let key = key.to_ascii_lowercase();
    let rest = key.strip_prefix("https://").or_else(|| key.strip_prefix("http://")).unwrap_or(&key);
    let name = rest.split('/').next().unwrap_or(rest);
    name == host || (is_docker_hub(name) && is_docker_hub(host))
}

fn is_docker_hub(host: &str) -> bool {
    DOCKER_HUB_NAMES.contains(&host)
}

/// Credentials from one `auths` entry: base64 `auth` ("user:pass", the
/// password may hold ':'), or separate `username` and `password` fields.
/// An entry with neither yields nothing.
fn decode_entry(path: &Path, key: &str, entry: &Value) -> Result<Option<Creds>> {
    let what = format!("auths entry {}", quoted(key));
    let entry =
        entry.as_object().ok_or_else(|| malformed(path, &format!("{what} is not an object")))?;

    match entry.get("auth") {
        Some(Value::String(auth)) if !auth.is_empty() => {
            let bad =
                || malformed(path, &format!("{what}: \"auth\" is not base64 of USER:PASSWORD"));
            // Some tools write base64 without padding; accept both.
            let bytes = STANDARD_PAD_INDIFFERENT.decode(auth.trim()).map_err(|_| bad())?;
            let text = String::from_utf8(bytes).map_err(|_| bad())?;
            let (username, password) = text.split_once(':').ok_or_else(bad)?;
            if username.is_empty() {
                return Err(bad());
            }
            return Ok(Some(Creds { username: username.into(), password: password.into() }));
        }
        None | Some(Value::String(_)) => {}
        Some(_) => {
            return Err(malformed(path, &format!("{what}: \"auth\" is not a string")));
        }
    }

    match (entry.get("username"), entry.get("password")) {
        (Some(Value::String(username)), Some(Value::String(password)))
            if !username.is_empty() && !password.is_empty() =>
        {
            Ok(Some(Creds { username: username.clone(), password: password.clone() }))
        }
        _ => Ok(None),
    }
}

/// Runs `docker-credential-NAME get` (named in auth file `path`) for `host`.
/// A helper missing from PATH is skipped, as is its "credentials not found".
fn from_helper(path: &Path, name: &str, host: &str, env: &Env) -> Result<Option<(Creds, Origin)>> {
    // The name is joined to a file name: keep it from climbing directories.
    let name_ok = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !name_ok {
        let why = format!("credential helper name {} is not valid", quoted(name));
        return Err(malformed(path, &why));
    }
    let program = format!("docker-credential-{name}");
    let Some(exe) = find_program(&program, env) else {
        crate::verbose!("{program}, named in {}, is not on PATH; skipping it", path.display());
        return Ok(None);
    };

    // Docker hands helpers its historic Docker Hub URL, so stored entries are
    // under that name; other registries go by HOST[:PORT].
    let server = if is_docker_hub(host) { DOCKER_HUB_HELPER_URL } else { host };
    let creds = run_helper(&exe, &program, server)?;
    Ok(creds.map(|c| (c, Origin::Helper { program, file: path.to_path_buf() })))
}

/// The first executable file called `program` in the snapshot's PATH.
fn find_program(program: &str, env: &Env) -> Option<PathBuf> {
    let path = env.get_os("PATH")?;
    std::env::split_paths(path).map(|dir| dir.join(program)).find(|candidate| {
        fs::metadata(candidate).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// The helper protocol: server URL on stdin, `{"Username","Secret"}` on
/// stdout. No threads, so stdin is written and closed before stdout is read
/// (the URL is far below a pipe buffer), and stderr goes to the user.
fn run_helper(exe: &Path, program: &str, server: &str) -> Result<Option<Creds>> {
    let mut child = Command::new(exe)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| Error::io(format!("running {program}"), e))?;

    // Send the URL; a helper that exits without reading it is judged by its
    // exit status below, so a broken pipe here is not an error of its own.
    if let Some(mut stdin) = child.stdin.take() {
        match stdin.write_all(server.as_bytes()) {
            Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::io(format!("writing to {program}"), e));
            }
            _ => {}
        }
    }

    let mut out = Vec::new();
    let read = match child.stdout.take() {
        Some(stdout) => stdout.take(HELPER_OUTPUT_MAX + 1).read_to_end(&mut out),
        None => Ok(0),
    };
    if read.is_err() || out.len() as u64 > HELPER_OUTPUT_MAX {
        let _ = child.kill();
    }
    let status = child.wait().map_err(|e| Error::io(format!("waiting for {program}"), e))?;
    read.map_err(|e| Error::io(format!("reading from {program}"), e))?;
    if out.len() as u64 > HELPER_OUTPUT_MAX {
        return Err(Error::failure(format!(
            "{program}: printed more than {HELPER_OUTPUT_MAX} bytes"
        )));
    }

    let text = String::from_utf8_lossy(&out);
    if !status.success() {
        // docker-credential-helpers print this (on stdout) for an unknown server.
        if text.contains("credentials not found") {
            return Ok(None);
        }
        return Err(Error::failure(format!(
            "{program} get failed ({status}): {}",
            msg::clean(&text, 200)
        )));
    }

    #[derive(serde::Deserialize)]
    struct Reply {
        #[serde(rename = "Username")]
        username: String,
        #[serde(rename = "Secret")]
        secret: String,
    }
    let reply: Reply = serde_json::from_slice(&out).map_err(|e| {
        Error::failure(format!("{program} get: reply is not the expected JSON: {e}"))
    })?;
    if reply.username.is_empty() || reply.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(Creds { username: reply.username, password: reply.secret }))
}

/// Asks the terminal for credentials for `host` (the username only when not
/// given). Works only when stdin and stderr are terminals and /dev/tty
/// opens; otherwise fails at once, so scripts and CI never hang. The
/// password is read with echo off; Ctrl-C is read as a character meanwhile
/// so the terminal is always restored.
pub fn prompt(host: &str, username: Option<&str>) -> Result<Creds> {
    let no_terminal = || {
        Error::failure(format!("no credentials for {host} and no terminal to ask on"))
            .with_hint(NO_TERMINAL_HINT)
    };
    if !io::stdin().is_terminal() || !io::stderr().is_terminal() {
        return Err(no_terminal());
    }
    let tty = OpenOptions::new().read(true).write(true).open("/dev/tty");
    let tty = tty.map_err(|_| no_terminal())?;
    let mut out = tty.try_clone().map_err(|e| Error::io("/dev/tty", e))?;
    let mut input = BufReader::new(tty);
    let say = |out: &mut File, text: &str| {
        out.write_all(text.as_bytes())
            .and_then(|_| out.flush())
            .map_err(|e| Error::io("/dev/tty", e))
    };

    // Username.
    let username = match username {
        Some(name) => name.to_string(),
        None => {
            say(&mut out, &format!("Username for {host}: "))?;
            let name = read_answer(&mut input)?;
            if name.is_empty() {
                return Err(Error::failure(format!("no username given for {host}")));
            }
            name
        }
    };

    // Password, echo off before the question so no typed character shows.
    let password = {
        let _quiet = Quiet::start()?;
        say(&mut out, &format!("Password for {username}@{host}: "))?;
        read_answer(&mut input)
    };
    say(&mut out, "\n")?;
    Ok(Creds { username, password: password? })
}

/// One line typed at the terminal, without its line end. Ctrl-C (a plain
/// character while `isig` is off) or end of input cancels.
fn read_answer(input: &mut impl BufRead) -> Result<String> {
    let mut line = String::new();
    let n = input
        .take(ANSWER_MAX)
        .read_line(&mut line)
        .map_err(|e| Error::io("reading from the terminal", e))?;
    if n == 0 || line.contains('\x03') {
        return Err(Error::failure("authentication cancelled"));
    }
    let end = line.trim_end_matches(['\n', '\r']).len();
    line.truncate(end);
    Ok(line)
}

/// Terminal echo off until dropped, when the saved settings come back.
/// Signals are off too and Ctrl-C ends the line as a plain character, so
/// it cancels through `read_answer` instead of killing ferry with echo
/// still off. Runs stty(1) on /dev/tty: no libc crate.
struct Quiet {
    saved: String,
}

impl Quiet {
    fn start() -> Result<Quiet> {
        let saved = stty(&["-g"])?;
        let saved = saved.trim().to_string();
        stty(&["-echo", "-isig", "eol", "^C"])?;
        Ok(Quiet { saved })
    }
}

impl Drop for Quiet {
    fn drop(&mut self) {
        // Restoring can only fail if the terminal went away; nothing is left
        // to restore then.
        let _ = stty(&[self.saved.as_str()]);
    }
}

fn stty(args: &[&str]) -> Result<String> {
    let tty = File::open("/dev/tty").map_err(|e| Error::io("/dev/tty", e))?;
    let out = Command::new("stty")
        .args(args)
        .stdin(tty)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| Error::io("running stty", e))?;
    if !out.status.success() {
        return Err(Error::failure(format!("stty {} failed ({})", args.join(" "), out.status)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The file `ferry login` writes and `ferry logout` edits: `--authfile`,
/// else `REGISTRY_AUTH_FILE`, else `$XDG_CONFIG_HOME/containers/auth.json`
/// (`~/.config/containers/auth.json`). Fails only when none of these nor
/// HOME is set.
pub fn login_file(src: &Sources) -> Result<PathBuf> {
    if let Some(path) = &src.authfile {
        return Ok(path.clone());
    }
    if let Some(path) = src.env.get_os("REGISTRY_AUTH_FILE") {
        return Ok(PathBuf::from(path));
    }
    match config_home(&src.env) {
        Some(dir) => Ok(dir.join("containers/auth.json")),
        None => Err(Error::usage("no auth file: HOME is not set")
            .with_hint("give --authfile FILE or set REGISTRY_AUTH_FILE")),
    }
}

/// Stores `creds` for `host` in the auth file at `path` as a base64 `auth`
/// entry (Docker Hub under `docker.io`, as podman does). Other spellings of
/// the same registry are removed so they cannot shadow the new entry; every
/// other key is kept. Written atomically, mode 0600, parent directories
/// created mode 0700.
pub fn store(path: &Path, host: &str, creds: &Creds) -> Result<()> {
    let host = host.to_ascii_lowercase();
    let mut doc = read_json(path)?.unwrap_or_else(|| Value::Object(Map::new()));
    let root = doc.as_object_mut().ok_or_else(|| malformed(path, "not a JSON object"))?;
    let auths = root.entry("auths").or_insert_with(|| Value::Object(Map::new()));
    let auths =
        auths.as_object_mut().ok_or_else(|| malformed(path, "\"auths\" is not an object"))?;

    // Keep whatever else the entry held; drop other credential fields.
    let key = if is_docker_hub(&host) { "docker.io".to_string() } else { host.clone() };
    let mut entry = match auths.remove(&key) {
        Some(Value::Object(entry)) => entry,
        _ => Map::new(),
    };
    auths.retain(|k, _| !key_matches(k, &host));
    for field in ["username", "password", "identitytoken", "registrytoken"] {
        entry.remove(field);
    }
    let pair = format!("{}:{}", creds.username, creds.password);
    entry.insert("auth".into(), Value::String(STANDARD.encode(pair)));
    auths.insert(key, Value::Object(entry));

    write_json(path, &doc)
}

/// Removes every entry for `host` (in any spelling) from the auth file at
/// `path`, keeping all else. Returns whether anything was removed; a
/// missing file or entry is not an error, and leaves the file untouched.
pub fn remove(path: &Path, host: &str) -> Result<bool> {
    let host = host.to_ascii_lowercase();
    let Some(mut doc) = read_json(path)? else {
        return Ok(false);
    };
    let root = doc.as_object_mut().ok_or_else(|| malformed(path, "not a JSON object"))?;
    let Some(auths) = root.get_mut("auths") else {
        return Ok(false);
    };
    let auths =
        auths.as_object_mut().ok_or_else(|| malformed(path, "\"auths\" is not an object"))?;
    let before = auths.len();
    auths.retain(|k, _| !key_matches(k, &host));
    if auths.len() == before {
        return Ok(false);
    }
    write_json(path, &doc)?;
    Ok(true)
}

/// The parsed auth file, or None when it does not exist. An empty file
/// counts as `{}` (a `touch`ed file is not worth an error).
fn read_json(path: &Path) -> Result<Option<Value>> {
    let what = || format!("auth file {}", path.display());
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(what(), e)),
    };
    let mut bytes = Vec::new();
    file.take(AUTH_FILE_MAX + 1).read_to_end(&mut bytes).map_err(|e| Error::io(what(), e))?;
    if bytes.len() as u64 > AUTH_FILE_MAX {
        return Err(malformed(path, &format!("larger than {AUTH_FILE_MAX} bytes")));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Some(Value::Object(Map::new())));
    }
    // serde_json's message gives line and column, never the file's content.
    let doc = serde_json::from_slice(&bytes)
        .map_err(|e| malformed(path, &format!("not valid JSON: {e}")))?;
    Ok(Some(doc))
}

/// Replaces the file at `path` with `doc`: a temporary file in the same
/// directory, mode 0600, synced, then renamed over it, so a crash leaves
/// the old file or the new one, never half of either. A symlinked auth
/// file is written through, keeping the link.
fn write_json(path: &Path, doc: &Value) -> Result<()> {
    let what = |p: &Path| format!("auth file {}", p.display());
    let is_link = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    let target = if is_link {
        fs::canonicalize(path).map_err(|e| Error::io(what(path), e))?
    } else {
        path.to_path_buf()
    };
    let dir = match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| Error::io(dir.display(), e))?;

    let mut bytes = serde_json::to_vec_pretty(doc).map_err(|e| Error::failure(e.to_string()))?;
    bytes.push(b'\n');

    let (tmp, mut file) = create_temp(&dir, &target).map_err(|e| Error::io(what(&target), e))?;
    let written = file
        .write_all(&bytes)
        // umask may have narrowed the mode at creation; 0600 is the promise.
        .and_then(|_| file.set_permissions(fs::Permissions::from_mode(0o600)))
        .and_then(|_| file.sync_all())
        .and_then(|_| fs::rename(&tmp, &target));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io(what(&target), e));
    }
    // Make the rename itself durable; a failure here loses nothing written.
    let _ = File::open(&dir).and_then(|d| d.sync_all());
    Ok(())
}

/// A new file `.NAME.ferry-RANDOM` beside `target`, mode 0600.
fn create_temp(dir: &Path, target: &Path) -> io::Result<(PathBuf, File)> {
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    loop {
        let mut random = [0u8; 8];
        getrandom::getrandom(&mut random).map_err(|e| io::Error::other(e.to_string()))?;
        let tmp = dir.join(format!(".{name}.ferry-{:016x}", u64::from_le_bytes(random)));
        match OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp) {
            Ok(file) => return Ok((tmp, file)),
            // 64 random bits: a collision means someone else's file; retry.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

fn malformed(path: &Path, why: &str) -> Error {
    Error::failure(format!("auth file {}: {why}", path.display()))
        .with_hint("fix the file or remove it")
}

/// A key from a file, quoted and cleaned for an error message.
fn quoted(key: &str) -> String {
    format!("\"{}\"", msg::clean(key, 100))
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    /// Held by every test that writes a script or starts a process: a
    /// script still open for writing in one test's thread is inherited by a
    /// process another thread forks, and exec then fails with ETXTBSY.
    static SPAWN: Mutex<()> = Mutex::new(());

    fn spawn_lock() -> std::sync::MutexGuard<'static, ()> {
        SPAWN.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn b64(text: &str) -> String {
        STANDARD.encode(text)
    }

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn auth_json(key: &str, user_pass: &str) -> String {
        format!(r#"{{"auths": {{"{key}": {{"auth": "{}"}}}}}}"#, b64(user_pass))
    }

    fn sources(env: Env) -> Sources {
        Sources { env, ..Sources::default() }
    }

    fn found(src: &Sources, host: &str) -> Option<(String, String, Origin)> {
        find(src, host).unwrap().map(|(c, o)| (c.username, c.password, o))
    }

    fn user(src: &Sources, host: &str) -> Option<String> {
        found(src, host).map(|(u, _, _)| u)
    }

    #[test]
    fn flags_come_first() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.json");
        write(&file, &auth_json("h:5000", "file:pw"));
        let env = Env::default().with("FERRY_USERNAME", "env").with("FERRY_PASSWORD", "pw");
        let mut src = sources(env);
        src.authfile = Some(file);
        src.username = Some("flag".into());
        src.password = Some("secret".into());
        assert_eq!(found(&src, "h:5000"), Some(("flag".into(), "secret".into(), Origin::Flags)));

        // --username alone means "ask for this user's password", nothing else.
        src.password = None;
        assert_eq!(found(&src, "h:5000"), None);

        src.username = None;
        src.password = Some("secret".into());
        assert!(find(&src, "h:5000").is_err());
    }

    #[test]
    fn environment_pairs_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.json");
        write(&file, &auth_json("h", "file:pw"));
        let env = Env::default()
            .with("REGISTRY_AUTH_FILE", &file)
            .with("FERRY_USERNAME", "ferry")
            .with("FERRY_PASSWORD", "p1")
            .with("CH_IMAGE_USERNAME", "ch")
            .with("CH_IMAGE_PASSWORD", "p2");
        let src = sources(env.clone());
        let got = found(&src, "h");
        assert_eq!(got, Some(("ferry".into(), "p1".into(), Origin::Env("FERRY_USERNAME"))));

        // Half a pair does not count; the next pair does.
        let src = sources(env.clone().with("FERRY_PASSWORD", ""));
        let got = found(&src, "h");
        assert_eq!(got, Some(("ch".into(), "p2".into(), Origin::Env("CH_IMAGE_USERNAME"))));

        // With no pair complete, the auth file answers.
        let src = sources(env.with("FERRY_PASSWORD", "").with("CH_IMAGE_USERNAME", ""));
        assert_eq!(found(&src, "h"), Some(("file".into(), "pw".into(), Origin::AuthFile(file))));
    }

    #[test]
    fn auth_files_in_containers_order() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let flag = d.join("flag.json");
        let registry_auth_file = d.join("raf.json");
        let runtime = d.join("run/containers/auth.json");
        let config = d.join("cfg/containers/auth.json");
        let home_config = d.join("home/.config/containers/auth.json");
        let docker = d.join("dc/config.json");
        let home_docker = d.join("home/.docker/config.json");
        let all =
            [&flag, &registry_auth_file, &runtime, &config, &home_config, &docker, &home_docker];
        for (i, path) in all.iter().enumerate() {
            write(path, &auth_json("h", &format!("u{i}:p")));
        }
        let env = Env::default()
            .with("HOME", d.join("home"))
            .with("REGISTRY_AUTH_FILE", &registry_auth_file)
            .with("XDG_RUNTIME_DIR", d.join("run"))
            .with("XDG_CONFIG_HOME", d.join("cfg"))
            .with("DOCKER_CONFIG", d.join("dc"));
        let mut src = sources(env);
        src.authfile = Some(flag.clone());

        // Each file answers until it is removed; then the next one does.
        let order = [
            (&flag, "u0"),
            (&registry_auth_file, "u1"),
            (&runtime, "u2"),
            (&config, "u3"),
            (&docker, "u5"),
        ];
        for (path, expect) in order {
            let (u, _, origin) = found(&src, "h").unwrap();
            assert_eq!((u.as_str(), origin), (expect, Origin::AuthFile(path.to_path_buf())));
            fs::remove_file(path).unwrap();
        }
        assert_eq!(found(&src, "h"), None);

        // Without XDG_CONFIG_HOME and DOCKER_CONFIG, HOME's defaults count.
        let env = Env::default().with("HOME", d.join("home"));
        assert_eq!(user(&sources(env.clone()), "h").as_deref(), Some("u4"));
        fs::remove_file(&home_config).unwrap();
        assert_eq!(user(&sources(env), "h").as_deref(), Some("u6"));
    }

    #[test]
    fn auth_entries_decode() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.json");
        let src = sources(Env::default().with("REGISTRY_AUTH_FILE", &file));

        // A password may hold ':'; the username may not.
        write(&file, &auth_json("h", "alice:pa:ss:"));
        assert_eq!(
            found(&src, "h").map(|(u, p, _)| (u, p)),
            Some(("alice".into(), "pa:ss:".into()))
        );

        // Unpadded base64 ("a:bc" encodes with one '=').
        write(&file, r#"{"auths": {"h": {"auth": "YTpiYw"}}}"#);
        assert_eq!(found(&src, "h").map(|(u, p, _)| (u, p)), Some(("a".into(), "bc".into())));

        // Separate fields.
        write(&file, r#"{"auths": {"h": {"username": "bob", "password": "x:y"}}}"#);
        assert_eq!(found(&src, "h").map(|(u, p, _)| (u, p)), Some(("bob".into(), "x:y".into())));

        // A placeholder entry yields nothing, and other hosts do not match.
        write(&file, r#"{"auths": {"h": {}, "other": {"auth": "YTpi"}}}"#);
        assert_eq!(found(&src, "h"), None);

        for bad in ["!!!", &b64("no-colon"), &b64(":nouser")] {
            write(&file, &format!(r#"{{"auths": {{"h": {{"auth": "{bad}"}}}}}}"#));
            let err = find(&src, "h").unwrap_err();
            assert!(err.msg.contains(&file.display().to_string()), "{}", err.msg);
            assert!(err.msg.contains("\"h\""), "{}", err.msg);
        }
    }

    #[test]
    fn key_spellings() {
        for key in ["h:5000", "https://h:5000", "http://h:5000", "https://h:5000/v1/", "H:5000"] {
            assert!(key_matches(key, "h:5000"), "{key}");
        }
        for key in ["h", "h:5001", "xh:5000", "h:5000.evil", "https://h", "ftp://h:5000"] {
            assert!(!key_matches(key, "h:5000"), "{key}");
        }
        let hub = [
            "docker.io",
            "index.docker.io",
            "https://index.docker.io/v1/",
            "registry-1.docker.io",
            "https://registry-1.docker.io",
        ];
        for key in hub {
            assert!(key_matches(key, "registry-1.docker.io"), "{key}");
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("a.json");
            write(&file, &auth_json(key, "hub:pw"));
            let src = sources(Env::default().with("REGISTRY_AUTH_FILE", &file));
            assert_eq!(user(&src, "registry-1.docker.io").as_deref(), Some("hub"), "{key}");
            assert_eq!(user(&src, "quay.io"), None);
        }

        // The exact spelling wins over others.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.json");
        let text = format!(
            r#"{{"auths": {{"https://h/v1/": {{"auth": "{}"}}, "h": {{"auth": "{}"}}}}}}"#,
            b64("other:p"),
            b64("exact:p")
        );
        write(&file, &text);
        let src = sources(Env::default().with("REGISTRY_AUTH_FILE", &file));
        assert_eq!(user(&src, "h").as_deref(), Some("exact"));
    }

    #[test]
    fn malformed_and_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.json");
        let later = dir.path().join("later/config.json");
        write(&later, &auth_json("h", "later:pw"));
        let env = Env::default()
            .with("REGISTRY_AUTH_FILE", &file)
            .with("DOCKER_CONFIG", dir.path().join("later"));
        let src = sources(env);

        // Missing: skipped.
        assert_eq!(user(&src, "h").as_deref(), Some("later"));

        // Empty: nothing in it.
        write(&file, "\n");
        assert_eq!(user(&src, "h").as_deref(), Some("later"));

        for bad in ["{", "[]", r#"{"auths": []}"#, r#"{"auths": {"h": 1}}"#, r#"{"credsStore": 1}"#]
        {
            write(&file, bad);
            let err = find(&src, "h").unwrap_err();
            assert!(err.msg.starts_with(&format!("auth file {}: ", file.display())), "{}", err.msg);
            assert!(err.hint.is_some());
        }
    }

    /// A `docker-credential-test` in `dir` that logs its stdin to `dir/log`
    /// and then runs `body`.
    fn helper_script(dir: &Path, name: &str, body: &str) {
        let path = dir.join(format!("docker-credential-{name}"));
        let script = format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 9\ncat > '{}/log'\n{body}\n",
            dir.display()
        );
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o755)
            .open(&path)
            .unwrap();
        file.write_all(script.as_bytes()).unwrap();
        file.sync_all().unwrap();
    }

    #[test]
    fn credential_helpers() {
        let _lock = spawn_lock();
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        fs::create_dir(&bin).unwrap();
        let file = dir.path().join("a.json");
        let env = Env::default()
            .with("REGISTRY_AUTH_FILE", &file)
            .with("PATH", std::env::join_paths([Path::new("/nonexistent"), &bin]).unwrap());
        let src = sources(env);
        let log = || fs::read_to_string(bin.join("log")).unwrap();
        let reply = r#"echo '{"ServerURL":"x","Username":"helped","Secret":"s:3"}'"#;
        helper_script(&bin, "test", reply);

        // credHelpers beats an auths entry; the helper gets HOST[:PORT].
        let text = format!(
            r#"{{"credHelpers": {{"h:5000": "test"}}, "auths": {{"h:5000": {{"auth": "{}"}}}}}}"#,
            b64("file:pw")
        );
        write(&file, &text);
        let (u, p, origin) = found(&src, "h:5000").unwrap();
        assert_eq!((u.as_str(), p.as_str()), ("helped", "s:3"));
        let program = "docker-credential-test".to_string();
        assert_eq!(origin, Origin::Helper { program: program.clone(), file: file.clone() });
        assert_eq!(log(), "h:5000");

        // credsStore comes after auths entries, and Docker Hub is asked by its old URL.
        let text = format!(
            r#"{{"credsStore": "test", "auths": {{"docker.io": {{}}, "h": {{"auth": "{}"}}}}}}"#,
            b64("file:pw")
        );
        write(&file, &text);
        assert_eq!(user(&src, "h").as_deref(), Some("file"));
        assert_eq!(user(&src, "registry-1.docker.io").as_deref(), Some("helped"));
        assert_eq!(log(), DOCKER_HUB_HELPER_URL);

        // "credentials not found" means none.
        helper_script(&bin, "test", "echo 'credentials not found in native keychain'; exit 1");
        assert_eq!(found(&src, "registry-1.docker.io"), None);

        // Any other failure is an error, as is a bad reply.
        helper_script(&bin, "test", "echo 'keyring locked'; exit 1");
        let err = find(&src, "registry-1.docker.io").unwrap_err();
        assert!(err.msg.contains("docker-credential-test get failed"), "{}", err.msg);
        assert!(err.msg.contains("keyring locked"), "{}", err.msg);
        helper_script(&bin, "test", "echo nonsense");
        assert!(find(&src, "registry-1.docker.io").is_err());

        // A helper not on the injected PATH is skipped; a name with '/' is refused.
        write(&file, r#"{"credsStore": "absent"}"#);
        assert_eq!(found(&src, "h"), None);
        write(&file, r#"{"credsStore": "../bin/test"}"#);
        assert!(find(&src, "h").is_err());
    }

    #[test]
    fn helper_output_is_bounded() {
        let _lock = spawn_lock();
        let dir = tempfile::tempdir().unwrap();
        helper_script(dir.path(), "big", "yes 0123456789abcdef | head -c 2000000");
        let file = dir.path().join("a.json");
        write(&file, r#"{"credHelpers": {"h": "big"}}"#);
        let env = Env::default().with("REGISTRY_AUTH_FILE", &file).with("PATH", dir.path());
        let err = find(&sources(env), "h").unwrap_err();
        assert!(err.msg.contains("more than"), "{}", err.msg);
    }

    #[test]
    fn store_and_remove_keep_other_content() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("new/sub/auth.json");
        let creds = Creds { username: "al".into(), password: "p:w".into() };

        // A new file and its directories.
        store(&file, "H:5000", &creds).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(file.parent().unwrap()), 0o700);
        let src = sources(Env::default().with("REGISTRY_AUTH_FILE", &file));
        assert_eq!(
            found(&src, "h:5000").map(|(u, p, _)| (u, p)),
            Some(("al".into(), "p:w".into()))
        );

        // An existing file: unknown keys stay, other spellings of the host go.
        let text = format!(
            r#"{{"credHelpers": {{"gcr.io": "gcloud"}}, "x-extra": [1, 2],
                "auths": {{"other": {{"auth": "{}"}}, "https://index.docker.io/v1/": {{"auth": "{}"}},
                           "docker.io": {{"auth": "old", "email": "a@b"}}}}}}"#,
            b64("o:p"),
            b64("stale:p")
        );
        write(&file, &text);
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        store(&file, "registry-1.docker.io", &creds).unwrap();
        assert_eq!(mode(&file), 0o600);
        let doc: Value = serde_json::from_str(&fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(doc["credHelpers"]["gcr.io"], "gcloud");
        assert_eq!(doc["x-extra"], serde_json::json!([1, 2]));
        assert_eq!(doc["auths"]["other"]["auth"], b64("o:p"));
        assert_eq!(doc["auths"]["docker.io"]["auth"], b64("al:p:w"));
        assert_eq!(doc["auths"]["docker.io"]["email"], "a@b");
        assert_eq!(doc["auths"].as_object().unwrap().len(), 2);

        // Remove: every spelling, nothing else; a second time finds nothing.
        let spelled = doc["auths"].as_object().unwrap().clone();
        let mut doc = doc;
        doc["auths"]["https://index.docker.io/v1/"] = spelled["docker.io"].clone();
        fs::write(&file, doc.to_string()).unwrap();
        assert!(remove(&file, "registry-1.docker.io").unwrap());
        let doc: Value = serde_json::from_str(&fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(doc["auths"].as_object().unwrap().keys().collect::<Vec<_>>(), ["other"]);
        assert_eq!(doc["x-extra"], serde_json::json!([1, 2]));
        assert!(!remove(&file, "registry-1.docker.io").unwrap());
        assert!(!remove(&dir.path().join("missing.json"), "h").unwrap());

        // No temporary files are left beside it.
        let names: Vec<_> =
            fs::read_dir(file.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["auth.json"]);

        // A malformed file is not overwritten.
        fs::write(&file, "{oops").unwrap();
        assert!(store(&file, "h", &creds).is_err());
        assert!(remove(&file, "h").is_err());
        assert_eq!(fs::read_to_string(&file).unwrap(), "{oops");
    }

    #[test]
    fn store_writes_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.json");
        let link = dir.path().join("link.json");
        fs::write(&real, "{}").unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        store(&link, "h", &Creds { username: "u".into(), password: "p".into() }).unwrap();
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert!(fs::read_to_string(&real).unwrap().contains(&b64("u:p")));
    }

    #[test]
    fn login_file_order() {
        let mut src = sources(Env::default());
        assert!(login_file(&src).is_err());
        src.env = src.env.with("HOME", "/home/u");
        assert_eq!(login_file(&src).unwrap(), Path::new("/home/u/.config/containers/auth.json"));
        src.env = src.env.with("XDG_CONFIG_HOME", "/cfg");
        assert_eq!(login_file(&src).unwrap(), Path::new("/cfg/containers/auth.json"));
        src.env = src.env.with("REGISTRY_AUTH_FILE", "/raf.json");
        assert_eq!(login_file(&src).unwrap(), Path::new("/raf.json"));
        src.authfile = Some("/flag.json".into());
        assert_eq!(login_file(&src).unwrap(), Path::new("/flag.json"));
    }

    #[test]
    fn debug_never_shows_passwords() {
        let creds = Creds { username: "u".into(), password: "hunter2".into() };
        let src = Sources {
            username: Some("u".into()),
            password: Some("hunter2".into()),
            authfile: None,
            env: Env::default().with("FERRY_PASSWORD", "hunter2"),
        };
        for text in [format!("{creds:?}"), format!("{src:?}")] {
            assert!(!text.contains("hunter2"), "{text}");
            assert!(text.contains("FERRY_PASSWORD") || text.contains("redacted"), "{text}");
        }
    }

    #[test]
    fn answers_from_the_terminal() {
        let mut input = "alice\r\nsecret with spaces \n".as_bytes();
        assert_eq!(read_answer(&mut input).unwrap(), "alice");
        assert_eq!(read_answer(&mut input).unwrap(), "secret with spaces ");
        assert!(read_answer(&mut input).is_err());
        assert!(read_answer(&mut "pass\x03".as_bytes()).is_err());
    }

    /// Run by `prompt_fails_fast_without_a_terminal` in a child with stdin
    /// from /dev/null; a no-op otherwise.
    #[test]
    fn prompt_child() {
        if std::env::var_os("FERRY_TEST_PROMPT_CHILD").is_none() {
            return;
        }
        let err = prompt("h:5000", None).unwrap_err();
        assert_eq!(err.msg, "no credentials for h:5000 and no terminal to ask on");
        assert_eq!(err.hint.as_deref(), Some(NO_TERMINAL_HINT));
    }

    /// Run by `prompt_reads_a_terminal` on a pseudo-terminal; a no-op otherwise.
    #[test]
    fn prompt_tty_child() {
        if std::env::var_os("FERRY_TEST_PROMPT_TTY").is_none() {
            return;
        }
        let creds = prompt("h:5000", None).unwrap();
        assert_eq!((creds.username.as_str(), creds.password.as_str()), ("alice", "se:cret "));
        let creds = prompt("h:5000", Some("bob")).unwrap();
        assert_eq!((creds.username.as_str(), creds.password.as_str()), ("bob", "two"));
        // Ctrl-C cancels, and echo is back on afterwards.
        assert!(prompt("h:5000", Some("bob")).is_err());
        let settings = stty(&["-a"]).unwrap();
        assert!(settings.split_whitespace().any(|w| w == "echo"), "{settings}");
        assert!(settings.split_whitespace().any(|w| w == "isig"), "{settings}");
    }

    #[test]
    fn prompt_reads_a_terminal() {
        let _lock = spawn_lock();
        // script(1) from util-linux gives the child a pseudo-terminal.
        assert!(
            Command::new("script").arg("--version").output().is_ok(),
            "script(1) not found: install it with `apt-get install bsdutils`"
        );
        let exe = std::env::current_exe().unwrap();
        let command =
            format!("'{}' --exact creds::tests::prompt_tty_child --nocapture", exe.display());
        let mut child = Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .env("FERRY_TEST_PROMPT_TTY", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();

        // Answers are typed ahead; the terminal keeps them until read. Ctrl-C
        // is typed only once the third password question shows, as before
        // that it would still be a signal. A thread reads the output so
        // a hang fails the test instead of blocking it.
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"alice\nse:cret \ntwo\n").unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let (send, receive) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = stdout.read(&mut buf) {
                if send.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        let third = |out: &[u8]| String::from_utf8_lossy(out).matches("Password for").count() >= 3;
        while !third(&out) {
            let left = deadline.saturating_duration_since(Instant::now());
            match receive.recv_timeout(left) {
                Ok(chunk) => out.extend(chunk),
                Err(_) => break,
            }
        }
        stdin.write_all(b"x\x03").unwrap();
        drop(stdin);
        let status = wait_briefly(&mut child);
        while let Ok(chunk) = receive.recv_timeout(Duration::from_secs(5)) {
            out.extend(chunk);
        }
        let out = String::from_utf8_lossy(&out);
        // Typed-ahead answers may be echoed before a question; none after.
        assert!(!out.contains("x^C"), "{out}");
        assert!(status.success(), "{out}");
        assert!(out.contains("1 passed"), "{out}");
    }

    /// Waits for a child that should end soon; a hang fails the test.
    fn wait_briefly(child: &mut std::process::Child) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if start.elapsed() > Duration::from_secs(20) {
                child.kill().unwrap();
                panic!("child hung: {child:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn prompt_fails_fast_without_a_terminal() {
        let _lock = spawn_lock();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "creds::tests::prompt_child", "--nocapture"])
            .env("FERRY_TEST_PROMPT_CHILD", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let status = wait_briefly(&mut child);
        let mut out = String::new();
        child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        assert!(status.success(), "{out}");
        // A filter that matched nothing would pass too.
        assert!(out.contains("1 passed"), "{out}");
    }
}
