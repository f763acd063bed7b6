//! Typed errors for layouts that cannot be built.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::layout::StrategyKind;

/// Why a layout was refused. Every input that is not a usable layout gives one
/// of these; nothing in this crate panics on bad input.
#[derive(Clone, Debug, PartialEq)]
pub struct Error {
    kind: ErrorKind,
}

/// The kinds of [`Error`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The shard list is empty.
    NoShards,
    /// More shards than [`MAX_SHARDS`](crate::MAX_SHARDS).
    TooManyShards {
        /// The count asked for.
        count: u64,
        /// The largest count accepted.
        max: usize,
    },
    /// A shard name is empty, too long or has a character outside
    /// `A-Z a-z 0-9 _ -`.
    InvalidShardName {
        /// The offending name.
        name: String,
    },
    /// Two shards share a name.
    DuplicateShard {
        /// The repeated name.
        name: String,
    },
    /// A weight is zero, negative, not finite or over
    /// [`MAX_WEIGHT`](crate::MAX_WEIGHT).
    InvalidWeight {
        /// The shard carrying the weight.
        shard: String,
        /// The weight given.
        weight: f64,
    },
    /// The strategy has no notion of weights, yet a weight other than 1 was given.
    WeightsUnsupported {
        /// The strategy.
        strategy: StrategyKind,
    },
    /// Virtual nodes per shard outside `1..=MAX_VNODES`.
    VnodesOutOfRange {
        /// The value given.
        vnodes: u64,
    },
    /// The ring would hold more than [`MAX_RING_POINTS`](crate::MAX_RING_POINTS) points:
    /// building it (hashing and sorting every point) would cost too much.
    TooManyRingPoints {
        /// How many points the layout asks for.
        points: u64,
    },
    /// A Maglev table of `table_size` slots over `shards` shards would cost
    /// more than [`MAX_MAGLEV_COST`](crate::MAX_MAGLEV_COST) (`table_size ×
    /// shards`): filling the table takes up to that many shard turns.
    MaglevTooCostly {
        /// The table size given.
        table_size: u64,
        /// The number of shards.
        shards: u64,
    },
    /// A shard's weight is under [`MIN_WEIGHT_RATIO`](crate::MIN_WEIGHT_RATIO)
    /// of the largest weight: such a shard gets (almost) no keys and only adds
    /// work (a Maglev turn every round, a rendezvous score for every key).
    WeightTooSmall {
        /// The shard carrying the weight.
        shard: String,
        /// Its weight.
        weight: f64,
        /// The largest weight of the layout.
        largest: f64,
    },
    /// The Maglev table size is not a prime number.
    TableSizeNotPrime {
        /// The value given.
        table_size: u64,
    },
    /// The Maglev table size is under ten slots per shard or over
    /// [`MAX_TABLE_SIZE`](crate::MAX_TABLE_SIZE).
    TableSizeOutOfRange {
        /// The value given.
        table_size: u64,
        /// The smallest size accepted for this shard count.
        min: u64,
    },
    /// The bounded-load factor is not a finite number in
    /// `MIN_LOAD_FACTOR..=MAX_LOAD_FACTOR`.
    LoadFactorOutOfRange {
        /// The value given.
        load_factor: f64,
    },
    /// The strategy name is not one of the known ones.
    UnknownStrategy {
        /// The name given.
        name: String,
    },
    /// A cluster name is empty, too long, or not a lowercase letter followed
    /// by lowercase letters, digits, `_` and `-`.
    InvalidClusterName {
        /// The offending name.
        name: String,
    },
    /// A shard names a cluster that is not among those the layout is placed
    /// over.
    UnknownCluster {
        /// The shard.
        shard: String,
        /// The cluster it names.
        cluster: String,
        /// The clusters there are.
        clusters: Vec<String>,
    },
    /// A layout was placed over no cluster at all.
    NoClusters,
}

