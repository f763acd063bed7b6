//! A scenario: the explorer's change worked out by the core — the plan over
//! the numbered keys, the shard columns to draw, where every drawn key sits
//! before and after, the ring's ownership around the circle — and the same
//! change under every strategy for the comparison table.
//!
//! Every number comes from the plan over all keys; the stage draws at most
//! [`MAX_DRAWN_KEYS`] of them (an even sample past that), which at a million
//! keys looks the same — the stacks and the ring are solid colour either way —
//! and keeps the animation at the display's frame rate.

use std::rc::Rc;

use ecoshard_core::{
    DEFAULT_KEY_PREFIX, Error, Lookup, Plan, Router, StrategyKind, numbered_key_hashes, plan_hashes,
};

use crate::palette::{Rgb, shard_color};
use crate::state::Explorer;

/// Samples of ring ownership around the circle.
pub const BAND_SEGMENTS: usize = 2_048;

/// Most keys the stage draws and animates. Past it, every `n`-th key is drawn
/// (`n` = ⌈keys ÷ this⌉); the numbers still count every key.
pub const MAX_DRAWN_KEYS: usize = 40_000;

/// The hashes of `user_0` … `user_{count-1}` under `seed`, shared between the
/// scenario, the comparison and the next scenario over the same keys.
pub fn key_hashes(count: u32, seed: u64) -> Rc<[u64]> {
    numbered_key_hashes(DEFAULT_KEY_PREFIX, count as usize, seed).into()
}

/// Every how many keys the stage draws one, for `key_count` keys.
pub fn draw_stride(key_count: usize) -> usize {
    key_count.div_ceil(MAX_DRAWN_KEYS).max(1)
}

/// How the stage draws a strategy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// Keys around the hash ring (ring, bounded-load), with the shard buckets beside it.
    Ring,
    /// Keys stacked in one bucket per shard (modulo, jump, rendezvous, Maglev).
    Buckets,
}

impl View {
    /// The view for a strategy.
    pub fn of(strategy: StrategyKind) -> View {
        match strategy {
            StrategyKind::Ring | StrategyKind::BoundedLoad => View::Ring,
            _ => View::Buckets,
        }
    }
}

/// One shard as drawn: every shard of either side, in before-order then the
/// new ones.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    /// Shard name.
    pub name: String,
    /// Keys before, `None` if the shard did not exist.
    pub before: Option<u64>,
    /// Keys after, `None` if the shard was removed.
    pub after: Option<u64>,
    /// The most keys bounded-load lets it take after the change (the core's
    /// `Router::capacity`); `None` for other strategies and removed shards.
    pub cap_after: Option<u64>,
    /// Its colour.
    pub color: Rgb,
    /// Its cluster: `c2`, or `c1 → c2` when the change moves it; empty
    /// when the layouts name none.
    pub cluster: String,
}

impl Column {
    /// Whether the change adds this shard.
    pub fn is_new(&self) -> bool {
        self.before.is_none()
    }

    /// Whether the change removes this shard.
    pub fn is_removed(&self) -> bool {
        self.after.is_none()
    }

    /// Whether bounded-load filled it to its cap.
    pub fn is_full(&self) -> bool {
        self.cap_after.is_some() && self.after == self.cap_after
    }
}

/// What bounded-load's cap did to the change.
#[derive(Clone, Debug, PartialEq)]
pub struct BoundedLoadCap {
    /// The load factor `c`: no shard takes more than `⌈c × mean⌉` keys.
    pub load_factor: f64,
    /// Keys placed on a later shard of the ring than their owner, because the
    /// owner was full.
    pub passed_on: u64,
}

/// The explorer's change, worked out.
#[derive(Debug)]
pub struct Scenario {
    /// The strategy.
    pub strategy: StrategyKind,
    /// How to draw it.
    pub view: View,
    /// The core's plan over every key (per-key owners, counts, loads).
    pub plan: Plan,
    /// Every key's hash, in key order.
    pub hashes: Rc<[u64]>,
    /// The keys the stage draws, in key order: all of them up to
    /// [`MAX_DRAWN_KEYS`], else every `draw_stride`-th.
    pub drawn: Vec<u32>,
    /// One key drawn in this many.
    pub draw_stride: usize,
    /// Shards as drawn.
    pub columns: Vec<Column>,
    /// Per drawn key, its column before.
    pub column_before: Vec<u16>,
    /// Per drawn key, its column after.
    pub column_after: Vec<u16>,
    /// Per drawn key, its place in its column's stack before (keys that stay
    /// come first, so they keep their place).
    pub slot_before: Vec<u32>,
    /// Per drawn key, its place in its column's stack after.
    pub slot_after: Vec<u32>,
    /// The tallest stack of drawn keys on either side.
    pub max_slots: u32,
    /// Bounded-load's cap at work; `None` for other strategies.
    pub bounded: Option<BoundedLoadCap>,
    /// Ring owner (column) of each of [`BAND_SEGMENTS`] arcs before; empty
    /// for the bucket view.
    pub band_before: Vec<u16>,
    /// Ring owner of each arc after.
    pub band_after: Vec<u16>,
}

