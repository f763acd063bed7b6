//! Two bridges over one database, coordinated through the catalog: one job
//! at a time whichever bridge is asked, a layout applied on one followed by
//! the other without a restart, a key move with inserts through both that
//! keeps every row once where the core says, and a bridge cut off from the
//! catalog fencing itself until it has caught up.

mod common;
mod rows;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::{
    LIMIT, SharedCluster, SharedClusters, bridge, bridge_with, connect, eventually,
    eventually_some, get, post, post_json, put_layout, ring,
};
use ecoshard_bridge::{AppState, ClusterSpec, LocalCluster, Topology};
use ecoshard_core::Layout;
use ecoshard_core::plan_numbered;
use ecoshard_core::wire::{
    BridgeView, ClusterView, JobState, LayoutView, RebalanceJob, VerifyReport,
};
use ecoshard_postgres::Endpoint;
use rows::{assert_no_key_twice, snapshot};

/// This binary's cluster, on ports from 23400.
static CLUSTER: SharedCluster = SharedCluster::new("bridges", 23400, false);

/// Two clusters without standbys, for a bridge cut off from `c1` alone.
static TWO: SharedClusters = SharedClusters::new("bridges-two", 23600, 2, 0);

/// The longest a job may take here.
const JOB_LIMIT: Duration = Duration::from_secs(300);

/// The bridges `state` lists in `GET /api/cluster`.
async fn bridges_of(state: &AppState) -> Vec<BridgeView> {
    let answer = get(state, "/api/cluster").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    answer.parse::<ClusterView>().bridges
}

/// Waits until `state` lists `count` live bridges.
async fn wait_listed(state: &AppState, count: usize) -> Vec<BridgeView> {
    eventually_some(LIMIT, || async {
        let listed = bridges_of(state).await;
        (listed.iter().filter(|bridge| bridge.live).count() == count).then_some(listed)
    })
    .await
    .unwrap_or_else(|| panic!("never {count} live bridges: {:?}", 0))
}

/// The job `id` once it no longer runs, asked of `state`; it must be done.
async fn wait_done(state: &AppState, id: u64) -> RebalanceJob {
    let ended = eventually_some(JOB_LIMIT, || async {
        let answer = get(state, &format!("/api/rebalance/{id}")).await;
        Some(answer.parse::<RebalanceJob>()).filter(|job| job.state != JobState::Running)
    })
    .await
    .unwrap_or_else(|| panic!("job {id} still running"));
    assert_eq!(ended.state, JobState::Done, "{ended:?}");
    ended
}

/// The layout `state` answers as in force.
async fn layout_of(state: &AppState) -> LayoutView {
    get(state, "/api/layout").await.parse()
}

