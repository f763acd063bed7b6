//! Which shard a key goes to, from the core, and the statements of that
//! shard (built by `db`).
//!
//! The routing table is swapped whole (an `Arc` behind a lock), so a request
//! sees one consistent layout. It holds a previous layout while a rebalance
//! runs: writes go by the new layout, reads look under the new one and the
//! old one in one statement (see `db::read_user`).
//!
//! Writes hold the write gate (shared) from taking the table until their
//! commit; a swap takes it exclusively, so no write under the old table is
//! still running when the first write under the new one starts.

pub(crate) mod batch;

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use ecoshard_core::wire::LayoutView;
use ecoshard_core::{Layout, Router};

use crate::db::{BatchSql, ShardSql};

/// One layout, built: its version, router and per-shard SQL.
#[derive(Debug)]
pub struct Placement {
    /// Version in `ecoshard.layout`.
    pub version: u64,
    /// The core's router.
    pub(crate) router: Router,
    /// SQL per shard, in layout order.
    pub(crate) shards: Vec<ShardSql>,
    /// Reads by key and inserts, batched per node (`None`: too many shards
    /// to batch).
    pub(crate) batch: Option<Arc<BatchSql>>,
}

impl Placement {
    /// Builds a stored layout.
    pub fn new(view: &LayoutView) -> Result<Self, ecoshard_core::Error> {
        let router = view.layout.build()?;
        let shards = router
            .shards()
            .iter()
            .map(|shard| ShardSql::new(&shard.name))
            .collect::<Vec<_>>();
        let batch = BatchSql::new(&shards).map(Arc::new);
        Ok(Placement {
            version: view.version,
            router,
            shards,
            batch,
        })
    }

    /// The shard owning `key` (for bounded-load: its ring owner, which is
    /// where a key inserted one at a time goes).
    pub(crate) fn locate(&self, key: &str) -> &ShardSql {
        &self.shards[self.router.locate(key.as_bytes())]
    }

    /// The position of `key`'s shard in the layout.
    pub(crate) fn position(&self, key: &str) -> usize {
        self.router.locate(key.as_bytes())
    }

    /// The layout.
    pub(crate) fn layout(&self) -> &Layout {
        self.router.layout()
    }
}

/// The layouts in force.
#[derive(Debug)]
pub struct RoutingTable {
    /// Writes go here; reads look here first.
    pub current: Placement,
    /// During a rebalance: the layout being left, where rows not yet moved are.
    pub previous: Option<Placement>,
    /// Standbys that had not replayed up to this WAL position when last
    /// checked serve no read under this table: before it, rows may still be
    /// where the table no longer looks (the end of a rebalance), or shard
    /// schemas it reads may not exist yet (its start). 0: no bound.
    pub min_replay_lsn: u64,
}

impl RoutingTable {
    /// Shards to read `key` from, in order (one unless a rebalance runs and
    /// the key's owner changes).
    pub fn read_shards(&self, key: &str) -> Vec<&ShardSql> {
        let mut shards = vec![self.current.locate(key)];
        if let Some(previous) = &self.previous {
            let old = previous.locate(key);
            if old.name != shards[0].name {
                shards.push(old);
            }
        }
        shards
    }

    /// During a rebalance, the old owner of `key` when it differs from the new one.
    pub(crate) fn moving_from(&self, key: &str) -> Option<&ShardSql> {
        let previous = self.previous.as_ref()?;
        let old = previous.locate(key);
        (old.name != self.current.locate(key).name).then_some(old)
    }

    /// During a rebalance, the shards only the old layout has (they still
    /// hold rows until the job is done).
    pub(crate) fn leaving_shards(&self) -> impl Iterator<Item = &ShardSql> {
        self.previous.iter().flat_map(move |previous| {
            previous.shards.iter().filter(move |shard| {
                !self
                    .current
                    .shards
                    .iter()
                    .any(|kept| kept.name == shard.name)
            })
        })
    }

    /// The layout in force, with its version.
    pub fn view(&self) -> LayoutView {
        LayoutView {
            version: self.current.version,
            layout: self.current.layout().clone(),
            placement: Vec::new(),
        }
    }
}

