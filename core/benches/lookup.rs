//! Lookup speed of every strategy, beside the published crates for the same
//! algorithm, in one criterion run: `cargo bench -p ecoshard-core --bench lookup`.
//!
//! Each measurement places the same 1,024 text keys (`user_0` …), key hashing
//! included, so `time / 1024` is the cost of one lookup. Where a crate lets us
//! choose its hasher we also run it with xxh3 (the hash ecoshard uses), so the
//! comparison is of the algorithm, not of SipHash versus xxh3.

use std::hash::{Hash, Hasher};
use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main,
};
use ecoshard_core::{Layout, StrategyKind, jump_hash, key_hash};
use maglev::ConsistentHasher;
use rendezvous_hash::Node;
use xxhash_rust::xxh3::{Xxh3Builder, Xxh3Default};

const SHARD_COUNTS: [u64; 3] = [4, 16, 256];
const VNODES: u32 = 160;
const MAGLEV_TABLE: usize = 65_537;

fn keys() -> Vec<String> {
    (0..1_024).map(|index| format!("user_{index}")).collect()
}

fn ours(strategy: StrategyKind, shards: u64) -> ecoshard_core::Router {
    Layout::with_count(strategy, shards)
        .and_then(|layout| layout.with_vnodes(VNODES).build())
        .expect("valid layout")
}

/// A benchmark group for one strategy and shard count, with ecoshard's own
/// text key → shard lookup already measured in it.
fn start_group<'c>(
    c: &'c mut Criterion,
    strategy: StrategyKind,
    shards: u64,
    keys: &[String],
) -> BenchmarkGroup<'c, WallTime> {
    let mut group = c.benchmark_group(format!("{strategy}/{shards}"));
    group.throughput(Throughput::Elements(keys.len() as u64));
    let router = ours(strategy, shards);
    group.bench_function("ecoshard", |b| {
        b.iter(|| {
            keys.iter()
                .map(|key| router.locate(black_box(key.as_bytes())))
                .sum::<usize>()
        })
    });
    group
}

fn bench_jump(c: &mut Criterion, keys: &[String]) {
    let hashes: Vec<u64> = keys.iter().map(|key| key_hash(key.as_bytes(), 0)).collect();
    for shards in SHARD_COUNTS {
        let mut group = start_group(c, StrategyKind::Jump, shards, keys);
        // Algorithm alone, on the same precomputed 64-bit hashes.
        group.bench_function("ecoshard jump_hash (prehashed)", |b| {
            b.iter(|| {
                hashes
                    .iter()
                    .map(|hash| jump_hash(black_box(*hash), shards as u32))
                    .sum::<u32>()
            })
        });
        group.bench_function("jump-consistent-hash (prehashed)", |b| {
            b.iter(|| {
                hashes
                    .iter()
                    .map(|hash| jump_consistent_hash::hash(black_box(*hash), shards as usize))
                    .sum::<u32>()
            })
        });
        let jumper = jumphash::JumpHasher::new();
        group.bench_function("jumphash (SipHash)", |b| {
            b.iter(|| {
                keys.iter()
                    .map(|key| jumper.slot(black_box(key), shards as u32))
                    .sum::<u32>()
            })
        });
        group.finish();
    }
}

fn bench_ring(c: &mut Criterion, keys: &[String]) {
    for shards in SHARD_COUNTS {
        let mut group = start_group(c, StrategyKind::Ring, shards, keys);
        // hashring puts one point per node: give it `VNODES` nodes per shard.
        let vnodes = || {
            (0..shards as u32).flat_map(|shard| (0..VNODES).map(move |replica| (shard, replica)))
        };
        let mut xxh3_ring = hashring::HashRing::with_hasher(Xxh3Builder::new());
        let mut default_ring = hashring::HashRing::new();
        for node in vnodes() {
            xxh3_ring.add(node);
            default_ring.add(node);
        }
        group.bench_function("hashring (xxh3)", |b| {
            b.iter(|| {
                keys.iter()
                    .map(|key| xxh3_ring.get(black_box(key)).map_or(0, |n| n.0))
                    .sum::<u32>()
            })
        });
        group.bench_function("hashring (default hasher)", |b| {
            b.iter(|| {
                keys.iter()
                    .map(|key| default_ring.get(black_box(key)).map_or(0, |n| n.0))
                    .sum::<u32>()
            })
        });
        group.finish();
    }
}

