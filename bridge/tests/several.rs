//! A bridge operating two local clusters (`c1` and `c2`, a primary and one
//! standby each): both are shown, checked, controlled and failed over on
//! their own; each row goes to its shard's cluster and is read there; and
//! a bridge over one cluster answers exactly as it always did.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::http::StatusCode;
use ecoshard_bridge::{AppState, ClusterSpec, LocalCluster, Topology};
use ecoshard_core::wire::{ClusterNodes, ClusterView, NodeRole, ReadResult, Tick, UserSample};

use common::{
    LIMIT, NODES, SharedClusters, bridge_with, connect, control, eventually, eventually_some, get,
    post, post_json, view,
};

/// This binary's two clusters of one standby each, on ports from 25800.
static CLUSTERS: SharedClusters = SharedClusters::new("several", 25800, 2, 1);

/// A bridge over `c1` and `c2` on its own database.
async fn bridge_over_both(
    database: &str,
    auto_failover: bool,
) -> (AppState, Vec<Arc<LocalCluster>>) {
    let clusters = CLUSTERS.get();
    let c2 = ClusterSpec {
        name: "c2".to_string(),
        topology: Topology::local(&clusters[1], database),
        control: control(&clusters[1]),
    };
    let state = bridge_with(&clusters[0], database, |config| {
        config.control = control(&clusters[0]);
        config.auto_failover = auto_failover;
        config.other_clusters = vec![c2];
    })
    .await;
    (state, clusters)
}

/// The cluster called `name` of `clusters`.
fn cluster<'a>(clusters: &'a [ClusterNodes], name: &str) -> &'a ClusterNodes {
    clusters
        .iter()
        .find(|cluster| cluster.name == name)
        .unwrap_or_else(|| panic!("no cluster {name} in {clusters:?}"))
}

/// Whether every node of `cluster` is up and every standby streams, with
/// one primary.
fn healthy(cluster: &ClusterNodes) -> bool {
    let primaries = cluster
        .nodes
        .iter()
        .filter(|node| node.role == NodeRole::Primary)
        .count();
    primaries == 1
        && cluster.nodes.iter().all(|node| {
            node.up
                && (node.role == NodeRole::Primary
                    || node
                        .lag
                        .as_ref()
                        .is_some_and(|lag| lag.state.as_deref() == Some("streaming")))
        })
}

/// Waits until both clusters are healthy in the bridge's view.
async fn wait_healthy(state: &AppState) {
    let ok = eventually(LIMIT, || async {
        let view = view(state).await;
        view.clusters.len() == 2 && view.clusters.iter().all(healthy)
    })
    .await;
    assert!(ok, "the clusters are not healthy: {:?}", view(state).await);
}

/// The last tick's clusters (none before the first tick).
fn tick_clusters(state: &AppState) -> Vec<ClusterNodes> {
    state.service().latest_tick().map_or_else(Vec::new, |json| {
        serde_json::from_str::<Tick>(&json)
            .expect("tick JSON")
            .clusters
    })
}

/// The JSON object's keys.
fn keys(value: &serde_json::Value) -> BTreeSet<String> {
    value
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect()
}

#[tokio::test]
async fn the_view_and_the_tick_list_both_clusters_healthy_and_streaming() {
    let _nodes = NODES.read().await;
    let (state, _clusters) = bridge_over_both("several_view", false).await;
    wait_healthy(&state).await;
    let view = view(&state).await;
    let names: Vec<&str> = view.clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["c1", "c2"]);
    for each in &view.clusters {
        let nodes: Vec<&str> = each.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(nodes, ["primary", "standby-1"], "{}", each.name);
    }
    assert_eq!(
        view.nodes,
        cluster(&view.clusters, "c1").nodes,
        "nodes is c1's"
    );
    let ok = eventually(LIMIT, || async {
        let clusters = tick_clusters(&state);
        clusters.len() == 2 && clusters.iter().all(healthy)
    })
    .await;
    assert!(
        ok,
        "the tick does not list both: {:?}",
        tick_clusters(&state)
    );
}

