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
mod rows;

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::blocking::{
    self, Scratch, Serve, all_streaming, check_refused, cluster_view, ecoshard, eventually_some,
    http, primary_of,
};
use common::{
    LIMIT, ReadLoad, SharedCluster, answered, bridge_with, connect, control, eventually,
    free_ports, get, post, post_json, ring, start_cluster, view, wait_streaming,
};
use ecoshard_bridge::{AppState, BridgeConfig, LocalCluster, Topology};
use ecoshard_core::wire::{BulkResult, InsertResult, NodeAction, NodeRole, ReadResult, Stats};

/// This binary's ports: 29000–29499.
const STEADY_PORT: u16 = 29000;
const FAILOVER_PORT: u16 = 29100;
const SYNC_PORT: u16 = 29200;
const CLI_PG_PORT: u16 = 29300;
const CLI_HTTP_PORT: u16 = 29400;

/// One test at a time: they stop and start servers.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The cluster of the tests that stop nodes but never fail over.
static STEADY: SharedCluster = SharedCluster::new("failover-steady", STEADY_PORT, false);

async fn bridge(local: &Arc<LocalCluster>, database: &str, auto_failover: bool) -> AppState {
    bridge_with(local, database, |config| {
        config.control = control(local);
        config.auto_failover = auto_failover;
    })
    .await
}

/// The node that is primary now.
async fn primary_name(state: &AppState) -> String {
    primary_of(&view(state).await)
}

/// One reader of `keys` with each of `consistencies`, running until it has
/// answered a few reads.
async fn read_load(state: &AppState, keys: &[String], consistencies: &[&'static str]) -> ReadLoad {
    let load = ReadLoad::start(state, keys, consistencies, 1);
    assert!(load.goes_on(20).await, "the reads did not start");
    load
}

/// Stops the load: none failed, and the number of reads.
async fn finish_reads(load: ReadLoad) -> u64 {
    let (ok, failed) = load.finish().await;
    assert!(
        failed.is_empty(),
        "{} failed reads, first: {:?}",
        failed.len(),
        failed.first()
    );
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
    rows::snapshot(&client, "")
        .await
        .shards_of
        .into_keys()
        .collect()
}

/// Waits until `standby` streams from the node `primary`, as `primary` sees it.
async fn streams_from(local: &LocalCluster, primary: &str, standby: &str, database: &str) -> bool {
    let client = connect(local, primary, database).await;
    eventually(LIMIT, || async {
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
    let local = STEADY.get();
    let state = bridge(&local, "t_node_api", false).await;

    let unknown = post(&state, "/api/nodes/standby-9/stop").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.text());
    assert_eq!(unknown.error_code(), "unknown_node");
    assert!(unknown.text().contains("standby-1"), "{}", unknown.text());
    let unknown = post(&state, "/api/nodes/nobody/start").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);

    let bad_mode = post(&state, "/api/nodes/standby-1/stop?mode=gently").await;
    assert_eq!(bad_mode.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_mode.error_code(), "invalid_mode");
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
        initial_layout: ring(3),
        pool_size: 2,
        ..BridgeConfig::new(Topology::external(&urls[0], &urls[1..]).unwrap())
    })
    .await
    .unwrap();
    for action in ["stop", "start"] {
        let refused = post(&external, &format!("/api/nodes/standby-1/{action}")).await;
        assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text());
        assert_eq!(refused.error_code(), "not_local");
        assert!(refused.text().contains("external"), "{}", refused.text());
    }
    assert!(local.is_node_running("standby-1").unwrap());
    assert!(!view(&external).await.failover.auto);
}

