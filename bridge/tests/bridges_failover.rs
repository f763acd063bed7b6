//! Failover with several bridges over one local cluster: two `ecoshard serve`
//! processes (the first starting the cluster, the second joining it), the
//! primary SIGKILLed under inserts and reads through both. One failure makes
//! one promotion (a promotion: a standby leaving recovery, which starts the
//! next timeline), and every bridge then writes to the promoted standby —
//! the one that promoted it, one whose own failover answered with that
//! promotion, one killed beforehand (the other still fails over), and one
//! without `--auto-failover`, which follows what `cluster.json` names.

mod common;
mod rows;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use common::blocking::{Scratch, Serve, all_streaming, cluster_view, eventually, eventually_some};
use common::blocking::{free_ports, http, primary_of};
use common::connect;
use ecoshard_bridge::{ClusterOptions, LocalCluster};
use ecoshard_core::wire::{InsertResult, ReadResult};

/// How long a failover, a bridge following it, or an old primary rejoining
/// as a standby may take before the test fails (not a measure: a bound on a
/// hang).
const WITHIN: Duration = Duration::from_secs(90);

/// Two bridges, both `--auto-failover`, asynchronous replication: a primary
/// killed under load is promoted once and both write there; then, the first
/// bridge SIGKILLed, the next primary killed: the second alone fails over.
#[test]
fn a_primary_killed_under_two_bridges_is_promoted_once_and_both_write_there() {
    let mut bridges = Bridges::start("bridges-failover", 23800, 19400, &[]);
    bridges.kill_primary_under_load();
    bridges.restart_old_primary();

    bridges.bridges[0].kill();
    bridges.kill_primary(&[(1, 2)]);
    bridges.restart_old_primary();
}

/// Two bridges, `--sync-replication`: one promotion, both write there, no
/// acknowledged insert lost. Then a bridge without `--auto-failover` beside
/// one with it: it follows the promotion the other made instead of
/// answering 503 for ever (before, its writes went to the old primary).
#[test]
fn a_bridge_without_auto_failover_follows_a_promotion_another_bridge_made() {
    let sync = ["--sync-replication"];
    let mut bridges = Bridges::start("bridges-failover-sync", 24000, 19500, &sync);
    bridges.kill_primary_under_load();
    bridges.restart_old_primary();

    bridges.bridges.pop().expect("the second bridge").stop();
    let manual = serve(&bridges.addrs[1], &bridges.args, false);
    bridges.bridges.push(manual);
    bridges.kill_primary(&[(0, 2), (1, 1)]);
    let follower = cluster_view(&bridges.addrs[1]).failover;
    assert!(!follower.auto);
    assert_eq!(
        follower.last.map(|last| last.to),
        Some(bridges.recorded_primary())
    );
    bridges.restart_old_primary();
}

/// A process that promoted a standby and died before recording it in
/// `cluster.json` (the promotion by hand here, the primary killed first):
/// the next failover takes that standby and records it, promoting no other
/// (before, it promoted the first standby with as much WAL: two primaries).
#[test]
fn a_failover_after_a_promotion_left_unrecorded_promotes_no_second_standby() {
    let cluster = common::start_cluster("unrecorded-promotion", 24200, false);
    let last = cluster.nodes().last().expect("a standby").name.clone();
    assert!(cluster.kill_node("primary").expect("killing the primary"));
    runtime().block_on(async {
        let client = connect(&cluster, &last, "postgres").await;
        let promoted = client.query_one("SELECT pg_promote(true)", &[]).await;
        assert!(promoted.expect("pg_promote").get::<_, bool>(0));
    });
    assert_eq!(cluster.recorded_primary_name().as_deref(), Some("primary"));
    let promotion = cluster.fail_over().expect("the failover");
    assert_eq!(promotion.to, last);
    assert_eq!(cluster.recorded_primary_name(), Some(last.clone()));
    assert_eq!(out_of_recovery(&cluster), [last]);
}

/// Two `ecoshard serve` over one cluster, which this process joins too (to
/// kill nodes and read PostgreSQL directly).
struct Bridges {
    /// The first (it started the cluster), the second (it joined it).
    bridges: Vec<Serve>,
    addrs: [String; 2],
    args: Vec<String>,
    cluster: Arc<LocalCluster>,
    /// The primary killed last, to start again as a standby.
    killed: Option<String>,
    _scratch: Scratch,
}

