//! Several local clusters side by side (`c1`, `c2`, …), each a primary and
//! its standbys: where each lives, which ports it takes, and starting,
//! stopping and finding them all in one data directory.
//!
//! ```text
//! DIR/                 c1, laid out as a single cluster always is
//! DIR/c2/  DIR/c3/ …   c2, c3, …, each laid out the same way
//! ```
//!
//! Cluster `cI` takes the ports from `pg_port + (I - 1) × PORT_BLOCK`: its
//! primary the first, `standby-K` the K-th after it. With one cluster,
//! nothing differs from [`LocalCluster::start`]: same directories, ports,
//! node names and files.

use std::path::{Path, PathBuf};

use super::paths::Paths;
use super::{ClusterError, ClusterOptions, LocalCluster, NodeState};

/// Most clusters one data directory holds.
pub const MAX_CLUSTERS: usize = 8;
/// Most standbys a cluster of a set has.
pub const MAX_STANDBYS: usize = 5;
/// Ports between two clusters' primaries: `55432`, `55442`, `55452`, …
pub const PORT_BLOCK: u16 = 10;

/// `shared_buffers` of a lone cluster (as it always was).
const SHARED_BUFFERS_ALONE: &str = "64MB";
/// `shared_buffers` when several clusters share the machine.
const SHARED_BUFFERS_SHARED: &str = "32MB";

/// Name of the `index`-th cluster (1-based): `c1`, `c2`, …
pub fn cluster_name(index: usize) -> String {
    format!("c{index}")
}

/// What a cluster is within its set.
#[derive(Clone, Debug)]
pub(crate) struct Member {
    /// `c1`, `c2`, …
    pub(crate) name: String,
    /// Its servers' `shared_buffers`.
    pub(crate) shared_buffers: &'static str,
    /// Locks of the other clusters' watchdogs, awaited before this one's
    /// watchdog removes the data directory (which holds theirs).
    pub(crate) await_before_removing: Vec<PathBuf>,
}

impl Member {
    /// A cluster on its own.
    pub(crate) fn single() -> Self {
        Member {
            name: cluster_name(1),
            shared_buffers: SHARED_BUFFERS_ALONE,
            await_before_removing: Vec::new(),
        }
    }
}

/// Each node's name and whether it was running, as
/// [`LocalCluster::stop_all_in`] answers.
pub type StoppedNodes = Vec<(String, bool)>;

/// The nodes of one cluster, as `ecoshard cluster status` shows them.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ClusterStatus {
    /// `c1`, `c2`, …
    pub name: String,
    /// Its nodes, primary's name first.
    pub nodes: Vec<NodeState>,
}

/// Started (or adopted) local clusters. Dropping it stops the servers it started.
#[derive(Debug)]
pub struct LocalClusters {
    clusters: Vec<LocalCluster>,
}

impl LocalClusters {
    /// Starts `count` clusters of `options.standbys` standbys each in
    /// `options.data_dir`, from port `options.pg_port`, creating or
    /// repairing each as needed. A data directory holding more clusters
    /// than `count` is refused: none is ever left out.
    pub fn start(options: &ClusterOptions, count: usize) -> Result<Self, ClusterError> {
        Self::check_shape(options.pg_port, count, options.standbys)?;
        let recorded = Self::recorded_in(&options.data_dir);
        if count < recorded {
            return Err(ClusterError::Refused {
                what: format!("starting {count} cluster(s)"),
                reason: format!(
                    "{} holds {recorded} clusters (c1 … c{recorded}): start them all \
                     with --clusters {recorded}",
                    options.data_dir.display()
                ),
            });
        }
        let shared_buffers = if count > 1 {
            SHARED_BUFFERS_SHARED
        } else {
            SHARED_BUFFERS_ALONE
        };
        let mut clusters = Vec::with_capacity(count);
        for index in 1..=count {
            let others = if index == 1 {
                (2..=count)
                    .map(|other| Paths::new(&cluster_root(&options.data_dir, other)).lock_file())
                    .collect()
            } else {
                Vec::new()
            };
            let member = Member {
                name: cluster_name(index),
                shared_buffers,
                await_before_removing: others,
            };
            clusters.push(LocalCluster::start_member(
                &member_options(options, index),
                &member,
            )?);
        }
        Ok(LocalClusters { clusters })
    }