/// Inserts `user_id` through `state`: whether it was acknowledged.
async fn insert(state: &AppState, user_id: &str) -> bool {
    let body = format!(r#"{{"user_id": "{user_id}"}}"#);
    let answer = post_json(state, "/api/users", &body).await;
    let acknowledged = answer.status == StatusCode::CREATED || answer.status == StatusCode::OK;
    if !acknowledged {
        eprintln!("{user_id}: {}", answer.text());
    }
    acknowledged
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_bridges_racing_put_layout_start_one_job_and_the_other_names_it() {
    let cluster = CLUSTER.get();
    let a = bridge(&cluster, "race", ring(3)).await;
    let b = bridge(&cluster, "race", ring(3)).await;
    let listed = wait_listed(&a, 2).await;
    assert_eq!(listed.iter().filter(|bridge| bridge.this).count(), 1);
    let json = serde_json::to_string(&ring(4)).unwrap();
    let (on_a, on_b) = tokio::join!(put_layout(&a, &json), put_layout(&b, &json));
    let mut statuses = [on_a.status, on_b.status];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::ACCEPTED, StatusCode::CONFLICT]);
    let (started, refused, runner) = if on_a.status == StatusCode::ACCEPTED {
        (on_a, on_b, &a)
    } else {
        (on_b, on_a, &b)
    };
    let job: RebalanceJob = started.parse();
    assert_eq!(refused.error_code(), "rebalance_running");
    let message = refused.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    let name = bridges_of(runner)
        .await
        .into_iter()
        .find(|bridge| bridge.this)
        .unwrap()
        .name;
    assert!(
        message.contains(&format!("rebalance job {}", job.id)),
        "{message}"
    );
    assert!(message.contains(&name), "{message} names {name}");
    wait_done(runner, job.id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_layout_applied_on_one_bridge_is_followed_by_the_other_without_a_restart() {
    let cluster = CLUSTER.get();
    let a = bridge(&cluster, "follow", ring(3)).await;
    let b = bridge(&cluster, "follow", ring(3)).await;
    wait_listed(&a, 2).await;
    let before = layout_of(&b).await.version;
    let (job, after) = apply_timed(&a, &b, &ring(5)).await;
    eprintln!("b followed the job's routing {after:?} after the PUT was sent (NOTIFY)");
    wait_done(&a, job.id).await;
    let seen = eventually(LIMIT, || async {
        let view = layout_of(&b).await;
        view.version == job.to_version && b.service().routing().table().previous.is_none()
    })
    .await;
    assert!(seen, "b never took layout {} alone", job.to_version);
    assert!(before < job.to_version);
    assert_eq!(layout_of(&b).await.layout, ring(5));
    let router = ring(5).build().unwrap();
    for index in 0..20 {
        let key = format!("after_{index}");
        assert!(insert(&b, &key).await, "{key}");
        let shard = &router.shards()[router.locate(key.as_bytes())].name;
        let client = connect(&cluster, "primary", "follow").await;
        let sql = format!("SELECT count(*) FROM shard_{shard}.users WHERE user_id = $1");
        let found: i64 = client.query_one(&sql, &[&key]).await.unwrap().get(0);
        assert_eq!(found, 1, "{key} in {shard}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_layout_change_whose_notification_is_lost_is_followed_by_polling() {
    let cluster = CLUSTER.get();
    let a = bridge(&cluster, "polled", ring(3)).await;
    let b = bridge(&cluster, "polled", ring(3)).await;
    wait_listed(&a, 2).await;
    let catalog = connect(&cluster, "primary", "polled").await;
    let quiet = "ALTER TABLE ecoshard.layout DISABLE TRIGGER layout_changed;
                 ALTER TABLE ecoshard.rebalance DISABLE TRIGGER job_changed;";
    catalog.batch_execute(quiet).await.unwrap();
    let (job, after) = apply_timed(&a, &b, &ring(4)).await;
    eprintln!("b followed the job's routing {after:?} after the PUT was sent (polling)");
    wait_done(&a, job.id).await;
    let alone = eventually(LIMIT, || async {
        b.service().routing().table().previous.is_none()
    })
    .await;
    assert!(alone, "b never routed by layout {} alone", job.to_version);
}

/// The layout versions `state` routes by: writes, and reads also under.
fn routing_of(state: &AppState) -> (u64, Option<u64>) {
    let table = state.service().routing().table();
    (
        table.current.version,
        table.previous.as_ref().map(|previous| previous.version),
    )
}

/// A row written by the target on one bridge while another still read the
/// old layout alone was not found there (the load balancer's test saw a
/// 404 for an id just acknowledged, at a job's start). Both bridges'
/// routing is looked at in turn, the job's bridge before and after the
/// other, so that each pair compared holds at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_bridge_writes_by_a_new_layout_while_another_reads_the_old_one_alone() {
    let cluster = CLUSTER.get();
    let a = bridge(&cluster, "phases", ring(3)).await;
    let b = bridge(&cluster, "phases", ring(3)).await;
    wait_listed(&a, 2).await;
    let old = (routing_of(&a).0, None);
    let (state, json) = (a.clone(), serde_json::to_string(&ring(5)).unwrap());
    let put = tokio::spawn(async move { put_layout(&state, &json).await });
    let writes_new = |routing: (u64, Option<u64>)| routing.0 > old.0;
    let mut seen = Vec::new();
    let limit = Instant::now() + LIMIT;
    loop {
        let (a_before, on_b, a_after) = (routing_of(&a), routing_of(&b), routing_of(&a));
        if seen.last() != Some(&(a_before, on_b)) {
            seen.push((a_before, on_b));
        }
        let a_new_b_old = writes_new(a_before) && on_b == old;
        let b_new_a_old = writes_new(on_b) && a_after == old;
        assert!(
            !a_new_b_old && !b_new_a_old,
            "a writes by {a_before:?}/{a_after:?}, b by {on_b:?}: {seen:?}"
        );
        if [a_after, on_b]
            .iter()
            .all(|r| writes_new(*r) && r.1.is_some())
        {
            break;
        }
        assert!(Instant::now() < limit, "never both by the target: {seen:?}");
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    eprintln!("(a, b) routed by {seen:?}");
    let started = put.await.unwrap();
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.text());
    wait_done(&a, started.parse::<RebalanceJob>().id).await;
}

/// Applies `layout` on `a`: the job, and how long after sending the PUT
/// `b` routed by its target (looked at every millisecond).
async fn apply_timed(a: &AppState, b: &AppState, layout: &Layout) -> (RebalanceJob, Duration) {
    let before = b.service().routing().table().current.version;
    let (state, json) = (a.clone(), serde_json::to_string(layout).unwrap());
    let sent = Instant::now();
    let put = tokio::spawn(async move { put_layout(&state, &json).await });
    let limit = sent + LIMIT;
    while b.service().routing().table().current.version == before {
        assert!(Instant::now() < limit, "b never followed the layout");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let after = sent.elapsed();
    let started = put.await.unwrap();
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.text());
    let job: RebalanceJob = started.parse();
    assert_eq!(
        b.service().routing().table().current.version,
        job.to_version
    );
    (job, after)
}

/// Inserts `prefix0`, `prefix1`, … through `state` until `stop`; the ids
/// acknowledged.
fn load(
    state: &AppState,
    prefix: &'static str,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<String>> {
    let state = state.clone();
    tokio::spawn(async move {
        let mut acknowledged = Vec::new();
        let mut index = 0;
        while !stop.load(Ordering::Relaxed) {
            let key = format!("{prefix}{index}");
            if insert(&state, &key).await {
                acknowledged.push(key);
            }
            index += 1;
        }
        acknowledged
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_move_with_inserts_through_both_bridges_keeps_every_row_once_where_the_core_says() {
    let cluster = CLUSTER.get();
    // Small batches: the job lasts while both bridges insert.
    let a = bridge_with(&cluster, "moving", |config| config.rebalance_batch = 50).await;
    let b = bridge(&cluster, "moving", ring(3)).await;
    wait_listed(&a, 2).await;
    let seeded = post_json(
        &a,
        "/api/users/bulk",
        r#"{"count": 3000, "prefix": "seed_"}"#,
    )
    .await;
    assert!(seeded.status.is_success(), "{}", seeded.text());
    let stop = Arc::new(AtomicBool::new(false));
    let started = put_layout(&a, &serde_json::to_string(&ring(5)).unwrap()).await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.text());
    let job: RebalanceJob = started.parse();
    // Each bridge's inserts start once it routes by the job (a row written
    // before is in its old place, moved, and counted beside the seeds').
    let on_a = load(&a, "a_", Arc::clone(&stop));
    let following = eventually(LIMIT, || async {
        b.service().routing().table().current.version == job.to_version
    })
    .await;
    assert!(following, "b never followed job {}", job.id);
    let on_b = load(&b, "b_", Arc::clone(&stop));
    let done = wait_done(&a, job.id).await;
    stop.store(true, Ordering::Relaxed);
    let mut acknowledged = on_a.await.unwrap();
    let through_b = on_b.await.unwrap();
    assert!(
        !through_b.is_empty() && !acknowledged.is_empty(),
        "both bridges took inserts"
    );
    acknowledged.extend(through_b);
    let old = ring(3).build().unwrap();
    let new = ring(5).build().unwrap();
    assert_eq!(done.moved, plan_numbered(&old, &new, "seed_", 3000).moved);
    assert_eq!(done.moved, done.total);
    let client = connect(&cluster, "primary", "moving").await;
    let rows = snapshot(&client, "").await;
    assert_no_key_twice(&rows);
    for key in acknowledged.iter().chain(
        (0..3000)
            .map(|i| format!("seed_{i}"))
            .collect::<Vec<_>>()
            .iter(),
    ) {
        let shards = rows
            .shards_of
            .get(key)
            .unwrap_or_else(|| panic!("{key} lost"));
        let owner = &new.shards()[new.locate(key.as_bytes())].name;
        assert_eq!(&shards[0], owner, "{key}");
    }
}

/// A TCP proxy to one server that the test can cut (every connection
/// closed, none taken) and restore.
struct Proxy {
    port: u16,
    open: Arc<AtomicBool>,
    connections: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(upstream: u16) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicBool::new(true));
        let connections = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (accepting, held) = (Arc::clone(&open), Arc::clone(&connections));
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !accepting.load(Ordering::SeqCst) {
                    continue;
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                held.lock().unwrap().push(task);
            }
        });
        Proxy {
            port,
            open,
            connections,
        }
    }

    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

/// A key whose shard is on `c2` under `layout` placed over `c1`, `c2`.
fn key_on_c2(layout: &Layout, prefix: &str) -> String {
    let placed = layout.placed(&["c1", "c2"]).unwrap();
    let router = placed.build().unwrap();
    (0..)
        .map(|index| format!("{prefix}{index}"))
        .find(|key| router.locate_shard(key.as_bytes()).cluster.as_deref() == Some("c2"))
        .unwrap()
}

/// The first key `<prefix>N` on `c2` under `from` whose shard `to` changes.
fn key_moving(from: &Layout, to: &Layout, prefix: &str) -> String {
    let clusters = ["c1", "c2"];
    let (old, new) = (
        from.placed(&clusters).unwrap().build().unwrap(),
        to.placed(&clusters).unwrap().build().unwrap(),
    );
    (0..)
        .map(|index| format!("{prefix}{index}"))
        .find(|key| {
            let (was, is) = (
                old.locate_shard(key.as_bytes()),
                new.locate_shard(key.as_bytes()),
            );
            was.cluster.as_deref() == Some("c2") && was.name != is.name
        })
        .unwrap()
}

/// A bridge over `c1` and `c2` of `clusters` on `database`, reaching
/// `c1`'s primary (the catalog) through `catalog_port`, else directly.
async fn bridge_over_two(
    clusters: &[Arc<LocalCluster>],
    database: &str,
    catalog_port: Option<u16>,
) -> AppState {
    let (c1, c2) = (&clusters[0], &clusters[1]);
    let mut topology = Topology::local(c1, database);
    if let Some(port) = catalog_port {
        let primary = c1.nodes()[0].clone();
        let endpoint = Endpoint {
            port,
            ..c1.endpoint(&primary)
        };
        topology.nodes[0].config = ecoshard_bridge::local_config(&endpoint, database);
    }
    let other = ClusterSpec {
        name: "c2".to_owned(),
        topology: Topology::local(c2, database),
        control: None,
    };
    bridge_with(c1, database, |config| {
        config.topology = topology;
        config.other_clusters = vec![other];
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bridge_cut_off_from_the_catalog_refuses_writes_and_stale_not_founds_until_it_has_caught_up()
 {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let clusters = TWO.get();
    let a = bridge_over_two(&clusters, "fenced", None).await;
    let proxy = Proxy::start(clusters[0].nodes()[0].port).await;
    let b = bridge_over_two(&clusters, "fenced", Some(proxy.port)).await;
    wait_listed(&a, 2).await;
    let (before, during) = (
        key_on_c2(&ring(3), "before_"),
        key_on_c2(&ring(3), "during_"),
    );
    assert!(insert(&b, &before).await);
    let moving = key_moving(&ring(3), &ring(4), "moving_");
    assert!(insert(&a, &moving).await);
    proxy.cut();
    // Its writes to c2, which it still reaches, are refused once fenced
    // (taken before: the lease has not lapsed).
    let body = format!(r#"{{"user_id": "{during}"}}"#);
    let fenced = eventually(LIMIT, || async {
        let answer = post_json(&b, "/api/users", &body).await;
        answer.status == StatusCode::SERVICE_UNAVAILABLE && answer.error_code() == "bridge_fenced"
    })
    .await;
    assert!(fenced, "b never fenced itself");
    let lapsed = eventually(LIMIT, || async {
        bridges_of(&a)
            .await
            .iter()
            .any(|bridge| !bridge.this && !bridge.live)
    })
    .await;
    assert!(lapsed, "a never saw b's lease lapse");
    let started = put_layout(&a, &serde_json::to_string(&ring(4)).unwrap()).await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.text());
    let job: RebalanceJob = started.parse();
    wait_done(&a, job.id).await;
    let still = key_on_c2(&ring(3), "still_");
    let body = format!(r#"{{"user_id": "{still}"}}"#);
    let refused = post_json(&b, "/api/users", &body).await;
    assert_eq!(refused.error_code(), "bridge_fenced", "{}", refused.text());
    // A row the job moved: b's old routing looks where it was. Not a stale
    // "not found" (it was, before reads knew of the fence).
    let read = get(&b, &format!("/api/users/{moving}?consistency=strong")).await;
    assert_eq!(read.error_code(), "bridge_fenced", "{}", read.text());
    proxy.restore();
    let after = key_on_c2(&ring(3), "after_");
    let writes = eventually(LIMIT, || insert(&b, &after)).await;
    assert!(writes, "b never took writes again");
    let read = get(&b, &format!("/api/users/{moving}?consistency=strong")).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text());
    assert_eq!(
        b.service().routing().table().current.version,
        job.to_version
    );
    let new = ring(4).placed(&["c1", "c2"]).unwrap().build().unwrap();
    let mut found = Vec::new();
    for (name, cluster) in [("c1", &clusters[0]), ("c2", &clusters[1])] {
        let rows = snapshot(&connect(cluster, "primary", "fenced").await, "").await;
        found.push((name, rows));
    }
    for (key, written) in [
        (&before, true),
        (&during, true),
        (&still, false),
        (&after, true),
        (&moving, true),
    ] {
        let held: Vec<(&str, &String)> = found
            .iter()
            .flat_map(|(name, rows)| {
                let shards = rows.shards_of.get(key.as_str()).into_iter().flatten();
                shards.map(move |shard| (*name, shard))
            })
            .collect();
        let owner = new.locate_shard(key.as_bytes());
        let expected = (owner.cluster.as_deref().unwrap(), &owner.name);
        assert_eq!(held, if written { vec![expected] } else { vec![] }, "{key}");
    }
    wait_listed(&a, 2).await;
}

/// One insert of a load: its key, whether it was acknowledged, the cluster
/// and WAL position its answer names, and how long it waited.
#[derive(Debug)]
struct Taken {
    key: String,
    acknowledged: bool,
    /// The cluster and position of a write (201), not of a repeat.
    written_at: Option<(String, u64)>,
    waited: Duration,
}

/// A token `c1/0/3000148` as its cluster and position.
fn position(token: &str) -> (String, u64) {
    let mut parts = token.splitn(3, '/');
    let (cluster, high, low) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let half = |hex: &str| u64::from_str_radix(hex, 16).unwrap();
    (cluster.to_owned(), (half(high) << 32) | half(low))
}

/// The keys `prefix0`, `prefix1`, … of shard `shard` under ring over 3
/// shards placed over `c1`, `c2`.
fn keys_of(shard: &'static str, prefix: &'static str) -> impl Iterator<Item = String> {
    let router = ring(3).placed(&["c1", "c2"]).unwrap().build().unwrap();
    (0..)
        .map(move |index| format!("{prefix}{index}"))
        .filter(move |key| router.locate_shard(key.as_bytes()).name == shard)
}

/// Inserts keys of shard `s0` through `state` until `stop`: what each got.
fn load_s0(
    state: &AppState,
    prefix: &'static str,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<Taken>> {
    let state = state.clone();
    tokio::spawn(async move {
        let mut taken = Vec::new();
        for key in keys_of("s0", prefix) {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let sent = Instant::now();
            let body = format!(r#"{{"user_id": "{key}"}}"#);
            let answer = post_json(&state, "/api/users", &body).await;
            let written_at = (answer.status == StatusCode::CREATED)
                .then(|| position(answer.json()["lsn"].as_str().unwrap()));
            if !answer.status.is_success() {
                eprintln!("{key}: {}", answer.text());
            }
            taken.push(Taken {
                key,
                acknowledged: answer.status.is_success(),
                written_at,
                waited: sent.elapsed(),
            });
        }
        taken
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_shard_moved_under_inserts_through_both_bridges_is_never_written_to_its_source_after_the_cutover()
 {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let clusters = TWO.get();
    let database = "fence_shared";
    let a = bridge_over_two(&clusters, database, None).await;
    let b = bridge_over_two(&clusters, database, None).await;
    wait_listed(&a, 2).await;
    let seeds: Vec<String> = keys_of("s0", "seed_").take(400).collect();
    for key in &seeds {
        assert!(insert(&a, key).await, "{key}");
    }
    let reads = [&a, &b].map(|state| common::ReadLoad::start(state, &seeds, &["strong"], 1));
    let stop = Arc::new(AtomicBool::new(false));
    let on_a = load_s0(&a, "a_", Arc::clone(&stop));
    let on_b = load_s0(&b, "b_", Arc::clone(&stop));
    let mut moved = ring(3);
    for (shard, cluster) in moved.shards.iter_mut().zip(["c2", "c2", "c1"]) {
        shard.cluster = Some(cluster.to_owned());
    }
    let started = put_layout(&a, &serde_json::to_string(&moved).unwrap()).await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.text());
    let job: RebalanceJob = started.parse();
    wait_done(&a, job.id).await;
    // The load ran across the cutover: b writes the shard to c2, then stops.
    let b_on_c2 = eventually(LIMIT, || async {
        let key = keys_of("s0", "after_").next().unwrap();
        let answer = post_json(&b, "/api/users", &format!(r#"{{"user_id": "{key}"}}"#)).await;
        answer.status.is_success() && answer.json()["cluster"] == "c2"
    })
    .await;
    assert!(b_on_c2, "b never wrote shard s0 to c2");
    for load in &reads {
        assert!(load.goes_on(20).await, "reads stopped");
    }
    stop.store(true, Ordering::Relaxed);
    let (through_a, through_b) = (on_a.await.unwrap(), on_b.await.unwrap());
    let [read_a, read_b] = reads;
    // A read may find its primary too slow on a loaded machine (503), never
    // the row missing or its shard gone (404, 500).
    for (bridge, load) in [("a", read_a), ("b", read_b)] {
        let (ok, failed) = load.finish().await;
        eprintln!(
            "reads through {bridge}: {ok} answered, {} not",
            failed.len()
        );
        let wrong: Vec<&String> = failed
            .iter()
            .filter(|read| !read.contains(": 503 "))
            .collect();
        assert_eq!(wrong, Vec::<&String>::new(), "reads through {bridge}");
    }

    let catalog = connect(&clusters[0], "primary", database).await;
    let row = catalog
        .query_one(
            "SELECT source_lsn, fence, write_pause_ms FROM ecoshard.shard_move WHERE shard = 's0'",
            &[],
        )
        .await
        .unwrap();
    let cutover_at = row
        .get::<_, Option<i64>>(0)
        .expect("the cutover's position") as u64;
    assert!(
        row.get::<_, Option<i64>>(1).is_some(),
        "decided under a fence"
    );
    let waited = |taken: &[Taken]| taken.iter().map(|t| t.waited).max().unwrap_or_default();
    eprintln!(
        "cutover: a's writes of s0 paused {:?} ms; longest insert of s0 through a {:?}, \
         through b {:?} ({} and {} inserts)",
        row.get::<_, Option<i64>>(2),
        waited(&through_a),
        waited(&through_b),
        through_a.len(),
        through_b.len()
    );
    // No write of the shard landed on its source after the cutover's position.
    for taken in through_a.iter().chain(&through_b) {
        if let Some((cluster, lsn)) = &taken.written_at
            && cluster == "c1"
        {
            assert!(
                *lsn <= cutover_at,
                "{} written on c1 at {lsn} after the cutover ({cutover_at})",
                taken.key
            );
        }
    }
    let through_b_on_c2 = through_b
        .iter()
        .filter(|taken| {
            taken
                .written_at
                .as_ref()
                .is_some_and(|(cluster, _)| cluster == "c2")
        })
        .count();
    assert!(
        through_b_on_c2 > 0,
        "b took no write of s0 on its target during the load"
    );
    let report: VerifyReport = post(&a, "/api/verify").await.parse();
    assert!(report.clean, "{report:?}");
    let on_c1 = snapshot(&connect(&clusters[0], "primary", database).await, "").await;
    let on_c2 = snapshot(&connect(&clusters[1], "primary", database).await, "").await;
    assert_no_key_twice(&on_c2);
    let acknowledged = through_a
        .iter()
        .chain(&through_b)
        .filter(|t| t.acknowledged);
    for key in seeds.iter().chain(acknowledged.map(|taken| &taken.key)) {
        assert_eq!(
            on_c2.shards_of.get(key),
            Some(&vec!["s0".to_owned()]),
            "{key} on c2"
        );
        assert_eq!(on_c1.shards_of.get(key), None, "{key} left on c1");
    }
    let schema: bool = catalog
        .query_one("SELECT to_regnamespace('shard_s0') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!schema, "the source schema of s0 is left on c1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bridge_cut_off_from_the_catalog_during_a_shard_move_lets_it_finish_and_follows_its_cutover()
 {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let clusters = TWO.get();
    let database = "fence_lapsed";
    let a = bridge_over_two(&clusters, database, None).await;
    let proxy = Proxy::start(clusters[0].nodes()[0].port).await;
    let b = bridge_over_two(&clusters, database, Some(proxy.port)).await;
    wait_listed(&a, 2).await;
    let seeds: Vec<String> = keys_of("s0", "seed_").take(200).collect();
    for key in &seeds {
        assert!(insert(&b, key).await, "{key}");
    }
    // b holds no fence and records no cutover: the mover goes on only once
    // b's lease has lapsed.
    proxy.cut();
    let mut moved = ring(3);
    for (shard, cluster) in moved.shards.iter_mut().zip(["c2", "c2", "c1"]) {
        shard.cluster = Some(cluster.to_owned());
    }
    let started = put_layout(&a, &serde_json::to_string(&moved).unwrap()).await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.text());
    let job: RebalanceJob = started.parse();
    wait_done(&a, job.id).await;
    let lapsed = bridges_of(&a)
        .await
        .iter()
        .any(|bridge| !bridge.this && !bridge.live);
    assert!(lapsed, "b is still live after the move");
    proxy.restore();
    let after = keys_of("s0", "after_").next().unwrap();
    let body = format!(r#"{{"user_id": "{after}"}}"#);
    let written = eventually_some(LIMIT, || async {
        let answer = post_json(&b, "/api/users", &body).await;
        answer.status.is_success().then(|| answer.json())
    })
    .await
    .expect("b never took writes again");
    assert_eq!(written["cluster"], "c2", "{written}");
    assert_eq!(
        b.service().routing().table().current.version,
        job.to_version
    );
    let catalog = connect(&clusters[0], "primary", database).await;
    let decided: Option<i64> = catalog
        .query_one(
            "SELECT fence FROM ecoshard.shard_move WHERE job = $1",
            &[&(job.id as i64)],
        )
        .await
        .unwrap()
        .get(0);
    assert!(decided.is_some(), "decided under a fence");
    let report: VerifyReport = post(&a, "/api/verify").await.parse();
    assert!(report.clean, "{report:?}");
    let on_c2 = snapshot(&connect(&clusters[1], "primary", database).await, "").await;
    for key in seeds.iter().chain([&after]) {
        assert_eq!(
            on_c2.shards_of.get(key),
            Some(&vec!["s0".to_owned()]),
            "{key} on c2"
        );
    }
}
