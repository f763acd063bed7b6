//! A layout change started through one bridge while inserts and reads flow
//! through NGINX to two bridges (issue 12): every read of an acknowledged
//! id answers that row at every moment of the job, whichever bridge serves
//! it; every acknowledged row ends up once, in the shard the new layout
//! names; the job moves exactly the rows the core plans; and the other
//! bridge follows the new layout. Real processes: one local cluster, two
//! `ecoshard serve` joining it, NGINX in front of them.

mod common;
mod rows;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::balancer::{Balancer, Reply, call};
use common::blocking::{Serve, eventually, eventually_some, free_ports};
use common::{LIMIT, SharedCluster, connect};
use ecoshard_core::wire::{
    BulkResult, ClusterView, InsertResult, JobState, LayoutView, ReadResult, RebalanceJob,
};
use ecoshard_core::{Layout, Router, StrategyKind};

/// This binary's cluster, which every bridge of it joins.
static CLUSTER: SharedCluster = SharedCluster::new("balanced-move", 31700, false);

/// Held by each test for its whole run: one change under load at a time.
/// Run side by side on a small machine, one test's set-up (a database
/// created, its rows written and replayed) stalled the other's standbys
/// past the read deadline (503 `no_node_available`, two deadlines spent):
/// the machine's limit, not the change's.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Rows present before the change.
const SEEDS: u64 = 4_000;
/// Rows per moving transaction: small, so the job lasts under the load.
const BATCH: &str = "20";
/// The longest a job may take here.
const JOB_LIMIT: Duration = Duration::from_secs(300);
/// Threads inserting (each reads its insert back at once), and reading.
const INSERTERS: usize = 3;
const READERS: usize = 3;

#[test]
fn a_ring_change_through_one_bridge_under_load_through_both_fails_no_read_and_moves_the_plan() {
    check_layout_change("move_ring", 19300, StrategyKind::Ring, 3, 5);
}

#[test]
fn a_modulo_change_through_one_bridge_under_load_through_both_fails_no_read_and_moves_the_plan() {
    check_layout_change("move_modulo", 19400, StrategyKind::Modulo, 3, 4);
}

#[test]
fn a_ring_shrinking_through_one_bridge_under_load_through_both_fails_no_read_and_drops_the_shard() {
    check_layout_change("move_shrink", 19500, StrategyKind::Ring, 4, 3);
}

/// Two bridges on `database` of the shared cluster (the first named by
/// its own address, the second by its own), NGINX in front. Dropped in
/// order: NGINX, then the bridges.
struct Service {
    balancer: Balancer,
    _bridges: [Serve; 2],
    addrs: [String; 2],
}

impl Service {
    fn start(database: &str, http_base: u16, strategy: StrategyKind, shards: u64) -> Service {
        let cluster = CLUSTER.get();
        let http = free_ports(http_base, 3);
        let addrs = [1, 2].map(|n| format!("127.0.0.1:{}", http + n));
        let dir = cluster.data_dir().display().to_string();
        let port = cluster.nodes()[0].port.to_string();
        let (strategy, shards) = (strategy.to_string(), shards.to_string());
        let args = [
            "--data-dir",
            &dir,
            "--pg-port",
            &port,
            "--database",
            database,
            "--strategy",
            &strategy,
            "--shards",
            &shards,
            "--pool-size",
            "4",
            "--rebalance-batch",
            BATCH,
        ];
        let bridges = addrs
            .clone()
            .map(|addr| Serve::start(&addr, &[&args[..], &["--name", &addr]].concat()));
        for bridge in &bridges {
            assert!(bridge.log().contains("joined"), "{}", bridge.log());
        }
        let balancer = Balancer::start(&format!("127.0.0.1:{http}"), &addrs);
        Service {
            balancer,
            _bridges: bridges,
            addrs,
        }
    }

    fn lb(&self) -> &str {
        &self.balancer.addr
    }
}

