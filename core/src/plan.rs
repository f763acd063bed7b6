//! `plan(old, new, keys)`: which keys change owner between two layouts, counts
//! per (from, to) pair, the moved fraction, the ideal minimum for that change and
//! load statistics before and after.
//!
//! Shards are matched by name: a key "moves" when the name of its shard differs
//! between the layouts. Where shards live (their clusters, see `placement.rs`)
//! is kept per shard, so the plan also says which moves cross clusters and
//! which shards change cluster ([`Plan::cluster_moves`]: from the per-pair
//! counts, never another pass over the keys). Layouts naming no cluster have
//! every shard on the same unnamed one: nothing crosses.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::keys::numbered_key_hashes;
use crate::layout::Layout;
use crate::router::Router;
use crate::stats::LoadStats;
// What utoipa's derive expands to uses the std prelude's macros.
#[cfg(feature = "openapi")]
use alloc::format;

/// Largest old × new shard grid counted in a dense table; larger ones use a map.
const DENSE_TRANSFER_CELLS: usize = 1 << 20;

/// Keys moving from one shard to another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// Index of the source shard in the old layout.
    pub from: usize,
    /// Index of the destination shard in the new layout.
    pub to: usize,
    /// How many keys move along this pair.
    pub keys: u64,
}

/// The outcome of going from one layout to another over a key set.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Shard names of the old layout, in its order.
    pub old_shards: Vec<String>,
    /// Shard names of the new layout, in its order.
    pub new_shards: Vec<String>,
    /// Cluster of each shard of the old layout, in its order (`None`: the
    /// layout names none for it).
    pub old_clusters: Vec<Option<String>>,
    /// Cluster of each shard of the new layout, in its order.
    pub new_clusters: Vec<Option<String>>,
    /// Per key, its shard index in the old layout.
    pub before: Vec<u32>,
    /// Per key, its shard index in the new layout.
    pub after: Vec<u32>,
    /// Keys considered.
    pub total: u64,
    /// Keys whose shard (by name) changes.
    pub moved: u64,
    /// Moved keys per (from, to) pair, sorted by `from` then `to`.
    pub transfers: Vec<Transfer>,
    /// The least fraction of keys any placement must move for this change of
    /// shards and weights (see [`ideal_fraction`]).
    pub ideal_fraction: f64,
    /// Keys per shard of the old layout.
    pub loads_before: LoadStats,
    /// Keys per shard of the new layout.
    pub loads_after: LoadStats,
}

