//! Installs what the build and the tests need, skipping what is already there:
//! the wasm32 target, Debian packages (Chromium, ChromeDriver, PostgreSQL,
//! NGINX, docker-compose, Node.js, npm), the wasm-bindgen CLI at the version in
//! Cargo.lock, and binaryen's `wasm-opt` from the npm registry at
//! [`BINARYEN_VERSION`] (it runs under Node.js; Debian's binaryen is too old
//! to read what rustc emits).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::util::{cargo, exec, output, root, target_dir, wasm_bindgen_versions};

/// The `binaryen` npm package `cargo xtask dist` runs `wasm-opt` from.
pub(crate) const BINARYEN_VERSION: &str = "132.0.0";

/// What to make sure of.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Needs {
    /// `wasm-bindgen` and `wasm-bindgen-test-runner` matching Cargo.lock.
    pub(crate) wasm_bindgen: bool,
    /// Chromium and ChromeDriver.
    pub(crate) browser: bool,
    /// PostgreSQL server binaries.
    pub(crate) postgres: bool,
    /// NGINX, the load balancer in front of several bridges (run
    /// unprivileged from a config under `target/`, never as a service).
    pub(crate) nginx: bool,
    /// `docker-compose`, to validate the compose file.
    pub(crate) compose: bool,
    /// Node.js, to run wasm tests.
    pub(crate) node: bool,
    /// binaryen's `wasm-opt` (with Node.js and npm), for the page's release build.
    pub(crate) wasm_opt: bool,
}

impl Needs {
    pub(crate) fn all() -> Self {
        Needs {
            wasm_bindgen: true,
            browser: true,
            postgres: true,
            nginx: true,
            compose: true,
            node: true,
            wasm_opt: true,
        }
    }

    /// What building the page and running the bridge need.
    pub(crate) fn demo() -> Self {
        Needs {
            wasm_bindgen: true,
            browser: false,
            postgres: true,
            nginx: false,
            compose: false,
            node: false,
            wasm_opt: true,
        }
    }
}

pub(crate) fn run(needs: Needs) -> anyhow::Result<()> {
    wasm_target()?;
    debian_packages(needs)?;
    if needs.wasm_bindgen {
        wasm_bindgen_cli()?;
    }
    if needs.wasm_opt {
        binaryen()?;
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
    if needs.nginx && !Path::new(NGINX).exists() {
        missing.push("nginx");
    }
    if needs.compose && output(Command::new("docker-compose").arg("version")).is_none() {
        missing.push("docker-compose");
    }
    if (needs.node || needs.wasm_opt) && output(Command::new("node").arg("--version")).is_none() {
        missing.push("nodejs");
    }
    if needs.wasm_opt && output(Command::new("npm").arg("--version")).is_none() {
        missing.push("npm");
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

/// Debian's NGINX binary (package `nginx`).
pub(crate) const NGINX: &str = "/usr/sbin/nginx";

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

/// Where `npm install --prefix` puts binaryen: `<target>/binaryen`.
fn binaryen_prefix() -> anyhow::Result<PathBuf> {
    Ok(target_dir()?.join("binaryen"))
}

/// The `wasm-opt` script of the installed binaryen package (run it with
/// `node`), or why there is none at [`BINARYEN_VERSION`].
pub(crate) fn wasm_opt_script() -> anyhow::Result<PathBuf> {
    let package = binaryen_prefix()?.join("node_modules").join("binaryen");
    let manifest = std::fs::read_to_string(package.join("package.json")).unwrap_or_default();
    let wanted = format!("\"version\": \"{BINARYEN_VERSION}\"");
    if !manifest.contains(&wanted) {
        bail!(
            "binaryen {BINARYEN_VERSION} (wasm-opt) is not installed under {}: \
             run `cargo xtask setup`",
            package.display()
        );
    }
    Ok(package.join("bin").join("wasm-opt"))
}

/// Installs the binaryen npm package at [`BINARYEN_VERSION`] under the target
/// directory, unless that version is there already.
fn binaryen() -> anyhow::Result<()> {
    if wasm_opt_script().is_ok() {
        return Ok(());
    }
    let prefix = binaryen_prefix()?;
    std::fs::create_dir_all(&prefix).with_context(|| format!("creating {}", prefix.display()))?;
    exec(
        Command::new("npm")
            .arg("install")
            .arg("--prefix")
            .arg(&prefix)
            .args(["--no-save", "--no-audit", "--no-fund", "--no-package-lock"])
            .arg(format!("binaryen@{BINARYEN_VERSION}")),
    )?;
    wasm_opt_script().map(drop)
}
