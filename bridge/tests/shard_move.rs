//! Whole shards moved between two real clusters (`c1`, `c2`, a primary and
//! one standby each) by logical replication, through `PUT /api/layout`:
//! under inserts and reads, every acknowledged insert ends on the target
//! exactly once, no read fails, and nothing of the move is left behind;
//! changes that cannot run are refused with a sentence.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use ecoshard_bridge::{AppState, ClusterSpec, LocalCluster, Topology};
use ecoshard_core::wire::{JobState, MovePhase, RebalanceJob, VerifyReport};
use ecoshard_core::{Layout, StrategyKind};

use common::{
    Answer, ReadLoad, SharedClusters, bridge_with, connect, control, get, post, put_layout,
};

/// This binary's two clusters of one standby each, on ports from 23200.
static CLUSTERS: SharedClusters = SharedClusters::new("shardmove", 23200, 2, 1);

/// The longest a move may take here.
const JOB_LIMIT: Duration = Duration::from_secs(300);

/// A bridge over `c1` and `c2` on its own database, ring over 3 shards
/// (s0 and s2 on c1, s1 on c2).
async fn bridge_over_both(database: &str) -> (AppState, Vec<Arc<LocalCluster>>) {
    let clusters = CLUSTERS.get();
    let c2 = ClusterSpec {
        name: "c2".to_string(),
        topology: Topology::local(&clusters[1], database),
        control: control(&clusters[1]),
    };
    let state = bridge_with(&clusters[0], database, |config| {
        config.control = control(&clusters[0]);
        config.other_clusters = vec![c2];
    })
    .await;
    (state, clusters)
}

/// Ring over `count` shards, shard `i` on `clusters[i]`.
fn placed(strategy: StrategyKind, count: u64, clusters: &[&str]) -> String {
    let mut layout = Layout::with_count(strategy, count).unwrap();
    for (shard, cluster) in layout.shards.iter_mut().zip(clusters) {
        shard.cluster = Some((*cluster).to_string());
    }
    serde_json::to_string(&layout).unwrap()
}

