//! Shared by the bridge's behaviour tests: real local clusters (the one a
//! test binary shares, or one of a test's own, or several side by side;
//! stopped and deleted by their watchdogs when the binary ends, however it
//! ends), a bridge on a database
//! per test, request helpers, conditions polled until they hold, and a read
//! load that runs until it is told to stop.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use ecoshard_bridge::cluster::Control;
use ecoshard_bridge::{AppState, BridgeConfig, ClusterOptions, LocalCluster, Topology};
use ecoshard_core::wire::{ApiErrorBody, ClusterView};
use ecoshard_core::{Layout, StrategyKind};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

pub mod balancer;
pub mod blocking;
pub mod direct;
pub mod random;

pub use blocking::{ANSWER_WITHIN, free_ports};

/// Tests that stop nodes hold this for writing; every other test for reading.
pub static NODES: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// The longest wait for a condition that must come true: only a hang reaches it.
pub const LIMIT: Duration = Duration::from_secs(60);

/// A cluster of its own, on the first free ports at or above `base_port`
/// (so binaries run one after another never collide), in
/// `ecoshard-test-NAME-PID` of the temporary directory.
pub fn start_cluster(name: &str, base_port: u16, sync_replication: bool) -> Arc<LocalCluster> {
    let port = free_ports(base_port, 3);
    let dir = std::env::temp_dir().join(format!("ecoshard-test-{name}-{}", std::process::id()));
    let mut options = ClusterOptions::new(&dir, port);
    options.remove_on_exit = true;
    options.sync_replication = sync_replication;
    Arc::new(
        LocalCluster::start(&options)
            .unwrap_or_else(|error| panic!("starting the {name} test cluster: {error}")),
    )
}

/// The cluster the tests of one binary share, started on first use.
pub struct SharedCluster {
    name: &'static str,
    base_port: u16,
    sync_replication: bool,
    started: OnceLock<Arc<LocalCluster>>,
}

impl SharedCluster {
    /// Named `name`, on ports from `base_port` (see [`start_cluster`]).
    pub const fn new(name: &'static str, base_port: u16, sync_replication: bool) -> Self {
        SharedCluster {
            name,
            base_port,
            sync_replication,
            started: OnceLock::new(),
        }
    }

    /// The cluster, started now if no test has used it yet.
    pub fn get(&self) -> Arc<LocalCluster> {
        let started = self
            .started
            .get_or_init(|| start_cluster(self.name, self.base_port, self.sync_replication));
        Arc::clone(started)
    }
}

/// Clusters of its own: `count` clusters (`c1`, `c2`, …) of `standbys`
/// standbys each, on the first free port blocks at or above `base_port`, in
/// `ecoshard-test-NAME-PID` of the temporary directory; `c1` first.
pub fn start_clusters(
    name: &str,
    base_port: u16,
    count: usize,
    standbys: usize,
) -> Vec<Arc<LocalCluster>> {
    let span = (count as u16 - 1) * ecoshard_postgres::PORT_BLOCK + standbys as u16 + 1;
    let port = free_ports(base_port, span);
    let dir = std::env::temp_dir().join(format!("ecoshard-test-{name}-{}", std::process::id()));
    let mut options = ClusterOptions::new(&dir, port);
    options.standbys = standbys;
    options.remove_on_exit = true;
    ecoshard_postgres::LocalClusters::start(&options, count)
        .unwrap_or_else(|error| panic!("starting the {name} test clusters: {error}"))
        .into_clusters()
        .into_iter()
        .map(Arc::new)
        .collect()
}

/// The clusters the tests of one binary share, started on first use.
pub struct SharedClusters {
    name: &'static str,
    base_port: u16,
    count: usize,
    standbys: usize,
    started: OnceLock<Vec<Arc<LocalCluster>>>,
}

impl SharedClusters {
    /// `count` clusters of `standbys` standbys, named `name`, on ports from
    /// `base_port` (see [`start_clusters`]).
    pub const fn new(name: &'static str, base_port: u16, count: usize, standbys: usize) -> Self {
        SharedClusters {
            name,
            base_port,
            count,
            standbys,
            started: OnceLock::new(),
        }
    }

    /// The clusters, `c1` first, started now if no test has used them yet.
    pub fn get(&self) -> Vec<Arc<LocalCluster>> {
        self.started
            .get_or_init(|| start_clusters(self.name, self.base_port, self.count, self.standbys))
            .clone()
    }
}

/// The ring strategy over `shards` shards.
pub fn ring(shards: u64) -> Layout {
    Layout::with_count(StrategyKind::Ring, shards).unwrap()
}

/// Node actions and failover for a bridge over `cluster`.
pub fn control(cluster: &Arc<LocalCluster>) -> Option<Control> {
    Some(Arc::clone(cluster) as Control)
}

/// A bridge over `cluster` on its own database, starting with `layout`.
pub async fn bridge(cluster: &LocalCluster, database: &str, layout: Layout) -> AppState {
    bridge_with(cluster, database, |config| config.initial_layout = layout).await
}