/// A request that must be answered.
fn answered(addr: &str, method: &str, path: &str, body: Option<&str>) -> Reply {
    call(addr, method, path, body).unwrap_or_else(|| panic!("{method} {path}: no answer"))
}

/// `strategy` over `from` shards changed to `to` shards through the first
/// bridge, under inserts and reads through NGINX.
fn check_layout_change(database: &str, http_base: u16, strategy: StrategyKind, from: u64, to: u64) {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let service = Service::start(database, http_base, strategy, from);
    seed(&service, database);
    let load = Load::start(service.lb());
    assert!(load.goes_on(200), "the load did not start");
    let target = Layout::with_count(strategy, to).unwrap();
    let put_sent = Instant::now();
    let put = answered(
        &service.addrs[0],
        "PUT",
        "/api/layout",
        Some(&serde_json::to_string(&target).unwrap()),
    );
    assert_eq!(put.status, 202, "{}", put.body);
    let job: RebalanceJob = serde_json::from_str(&put.body).unwrap();
    let done = wait_done(&service.addrs[0], job.id);
    let done_seen = Instant::now();
    let old = Layout::with_count(strategy, from).unwrap().build().unwrap();
    let new = target.build().unwrap();
    emptied_shards_are_dropped(database, &old, &new);
    // The signal: the job is done (its emptied shards dropped); the load
    // goes on a while after it.
    assert!(load.goes_on(300), "the load stopped after the job");
    let records = load.finish();
    let window = (put_sent, done_seen);
    check_reads(&records, &service.addrs, window);
    let acknowledged = check_inserts(&records, &service.addrs);
    check_rows(database, &acknowledged, &new);
    check_moved(&done, &acknowledged, &old, &new);
    the_other_bridge_follows(&service, done.to_version);
    let reply = answered(
        &service.addrs[0],
        "GET",
        &format!("/api/rebalance/{}", job.id),
        None,
    );
    let after: RebalanceJob = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(after.state, JobState::Done, "{after:?}");
}

/// `SEEDS` rows `seed_0` … through NGINX, then waits until both standbys
/// hold them (the readers read them at the default consistency).
fn seed(service: &Service, database: &str) {
    let body = format!(r#"{{"count":{SEEDS},"prefix":"seed_"}}"#);
    let reply = answered(service.lb(), "POST", "/api/users/bulk", Some(&body));
    assert_eq!(reply.status, 201, "{}", reply.body);
    let bulk: BulkResult = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(bulk.inserted, SEEDS);
    let cluster = CLUSTER.get();
    let replicated = runtime().block_on(async {
        for standby in ["standby-1", "standby-2"] {
            let client = connect(&cluster, standby, database).await;
            let seen = common::eventually(LIMIT, || async {
                rows::count(&client).await == Some(SEEDS as i64)
            })
            .await;
            if !seen {
                return false;
            }
        }
        true
    });
    assert!(replicated, "the seeds never reached both standbys");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("a runtime")
}

/// The job `id` once it no longer runs, asked of `addr`; it must be done.
fn wait_done(addr: &str, id: u64) -> RebalanceJob {
    let path = format!("/api/rebalance/{id}");
    let ended = eventually_some(JOB_LIMIT, || {
        let reply = call(addr, "GET", &path, None)?;
        let job: RebalanceJob = serde_json::from_str(&reply.body).ok()?;
        (job.state != JobState::Running).then_some(job)
    })
    .unwrap_or_else(|| panic!("job {id} still running after {JOB_LIMIT:?}"));
    assert_eq!(ended.state, JobState::Done, "{ended:?}");
    ended
}

/// Every read answered 200 with the row asked for; reads ran through both
/// bridges, also while the job ran.
fn check_reads(records: &[Record], addrs: &[String; 2], (start, end): (Instant, Instant)) {
    let reads: Vec<&Record> = records.iter().filter(|r| r.inserted.is_none()).collect();
    let failed: Vec<&String> = reads.iter().filter_map(|r| r.failure.as_ref()).collect();
    let during: Vec<&&Record> = reads
        .iter()
        .filter(|r| r.start > start && r.end < end)
        .collect();
    let by_bridge = answered_by(reads.iter().copied());
    let during_by_bridge = answered_by(during.iter().map(|r| **r));
    eprintln!(
        "{} reads ({} while the job ran: {during_by_bridge:?}), {} failed; by bridge {by_bridge:?}",
        reads.len(),
        during.len(),
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "{} of {} reads failed, the first: {:?}",
        failed.len(),
        reads.len(),
        &failed[..failed.len().min(5)]
    );
    for addr in addrs {
        assert!(
            during_by_bridge.get(addr).is_some_and(|count| *count > 0),
            "no read through {addr} while the job ran: {during_by_bridge:?}"
        );
    }
}

/// Requests answered, by the bridge that answered them.
fn answered_by<'r>(records: impl Iterator<Item = &'r Record>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for record in records {
        if let Some(bridge) = &record.bridge {
            *counts.entry(bridge.clone()).or_default() += 1;
        }
    }
    counts
}

