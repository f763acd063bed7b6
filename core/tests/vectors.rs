//! Pinned test vectors: key → shard index for every strategy, at several shard
//! counts, seeds and weights, and key → hash for the hash spec itself.
//!
//! The expected values come from an independent implementation of the spec in
//! the crate docs (a separate program using another xxh3 implementation), not
//! from this crate. The same table runs natively and on wasm32 (`cargo xtask
//! test` runs it under Node.js), so the browser and the server agree bit for bit.

use ecoshard_core::{Layout, Shard, StrategyKind, key_hash, numbered_key, plan_numbered};

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

/// Keys `user_0` … `user_23`.
const KEY_COUNT: u64 = 24;

/// key bytes, seed, xxh3-64 of the key with that seed.
const HASHES: &[(&[u8], u64, u64)] = &[
    (b"", 0, 0x2d06800538d394c2),
    (b"user_0", 0, 0x9f72f3c4290606de),
    (b"user_299", 0, 0x2c9f40a922eadb56),
    (b"user_0", 42, 0x89e5f126c8c739f2),
    (&[99, 97, 102, 195, 169], 0, 0x4c83dbd5f29d367f),
    (&[0, 255, 128, 1], 7, 0x610317aabc151757),
    (&[b'x'; 300], 0, 0xa5d1b4607dc83554),
    (b"'; DROP TABLE users; --", 0, 0x21528f6c0cb8c622),
];

enum Shards {
    Count(u64),
    Weighted(&'static [(&'static str, f64)]),
}

struct Params {
    seed: u64,
    vnodes: u32,
    table_size: u32,
    load_factor: f64,
}

const DEFAULT: Params = Params {
    seed: 0,
    vnodes: 160,
    table_size: 65_537,
    load_factor: 1.25,
};

struct Vector {
    strategy: &'static str,
    shards: Shards,
    params: Params,
    /// Shard index of `user_0` … `user_23`, placed as one set, in order.
    shard_index: &'static [u32],
}

