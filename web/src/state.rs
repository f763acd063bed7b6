//! The explorer's state: what the person chose (strategy, parameters, key
//! count) and the change being shown (the shard list before and after).
//! Every control sends an [`ExplorerAction`]; the reducer is plain Rust, tested
//! natively.
//!
//! The page always shows one change: setting the shard count, adding a shard
//! or removing one makes the current shards the "before" and the result the
//! "after". Changing the strategy or a parameter replays the same change under
//! the new settings, so strategies compare on the same keys and the same change.

use std::rc::Rc;

use ecoshard_core::wire::{LayoutView, UserSample};
use ecoshard_core::{
    DEFAULT_KEY_PREFIX, DEFAULT_LOAD_FACTOR, DEFAULT_SEED, DEFAULT_TABLE_SIZE, DEFAULT_VNODES,
    Layout, Shard, StrategyKind, key_hash, numbered_key_hashes, thousands,
};
use yew::Reducible;

/// Most keys the explorer places.
pub const MAX_KEYS: u32 = 1_000_000;
/// Most shards the explorer draws.
pub const MAX_SHARDS: usize = 64;
/// Keys placed when the page opens.
pub const DEFAULT_KEYS: u32 = 2_000;
/// Shards before the first change.
pub const INITIAL_SHARDS: usize = 3;
/// Most clusters the explorer places shards on (as many as the bridge runs).
pub const MAX_CLUSTERS: usize = 8;

/// Strategy parameters, each used by some strategies only.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Params {
    /// Seed of the key hash.
    pub seed: u64,
    /// Virtual nodes per shard (ring, bounded-load).
    pub vnodes: u32,
    /// Lookup table size, a prime (Maglev).
    pub table_size: u32,
    /// Bound factor `c` (bounded-load).
    pub load_factor: f64,
}

/// The page's bounded-load factor, not the core's
/// [`DEFAULT_LOAD_FACTOR`] (1.25): with 160 virtual nodes a shard's ring share
/// is already within about 10 % of the mean (ring 3 → 4 over 2,000 keys: peak
/// 1.10 × the mean), so a cap of 1.25 × the mean never binds and bounded-load
/// would place every key as ring does. At 1.05 the cap visibly acts: on that
/// change it holds s1 to 525 keys (ring gives it 551), 502 keys move instead
/// of 476, and the peak falls to 1.05.
pub const PAGE_LOAD_FACTOR: f64 = 1.05;

impl Default for Params {
    fn default() -> Self {
        Params {
            seed: DEFAULT_SEED,
            vnodes: DEFAULT_VNODES,
            table_size: DEFAULT_TABLE_SIZE,
            load_factor: PAGE_LOAD_FACTOR,
        }
    }
}

/// Keys sampled from the database: its real ids, how many rows they were
/// drawn from, and the layout version they were drawn under.
#[derive(Clone, Debug)]
pub struct SampledKeys {
    /// The ids.
    pub ids: Rc<[String]>,
    /// Rows the database held (PostgreSQL's estimate).
    pub rows: u64,
    /// The layout version.
    pub version: u64,
}

impl PartialEq for SampledKeys {
    /// The same sample: one load of the database (comparing the ids one
    /// by one on every render would cost more than it tells).
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.ids, &other.ids)
            && (self.rows, self.version) == (other.rows, other.version)
    }
}

/// The keys the explorer places.
#[derive(Clone, Debug, PartialEq)]
pub enum KeySet {
    /// `user_0` … `user_{n-1}`.
    Numbered(u32),
    /// Ids sampled from the database.
    Sampled(SampledKeys),
}

