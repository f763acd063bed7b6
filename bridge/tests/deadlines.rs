//! Deadlines and honest answers on the request path, on a real cluster of
//! this binary's own (synchronous replication: a commit that waits for a
//! standby is how an insert's outcome becomes unknown): a hung (SIGSTOPped)
//! standby or primary under read load, inserts whose session dies after
//! their commit, the primary stopped under inserts, write failures
//! classified from real errors, the statement cache during a rebalance, and
//! the row counts while a shard is locked and after the primary crashes.
//! Outcomes are asserted, never durations.
//!
//! The tests run one at a time: they stop servers.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::StatusCode;
use common::blocking::{Frozen, all_streaming};
use common::{
    LIMIT, ReadLoad, SharedCluster, answered, bridge_with, connect, control, data_dir, eventually,
    eventually_some, get, post, post_json, ring, view,
};
use ecoshard_bridge::db::{Stage, WriteFailure, write_failure};
use ecoshard_bridge::routing::{BuiltLayout, RoutingTable};
use ecoshard_bridge::{AppState, LocalCluster};
use ecoshard_core::wire::{BulkResult, InsertResult, LayoutView, ReadResult, Stats};
use ecoshard_core::{Layout, StrategyKind};

/// One test at a time: they stop servers.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// This binary's cluster: ports from 30200, synchronous replication.
static CLUSTER: SharedCluster = SharedCluster::new("deadlines", 30200, true);

async fn bridge(
    local: &Arc<LocalCluster>,
    database: &str,
    layout: Layout,
    pool_size: usize,
) -> AppState {
    bridge_with(local, database, |config| {
        config.initial_layout = layout;
        config.pool_size = pool_size;
        config.control = control(local);
    })
    .await
}

/// Waits until every node is up and every standby streams, synchronously
/// (`quorum`), from the primary.
async fn wait_healthy(state: &AppState) {
    let healthy = eventually(LIMIT, || async {
        let view = view(state).await;
        all_streaming(&view)
            && view
                .nodes
                .iter()
                .filter_map(|node| node.lag.as_ref())
                .all(|lag| lag.sync_state.as_deref() == Some("quorum"))
    })
    .await;
    assert!(
        healthy,
        "the cluster is not healthy: {:?}",
        view(state).await
    );
    tokio::time::sleep(ecoshard_bridge::TICK * 2).await;
}

