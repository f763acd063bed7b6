//! The nodes at run time: a connection pool each, their health and lag as
//! last checked, which one is primary (it changes with a failover), and the
//! choice of which node serves a read. Every connection taken from a pool
//! on the request path is taken within a deadline ([`checkout`]).

pub(crate) mod control;
mod local;
pub mod monitor;
mod node;
mod set;
pub mod topology;

pub(crate) use crate::db::{CheckoutError, checkout, discard};
pub use control::{Control, ControlError, NodeControl, Promotion};
pub(crate) use node::Node;
pub use set::{Clusters, DEFAULT_CLUSTER};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use ecoshard_core::wire::{Consistency, NodeRole};

use crate::cluster::topology::Topology;

/// Longest a write waits for the primary to confirm it. Shorter than the
/// nodes' `statement_timeout` (10 s), so the bridge gives up first: a commit
/// still waiting for a synchronous standby is then never acknowledged.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Default of [`Cluster::read_timeout`]: longest one node may take to
/// answer one read (checkout and statements together).
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(1);

/// One cluster: the primary and its standbys.
#[derive(Debug)]
pub struct Cluster {
    /// `c1`, `c2`, … (see [`Clusters`]).
    pub(crate) name: String,
    /// In the topology's order (`primary`, `standby-1`, …), whatever their roles.
    pub(crate) nodes: Vec<Node>,
    /// Index of the primary in `nodes`.
    primary: AtomicUsize,
    next_standby: AtomicUsize,
    /// Standbys further behind than this (ms) serve no eventual reads.
    pub(crate) max_lag_ms: f64,
    /// Longest one node may take to answer one read; past it the read goes
    /// to another node (or, strong, answers 503).
    pub(crate) read_timeout: Duration,
    /// Highest commit LSN this bridge has acknowledged on this cluster: what
    /// a read-your-writes read without a token must see.
    pub(crate) last_write_lsn: AtomicU64,
}

impl Cluster {
    /// Pools for every node (connections open lazily).
    pub(crate) fn new(
        name: &str,
        topology: &Topology,
        pool_size: usize,
        max_lag_ms: u64,
        read_timeout: Duration,
    ) -> Arc<Self> {
        let primary = topology
            .nodes
            .iter()
            .position(|spec| spec.role == NodeRole::Primary)
            .unwrap_or(0);
        let nodes: Vec<Node> = topology
            .nodes
            .iter()
            .map(|spec| Node::new(spec.clone(), pool_size, read_timeout))
            .collect();
        for (index, node) in nodes.iter().enumerate() {
            node.primary.store(index == primary, Ordering::SeqCst);
        }
        Arc::new(Cluster {
            name: name.to_string(),
            nodes,
            primary: AtomicUsize::new(primary),
            next_standby: AtomicUsize::new(0),
            max_lag_ms: max_lag_ms as f64,
            read_timeout,
            last_write_lsn: AtomicU64::new(0),
        })
    }

    /// `c1`, `c2`, …
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The primary now.
    pub fn primary(&self) -> &Node {
        &self.nodes[self.primary.load(Ordering::SeqCst)]
    }

    /// A connection to the primary now, by `deadline`: the one way the
    /// service reaches the primary.
    pub(crate) async fn primary_client(
        &self,
        deadline: tokio::time::Instant,
    ) -> Result<deadpool_postgres::Object, CheckoutError> {
        checkout(&self.primary().pool, deadline).await
    }

    /// The standbys now, in the topology's order.
    pub fn standbys(&self) -> Vec<&Node> {
        let primary = self.primary.load(Ordering::SeqCst);
        self.nodes
            .iter()
            .enumerate()
            .filter(|(index, _)| *index != primary)
            .map(|(_, node)| node)
            .collect()
    }

    /// A node other than the primary that answered its last check as a
    /// primary (out of recovery): promoted by another process, or a second
    /// primary. The monitor says what it saw; who is primary is decided
    /// elsewhere.
    pub(crate) fn other_primary(&self) -> Option<&Node> {
        let primary = self.primary.load(Ordering::SeqCst);
        self.nodes.iter().enumerate().find_map(|(index, node)| {
            (index != primary && node.answers_as_primary.load(Ordering::SeqCst)).then_some(node)
        })
    }

    /// A node by name.
    pub(crate) fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|node| node.name() == name)
    }

    /// Makes `name` the primary (after a failover): writes go to it from now
    /// on; the old primary is a standby, out of the read rotation until its
    /// health checks say it is one. `false` when there is no such node.
    pub(crate) fn set_primary(&self, name: &str) -> bool {
        let Some(index) = self.nodes.iter().position(|node| node.name() == name) else {
            return false;
        };
        for (other, node) in self.nodes.iter().enumerate() {
            node.primary.store(other == index, Ordering::SeqCst);
            node.eligible.store(false, Ordering::SeqCst);
            node.answers_as_primary.store(false, Ordering::SeqCst);
            if other == index
                && let Ok(mut lag) = node.lag.write()
            {
                *lag = None;
            }
        }
        self.nodes[index].up.store(true, Ordering::SeqCst);
        self.primary.store(index, Ordering::SeqCst);
        true
    }

    /// Nodes to try for a read, best first; the primary is always last.
    ///
    /// `eventual`: the standbys in the rotation, round-robin. `strong`: the
    /// primary. `read-your-writes`: the standbys in the rotation whose replay
    /// LSN as last checked has passed `after_lsn` (the caller may check the
    /// others live), round-robin.
    pub(crate) fn read_candidates(
        &self,
        consistency: Consistency,
        after_lsn: u64,
    ) -> ReadCandidates<'_> {
        let standbys = self.standbys();
        let mut ready = Vec::with_capacity(standbys.len() + 1);
        let mut behind = Vec::new();
        if consistency != Consistency::Strong && !standbys.is_empty() {
            let start = self.next_standby.fetch_add(1, Ordering::Relaxed);
            for offset in 0..standbys.len() {
                let node = standbys[(start + offset) % standbys.len()];
                if !node.eligible.load(Ordering::Relaxed) {
                    continue;
                }
                if consistency == Consistency::ReadYourWrites && node.lsn() < after_lsn {
                    behind.push(node);
                } else {
                    ready.push(node);
                }
            }
        }
        ReadCandidates {
            ready,
            behind,
            primary: self.primary(),
        }
    }
}

/// Where a read may go (see [`Cluster::read_candidates`]).
#[derive(Debug)]
pub(crate) struct ReadCandidates<'a> {
    /// Standbys that may serve it now.
    pub(crate) ready: Vec<&'a Node>,
    /// Standbys in the rotation that had not replayed far enough when last checked.
    pub(crate) behind: Vec<&'a Node>,
    /// The fallback.
    pub(crate) primary: &'a Node,
}
