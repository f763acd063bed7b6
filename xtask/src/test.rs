//! `cargo xtask test`: every check and test, in the order that fails fastest.
//!
//! Steps (all by default; name some to run only those): `rules` (the
//! layering and the other rules ARCHITECTURE.md states, on the source
//! text), `fmt`, `clippy`,
//! `host` (every crate's tests natively, the bridge's against a real local
//! PostgreSQL cluster), `e2e` (builds the page, then drives it in headless
//! Chromium), `wasm` (the core's tests in wasm32 under Node.js).

use anyhow::bail;

use crate::setup::{self, Needs};
use crate::util::{cargo, exec};

const STEPS: [&str; 6] = ["rules", "fmt", "clippy", "host", "e2e", "wasm"];

pub(crate) fn run_steps(steps: &[&str]) -> anyhow::Result<()> {
    for step in steps {
        eprintln!("\n==> {step}");
        match *step {
            "rules" => crate::rules::run(&crate::util::root())?,
            "fmt" => exec(cargo().args(["fmt", "--all", "--check"]))?,
            "clippy" => {
                exec(cargo().args([
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--",
                    "-D",
                    "warnings",
                ]))?;
                exec(cargo().args([
                    "clippy",
                    "-p",
                    "ecoshard-core",
                    "-p",
                    "ecoshard-web",
                    "--all-features",
                    "--target",
                    "wasm32-unknown-unknown",
                    "--",
                    "-D",
                    "warnings",
                ]))?;
            }
            "host" => exec(cargo().args(["test", "--workspace", "--all-features"]))?,
            "e2e" => {
                // The page, and the bridge binary the live-view test starts.
                let dist = crate::dist::build(false)?;
                exec(cargo().args(["build", "-p", "ecoshard-bridge", "--bin", "ecoshard"]))?;
                let bin = crate::util::target_dir()?.join("debug").join("ecoshard");
                exec(
                    cargo()
                        .args(["test", "-p", "ecoshard-web"])
                        .args([
                            "--test",
                            "browser",
                            "--test",
                            "live",
                            "--test",
                            "live_nodes",
                            "--test",
                            "live_load",
                            "--test",
                            "live_clusters",
                            "--test",
                            "live_bridges",
                        ])
                        .args(["--", "--ignored", "--test-threads=1"])
                        .env("ECOSHARD_DIST", dist)
                        .env("ECOSHARD_BIN", bin),
                )?;
            }
            "wasm" => exec(
                cargo()
                    .args([
                        "test",
                        "-p",
                        "ecoshard-core",
                        "--all-features",
                        "--target",
                        "wasm32-unknown-unknown",
                    ])
                    .env(
                        "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER",
                        "wasm-bindgen-test-runner",
                    ),
            )?,
            other => bail!(
                "unknown test step {other:?}; steps are {}",
                STEPS.join(", ")
            ),
        }
    }
    Ok(())
}

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let steps: Vec<&str> = if args.is_empty() {
        STEPS.to_vec()
    } else {
        args.iter().map(String::as_str).collect()
    };
    setup::run(Needs::all())?;
    run_steps(&steps)?;
    eprintln!("\nall {} steps passed", steps.len());
    Ok(())
}
