//! ferry's integration tests: one test binary, modules by subject.
//!
//! Every test runs the real `ferry` binary against servers on loopback:
//! the real registry (`harness`) or the scripted fake (`fake`).

mod common;
mod demo;
mod dirpush;
mod docs;
mod fake;
mod faults;
mod harness;
mod hostile;
mod packaging;
mod pull;
mod push;
mod real;
mod store;
mod unpack;