#[rustfmt::skip]
const VECTORS: &[Vector] = &[
    Vector { strategy: "modulo", shards: Shards::Count(1), params: Params { seed: 0, ..DEFAULT }, shard_index: &[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0] },
    Vector { strategy: "jump", shards: Shards::Count(1), params: Params { seed: 0, ..DEFAULT }, shard_index: &[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0] },
    Vector { strategy: "ring", shards: Shards::Count(1), params: Params { seed: 0, ..DEFAULT }, shard_index: &[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0] },
    Vector { strategy: "rendezvous", shards: Shards::Count(1), params: Params { seed: 0, ..DEFAULT }, shard_index: &[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0] },
    Vector { strategy: "maglev", shards: Shards::Count(1), params: Params { seed: 0, ..DEFAULT }, shard_index: &[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0] },
    Vector { strategy: "bounded-load", shards: Shards::Count(1), params: Params { seed: 0, ..DEFAULT }, shard_index: &[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0] },
    Vector { strategy: "modulo", shards: Shards::Count(3), params: Params { seed: 0, ..DEFAULT }, shard_index: &[0,1,0,1,1,2,0,2,1,1,1,2,2,1,2,2,1,0,2,0,2,2,1,2] },
    Vector { strategy: "jump", shards: Shards::Count(3), params: Params { seed: 0, ..DEFAULT }, shard_index: &[2,1,0,0,0,0,1,0,0,1,0,1,1,2,0,0,2,0,0,0,2,1,0,2] },
    Vector { strategy: "ring", shards: Shards::Count(3), params: Params { seed: 0, ..DEFAULT }, shard_index: &[2,0,0,1,2,1,2,0,0,1,0,2,1,1,0,0,1,1,1,2,1,1,2,2] },
    Vector { strategy: "rendezvous", shards: Shards::Count(3), params: Params { seed: 0, ..DEFAULT }, shard_index: &[1,2,1,0,2,1,1,0,2,1,0,1,0,1,0,1,1,0,0,2,2,1,0,0] },
    Vector { strategy: "maglev", shards: Shards::Count(3), params: Params { seed: 0, ..DEFAULT }, shard_index: &[2,0,1,2,0,2,2,2,1,1,0,1,1,2,0,1,1,2,1,1,0,0,0,0] },
    Vector { strategy: "bounded-load", shards: Shards::Count(3), params: Params { seed: 0, ..DEFAULT }, shard_index: &[2,0,0,1,2,1,2,0,0,1,0,2,1,1,0,0,1,1,1,2,1,1,2,2] },
    Vector { strategy: "modulo", shards: Shards::Count(4), params: Params { seed: 0, ..DEFAULT }, shard_index: &[2,1,2,1,0,2,2,3,1,0,0,1,1,1,2,2,0,2,3,2,3,3,2,3] },
    Vector { strategy: "jump", shards: Shards::Count(4), params: Params { seed: 0, ..DEFAULT }, shard_index: &[2,1,0,0,3,3,1,0,0,3,0,1,1,3,0,0,2,3,0,0,2,1,0,2] },
    Vector { strategy: "ring", shards: Shards::Count(4), params: Params { seed: 0, ..DEFAULT }, shard_index: &[3,3,0,1,2,1,2,3,0,1,3,2,1,1,0,3,1,1,1,2,1,1,2,2] },
    Vector { strategy: "rendezvous", shards: Shards::Count(4), params: Params { seed: 0, ..DEFAULT }, shard_index: &[3,2,1,3,2,1,1,0,2,1,0,1,0,1,0,1,1,3,0,2,2,1,3,0] },
    Vector { strategy: "maglev", shards: Shards::Count(4), params: Params { seed: 0, ..DEFAULT }, shard_index: &[3,3,1,2,0,2,2,2,1,1,0,1,3,3,0,1,3,2,3,3,3,3,0,3] },
    Vector { strategy: "bounded-load", shards: Shards::Count(4), params: Params { seed: 0, ..DEFAULT }, shard_index: &[3,3,0,1,2,1,2,3,0,1,3,2,1,1,0,3,1,1,1,2,0,0,2,2] },
    Vector { strategy: "modulo", shards: Shards::Count(16), params: Params { seed: 0, ..DEFAULT }, shard_index: &[14,1,10,13,8,14,10,15,5,8,4,1,9,1,2,14,0,14,7,10,7,3,10,7] },
    Vector { strategy: "jump", shards: Shards::Count(16), params: Params { seed: 0, ..DEFAULT }, shard_index: &[9,4,13,12,7,11,8,9,4,13,11,1,11,4,11,14,12,7,7,0,9,7,7,9] },
    Vector { strategy: "ring", shards: Shards::Count(16), params: Params { seed: 0, ..DEFAULT }, shard_index: &[8,9,15,10,2,1,14,14,8,1,5,9,12,12,0,4,4,15,7,2,9,1,2,14] },
    Vector { strategy: "rendezvous", shards: Shards::Count(16), params: Params { seed: 0, ..DEFAULT }, shard_index: &[12,2,4,3,10,1,11,0,14,1,12,14,5,1,14,14,14,4,13,8,6,6,7,5] },
    Vector { strategy: "maglev", shards: Shards::Count(16), params: Params { seed: 0, ..DEFAULT }, shard_index: &[3,11,8,12,0,6,12,2,7,5,0,5,5,3,14,1,10,2,5,3,15,5,14,8] },
    Vector { strategy: "bounded-load", shards: Shards::Count(16), params: Params { seed: 0, ..DEFAULT }, shard_index: &[8,9,15,10,2,1,14,14,8,1,5,9,12,12,0,4,4,15,7,2,10,0,13,11] },
    Vector { strategy: "modulo", shards: Shards::Count(1), params: Params { seed: 42, ..DEFAULT }, shard_index: &[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0] },
    Vector { strategy: "jump", shards: Shards::Count(1), params: Params { seed: 42, ..DEFAULT }, shard_index: &[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0] },
    Vector { strategy: "ring", shards: Shards::Count(1), params: Params { seed: 42, ..DEFAULT }, shard_index: &[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0] },
    Vector { strategy: "rendezvous", shards: Shards::Count(1), params: Params { seed: 42, ..DEFAULT }, shard_index: &[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0] },
    Vector { strategy: "maglev", shards: Shards::Count(1), params: Params { seed: 42, ..DEFAULT }, shard_index: &[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0] },
    Vector { strategy: "bounded-load", shards: Shards::Count(1), params: Params { seed: 42, ..DEFAULT }, shard_index: &[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0] },
    Vector { strategy: "modulo", shards: Shards::Count(3), params: Params { seed: 42, ..DEFAULT }, shard_index: &[2,0,0,2,1,2,2,1,0,0,2,1,0,2,0,0,0,0,1,2,0,1,0,1] },
    Vector { strategy: "jump", shards: Shards::Count(3), params: Params { seed: 42, ..DEFAULT }, shard_index: &[2,1,0,0,2,1,1,0,0,1,1,2,2,0,1,2,2,2,2,0,1,1,2,1] },
    Vector { strategy: "ring", shards: Shards::Count(3), params: Params { seed: 42, ..DEFAULT }, shard_index: &[0,1,0,2,1,2,0,1,1,1,0,0,1,1,2,1,0,1,0,0,1,0,2,1] },
    Vector { strategy: "rendezvous", shards: Shards::Count(3), params: Params { seed: 42, ..DEFAULT }, shard_index: &[2,2,2,1,1,1,0,1,2,1,2,1,1,1,0,1,1,0,0,0,1,2,1,0] },
    Vector { strategy: "maglev", shards: Shards::Count(3), params: Params { seed: 42, ..DEFAULT }, shard_index: &[0,2,1,1,1,0,2,0,0,0,1,2,0,0,0,1,0,2,0,1,1,1,1,0] },
    Vector { strategy: "bounded-load", shards: Shards::Count(3), params: Params { seed: 42, ..DEFAULT }, shard_index: &[0,1,0,2,1,2,0,1,1,1,0,0,1,1,2,1,0,1,0,0,1,0,2,0] },
    Vector { strategy: "modulo", shards: Shards::Count(4), params: Params { seed: 42, ..DEFAULT }, shard_index: &[2,3,1,1,2,3,1,3,3,2,0,1,0,3,2,0,1,0,2,0,1,2,2,1] },
    Vector { strategy: "jump", shards: Shards::Count(4), params: Params { seed: 42, ..DEFAULT }, shard_index: &[3,1,0,0,2,3,1,0,3,1,1,2,2,3,1,3,2,2,2,3,1,3,2,1] },
    Vector { strategy: "ring", shards: Shards::Count(4), params: Params { seed: 42, ..DEFAULT }, shard_index: &[0,1,0,3,1,2,0,3,1,1,0,3,1,1,2,1,0,1,0,0,1,0,3,3] },
    Vector { strategy: "rendezvous", shards: Shards::Count(4), params: Params { seed: 42, ..DEFAULT }, shard_index: &[2,2,3,1,1,1,0,3,2,3,2,1,3,3,0,1,1,0,0,3,1,2,3,0] },
    Vector { strategy: "maglev", shards: Shards::Count(4), params: Params { seed: 42, ..DEFAULT }, shard_index: &[0,3,3,1,3,0,3,3,0,0,3,3,0,3,3,1,0,3,0,1,1,1,1,0] },
    Vector { strategy: "bounded-load", shards: Shards::Count(4), params: Params { seed: 42, ..DEFAULT }, shard_index: &[0,1,0,3,1,2,0,3,1,1,0,3,1,1,2,1,0,1,0,0,0,3,3,3] },
    Vector { strategy: "modulo", shards: Shards::Count(16), params: Params { seed: 42, ..DEFAULT }, shard_index: &[2,11,13,9,2,11,13,15,7,6,12,13,0,15,14,12,1,12,10,0,5,2,10,9] },
    Vector { strategy: "jump", shards: Shards::Count(16), params: Params { seed: 42, ..DEFAULT }, shard_index: &[7,1,0,14,2,7,8,9,3,1,12,15,2,7,7,4,4,2,4,3,14,14,2,8] },
    Vector { strategy: "ring", shards: Shards::Count(16), params: Params { seed: 42, ..DEFAULT }, shard_index: &[7,14,4,3,9,2,12,5,11,9,0,7,15,14,4,15,0,1,0,15,12,15,14,11] },
    Vector { strategy: "rendezvous", shards: Shards::Count(16), params: Params { seed: 42, ..DEFAULT }, shard_index: &[9,2,3,15,13,10,0,5,2,6,7,15,5,13,0,1,5,0,0,14,6,2,12,4] },
    Vector { strategy: "maglev", shards: Shards::Count(16), params: Params { seed: 42, ..DEFAULT }, shard_index: &[0,11,4,12,13,10,6,3,12,10,3,7,9,13,12,11,11,13,9,1,11,14,5,10] },
    Vector { strategy: "bounded-load", shards: Shards::Count(16), params: Params { seed: 42, ..DEFAULT }, shard_index: &[7,14,4,3,9,2,12,5,11,9,0,7,15,14,4,15,0,1,6,3,12,13,2,11] },
    Vector { strategy: "ring", shards: Shards::Weighted(&[("a", 1.0), ("b", 2.0), ("c", 0.5)]), params: Params { seed: 7, vnodes: 40, table_size: 1009, load_factor: 1.1 }, shard_index: &[0,2,1,0,1,1,1,0,1,1,2,0,0,0,0,0,0,1,0,1,1,0,1,1] },
    Vector { strategy: "rendezvous", shards: Shards::Weighted(&[("a", 1.0), ("b", 2.0), ("c", 0.5)]), params: Params { seed: 7, vnodes: 40, table_size: 1009, load_factor: 1.1 }, shard_index: &[0,2,1,1,1,1,0,0,0,0,2,0,1,2,0,1,2,1,1,0,1,1,1,0] },
    Vector { strategy: "maglev", shards: Shards::Weighted(&[("a", 1.0), ("b", 2.0), ("c", 0.5)]), params: Params { seed: 7, vnodes: 40, table_size: 1009, load_factor: 1.1 }, shard_index: &[1,1,1,1,1,2,1,2,1,1,1,1,0,1,1,1,0,1,1,0,1,0,0,0] },
    Vector { strategy: "bounded-load", shards: Shards::Weighted(&[("a", 1.0), ("b", 2.0), ("c", 0.5)]), params: Params { seed: 7, vnodes: 40, table_size: 1009, load_factor: 1.1 }, shard_index: &[0,2,1,0,1,1,1,0,1,1,2,0,0,0,0,0,2,1,2,1,1,1,1,1] },

];