/// Every insert acknowledged, through both bridges: the inserts.
fn check_inserts(records: &[Record], addrs: &[String; 2]) -> Vec<Inserted> {
    let inserts: Vec<&Record> = records.iter().filter(|r| r.inserted.is_some()).collect();
    let failed: Vec<&String> = inserts.iter().filter_map(|r| r.failure.as_ref()).collect();
    let by_bridge = answered_by(inserts.iter().copied());
    eprintln!(
        "{} inserts, {} failed; by bridge {by_bridge:?}",
        inserts.len(),
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "{} of {} inserts failed, the first: {:?}",
        failed.len(),
        inserts.len(),
        &failed[..failed.len().min(5)]
    );
    assert_eq!(
        by_bridge.keys().collect::<BTreeSet<_>>(),
        addrs.iter().collect(),
        "inserts answered by {by_bridge:?}"
    );
    inserts
        .iter()
        .filter_map(|r| r.inserted.clone().flatten())
        .collect()
}

/// In PostgreSQL: every seed and acknowledged insert once, in the shard
/// `new` names, and nothing else.
fn check_rows(database: &str, acknowledged: &[Inserted], new: &Router) {
    let cluster = CLUSTER.get();
    let stored = runtime().block_on(async {
        let primary = connect(&cluster, "primary", database).await;
        rows::snapshot(&primary, "").await.shards_of
    });
    let ids: Vec<String> = seed_ids()
        .chain(acknowledged.iter().map(|insert| insert.id.clone()))
        .collect();
    for id in &ids {
        let owner = &new.locate_shard(id.as_bytes()).name;
        assert_eq!(stored.get(id), Some(&vec![owner.clone()]), "{id}");
    }
    assert_eq!(stored.len(), ids.len(), "rows nobody acknowledged");
}

/// The job moved what the core plans from `old` to `new` over the rows
/// in their old place when it started: the seeds and the inserts written
/// under the old layout (before every bridge wrote by the new one).
fn check_moved(done: &RebalanceJob, acknowledged: &[Inserted], old: &Router, new: &Router) {
    let in_old_place: Vec<String> = seed_ids()
        .chain(
            acknowledged
                .iter()
                .filter(|insert| insert.shard == old.locate_shard(insert.id.as_bytes()).name)
                .map(|insert| insert.id.clone()),
        )
        .collect();
    let plan = ecoshard_core::plan(old, new, in_old_place.iter().map(|id| id.as_bytes()));
    let written_old = in_old_place.len() as u64 - SEEDS;
    eprintln!(
        "job {}: {} moved, the core plans {} ({written_old} inserts written under the old layout)",
        done.id, done.moved, plan.moved
    );
    assert_eq!(done.moved, plan.moved, "{done:?}");
    assert_eq!(done.total, done.moved, "{done:?}");
    assert!(plan.moved > 0);
}

