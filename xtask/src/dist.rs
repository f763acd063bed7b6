//! `cargo xtask dist`: builds the page into `<target>/dist` — the web crate
//! for wasm32 (profile `wasm-release`, or `dev` with `--dev`), then the
//! `wasm-bindgen` CLI at the version in Cargo.lock (`--target web`, name and
//! producers sections and debug info stripped), then (not with `--dev`)
//! binaryen's `wasm-opt` from `cargo xtask setup`, then the static files from
//! `web/static/`. `<target>` is cargo's target directory (`target/` unless
//! `CARGO_TARGET_DIR` says otherwise), where the bridge serves `dist/` from.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::util::{cargo, exec, root, target_dir, wasm_bindgen_versions};

/// Name of the generated JS and wasm files (`ecoshard-web.js`, `ecoshard-web_bg.wasm`).
const OUT_NAME: &str = "ecoshard-web";

/// `wasm-opt`'s arguments. The features are those rustc 1.95 emits for
/// wasm32-unknown-unknown (the module's `target_features` section), so
/// binaryen accepts and keeps every instruction wasm-bindgen's output holds.
/// `-Os` with binaryen's inlining off: its inlining shrinks the raw bytes but
/// grows the gzip'd ones, which is what travels, and `-Os` gzips ~600 bytes
/// smaller than `-Oz`; `--low-memory-unused` (the first 1 KiB of memory is
/// never used: Rust puts the stack and data at 1 MiB) ~300 more
/// (BENCHMARKS.md, Web, Size).
const WASM_OPT_ARGS: [&str; 15] = [
    "-Os",
    "--low-memory-unused",
    "--always-inline-max-function-size",
    "0",
    "--one-caller-inline-max-function-size",
    "0",
    "--enable-bulk-memory",
    "--enable-bulk-memory-opt",
    "--enable-call-indirect-overlong",
    "--enable-multivalue",
    "--enable-mutable-globals",
    "--enable-nontrapping-float-to-int",
    "--enable-reference-types",
    "--enable-sign-ext",
    "--strip-producers",
];

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let mut dev = false;
    for arg in args {
        match arg.as_str() {
            "--dev" => dev = true,
            other => bail!("unknown dist option {other:?}; the only one is --dev"),
        }
    }
    let dist = build(dev)?;
    for entry in std::fs::read_dir(&dist).with_context(|| format!("listing {}", dist.display()))? {
        let entry = entry?;
        let size = entry.metadata()?.len();
        eprintln!(
            "  {:>9} bytes  {}",
            size,
            entry.file_name().to_string_lossy()
        );
    }
    eprintln!("page built into {}", dist.display());
    Ok(())
}

/// Builds the page and returns the dist directory.
pub(crate) fn build(dev: bool) -> anyhow::Result<PathBuf> {
    let target = target_dir()?;
    let profile = if dev { "dev" } else { "wasm-release" };
    exec(cargo().args([
        "build",
        "-p",
        "ecoshard-web",
        "--lib",
        "--target",
        "wasm32-unknown-unknown",
        "--profile",
        profile,
    ]))?;
    let profile_dir = if dev { "debug" } else { profile };
    let wasm = target
        .join("wasm32-unknown-unknown")
        .join(profile_dir)
        .join("ecoshard_web.wasm");
    check_bindgen()?;
    let wasm_opt = if dev {
        None
    } else {
        Some(crate::setup::wasm_opt_script()?)
    };

    let staging = target.join("dist.new");
    if staging.exists() {
        std::fs::remove_dir_all(&staging)
            .with_context(|| format!("removing {}", staging.display()))?;
    }
    std::fs::create_dir_all(&staging)?;
    let mut bindgen = Command::new("wasm-bindgen");
    bindgen.arg(&wasm).arg("--out-dir").arg(&staging).args([
        "--out-name",
        OUT_NAME,
        "--target",
        "web",
        "--no-typescript",
    ]);
    if dev {
        bindgen.args(["--debug", "--keep-debug"]);
    } else {
        bindgen.args(["--remove-name-section", "--remove-producers-section"]);
    }
    exec(&mut bindgen)?;
    if let Some(script) = wasm_opt {
        let module = staging.join(format!("{OUT_NAME}_bg.wasm"));
        exec(
            Command::new("node")
                .arg(script)
                .arg(&module)
                .arg("-o")
                .arg(&module)
                .args(WASM_OPT_ARGS),
        )?;
    }
    copy_static(&root().join("web").join("static"), &staging)?;

    let dist = target.join("dist");
    if dist.exists() {
        std::fs::remove_dir_all(&dist).with_context(|| format!("removing {}", dist.display()))?;
    }
    std::fs::rename(&staging, &dist)
        .with_context(|| format!("moving {} to {}", staging.display(), dist.display()))?;
    Ok(dist)
}

fn check_bindgen() -> anyhow::Result<()> {
    let (wanted, have) = wasm_bindgen_versions()?;
    match have {
        Some(version) if version == wanted => Ok(()),
        Some(version) => bail!(
            "wasm-bindgen {version} is installed but Cargo.lock has {wanted}: \
             run `cargo xtask setup` (installs wasm-bindgen-cli {wanted})"
        ),
        None => bail!(
            "the wasm-bindgen CLI is not installed: run `cargo xtask setup` \
             (installs wasm-bindgen-cli {wanted})"
        ),
    }
}

fn copy_static(from: &Path, to: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(from).with_context(|| format!("listing {}", from.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}
