//! The real-registry test harness: certificates, a `docker-registry`
//! fixture with no auth, Basic or token auth, the token server behind
//! token auth, and test images pushed with skopeo.
//!
//! Tests start a [`Registry`] of their own (they run in parallel), push
//! what they need with [`Registry::push`], [`Registry::push_index`] or
//! [`Registry::push_docker_list`], and
//! drive ferry with `--ca-cert registry.ca_cert()`. `selftest` checks the
//! harness itself without ferry.

// Each test binary module uses a different part of the harness.
#![allow(dead_code)]

pub mod certs;
pub mod images;
pub mod registry;
mod selftest;
pub mod token;

pub use images::{ImageSpec, sha256};
pub use registry::{Auth, Registry};

/// The one user every Basic and token registry knows.
pub const USERNAME: &str = "ferry-user";
/// Distinctive, so a test can search output for it.
pub const PASSWORD: &str = "Pw-9f3c1e7a-NEVER-PRINT";