impl KeySet {
    /// How many keys.
    pub fn len(&self) -> usize {
        match self {
            KeySet::Numbered(count) => *count as usize,
            KeySet::Sampled(sample) => sample.ids.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Each key's hash under `seed`, in key order (the core's hash of its bytes).
    pub fn hashes(&self, seed: u64) -> Vec<u64> {
        match self {
            KeySet::Numbered(count) => {
                numbered_key_hashes(DEFAULT_KEY_PREFIX, *count as usize, seed)
            }
            KeySet::Sampled(sample) => sample
                .ids
                .iter()
                .map(|id| key_hash(id.as_bytes(), seed))
                .collect(),
        }
    }
}

impl From<u32> for KeySet {
    fn from(count: u32) -> Self {
        KeySet::Numbered(count)
    }
}

/// What the explorer shows.
#[derive(Clone, Debug, PartialEq)]
pub struct Explorer {
    /// The placement strategy (both sides of the change).
    pub strategy: StrategyKind,
    /// Its parameters.
    pub params: Params,
    /// Keys `user_0` … `user_{key_count-1}` (the count field's value;
    /// [`Explorer::sampled`] takes their place while it is there).
    pub key_count: u32,
    /// Keys sampled from the database, placed instead of the numbered ones.
    pub sampled: Option<SampledKeys>,
    /// Shards before the change.
    pub before: Vec<Shard>,
    /// Shards after the change: the current layout.
    pub after: Vec<Shard>,
    /// Clusters (`c1` … `cN`) the shards were placed over before the change.
    pub clusters_before: usize,
    /// Clusters the shards are placed over after the change: a shard naming
    /// its cluster is on it, the others round-robin (the core's
    /// `Layout::placed`).
    pub clusters: usize,
    /// Counts every action, so the stage knows to replay its animation.
    pub revision: u64,
}

impl Default for Explorer {
    /// Ring, 3 → 4 shards over 2,000 keys: the change the course project showed.
    fn default() -> Self {
        Explorer {
            strategy: StrategyKind::Ring,
            params: Params::default(),
            key_count: DEFAULT_KEYS,
            sampled: None,
            before: Shard::numbered(INITIAL_SHARDS),
            after: Shard::numbered(INITIAL_SHARDS + 1),
            clusters_before: 1,
            clusters: 1,
            revision: 0,
        }
    }
}

/// Everything a control can ask for.
#[derive(Clone, Debug, PartialEq)]
pub enum ExplorerAction {
    /// Use another strategy for the same change.
    SetStrategy(StrategyKind),
    /// Go from the current shards to `s0` … `s{n-1}`.
    SetShardCount(usize),
    /// Add the next free `s{n}`.
    AddShard,
    /// Remove the named shard.
    RemoveShard(String),
    /// Place this many keys.
    SetKeyCount(u32),
    /// Hash with another seed.
    SetSeed(u64),
    /// Virtual nodes per shard.
    SetVnodes(u32),
    /// Maglev table size.
    SetTableSize(u32),
    /// Bounded-load factor.
    SetLoadFactor(f64),
    /// Place the current shards over `c1` … `cN`: each shard naming one of
    /// them stays there, the others round-robin by position.
    SetClusterCount(usize),
    /// Add a cluster and move shards onto it: each shard stays where it is
    /// but the new cluster's even share, taken from the fullest clusters.
    ProposePlacement,
    /// Play the current change again.
    Replay,
    /// Take the database's layout (both sides: nothing changes until a
    /// shard is added or removed) and place a sample of its ids.
    LoadDatabase {
        /// `GET /api/layout`'s answer.
        layout: LayoutView,
        /// `GET /api/sample`'s answer.
        sample: UserSample,
    },
}

impl Explorer {
    /// The layout before the change, unvalidated; with clusters on either
    /// side, every shard naming its cluster.
    pub fn layout_before(&self) -> Layout {
        self.placed(
            self.layout_of(self.strategy, &self.before),
            self.clusters_before,
        )
    }

    /// The layout after the change (the current one), unvalidated; with
    /// clusters on either side, every shard naming its cluster (so applied
    /// to the bridge, it says where each shard goes).
    pub fn layout_after(&self) -> Layout {
        self.placed(self.layout_of(self.strategy, &self.after), self.clusters)
    }

    /// Whether either side of the change is placed over several clusters.
    pub fn has_clusters(&self) -> bool {
        self.clusters_before > 1 || self.clusters > 1
    }

    /// `layout` placed over `c1` … `c{count}` by the core, when the change
    /// has clusters (else as it is: one unnamed cluster, as before clusters).
    fn placed(&self, layout: Layout, count: usize) -> Layout {
        if !self.has_clusters() {
            return layout;
        }
        let names = cluster_names(count);
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        layout.placed(&names).unwrap_or(layout)
    }