#[tokio::test]
async fn a_standby_stopped_under_read_load_costs_no_read_and_catches_up_through_its_slot() {
    let _serial = SERIAL.lock().await;
    let local = STEADY.get();
    let database = "t_standby_stop";
    let state = bridge(&local, database, false).await;
    let bulk = post_json(&state, "/api/users/bulk", r#"{"count":100,"prefix":"k"}"#).await;
    assert_eq!(bulk.status, StatusCode::CREATED, "{}", bulk.text());
    wait_streaming(&state).await;
    let keys: Vec<String> = (0..100)
        .step_by(7)
        .map(|index| format!("k{index}"))
        .collect();
    let load = read_load(&state, &keys, &["eventual", "read-your-writes"]).await;

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
    let down = eventually(LIMIT, || async {
        let view = view(&state).await;
        let node = &view.nodes[1];
        node.name == "standby-1" && !node.up && node.lag.as_ref().is_some_and(|lag| !lag.up)
    })
    .await;
    assert!(down, "the cluster view never showed standby-1 down");
    assert!(
        load.goes_on(50).await,
        "reads stopped while standby-1 was down"
    );

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
    wait_streaming(&state).await;
    let caught_up = eventually(LIMIT, || async {
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
    let rejoined = eventually(LIMIT, || async {
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

    let reads = finish_reads(load).await;
    eprintln!("{reads} reads while standby-1 stopped and started, none failed");
    let stats: Stats = get(&state, "/api/stats").await.parse();
    assert_eq!(stats.failed_reads, 0);
}

#[tokio::test]
async fn with_the_primary_stopped_writes_get_503_and_reads_go_on_from_the_standbys() {
    let _serial = SERIAL.lock().await;
    let local = STEADY.get();
    let database = "t_primary_stop";
    let state = bridge(&local, database, false).await;
    let before: InsertResult = post_json(&state, "/api/users", r#"{"user_id":"before"}"#)
        .await
        .parse();
    let bulk = post_json(&state, "/api/users/bulk", r#"{"count":60,"prefix":"p"}"#).await;
    assert_eq!(bulk.status, StatusCode::CREATED);
    wait_streaming(&state).await;
    let keys: Vec<String> = (0..60)
        .step_by(5)
        .map(|index| format!("p{index}"))
        .collect();
    let load = read_load(&state, &keys, &["eventual"]).await;

    let stopped = answered(post(&state, "/api/nodes/primary/stop")).await;
    assert_eq!(stopped.status, StatusCode::OK, "{}", stopped.text());
    let stopped: NodeAction = stopped.parse();
    assert_eq!(stopped.role, NodeRole::Primary);
    assert!(stopped.message.contains("503"), "{stopped:?}");
    assert!(
        load.goes_on(20).await,
        "eventual reads stopped while the primary was down"
    );

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
        assert_eq!(write.error_code(), "primary_unavailable");
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
    assert_eq!(bulk.error_code(), "primary_unavailable");

    let strong = answered(get(&state, "/api/users/p1?consistency=strong")).await;
    assert_eq!(
        strong.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        strong.text()
    );
    assert_eq!(strong.error_code(), "primary_unavailable");
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
    assert_eq!(ahead.error_code(), "no_node_available");

    let again: NodeAction = post(&state, "/api/nodes/primary/stop").await.parse();
    assert!(!again.changed, "{again:?}");
    let started = answered(post(&state, "/api/nodes/primary/start")).await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.text());
    let started: NodeAction = started.parse();
    assert_eq!(started.role, NodeRole::Primary);
    let resumed = eventually(LIMIT, || async {
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
    assert!(ids.contains("before") && ids.contains("after"), "{ids:?}");
    assert!(!ids.iter().any(|id| id.starts_with("lost_")), "{ids:?}");
    assert!(!ids.iter().any(|id| id.starts_with("during_")), "{ids:?}");
    let reads = finish_reads(load).await;
    eprintln!("{reads} eventual reads while the primary was stopped, none failed");
    wait_streaming(&state).await;
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
    wait_streaming(&state).await;
    // Every standby holds the rows before the crash (asynchronous replication).
    for standby in ["standby-1", "standby-2"] {
        let copied = eventually(LIMIT, || async {
            user_ids(&local, standby, database).await.len() == 200
        })
        .await;
        assert!(copied, "{standby} did not receive the rows");
    }
    let keys: Vec<String> = (0..200)
        .step_by(9)
        .map(|index| format!("a{index}"))
        .collect();
    let load = read_load(&state, &keys, &["eventual"]).await;

    let killer = Arc::clone(&local);
    let killed = tokio::task::spawn_blocking(move || killer.kill_node("primary"))
        .await
        .unwrap()
        .expect("kill -9 the primary");
    assert!(killed);
    assert!(
        load.goes_on(20).await,
        "eventual reads stopped when the primary was killed"
    );
    // Writes answer 503 until a standby is promoted, then go to it.
    let mut refused = 0;
    let deadline = Instant::now() + LIMIT;
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
        let code = write.error_code();
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
    let reads = finish_reads(load).await;
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
    let caught_up = eventually(LIMIT, || async {
        user_ids(&local, "primary", database)
            .await
            .contains(&promoted.user.user_id)
    })
    .await;
    assert!(
        caught_up,
        "the old primary never received a write made after the failover"
    );
    wait_streaming(&state).await;

    // And it can take over in turn: the roles keep changing, the names stay.
    let killer = Arc::clone(&local);
    let second = new_primary.clone();
    tokio::task::spawn_blocking(move || killer.kill_node(&second))
        .await
        .unwrap()
        .expect("kill -9 the new primary");
    let resumed = eventually(LIMIT, || async {
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
    wait_streaming(&state).await;
    let quorum = eventually(LIMIT, || async {
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
        eventually(LIMIT, || async { count() >= 300 }).await,
        "writes too few"
    );
    let killer = Arc::clone(&local);
    tokio::task::spawn_blocking(move || killer.kill_node("primary"))
        .await
        .unwrap()
        .expect("kill -9 the primary");
    let before_kill = count();
    let resumed = eventually(LIMIT, || async {
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

#[test]
fn a_restarted_bridge_remembers_which_standby_was_promoted() {
    let _serial = SERIAL.blocking_lock();
    let scratch = Scratch::new("failover-cli");
    let data_dir = scratch.dir.display().to_string();
    let pg_port = free_ports(CLI_PG_PORT, 3).to_string();
    let addr = format!("127.0.0.1:{}", free_ports(CLI_HTTP_PORT, 1));
    let args = ["--data-dir", &data_dir, "--pg-port", &pg_port];

    let serve = Serve::start(&addr, &[&args[..], &["--auto-failover"]].concat());
    let (status, body) = http(
        &addr,
        "POST",
        "/api/nodes/primary/stop?mode=immediate",
        None,
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let promoted = eventually_some(LIMIT, || {
        let view = cluster_view(&addr);
        view.failover.last.is_some().then(|| primary_of(&view))
    })
    .unwrap_or_else(|| panic!("no failover: {:?}", cluster_view(&addr)));
    assert_ne!(promoted, "primary");
    serve.stop();
    let recorded = std::fs::read_to_string(Path::new(&data_dir).join("cluster.json")).unwrap();
    assert!(recorded.contains(&promoted), "{recorded}");

    // Without --auto-failover: the roles come from cluster.json.
    let serve = Serve::start(&addr, &args);
    let view = cluster_view(&addr);
    assert_eq!(primary_of(&view), promoted, "{view:?}");
    assert!(!view.failover.auto);
    let (status, body) = http(&addr, "POST", "/api/nodes/primary/start", None).unwrap();
    assert_eq!(status, 200, "{body}");
    let started: NodeAction = serde_json::from_str(&body).unwrap();
    assert_eq!(started.role, NodeRole::Standby, "{started:?}");
    let streaming = blocking::eventually(LIMIT, || all_streaming(&cluster_view(&addr)));
    assert!(streaming, "{:?}", cluster_view(&addr));
    // `ecoshard cluster status` reads the same record.
    let status = ecoshard(&[
        "cluster",
        "status",
        "--format",
        "json",
        "--data-dir",
        &data_dir,
    ]);
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
    let external = "postgres://ecoshard@127.0.0.1:1/ecomarket";
    let args = ["serve", "--primary", external, "--auto-failover"];
    check_refused(&args, 2, "--auto-failover");
}
