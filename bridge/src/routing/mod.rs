//! Which shard a key goes to, from the core, which cluster holds that shard,
//! and the statements of that shard (built by `db`), batched per cluster
//! over the shards it holds.
//!
//! The routing table is swapped whole (an `Arc` behind a lock), so a request
//! sees one consistent layout. It holds a previous layout while a rebalance
//! runs: writes go by the new layout, reads look under the new one and the
//! old one — in one statement when both shards are on one cluster (see
//! `db::read_user`), else the new shard's cluster first.
//!
//! Writes hold the write gate (shared) from taking the table until their
//! commit; a swap takes it exclusively, so no write under the old table is
//! still running when the first write under the new one starts.
//!
//! A shard moving between clusters is *fenced* at its cutover: writes to
//! it wait (within their deadline) until the fence lifts; other shards'
//! writes go on. A write reads the fence with the gate held, and fencing
//! takes the gate once exclusively after setting it, so when
//! [`Routing::fence`] returns no write to that shard runs and none starts.

pub(crate) mod batch;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use ecoshard_core::wire::LayoutView;
use ecoshard_core::{Layout, Router};

use crate::db::{BatchSql, ShardSql};

/// The cluster a shard naming none is on: the default one. Layouts are
/// stored with every shard's cluster named when the bridge operates several
/// clusters (see `service::rebalance::stored_form`), so a stored shard
/// naming none was stored by a bridge of one cluster, where it was on `c1`.
pub(crate) const UNNAMED_CLUSTER: &str = "c1";

/// Each shard's cluster in `layout`, in layout order (a shard naming none:
/// [`UNNAMED_CLUSTER`]).
pub fn clusters_of(layout: &Layout) -> Vec<String> {
    layout
        .shards
        .iter()
        .map(|shard| {
            shard
                .cluster
                .as_deref()
                .unwrap_or(UNNAMED_CLUSTER)
                .to_owned()
        })
        .collect()
}

/// `layout` with only the shards on `cluster` (see [`clusters_of`]): what
/// that cluster's primary holds schemas for.
pub(crate) fn layout_on(layout: &Layout, cluster: &str) -> Layout {
    let mut on = layout.clone();
    let clusters = clusters_of(layout);
    let mut index = 0;
    on.shards.retain(|_| {
        index += 1;
        clusters[index - 1] == cluster
    });
    on
}

/// The shards one cluster holds under a layout, and their batched statements.
#[derive(Debug)]
pub(crate) struct ClusterShards {
    /// `c1`, `c2`, …
    pub(crate) cluster: String,
    /// Reads by key and inserts over this cluster's shards, batched per node
    /// (`None`: too many shards to batch).
    pub(crate) batch: Option<Arc<BatchSql>>,
}

/// Where a shard is: its cluster's entry in [`BuiltLayout::clusters`] and its
/// position among that cluster's shards (in layout order).
#[derive(Clone, Copy, Debug)]
struct Slot {
    cluster: usize,
    position: usize,
}

/// One layout, built: its version, router, per-shard SQL and each shard's
/// cluster, with the batched statements of every cluster over its shards.
#[derive(Debug)]
pub struct BuiltLayout {
    /// Version in `ecoshard.layout`.
    pub version: u64,
    /// The core's router.
    pub(crate) router: Router,
    /// SQL per shard, in layout order.
    pub(crate) shards: Vec<ShardSql>,
    /// The clusters holding shards, in order of their first shard.
    pub(crate) clusters: Vec<ClusterShards>,
    /// Per shard, in layout order: where it is.
    slots: Vec<Slot>,
}