/// A bridge over `cluster` on its own database (ring over 3 shards, 8
/// connections per node), configured further by `configure`.
pub async fn bridge_with(
    cluster: &LocalCluster,
    database: &str,
    configure: impl FnOnce(&mut BridgeConfig),
) -> AppState {
    let mut config = BridgeConfig {
        initial_layout: ring(3),
        pool_size: 8,
        ..BridgeConfig::new(Topology::local(cluster, database))
    };
    configure(&mut config);
    AppState::start(config)
        .await
        .unwrap_or_else(|error| panic!("starting the bridge on {database}: {error}"))
}

/// A response: status, headers, body.
pub struct Answer {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "not JSON ({error}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "unexpected body ({error}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `code` of the JSON error shape; panics on any other body.
    pub fn error_code(&self) -> String {
        self.parse::<ApiErrorBody>().error.code
    }
}

/// Sends a request to the app without a socket.
pub async fn send(state: &AppState, request: Request<Body>) -> Answer {
    let response = ecoshard_bridge::app(state.clone())
        .oneshot(request)
        .await
        .unwrap_or_else(|never| match never {});
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .map(|collected| collected.to_bytes().to_vec())
        .unwrap_or_default();
    Answer {
        status,
        headers,
        body,
    }
}

pub async fn get(state: &AppState, uri: &str) -> Answer {
    send(
        state,
        Request::get(uri).body(Body::empty()).expect("request"),
    )
    .await
}

pub async fn post_json(state: &AppState, uri: &str, json: &str) -> Answer {
    send(
        state,
        Request::post(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(json.to_string()))
            .expect("request"),
    )
    .await
}

/// `PUT /api/layout` with `json`, as a program sends it.
pub async fn put_layout(state: &AppState, json: &str) -> Answer {
    send(
        state,
        Request::put("/api/layout")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(json.to_string()))
            .expect("request"),
    )
    .await
}

/// `database`'s prepared transactions on every primary of `clusters`.
pub async fn prepared(clusters: &[Arc<LocalCluster>], database: &str) -> Vec<String> {
    let mut gids = Vec::new();
    for cluster in clusters {
        let client = connect(cluster, "primary", database).await;
        let sql = "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()";
        let found = client.query(sql, &[]).await.expect(sql);
        gids.extend(found.into_iter().map(|row| row.get::<_, String>(0)));
    }
    gids
}

/// A recovery pass of transactions across clusters, tried again while a
/// stopped coordinator's lock is still held (the server ends its session a
/// moment later).
pub async fn recovery(state: &AppState) -> ecoshard_bridge::service::twophase::Recovered {
    use ecoshard_bridge::service::TwoPhaseError;
    use ecoshard_bridge::service::twophase::{RECOVERY_DEADLINE, recover};
    eventually_some(LIMIT, || async {
        let deadline = tokio::time::Instant::now() + RECOVERY_DEADLINE;
        match recover(state.service(), deadline).await {
            Ok(recovered) => Some(recovered),
            Err(TwoPhaseError::RecoveryBusy) => None,
            Err(error) => panic!("recovery: {error}"),
        }
    })
    .await
    .expect("the lock is never free")
}

/// A POST without a body, as a program sends it (`Content-Type:
/// application/json`, no `Origin`): node actions.
pub async fn post(state: &AppState, uri: &str) -> Answer {
    send(
        state,
        Request::post(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::empty())
            .expect("request"),
    )
    .await
}

/// A request that must be answered, whatever the answer: panics if it is
/// not within [`ANSWER_WITHIN`] (every request is bounded well below it).
pub async fn answered(request: impl std::future::Future<Output = Answer>) -> Answer {
    tokio::time::timeout(ANSWER_WITHIN, request)
        .await
        .expect("a request hung")
}

/// `GET /api/cluster`.
pub async fn view(state: &AppState) -> ClusterView {
    get(state, "/api/cluster").await.parse()
}

