//! `cargo xtask demo`: the main job, from a fresh clone.
//!
//! Builds the `ecoshard` command line in release mode and shows the EcoMarket
//! comparison: going from 3 to 4 shards over 300 users with modulo, then with
//! the consistent-hash ring, jump and rendezvous.

use crate::setup::{self, Needs};
use crate::util::{cargo, exec};

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    if let Some(unknown) = args.first() {
        anyhow::bail!("demo takes no arguments (got {unknown:?})");
    }
    setup::run(Needs::none())?;
    exec(cargo().args(["build", "--release", "-p", "ecoshard-bridge"]))?;
    let ecoshard = crate::util::target_dir().join("release/ecoshard");
    for strategy in ["modulo", "ring", "jump", "rendezvous"] {
        eprintln!();
        exec(std::process::Command::new(&ecoshard).args([
            "plan",
            "--strategy",
            strategy,
            "--from",
            "3",
            "--to",
            "4",
        ]))?;
    }
    Ok(())
}