fn layout(vector: &Vector) -> Layout {
    let strategy: StrategyKind = vector.strategy.parse().expect("known strategy");
    let layout = match vector.shards {
        Shards::Count(count) => Layout::with_count(strategy, count).expect("valid count"),
        Shards::Weighted(shards) => Layout::new(
            strategy,
            shards
                .iter()
                .map(|(name, weight)| Shard::weighted(*name, *weight))
                .collect(),
        ),
    };
    layout
        .with_seed(vector.params.seed)
        .with_vnodes(vector.params.vnodes)
        .with_table_size(vector.params.table_size)
        .with_load_factor(vector.params.load_factor)
}

#[test]
fn key_hashes_match_the_spec() {
    for (key, seed, expected) in HASHES {
        assert_eq!(key_hash(key, *seed), *expected, "key {key:?} seed {seed}");
    }
}

#[test]
fn every_strategy_places_keys_as_pinned() {
    let mut buf = Vec::new();
    for vector in VECTORS {
        let router = layout(vector).build().expect("valid layout");
        let hashes: Vec<u64> = (0..KEY_COUNT)
            .map(|index| {
                numbered_key("user_", index, &mut buf);
                router.key_hash(&buf)
            })
            .collect();
        let mut placed = Vec::new();
        router.assign(&hashes, &mut placed);
        assert_eq!(
            placed,
            vector.shard_index,
            "{} over {} shards, seed {}",
            vector.strategy,
            router.shard_count(),
            vector.params.seed
        );
        if vector.strategy != "bounded-load" {
            for (index, hash) in hashes.iter().enumerate() {
                numbered_key("user_", index as u64, &mut buf);
                assert_eq!(router.locate(&buf) as u32, vector.shard_index[index]);
                assert_eq!(router.key_hash(&buf), *hash);
            }
        }
    }
}

