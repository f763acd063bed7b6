//! The service: what the bridge does, whoever asks — reads, writes,
//! rebalances, failover, node actions, the live ticks — over the routing
//! table, the cluster's nodes and the database. Every operation answers a
//! domain [`Error`]; nothing here knows HTTP. [`Service`] is cheap to
//! clone (one `Arc`); [`Service::start`] prepares the database and starts
//! the ticks.

pub(crate) mod bulk;
pub(crate) mod coordination;
pub(crate) mod error;
pub(crate) mod failover;
pub(crate) mod generate;
pub(crate) mod input;
pub(crate) mod metrics;
pub(crate) mod nodes;
pub(crate) mod reads;
pub mod rebalance;
pub(crate) mod sample;
pub(crate) mod ticks;
pub mod twophase;
pub(crate) mod verify;
pub(crate) mod writes;

pub use coordination::Identity;
pub use error::TwoPhaseError;
pub(crate) use error::{Error, LayoutRefusal, PrimaryDown};
pub use generate::deadline_for as generate_deadline;
pub use verify::VERIFY_LIMIT;
// What configures the service, for the layers above.
pub(crate) use crate::cluster::topology::Topology;
pub use crate::cluster::{Control, DEFAULT_READ_TIMEOUT, NodeControl};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use ecoshard_core::Layout;
use ecoshard_core::ShardLoad;
use ecoshard_core::wire::{
    ClusterMode, ClusterNodes, ClusterReads, ClusterView, LayoutView, NodeCount, Stats,
};
use tokio::sync::{Semaphore, broadcast};

use crate::cluster::{Cluster, Clusters, DEFAULT_CLUSTER, Node};
use crate::routing::Routing;
use crate::service::failover::Failover;

/// How to run the service.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// The nodes.
    pub topology: Topology,
    /// Connections per node.
    pub pool_size: usize,
    /// Standbys lagging more than this serve no eventual reads.
    pub max_lag_ms: u64,
    /// Stored as version 1 when the database has no layout yet.
    pub initial_layout: Layout,
    /// Create the database when it does not exist.
    pub create_database: bool,
    /// Rows a rebalance moves per transaction.
    pub rebalance_batch: usize,
    /// The cluster's node control, when the bridge runs its servers: node
    /// stop/start and failover need it.
    pub control: Option<Control>,
    /// Promote a standby when the primary's server is gone (needs `control`).
    pub auto_failover: bool,
    /// Longest one node may take to answer one read (see
    /// [`crate::cluster::Cluster::read_timeout`]).
    pub read_timeout: std::time::Duration,
    /// The clusters beside `c1` (the one `topology` and `control` give):
    /// monitored, failed over and controlled like it; no shard is on them.
    pub other_clusters: Vec<ClusterSpec>,
    /// This bridge's name and address among the bridges of the catalog.
    pub identity: Identity,
}

/// A cluster beside the default one: its name, nodes and node control.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    /// `c2`, `c3`, …
    pub name: String,
    /// Its nodes.
    pub topology: Topology,
    /// Its node control, when the bridge runs its servers.
    pub control: Option<Control>,
}

/// Why the bridge could not start.
#[derive(Debug)]
pub enum StartError {
    /// The primary could not be reached or refused.
    Primary(String),
    /// Preparing the schema failed.
    Schema(crate::db::schema::SchemaError),
    /// The given layout is not one the database takes.
    Layout(LayoutRefusal),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Primary(why) => write!(f, "cannot use the primary: {why}"),
            StartError::Schema(error) => write!(f, "preparing the database: {error}"),
            StartError::Layout(refusal) => refusal.fmt(f),
        }
    }
}

impl std::error::Error for StartError {}

/// The service, shared.
#[derive(Clone, Debug)]
pub struct Service {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    clusters: Clusters,
    routing: Routing,
    rebalance: crate::service::rebalance::Rebalancer,
    mode: ClusterMode,
    counters: Counters,
    ticks: broadcast::Sender<Arc<str>>,
    latest_tick: RwLock<Option<Arc<str>>>,
    latest_stats: RwLock<Stats>,
    rows: RwLock<Vec<ShardLoad>>,
    bulk_permits: Semaphore,
    generate_permit: Semaphore,
    /// The one verification that may run.
    verify_permit: Semaphore,
    /// One per cluster, in the order of [`Clusters::all`].
    failovers: Vec<Failover>,
    /// This bridge among the others of the catalog.
    coordination: coordination::Coordination,
}

