//! Placement: which cluster (a primary and its standbys, named) each shard
//! lives on. A layout carries it in its shards (`Shard::cluster`); a shard
//! naming none is placed round-robin over the clusters the layout is applied
//! to. The placement never changes where a key goes: strategies place keys on
//! shards by name (or position) alone, and the cluster is where that shard is.

use alloc::string::String;
use alloc::vec::Vec;

use crate::error::{Error, ErrorKind};
use crate::layout::Layout;

/// Longest cluster name accepted, in bytes.
pub const MAX_CLUSTER_NAME_LEN: usize = 31;

impl Layout {
    /// The same layout with every shard's cluster named: a shard that names
    /// one keeps it, the shard at position `i` that names none gets
    /// `clusters[i % clusters.len()]` (round-robin by position, so naming one
    /// shard's cluster never moves another). Deterministic.
    ///
    /// Refuses an empty `clusters`, a malformed cluster name, and a shard
    /// naming a cluster not in `clusters`.
    pub fn placed(&self, clusters: &[&str]) -> Result<Layout, Error> {
        let placement = self.placement(clusters)?;
        let mut placed = self.clone();
        for (shard, cluster) in placed.shards.iter_mut().zip(placement) {
            shard.cluster = Some(String::from(cluster));
        }
        Ok(placed)
    }

    /// The shortest form of the same placement over `clusters`: a shard's
    /// cluster is left out where round-robin gives it that one anyway. Two
    /// layouts placing every shard alike over `clusters` have the same
    /// canonical form; over one cluster it names no cluster at all. Refuses
    /// what [`Layout::placed`] refuses.
    pub fn canonical(&self, clusters: &[&str]) -> Result<Layout, Error> {
        let placement = self.placement(clusters)?;
        let mut canonical = self.clone();
        for (index, (shard, cluster)) in canonical.shards.iter_mut().zip(placement).enumerate() {
            if cluster == clusters[index % clusters.len()] {
                shard.cluster = None;
            }
        }
        Ok(canonical)
    }

