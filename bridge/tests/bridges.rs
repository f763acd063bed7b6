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
    eventually_some, get, post_json, put_layout, ring,
};
use ecoshard_bridge::{AppState, ClusterSpec, LocalCluster, Topology};
use ecoshard_core::Layout;
use ecoshard_core::plan_numbered;
use ecoshard_core::wire::{BridgeView, ClusterView, JobState, LayoutView, RebalanceJob};
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
