//! Bulk inserts and generated data sets over two clusters, each one
//! two-phase transaction: every row lands once on its shard's cluster, a
//! repeat answers 200, an id taken on one cluster writes nothing on the
//! other, and a bulk insert whose coordinator stops after any step ends,
//! once the recovery pass has run, with all its rows or none.

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use ecoshard_bridge::service::twophase::TwoPhase;
use ecoshard_bridge::{AppState, ClusterSpec, LocalCluster, Topology};
use ecoshard_core::wire::{BulkResult, GenerateResult};
use tokio::time::Instant;

use common::{LIMIT, SharedClusters, bridge_with, connect, prepared, recovery};

/// This binary's two clusters, primaries alone, on ports from 22000.
static CLUSTERS: SharedClusters = SharedClusters::new("bulk_across", 22000, 2, 0);

/// A bridge over `c1` and `c2` on its own database (a ring of 3 shards:
/// s0, s2 on c1, s1 on c2).
async fn bridge_over_both(database: &str) -> (AppState, Vec<Arc<LocalCluster>>) {
    let clusters = CLUSTERS.get();
    let c2 = ClusterSpec {
        name: "c2".to_string(),
        topology: Topology::local(&clusters[1], database),
        control: None,
    };
    let state = bridge_with(&clusters[0], database, |config| {
        config.other_clusters = vec![c2];
    })
    .await;
    (state, clusters)
}

/// Every (user_id, shard, cluster) starting with `prefix`, over the shards
/// each cluster holds under the layout in force, sorted.
async fn stored(
    state: &AppState,
    clusters: &[Arc<LocalCluster>],
    database: &str,
    prefix: &str,
) -> Vec<(String, String, String)> {
    let layout = state.service().routing().table().view().layout;
    let mut rows = Vec::new();
    for (cluster, name) in clusters.iter().zip(["c1", "c2"]) {
        let client = connect(cluster, "primary", database).await;
        for shard in &layout.shards {
            if shard.cluster.as_deref() != Some(name) {
                continue;
            }
            let sql = format!(
                "SELECT user_id FROM \"shard_{}\".users WHERE starts_with(user_id, $1)",
                shard.name
            );
            for row in client.query(&sql, &[&prefix]).await.expect("read") {
                rows.push((row.get(0), shard.name.clone(), name.to_string()));
            }
        }
    }
    rows.sort();
    rows
}

/// Where the core puts `<prefix>0` … `<prefix>{count-1}`: (id, shard,
/// cluster), sorted.
fn expected(state: &AppState, prefix: &str, count: u64) -> Vec<(String, String, String)> {
    let layout = state.service().routing().table().view().layout;
    let router = layout.build().expect("layout");
    let mut rows: Vec<_> = (0..count)
        .map(|index| {
            let id = format!("{prefix}{index}");
            let shard = router.locate_shard(id.as_bytes());
            let cluster = shard.cluster.clone().expect("named");
            (id, shard.name.clone(), cluster)
        })
        .collect();
    rows.sort();
    rows
}

#[tokio::test]
async fn bulk_and_generate_over_two_clusters_land_each_row_on_its_shards_cluster_once() {
    let database = "bulk_across_lands";
    let (state, clusters) = bridge_over_both(database).await;
    let body = r#"{"count": 500, "prefix": "b_"}"#;
    let answer = common::post_json(&state, "/api/users/bulk", body).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
    let result: BulkResult = answer.parse();
    assert_eq!(result.inserted, 500);
    let clusters_answered: Vec<&str> = result.lsns.keys().map(String::as_str).collect();
    assert_eq!(clusters_answered, ["c1", "c2"], "{result:?}");
    assert_eq!(Some(&result.lsn), result.lsns.get("c1"));
    assert!(result.lsns["c2"].starts_with("c2/"), "{result:?}");
    assert_eq!(
        stored(&state, &clusters, database, "b_").await,
        expected(&state, "b_", 500)
    );
    let again = common::post_json(&state, "/api/users/bulk", body).await;
    assert_eq!(again.status, StatusCode::OK, "a repeat: {}", again.text());
    assert_eq!(again.parse::<BulkResult>().inserted, 0);

    let body = r#"{"count": 3000, "prefix": "g_"}"#;
    let answer = common::post_json(&state, "/api/users/generate", body).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
    let result: GenerateResult = answer.parse();
    assert_eq!(result.inserted, 3000);
    assert_eq!(result.lsns.len(), 2, "{result:?}");
    assert_eq!(
        stored(&state, &clusters, database, "g_").await,
        expected(&state, "g_", 3000)
    );
    let again = common::post_json(&state, "/api/users/generate", body).await;
    assert_eq!(again.status, StatusCode::OK, "a repeat: {}", again.text());
    assert_eq!(again.parse::<GenerateResult>().inserted, 0);
    assert_eq!(prepared(&clusters, database).await, Vec::<String>::new());
}

