//! Two-phase commit across two clusters' primaries, driven through the
//! library: a transaction commits on both or on neither, whatever step its
//! coordinator stops at, once the recovery pass has run; and recovery never
//! rolls back a transaction whose coordinator is alive and deciding.

mod common;

use std::sync::Arc;

use ecoshard_bridge::service::TwoPhaseError;
use ecoshard_bridge::service::twophase::{
    Committed, KEEP_DONE, RECOVERY_DEADLINE, Recovered, TwoPhase, recover,
};
use ecoshard_bridge::{AppState, ClusterSpec, LocalCluster, Topology};
use tokio::time::Instant;

use common::{LIMIT, SharedClusters, bridge_with, connect, eventually_some, prepared, recovery};

/// This binary's two clusters, primaries alone, on ports from 24800.
static CLUSTERS: SharedClusters = SharedClusters::new("twophase", 24800, 2, 0);

/// A bridge over `c1` and `c2` on its own database, with a table `moved`
/// on both primaries.
async fn bridge_over_both(database: &str) -> (AppState, Vec<Arc<LocalCluster>>) {
    bridge_over_both_with(database, ecoshard_bridge::DEFAULT_BATCH_ROWS).await
}

/// [`bridge_over_both`], a rebalance moving `batch_rows` rows per transaction.
async fn bridge_over_both_with(
    database: &str,
    batch_rows: usize,
) -> (AppState, Vec<Arc<LocalCluster>>) {
    let clusters = CLUSTERS.get();
    let c2 = ClusterSpec {
        name: "c2".to_string(),
        topology: Topology::local(&clusters[1], database),
        control: None,
    };
    let state = bridge_with(&clusters[0], database, |config| {
        config.other_clusters = vec![c2];
        config.rebalance_batch = batch_rows;
    })
    .await;
    for cluster in &clusters {
        connect(cluster, "primary", database)
            .await
            .batch_execute("CREATE TABLE moved (id text PRIMARY KEY)")
            .await
            .expect("create the table");
    }
    (state, clusters)
}

/// Rows with `id` on each cluster's primary, `c1` first.
async fn rows(clusters: &[Arc<LocalCluster>], database: &str, id: &str) -> Vec<i64> {
    let mut counts = Vec::new();
    for cluster in clusters {
        let client = connect(cluster, "primary", database).await;
        let sql = "SELECT count(*) FROM moved WHERE id = $1";
        counts.push(client.query_one(sql, &[&id]).await.expect(sql).get(0));
    }
    counts
}

/// The decision on `txid` in the catalog: `None` when there is none, else
/// whether it is done.
async fn decision(clusters: &[Arc<LocalCluster>], database: &str, txid: i64) -> Option<bool> {
    let client = connect(&clusters[0], "primary", database).await;
    let sql = "SELECT done_at IS NOT NULL FROM ecoshard.decisions WHERE txid = $1";
    let found = client.query_opt(sql, &[&txid]).await.expect(sql);
    found.map(|row| row.get(0))
}

/// Opens a transaction inserting `id` on both clusters.
async fn insert_on_both(state: &AppState, id: &str) -> TwoPhase {
    let deadline = Instant::now() + LIMIT;
    let mut transaction = TwoPhase::begin(state.service(), "test", deadline)
        .await
        .expect("begin");
    for cluster in ["c1", "c2"] {
        let client = transaction.join(cluster).await.expect("join");
        client
            .execute("INSERT INTO moved VALUES ($1)", &[&id])
            .await
            .expect("insert");
    }
    transaction
}

#[tokio::test]
async fn a_transaction_across_both_clusters_commits_on_both() {
    let database = "twophase_commits";
    let (state, clusters) = bridge_over_both(database).await;
    let transaction = insert_on_both(&state, "k").await;
    let committed = transaction.commit(&["c2"]).await.expect("commit");
    assert!(committed.finished, "{committed:?}");
    assert_eq!(rows(&clusters, database, "k").await, [1, 1]);
    assert_eq!(
        decision(&clusters, database, committed.txid).await,
        Some(true)
    );
    assert_eq!(prepared(&clusters, database).await, Vec::<String>::new());
}