impl Plan {
    /// `moved / total` (0 for an empty key set).
    pub fn moved_fraction(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.moved as f64 / self.total as f64
        }
    }

    /// Whether key `key_index` changes shard.
    pub fn is_moved(&self, key_index: usize) -> bool {
        self.old_shards[self.before[key_index] as usize]
            != self.new_shards[self.after[key_index] as usize]
    }

    /// Whether key `key_index` ends on another cluster: it changes shard
    /// onto one, or stays on a shard that changes cluster.
    pub fn crosses_clusters(&self, key_index: usize) -> bool {
        self.old_clusters[self.before[key_index] as usize]
            != self.new_clusters[self.after[key_index] as usize]
    }

    /// The moves between clusters: moved keys within a cluster and across
    /// (per pair of clusters), and the shards that change cluster. From the
    /// per-pair counts, in time proportional to the shards and transfers.
    pub fn cluster_moves(&self) -> ClusterMoves {
        // Sorted vectors rather than maps: a map's code is compiled once per
        // key type, and the page carries each (BENCHMARKS.md, Web, Size).
        let mut pairs: Vec<(ClusterPair<'_>, u64)> = Vec::new();
        let mut leaving = vec![0u64; self.old_shards.len()];
        for transfer in &self.transfers {
            leaving[transfer.from] += transfer.keys;
            let from = self.old_clusters[transfer.from].as_deref();
            let to = self.new_clusters[transfer.to].as_deref();
            if from != to {
                match pairs.binary_search_by(|(pair, _)| pair.cmp(&(from, to))) {
                    Ok(found) => pairs[found].1 += transfer.keys,
                    Err(slot) => pairs.insert(slot, ((from, to), transfer.keys)),
                }
            }
        }
        let across = pairs.iter().map(|(_, keys)| keys).sum();
        let mut new_index: Vec<(&str, usize)> = self
            .new_shards
            .iter()
            .enumerate()
            .map(|(index, name)| (name.as_str(), index))
            .collect();
        new_index.sort_unstable();
        let shards = self
            .old_shards
            .iter()
            .enumerate()
            .filter_map(|(old, name)| {
                let found = new_index.binary_search_by(|(new, _)| new.cmp(&name.as_str()));
                let new = new_index[found.ok()?].1;
                let (from, to) = (&self.old_clusters[old], &self.new_clusters[new]);
                (from != to).then(|| ShardMove {
                    shard: name.clone(),
                    from: from.clone(),
                    to: to.clone(),
                    keys: self.loads_before.counts[old] - leaving[old],
                })
            })
            .collect();
        let owned = |cluster: Option<&str>| cluster.map(String::from);
        ClusterMoves {
            within: self.moved - across,
            across,
            transfers: pairs
                .into_iter()
                .map(|((from, to), keys)| ClusterTransfer {
                    from: owned(from),
                    to: owned(to),
                    keys,
                })
                .collect(),
            shards,
        }
    }

    /// The plan without the per-key data, in the shape the CLI and the HTTP
    /// API print.
    pub fn summary(&self) -> PlanSummary {
        let loads = |names: &[String], clusters: &[Option<String>], stats: &LoadStats| {
            names
                .iter()
                .zip(clusters)
                .zip(&stats.counts)
                .map(|((name, cluster), keys)| ShardLoad {
                    shard: name.clone(),
                    keys: *keys,
                    cluster: cluster.clone(),
                })
                .collect()
        };
        let clusters = self.cluster_moves();
        PlanSummary {
            total: self.total,
            moved: self.moved,
            moved_within_cluster: clusters.within,
            moved_across_clusters: clusters.across,
            cluster_transfers: clusters.transfers,
            shard_moves: clusters.shards,
            moved_fraction: self.moved_fraction(),
            ideal_fraction: self.ideal_fraction,
            transfers: self
                .transfers
                .iter()
                .map(|transfer| TransferSummary {
                    from: self.old_shards[transfer.from].clone(),
                    to: self.new_shards[transfer.to].clone(),
                    keys: transfer.keys,
                })
                .collect(),
            loads_before: loads(&self.old_shards, &self.old_clusters, &self.loads_before),
            loads_after: loads(&self.new_shards, &self.new_clusters, &self.loads_after),
            max_over_mean_before: self.loads_before.max_over_mean,
            max_over_mean_after: self.loads_after.max_over_mean,
            std_dev_before: self.loads_before.std_dev,
            std_dev_after: self.loads_after.std_dev,
        }
    }
}

/// Moves between clusters in a plan ([`Plan::cluster_moves`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterMoves {
    /// Moved keys whose new shard is on the cluster of their old one.
    pub within: u64,
    /// Moved keys whose new shard is on another cluster.
    pub across: u64,
    /// `across` per (from, to) pair of clusters, sorted by `from` then `to`.
    pub transfers: Vec<ClusterTransfer>,
    /// Shards in both layouts whose cluster changes (whole-shard moves), in
    /// the old layout's order.
    pub shards: Vec<ShardMove>,
}

/// Keys on one shard.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShardLoad {
    /// Shard name.
    pub shard: String,
    /// Keys it holds.
    pub keys: u64,
    /// The cluster it lives on, where the answer says (a plan's loads of a
    /// layout naming clusters); left out otherwise.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub cluster: Option<String>,
}

/// Moved keys from one cluster to another.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClusterTransfer {
    /// Source cluster (`null`: the old layout names none).
    pub from: Option<String>,
    /// Destination cluster (`null`: the new layout names none).
    pub to: Option<String>,
    /// Keys moving to a shard on `to` from a shard on `from`.
    pub keys: u64,
}

/// A shard that stays and changes cluster: a whole-shard move.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShardMove {
    /// Shard name.
    pub shard: String,
    /// Its cluster before (`null`: the old layout names none).
    pub from: Option<String>,
    /// Its cluster after (`null`: the new layout names none).
    pub to: Option<String>,
    /// Keys it holds that stay on it, so move with it.
    pub keys: u64,
}

/// Keys moving between two named shards.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TransferSummary {
    /// Source shard name.
    pub from: String,
    /// Destination shard name.
    pub to: String,
    /// Keys moving.
    pub keys: u64,
}

