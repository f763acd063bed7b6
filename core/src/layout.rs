//! `Layout`: a strategy, its parameters, the shard list and the seed, as plain
//! validated data. `Layout::build` turns it into a [`Router`].

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

use crate::error::{Error, ErrorKind};
use crate::hash::DEFAULT_SEED;
use crate::placement::validate_cluster_name;
use crate::prime::is_prime;
use crate::router::Router;
use crate::shard::{Shard, validate_name};

/// Most shards a layout may hold.
pub const MAX_SHARDS: usize = 10_000;
/// Default virtual nodes per shard (ring and bounded-load).
pub const DEFAULT_VNODES: u32 = 160;
/// Most virtual nodes per shard.
pub const MAX_VNODES: u32 = 4_096;
/// Most points a ring may hold in all (virtual nodes × weights over all shards).
///
/// A ring of this many points builds in about 0.17 s natively (1,024 shards of
/// 4,096 virtual nodes; `cargo bench -p ecoshard-core --bench build`).
pub const MAX_RING_POINTS: u64 = 1 << 22;
/// Default Maglev lookup table size (a prime).
pub const DEFAULT_TABLE_SIZE: u32 = 65_537;
/// Largest Maglev lookup table size.
pub const MAX_TABLE_SIZE: u64 = 1 << 24;
/// Maglev needs at least this many table slots per shard.
pub const MIN_TABLE_SLOTS_PER_SHARD: u64 = 10;
/// Most `table_size × shards` a Maglev layout may cost. Filling the table
/// takes up to that many shard turns (when weights are skewed) besides its
/// slots' probes; at this bound a table builds in about 0.3 s natively (the
/// largest table, 16,777,213 slots, over one shard; or 9,999,991 over two;
/// `cargo bench -p ecoshard-core --bench build`). 256 shards at the default
/// table size cost 16,777,472.
pub const MAX_MAGLEV_COST: u64 = 20_000_000;
/// Default bound factor `c` of bounded-load hashing.
pub const DEFAULT_LOAD_FACTOR: f64 = 1.25;
/// Smallest bound factor `c` (1 = perfectly even).
pub const MIN_LOAD_FACTOR: f64 = 1.0;
/// Largest bound factor `c`.
pub const MAX_LOAD_FACTOR: f64 = 10.0;
/// Largest shard weight.
pub const MAX_WEIGHT: f64 = 1_000.0;
/// Smallest ratio of a shard's weight to the layout's largest weight. A shard
/// under it would get less than a millionth of the keys (often none) and only
/// add work: a Maglev turn every round, a rendezvous score for every key.
pub const MIN_WEIGHT_RATIO: f64 = 1e-6;

/// The placement strategies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StrategyKind {
    /// `hash % N`: simple, moves almost every key when N changes.
    Modulo,
    /// Lamping & Veach's jump consistent hash over the shard list's positions.
    Jump,
    /// Karger's consistent-hash ring with virtual nodes and weights.
    Ring,
    /// Rendezvous (highest random weight) hashing, weighted.
    Rendezvous,
    /// Maglev's lookup table.
    Maglev,
    /// A ring where no shard takes more than `ceil(c × average)` keys of a key set
    /// (Mirrokni, Thorup & Zadimoghaddam).
    BoundedLoad,
}

impl StrategyKind {
    /// All strategies, in the order the explorer shows them.
    pub const ALL: [StrategyKind; 6] = [
        StrategyKind::Modulo,
        StrategyKind::Jump,
        StrategyKind::Ring,
        StrategyKind::Rendezvous,
        StrategyKind::Maglev,
        StrategyKind::BoundedLoad,
    ];

