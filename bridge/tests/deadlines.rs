//! Deadlines on the request path, on a real cluster of this binary's own
//! (synchronous replication: every commit waits for a standby): a hung
//! (SIGSTOPped) standby or primary under read load, the statement cache of
//! a connection while a rebalance reads and writes over many pairs of
//! shards, and the row counts while a shard is locked. Outcomes are
//! asserted, never durations.
//!
//! The tests run one at a time: they stop servers.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::http::StatusCode;
use common::blocking::Frozen;
use common::{Answer, connect, eventually, free_ports, get, post_json};
use ecoshard_bridge::routing::{Placement, RoutingTable};
use ecoshard_bridge::{AppState, BridgeConfig, ClusterOptions, LocalCluster, Topology};
use ecoshard_core::wire::{
    ApiErrorBody, ClusterView, InsertResult, LayoutView, NodeRole, ReadResult, Stats,
};
use ecoshard_core::{Layout, StrategyKind};

/// This binary's ports.
const BASE_PORT: u16 = 30200;

/// A wait only a hang reaches: every request is bounded well below it.
const ANSWER_WITHIN: Duration = Duration::from_secs(15);

/// Longest wait for a condition that must come true.
const LIMIT: Duration = Duration::from_secs(60);

/// One test at a time: they stop servers.
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

/// A request that must be answered within [`ANSWER_WITHIN`]; `None` if not.
async fn within(request: impl std::future::Future<Output = Answer>) -> Option<Answer> {
    tokio::time::timeout(ANSWER_WITHIN, request).await.ok()
}

async fn answered(request: impl std::future::Future<Output = Answer>) -> Answer {
    within(request).await.expect("a request hung")
}

fn code(answer: &Answer) -> String {
    answer.parse::<ApiErrorBody>().error.code
}

async fn view(state: &AppState) -> ClusterView {
    get(state, "/api/cluster").await.parse()
}

/// Waits until every node is up and every standby streams, synchronously
/// (`quorum`), from the primary.
async fn wait_healthy(state: &AppState) {
    let healthy = eventually(LIMIT, || async {
        view(state).await.nodes.iter().all(|node| {
            node.up
                && (node.role == NodeRole::Primary
                    || node.lag.as_ref().is_some_and(|lag| {
                        lag.state.as_deref() == Some("streaming")
                            && lag.sync_state.as_deref() == Some("quorum")
                    }))
        })
    })
    .await;
    assert!(
        healthy,
        "the cluster is not healthy: {:?}",
        view(state).await
    );
    tokio::time::sleep(ecoshard_bridge::monitor::TICK * 2).await;
}

fn data_dir(local: &LocalCluster, node: &str) -> std::path::PathBuf {
    local
        .nodes()
        .into_iter()
        .find(|candidate| candidate.name == node)
        .expect("node exists")
        .data
}

/// Reads `keys` round and round from `readers` tasks, alternating eventual
/// and read-your-writes, each read bounded by [`ANSWER_WITHIN`], until told
/// to stop: reads answered 200 (counted as they come) and every other outcome.
struct ReadLoad {
    stop: tokio::sync::watch::Sender<bool>,
    ok: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<Vec<String>>>,
}

impl ReadLoad {
    fn start(state: &AppState, keys: &[String], readers: usize) -> Self {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let ok = Arc::new(AtomicU64::new(0));
        let tasks = (0..readers)
            .map(|reader| {
                let (state, keys, ok) = (state.clone(), keys.to_vec(), Arc::clone(&ok));
                let mut stopped = stopped.clone();
                tokio::spawn(async move {
                    let mut failed = Vec::new();
                    let mut n = reader;
                    while !*stopped.borrow_and_update() {
                        let consistency = ["eventual", "read-your-writes"][n % 2];
                        let uri = format!(
                            "/api/users/{}?consistency={consistency}",
                            keys[n % keys.len()]
                        );
                        match within(get(&state, &uri)).await {
                            Some(answer) if answer.status == StatusCode::OK => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Some(answer) => {
                                failed.push(format!("{uri}: {} {}", answer.status, answer.text()))
                            }
                            None => {
                                failed.push(format!("{uri}: no answer within {ANSWER_WITHIN:?}"))
                            }
                        }
                        n += 7;
                    }
                    failed
                })
            })
            .collect();
        ReadLoad { stop, ok, tasks }
    }

