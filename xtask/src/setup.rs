//! Installs what the build and the tests need, skipping what is already there:
//! the wasm32 target, Debian packages (Chromium, ChromeDriver, PostgreSQL,
//! docker-compose, Node.js) and the wasm-bindgen CLI at the version in Cargo.lock.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

use crate::util::{cargo, exec, output, root, wasm_bindgen_versions};

/// What to make sure of.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Needs {
    /// `wasm-bindgen` and `wasm-bindgen-test-runner` matching Cargo.lock.
    pub(crate) wasm_bindgen: bool,
    /// Chromium and ChromeDriver.
    pub(crate) browser: bool,
    /// PostgreSQL server binaries.
    pub(crate) postgres: bool,
    /// `docker-compose`, to validate the compose file.
    pub(crate) compose: bool,
    /// Node.js, to run wasm tests.
    pub(crate) node: bool,
}

impl Needs {
    pub(crate) fn all() -> Self {
        Needs {
            wasm_bindgen: true,
            browser: true,
            postgres: true,
            compose: true,
            node: true,
        }
    }

    /// What building the page and running the bridge need.
    pub(crate) fn demo() -> Self {
        Needs {
            wasm_bindgen: true,
            browser: false,
            postgres: true,
            compose: false,
            node: false,
        }
    }
}

pub(crate) fn run(needs: Needs) -> anyhow::Result<()> {
    wasm_target()?;
    debian_packages(needs)?;
    if needs.wasm_bindgen {
        wasm_bindgen_cli()?;
    }
    Ok(())
}

fn wasm_target() -> anyhow::Result<()> {
    let installed =
        output(
            Command::new("rustup")
                .current_dir(root())
                .args(["target", "list", "--installed"]),
        )
        .unwrap_or_default();
    if installed
        .lines()
        .any(|line| line.trim() == "wasm32-unknown-unknown")
    {
        return Ok(());
    }
    exec(Command::new("rustup").current_dir(root()).args([
        "target",
        "add",
        "wasm32-unknown-unknown",
    ]))
}

fn debian_packages(needs: Needs) -> anyhow::Result<()> {
    let mut missing = Vec::new();
    if needs.browser && !Path::new("/usr/bin/chromium").exists() {
        missing.push("chromium");
    }
    if needs.browser && !Path::new("/usr/bin/chromedriver").exists() {
        missing.push("chromium-driver");
    }
    if needs.postgres && !has_postgres() {
        missing.push("postgresql");
    }
    if needs.compose && output(Command::new("docker-compose").arg("version")).is_none() {
        missing.push("docker-compose");
    }
    if needs.node && output(Command::new("node").arg("--version")).is_none() {
        missing.push("nodejs");
    }
    if missing.is_empty() {
        return Ok(());
    }
    let install = format!(
        "apt-get install -y --no-install-recommends {}",
        missing.join(" ")
    );
    let is_root = output(Command::new("id").arg("-u")).is_some_and(|uid| uid.trim() == "0");
    if !is_root || output(Command::new("apt-get").arg("--version")).is_none() {
        bail!(
            "missing {}: install them (on Debian: sudo apt-get update && sudo {install})",
            missing.join(", ")
        );
    }
    exec(Command::new("apt-get").arg("update").arg("-q"))?;
    exec(
        Command::new("sh")
            .arg("-c")
            .arg(&install)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
    .with_context(|| format!("installing {}", missing.join(", ")))
}

/// Whether PostgreSQL's server binaries are installed where the bridge looks.
fn has_postgres() -> bool {
    std::fs::read_dir("/usr/lib/postgresql")
        .map(|versions| {
            versions
                .flatten()
                .any(|version| version.path().join("bin/initdb").exists())
        })
        .unwrap_or(false)
}

/// Installs wasm-bindgen-cli at exactly the wasm-bindgen version in Cargo.lock,
/// unless that version is already on PATH (the build takes minutes).
fn wasm_bindgen_cli() -> anyhow::Result<()> {
    let (wanted, have) = wasm_bindgen_versions()?;
    let runner = output(Command::new("wasm-bindgen-test-runner").arg("--version"));
    if have.as_deref() == Some(wanted.as_str()) && runner.is_some() {
        return Ok(());
    }
    eprintln!(
        "installing wasm-bindgen-cli {wanted} (matches Cargo.lock; takes a few minutes once)"
    );
    exec(cargo().args([
        "install",
        "wasm-bindgen-cli",
        "--version",
        &format!("={wanted}"),
    ]))
}