fn seed_ids() -> impl Iterator<Item = String> {
    (0..SEEDS).map(|index| format!("seed_{index}"))
}

/// The shards only `old` has are dropped: the job's bridge drops them once
/// every bridge reads the new layout alone and the database verified clean
/// under it (the job stays done: checked after the load).
fn emptied_shards_are_dropped(database: &str, old: &Router, new: &Router) {
    let kept: BTreeSet<&String> = new.shards().iter().map(|shard| &shard.name).collect();
    let gone: Vec<String> = old
        .shards()
        .iter()
        .filter(|shard| !kept.contains(&shard.name))
        .map(|shard| format!("shard_{}", shard.name))
        .collect();
    if gone.is_empty() {
        return;
    }
    let cluster = CLUSTER.get();
    let dropped = runtime().block_on(async {
        let primary = connect(&cluster, "primary", database).await;
        common::eventually(LIMIT, || async {
            let sql = "SELECT count(*) FROM pg_namespace WHERE nspname = ANY($1)";
            let left: i64 = primary.query_one(sql, &[&gone]).await.unwrap().get(0);
            left == 0
        })
        .await
    });
    assert!(dropped, "{gone:?} never dropped");
}

/// The bridge that did not run the job answers the new layout, and both
/// are listed routing by it.
fn the_other_bridge_follows(service: &Service, version: u64) {
    let other = &service.addrs[1];
    let reply = answered(other, "GET", "/api/layout", None);
    let layout: LayoutView = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(layout.version, version, "{}", reply.body);
    let listed = eventually(LIMIT, || {
        let reply = answered(other, "GET", "/api/cluster", None);
        let view: ClusterView = serde_json::from_str(&reply.body).unwrap();
        view.bridges.len() == 2
            && view
                .bridges
                .iter()
                .all(|bridge| bridge.live && bridge.layout_version == version)
    });
    assert!(listed, "the bridges never both listed layout {version}");
}

/// An insert acknowledged: its id, token and the shard it was written to.
#[derive(Clone, Debug)]
struct Inserted {
    id: String,
    lsn: String,
    shard: String,
}

/// One request of the load.
#[derive(Debug)]
struct Record {
    start: Instant,
    end: Instant,
    /// The bridge that answered.
    bridge: Option<String>,
    /// What went wrong, if anything.
    failure: Option<String>,
    /// An insert: what it wrote, when acknowledged.
    inserted: Option<Option<Inserted>>,
}

/// Inserts and reads through NGINX from several threads, each one request
/// at a time, until told to stop.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<Vec<Record>>>,
}

impl Load {
    /// [`INSERTERS`] threads inserting new ids, each read back at once
    /// (read-your-writes with its token, or strong); [`READERS`] threads
    /// reading seeds (default consistency) and ids acknowledged earlier
    /// (read-your-writes with their token).
    fn start(lb: &str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let acknowledged = Arc::new(Mutex::new(Vec::<Inserted>::new()));
        let mut threads = Vec::new();
        for thread in 0..INSERTERS + READERS {
            let (lb, stop, ok) = (lb.to_owned(), Arc::clone(&stop), Arc::clone(&ok));
            let acknowledged = Arc::clone(&acknowledged);
            threads.push(std::thread::spawn(move || {
                let mut records = Vec::new();
                let mut n: u64 = 0;
                while !stop.load(Ordering::Relaxed) {
                    let done = if thread < INSERTERS {
                        insert_and_read(&lb, thread, n, &acknowledged)
                    } else {
                        read_earlier(&lb, n * (thread as u64 + 1), &acknowledged)
                    };
                    let succeeded = done.iter().filter(|r| r.failure.is_none()).count();
                    ok.fetch_add(succeeded as u64, Ordering::Relaxed);
                    records.extend(done);
                    n += 1;
                }
                records
            }));
        }
        Load { stop, ok, threads }
    }

