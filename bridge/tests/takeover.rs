//! A job taken over between bridges: two `ecoshard serve` over one local
//! cluster (each joins the cluster this binary started), a key move
//! started on bridge `a` under inserts through both, `a` SIGKILLed at a
//! random point of the job (several runs, from a seed printed in the
//! output): `b` takes the job over once `a`'s lease has lapsed and its
//! session is gone, and finishes it. And a runner that is only paused
//! (SIGSTOP) past its lease keeps its job: its session holds the job's
//! lock, so nobody takes over, and it finishes the job once it goes on.
//! And the catalog's primary killed mid-job: the lock goes with it, and the
//! runner takes it again on the promoted standby and finishes the job. And
//! a placement change (a shard moved between clusters) taken over from its
//! stored phase.

mod common;
mod rows;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use common::blocking::{BIN, Serve, eventually, eventually_some, http};
use common::random::Random;
use common::{SharedClusters, connect, free_ports, primary_in, start_cluster};
use ecoshard_bridge::LocalCluster;
use ecoshard_core::wire::{ClusterView, JobState, LayoutView, RebalanceJob};
use ecoshard_core::{Layout, StrategyKind};

/// This binary's cluster: a primary alone, on ports from 27600.
static CLUSTER: SharedClusters = SharedClusters::new("takeover", 27600, 1, 0);

/// Two clusters, a primary each, for a placement change.
static TWO: SharedClusters = SharedClusters::new("takeover-two", 28100, 2, 0);

/// Kills of the job's bridge, one per layout change.
const RUNS: usize = 5;
/// Rows per moving transaction: a job of some 500 rows lasts long enough
/// for a kill to land in it.
const BATCH: &str = "1";
/// Rows before the first change.
const SEEDS: usize = 2000;
/// Longest a job may take, a takeover's wait for the lease included.
const LIMIT: Duration = Duration::from_secs(120);

/// `ecoshard serve` named `name` on `addr`, joining `cluster`, on
/// `database`, with `extra` arguments.
fn serve_with(
    cluster: &LocalCluster,
    (database, name, addr): (&str, &str, &str),
    extra: &[&str],
) -> Serve {
    let dir = cluster.data_dir().display().to_string();
    let port = cluster.nodes()[0].port.to_string();
    let standbys = (cluster.nodes().len() - 1).to_string();
    let args = [
        "--data-dir",
        &dir,
        "--pg-port",
        &port,
        "--standbys",
        &standbys,
        "--database",
        database,
        "--name",
        name,
        "--pool-size",
        "4",
        "--strategy",
        "ring",
        "--shards",
        "3",
        "--rebalance-batch",
        BATCH,
    ];
    let bridge = Serve::start(addr, &[&args[..], extra].concat());
    assert!(bridge.log().contains("joined"), "{}", bridge.log());
    bridge
}

/// [`serve_with`] without extra arguments.
fn serve(cluster: &LocalCluster, database: &str, name: &str, addr: &str) -> Serve {
    serve_with(cluster, (database, name, addr), &[])
}

fn get<T: serde::de::DeserializeOwned>(addr: &str, path: &str) -> Option<T> {
    let (status, body) = http(addr, "GET", path, None)?;
    (status == 200).then(|| serde_json::from_str(&body).expect(path))
}

fn job_on(addr: &str, id: u64) -> Option<RebalanceJob> {
    get(addr, &format!("/api/rebalance/{id}"))
}

/// Waits until `addr` lists `name` live (or not).
fn wait_live(addr: &str, name: &str, live: bool) {
    let seen = eventually(LIMIT, || {
        get::<ClusterView>(addr, "/api/cluster").is_some_and(|view| {
            view.bridges
                .iter()
                .any(|bridge| bridge.name == name && bridge.live == live)
        })
    });
    assert!(seen, "{addr} never listed {name} with live = {live}");
}

/// Waits until `addr` routes writes by layout `version`.
fn wait_routing(addr: &str, version: u64) {
    let routed = eventually(LIMIT, || {
        get::<LayoutView>(addr, "/api/layout").is_some_and(|view| view.version == version)
    });
    assert!(routed, "{addr} never routed by layout {version}");
}

