//! `AppState`: everything a request handler needs, cheap to clone (one `Arc`).
//! `AppState::start` prepares the database and starts the monitor.

pub mod failover;
pub mod input;
pub(crate) mod reads;
pub mod rebalance;
pub mod ticks;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use ecoshard_core::Layout;
use ecoshard_core::ShardLoad;
use ecoshard_core::wire::{ClusterMode, NodeCount, Stats};
use tokio::sync::{Semaphore, broadcast, watch};

use crate::cluster::Cluster;
use crate::cluster::topology::Topology;
use crate::routing::Routing;
use crate::service::failover::Failover;
use ecoshard_postgres::LocalCluster;

/// How to run the bridge.
#[derive(Clone, Debug)]
pub struct BridgeConfig {
    /// The nodes.
    pub topology: Topology,
    /// Connections per node.
    pub pool_size: usize,
    /// Standbys lagging more than this serve no eventual reads.
    pub max_lag_ms: u64,
    /// Stored as version 1 when the database has no layout yet.
    pub initial_layout: Layout,
    /// Directory of the built web page, if any.
    pub web_dir: Option<PathBuf>,
    /// Create the database when it does not exist.
    pub create_database: bool,
    /// API requests handled at once; more get 429.
    pub max_in_flight: usize,
    /// Event-stream clients at once; more get 429.
    pub max_event_clients: usize,
    /// Rows a rebalance moves per transaction.
    pub rebalance_batch: usize,
    /// The local cluster this bridge started: node stop/start and failover need it.
    pub local: Option<Arc<LocalCluster>>,
    /// Promote a standby when the primary's server is gone (local cluster only).
    pub auto_failover: bool,
    /// Host names served besides `localhost` and IP literals (`--allowed-host`).
    pub allowed_hosts: Vec<String>,
    /// The token state-changing requests need (`--token`), if any.
    pub token: Option<crate::http::Token>,
    /// Longest one node may take to answer one read (see
    /// [`crate::cluster::Cluster::read_timeout`]).
    pub read_timeout: std::time::Duration,
}

impl BridgeConfig {
    /// Defaults: 16 connections per node, 1 s lag bound, 1 s read deadline,
    /// ring over 3 shards, no page.
    pub fn new(topology: Topology) -> Self {
        BridgeConfig {
            topology,
            pool_size: 16,
            max_lag_ms: 1_000,
            initial_layout: Layout::with_count(ecoshard_core::StrategyKind::Ring, 3)
                .unwrap_or_else(|_| unreachable!("3 shards is a valid count")),
            web_dir: None,
            create_database: true,
            max_in_flight: 512,
            max_event_clients: 64,
            rebalance_batch: crate::service::rebalance::DEFAULT_BATCH_ROWS,
            local: None,
            auto_failover: false,
            allowed_hosts: Vec::new(),
            token: None,
            read_timeout: crate::cluster::DEFAULT_READ_TIMEOUT,
        }
    }
}

