//! A cluster's primary SIGKILLed in the middle of moves between clusters,
//! under `ecoshard serve --clusters 2 --sync-replication --auto-failover`
//! with inserts and reads flowing: the source's, the destination's and
//! `c1`'s (the catalog's) primary, at random points of key moves and in
//! the phases of whole-shard moves. Each run converges: exactly one
//! promotion in the killed cluster, the job done with rows moved = the
//! core's plan, every acknowledged row once where the core says, no
//! prepared transaction and nothing of a shard move left on any primary
//! (the promoted ones included), verify clean.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use common::blocking::{Scratch, Serve, all_streaming, eventually, eventually_some, http};
use common::random::Random;
use common::{connect_node_in, connect_primary_in, free_ports, primary_in};
use ecoshard_bridge::service::twophase::TwoPhase;
use ecoshard_bridge::{AppState, ClusterOptions, ClusterSpec, LocalCluster, Topology};
use ecoshard_core::wire::{
    ClusterView, JobState, LayoutView, MovePhase, RebalanceJob, VerifyReport,
};
use ecoshard_core::{Layout, StrategyKind};

/// The longest a job, a failover or a node's return may take.
const LIMIT: Duration = Duration::from_secs(180);

/// One test at a time: each runs six servers and a bridge.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// `ecoshard serve` over two clusters of two standbys each, with
/// synchronous replication and automatic failover, in `scratch`.
fn serve(scratch: &Scratch, base: u16, extra: &[&str]) -> (Serve, String) {
    let port = free_ports(base, 13).to_string();
    let addr = format!("127.0.0.1:{}", free_ports(base + 200, 1));
    let data_dir = scratch.dir.display().to_string();
    let mut args = vec![
        "--pg-port",
        &port,
        "--data-dir",
        &data_dir,
        "--clusters",
        "2",
        "--sync-replication",
        "--auto-failover",
    ];
    args.extend_from_slice(extra);
    (Serve::start(&addr, &args), addr)
}

/// What the inserter saw: the ids acknowledged (201, or 200 for a repeat
/// of an insert whose outcome was unknown), every id sent, and the answers
/// 500 (a bug, never a fault's consequence).
type Inserts = (Vec<String>, Vec<String>, Vec<String>);