    /// A layout over `shards` under `strategy` with these parameters. The
    /// load factor is bounded-load's alone: every other strategy's layout keeps
    /// the core's default, so the page's own default (see [`PAGE_LOAD_FACTOR`])
    /// never makes a ring layout differ from the same one in the database.
    pub fn layout_of(&self, strategy: StrategyKind, shards: &[Shard]) -> Layout {
        let load_factor = if strategy == StrategyKind::BoundedLoad {
            self.params.load_factor
        } else {
            DEFAULT_LOAD_FACTOR
        };
        Layout::new(strategy, shards.to_vec())
            .with_seed(self.params.seed)
            .with_vnodes(self.params.vnodes)
            .with_table_size(self.params.table_size)
            .with_load_factor(load_factor)
    }

    /// Applies one action; returns the new state (unchanged when the action
    /// asks for nothing new or for something out of bounds: the fields say
    /// why before they send it, see [`crate::entry`]).
    pub fn apply(&self, action: ExplorerAction) -> Explorer {
        let mut next = self.clone();
        match action {
            ExplorerAction::SetStrategy(strategy) => next.strategy = strategy,
            ExplorerAction::SetShardCount(count) => {
                if !(1..=MAX_SHARDS).contains(&count) {
                    return self.clone();
                }
                let target = Shard::numbered(count);
                if target == self.after {
                    return self.clone();
                }
                next.before = self.after.clone();
                next.clusters_before = self.clusters;
                next.after = target;
            }
            ExplorerAction::AddShard => {
                if self.after.len() >= MAX_SHARDS {
                    return self.clone();
                }
                let layout = self.layout_after();
                next.before = self.after.clone();
                next.clusters_before = self.clusters;
                next.after.push(Shard::new(layout.next_shard_name()));
            }
            ExplorerAction::RemoveShard(name) => {
                if self.after.len() <= 1 || !self.after.iter().any(|shard| shard.name == name) {
                    return self.clone();
                }
                next.before = self.after.clone();
                next.clusters_before = self.clusters;
                next.after.retain(|shard| shard.name != name);
            }
            ExplorerAction::SetClusterCount(count) => {
                if !(1..=MAX_CLUSTERS).contains(&count) || count == self.clusters {
                    return self.clone();
                }
                next.begin_placement_change(count);
            }
            ExplorerAction::ProposePlacement => {
                if self.clusters >= MAX_CLUSTERS {
                    return self.clone();
                }
                next.propose_placement();
            }
            ExplorerAction::SetKeyCount(count) => {
                if !(1..=MAX_KEYS).contains(&count) {
                    return self.clone();
                }
                next.key_count = count;
                next.sampled = None;
            }
            ExplorerAction::LoadDatabase { layout, sample } => next.load(layout, sample),
            ExplorerAction::SetSeed(seed) => next.params.seed = seed,
            ExplorerAction::SetVnodes(vnodes) => next.params.vnodes = vnodes,
            ExplorerAction::SetTableSize(size) => next.params.table_size = size,
            ExplorerAction::SetLoadFactor(factor) => next.params.load_factor = factor,
            ExplorerAction::Replay => {
                next.revision = self.revision + 1;
                return next;
            }
        }
        if next == *self {
            return next;
        }
        next.revision = self.revision + 1;
        next
    }

    /// The keys placed: the database's sample, else the numbered keys.
    pub fn keys(&self) -> KeySet {
        match &self.sampled {
            Some(sample) => KeySet::Sampled(sample.clone()),
            None => KeySet::Numbered(self.key_count),
        }
    }

    /// How many keys are placed.
    pub fn key_total(&self) -> u32 {
        self.keys().len() as u32
    }

