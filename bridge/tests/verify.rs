//! `POST /api/verify` and `ecoshard verify` on two real clusters (the
//! layout spreads its shards: `s0`, `s2` on `c1`, `s1` on `c2`): clean
//! after inserts and under concurrent inserts; rows and schemas planted by hand where they do not belong are
//! differences; a standby whose replay is paused is not compared, never
//! called different; the command's exit codes.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::StatusCode;
use ecoshard_bridge::{AppState, ClusterSpec, LocalCluster, Topology};
use ecoshard_core::wire::VerifyReport;

use common::{
    LIMIT, NODES, SharedClusters, bridge_with, connect, control, eventually_some, post, post_json,
    ring, wait_streaming,
};

/// This binary's two clusters of one standby each, on ports from 22800.
static CLUSTERS: SharedClusters = SharedClusters::new("verify", 22800, 2, 1);

/// A bridge over `c1` and `c2` on its own database, ring over 3 shards
/// spread round-robin (`s0`, `s2` on `c1`, `s1` on `c2`).
async fn bridge_over_both(database: &str) -> (AppState, Vec<Arc<LocalCluster>>) {
    let clusters = CLUSTERS.get();
    let c2 = ClusterSpec {
        name: "c2".to_string(),
        topology: Topology::local(&clusters[1], database),
        control: control(&clusters[1]),
    };
    let state = bridge_with(&clusters[0], database, |config| {
        config.initial_layout = ring(3);
        config.other_clusters = vec![c2];
    })
    .await;
    wait_streaming(&state).await;
    (state, clusters)
}

