//! Failure simulation and failover on real local clusters: standbys and the
//! primary stopped through the API under load, automatic promotion of the
//! most advanced standby, the old primary coming back as a standby, no
//! acknowledged write lost with synchronous replication, and a restarted
//! bridge that remembers who is primary. No mock anywhere; outcomes are
//! asserted, never durations.
//!
//! Every test here runs alone (they stop servers); each failover test has a
//! cluster of its own, stopped and deleted when the binary ends however it ends.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::blocking::{cluster_view, http, primary_of};
use common::{Answer, connect, eventually, free_ports, get, post, post_json};
use ecoshard_bridge::{AppState, BridgeConfig, ClusterOptions, LocalCluster, Topology};
use ecoshard_core::wire::{
    ApiErrorBody, BulkResult, ClusterView, InsertResult, NodeAction, NodeRole, ReadResult, Stats,
};
use ecoshard_core::{Layout, StrategyKind};

/// This binary's ports: 29000–29499.
const STEADY_PORT: u16 = 29000;
const FAILOVER_PORT: u16 = 29100;
const SYNC_PORT: u16 = 29200;
const CLI_PG_PORT: u16 = 29300;
const CLI_HTTP_PORT: u16 = 29400;

/// One test at a time: they stop and start servers.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The cluster of the tests that stop nodes but never fail over.
static STEADY: OnceLock<Arc<LocalCluster>> = OnceLock::new();

/// A longest wait that only a hang would reach (requests are bounded at 5 s).
const HANG: Duration = Duration::from_secs(60);

fn start_cluster(name: &str, base_port: u16, sync_replication: bool) -> Arc<LocalCluster> {
    let port = free_ports(base_port, 3);
    let dir = std::env::temp_dir().join(format!("ecoshard-failover-{name}-{}", std::process::id()));
    let mut options = ClusterOptions::new(&dir, port);
    options.remove_on_exit = true;
    options.sync_replication = sync_replication;
    Arc::new(
        LocalCluster::start(&options)
            .unwrap_or_else(|error| panic!("starting the {name} cluster: {error}")),
    )
}

fn steady_cluster() -> Arc<LocalCluster> {
    Arc::clone(STEADY.get_or_init(|| start_cluster("steady", STEADY_PORT, false)))
}

async fn bridge(local: &Arc<LocalCluster>, database: &str, auto_failover: bool) -> AppState {
    let config = BridgeConfig {
        initial_layout: Layout::with_count(StrategyKind::Ring, 3).unwrap(),
        pool_size: 8,
        control: Some(Arc::clone(local) as ecoshard_bridge::cluster::Control),
        auto_failover,
        ..BridgeConfig::new(Topology::local(local, database))
    };
    AppState::start(config)
        .await
        .unwrap_or_else(|error| panic!("starting the bridge on {database}: {error}"))
}

/// A request that must answer, whatever it answers.
async fn answered(request: impl std::future::Future<Output = Answer>) -> Answer {
    tokio::time::timeout(HANG, request)
        .await
        .expect("a request hung")
}

fn error_code(answer: &Answer) -> String {
    answer.parse::<ApiErrorBody>().error.code
}

async fn view(state: &AppState) -> ClusterView {
    get(state, "/api/cluster").await.parse()
}

async fn primary_name(state: &AppState) -> String {
    view(state)
        .await
        .nodes
        .into_iter()
        .find(|node| node.role == NodeRole::Primary)
        .expect("a primary")
        .name
}

/// Waits until every node is up and every standby streams from the primary.
async fn wait_all_streaming(state: &AppState) {
    let ready = eventually(HANG, || async {
        let view = view(state).await;
        view.nodes.iter().all(|node| {
            node.up
                && (node.role == NodeRole::Primary
                    || node
                        .lag
                        .as_ref()
                        .is_some_and(|lag| lag.state.as_deref() == Some("streaming")))
        })
    })
    .await;
    assert!(
        ready,
        "the standbys did not stream: {:?}",
        view(state).await
    );
    tokio::time::sleep(ecoshard_bridge::TICK * 2).await;
}

