//! ferry's one error type and its exit codes.
//!
//! Every failure carries a `Kind` that decides the exit status, a one-line
//! message (`<what failed>: <why>`) and an optional hint the user can act
//! on. Printing is `main`'s job; this module only builds the values.

use std::fmt;
use std::io;

/// What kind of failure ended the run; each maps to one stable exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Anything not covered below (exit 1).
    Failure,
    /// Bad command line or bad image reference (exit 2).
    Usage,
    /// Not found or not authorized: registries do not tell them apart (exit 3).
    NotFound,
    /// The registry rejected the credentials (exit 4).
    Credentials,
    /// Network or TLS failure after retries (exit 5).
    Network,
}

impl Kind {
    /// The process exit status for this kind, as documented in ferry(1).
    pub fn exit_code(self) -> i32 {
        match self {
            Kind::Failure => 1,
            Kind::Usage => 2,
            Kind::NotFound => 3,
            Kind::Credentials => 4,
            Kind::Network => 5,
        }
    }
}

/// A failure: kind, one-line message, optional hint.
#[derive(Debug)]
pub struct Error {
    pub kind: Kind,
    pub msg: String,
    pub hint: Option<String>,
    /// Worth another try: a network failure that may pass (not TLS trust).
    pub transient: bool,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(kind: Kind, msg: impl Into<String>) -> Error {
        Error { kind, msg: msg.into(), hint: None, transient: false }
    }

    pub fn failure(msg: impl Into<String>) -> Error {
        Error::new(Kind::Failure, msg)
    }

    pub fn usage(msg: impl Into<String>) -> Error {
        Error::new(Kind::Usage, msg)
    }

    pub fn not_found(msg: impl Into<String>) -> Error {
        Error::new(Kind::NotFound, msg)
    }

    /// A network failure that may pass: retried, then exit 5.
    pub fn network(msg: impl Into<String>) -> Error {
        Error { transient: true, ..Error::new(Kind::Network, msg) }
    }

    /// An I/O failure on `what` (a path or an action).
    pub fn io(what: impl fmt::Display, err: io::Error) -> Error {
        Error::failure(format!("{what}: {err}"))
    }

    /// Adds (or replaces) the hint printed after the message.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Error {
        self.hint = Some(hint.into());
        self
    }

    /// Prefixes the message with what was being done: `what: msg`.
    pub fn context(mut self, what: impl fmt::Display) -> Error {
        self.msg = format!("{what}: {}", self.msg);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {}

/// Carries an `Error` through `io::Read`/`io::Write`, which only speak
/// `io::Error`; `from_io` unwraps it again at the boundary.
pub fn into_io(err: Error) -> io::Error {
    io::Error::other(err)
}

/// Recovers an `Error` smuggled through `into_io`, or wraps a plain I/O
/// error as a failure on `what`.
#[cfg_attr(not(test), allow(dead_code))] // the pull code unwraps here
pub fn from_io(what: impl fmt::Display, err: io::Error) -> Error {
    if err.get_ref().is_some_and(|e| e.is::<Error>()) {
        // The check above makes this downcast infallible.
        return *err.into_inner().unwrap().downcast::<Error>().unwrap();
    }
    Error::io(what, err)
}

/// Returns early with an `Error` of the given kind built by `format!`.
#[macro_export]
macro_rules! bail {
    ($kind:ident, $($arg:tt)*) => {
        return Err($crate::error::Error::new($crate::error::Kind::$kind, format!($($arg)*)))
    };
}