    /// Each shard's cluster over `clusters`, in the shard list's order.
    fn placement<'a>(&'a self, clusters: &[&'a str]) -> Result<Vec<&'a str>, Error> {
        if clusters.is_empty() {
            return Err(ErrorKind::NoClusters.into());
        }
        for cluster in clusters {
            validate_cluster_name(cluster)?;
        }
        self.shards
            .iter()
            .enumerate()
            .map(|(index, shard)| match shard.cluster.as_deref() {
                None => Ok(clusters[index % clusters.len()]),
                Some(named) if clusters.contains(&named) => Ok(named),
                Some(named) => Err(ErrorKind::UnknownCluster {
                    shard: shard.name.clone(),
                    cluster: String::from(named),
                    clusters: clusters.iter().map(|name| String::from(*name)).collect(),
                }
                .into()),
            })
            .collect()
    }
}

/// Checks a cluster name: `[a-z][a-z0-9_-]{0,30}`. Stricter than shard names,
/// since a cluster's name will also name its directory, its nodes and
/// command-line values: it starts with a letter, never reads as an option or
/// a number, and has one spelling whatever the file system's case rules.
pub(crate) fn validate_cluster_name(name: &str) -> Result<(), Error> {
    let bytes = name.as_bytes();
    let well_formed = bytes.first().is_some_and(u8::is_ascii_lowercase)
        && bytes.len() <= MAX_CLUSTER_NAME_LEN
        && bytes.iter().all(|byte| {
            byte.is_ascii_lowercase() || byte.is_ascii_digit() || matches!(byte, b'_' | b'-')
        });
    if well_formed {
        Ok(())
    } else {
        Err(ErrorKind::InvalidClusterName {
            name: name.chars().take(MAX_CLUSTER_NAME_LEN + 8).collect(),
        }
        .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::StrategyKind;
    use crate::shard::Shard;
    use alloc::vec;

    fn check_name(name: &str, ok: bool) {
        assert_eq!(validate_cluster_name(name).is_ok(), ok, "{name:?}");
    }

    #[test]
    fn cluster_names() {
        check_name("c1", true);
        check_name("eu-west_2", true);
        check_name("default", true);
        check_name(&"c".repeat(MAX_CLUSTER_NAME_LEN), true);
        check_name(&"c".repeat(MAX_CLUSTER_NAME_LEN + 1), false);
        check_name("", false);
        check_name("1c", false);
        check_name("-c", false);
        check_name("_c", false);
        check_name("C1", false);
        check_name("cA", false);
        check_name("c 1", false);
        check_name("c1; DROP TABLE users", false);
        check_name("ñ", false);
    }

    fn clusters_of(layout: &Layout) -> Vec<Option<&str>> {
        layout
            .shards
            .iter()
            .map(|shard| shard.cluster.as_deref())
            .collect()
    }

    fn check_placed(shards: Vec<Shard>, clusters: &[&str], expected: Result<&[&str], &str>) {
        let layout = Layout::new(StrategyKind::Ring, shards);
        let got = layout.placed(clusters).map(|placed| {
            clusters_of(&placed)
                .into_iter()
                .map(Option::unwrap)
                .map(String::from)
                .collect::<Vec<_>>()
        });
        match expected {
            Ok(expected) => assert_eq!(got.unwrap(), expected, "{layout:?}"),
            Err(code) => assert_eq!(got.unwrap_err().code(), code, "{layout:?}"),
        }
    }

    #[test]
    fn placed_fills_in_round_robin_by_position() {
        let named = |name: &str, cluster: &str| Shard::new(name).on_cluster(cluster);
        check_placed(Shard::numbered(3), &["c1"], Ok(&["c1", "c1", "c1"]));
        check_placed(
            Shard::numbered(5),
            &["c1", "c2"],
            Ok(&["c1", "c2", "c1", "c2", "c1"]),
        );
        check_placed(
            vec![named("s0", "c2"), Shard::new("s1"), Shard::new("s2")],
            &["c1", "c2"],
            Ok(&["c2", "c2", "c1"]),
        );
        check_placed(
            vec![Shard::new("s0"), named("s1", "c3")],
            &["c1", "c2", "c3"],
            Ok(&["c1", "c3"]),
        );
        check_placed(vec![named("s0", "c2")], &["c1"], Err("unknown_cluster"));
        check_placed(Shard::numbered(2), &[], Err("no_clusters"));
        check_placed(Shard::numbered(2), &["C1"], Err("invalid_cluster_name"));
    }

    #[test]
    fn unknown_cluster_names_the_cluster_and_those_there_are() {
        use alloc::string::ToString;
        let layout = Layout::new(StrategyKind::Ring, vec![Shard::new("s0").on_cluster("c9")]);
        let message = layout.placed(&["c1", "c2"]).unwrap_err().to_string();
        assert_eq!(
            message,
            "shard \"s0\" is placed on cluster \"c9\", which does not exist: the clusters are c1, c2"
        );
    }

    #[test]
    fn canonical_leaves_out_what_round_robin_gives() {
        let explicit = Layout::new(
            StrategyKind::Ring,
            vec![
                Shard::new("s0").on_cluster("c1"),
                Shard::new("s1").on_cluster("c1"),
                Shard::new("s2").on_cluster("c1"),
            ],
        );
        let bare = Layout::with_count(StrategyKind::Ring, 3).unwrap();
        assert_eq!(explicit.canonical(&["c1"]).unwrap(), bare);
        assert_eq!(bare.canonical(&["c1"]).unwrap(), bare);
        let over_two = explicit.canonical(&["c1", "c2"]).unwrap();
        assert_eq!(clusters_of(&over_two), [None, Some("c1"), None]);
        assert_eq!(
            over_two.placed(&["c1", "c2"]).unwrap(),
            explicit.placed(&["c1", "c2"]).unwrap()
        );
    }
}