/// strategy, shard count before, after, keys moved among `user_0` … `user_1999`.
const MOVED: &[(&str, u64, u64, u64)] = &[
    ("modulo", 3, 4, 1501),
    ("modulo", 4, 3, 1501),
    ("modulo", 10, 11, 1835),
    ("jump", 3, 4, 518),
    ("jump", 4, 3, 518),
    ("jump", 10, 11, 195),
    ("ring", 3, 4, 476),
    ("ring", 4, 3, 476),
    ("ring", 10, 11, 177),
    ("rendezvous", 3, 4, 526),
    ("rendezvous", 4, 3, 526),
    ("rendezvous", 10, 11, 162),
    ("maglev", 3, 4, 494),
    ("maglev", 4, 3, 494),
    ("maglev", 10, 11, 186),
    ("bounded-load", 3, 4, 476),
    ("bounded-load", 4, 3, 476),
    ("bounded-load", 10, 11, 177),
];

#[test]
fn plans_move_the_pinned_number_of_keys() {
    for (strategy, from, to, moved) in MOVED {
        let strategy: StrategyKind = strategy.parse().expect("known strategy");
        let old = Layout::with_count(strategy, *from)
            .unwrap()
            .build()
            .unwrap();
        let new = Layout::with_count(strategy, *to).unwrap().build().unwrap();
        let plan = plan_numbered(&old, &new, "user_", 2_000);
        assert_eq!(plan.moved, *moved, "{strategy} {from} -> {to}");
    }
}

#[test]
fn the_table_covers_every_strategy() {
    for strategy in StrategyKind::ALL {
        let count = VECTORS
            .iter()
            .filter(|v| v.strategy == strategy.name())
            .count();
        assert!(count >= 8, "{strategy} has {count} vectors");
    }
}
