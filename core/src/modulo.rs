//! Modulo placement: `hash % N`. The baseline every other strategy beats when
//! N changes (it moves about N/(N+1) of the keys when one shard is added).

use crate::router::Lookup;

/// `hash % shard_count`.
#[derive(Clone, Debug)]
pub(crate) struct Modulo {
    shard_count: u64,
}

impl Modulo {
    /// `shard_count` is at least 1 (checked by `Layout::validate`).
    pub(crate) fn new(shard_count: usize) -> Self {
        Modulo {
            shard_count: shard_count.max(1) as u64,
        }
    }
}

impl Lookup for Modulo {
    #[inline]
    fn shard_index(&self, key_hash: u64) -> usize {
        (key_hash % self.shard_count) as usize
    }
}
