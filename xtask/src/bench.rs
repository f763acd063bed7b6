//! `cargo xtask bench [core] [bridge] [web]`: the benchmarks behind BENCHMARKS.md.

use anyhow::bail;

use crate::util::{cargo, exec};

const SUITES: [&str; 3] = ["core", "bridge", "web"];

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let suites: Vec<&str> = if args.is_empty() {
        SUITES.to_vec()
    } else {
        args.iter().map(String::as_str).collect()
    };
    for suite in suites {
        match suite {
            "core" => core()?,
            // Each starts its own local cluster: bridge vs direct tokio-postgres vs
            // pgbench; rows moved per second by a rebalance; a whole shard moved
            // between clusters; time to promote a standby; how soon another
            // bridge follows a layout and what that costs.
            "bridge" => {
                for bench in [
                    "bridge",
                    "rebalance",
                    "shard_move",
                    "failover",
                    "coordination",
                ] {
                    exec(cargo().args(["bench", "-p", "ecoshard-bridge", "--bench", bench]))?;
                }
            }
            "web" => {
                crate::setup::run(crate::setup::Needs::all())?;
                crate::dist::build(false)?;
                exec(cargo().args(["bench", "-p", "ecoshard-web", "--bench", "browser"]))?;
            }
            other => bail!(
                "unknown benchmark suite {other:?}; suites are {}",
                SUITES.join(", ")
            ),
        }
    }
    Ok(())
}

/// Lookups beside published crates, 1M-key plans, builds at the validation
/// bounds, and the wasm32 size of the core's example.
fn core() -> anyhow::Result<()> {
    exec(cargo().args([
        "bench",
        "-p",
        "ecoshard-core",
        "--bench",
        "lookup",
        "--bench",
        "plan",
        "--bench",
        "build",
    ]))?;
    let example = [
        "build",
        "-p",
        "ecoshard-core",
        "--example",
        "quickstart",
        "--target",
        "wasm32-unknown-unknown",
        "--profile",
        "wasm-release",
    ];
    for opt_level in ["3", "s", "z"] {
        exec(
            cargo()
                .args(example)
                .env("CARGO_PROFILE_WASM_RELEASE_OPT_LEVEL", opt_level),
        )?;
        let wasm = crate::util::target_dir()?
            .join("wasm32-unknown-unknown/wasm-release/examples/quickstart.wasm");
        let bytes = std::fs::metadata(&wasm)?.len();
        let gzipped = crate::util::output(
            std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("gzip -9 -c '{}' | wc -c", wasm.display())),
        )
        .unwrap_or_default();
        eprintln!(
            "core example in wasm32 at opt-level {opt_level}: {bytes} bytes, {} gzip -9",
            gzipped.trim()
        );
    }
    Ok(())
}