    /// Stops the load; every read that failed or got no answer.
    async fn finish(self) -> Vec<String> {
        self.stop.send_replace(true);
        let mut failed = Vec::new();
        for task in self.tasks {
            failed.extend(task.await.unwrap());
        }
        failed
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_standby_costs_reads_one_deadline_and_fails_none() {
    let _serial = SERIAL.lock().await;
    let local = the_cluster();
    let state = bridge(&local, "t_hung_standby", ring(3), 8).await;
    let bulk = post_json(&state, "/api/users/bulk", r#"{"count":200,"prefix":"h"}"#).await;
    assert_eq!(bulk.status, StatusCode::CREATED, "{}", bulk.text());
    wait_healthy(&state).await;
    let keys: Vec<String> = (0..200)
        .step_by(3)
        .map(|index| format!("h{index}"))
        .collect();
    let load = ReadLoad::start(&state, &keys, 16);
    assert!(
        eventually(LIMIT, || async { load.ok.load(Ordering::Relaxed) >= 200 }).await,
        "the reads did not start"
    );

    let frozen = Frozen::stop(&data_dir(&local, "standby-1"));
    let down = eventually(LIMIT, || async { !view(&state).await.nodes[1].up }).await;
    assert!(down, "the bridge never saw standby-1 hung");
    // A while with standby-1 hung and out of the rotation.
    let seen = load.ok.load(Ordering::Relaxed);
    assert!(
        eventually(LIMIT, || async {
            load.ok.load(Ordering::Relaxed) >= seen + 500
        })
        .await,
        "reads stopped while standby-1 was hung"
    );
    // Every read, those that were on their way to standby-1 included, is
    // answered while it is still hung.
    let failed = load.finish().await;
    let reads = get(&state, "/api/stats").await.parse::<Stats>().reads;
    drop(frozen);
    assert!(
        failed.is_empty(),
        "{} reads failed or got no answer, first: {:?}",
        failed.len(),
        failed.first()
    );
    eprintln!("reads per node: {reads:?}");
    let stats: Stats = get(&state, "/api/stats").await.parse();
    assert_eq!(stats.failed_reads, 0);
    wait_healthy(&state).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_primary_hung_strong_reads_answer_read_timed_out_and_eventual_reads_go_on() {
    let _serial = SERIAL.lock().await;
    let local = the_cluster();
    let state = bridge(&local, "t_hung_primary", ring(3), 8).await;
    let bulk = post_json(&state, "/api/users/bulk", r#"{"count":30,"prefix":"p"}"#).await;
    assert_eq!(bulk.status, StatusCode::CREATED, "{}", bulk.text());
    let before: InsertResult = post_json(&state, "/api/users", r#"{"user_id":"before"}"#)
        .await
        .parse();
    wait_healthy(&state).await;

    let frozen = Frozen::stop(&data_dir(&local, "primary"));
    for _ in 0..3 {
        let strong = answered(get(&state, "/api/users/p1?consistency=strong")).await;
        assert_eq!(
            strong.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            strong.text()
        );
        assert_eq!(code(&strong), "read_timed_out");
        assert!(strong.text().contains("eventual"), "{}", strong.text());
    }
    for index in 0..10 {
        let eventual = answered(get(&state, &format!("/api/users/p{index}"))).await;
        assert_eq!(eventual.status, StatusCode::OK, "{}", eventual.text());
        assert_ne!(eventual.parse::<ReadResult>().served_by, "primary");
    }
    let fresh = answered(get(
        &state,
        &format!(
            "/api/users/before?consistency=read-your-writes&lsn={}",
            before.lsn
        ),
    ))
    .await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.text());
    drop(frozen);

    wait_healthy(&state).await;
    let strong = get(&state, "/api/users/p1?consistency=strong").await;
    assert_eq!(strong.status, StatusCode::OK, "{}", strong.text());
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