/// Counters since start.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Rows written.
    pub(crate) writes: AtomicU64,
    /// Reads that failed (no node could serve them).
    pub(crate) failed_reads: AtomicU64,
}

/// The clusters' run-time state from the configuration: `c1`, the others,
/// and one failover policy each, in that order.
fn build_clusters(config: &ServiceConfig) -> (Arc<Cluster>, Vec<Arc<Cluster>>, Vec<Failover>) {
    let new_cluster = |name: &str, topology: &Topology| {
        Cluster::new(
            name,
            topology,
            config.pool_size,
            config.max_lag_ms,
            config.read_timeout,
        )
    };
    let cluster = new_cluster(DEFAULT_CLUSTER, &config.topology);
    let others = config
        .other_clusters
        .iter()
        .map(|spec| new_cluster(&spec.name, &spec.topology))
        .collect();
    let mut failovers = vec![Failover::new(config.control.clone(), config.auto_failover)];
    failovers.extend(
        config
            .other_clusters
            .iter()
            .map(|spec| Failover::new(spec.control.clone(), config.auto_failover)),
    );
    (cluster, others, failovers)
}

/// Bulk inserts running at once; more get 429.
pub(crate) const BULK_CONCURRENCY: usize = 2;

impl Service {
    /// Connects, creates the database and schema when missing, loads the
    /// layout, runs a first health check and starts the monitor.
    pub(crate) async fn start(config: ServiceConfig) -> Result<Self, StartError> {
        rebalance::check_database_layout(&config.initial_layout).map_err(StartError::Layout)?;
        let mut names = vec![DEFAULT_CLUSTER];
        names.extend(config.other_clusters.iter().map(|spec| spec.name.as_str()));
        let clusters = &names;
        let initial_layout =
            rebalance::stored_form(&config.initial_layout, clusters).map_err(StartError::Layout)?;
        if config.create_database {
            ensure_databases(&config).await?;
        }
        let (cluster, others, failovers) = build_clusters(&config);
        let mut client = cluster
            .primary()
            .pool
            .get()
            .await
            .map_err(|error| StartError::Primary(crate::db::describe_pool(&error)))?;
        let view = crate::db::schema::prepare(&mut client, &initial_layout)
            .await
            .map_err(StartError::Schema)?;
        let view = match rebalance::in_force(&view.layout, clusters) {
            Ok(layout) => LayoutView { layout, ..view },
            Err(refusal) => {
                return Err(StartError::Schema(
                    crate::db::schema::SchemaError::BadStoredLayout(format!(
                        "the stored layout version {}: {refusal}",
                        view.version
                    )),
                ));
            }
        };
        let startup = crate::service::rebalance::startup(&mut client, &view).await?;
        drop(client);
        let clusters = Clusters::new(cluster, others);
        ensure_shard_schemas(&clusters, &view.layout).await?;
        if view.layout != initial_layout {
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
        let state = Service {
            inner: Arc::new(Inner {
                clusters,
                routing: Routing::with_table(startup.table),
                rebalance: crate::service::rebalance::Rebalancer::new(
                    config.rebalance_batch,
                    startup.last_job,
                ),
                mode: config.topology.mode,
                counters: Counters::default(),
                ticks,
                latest_tick: RwLock::new(None),
                latest_stats: RwLock::new(Stats::default()),
                rows: RwLock::new(Vec::new()),
                bulk_permits: Semaphore::new(BULK_CONCURRENCY),
                generate_permit: Semaphore::new(1),
                verify_permit: Semaphore::new(1),
                failovers,
                coordination: coordination::Coordination::new(config.identity.clone()),
            }),
        };
        ticks::check_every_cluster(&state).await;
        ticks::start(&state).await;
        twophase::start(&state).await;
        if let Some(pending) = startup.pending {
            rebalance::resume(&state, pending).await;
        }
        // Once a resumed job holds its slot: its routing is this bridge's.
        coordination::start(&state).await;
        Ok(state)
    }

    /// The default cluster's nodes (`c1`: the catalog is on it).
    pub fn cluster(&self) -> &Arc<Cluster> {
        self.inner.clusters.default_cluster()
    }

    /// Every cluster, `c1` first.
    pub fn clusters(&self) -> &Clusters {
        &self.inner.clusters
    }

    /// The node actions and failovers of the `index`-th cluster of
    /// [`Clusters::all`].
    pub(crate) fn failover_of(&self, index: usize) -> &Failover {
        &self.inner.failovers[index]
    }

    /// This bridge among the others of the catalog.
    pub(crate) fn coordination(&self) -> &coordination::Coordination {
        &self.inner.coordination
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
    pub(crate) fn mode(&self) -> ClusterMode {
        self.inner.mode
    }

    /// Counters.
    pub(crate) fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    /// Limits concurrent bulk inserts.
    pub(crate) fn bulk_permits(&self) -> &Semaphore {
        &self.inner.bulk_permits
    }

    /// The one data-set generation that may run.
    pub(crate) fn generate_permit(&self) -> &Semaphore {
        &self.inner.generate_permit
    }

    /// The one verification that may run.
    pub(crate) fn verify_permit(&self) -> &Semaphore {
        &self.inner.verify_permit
    }

    /// Verifies the database against the layout in force and its
    /// placement, on every cluster (see [`verify`]); refused while a
    /// rebalance job runs.
    pub(crate) async fn verify(&self) -> Result<ecoshard_core::wire::VerifyReport, Error> {
        verify::verify(self, None).await
    }

    /// [`Service::verify`] for rebalance job `job` itself, once its routing
    /// is by the new layout alone: its check before it drops a source.
    pub(crate) async fn verify_before_cleanup(
        &self,
        job: u64,
    ) -> Result<ecoshard_core::wire::VerifyReport, Error> {
        verify::verify(self, Some(job)).await
    }

    /// Whether a data set is being generated now.
    pub(crate) fn generating(&self) -> bool {
        self.inner.generate_permit.available_permits() == 0
    }

    /// Node actions and failover of the default cluster.
    pub(crate) fn failover(&self) -> &Failover {
        &self.inner.failovers[0]
    }

    /// New subscriber to the stream's ticks (JSON).
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.inner.ticks.subscribe()
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

    /// The nodes with their health and lag, the layout in force and the
    /// failover's settings and last promotion.
    pub(crate) fn cluster_view(&self) -> ClusterView {
        ClusterView {
            mode: self.mode(),
            nodes: self.cluster().nodes.iter().map(Node::status).collect(),
            layout: self.layout_view(),
            failover: self.failover().view(),
            clusters: self.clusters_nodes(),
            bridges: self.coordination().views(),
        }
    }

    /// Every cluster with its nodes and failover, when there are several
    /// (empty with one: the view is then what it always was).
    pub(crate) fn clusters_nodes(&self) -> Vec<ClusterNodes> {
        if !self.clusters().several() {
            return Vec::new();
        }
        self.clusters()
            .all()
            .iter()
            .enumerate()
            .map(|(index, cluster)| ClusterNodes {
                name: cluster.name().to_string(),
                nodes: cluster.nodes.iter().map(Node::status).collect(),
                failover: self.failover_of(index).view(),
            })
            .collect()
    }

    /// The layout in force, its version and each shard's cluster.
    pub(crate) fn layout_view(&self) -> LayoutView {
        self.placed_view(self.routing().table().view())
    }

    /// `view` with each shard's cluster (`placement`), over this bridge's
    /// clusters. A layout in force always places (it was checked when
    /// applied, or at start-up).
    pub(crate) fn placed_view(&self, mut view: LayoutView) -> LayoutView {
        view.placement = crate::routing::clusters_of(&view.layout);
        view
    }

    /// Counters as of now, with the rates and row counts of the last tick.
    pub(crate) fn stats(&self) -> Stats {
        let mut stats = self
            .inner
            .latest_stats
            .read()
            .map(|stats| stats.clone())
            .unwrap_or_default();
        stats.reads = self.reads_per_node();
        stats.clusters = self.reads_per_cluster();
        stats.writes = self.inner.counters.writes.load(Ordering::Relaxed);
        stats.failed_reads = self.inner.counters.failed_reads.load(Ordering::Relaxed);
        stats.rows = self.rows();
        stats
    }

    /// Reads served per node of the first cluster.
    pub(crate) fn reads_per_node(&self) -> Vec<NodeCount> {
        reads_of(self.cluster())
    }

    /// With several clusters, each cluster's reads per node (empty with
    /// one: `reads_per_node` is then every read).
    pub(crate) fn reads_per_cluster(&self) -> Vec<ClusterReads> {
        if !self.clusters().several() {
            return Vec::new();
        }
        self.clusters()
            .all()
            .iter()
            .map(|cluster| ClusterReads {
                cluster: cluster.name().to_string(),
                reads: reads_of(cluster),
            })
            .collect()
    }

    /// Rows per shard as last counted.
    pub(crate) fn rows(&self) -> Vec<ShardLoad> {
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

    /// Records an acknowledged write at `lsn` on `cluster`.
    pub(crate) fn record_write(&self, rows: u64, cluster: &Cluster, lsn: u64) {
        self.inner
            .counters
            .writes
            .fetch_add(rows, Ordering::Relaxed);
        cluster.last_write_lsn.fetch_max(lsn, Ordering::Relaxed);
    }

    /// The cluster called `name`, which holds a shard of the layout in
    /// force (every layout in force was checked against the clusters).
    pub(crate) fn cluster_named(&self, name: &str) -> Result<&Arc<Cluster>, Error> {
        self.clusters().get(name).ok_or_else(|| {
            Error::internal(
                "routing",
                format!("a shard is on {name}, which this bridge does not operate"),
            )
        })
    }

    /// `cluster`'s name for answers: `Some` when there are several clusters
    /// (with one, answers carry no cluster, as they always did).
    pub(crate) fn answer_cluster(&self, cluster: &Cluster) -> Option<String> {
        self.clusters()
            .several()
            .then(|| cluster.name().to_string())
    }
}

/// Creates on each cluster's primary the schemas of the shards of `layout`
/// it holds, and only those.
async fn ensure_shard_schemas(clusters: &Clusters, layout: &Layout) -> Result<(), StartError> {
    for cluster in clusters.all() {
        let on = crate::routing::layout_on(layout, cluster.name());
        let mut client = cluster.primary().pool.get().await.map_err(|error| {
            StartError::Primary(format!(
                "{}: {}",
                cluster.name(),
                crate::db::describe_pool(&error)
            ))
        })?;
        crate::db::jobs::create_shards(&mut client, &on)
            .await
            .map_err(StartError::Schema)?;
    }
    Ok(())
}

/// Creates the database on every cluster's primary when it does not exist:
/// each holds the schemas of the shards placed on it (`c1` the catalog too).
async fn ensure_databases(config: &ServiceConfig) -> Result<(), StartError> {
    ensure_database(&config.topology).await?;
    for other in &config.other_clusters {
        ensure_database(&other.topology)
            .await
            .map_err(|error| StartError::Primary(format!("{}: {error}", other.name)))?;
    }
    Ok(())
}

/// Creates the database on the primary when it does not exist (the node
/// whose role is primary now: after a failover, not the first one).
async fn ensure_database(topology: &Topology) -> Result<(), StartError> {
    let primary = topology
        .nodes
        .iter()
        .find(|node| node.role == ecoshard_core::wire::NodeRole::Primary)
        .or(topology.nodes.first());
    let Some(primary) = primary else {
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

/// Reads served per node of `cluster`, named within it (rates are the
/// ticks' to fill in).
pub(crate) fn reads_of(cluster: &Cluster) -> Vec<NodeCount> {
    cluster
        .nodes
        .iter()
        .map(|node| NodeCount {
            node: node.name().to_string(),
            count: node.reads.load(Ordering::Relaxed),
            per_sec: 0.0,
        })
        .collect()
}