async fn insert(state: &AppState, id: &str) -> Answer {
    common::post_json(state, "/api/users", &format!(r#"{{"user_id":"{id}"}}"#)).await
}

/// `GET /api/rebalance/{id}`, once it is no longer running.
async fn finished(state: &AppState, id: u64) -> RebalanceJob {
    common::eventually_some(JOB_LIMIT, || async {
        let job: RebalanceJob = get(state, &format!("/api/rebalance/{id}")).await.parse();
        (job.state != JobState::Running).then_some(job)
    })
    .await
    .expect("the move never ended")
}

/// Whether the schema of shard `shard` exists on `cluster`'s primary.
async fn has_schema(cluster: &LocalCluster, database: &str, shard: &str) -> bool {
    let client = connect(cluster, "primary", database).await;
    client
        .query_one(
            "SELECT to_regnamespace($1) IS NOT NULL",
            &[&format!("shard_{shard}")],
        )
        .await
        .unwrap()
        .get(0)
}

/// Publications, subscriptions and slots of moves in `database`, on both.
async fn leftovers(clusters: &[Arc<LocalCluster>], database: &str) -> Vec<String> {
    let mut left = Vec::new();
    for cluster in clusters {
        let client = connect(cluster, "primary", database).await;
        left.extend(
            ecoshard_bridge::db::logical::leftovers(&client, database)
                .await
                .unwrap(),
        );
    }
    left
}

/// Inserts `live_N` one after another until `stop`: the ids acknowledged
/// (201), and every other answer.
async fn insert_until(state: AppState, stop: Arc<AtomicBool>) -> (Vec<String>, Vec<String>) {
    let (mut acknowledged, mut failed) = (Vec::new(), Vec::new());
    for index in 0.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let id = format!("live_{index}");
        let answer = insert(&state, &id).await;
        match answer.status {
            StatusCode::CREATED => acknowledged.push(id),
            status => failed.push(format!("{id}: {status} {}", answer.text())),
        }
    }
    (acknowledged, failed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_shard_moved_under_inserts_and_reads_lands_once_on_its_new_cluster_and_leaves_nothing() {
    let _nodes = common::NODES.read().await;
    let database = "move_under_load";
    let (state, clusters) = bridge_over_both(database).await;
    let keys: Vec<String> = (0..600).map(|index| format!("before_{index}")).collect();
    for key in &keys {
        assert_eq!(insert(&state, key).await.status, StatusCode::CREATED);
    }
    let reads = ReadLoad::start(&state, &keys, &["eventual", "strong"], 3);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(insert_until(state.clone(), Arc::clone(&stop)));
    assert!(reads.goes_on(200).await, "reads never ran");

    let answer = put_layout(&state, &placed(StrategyKind::Ring, 3, &["c2", "c2", "c1"])).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text());
    let started: RebalanceJob = answer.parse();
    let shard_move = started
        .shard_move
        .expect("a placement change shows its shard");
    assert_eq!(
        (
            shard_move.shard.as_str(),
            shard_move.from_cluster.as_str(),
            shard_move.to_cluster.as_str()
        ),
        ("s0", "c1", "c2")
    );
    let job = finished(&state, started.id).await;
    // The load ran across the cutover: it goes on after the job, then stops.
    assert!(reads.goes_on(200).await, "reads stopped");
    stop.store(true, Ordering::Relaxed);
    let (acknowledged, failed_inserts) = writer.await.unwrap();
    let (read_ok, failed_reads) = reads.finish().await;

    assert_eq!(job.state, JobState::Done, "{job:?}");
    let progress = job.shard_move.expect("the job's shard");
    assert_eq!(progress.phase, MovePhase::Done);
    eprintln!(
        "moved s0: {} rows, {} bytes; write pause {:?} ms; {} inserts acknowledged, {} not; \
         {read_ok} reads",
        progress.rows_total,
        progress.bytes_total,
        progress.write_pause_ms,
        acknowledged.len(),
        failed_inserts.len()
    );
    assert!(progress.write_pause_ms.is_some(), "{progress:?}");
    assert_eq!(failed_reads, Vec::<String>::new());
    assert!(!acknowledged.is_empty());
    // Every row where the core and the placement say, exactly once.
    let report: VerifyReport = post(&state, "/api/verify").await.parse();
    assert!(report.clean, "{report:?}");
    for id in keys.iter().chain(&acknowledged) {
        let answer = get(&state, &format!("/api/users/{id}?consistency=strong")).await;
        assert_eq!(answer.status, StatusCode::OK, "{id}: {}", answer.text());
    }
    assert!(
        !has_schema(&clusters[0], database, "s0").await,
        "the source schema is left"
    );
    assert!(has_schema(&clusters[1], database, "s0").await);
    assert_eq!(leftovers(&clusters, database).await, Vec::<String>::new());
    let layout: serde_json::Value = get(&state, "/api/layout").await.json();
    assert_eq!(
        layout["placement"],
        serde_json::json!(["c2", "c2", "c1"]),
        "{layout}"
    );
}

/// The table-synchronisation slot on `cluster`'s primary of a move in
/// `database`, dropped once it exists and is not in use (while the table's
/// copy runs): its name.
async fn drop_sync_slot(cluster: &LocalCluster, database: &str) -> Option<String> {
    let client = connect(cluster, "primary", database).await;
    common::eventually_some(JOB_LIMIT, || async {
        let row = client
            .query_opt(
                "SELECT slot_name::text FROM pg_replication_slots
                  WHERE database = current_database() AND slot_name LIKE 'pg\\_%\\_sync\\_%'
                    AND NOT active",
                &[],
            )
            .await
            .unwrap()?;
        let name: String = row.get(0);
        let sql = "SELECT pg_drop_replication_slot($1)";
        client.execute(sql, &[&name]).await.ok().map(|_| name)
    })
    .await
}

/// PostgreSQL's table synchronisation fails for ever when the source has
/// lost its slot once the table's copy is done (seen after both primaries
/// were stopped just after a copy, their bridge killed): the move sees it,
/// starts over from setting up, and ends with every row on the target.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_copy_whose_synchronisation_slot_the_source_lost_starts_over_and_ends() {
    let _nodes = common::NODES.read().await;
    let database = "lost_sync_slot";
    let (state, clusters) = bridge_over_both(database).await;
    // Rows enough for the copy to last while the slot is dropped.
    let body = r#"{"count": 300000, "prefix": "g_"}"#;
    let answer = common::post_json(&state, "/api/users/generate", body).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
    let answer = put_layout(&state, &placed(StrategyKind::Ring, 3, &["c2", "c2", "c1"])).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text());
    let started: RebalanceJob = answer.parse();
    let dropped = drop_sync_slot(&clusters[0], database).await;
    assert!(dropped.is_some(), "the copy's slot never showed");
    let job = finished(&state, started.id).await;
    assert_eq!(job.state, JobState::Done, "{job:?}");
    let report: VerifyReport = post(&state, "/api/verify").await.parse();
    assert!(report.clean, "{report:?}");
    assert!(!has_schema(&clusters[0], database, "s0").await);
    assert_eq!(leftovers(&clusters, database).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_shards_and_changing_keys_at_once_is_refused_with_two_steps() {
    let _nodes = common::NODES.read().await;
    let (state, _clusters) = bridge_over_both("move_refused").await;
    let answer = put_layout(
        &state,
        &placed(StrategyKind::Ring, 4, &["c2", "c2", "c1", "c1"]),
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text());
    assert_eq!(answer.error_code(), "placement_and_keys");
    assert!(answer.text().contains("two steps"), "{}", answer.text());
    let layout: serde_json::Value = get(&state, "/api/layout").await.json();
    assert_eq!(layout["version"], 1, "nothing stored: {layout}");
}