    /// What [`ExplorerAction::LoadDatabase`] loaded, in words: "Ring over 4
    /// shards (eu ×2, us, ap, sa), 2,000 of 1,000,000 keys sampled from the
    /// database, v7".
    pub fn loaded(&self) -> Option<String> {
        let sample = self.sampled.as_ref()?;
        let names: Vec<String> = self
            .after
            .iter()
            .map(|shard| {
                if shard.weight == 1.0 {
                    shard.name.clone()
                } else {
                    format!("{} ×{}", shard.name, shard.weight)
                }
            })
            .collect();
        Some(format!(
            "{} over {} shards ({}), {} of {} keys sampled from the database, v{}",
            strategy_title(self.strategy),
            self.after.len(),
            names.join(", "),
            thousands(sample.ids.len() as u64),
            thousands(sample.rows),
            sample.version
        ))
    }

    /// Makes the current placement the "before" and places the same shards
    /// over `count` clusters: named clusters past `count` are dropped (those
    /// shards go round-robin).
    fn begin_placement_change(&mut self, count: usize) {
        self.before = self.layout_after().shards;
        self.clusters_before = self.clusters;
        self.clusters = count;
        let names = cluster_names(count);
        self.after = self.before.clone();
        for shard in &mut self.after {
            if shard
                .cluster
                .as_ref()
                .is_some_and(|name| !names.contains(name))
            {
                shard.cluster = None;
            }
        }
    }

    /// A cluster added, every shard kept on its cluster but
    /// ⌊shards ÷ clusters⌋ of them moved onto the new one, each taken from
    /// the cluster holding the most shards then (its last one).
    fn propose_placement(&mut self) {
        self.begin_placement_change(self.clusters + 1);
        let placed = self.layout_of(self.strategy, &self.before);
        let old_names = cluster_names(self.clusters_before);
        let old_names: Vec<&str> = old_names.iter().map(String::as_str).collect();
        let Ok(placed) = placed.placed(&old_names) else {
            return;
        };
        self.after = placed.shards;
        let new_cluster = format!("c{}", self.clusters);
        for _ in 0..self.after.len() / self.clusters {
            let fullest = old_names
                .iter()
                .max_by_key(|name| {
                    let held = self
                        .after
                        .iter()
                        .filter(|shard| shard.cluster.as_deref() == Some(**name));
                    // The lowest-numbered cluster of the fullest.
                    (held.count(), std::cmp::Reverse(**name))
                })
                .copied();
            if let Some(shard) = self
                .after
                .iter_mut()
                .rev()
                .find(|shard| shard.cluster.as_deref() == fullest)
            {
                shard.cluster = Some(new_cluster.clone());
            }
        }
    }

    /// Takes the database's layout as both sides of the change, its
    /// parameters, and the sample as the keys.
    fn load(&mut self, view: LayoutView, sample: UserSample) {
        let layout = view.layout;
        self.strategy = layout.strategy;
        self.params = Params {
            seed: layout.seed,
            vnodes: layout.vnodes,
            table_size: layout.table_size,
            load_factor: self.params.load_factor,
        };
        // Over several clusters, each shard names where the bridge has it.
        let clusters = view
            .placement
            .iter()
            .filter_map(|name| name.strip_prefix('c')?.parse::<usize>().ok())
            .max()
            .unwrap_or(1)
            .clamp(1, MAX_CLUSTERS);
        let mut shards = layout.shards;
        if clusters > 1 {
            for (shard, cluster) in shards.iter_mut().zip(&view.placement) {
                shard.cluster = Some(cluster.clone());
            }
        }
        (self.clusters_before, self.clusters) = (clusters, clusters);
        self.before = shards.clone();
        self.after = shards;
        self.sampled = Some(SampledKeys {
            ids: sample.ids.into(),
            rows: sample.rows,
            version: sample.version,
        });
    }