    /// The name used in JSON, on the command line and in messages.
    pub const fn name(self) -> &'static str {
        match self {
            StrategyKind::Modulo => "modulo",
            StrategyKind::Jump => "jump",
            StrategyKind::Ring => "ring",
            StrategyKind::Rendezvous => "rendezvous",
            StrategyKind::Maglev => "maglev",
            StrategyKind::BoundedLoad => "bounded-load",
        }
    }

    /// Whether per-shard weights mean anything to this strategy.
    pub const fn supports_weights(self) -> bool {
        !matches!(self, StrategyKind::Modulo | StrategyKind::Jump)
    }

    /// Whether `vnodes` is a parameter of this strategy.
    pub const fn uses_vnodes(self) -> bool {
        matches!(self, StrategyKind::Ring | StrategyKind::BoundedLoad)
    }

    /// Whether adding a shard moves keys only onto the new shard (jump, ring,
    /// rendezvous). Maglev comes close; modulo and bounded-load do not.
    pub const fn moves_only_to_new_shards(self) -> bool {
        matches!(
            self,
            StrategyKind::Jump | StrategyKind::Ring | StrategyKind::Rendezvous
        )
    }

    /// Whether where a key lands depends only on the key (and not on the other
    /// keys placed). False for bounded-load only.
    pub const fn is_per_key(self) -> bool {
        !matches!(self, StrategyKind::BoundedLoad)
    }
}

impl fmt::Display for StrategyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for StrategyKind {
    type Err = Error;

    /// Parses a strategy name; `hrw`, `consistent` and `bounded` are accepted
    /// as other names of rendezvous, ring and bounded-load.
    fn from_str(name: &str) -> Result<Self, Error> {
        let kind = match name {
            "modulo" | "mod" => StrategyKind::Modulo,
            "jump" => StrategyKind::Jump,
            "ring" | "consistent" => StrategyKind::Ring,
            "rendezvous" | "hrw" => StrategyKind::Rendezvous,
            "maglev" => StrategyKind::Maglev,
            "bounded-load" | "bounded" => StrategyKind::BoundedLoad,
            _ => {
                return Err(ErrorKind::UnknownStrategy {
                    name: name.chars().take(64).collect(),
                }
                .into());
            }
        };
        Ok(kind)
    }
}

/// Which shard owns which key: a strategy, its parameters, the shards and the seed.
///
/// Plain data; [`Layout::validate`] checks it and [`Layout::build`] gives the
/// [`Router`] that answers lookups. Parameters a strategy does not use are kept
/// but have no effect.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    /// The placement strategy.
    pub strategy: StrategyKind,
    /// The shards, in order. Jump and modulo place keys by position in this
    /// list; the others only by name. Each may name the cluster it lives on
    /// ([`Layout::placed`]); that never changes where a key goes.
    pub shards: Vec<Shard>,
    /// Seed of the key hash (and of the shards' positions).
    pub seed: u64,
    /// Virtual nodes per shard of weight 1 (ring, bounded-load).
    pub vnodes: u32,
    /// Lookup table size, a prime (Maglev).
    pub table_size: u32,
    /// Bound factor `c` (bounded-load).
    pub load_factor: f64,
}

impl Layout {
    /// A layout with default parameters over the given shards.
    pub fn new(strategy: StrategyKind, shards: Vec<Shard>) -> Self {
        Layout {
            strategy,
            shards,
            seed: DEFAULT_SEED,
            vnodes: DEFAULT_VNODES,
            table_size: DEFAULT_TABLE_SIZE,
            load_factor: DEFAULT_LOAD_FACTOR,
        }
    }

    /// A layout over `count` shards named `s0` … `s{count-1}`.
    ///
    /// Refuses counts of zero or over [`MAX_SHARDS`] before making any shard.
    pub fn with_count(strategy: StrategyKind, count: u64) -> Result<Self, Error> {
        let count = check_shard_count(count)?;
        Ok(Layout::new(strategy, Shard::numbered(count)))
    }

    /// The same layout with another seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The same layout with another number of virtual nodes per shard.
    pub fn with_vnodes(mut self, vnodes: u32) -> Self {
        self.vnodes = vnodes;
        self
    }