#[tokio::test]
async fn recovery_prunes_decisions_done_long_ago_and_keeps_the_rest() {
    let database = "twophase_prunes";
    let (state, clusters) = bridge_over_both(database).await;
    let mut txids = Vec::new();
    for id in ["old", "recent"] {
        let transaction = insert_on_both(&state, id).await;
        txids.push(transaction.commit(&["c2"]).await.expect("commit").txid);
    }
    let client = connect(&clusters[0], "primary", database).await;
    let aged = format!(
        "UPDATE ecoshard.decisions SET done_at = now() - interval '{} seconds' WHERE txid = $1",
        KEEP_DONE.as_secs() + 60
    );
    client.execute(&aged, &[&txids[0]]).await.expect("age");
    let recovered = recovery(&state).await;
    assert_eq!(recovered.pruned, 1, "{recovered:?}");
    assert_eq!(decision(&clusters, database, txids[0]).await, None);
    assert_eq!(decision(&clusters, database, txids[1]).await, Some(true));
    assert_eq!(rows(&clusters, database, "old").await, [1, 1]);
}

#[tokio::test]
async fn a_failed_statement_before_the_decision_leaves_nothing_on_either_cluster() {
    let database = "twophase_fails";
    let (state, clusters) = bridge_over_both(database).await;
    let mut transaction = insert_on_both(&state, "k").await;
    transaction.prepare("c1").await.expect("prepare c1");
    let txid = transaction.txid();
    let failing = transaction.client("c2").expect("c2 joined");
    let refused = failing.execute("SELECT 1 / 0", &[]).await;
    assert!(refused.is_err(), "division by zero");
    let error = transaction
        .commit(&["c2"])
        .await
        .expect_err("not committed");
    assert!(
        matches!(&error, TwoPhaseError::NotCommitted { cluster, step: "preparing", .. } if cluster == "c2"),
        "{error:?}"
    );
    assert_eq!(rows(&clusters, database, "k").await, [0, 0]);
    assert_eq!(prepared(&clusters, database).await, Vec::<String>::new());
    assert_eq!(decision(&clusters, database, txid).await, None);
}

/// Steps of a coordinator, in order; a stop after `k` of them.
const STEPS: [&str; 5] = [
    "prepare c1",
    "prepare c2",
    "decide",
    "commit c2",
    "commit c1",
];

/// Runs the first `steps` steps of a transaction inserting `id` on both
/// clusters, then drops its coordinator there (its connections closed, as
/// a killed process's); its id.
async fn stopped_after(state: &AppState, id: &str, steps: usize) -> i64 {
    let mut transaction = insert_on_both(state, id).await;
    for step in &STEPS[..steps] {
        let done = match *step {
            "prepare c1" => transaction.prepare("c1").await,
            "prepare c2" => transaction.prepare("c2").await,
            "decide" => transaction.decide(&["c2"]).await.map(drop),
            _ => transaction.commit_next().await.map(drop),
        };
        done.unwrap_or_else(|error| panic!("{step}: {error}"));
    }
    transaction.txid()
}

#[tokio::test]
async fn a_coordinator_stopped_after_any_step_converges_to_what_the_log_says() {
    let database = "twophase_stops";
    let (state, clusters) = bridge_over_both(database).await;
    for steps in 0..=STEPS.len() {
        let id = format!("after-{steps}");
        let txid = stopped_after(&state, &id, steps).await;
        let decided = steps >= 3;
        assert_eq!(
            decision(&clusters, database, txid).await.is_some(),
            decided,
            "stopped after {steps} steps"
        );
        recovery(&state).await;
        let expected = if decided { [1, 1] } else { [0, 0] };
        assert_eq!(
            rows(&clusters, database, &id).await,
            expected,
            "stopped after {steps} steps"
        );
        assert_eq!(
            prepared(&clusters, database).await,
            Vec::<String>::new(),
            "stopped after {steps} steps"
        );
        let logged = decision(&clusters, database, txid).await;
        assert_eq!(
            logged,
            decided.then_some(true),
            "stopped after {steps} steps"
        );
    }
}

