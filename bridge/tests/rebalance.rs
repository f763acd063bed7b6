//! Applying a layout to a real primary and two standbys: exactly the planned
//! rows move, nothing is lost or doubled, reads and inserts stay correct
//! while rows move, a second job and bad layouts are refused, and a shrink
//! drops the emptied shard. (The binary killed mid-job: `rebalance_cli.rs`.)

mod common;
mod rows;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{
    LIMIT, NODES, SharedCluster, bridge, bridge_with, connect, control, eventually,
    eventually_some, get, post_json, put_layout, ring, send, start_cluster, wait_streaming,
};
use ecoshard_bridge::AppState;
use ecoshard_core::wire::{ApiErrorBody, JobState, LayoutView, RebalanceJob, Tick};
use ecoshard_core::{Layout, StrategyKind, plan_numbered};
use rows::{assert_no_key_twice, snapshot};

/// This binary's cluster, on ports from 29500 (others: 26400–26999,
/// 27400+, 28400+, 29000–29499).
static CLUSTER: SharedCluster = SharedCluster::new("rebalance", 29500, false);

/// The longest a job may take here.
const JOB_LIMIT: Duration = Duration::from_secs(300);

/// `GET /api/rebalance/{id}`.
async fn job_by_id(state: &AppState, id: u64) -> RebalanceJob {
    let answer = get(state, &format!("/api/rebalance/{id}")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    answer.parse()
}

/// Polls the job until it is no longer running; it must be done.
async fn wait_done(state: &AppState, id: u64) -> RebalanceJob {
    let ended = eventually_some(JOB_LIMIT, || async {
        Some(job_by_id(state, id).await).filter(|job| job.state != JobState::Running)
    })
    .await;
    let ended = ended.unwrap_or_else(|| panic!("job {id} still running"));
    assert_eq!(ended.state, JobState::Done, "{ended:?}");
    ended
}

/// The job with its plan: as answered when the PUT waited long enough for
/// it, else from `GET /api/rebalance/{id}` once the mover has made it.
async fn with_plan(state: &AppState, started: RebalanceJob) -> RebalanceJob {
    if started.plan.is_some() {
        return started;
    }
    eventually_some(JOB_LIMIT, || async {
        Some(job_by_id(state, started.id).await).filter(|job| job.plan.is_some())
    })
    .await
    .unwrap_or_else(|| panic!("job {} never got its plan", started.id))
}

/// A bridge on `database` over `layout` holding `count` generated users
/// `<prefix>0` …, and a direct connection to the primary.
async fn bridge_with_users(
    database: &str,
    layout: &Layout,
    count: u64,
    prefix: &str,
) -> (AppState, tokio_postgres::Client) {
    let cluster = CLUSTER.get();
    let state = bridge(&cluster, database, layout.clone()).await;
    let body = format!(r#"{{"count":{count},"prefix":"{prefix}"}}"#);
    let answer = post_json(&state, "/api/users/bulk", &body).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
    (state, connect(&cluster, "primary", database).await)
}

/// 300 users, 3 → 4 shards: the rows that change shard in PostgreSQL are
/// exactly the core's plan; count and checksum hold; then 4 → 3 drops s3.
async fn grow_and_shrink(strategy: StrategyKind, database: &str) -> (u64, u64) {
    let _nodes = NODES.read().await;
    let three = Layout::with_count(strategy, 3).unwrap();
    let four = Layout::with_count(strategy, 4).unwrap();
    let (state, primary) = bridge_with_users(database, &three, 300, "user_").await;
    let before = snapshot(&primary, "").await;
    assert_eq!(before.rows, 300);

    let answer = put_layout(
        &state,
        &format!(r#"{{"strategy":"{}","shards":4}}"#, strategy.name()),
    )
    .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text());
    let started = with_plan(&state, answer.parse()).await;
    // The bridge plans over its one cluster, c1: each shard's load names it.
    let old = three.placed(&["c1"]).unwrap().build().unwrap();
    let new = four.placed(&["c1"]).unwrap().build().unwrap();
    let plan = plan_numbered(&old, &new, "user_", 300);
    let summary = started.plan.clone().expect("the answer carries the plan");
    let expected = plan.summary();
    // Counts exactly; fractions as JSON carries them (serde_json parses to ±1 ulp).
    assert_eq!(
        (
            summary.total,
            summary.moved,
            &summary.transfers,
            &summary.loads_before,
            &summary.loads_after
        ),
        (
            expected.total,
            expected.moved,
            &expected.transfers,
            &expected.loads_before,
            &expected.loads_after
        ),
        "the plan is the core's over the real keys"
    );
    assert!(
        summary
            .loads_after
            .iter()
            .all(|load| load.cluster.as_deref() == Some("c1"))
    );
    assert_eq!(
        (summary.moved_within_cluster, summary.moved_across_clusters),
        (summary.moved, 0)
    );
    assert!(summary.cluster_transfers.is_empty() && summary.shard_moves.is_empty());
    assert!((summary.moved_fraction - expected.moved_fraction).abs() < 1e-12);
    assert!((summary.ideal_fraction - expected.ideal_fraction).abs() < 1e-12);
    assert_eq!(started.total, plan.moved);
    assert_eq!((started.from_version, started.to_version), (1, 2));

    let done = wait_done(&state, started.id).await;
    assert_eq!(done.moved, plan.moved);
    assert_eq!(done.total, plan.moved);
    let after = snapshot(&primary, "").await;
    assert_no_key_twice(&after);
    assert_eq!(
        (after.rows, &after.checksum),
        (before.rows, &before.checksum)
    );
    let mut moved_in_postgres = BTreeSet::new();
    for (user_id, shards) in &after.shards_of {
        assert_eq!(
            shards[0],
            new.locate_shard(user_id.as_bytes()).name,
            "{user_id} is not at its new owner"
        );
        if before.shards_of[user_id] != *shards {
            moved_in_postgres.insert(user_id.clone());
        }
    }
    let planned: BTreeSet<String> = (0..300)
        .filter(|index| plan.is_moved(*index))
        .map(|index| format!("user_{index}"))
        .collect();
    assert_eq!(moved_in_postgres, planned);
    let layout: LayoutView = get(&state, "/api/layout").await.parse();
    assert_eq!((layout.version, &layout.layout), (2, &four));
    let states: Vec<(i64, String)> = primary
        .query(
            "SELECT version, state FROM ecoshard.layout ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(states, [(1, "retired".into()), (2, "active".into())]);
    // The stream carries the job.
    let streamed = eventually(Duration::from_secs(5), || async {
        state.service().latest_tick().is_some_and(|json| {
            let tick: Tick = serde_json::from_str(&json).unwrap();
            tick.rebalance
                .is_some_and(|job| job.id == done.id && job.state == JobState::Done)
                && tick.layout_version == 2
        })
    })
    .await;
    assert!(streamed, "no tick carried the finished job");

    // Shrinking: s3's rows go back, then its schema is dropped.
    let answer = put_layout(
        &state,
        &format!(r#"{{"strategy":"{}","shards":3}}"#, strategy.name()),
    )
    .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text());
    let shrink = with_plan(&state, answer.parse()).await;
    let back = plan_numbered(&new, &old, "user_", 300);
    assert_eq!(shrink.total, back.moved);
    assert_eq!(wait_done(&state, shrink.id).await.moved, back.moved);
    let gone = eventually(Duration::from_secs(30), || async {
        primary
            .query_one(
                "SELECT count(*) FROM pg_namespace WHERE nspname = 'shard_s3'",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
            == 0
    })
    .await;
    assert!(gone, "the emptied shard's schema was not dropped");
    let last = snapshot(&primary, "").await;
    assert_no_key_twice(&last);
    assert_eq!((last.rows, &last.checksum), (before.rows, &before.checksum));
    assert_eq!(last.shards_of, before.shards_of, "every row is home again");
    (plan.moved, back.moved)
}

#[tokio::test]
async fn modulo_three_to_four_moves_about_three_quarters_exactly_as_planned() {
    let (grow, _) = grow_and_shrink(StrategyKind::Modulo, "t_rb_modulo").await;
    assert!((200..=250).contains(&grow), "modulo moved {grow} of 300");
}

#[tokio::test]
async fn ring_three_to_four_moves_about_a_quarter_exactly_as_planned() {
    let (grow, _) = grow_and_shrink(StrategyKind::Ring, "t_rb_ring").await;
    assert!((40..=110).contains(&grow), "ring moved {grow} of 300");
}

#[tokio::test]
async fn bad_layouts_change_nothing_and_a_second_job_waits() {
    let _nodes = NODES.read().await;
    let database = "t_rb_refuse";
    let three = ring(3);
    let (state, primary) = bridge_with_users(database, &three, 2000, "k").await;
    let schemas = || async {
        primary
            .query_one(
                "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'shard\\_%'",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    let jobs = || async {
        primary
            .query_one("SELECT count(*) FROM ecoshard.rebalance", &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    let before = snapshot(&primary, "").await;

    // One case a line: the layout, then the status and error code it must get.
    #[rustfmt::skip]
    let cases = [
        (r#"{"strategy":"ring","shards":0}"#, 400, "invalid_layout"),
        (r#"{"strategy":"sharding","shards":4}"#, 400, "invalid_layout"),
        (r#"{"strategy":"ring","shards":4,"vnodes":0}"#, 400, "invalid_layout"),
        (r#"{"strategy":"ring","shards":[{"name":"a b"}]}"#, 400, "invalid_layout"),
        (r#"{"strategy":"ring","shards":[{"name":"a"},{"name":"a"}]}"#, 400, "invalid_layout"),
        (r#"{"strategy":"maglev","shards":4,"table_size":100}"#, 400, "invalid_layout"),
        (r#"{"strategy":"ring","shards":4,"drop":"table"}"#, 400, "invalid_layout"),
        (r#"{"strategy":"ring"}"#, 400, "invalid_layout"),
        (r#"[1,2]"#, 400, "invalid_layout"),
        (r#"{"strategy":"ring","shards":4"#, 400, "invalid_json"),
        (r#"{"strategy":"ring","shards":257}"#, 400, "too_many_shards"),
        (r#"{"strategy":"bounded-load","shards":4}"#, 400, "unsupported_strategy"),
        (r#"{"strategy":"ring","shards":[{"name":"s0","cluster":"c2"}]}"#, 400, "unknown_cluster"),
        (r#"{"strategy":"ring","shards":[{"name":"s0","cluster":"C1"}]}"#, 400, "invalid_layout"),
    ];
    for (body, status, code) in cases {
        let answer = put_layout(&state, body).await;
        assert_eq!(answer.status.as_u16(), status, "{body}: {}", answer.text());
        assert_eq!(answer.error_code(), code, "{body}");
    }
    let untyped = send(
        &state,
        Request::put("/api/layout")
            .header(header::HOST, "localhost:8080")
            .header(header::ORIGIN, "http://localhost:8080")
            .body(Body::from(r#"{"strategy":"ring","shards":4}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(untyped.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let layout: LayoutView = get(&state, "/api/layout").await.parse();
    assert_eq!((layout.version, &layout.layout), (1, &three));
    assert_eq!(schemas().await, 3);
    assert_eq!(jobs().await, 0);

    // Hold one row the job must move: the job waits on it, deterministically.
    let four = ring(4).build().unwrap();
    let old = three.build().unwrap();
    let held = (0..2000)
        .map(|index| format!("k{index}"))
        .find(|key| old.locate_shard(key.as_bytes()).name != four.locate_shard(key.as_bytes()).name)
        .unwrap();
    let mut holder = connect(&CLUSTER.get(), "primary", database).await;
    let lock = holder.transaction().await.unwrap();
    lock.execute(
        &format!(
            "SELECT 1 FROM \"shard_{}\".users WHERE user_id = $1 FOR UPDATE",
            old.locate_shard(held.as_bytes()).name
        ),
        &[&held],
    )
    .await
    .unwrap();
    let answer = put_layout(&state, r#"{"strategy":"ring","shards":4}"#).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text());
    let first: RebalanceJob = answer.parse();
    assert_eq!(first.state, JobState::Running);
    for body in [
        r#"{"strategy":"ring","shards":5}"#,
        r#"{"strategy":"ring","shards":3}"#,
    ] {
        let second = put_layout(&state, body).await;
        assert_eq!(second.status, StatusCode::CONFLICT, "{}", second.text());
        assert_eq!(second.error_code(), "rebalance_running");
        assert!(
            second.text().contains(&format!("job {}", first.id)),
            "{}",
            second.text()
        );
    }
    let running = job_by_id(&state, first.id).await;
    assert_eq!(running.state, JobState::Running);
    // The held key still reads; bulk inserts go by the new layout, and one
    // holding ids that still sit at their old owner is refused whole.
    let read = get(&state, &format!("/api/users/{held}?consistency=strong")).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text());
    // An id still at its old owner (not the held one's shard, whose rows the
    // waiting mover has locked): a duplicate, found by the old-owner check.
    let held_from = old.locate_shard(held.as_bytes()).name.clone();
    let unmoved = (0..2000)
        .map(|index| format!("k{index}"))
        .find(|key| {
            let from = &old.locate_shard(key.as_bytes()).name;
            *from != held_from && *from != four.locate_shard(key.as_bytes()).name
        })
        .unwrap();
    let again = post_json(
        &state,
        "/api/users",
        &format!(r#"{{"user_id":"{unmoved}"}}"#),
    )
    .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text());
    let fresh = post_json(&state, "/api/users/bulk", r#"{"count":500,"prefix":"n"}"#).await;
    assert_eq!(fresh.status, StatusCode::CREATED, "{}", fresh.text());
    lock.rollback().await.unwrap();
    let done = wait_done(&state, first.id).await;
    assert_eq!(done.moved, done.total);
    let after = snapshot(&primary, "n").await;
    for index in 0..500 {
        let key = format!("n{index}");
        assert_eq!(
            after.shards_of.get(&key),
            Some(&vec![four.locate_shard(key.as_bytes()).name.clone()]),
            "{key}"
        );
    }
    assert_no_key_twice(&after);
    assert_eq!(
        (after.rows, &after.checksum),
        (before.rows, &before.checksum)
    );
    let answer = put_layout(&state, r#"{"strategy":"ring","shards":5}"#).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text());
    wait_done(&state, answer.parse::<RebalanceJob>().id).await;

    let unknown = get(&state, "/api/rebalance/987654").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.error_code(), "job_not_found");
    let bad = get(&state, "/api/rebalance/seven").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.error_code(), "invalid_path");
}

/// Rows of `ecoshard.rebalance` and of `ecoshard.layout`, counted in PostgreSQL.
async fn job_and_layout_rows(primary: &tokio_postgres::Client) -> (i64, i64) {
    let count = |table: &'static str| async move {
        primary
            .query_one(&format!("SELECT count(*) FROM ecoshard.{table}"), &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    (count("rebalance").await, count("layout").await)
}

#[tokio::test]
async fn a_no_op_layout_stores_no_job_and_no_version() {
    let _nodes = NODES.read().await;
    let three = ring(3);
    let (state, primary) = bridge_with_users("t_rb_no_op", &three, 2000, "k").await;
    let before = job_and_layout_rows(&primary).await;
    assert_eq!(before, (0, 1));

    // The layout in force, spelt with a default given explicitly.
    let answer = put_layout(&state, r#"{"strategy":"ring","shards":3,"vnodes":160}"#).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let in_force: LayoutView = answer.parse();
    assert_eq!((in_force.version, &in_force.layout), (1, &three));
    assert_eq!(job_and_layout_rows(&primary).await, before);
    assert!(
        state.service().rebalancer().job().is_none(),
        "a job was recorded"
    );
    let layout: LayoutView = get(&state, "/api/layout").await.parse();
    assert_eq!(layout, in_force);
}

/// The bridge has one cluster, `c1`: a layout naming it is the layout
/// without it (stored without it, a no-op when in force), `GET /api/layout`
/// adds each shard's cluster beside the layout, and a layout naming any
/// other cluster is refused, naming it and `c1`, with nothing changed.
#[tokio::test]
async fn a_layout_naming_c1_is_the_same_layout_as_without_and_another_cluster_is_refused() {
    let _nodes = NODES.read().await;
    let three = ring(3);
    let (state, primary) = bridge_with_users("t_rb_cluster", &three, 500, "k").await;
    let rows = job_and_layout_rows(&primary).await;
    let on_c1 = |count: usize| {
        let shards: Vec<String> = (0..count)
            .map(|index| format!(r#"{{"name":"s{index}","cluster":"c1"}}"#))
            .collect();
        format!(r#"{{"strategy":"ring","shards":[{}]}}"#, shards.join(","))
    };

    let answer = put_layout(&state, &on_c1(3)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let in_force: LayoutView = answer.parse();
    assert_eq!((in_force.version, &in_force.layout), (1, &three));
    assert_eq!(in_force.placement, ["c1", "c1", "c1"]);
    assert_eq!(job_and_layout_rows(&primary).await, rows);
    let fetched = get(&state, "/api/layout").await;
    let json: serde_json::Value = fetched.parse();
    assert_eq!(json["layout"], serde_json::to_value(&three).unwrap());
    assert!(!json["layout"].to_string().contains("cluster"), "{json}");
    assert_eq!(json["placement"], serde_json::json!(["c1", "c1", "c1"]));

    let refused = put_layout(
        &state,
        r#"{"strategy":"ring","shards":[{"name":"s0"},{"name":"s1","cluster":"c2"}]}"#,
    )
    .await;
    assert_eq!(
        refused.status,
        StatusCode::BAD_REQUEST,
        "{}",
        refused.text()
    );
    let error: ApiErrorBody = refused.parse();
    assert_eq!(error.error.code, "unknown_cluster");
    let message = error.error.message;
    assert!(message.contains(r#"shard "s1""#), "{message}");
    assert!(message.contains(r#"cluster "c2""#), "{message}");
    assert!(message.contains("shards go on c1"), "{message}");
    assert_eq!(job_and_layout_rows(&primary).await, rows);

    let answer = put_layout(&state, &on_c1(4)).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text());
    let job: RebalanceJob = answer.parse();
    wait_done(&state, job.id).await;
    let now: LayoutView = get(&state, "/api/layout").await.parse();
    assert_eq!((now.version, &now.layout), (2, &ring(4)));
    let again = put_layout(&state, r#"{"strategy":"ring","shards":4}"#).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text());
}

/// Every value of a JSON document with its numbers replaced by 0: the shape.
fn shape(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Number(_) => Value::from(0),
        Value::Array(items) => Value::Array(items.iter().map(shape).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, value)| (key.clone(), shape(value)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The latest tick once it shows job `id` done.
async fn tick_with_done_job(state: &AppState, id: u64) -> String {
    let tick = eventually_some(Duration::from_secs(30), || async {
        let json = state.service().latest_tick()?;
        let tick: Tick = serde_json::from_str(&json).unwrap();
        tick.rebalance
            .is_some_and(|job| job.id == id && job.state == JobState::Done)
            .then(|| json.to_string())
    })
    .await;
    tick.unwrap_or_else(|| panic!("no tick showed job {id} done"))
}

#[tokio::test]
async fn ticks_carry_the_job_without_its_plan_whatever_the_shard_count() {
    let _nodes = NODES.read().await;
    let three = ring(3);
    let (state, _primary) = bridge_with_users("t_rb_ticks", &three, 1000, "t").await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            state.service().latest_tick().is_some()
        })
        .await
    );
    let first = state.service().latest_tick().unwrap().len();

    let mut summaries = Vec::new();
    let mut sizes = Vec::new();
    for shards in [4, 256] {
        let started = std::time::Instant::now();
        let answer = put_layout(
            &state,
            &format!(r#"{{"strategy":"ring","shards":{shards}}}"#),
        )
        .await;
        eprintln!(
            "PUT of ring over {shards} shards took {:?}",
            started.elapsed()
        );
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text());
        let done = wait_done(&state, answer.parse::<RebalanceJob>().id).await;
        let json = tick_with_done_job(&state, done.id).await;
        let tick: serde_json::Value = serde_json::from_str(&json).unwrap();
        let job = &tick["rebalance"];
        assert_eq!(job["plan"], serde_json::Value::Null, "{job}");
        assert_eq!(job["total"], done.total, "{job}");
        // The plan is there, once, for whoever asks for it.
        let full = get(&state, &format!("/api/rebalance/{}", done.id)).await;
        let plan = full.parse::<RebalanceJob>().plan.expect("the job's plan");
        assert_eq!(plan.loads_after.len(), shards);
        sizes.push((shards, json.len(), job.to_string().len(), full.body.len()));
        summaries.push(shape(job));
    }
    // The same fields, none a list or an object: nothing in a tick's job
    // grows with the shard count.
    assert_eq!(summaries[0], summaries[1]);
    let fields = summaries[1].as_object().expect("an object");
    assert!(
        fields
            .values()
            .all(|value| !value.is_array() && !value.is_object()),
        "{fields:?}"
    );
    eprintln!(
        "tick before any job: {first} bytes; after a job to (shards, tick bytes, its job's \
         bytes, GET /api/rebalance bytes): {sizes:?}"
    );
}

#[tokio::test]
async fn a_layout_too_costly_to_build_is_refused_and_health_answers_while_the_costliest_is_built() {
    let _nodes = NODES.read().await;
    let three = ring(3);
    let (state, primary) = bridge_with_users("t_rb_costly", &three, 2000, "c").await;

    // The review's layout, which held the server for 16 s: refused, naming the limit.
    let shards: Vec<String> = (0..255)
        .map(|index| format!(r#"{{"name":"s{index}","weight":1e-300}}"#))
        .collect();
    let review = format!(
        r#"{{"strategy":"maglev","table_size":16777213,"shards":[{}]}}"#,
        shards.join(",")
    );
    let started = std::time::Instant::now();
    let answer = put_layout(&state, &review).await;
    let refusal_took = started.elapsed();
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text());
    let error = answer.parse::<ApiErrorBody>().error;
    assert_eq!(error.code, "invalid_layout");
    assert!(
        error.message.contains("at most 20000000"),
        "{}",
        error.message
    );
    assert_eq!(job_and_layout_rows(&primary).await, (0, 1));

    // The costliest layout the bounds allow: the largest Maglev table. While
    // it is built (job stored, routing not yet swapped), health answers.
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let (state, stop) = (state.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut answers = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let building = |state: &AppState| {
                    state.service().rebalancer().job().is_some()
                        && state.service().routing().table().current.version == 1
                };
                let before = building(&state);
                let answer = get(&state, "/api/health").await;
                let during = before && building(&state);
                answers.push((std::time::Instant::now(), answer.status, during));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            answers
        })
    };
    let started = std::time::Instant::now();
    let answer = put_layout(
        &state,
        r#"{"strategy":"maglev","shards":1,"table_size":16777213}"#,
    )
    .await;
    let put_took = started.elapsed();
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text());
    let job: RebalanceJob = answer.parse();
    let done = wait_done(&state, job.id).await;
    stop.store(true, Ordering::Relaxed);
    let answers = poller.await.unwrap();
    assert!(
        answers
            .iter()
            .all(|(_, status, _)| *status == StatusCode::OK),
        "a health check failed"
    );
    let during_build = answers.iter().filter(|(_, _, during)| *during).count();
    assert!(
        during_build > 0,
        "health never answered while the layout was built"
    );
    assert_eq!(done.moved, done.total);
    let longest_gap = answers
        .windows(2)
        .map(|pair| pair[1].0 - pair[0].0)
        .max()
        .unwrap_or_default();
    eprintln!(
        "refusing the review's layout took {refusal_took:?}; PUT of the costliest layout took \
         {put_took:?} (plan in the answer: {}); {} health answers while the job ran, {during_build} \
         while the layout was built, longest gap {longest_gap:?}",
        job.plan.is_some(),
        answers.len()
    );
}

/// A small deterministic sequence for picking keys.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[tokio::test]
async fn a_hundred_thousand_rows_move_under_reads_and_inserts() {
    let _nodes = NODES.read().await;
    let cluster = CLUSTER.get();
    let database = "t_rb_load";
    let three = Layout::with_count(StrategyKind::Modulo, 3).unwrap();
    // Batches of 1,000: more commits for the readers to meet.
    let state = bridge_with(&cluster, database, |config| {
        config.initial_layout = three.clone();
        config.rebalance_batch = 1_000;
    })
    .await;
    const BATCHES: u64 = 10;
    const PER_BATCH: u64 = 10_000;
    for batch in 0..BATCHES {
        let answer = post_json(
            &state,
            "/api/users/bulk",
            &format!(r#"{{"count":{PER_BATCH},"prefix":"b{batch}_"}}"#),
        )
        .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
    }
    let total_rows = (BATCHES * PER_BATCH) as i64;
    let primary = connect(&cluster, "primary", database).await;
    let before = snapshot(&primary, "live_").await;
    assert_eq!(before.rows, total_rows);
    // Standbys serve eventual reads: let them hold every row first.
    for standby in ["standby-1", "standby-2"] {
        let client = connect(&cluster, standby, database).await;
        let caught_up = eventually(LIMIT, || async {
            rows::count(&client).await == Some(total_rows)
        })
        .await;
        assert!(caught_up, "{standby} never held every row");
    }
    wait_streaming(&state).await;

    let stop = Arc::new(AtomicBool::new(false));
    let moving = Arc::new(AtomicBool::new(false));
    let reads_while_moving = Arc::new(AtomicU64::new(0));
    let standby_reads_while_moving = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for reader in 0..4u64 {
        let (state, stop, moving, counted, on_standbys) = (
            state.clone(),
            Arc::clone(&stop),
            Arc::clone(&moving),
            Arc::clone(&reads_while_moving),
            Arc::clone(&standby_reads_while_moving),
        );
        readers.push(tokio::spawn(async move {
            let mut seed = 0x9e37_79b9_7f4a_7c15 ^ (reader + 1);
            let mut failures = Vec::new();
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let batch = next(&mut seed) % BATCHES;
                let index = next(&mut seed) % PER_BATCH;
                let key = format!("b{batch}_{index}");
                let consistency = if reader % 2 == 0 {
                    "eventual"
                } else {
                    "strong"
                };
                let was_moving = moving.load(Ordering::Relaxed);
                let answer = get(
                    &state,
                    &format!("/api/users/{key}?consistency={consistency}"),
                )
                .await;
                reads += 1;
                let during = was_moving && moving.load(Ordering::Relaxed);
                if during {
                    counted.fetch_add(1, Ordering::Relaxed);
                }
                if answer.status != StatusCode::OK {
                    failures.push(format!("{key}: {} {}", answer.status, answer.text()));
                } else if answer.json()["user"]["user_id"] != key.as_str() {
                    failures.push(format!("{key}: wrong row {}", answer.text()));
                } else if during && answer.json()["served_by"] != "primary" {
                    on_standbys.fetch_add(1, Ordering::Relaxed);
                }
            }
            (reads, failures)
        }));
    }
    let mut inserters = Vec::new();
    for inserter in 0..2u64 {
        let (state, stop) = (state.clone(), Arc::clone(&stop));
        inserters.push(tokio::spawn(async move {
            let mut inserted = Vec::new();
            let mut failures = Vec::new();
            let mut duplicates_refused = 0u64;
            let mut seed = 0x2545_f491_4f6c_dd1d ^ (inserter + 7);
            let mut count = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("live_{inserter}_{count}");
                count += 1;
                let answer =
                    post_json(&state, "/api/users", &format!(r#"{{"user_id":"{key}"}}"#)).await;
                if answer.status == StatusCode::CREATED {
                    inserted.push(key);
                } else {
                    failures.push(format!("{key}: {} {}", answer.status, answer.text()));
                }
                // An id that exists, moved or not yet: always refused.
                let existing = format!(
                    "b{}_{}",
                    next(&mut seed) % BATCHES,
                    next(&mut seed) % PER_BATCH
                );
                let answer = post_json(
                    &state,
                    "/api/users",
                    &format!(r#"{{"user_id":"{existing}"}}"#),
                )
                .await;
                if answer.status == StatusCode::CONFLICT {
                    duplicates_refused += 1;
                } else {
                    failures.push(format!(
                        "{existing} again: {} {}",
                        answer.status,
                        answer.text()
                    ));
                }
            }
            (inserted, duplicates_refused, failures)
        }));
    }

    tokio::time::sleep(Duration::from_millis(200)).await;
    moving.store(true, Ordering::Relaxed);
    let answer = put_layout(&state, r#"{"strategy":"modulo","shards":4}"#).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text());
    let job = with_plan(&state, answer.parse()).await;
    let plan = job.plan.clone().unwrap();
    assert!(job.total > 70_000, "{job:?}");
    let done = wait_done(&state, job.id).await;
    moving.store(false, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let mut read_failures = Vec::new();
    let mut reads = 0;
    for reader in readers {
        let (count, failures) = reader.await.unwrap();
        reads += count;
        read_failures.extend(failures);
    }
    let mut inserted = Vec::new();
    let mut write_failures = Vec::new();
    let mut refused = 0;
    for inserter in inserters {
        let (keys, duplicates, failures) = inserter.await.unwrap();
        inserted.extend(keys);
        refused += duplicates;
        write_failures.extend(failures);
    }
    assert!(
        read_failures.is_empty(),
        "{} of {reads} reads failed: {:?}",
        read_failures.len(),
        &read_failures[..read_failures.len().min(5)]
    );
    assert!(
        write_failures.is_empty(),
        "{:?}",
        &write_failures[..write_failures.len().min(5)]
    );
    assert!(
        reads_while_moving.load(Ordering::Relaxed) > 0,
        "no read ran during the job"
    );
    assert!(
        standby_reads_while_moving.load(Ordering::Relaxed) > 0,
        "no standby served a read during the job"
    );
    assert!(refused > 0 && !inserted.is_empty());
    let after = snapshot(&primary, "live_").await;
    assert_no_key_twice(&after);
    assert_eq!(
        (after.rows, &after.checksum),
        (before.rows, &before.checksum)
    );
    assert_eq!(done.total, plan.moved);
    assert_eq!(done.moved, done.total);
    let four = Layout::with_count(StrategyKind::Modulo, 4)
        .unwrap()
        .build()
        .unwrap();
    for key in &inserted {
        let shards = after
            .shards_of
            .get(key)
            .unwrap_or_else(|| panic!("{key} was acknowledged, then lost"));
        assert_eq!(shards, &[four.locate_shard(key.as_bytes()).name.clone()]);
    }
    for (user_id, shards) in &after.shards_of {
        assert_eq!(
            shards[0],
            four.locate_shard(user_id.as_bytes()).name,
            "{user_id}"
        );
    }
    assert_eq!(after.shards_of.len(), total_rows as usize + inserted.len());
    eprintln!(
        "moved {} rows at {:.0} rows/s; {reads} reads ({} during the job, {} of them on standbys), \
         {} inserts, {refused} duplicates refused",
        done.moved,
        done.rows_per_sec,
        reads_while_moving.load(Ordering::Relaxed),
        standby_reads_while_moving.load(Ordering::Relaxed),
        inserted.len()
    );
}

#[tokio::test]
async fn a_failed_job_keeps_every_row_readable_and_a_restart_resumes_it() {
    let _nodes = NODES.read().await;
    let cluster = CLUSTER.get();
    let database = "t_rb_failed";
    let three = ring(3);
    let (state, primary) = bridge_with_users(database, &three, 3000, "f").await;
    let before = snapshot(&primary, "").await;

    // Ring 3 → 4 moves keys from s0, s1 and s2 to s3, one pair after the
    // other (one batch each here). Hold a key of s0 → s3, so the job waits
    // on its first batch; meanwhile put a copy of a key of s2 → s3 into s3
    // behind the bridge's back: its batch must fail.
    let old = three.build().unwrap();
    let new = ring(4).build().unwrap();
    let moving_from = |shard: &str| {
        (0..3000)
            .map(|index| format!("f{index}"))
            .find(|key| {
                old.locate_shard(key.as_bytes()).name == shard
                    && new.locate_shard(key.as_bytes()).name == "s3"
            })
            .unwrap()
    };
    let (held, doubled) = (moving_from("s0"), moving_from("s2"));
    let mut holder = connect(&cluster, "primary", database).await;
    let lock = holder.transaction().await.unwrap();
    lock.execute(
        "SELECT 1 FROM \"shard_s0\".users WHERE user_id = $1 FOR UPDATE",
        &[&held],
    )
    .await
    .unwrap();
    let answer = put_layout(&state, r#"{"strategy":"ring","shards":4}"#).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text());
    let job: RebalanceJob = answer.parse();
    primary
        .execute(
            "INSERT INTO \"shard_s3\".users SELECT * FROM \"shard_s2\".users WHERE user_id = $1",
            &[&doubled],
        )
        .await
        .unwrap();
    lock.rollback().await.unwrap();
    let failed = eventually(Duration::from_secs(60), || async {
        let now = job_by_id(&state, job.id).await;
        now.state == JobState::Failed
    })
    .await;
    assert!(failed, "the job did not fail");
    let now = job_by_id(&state, job.id).await;
    assert!(
        now.error
            .as_deref()
            .is_some_and(|why| why.contains("duplicate key")),
        "{now:?}"
    );
    assert!(now.moved < now.total, "{now:?}");
    // Every original row is still found, moved or not.
    for index in (0..3000).step_by(7) {
        let key = format!("f{index}");
        let read = get(&state, &format!("/api/users/{key}?consistency=strong")).await;
        assert_eq!(read.status, StatusCode::OK, "{key}: {}", read.text());
    }
    // Writes go by the new layout; ids still at their old owner are
    // duplicates, and a bulk insert holding them and a new one is refused
    // whole (f3000 is not written: counted below).
    let again = post_json(&state, "/api/users/bulk", r#"{"count":3001,"prefix":"f"}"#).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text());
    let fresh = post_json(&state, "/api/users/bulk", r#"{"count":300,"prefix":"g"}"#).await;
    assert_eq!(fresh.status, StatusCode::CREATED, "{}", fresh.text());
    // No other layout until it is resumed; the same layout neither.
    for body in [
        r#"{"strategy":"ring","shards":5}"#,
        r#"{"strategy":"ring","shards":4}"#,
    ] {
        let refused = put_layout(&state, body).await;
        assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text());
        assert!(refused.text().contains("failed"), "{}", refused.text());
    }

    // Repaired by hand, then a bridge started on the database resumes the job.
    primary
        .execute(
            "DELETE FROM \"shard_s3\".users WHERE user_id = $1",
            &[&doubled],
        )
        .await
        .unwrap();
    let restarted = bridge(&cluster, database, three).await;
    let done = wait_done(&restarted, job.id).await;
    assert_eq!((done.moved, done.total), (now.total, now.total));
    let after = snapshot(&primary, "g").await;
    assert_eq!(after.shards_of.len(), 3300);
    assert_no_key_twice(&after);
    assert_eq!(
        (after.rows, &after.checksum),
        (before.rows, &before.checksum)
    );
    for (user_id, shards) in &after.shards_of {
        assert_eq!(shards[0], new.locate_shard(user_id.as_bytes()).name);
    }
}

#[tokio::test]
async fn a_batch_whose_job_is_gone_moves_nothing() {
    let _nodes = NODES.read().await;
    let cluster = CLUSTER.get();
    let database = "t_rb_gone";
    let three = ring(3);
    let (state, primary) = bridge_with_users(database, &three, 2000, "q").await;
    let before = snapshot(&primary, "").await;
    let old = three.build().unwrap();
    let new = ring(4).build().unwrap();
    let held = (0..2000)
        .map(|index| format!("q{index}"))
        .find(|key| {
            old.locate_shard(key.as_bytes()).name == "s0"
                && new.locate_shard(key.as_bytes()).name == "s3"
        })
        .unwrap();
    let mut holder = connect(&cluster, "primary", database).await;
    let lock = holder.transaction().await.unwrap();
    lock.execute(
        "SELECT 1 FROM \"shard_s0\".users WHERE user_id = $1 FOR UPDATE",
        &[&held],
    )
    .await
    .unwrap();
    let answer = put_layout(&state, r#"{"strategy":"ring","shards":4}"#).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text());
    let job: RebalanceJob = answer.parse();
    // While its first batch waits, the job stops being "running" in the
    // database (as when a failover loses it): that batch must not commit.
    primary
        .execute(
            "UPDATE ecoshard.rebalance SET state = 'failed' WHERE id = $1",
            &[&(job.id as i64)],
        )
        .await
        .unwrap();
    lock.rollback().await.unwrap();
    let stopped = eventually(Duration::from_secs(60), || async {
        let now = job_by_id(&state, job.id).await;
        now.state == JobState::Failed
    })
    .await;
    assert!(stopped, "the job went on");
    let now = job_by_id(&state, job.id).await;
    assert_eq!(now.moved, 0, "{now:?}");
    assert!(
        now.error
            .as_deref()
            .is_some_and(|why| why.contains("no longer holds")),
        "{now:?}"
    );
    let after = snapshot(&primary, "").await;
    assert_eq!(after.shards_of, before.shards_of, "a row moved");
    assert_eq!(after.checksum, before.checksum);
}

#[tokio::test]
async fn a_job_stored_before_its_shards_were_created_is_resumed_with_them() {
    let _nodes = NODES.read().await;
    let cluster = CLUSTER.get();
    let database = "t_rb_no_shards";
    let three = ring(3);
    let four = ring(4);
    let (_first, primary) = bridge_with_users(database, &three, 500, "n").await;
    let before = snapshot(&primary, "").await;
    // What a bridge killed between storing a job and creating its shards leaves.
    primary
        .execute(
            "INSERT INTO ecoshard.layout (version, layout, state) VALUES (2, $1::text::jsonb, 'target')",
            &[&serde_json::to_string(&four).unwrap()],
        )
        .await
        .unwrap();
    primary
        .execute(
            "INSERT INTO ecoshard.rebalance (from_version, to_version, state) VALUES (1, 2, 'running')",
            &[],
        )
        .await
        .unwrap();
    let restarted = bridge(&cluster, database, three).await;
    let id = restarted
        .service()
        .rebalancer()
        .job()
        .expect("the job resumed")
        .id;
    let done = wait_done(&restarted, id).await;
    assert_eq!(done.moved, done.total);
    let after = snapshot(&primary, "").await;
    assert_no_key_twice(&after);
    assert_eq!(
        (after.rows, &after.checksum),
        (before.rows, &before.checksum)
    );
    let new = four.build().unwrap();
    for (user_id, shards) in &after.shards_of {
        assert_eq!(shards[0], new.locate_shard(user_id.as_bytes()).name);
    }
    assert!(after.shards_of.values().any(|shards| shards[0] == "s3"));
}

/// Its own cluster, with synchronous replication: the primary is killed.
const FAILOVER_PORT: u16 = 29550;

#[tokio::test]
async fn a_rebalance_outlives_a_primary_failover() {
    const BATCH: usize = 100;
    let local = start_cluster("rebalance-failover", FAILOVER_PORT, true);
    let database = "t_rb_failover";
    let three = Layout::with_count(StrategyKind::Modulo, 3).unwrap();
    let state = bridge_with(&local, database, |config| {
        config.initial_layout = three.clone();
        config.rebalance_batch = BATCH;
        config.control = control(&local);
        config.auto_failover = true;
    })
    .await;
    let answer = post_json(&state, "/api/users/bulk", r#"{"count":5000,"prefix":"p"}"#).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
    let before = snapshot(&connect(&local, "primary", database).await, "").await;

    // Hold the mover after two batches of its first (from, to) pair.
    let old = three.build().unwrap();
    let new = Layout::with_count(StrategyKind::Modulo, 4)
        .unwrap()
        .build()
        .unwrap();
    let mut first: Vec<(String, String, String)> = (0..5000)
        .map(|index| format!("p{index}"))
        .filter_map(|key| {
            let (from, to) = (
                old.locate_shard(key.as_bytes()).name.clone(),
                new.locate_shard(key.as_bytes()).name.clone(),
            );
            (from != to).then_some((from, to, key))
        })
        .collect();
    first.sort();
    let (from, to, _) = first[0].clone();
    let pair: Vec<&(String, String, String)> = first
        .iter()
        .filter(|(f, t, _)| *f == from && *t == to)
        .collect();
    let held = pair[2 * BATCH + 10].2.clone();
    let mut holder = connect(&local, "primary", database).await;
    let lock = holder.transaction().await.unwrap();
    lock.execute(
        &format!("SELECT 1 FROM \"shard_{from}\".users WHERE user_id = $1 FOR UPDATE"),
        &[&held],
    )
    .await
    .unwrap();
    let answer = put_layout(&state, r#"{"strategy":"modulo","shards":4}"#).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text());
    let job = with_plan(&state, answer.parse()).await;
    let held_there = eventually(Duration::from_secs(60), || async {
        let now = job_by_id(&state, job.id).await;
        now.moved == 2 * BATCH as u64
    })
    .await;
    assert!(held_there, "the mover did not stop at the held row");

    // kill -9 the primary: a standby is promoted, the job carries on there.
    let killer = Arc::clone(&local);
    assert!(
        tokio::task::spawn_blocking(move || killer.kill_node("primary"))
            .await
            .unwrap()
            .expect("kill -9 the primary")
    );
    drop(lock);
    drop(holder);
    let done = wait_done(&state, job.id).await;
    assert_eq!((done.moved, done.total), (job.total, job.total));
    let promoted = local.primary_name();
    assert_ne!(promoted, "primary");
    let after = snapshot(&connect(&local, &promoted, database).await, "").await;
    assert_no_key_twice(&after);
    assert_eq!(
        (after.rows, &after.checksum),
        (before.rows, &before.checksum)
    );
    for (user_id, shards) in &after.shards_of {
        assert_eq!(shards[0], new.locate_shard(user_id.as_bytes()).name);
    }
}