    /// Whether `more` requests succeed after those counted now, within [`LIMIT`].
    fn goes_on(&self, more: u64) -> bool {
        let seen = self.ok.load(Ordering::Relaxed);
        eventually(LIMIT, || self.ok.load(Ordering::Relaxed) >= seen + more)
    }

    fn finish(self) -> Vec<Record> {
        self.stop.store(true, Ordering::Relaxed);
        self.threads
            .into_iter()
            .flat_map(|thread| thread.join().expect("a load thread"))
            .collect()
    }
}

/// One insert, then (when acknowledged) its read back.
fn insert_and_read(
    lb: &str,
    thread: usize,
    n: u64,
    acknowledged: &Mutex<Vec<Inserted>>,
) -> Vec<Record> {
    let id = format!("ins_{thread}_{n}");
    let body = format!(r#"{{"user_id":"{id}"}}"#);
    let start = Instant::now();
    let reply = call(lb, "POST", "/api/users", Some(&body));
    let end = Instant::now();
    let written = reply
        .as_ref()
        .filter(|reply| reply.status == 201 || reply.status == 200)
        .and_then(|reply| serde_json::from_str::<InsertResult>(&reply.body).ok())
        .filter(|result| result.user.user_id == id)
        .map(|result| Inserted {
            id: id.clone(),
            lsn: result.lsn,
            shard: result.shard,
        });
    let mut records = vec![Record {
        start,
        end,
        bridge: reply.as_ref().and_then(|reply| reply.bridge.clone()),
        failure: written
            .is_none()
            .then(|| format!("POST {id}: {}", described(reply.as_ref()))),
        inserted: Some(written.clone()),
    }];
    if let Some(written) = written {
        let consistency = if n.is_multiple_of(2) {
            format!("read-your-writes&lsn={}", written.lsn)
        } else {
            "strong".to_owned()
        };
        records.push(read(lb, &id, &consistency));
        acknowledged.lock().unwrap().push(written);
    }
    records
}

/// A seed at the default consistency, or an id acknowledged earlier with
/// its token, by turns.
fn read_earlier(lb: &str, n: u64, acknowledged: &Mutex<Vec<Inserted>>) -> Vec<Record> {
    let spread = n.wrapping_mul(2_654_435_761);
    let earlier = {
        let list = acknowledged.lock().unwrap();
        (n % 2 == 1 && !list.is_empty()).then(|| list[spread as usize % list.len()].clone())
    };
    let record = match earlier {
        Some(insert) => read(
            lb,
            &insert.id,
            &format!("read-your-writes&lsn={}", insert.lsn),
        ),
        None => read(lb, &format!("seed_{}", spread % SEEDS), ""),
    };
    vec![record]
}

/// `GET /api/users/ID?consistency=…` (none: the default): a failure unless
/// 200 with that user.
fn read(lb: &str, id: &str, consistency: &str) -> Record {
    let path = match consistency {
        "" => format!("/api/users/{id}"),
        consistency => format!("/api/users/{id}?consistency={consistency}"),
    };
    let start = Instant::now();
    let reply = call(lb, "GET", &path, None);
    let end = Instant::now();
    let found = reply.as_ref().is_some_and(|reply| {
        reply.status == 200
            && serde_json::from_str::<ReadResult>(&reply.body)
                .is_ok_and(|read| read.user.user_id == id)
    });
    Record {
        start,
        end,
        bridge: reply.as_ref().and_then(|reply| reply.bridge.clone()),
        failure: (!found).then(|| format!("GET {path}: {}", described(reply.as_ref()))),
        inserted: None,
    }
}

fn described(reply: Option<&Reply>) -> String {
    reply.map_or("no answer".to_owned(), |reply| {
        format!(
            "{} from {:?}: {}",
            reply.status,
            reply.bridge,
            reply.body.trim()
        )
    })
}
