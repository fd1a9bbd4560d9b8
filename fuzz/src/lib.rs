//! ferry's parsers of untrusted input, compiled from ferry's own source
//! files so the fuzz targets exercise exactly the code the binary runs.
//!
//! ferry is a binary crate without a library; this crate stands in for
//! one. The modules keep their names, so their `crate::error`,
//! `crate::msg` and `crate::digest` paths resolve here as they do in ferry.
//! Only the parsers and what they use are included: nothing here talks to
//! the network or the disk.

// Each target calls a few of the modules' items; the rest is unused here.
#![allow(dead_code, unused_imports, unused_macros)]

#[path = "../../src/challenge.rs"]
pub mod challenge;
#[path = "../../src/digest.rs"]
pub mod digest;
#[path = "../../src/error.rs"]
pub mod error;
#[path = "../../src/manifest.rs"]
pub mod manifest;
#[path = "../../src/msg.rs"]
pub mod msg;
#[path = "../../src/reference.rs"]
pub mod reference;