    /// The `ecoshard plan` command that prints the same numbers, when the
    /// change is expressible on the command line (shards `s0` … on both sides);
    /// it names every parameter that differs from the command line's default.
    pub fn cli_command(&self) -> Option<String> {
        let numbered = |shards: &[Shard]| *shards == Shard::numbered(shards.len());
        if !numbered(&self.before)
            || !numbered(&self.after)
            || self.sampled.is_some()
            || self.has_clusters()
        {
            return None;
        }
        let mut command = format!(
            "ecoshard plan --strategy {} --from {} --to {} --keys {}",
            self.strategy.name(),
            self.before.len(),
            self.after.len(),
            self.key_count
        );
        // Against the command line's defaults, which are the core's.
        if self.params.seed != DEFAULT_SEED {
            command.push_str(&format!(" --seed {}", self.params.seed));
        }
        if self.strategy.uses_vnodes() && self.params.vnodes != DEFAULT_VNODES {
            command.push_str(&format!(" --vnodes {}", self.params.vnodes));
        }
        if self.strategy == StrategyKind::Maglev && self.params.table_size != DEFAULT_TABLE_SIZE {
            command.push_str(&format!(" --table-size {}", self.params.table_size));
        }
        if self.strategy == StrategyKind::BoundedLoad
            && self.params.load_factor != DEFAULT_LOAD_FACTOR
        {
            command.push_str(&format!(" --load-factor {}", self.params.load_factor));
        }
        Some(command)
    }
}

/// The names of `count` clusters: `c1` … `c{count}`, as the bridge names them.
pub fn cluster_names(count: usize) -> Vec<String> {
    (1..=count).map(|index| format!("c{index}")).collect()
}

impl Reducible for Explorer {
    type Action = ExplorerAction;

    fn reduce(self: Rc<Self>, action: ExplorerAction) -> Rc<Self> {
        let next = self.apply(action);
        if next == *self { self } else { Rc::new(next) }
    }
}

/// One line describing a strategy, for the picker.
pub fn strategy_blurb(strategy: StrategyKind) -> &'static str {
    match strategy {
        StrategyKind::Modulo => "hash % N — simple, moves almost everything",
        StrategyKind::Jump => "Lamping & Veach — no memory, minimal moves",
        StrategyKind::Ring => "Karger ring with virtual nodes",
        StrategyKind::Rendezvous => "highest random weight per key",
        StrategyKind::Maglev => "Google's lookup table, near-minimal moves",
        StrategyKind::BoundedLoad => "ring; no shard over ⌈c × mean⌉ keys",
    }
}