#[tokio::test]
async fn recovery_leaves_a_live_coordinators_prepared_parts_alone() {
    let database = "twophase_live";
    let (state, clusters) = bridge_over_both(database).await;
    let mut transaction = insert_on_both(&state, "k").await;
    transaction.prepare("c1").await.expect("prepare c1");
    transaction.prepare("c2").await.expect("prepare c2");
    let refused = recover(state.service(), Instant::now() + RECOVERY_DEADLINE).await;
    assert_eq!(refused, Err(TwoPhaseError::RecoveryBusy));
    assert_eq!(prepared(&clusters, database).await.len(), 2);
    let Committed { finished, .. } = transaction.commit(&["c2"]).await.expect("commit");
    assert!(finished);
    assert_eq!(rows(&clusters, database, "k").await, [1, 1]);
    assert_eq!(recovery(&state).await, Recovered::default());
}

/// Every (user_id, shard) on every primary, over the shards of `layout`.
async fn stored_rows(
    clusters: &[Arc<LocalCluster>],
    database: &str,
    layout: &ecoshard_core::Layout,
) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    for cluster in clusters {
        let client = connect(cluster, "primary", database).await;
        for shard in &layout.shards {
            let sql = format!("SELECT user_id FROM \"shard_{}\".users", shard.name);
            // A shard on the other cluster has no schema here.
            if let Ok(found) = client.query(&sql, &[]).await {
                rows.extend(
                    found
                        .into_iter()
                        .map(|row| (row.get(0), shard.name.clone())),
                );
            }
        }
    }
    rows.sort();
    rows
}

