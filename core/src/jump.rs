//! Jump consistent hash (Lamping & Veach, 2014): buckets `0..N` with no state,
//! moving only 1/(N+1) of the keys, all onto the new bucket, when N grows by one.

use crate::router::Lookup;

/// The multiplier of the published algorithm's linear congruential generator.
pub const JUMP_LCG_MULTIPLIER: u64 = 2_862_933_555_777_941_757;

/// Jump consistent hash of `key_hash` into `buckets` buckets, exactly as published
/// ("A Fast, Minimal Memory, Consistent Hash Algorithm"), so any other correct
/// implementation gives the same bucket. `buckets` of 0 is treated as 1.
#[inline]
pub fn jump_hash(key_hash: u64, buckets: u32) -> u32 {
    let mut key = key_hash;
    let mut bucket: i64 = -1;
    let mut next: i64 = 0;
    let buckets = i64::from(buckets.max(1));
    while next < buckets {
        bucket = next;
        key = key.wrapping_mul(JUMP_LCG_MULTIPLIER).wrapping_add(1);
        next = ((bucket + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    bucket as u32
}

/// Jump placement over the shard list's positions.
#[derive(Clone, Debug)]
pub(crate) struct Jump {
    buckets: u32,
}

impl Jump {
    pub(crate) fn new(shard_count: usize) -> Self {
        Jump {
            buckets: u32::try_from(shard_count).unwrap_or(u32::MAX).max(1),
        }
    }
}

impl Lookup for Jump {
    #[inline]
    fn shard_index(&self, key_hash: u64) -> usize {
        jump_hash(key_hash, self.buckets) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_implementation() {
        // Values of the C++ reference `JumpConsistentHash(key, num_buckets)`.
        let check = |key: u64, buckets: u32, expected: u32| {
            assert_eq!(
                jump_hash(key, buckets),
                expected,
                "key {key}, {buckets} buckets"
            );
        };
        check(0, 1, 0);
        check(0, 10, 0);
        check(1, 10, 6);
        check(2, 10, 6);
        check(0xdead_beef, 100, 87);
        check(u64::MAX, 1000, 313);
        check(123_456_789, 7, 0);
        check(42, 65_536, 5_747);
    }

    #[test]
    fn zero_buckets_is_one_bucket() {
        assert_eq!(jump_hash(12_345, 0), 0);
    }
}
