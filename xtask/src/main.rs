//! `cargo xtask`: the project's automation, in Rust so it runs wherever cargo does.
//!
//! - `cargo xtask demo`  — build the page, start the local cluster and the bridge, print the URL
//!   (`--bridges N`: N bridges behind NGINX)
//! - `cargo xtask test`  — install what the tests need, then run every check and test
//! - `cargo xtask dist`  — build the page into `target/dist` (`--dev` for a debug build)
//! - `cargo xtask bench` — run the benchmarks (`core`, `bridge`, `web`; all by default)
//! - `cargo xtask setup` — only install the prerequisites

mod bench;
mod demo;
mod dist;
mod nginx;
mod rules;
mod setup;
mod test;
mod util;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (task, rest) = match args.split_first() {
        Some((task, rest)) => (task.as_str(), rest),
        None => ("help", &[][..]),
    };
    let outcome = match task {
        "setup" => setup::run(setup::Needs::all()),
        "test" => test::run(rest),
        "dist" => dist::run(rest),
        "bench" => bench::run(rest),
        "demo" => demo::run(rest),
        "help" | "--help" | "-h" => {
            eprintln!("{}", HELP);
            Ok(())
        }
        other => Err(anyhow::anyhow!("unknown task {other:?}\n\n{HELP}")),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

const HELP: &str = "usage: cargo xtask <task>

tasks:
  demo    build the page, start the local PostgreSQL cluster and the bridge, print the URL
          (--bridges N: N bridges behind NGINX, a load balancer)
  test    install what the tests need, then run every check and test
  dist    build the page into target/dist (--dev for a debug build)
  bench   run the benchmarks: core, bridge, web (all by default)
  setup   install the prerequisites only";
