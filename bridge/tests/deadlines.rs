//! The request path on a real cluster of this binary's own (synchronous
//! replication: every commit waits for a standby): the statement cache of
//! a connection while a rebalance reads and writes over many pairs of shards.
//!
//! The tests run one at a time: later ones stop servers.

mod common;

use std::sync::{Arc, OnceLock};

use axum::http::StatusCode;
use common::{free_ports, get, post_json};
use ecoshard_bridge::routing::{Placement, RoutingTable};
use ecoshard_bridge::{AppState, BridgeConfig, ClusterOptions, LocalCluster, Topology};
use ecoshard_core::wire::LayoutView;
use ecoshard_core::{Layout, StrategyKind};

/// This binary's ports.
const BASE_PORT: u16 = 30200;

/// One test at a time: later ones stop servers.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

static CLUSTER: OnceLock<Arc<LocalCluster>> = OnceLock::new();

fn the_cluster() -> Arc<LocalCluster> {
    Arc::clone(CLUSTER.get_or_init(|| {
        let port = free_ports(BASE_PORT, 3);
        let dir = std::env::temp_dir().join(format!("ecoshard-deadlines-{}", std::process::id()));
        let mut options = ClusterOptions::new(&dir, port);
        options.remove_on_exit = true;
        options.sync_replication = true;
        Arc::new(
            LocalCluster::start(&options)
                .unwrap_or_else(|error| panic!("starting the test cluster: {error}")),
        )
    }))
}

async fn bridge(
    local: &Arc<LocalCluster>,
    database: &str,
    layout: Layout,
    pool_size: usize,
) -> AppState {
    let config = BridgeConfig {
        initial_layout: layout,
        pool_size,
        local: Some(Arc::clone(local)),
        ..BridgeConfig::new(Topology::local(local, database))
    };
    AppState::start(config)
        .await
        .unwrap_or_else(|error| panic!("starting the bridge on {database}: {error}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_inserts_over_many_shard_pairs_keep_a_connections_statement_cache_bounded() {
    let _serial = SERIAL.lock().await;
    let local = the_cluster();
    const SHARDS: u64 = 40;
    let modulo = |shards| Layout::with_count(StrategyKind::Modulo, shards).unwrap();
    // One connection per node: every request on the primary shares it.
    let state = bridge(&local, "t_statement_cache", modulo(SHARDS), 1).await;
    // As while a rebalance from 39 shards runs: most keys are read under
    // their new and old owner at once, inserts check the old owner.
    let placement = |shards, version| {
        Placement::new(&LayoutView {
            version,
            layout: modulo(shards),
        })
        .unwrap()
    };
    state
        .routing()
        .swap(RoutingTable {
            current: placement(SHARDS, 2),
            previous: Some(placement(SHARDS - 1, 1)),
            min_replay_lsn: 0,
        })
        .await;
    let table = state.routing().table();
    let mut pairs = std::collections::HashSet::new();
    for index in 0..600 {
        let key = format!("u{index}");
        let read = get(&state, &format!("/api/users/{key}?consistency=strong")).await;
        assert_eq!(read.status, StatusCode::NOT_FOUND, "{}", read.text());
        if index % 3 == 0 {
            let insert =
                post_json(&state, "/api/users", &format!(r#"{{"user_id":"{key}"}}"#)).await;
            assert_eq!(insert.status, StatusCode::CREATED, "{}", insert.text());
        }
        if let [new, old] = table.read_shards(&key)[..] {
            pairs.insert((new.name.clone(), old.name.clone()));
        }
    }
    assert!(
        pairs.len() > 200,
        "only {} pairs of shards read",
        pairs.len()
    );
    let client = state.cluster().primary().pool.get().await.unwrap();
    let cached = client.statement_cache.size();
    // A select, an insert and the monitor's row count per shard, the WAL position.
    assert!(
        cached <= 3 * SHARDS as usize + 1,
        "{cached} statements cached after reads over {} pairs of shards",
        pairs.len()
    );
}