    /// The same layout with another Maglev table size.
    pub fn with_table_size(mut self, table_size: u32) -> Self {
        self.table_size = table_size;
        self
    }

    /// The same layout with another bounded-load factor.
    pub fn with_load_factor(mut self, load_factor: f64) -> Self {
        self.load_factor = load_factor;
        self
    }

    /// The same layout under another strategy.
    pub fn with_strategy(mut self, strategy: StrategyKind) -> Self {
        self.strategy = strategy;
        self
    }

    /// Position of the shard called `name` in the list.
    pub fn shard_index(&self, name: &str) -> Option<usize> {
        self.shards.iter().position(|shard| shard.name == name)
    }

    /// The first name `s{i}` (counting from the shard count) not in use: what
    /// "add a shard" calls the new one.
    pub fn next_shard_name(&self) -> String {
        (self.shards.len()..)
            .map(|index| format!("s{index}"))
            .find(|name| self.shard_index(name).is_none())
            .unwrap_or_default()
    }

    /// Number of ring points the layout asks for (ring and bounded-load).
    pub fn ring_points(&self) -> u64 {
        self.shards
            .iter()
            .map(|shard| points_for(self.vnodes, shard.weight) as u64)
            .sum()
    }

    /// Checks every rule; the first one broken is the error.
    pub fn validate(&self) -> Result<(), Error> {
        if self.shards.is_empty() {
            return Err(ErrorKind::NoShards.into());
        }
        check_shard_count(self.shards.len() as u64)?;
        for shard in &self.shards {
            validate_name(&shard.name)?;
            if let Some(cluster) = &shard.cluster {
                validate_cluster_name(cluster)?;
            }
            let weight = shard.weight;
            if !(weight.is_finite() && weight > 0.0 && weight <= MAX_WEIGHT) {
                return Err(ErrorKind::InvalidWeight {
                    shard: shard.name.clone(),
                    weight,
                }
                .into());
            }
            if weight != 1.0 && !self.strategy.supports_weights() {
                return Err(ErrorKind::WeightsUnsupported {
                    strategy: self.strategy,
                }
                .into());
            }
        }
        check_weight_ratios(&self.shards)?;
        let mut names: Vec<&str> = self
            .shards
            .iter()
            .map(|shard| shard.name.as_str())
            .collect();
        names.sort_unstable();
        if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(ErrorKind::DuplicateShard {
                name: String::from(pair[0]),
            }
            .into());
        }
        self.check_parameters()
    }

    /// Validates the layout and builds the router that answers lookups.
    pub fn build(&self) -> Result<Router, Error> {
        self.validate()?;
        Ok(Router::new_unchecked(self.clone()))
    }

    /// The strategy's own parameters, and what building it would cost.
    fn check_parameters(&self) -> Result<(), Error> {
        match self.strategy {
            StrategyKind::Ring | StrategyKind::BoundedLoad => {
                if self.vnodes == 0 || self.vnodes > MAX_VNODES {
                    return Err(ErrorKind::VnodesOutOfRange {
                        vnodes: u64::from(self.vnodes),
                    }
                    .into());
                }
                let points = self.ring_points();
                if points > MAX_RING_POINTS {
                    return Err(ErrorKind::TooManyRingPoints { points }.into());
                }
                if self.strategy == StrategyKind::BoundedLoad {
                    check_load_factor(self.load_factor)?;
                }
            }
            StrategyKind::Maglev => {
                let table_size = u64::from(self.table_size);
                let min = MIN_TABLE_SLOTS_PER_SHARD * self.shards.len() as u64;
                if table_size < min || table_size > MAX_TABLE_SIZE {
                    return Err(ErrorKind::TableSizeOutOfRange { table_size, min }.into());
                }
                let shards = self.shards.len() as u64;
                if table_size.saturating_mul(shards) > MAX_MAGLEV_COST {
                    return Err(ErrorKind::MaglevTooCostly { table_size, shards }.into());
                }
                if !is_prime(table_size) {
                    return Err(ErrorKind::TableSizeNotPrime { table_size }.into());
                }
            }
            StrategyKind::Modulo | StrategyKind::Jump | StrategyKind::Rendezvous => {}
        }
        Ok(())
    }
}

