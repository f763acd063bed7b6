//! `cargo xtask demo`: the main job, from a fresh clone.
//!
//! Installs what is missing (wasm32 target, wasm-bindgen CLI, PostgreSQL),
//! builds the page into `target/dist`, builds the `ecoshard` binary in release
//! mode and installs it (`cargo install --path bridge --locked`, so the
//! README's `ecoshard …` commands work from any terminal), then runs
//! `ecoshard serve`: it starts (or reuses) a local PostgreSQL primary and two
//! streaming standbys on loopback, serves the page and the API, and prints
//! the URL. Ctrl-C stops the bridge and the servers it started. Arguments
//! after `demo` go to `ecoshard serve` (e.g. `--listen 127.0.0.1:9090`).

use std::path::PathBuf;

use crate::setup::{self, Needs};
use crate::util::{cargo, exec, target_dir};

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    setup::run(Needs::demo())?;
    let dist = crate::dist::build(false)?;
    // Builds into target/release (the workspace's target directory, as with
    // `cargo build --release`), then copies the binary into cargo's bin directory.
    exec(cargo().args([
        "install", "--path", "bridge", "--locked", "--bin", "ecoshard",
    ]))?;
    say_where_it_is(&install_bin_dir());
    let ecoshard = target_dir()?.join("release/ecoshard");
    exec(
        std::process::Command::new(&ecoshard)
            .arg("serve")
            .arg("--web-dir")
            .arg(&dist)
            .args(args),
    )
}

/// Where `cargo install` puts binaries: `$CARGO_INSTALL_ROOT/bin`, else
/// `$CARGO_HOME/bin`, else `~/.cargo/bin` (an `install.root` in a cargo
/// config is not looked at).
fn install_bin_dir() -> PathBuf {
    let root = std::env::var_os("CARGO_INSTALL_ROOT")
        .or_else(|| std::env::var_os("CARGO_HOME"))
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from(".cargo"));
    root.join("bin")
}

fn say_where_it_is(bin_dir: &std::path::Path) {
    let on_path = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir == bin_dir));
    if on_path {
        eprintln!(
            "installed {}: `ecoshard --help` works in any terminal",
            bin_dir.join("ecoshard").display()
        );
    } else {
        eprintln!(
            "installed {}; {} is not on your PATH: add it (rustup's ~/.cargo/env does) to type `ecoshard`",
            bin_dir.join("ecoshard").display(),
            bin_dir.display()
        );
    }
}