/// Reads known keys in a loop (eventual and read-your-writes) until told to
/// stop; the number of good answers and every failed one.
fn read_load(
    state: &AppState,
    keys: Vec<String>,
    consistencies: &'static [&'static str],
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<(u64, Vec<String>)>,
) {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let state = state.clone();
    let reader = tokio::spawn(async move {
        let (mut ok, mut failed) = (0u64, Vec::new());
        while !*stopped.borrow_and_update() {
            for key in &keys {
                for consistency in consistencies {
                    let answer = answered(get(
                        &state,
                        &format!("/api/users/{key}?consistency={consistency}"),
                    ))
                    .await;
                    if answer.status == StatusCode::OK {
                        ok += 1;
                    } else {
                        failed.push(format!(
                            "{consistency}: {} {}",
                            answer.status,
                            answer.text()
                        ));
                    }
                }
            }
        }
        (ok, failed)
    });
    (stop, reader)
}

async fn finish_reads(
    stop: tokio::sync::watch::Sender<bool>,
    reader: tokio::task::JoinHandle<(u64, Vec<String>)>,
) -> u64 {
    stop.send_replace(true);
    let (ok, failed) = reader.await.unwrap();
    assert!(
        failed.is_empty(),
        "{} failed reads, first: {:?}",
        failed.len(),
        failed.first()
    );
    assert!(ok > 0, "no read ran");
    ok
}

/// `pg_is_in_recovery()` of a running node, asked directly.
async fn in_recovery(local: &LocalCluster, node: &str, database: &str) -> bool {
    connect(local, node, database)
        .await
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .unwrap()
        .get(0)
}

/// Every `user_id` in the shards, read directly on `node`.
async fn user_ids(local: &LocalCluster, node: &str, database: &str) -> BTreeSet<String> {
    let client = connect(local, node, database).await;
    let mut ids = BTreeSet::new();
    for shard in ["s0", "s1", "s2"] {
        for row in client
            .query(&format!("SELECT user_id FROM \"shard_{shard}\".users"), &[])
            .await
            .unwrap()
        {
            ids.insert(row.get::<_, String>(0));
        }
    }
    ids
}

/// Waits until `standby` streams from the node `primary`, as `primary` sees it.
async fn streams_from(local: &LocalCluster, primary: &str, standby: &str, database: &str) -> bool {
    let client = connect(local, primary, database).await;
    eventually(HANG, || async {
        client
            .query_opt(
                "SELECT 1 FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming'",
                &[&standby],
            )
            .await
            .ok()
            .flatten()
            .is_some()
    })
    .await
}

#[tokio::test]
async fn node_actions_refuse_unknown_nodes_bad_modes_and_external_clusters() {
    let _serial = SERIAL.lock().await;
    let local = steady_cluster();
    let state = bridge(&local, "t_node_api", false).await;

    let unknown = post(&state, "/api/nodes/standby-9/stop").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.text());
    assert_eq!(error_code(&unknown), "unknown_node");
    assert!(unknown.text().contains("standby-1"), "{}", unknown.text());
    let unknown = post(&state, "/api/nodes/nobody/start").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);

    let bad_mode = post(&state, "/api/nodes/standby-1/stop?mode=gently").await;
    assert_eq!(bad_mode.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&bad_mode), "invalid_mode");
    let bad_query = post(&state, "/api/nodes/standby-1/stop?force=1").await;
    assert_eq!(bad_query.status, StatusCode::BAD_REQUEST);
    let wrong_method = get(&state, "/api/nodes/standby-1/stop").await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);

    // Starting a running node changes nothing and says so.
    let running = post(&state, "/api/nodes/standby-2/start").await;
    assert_eq!(running.status, StatusCode::OK, "{}", running.text());
    let running: NodeAction = running.parse();
    assert!(!running.changed);
    assert!(running.message.contains("already running"), "{running:?}");

    // The same nodes given by URL: the bridge did not start them, so it does not stop them.
    let urls: Vec<String> = local
        .nodes()
        .iter()
        .map(|node| {
            format!(
                "postgres://ecoshard:{}@127.0.0.1:{}/t_node_api",
                local.ecoshard_password(),
                node.port
            )
        })
        .collect();
    let external = AppState::start(BridgeConfig {
        initial_layout: Layout::with_count(StrategyKind::Ring, 3).unwrap(),
        pool_size: 2,
        ..BridgeConfig::new(Topology::external(&urls[0], &urls[1..]).unwrap())
    })
    .await
    .unwrap();
    for action in ["stop", "start"] {
        let refused = post(&external, &format!("/api/nodes/standby-1/{action}")).await;
        assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text());
        assert_eq!(error_code(&refused), "not_local");
        assert!(refused.text().contains("external"), "{}", refused.text());
    }
    assert!(local.is_node_running("standby-1").unwrap());
    assert!(!view(&external).await.failover.auto);
}