/// Ring points of one shard: `max(1, round(vnodes × weight))`.
pub(crate) fn points_for(vnodes: u32, weight: f64) -> u32 {
    let points = libm::round(f64::from(vnodes) * weight);
    if points.is_nan() || points < 1.0 {
        1
    } else if points > f64::from(u32::MAX) {
        u32::MAX
    } else {
        points as u32
    }
}

fn check_shard_count(count: u64) -> Result<usize, Error> {
    if count == 0 {
        return Err(ErrorKind::NoShards.into());
    }
    if count > MAX_SHARDS as u64 {
        return Err(ErrorKind::TooManyShards {
            count,
            max: MAX_SHARDS,
        }
        .into());
    }
    Ok(count as usize)
}

/// Every weight at least [`MIN_WEIGHT_RATIO`] of the largest (weights already
/// checked to be positive and finite).
fn check_weight_ratios(shards: &[Shard]) -> Result<(), Error> {
    let largest = shards.iter().map(|shard| shard.weight).fold(0.0, f64::max);
    match shards
        .iter()
        .find(|shard| shard.weight < largest * MIN_WEIGHT_RATIO)
    {
        Some(shard) => Err(ErrorKind::WeightTooSmall {
            shard: shard.name.clone(),
            weight: shard.weight,
            largest,
        }
        .into()),
        None => Ok(()),
    }
}

fn check_load_factor(load_factor: f64) -> Result<(), Error> {
    if load_factor.is_finite() && (MIN_LOAD_FACTOR..=MAX_LOAD_FACTOR).contains(&load_factor) {
        Ok(())
    } else {
        Err(ErrorKind::LoadFactorOutOfRange { load_factor }.into())
    }
}

#[cfg(feature = "serde")]
mod serde_impl {
    //! JSON form: `{"strategy":"ring","shards":4,"vnodes":160}` with `shards`
    //! either a count (named `s0`…) or a list of `{"name","weight","cluster"}`
    //! (`cluster` left out when a shard names none).

    use super::*;
    use serde::de::{self, Deserializer, SeqAccess, Visitor};
    use serde::ser::{SerializeStruct, Serializer};
    use serde::{Deserialize, Serialize};

