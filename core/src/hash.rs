//! The hash spec: how key bytes and shard names become 64-bit numbers.
//!
//! Everything here is xxh3-64 with an explicit seed, so the numbers are the same
//! on every target, every build and every version of this crate.

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// The seed used when a layout does not name one.
pub const DEFAULT_SEED: u64 = 0;

/// Hash of a key: `xxh3_64_with_seed(key_bytes, seed)`.
///
/// This is the only function that turns a key into a number; every strategy
/// works on its result. Integers used as keys should be turned into bytes with
/// `to_le_bytes` first (see [`key_hash_u64`]).
#[inline]
pub fn key_hash(key: &[u8], seed: u64) -> u64 {
    xxh3_64_with_seed(key, seed)
}

/// Hash of an integer key: [`key_hash`] over its 8 little-endian bytes.
#[inline]
pub fn key_hash_u64(key: u64, seed: u64) -> u64 {
    key_hash(&key.to_le_bytes(), seed)
}

/// Position of virtual node `replica` of the shard called `name` on the ring:
/// `xxh3_64_with_seed(name_bytes ++ le32(replica), seed)`.
pub(crate) fn ring_point(name: &str, replica: u32, seed: u64) -> u64 {
    let mut buf = [0u8; crate::shard::MAX_SHARD_NAME_LEN + 4];
    let name = name.as_bytes();
    buf[..name.len()].copy_from_slice(name);
    buf[name.len()..name.len() + 4].copy_from_slice(&replica.to_le_bytes());
    xxh3_64_with_seed(&buf[..name.len() + 4], seed)
}

/// The per-shard seed of rendezvous hashing: `xxh3_64_with_seed(name_bytes, seed)`.
pub(crate) fn name_hash(name: &str, seed: u64) -> u64 {
    xxh3_64_with_seed(name.as_bytes(), seed)
}

/// Rendezvous score of a key for a shard: `xxh3_64_with_seed(le64(key_hash), shard_seed)`.
#[inline]
pub(crate) fn pair_hash(key_hash: u64, shard_seed: u64) -> u64 {
    xxh3_64_with_seed(&key_hash.to_le_bytes(), shard_seed)
}

/// Maps a hash to a float strictly inside (0, 1): `(top 52 bits + 0.5) / 2^52`
/// (52 bits, so that adding one half is exact and the top value stays below 1).
#[inline]
pub(crate) fn unit_interval(hash: u64) -> f64 {
    ((hash >> 12) as f64 + 0.5) * (1.0 / (1u64 << 52) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_hash_is_xxh3_with_seed() {
        // Reference values of xxh3-64 (seed 0) for the empty input and "a".
        assert_eq!(key_hash(b"", 0), 0x2d06_8005_38d3_94c2);
        assert_eq!(key_hash(b"a", 0), 0xe6c6_32b6_1e96_4e1f);
        assert_ne!(key_hash(b"a", 0), key_hash(b"a", 1));
    }

    #[test]
    fn integer_keys_hash_their_little_endian_bytes() {
        assert_eq!(key_hash_u64(7, 3), key_hash(&[7, 0, 0, 0, 0, 0, 0, 0], 3));
    }

    #[test]
    fn unit_interval_stays_inside_open_interval() {
        for hash in [0, 1, u64::MAX, u64::MAX - 1, 1 << 63] {
            let u = unit_interval(hash);
            assert!(u > 0.0 && u < 1.0, "{hash} -> {u}");
        }
    }
}