/// Why the bridge could not start.
#[derive(Debug)]
pub enum StartError {
    /// The primary could not be reached or refused.
    Primary(String),
    /// Preparing the schema failed.
    Schema(crate::db::schema::SchemaError),
    /// The stored or given layout is invalid.
    Layout(ecoshard_core::Error),
    /// The given layout is valid but not one the bridge applies to a database.
    Unsupported(&'static str),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Primary(why) => write!(f, "cannot use the primary: {why}"),
            StartError::Schema(error) => write!(f, "preparing the database: {error}"),
            StartError::Layout(error) => write!(f, "layout: {error}"),
            StartError::Unsupported(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for StartError {}

/// Shared state of the bridge.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cluster: Arc<Cluster>,
    routing: Routing,
    rebalance: crate::service::rebalance::Rebalancer,
    mode: ClusterMode,
    counters: Counters,
    ticks: broadcast::Sender<Arc<str>>,
    /// Set once the server is shutting down; long-lived streams end on it.
    closing: watch::Sender<bool>,
    latest_tick: RwLock<Option<Arc<str>>>,
    latest_stats: RwLock<Stats>,
    rows: RwLock<Vec<ShardLoad>>,
    bulk_permits: Semaphore,
    in_flight: Semaphore,
    event_clients: crate::http::EventClients,
    edge: crate::http::EdgeRules,
    web_dir: Option<PathBuf>,
    failover: Failover,
}

/// Counters since start.
#[derive(Debug, Default)]
pub struct Counters {
    /// Rows written.
    pub writes: AtomicU64,
    /// Reads that failed (no node could serve them).
    pub failed_reads: AtomicU64,
    /// Highest commit LSN this bridge has acknowledged.
    pub last_write_lsn: AtomicU64,
}

/// Bulk inserts running at once; more get 429.
pub const BULK_CONCURRENCY: usize = 2;

impl AppState {
    /// Connects, creates the database and schema when missing, loads the
    /// layout, runs a first health check and starts the monitor.
    pub async fn start(config: BridgeConfig) -> Result<Self, StartError> {
        config
            .initial_layout
            .validate()
            .map_err(StartError::Layout)?;
        if config.initial_layout.strategy == ecoshard_core::StrategyKind::BoundedLoad {
            return Err(StartError::Unsupported(
                crate::service::rebalance::BOUNDED_LOAD_REFUSAL,
            ));
        }
        if config.create_database {
            ensure_database(&config.topology).await?;
        }
        let cluster = Cluster::new(
            &config.topology,
            config.pool_size,
            config.max_lag_ms,
            config.read_timeout,
        );
        let mut client = cluster
            .primary()
            .pool
            .get()
            .await
            .map_err(|error| StartError::Primary(pool_error(&error)))?;
        let view = crate::db::schema::prepare(&mut client, &config.initial_layout)
            .await
            .map_err(StartError::Schema)?;
        let startup = crate::service::rebalance::startup(&mut client, &view).await?;
        drop(client);
        if view.layout != config.initial_layout {
            tracing::info!(
                "using the stored layout version {} ({} over {} shards)",
                view.version,
                view.layout.strategy,
                view.layout.shards.len()
            );
        }
        if view.layout.strategy == ecoshard_core::StrategyKind::BoundedLoad {
            tracing::warn!(
                "bounded-load bounds whole key sets; rows inserted one by one go to their ring owner"
            );
        }
        let (ticks, _) = broadcast::channel(16);
        let state = AppState {
            inner: Arc::new(Inner {
                cluster,
                routing: Routing::with_table(startup.table),
                rebalance: crate::service::rebalance::Rebalancer::new(
                    config.rebalance_batch,
                    startup.last_job,
                ),
                mode: config.topology.mode,
                counters: Counters::default(),
                ticks,
                closing: watch::Sender::new(false),
                latest_tick: RwLock::new(None),
                latest_stats: RwLock::new(Stats::default()),
                rows: RwLock::new(Vec::new()),
                bulk_permits: Semaphore::new(BULK_CONCURRENCY),
                in_flight: Semaphore::new(config.max_in_flight.max(1)),
                event_clients: crate::http::EventClients::new(config.max_event_clients),
                edge: crate::http::EdgeRules::new(&config.allowed_hosts, config.token),
                web_dir: config.web_dir,
                failover: Failover::new(config.local, config.auto_failover),
            }),
        };
        crate::cluster::monitor::check_nodes(state.cluster(), ticks::now_ms()).await;
        ticks::start(&state).await;
        if let Some(pending) = startup.pending {
            crate::service::rebalance::resume(&state, pending);
        }
        Ok(state)
    }

    /// The nodes.
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.inner.cluster
    }

    /// The routing table holder.
    pub fn routing(&self) -> &Routing {
        &self.inner.routing
    }

    /// The rebalance job, running or last.
    pub fn rebalancer(&self) -> &crate::service::rebalance::Rebalancer {
        &self.inner.rebalance
    }

    /// Local or external.
    pub fn mode(&self) -> ClusterMode {
        self.inner.mode
    }

    /// Counters.
    pub fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    /// Limits concurrent bulk inserts.
    pub fn bulk_permits(&self) -> &Semaphore {
        &self.inner.bulk_permits
    }

    /// Limits API requests in flight.
    pub fn in_flight(&self) -> &Semaphore {
        &self.inner.in_flight
    }

    /// The event stream's clients and their slots.
    pub fn event_clients(&self) -> &crate::http::EventClients {
        &self.inner.event_clients
    }

    /// Which hosts, origins and token requests need.
    pub(crate) fn edge(&self) -> &crate::http::EdgeRules {
        &self.inner.edge
    }

    /// Node actions and failover.
    pub fn failover(&self) -> &Failover {
        &self.inner.failover
    }

    /// Directory of the web page.
    pub fn web_dir(&self) -> Option<&PathBuf> {
        self.inner.web_dir.as_ref()
    }

    /// New subscriber to the stream's ticks (JSON).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.inner.ticks.subscribe()
    }

