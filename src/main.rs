//! ferry moves container images between registries, OCI layouts and
//! directories. (The crate map is written as the modules land.)

mod error;
mod msg;
mod tls;

fn main() {
    std::process::exit(0);
}
