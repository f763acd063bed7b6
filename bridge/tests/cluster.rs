//! The bridge against a real PostgreSQL primary and two streaming standbys
//! (the original EcoMarket suite's six checks, and more). No mock anywhere.

mod common;
mod rows;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{
    LIMIT, NODES, ReadLoad, SharedCluster, bridge, bridge_with, connect, eventually, get,
    post_json, ring, send, view, wait_streaming,
};
use ecoshard_core::wire::{
    ApiErrorBody, BulkResult, ClusterView, InsertResult, LayoutView, ReadResult, Stats, Tick,
    UserSample,
};
use ecoshard_core::{Layout, StrategyKind};

/// This binary's cluster, on ports from 26400: below the ephemeral port
/// range, so outgoing connections never take ours.
static CLUSTER: SharedCluster = SharedCluster::new("cluster", 26400, false);

#[tokio::test]
async fn write_on_primary_is_visible_on_both_standbys() {
    let _nodes = NODES.read().await;
    let cluster = CLUSTER.get();
    let state = bridge(&cluster, "t_visible", ring(3)).await;
    let answer = post_json(&state, "/api/users", r#"{"user_id":"ana","name":"Ana"}"#).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
    let inserted: InsertResult = answer.parse();
    assert_eq!(inserted.served_by, "primary");
    assert!(inserted.lsn.contains('/'), "{}", inserted.lsn);
    let schema = format!("\"shard_{}\"", inserted.shard);
    for standby in ["standby-1", "standby-2"] {
        let client = connect(&cluster, standby, "t_visible").await;
        let sql = format!("SELECT name FROM {schema}.users WHERE user_id = 'ana'");
        let seen = eventually(Duration::from_secs(10), || async {
            client
                .query_opt(&sql, &[])
                .await
                .ok()
                .flatten()
                .is_some_and(|row| row.get::<_, String>(0) == "Ana")
        })
        .await;
        assert!(seen, "the row never reached {standby}");
        let in_recovery: bool = client
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .unwrap()
            .get(0);
        assert!(in_recovery, "{standby} is a standby");
    }
}

#[tokio::test]
async fn reads_spread_round_robin_over_the_standbys() {
    let _nodes = NODES.read().await;
    let state = bridge(&CLUSTER.get(), "t_round_robin", ring(3)).await;
    let inserted: InsertResult = post_json(&state, "/api/users", r#"{"user_id":"rr"}"#)
        .await
        .parse();
    wait_streaming(&state).await;
    let mut served: BTreeMap<String, u32> = BTreeMap::new();
    for _ in 0..40 {
        let answer = get(
            &state,
            &format!(
                "/api/users/rr?consistency=read-your-writes&lsn={}",
                inserted.lsn
            ),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        let read: ReadResult = answer.parse();
        *served.entry(read.served_by).or_default() += 1;
    }
    let one = served.get("standby-1").copied().unwrap_or(0);
    let two = served.get("standby-2").copied().unwrap_or(0);
    assert!(
        one >= 10 && two >= 10,
        "reads not spread over the standbys: {served:?}"
    );
    let stats: Stats = get(&state, "/api/stats").await.parse();
    let counted: u64 = stats.reads.iter().map(|count| count.count).sum();
    assert_eq!(counted, 40, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reads_in_one_batch_each_get_their_own_row() {
    let _nodes = NODES.read().await;
    let cluster = CLUSTER.get();
    // A read deadline far past what 460 reads at once take on a loaded
    // machine: this test is about batching, and with the default second
    // reads timed out on both nodes and answered 503 no_node_available.
    let state = bridge_with(&cluster, "t_batched_reads", |config| {
        config.initial_layout = ring(3);
        config.read_timeout = std::time::Duration::from_secs(30);
    })
    .await;
    let bulk: BulkResult = post_json(
        &state,
        "/api/users/bulk",
        r#"{"count":300,"prefix":"batch_"}"#,
    )
    .await
    .parse();
    wait_streaming(&state).await;
    // What PostgreSQL holds, straight from the primary.
    let primary = connect(&cluster, "primary", "t_batched_reads").await;
    let mut stored = BTreeMap::new();
    for shard in ["s0", "s1", "s2"] {
        for row in primary
            .query(
                &format!("SELECT user_id, name, email FROM shard_{shard}.users"),
                &[],
            )
            .await
            .unwrap()
        {
            let fields: (String, String, String) = (row.get(0), row.get(1), row.get(2));
            stored.insert(fields.0.clone(), (shard.to_string(), fields));
        }
    }
    assert_eq!(stored.len(), 300);
    // 180 rows twice, 100 keys that are nowhere, all at once (under the
    // bridge's 512 requests in flight): the standbys answer them in batches,
    // and every read must get its own row (or none).
    let keys: Vec<String> = (0..180)
        .chain(0..180)
        .map(|n| format!("batch_{n}"))
        .chain((0..100).map(|n| format!("nowhere_{n}")))
        .collect();
    let reads = keys.iter().map(|key| {
        let state = state.clone();
        let uri = format!(
            "/api/users/{key}?consistency=read-your-writes&lsn={}",
            bulk.lsn
        );
        tokio::spawn(async move { get(&state, &uri).await })
    });
    let answers = futures::future::join_all(reads).await;
    let mut served = BTreeMap::<String, u32>::new();
    for (key, answer) in keys.iter().zip(answers) {
        let answer = answer.expect("read task");
        match stored.get(key) {
            Some((shard, (user_id, name, email))) => {
                assert_eq!(answer.status, StatusCode::OK, "{key}: {}", answer.text());
                let read: ReadResult = answer.parse();
                assert_eq!(&read.user.user_id, user_id);
                assert_eq!(&read.user.name, name, "{key}");
                assert_eq!(&read.user.email, email, "{key}");
                assert_eq!(&read.shard, shard, "{key}");
                *served.entry(read.served_by).or_default() += 1;
            }
            None => assert_eq!(
                answer.status,
                StatusCode::NOT_FOUND,
                "{key}: {}",
                answer.text()
            ),
        }
    }
    assert_eq!(served.values().sum::<u32>(), 360, "{served:?}");
    // They did share statements (on the standbys, or on the primary for a
    // read whose standbys had not replayed its write yet).
    let (statements, batched) = state
        .service()
        .cluster()
        .standbys()
        .into_iter()
        .chain([state.service().cluster().primary()])
        .map(|node| node.read_batches.sent())
        .fold((0, 0), |sum, sent| (sum.0 + sent.0, sum.1 + sent.1));
    assert!(
        batched >= 360 && statements < batched,
        "{statements} statements for {batched} reads"
    );
    eprintln!("{statements} statements for {batched} reads");
    let stats: Stats = get(&state, "/api/stats").await.parse();
    assert_eq!(stats.failed_reads, 0, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_inserts_share_commits_and_each_id_is_written_once() {
    let _nodes = NODES.read().await;
    let cluster = CLUSTER.get();
    let state = bridge(&cluster, "t_batched_inserts", ring(3)).await;
    let stored = post_json(&state, "/api/users", r#"{"user_id":"taken"}"#).await;
    assert_eq!(stored.status, StatusCode::CREATED, "{}", stored.text());
    // 200 new ids, 100 of them sent twice at once (the same body), and one
    // id already stored (with another name): each new id is written once
    // (201), its repeat answers 200 with the row as stored, the stored id 409.
    let ids: Vec<String> = (0..200)
        .map(|n| format!("ins_{n}"))
        .chain((0..100).map(|n| format!("ins_{n}")))
        .chain(std::iter::once("taken".to_string()))
        .collect();
    let writes = ids.iter().map(|id| {
        let state = state.clone();
        let body = format!(
            r#"{{"user_id":"{id}","name":"Name {}"}}"#,
            id.replace('_', " ")
        );
        tokio::spawn(async move { post_json(&state, "/api/users", &body).await })
    });
    let answers = futures::future::join_all(writes).await;
    let mut created = BTreeMap::<String, InsertResult>::new();
    let mut repeats = Vec::new();
    let mut conflicts = 0;
    for (id, answer) in ids.iter().zip(answers) {
        let answer = answer.expect("insert task");
        match answer.status {
            StatusCode::CREATED => {
                let result: InsertResult = answer.parse();
                assert_eq!(&result.user.user_id, id);
                assert!(created.insert(id.clone(), result).is_none(), "{id} twice");
            }
            StatusCode::OK => repeats.push(answer.parse::<InsertResult>()),
            StatusCode::CONFLICT => conflicts += 1,
            other => panic!("{id}: {other} {}", answer.text()),
        }
    }
    assert_eq!((created.len(), repeats.len(), conflicts), (200, 100, 1));
    for repeat in &repeats {
        let first = &created[&repeat.user.user_id];
        assert_eq!(
            (&repeat.user, &repeat.shard),
            (&first.user, &first.shard),
            "a repeat answers the row as stored"
        );
    }
    // In PostgreSQL: each id once, in the shard the core says, as sent.
    let primary = connect(&cluster, "primary", "t_batched_inserts").await;
    let router = ring(3).build().unwrap();
    let mut rows = 0;
    for shard in ["s0", "s1", "s2"] {
        for row in primary
            .query(
                &format!(
                    "SELECT user_id, name FROM shard_{shard}.users WHERE user_id LIKE 'ins\\_%'"
                ),
                &[],
            )
            .await
            .unwrap()
        {
            let (id, name): (String, String) = (row.get(0), row.get(1));
            assert_eq!(router.locate_shard(id.as_bytes()).name, shard, "{id}");
            assert_eq!(name, format!("Name {}", id.replace('_', " ")));
            assert_eq!(created[&id].shard, shard);
            rows += 1;
        }
    }
    assert_eq!(rows, 200);
    // Each answer's LSN is past its commit: read-your-writes finds the row.
    for (id, result) in created.iter().take(20) {
        let answer = get(
            &state,
            &format!(
                "/api/users/{id}?consistency=read-your-writes&lsn={}",
                result.lsn
            ),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{id}: {}", answer.text());
    }
    let (statements, inserts) = state.service().cluster().primary().insert_batches.sent();
    assert!(
        inserts >= 301 && statements < inserts,
        "{statements} statements for {inserts} inserts"
    );
    eprintln!("{statements} statements for {inserts} inserts");
}

#[tokio::test]
async fn lag_is_reported_from_pg_stat_replication() {
    let _nodes = NODES.read().await;
    let cluster = CLUSTER.get();
    let state = bridge(&cluster, "t_lag", ring(3)).await;
    wait_streaming(&state).await;
    let answer = get(&state, "/api/cluster").await;
    let view: ClusterView = answer.parse();
    assert_eq!(view.nodes.len(), 3);
    assert_eq!(view.nodes[0].name, "primary");
    assert!(view.nodes[0].lag.is_none());
    let primary = connect(&cluster, "primary", "t_lag").await;
    let names: HashSet<String> = primary
        .query(
            "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    for node in &view.nodes[1..] {
        assert!(
            names.contains(&node.name),
            "{} not in pg_stat_replication: {names:?}",
            node.name
        );
        let lag = node.lag.as_ref().expect("standbys carry lag");
        assert_eq!(lag.state.as_deref(), Some("streaming"));
        assert_eq!(lag.sync_state.as_deref(), Some("async"));
        assert!(lag.byte_lag.is_some_and(|bytes| bytes >= 0), "{lag:?}");
        assert!(lag.up);
    }
    // NULL lag (normal when idle) is sent as null, never as 0.
    let raw = answer.json();
    let lag = &raw["nodes"][1]["lag"];
    for key in ["write_lag_ms", "flush_lag_ms", "replay_lag_ms"] {
        assert!(
            lag.get(key).is_some_and(|v| v.is_null() || v.is_f64()),
            "{key}: {lag}"
        );
    }
}

/// 300 users placed as the core says, checked in PostgreSQL.
async fn check_placement(strategy: StrategyKind, database: &str) {
    let _nodes = NODES.read().await;
    let cluster = CLUSTER.get();
    let layout = Layout::with_count(strategy, 3).unwrap();
    let state = bridge(&cluster, database, layout.clone()).await;
    let answer = post_json(
        &state,
        "/api/users/bulk",
        r#"{"count":300,"prefix":"user_"}"#,
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
    let bulk: BulkResult = answer.parse();
    assert_eq!(bulk.inserted, 300);
    let router = layout.build().unwrap();
    let primary = connect(&cluster, "primary", database).await;
    let mut seen = HashSet::new();
    for shard in router.shards() {
        let rows = primary
            .query(
                &format!("SELECT user_id FROM \"shard_{}\".users", shard.name),
                &[],
            )
            .await
            .unwrap();
        let expected = bulk
            .shards
            .iter()
            .find(|load| load.shard == shard.name)
            .unwrap();
        assert_eq!(rows.len() as u64, expected.keys, "{}", shard.name);
        for row in rows {
            let user_id: String = row.get(0);
            let owner = &router.shards()[router.locate(user_id.as_bytes())].name;
            assert_eq!(owner, &shard.name, "{user_id} is in the wrong shard");
            assert!(seen.insert(user_id.clone()), "{user_id} is in two shards");
        }
    }
    assert_eq!(seen.len(), 300);
    for index in 0..300 {
        assert!(seen.contains(&format!("user_{index}")));
    }
}

#[tokio::test]
async fn users_are_placed_by_simple_hash_as_the_core_says() {
    check_placement(StrategyKind::Modulo, "t_place_modulo").await;
}

#[tokio::test]
async fn users_are_placed_by_consistent_hash_as_the_core_says() {
    check_placement(StrategyKind::Ring, "t_place_ring").await;
}

#[tokio::test]
async fn read_your_writes_never_misses_a_fresh_insert() {
    let _nodes = NODES.read().await;
    let state = bridge(&CLUSTER.get(), "t_ryw", ring(3)).await;
    wait_streaming(&state).await;
    let mut from_standbys = 0;
    for index in 0..150 {
        let inserted: InsertResult = post_json(
            &state,
            "/api/users",
            &format!(r#"{{"user_id":"ryw_{index}"}}"#),
        )
        .await
        .parse();
        let answer = get(
            &state,
            &format!(
                "/api/users/ryw_{index}?consistency=read-your-writes&lsn={}",
                inserted.lsn
            ),
        )
        .await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "read {index}: {}",
            answer.text()
        );
        let read: ReadResult = answer.parse();
        assert_eq!(read.user, inserted.user);
        if read.served_by != "primary" {
            from_standbys += 1;
        }
        // Without an explicit lsn: the bridge's own latest write.
        let answer = get(
            &state,
            &format!("/api/users/ryw_{index}?consistency=read-your-writes"),
        )
        .await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "read {index} (no lsn): {}",
            answer.text()
        );
    }
    // Not a timing bound: just that the standbys took part at all.
    eprintln!("read-your-writes: {from_standbys} of 150 first reads served by standbys");
    let stats: Stats = get(&state, "/api/stats").await.parse();
    assert_eq!(stats.failed_reads, 0);
    assert_eq!(stats.writes, 150);
}

#[tokio::test]
async fn strong_reads_go_to_the_primary() {
    let _nodes = NODES.read().await;
    let state = bridge(&CLUSTER.get(), "t_strong", ring(3)).await;
    post_json(&state, "/api/users", r#"{"user_id":"s1"}"#).await;
    for _ in 0..5 {
        let read: ReadResult = get(&state, "/api/users/s1?consistency=strong")
            .await
            .parse();
        assert_eq!(read.served_by, "primary");
        assert_eq!(read.lag_ms, Some(0.0));
    }
    let missing = get(&state, "/api/users/nobody?consistency=strong").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.error_code(), "user_not_found");
}

#[tokio::test]
async fn a_stopped_standby_costs_no_read_and_rejoins_after_restart() {
    let _nodes = NODES.write().await;
    let cluster = CLUSTER.get();
    let database = "t_failover";
    let state = bridge(&cluster, database, ring(3)).await;
    let answer = post_json(&state, "/api/users/bulk", r#"{"count":50,"prefix":"f"}"#).await;
    assert_eq!(answer.status, StatusCode::CREATED);
    wait_streaming(&state).await;
    // Eventual reads go to the standbys: they hold every row first.
    for standby in ["standby-1", "standby-2"] {
        let client = connect(&cluster, standby, database).await;
        let copied = eventually(LIMIT, || async { rows::count(&client).await == Some(50) }).await;
        assert!(copied, "{standby} never held every row");
    }

    // Strong and eventual reads of every row, until standby-1 has been seen
    // down and reads have gone on without it.
    let keys: Vec<String> = (0..50).map(|index| format!("f{index}")).collect();
    let load = ReadLoad::start(&state, &keys, &["strong", "eventual"], 1);
    assert!(load.goes_on(50).await, "the reads did not start");
    let stopper = Arc::clone(&cluster);
    tokio::task::spawn_blocking(move || stopper.stop_node("standby-1", false))
        .await
        .unwrap()
        .expect("stop standby-1");
    let down = eventually(LIMIT, || async { !view(&state).await.nodes[1].up }).await;
    assert!(down, "standby-1 still reported up");
    assert!(
        load.goes_on(100).await,
        "reads stopped while standby-1 was down"
    );
    let (ok, failed) = load.finish().await;
    assert!(
        failed.is_empty(),
        "{} failed reads, first: {:?}",
        failed.len(),
        failed.first()
    );
    eprintln!("{ok} reads, standby-1 stopped under them, none failed");

    // While it is down, eventual reads all go to standby-2.
    for index in 0..10 {
        let read: ReadResult = get(&state, &format!("/api/users/f{index}")).await.parse();
        assert_ne!(read.served_by, "standby-1");
    }
    let starter = Arc::clone(&cluster);
    tokio::task::spawn_blocking(move || starter.start_node("standby-1"))
        .await
        .unwrap()
        .expect("start standby-1");
    wait_streaming(&state).await;
    let rejoined = eventually(LIMIT, || async {
        let read: ReadResult = get(&state, "/api/users/f1").await.parse();
        read.served_by == "standby-1"
    })
    .await;
    assert!(rejoined, "standby-1 never served reads again");
    let stats: Stats = get(&state, "/api/stats").await.parse();
    assert_eq!(stats.failed_reads, 0);
}

#[tokio::test]
async fn the_layout_is_kept_in_the_database_across_restarts() {
    let _nodes = NODES.read().await;
    let cluster = CLUSTER.get();
    let first = bridge(&cluster, "t_layout", ring(4)).await;
    let view: LayoutView = get(&first, "/api/layout").await.parse();
    assert_eq!(view.version, 1);
    assert_eq!(view.layout, ring(4));
    drop(first);
    // A restart with other flags keeps the stored layout.
    let second = bridge(
        &cluster,
        "t_layout",
        Layout::with_count(StrategyKind::Modulo, 2).unwrap(),
    )
    .await;
    let view: LayoutView = get(&second, "/api/layout").await.parse();
    assert_eq!(view.version, 1);
    assert_eq!(view.layout, ring(4));
    let primary = connect(&cluster, "primary", "t_layout").await;
    let schemas: i64 = primary
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'users' AND table_schema LIKE 'shard_%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(schemas, 4, "one users table per shard");
    let active: i64 = primary
        .query_one(
            "SELECT count(*) FROM ecoshard.layout WHERE state = 'active'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(active, 1);
}

/// Every bad input: a 4xx JSON error with the expected code, and nothing written.
#[tokio::test]
async fn bad_inputs_get_a_4xx_json_error_and_write_nothing() {
    let _nodes = NODES.read().await;
    let cluster = CLUSTER.get();
    let state = bridge(&cluster, "t_bad", ring(3)).await;
    let check = async |request: Request<Body>, status: u16, code: &str| {
        let shown = format!("{} {}", request.method(), request.uri());
        let answer = send(&state, request).await;
        assert_eq!(answer.status.as_u16(), status, "{shown}: {}", answer.text());
        assert!(answer.status.is_client_error(), "{shown}");
        let error: ApiErrorBody = answer.parse();
        assert_eq!(error.error.code, code, "{shown}");
        assert!(!error.error.message.is_empty(), "{shown}");
    };
    let long_id = "x".repeat(65);
    let long_uri = format!("/api/users/{long_id}");
    let long_body = format!(r#"{{"user_id":"{long_id}"}}"#);
    let huge = format!(r#"{{"user_id":"big","name":"{}"}}"#, "a".repeat(70_000));
    // One case a line: the request, then the status and error code it must get.
    #[rustfmt::skip]
    let cases = [
        (user("{not json"), 400, "invalid_json"),
        (user(r#"{"user_id":42}"#), 422, "invalid_body"),
        (user(r#"{"user_id":"a","admin":true}"#), 422, "invalid_body"),
        (user(r#"{"name":"no id"}"#), 422, "invalid_body"),
        (user(r#"{"user_id":""}"#), 400, "invalid_user_id"),
        (user(&long_body), 400, "invalid_user_id"),
        (user(r#"{"user_id":"1; DROP TABLE users; --"}"#), 400, "invalid_user_id"),
        (user(r#"{"user_id":"x' OR '1'='1"}"#), 400, "invalid_user_id"),
        (user(r#"{"user_id":"bobby","name":"Robert'); DROP TABLE users;--"}"#), 400, "invalid_name"),
        (user(r#"{"user_id":"eve","email":"eve@x.com'; --"}"#), 400, "invalid_email"),
        (user(&huge), 413, "body_too_large"),
        (page("POST", "/api/users", r#"{"user_id":"a"}"#), 415, "unsupported_media_type"),
        (bulk(r#"{"count":0}"#), 400, "invalid_count"),
        (bulk(r#"{"count":10001}"#), 400, "invalid_count"),
        (bulk(r#"{"count":-1}"#), 422, "invalid_body"),
        (bulk(r#"{"count":"ten"}"#), 422, "invalid_body"),
        (bulk(r#"{"count":5,"prefix":"a;b"}"#), 400, "invalid_prefix"),
        (read("/api/users/a?consistency=linearizable"), 400, "invalid_consistency"),
        (read("/api/users/a?consistency=read-your-writes&lsn=zzz"), 400, "invalid_lsn"),
        (read("/api/users/a?lsn=0/1"), 400, "invalid_query"),
        (read("/api/users/a?limit=5"), 400, "invalid_query"),
        (read("/api/users/a%27%3B%20DROP%20TABLE%20users"), 400, "invalid_user_id"),
        (read(&long_uri), 400, "invalid_user_id"),
        (read("/api/users/unknown_id"), 404, "user_not_found"),
        (read("/api/sample?count=0"), 400, "invalid_count"),
        (read("/api/sample?count=10001"), 400, "invalid_count"),
        (read("/api/sample?count=ten"), 400, "invalid_query"),
        (read("/api/sample?size=5"), 400, "invalid_query"),
        (read("/api/nothing"), 404, "not_found"),
        (page("DELETE", "/api/users/a", ""), 405, "method_not_allowed"),
        (page("PUT", "/api/users", ""), 405, "method_not_allowed"),
    ];
    for (request, status, code) in cases {
        check(request, status, code).await;
    }
    // A duplicate: 409, and the first row stays as it was.
    assert_eq!(
        post_json(&state, "/api/users", r#"{"user_id":"dup","name":"First"}"#)
            .await
            .status,
        StatusCode::CREATED
    );
    let again = post_json(&state, "/api/users", r#"{"user_id":"dup","name":"Second"}"#).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.error_code(), "duplicate_user");
    // A bulk insert that collides writes nothing at all.
    let first = post_json(&state, "/api/users/bulk", r#"{"count":10,"prefix":"bk"}"#).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let clash = post_json(&state, "/api/users/bulk", r#"{"count":20,"prefix":"bk"}"#).await;
    assert_eq!(clash.status, StatusCode::CONFLICT, "{}", clash.text());

    let primary = connect(&cluster, "primary", "t_bad").await;
    let total = rows::count(&primary).await;
    assert_eq!(total, Some(11), "only the good rows were written");
    let name: String = primary
        .query_one("SELECT name FROM shard_s0.users WHERE user_id = 'dup' UNION ALL SELECT name FROM shard_s1.users WHERE user_id = 'dup' UNION ALL SELECT name FROM shard_s2.users WHERE user_id = 'dup'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(name, "First");
    let stats: Stats = get(&state, "/api/stats").await.parse();
    assert_eq!(stats.writes, 11);
}

#[tokio::test]
async fn a_sample_draws_real_ids_from_every_shard_in_proportion() {
    let _nodes = NODES.read().await;
    let cluster = CLUSTER.get();
    let state = bridge(&cluster, "t_sample", ring(3)).await;
    let inserted = post_json(&state, "/api/users/bulk", r#"{"count":3000,"prefix":"sm"}"#).await;
    assert_eq!(inserted.status, StatusCode::CREATED, "{}", inserted.text());
    let inserted: BulkResult = inserted.parse();
    let estimated = eventually(Duration::from_secs(30), || async {
        let stats: Stats = get(&state, "/api/stats").await.parse();
        stats.rows.iter().map(|shard| shard.keys).sum::<u64>() == 3_000
    })
    .await;
    assert!(estimated, "the row estimates never reached 3,000");
    let answer = get(&state, "/api/sample?count=300").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let sample: UserSample = answer.parse();
    assert_eq!((sample.version, sample.rows), (1, 3_000));
    let distinct: HashSet<&String> = sample.ids.iter().collect();
    assert_eq!((sample.ids.len(), distinct.len()), (300, 300));
    let router = ring(3).build().unwrap();
    let mut per_shard = BTreeMap::<String, u64>::new();
    for id in &sample.ids {
        let index: u64 = id.strip_prefix("sm").and_then(|n| n.parse().ok()).unwrap();
        assert!(index < 3_000, "{id} is not a stored id");
        *per_shard
            .entry(router.locate_shard(id.as_bytes()).name.clone())
            .or_default() += 1;
    }
    // Each shard gives its share: 300 × its rows ÷ 3,000, rounded up (the
    // last one cut to make 300).
    for load in &inserted.shards {
        let share = (load.keys as f64 / 10.0).ceil() as u64;
        let drawn = per_shard.get(&load.shard).copied().unwrap_or(0);
        assert!(
            drawn <= share && drawn + 2 >= share,
            "{}: {drawn} of {share}",
            load.shard
        );
    }
    // Asked for more than there are: every id.
    let all: UserSample = get(&state, "/api/sample?count=5000").await.parse();
    let all: HashSet<String> = all.ids.into_iter().collect();
    assert_eq!(all, (0..3_000).map(|n| format!("sm{n}")).collect());
}

/// `POST /api/users` with this body, typed as JSON, as a program sends it.
fn user(body: &str) -> Request<Body> {
    typed("/api/users", body)
}

/// `POST /api/users/bulk` with this body, typed as JSON.
fn bulk(body: &str) -> Request<Body> {
    typed("/api/users/bulk", body)
}

fn typed(uri: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

/// `GET uri`.
fn read(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

/// A change without the JSON type: only the bridge's own page can send one
/// (the origin guard refuses it from anywhere else before it is routed).
fn page(method: &str, uri: &str, body: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, "localhost:8080")
        .header(header::ORIGIN, "http://localhost:8080")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

#[tokio::test]
async fn the_event_stream_serves_many_clients_and_a_stalled_one_blocks_none() {
    use futures::StreamExt as _;
    let _nodes = NODES.read().await;
    let state = bridge(&CLUSTER.get(), "t_events", ring(3)).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(ecoshard_bridge::serve(
        listener,
        state.clone(),
        std::future::pending(),
    ));
    // A client that connects and never reads.
    let mut stalled = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(
        &mut stalled,
        b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    )
    .await
    .unwrap();
    let mut readers = Vec::new();
    for _ in 0..12 {
        readers.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .unwrap();
            tokio::spawn(connection);
            let response = sender
                .send_request(
                    Request::get("/api/events")
                        .header(header::HOST, "127.0.0.1")
                        .body(http_body_util::Empty::<axum::body::Bytes>::new())
                        .unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(
                response.headers()[header::CONTENT_TYPE],
                "text/event-stream"
            );
            let mut body = http_body_util::BodyStream::new(response.into_body());
            let mut text = String::new();
            let mut ticks = Vec::new();
            while ticks.len() < 4 {
                let frame = tokio::time::timeout(Duration::from_secs(20), body.next())
                    .await
                    .expect("a tick within 20 s")
                    .expect("stream open")
                    .unwrap();
                if let Some(data) = frame.data_ref() {
                    text.push_str(&String::from_utf8_lossy(data));
                }
                while let Some(end) = text.find("\n\n") {
                    let event: String = text.drain(..end + 2).collect();
                    if let Some(data) = event.lines().find_map(|line| line.strip_prefix("data: "))
                        && event.lines().any(|line| line == "event: tick")
                    {
                        // The failover view rides on every tick (not just a default).
                        assert!(data.contains(r#""failover":{"auto":false"#), "{data}");
                        ticks.push(serde_json::from_str::<Tick>(data).expect("a Tick"));
                    }
                }
            }
            ticks
        }));
    }
    for reader in readers {
        let ticks = reader.await.unwrap();
        assert!(ticks.windows(2).all(|pair| pair[0].at_ms <= pair[1].at_ms));
        let last = ticks.last().unwrap();
        assert_eq!(last.nodes.len(), 3);
        assert_eq!(last.layout_version, 1);
        assert!(last.nodes[1..].iter().all(|node| node.lag.is_some()));
    }
    drop(stalled);
    server.abort();
}

#[tokio::test]
async fn the_page_is_served_with_mime_types_compression_and_spa_fallback_and_small_answers_plain() {
    let _nodes = NODES.read().await;
    let dir = std::env::temp_dir().join(format!("ecoshard-web-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let index = "<!doctype html><title>ecoshard</title><script src=\"/app.js\"></script>";
    std::fs::write(dir.join("index.html"), index).unwrap();
    std::fs::write(dir.join("app.js"), "console.log('ecoshard');\n".repeat(200)).unwrap();
    let mut wasm = b"\0asm\x01\0\0\0".to_vec();
    wasm.extend(std::iter::repeat_n(0u8, 4096));
    std::fs::write(dir.join("app_bg.wasm"), &wasm).unwrap();
    let cluster = CLUSTER.get();
    let state = bridge_with(&cluster, "t_web", |config| {
        config.web_dir = Some(dir.clone())
    })
    .await;

    let fetch = |uri: &'static str, encoding: &'static str| {
        let state = state.clone();
        async move {
            send(
                &state,
                Request::get(uri)
                    .header(header::ACCEPT_ENCODING, encoding)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
        }
    };
    let page = fetch("/", "identity").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(page.text(), index);

    let wasm_answer = fetch("/app_bg.wasm", "gzip").await;
    assert_eq!(wasm_answer.status, StatusCode::OK);
    assert_eq!(
        wasm_answer.headers[header::CONTENT_TYPE],
        "application/wasm"
    );
    assert_eq!(wasm_answer.headers[header::CONTENT_ENCODING], "gzip");
    assert!(wasm_answer.body.len() < wasm.len());

    let js = fetch("/app.js", "br").await;
    assert_eq!(js.headers[header::CONTENT_ENCODING], "br");
    assert!(
        js.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .contains("javascript")
    );

    // A route of the page itself: index.html, so reloading a deep link works.
    let deep = fetch("/explore/ring", "identity").await;
    assert_eq!(deep.status, StatusCode::OK);
    assert_eq!(deep.text(), index);
    // The API keeps its JSON 404.
    let api = fetch("/api/nope", "identity").await;
    assert_eq!(api.status, StatusCode::NOT_FOUND);
    assert_eq!(api.error_code(), "not_found");
    // A small JSON answer goes as it is: compressing it costs more than it saves.
    let small = fetch("/api/health", "gzip").await;
    assert_eq!(small.status, StatusCode::OK);
    assert!(small.body.len() < 1024, "{}", small.text());
    assert!(!small.headers.contains_key(header::CONTENT_ENCODING));
    let _ = std::fs::remove_dir_all(&dir);

    // Without a built page: a note on how to build it, and a working API.
    let bare = bridge(&cluster, "t_web", ring(3)).await;
    let note = get(&bare, "/").await;
    assert_eq!(note.status, StatusCode::OK);
    assert!(note.text().contains("cargo xtask dist"), "{}", note.text());
    assert_eq!(get(&bare, "/api/health").await.status, StatusCode::OK);
}

#[tokio::test]
async fn event_stream_clients_beyond_the_limit_get_429() {
    let _nodes = NODES.read().await;
    let state = bridge_with(&CLUSTER.get(), "t_limits", |config| {
        config.max_event_clients = 2;
    })
    .await;
    let open = || {
        let app = ecoshard_bridge::app(state.clone());
        async move {
            tower::ServiceExt::oneshot(
                app,
                Request::get("/api/events").body(Body::empty()).unwrap(),
            )
            .await
            .unwrap()
        }
    };
    let first = open().await;
    let second = open().await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(second.status(), StatusCode::OK);
    let third = send(
        &state,
        Request::get("/api/events").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(third.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(third.error_code(), "busy");
    // A client leaving frees its slot.
    drop(first);
    let again = open().await;
    assert_eq!(again.status(), StatusCode::OK);
    // Other endpoints are not affected.
    assert_eq!(get(&state, "/api/health").await.status, StatusCode::OK);
    drop((second, again));
}
