//! Numbered keys (`user_0`, `user_1`, …): the key sets the explorer, the CLI and
//! the bridge's bulk insert use, generated without allocating a string per key.

use alloc::vec::Vec;

use crate::hash::key_hash;

/// The key prefix of the original EcoMarket tests (`user_0` …).
pub const DEFAULT_KEY_PREFIX: &str = "user_";

/// Writes `prefix` followed by `index` in decimal into `buf`, replacing what
/// was there.
pub fn numbered_key(prefix: &str, index: u64, buf: &mut Vec<u8>) {
    buf.clear();
    buf.extend_from_slice(prefix.as_bytes());
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    let mut rest = index;
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[start..]);
}

/// Hashes of `prefix0` … `prefix{count-1}` under `seed`.
pub fn numbered_key_hashes(prefix: &str, count: usize, seed: u64) -> Vec<u64> {
    let mut buf = Vec::with_capacity(prefix.len() + 20);
    (0..count as u64)
        .map(|index| {
            numbered_key(prefix, index, &mut buf);
            key_hash(&buf, seed)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_keys_are_prefix_and_decimal_index() {
        let mut buf = Vec::new();
        for (index, expected) in [
            (0, "user_0"),
            (9, "user_9"),
            (10, "user_10"),
            (299, "user_299"),
        ] {
            numbered_key("user_", index, &mut buf);
            assert_eq!(buf, expected.as_bytes());
        }
        numbered_key("", u64::MAX, &mut buf);
        assert_eq!(buf, b"18446744073709551615");
    }

    #[test]
    fn hashes_match_hashing_each_key() {
        let hashes = numbered_key_hashes("k", 3, 7);
        assert_eq!(
            hashes,
            [key_hash(b"k0", 7), key_hash(b"k1", 7), key_hash(b"k2", 7)]
        );
    }
}
