//! The clusters the bridge operates, by name (`c1`, `c2`, …): each its own
//! primary and standbys, checked, failed over and controlled on its own.
//! `c1` is the default: it holds the catalog (layouts, jobs), and a stored
//! shard naming no cluster is on it.

use std::sync::Arc;

use super::Cluster;

/// Name of the default cluster (the only one when there is one).
pub const DEFAULT_CLUSTER: &str = "c1";

/// Every cluster, the default first.
#[derive(Debug)]
pub struct Clusters {
    members: Vec<Arc<Cluster>>,
}

impl Clusters {
    /// `default` (`c1`) first, then `others` in their order.
    pub(crate) fn new(default: Arc<Cluster>, others: Vec<Arc<Cluster>>) -> Self {
        let mut members = Vec::with_capacity(others.len() + 1);
        members.push(default);
        members.extend(others);
        Clusters { members }
    }

    /// The default cluster, which holds the catalog.
    pub fn default_cluster(&self) -> &Arc<Cluster> {
        &self.members[0]
    }

    /// Every cluster, the default first.
    pub fn all(&self) -> &[Arc<Cluster>] {
        &self.members
    }

    /// The cluster called `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&Arc<Cluster>> {
        self.members.iter().find(|cluster| cluster.name == name)
    }

    /// The position of the cluster called `name` in [`Clusters::all`].
    pub(crate) fn position(&self, name: &str) -> Option<usize> {
        self.members.iter().position(|cluster| cluster.name == name)
    }

    /// Whether there is more than the default cluster (then views list
    /// every cluster and metrics carry a `cluster` label).
    pub fn several(&self) -> bool {
        self.members.len() > 1
    }

    /// The clusters' names, the default first.
    pub(crate) fn names(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|cluster| cluster.name.clone())
            .collect()
    }

    /// The clusters' names, the default first: the clusters a layout may
    /// place shards on.
    pub(crate) fn name_refs(&self) -> Vec<&str> {
        self.members
            .iter()
            .map(|cluster| cluster.name.as_str())
            .collect()
    }
}