#[tokio::test]
async fn a_standby_stopped_under_read_load_costs_no_read_and_catches_up_through_its_slot() {
    let _serial = SERIAL.lock().await;
    let local = steady_cluster();
    let database = "t_standby_stop";
    let state = bridge(&local, database, false).await;
    let bulk = post_json(&state, "/api/users/bulk", r#"{"count":100,"prefix":"k"}"#).await;
    assert_eq!(bulk.status, StatusCode::CREATED, "{}", bulk.text());
    wait_all_streaming(&state).await;
    let keys: Vec<String> = (0..100)
        .step_by(7)
        .map(|index| format!("k{index}"))
        .collect();
    let (stop_reads, reader) = read_load(&state, keys, &["eventual", "read-your-writes"]);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Like a crash: no clean shutdown.
    let stopped = answered(post(&state, "/api/nodes/standby-1/stop?mode=immediate")).await;
    assert_eq!(stopped.status, StatusCode::OK, "{}", stopped.text());
    let stopped: NodeAction = stopped.parse();
    assert!(stopped.changed);
    assert_eq!(stopped.role, NodeRole::Standby);
    assert!(!local.is_node_running("standby-1").unwrap());
    let again: NodeAction = post(&state, "/api/nodes/standby-1/stop").await.parse();
    assert!(!again.changed);
    assert!(again.message.contains("already stopped"), "{again:?}");
    let down = eventually(HANG, || async {
        let view = view(&state).await;
        let node = &view.nodes[1];
        node.name == "standby-1" && !node.up && node.lag.as_ref().is_some_and(|lag| !lag.up)
    })
    .await;
    assert!(down, "the cluster view never showed standby-1 down");

    // Writes go on while it is down; its slot keeps their WAL for it.
    let while_down = post_json(&state, "/api/users/bulk", r#"{"count":50,"prefix":"d"}"#).await;
    assert_eq!(while_down.status, StatusCode::CREATED);
    let while_down: BulkResult = while_down.parse();
    for index in 0..5 {
        let read: ReadResult = get(&state, &format!("/api/users/k{index}")).await.parse();
        assert_ne!(read.served_by, "standby-1");
    }

    let started = answered(post(&state, "/api/nodes/standby-1/start")).await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.text());
    let started: NodeAction = started.parse();
    assert!(started.changed);
    assert_eq!(started.role, NodeRole::Standby);
    assert!(started.message.contains("slot"), "{started:?}");
    wait_all_streaming(&state).await;
    let caught_up = eventually(HANG, || async {
        user_ids(&local, "standby-1", database).await.len() == 150
    })
    .await;
    assert!(
        caught_up,
        "standby-1 never received the rows written while it was down"
    );
    let slot_active: bool = connect(&local, "primary", database)
        .await
        .query_one(
            "SELECT active FROM pg_replication_slots WHERE slot_name = 'standby_1'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(slot_active, "standby-1 does not stream through its slot");
    let rejoined = eventually(HANG, || async {
        let read: ReadResult = get(
            &state,
            &format!(
                "/api/users/d1?consistency=read-your-writes&lsn={}",
                while_down.lsn
            ),
        )
        .await
        .parse();
        read.served_by == "standby-1"
    })
    .await;
    assert!(rejoined, "standby-1 never served reads again");

    let reads = finish_reads(stop_reads, reader).await;
    eprintln!("{reads} reads while standby-1 stopped and started, none failed");
    let stats: Stats = get(&state, "/api/stats").await.parse();
    assert_eq!(stats.failed_reads, 0);
}

#[tokio::test]
async fn with_the_primary_stopped_writes_get_503_and_reads_go_on_from_the_standbys() {
    let _serial = SERIAL.lock().await;
    let local = steady_cluster();
    let database = "t_primary_stop";
    let state = bridge(&local, database, false).await;
    let before: InsertResult = post_json(&state, "/api/users", r#"{"user_id":"before"}"#)
        .await
        .parse();
    let bulk = post_json(&state, "/api/users/bulk", r#"{"count":60,"prefix":"p"}"#).await;
    assert_eq!(bulk.status, StatusCode::CREATED);
    wait_all_streaming(&state).await;
    let keys: Vec<String> = (0..60)
        .step_by(5)
        .map(|index| format!("p{index}"))
        .collect();
    let (stop_reads, reader) = read_load(&state, keys, &["eventual"]);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let stopped = answered(post(&state, "/api/nodes/primary/stop")).await;
    assert_eq!(stopped.status, StatusCode::OK, "{}", stopped.text());
    let stopped: NodeAction = stopped.parse();
    assert_eq!(stopped.role, NodeRole::Primary);
    assert!(stopped.message.contains("503"), "{stopped:?}");

    for index in 0..5 {
        let write = answered(post_json(
            &state,
            "/api/users",
            &format!(r#"{{"user_id":"during_{index}"}}"#),
        ))
        .await;
        assert_eq!(
            write.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            write.text()
        );
        assert_eq!(error_code(&write), "primary_unavailable");
    }
    let bulk = answered(post_json(
        &state,
        "/api/users/bulk",
        r#"{"count":500,"prefix":"lost_"}"#,
    ))
    .await;
    assert_eq!(
        bulk.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        bulk.text()
    );
    assert_eq!(error_code(&bulk), "primary_unavailable");

    let strong = answered(get(&state, "/api/users/p1?consistency=strong")).await;
    assert_eq!(
        strong.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        strong.text()
    );
    assert_eq!(error_code(&strong), "primary_unavailable");
    assert!(strong.text().contains("eventual"), "{}", strong.text());
    let eventual = answered(get(&state, "/api/users/p1")).await;
    assert_eq!(eventual.status, StatusCode::OK, "{}", eventual.text());
    assert_ne!(eventual.parse::<ReadResult>().served_by, "primary");
    let fresh = answered(get(
        &state,
        &format!(
            "/api/users/before?consistency=read-your-writes&lsn={}",
            before.lsn
        ),
    ))
    .await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.text());
    assert_ne!(fresh.parse::<ReadResult>().served_by, "primary");
    let ahead = answered(get(
        &state,
        "/api/users/before?consistency=read-your-writes&lsn=FFFFFFFF/0",
    ))
    .await;
    assert_eq!(
        ahead.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        ahead.text()
    );
    assert_eq!(error_code(&ahead), "no_node_available");

    let again: NodeAction = post(&state, "/api/nodes/primary/stop").await.parse();
    assert!(!again.changed, "{again:?}");
    let started = answered(post(&state, "/api/nodes/primary/start")).await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.text());
    let started: NodeAction = started.parse();
    assert_eq!(started.role, NodeRole::Primary);
    let resumed = eventually(HANG, || async {
        post_json(&state, "/api/users", r#"{"user_id":"after"}"#)
            .await
            .status
            == StatusCode::CREATED
    })
    .await;
    assert!(resumed, "writes did not resume once the primary was back");
    assert_eq!(primary_name(&state).await, "primary");
    // Nothing half-written: the refused bulk insert left no row.
    let ids = user_ids(&local, "primary", database).await;
    assert!(!ids.iter().any(|id| id.starts_with("lost_")), "{ids:?}");
    assert!(!ids.iter().any(|id| id.starts_with("during_")), "{ids:?}");
    let reads = finish_reads(stop_reads, reader).await;
    eprintln!("{reads} eventual reads while the primary was stopped, none failed");
    wait_all_streaming(&state).await;
}

#[tokio::test]
async fn auto_failover_promotes_a_standby_and_the_old_primary_returns_as_its_standby() {
    let _serial = SERIAL.lock().await;
    let local = start_cluster("auto", FAILOVER_PORT, false);
    let database = "t_auto";
    let state = bridge(&local, database, true).await;
    assert!(view(&state).await.failover.auto);
    let bulk = post_json(&state, "/api/users/bulk", r#"{"count":200,"prefix":"a"}"#).await;
    assert_eq!(bulk.status, StatusCode::CREATED);
    wait_all_streaming(&state).await;
    // Every standby holds the rows before the crash (asynchronous replication).
    for standby in ["standby-1", "standby-2"] {
        let copied = eventually(HANG, || async {
            user_ids(&local, standby, database).await.len() == 200
        })
        .await;
        assert!(copied, "{standby} did not receive the rows");
    }
    let keys: Vec<String> = (0..200)
        .step_by(9)
        .map(|index| format!("a{index}"))
        .collect();
    let (stop_reads, reader) = read_load(&state, keys, &["eventual"]);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let killer = Arc::clone(&local);
    let killed = tokio::task::spawn_blocking(move || killer.kill_node("primary"))
        .await
        .unwrap()
        .expect("kill -9 the primary");
    assert!(killed);
    // Writes answer 503 until a standby is promoted, then go to it.
    let mut refused = 0;
    let deadline = Instant::now() + HANG;
    let promoted: InsertResult = loop {
        assert!(
            Instant::now() < deadline,
            "writes never resumed after the failover"
        );
        let write = answered(post_json(
            &state,
            "/api/users",
            &format!(r#"{{"user_id":"w{refused}"}}"#),
        ))
        .await;
        if write.status == StatusCode::CREATED {
            break write.parse();
        }
        assert_eq!(
            write.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            write.text()
        );
        // Unknown for a write sent on a connection whose backend was going away.
        let code = error_code(&write);
        assert!(
            ["primary_unavailable", "write_outcome_unknown"].contains(&code.as_str()),
            "{}",
            write.text()
        );
        refused += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let new_primary = promoted.served_by.clone();
    assert_ne!(new_primary, "primary");
    let other = if new_primary == "standby-1" {
        "standby-2"
    } else {
        "standby-1"
    };
    eprintln!("{new_primary} promoted; {refused} writes refused with 503 meanwhile");
    let view = view(&state).await;
    let roles: Vec<(String, NodeRole)> = view
        .nodes
        .iter()
        .map(|node| (node.name.clone(), node.role))
        .collect();
    assert_eq!(
        roles
            .iter()
            .filter(|(_, role)| *role == NodeRole::Primary)
            .count(),
        1,
        "{roles:?}"
    );
    assert!(
        roles.contains(&(new_primary.clone(), NodeRole::Primary)),
        "{roles:?}"
    );
    assert!(
        roles.contains(&("primary".to_string(), NodeRole::Standby)),
        "{roles:?}"
    );
    let event = view.failover.last.expect("the failover is reported");
    assert_eq!(
        (event.from.as_str(), event.to.as_str()),
        ("primary", new_primary.as_str())
    );
    assert_eq!(event.repointed, [other]);
    assert_eq!(local.primary_name(), new_primary);

    assert!(!in_recovery(&local, &new_primary, database).await);
    assert!(in_recovery(&local, other, database).await);
    assert!(
        streams_from(&local, &new_primary, other, database).await,
        "{other} does not stream from {new_primary}"
    );
    let ids = user_ids(&local, &new_primary, database).await;
    assert!((0..200).all(|index| ids.contains(&format!("a{index}"))));
    let reads = finish_reads(stop_reads, reader).await;
    eprintln!("{reads} eventual reads across the failover, none failed");

    // The old primary comes back as a standby of the new one, never as a primary.
    let started = answered(post(&state, "/api/nodes/primary/start")).await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.text());
    let started: NodeAction = started.parse();
    assert_eq!(started.role, NodeRole::Standby, "{started:?}");
    assert!(started.message.contains(&new_primary), "{started:?}");
    assert!(in_recovery(&local, "primary", database).await);
    assert!(
        streams_from(&local, &new_primary, "primary", database).await,
        "the old primary does not stream from {new_primary}"
    );
    let caught_up = eventually(HANG, || async {
        user_ids(&local, "primary", database)
            .await
            .contains(&promoted.user.user_id)
    })
    .await;
    assert!(
        caught_up,
        "the old primary never received a write made after the failover"
    );
    wait_all_streaming(&state).await;

    // And it can take over in turn: the roles keep changing, the names stay.
    let killer = Arc::clone(&local);
    let second = new_primary.clone();
    tokio::task::spawn_blocking(move || killer.kill_node(&second))
        .await
        .unwrap()
        .expect("kill -9 the new primary");
    let resumed = eventually(HANG, || async {
        post_json(&state, "/api/users", r#"{"user_id":"second"}"#)
            .await
            .status
            == StatusCode::CREATED
    })
    .await;
    assert!(resumed, "writes never resumed after the second failover");
    let third = primary_name(&state).await;
    assert_ne!(third, new_primary);
    let ids = user_ids(&local, &third, database).await;
    assert!(ids.contains("second") && ids.contains(&promoted.user.user_id));
}

#[tokio::test]
async fn with_synchronous_replication_no_acknowledged_write_is_lost_to_a_primary_kill() {
    let _serial = SERIAL.lock().await;
    let local = start_cluster("sync", SYNC_PORT, true);
    let database = "t_sync";
    let state = bridge(&local, database, true).await;
    assert!(view(&state).await.failover.sync_replication);
    wait_all_streaming(&state).await;
    let quorum = eventually(HANG, || async {
        view(&state).await.nodes.iter().skip(1).all(|node| {
            node.lag
                .as_ref()
                .is_some_and(|lag| lag.sync_state.as_deref() == Some("quorum"))
        })
    })
    .await;
    assert!(
        quorum,
        "the standbys are not synchronous: {:?}",
        view(&state).await
    );

    // Writers insert as fast as they can; the primary is killed under them.
    let acknowledged = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut writers = Vec::new();
    for writer in 0..4 {
        let state = state.clone();
        let acknowledged = Arc::clone(&acknowledged);
        let mut stopped = stopped.clone();
        writers.push(tokio::spawn(async move {
            let mut other = Vec::new();
            let mut index = 0;
            while !*stopped.borrow_and_update() {
                let user_id = format!("n{writer}_{index}");
                index += 1;
                let write = answered(post_json(
                    &state,
                    "/api/users",
                    &format!(r#"{{"user_id":"{user_id}"}}"#),
                ))
                .await;
                match write.status {
                    StatusCode::CREATED => acknowledged.lock().unwrap().push(user_id),
                    StatusCode::SERVICE_UNAVAILABLE => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    _ => other.push(write.text()),
                }
            }
            other
        }));
    }
    let count = || acknowledged.lock().unwrap().len();
    assert!(
        eventually(HANG, || async { count() >= 300 }).await,
        "writes too few"
    );
    let killer = Arc::clone(&local);
    tokio::task::spawn_blocking(move || killer.kill_node("primary"))
        .await
        .unwrap()
        .expect("kill -9 the primary");
    let before_kill = count();
    let resumed = eventually(HANG, || async {
        primary_name(&state).await != "primary" && count() >= before_kill + 100
    })
    .await;
    assert!(resumed, "writes did not resume on a promoted standby");
    stop.send_replace(true);
    for writer in writers {
        let other = writer.await.unwrap();
        assert!(other.is_empty(), "unexpected answers: {other:?}");
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    let new_primary = primary_name(&state).await;
    let stored = user_ids(&local, &new_primary, database).await;
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|user_id| !stored.contains(*user_id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes lost, e.g. {:?}",
        missing.len(),
        acknowledged.len(),
        missing.first()
    );
    let unique: HashSet<&String> = acknowledged.iter().collect();
    assert_eq!(unique.len(), acknowledged.len());
    eprintln!(
        "{} acknowledged writes ({before_kill} before the kill), all on {new_primary}",
        acknowledged.len()
    );
}

/// `ecoshard serve`, stopped (SIGTERM, then SIGKILL) when dropped, so that a
/// failing test leaves no bridge running; its watchdog then stops the servers.
/// Its log is shown when the test fails.
struct Serve {
    child: Child,
    log: PathBuf,
}

impl Serve {
    fn start(args: &[&str], addr: &str) -> Self {
        let log = std::env::temp_dir().join(format!(
            "ecoshard-failover-serve-{}-{}.log",
            std::process::id(),
            addr.replace([':', '.'], "_")
        ));
        let child = Command::new(env!("CARGO_BIN_EXE_ecoshard"))
            .arg("serve")
            .args(["--listen", addr])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("serve's log file"))
            .spawn()
            .expect("start ecoshard serve");
        let mut serve = Serve { child, log };
        let ready = (0..900).any(|_| {
            if let Ok(Some(status)) = serve.child.try_wait() {
                panic!("serve exited early: {status}");
            }
            std::thread::sleep(Duration::from_millis(100));
            http(addr, "GET", "/api/cluster", None).is_some_and(|(status, _)| status == 200)
        });
        assert!(ready, "serve never answered");
        serve
    }

    fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        for _ in 0..600 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.terminate();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("--- ecoshard serve's log ---\n{log}");
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A data directory whose servers are stopped and files deleted at the end.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = Command::new(env!("CARGO_BIN_EXE_ecoshard"))
            .args(["cluster", "down", "--data-dir"])
            .arg(&self.0)
            .output();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_restarted_bridge_remembers_which_standby_was_promoted() {
    let _serial = SERIAL.blocking_lock();
    let scratch =
        Scratch(std::env::temp_dir().join(format!("ecoshard-failover-cli-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&scratch.0);
    let data_dir = scratch.0.display().to_string();
    let pg_port = free_ports(CLI_PG_PORT, 3).to_string();
    let addr = format!("127.0.0.1:{}", free_ports(CLI_HTTP_PORT, 1));
    let args = ["--data-dir", &data_dir, "--pg-port", &pg_port];

    let serve = Serve::start(&[&args[..], &["--auto-failover"]].concat(), &addr);
    let (status, body) = http(
        &addr,
        "POST",
        "/api/nodes/primary/stop?mode=immediate",
        None,
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let deadline = Instant::now() + HANG;
    let promoted = loop {
        let view = cluster_view(&addr);
        if view.failover.last.is_some() {
            break primary_of(&view);
        }
        assert!(Instant::now() < deadline, "no failover: {view:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_ne!(promoted, "primary");
    serve.stop();
    let recorded = std::fs::read_to_string(Path::new(&data_dir).join("cluster.json")).unwrap();
    assert!(recorded.contains(&promoted), "{recorded}");

    // Without --auto-failover: the roles come from cluster.json.
    let serve = Serve::start(&args, &addr);
    let view = cluster_view(&addr);
    assert_eq!(primary_of(&view), promoted, "{view:?}");
    assert!(!view.failover.auto);
    let (status, body) = http(&addr, "POST", "/api/nodes/primary/start", None).unwrap();
    assert_eq!(status, 200, "{body}");
    let started: NodeAction = serde_json::from_str(&body).unwrap();
    assert_eq!(started.role, NodeRole::Standby, "{started:?}");
    let streaming = (0..600).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        cluster_view(&addr).nodes.iter().all(|node| {
            node.up
                && (node.role == NodeRole::Primary
                    || node
                        .lag
                        .as_ref()
                        .is_some_and(|lag| lag.state.as_deref() == Some("streaming")))
        })
    });
    assert!(streaming, "{:?}", cluster_view(&addr));
    // `ecoshard cluster status` reads the same record.
    let status = Command::new(env!("CARGO_BIN_EXE_ecoshard"))
        .args([
            "cluster",
            "status",
            "--format",
            "json",
            "--data-dir",
            &data_dir,
        ])
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    let nodes: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let roles: Vec<(&str, &str)> = nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|node| {
            (
                node["name"].as_str().unwrap(),
                node["role"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(roles.contains(&(promoted.as_str(), "primary")), "{roles:?}");
    assert!(roles.contains(&("primary", "standby")), "{roles:?}");
    serve.stop();
}

#[test]
fn failover_flags_are_refused_for_an_external_cluster() {
    let output = Command::new(env!("CARGO_BIN_EXE_ecoshard"))
        .args([
            "serve",
            "--primary",
            "postgres://ecoshard@127.0.0.1:1/ecomarket",
            "--auto-failover",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--auto-failover"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}