impl Scenario {
    /// Works out the explorer's change with the core.
    pub fn compute(explorer: &Explorer) -> Result<Scenario, Error> {
        Scenario::compute_with(
            explorer,
            key_hashes(explorer.key_count, explorer.params.seed),
        )
    }

    /// Works out the explorer's change over `hashes`, which must be
    /// [`key_hashes`] of its key count and seed (computed once for several
    /// scenarios over the same keys).
    pub fn compute_with(explorer: &Explorer, hashes: Rc<[u64]>) -> Result<Scenario, Error> {
        let old = explorer.layout_before().build()?;
        let new = explorer.layout_after().build()?;
        let plan = plan_hashes(&old, &new, &hashes, &hashes);
        Ok(Scenario::from_plan(
            explorer.strategy,
            &old,
            &new,
            plan,
            hashes,
        ))
    }

    fn from_plan(
        strategy: StrategyKind,
        old: &Router,
        new: &Router,
        plan: Plan,
        hashes: Rc<[u64]>,
    ) -> Scenario {
        let (columns, column_of_new) = columns(&plan, new, hashes.len());
        let bounded = (strategy == StrategyKind::BoundedLoad).then(|| BoundedLoadCap {
            load_factor: new.layout().load_factor,
            passed_on: passed_on(new, &plan, &hashes),
        });
        let draw_stride = draw_stride(hashes.len());
        let drawn: Vec<u32> = (0..hashes.len() as u32).step_by(draw_stride).collect();
        let column_before: Vec<u16> = drawn
            .iter()
            .map(|key| plan.before[*key as usize] as u16)
            .collect();
        let column_after: Vec<u16> = drawn
            .iter()
            .map(|key| column_of_new[plan.after[*key as usize] as usize])
            .collect();
        let (slot_before, slot_after, max_slots) =
            stack_slots(columns.len(), &column_before, &column_after);

        let view = View::of(strategy);
        let (band_before, band_after) = match view {
            View::Ring => (
                ownership_band(old, |index| index as u16),
                ownership_band(new, |index| column_of_new[index]),
            ),
            View::Buckets => (Vec::new(), Vec::new()),
        };
        Scenario {
            strategy,
            view,
            plan,
            hashes,
            drawn,
            draw_stride,
            columns,
            column_before,
            column_after,
            slot_before,
            slot_after,
            max_slots,
            band_before,
            band_after,
            bounded,
        }
    }

    /// Number of keys.
    pub fn key_count(&self) -> usize {
        self.hashes.len()
    }

    /// Number of keys the stage draws.
    pub fn drawn_count(&self) -> usize {
        self.drawn.len()
    }

    /// Whether every key is drawn.
    pub fn draws_every_key(&self) -> bool {
        self.draw_stride == 1
    }

    /// The hash of the `drawn`-th drawn key.
    pub fn drawn_hash(&self, drawn: usize) -> u64 {
        self.hashes[self.drawn[drawn] as usize]
    }

    /// Whether the `drawn`-th drawn key changes shard.
    pub fn is_moved(&self, drawn: usize) -> bool {
        self.column_before[drawn] != self.column_after[drawn]
    }
}

/// Places keys in their columns' stacks: keys that stay take the bottom
/// places on both sides (so they do not move), leavers sit above them before,
/// arrivals above them after. Returns (before, after, tallest stack).
pub fn stack_slots(
    column_count: usize,
    column_before: &[u16],
    column_after: &[u16],
) -> (Vec<u32>, Vec<u32>, u32) {
    let mut stayers = vec![0u32; column_count];
    for (before, after) in column_before.iter().zip(column_after) {
        if before == after {
            stayers[*before as usize] += 1;
        }
    }
    let mut next_stay = vec![0u32; column_count];
    let mut next_before = stayers.clone();
    let mut next_after = stayers;
    let mut slot_before = Vec::with_capacity(column_before.len());
    let mut slot_after = Vec::with_capacity(column_before.len());
    for (before, after) in column_before.iter().zip(column_after) {
        let (before, after) = (*before as usize, *after as usize);
        if before == after {
            slot_before.push(next_stay[before]);
            slot_after.push(next_stay[before]);
            next_stay[before] += 1;
        } else {
            slot_before.push(next_before[before]);
            slot_after.push(next_after[after]);
            next_before[before] += 1;
            next_after[after] += 1;
        }
    }
    let tallest = next_before
        .iter()
        .chain(&next_after)
        .copied()
        .max()
        .unwrap_or(0);
    (slot_before, slot_after, tallest)
}

