//! What every request handler gets: the service, and the HTTP edge's own
//! state (its rules, the requests in flight, the event stream's clients,
//! the page's directory, whether the server is stopping); and how the whole
//! bridge is configured and started.

use std::path::PathBuf;
use std::sync::Arc;

use axum::http::HeaderValue;
use ecoshard_core::Layout;
use tokio::sync::{Semaphore, watch};

use super::events::EventClients;
use super::guard::{EdgeRules, Token};
use super::metrics::HttpMetrics;
use crate::service::{
    ClusterSpec, Control, Identity, Service, ServiceConfig, StartError, Topology,
};

/// How to run the bridge: its service and its HTTP edge.
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
    /// The cluster's node control, when the bridge runs its servers: node
    /// stop/start and failover need it.
    pub control: Option<Control>,
    /// Promote a standby when the primary's server is gone (needs `control`).
    pub auto_failover: bool,
    /// Host names served besides `localhost` and IP literals (`--allowed-host`).
    pub allowed_hosts: Vec<String>,
    /// The token state-changing requests need (`--token`), if any.
    pub token: Option<Token>,
    /// Longest one node may take to answer one read (see
    /// `Cluster::read_timeout`).
    pub read_timeout: std::time::Duration,
    /// The clusters beside `c1` (`topology`, `control`): monitored, failed
    /// over and controlled like it; no shard is on them yet.
    pub other_clusters: Vec<ClusterSpec>,
    /// This bridge's name and address among the bridges of the catalog
    /// (`--name`, `--advertise`).
    pub identity: Identity,
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
            control: None,
            auto_failover: false,
            allowed_hosts: Vec::new(),
            token: None,
            read_timeout: crate::service::DEFAULT_READ_TIMEOUT,
            other_clusters: Vec::new(),
            identity: default_identity(),
        }
    }

    /// The service's part.
    fn service(&self) -> ServiceConfig {
        ServiceConfig {
            topology: self.topology.clone(),
            pool_size: self.pool_size,
            max_lag_ms: self.max_lag_ms,
            initial_layout: self.initial_layout.clone(),
            create_database: self.create_database,
            rebalance_batch: self.rebalance_batch,
            control: self.control.clone(),
            auto_failover: self.auto_failover,
            read_timeout: self.read_timeout,
            other_clusters: self.other_clusters.clone(),
            identity: self.identity.clone(),
        }
    }
}

/// A name no other bridge of this process or machine has:
/// `<hostname>:<pid>-<n>`, its address unknown until it listens.
fn default_identity() -> Identity {
    static MADE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let made = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("{}:{}-{made}", hostname(), std::process::id());
    Identity {
        address: name.clone(),
        name,
    }
}

/// This machine's host name (`localhost` when it cannot be read).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The bridge's state, as every handler gets it: cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    service: Service,
    edge: Arc<Edge>,
}

#[derive(Debug)]
struct Edge {
    rules: EdgeRules,
    in_flight: Semaphore,
    event_clients: EventClients,
    web_dir: Option<PathBuf>,
    /// Set once the server is stopping; long-lived streams end on it.
    closing: watch::Sender<bool>,
    /// Requests counted for `GET /metrics`.
    metrics: HttpMetrics,
    /// `X-Ecoshard-Bridge`'s value: the bridge's name.
    name: Option<HeaderValue>,
}

impl AppState {
    /// Starts the service (see [`Service::start`]) and the edge around it.
    pub async fn start(config: BridgeConfig) -> Result<Self, StartError> {
        let service = Service::start(config.service()).await?;
        Ok(AppState {
            service,
            edge: Arc::new(Edge {
                rules: EdgeRules::new(&config.allowed_hosts, config.token),
                in_flight: Semaphore::new(config.max_in_flight.max(1)),
                event_clients: EventClients::new(config.max_event_clients),
                web_dir: config.web_dir,
                closing: watch::Sender::new(false),
                metrics: HttpMetrics::default(),
                name: header_value(&config.identity.name),
            }),
        })
    }

    /// The service.
    pub fn service(&self) -> &Service {
        &self.service
    }

    /// Which hosts, origins and token requests need.
    pub(crate) fn rules(&self) -> &EdgeRules {
        &self.edge.rules
    }

    /// Limits API requests in flight.
    pub(crate) fn in_flight(&self) -> &Semaphore {
        &self.edge.in_flight
    }

    /// The event stream's clients and their slots.
    pub fn event_clients(&self) -> &EventClients {
        &self.edge.event_clients
    }

    /// Directory of the web page.
    pub(crate) fn web_dir(&self) -> Option<&PathBuf> {
        self.edge.web_dir.as_ref()
    }

    /// The bridge's name as `X-Ecoshard-Bridge` carries it, if it has one.
    pub(crate) fn name_header(&self) -> Option<&HeaderValue> {
        self.edge.name.as_ref()
    }

    /// The requests counted for `GET /metrics`.
    pub(crate) fn http_metrics(&self) -> &HttpMetrics {
        &self.edge.metrics
    }

    /// Tells long-lived responses (the event stream) to end: the server is
    /// stopping.
    pub(crate) fn close_streams(&self) {
        self.edge.closing.send_replace(true);
    }

    /// Completes once [`AppState::close_streams`] was called.
    pub(crate) fn closing(&self) -> impl std::future::Future<Output = ()> + Send + use<> {
        let mut closing = self.edge.closing.subscribe();
        async move {
            let _ = closing.wait_for(|closing| *closing).await;
        }
    }
}

/// `name` as a header value; `None`, with a warning, when it cannot be one.
fn header_value(name: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(name)
        .inspect_err(|_| {
            tracing::warn!("the bridge's name {name:?} cannot be sent as X-Ecoshard-Bridge")
        })
        .ok()
}