    impl Serialize for StrategyKind {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_str(self.name())
        }
    }

    impl<'de> Deserialize<'de> for StrategyKind {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            let name = <alloc::borrow::Cow<'de, str>>::deserialize(deserializer)?;
            name.parse().map_err(de::Error::custom)
        }
    }

    impl Serialize for Layout {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut state = serializer.serialize_struct("Layout", 6)?;
            state.serialize_field("strategy", &self.strategy)?;
            state.serialize_field("shards", &self.shards)?;
            state.serialize_field("seed", &self.seed)?;
            state.serialize_field("vnodes", &self.vnodes)?;
            state.serialize_field("table_size", &self.table_size)?;
            state.serialize_field("load_factor", &self.load_factor)?;
            state.end()
        }
    }

    /// What a client sends; checked and turned into a [`Layout`].
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct LayoutSpec {
        strategy: StrategyKind,
        shards: ShardSpec,
        #[serde(default)]
        seed: u64,
        vnodes: Option<u64>,
        table_size: Option<u64>,
        load_factor: Option<f64>,
    }

    enum ShardSpec {
        Count(u64),
        List(Vec<Shard>),
    }

    impl<'de> Deserialize<'de> for ShardSpec {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_any(ShardSpecVisitor)
        }
    }

    struct ShardSpecVisitor;

    impl<'de> Visitor<'de> for ShardSpecVisitor {
        type Value = ShardSpec;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a shard count or a list of {\"name\", \"weight\", \"cluster\"}")
        }

        fn visit_u64<E: de::Error>(self, count: u64) -> Result<ShardSpec, E> {
            Ok(ShardSpec::Count(count))
        }

        fn visit_i64<E: de::Error>(self, count: i64) -> Result<ShardSpec, E> {
            u64::try_from(count)
                .map(ShardSpec::Count)
                .map_err(|_| E::custom(format!("shard count {count} is negative")))
        }

        fn visit_f64<E: de::Error>(self, count: f64) -> Result<ShardSpec, E> {
            Err(E::custom(format!(
                "shard count {count} is not a whole number"
            )))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ShardSpec, A::Error> {
            let mut shards = Vec::new();
            while let Some(shard) = seq.next_element::<Shard>()? {
                if shards.len() >= MAX_SHARDS {
                    return Err(de::Error::custom(Error::from(ErrorKind::TooManyShards {
                        count: shards.len() as u64 + 1,
                        max: MAX_SHARDS,
                    })));
                }
                shards.push(shard);
            }
            Ok(ShardSpec::List(shards))
        }
    }

    impl TryFrom<LayoutSpec> for Layout {
        type Error = Error;

        fn try_from(spec: LayoutSpec) -> Result<Layout, Error> {
            let shards = match spec.shards {
                ShardSpec::Count(count) => Shard::numbered(check_shard_count(count)?),
                ShardSpec::List(shards) => shards,
            };
            let vnodes = match spec.vnodes {
                None => DEFAULT_VNODES,
                Some(vnodes) => u32::try_from(vnodes)
                    .ok()
                    .filter(|v| *v <= MAX_VNODES)
                    .ok_or(ErrorKind::VnodesOutOfRange { vnodes })?,
            };
            let table_size = match spec.table_size {
                None => DEFAULT_TABLE_SIZE,
                Some(table_size) => {
                    u32::try_from(table_size).map_err(|_| ErrorKind::TableSizeOutOfRange {
                        table_size,
                        min: MIN_TABLE_SLOTS_PER_SHARD * shards.len() as u64,
                    })?
                }
            };
            let layout = Layout {
                strategy: spec.strategy,
                shards,
                seed: spec.seed,
                vnodes,
                table_size,
                load_factor: spec.load_factor.unwrap_or(DEFAULT_LOAD_FACTOR),
            };
            layout.validate()?;
            Ok(layout)
        }
    }

    impl<'de> Deserialize<'de> for Layout {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            let spec = LayoutSpec::deserialize(deserializer)?;
            Layout::try_from(spec).map_err(de::Error::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(layout: Layout, expected_code: Option<&str>) {
        let got = layout.validate().err().map(|error| error.code());
        assert_eq!(got, expected_code, "{layout:?}");
    }

    fn ring(count: u64) -> Layout {
        Layout::with_count(StrategyKind::Ring, count).unwrap()
    }

    #[test]
    fn validation_table() {
        check(ring(4), None);
        check(
            Layout::new(StrategyKind::Ring, Vec::new()),
            Some("no_shards"),
        );
        check(ring(4).with_vnodes(0), Some("vnodes_out_of_range"));
        check(
            ring(4).with_vnodes(MAX_VNODES + 1),
            Some("vnodes_out_of_range"),
        );
        check(ring(2_000).with_vnodes(4_000), Some("too_many_ring_points"));
        check(
            Layout::new(
                StrategyKind::Ring,
                alloc::vec![Shard::new("a"), Shard::new("a")],
            ),
            Some("duplicate_shard"),
        );
        for weight in [0.0, -1.0, f64::NAN, f64::INFINITY, MAX_WEIGHT * 2.0] {
            check(
                Layout::new(
                    StrategyKind::Ring,
                    alloc::vec![Shard::weighted("a", weight)],
                ),
                Some("invalid_weight"),
            );
        }
        check(
            Layout::new(StrategyKind::Jump, alloc::vec![Shard::weighted("a", 2.0)]),
            Some("weights_unsupported"),
        );
        check(
            Layout::new(
                StrategyKind::Rendezvous,
                alloc::vec![Shard::weighted("a", 2.0)],
            ),
            None,
        );
        let maglev = Layout::with_count(StrategyKind::Maglev, 3).unwrap();
        check(maglev.clone(), None);
        check(
            maglev.clone().with_table_size(65_536),
            Some("table_size_not_prime"),
        );
        check(
            maglev.clone().with_table_size(7),
            Some("table_size_out_of_range"),
        );
        check(maglev.with_table_size(31), None);
        let bounded = Layout::with_count(StrategyKind::BoundedLoad, 3).unwrap();
        check(
            bounded.clone().with_load_factor(0.9),
            Some("load_factor_out_of_range"),
        );
        check(
            bounded.clone().with_load_factor(f64::NAN),
            Some("load_factor_out_of_range"),
        );
        check(bounded.with_load_factor(1.0), None);
        check(
            Layout::new(StrategyKind::Modulo, alloc::vec![Shard::new("bad name")]),
            Some("invalid_shard_name"),
        );
        check(
            Layout::new(
                StrategyKind::Ring,
                alloc::vec![Shard::new("a").on_cluster("c2")],
            ),
            None,
        );
        check(
            Layout::new(
                StrategyKind::Ring,
                alloc::vec![Shard::new("a").on_cluster("C 2")],
            ),
            Some("invalid_cluster_name"),
        );
    }

    #[test]
    fn layouts_that_cost_too_much_to_build_are_refused() {
        let maglev = |count: usize, table_size: u32| {
            Layout::new(StrategyKind::Maglev, Shard::numbered(count)).with_table_size(table_size)
        };
        let weighted = |strategy, weights: &[f64]| {
            let shards = weights
                .iter()
                .enumerate()
                .map(|(index, weight)| Shard::weighted(format!("s{index}"), *weight))
                .collect();
            Layout::new(strategy, shards)
        };
        // The review's layout: 255 shards of weight 1e-300, the largest table.
        let mut review = maglev(255, 16_777_213);
        for shard in &mut review.shards {
            shard.weight = 1e-300;
        }
        check(review, Some("maglev_too_costly"));
        check(maglev(2, 16_777_213), Some("maglev_too_costly"));
        check(maglev(1, 16_777_213), None);
        check(maglev(256, DEFAULT_TABLE_SIZE), None);
        check(maglev(306, 65_537), Some("maglev_too_costly"));
        check(ring(256), None);
        check(ring(MAX_SHARDS as u64), None);
        check(ring(1_024).with_vnodes(MAX_VNODES), None);
        check(
            ring(1_025).with_vnodes(MAX_VNODES),
            Some("too_many_ring_points"),
        );
        for strategy in [
            StrategyKind::Ring,
            StrategyKind::Rendezvous,
            StrategyKind::Maglev,
            StrategyKind::BoundedLoad,
        ] {
            check(weighted(strategy, &[1_000.0, 0.0011]), None);
            check(
                weighted(strategy, &[1_000.0, 0.0009]),
                Some("weight_too_small"),
            );
            check(weighted(strategy, &[1e-300, 1e-300]), None);
            check(weighted(strategy, &[1.0, 1e-300]), Some("weight_too_small"));
        }
    }

    #[test]
    fn cost_errors_name_the_limit() {
        use alloc::string::ToString;
        let too_costly = Layout::new(StrategyKind::Maglev, Shard::numbered(255))
            .with_table_size(16_777_213)
            .validate()
            .unwrap_err()
            .to_string();
        assert!(too_costly.contains("at most 20000000"), "{too_costly}");
        assert!(too_costly.contains("4278189315"), "{too_costly}");
        let too_small = Layout::new(
            StrategyKind::Ring,
            alloc::vec![Shard::weighted("big", 10.0), Shard::weighted("tiny", 1e-9)],
        )
        .validate()
        .unwrap_err()
        .to_string();
        assert!(too_small.contains("\"tiny\""), "{too_small}");
        assert!(
            too_small.contains("under 0.000001 of the largest"),
            "{too_small}"
        );
        assert!(too_small.contains("at least 0.000001 × 10"), "{too_small}");
    }

    #[test]
    fn absurd_counts_are_refused_before_allocating() {
        let err = Layout::with_count(StrategyKind::Jump, u64::MAX).unwrap_err();
        assert_eq!(err.code(), "too_many_shards");
        assert_eq!(
            Layout::with_count(StrategyKind::Jump, 0)
                .unwrap_err()
                .code(),
            "no_shards"
        );
    }

    #[test]
    fn strategy_names_round_trip() {
        for kind in StrategyKind::ALL {
            assert_eq!(kind.name().parse::<StrategyKind>().unwrap(), kind);
        }
        assert_eq!(
            "hrw".parse::<StrategyKind>().unwrap(),
            StrategyKind::Rendezvous
        );
        let err = "sharding".parse::<StrategyKind>().unwrap_err();
        assert_eq!(err.code(), "unknown_strategy");
    }

    #[test]
    fn next_shard_name_skips_names_in_use() {
        let mut layout = ring(3);
        assert_eq!(layout.next_shard_name(), "s3");
        layout.shards.remove(0);
        layout.shards.push(Shard::new("s2b"));
        assert_eq!(layout.next_shard_name(), "s3");
        layout.shards.push(Shard::new("s3"));
        assert_eq!(layout.next_shard_name(), "s4");
    }
}

#[cfg(feature = "openapi")]
mod openapi_impl {
    //! OpenAPI schemas of the layout's JSON form, written by hand as its
    //! serde is: `shards` is a count or a list.

    use alloc::string::String;
    use alloc::vec::Vec;

    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type};
    use utoipa::openapi::{Ref, RefOr};
    use utoipa::{PartialSchema, ToSchema};

    use super::{Layout, StrategyKind};
    use crate::shard::Shard;

    const ALL: [StrategyKind; 6] = [
        StrategyKind::Modulo,
        StrategyKind::Jump,
        StrategyKind::Ring,
        StrategyKind::Rendezvous,
        StrategyKind::Maglev,
        StrategyKind::BoundedLoad,
    ];

    impl PartialSchema for StrategyKind {
        fn schema() -> RefOr<Schema> {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(ALL.map(StrategyKind::name)))
                .description(Some("The placement strategy."))
                .into()
        }
    }

    impl ToSchema for StrategyKind {}

    impl PartialSchema for Layout {
        fn schema() -> RefOr<Schema> {
            let integer = |description: &str| {
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0))
                    .description(Some(description))
            };
            let shards = OneOfBuilder::new()
                .item(integer("A count: shards named s0 … s{N-1}, weight 1"))
                .item(ArrayBuilder::new().items(Ref::from_schema_name("Shard")))
                .description(Some(
                    "A count or a list of {name, weight, cluster}; answers always give the list",
                ));
            ObjectBuilder::new()
                .property("strategy", Ref::from_schema_name("StrategyKind"))
                .required("strategy")
                .property("shards", shards)
                .required("shards")
                .property("seed", integer("Seed of the key hash (default 0)"))
                .property(
                    "vnodes",
                    integer("Virtual nodes per shard of weight 1 (default 160)"),
                )
                .property(
                    "table_size",
                    integer("Maglev's table size, a prime (default 65537)"),
                )
                .property(
                    "load_factor",
                    ObjectBuilder::new()
                        .schema_type(Type::Number)
                        .description(Some("bounded-load's bound factor (default 1.25)")),
                )
                .description(Some("A layout: strategy, shards and parameters."))
                .into()
        }
    }

    impl ToSchema for Layout {
        fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
            schemas.push((
                <StrategyKind as ToSchema>::name().into(),
                StrategyKind::schema(),
            ));
            schemas.push((Shard::name().into(), Shard::schema()));
        }
    }
}
