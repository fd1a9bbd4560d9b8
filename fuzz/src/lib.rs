//! ferry's modules, compiled from ferry's own source files so the fuzz
//! targets exercise exactly the code the binary runs.
//!
//! ferry is a binary crate without a library; this crate stands in for
//! one. Every module of src/main.rs is included under its own name, so
//! paths like `crate::error` and `crate::commands` resolve here as they do
//! in ferry (the layer walker in `unpack` reaches most of the crate through
//! `commands`). Only the targets' entry points run: the parsers, and the
//! tar layer walker writing into a temporary directory.

// Each target calls a few of the modules' items; the rest is unused here.
#![allow(dead_code, unused_imports, unused_macros)]

#[path = "../../src/auth.rs"]
pub mod auth;
#[path = "../../src/challenge.rs"]
pub mod challenge;
#[path = "../../src/cli.rs"]
pub mod cli;
#[path = "../../src/commands.rs"]
pub mod commands;
#[path = "../../src/convert.rs"]
pub mod convert;
#[path = "../../src/copy.rs"]
pub mod copy;
#[path = "../../src/creds.rs"]
pub mod creds;
#[path = "../../src/digest.rs"]
pub mod digest;
#[path = "../../src/dirimage.rs"]
pub mod dirimage;
#[path = "../../src/error.rs"]
pub mod error;
#[path = "../../src/http.rs"]
pub mod http;
#[path = "../../src/layout.rs"]
pub mod layout;
#[path = "../../src/manifest.rs"]
pub mod manifest;
#[path = "../../src/msg.rs"]
pub mod msg;
#[path = "../../src/pull.rs"]
pub mod pull;
#[path = "../../src/push.rs"]
pub mod push;
#[path = "../../src/reference.rs"]
pub mod reference;
#[path = "../../src/remote.rs"]
pub mod remote;
#[path = "../../src/tls.rs"]
pub mod tls;
#[path = "../../src/unpack.rs"]
pub mod unpack;
#[path = "../../src/url.rs"]
pub mod url;