#[tokio::test]
async fn stopping_c2_s_standby_shows_it_down_and_leaves_c1_alone() {
    let _nodes = NODES.write().await;
    let (state, _clusters) = bridge_over_both("several_stop", false).await;
    wait_healthy(&state).await;
    let before = view(&state).await;
    let c2 = cluster(&before.clusters, "c2");
    let standby = c2.nodes.iter().find(|n| n.role == NodeRole::Standby);
    let name = standby.expect("c2 has a standby").name.clone();
    let stopped = post(&state, &format!("/api/clusters/c2/nodes/{name}/stop")).await;
    assert_eq!(stopped.status, StatusCode::OK, "{}", stopped.text());
    let down = |clusters: &[ClusterNodes]| {
        let c2 = cluster(clusters, "c2");
        c2.nodes.iter().any(|n| n.name == name && !n.up)
    };
    let after = view(&state).await;
    assert!(down(&after.clusters), "c2's {name} is not down: {after:?}");
    let in_tick = eventually(LIMIT, || async { down(&tick_clusters(&state)) }).await;
    assert!(in_tick, "c2's {name} is not down in the tick");
    let after = view(&state).await;
    assert!(
        healthy(cluster(&after.clusters, "c1")),
        "c1 changed: {after:?}"
    );
    assert!(
        after.nodes.iter().all(|node| node.up),
        "c1's nodes: {after:?}"
    );
    let started = post(&state, &format!("/api/clusters/c2/nodes/{name}/start")).await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.text());
    wait_healthy(&state).await;
}

#[tokio::test]
async fn node_actions_name_an_unknown_cluster_or_node_with_a_404() {
    let _nodes = NODES.read().await;
    let (state, _clusters) = bridge_over_both("several_unknown", false).await;
    let check = |uri: &'static str, code: &'static str| {
        let state = state.clone();
        async move {
            let answer = post(&state, uri).await;
            assert_eq!(
                answer.status,
                StatusCode::NOT_FOUND,
                "{uri}: {}",
                answer.text()
            );
            assert_eq!(answer.error_code(), code, "{uri}");
        }
    };
    check("/api/clusters/c3/nodes/primary/stop", "unknown_cluster").await;
    check("/api/clusters/c2/nodes/standby-9/stop", "unknown_node").await;
    check("/api/clusters/c2/nodes/standby-9/start", "unknown_node").await;
    check("/api/nodes/c2%2Fprimary/stop", "unknown_node").await;
}

#[tokio::test]
async fn auto_failover_of_c2_promotes_c2_s_standby_and_leaves_c1_untouched() {
    let _nodes = NODES.write().await;
    let (state, _clusters) = bridge_over_both("several_failover", true).await;
    wait_healthy(&state).await;
    let before = view(&state).await;
    let primary_of = |cluster: &ClusterNodes| {
        let node = cluster.nodes.iter().find(|n| n.role == NodeRole::Primary);
        node.expect("a primary").name.clone()
    };
    let old = primary_of(cluster(&before.clusters, "c2"));
    let c1_primary = primary_of(cluster(&before.clusters, "c1"));
    let uri = format!("/api/clusters/c2/nodes/{old}/stop?mode=immediate");
    let stopped = post(&state, &uri).await;
    assert_eq!(stopped.status, StatusCode::OK, "{}", stopped.text());
    let promoted = common::eventually_some(LIMIT, || async {
        let view = view(&state).await;
        let c2 = cluster(&view.clusters, "c2");
        c2.failover.last.clone()
    })
    .await
    .expect("c2 never failed over");
    assert_eq!(promoted.from, old);
    let after = view(&state).await;
    assert_eq!(primary_of(cluster(&after.clusters, "c2")), promoted.to);
    assert_eq!(primary_of(cluster(&after.clusters, "c1")), c1_primary);
    assert_eq!(after.failover.last, None, "c1 failed over: {after:?}");
    let metrics = get(&state, "/metrics").await.text();
    assert!(
        metrics.contains("ecoshard_failovers_total{cluster=\"c2\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ecoshard_failovers_total{cluster=\"c1\"} 0"),
        "{metrics}"
    );
    let written = post_json(&state, "/api/users", r#"{"user_id":"after-c2-failover"}"#).await;
    assert_eq!(written.status, StatusCode::CREATED, "{}", written.text());
    let started = post(&state, &format!("/api/clusters/c2/nodes/{old}/start")).await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.text());
    wait_healthy(&state).await;
}