/// `rendezvous_hash`'s pair hasher, with xxh3 instead of SipHash.
struct Xxh3PairHasher;

impl<N: Hash> rendezvous_hash::NodeHasher<N> for Xxh3PairHasher {
    fn hash<T: Hash>(&self, node: &N, item: &T) -> u64 {
        let mut hasher = Xxh3Default::new();
        item.hash(&mut hasher);
        node.hash(&mut hasher);
        hasher.finish()
    }
}

fn bench_rendezvous(c: &mut Criterion, keys: &[String]) {
    for shards in SHARD_COUNTS {
        let mut group = start_group(c, StrategyKind::Rendezvous, shards, keys);
        let names: Vec<String> = (0..shards).map(|shard| format!("s{shard}")).collect();
        let hrw = hrw_hash::HrwNodes::with_build_hasher(Xxh3Builder::new(), names.clone());
        group.bench_function("hrw-hash (xxh3)", |b| {
            b.iter(|| {
                keys.iter()
                    .map(|key| hrw.sorted(black_box(key)).next().map_or(0, String::len))
                    .sum::<usize>()
            })
        });
        let mut nodes = rendezvous_hash::RendezvousNodes::new(Xxh3PairHasher);
        for name in &names {
            nodes.insert(rendezvous_hash::IdNode::new(name.clone()));
        }
        group.bench_function("rendezvous_hash (xxh3)", |b| {
            b.iter(|| {
                keys.iter()
                    .map(|key| {
                        nodes
                            .calc_candidates(black_box(key))
                            .next()
                            .map_or(0, |n| n.node_id().len())
                    })
                    .sum::<usize>()
            })
        });
        group.finish();
    }
}

fn bench_maglev(c: &mut Criterion, keys: &[String]) {
    for shards in SHARD_COUNTS {
        let mut group = start_group(c, StrategyKind::Maglev, shards, keys);
        let names: Vec<String> = (0..shards).map(|shard| format!("s{shard}")).collect();
        let xxh3_table = maglev::Maglev::with_capacity_and_hasher(
            names.clone(),
            MAGLEV_TABLE,
            Xxh3Builder::new(),
        );
        let default_table = maglev::Maglev::with_capacity(names, MAGLEV_TABLE);
        group.bench_function("maglev (xxh3)", |b| {
            b.iter(|| {
                keys.iter()
                    .map(|key| {
                        xxh3_table
                            .get(black_box(key.as_str()))
                            .map_or(0, String::len)
                    })
                    .sum::<usize>()
            })
        });
        group.bench_function("maglev (default hasher)", |b| {
            b.iter(|| {
                keys.iter()
                    .map(|key| {
                        default_table
                            .get(black_box(key.as_str()))
                            .map_or(0, String::len)
                    })
                    .sum::<usize>()
            })
        });
        group.finish();
    }
}

/// Strategies with no published crate to compare against: modulo (the
/// baseline) and bounded-load (placing the whole key set under the bound).
fn bench_ours_only(c: &mut Criterion, keys: &[String]) {
    for shards in SHARD_COUNTS {
        let mut group = c.benchmark_group(format!("other/{shards}"));
        group.throughput(Throughput::Elements(keys.len() as u64));
        let modulo = ours(StrategyKind::Modulo, shards);
        group.bench_function(BenchmarkId::new("ecoshard", "modulo"), |b| {
            b.iter(|| {
                keys.iter()
                    .map(|key| modulo.locate(black_box(key.as_bytes())))
                    .sum::<usize>()
            })
        });
        let bounded = ours(StrategyKind::BoundedLoad, shards);
        let hashes: Vec<u64> = keys
            .iter()
            .map(|key| bounded.key_hash(key.as_bytes()))
            .collect();
        let mut placed = Vec::with_capacity(keys.len());
        group.bench_function(BenchmarkId::new("ecoshard", "bounded-load set"), |b| {
            b.iter(|| {
                bounded.assign(black_box(&hashes), &mut placed);
                placed.len()
            })
        });
        group.finish();
    }
}

fn lookups(c: &mut Criterion) {
    let keys = keys();
    bench_jump(c, &keys);
    bench_ring(c, &keys);
    bench_rendezvous(c, &keys);
    bench_maglev(c, &keys);
    bench_ours_only(c, &keys);
}

fn criterion() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(40)
}

criterion_group! {
    name = benches;
    config = criterion();
    targets = lookups
}
criterion_main!(benches);