/// `PUT /api/layout` on `addr` with ring over `shards`: the job started.
fn start_job(addr: &str, shards: u64) -> RebalanceJob {
    let body = format!(r#"{{"strategy":"ring","shards":{shards}}}"#);
    let (status, answer) = http(addr, "PUT", "/api/layout", Some(&body)).expect("an answer");
    assert_eq!(status, 202, "{answer}");
    serde_json::from_str(&answer).unwrap()
}

/// The job once it has its plan.
fn planned(addr: &str, id: u64) -> RebalanceJob {
    eventually_some(LIMIT, || job_on(addr, id).filter(|job| job.plan.is_some()))
        .expect("the job never had a plan")
}

/// The job `id` asked of `addr` once it no longer runs.
fn ended(addr: &str, id: u64) -> RebalanceJob {
    eventually_some(LIMIT, || {
        job_on(addr, id).filter(|job| job.state != JobState::Running)
    })
    .unwrap_or_else(|| panic!("job {id} still runs after {LIMIT:?}"))
}

/// Between two inserts of one inserter: the rows to move grow with them.
const INSERT_PAUSE: Duration = Duration::from_millis(10);

/// Inserts of new ids `PREFIX0`, `PREFIX1`, … through one bridge until
/// stopped: the ids acknowledged (counted as they come in `count`).
struct Inserter {
    stop: Arc<AtomicBool>,
    count: Arc<AtomicUsize>,
    thread: JoinHandle<Vec<String>>,
}

impl Inserter {
    fn start(addr: &str, prefix: String) -> Inserter {
        let (stop, count) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicUsize::new(0)),
        );
        let (stopped, counted, addr) = (Arc::clone(&stop), Arc::clone(&count), addr.to_owned());
        let thread = std::thread::spawn(move || {
            let mut acknowledged = Vec::new();
            for index in 0.. {
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                let id = format!("{prefix}{index}");
                let body = format!(r#"{{"user_id":"{id}"}}"#);
                match http(&addr, "POST", "/api/users", Some(&body)) {
                    Some((201, _)) => {
                        acknowledged.push(id);
                        counted.fetch_add(1, Ordering::Relaxed);
                    }
                    Some((500, body)) => panic!("{id}: 500 {body}"),
                    Some(_) => {}
                    None => std::thread::sleep(Duration::from_millis(20)),
                }
                std::thread::sleep(INSERT_PAUSE);
            }
            acknowledged
        });
        Inserter {
            stop,
            count,
            thread,
        }
    }

    /// Whether `more` inserts are acknowledged after those counted now.
    fn goes_on(&self, more: usize) -> bool {
        let seen = self.count.load(Ordering::Relaxed);
        eventually(LIMIT, || self.count.load(Ordering::Relaxed) >= seen + more)
    }

    fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("an inserter")
    }
}

fn ring(shards: u64) -> Layout {
    Layout::with_count(StrategyKind::Ring, shards).unwrap()
}

/// What the database says of job `id` and of every row, read straight
/// from the primary.
struct Stored {
    runner: Option<String>,
    /// The job's state: `running`, `done` or `failed`.
    state: String,
    shards_of: std::collections::BTreeMap<String, Vec<String>>,
    prepared: i64,
}

fn stored(runtime: &tokio::runtime::Runtime, cluster: &LocalCluster, db: &str, id: u64) -> Stored {
    runtime.block_on(async {
        let client = connect(cluster, &primary_in(cluster.data_dir()), db).await;
        let sql = "SELECT runner, state FROM ecoshard.rebalance WHERE id = $1";
        let job = client.query_one(sql, &[&(id as i64)]).await.expect(sql);
        let sql = "SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database()";
        let prepared = client.query_one(sql, &[]).await.expect(sql);
        Stored {
            runner: job.get(0),
            state: job.get(1),
            shards_of: rows::snapshot(&client, "").await.shards_of,
            prepared: prepared.get(0),
        }
    })
}

/// Every id stored now.
fn ids_stored(
    runtime: &tokio::runtime::Runtime,
    cluster: &LocalCluster,
    db: &str,
) -> BTreeSet<String> {
    runtime.block_on(async {
        let client = connect(cluster, "primary", db).await;
        rows::snapshot(&client, "")
            .await
            .shards_of
            .into_keys()
            .collect()
    })
}