impl Error {
    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// A short, stable, machine-readable code for the kind (`"no_shards"`, …).
    pub fn code(&self) -> &'static str {
        match self.kind {
            ErrorKind::NoShards => "no_shards",
            ErrorKind::TooManyShards { .. } => "too_many_shards",
            ErrorKind::InvalidShardName { .. } => "invalid_shard_name",
            ErrorKind::DuplicateShard { .. } => "duplicate_shard",
            ErrorKind::InvalidWeight { .. } => "invalid_weight",
            ErrorKind::WeightsUnsupported { .. } => "weights_unsupported",
            ErrorKind::VnodesOutOfRange { .. } => "vnodes_out_of_range",
            ErrorKind::TooManyRingPoints { .. } => "too_many_ring_points",
            ErrorKind::MaglevTooCostly { .. } => "maglev_too_costly",
            ErrorKind::WeightTooSmall { .. } => "weight_too_small",
            ErrorKind::TableSizeNotPrime { .. } => "table_size_not_prime",
            ErrorKind::TableSizeOutOfRange { .. } => "table_size_out_of_range",
            ErrorKind::LoadFactorOutOfRange { .. } => "load_factor_out_of_range",
            ErrorKind::UnknownStrategy { .. } => "unknown_strategy",
            ErrorKind::InvalidClusterName { .. } => "invalid_cluster_name",
            ErrorKind::UnknownCluster { .. } => "unknown_cluster",
            ErrorKind::NoClusters => "no_clusters",
        }
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Error { kind }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::layout::{
            DEFAULT_TABLE_SIZE, MAX_LOAD_FACTOR, MAX_MAGLEV_COST, MAX_RING_POINTS, MAX_TABLE_SIZE,
            MAX_VNODES, MAX_WEIGHT, MIN_LOAD_FACTOR, MIN_WEIGHT_RATIO,
        };
        use crate::placement::MAX_CLUSTER_NAME_LEN;
        use crate::shard::MAX_SHARD_NAME_LEN;
        match &self.kind {
            ErrorKind::NoShards => write!(f, "a layout needs at least one shard"),
            ErrorKind::TooManyShards { count, max } => {
                write!(f, "{count} shards is too many: at most {max} are supported")
            }
            ErrorKind::InvalidShardName { name } => write!(
                f,
                "invalid shard name {name:?}: use 1 to {MAX_SHARD_NAME_LEN} characters \
                 from A-Z, a-z, 0-9, '_' and '-'"
            ),
            ErrorKind::DuplicateShard { name } => {
                write!(f, "shard name {name:?} appears more than once")
            }
            ErrorKind::InvalidWeight { shard, weight } => write!(
                f,
                "shard {shard:?} has weight {weight}: a weight must be a number \
                 greater than 0 and at most {MAX_WEIGHT}"
            ),
            ErrorKind::WeightsUnsupported { strategy } => write!(
                f,
                "the {strategy} strategy cannot weight shards: leave every weight at 1, \
                 or use ring, rendezvous, maglev or bounded-load"
            ),
            ErrorKind::VnodesOutOfRange { vnodes } => write!(
                f,
                "{vnodes} virtual nodes per shard is out of range: use 1 to {MAX_VNODES}"
            ),
            ErrorKind::TooManyRingPoints { points } => write!(
                f,
                "the ring would hold {points} points: at most {MAX_RING_POINTS} are \
                 supported (lower vnodes, weights or the shard count)"
            ),
            ErrorKind::MaglevTooCostly { table_size, shards } => write!(
                f,
                "a Maglev table of {table_size} slots over {shards} shards costs {} \
                 (table size × shards) to fill: at most {MAX_MAGLEV_COST} is allowed \
                 (use a smaller table, {DEFAULT_TABLE_SIZE} is a good default, or fewer shards)",
                table_size.saturating_mul(*shards)
            ),
            ErrorKind::WeightTooSmall {
                shard,
                weight,
                largest,
            } => write!(
                f,
                "shard {shard:?} has weight {weight}, under {MIN_WEIGHT_RATIO} of the largest \
                 weight ({largest}): it would get almost no keys and only add work; raise its \
                 weight to at least {MIN_WEIGHT_RATIO} × {largest} or leave it out"
            ),
            ErrorKind::TableSizeNotPrime { table_size } => write!(
                f,
                "Maglev table size {table_size} is not a prime number (65537 is a good default)"
            ),
            ErrorKind::TableSizeOutOfRange { table_size, min } => write!(
                f,
                "Maglev table size {table_size} is out of range: use a prime from {min} \
                 (ten slots per shard) to {MAX_TABLE_SIZE}"
            ),
            ErrorKind::LoadFactorOutOfRange { load_factor } => write!(
                f,
                "load factor {load_factor} is out of range: use a number from \
                 {MIN_LOAD_FACTOR} to {MAX_LOAD_FACTOR}"
            ),
            ErrorKind::UnknownStrategy { name } => write!(
                f,
                "unknown strategy {name:?}: use one of modulo, jump, ring, rendezvous, \
                 maglev, bounded-load"
            ),
            ErrorKind::InvalidClusterName { name } => write!(
                f,
                "invalid cluster name {name:?}: use a lowercase letter, then up to {} \
                 lowercase letters, digits, '_' and '-'",
                MAX_CLUSTER_NAME_LEN - 1
            ),
            ErrorKind::UnknownCluster {
                shard,
                cluster,
                clusters,
            } => write!(
                f,
                "shard {shard:?} is placed on cluster {cluster:?}, which does not exist: \
                 the clusters are {}",
                clusters.join(", ")
            ),
            ErrorKind::NoClusters => f.write_str("a layout is placed over at least one cluster"),
        }
    }
}

impl core::error::Error for Error {}