/// The name of `cluster`'s primary now in the bridge's view.
async fn primary_of(state: &AppState, name: &str) -> String {
    cluster(&view(state).await.clusters, name)
        .nodes
        .iter()
        .find(|node| node.role == NodeRole::Primary)
        .map(|node| node.name.clone())
        .expect("a primary")
}

/// Rows in each shard schema of the database on `client`'s server.
async fn shard_rows(client: &tokio_postgres::Client) -> Vec<(String, i64)> {
    let schemas = "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'shard%' ORDER BY 1";
    let mut rows = Vec::new();
    for row in client.query(schemas, &[]).await.expect(schemas) {
        let schema: String = row.get(0);
        let count = format!("SELECT count(*) FROM \"{schema}\".users");
        let counted: i64 = client.query_one(&count, &[]).await.expect(&count).get(0);
        rows.push((schema, counted));
    }
    rows
}

#[tokio::test]
async fn inserts_and_reads_go_to_their_shard_s_cluster_only() {
    let _nodes = NODES.read().await;
    let (state, clusters) = bridge_over_both("several_data", false).await;
    wait_healthy(&state).await;
    let layout = get(&state, "/api/layout").await.json();
    assert_eq!(
        layout["placement"],
        serde_json::json!(["c1", "c2", "c1"]),
        "{layout}"
    );
    let mut on_c2 = None;
    for index in 0..30 {
        let body = format!(r#"{{"user_id":"user_{index}"}}"#);
        let written = post_json(&state, "/api/users", &body).await;
        assert_eq!(written.status, StatusCode::CREATED, "{}", written.text());
        let answer = written.json();
        let shard = answer["shard"].as_str().expect("shard").to_string();
        let expected = if shard == "s1" { "c2" } else { "c1" };
        assert_eq!(answer["cluster"], expected, "{answer}");
        let token = answer["lsn"].as_str().expect("lsn");
        assert!(token.starts_with(&format!("{expected}/")), "{answer}");
        if expected == "c2" {
            on_c2 = Some(format!("user_{index}"));
        }
    }
    let c1 = connect(
        &clusters[0],
        &primary_of(&state, "c1").await,
        "several_data",
    )
    .await;
    let c2 = connect(
        &clusters[1],
        &primary_of(&state, "c2").await,
        "several_data",
    )
    .await;
    let (c1_rows, c2_rows) = (shard_rows(&c1).await, shard_rows(&c2).await);
    let names = |rows: &[(String, i64)]| {
        rows.iter()
            .map(|(name, _)| name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(&c1_rows),
        ["shard_s0", "shard_s2"],
        "c1 holds s0 and s2 only"
    );
    assert_eq!(names(&c2_rows), ["shard_s1"], "c2 holds s1 only");
    let total: i64 = c1_rows.iter().chain(&c2_rows).map(|(_, rows)| rows).sum();
    assert_eq!(total, 30, "every row once: {c1_rows:?} {c2_rows:?}");
    let user = on_c2.expect("a user on s1");
    let standby = cluster(&view(&state).await.clusters, "c2")
        .nodes
        .iter()
        .find(|node| node.role == NodeRole::Standby)
        .map(|node| node.name.clone())
        .expect("c2's standby");
    let served = eventually_some(LIMIT, || async {
        let read: ReadResult = get(&state, &format!("/api/users/{user}")).await.parse();
        (read.served_by == standby).then_some(read)
    })
    .await
    .expect("an eventual read served by c2's standby");
    assert_eq!(served.cluster.as_deref(), Some("c2"));
    assert_eq!(served.shard, "s1");
}

/// The last tick's reads per node of each cluster, by `cluster/node`
/// (count, per second), and its `stats.reads` (the first cluster's).
fn tick_reads(state: &AppState) -> (BTreeMap<String, (u64, f64)>, BTreeMap<String, u64>) {
    let Some(json) = state.service().latest_tick() else {
        return (BTreeMap::new(), BTreeMap::new());
    };
    let tick: Tick = serde_json::from_str(&json).expect("tick JSON");
    let each = tick
        .stats
        .clusters
        .iter()
        .flat_map(|cluster| {
            cluster.reads.iter().map(|count| {
                let key = format!("{}/{}", cluster.cluster, count.node);
                (key, (count.count, count.per_sec))
            })
        })
        .collect();
    let first = tick
        .stats
        .reads
        .iter()
        .map(|count| (count.node.clone(), count.count))
        .collect();
    (each, first)
}

#[tokio::test]
async fn reads_of_keys_on_c2_count_on_c2_s_standby_in_the_tick_and_not_on_c1_s() {
    let _nodes = NODES.read().await;
    let (state, _clusters) = bridge_over_both("several_reads", false).await;
    wait_healthy(&state).await;
    let on_c2: Vec<String> = insert_each(&state, "reads_", 30)
        .await
        .into_iter()
        .filter(|(_, cluster, _)| cluster == "c2")
        .map(|(id, _, _)| id)
        .collect();
    assert!(!on_c2.is_empty(), "no key of the 30 lives on c2");
    let ok = eventually(LIMIT, || async { !tick_reads(&state).0.is_empty() }).await;
    assert!(ok, "no tick with reads per cluster");
    let (before, c1_before) = tick_reads(&state);
    let names: Vec<&str> = before.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["c1/primary", "c1/standby-1", "c2/primary", "c2/standby-1"]
    );
    // An earlier failover test may have swapped c2's roles: its standby is
    // whichever node is not its primary now.
    let standby = match primary_of(&state, "c2").await.as_str() {
        "primary" => "c2/standby-1",
        _ => "c2/primary",
    };
    // Read c2's keys until a tick shows c2's standby counting them at a rate.
    let seen = eventually_some(LIMIT, || async {
        for id in &on_c2 {
            let read = get(&state, &format!("/api/users/{id}")).await;
            assert_eq!(read.status, StatusCode::OK, "{}", read.text());
        }
        let (now, first) = tick_reads(&state);
        let (count, per_sec) = now[standby];
        (count > before[standby].0 && per_sec > 0.0).then_some((now, first))
    })
    .await;
    let (after, c1_after) = seen.expect("c2's standby never counted a read of c2's keys");
    for node in ["c1/primary", "c1/standby-1"] {
        assert_eq!(after[node].0, before[node].0, "{node} counted c2's reads");
    }
    assert_eq!(c1_after, c1_before, "stats.reads is c1's and unchanged");
    assert_eq!(
        c1_after.get("standby-1").copied(),
        Some(after["c1/standby-1"].0),
        "c1's counts are the same in both places"
    );
}

#[tokio::test]
async fn read_your_writes_tokens_name_their_cluster() {
    let _nodes = NODES.write().await;
    let (state, _clusters) = bridge_over_both("several_tokens", false).await;
    wait_healthy(&state).await;
    let written = post_json(&state, "/api/users", r#"{"user_id":"ryw"}"#).await;
    assert_eq!(written.status, StatusCode::CREATED, "{}", written.text());
    let answer = written.json();
    let cluster_name = answer["cluster"].as_str().expect("cluster").to_string();
    let token = answer["lsn"].as_str().expect("lsn").to_string();
    let bare = token.split_once('/').expect("c?/lsn").1.to_string();
    let other = if cluster_name == "c1" { "c2" } else { "c1" };
    let primary = primary_of(&state, &cluster_name).await;
    let read = |lsn: String| {
        let state = state.clone();
        async move {
            let uri = format!("/api/users/ryw?consistency=read-your-writes&lsn={lsn}");
            get(&state, &uri).await
        }
    };
    // A token of another cluster tells nothing of this one: its primary answers.
    let wrong: ReadResult = read(format!("{other}/{bare}")).await.parse();
    assert_eq!(
        (wrong.served_by.as_str(), wrong.cluster.as_deref()),
        (primary.as_str(), Some(cluster_name.as_str()))
    );
    let unknown = read("c9/0/1".to_string()).await;
    assert_eq!(
        unknown.status,
        StatusCode::BAD_REQUEST,
        "{}",
        unknown.text()
    );
    assert_eq!(unknown.error_code(), "invalid_lsn");
    assert!(
        unknown.text().contains("the clusters are c1 or c2"),
        "{}",
        unknown.text()
    );
    // The key's cluster's standby stopped: the token is still honoured.
    let standby = cluster(&view(&state).await.clusters, &cluster_name)
        .nodes
        .iter()
        .find(|node| node.role == NodeRole::Standby)
        .map(|node| node.name.clone())
        .expect("a standby");
    let stop = format!("/api/clusters/{cluster_name}/nodes/{standby}/stop");
    assert_eq!(post(&state, &stop).await.status, StatusCode::OK);
    let fresh = post_json(&state, "/api/users", r#"{"user_id":"ryw"}"#)
        .await
        .json();
    let served: ReadResult = read(fresh["lsn"].as_str().expect("lsn").to_string())
        .await
        .parse();
    assert_eq!(served.served_by, primary);
    assert_eq!(served.user.user_id, "ryw");
    let start = format!("/api/clusters/{cluster_name}/nodes/{standby}/start");
    assert_eq!(post(&state, &start).await.status, StatusCode::OK);
    wait_healthy(&state).await;
}

#[tokio::test]
async fn layout_changes_naming_an_unknown_cluster_or_crossing_clusters_are_refused() {
    let _nodes = NODES.read().await;
    let (state, _clusters) = bridge_over_both("several_layouts", false).await;
    for index in 0..30 {
        let body = format!(r#"{{"user_id":"user_{index}"}}"#);
        assert_eq!(
            post_json(&state, "/api/users", &body).await.status,
            StatusCode::CREATED
        );
    }
    let before = get(&state, "/api/layout").await.text();
    let check = |json: &'static str, code: &'static str, words: &'static str| {
        let state = state.clone();
        async move {
            let answer = common::put_layout(&state, json).await;
            assert_eq!(
                answer.status,
                StatusCode::BAD_REQUEST,
                "{json}: {}",
                answer.text()
            );
            assert_eq!(answer.error_code(), code, "{json}");
            assert!(answer.text().contains(words), "{json}: {}", answer.text());
        }
    };
    check(
        r#"{"strategy":"ring","shards":[{"name":"s0","cluster":"c3"}]}"#,
        "unknown_cluster",
        "shards go on c1, c2",
    )
    .await;
    // Shards to other clusters and keys to other shards at once: two steps
    // (a placement change alone moves the shards: tests/shard_move.rs).
    check(r#"{"strategy":"ring","shards":[{"name":"s0"},{"name":"s1","cluster":"c1"},{"name":"s2"},{"name":"s3"}]}"#, "placement_and_keys", "do it in two steps").await;
    assert_eq!(
        get(&state, "/api/layout").await.text(),
        before,
        "nothing stored"
    );
}

#[tokio::test]
async fn one_cluster_answers_with_the_keys_it_always_had() {
    let _nodes = NODES.read().await;
    let clusters = CLUSTERS.get();
    let state = bridge_with(&clusters[0], "several_one", |_| {}).await;
    let cluster = get(&state, "/api/cluster").await.json();
    let expected = ["failover", "layout", "mode", "nodes"];
    assert_eq!(keys(&cluster), expected.map(String::from).into());
    let json = common::eventually_some(LIMIT, || async { state.service().latest_tick() }).await;
    let tick: serde_json::Value = serde_json::from_str(&json.expect("a tick")).unwrap();
    let expected = [
        "at_ms",
        "failover",
        "layout_version",
        "nodes",
        "rebalance",
        "stats",
    ];
    assert_eq!(keys(&tick), expected.map(String::from).into());
    let nodes: Vec<&str> = cluster["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|node| node["name"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["primary", "standby-1"]);
    let metrics = get(&state, "/metrics").await.text();
    assert!(
        metrics.contains("ecoshard_node_up{node=\"primary\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("ecoshard_failovers_total 0"), "{metrics}");
    assert!(!metrics.contains("cluster=\""), "{metrics}");
}

#[tokio::test]
async fn a_bridge_started_after_c2_failed_over_creates_its_database_on_c2_s_new_primary() {
    let _nodes = NODES.write().await;
    let (state, clusters) = bridge_over_both("several_before", true).await;
    wait_healthy(&state).await;
    let first_is_primary =
        |view: &ClusterView| cluster(&view.clusters, "c2").nodes[0].role == NodeRole::Primary;
    if first_is_primary(&view(&state).await) {
        let stop = "/api/clusters/c2/nodes/primary/stop?mode=immediate";
        let stopped = post(&state, stop).await;
        assert_eq!(stopped.status, StatusCode::OK, "{}", stopped.text());
        let moved = eventually(LIMIT, || async { !first_is_primary(&view(&state).await) }).await;
        assert!(moved, "c2 never failed over: {:?}", view(&state).await);
        let started = post(&state, "/api/clusters/c2/nodes/primary/start").await;
        assert_eq!(started.status, StatusCode::OK, "{}", started.text());
        wait_healthy(&state).await;
    }
    drop(state);
    // c2's first node is a standby now: the new database goes to standby-1.
    let (after, _) = bridge_over_both("several_after", false).await;
    wait_healthy(&after).await;
    let c2 = connect(&clusters[1], "standby-1", "several_after").await;
    let in_recovery: bool = c2
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .expect("c2's standby-1 answers")
        .get(0);
    assert!(!in_recovery, "standby-1 is not c2's primary");
}

/// `count` users `<prefix>0` … inserted one by one, 30 at a time: each id with its
/// shard's cluster and shard, as the insert answered.
async fn insert_each(state: &AppState, prefix: &str, count: u64) -> Vec<(String, String, String)> {
    let ids: Vec<String> = (0..count).map(|index| format!("{prefix}{index}")).collect();
    let mut placed = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(30) {
        let answers = futures::future::join_all(chunk.iter().map(|id| {
            let body = format!(r#"{{"user_id":"{id}"}}"#);
            async move { post_json(state, "/api/users", &body).await }
        }))
        .await;
        for (id, answer) in chunk.iter().zip(answers) {
            assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
            let json = answer.json();
            let text = |field: &str| json[field].as_str().expect(field).to_string();
            placed.push((id.clone(), text("cluster"), text("shard")));
        }
    }
    placed
}

/// Rows per `cluster/shard` of `placed`.
fn rows_per_shard(placed: &[(String, String, String)]) -> BTreeMap<String, u64> {
    let mut rows = BTreeMap::new();
    for (_, cluster, shard) in placed {
        *rows.entry(format!("{cluster}/{shard}")).or_insert(0) += 1;
    }
    rows
}

/// The last tick's row estimates per `cluster/shard` (a shard without a
/// cluster: `?/shard`).
fn tick_rows(state: &AppState) -> BTreeMap<String, u64> {
    let Some(json) = state.service().latest_tick() else {
        return BTreeMap::new();
    };
    let tick: Tick = serde_json::from_str(&json).expect("tick JSON");
    tick.stats
        .rows
        .iter()
        .map(|load| {
            let cluster = load.cluster.as_deref().unwrap_or("?");
            (format!("{cluster}/{}", load.shard), load.keys)
        })
        .collect()
}

#[tokio::test]
async fn the_sample_holds_ids_of_every_shard_c2_s_too() {
    let _nodes = NODES.read().await;
    let (state, _clusters) = bridge_over_both("several_sample", false).await;
    wait_healthy(&state).await;
    let placed = insert_each(&state, "sampled", 90).await;
    assert!(placed.iter().any(|(_, cluster, _)| cluster == "c2"));
    let all: BTreeSet<String> = placed.iter().map(|(id, _, _)| id.clone()).collect();
    // 90 rows, fewer than the count: every id, from both clusters.
    let sample: UserSample = get(&state, "/api/sample?count=1000").await.parse();
    let got: BTreeSet<String> = sample.ids.iter().cloned().collect();
    assert_eq!(got, all, "{sample:?}");
    assert_eq!(sample.ids.len(), 90, "each id once: {sample:?}");
    let nodes: Vec<&str> = sample.served_by.split(", ").collect();
    assert_eq!(nodes.len(), 2, "{sample:?}");
    assert!(nodes[0].starts_with("c1/") && nodes[1].starts_with("c2/"));
}

#[tokio::test]
async fn row_estimates_metrics_and_status_count_c2_s_shards_with_their_cluster() {
    let _nodes = NODES.read().await;
    let (state, _clusters) = bridge_over_both("several_rows", false).await;
    wait_healthy(&state).await;
    let placed = insert_each(&state, "counted", 120).await;
    let expected = rows_per_shard(&placed);
    assert_eq!(
        expected.keys().collect::<Vec<_>>(),
        ["c1/s0", "c1/s2", "c2/s1"]
    );
    let counted = eventually(LIMIT, || async { tick_rows(&state) == expected }).await;
    assert!(counted, "{:?} is not {expected:?}", tick_rows(&state));
    let metrics = get(&state, "/metrics").await.text();
    for (at, rows) in &expected {
        let (cluster, shard) = at.split_once('/').unwrap();
        let series =
            format!("ecoshard_shard_rows{{cluster=\"{cluster}\",shard=\"{shard}\"}} {rows}");
        assert!(metrics.contains(&series), "no {series} in {metrics}");
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(ecoshard_bridge::serve(listener, state.clone(), async {
        let _ = stopped.await;
    }));
    let status =
        tokio::task::spawn_blocking(move || common::blocking::ecoshard(&["status", "--url", &url]))
            .await
            .unwrap();
    let table = String::from_utf8_lossy(&status.stdout).to_string();
    assert!(status.status.success(), "{table}");
    for (at, rows) in &expected {
        let (cluster, shard) = at.split_once('/').unwrap();
        let line = table
            .lines()
            .find(|line| line.starts_with(&format!("{shard} ")));
        let words: Vec<&str> = line.expect("a line per shard").split_whitespace().collect();
        assert_eq!(words, [shard, cluster, "1", &rows.to_string()], "{table}");
    }
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn with_c2_s_primary_down_c1_s_estimates_go_on_and_c2_s_keep_their_last() {
    let _nodes = NODES.write().await;
    let (state, _clusters) = bridge_over_both("several_c2_down", false).await;
    wait_healthy(&state).await;
    let placed = insert_each(&state, "before", 60).await;
    let mut expected = rows_per_shard(&placed);
    let counted = eventually(LIMIT, || async { tick_rows(&state) == expected }).await;
    assert!(counted, "{:?} is not {expected:?}", tick_rows(&state));
    let primary = primary_of(&state, "c2").await;
    let stop = format!("/api/clusters/c2/nodes/{primary}/stop");
    assert_eq!(post(&state, &stop).await.status, StatusCode::OK);
    let mut ids: Vec<String> = placed.iter().map(|(id, _, _)| id.clone()).collect();
    for index in 0..60 {
        let id = format!("after{index}");
        let written = post_json(&state, "/api/users", &format!(r#"{{"user_id":"{id}"}}"#)).await;
        if written.status == StatusCode::SERVICE_UNAVAILABLE {
            continue; // its shard is on c2, whose primary is down
        }
        assert_eq!(written.status, StatusCode::CREATED, "{}", written.text());
        let shard = written.json()["shard"].as_str().expect("shard").to_string();
        *expected
            .get_mut(&format!("c1/{shard}"))
            .expect("a c1 shard") += 1;
        ids.push(id);
    }
    assert!(ids.len() > 60, "no insert went to c1");
    let counted = eventually(LIMIT, || async { tick_rows(&state) == expected }).await;
    assert!(counted, "{:?} is not {expected:?}", tick_rows(&state));
    let metrics = get(&state, "/metrics").await.text();
    let c2 = format!(
        "ecoshard_shard_rows{{cluster=\"c2\",shard=\"s1\"}} {}",
        expected["c2/s1"]
    );
    assert!(metrics.contains(&c2), "no {c2} in {metrics}");
    // c2's standby still serves its shard's ids.
    let sample: UserSample = get(&state, "/api/sample?count=1000").await.parse();
    let got: BTreeSet<String> = sample.ids.into_iter().collect();
    assert_eq!(got, ids.into_iter().collect::<BTreeSet<_>>());
    let standby = cluster(&view(&state).await.clusters, "c2")
        .nodes
        .iter()
        .find(|node| node.role == NodeRole::Standby)
        .map(|node| format!("c2/{}", node.name))
        .expect("c2's standby");
    assert!(sample.served_by.ends_with(&standby), "{}", sample.served_by);
    let start = format!("/api/clusters/c2/nodes/{primary}/start");
    assert_eq!(post(&state, &start).await.status, StatusCode::OK);
    wait_healthy(&state).await;
}

#[tokio::test]
async fn c2_s_standby_serves_reads_again_once_its_position_after_a_job_is_read_late() {
    let _nodes = NODES.write().await;
    let (state, _clusters) = bridge_over_both("several_late", false).await;
    wait_healthy(&state).await;
    let mut on_c2 = None;
    for index in 0..30 {
        let body = format!(r#"{{"user_id":"late_{index}"}}"#);
        let answer = post_json(&state, "/api/users", &body).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
        if answer.json()["cluster"] == "c2" {
            on_c2 = Some(format!("late_{index}"));
            break;
        }
    }
    let user = on_c2.expect("a user on c2");
    let primary = primary_of(&state, "c2").await;
    let stopped = post(&state, &format!("/api/clusters/c2/nodes/{primary}/stop")).await;
    assert_eq!(stopped.status, StatusCode::OK, "{}", stopped.text());
    // The routing after a job, with c2's position not readable then.
    let table = state.service().routing().table();
    let version = table.current.version;
    let service = state.service();
    let bounds =
        ecoshard_bridge::service::rebalance::replay_bounds_after_job(service, version, 0).await;
    assert_eq!(bounds.get("c2"), Some(&u64::MAX), "{bounds:?}");
    let current = ecoshard_bridge::routing::BuiltLayout::new(&table.view()).expect("layout");
    drop(table);
    let routing = ecoshard_bridge::routing::RoutingTable {
        current,
        previous: None,
        min_replay_lsn: bounds,
    };
    service.routing().swap(routing).await;
    let refused = get(&state, &format!("/api/users/{user}")).await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "c2's standby serves no read before its bound is known: {}",
        refused.text()
    );
    let started = post(&state, &format!("/api/clusters/c2/nodes/{primary}/start")).await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.text());
    let standby = cluster(&view(&state).await.clusters, "c2")
        .nodes
        .iter()
        .find(|node| node.role == NodeRole::Standby)
        .map(|node| node.name.clone())
        .expect("c2's standby");
    let served = eventually_some(LIMIT, || async {
        let read = get(&state, &format!("/api/users/{user}")).await;
        let read: Option<ReadResult> = (read.status == StatusCode::OK).then(|| read.parse());
        read.filter(|read| read.served_by == standby)
    })
    .await;
    assert!(served.is_some(), "c2's standby never served a read again");
    let bound = service.routing().table().min_replay_lsn["c2"];
    assert_ne!(bound, u64::MAX, "c2's bound was settled");
    wait_healthy(&state).await;
}