    /// Tells long-lived responses (the event stream) to end: the server is stopping.
    pub fn close_streams(&self) {
        self.inner.closing.send_replace(true);
    }

    /// Completes once [`AppState::close_streams`] was called.
    pub fn closing(&self) -> impl std::future::Future<Output = ()> + Send + use<> {
        let mut closing = self.inner.closing.subscribe();
        async move {
            let _ = closing.wait_for(|closing| *closing).await;
        }
    }

    /// The last tick sent, if any.
    pub fn latest_tick(&self) -> Option<Arc<str>> {
        self.inner
            .latest_tick
            .read()
            .ok()
            .and_then(|tick| tick.clone())
    }

    pub(crate) fn publish_tick(&self, json: Arc<str>, stats: Stats) {
        if let Ok(mut latest) = self.inner.latest_tick.write() {
            *latest = Some(Arc::clone(&json));
        }
        if let Ok(mut latest) = self.inner.latest_stats.write() {
            *latest = stats;
        }
        // No receivers is fine; slow receivers lag and skip, never block this.
        let _ = self.inner.ticks.send(json);
    }

    /// Counters as of now, with the rates and row counts of the last tick.
    pub fn stats(&self) -> Stats {
        let mut stats = self
            .inner
            .latest_stats
            .read()
            .map(|stats| stats.clone())
            .unwrap_or_default();
        stats.reads = self.reads_per_node();
        stats.writes = self.inner.counters.writes.load(Ordering::Relaxed);
        stats.failed_reads = self.inner.counters.failed_reads.load(Ordering::Relaxed);
        stats.rows = self.rows();
        stats
    }

    /// Reads served per node.
    pub fn reads_per_node(&self) -> Vec<NodeCount> {
        self.cluster()
            .nodes
            .iter()
            .map(|node| NodeCount {
                node: node.name().to_string(),
                count: node.reads.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Rows per shard as last counted.
    pub fn rows(&self) -> Vec<ShardLoad> {
        self.inner
            .rows
            .read()
            .map(|rows| rows.clone())
            .unwrap_or_default()
    }

    pub(crate) fn set_rows(&self, rows: Vec<ShardLoad>) {
        if let Ok(mut slot) = self.inner.rows.write() {
            *slot = rows;
        }
    }

    /// Records an acknowledged write at `lsn`.
    pub(crate) fn record_write(&self, rows: u64, lsn: u64) {
        self.inner
            .counters
            .writes
            .fetch_add(rows, Ordering::Relaxed);
        self.inner
            .counters
            .last_write_lsn
            .fetch_max(lsn, Ordering::Relaxed);
    }
}

/// Creates the database on the primary when it does not exist.
async fn ensure_database(topology: &Topology) -> Result<(), StartError> {
    let Some(primary) = topology.nodes.first() else {
        return Err(StartError::Primary("no primary given".into()));
    };
    match crate::db::schema::ensure_database(&primary.config).await {
        Ok(true) => {
            tracing::info!(
                "created database {}",
                primary.config.get_dbname().unwrap_or_default()
            );
            Ok(())
        }
        Ok(false) => Ok(()),
        Err(why) => Err(StartError::Primary(why)),
    }
}

/// A pool error in one line.
pub fn pool_error(error: &deadpool_postgres::PoolError) -> String {
    match error {
        deadpool_postgres::PoolError::Backend(error) => crate::db::describe(error),
        other => other.to_string(),
    }
}
