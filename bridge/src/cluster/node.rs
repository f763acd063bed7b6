//! One node at run time: its connection pools and batch queues, and its
//! health, role and lag as last checked.

use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::Pool;
use ecoshard_core::wire::{LagSample, NodeRole, NodeStatus};

use super::WRITE_TIMEOUT;
use super::topology::NodeSpec;
use crate::db::make_pool;
use crate::routing::batch::{Batcher, Insert, Read};

/// One node: its pools and what the monitor last saw.
#[derive(Debug)]
pub struct Node {
    /// How to reach it.
    pub(crate) spec: NodeSpec,
    /// Connections for requests.
    pub pool: Pool,
    /// One connection for health checks, so a busy pool never looks like a dead node.
    pub(crate) monitor_pool: Pool,
    pub(super) up: AtomicBool,
    /// Whether it is the primary now.
    pub(super) primary: AtomicBool,
    /// In the read rotation: up, a standby, streaming, and within the lag bound.
    pub(super) eligible: AtomicBool,
    /// Not the primary, yet its last check found it out of recovery (a
    /// promotion another process made, until this bridge follows it).
    pub(super) answers_as_primary: AtomicBool,
    /// Last replay LSN seen (standbys) or WAL write LSN (primary).
    lsn: AtomicU64,
    pub(super) lag: RwLock<Option<LagSample>>,
    /// Reads this node served.
    pub(crate) reads: AtomicU64,
    /// Reads by key, batched.
    pub read_batches: Batcher<Read>,
    /// Inserts, batched (used while the node is primary).
    pub insert_batches: Batcher<Insert>,
}

impl Node {
    pub(super) fn new(spec: NodeSpec, pool_size: usize, read_timeout: Duration) -> Self {
        let pool = make_pool(&spec.config, pool_size, Duration::from_secs(2));
        Node {
            read_batches: Batcher::new(pool.clone(), read_timeout),
            insert_batches: Batcher::new(pool.clone(), WRITE_TIMEOUT),
            pool,
            monitor_pool: make_pool(&spec.config, 1, Duration::from_millis(800)),
            primary: AtomicBool::new(spec.role == NodeRole::Primary),
            spec,
            up: AtomicBool::new(false),
            eligible: AtomicBool::new(false),
            answers_as_primary: AtomicBool::new(false),
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
    pub(crate) fn role(&self) -> NodeRole {
        if self.primary.load(Ordering::SeqCst) {
            NodeRole::Primary
        } else {
            NodeRole::Standby
        }
    }

    /// Whether it is the primary now.
    pub(crate) fn is_primary(&self) -> bool {
        self.primary.load(Ordering::SeqCst)
    }

    /// Whether it answered its last check (and no request failed on it since).
    pub(crate) fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Takes it out of the read rotation until its next good health check;
    /// whether it was up until now.
    pub(crate) fn mark_down(&self) -> bool {
        self.eligible.store(false, Ordering::Relaxed);
        self.up.swap(false, Ordering::Relaxed)
    }

    /// Last LSN seen: replay LSN of a standby, WAL write LSN of the primary.
    pub(crate) fn lsn(&self) -> u64 {
        self.lsn.load(Ordering::Relaxed)
    }

    /// Replay lag in ms as last reported (`None` when PostgreSQL reports NULL);
    /// 0 for the primary.
    pub(crate) fn lag_ms(&self) -> Option<f64> {
        if self.is_primary() {
            return Some(0.0);
        }
        self.lag
            .read()
            .ok()
            .and_then(|lag| lag.as_ref().and_then(|lag| lag.replay_lag_ms))
    }

    /// Its status for `/api/cluster` and the stream.
    pub(crate) fn status(&self) -> NodeStatus {
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
