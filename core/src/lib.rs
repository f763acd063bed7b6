//! Which shard owns a key: one hashing core for the browser (WebAssembly) and
//! the server, giving the same answer bit for bit on both.
//!
//! # The hash
//!
//! A key is any byte string. Its hash is `xxh3_64_with_seed(key_bytes, seed)`
//! (xxh3-64 from `xxhash-rust`), with seed 0 unless the layout names another.
//! Integer keys are hashed as their 8 little-endian bytes. Every strategy works
//! on that 64-bit hash and nothing else; `std::hash` is never used, so answers do
//! not change between builds, targets or versions.
//!
//! Shards are named; positions derive from names, never from list order
//! (except for modulo and jump, which are defined over positions `0..N`):
//!
//! | strategy | key → shard |
//! |---|---|
//! | `modulo` | `hash % N` |
//! | `jump` | Lamping & Veach's jump hash of `hash` into N buckets |
//! | `ring` | first of `round(vnodes × weight)` points per shard at or after `hash`; point `i` of shard `name` at `xxh3(name ++ le32(i), seed)` |
//! | `rendezvous` | highest `weight / -ln(u)`, `u` from `xxh3(le64(hash), xxh3(name, seed))` (raw comparison when weights are equal) |
//! | `maglev` | `table[hash % M]`, table filled from per-name permutations |
//! | `bounded-load` | ring, but a key set is placed so no shard exceeds `ceil(c × K × weight / total)` |
//!
//! Floating point (jump, weighted rendezvous) is IEEE-754 with `libm`'s
//! functions, identical on every target.
//!
//! # Bounds on the work a layout may cost
//!
//! [`Layout::validate`] (and so [`Layout::build`] and the JSON form) refuses a
//! layout whose build would cost too much, with a typed error naming the limit,
//! so no input makes a build run for seconds. Each bound was chosen so that a
//! build at the bound takes well under a second natively (figures from
//! `cargo bench -p ecoshard-core --bench build`):
//!
//! | bound | limit | a build at the bound |
//! |---|---|---|
//! | ring and bounded-load points, `Σ max(1, round(vnodes × weight))` | [`MAX_RING_POINTS`] (4,194,304) | about 0.17 s |
//! | Maglev `table_size × shards` | [`MAX_MAGLEV_COST`] (20,000,000) | about 0.3 s |
//! | each weight at least [`MIN_WEIGHT_RATIO`] (1e-6) of the largest | — | a lighter shard gets almost no keys and only adds work |
//!
//! The defaults stay well inside them: 256 shards at the default parameters cost
//! 40,960 ring points or 16,777,472 for Maglev; 10,000 ring shards 1,600,000
//! points.
//!
//! # Example
//!
//! ```
//! use ecoshard_core::{plan_numbered, Layout, StrategyKind};
//!
//! let old = Layout::with_count(StrategyKind::Ring, 3)?.build()?;
//! let new = Layout::with_count(StrategyKind::Ring, 4)?.build()?;
//! let shard = old.locate_shard(b"user_42");
//! println!("user_42 lives on {}", shard.name);
//!
//! let plan = plan_numbered(&old, &new, "user_", 10_000);
//! // Close to the ideal 1/4: only keys bound for the new shard move.
//! assert!(plan.moved_fraction() < 0.30);
//! assert_eq!(plan.ideal_fraction, 0.25);
//! # Ok::<(), ecoshard_core::Error>(())
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;
#[cfg(any(test, feature = "std"))]
extern crate std;

mod bounded;
mod error;
mod format;
mod hash;
mod jump;
mod keys;
mod layout;
mod maglev;
mod modulo;
mod placement;
mod plan;
mod prime;
mod rendezvous;
mod ring;
mod router;
mod shard;
mod stats;
#[cfg(feature = "serde")]
pub mod wire;

pub use error::{Error, ErrorKind};
pub use format::thousands;
pub use hash::{DEFAULT_SEED, key_hash, key_hash_u64};
pub use jump::{JUMP_LCG_MULTIPLIER, jump_hash};
pub use keys::{DEFAULT_KEY_PREFIX, numbered_key, numbered_key_hashes};
pub use layout::{
    DEFAULT_LOAD_FACTOR, DEFAULT_TABLE_SIZE, DEFAULT_VNODES, Layout, MAX_LOAD_FACTOR,
    MAX_MAGLEV_COST, MAX_RING_POINTS, MAX_SHARDS, MAX_TABLE_SIZE, MAX_VNODES, MAX_WEIGHT,
    MIN_LOAD_FACTOR, MIN_TABLE_SLOTS_PER_SHARD, MIN_WEIGHT_RATIO, StrategyKind,
};
pub use maglev::MAGLEV_SKIP_SALT;
pub use placement::MAX_CLUSTER_NAME_LEN;
pub use plan::{
    ClusterMoves, ClusterTransfer, Plan, PlanSummary, ShardLoad, ShardMove, Transfer,
    TransferSummary, ideal_fraction, plan, plan_hashes, plan_numbered,
};
pub use router::{Lookup, Router};
pub use shard::{MAX_SHARD_NAME_LEN, Shard};
pub use stats::LoadStats;
