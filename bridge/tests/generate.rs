//! `POST /api/users/generate` against a real primary and two standbys: a
//! data set written with `COPY` lands each row in the shard the core names,
//! all or nothing (a connection killed mid-`COPY` writes nothing), a repeat
//! is a 200, a collision a 409 with nothing written, bad requests 4xx, and
//! it is refused while a rebalance runs (and a rebalance while it runs).

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{
    Answer, LIMIT, NODES, SharedCluster, bridge, bridge_with, connect, eventually_some, get,
    post_json, ring, send,
};
use ecoshard_core::wire::{GenerateResult, JobState, RebalanceJob};

/// This binary's cluster (ports from 31400).
static CLUSTER: SharedCluster = SharedCluster::new("generate", 31400, false);

/// Users in each shard table of `shards` whose id starts with `prefix`,
/// counted in PostgreSQL on the primary.
async fn stored(client: &tokio_postgres::Client, shards: &[&str], prefix: &str) -> Vec<i64> {
    let mut counts = Vec::new();
    for shard in shards {
        let sql =
            format!("SELECT count(*) FROM shard_{shard}.users WHERE starts_with(user_id, $1)");
        counts.push(client.query_one(&sql, &[&prefix]).await.unwrap().get(0));
    }
    counts
}

async fn generate(state: &ecoshard_bridge::AppState, count: u64, prefix: &str) -> Answer {
    let body = format!(r#"{{"count":{count},"prefix":"{prefix}"}}"#);
    post_json(state, "/api/users/generate", &body).await
}

#[tokio::test]
async fn generated_users_land_in_the_shards_the_core_names() {
    let _nodes = NODES.read().await;
    let cluster = CLUSTER.get();
    let database = "t_gen_place";
    let state = bridge(&cluster, database, ring(3)).await;
    const COUNT: u64 = 200_000;
    let answer = generate(&state, COUNT, "g_").await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
    let result: GenerateResult = answer.parse();
    assert_eq!((result.inserted, result.prefix.as_str()), (COUNT, "g_"));
    assert!(
        result.lsn.contains('/') && result.rows_per_sec > 0.0,
        "{result:?}"
    );

    // The core's plan over the same ids, the answer and PostgreSQL agree.
    let router = ring(3).build().unwrap();
    let mut planned = [0_i64; 3];
    for index in 0..COUNT {
        planned[router.locate(format!("g_{index}").as_bytes())] += 1;
    }
    let answered: Vec<i64> = result.shards.iter().map(|load| load.keys as i64).collect();
    assert_eq!(answered, planned);
    let primary = connect(&cluster, "primary", database).await;
    assert_eq!(stored(&primary, &["s0", "s1", "s2"], "g_").await, planned);
    for index in [0_u64, 1, 99_999, COUNT - 1] {
        let id = format!("g_{index}");
        let shard = &result.shards[router.locate(id.as_bytes())].shard;
        let sql = format!("SELECT name, email FROM shard_{shard}.users WHERE user_id = $1");
        let row = primary.query_one(&sql, &[&id]).await.unwrap();
        let fields: (String, String) = (row.get(0), row.get(1));
        assert_eq!(
            fields,
            (format!("User {index}"), format!("{id}@ecomarket.example"))
        );
    }

    // The same generate again: a repeat, nothing written.
    let again = generate(&state, COUNT, "g_").await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text());
    let again: GenerateResult = again.parse();
    assert_eq!((again.inserted, again.shards), (0, result.shards));

    // More ids than stored under that prefix: some exist, nothing written.
    let more = generate(&state, COUNT + 1, "g_").await;
    assert_eq!(more.status, StatusCode::CONFLICT, "{}", more.text());
    assert_eq!(more.error_code(), "duplicate_user");
    assert!(more.text().contains("g_0 … g_200000"), "{}", more.text());
    assert_eq!(stored(&primary, &["s0", "s1", "s2"], "g_").await, planned);
}

#[tokio::test]
async fn a_generate_colliding_with_one_user_writes_nothing() {
    let _nodes = NODES.read().await;
    let cluster = CLUSTER.get();
    let database = "t_gen_collide";
    let state = bridge(&cluster, database, ring(3)).await;
    let one = post_json(&state, "/api/users", r#"{"user_id":"c_7","name":"Ana"}"#).await;
    assert_eq!(one.status, StatusCode::CREATED, "{}", one.text());
    let answer = generate(&state, 10_000, "c_").await;
    assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.text());
    assert_eq!(answer.error_code(), "duplicate_user");
    let primary = connect(&cluster, "primary", database).await;
    let counts = stored(&primary, &["s0", "s1", "s2"], "c_").await;
    assert_eq!(counts.iter().sum::<i64>(), 1, "only Ana: {counts:?}");
}