/// A plan without per-key data: what `ecoshard plan --format json` prints and
/// what `PUT /api/layout` answers.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlanSummary {
    /// Keys considered.
    pub total: u64,
    /// Keys that change shard.
    pub moved: u64,
    /// Of `moved`, keys whose new shard is on the cluster of their old one
    /// (absent from older bridges: 0).
    #[cfg_attr(feature = "serde", serde(default))]
    pub moved_within_cluster: u64,
    /// Of `moved`, keys whose new shard is on another cluster.
    #[cfg_attr(feature = "serde", serde(default))]
    pub moved_across_clusters: u64,
    /// `moved_across_clusters` per (from, to) pair of clusters.
    #[cfg_attr(feature = "serde", serde(default))]
    pub cluster_transfers: Vec<ClusterTransfer>,
    /// Shards that stay and change cluster (whole-shard moves).
    #[cfg_attr(feature = "serde", serde(default))]
    pub shard_moves: Vec<ShardMove>,
    /// `moved / total`.
    pub moved_fraction: f64,
    /// The least fraction any placement must move for this change.
    pub ideal_fraction: f64,
    /// Moved keys per (from, to) pair.
    pub transfers: Vec<TransferSummary>,
    /// Keys per shard before, in the old layout's order.
    pub loads_before: Vec<ShardLoad>,
    /// Keys per shard after, in the new layout's order.
    pub loads_after: Vec<ShardLoad>,
    /// Peak-to-mean load before.
    pub max_over_mean_before: f64,
    /// Peak-to-mean load after.
    pub max_over_mean_after: f64,
    /// Standard deviation of the per-shard load before.
    pub std_dev_before: f64,
    /// Standard deviation of the per-shard load after.
    pub std_dev_after: f64,
}

/// Plans the change from `old` to `new` over the given keys.
pub fn plan<'k>(old: &Router, new: &Router, keys: impl IntoIterator<Item = &'k [u8]>) -> Plan {
    let keys: Vec<&[u8]> = keys.into_iter().collect();
    let old_hashes: Vec<u64> = keys.iter().map(|key| old.key_hash(key)).collect();
    if old.layout().seed == new.layout().seed {
        plan_hashes(old, new, &old_hashes, &old_hashes)
    } else {
        let new_hashes: Vec<u64> = keys.iter().map(|key| new.key_hash(key)).collect();
        plan_hashes(old, new, &old_hashes, &new_hashes)
    }
}

/// Plans the change over the keys `prefix0` … `prefix{count-1}`.
pub fn plan_numbered(old: &Router, new: &Router, prefix: &str, count: usize) -> Plan {
    let old_hashes = numbered_key_hashes(prefix, count, old.layout().seed);
    if old.layout().seed == new.layout().seed {
        plan_hashes(old, new, &old_hashes, &old_hashes)
    } else {
        let new_hashes = numbered_key_hashes(prefix, count, new.layout().seed);
        plan_hashes(old, new, &old_hashes, &new_hashes)
    }
}

/// Plans the change over keys given by their hashes under each layout's seed
/// (the same slice twice when the seeds are equal). Both slices have one entry
/// per key; extra entries of the longer one are ignored.
pub fn plan_hashes(old: &Router, new: &Router, old_hashes: &[u64], new_hashes: &[u64]) -> Plan {
    let key_count = old_hashes.len().min(new_hashes.len());
    let mut before = Vec::new();
    let mut after = Vec::new();
    old.assign(&old_hashes[..key_count], &mut before);
    new.assign(&new_hashes[..key_count], &mut after);

    let old_shards: Vec<String> = old.shards().iter().map(|s| s.name.clone()).collect();
    let new_shards: Vec<String> = new.shards().iter().map(|s| s.name.clone()).collect();
    // Old index → new index of the same name (u32::MAX when it is gone).
    let same_shard: Vec<u32> = old_shards
        .iter()
        .map(|name| {
            new_shards
                .iter()
                .position(|candidate| candidate == name)
                .map_or(u32::MAX, |index| index as u32)
        })
        .collect();

    let transfers = count_transfers(&before, &after, &same_shard, new_shards.len());
    let moved = transfers.iter().map(|transfer| transfer.keys).sum();
    let clusters = |router: &Router| router.shards().iter().map(|s| s.cluster.clone()).collect();
    Plan {
        old_clusters: clusters(old),
        new_clusters: clusters(new),
        ideal_fraction: ideal_fraction(old.layout(), new.layout()),
        loads_before: LoadStats::from_assignment(&before, old_shards.len()),
        loads_after: LoadStats::from_assignment(&after, new_shards.len()),
        old_shards,
        new_shards,
        before,
        after,
        total: key_count as u64,
        moved,
        transfers,
    }
}