/// Inserts `prefixN` until stopped; an id whose outcome is unknown is
/// sent again until it is known.
fn inserter(addr: String, prefix: &str, stop: Arc<AtomicBool>) -> JoinHandle<Inserts> {
    let prefix = prefix.to_owned();
    std::thread::spawn(move || {
        let (mut acknowledged, mut sent, mut internal) = (Vec::new(), Vec::new(), Vec::new());
        let mut index = 0;
        while !stop.load(Ordering::Relaxed) {
            let id = format!("{prefix}{index}");
            if sent.last() != Some(&id) {
                sent.push(id.clone());
            }
            let body = format!(r#"{{"user_id":"{id}"}}"#);
            match http(&addr, "POST", "/api/users", Some(&body)) {
                Some((201 | 200, _)) => {
                    acknowledged.push(id);
                    index += 1;
                }
                Some((500, body)) => {
                    internal.push(format!("{id}: {body}"));
                    index += 1;
                }
                Some((409, _)) => index += 1,
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        (acknowledged, sent, internal)
    })
}

/// Strong reads of `ids` until stopped: the reads answered "not found".
fn reader(addr: String, ids: Vec<String>, stop: Arc<AtomicBool>) -> JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut missed = Vec::new();
        for id in ids.iter().cycle() {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let path = format!("/api/users/{id}?consistency=strong");
            match http(&addr, "GET", &path, None) {
                Some((404, body)) => missed.push(format!("{id}: {body}")),
                Some((200, _)) => {}
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        missed
    })
}

fn get<T: serde::de::DeserializeOwned>(addr: &str, path: &str) -> Option<T> {
    let (status, body) = http(addr, "GET", path, None)?;
    (status == 200).then(|| serde_json::from_str(&body).expect(path))
}

fn job(addr: &str, id: u64) -> Option<RebalanceJob> {
    get(addr, &format!("/api/rebalance/{id}"))
}

/// The directory of cluster `name` (`c1` is the data directory itself).
fn cluster_dir(scratch: &Scratch, name: &str) -> PathBuf {
    match name {
        "c1" => scratch.dir.clone(),
        other => scratch.dir.join(other),
    }
}

/// The failovers the bridge made in cluster `name` (`/metrics`).
fn failovers(addr: &str, name: &str) -> u64 {
    let (status, body) = http(addr, "GET", "/metrics", None).expect("GET /metrics");
    assert_eq!(status, 200, "{body}");
    let series = format!("ecoshard_failovers_total{{cluster=\"{name}\"}} ");
    body.lines()
        .find_map(|line| line.strip_prefix(&series))
        .map_or(0, |count| count.trim().parse().unwrap())
}

/// SIGKILLs the postmaster of cluster `name`'s primary, as by a crash:
/// the node killed.
fn kill_primary(scratch: &Scratch, name: &str) -> String {
    let dir = cluster_dir(scratch, name);
    let node = primary_in(&dir);
    let pid_file = std::fs::read_to_string(dir.join(&node).join("postmaster.pid")).unwrap();
    let pid = pid_file.lines().next().unwrap().trim().to_owned();
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .unwrap();
    assert!(status.success(), "kill -KILL {pid}");
    node
}

/// After a kill of `killed` in cluster `name`: exactly one promotion
/// there (`before` failovers earlier) and none in `other`; then the old
/// primary started again, as a standby, and every node of the cluster
/// streaming.
fn failed_over_once(addr: &str, name: &str, killed: &str, before: (u64, u64), other: &str) {
    let promoted = eventually(LIMIT, || failovers(addr, name) > before.0);
    assert!(promoted, "no failover in {name} after {killed} was killed");
    let path = format!("/api/clusters/{name}/nodes/{killed}/start");
    let started = eventually(LIMIT, || {
        http(addr, "POST", &path, Some("")).is_some_and(|(status, _)| status == 200)
    });
    assert!(started, "{path} never answered 200");
    let streaming = eventually(LIMIT, || {
        get::<ClusterView>(addr, "/api/cluster").is_some_and(|view| {
            view.clusters
                .iter()
                .filter(|cluster| cluster.name == name)
                .all(|cluster| {
                    all_streaming(&ClusterView {
                        nodes: cluster.nodes.clone(),
                        ..view.clone()
                    })
                })
        })
    });
    assert!(streaming, "{name}'s nodes never all streamed again");
    assert_eq!(failovers(addr, name), before.0 + 1, "promotions in {name}");
    assert_eq!(failovers(addr, other), before.1, "promotions in {other}");
}

/// On both clusters' primaries now: every (user_id, shard) of `layout`'s
/// shards, the prepared transactions, and what shard moves left.
fn stored(scratch: &Scratch, layout: &Layout) -> (Vec<(String, String)>, i64, Vec<String>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (mut rows, mut prepared, mut left) = (Vec::new(), 0, Vec::new());
        for name in ["c1", "c2"] {
            let client = connect_primary_in(&cluster_dir(scratch, name)).await;
            for shard in &layout.shards {
                let sql = format!("SELECT user_id FROM \"shard_{}\".users", shard.name);
                if let Ok(found) = client.query(&sql, &[]).await {
                    rows.extend(found.iter().map(|row| (row.get(0), shard.name.clone())));
                }
            }
            let sql = "SELECT count(*) FROM pg_prepared_xacts";
            prepared += client.query_one(sql, &[]).await.unwrap().get::<_, i64>(0);
            let found = ecoshard_bridge::db::logical::leftovers(&client, "ecomarket")
                .await
                .unwrap();
            left.extend(found.into_iter().map(|what| format!("{name}: {what}")));
            // A subscription's table copies have slots of their own, and
            // an old primary back as a standby could keep its slots.
            for offset in 0..3 {
                let node = connect_node_in(&cluster_dir(scratch, name), offset).await;
                let sql = "SELECT slot_name::text FROM pg_replication_slots \
                            WHERE slot_type = 'logical'";
                for row in node.query(sql, &[]).await.unwrap() {
                    let slot: String = row.get(0);
                    left.push(format!("{name}, node {offset}: logical slot {slot}"));
                }
            }
        }
        rows.sort();
        (rows, prepared, left)
    })
}