/// Every id of `expected` stored exactly once, in the shard `layout`
/// places it in; no id stored twice or in another shard.
fn check_rows(stored: &Stored, layout: &Layout, expected: &[String]) {
    let router = layout.build().unwrap();
    for (id, shards) in &stored.shards_of {
        let owner = &router.locate_shard(id.as_bytes()).name;
        assert_eq!(shards, &vec![owner.clone()], "{id}");
    }
    for id in expected {
        assert!(
            stored.shards_of.contains_key(id),
            "acknowledged {id} is lost"
        );
    }
    assert_eq!(stored.prepared, 0, "prepared transactions left");
}

/// `ecoshard verify` through `addr`: clean (exit 0).
fn verify_clean(addr: &str) {
    let output = std::process::Command::new(BIN)
        .args(["verify", "--url", &format!("http://{addr}")])
        .output()
        .expect("ecoshard verify");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Seeds `SEEDS` rows through `addr`: their ids.
fn seed(addr: &str) -> Vec<String> {
    let body = format!(r#"{{"count":{SEEDS},"prefix":"seed_"}}"#);
    let (status, answer) = http(addr, "POST", "/api/users/bulk", Some(&body)).expect("bulk");
    assert_eq!(status, 201, "{answer}");
    (0..SEEDS).map(|index| format!("seed_{index}")).collect()
}

/// The core's plan from `old` to `new` over `ids`: the rows to move.
fn planned_moves(old: &Layout, new: &Layout, ids: &BTreeSet<String>) -> u64 {
    let (old, new) = (old.build().unwrap(), new.build().unwrap());
    ecoshard_core::plan(&old, &new, ids.iter().map(String::as_bytes)).moved
}

#[test]
fn the_jobs_bridge_killed_mid_job_the_other_takes_it_over_and_finishes_it() {
    let mut random = Random::seeded();
    let cluster = &CLUSTER.get()[0];
    let db = "killed";
    let http_port = free_ports(27700, 2);
    let (addr_a, addr_b) = (
        format!("127.0.0.1:{http_port}"),
        format!("127.0.0.1:{}", http_port + 1),
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut a = serve(cluster, db, "a", &addr_a);
    let b = serve(cluster, db, "b", &addr_b);
    wait_live(&addr_b, "a", true);
    let mut acknowledged = seed(&addr_a);
    let mut layout = ring(3);
    for run in 0..RUNS {
        let shards = if run % 2 == 0 { 4 } else { 3 };
        let before = ids_stored(&runtime, cluster, db);
        let job = start_job(&addr_a, shards);
        // Inserts start once both route by the target: none of them moves.
        wait_routing(&addr_a, job.to_version);
        wait_routing(&addr_b, job.to_version);
        let inserts = [
            Inserter::start(&addr_a, format!("r{run}a_")),
            Inserter::start(&addr_b, format!("r{run}b_")),
        ];
        let total = planned(&addr_a, job.id).total;
        let at = random.below(total * 3 / 4);
        let reached = eventually(LIMIT, || {
            job_on(&addr_a, job.id).is_some_and(|job| job.moved >= at)
        });
        assert!(reached, "run {run}: the job never moved {at} rows");
        std::thread::sleep(Duration::from_millis(random.below(20)));
        a.kill();
        eprintln!(
            "run {run}: job {} ({total} rows) killed at {at}+ rows",
            job.id
        );
        let done = ended(&addr_b, job.id);
        assert_eq!(done.state, JobState::Done, "run {run}: {done:?}");
        // The load goes on through b after the takeover, then stops.
        assert!(inserts[1].goes_on(20), "run {run}: b's inserts stopped");
        let [on_a, on_b] = inserts;
        acknowledged.extend(on_a.finish());
        acknowledged.extend(on_b.finish());
        let new = ring(shards);
        let expected = planned_moves(&layout, &new, &before);
        assert_eq!((done.moved, done.total), (expected, expected), "run {run}");
        let now = stored(&runtime, cluster, db, job.id);
        assert_eq!(
            now.runner.as_deref(),
            Some("b"),
            "run {run}: the job's runner"
        );
        check_rows(&now, &new, &acknowledged);
        verify_clean(&addr_b);
        layout = new;
        a = serve(cluster, db, "a", &addr_a);
        wait_live(&addr_b, "a", true);
    }
    assert!(b.log().contains("this bridge takes it over"), "{}", b.log());
    eprintln!("{RUNS} runs, {} inserts acknowledged", acknowledged.len());
}

#[test]
fn a_paused_runner_keeps_its_job_and_a_bridge_started_mid_job_follows_it() {
    let cluster = &CLUSTER.get()[0];
    let db = "paused";
    let http_port = free_ports(27800, 2);
    let (addr_a, addr_b) = (
        format!("127.0.0.1:{http_port}"),
        format!("127.0.0.1:{}", http_port + 1),
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let a = serve(cluster, db, "a", &addr_a);
    let ids = seed(&addr_a);
    let before: BTreeSet<String> = ids.iter().cloned().collect();
    let job = start_job(&addr_a, 4);
    let total = planned(&addr_a, job.id).total;
    let moved = eventually(LIMIT, || {
        job_on(&addr_a, job.id).is_some_and(|job| job.moved > 0)
    });
    assert!(moved, "the job never moved a row");
    // Paused mid-job (it writes by the target once it moves rows): the job
    // cannot end before b has started, followed it and tried its lock.
    signal("STOP", a.pid());
    let paused = stored(&runtime, cluster, db, job.id);
    assert_eq!(paused.state, "running", "the job ended before a was paused");
    let b = serve(cluster, db, "b", &addr_b);
    wait_routing(&addr_b, job.to_version);
    // b follows the job: as a's (when a's lease had not lapsed yet at b's
    // start) or as a job whose lapsed runner still holds its lock.
    let following = ["runs on bridge a", "still holds the job's lock"];
    assert!(
        following.iter().any(|said| b.log().contains(said)),
        "{}",
        b.log()
    );
    wait_live(&addr_b, "a", false);
    // b has tried the lock since a's lease lapsed, and was refused.
    let refused = eventually(LIMIT, || b.log().contains("still holds the job's lock"));
    signal("CONT", a.pid());
    assert!(refused, "b never tried the lock: {}", b.log());
    let done = ended(&addr_a, job.id);
    assert_eq!(done.state, JobState::Done, "{done:?}");
    assert!(!b.log().contains("takes it over"), "{}", b.log());
    let expected = planned_moves(&ring(3), &ring(4), &before);
    assert_eq!(
        (done.moved, done.total, total),
        (expected, expected, expected)
    );
    let now = stored(&runtime, cluster, db, job.id);
    assert_eq!(now.runner.as_deref(), Some("a"), "the job's runner");
    check_rows(&now, &ring(4), &ids);
    let ended_on_b = ended(&addr_b, job.id);
    assert_eq!(ended_on_b.state, JobState::Done, "{ended_on_b:?}");
    verify_clean(&addr_b);
}

/// `kill -NAME pid`.
fn signal(name: &str, pid: u32) {
    let status = std::process::Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{name} {pid}");
}

#[test]
fn a_failover_of_the_catalogs_primary_mid_job_the_runner_takes_its_lock_again_and_finishes() {
    // Synchronous replication: the promoted standby has every acknowledged
    // write, the catalog's rows among them.
    let cluster = start_cluster("takeover-failover", 27900, true);
    let db = "failover";
    let http_port = free_ports(28000, 2);
    let (addr_a, addr_b) = (
        format!("127.0.0.1:{http_port}"),
        format!("127.0.0.1:{}", http_port + 1),
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let extra = ["--auto-failover", "--sync-replication"];
    let a = serve_with(&cluster, (db, "a", &addr_a), &extra);
    let b = serve_with(&cluster, (db, "b", &addr_b), &extra);
    wait_live(&addr_b, "a", true);
    let ids = seed(&addr_a);
    let before: BTreeSet<String> = ids.iter().cloned().collect();
    let job = start_job(&addr_a, 4);
    wait_routing(&addr_b, job.to_version);
    let inserts = Inserter::start(&addr_b, "fo_".to_owned());
    let total = planned(&addr_a, job.id).total;
    let reached = eventually(LIMIT, || {
        job_on(&addr_a, job.id).is_some_and(|job| job.moved >= total / 4)
    });
    assert!(reached, "the job never moved {} rows", total / 4);
    assert!(cluster.kill_node("primary").expect("kill -9 the primary"));
    let done = ended(&addr_a, job.id);
    assert_eq!(done.state, JobState::Done, "{done:?}");
    assert!(
        inserts.goes_on(20),
        "b's inserts stopped after the failover"
    );
    let acknowledged = inserts.finish();
    assert_ne!(primary_in(cluster.data_dir()), "primary", "no promotion");
    // The runner's session ended with the old primary: it took the lock
    // again on the promoted one, as the job's runner, and finished.
    assert!(
        a.log()
            .contains("is this bridge; this bridge takes it over"),
        "{}",
        a.log()
    );
    let expected = planned_moves(&ring(3), &ring(4), &before);
    assert_eq!((done.moved, done.total), (expected, expected));
    let now = stored(&runtime, &cluster, db, job.id);
    assert_eq!(now.runner.as_deref(), Some("a"), "the job's runner");
    check_rows(&now, &ring(4), &[ids, acknowledged].concat());
    assert!(!b.log().contains("takes it over"), "{}", b.log());
    verify_clean(&addr_b);
}

#[test]
fn a_placement_changes_bridge_killed_the_other_takes_it_over_from_its_stored_phase() {
    let clusters = TWO.get();
    let db = "placed";
    let http_port = free_ports(28200, 2);
    let (addr_a, addr_b) = (
        format!("127.0.0.1:{http_port}"),
        format!("127.0.0.1:{}", http_port + 1),
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let two = ["--clusters", "2"];
    let mut a = serve_with(&clusters[0], (db, "a", &addr_a), &two);
    let ids = seed(&addr_a);
    // s2 moves from c1 to c2; nothing else changes. Placement changes are
    // refused beside other live bridges, so b starts once it has begun,
    // while a is paused (it moves nothing meanwhile), and follows it.
    let body = r#"{"strategy":"ring","shards":[{"name":"s0","cluster":"c1"},
        {"name":"s1","cluster":"c2"},{"name":"s2","cluster":"c2"}]}"#;
    let (status, answer) = http(&addr_a, "PUT", "/api/layout", Some(body)).expect("an answer");
    assert_eq!(status, 202, "{answer}");
    let job: RebalanceJob = serde_json::from_str(&answer).unwrap();
    signal("STOP", a.pid());
    let b = serve_with(&clusters[0], (db, "b", &addr_b), &two);
    assert!(b.log().contains("runs on bridge a"), "{}", b.log());
    a.kill();
    let done = ended(&addr_b, job.id);
    assert_eq!(done.state, JobState::Done, "{done:?}");
    assert!(b.log().contains("this bridge takes it over"), "{}", b.log());
    let placed: Layout = serde_json::from_str(body).unwrap();
    let router = placed.placed(&["c1", "c2"]).unwrap().build().unwrap();
    let (runner, left, found) = runtime.block_on(async {
        let (c1, c2) = (
            connect(&clusters[0], "primary", db).await,
            connect(&clusters[1], "primary", db).await,
        );
        let sql = "SELECT runner FROM ecoshard.rebalance WHERE id = $1";
        let runner: Option<String> = c1.query_one(sql, &[&(job.id as i64)]).await.unwrap().get(0);
        // What a shard move leaves, and logical slots (a table copy has
        // slots of its own).
        let mut left = Vec::new();
        for client in [&c1, &c2] {
            left.extend(
                ecoshard_bridge::db::logical::leftovers(client, db)
                    .await
                    .unwrap(),
            );
            let sql =
                "SELECT slot_name::text FROM pg_replication_slots WHERE slot_type = 'logical'";
            for row in client.query(sql, &[]).await.unwrap() {
                left.push(format!("logical slot {}", row.get::<_, String>(0)));
            }
        }
        let mut found = Vec::new();
        for (name, client) in [("c1", &c1), ("c2", &c2)] {
            for (id, shards) in rows::snapshot(client, "").await.shards_of {
                found.extend(shards.into_iter().map(|shard| (id.clone(), name, shard)));
            }
        }
        (runner, left, found)
    });
    assert_eq!(runner.as_deref(), Some("b"), "the job's runner");
    assert_eq!(left, Vec::<String>::new(), "left by the shard move");
    assert_eq!(found.len(), ids.len(), "a row lost or stored twice");
    let stored: BTreeSet<&String> = found.iter().map(|(id, ..)| id).collect();
    assert_eq!(stored, ids.iter().collect(), "the rows stored");
    for (id, cluster, shard) in &found {
        let owner = router.locate_shard(id.as_bytes());
        assert_eq!(
            (owner.cluster.as_deref(), &owner.name),
            (Some(*cluster), shard),
            "{id}"
        );
    }
    verify_clean(&addr_b);
}