/// Every shard of either side as drawn, in before-order then the new
/// ones, with its counts (and bounded-load's cap after); and for each shard
/// of the new layout, its column.
fn columns(plan: &Plan, new: &Router, key_count: usize) -> (Vec<Column>, Vec<u16>) {
    let mut columns: Vec<Column> = plan
        .old_shards
        .iter()
        .zip(&plan.loads_before.counts)
        .zip(&plan.old_clusters)
        .map(|((name, keys), cluster)| Column {
            name: name.clone(),
            before: Some(*keys),
            after: None,
            cap_after: None,
            color: shard_color(name),
            cluster: cluster.clone().unwrap_or_default(),
        })
        .collect();
    let mut column_of_new = Vec::with_capacity(plan.new_shards.len());
    let news = plan.new_shards.iter().zip(&plan.loads_after.counts);
    for ((name, keys), cluster) in news.zip(&plan.new_clusters) {
        let cluster = cluster.clone().unwrap_or_default();
        let index = match columns.iter().position(|column| column.name == *name) {
            Some(index) => index,
            None => {
                columns.push(Column {
                    name: name.clone(),
                    before: None,
                    after: None,
                    cap_after: None,
                    color: shard_color(name),
                    cluster: cluster.clone(),
                });
                columns.len() - 1
            }
        };
        let column = &mut columns[index];
        if column.cluster != cluster {
            column.cluster = format!("{} → {cluster}", column.cluster);
        }
        columns[index].after = Some(*keys);
        columns[index].cap_after = new.capacity(column_of_new.len(), key_count);
        column_of_new.push(index as u16);
    }
    (columns, column_of_new)
}

/// How many keys the plan places elsewhere than their ring owner (the
/// router's lookup of a single key): under bounded-load, the keys that walked
/// on past a full shard.
fn passed_on(router: &Router, plan: &Plan, hashes: &[u64]) -> u64 {
    hashes
        .iter()
        .zip(&plan.after)
        .filter(|(hash, after)| router.shard_index(**hash) as u32 != **after)
        .count() as u64
}

/// The ring owner of [`BAND_SEGMENTS`] evenly spaced positions (segment
/// middles) on the hash circle, mapped to columns.
fn ownership_band(router: &Router, column: impl Fn(usize) -> u16) -> Vec<u16> {
    let step = (u64::MAX / BAND_SEGMENTS as u64).wrapping_add(1);
    (0..BAND_SEGMENTS as u64)
        .map(|segment| column(router.shard_index(segment * step + step / 2)))
        .collect()
}

/// One strategy's numbers in the comparison table.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// The strategy.
    pub strategy: StrategyKind,
    /// Its numbers, or why the layout was refused (core's message).
    pub outcome: Result<ComparisonNumbers, String>,
}

/// The figures compared.
#[derive(Clone, Debug, PartialEq)]
pub struct ComparisonNumbers {
    /// Keys that change shard.
    pub moved: u64,
    /// `moved / total`.
    pub moved_fraction: f64,
    /// The least fraction any placement must move.
    pub ideal_fraction: f64,
    /// Peak-to-mean load after the change.
    pub max_over_mean_after: f64,
    /// Standard deviation of the load after the change.
    pub std_dev_after: f64,
}

/// The explorer's change under every strategy, on the same key hashes.
pub fn compare_all(explorer: &Explorer, hashes: &[u64]) -> Vec<Comparison> {
    StrategyKind::ALL
        .iter()
        .map(|strategy| Comparison {
            strategy: *strategy,
            outcome: compare_one(explorer, *strategy, hashes),
        })
        .collect()
}

/// One strategy's row of the comparison.
pub fn compare_one(
    explorer: &Explorer,
    strategy: StrategyKind,
    hashes: &[u64],
) -> Result<ComparisonNumbers, String> {
    let build = |shards| {
        explorer
            .layout_of(strategy, shards)
            .build()
            .map_err(|error| error.to_string())
    };
    let old = build(&explorer.before)?;
    let new = build(&explorer.after)?;
    let plan = plan_hashes(&old, &new, hashes, hashes);
    Ok(ComparisonNumbers {
        moved: plan.moved,
        moved_fraction: plan.moved_fraction(),
        ideal_fraction: plan.ideal_fraction,
        max_over_mean_after: plan.loads_after.max_over_mean,
        std_dev_after: plan.loads_after.std_dev,
    })
}