/// How many rows hold `user_id`, in every shard, read on the primary.
async fn copies(client: &tokio_postgres::Client, shards: u64, user_id: &str) -> i64 {
    let mut copies = 0;
    for shard in 0..shards {
        copies += client
            .query_one(
                &format!("SELECT count(*) FROM shard_s{shard}.users WHERE user_id = $1"),
                &[&user_id],
            )
            .await
            .unwrap()
            .get::<_, i64>(0);
    }
    copies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_standby_costs_reads_one_deadline_and_fails_none() {
    let _serial = SERIAL.lock().await;
    let local = CLUSTER.get();
    let state = bridge(&local, "t_hung_standby", ring(3), 8).await;
    let bulk = post_json(&state, "/api/users/bulk", r#"{"count":200,"prefix":"h"}"#).await;
    assert_eq!(bulk.status, StatusCode::CREATED, "{}", bulk.text());
    wait_healthy(&state).await;
    let keys: Vec<String> = (0..200)
        .step_by(3)
        .map(|index| format!("h{index}"))
        .collect();
    let load = ReadLoad::start(&state, &keys, &["eventual", "read-your-writes"], 16);
    assert!(load.goes_on(200).await, "the reads did not start");

    let frozen = Frozen::stop(&data_dir(&local, "standby-1"));
    let down = eventually(LIMIT, || async { !view(&state).await.nodes[1].up }).await;
    assert!(down, "the bridge never saw standby-1 hung");
    // A while with standby-1 hung and out of the rotation.
    assert!(
        load.goes_on(500).await,
        "reads stopped while standby-1 was hung"
    );
    // Every read, those that were on their way to standby-1 included, is
    // answered while it is still hung.
    let (_, failed) = load.finish().await;
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
    let local = CLUSTER.get();
    let database = "t_hung_primary";
    let state = bridge(&local, database, ring(3), 8).await;
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
        assert_eq!(strong.error_code(), "read_timed_out");
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
    // A write is answered too: not taken, or taken by a primary that may
    // commit it once it runs again.
    let write = answered(post_json(&state, "/api/users", r#"{"user_id":"during"}"#)).await;
    assert_eq!(
        write.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        write.text()
    );
    let write_code = write.error_code();
    drop(frozen);

    wait_healthy(&state).await;
    let client = connect(&local, "primary", database).await;
    match write_code.as_str() {
        "primary_unavailable" => assert_eq!(copies(&client, 3, "during").await, 0),
        "write_outcome_unknown" => {
            let again = post_json(&state, "/api/users", r#"{"user_id":"during"}"#).await;
            assert!(
                [StatusCode::OK, StatusCode::CREATED].contains(&again.status),
                "{}",
                again.text()
            );
            assert_eq!(copies(&client, 3, "during").await, 1);
        }
        other => panic!("a write to a hung primary answered {other}"),
    }
    let strong = get(&state, "/api/users/p1?consistency=strong").await;
    assert_eq!(strong.status, StatusCode::OK, "{}", strong.text());
}

/// The pid of a backend of `database` waiting for a synchronous standby.
async fn waiting_for_a_standby(client: &tokio_postgres::Client, database: &str) -> i32 {
    let waiting = eventually_some(LIMIT, || async {
        client
            .query_opt(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND wait_event = 'SyncRep' LIMIT 1",
                &[&database],
            )
            .await
            .unwrap()
            .map(|row| row.get(0))
    })
    .await;
    waiting.expect("no commit waited for a standby")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_insert_whose_session_dies_is_never_answered_not_written() {
    let _serial = SERIAL.lock().await;
    let local = CLUSTER.get();
    let database = "t_unknown";
    let state = bridge(&local, database, ring(3), 8).await;
    wait_healthy(&state).await;
    let primary = connect(&local, "primary", database).await;
    let spawn_post = |uri: &'static str, body: &'static str| {
        let state = state.clone();
        tokio::spawn(async move { answered(post_json(&state, uri, body)).await })
    };

    // No standby confirms anything: every commit waits, committed on the
    // primary alone. A backend terminated then has committed.
    let frozen = [
        Frozen::stop(&data_dir(&local, "standby-1")),
        Frozen::stop(&data_dir(&local, "standby-2")),
    ];
    let one = spawn_post("/api/users", r#"{"user_id":"unconfirmed","name":"Ana"}"#);
    let pid = waiting_for_a_standby(&primary, database).await;
    primary
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap();
    let one = one.await.unwrap();
    assert_eq!(
        one.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        one.text()
    );
    assert_eq!(one.error_code(), "write_outcome_unknown", "{}", one.text());
    assert!(one.text().contains("consistency=strong"), "{}", one.text());

    let bulk = spawn_post("/api/users/bulk", r#"{"count":40,"prefix":"unconfirmed_"}"#);
    let pid = waiting_for_a_standby(&primary, database).await;
    primary
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap();
    let bulk = bulk.await.unwrap();
    assert_eq!(
        bulk.error_code(),
        "write_outcome_unknown",
        "{}",
        bulk.text()
    );
    assert!(bulk.text().contains("unconfirmed_"), "{}", bulk.text());

    // Not confirmed within the write deadline: unknown too.
    let slow = spawn_post("/api/users", r#"{"user_id":"slow","name":"Sol"}"#)
        .await
        .unwrap();
    assert_eq!(
        slow.error_code(),
        "write_outcome_unknown",
        "{}",
        slow.text()
    );
    drop(frozen);
    wait_healthy(&state).await;

    // Each was committed; repeating it answers 200 with the stored row.
    let stored = get(&state, "/api/users/unconfirmed?consistency=strong").await;
    assert_eq!(stored.status, StatusCode::OK, "{}", stored.text());
    for (body, name) in [
        (r#"{"user_id":"unconfirmed","name":"Ana"}"#, "Ana"),
        (r#"{"user_id":"slow","name":"Sol"}"#, "Sol"),
    ] {
        let again = post_json(&state, "/api/users", body).await;
        assert_eq!(again.status, StatusCode::OK, "{}", again.text());
        let again: InsertResult = again.parse();
        assert_eq!(again.user.name, name);
        let read = get(
            &state,
            &format!(
                "/api/users/{}?consistency=read-your-writes&lsn={}",
                again.user.user_id, again.lsn
            ),
        )
        .await;
        assert_eq!(read.status, StatusCode::OK, "{}", read.text());
        assert_eq!(copies(&primary, 3, &again.user.user_id).await, 1);
    }
    let other = post_json(
        &state,
        "/api/users",
        r#"{"user_id":"unconfirmed","name":"Bob"}"#,
    )
    .await;
    assert_eq!(other.status, StatusCode::CONFLICT, "{}", other.text());
    assert_eq!(other.error_code(), "duplicate_user");

    let again = post_json(
        &state,
        "/api/users/bulk",
        r#"{"count":40,"prefix":"unconfirmed_"}"#,
    )
    .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text());
    assert_eq!(again.parse::<BulkResult>().inserted, 0);
    let more = post_json(
        &state,
        "/api/users/bulk",
        r#"{"count":41,"prefix":"unconfirmed_"}"#,
    )
    .await;
    assert_eq!(more.status, StatusCode::CONFLICT, "{}", more.text());
    assert_eq!(copies(&primary, 3, "unconfirmed_39").await, 1);
    assert_eq!(copies(&primary, 3, "unconfirmed_40").await, 0);
}

/// What one insert of the load was answered.
#[derive(Debug)]
struct Outcome {
    user_id: String,
    body: String,
    status: StatusCode,
    code: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserts_during_an_immediate_primary_stop_are_answered_by_what_happened() {
    let _serial = SERIAL.lock().await;
    let local = CLUSTER.get();
    let database = "t_stop_under_inserts";
    let state = bridge(&local, database, ring(3), 8).await;
    wait_healthy(&state).await;
    let mut outcomes: Vec<Outcome> = Vec::new();
    for round in 0..3 {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let answers = Arc::new(AtomicU64::new(0));
        let writers: Vec<_> = (0..6)
            .map(|writer| {
                let (state, answers) = (state.clone(), Arc::clone(&answers));
                let mut stopped = stopped.clone();
                tokio::spawn(async move {
                    let mut outcomes = Vec::new();
                    let mut n = 0;
                    while !*stopped.borrow_and_update() {
                        let user_id = format!("r{round}_w{writer}_{n}");
                        let body = format!(r#"{{"user_id":"{user_id}","name":"Name {n}"}}"#);
                        let answer = answered(post_json(&state, "/api/users", &body)).await;
                        let code = (!answer.status.is_success()).then(|| answer.error_code());
                        outcomes.push(Outcome {
                            user_id,
                            body,
                            status: answer.status,
                            code,
                        });
                        answers.fetch_add(1, Ordering::Relaxed);
                        n += 1;
                    }
                    outcomes
                })
            })
            .collect();
        assert!(
            eventually(LIMIT, || async { answers.load(Ordering::Relaxed) >= 100 }).await,
            "inserts did not run"
        );
        let stopped = answered(post(&state, "/api/nodes/primary/stop?mode=immediate")).await;
        assert_eq!(stopped.status, StatusCode::OK, "{}", stopped.text());
        let seen = answers.load(Ordering::Relaxed);
        assert!(
            eventually(LIMIT, || async {
                answers.load(Ordering::Relaxed) >= seen + 30
            })
            .await,
            "inserts stopped being answered while the primary was down"
        );
        stop.send_replace(true);
        for writer in writers {
            outcomes.extend(writer.await.unwrap());
        }
        let started = answered(post(&state, "/api/nodes/primary/start")).await;
        assert_eq!(started.status, StatusCode::OK, "{}", started.text());
        let resumed = eventually(LIMIT, || async {
            post_json(
                &state,
                "/api/users",
                &format!(r#"{{"user_id":"resumed_{round}"}}"#),
            )
            .await
            .status
            .is_success()
        })
        .await;
        assert!(resumed, "writes did not resume after round {round}");
    }

    let client = connect(&local, "primary", database).await;
    let mut tally: BTreeMap<String, u64> = BTreeMap::new();
    for outcome in &outcomes {
        let label = outcome
            .code
            .clone()
            .unwrap_or_else(|| outcome.status.to_string());
        *tally.entry(label.clone()).or_default() += 1;
        let stored = copies(&client, 3, &outcome.user_id).await;
        match label.as_str() {
            "201 Created" => assert_eq!(stored, 1, "{outcome:?}"),
            "primary_unavailable" => assert_eq!(stored, 0, "answered not written: {outcome:?}"),
            "write_outcome_unknown" => {
                let again = post_json(&state, "/api/users", &outcome.body).await;
                assert!(
                    [StatusCode::OK, StatusCode::CREATED].contains(&again.status),
                    "{outcome:?} repeated: {}",
                    again.text()
                );
                assert_eq!(copies(&client, 3, &outcome.user_id).await, 1, "{outcome:?}");
            }
            _ => panic!("unexpected answer: {outcome:?}"),
        }
    }
    // Both outcomes happened: written before each stop, refused after it.
    assert!(
        tally.contains_key("201 Created") && tally.contains_key("primary_unavailable"),
        "{tally:?}"
    );
    eprintln!("answers over three immediate stops: {tally:?}");
}

/// The kind of a write failure, for the table below.
fn kind(failure: &WriteFailure) -> &'static str {
    match failure {
        WriteFailure::Duplicate => "duplicate",
        WriteFailure::NotTaken {
            unavailable: true, ..
        } => "not taken, unavailable",
        WriteFailure::NotTaken { .. } => "not taken",
        WriteFailure::Unknown { .. } => "unknown",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_failures_are_classified_by_whether_the_commit_may_have_happened() {
    let _serial = SERIAL.lock().await;
    let local = CLUSTER.get();
    let database = "t_classify";
    let _state = bridge(&local, database, ring(3), 2).await;
    let check = |error: &tokio_postgres::Error, stage: Stage, expected: &str| {
        let failure = write_failure(error, stage);
        assert_eq!(
            kind(&failure),
            expected,
            "{stage:?}: {error:?} → {failure:?}"
        );
    };
    let insert =
        "INSERT INTO shard_s0.users (user_id, name, email) VALUES ($1, 'n', 'e@x.example')";
    let primary = connect(&local, "primary", database).await;
    primary.execute(insert, &[&"taken"]).await.unwrap();

    let taken = primary.execute(insert, &[&"taken"]).await.unwrap_err();
    let missing = primary
        .execute("INSERT INTO shard_s0.nowhere VALUES (1)", &[])
        .await
        .unwrap_err();
    let standby = connect(&local, "standby-1", database).await;
    let read_only = standby
        .execute(insert, &[&"on_a_standby"])
        .await
        .unwrap_err();
    primary
        .batch_execute("SET statement_timeout = 50")
        .await
        .unwrap();
    let cancelled = primary
        .execute("SELECT pg_sleep(5)", &[])
        .await
        .unwrap_err();
    // A session terminated while it runs a statement: FATAL.
    let running = connect(&local, "primary", database).await;
    let pid: i32 = running
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let killer = {
        let primary = connect(&local, "primary", database).await;
        tokio::spawn(async move {
            let waiting = eventually(LIMIT, || async {
                primary
                    .query_opt(
                        "SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state = 'active'",
                        &[&pid],
                    )
                    .await
                    .unwrap()
                    .is_some()
            })
            .await;
            assert!(waiting, "the statement never ran");
            primary
                .execute("SELECT pg_terminate_backend($1)", &[&pid])
                .await
                .unwrap();
        })
    };
    let terminated = running
        .execute("SELECT pg_sleep(30)", &[])
        .await
        .unwrap_err();
    killer.await.unwrap();
    // A session terminated between two statements: the next one finds it closed.
    let idle = connect(&local, "primary", database).await;
    let pid: i32 = idle
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    primary
        .batch_execute("SET statement_timeout = 0")
        .await
        .unwrap();
    primary
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap();
    assert!(eventually(LIMIT, || async { idle.is_closed() }).await);
    let closed = idle.execute(insert, &[&"after_the_end"]).await.unwrap_err();

    check(&taken, Stage::Committing, "duplicate");
    check(&taken, Stage::BeforeCommit, "duplicate");
    check(&missing, Stage::Committing, "not taken");
    check(&read_only, Stage::Committing, "not taken, unavailable");
    check(&cancelled, Stage::Committing, "not taken, unavailable");
    check(&terminated, Stage::Committing, "unknown");
    check(&terminated, Stage::BeforeCommit, "not taken, unavailable");
    check(&closed, Stage::Committing, "unknown");
    check(&closed, Stage::BeforeCommit, "not taken, unavailable");
    check(&taken, Stage::Committed, "unknown");
    check(&closed, Stage::Committed, "unknown");
    assert_eq!(copies(&primary, 3, "after_the_end").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_inserts_over_many_shard_pairs_keep_a_connections_statement_cache_bounded() {
    let _serial = SERIAL.lock().await;
    let local = CLUSTER.get();
    const SHARDS: u64 = 40;
    let modulo = |shards| Layout::with_count(StrategyKind::Modulo, shards).unwrap();
    // One connection per node: every request on the primary shares it.
    let state = bridge(&local, "t_statement_cache", modulo(SHARDS), 1).await;
    // As while a rebalance from 39 shards runs: most keys are read under
    // their new and old owner at once, inserts check the old owner.
    let placement = |shards, version| {
        BuiltLayout::new(&LayoutView {
            version,
            layout: modulo(shards),
            placement: Vec::new(),
        })
        .unwrap()
    };
    state
        .service()
        .routing()
        .swap(RoutingTable {
            current: placement(SHARDS, 2),
            previous: Some(placement(SHARDS - 1, 1)),
            min_replay_lsn: Default::default(),
        })
        .await;
    let table = state.service().routing().table();
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
    let client = state
        .service()
        .cluster()
        .primary()
        .pool
        .get()
        .await
        .unwrap();
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
    let local = CLUSTER.get();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_estimates_come_back_after_the_primary_crashes_and_loses_its_statistics() {
    let _serial = SERIAL.lock().await;
    let local = CLUSTER.get();
    let database = "t_rows_after_crash";
    let state = bridge(&local, database, ring(3), 8).await;
    let total = |state: AppState| async move {
        let stats: Stats = get(&state, "/api/stats").await.parse();
        stats.rows.iter().map(|load| load.keys).sum::<u64>()
    };
    let bulk = post_json(&state, "/api/users/bulk", r#"{"count":300,"prefix":"c"}"#).await;
    assert_eq!(bulk.status, StatusCode::CREATED, "{}", bulk.text());
    assert!(
        eventually(LIMIT, || async { total(state.clone()).await == 300 }).await,
        "rows never reached 300"
    );
    // A crash: PostgreSQL discards its statistics when it starts again.
    let stopped = answered(post(&state, "/api/nodes/primary/stop?mode=immediate")).await;
    assert_eq!(stopped.status, StatusCode::OK, "{}", stopped.text());
    let started = answered(post(&state, "/api/nodes/primary/start")).await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.text());
    // Nothing is written or changed after the crash, so only the bridge's
    // ANALYZE gives the tables estimates again.
    let primary = connect(&local, "primary", database).await;
    let analyzed = eventually(LIMIT, || async {
        primary
            .query_one(
                "SELECT count(*) FILTER (WHERE last_analyze IS NOT NULL), sum(n_live_tup)::int8
                   FROM pg_stat_user_tables WHERE relname = 'users' AND schemaname LIKE 'shard\\_%'",
                &[],
            )
            .await
            .ok()
            .is_some_and(|row| row.get::<_, i64>(0) == 3 && row.get::<_, Option<i64>>(1) == Some(300))
    })
    .await;
    assert!(analyzed, "the shard tables got no estimate after the crash");
    assert!(
        eventually(LIMIT, || async { total(state.clone()).await == 300 }).await,
        "rows {} after the crash",
        total(state.clone()).await
    );
}
