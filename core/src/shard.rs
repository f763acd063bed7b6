//! A shard: a stable name, a weight, and the cluster it lives on when the
//! layout says so.
//!
//! Strategies derive every position from the name, never from where the shard
//! sits in the list, so adding a shard never moves the others' points. The
//! cluster plays no part in where a key goes (see `placement.rs`).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::error::{Error, ErrorKind};
// What utoipa's derive expands to uses the std prelude's macros.
#[cfg(feature = "openapi")]
use alloc::vec;

/// Longest shard name accepted, in bytes.
pub const MAX_SHARD_NAME_LEN: usize = 32;

/// One shard of a layout.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct Shard {
    /// Stable name: 1 to 32 characters from `A-Z a-z 0-9 _ -`.
    pub name: String,
    /// Relative capacity; 1 unless stated. Only ring, rendezvous, Maglev and
    /// bounded-load use it.
    #[cfg_attr(feature = "serde", serde(default = "default_weight"))]
    pub weight: f64,
    /// The cluster it lives on (see [`crate::Layout::placed`]); `None` places it
    /// round-robin. Left out of the JSON when `None`, so a layout naming no
    /// cluster reads and writes as before clusters existed.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub cluster: Option<String>,
}

impl Shard {
    /// A shard of weight 1.
    pub fn new(name: impl Into<String>) -> Self {
        Shard::weighted(name, 1.0)
    }

    /// A shard with the given weight.
    pub fn weighted(name: impl Into<String>, weight: f64) -> Self {
        Shard {
            name: name.into(),
            weight,
            cluster: None,
        }
    }

    /// The same shard, living on `cluster`.
    pub fn on_cluster(mut self, cluster: impl Into<String>) -> Self {
        self.cluster = Some(cluster.into());
        self
    }

    /// `count` shards of weight 1 named `s0` … `s{count-1}`.
    pub fn numbered(count: usize) -> Vec<Shard> {
        (0..count)
            .map(|index| Shard::new(format!("s{index}")))
            .collect()
    }
}

#[cfg(feature = "serde")]
fn default_weight() -> f64 {
    1.0
}

/// Checks a shard name against the naming rule.
pub(crate) fn validate_name(name: &str) -> Result<(), Error> {
    let well_formed = !name.is_empty()
        && name.len() <= MAX_SHARD_NAME_LEN
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-');
    if well_formed {
        Ok(())
    } else {
        Err(ErrorKind::InvalidShardName {
            name: name.chars().take(MAX_SHARD_NAME_LEN + 8).collect(),
        }
        .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, ok: bool) {
        assert_eq!(validate_name(name).is_ok(), ok, "{name:?}");
    }

    #[test]
    fn shard_names() {
        check("s0", true);
        check("eu-west_1", true);
        check(&"x".repeat(MAX_SHARD_NAME_LEN), true);
        check("", false);
        check(&"x".repeat(MAX_SHARD_NAME_LEN + 1), false);
        check("a b", false);
        check("s0; DROP TABLE users", false);
        check("ñ", false);
        check("a\"b", false);
    }

    #[test]
    fn numbered_shards_are_s0_to_sn() {
        let names: Vec<String> = Shard::numbered(3).into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["s0", "s1", "s2"]);
    }
}