/// A move's clusters, from and to (`None`: the layout names none).
type ClusterPair<'a> = (Option<&'a str>, Option<&'a str>);

fn count_transfers(
    before: &[u32],
    after: &[u32],
    same_shard: &[u32],
    new_count: usize,
) -> Vec<Transfer> {
    let old_count = same_shard.len();
    let moves = before
        .iter()
        .zip(after)
        .filter(|(from, to)| same_shard[**from as usize] != **to);
    let mut transfers = Vec::new();
    if old_count.saturating_mul(new_count) <= DENSE_TRANSFER_CELLS {
        let mut cells = vec![0u64; old_count * new_count];
        for (from, to) in moves {
            cells[*from as usize * new_count + *to as usize] += 1;
        }
        for (cell, keys) in cells.into_iter().enumerate() {
            if keys > 0 {
                transfers.push(Transfer {
                    from: cell / new_count,
                    to: cell % new_count,
                    keys,
                });
            }
        }
    } else {
        // Sorted, then counted by runs: no map's code in the page.
        let mut cells: Vec<(u32, u32)> = moves.map(|(from, to)| (*from, *to)).collect();
        cells.sort_unstable();
        for run in cells.chunk_by(|a, b| a == b) {
            transfers.push(Transfer {
                from: run[0].0 as usize,
                to: run[0].1 as usize,
                keys: run.len() as u64,
            });
        }
    }
    transfers
}

/// The least fraction of uniformly spread keys any placement must move to go
/// from `old` to `new`: `1 - Σ min(p_s, q_s)` over shard names `s`, where `p`
/// and `q` are each shard's share of the total weight before and after (equal
/// shares for modulo and jump, which ignore weights). Adding one shard to N
/// equal ones gives `1/(N+1)`; removing one of N gives `1/N`.
pub fn ideal_fraction(old: &Layout, new: &Layout) -> f64 {
    let old_shares = shares(old);
    let new_shares = shares(new);
    let kept: f64 = old
        .shards
        .iter()
        .zip(&old_shares)
        .filter_map(|(shard, old_share)| {
            new.shard_index(&shard.name)
                .map(|index| old_share.min(new_shares[index]))
        })
        .sum();
    (1.0 - kept).max(0.0)
}

