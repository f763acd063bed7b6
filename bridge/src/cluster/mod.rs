//! The nodes at run time: a connection pool each, their health and lag as
//! last checked, which one is primary (it changes with a failover), and the
//! choice of which node serves a read. Every connection taken from a pool
//! on the request path is taken within a deadline ([`checkout`]).

pub mod monitor;
pub mod topology;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use ecoshard_core::wire::{Consistency, LagSample, NodeRole, NodeStatus};
use tokio::time::Instant;
use tokio_postgres::NoTls;

use crate::cluster::topology::{NodeSpec, Topology};
use crate::routing::batch::{Batcher, Insert, Read};
use crate::service::failover::WRITE_TIMEOUT;

/// Default of [`Cluster::read_timeout`]: longest one node may take to
/// answer one read (checkout and statements together).
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(1);

/// One node: its pools and what the monitor last saw.
#[derive(Debug)]
pub struct Node {
    /// How to reach it.
    pub spec: NodeSpec,
    /// Connections for requests.
    pub pool: Pool,
    /// One connection for health checks, so a busy pool never looks like a dead node.
    pub monitor_pool: Pool,
    up: AtomicBool,
    /// Whether it is the primary now.
    primary: AtomicBool,
    /// In the read rotation: up, a standby, streaming, and within the lag bound.
    eligible: AtomicBool,
    /// Last replay LSN seen (standbys) or WAL write LSN (primary).
    lsn: AtomicU64,
    lag: RwLock<Option<LagSample>>,
    /// Reads this node served.
    pub reads: AtomicU64,
    /// Reads by key, batched.
    pub read_batches: Batcher<Read>,
    /// Inserts, batched (used while the node is primary).
    pub insert_batches: Batcher<Insert>,
}

impl Node {
    fn new(spec: NodeSpec, pool_size: usize, read_timeout: Duration) -> Self {
        let pool = make_pool(&spec, pool_size, Duration::from_secs(2));
        Node {
            read_batches: Batcher::new(pool.clone(), read_timeout),
            insert_batches: Batcher::new(pool.clone(), WRITE_TIMEOUT),
            pool,
            monitor_pool: make_pool(&spec, 1, Duration::from_millis(800)),
            primary: AtomicBool::new(spec.role == NodeRole::Primary),
            spec,
            up: AtomicBool::new(false),
            eligible: AtomicBool::new(false),
            lsn: AtomicU64::new(0),
            lag: RwLock::new(None),
            reads: AtomicU64::new(0),
        }
    }

    /// Node name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Primary or standby, now.
    pub fn role(&self) -> NodeRole {
        if self.primary.load(Ordering::SeqCst) {
            NodeRole::Primary
        } else {
            NodeRole::Standby
        }
    }

    /// Whether it is the primary now.
    pub fn is_primary(&self) -> bool {
        self.primary.load(Ordering::SeqCst)
    }

    /// Whether it answered its last check (and no request failed on it since).
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Takes it out of the read rotation until its next good health check;
    /// whether it was up until now.
    pub fn mark_down(&self) -> bool {
        self.eligible.store(false, Ordering::Relaxed);
        self.up.swap(false, Ordering::Relaxed)
    }

    /// Last LSN seen: replay LSN of a standby, WAL write LSN of the primary.
    pub fn lsn(&self) -> u64 {
        self.lsn.load(Ordering::Relaxed)
    }

    /// Replay lag in ms as last reported (`None` when PostgreSQL reports NULL);
    /// 0 for the primary.
    pub fn lag_ms(&self) -> Option<f64> {
        if self.is_primary() {
            return Some(0.0);
        }
        self.lag
            .read()
            .ok()
            .and_then(|lag| lag.as_ref().and_then(|lag| lag.replay_lag_ms))
    }

    /// Its status for `/api/cluster` and the stream.
    pub fn status(&self) -> NodeStatus {
        NodeStatus {
            name: self.spec.name.clone(),
            role: self.role(),
            addr: self.spec.addr.clone(),
            up: self.is_up(),
            lag: self.lag.read().ok().and_then(|lag| lag.clone()),
        }
    }

    /// Records a health check's outcome.
    pub(crate) fn record_check(
        &self,
        up: bool,
        lsn: Option<u64>,
        lag: Option<LagSample>,
        eligible: bool,
    ) {
        self.up.store(up, Ordering::Relaxed);
        if let Some(lsn) = lsn {
            self.lsn.store(lsn, Ordering::Relaxed);
        }
        if let Ok(mut slot) = self.lag.write() {
            *slot = lag;
        }
        self.eligible.store(up && eligible, Ordering::Relaxed);
    }
}