/// The strategy's name as the page shows it.
pub fn strategy_title(strategy: StrategyKind) -> &'static str {
    match strategy {
        StrategyKind::Modulo => "Modulo",
        StrategyKind::Jump => "Jump",
        StrategyKind::Ring => "Ring",
        StrategyKind::Rendezvous => "Rendezvous",
        StrategyKind::Maglev => "Maglev",
        StrategyKind::BoundedLoad => "Bounded-load",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(shards: &[Shard]) -> Vec<&str> {
        shards.iter().map(|shard| shard.name.as_str()).collect()
    }

    fn check(actions: &[ExplorerAction], before: &[&str], after: &[&str]) {
        let state = actions.iter().fold(Explorer::default(), |state, action| {
            state.apply(action.clone())
        });
        assert_eq!(names(&state.before), before, "before after {actions:?}");
        assert_eq!(names(&state.after), after, "after after {actions:?}");
    }

    #[test]
    fn shard_changes_make_the_current_shards_the_before() {
        use ExplorerAction::*;
        check(&[], &["s0", "s1", "s2"], &["s0", "s1", "s2", "s3"]);
        check(
            &[AddShard],
            &["s0", "s1", "s2", "s3"],
            &["s0", "s1", "s2", "s3", "s4"],
        );
        check(
            &[RemoveShard("s1".into())],
            &["s0", "s1", "s2", "s3"],
            &["s0", "s2", "s3"],
        );
        check(
            &[RemoveShard("s1".into()), AddShard],
            &["s0", "s2", "s3"],
            &["s0", "s2", "s3", "s4"],
        );
        check(
            &[SetShardCount(6)],
            &["s0", "s1", "s2", "s3"],
            &["s0", "s1", "s2", "s3", "s4", "s5"],
        );
        check(
            &[SetShardCount(2)],
            &["s0", "s1", "s2", "s3"],
            &["s0", "s1"],
        );
    }

    /// The clusters of the layouts before and after, after `actions`.
    fn check_clusters(actions: &[ExplorerAction], before: &[&str], after: &[&str]) {
        let state = actions.iter().fold(Explorer::default(), |state, action| {
            state.apply(action.clone())
        });
        let clusters = |layout: Layout| -> Vec<String> {
            layout
                .shards
                .into_iter()
                .map(|shard| shard.cluster.unwrap_or_default())
                .collect()
        };
        assert_eq!(
            clusters(state.layout_before()),
            before,
            "before after {actions:?}"
        );
        assert_eq!(
            clusters(state.layout_after()),
            after,
            "after after {actions:?}"
        );
    }

    #[test]
    fn placements_make_the_current_one_the_before() {
        use ExplorerAction::*;
        // One cluster: no names at all, as before clusters.
        check_clusters(&[], &["", "", ""], &["", "", "", ""]);
        check_clusters(&[SetClusterCount(1)], &["", "", ""], &["", "", "", ""]);
        // A count places round-robin (the core's `Layout::placed`).
        check_clusters(
            &[SetClusterCount(2)],
            &["c1", "c1", "c1", "c1"],
            &["c1", "c2", "c1", "c2"],
        );
        check_clusters(
            &[SetClusterCount(2), SetClusterCount(3)],
            &["c1", "c2", "c1", "c2"],
            &["c1", "c2", "c1", "c2"],
        );
        check_clusters(
            &[SetClusterCount(2), SetClusterCount(1)],
            &["c1", "c2", "c1", "c2"],
            &["c1", "c1", "c1", "c1"],
        );
        // A proposal moves the new cluster's share from the fullest, and no
        // other shard.
        check_clusters(
            &[ProposePlacement],
            &["c1", "c1", "c1", "c1"],
            &["c1", "c1", "c2", "c2"],
        );
        check_clusters(
            &[ProposePlacement, ProposePlacement],
            &["c1", "c1", "c2", "c2"],
            &["c1", "c3", "c2", "c2"],
        );
        // A shard added after a placement change keeps the clusters.
        check_clusters(
            &[ProposePlacement, AddShard],
            &["c1", "c1", "c2", "c2"],
            &["c1", "c1", "c2", "c2", "c1"],
        );
    }

    #[test]
    fn impossible_cluster_changes_change_nothing() {
        use ExplorerAction::*;
        let start = Explorer::default();
        assert_eq!(start.apply(SetClusterCount(0)), start);
        assert_eq!(start.apply(SetClusterCount(1)), start, "already 1");
        assert_eq!(start.apply(SetClusterCount(MAX_CLUSTERS + 1)), start);
        let full = start.apply(SetClusterCount(MAX_CLUSTERS));
        assert_eq!(full.apply(ProposePlacement), full);
        assert_eq!(full.cli_command(), None, "the CLI has no clusters");
    }

    #[test]
    fn impossible_shard_changes_change_nothing() {
        use ExplorerAction::*;
        let start = Explorer::default();
        assert_eq!(start.apply(RemoveShard("nope".into())), start);
        assert_eq!(start.apply(SetShardCount(4)), start, "already 4");
        let single = start.apply(SetShardCount(1));
        assert_eq!(single.apply(RemoveShard("s0".into())), single);
        let full = start.apply(SetShardCount(MAX_SHARDS));
        assert_eq!(full.after.len(), MAX_SHARDS);
        assert_eq!(full.apply(AddShard), full);
    }

    #[test]
    fn settings_keep_the_change_and_bump_the_revision() {
        use ExplorerAction::*;
        let start = Explorer::default();
        let ring = start.apply(SetStrategy(StrategyKind::Maglev));
        assert_eq!(ring.strategy, StrategyKind::Maglev);
        assert_eq!((ring.before.len(), ring.after.len()), (3, 4));
        assert_eq!(ring.revision, 1);
        assert_eq!(start.apply(Replay).revision, 1);
        assert_eq!(
            start.apply(SetKeyCount(DEFAULT_KEYS)),
            start,
            "same value, no replay"
        );
    }

    #[test]
    fn cli_command_names_only_what_differs_from_the_defaults() {
        use ExplorerAction::*;
        let start = Explorer::default();
        assert_eq!(
            start.cli_command().as_deref(),
            Some("ecoshard plan --strategy ring --from 3 --to 4 --keys 2000")
        );
        let tuned = start
            .apply(SetStrategy(StrategyKind::BoundedLoad))
            .apply(SetVnodes(40))
            .apply(SetLoadFactor(1.5))
            .apply(SetSeed(7));
        assert_eq!(
            tuned.cli_command().as_deref(),
            Some(
                "ecoshard plan --strategy bounded-load --from 3 --to 4 --keys 2000 \
                 --seed 7 --vnodes 40 --load-factor 1.5"
            )
        );
        assert_eq!(start.apply(RemoveShard("s0".into())).cli_command(), None);
        // The page's load factor is not the command line's: it is named.
        assert_eq!(
            start
                .apply(SetStrategy(StrategyKind::BoundedLoad))
                .cli_command()
                .as_deref(),
            Some(
                "ecoshard plan --strategy bounded-load --from 3 --to 4 --keys 2000 \
                 --load-factor 1.05"
            )
        );
        let core_default = start
            .apply(SetStrategy(StrategyKind::BoundedLoad))
            .apply(SetLoadFactor(DEFAULT_LOAD_FACTOR));
        assert_eq!(
            core_default.cli_command().as_deref(),
            Some("ecoshard plan --strategy bounded-load --from 3 --to 4 --keys 2000")
        );
    }

    #[test]
    fn the_pages_load_factor_leaves_other_strategies_layouts_as_the_cores() {
        let explorer = Explorer::default();
        for strategy in StrategyKind::ALL {
            let page = explorer.layout_of(strategy, &Shard::numbered(3));
            let core = Layout::new(strategy, Shard::numbered(3));
            if strategy == StrategyKind::BoundedLoad {
                assert_eq!(page, core.with_load_factor(PAGE_LOAD_FACTOR));
            } else {
                assert_eq!(page, core, "{strategy}: equal to the database's");
            }
        }
    }

    #[test]
    fn out_of_range_counts_change_nothing_instead_of_being_clamped() {
        use ExplorerAction::*;
        let start = Explorer::default();
        for action in [
            SetShardCount(0),
            SetShardCount(MAX_SHARDS + 1),
            SetShardCount(100),
            SetShardCount(usize::MAX),
            SetKeyCount(0),
            SetKeyCount(MAX_KEYS + 1),
        ] {
            assert_eq!(start.apply(action.clone()), start, "{action:?}");
        }
        assert_eq!(start.apply(SetKeyCount(MAX_KEYS)).key_count, MAX_KEYS);
        assert_eq!(start.apply(SetKeyCount(1)).key_count, 1);
    }

    #[test]
    fn loading_the_database_takes_its_layout_and_its_keys_and_says_so() {
        let mut shards = vec![
            Shard::new("eu"),
            Shard::new("us"),
            Shard::new("ap"),
            Shard::new("sa"),
        ];
        shards[0].weight = 2.0;
        let layout = Layout::new(StrategyKind::Ring, shards.clone())
            .with_seed(9)
            .with_vnodes(40);
        let sample = UserSample {
            version: 7,
            ids: vec!["ana".to_string(), "bob".to_string()],
            rows: 1_000_000,
            served_by: "standby-1".to_string(),
        };
        let loaded = Explorer::default().apply(ExplorerAction::LoadDatabase {
            layout: LayoutView {
                version: 7,
                layout: layout.clone(),
                placement: Vec::new(),
            },
            sample,
        });
        assert_eq!(
            loaded.layout_after(),
            layout,
            "the database's layout, parameters included"
        );
        assert_eq!(
            (loaded.before.clone(), loaded.after.clone()),
            (shards.clone(), shards)
        );
        assert_eq!(loaded.key_total(), 2);
        assert_eq!(
            loaded.keys().hashes(9),
            [key_hash(b"ana", 9), key_hash(b"bob", 9)]
        );
        assert_eq!(
            loaded.loaded().as_deref(),
            Some(
                "Ring over 4 shards (eu ×2, us, ap, sa), 2 of 1,000,000 keys sampled from the database, v7"
            )
        );
        assert_eq!(loaded.cli_command(), None);
        let numbered = loaded.apply(ExplorerAction::SetKeyCount(500));
        assert_eq!(
            (numbered.sampled.clone(), numbered.key_total()),
            (None, 500)
        );
    }
}