#[tokio::test]
async fn an_id_taken_on_one_cluster_leaves_a_bulk_insert_unwritten_on_both() {
    let database = "bulk_across_taken";
    let (state, clusters) = bridge_over_both(database).await;
    // d_ ids land on both clusters; one of them taken on c2, named otherwise.
    let (taken, _, cluster) = expected(&state, "d_", 50)
        .into_iter()
        .find(|(_, _, cluster)| cluster == "c2")
        .expect("an id on c2");
    let user = format!(r#"{{"user_id":"{taken}","name":"Someone Else"}}"#);
    let answer = common::post_json(&state, "/api/users", &user).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
    for path in ["/api/users/bulk", "/api/users/generate"] {
        let answer = common::post_json(&state, path, r#"{"count": 50, "prefix": "d_"}"#).await;
        assert_eq!(
            answer.status,
            StatusCode::CONFLICT,
            "{path}: {}",
            answer.text()
        );
        assert_eq!(answer.error_code(), "duplicate_user", "{path}");
        let rows = stored(&state, &clusters, database, "d_").await;
        assert_eq!(rows, [(taken.clone(), rows[0].1.clone(), cluster.clone())]);
    }
    assert_eq!(prepared(&clusters, database).await, Vec::<String>::new());
}

/// Steps of a bulk insert's coordinator after its statements, in order.
const STEPS: [&str; 5] = ["prepare c1", "prepare c2", "decide", "commit", "commit"];

#[tokio::test]
async fn a_bulk_insert_stopped_after_any_step_converges_to_all_or_nothing() {
    let database = "bulk_across_stops";
    let (state, clusters) = bridge_over_both(database).await;
    for steps in 0..=STEPS.len() {
        let prefix = format!("s{steps}_");
        let mut transaction = TwoPhase::begin(state.service(), "test", Instant::now() + LIMIT)
            .await
            .expect("begin");
        let joined = transaction
            .join_bulk(state.service(), &prefix, 200)
            .await
            .expect("the bulk insert's statements");
        assert_eq!(joined, ["c1", "c2"]);
        for step in &STEPS[..steps] {
            let done = match *step {
                "prepare c1" => transaction.prepare("c1").await,
                "prepare c2" => transaction.prepare("c2").await,
                "decide" => transaction.decide(&[]).await.map(drop),
                _ => transaction.commit_next().await.map(drop),
            };
            done.unwrap_or_else(|error| panic!("{step}: {error}"));
        }
        drop(transaction);
        recovery(&state).await;
        let decided = steps >= 3;
        let rows = stored(&state, &clusters, database, &prefix).await;
        let all = expected(&state, &prefix, 200);
        assert_eq!(
            rows,
            if decided { all } else { vec![] },
            "after {steps} steps"
        );
        assert_eq!(prepared(&clusters, database).await, Vec::<String>::new());
        let body = format!(r#"{{"count": 200, "prefix": "{prefix}"}}"#);
        let answer = common::post_json(&state, "/api/users/bulk", &body).await;
        let status = if decided {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        assert_eq!(
            answer.status,
            status,
            "after {steps} steps: {}",
            answer.text()
        );
    }
}