/// The cluster: the primary and its standbys.
#[derive(Debug)]
pub struct Cluster {
    /// In the topology's order (`primary`, `standby-1`, …), whatever their roles.
    pub nodes: Vec<Node>,
    /// Index of the primary in `nodes`.
    primary: AtomicUsize,
    next_standby: AtomicUsize,
    /// Standbys further behind than this (ms) serve no eventual reads.
    pub max_lag_ms: f64,
    /// Longest one node may take to answer one read; past it the read goes
    /// to another node (or, strong, answers 503).
    pub read_timeout: Duration,
}

impl Cluster {
    /// Pools for every node (connections open lazily).
    pub fn new(
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
            nodes,
            primary: AtomicUsize::new(primary),
            next_standby: AtomicUsize::new(0),
            max_lag_ms: max_lag_ms as f64,
            read_timeout,
        })
    }

    /// The primary now.
    pub fn primary(&self) -> &Node {
        &self.nodes[self.primary.load(Ordering::SeqCst)]
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

    /// A node by name.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|node| node.name() == name)
    }

    /// Makes `name` the primary (after a failover): writes go to it from now
    /// on; the old primary is a standby, out of the read rotation until its
    /// health checks say it is one. `false` when there is no such node.
    pub fn set_primary(&self, name: &str) -> bool {
        let Some(index) = self.nodes.iter().position(|node| node.name() == name) else {
            return false;
        };
        for (other, node) in self.nodes.iter().enumerate() {
            node.primary.store(other == index, Ordering::SeqCst);
            node.eligible.store(false, Ordering::SeqCst);
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
    pub fn read_candidates(&self, consistency: Consistency, after_lsn: u64) -> ReadCandidates<'_> {
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
pub struct ReadCandidates<'a> {
    /// Standbys that may serve it now.
    pub ready: Vec<&'a Node>,
    /// Standbys in the rotation that had not replayed far enough when last checked.
    pub behind: Vec<&'a Node>,
    /// The fallback.
    pub primary: &'a Node,
}

/// Why no connection came out of a pool.
#[derive(Debug)]
pub enum CheckoutError {
    /// None before the deadline (the node may be hung).
    TimedOut,
    /// The pool's own error.
    Pool(PoolError),
}

impl CheckoutError {
    /// Whether it says the node itself is gone or silent, rather than the
    /// pool being busy.
    pub fn is_node(&self) -> bool {
        match self {
            CheckoutError::TimedOut => true,
            CheckoutError::Pool(error) => crate::db::pool_failure_is_node(error),
        }
    }
}

impl CheckoutError {
    /// For a write: nothing was sent, so nothing was written.
    pub fn not_taken(&self) -> crate::db::WriteFailure {
        crate::db::WriteFailure::NotTaken {
            unavailable: self.is_node(),
            message: self.to_string(),
        }
    }
}

impl std::fmt::Display for CheckoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CheckoutError::TimedOut => f.write_str("no connection before the deadline"),
            CheckoutError::Pool(error) => f.write_str(&crate::service::pool_error(error)),
        }
    }
}

/// A connection from `pool` by `deadline`.
pub async fn checkout(pool: &Pool, deadline: Instant) -> Result<Object, CheckoutError> {
    match tokio::time::timeout_at(deadline, pool.get()).await {
        Ok(got) => got.map_err(CheckoutError::Pool),
        Err(_) => Err(CheckoutError::TimedOut),
    }
}

/// Closes a connection whose statement ran past its deadline instead of
/// handing it back to the pool, where the next request would queue behind
/// the statement still outstanding (on a hung node, for ever).
pub fn discard(client: Object) {
    drop(Object::take(client));
}

fn make_pool(spec: &NodeSpec, size: usize, wait: Duration) -> Pool {
    let manager = Manager::from_config(
        spec.config.clone(),
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    // Building fails only without a runtime or with a zero size; neither happens here.
    Pool::builder(manager)
        .max_size(size.max(1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(wait))
        .create_timeout(Some(Duration::from_secs(2)))
        .recycle_timeout(Some(Duration::from_secs(1)))
        .build()
        .unwrap_or_else(|error| unreachable!("pool settings are valid: {error}"))
}
