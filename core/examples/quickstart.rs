//! The README's library example (README.md shows this file after these lines,
//! byte for byte; `core/tests/readme.rs` checks it): locate keys, then plan
//! adding a shard. Run with `cargo run -p ecoshard-core --example quickstart`.

use ecoshard_core::{Layout, Shard, StrategyKind, plan_numbered};

fn main() -> Result<(), ecoshard_core::Error> {
    // Four shards s0..s3 on a consistent-hash ring (160 virtual nodes each).
    let router = Layout::with_count(StrategyKind::Ring, 4)?.build()?;
    for key in ["user_1", "user_2", "user_42"] {
        println!("{key} -> {}", router.locate_shard(key.as_bytes()).name);
    }

    // What moves if a fifth shard joins?
    let mut grown = router.layout().clone();
    grown.shards.push(Shard::new(grown.next_shard_name()));
    let plan = plan_numbered(&router, &grown.build()?, "user_", 100_000);
    println!(
        "adding {}: {} of {} keys move ({:.1} %, ideal {:.1} %)",
        grown.shards[4].name,
        plan.moved,
        plan.total,
        plan.moved_fraction() * 100.0,
        plan.ideal_fraction * 100.0
    );
    Ok(())
}
