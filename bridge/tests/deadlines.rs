//! The request path on a real cluster of this binary's own (synchronous
//! replication: every commit waits for a standby): the statement cache of
//! a connection while a rebalance reads and writes over many pairs of
//! shards, and the row counts while a shard is locked.
//!
//! The tests run one at a time: later ones stop servers.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::http::StatusCode;
use common::{connect, eventually, free_ports, get, post_json};
use ecoshard_bridge::routing::{Placement, RoutingTable};
use ecoshard_bridge::{AppState, BridgeConfig, ClusterOptions, LocalCluster, Topology};
use ecoshard_core::wire::{LayoutView, Stats};
use ecoshard_core::{Layout, StrategyKind};

/// This binary's ports.
const BASE_PORT: u16 = 30200;

/// Longest wait for a condition that must come true.
const LIMIT: Duration = Duration::from_secs(60);

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

fn ring(shards: u64) -> Layout {
    Layout::with_count(StrategyKind::Ring, shards).unwrap()
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
    // A select and an insert per shard, the WAL position, the row estimates.
    assert!(
        cached <= 2 * SHARDS as usize + 2,
        "{cached} statements cached after reads over {} pairs of shards",
        pairs.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_counts_come_from_statistics_and_a_locked_shard_holds_none_back() {
    let _serial = SERIAL.lock().await;
    let local = the_cluster();
    let database = "t_row_estimates";
    let state = bridge(&local, database, ring(3), 8).await;
    let rows = |state: AppState| async move {
        get(&state, "/api/stats")
            .await
            .parse::<Stats>()
            .rows
            .into_iter()
            .map(|load| (load.shard, load.keys))
            .collect::<HashMap<String, u64>>()
    };
    assert!(
        eventually(LIMIT, || async { rows(state.clone()).await.len() == 3 }).await,
        "no row counts"
    );
    // A long transaction holds shard s0 locked, as a long statement on it would.
    let mut holder = connect(&local, "primary", database).await;
    let lock = holder.transaction().await.unwrap();
    lock.batch_execute("LOCK TABLE shard_s0.users IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let router = ring(3).build().unwrap();
    let mut expected: HashMap<String, u64> = HashMap::from([
        ("s0".to_string(), 0),
        ("s1".to_string(), 0),
        ("s2".to_string(), 0),
    ]);
    for index in 0..200 {
        let user_id = format!("e{index}");
        let shard = &router.locate_shard(user_id.as_bytes()).name;
        if shard == "s0" {
            continue;
        }
        let insert = post_json(
            &state,
            "/api/users",
            &format!(r#"{{"user_id":"{user_id}"}}"#),
        )
        .await;
        assert_eq!(insert.status, StatusCode::CREATED, "{}", insert.text());
        *expected.get_mut(shard.as_str()).unwrap() += 1;
    }
    let counted = eventually(LIMIT, || async { rows(state.clone()).await == expected }).await;
    assert!(
        counted,
        "rows {:?}, expected {expected:?}",
        rows(state.clone()).await
    );
    lock.rollback().await.unwrap();
}