/// The end state: no prepared transaction and nothing of a move left on
/// either primary, each stored row once, on the shard the core names,
/// sent by someone, every acknowledged one there; verify clean.
fn converged(addr: &str, scratch: &Scratch, initial: &[String], inserts: &Inserts) {
    let layout: LayoutView = get(addr, "/api/layout").expect("layout");
    let router = layout.layout.build().unwrap();
    let (rows, left) = eventually_some(LIMIT, || {
        let (rows, prepared, left) = stored(scratch, &layout.layout);
        (prepared == 0).then_some((rows, left))
    })
    .expect("prepared transactions are left");
    assert_eq!(left, Vec::<String>::new(), "left by shard moves");
    let ids: Vec<&String> = rows.iter().map(|(id, _)| id).collect();
    let unique: BTreeSet<&String> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "a row stored twice");
    for (id, shard) in &rows {
        assert_eq!(&router.locate_shard(id.as_bytes()).name, shard, "{id}");
    }
    let (acknowledged, sent, internal) = inserts;
    assert_eq!(internal, &Vec::<String>::new(), "inserts answered 500");
    let sent: BTreeSet<&String> = sent.iter().chain(initial).collect();
    assert!(
        unique.iter().all(|id| sent.contains(id)),
        "a row nobody sent"
    );
    for id in initial.iter().chain(acknowledged) {
        assert!(unique.contains(id), "acknowledged {id} is lost");
    }
    let (status, body) = http(addr, "POST", "/api/verify", Some("")).unwrap();
    assert_eq!(status, 200, "{body}");
    let report: VerifyReport = serde_json::from_str(&body).unwrap();
    assert!(report.clean, "{report:?}");
}