#[cfg(test)]
mod tests {
    use ecoshard_core::{Shard, plan_numbered};

    use super::*;
    use crate::state::ExplorerAction;

    /// The core's plan with the explorer's parameters (the page's load
    /// factor is not the core's default).
    fn core_plan(strategy: StrategyKind, from: u64, to: u64, keys: usize) -> Plan {
        let explorer = Explorer::default();
        let build = |count| {
            explorer
                .layout_of(strategy, &Shard::numbered(count))
                .build()
                .unwrap()
        };
        plan_numbered(
            &build(from as usize),
            &build(to as usize),
            DEFAULT_KEY_PREFIX,
            keys,
        )
    }

    #[test]
    fn scenario_numbers_are_the_cores_for_every_strategy() {
        for strategy in StrategyKind::ALL {
            let explorer = Explorer::default()
                .apply(ExplorerAction::SetStrategy(strategy))
                .apply(ExplorerAction::SetKeyCount(300));
            let scenario = Scenario::compute(&explorer).unwrap();
            let expected = core_plan(strategy, 3, 4, 300);
            assert_eq!(scenario.plan.moved, expected.moved, "{strategy}");
            assert_eq!(
                scenario.plan.loads_after, expected.loads_after,
                "{strategy}"
            );
            let moved = (0..300).filter(|key| scenario.is_moved(*key)).count() as u64;
            assert_eq!(moved, expected.moved, "{strategy}");
        }
    }

    #[test]
    fn past_the_cap_the_stage_draws_an_even_sample_and_the_numbers_count_every_key() {
        let keys = 4 * MAX_DRAWN_KEYS as u32;
        let explorer = Explorer::default().apply(ExplorerAction::SetKeyCount(keys));
        let scenario = Scenario::compute(&explorer).unwrap();
        assert_eq!(scenario.draw_stride, 4);
        assert!(!scenario.draws_every_key());
        assert_eq!(scenario.drawn_count(), MAX_DRAWN_KEYS);
        assert_eq!(scenario.drawn[1], 4);
        assert_eq!(scenario.drawn_hash(1), scenario.hashes[4]);
        // The plan is over every key; the drawn keys are where the plan puts them.
        let expected = core_plan(StrategyKind::Ring, 3, 4, keys as usize);
        assert_eq!(scenario.plan.moved, expected.moved);
        assert_eq!(scenario.key_count(), keys as usize);
        for drawn in [0, 1, 777, MAX_DRAWN_KEYS - 1] {
            let key = scenario.drawn[drawn] as usize;
            assert_eq!(
                u32::from(scenario.column_before[drawn]),
                expected.before[key]
            );
            let moved = expected.before[key] != expected.after[key];
            assert_eq!(scenario.is_moved(drawn), moved, "key {key}");
        }
        // The sample moves about the same share as all keys do.
        let drawn_moved = (0..scenario.drawn_count())
            .filter(|drawn| scenario.is_moved(*drawn))
            .count() as f64;
        let share = drawn_moved / scenario.drawn_count() as f64;
        assert!((share - expected.moved_fraction()).abs() < 0.02, "{share}");
        // Stacks hold the drawn keys only.
        assert!(scenario.max_slots as usize <= MAX_DRAWN_KEYS);
        let small = Scenario::compute(&explorer.apply(ExplorerAction::SetKeyCount(2_000))).unwrap();
        assert!(small.draws_every_key());
        assert_eq!(small.drawn_count(), 2_000);
        assert_eq!(draw_stride(1_000_000), 25);
        assert_eq!(draw_stride(MAX_DRAWN_KEYS + 1), 2);
        assert_eq!(draw_stride(0), 1);
    }