impl BuiltLayout {
    /// Builds a stored layout (a shard naming no cluster is on
    /// [`UNNAMED_CLUSTER`]).
    pub fn new(view: &LayoutView) -> Result<Self, ecoshard_core::Error> {
        let router = view.layout.build()?;
        let shards = router
            .shards()
            .iter()
            .map(|shard| ShardSql::new(&shard.name))
            .collect::<Vec<_>>();
        let mut names: Vec<String> = Vec::new();
        let mut held: Vec<Vec<ShardSql>> = Vec::new();
        let mut slots = Vec::with_capacity(shards.len());
        for (shard, cluster) in shards.iter().zip(clusters_of(&view.layout)) {
            let index = match names.iter().position(|name| *name == cluster) {
                Some(index) => index,
                None => {
                    names.push(cluster);
                    held.push(Vec::new());
                    names.len() - 1
                }
            };
            slots.push(Slot {
                cluster: index,
                position: held[index].len(),
            });
            held[index].push(ShardSql::new(&shard.name));
        }
        let clusters = names
            .into_iter()
            .zip(held)
            .map(|(cluster, shards)| ClusterShards {
                cluster,
                batch: BatchSql::new(&shards).map(Arc::new),
            })
            .collect();
        Ok(BuiltLayout {
            version: view.version,
            router,
            shards,
            clusters,
            slots,
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

    /// The cluster of the shard at `position` of the layout.
    pub(crate) fn cluster_of(&self, position: usize) -> &str {
        &self.clusters[self.slots[position].cluster].cluster
    }

    /// The batched statements of `key`'s shard's cluster and the shard's
    /// position in them, when that cluster's shards can be batched.
    pub(crate) fn batch_for(&self, key: &str) -> Option<(&Arc<BatchSql>, usize)> {
        let slot = self.slots[self.position(key)];
        let batch = self.clusters[slot.cluster].batch.as_ref()?;
        Some((batch, slot.position))
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
    pub current: BuiltLayout,
    /// During a rebalance: the layout being left, where rows not yet moved are.
    pub previous: Option<BuiltLayout>,
    /// Per cluster: standbys that had not replayed up to this WAL position
    /// (of their cluster) when last checked serve no read under this table:
    /// before it, rows may still be where the table no longer looks (the end
    /// of a rebalance), or shard schemas it reads may not exist yet (its
    /// start). A cluster not named: no bound.
    pub min_replay_lsn: BTreeMap<String, u64>,
}

/// Where one read looks on one cluster: the shards, in order.
#[derive(Debug)]
pub(crate) struct ReadOn<'t> {
    /// The cluster.
    pub(crate) cluster: &'t str,
    /// Its shards to look in, in order (the new owner first).
    pub(crate) shards: Vec<&'t ShardSql>,
    /// The shards are the previous layout's (the key's old owner alone).
    pub(crate) previous: bool,
}

impl RoutingTable {
    /// The bound of [`RoutingTable::min_replay_lsn`] on `cluster` (0: none).
    pub(crate) fn replay_bound(&self, cluster: &str) -> u64 {
        self.min_replay_lsn.get(cluster).copied().unwrap_or(0)
    }

    /// Where to read `key`, in order: its shard's cluster and shard; during
    /// a rebalance that moves it, the old shard too — in the same read when
    /// both are on one cluster, else on the old shard's cluster first, then
    /// the new one. A key moving between clusters is committed at its
    /// destination before it leaves its source, so a read that misses it
    /// at the source, after it left, finds it at the destination; read the
    /// other way round, the move could fall between the two reads.
    pub(crate) fn read_plan(&self, key: &str) -> Vec<ReadOn<'_>> {
        let position = self.current.position(key);
        let mut plan = vec![ReadOn {
            cluster: self.current.cluster_of(position),
            shards: vec![&self.current.shards[position]],
            previous: false,
        }];
        if let Some(previous) = &self.previous {
            let old_position = previous.position(key);
            let old = &previous.shards[old_position];
            let old_cluster = previous.cluster_of(old_position);
            if old.name == plan[0].shards[0].name && old_cluster == plan[0].cluster {
                return plan;
            }
            if old_cluster == plan[0].cluster {
                plan[0].shards.push(old);
            } else {
                plan.insert(
                    0,
                    ReadOn {
                        cluster: old_cluster,
                        shards: vec![old],
                        previous: true,
                    },
                );
            }
        }
        plan
    }

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

    /// During a rebalance, the old owner of `key` when it differs from the
    /// new one and is on the same cluster (checked in the insert's statement).
    pub(crate) fn moving_from(&self, key: &str) -> Option<&ShardSql> {
        let previous = self.previous.as_ref()?;
        let old = previous.locate(key);
        let on_cluster = previous.cluster_of(previous.position(key))
            == self.current.cluster_of(self.current.position(key));
        (old.name != self.current.locate(key).name && on_cluster).then_some(old)
    }

    /// During a rebalance, the old owner of `key` and its cluster when that
    /// is another cluster than the new owner's (checked before the insert).
    pub(crate) fn moving_across(&self, key: &str) -> Option<(&str, &ShardSql)> {
        let previous = self.previous.as_ref()?;
        let old_cluster = previous.cluster_of(previous.position(key));
        (old_cluster != self.current.cluster_of(self.current.position(key)))
            .then(|| (old_cluster, previous.locate(key)))
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

    /// Every shard that holds rows, with its cluster: the layout's, then
    /// (during a rebalance) those only the old layout has.
    pub(crate) fn held_shards(&self) -> Vec<(&str, &ShardSql)> {
        let current = self.current.shards.iter().enumerate();
        let mut held: Vec<(&str, &ShardSql)> = current
            .map(|(position, shard)| (self.current.cluster_of(position), shard))
            .collect();
        if let Some(previous) = &self.previous {
            for shard in self.leaving_shards() {
                let position = previous
                    .shards
                    .iter()
                    .position(|old| old.name == shard.name);
                held.extend(position.map(|position| (previous.cluster_of(position), shard)));
            }
        }
        held
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

/// A replay bound no standby reaches: its cluster's WAL position after a
/// job could not be read yet (see [`Routing::settle_replay_bound`]).
pub(crate) const UNKNOWN_POSITION: u64 = u64::MAX;

/// The shared, swappable routing table.
#[derive(Debug)]
pub struct Routing {
    table: RwLock<Arc<RoutingTable>>,
    /// Shared by writes, exclusive for a swap.
    gate: tokio::sync::RwLock<()>,
    /// The shard whose writes wait (a shard move's cutover), if any.
    fence: tokio::sync::watch::Sender<Option<String>>,
}

impl Routing {
    /// Routing by one layout.
    #[cfg(test)]
    fn new(current: BuiltLayout) -> Self {
        Routing::with_table(RoutingTable {
            current,
            previous: None,
            min_replay_lsn: BTreeMap::new(),
        })
    }

    /// Routing by a table (a rebalance resumed at start-up holds two layouts).
    pub(crate) fn with_table(table: RoutingTable) -> Self {
        Routing {
            table: RwLock::new(Arc::new(table)),
            gate: tokio::sync::RwLock::new(()),
            fence: tokio::sync::watch::Sender::new(None),
        }
    }

    /// [`Routing::write_table`] for a write of `key`, once `key`'s shard is
    /// not fenced; `None` when it still is at `deadline` (nothing written).
    pub(crate) async fn write_table_for(
        &self,
        key: &str,
        deadline: tokio::time::Instant,
    ) -> Option<(tokio::sync::RwLockReadGuard<'_, ()>, Arc<RoutingTable>)> {
        loop {
            let mut fence = self.fence.subscribe();
            let (gate, table) = self.write_table().await;
            let shard = table.current.locate(key).name.clone();
            if fence.borrow_and_update().as_deref() != Some(shard.as_str()) {
                return Some((gate, table));
            }
            drop((gate, table));
            let lifted = fence.wait_for(|fenced| fenced.as_deref() != Some(shard.as_str()));
            if !matches!(tokio::time::timeout_at(deadline, lifted).await, Ok(Ok(_))) {
                return None;
            }
        }
    }

    /// [`Routing::write_table`] for a write that may touch any shard (a bulk
    /// insert, a data set), once no shard is fenced; `None` when one still
    /// is at `deadline` (nothing written).
    pub(crate) async fn write_table_unfenced(
        &self,
        deadline: tokio::time::Instant,
    ) -> Option<(tokio::sync::RwLockReadGuard<'_, ()>, Arc<RoutingTable>)> {
        loop {
            let mut fence = self.fence.subscribe();
            let (gate, table) = self.write_table().await;
            if fence.borrow_and_update().is_none() {
                return Some((gate, table));
            }
            drop((gate, table));
            let lifted = fence.wait_for(Option::is_none);
            if !matches!(tokio::time::timeout_at(deadline, lifted).await, Ok(Ok(_))) {
                return None;
            }
        }
    }

    /// Fences `shard`: from when this returns until [`Routing::lift_fence`],
    /// no write to it runs (see the module's doc).
    pub(crate) async fn fence(&self, shard: &str) {
        self.fence.send_replace(Some(shard.to_owned()));
        drop(self.gate.write().await);
    }

    /// Lifts the fence: the waiting writes go on.
    pub(crate) fn lift_fence(&self) {
        self.fence.send_replace(None);
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

    /// Sets `cluster`'s replay bound to `lsn` in the table in force, when
    /// that is still layout `version` alone (no job began since) and the
    /// bound is [`UNKNOWN_POSITION`]: for a cluster whose WAL position
    /// after a job was read late. Whether it did.
    pub(crate) async fn settle_replay_bound(&self, version: u64, cluster: &str, lsn: u64) -> bool {
        let _gate = self.gate.write().await;
        let table = self.table();
        let still = table.current.version == version && table.previous.is_none();
        if !still || table.replay_bound(cluster) != UNKNOWN_POSITION {
            return false;
        }
        let Ok(current) = BuiltLayout::new(&table.view()) else {
            return false;
        };
        let mut min_replay_lsn = table.min_replay_lsn.clone();
        min_replay_lsn.insert(cluster.to_owned(), lsn);
        let settled = Arc::new(RoutingTable {
            current,
            previous: None,
            min_replay_lsn,
        });
        match self.table.write() {
            Ok(mut slot) => *slot = settled,
            Err(poisoned) => *poisoned.into_inner() = settled,
        }
        true
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

    fn placement(strategy: StrategyKind, shards: u64, version: u64) -> BuiltLayout {
        BuiltLayout::new(&LayoutView {
            version,
            layout: Layout::with_count(strategy, shards).unwrap(),
            placement: Vec::new(),
        })
        .unwrap()
    }

    #[tokio::test]
    async fn a_replay_bound_not_known_after_a_job_is_settled_only_under_that_table() {
        let check = |bound: u64, version: u64, expected: (bool, u64)| async move {
            let routing = Routing::with_table(RoutingTable {
                current: placement(StrategyKind::Ring, 3, 2),
                previous: None,
                min_replay_lsn: [("c2".to_owned(), bound)].into(),
            });
            let settled = routing.settle_replay_bound(version, "c2", 7).await;
            let now = routing.table().replay_bound("c2");
            assert_eq!((settled, now), expected, "bound {bound}, version {version}");
        };
        check(UNKNOWN_POSITION, 2, (true, 7)).await;
        check(UNKNOWN_POSITION, 1, (false, UNKNOWN_POSITION)).await;
        check(5, 2, (false, 5)).await;
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
                min_replay_lsn: BTreeMap::new(),
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
    fn held_shards_name_their_cluster_and_add_the_leaving_ones() {
        let spread = |count: u64, version: u64| {
            let mut layout = Layout::with_count(StrategyKind::Ring, count).unwrap();
            for (index, shard) in layout.shards.iter_mut().enumerate() {
                shard.cluster = Some(format!("c{}", index % 2 + 1));
            }
            let view = LayoutView {
                version,
                layout,
                placement: Vec::new(),
            };
            BuiltLayout::new(&view).unwrap()
        };
        let check = |table: &RoutingTable, expected: &[&str]| {
            let held: Vec<String> = table
                .held_shards()
                .iter()
                .map(|(cluster, shard)| format!("{cluster}/{}", shard.name))
                .collect();
            assert_eq!(held, expected);
        };
        let alone = RoutingTable {
            current: spread(3, 1),
            previous: None,
            min_replay_lsn: BTreeMap::new(),
        };
        check(&alone, &["c1/s0", "c2/s1", "c1/s2"]);
        let shrinking = RoutingTable {
            current: spread(2, 2),
            previous: Some(spread(4, 1)),
            min_replay_lsn: BTreeMap::new(),
        };
        check(&shrinking, &["c1/s0", "c2/s1", "c1/s2", "c2/s3"]);
        let unnamed = Routing::new(placement(StrategyKind::Ring, 2, 1)).table();
        check(&unnamed, &["c1/s0", "c1/s1"]);
    }

    #[test]
    fn reads_look_under_the_old_layout_only_when_the_owner_changed() {
        let table = RoutingTable {
            current: placement(StrategyKind::Modulo, 4, 2),
            previous: Some(placement(StrategyKind::Modulo, 3, 1)),
            min_replay_lsn: BTreeMap::new(),
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

    /// A ring over `shards` shards placed round-robin over c1, c2.
    fn over_two(shards: u64, version: u64) -> BuiltLayout {
        let layout = Layout::with_count(StrategyKind::Ring, shards).unwrap();
        BuiltLayout::new(&LayoutView {
            version,
            layout: layout.placed(&["c1", "c2"]).unwrap(),
            placement: Vec::new(),
        })
        .unwrap()
    }

    #[test]
    fn a_key_moving_between_clusters_is_read_at_its_source_first() {
        let table = RoutingTable {
            current: over_two(4, 2),
            previous: Some(over_two(3, 1)),
            min_replay_lsn: BTreeMap::new(),
        };
        let (mut across, mut within) = (0, 0);
        for index in 0..300 {
            let key = format!("user_{index}");
            let plan = table.read_plan(&key);
            let read: Vec<(&str, bool)> = plan.iter().map(|on| (on.cluster, on.previous)).collect();
            let names = |on: &ReadOn<'_>| -> Vec<String> {
                on.shards.iter().map(|shard| shard.name.clone()).collect()
            };
            let new = table.current.locate(&key).name.clone();
            let old = table.previous.as_ref().unwrap().locate(&key).name.clone();
            if plan.len() == 2 {
                across += 1;
                assert_eq!(names(&plan[0]), [old], "{key}: the source first");
                assert_eq!(names(&plan[1]), [new], "{key}");
                assert_eq!((read[0].1, read[1].1), (true, false));
                assert_ne!(read[0].0, read[1].0);
            } else if plan[0].shards.len() == 2 {
                within += 1;
                assert_eq!(names(&plan[0]), [new, old], "{key}: one read, new first");
            }
        }
        assert!(across > 0 && within > 0, "{across} across, {within} within");
    }
}