impl Bridges {
    fn start(name: &str, pg_base: u16, http_base: u16, extra: &[&str]) -> Bridges {
        let scratch = Scratch::new(name);
        let pg_port = free_ports(pg_base, 3);
        let http = free_ports(http_base, 2);
        let dir = scratch.dir.display().to_string();
        let mut args: Vec<String> = ["--data-dir", &dir, "--pg-port", &pg_port.to_string()]
            .iter()
            .map(ToString::to_string)
            .collect();
        args.extend(["--pool-size", "4"].map(String::from));
        args.extend(extra.iter().map(ToString::to_string));
        let addrs = [0, 1].map(|n| format!("127.0.0.1:{}", http + n));
        let first = serve(&addrs[0], &args, true);
        let second = serve(&addrs[1], &args, true);
        assert!(second.log().contains("joined"), "{}", second.log());
        let options = ClusterOptions::new(&scratch.dir, pg_port);
        let cluster = Arc::new(LocalCluster::start(&options).expect("joining the cluster"));
        assert!(cluster.joined());
        let bridges = Bridges {
            bridges: vec![first, second],
            addrs,
            args,
            cluster,
            killed: None,
            _scratch: scratch,
        };
        bridges.wait_all_streaming();
        bridges
    }

    /// The primary `cluster.json` names now.
    fn recorded_primary(&self) -> String {
        self.cluster
            .recorded_primary_name()
            .expect("cluster.json names a primary")
    }

    /// Kills the primary while each bridge inserts and reads; once the
    /// promotion is seen (and both write there), the load stops. With
    /// `--sync-replication` no acknowledged insert is lost; none is stored
    /// twice either way.
    fn kill_primary_under_load(&mut self) {
        let stop = Arc::new(AtomicBool::new(false));
        let loads: Vec<JoinHandle<Vec<String>>> = self
            .addrs
            .iter()
            .map(|addr| load(addr.clone(), Arc::clone(&stop)))
            .collect();
        std::thread::sleep(Duration::from_millis(500));
        self.kill_primary(&[(0, 1), (1, 1)]);
        stop.store(true, Ordering::SeqCst);
        let acknowledged: Vec<String> = loads
            .into_iter()
            .flat_map(|load| load.join().expect("the load thread"))
            .collect();
        assert!(!acknowledged.is_empty());
        let primary = self.recorded_primary();
        let stored = runtime().block_on(async {
            let client = connect(&self.cluster, &primary, "ecomarket").await;
            rows::snapshot(&client, "").await.shards_of
        });
        let sync = self.args.iter().any(|arg| arg == "--sync-replication");
        for id in &acknowledged {
            let copies = stored.get(id).map_or(0, Vec::len);
            assert!(copies <= 1, "{id} stored {copies} times");
            assert!(copies == 1 || !sync, "{id} acknowledged and lost");
        }
    }

    /// SIGKILLs the primary; then exactly one standby is promoted (the only
    /// node out of recovery, on the next timeline, named in `cluster.json`),
    /// and each bridge in `live` (its index, failovers it has followed since
    /// it started) writes to it, reads back from it, and counts one more.
    fn kill_primary(&mut self, live: &[(usize, u64)]) {
        let old = self.recorded_primary();
        let old_timeline = self.timeline(&old);
        assert!(self.cluster.kill_node(&old).expect("killing the primary"));
        self.killed = Some(old.clone());
        let promoted = eventually_some(WITHIN, || {
            let now = self.cluster.recorded_primary_name()?;
            (now != old).then_some(now)
        })
        .expect("a standby promoted");
        for &(index, failovers) in live {
            self.writes_land_on(index, &promoted);
            assert_eq!(self.failovers(index), failovers, "bridge {index}");
        }
        assert_eq!(self.out_of_recovery(), std::slice::from_ref(&promoted));
        assert_eq!(self.timeline(&promoted), old_timeline + 1);
        assert_eq!(self.recorded_primary(), promoted);
    }

