//! What the service reports for monitoring, read at the moment it is asked
//! (a scrape of `GET /metrics`): the nodes as the last health check saw
//! them, the counters, the failovers done and the rebalance job. It keeps no
//! bookkeeping of its own; the HTTP layer turns it into Prometheus' text.

use std::sync::atomic::Ordering;

use ecoshard_core::wire::{NodeCount, NodeStatus, RebalanceJob, Stats};

use super::Service;
use crate::cluster::Node;

/// The service's state for monitoring, as of now.
#[derive(Clone, Debug)]
pub(crate) struct Report {
    /// Every cluster, `c1` first.
    pub(crate) clusters: Vec<ClusterReport>,
    /// Writes, failed reads (rates and rows as of the last tick).
    pub(crate) stats: Stats,
    /// The running or last rebalance job, without its plan.
    pub(crate) job: Option<RebalanceJob>,
    /// Version of the layout writes go by.
    pub(crate) layout_version: u64,
}

/// One cluster's part of a [`Report`].
#[derive(Clone, Debug)]
pub(crate) struct ClusterReport {
    /// Its name when there are several clusters; `None` when it is the
    /// only one (its series then carry no `cluster` label, as always).
    pub(crate) name: Option<String>,
    /// Every node with its role, health and lag, in their fixed order.
    pub(crate) nodes: Vec<NodeStatus>,
    /// Reads served per node.
    pub(crate) reads: Vec<NodeCount>,
    /// Failovers this bridge has made in this cluster since it started.
    pub(crate) failovers: u64,
}

impl Service {
    /// What a scrape reports: read from the nodes, counters and job now.
    pub(crate) fn report(&self) -> Report {
        let several = self.clusters().several();
        let clusters = self
            .clusters()
            .all()
            .iter()
            .enumerate()
            .map(|(index, cluster)| ClusterReport {
                name: several.then(|| cluster.name().to_string()),
                nodes: cluster.nodes.iter().map(Node::status).collect(),
                reads: super::reads_of(cluster),
                failovers: self.failover_of(index).done.load(Ordering::Relaxed),
            })
            .collect();
        Report {
            clusters,
            stats: self.stats(),
            job: self.rebalancer().job_summary(),
            layout_version: self.routing().table().current.version,
        }
    }
}