#[tokio::test]
async fn keys_move_between_clusters_each_batch_in_one_two_phase_transaction() {
    use axum::http::StatusCode;
    use ecoshard_core::wire::{JobState, RebalanceJob};
    let database = "twophase_moves";
    let (state, clusters) = bridge_over_both_with(database, 97).await;
    let ids: Vec<String> = (0..1_500).map(|index| format!("user_{index}")).collect();
    for id in &ids {
        let body = format!(r#"{{"user_id":"{id}"}}"#);
        let answer = common::post_json(&state, "/api/users", &body).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
    }
    let reads = common::ReadLoad::start(&state, &ids, &["strong"], 4);
    let started = common::put_layout(&state, r#"{"strategy":"ring","shards":4}"#).await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.text());
    let job: RebalanceJob = started.parse();
    let done = eventually_some(LIMIT, || async {
        let job: RebalanceJob = common::get(&state, &format!("/api/rebalance/{}", job.id))
            .await
            .parse();
        (job.state != JobState::Running).then_some(job)
    })
    .await
    .expect("the job ends");
    assert!(reads.goes_on(50).await, "reads stopped");
    let (_, failed) = reads.finish().await;
    assert_eq!(failed, Vec::<String>::new(), "failed reads");
    assert_eq!(done.state, JobState::Done, "{done:?}");
    let plan = done.plan.expect("plan");
    assert!(plan.moved_across_clusters > 0, "{plan:?}");
    assert_eq!(done.moved, plan.moved);
    let layout = state.service().routing().table().view().layout;
    let router = layout.build().expect("layout");
    let rows = stored_rows(&clusters, database, &layout).await;
    let expected: Vec<(String, String)> = {
        let mut expected: Vec<(String, String)> = ids
            .iter()
            .map(|id| (id.clone(), router.locate_shard(id.as_bytes()).name.clone()))
            .collect();
        expected.sort();
        expected
    };
    assert_eq!(rows, expected, "each row once, where the core says");
    assert_eq!(prepared(&clusters, database).await, Vec::<String>::new());
    let catalog = connect(&clusters[0], "primary", database).await;
    let sql = "SELECT coalesce(sum(rows), 0)::bigint FROM ecoshard.moves \
               WHERE job = $1 AND from_cluster <> to_cluster";
    let across: i64 = catalog
        .query_one(sql, &[&(done.id as i64)])
        .await
        .expect(sql)
        .get(0);
    assert_eq!(across as u64, plan.moved_across_clusters);
    let sql = "SELECT count(*) FROM ecoshard.decisions WHERE done_at IS NULL";
    let open: i64 = catalog.query_one(sql, &[]).await.expect(sql).get(0);
    assert_eq!(open, 0, "decisions not done");
}

/// Where `id` is under a ring of `shards` shards placed over c1, c2:
/// (shard, cluster).
fn placed(shards: u64, id: &str) -> (String, String) {
    let layout = common::ring(shards).placed(&["c1", "c2"]).expect("placed");
    let router = layout.build().expect("layout");
    let shard = router.locate_shard(id.as_bytes());
    (shard.name.clone(), shard.cluster.clone().expect("named"))
}

#[tokio::test]
async fn an_insert_during_a_move_between_clusters_finds_the_id_at_its_old_owner() {
    use axum::http::StatusCode;
    use ecoshard_core::wire::{JobState, RebalanceJob};
    let database = "twophase_inserts";
    let (state, clusters) = bridge_over_both_with(database, 50).await;
    let across = |id: &String| placed(3, id).1 != placed(4, id).1;
    let ids: Vec<String> = (0..400).map(|index| format!("user_{index}")).collect();
    for id in &ids {
        let body = format!(r#"{{"user_id":"{id}"}}"#);
        let answer = common::post_json(&state, "/api/users", &body).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
    }
    // The mover takes batches in order of (from, to) shards, then id: a
    // lock on every row that moves holds it at its first batch.
    let moving: Vec<&String> = ids.iter().filter(|id| across(id)).collect();
    let (old_shard, old_cluster) = placed(3, moving[0]);
    let index = if old_cluster == "c1" { 0 } else { 1 };
    let mut holder = connect(&clusters[index], "primary", database).await;
    let lock = holder.transaction().await.expect("begin");
    let sql = format!("SELECT 1 FROM \"shard_{old_shard}\".users FOR UPDATE");
    lock.execute(&sql, &[]).await.expect("lock");
    let started = common::put_layout(&state, r#"{"strategy":"ring","shards":4}"#).await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.text());
    let job: RebalanceJob = started.parse();
    let still = moving
        .iter()
        .find(|id| placed(3, id).0 == old_shard)
        .expect("a row held at its old owner");
    let insert = |json: String| {
        let state = state.clone();
        async move { common::post_json(&state, "/api/users", &json).await.status }
    };
    let repeat = format!(r#"{{"user_id":"{still}"}}"#);
    assert_eq!(insert(repeat).await, StatusCode::OK, "a repeat of {still}");
    let other = format!(r#"{{"user_id":"{still}","name":"Other"}}"#);
    assert_eq!(insert(other).await, StatusCode::CONFLICT, "another {still}");
    let fresh = (400..)
        .map(|index| format!("user_{index}"))
        .find(|id| across(id))
        .expect("a fresh id moving between clusters");
    let new = format!(r#"{{"user_id":"{fresh}"}}"#);
    assert_eq!(insert(new).await, StatusCode::CREATED, "{fresh}");
    lock.rollback().await.expect("release");
    let done = eventually_some(LIMIT, || async {
        let job: RebalanceJob = common::get(&state, &format!("/api/rebalance/{}", job.id))
            .await
            .parse();
        (job.state != JobState::Running).then_some(job)
    })
    .await
    .expect("the job ends");
    assert_eq!(done.state, JobState::Done, "{done:?}");
    let layout = state.service().routing().table().view().layout;
    let router = layout.build().expect("layout");
    let mut expected: Vec<(String, String)> = ids
        .iter()
        .chain([&fresh])
        .map(|id| (id.clone(), router.locate_shard(id.as_bytes()).name.clone()))
        .collect();
    expected.sort();
    let rows = stored_rows(&clusters, database, &layout).await;
    assert_eq!(rows, expected, "each row once, where the core says");
}