    /// An insert through bridge `index` lands on `primary` (once the bridge
    /// takes writes again), and reads with `strong` and read-your-writes
    /// through it find it.
    fn writes_land_on(&self, index: usize, primary: &str) {
        let addr = &self.addrs[index];
        let id = format!("after-{}-{index}", self.timeline(primary));
        let body = format!(r#"{{"user_id":"{id}"}}"#);
        let inserted: InsertResult = eventually_some(WITHIN, || {
            let (status, body) = http(addr, "POST", "/api/users", Some(&body))?;
            // 201, or 200: a repeat of one whose answer was lost.
            matches!(status, 200 | 201)
                .then(|| serde_json::from_str(&body).expect("an insert's JSON"))
        })
        .unwrap_or_else(|| panic!("bridge {index} never wrote after the failover"));
        assert_eq!(inserted.served_by, primary, "bridge {index}");
        assert_eq!(primary_of(&cluster_view(addr)), primary, "bridge {index}");
        let paths = [
            format!("/api/users/{id}?consistency=strong"),
            format!(
                "/api/users/{id}?consistency=read-your-writes&lsn={}",
                inserted.lsn
            ),
        ];
        for path in paths {
            let (status, body) = http(addr, "GET", &path, None).expect("an answer");
            assert_eq!(status, 200, "{path} on bridge {index}: {body}");
            let read: ReadResult = serde_json::from_str(&body).expect("a read's JSON");
            assert_eq!(read.user.user_id, id);
        }
    }

    /// Starts the primary killed last again through a bridge that runs: it
    /// comes back as a standby of the primary now, and streams.
    fn restart_old_primary(&mut self) {
        let old = self.killed.take().expect("a primary killed");
        let addr = self.live_addr();
        let path = format!("/api/nodes/{old}/start");
        let (status, body) = http(&addr, "POST", &path, None).expect("an answer");
        assert_eq!(status, 200, "{body}");
        assert_ne!(self.recorded_primary(), old);
        assert_eq!(self.out_of_recovery(), [self.recorded_primary()]);
        self.wait_all_streaming();
    }

    fn wait_all_streaming(&self) {
        let addr = self.live_addr();
        assert!(
            eventually(WITHIN, || all_streaming(&cluster_view(&addr))),
            "{:?}",
            cluster_view(&addr)
        );
    }

    /// A bridge that answers.
    fn live_addr(&self) -> String {
        self.addrs
            .iter()
            .find(|addr| http(addr, "GET", "/api/health", None).is_some())
            .expect("a bridge that answers")
            .clone()
    }

    /// `ecoshard_failovers_total` of bridge `index`.
    fn failovers(&self, index: usize) -> u64 {
        let (status, text) = http(&self.addrs[index], "GET", "/metrics", None).expect("metrics");
        assert_eq!(status, 200, "{text}");
        text.lines()
            .find_map(|line| line.strip_prefix("ecoshard_failovers_total "))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or_else(|| panic!("no ecoshard_failovers_total in {text}"))
    }

    /// The running nodes that are not in recovery.
    fn out_of_recovery(&self) -> Vec<String> {
        out_of_recovery(&self.cluster)
    }

    /// The timeline a primary writes on.
    fn timeline(&self, primary: &str) -> u32 {
        runtime().block_on(async {
            let client = connect(&self.cluster, primary, "postgres").await;
            let sql = "SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)";
            let row = client.query_one(sql, &[]).await.expect("the timeline");
            u32::from_str_radix(row.get::<_, &str>(0), 16).expect("a hexadecimal timeline")
        })
    }
}

/// The running nodes of `cluster` that are not in recovery.
fn out_of_recovery(cluster: &LocalCluster) -> Vec<String> {
    runtime().block_on(async {
        let mut primaries = Vec::new();
        for node in cluster.nodes() {
            if !cluster.is_node_running(&node.name).unwrap_or(false) {
                continue;
            }
            let client = connect(cluster, &node.name, "postgres").await;
            let row = client.query_one("SELECT pg_is_in_recovery()", &[]).await;
            if !row.expect("pg_is_in_recovery").get::<_, bool>(0) {
                primaries.push(node.name);
            }
        }
        primaries
    })
}

/// Inserts new ids through `addr`, each read back (`strong`), until `stop`:
/// the ids whose insert answered 200.
fn load(addr: String, stop: Arc<AtomicBool>) -> JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut acknowledged = Vec::new();
        for n in 0.. {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let id = format!("load-{}-{n}", addr.rsplit(':').next().unwrap_or(""));
            let body = format!(r#"{{"user_id":"{id}"}}"#);
            let answer = http(&addr, "POST", "/api/users", Some(&body));
            if answer.is_some_and(|(status, _)| status == 201) {
                acknowledged.push(id.clone());
                let _ = http(
                    &addr,
                    "GET",
                    &format!("/api/users/{id}?consistency=strong"),
                    None,
                );
            } else {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        acknowledged
    })
}

/// `ecoshard serve` on `addr` with `args`, and `--auto-failover` or not.
fn serve(addr: &str, args: &[String], auto_failover: bool) -> Serve {
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    if auto_failover {
        args.push("--auto-failover");
    }
    Serve::start(addr, &args)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("a runtime")
}
