//! Maglev hashing (Eisenbud et al., NSDI 2016): each shard walks its own
//! permutation of a prime-sized table and claims free slots in turn; a key
//! belongs to `table[hash % size]`.
//!
//! A shard's permutation derives from its name: `offset = xxh3(name, seed) % M`,
//! `skip = xxh3(name, seed ^ MAGLEV_SKIP_SALT) % (M - 1) + 1`. Shards take turns
//! in name order; a shard of weight `w` takes a turn in proportion to
//! `w / max weight`, so weights shape the share of slots.

use alloc::vec;
use alloc::vec::Vec;

use crate::router::Lookup;
use crate::shard::Shard;
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Salt of the seed that gives a shard's skip.
pub const MAGLEV_SKIP_SALT: u64 = 0x9e37_79b9_7f4a_7c15;

const EMPTY: u32 = u32::MAX;

/// A built Maglev lookup table.
#[derive(Clone, Debug)]
pub(crate) struct Maglev {
    table: Vec<u32>,
}

impl Maglev {
    /// `table_size` is a prime larger than the shard count (checked by
    /// `Layout::validate`).
    pub(crate) fn new(shards: &[Shard], table_size: u32, seed: u64) -> Self {
        let size = u64::from(table_size.max(2));
        let mut order: Vec<usize> = (0..shards.len()).collect();
        order.sort_unstable_by(|a, b| shards[*a].name.cmp(&shards[*b].name));
        let skip_seed = seed ^ MAGLEV_SKIP_SALT;
        let skips: Vec<u64> = shards
            .iter()
            .map(|shard| xxh3_64_with_seed(shard.name.as_bytes(), skip_seed) % (size - 1) + 1)
            .collect();
        let mut positions: Vec<u64> = shards
            .iter()
            .map(|shard| xxh3_64_with_seed(shard.name.as_bytes(), seed) % size)
            .collect();
        let max_weight = shards.iter().map(|shard| shard.weight).fold(0.0, f64::max);
        let shares: Vec<f64> = shards
            .iter()
            .map(|shard| shard.weight / max_weight)
            .collect();
        let mut credits = vec![0.0f64; shards.len()];

        let mut table = vec![EMPTY; size as usize];
        let mut filled = 0u64;
        'rounds: while !shards.is_empty() {
            for &shard_index in &order {
                credits[shard_index] += shares[shard_index];
                if credits[shard_index] < 1.0 {
                    continue;
                }
                credits[shard_index] -= 1.0;
                let mut slot = positions[shard_index];
                while table[slot as usize] != EMPTY {
                    slot = (slot + skips[shard_index]) % size;
                }
                table[slot as usize] = shard_index as u32;
                positions[shard_index] = (slot + skips[shard_index]) % size;
                filled += 1;
                if filled == size {
                    break 'rounds;
                }
            }
        }
        Maglev { table }
    }

    /// How many table slots each shard holds.
    #[cfg(test)]
    fn slots_per_shard(&self, shard_count: usize) -> Vec<usize> {
        let mut counts = vec![0; shard_count];
        for owner in &self.table {
            counts[*owner as usize] += 1;
        }
        counts
    }
}

impl Lookup for Maglev {
    #[inline]
    fn shard_index(&self, key_hash: u64) -> usize {
        self.table[(key_hash % self.table.len() as u64) as usize] as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_weights_fill_the_table_evenly() {
        let maglev = Maglev::new(&Shard::numbered(5), 65_537, 0);
        let counts = maglev.slots_per_shard(5);
        assert_eq!(counts.iter().sum::<usize>(), 65_537);
        // Maglev gives each shard floor(M/N) or ceil(M/N) slots.
        for count in counts {
            assert!((13_107..=13_108).contains(&count), "{count}");
        }
    }

    #[test]
    fn weights_shape_the_share_of_slots() {
        let shards = [Shard::weighted("a", 1.0), Shard::weighted("b", 2.0)];
        let counts = Maglev::new(&shards, 3_001, 0).slots_per_shard(2);
        assert_eq!(counts[0] + counts[1], 3_001);
        assert!((995..=1_005).contains(&counts[0]), "{counts:?}");
    }
}
