//! What the service reports for monitoring, read at the moment it is asked
//! (a scrape of `GET /metrics`): the nodes as the last health check saw
//! them, the counters, the failovers done and the rebalance job. It keeps no
//! bookkeeping of its own; the HTTP layer turns it into Prometheus' text.

use std::sync::atomic::Ordering;

use ecoshard_core::wire::{NodeStatus, RebalanceJob, Stats};

use super::Service;
use crate::cluster::Node;

/// The service's state for monitoring, as of now.
#[derive(Clone, Debug)]
pub(crate) struct Report {
    /// Every node with its role, health and lag, in their fixed order.
    pub(crate) nodes: Vec<NodeStatus>,
    /// Reads per node, writes, failed reads (rates and rows as of the last tick).
    pub(crate) stats: Stats,
    /// Failovers this bridge has made since it started.
    pub(crate) failovers: u64,
    /// The running or last rebalance job, without its plan.
    pub(crate) job: Option<RebalanceJob>,
    /// Version of the layout writes go by.
    pub(crate) layout_version: u64,
}

impl Service {
    /// What a scrape reports: read from the nodes, counters and job now.
    pub(crate) fn report(&self) -> Report {
        Report {
            nodes: self.cluster().nodes.iter().map(Node::status).collect(),
            stats: self.stats(),
            failovers: self.failover().done.load(Ordering::Relaxed),
            job: self.rebalancer().job_summary(),
            layout_version: self.routing().table().current.version,
        }
    }
}
