//! `Router`: a validated layout, built, answering "which shard owns this key?".

use alloc::vec::Vec;

use crate::bounded::BoundedLoad;
use crate::hash::key_hash;
use crate::jump::Jump;
use crate::layout::{Layout, StrategyKind};
use crate::maglev::Maglev;
use crate::modulo::Modulo;
use crate::rendezvous::Rendezvous;
use crate::ring::Ring;
use crate::shard::Shard;

/// The one lookup every strategy answers: a key's 64-bit hash → the index of its
/// shard in the layout's shard list.
pub trait Lookup {
    /// Index (into the layout's shard list) of the shard that owns `key_hash`.
    fn shard_index(&self, key_hash: u64) -> usize;
}

/// A built layout. Cheap to query, immutable; build a new one to change it.
#[derive(Clone, Debug)]
pub struct Router {
    layout: Layout,
    placement: Placement,
}

#[derive(Clone, Debug)]
enum Placement {
    Modulo(Modulo),
    Jump(Jump),
    Ring(Ring),
    Rendezvous(Rendezvous),
    Maglev(Maglev),
    BoundedLoad(BoundedLoad),
}

impl Router {
    /// Builds without validating; `Layout::build` validates first.
    pub(crate) fn new_unchecked(layout: Layout) -> Self {
        let shards = &layout.shards;
        let placement = match layout.strategy {
            StrategyKind::Modulo => Placement::Modulo(Modulo::new(shards.len())),
            StrategyKind::Jump => Placement::Jump(Jump::new(shards.len())),
            StrategyKind::Ring => Placement::Ring(Ring::new(shards, layout.vnodes, layout.seed)),
            StrategyKind::Rendezvous => Placement::Rendezvous(Rendezvous::new(shards, layout.seed)),
            StrategyKind::Maglev => {
                Placement::Maglev(Maglev::new(shards, layout.table_size, layout.seed))
            }
            StrategyKind::BoundedLoad => Placement::BoundedLoad(BoundedLoad::new(
                shards,
                layout.vnodes,
                layout.seed,
                layout.load_factor,
            )),
        };
        Router { layout, placement }
    }

    /// The layout this router was built from.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The shards, in layout order.
    pub fn shards(&self) -> &[Shard] {
        &self.layout.shards
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.layout.shards.len()
    }

    /// The hash of `key` under this layout's seed.
    #[inline]
    pub fn key_hash(&self, key: &[u8]) -> u64 {
        key_hash(key, self.layout.seed)
    }

    /// Index of the shard that owns `key`. For bounded-load this is the key's
    /// ring owner, where it goes when no shard is full; use [`Router::assign`]
    /// to place a whole key set under the bound.
    #[inline]
    pub fn locate(&self, key: &[u8]) -> usize {
        self.shard_index(self.key_hash(key))
    }

    /// The shard that owns `key` (see [`Router::locate`]).
    pub fn locate_shard(&self, key: &[u8]) -> &Shard {
        &self.layout.shards[self.locate(key)]
    }

    /// Places a whole key set, given by hashes, in order: `out[i]` is the shard
    /// index of `key_hashes[i]`. For every strategy but bounded-load this is
    /// [`Lookup::shard_index`] per key.
    pub fn assign(&self, key_hashes: &[u64], out: &mut Vec<u32>) {
        match &self.placement {
            Placement::BoundedLoad(bounded) => bounded.assign(key_hashes, out),
            Placement::Modulo(p) => assign_each(p, key_hashes, out),
            Placement::Jump(p) => assign_each(p, key_hashes, out),
            Placement::Ring(p) => assign_each(p, key_hashes, out),
            Placement::Rendezvous(p) => assign_each(p, key_hashes, out),
            Placement::Maglev(p) => assign_each(p, key_hashes, out),
        }
    }

    /// The most keys a shard may take out of `key_count` under bounded-load, or
    /// `None` for the other strategies.
    pub fn capacity(&self, shard_index: usize, key_count: usize) -> Option<u64> {
        match &self.placement {
            Placement::BoundedLoad(bounded) if shard_index < self.shard_count() => {
                Some(bounded.capacity(shard_index, key_count))
            }
            _ => None,
        }
    }
}

fn assign_each(lookup: &impl Lookup, key_hashes: &[u64], out: &mut Vec<u32>) {
    out.clear();
    out.extend(
        key_hashes
            .iter()
            .map(|hash| lookup.shard_index(*hash) as u32),
    );
}

impl Lookup for Router {
    #[inline]
    fn shard_index(&self, key_hash: u64) -> usize {
        match &self.placement {
            Placement::Modulo(p) => p.shard_index(key_hash),
            Placement::Jump(p) => p.shard_index(key_hash),
            Placement::Ring(p) => p.shard_index(key_hash),
            Placement::Rendezvous(p) => p.shard_index(key_hash),
            Placement::Maglev(p) => p.shard_index(key_hash),
            Placement::BoundedLoad(p) => p.shard_index(key_hash),
        }
    }
}
