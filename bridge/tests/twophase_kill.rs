//! `ecoshard serve` over two clusters killed (SIGKILL) at random points of
//! layout changes moving keys between the clusters, under inserts and
//! reads, 20 times: each restart finishes the job, and then every
//! acknowledged insert is stored exactly once where the core says, the job
//! moved exactly its plan, no prepared transaction is left, and no read
//! of a stored row answered "not found".

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use common::blocking::{Scratch, Serve, eventually, eventually_some, http};
use common::free_ports;
use common::random::Random;
use ecoshard_core::wire::{JobState, LayoutView, RebalanceJob};

/// Kills, one per layout change.
const RUNS: usize = 20;
/// Rows per moving transaction: a change moves some ten batches.
const BATCH: &str = "40";
const LIMIT: Duration = Duration::from_secs(120);

/// What the inserter saw: the ids answered 201, every id sent, and the
/// answers 500 (a bug, never a fault's consequence).
type Inserts = (Vec<String>, Vec<String>, Vec<String>);

/// Inserts of new ids until stopped.
fn inserter(addr: String, stop: Arc<AtomicBool>) -> JoinHandle<Inserts> {
    std::thread::spawn(move || {
        let (mut acknowledged, mut sent, mut internal) = (Vec::new(), Vec::new(), Vec::new());
        for index in 0.. {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let id = format!("w{index}");
            sent.push(id.clone());
            let body = format!(r#"{{"user_id":"{id}"}}"#);
            match http(&addr, "POST", "/api/users", Some(&body)) {
                Some((201, _)) => acknowledged.push(id),
                Some((500, body)) => internal.push(format!("{id}: {body}")),
                Some(_) => {}
                None => std::thread::sleep(Duration::from_millis(20)),
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
                Some(_) => {}
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        missed
    })
}

fn get<T: serde::de::DeserializeOwned>(addr: &str, path: &str) -> Option<T> {
    let (status, body) = http(addr, "GET", path, None)?;
    (status == 200).then(|| serde_json::from_str(&body).expect(path))
}

/// A direct connection to cluster `index`'s primary (`c1` is 0).
fn connect(
    runtime: &tokio::runtime::Runtime,
    scratch: &Scratch,
    port: u16,
    index: usize,
) -> tokio_postgres::Client {
    let dir = match index {
        0 => scratch.dir.clone(),
        _ => scratch.dir.join(format!("c{}", index + 1)),
    };
    let passfile = std::fs::read_to_string(dir.join("pgpass")).expect("passfile");
    let password = ecoshard_postgres::pgpass::lookup(&passfile, "ecoshard").expect("password");
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(port + 10 * index as u16)
        .user("ecoshard")
        .password(&password)
        .dbname("ecomarket");
    runtime.block_on(async {
        let (client, connection) = config
            .connect(tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        client
    })
}

/// Every (user_id, shard) stored on both primaries under `layout`, and the
/// prepared transactions left there.
fn stored(
    runtime: &tokio::runtime::Runtime,
    clients: &[tokio_postgres::Client],
    layout: &LayoutView,
) -> (Vec<(String, String)>, i64) {
    runtime.block_on(async {
        let (mut rows, mut prepared) = (Vec::new(), 0);
        for client in clients {
            for shard in &layout.layout.shards {
                let sql = format!("SELECT user_id FROM \"shard_{}\".users", shard.name);
                if let Ok(found) = client.query(&sql, &[]).await {
                    rows.extend(found.iter().map(|row| (row.get(0), shard.name.clone())));
                }
            }
            let sql = "SELECT count(*) FROM pg_prepared_xacts";
            prepared += client
                .query_one(sql, &[])
                .await
                .expect(sql)
                .get::<_, i64>(0);
        }
        rows.sort();
        (rows, prepared)
    })
}

#[test]
fn a_bridge_killed_anywhere_in_moves_between_clusters_converges() {
    let mut random = Random::seeded();
    let scratch = Scratch::new("twophase-kill");
    let port = free_ports(24400, 11);
    let addr = format!("127.0.0.1:{}", free_ports(24600, 1));
    let (port_arg, data_dir) = (port.to_string(), scratch.dir.display().to_string());
    let args = [
        "--pg-port",
        &port_arg,
        "--data-dir",
        &data_dir,
        "--clusters",
        "2",
        "--standbys",
        "0",
        "--strategy",
        "ring",
        "--shards",
        "3",
        "--rebalance-batch",
        BATCH,
    ];
    let mut bridge = Serve::start(&addr, &args);
    let initial: Vec<String> = (0..600).map(|index| format!("u{index}")).collect();
    for id in &initial {
        let body = format!(r#"{{"user_id":"{id}"}}"#);
        assert_eq!(
            http(&addr, "POST", "/api/users", Some(&body)).map(|a| a.0),
            Some(201)
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    let inserts = inserter(addr.clone(), Arc::clone(&stop));
    let reads = reader(addr.clone(), initial.clone(), Arc::clone(&stop));
    let mut jobs = Vec::new();
    for run in 0..RUNS {
        let layout = if run % 2 == 0 {
            r#"{"strategy":"ring","shards":4}"#
        } else {
            r#"{"strategy":"ring","shards":3}"#
        };
        let (status, body) = http(&addr, "PUT", "/api/layout", Some(layout)).expect("bridge");
        assert_eq!(status, 202, "run {run}: {body}");
        let job: RebalanceJob = serde_json::from_str(&body).unwrap();
        let planned = eventually_some(LIMIT, || {
            get::<RebalanceJob>(&addr, &format!("/api/rebalance/{}", job.id))
                .filter(|job| job.plan.is_some())
        })
        .expect("a plan");
        let at = random.below(planned.total);
        eventually(LIMIT, || {
            get::<RebalanceJob>(&addr, &format!("/api/rebalance/{}", job.id))
                .is_some_and(|job| job.moved >= at || job.state != JobState::Running)
        });
        std::thread::sleep(Duration::from_millis(random.below(40)));
        bridge.kill();
        bridge = Serve::start(&addr, &args);
        let done = eventually_some(LIMIT, || {
            get::<RebalanceJob>(&addr, &format!("/api/rebalance/{}", job.id))
                .filter(|job| job.state != JobState::Running)
        })
        .expect("the job ends");
        assert_eq!(done.state, JobState::Done, "run {run}: {done:?}");
        let plan = done.plan.clone().expect("plan");
        assert_eq!(done.moved, plan.moved, "run {run}: rows moved = plan");
        assert!(plan.moved_across_clusters > 0, "run {run}: {plan:?}");
        jobs.push(done);
    }
    stop.store(true, Ordering::Relaxed);
    let (acknowledged, sent, internal) = inserts.join().expect("inserter");
    assert_eq!(internal, Vec::<String>::new(), "inserts answered 500");
    let missed = reads.join().expect("reader");
    assert_eq!(
        missed,
        Vec::<String>::new(),
        "reads of stored rows answered not found"
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let clients = [
        connect(&runtime, &scratch, port, 0),
        connect(&runtime, &scratch, port, 1),
    ];
    let layout: LayoutView = get(&addr, "/api/layout").expect("layout");
    let router = layout.layout.build().unwrap();
    let converged = eventually_some(LIMIT, || {
        let (rows, prepared) = stored(&runtime, &clients, &layout);
        (prepared == 0).then_some(rows)
    })
    .expect("prepared transactions are left");
    let ids: Vec<&String> = converged.iter().map(|(id, _)| id).collect();
    let unique: BTreeSet<&String> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "a row stored twice");
    for (id, shard) in &converged {
        assert_eq!(&router.locate_shard(id.as_bytes()).name, shard, "{id}");
    }
    let sent: BTreeSet<&String> = sent.iter().chain(&initial).collect();
    assert!(
        unique.iter().all(|id| sent.contains(id)),
        "a row nobody sent"
    );
    for id in initial.iter().chain(&acknowledged) {
        assert!(unique.contains(id), "acknowledged {id} is lost");
    }
    assert!(
        acknowledged.len() > RUNS,
        "inserts went on: {}",
        acknowledged.len()
    );
    eprintln!(
        "{} runs, {} inserts acknowledged, jobs moved {:?}",
        RUNS,
        acknowledged.len(),
        jobs.iter().map(|job| job.moved).collect::<Vec<_>>()
    );
    drop(bridge);
}
