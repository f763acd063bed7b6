//! Consistent hashing with bounded loads (Mirrokni, Thorup & Zadimoghaddam,
//! 2018): the ring of [`crate::ring`], but when a set of keys is placed no shard
//! takes more than `ceil(c × K × weight / total weight)` of the K keys (with equal
//! weights, `ceil(c × average)`). Keys are placed in the order given; a key whose
//! ring owner is full walks clockwise to the next point of a shard with room.
//!
//! Where a key lands therefore depends on the keys placed before it. A lookup
//! of a single key, with no key set, answers its ring owner.

use alloc::vec;
use alloc::vec::Vec;

use crate::ring::Ring;
use crate::router::Lookup;
use crate::shard::Shard;

/// A ring with a load bound.
#[derive(Clone, Debug)]
pub(crate) struct BoundedLoad {
    ring: Ring,
    load_factor: f64,
    /// Each shard's share of the total weight.
    shares: Vec<f64>,
    /// Points of each shard on the ring.
    points_of: Vec<Vec<u32>>,
}

impl BoundedLoad {
    pub(crate) fn new(shards: &[Shard], vnodes: u32, seed: u64, load_factor: f64) -> Self {
        let ring = Ring::new(shards, vnodes, seed);
        let mut points_of = vec![Vec::new(); shards.len()];
        for point in 0..ring.len() {
            points_of[ring.owner(point)].push(point as u32);
        }
        let total_weight: f64 = shards.iter().map(|shard| shard.weight).sum();
        BoundedLoad {
            ring,
            load_factor,
            shares: shards
                .iter()
                .map(|shard| shard.weight / total_weight)
                .collect(),
            points_of,
        }
    }

    /// The most keys shard `shard_index` may take out of `key_count`.
    pub(crate) fn capacity(&self, shard_index: usize, key_count: usize) -> u64 {
        let cap = libm::ceil(self.load_factor * key_count as f64 * self.shares[shard_index]);
        if cap >= u64::MAX as f64 {
            u64::MAX
        } else {
            cap as u64
        }
    }

    /// Places `key_hashes` in order; `out[i]` is the shard of key `i`.
    ///
    /// Full shards' points are skipped with a union-find over ring positions, so
    /// the whole placement is O(K + points) after the lookups, even at c = 1.
    pub(crate) fn assign(&self, key_hashes: &[u64], out: &mut Vec<u32>) {
        out.clear();
        out.reserve(key_hashes.len());
        let shard_count = self.shares.len();
        let capacities: Vec<u64> = (0..shard_count)
            .map(|shard| self.capacity(shard, key_hashes.len()))
            .collect();
        let mut loads = vec![0u64; shard_count];
        let point_count = self.ring.len();
        // next_free[p]: a point at or after p (with `point_count` meaning "wrap to
        // 0") whose shard may still have room; compressed as shards fill.
        let mut next_free: Vec<u32> = (0..=point_count as u32).collect();
        for key_hash in key_hashes {
            let start = self.ring.point_at_or_after(*key_hash);
            let mut point = find(&mut next_free, start);
            if point == point_count {
                point = find(&mut next_free, 0);
            }
            if point == point_count {
                // Every shard is full: cannot happen, as the capacities add up
                // to at least K, but fall back to the ring owner rather than loop.
                out.push(self.ring.owner(start) as u32);
                continue;
            }
            let shard = self.ring.owner(point);
            out.push(shard as u32);
            loads[shard] += 1;
            if loads[shard] == capacities[shard] {
                for &full_point in &self.points_of[shard] {
                    next_free[full_point as usize] = full_point + 1;
                }
            }
        }
    }
}

/// Union-find root with path halving.
fn find(next_free: &mut [u32], mut point: usize) -> usize {
    while next_free[point] as usize != point {
        let parent = next_free[point] as usize;
        next_free[point] = next_free[parent];
        point = parent;
    }
    point
}

impl Lookup for BoundedLoad {
    #[inline]
    fn shard_index(&self, key_hash: u64) -> usize {
        self.ring.shard_index(key_hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::key_hash_u64;

    fn loads(placement: &BoundedLoad, key_count: u64, shard_count: usize) -> Vec<u64> {
        let hashes: Vec<u64> = (0..key_count).map(|key| key_hash_u64(key, 0)).collect();
        let mut out = Vec::new();
        placement.assign(&hashes, &mut out);
        let mut loads = vec![0u64; shard_count];
        for shard in out {
            loads[shard as usize] += 1;
        }
        loads
    }

    #[test]
    fn no_shard_exceeds_the_bound() {
        for (shard_count, factor, key_count) in [(4, 1.25, 10_000), (7, 1.0, 1_001), (3, 1.1, 5)] {
            let placement = BoundedLoad::new(&Shard::numbered(shard_count), 20, 0, factor);
            let loads = loads(&placement, key_count, shard_count);
            let bound = libm::ceil(factor * key_count as f64 / shard_count as f64) as u64;
            assert_eq!(loads.iter().sum::<u64>(), key_count);
            assert!(
                loads.iter().all(|load| *load <= bound),
                "{loads:?} over {bound}"
            );
        }
    }

    #[test]
    fn weighted_capacity_follows_the_weights() {
        let shards = [Shard::weighted("a", 1.0), Shard::weighted("b", 3.0)];
        let placement = BoundedLoad::new(&shards, 50, 0, 1.0);
        assert_eq!(placement.capacity(0, 100), 25);
        assert_eq!(placement.capacity(1, 100), 75);
        assert_eq!(loads(&placement, 100, 2), [25, 75]);
    }
}