/// Inserts `count` users `prefixN`, each answered 201.
fn load(addr: &str, prefix: &str, count: usize) -> Vec<String> {
    let ids: Vec<String> = (0..count).map(|index| format!("{prefix}{index}")).collect();
    for id in &ids {
        let body = format!(r#"{{"user_id":"{id}"}}"#);
        assert_eq!(
            http(addr, "POST", "/api/users", Some(&body)).map(|answer| answer.0),
            Some(201)
        );
    }
    ids
}

/// Key moves, ring over 3 ↔ 4 shards round-robin over c1 and c2: growing,
/// keys move from c1 (source, and the catalog) to c2; shrinking, from c2
/// to c1. The cluster whose primary each run kills, in turn.
const KEY_MOVE_KILLS: [&str; 4] = ["c1", "c2", "c2", "c1"];

#[test]
fn a_primary_killed_anywhere_in_moves_between_clusters_converges() {
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut random = Random::seeded();
    let scratch = Scratch::new("primary-kills-keys");
    let extra = [
        "--strategy",
        "ring",
        "--shards",
        "3",
        "--rebalance-batch",
        "40",
    ];
    let (bridge, addr) = serve(&scratch, 21000, &extra);
    let initial = load(&addr, "u", 600);
    let stop = Arc::new(AtomicBool::new(false));
    let inserts = inserter(addr.clone(), "w", Arc::clone(&stop));
    let reads = reader(addr.clone(), initial.clone(), Arc::clone(&stop));
    for (run, killed_cluster) in KEY_MOVE_KILLS.into_iter().enumerate() {
        let layout = [
            r#"{"strategy":"ring","shards":4}"#,
            r#"{"strategy":"ring","shards":3}"#,
        ][run % 2];
        let (status, body) = http(&addr, "PUT", "/api/layout", Some(layout)).expect("bridge");
        assert_eq!(status, 202, "run {run}: {body}");
        let started: RebalanceJob = serde_json::from_str(&body).unwrap();
        let planned = eventually_some(LIMIT, || {
            job(&addr, started.id).filter(|job| job.plan.is_some())
        })
        .expect("a plan");
        let at = random.below(planned.total);
        eventually(LIMIT, || {
            job(&addr, started.id)
                .is_some_and(|job| job.moved >= at || job.state != JobState::Running)
        });
        std::thread::sleep(Duration::from_millis(random.below(40)));
        let other = if killed_cluster == "c1" { "c2" } else { "c1" };
        let before = (failovers(&addr, killed_cluster), failovers(&addr, other));
        let killed = kill_primary(&scratch, killed_cluster);
        eprintln!(
            "run {run}: killed {killed_cluster}/{killed} at {at} of {}",
            planned.total
        );
        let done = eventually_some(LIMIT, || {
            job(&addr, started.id).filter(|job| job.state != JobState::Running)
        })
        .expect("the job ends");
        failed_over_once(&addr, killed_cluster, &killed, before, other);
        assert_eq!(done.state, JobState::Done, "run {run}: {done:?}");
        let plan = done.plan.clone().expect("plan");
        assert_eq!(done.moved, plan.moved, "run {run}: rows moved = plan");
        assert!(plan.moved_across_clusters > 0, "run {run}: {plan:?}");
    }
    stop.store(true, Ordering::Relaxed);
    let inserted = inserts.join().expect("inserter");
    let missed = reads.join().expect("reader");
    assert_eq!(
        missed,
        Vec::<String>::new(),
        "strong reads answered not found"
    );
    converged(&addr, &scratch, &initial, &inserted);
    assert!(inserted.0.len() > KEY_MOVE_KILLS.len(), "inserts went on");
    drop(bridge);
}

/// Ring over three shards, s0 on `s0_on`, s1 on c2, s2 on c1.
fn placement(s0_on: &str) -> String {
    let mut layout = Layout::with_count(StrategyKind::Ring, 3).unwrap();
    for (shard, cluster) in layout.shards.iter_mut().zip([s0_on, "c2", "c1"]) {
        shard.cluster = Some(cluster.to_string());
    }
    serde_json::to_string(&layout).unwrap()
}

/// Shard moves of s0, back and forth: (the phase killed in, or the first
/// later one the poll sees; whether the source's primary is killed, else
/// the target's).
const SHARD_MOVE_KILLS: [(MovePhase, bool); 5] = [
    (MovePhase::Copying, true),
    (MovePhase::CatchingUp, true),
    (MovePhase::Copying, false),
    (MovePhase::Verifying, true),
    (MovePhase::Cleanup, false),
];

const PHASES: [MovePhase; 6] = [
    MovePhase::SettingUp,
    MovePhase::Copying,
    MovePhase::CatchingUp,
    MovePhase::Cutover,
    MovePhase::Verifying,
    MovePhase::Cleanup,
];

/// Waits for job `id` to reach `phase` (or a later point): the phase seen.
fn reached(addr: &str, id: u64, phase: MovePhase) -> String {
    let position = |phase| PHASES.iter().position(|p| *p == phase);
    eventually_some(LIMIT, || {
        let job = job(addr, id)?;
        let at = job.shard_move.as_ref().map(|progress| progress.phase);
        let reached =
            job.state != JobState::Running || at.is_some_and(|at| position(at) >= position(phase));
        reached.then(|| format!("{:?} {at:?}", job.state))
    })
    .expect("the move never reached the phase")
}

#[test]
fn a_shard_move_whose_source_or_target_fails_over_no_longer_hangs_in_copying() {
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let scratch = Scratch::new("primary-kills-shards");
    let (bridge, addr) = serve(&scratch, 21300, &["--strategy", "ring", "--shards", "3"]);
    let (status, body) = http(&addr, "PUT", "/api/layout", Some(&placement("c1"))).unwrap();
    assert!(status == 202 || status == 200, "{body}");
    let initial = load(&addr, "before_", 5_000);
    let stop = Arc::new(AtomicBool::new(false));
    let inserts = inserter(addr.clone(), "w", Arc::clone(&stop));
    let reads = reader(addr.clone(), initial.clone(), Arc::clone(&stop));
    for (run, (phase, kill_source)) in SHARD_MOVE_KILLS.into_iter().enumerate() {
        let (from, to) = if run % 2 == 0 {
            ("c1", "c2")
        } else {
            ("c2", "c1")
        };
        let (status, body) = http(&addr, "PUT", "/api/layout", Some(&placement(to))).unwrap();
        assert_eq!(status, 202, "{body}");
        let started: RebalanceJob = serde_json::from_str(&body).unwrap();
        let seen = reached(&addr, started.id, phase);
        let (killed_cluster, other) = if kill_source { (from, to) } else { (to, from) };
        let before = (failovers(&addr, killed_cluster), failovers(&addr, other));
        let killed = kill_primary(&scratch, killed_cluster);
        eprintln!("run {run}: s0 {from} → {to}, killed {killed_cluster}/{killed} at {seen}");
        let done = eventually_some(LIMIT, || {
            job(&addr, started.id).filter(|job| job.state != JobState::Running)
        })
        .expect("the move never ended");
        failed_over_once(&addr, killed_cluster, &killed, before, other);
        assert_eq!(
            done.state,
            JobState::Done,
            "run {run}, killed at {seen}: {done:?}"
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        for name in ["c1", "c2"] {
            let client = runtime.block_on(connect_primary_in(&cluster_dir(&scratch, name)));
            let has_s0: bool = runtime
                .block_on(client.query_one("SELECT to_regnamespace('shard_s0') IS NOT NULL", &[]))
                .unwrap()
                .get(0);
            assert_eq!(has_s0, name == to, "run {run}: shard_s0 on {name}");
        }
    }
    stop.store(true, Ordering::Relaxed);
    let inserted = inserts.join().expect("inserter");
    let missed = reads.join().expect("reader");
    assert_eq!(
        missed,
        Vec::<String>::new(),
        "strong reads answered not found"
    );
    converged(&addr, &scratch, &initial, &inserted);
    drop(bridge);
}

/// Rows `id` of table `moved` on each cluster's primary now, `c1` first.
async fn moved_rows(clusters: &[Arc<LocalCluster>], database: &str, id: &str) -> Vec<i64> {
    let mut counts = Vec::new();
    for cluster in clusters {
        let client = common::connect(cluster, &cluster.primary_name(), database).await;
        let sql = "SELECT count(*) FROM moved WHERE id = $1";
        counts.push(client.query_one(sql, &[&id]).await.expect(sql).get(0));
    }
    counts
}

/// The prepared transactions of `database` on each cluster's primary now.
async fn prepared_now(clusters: &[Arc<LocalCluster>], database: &str) -> Vec<String> {
    let mut gids = Vec::new();
    for cluster in clusters {
        let client = common::connect(cluster, &cluster.primary_name(), database).await;
        let sql = "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()";
        let found = client.query(sql, &[]).await.expect(sql);
        gids.extend(found.into_iter().map(|row| row.get::<_, String>(0)));
    }
    gids
}

/// A transaction inserting `id` into `moved` on c1 and c2, each part
/// prepared; its coordinator alive (its shared lock keeps the recovery
/// pass off).
async fn prepared_on_both(state: &AppState, id: &str) -> TwoPhase {
    let deadline = tokio::time::Instant::now() + LIMIT;
    let mut transaction = TwoPhase::begin(state.service(), "test", deadline)
        .await
        .expect("begin");
    for cluster in ["c1", "c2"] {
        let client = transaction.join(cluster).await.expect("join");
        let sql = "INSERT INTO moved VALUES ($1)";
        client.execute(sql, &[&id]).await.expect(sql);
        transaction.prepare(cluster).await.expect("prepare");
    }
    transaction
}

#[test]
fn prepared_parts_survive_a_promotion_and_the_recovery_pass_settles_them_there() {
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let clusters: Vec<Arc<LocalCluster>> = {
        let dir = std::env::temp_dir().join(format!(
            "ecoshard-test-primary-kills-prepared-{}",
            std::process::id()
        ));
        let mut options = ClusterOptions::new(&dir, free_ports(21600, 13));
        options.remove_on_exit = true;
        options.sync_replication = true;
        let started = ecoshard_postgres::LocalClusters::start(&options, 2).expect("clusters");
        started.into_clusters().into_iter().map(Arc::new).collect()
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let database = "failover_prepared";
        let state = common::bridge_with(&clusters[0], database, |config| {
            config.control = common::control(&clusters[0]);
            config.auto_failover = true;
            config.other_clusters = vec![ClusterSpec {
                name: "c2".to_string(),
                topology: Topology::local(&clusters[1], database),
                control: common::control(&clusters[1]),
            }];
        })
        .await;
        for cluster in &clusters {
            common::connect(cluster, "primary", database)
                .await
                .batch_execute("CREATE TABLE moved (id text PRIMARY KEY)")
                .await
                .expect("create the table");
        }
        let mut decided = prepared_on_both(&state, "decided").await;
        let undecided = prepared_on_both(&state, "undecided").await;
        assert_eq!(prepared_now(&clusters, database).await.len(), 4);
        let killer = Arc::clone(&clusters[1]);
        let killed = tokio::task::spawn_blocking(move || killer.kill_node("primary"))
            .await
            .unwrap()
            .expect("kill -9 c2's primary");
        assert!(killed);
        let promoted = common::eventually(LIMIT, || async {
            clusters[1].primary_name() != "primary"
                && moved_rows(&clusters[1..], database, "x").await == [0]
        })
        .await;
        assert!(promoted, "c2 never failed over");
        assert_eq!(
            prepared_now(&clusters, database).await.len(),
            4,
            "the promoted standby has c2's prepared parts"
        );
        decided.decide(&["c2"]).await.expect("decide");
        let _ = decided.commit_next().await; // c2's session died with its primary
        drop(decided);
        drop(undecided);
        common::recovery(&state).await;
        assert_eq!(moved_rows(&clusters, database, "decided").await, [1, 1]);
        assert_eq!(moved_rows(&clusters, database, "undecided").await, [0, 0]);
        assert_eq!(
            prepared_now(&clusters, database).await,
            Vec::<String>::new()
        );
    });
}
