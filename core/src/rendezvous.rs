//! Rendezvous (highest random weight) hashing: every shard scores every key and
//! the highest score wins. Weighted with the logarithmic method (Schindelhauer &
//! Schomaker): score = weight / -ln(u), `u` the pair hash mapped into (0, 1).
//!
//! With equal weights the score is monotonic in the pair hash, so the raw 64-bit
//! hashes are compared and no logarithm is taken.

use alloc::vec::Vec;

use crate::hash::{name_hash, pair_hash, unit_interval};
use crate::router::Lookup;
use crate::shard::Shard;

/// A built rendezvous placement.
#[derive(Clone, Debug)]
pub(crate) struct Rendezvous {
    /// Per-shard seed: hash of the shard's name.
    seeds: Vec<u64>,
    /// Rank of each shard's name in sorted order; breaks exact score ties so the
    /// result does not depend on the order of the shard list.
    ranks: Vec<u32>,
    /// `Some` only when the weights are not all equal.
    weights: Option<Vec<f64>>,
}

impl Rendezvous {
    pub(crate) fn new(shards: &[Shard], seed: u64) -> Self {
        let seeds = shards
            .iter()
            .map(|shard| name_hash(&shard.name, seed))
            .collect();
        let mut by_name: Vec<usize> = (0..shards.len()).collect();
        by_name.sort_unstable_by(|a, b| shards[*a].name.cmp(&shards[*b].name));
        let mut ranks = alloc::vec![0u32; shards.len()];
        for (rank, shard_index) in by_name.into_iter().enumerate() {
            ranks[shard_index] = rank as u32;
        }
        let first_weight = shards.first().map_or(1.0, |shard| shard.weight);
        let weights = if shards.iter().all(|shard| shard.weight == first_weight) {
            None
        } else {
            Some(shards.iter().map(|shard| shard.weight).collect())
        };
        Rendezvous {
            seeds,
            ranks,
            weights,
        }
    }

    fn unweighted(&self, key_hash: u64) -> usize {
        let mut best = 0;
        let mut best_score = 0u64;
        for (shard_index, shard_seed) in self.seeds.iter().enumerate() {
            let score = pair_hash(key_hash, *shard_seed);
            if shard_index == 0
                || score > best_score
                || (score == best_score && self.ranks[shard_index] > self.ranks[best])
            {
                best = shard_index;
                best_score = score;
            }
        }
        best
    }

    fn weighted(&self, key_hash: u64, weights: &[f64]) -> usize {
        let mut best = 0;
        let mut best_score = f64::NEG_INFINITY;
        for (shard_index, (shard_seed, weight)) in self.seeds.iter().zip(weights).enumerate() {
            let unit = unit_interval(pair_hash(key_hash, *shard_seed));
            let score = weight / -libm::log(unit);
            if score > best_score
                || (score == best_score && self.ranks[shard_index] > self.ranks[best])
            {
                best = shard_index;
                best_score = score;
            }
        }
        best
    }
}

impl Lookup for Rendezvous {
    #[inline]
    fn shard_index(&self, key_hash: u64) -> usize {
        match &self.weights {
            None => self.unweighted(key_hash),
            Some(weights) => self.weighted(key_hash, weights),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_of_the_shard_list_does_not_matter() {
        let shards = Shard::numbered(7);
        let mut reversed = shards.clone();
        reversed.reverse();
        let forward = Rendezvous::new(&shards, 5);
        let backward = Rendezvous::new(&reversed, 5);
        for key in 0..5_000u64 {
            let key_hash = crate::hash::key_hash_u64(key, 5);
            let a = &shards[forward.shard_index(key_hash)].name;
            let b = &reversed[backward.shard_index(key_hash)].name;
            assert_eq!(a, b);
        }
    }

    #[test]
    fn weights_shift_load() {
        let shards = [Shard::weighted("light", 1.0), Shard::weighted("heavy", 3.0)];
        let placement = Rendezvous::new(&shards, 0);
        let heavy = (0..40_000u64)
            .filter(|key| placement.shard_index(crate::hash::key_hash_u64(*key, 0)) == 1)
            .count();
        // Expected share 3/4 = 30,000; binomial standard deviation is about 87.
        assert!((29_500..=30_500).contains(&heavy), "heavy got {heavy}");
    }
}