/// `count` users `<prefix>0` … through the bridge, one insert each (the
/// bulk insert is refused over several clusters), 50 at a time.
async fn insert(state: &AppState, prefix: &str, count: u64) {
    let mut ids = (0..count).map(|index| format!("{prefix}{index}"));
    loop {
        let chunk: Vec<String> = ids.by_ref().take(50).collect();
        if chunk.is_empty() {
            return;
        }
        let answers = futures::future::join_all(chunk.iter().map(|id| {
            let body = format!(r#"{{"user_id":"{id}"}}"#);
            async move { post_json(state, "/api/users", &body).await }
        }))
        .await;
        for answer in answers {
            assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
        }
    }
}

/// `POST /api/verify`: the report (200 whatever it says).
async fn verify(state: &AppState) -> VerifyReport {
    let answer = post(state, "/api/verify").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    answer.parse()
}

/// The shard ring(3) puts `id` in.
fn home(id: &str) -> String {
    let router = ring(3).build().unwrap();
    router.shards()[router.locate(id.as_bytes())].name.clone()
}

/// The first of `<prefix>0`, `<prefix>1`, … whose shard is on `c1` (not
/// `s1`, which is on `c2`).
fn on_c1(prefix: &str) -> String {
    (0..)
        .map(|index| format!("{prefix}{index}"))
        .find(|id| home(id) != "s1")
        .expect("an id on c1")
}

/// Runs `sql` on `node` as the superuser (`postgres`, over the Unix
/// socket; pausing replay needs it).
fn as_superuser(cluster: &LocalCluster, node: &str, sql: &str) {
    let node = cluster
        .nodes()
        .into_iter()
        .find(|each| each.name == node)
        .expect("node");
    let endpoint = cluster.endpoint(&node);
    let psql = cluster.binaries().tool("psql");
    let mut command = std::process::Command::new("runuser");
    command.args(["-u", "postgres", "--"]).arg(psql);
    let output = command
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres", "-h"])
        .arg(&endpoint.socket_dir)
        .args(["-p", &node.port.to_string(), "-c", sql])
        .output()
        .expect("running psql");
    assert!(
        output.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Each standby's outcome, `c1/standby-1 agrees`.
fn standbys(report: &VerifyReport) -> Vec<String> {
    report
        .clusters
        .iter()
        .flat_map(|cluster| {
            cluster.standbys.iter().map(move |standby| {
                format!("{}/{} {}", cluster.cluster, standby.node, standby.outcome)
            })
        })
        .collect()
}

#[tokio::test]
async fn clean_after_inserts_with_every_row_counted_and_the_standbys_agreeing() {
    let _nodes = NODES.read().await;
    let (state, _) = bridge_over_both("verify_clean").await;
    insert(&state, "clean", 500).await;
    let report = verify(&state).await;
    assert!(report.clean, "{report:#?}");
    assert_eq!(report.misplaced, 0);
    let names: Vec<&str> = report.clusters.iter().map(|c| c.cluster.as_str()).collect();
    assert_eq!(names, ["c1", "c2"]);
    let shards = |cluster: usize| {
        let shards = &report.clusters[cluster].shards;
        shards
            .iter()
            .map(|shard| shard.shard.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        (shards(0), shards(1)),
        (vec!["s0".into(), "s2".into()], vec!["s1".to_string()])
    );
    let rows: u64 = report
        .clusters
        .iter()
        .flat_map(|cluster| &cluster.shards)
        .map(|shard| shard.rows)
        .sum();
    assert_eq!(rows, 500, "{report:#?}");
    assert!(report.clusters[1].shards[0].rows > 0, "{report:#?}");
    assert_eq!(
        standbys(&report),
        ["c1/standby-1 agrees", "c2/standby-1 agrees"]
    );
}

#[tokio::test]
async fn a_row_planted_in_the_wrong_shard_is_reported_misplaced_with_its_id() {
    let _nodes = NODES.read().await;
    let (state, clusters) = bridge_over_both("verify_planted").await;
    insert(&state, "planted", 100).await;
    // A row of a c1 shard planted in c2's s1.
    let id = on_c1("stray-");
    let belongs = home(&id);
    let primary = connect(&clusters[1], "primary", "verify_planted").await;
    primary
        .execute(
            "INSERT INTO shard_s1.users (user_id, name, email) VALUES ($1, 'x', 'x')",
            &[&id],
        )
        .await
        .expect("planting a row");
    let report = verify(&state).await;
    assert!(!report.clean, "{report:#?}");
    assert_eq!(report.misplaced, 1, "{report:#?}");
    let example = &report.misplaced_examples[0];
    assert_eq!(
        (
            example.id.as_str(),
            example.found.clone(),
            example.belongs.clone()
        ),
        (id.as_str(), "c2/s1".to_string(), format!("c1/{belongs}"))
    );
    assert_eq!(
        report.differences,
        ["c2/s1 holds 1 rows whose ids belong elsewhere"]
    );
}

#[tokio::test]
async fn a_shard_schema_on_c2_and_one_missing_on_c1_are_differences() {
    let _nodes = NODES.read().await;
    let (state, clusters) = bridge_over_both("verify_schemas").await;
    insert(&state, "schemas", 50).await;
    let c2 = connect(&clusters[1], "primary", "verify_schemas").await;
    c2.batch_execute(
        "CREATE SCHEMA shard_s0;
         CREATE TABLE shard_s0.users (user_id text PRIMARY KEY, name text NOT NULL,
             email text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())",
    )
    .await
    .expect("planting a schema on c2");
    let c1 = connect(&clusters[0], "primary", "verify_schemas").await;
    c1.batch_execute("DROP SCHEMA shard_s2 CASCADE")
        .await
        .expect("dropping a shard");
    let report = verify(&state).await;
    assert!(!report.clean, "{report:#?}");
    assert_eq!(
        report.differences,
        [
            "shard s0's schema is on c2, where the placement does not put it (shard s0 \
             belongs on c1); it holds 0 rows",
            "shard s2 belongs on c1, which has no schema shard_s2",
        ],
        "{report:#?}"
    );
    let on_c2: Vec<(&str, bool)> = report.clusters[1]
        .shards
        .iter()
        .map(|shard| (shard.shard.as_str(), shard.placed_here))
        .collect();
    assert_eq!(on_c2, [("s0", false), ("s1", true)], "{report:#?}");
}

#[tokio::test]
async fn a_standby_with_replay_paused_is_not_compared_and_agrees_once_resumed() {
    let _nodes = NODES.write().await;
    let (state, clusters) = bridge_over_both("verify_paused").await;
    insert(&state, "paused", 200).await;
    as_superuser(&clusters[0], "standby-1", "SELECT pg_wal_replay_pause()");
    let primary = connect(&clusters[0], "primary", "verify_paused").await;
    let id = on_c1("paused");
    let deleted = primary
        .execute(
            &format!(
                "DELETE FROM \"shard_{}\".users WHERE user_id = $1",
                home(&id)
            ),
            &[&id],
        )
        .await
        .expect("deleting a row");
    assert_eq!(deleted, 1);
    // Two at once: one verifies, the other is refused.
    let (first, second) = tokio::join!(post(&state, "/api/verify"), post(&state, "/api/verify"));
    let mut statuses = [first.status.as_u16(), second.status.as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{} {}", first.text(), second.text());
    let refused = if first.status == StatusCode::OK {
        &second
    } else {
        &first
    };
    assert_eq!(refused.error_code(), "verify_running");
    let report: VerifyReport = if first.status == StatusCode::OK {
        first.parse()
    } else {
        second.parse()
    };
    as_superuser(&clusters[0], "standby-1", "SELECT pg_wal_replay_resume()");
    assert!(
        report.clean,
        "a paused standby is no difference: {report:#?}"
    );
    assert_eq!(standbys(&report)[0], "c1/standby-1 behind", "{report:#?}");
    let rows: u64 = report
        .clusters
        .iter()
        .flat_map(|cluster| &cluster.shards)
        .map(|shard| shard.rows)
        .sum();
    assert_eq!(rows, 199);
    assert!(
        report
            .notes
            .iter()
            .any(|note| note.contains("not compared")),
        "{report:#?}"
    );
    let resumed = verify(&state).await;
    assert!(resumed.clean, "{resumed:#?}");
    assert_eq!(standbys(&resumed)[0], "c1/standby-1 agrees", "{resumed:#?}");
}

#[tokio::test]
async fn clean_under_concurrent_inserts_never_a_false_difference() {
    let _nodes = NODES.read().await;
    let (state, _) = bridge_over_both("verify_busy").await;
    insert(&state, "before", 2_000).await;
    let written = Arc::new(AtomicU64::new(0));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let writer = {
        let (state, written) = (state.clone(), Arc::clone(&written));
        tokio::spawn(async move {
            let mut batch = 0;
            while !*stopped.borrow() {
                insert(&state, &format!("during{batch}-"), 20).await;
                written.fetch_add(20, Ordering::SeqCst);
                batch += 1;
            }
        })
    };
    let seen = written.load(Ordering::SeqCst);
    assert!(
        common::eventually(common::LIMIT, || async {
            written.load(Ordering::SeqCst) > seen
        })
        .await
    );
    let before = written.load(Ordering::SeqCst);
    let report = verify(&state).await;
    // The load went on through the verification before it is stopped.
    assert!(
        common::eventually(common::LIMIT, || async {
            written.load(Ordering::SeqCst) > before
        })
        .await
    );
    stop.send_replace(true);
    writer.await.expect("the writer");
    assert!(report.clean, "{report:#?}");
    assert!(
        standbys(&report)
            .iter()
            .all(|standby| !standby.ends_with("differs")),
        "{report:#?}"
    );
}

#[tokio::test]
async fn the_command_exits_0_when_clean_1_on_a_difference_2_when_it_cannot_verify() {
    let _nodes = NODES.read().await;
    let (state, clusters) = bridge_over_both("verify_cli").await;
    insert(&state, "cli", 100).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(ecoshard_bridge::serve(listener, state.clone(), async {
        let _ = stopped.await;
    }));
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            common::blocking::ecoshard(&args)
        })
    };
    let clean = run(vec!["verify".into(), "--url".into(), url.clone()])
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&clean.stdout).to_string();
    assert_eq!(
        clean.status.code(),
        Some(0),
        "{stdout} {}",
        String::from_utf8_lossy(&clean.stderr)
    );
    assert!(stdout.ends_with("clean\n"), "{stdout}");
    let c2 = connect(&clusters[1], "primary", "verify_cli").await;
    c2.batch_execute("DROP SCHEMA shard_s1 CASCADE")
        .await
        .expect("dropping a shard");
    let differs = run(vec!["verify".into(), "--bridge".into(), url.clone()])
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&differs.stdout).to_string();
    assert_eq!(differs.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("difference: shard s1 belongs on c2"),
        "{stdout}"
    );
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    let gone = run(vec!["verify".into(), "--url".into(), url])
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&gone.stderr).to_string();
    assert_eq!(gone.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[tokio::test]
async fn a_job_whose_verification_finds_a_difference_fails_and_keeps_its_source() {
    use ecoshard_core::wire::{JobState, RebalanceJob};
    let _nodes = NODES.read().await;
    let database = "verify_cleanup";
    let (state, clusters) = bridge_over_both(database).await;
    insert(&state, "cleanup", 60).await;
    // A stray schema on c2 the mover never scans: a difference to the
    // verification, whatever the job moves.
    let c2 = connect(&clusters[1], "primary", database).await;
    c2.batch_execute(
        "CREATE SCHEMA shard_s0;
         CREATE TABLE shard_s0.users (user_id text PRIMARY KEY, name text NOT NULL,
             email text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())",
    )
    .await
    .expect("planting a schema on c2");
    // Ring over 2 shards, round-robin as before (s0 on c1, s1 on c2): s2,
    // on c1, is emptied, its keys moving to s0 and across to s1.
    let body = r#"{"strategy":"ring","shards":2}"#;
    let started = common::put_layout(&state, body).await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.text());
    let job: RebalanceJob = started.parse();
    let ended = eventually_some(LIMIT, || async {
        let job: RebalanceJob = common::get(&state, &format!("/api/rebalance/{}", job.id))
            .await
            .parse();
        (job.state != JobState::Running).then_some(job)
    })
    .await
    .expect("the job ends");
    assert_eq!(ended.state, JobState::Failed, "{ended:?}");
    let error = ended.error.unwrap_or_default();
    assert!(
        error.contains("shard s0's schema is on c2"),
        "the sentence names the difference: {error}"
    );
    let c1 = connect(&clusters[0], "primary", database).await;
    let kept: i64 = c1
        .query_one(
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'shard_s2'",
            &[],
        )
        .await
        .expect("schemas")
        .get(0);
    assert_eq!(kept, 1, "the emptied source s2 is not dropped");
}