/// A direct connection to one node of the cluster (not through the bridge).
pub async fn connect(cluster: &LocalCluster, node: &str, database: &str) -> tokio_postgres::Client {
    let node = cluster
        .nodes()
        .into_iter()
        .find(|candidate| candidate.name == node)
        .expect("node exists");
    // A standby may not have replayed the database's creation yet: retry a while.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let config = ecoshard_bridge::local_config(&cluster.endpoint(&node), database);
        match config.connect(tokio_postgres::NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(connection);
                return client;
            }
            Err(error) if Instant::now() > deadline => {
                panic!("connecting to {} directly: {error}", node.name)
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// The node `offset` ports from the first of the local cluster in `dir`
/// (`primary` 0, `standby-1` 1, …), found from its files alone (its
/// `cluster.json` names the first port, its passfile the password), as a
/// test of `ecoshard serve` reaches the servers the binary started.
pub async fn connect_node_in(dir: &std::path::Path, offset: u16) -> tokio_postgres::Client {
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cluster.json")).unwrap()).unwrap();
    let port = state["pg_port"].as_u64().unwrap() as u16;
    let passfile = std::fs::read_to_string(dir.join("pgpass")).unwrap();
    let password = ecoshard_postgres::pgpass::lookup(&passfile, "ecoshard").unwrap();
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(port + offset)
        .user("ecoshard")
        .password(&password)
        .dbname("ecomarket");
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// The node `cluster.json` in `dir` names primary now.
pub fn primary_in(dir: &std::path::Path) -> String {
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cluster.json")).unwrap()).unwrap();
    state["primary"].as_str().unwrap_or("primary").to_owned()
}

/// The primary now of the local cluster in `dir` ([`connect_node_in`]).
pub async fn connect_primary_in(dir: &std::path::Path) -> tokio_postgres::Client {
    let offset = match primary_in(dir).strip_prefix("standby-") {
        Some(index) => index.parse::<u16>().unwrap(),
        None => 0,
    };
    connect_node_in(dir, offset).await
}

/// The data directory of the node `node`.
pub fn data_dir(cluster: &LocalCluster, node: &str) -> PathBuf {
    cluster
        .nodes()
        .into_iter()
        .find(|candidate| candidate.name == node)
        .expect("node exists")
        .data
}

/// Polls `condition` every 20 ms until it holds or `limit` passes; whether
/// it held. (`blocking::eventually` is its twin for blocking code.)
pub async fn eventually<F, Fut>(limit: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually_some(limit, || {
        let holds = condition();
        async move { holds.await.then_some(()) }
    })
    .await
    .is_some()
}

/// Polls `probe` every 20 ms until it gives a value or `limit` passes.
pub async fn eventually_some<T, F, Fut>(limit: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe().await {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until every node is up and every standby streams from the primary
/// (whichever node that is now), then two ticks more so that the read
/// rotation reflects it.
pub async fn wait_streaming(state: &AppState) {
    let streaming = eventually(LIMIT, || async {
        blocking::all_streaming(&view(state).await)
    })
    .await;
    assert!(
        streaming,
        "the standbys do not stream: {:?}",
        view(state).await
    );
    tokio::time::sleep(ecoshard_bridge::TICK * 2).await;
}

/// Reads of known keys, round and round from several tasks, each read
/// bounded by [`ANSWER_WITHIN`], until [`ReadLoad::finish`] tells them to
/// stop: reads answered 200 are counted as they come, every other answer
/// is kept. A load-under-fault test waits, once it has seen the fault,
/// until [`ReadLoad::goes_on`], so that its load cannot have ended before
/// the fault arrived.
pub struct ReadLoad {
    stop: tokio::sync::watch::Sender<bool>,
    ok: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<Vec<String>>>,
}

impl ReadLoad {
    /// `readers` tasks reading every key of `keys` with the first of
    /// `consistencies`, then every key with the next one, and so on.
    pub fn start(
        state: &AppState,
        keys: &[String],
        consistencies: &[&'static str],
        readers: usize,
    ) -> Self {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let ok = Arc::new(AtomicU64::new(0));
        let uris: Arc<Vec<String>> = Arc::new(
            consistencies
                .iter()
                .flat_map(|consistency| {
                    keys.iter()
                        .map(move |key| format!("/api/users/{key}?consistency={consistency}"))
                })
                .collect(),
        );
        let tasks = (0..readers)
            .map(|reader| {
                // Spread over the list, so that the readers do not move together.
                let first = reader * uris.len() / readers;
                let (state, uris, ok) = (state.clone(), Arc::clone(&uris), Arc::clone(&ok));
                let stopped = stopped.clone();
                tokio::spawn(read_until_stopped(state, uris, first, ok, stopped))
            })
            .collect();
        ReadLoad { stop, ok, tasks }
    }

    /// Reads answered 200 so far.
    pub fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    /// Whether `more` reads were answered 200 after those counted now,
    /// within [`LIMIT`].
    pub async fn goes_on(&self, more: u64) -> bool {
        let seen = self.ok();
        eventually(LIMIT, || async { self.ok() >= seen + more }).await
    }

    /// Stops the load: the reads answered 200, and every other answer (or
    /// the lack of one).
    pub async fn finish(self) -> (u64, Vec<String>) {
        self.stop.send_replace(true);
        let mut failed = Vec::new();
        for task in self.tasks {
            failed.extend(task.await.expect("a reader"));
        }
        (self.ok.load(Ordering::Relaxed), failed)
    }
}

/// One reader of a [`ReadLoad`]: `uris` in turn from the `first`, until
/// `stopped`; what was not answered 200.
async fn read_until_stopped(
    state: AppState,
    uris: Arc<Vec<String>>,
    first: usize,
    ok: Arc<AtomicU64>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) -> Vec<String> {
    let mut failed = Vec::new();
    for uri in uris.iter().cycle().skip(first) {
        if *stopped.borrow_and_update() {
            break;
        }
        match tokio::time::timeout(ANSWER_WITHIN, get(&state, uri)).await {
            Ok(answer) if answer.status == StatusCode::OK => {
                ok.fetch_add(1, Ordering::Relaxed);
            }
            Ok(answer) => failed.push(format!("{uri}: {} {}", answer.status, answer.text())),
            Err(_) => failed.push(format!("{uri}: no answer within {ANSWER_WITHIN:?}")),
        }
    }
    failed
}