    /// Refuses a count of clusters or of standbys out of bounds, or ports
    /// past 65535.
    pub fn check_shape(pg_port: u16, count: usize, standbys: usize) -> Result<(), ClusterError> {
        let refused = |reason: String| ClusterError::Refused {
            what: format!("starting {count} cluster(s) of {standbys} standby(s)"),
            reason,
        };
        if !(1..=MAX_CLUSTERS).contains(&count) {
            return Err(refused(format!("give 1 to {MAX_CLUSTERS} clusters")));
        }
        if standbys > MAX_STANDBYS {
            return Err(refused(format!("give 0 to {MAX_STANDBYS} standbys")));
        }
        let last =
            u32::from(pg_port) + (count as u32 - 1) * u32::from(PORT_BLOCK) + standbys as u32;
        if last > u32::from(u16::MAX) {
            return Err(refused(format!(
                "their ports would run from {pg_port} to {last}, past 65535: give a lower --pg-port"
            )));
        }
        Ok(())
    }

    /// How many clusters `data_dir` holds: `c1` in it, then `c2`, `c3`, … as
    /// long as each has its `cluster.json` (0 when it holds none).
    pub fn recorded_in(data_dir: &Path) -> usize {
        let recorded = |index| {
            Paths::new(&cluster_root(data_dir, index))
                .state_file()
                .is_file()
        };
        (1..=MAX_CLUSTERS)
            .take_while(|index| recorded(*index))
            .count()
    }

    /// Stops every server of every cluster in `options.data_dir` (whoever
    /// started it): each cluster's name, and each node's name and whether
    /// it was running.
    pub fn stop_all_in(
        options: &ClusterOptions,
    ) -> Result<Vec<(String, StoppedNodes)>, ClusterError> {
        let count = Self::recorded_in(&options.data_dir).max(1);
        (1..=count)
            .map(|index| {
                let stopped = LocalCluster::stop_all_in(&member_options(options, index))?;
                Ok((cluster_name(index), stopped))
            })
            .collect()
    }

    /// Which nodes of every cluster in `options.data_dir` run.
    pub fn status_in(options: &ClusterOptions) -> Result<Vec<ClusterStatus>, ClusterError> {
        let count = Self::recorded_in(&options.data_dir).max(1);
        (1..=count)
            .map(|index| {
                Ok(ClusterStatus {
                    name: cluster_name(index),
                    nodes: LocalCluster::status_in(&member_options(options, index))?,
                })
            })
            .collect()
    }

    /// The clusters, `c1` first.
    pub fn clusters(&self) -> &[LocalCluster] {
        &self.clusters
    }

    /// The cluster named `name`.
    pub fn cluster(&self, name: &str) -> Option<&LocalCluster> {
        self.clusters.iter().find(|cluster| cluster.name() == name)
    }

    /// The clusters, each on its own (dropping one stops its servers).
    pub fn into_clusters(self) -> Vec<LocalCluster> {
        self.clusters
    }
}

/// The data directory of the `index`-th cluster.
fn cluster_root(data_dir: &Path, index: usize) -> PathBuf {
    if index == 1 {
        data_dir.to_path_buf()
    } else {
        data_dir.join(cluster_name(index))
    }
}

/// The options of the `index`-th cluster: its directory and ports; only
/// `c1` removes the data directory (which holds the others) on exit.
fn member_options(options: &ClusterOptions, index: usize) -> ClusterOptions {
    ClusterOptions {
        data_dir: cluster_root(&options.data_dir, index),
        pg_port: options.pg_port + (index as u16 - 1) * PORT_BLOCK,
        remove_on_exit: options.remove_on_exit && index == 1,
        ..options.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cluster_has_its_directory_and_port_block() {
        fn check(index: usize, expected: (&str, u16, bool)) {
            let mut options = ClusterOptions::new("/data", 55432);
            options.remove_on_exit = true;
            let member = member_options(&options, index);
            let got = (
                member.data_dir.to_str().unwrap_or_default(),
                member.pg_port,
                member.remove_on_exit,
            );
            assert_eq!(got, expected, "cluster {index}");
        }
        check(1, ("/data", 55432, true));
        check(2, ("/data/c2", 55442, false));
        check(8, ("/data/c8", 55502, false));
    }

    #[test]
    fn shapes_out_of_bounds_are_refused_with_a_reason() {
        fn check(pg_port: u16, count: usize, standbys: usize, expected: Option<&str>) {
            let got = LocalClusters::check_shape(pg_port, count, standbys)
                .err()
                .map(|e| e.to_string());
            match (got, expected) {
                (None, None) => {}
                (Some(got), Some(expected)) => assert!(got.contains(expected), "{got}"),
                (got, expected) => panic!("{pg_port} {count} {standbys}: {got:?} ≠ {expected:?}"),
            }
        }
        check(55432, 1, 2, None);
        check(55432, 8, 5, None);
        check(55432, 0, 2, Some("give 1 to 8 clusters"));
        check(55432, 9, 2, Some("give 1 to 8 clusters"));
        check(55432, 2, 6, Some("give 0 to 5 standbys"));
        check(65530, 1, 5, None);
        check(65530, 2, 0, Some("past 65535"));
    }
}