/// The shared, swappable routing table.
#[derive(Debug)]
pub struct Routing {
    table: RwLock<Arc<RoutingTable>>,
    /// Shared by writes, exclusive for a swap.
    gate: tokio::sync::RwLock<()>,
}

impl Routing {
    /// Routing by one layout.
    #[cfg(test)]
    fn new(current: Placement) -> Self {
        Routing::with_table(RoutingTable {
            current,
            previous: None,
            min_replay_lsn: 0,
        })
    }

    /// Routing by a table (a rebalance resumed at start-up holds two layouts).
    pub(crate) fn with_table(table: RoutingTable) -> Self {
        Routing {
            table: RwLock::new(Arc::new(table)),
            gate: tokio::sync::RwLock::new(()),
        }
    }

    /// The table for a write, with the gate held shared: keep both until the
    /// write has committed.
    pub(crate) async fn write_table(
        &self,
    ) -> (tokio::sync::RwLockReadGuard<'_, ()>, Arc<RoutingTable>) {
        let gate = self.gate.read().await;
        (gate, self.table())
    }

    /// Replaces the table once no write under the old one is running, and
    /// answers the old one (see [`wait_unshared`]).
    pub async fn swap(&self, table: RoutingTable) -> Arc<RoutingTable> {
        let _gate = self.gate.write().await;
        let table = Arc::new(table);
        match self.table.write() {
            Ok(mut slot) => std::mem::replace(&mut *slot, table),
            Err(poisoned) => std::mem::replace(&mut *poisoned.into_inner(), table),
        }
    }

    /// The table in force now; hold it for the whole request.
    pub fn table(&self) -> Arc<RoutingTable> {
        match self.table.read() {
            Ok(table) => Arc::clone(&table),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }
}

/// Waits until no request holds `table` any more (requests hold the table
/// they started with until they end), at most `limit`; whether that happened.
pub(crate) async fn wait_unshared(table: Arc<RoutingTable>, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Arc::strong_count(&table) > 1 {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecoshard_core::StrategyKind;

    fn placement(strategy: StrategyKind, shards: u64, version: u64) -> Placement {
        Placement::new(&LayoutView {
            version,
            layout: Layout::with_count(strategy, shards).unwrap(),
            placement: Vec::new(),
        })
        .unwrap()
    }

    #[test]
    fn locate_agrees_with_the_core() {
        let placement = placement(StrategyKind::Modulo, 3, 1);
        let router = Layout::with_count(StrategyKind::Modulo, 3)
            .unwrap()
            .build()
            .unwrap();
        for index in 0..100 {
            let key = format!("user_{index}");
            let expected = &router.shards()[router.locate(key.as_bytes())].name;
            assert_eq!(&placement.locate(&key).name, expected);
        }
    }

    #[test]
    fn leaving_shards_are_those_only_the_old_layout_has() {
        let check = |from: u64, to: u64, expected: &[&str]| {
            let table = RoutingTable {
                current: placement(StrategyKind::Ring, to, 2),
                previous: Some(placement(StrategyKind::Ring, from, 1)),
                min_replay_lsn: 0,
            };
            let leaving: Vec<&str> = table
                .leaving_shards()
                .map(|shard| shard.name.as_str())
                .collect();
            assert_eq!(leaving, expected, "{from} → {to}");
        };
        check(4, 3, &["s3"]);
        check(5, 3, &["s3", "s4"]);
        check(3, 4, &[]);
        check(3, 3, &[]);
        let alone = Routing::new(placement(StrategyKind::Ring, 3, 1)).table();
        assert_eq!(alone.leaving_shards().count(), 0);
    }

    #[test]
    fn reads_look_under_the_old_layout_only_when_the_owner_changed() {
        let table = RoutingTable {
            current: placement(StrategyKind::Modulo, 4, 2),
            previous: Some(placement(StrategyKind::Modulo, 3, 1)),
            min_replay_lsn: 0,
        };
        let mut moved = 0;
        for index in 0..300 {
            let key = format!("user_{index}");
            let shards = table.read_shards(&key);
            assert_eq!(shards[0].name, table.current.locate(&key).name);
            if shards.len() == 2 {
                moved += 1;
                assert_ne!(shards[0].name, shards[1].name);
            }
        }
        assert!(moved > 150, "modulo 3→4 moves most keys, got {moved}");
    }
}