#[tokio::test]
async fn bad_generate_requests_are_refused_and_write_nothing() {
    let _nodes = NODES.read().await;
    let cluster = CLUSTER.get();
    let database = "t_gen_bad";
    let state = bridge(&cluster, database, ring(3)).await;
    let check = |body: &'static str, status: u16, code: &'static str| {
        let state = state.clone();
        async move {
            let answer = post_json(&state, "/api/users/generate", body).await;
            assert_eq!(
                (answer.status.as_u16(), answer.error_code()),
                (status, code.into()),
                "{body}: {}",
                answer.text()
            );
        }
    };
    check(r#"{"count":0}"#, 400, "invalid_count").await;
    check(r#"{"count":10000001}"#, 400, "invalid_count").await;
    check(r#"{"count":5,"prefix":"a b"}"#, 400, "invalid_prefix").await;
    check(
        r#"{"count":5,"prefix":"x' OR '1'='1"}"#,
        400,
        "invalid_prefix",
    )
    .await;
    check(
        r#"{"count":5,"prefix":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}"#,
        400,
        "invalid_prefix",
    )
    .await;
    check(r#"{"count":-1}"#, 422, "invalid_body").await;
    check(r#"{"count":"5"}"#, 422, "invalid_body").await;
    check(r#"{"prefix":"p_"}"#, 422, "invalid_body").await;
    check(r#"{"count":5,"rows":5}"#, 422, "invalid_body").await;
    check(r#"{"count":5"#, 400, "invalid_json").await;
    let primary = connect(&cluster, "primary", database).await;
    assert_eq!(stored(&primary, &["s0", "s1", "s2"], "").await, [0, 0, 0]);
    let message = post_json(&state, "/api/users/generate", r#"{"count":0}"#).await;
    assert!(
        message.text().contains("1 to 10,000,000"),
        "{}",
        message.text()
    );
}

/// The backend running a `COPY` into a shard of `database`, once one runs.
async fn copying_backend(client: &tokio_postgres::Client, database: &str) -> Option<i32> {
    let sql = "SELECT pid FROM pg_stat_activity \
               WHERE datname = $1 AND query LIKE 'COPY %' AND state = 'active'";
    eventually_some(LIMIT, || async {
        let row = client.query_opt(sql, &[&database]).await.ok().flatten()?;
        Some(row.get::<_, i32>(0))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generate_whose_connection_is_killed_mid_copy_writes_nothing() {
    let _nodes = NODES.read().await;
    let cluster = CLUSTER.get();
    let database = "t_gen_killed";
    let state = bridge(&cluster, database, ring(3)).await;
    let running = {
        let state = state.clone();
        tokio::spawn(async move { generate(&state, 3_000_000, "k_").await })
    };
    let watcher = connect(&cluster, "primary", database).await;
    let pid = copying_backend(&watcher, database)
        .await
        .expect("no COPY seen");
    // While it runs: no second generate, no rebalance.
    let second = generate(&state, 10, "other_").await;
    assert_eq!(
        (second.status, second.error_code()),
        (StatusCode::CONFLICT, "generate_running".into()),
        "{}",
        second.text()
    );
    let layout = send(
        &state,
        Request::put("/api/layout")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(r#"{"strategy":"ring","shards":4}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(
        (layout.status, layout.error_code()),
        (StatusCode::CONFLICT, "generate_running".into()),
        "{}",
        layout.text()
    );
    let killed: bool = watcher
        .query_one("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap()
        .get(0);
    assert!(killed);
    let answer = running.await.unwrap();
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.text()
    );
    assert_eq!(answer.error_code(), "primary_unavailable");
    assert_eq!(stored(&watcher, &["s0", "s1", "s2"], "k_").await, [0, 0, 0]);
    // Nothing holds the generation's slot any more.
    let after = generate(&state, 1_000, "after_").await;
    assert_eq!(after.status, StatusCode::CREATED, "{}", after.text());
}

#[tokio::test]
async fn a_generate_is_refused_while_a_rebalance_runs() {
    let _nodes = NODES.read().await;
    let cluster = CLUSTER.get();
    let database = "t_gen_rebalance";
    // Small batches: the job runs long enough to be met.
    let state = bridge_with(&cluster, database, |config| config.rebalance_batch = 50).await;
    let seeded = generate(&state, 100_000, "r_").await;
    assert_eq!(seeded.status, StatusCode::CREATED, "{}", seeded.text());
    let layout = send(
        &state,
        Request::put("/api/layout")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(r#"{"strategy":"ring","shards":4}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(layout.status, StatusCode::ACCEPTED, "{}", layout.text());
    let job: RebalanceJob = layout.parse();
    let refused = generate(&state, 10, "during_").await;
    let now: RebalanceJob = get(&state, &format!("/api/rebalance/{}", job.id))
        .await
        .parse();
    assert_eq!(
        now.state,
        JobState::Running,
        "the job ended before the generate was refused"
    );
    assert_eq!(
        (refused.status, refused.error_code()),
        (StatusCode::CONFLICT, "rebalance_running".into()),
        "{}",
        refused.text()
    );
    assert!(
        refused
            .text()
            .contains(&format!("rebalance job {}", job.id)),
        "{}",
        refused.text()
    );
    let primary = connect(&cluster, "primary", database).await;
    let counts = stored(&primary, &["s0", "s1", "s2"], "during_").await;
    assert_eq!(counts, [0, 0, 0]);
}

/// `ecoshard ARGS` run off the test's runtime: its output.
async fn ecoshard(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        common::blocking::ecoshard(&args)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecoshard_load_writes_a_data_set_and_says_how_fast() {
    let _nodes = NODES.read().await;
    let cluster = CLUSTER.get();
    let database = "t_gen_cli";
    let state = bridge(&cluster, database, ring(3)).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(ecoshard_bridge::serve(
        listener,
        state.clone(),
        std::future::pending(),
    ));
    let args = |rest: &[&str]| -> Vec<String> {
        ["load", "--url", &url]
            .iter()
            .chain(rest)
            .map(|arg| arg.to_string())
            .collect()
    };
    let table = ecoshard(args(&["--count", "20000", "--prefix", "cli_"])).await;
    let stdout = String::from_utf8_lossy(&table.stdout);
    assert_eq!(
        table.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&table.stderr)
    );
    assert!(
        stdout.starts_with("wrote 20,000 users cli_0 … cli_19999 in "),
        "{stdout}"
    );
    assert!(
        stdout.contains(" rows/s\n") && stdout.contains("  s2 "),
        "{stdout}"
    );
    let json = ecoshard(args(&[
        "-n", "20000", "--prefix", "cli_", "--format", "json",
    ]))
    .await;
    assert_eq!(
        json.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&json.stderr)
    );
    let repeat: GenerateResult = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        (
            repeat.inserted,
            repeat.shards.iter().map(|load| load.keys).sum::<u64>()
        ),
        (0, 20_000)
    );
    let primary = connect(&cluster, "primary", database).await;
    assert_eq!(
        stored(&primary, &["s0", "s1", "s2"], "cli_")
            .await
            .iter()
            .sum::<i64>(),
        20_000
    );
    // Refusals: one line each; bad input exits 2, a conflict or no bridge 1.
    let check = |rest: Vec<String>, code: i32, expected: &'static str| async move {
        let output = ecoshard(rest.clone()).await;
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        assert_eq!(output.status.code(), Some(code), "{rest:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{rest:?}: {stderr}");
        assert!(stderr.contains(expected), "{rest:?}: {stderr}");
    };
    check(args(&["--count", "0"]), 2, "--count").await;
    check(args(&["--count", "10000001"]), 2, "--count").await;
    check(args(&["--count", "lots"]), 2, "--count").await;
    check(args(&["--prefix", "p_"]), 2, "--count").await;
    check(
        args(&["--count", "5", "--prefix", "a b"]),
        2,
        "invalid_prefix",
    )
    .await;
    check(
        args(&["--count", "20001", "--prefix", "cli_"]),
        1,
        "duplicate_user",
    )
    .await;
    let nowhere = ["load", "--url", "http://127.0.0.1:1", "--count", "5"];
    check(
        nowhere.iter().map(|arg| arg.to_string()).collect(),
        1,
        "cannot reach",
    )
    .await;
    let bad_url = ["load", "--url", "ftp://x", "--count", "5"];
    check(
        bad_url.iter().map(|arg| arg.to_string()).collect(),
        2,
        "--url",
    )
    .await;
    server.abort();
}
