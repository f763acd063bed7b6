//! Karger consistent hashing: each shard puts `round(vnodes × weight)` points on
//! a 64-bit ring, at positions derived from its name; a key belongs to the first
//! point at or after its hash (wrapping around).
//!
//! Lookups use a bucket index over the sorted points (the top bits of the hash
//! pick a short run of points), so a lookup is one or two cache misses instead
//! of a binary search.

use alloc::vec;
use alloc::vec::Vec;

use crate::hash::ring_point;
use crate::layout::points_for;
use crate::router::Lookup;
use crate::shard::Shard;

/// Most index buckets (2^20, 4 MiB of index).
const MAX_INDEX_BITS: u32 = 20;

/// A built ring.
#[derive(Clone, Debug)]
pub(crate) struct Ring {
    /// Point positions, ascending.
    points: Vec<u64>,
    /// `owners[i]` is the shard index (in the layout's list) of `points[i]`.
    owners: Vec<u32>,
    /// `index[b]` is the first point whose top bits are at least `b`.
    index: Vec<u32>,
    /// `64 - index bits`.
    shift: u32,
}

impl Ring {
    /// Builds the ring. Points at equal positions are ordered by shard name, so
    /// the ring does not depend on the order of the shard list.
    pub(crate) fn new(shards: &[Shard], vnodes: u32, seed: u64) -> Self {
        let total: usize = shards
            .iter()
            .map(|shard| points_for(vnodes, shard.weight) as usize)
            .sum();
        let mut entries: Vec<(u64, u32)> = Vec::with_capacity(total);
        for (shard_index, shard) in shards.iter().enumerate() {
            for replica in 0..points_for(vnodes, shard.weight) {
                entries.push((ring_point(&shard.name, replica, seed), shard_index as u32));
            }
        }
        entries.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| shards[a.1 as usize].name.cmp(&shards[b.1 as usize].name))
        });
        let points: Vec<u64> = entries.iter().map(|entry| entry.0).collect();
        let owners: Vec<u32> = entries.iter().map(|entry| entry.1).collect();

        let bits =
            (usize::BITS - points.len().saturating_sub(1).leading_zeros()).clamp(1, MAX_INDEX_BITS);
        let shift = 64 - bits;
        let buckets = 1usize << bits;
        let mut index = vec![0u32; buckets + 1];
        let mut point = 0usize;
        for (bucket, slot) in index.iter_mut().enumerate() {
            while point < points.len() && ((points[point] >> shift) as usize) < bucket {
                point += 1;
            }
            *slot = point as u32;
        }
        Ring {
            points,
            owners,
            index,
            shift,
        }
    }

    /// Index of the first point at or after `key_hash`, wrapping to 0.
    #[inline]
    pub(crate) fn point_at_or_after(&self, key_hash: u64) -> usize {
        let bucket = (key_hash >> self.shift) as usize;
        let mut point = self.index[bucket] as usize;
        let end = self.index[bucket + 1] as usize;
        while point < end && self.points[point] < key_hash {
            point += 1;
        }
        if point == self.points.len() { 0 } else { point }
    }

    /// Number of points.
    pub(crate) fn len(&self) -> usize {
        self.points.len()
    }

    /// The shard owning point `point`.
    #[inline]
    pub(crate) fn owner(&self, point: usize) -> usize {
        self.owners[point] as usize
    }
}

impl Lookup for Ring {
    #[inline]
    fn shard_index(&self, key_hash: u64) -> usize {
        self.owner(self.point_at_or_after(key_hash))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The obvious lookup: binary search over the sorted points.
    fn reference(ring: &Ring, key_hash: u64) -> usize {
        let point = ring.points.partition_point(|p| *p < key_hash);
        ring.owners[if point == ring.points.len() { 0 } else { point }] as usize
    }

    #[test]
    fn indexed_lookup_equals_binary_search() {
        for (count, vnodes) in [(1, 1), (1, 3), (3, 160), (17, 7), (64, 40)] {
            let ring = Ring::new(&Shard::numbered(count), vnodes, 42);
            let probes = ring
                .points
                .iter()
                .flat_map(|p| [p.wrapping_sub(1), *p, p.wrapping_add(1)])
                .chain([0, 1, u64::MAX, u64::MAX / 2])
                .chain((0..2_000u64).map(|i| crate::hash::key_hash_u64(i, 9)));
            for key_hash in probes {
                assert_eq!(ring.shard_index(key_hash), reference(&ring, key_hash));
            }
        }
    }

    #[test]
    fn weights_scale_points() {
        let shards = [Shard::weighted("a", 1.0), Shard::weighted("b", 2.5)];
        let ring = Ring::new(&shards, 100, 0);
        let owned_by_b = ring.owners.iter().filter(|owner| **owner == 1).count();
        assert_eq!(ring.len(), 350);
        assert_eq!(owned_by_b, 250);
    }
}
