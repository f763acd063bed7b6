//! Shared by the bridge's behaviour tests: one real local cluster per test
//! binary (started on first use, stopped and deleted by its watchdog when the
//! binary ends, however it ends), a database per test, and request helpers.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use ecoshard_bridge::{AppState, BridgeConfig, ClusterOptions, LocalCluster, Topology};
use ecoshard_core::Layout;
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

pub mod blocking;

pub use blocking::free_ports;

static CLUSTER: OnceLock<LocalCluster> = OnceLock::new();

/// Tests that stop nodes hold this for writing; every other test for reading.
pub static NODES: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// The cluster of this test binary, started on first use on the first free
/// ports at or above `base_port` (so binaries run one after another never collide).
pub fn cluster(name: &str, base_port: u16) -> &'static LocalCluster {
    CLUSTER.get_or_init(|| {
        let port = free_ports(base_port, 3);
        let dir = std::env::temp_dir().join(format!("ecoshard-test-{name}-{}", std::process::id()));
        let mut options = ClusterOptions::new(&dir, port);
        options.remove_on_exit = true;
        LocalCluster::start(&options)
            .unwrap_or_else(|error| panic!("starting the test cluster: {error}"))
    })
}

/// A bridge over the shared cluster, on its own database.
pub async fn bridge(cluster: &LocalCluster, database: &str, layout: Layout) -> AppState {
    bridge_with(cluster, database, layout, None).await
}

/// A bridge with a web page directory.
pub async fn bridge_with(
    cluster: &LocalCluster,
    database: &str,
    layout: Layout,
    web_dir: Option<PathBuf>,
) -> AppState {
    let config = BridgeConfig {
        initial_layout: layout,
        web_dir,
        pool_size: 8,
        ..BridgeConfig::new(Topology::local(cluster, database))
    };
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

/// Polls `condition` every 20 ms until it holds or `limit` passes; whether it held.
pub async fn eventually<F, Fut>(limit: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if condition().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until both standbys are in the read rotation of `state`.
pub async fn wait_standbys_ready(state: &AppState) {
    let ready = eventually(Duration::from_secs(30), || async {
        let view: ecoshard_core::wire::ClusterView = get(state, "/api/cluster").await.parse();
        view.nodes.iter().all(|node| {
            node.up
                && (node.name == "primary"
                    || node
                        .lag
                        .as_ref()
                        .is_some_and(|lag| lag.state.as_deref() == Some("streaming")))
        })
    })
    .await;
    assert!(ready, "standbys did not become ready");
    // One more tick so the rotation reflects it.
    tokio::time::sleep(ecoshard_bridge::TICK * 2).await;
}