fn shares(layout: &Layout) -> Vec<f64> {
    let equal = !layout.strategy.supports_weights();
    let weight = |weight: f64| if equal { 1.0 } else { weight };
    let total: f64 = layout.shards.iter().map(|shard| weight(shard.weight)).sum();
    layout
        .shards
        .iter()
        .map(|shard| {
            if total > 0.0 {
                weight(shard.weight) / total
            } else {
                0.0
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::StrategyKind;
    use crate::shard::Shard;
    use alloc::collections::BTreeMap;

    fn router(strategy: StrategyKind, count: u64) -> Router {
        Layout::with_count(strategy, count)
            .unwrap()
            .build()
            .unwrap()
    }

    #[test]
    fn transfers_over_many_shards_are_counted_by_pair_in_order() {
        // 1,100 × 1,000 shards is past the dense table: the sorted count.
        let same_shard: Vec<u32> = (0..1_100).collect();
        let before = [5, 7, 5, 1_099, 5, 3];
        let after = [9, 2, 9, 0, 8, 3];
        let got: Vec<_> = count_transfers(&before, &after, &same_shard, 1_000)
            .iter()
            .map(|transfer| (transfer.from, transfer.to, transfer.keys))
            .collect();
        assert_eq!(got, [(5, 8, 1), (5, 9, 2), (7, 2, 1), (1_099, 0, 1)]);
    }

    #[test]
    fn ideal_fraction_of_common_changes() {
        let check = |old: Layout, new: Layout, expected: f64| {
            let got = ideal_fraction(&old, &new);
            assert!((got - expected).abs() < 1e-12, "{got} != {expected}");
        };
        let ring = |count| Layout::with_count(StrategyKind::Ring, count).unwrap();
        check(ring(3), ring(4), 0.25);
        check(ring(4), ring(3), 0.25);
        check(ring(10), ring(11), 1.0 / 11.0);
        check(ring(4), ring(4), 0.0);
        let renamed = Layout::new(StrategyKind::Ring, alloc::vec![Shard::new("x")]);
        check(ring(1), renamed, 1.0);
        let heavier = Layout::new(
            StrategyKind::Ring,
            alloc::vec![Shard::new("s0"), Shard::weighted("s1", 3.0)],
        );
        check(ring(2), heavier, 0.25);
    }

    #[test]
    fn modulo_three_to_four_moves_three_quarters() {
        let plan = plan_numbered(
            &router(StrategyKind::Modulo, 3),
            &router(StrategyKind::Modulo, 4),
            "user_",
            100_000,
        );
        let fraction = plan.moved_fraction();
        assert!((0.74..0.76).contains(&fraction), "{fraction}");
        assert_eq!(plan.ideal_fraction, 0.25);
    }

    #[test]
    fn counts_agree_with_per_key_data() {
        for strategy in StrategyKind::ALL {
            let plan = plan_numbered(&router(strategy, 5), &router(strategy, 6), "k", 3_000);
            let moved_keys = (0..3_000).filter(|key| plan.is_moved(*key)).count() as u64;
            assert_eq!(plan.moved, moved_keys, "{strategy}");
            assert_eq!(plan.loads_before.total, 3_000);
            assert_eq!(plan.loads_after.total, 3_000);
            let summary = plan.summary();
            assert_eq!(
                summary.transfers.iter().map(|t| t.keys).sum::<u64>(),
                plan.moved
            );
            assert!(summary.transfers.iter().all(|t| t.from != t.to));
        }
    }

    #[test]
    fn same_layout_moves_nothing() {
        for strategy in StrategyKind::ALL {
            let plan = plan_numbered(&router(strategy, 4), &router(strategy, 4), "k", 1_000);
            assert_eq!(plan.moved, 0, "{strategy}");
            assert!(plan.transfers.is_empty());
        }
    }

    #[test]
    fn a_new_seed_moves_keys_even_with_the_same_shards() {
        let old = router(StrategyKind::Ring, 4);
        let new = old.layout().clone().with_seed(99).build().unwrap();
        let keys: Vec<&[u8]> = alloc::vec![b"a", b"b", b"c", b"d", b"e", b"f", b"g", b"h"];
        let plan = plan(&old, &new, keys.iter().copied());
        assert_eq!(plan.total, 8);
        assert!(plan.moved > 0);
    }

    /// Ring shards `s0` … placed on `clusters[i]` ("" names none).
    fn ring_on(clusters: &[&str]) -> Router {
        let shards = clusters
            .iter()
            .enumerate()
            .map(|(index, cluster)| {
                let shard = Shard::new(alloc::format!("s{index}"));
                match *cluster {
                    "" => shard,
                    cluster => shard.on_cluster(cluster),
                }
            })
            .collect();
        Layout::new(StrategyKind::Ring, shards).build().unwrap()
    }

    /// The plan's cluster moves from `old` to `new` (clusters per shard),
    /// checked key by key; `shard_moves` as (shard, from, to).
    fn check_cluster_moves(old: &[&str], new: &[&str], shard_moves: &[(&str, &str, &str)]) {
        let plan = plan_numbered(&ring_on(old), &ring_on(new), "k", 5_000);
        let moves = plan.cluster_moves();
        fn cluster<'a>(names: &[&'a str], index: u32) -> Option<&'a str> {
            Some(names[index as usize]).filter(|name| !name.is_empty())
        }
        let mut pairs = BTreeMap::new();
        let (mut carried, mut crossing) = (alloc::vec![0u64; old.len()], 0);
        for key in 0..5_000 {
            let (from, to) = (plan.before[key], plan.after[key]);
            let crosses = cluster(old, from) != cluster(new, to);
            assert_eq!(plan.crosses_clusters(key), crosses, "key {key}");
            crossing += u64::from(crosses);
            if !plan.is_moved(key) {
                carried[from as usize] += 1;
            } else if crosses {
                *pairs
                    .entry((cluster(old, from), cluster(new, to)))
                    .or_insert(0u64) += 1;
            }
        }
        let expected_pairs: Vec<_> = pairs
            .into_iter()
            .map(|((from, to), keys)| (from, to, keys))
            .collect();
        let got_pairs: Vec<_> = moves
            .transfers
            .iter()
            .map(|t| (t.from.as_deref(), t.to.as_deref(), t.keys))
            .collect();
        assert_eq!(got_pairs, expected_pairs, "{old:?} -> {new:?}");
        assert_eq!(
            moves.across,
            got_pairs.iter().map(|pair| pair.2).sum::<u64>()
        );
        assert_eq!(moves.within + moves.across, plan.moved);
        let got_shards: Vec<_> = moves
            .shards
            .iter()
            .map(|m| {
                (
                    m.shard.as_str(),
                    m.from.as_deref().unwrap_or(""),
                    m.to.as_deref().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(got_shards, shard_moves, "{old:?} -> {new:?}");
        for shard_move in &moves.shards {
            let index = plan
                .old_shards
                .iter()
                .position(|name| *name == shard_move.shard)
                .unwrap();
            assert_eq!(shard_move.keys, carried[index], "{}", shard_move.shard);
        }
        let carried_across: u64 = moves.shards.iter().map(|m| m.keys).sum();
        assert_eq!(
            crossing,
            moves.across + carried_across,
            "{old:?} -> {new:?}"
        );
    }

    #[test]
    fn cluster_moves_table() {
        check_cluster_moves(&["", "", ""], &["", "", "", ""], &[]);
        check_cluster_moves(&["c1", "c1", "c1"], &["c1", "c1", "c1", "c1"], &[]);
        check_cluster_moves(&["c1", "c2", "c1"], &["c1", "c2", "c1", "c2"], &[]);
        check_cluster_moves(&["c1", "c1", "c1"], &["c1", "c1", "c1", "c2"], &[]);
        check_cluster_moves(
            &["c1", "c2", "c3"],
            &["c1", "c3", "c3"],
            &[("s1", "c2", "c3")],
        );
        check_cluster_moves(&["c1", "c1"], &["c2", "c1", "c3"], &[("s0", "c1", "c2")]);
        check_cluster_moves(&["", "c1"], &["c1", "c1", "c2"], &[("s0", "", "c1")]);
        check_cluster_moves(
            &["c1", "c2", "c1", "c2"],
            &["c2", "c1", "c2"],
            &[("s0", "c1", "c2"), ("s1", "c2", "c1"), ("s2", "c1", "c2")],
        );
    }

    #[test]
    fn the_summary_carries_clusters() {
        let plan = plan_numbered(
            &ring_on(&["c1", "c1"]),
            &ring_on(&["c1", "c2", "c2"]),
            "k",
            2_000,
        );
        let summary = plan.summary();
        let clusters = |loads: &[ShardLoad]| {
            loads
                .iter()
                .map(|l| l.cluster.clone().unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(clusters(&summary.loads_before), ["c1", "c1"]);
        assert_eq!(clusters(&summary.loads_after), ["c1", "c2", "c2"]);
        assert_eq!(summary.shard_moves.len(), 1);
        assert_eq!(summary.shard_moves[0].shard, "s1");
        assert!(summary.moved_across_clusters > 0);
        assert_eq!(
            summary.moved_within_cluster + summary.moved_across_clusters,
            summary.moved
        );
        let unplaced = plan_numbered(
            &router(StrategyKind::Ring, 2),
            &router(StrategyKind::Ring, 3),
            "k",
            2_000,
        )
        .summary();
        assert!(
            unplaced
                .loads_after
                .iter()
                .all(|load| load.cluster.is_none())
        );
        assert_eq!(
            (
                unplaced.moved_within_cluster,
                unplaced.moved_across_clusters
            ),
            (unplaced.moved, 0)
        );
        assert!(unplaced.cluster_transfers.is_empty() && unplaced.shard_moves.is_empty());
    }

    #[test]
    fn large_shard_grids_count_transfers_in_a_map() {
        let old = router(StrategyKind::Modulo, 1_500);
        let new = router(StrategyKind::Modulo, 1_000);
        let plan = plan_numbered(&old, &new, "k", 20_000);
        let moved_keys = (0..20_000).filter(|key| plan.is_moved(*key)).count() as u64;
        assert_eq!(plan.moved, moved_keys);
        assert!(
            plan.transfers
                .windows(2)
                .all(|w| (w[0].from, w[0].to) < (w[1].from, w[1].to))
        );
    }
}