    #[test]
    fn removing_a_middle_shard_keeps_columns_by_name() {
        let explorer = Explorer::default()
            .apply(ExplorerAction::SetKeyCount(1_000))
            .apply(ExplorerAction::RemoveShard("s1".into()));
        let scenario = Scenario::compute(&explorer).unwrap();
        let names: Vec<&str> = scenario.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["s0", "s1", "s2", "s3"]);
        assert!(scenario.columns[1].is_removed());
        assert_eq!(scenario.columns[1].after, None);
        // The ring moves exactly the removed shard's keys, all of them.
        assert_eq!(Some(scenario.plan.moved), scenario.columns[1].before);
        for key in 0..1_000 {
            assert_ne!(scenario.column_after[key], 1);
        }
    }

    #[test]
    fn stayers_keep_their_slot_and_stacks_are_dense() {
        let before = [0u16, 0, 1, 0, 1, 1];
        let after = [0u16, 2, 1, 2, 0, 1];
        let (slot_before, slot_after, tallest) = stack_slots(3, &before, &after);
        // Column 0 before: stayer key 0 at 0, leavers 1 and 3 at 1 and 2;
        // column 1: stayers 2 and 5 at 0 and 1, leaver 4 above them at 2.
        assert_eq!(slot_before, [0, 1, 0, 2, 2, 1]);
        // After: key 0 stays at 0; key 4 arrives at 1 in column 0; keys 1, 3 at 0, 1 in column 2.
        assert_eq!(slot_after, [0, 0, 0, 1, 1, 1]);
        assert_eq!(tallest, 3);
    }

    #[test]
    fn the_ring_band_agrees_with_where_keys_land() {
        let explorer = Explorer::default().apply(ExplorerAction::SetKeyCount(5_000));
        let scenario = Scenario::compute(&explorer).unwrap();
        assert_eq!(scenario.band_after.len(), BAND_SEGMENTS);
        // Most keys sit in an arc sampled to their own owner (arcs narrower
        // than a sample are the exception).
        let agreeing = (0..5_000)
            .filter(|key| {
                let segment = (scenario.hashes[*key] >> 53) as usize;
                scenario.band_after[segment] == scenario.column_after[*key]
            })
            .count();
        assert!(agreeing > 4_000, "{agreeing}");
        let bucket =
            Scenario::compute(&explorer.apply(ExplorerAction::SetStrategy(StrategyKind::Jump)))
                .unwrap();
        assert!(bucket.band_before.is_empty());
        assert_eq!(bucket.view, View::Buckets);
    }

    #[test]
    fn comparison_covers_every_strategy_and_reports_refusals() {
        let explorer = Explorer::default().apply(ExplorerAction::SetKeyCount(300));
        let hashes = numbered_key_hashes(DEFAULT_KEY_PREFIX, 300, 0);
        let rows = compare_all(&explorer, &hashes);
        assert_eq!(rows.len(), 6);
        for row in &rows {
            let numbers = row.outcome.as_ref().unwrap();
            assert_eq!(
                numbers.moved,
                core_plan(row.strategy, 3, 4, 300).moved,
                "{}",
                row.strategy
            );
        }
        let bad = explorer.apply(ExplorerAction::SetTableSize(1_000));
        let rows = compare_all(&bad, &hashes);
        let maglev = rows
            .iter()
            .find(|row| row.strategy == StrategyKind::Maglev)
            .unwrap();
        assert!(maglev.outcome.as_ref().unwrap_err().contains("not a prime"));
        assert!(rows[0].outcome.is_ok(), "modulo ignores the table size");
    }

    #[test]
    fn bounded_load_at_the_pages_factor_caps_a_shard_that_ring_would_overfill() {
        let explorer = Explorer::default();
        let ring = Scenario::compute(&explorer).unwrap();
        let bounded = Scenario::compute(
            &explorer.apply(ExplorerAction::SetStrategy(StrategyKind::BoundedLoad)),
        )
        .unwrap();
        let after = |scenario: &Scenario| -> Vec<Option<u64>> {
            scenario.columns.iter().map(|column| column.after).collect()
        };
        assert_eq!(after(&ring), [Some(464), Some(551), Some(509), Some(476)]);
        assert_eq!(
            after(&bounded),
            [Some(469), Some(525), Some(520), Some(486)]
        );
        // ⌈1.05 × 500⌉ on every shard; s1 is held to it.
        let caps: Vec<Option<u64>> = bounded.columns.iter().map(|c| c.cap_after).collect();
        assert_eq!(caps, [Some(525); 4]);
        let full: Vec<&str> = bounded
            .columns
            .iter()
            .filter(|column| column.is_full())
            .map(|column| column.name.as_str())
            .collect();
        assert_eq!(full, ["s1"]);
        let cap = bounded.bounded.as_ref().unwrap();
        assert_eq!(cap.load_factor, 1.05);
        assert_eq!(cap.passed_on, 26, "s1's 551 ring keys less its cap of 525");
        assert_eq!((ring.plan.moved, bounded.plan.moved), (476, 502));
        assert!(ring.bounded.is_none());
        assert!(ring.columns.iter().all(|column| column.cap_after.is_none()));
    }
}
