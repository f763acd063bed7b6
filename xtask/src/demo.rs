//! `cargo xtask demo`: the main job, from a fresh clone.
//!
//! Installs what is missing (wasm32 target, wasm-bindgen CLI, PostgreSQL),
//! builds the page into `target/dist` and the `ecoshard` binary in release
//! mode, then runs `ecoshard serve`: it starts (or reuses) a local PostgreSQL
//! primary and two streaming standbys on loopback, serves the page and the API,
//! and prints the URL. Ctrl-C stops the bridge and the servers it started.
//! Arguments after `demo` go to `ecoshard serve` (e.g. `--listen 127.0.0.1:9090`).

use crate::setup::{self, Needs};
use crate::util::{cargo, exec, target_dir};

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    setup::run(Needs::demo())?;
    let dist = crate::dist::build(false)?;
    exec(cargo().args([
        "build",
        "--release",
        "-p",
        "ecoshard-bridge",
        "--bin",
        "ecoshard",
    ]))?;
    let ecoshard = target_dir()?.join("release/ecoshard");
    exec(
        std::process::Command::new(&ecoshard)
            .arg("serve")
            .arg("--web-dir")
            .arg(&dist)
            .args(args),
    )
}
