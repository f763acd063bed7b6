//! The bridge's load generator, in one run: single-row inserts and reads by
//! id through the bridge (HTTP) and sent directly with tokio-postgres
//! (throughput, p50, p99), reads through the bridge while one standby is
//! hung (its processes SIGSTOPped: what a hung standby costs a read, beside
//! the same reads without), pgbench on the same tables for reference, and
//! replication lag (time until an acknowledged row is visible on each
//! standby) under a steady insert rate.
//!
//! `cargo bench -p ecoshard-bridge --bench bridge`; settings from the
//! environment: ECOSHARD_BENCH_SECS (per phase, 10), ECOSHARD_BENCH_CLIENTS
//! (8), ECOSHARD_BENCH_LAG_RATE (inserts/s, 200), ECOSHARD_BENCH_LAG_SECS (10),
//! ECOSHARD_BENCH_BIN (the `ecoshard` binary to measure: another build's, to
//! compare builds in one sitting; default this build's),
//! ECOSHARD_BENCH_SHARDS (ring over this many shards, 3),
//! ECOSHARD_BENCH_CLUSTERS (local clusters, 1; a list such as `1,2,1,2`
//! runs the inserts and reads against each in turn, each with its own
//! `ecoshard serve --clusters N` and direct baseline, and prints them side
//! by side; the hung standby, pgbench and lag phases then do not run),
//! ECOSHARD_BENCH_BRIDGES (a list such as `1,2`: inserts and reads through
//! NGINX in front of that many bridges over one local cluster, the first
//! starting it and the others joining it, beside the first bridge alone and
//! the direct baseline, side by side; only those phases run).
//! It starts `ecoshard serve` with its own local clusters in a temporary
//! directory and stops it at the end.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ecoshard_core::{Layout, Router, StrategyKind};
use tokio::sync::Mutex;
use tokio_postgres::{Client, Statement};

#[path = "../tests/common/blocking.rs"]
mod blocking;
#[path = "support/http.rs"]
mod client;
#[path = "../tests/common/direct.rs"]
mod direct;

#[path = "../tests/common/balancer.rs"]
mod balancer;

use blocking::{Frozen, Serve, all_streaming, free_ports, setting};
use client::{http, http_connect};
use direct::connect;

/// A request through the bridge with no answer by then counts as an error
/// (a bridge without read deadlines can hang a read on a hung standby).
const NO_ANSWER: Duration = Duration::from_secs(15);

fn main() {
    let settings = Settings {
        secs: setting("ECOSHARD_BENCH_SECS", 10),
        clients: setting("ECOSHARD_BENCH_CLIENTS", 8) as usize,
        shards: setting("ECOSHARD_BENCH_SHARDS", 3),
        lag_rate: setting("ECOSHARD_BENCH_LAG_RATE", 200),
        lag_secs: setting("ECOSHARD_BENCH_LAG_SECS", 10),
    };
    let counts: Vec<u16> = std::env::var("ECOSHARD_BENCH_CLUSTERS")
        .unwrap_or_else(|_| "1".into())
        .split(',')
        .filter_map(|count| count.trim().parse().ok())
        .filter(|count| *count >= 1)
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if let Ok(bridges) = std::env::var("ECOSHARD_BENCH_BRIDGES") {
        let bridges: Vec<usize> = bridges
            .split(',')
            .filter_map(|count| count.trim().parse().ok())
            .filter(|count| *count >= 1)
            .collect();
        return balanced(&bridges, &settings, &runtime);
    }
    let mut rows = Vec::new();
    for clusters in &counts {
        let pg_port = free_ports(27400, 10 * (clusters - 1) + 3);
        let http_port = free_ports(28400, 1);
        let data_dir =
            std::env::temp_dir().join(format!("ecoshard-bench-{}-{clusters}", std::process::id()));
        let addr = format!("127.0.0.1:{http_port}");
        let mut bridge = start_bridge(&addr, pg_port, &data_dir, *clusters, &settings);
        bridge.data_dir = Some(data_dir.clone());
        let deployment = Deployment {
            addr,
            pg_port,
            data_dir,
            clusters: *clusters,
        };
        let extras = counts.len() == 1;
        rows.push(runtime.block_on(run(&deployment, &settings, extras)));
        drop(bridge);
    }
    if counts.len() > 1 {
        print_clusters_side_by_side(&rows);
    }
}

/// What every phase of the run is given.
struct Settings {
    secs: u64,
    clients: usize,
    shards: u64,
    lag_rate: u64,
    lag_secs: u64,
}

/// One `ecoshard serve` and its local clusters: `c1` on ports `pg_port` …
/// (primary, standby-1, standby-2), `c2` 10 ports on, and so on.
struct Deployment {
    addr: String,
    pg_port: u16,
    data_dir: PathBuf,
    clusters: u16,
}

impl Deployment {
    /// The names of its clusters, `c1` first.
    fn cluster_names(&self) -> Vec<String> {
        (1..=self.clusters).map(|n| format!("c{n}")).collect()
    }

    /// The first port of cluster `index` (0 for `c1`): its primary's.
    fn port(&self, index: usize) -> u16 {
        self.pg_port + 10 * index as u16
    }

    /// The `ecoshard` role's password on cluster `index`, from its passfile.
    fn password(&self, index: usize) -> String {
        let dir = match index {
            0 => self.data_dir.clone(),
            _ => self.data_dir.join(format!("c{}", index + 1)),
        };
        std::fs::read_to_string(dir.join("pgpass"))
            .ok()
            .and_then(|text| ecoshard_postgres::pgpass::lookup(&text, "ecoshard"))
            .expect("the cluster's passfile")
    }
}

/// `ecoshard serve` over `clusters` local clusters, ring over the shards
/// (placed round-robin over the clusters).
fn start_bridge(
    addr: &str,
    pg_port: u16,
    data_dir: &Path,
    clusters: u16,
    settings: &Settings,
) -> Serve {
    let (pg_port, shards, pool_size, data_dir, clusters) = (
        pg_port.to_string(),
        settings.shards.to_string(),
        (settings.clients * 2).to_string(),
        data_dir.display().to_string(),
        clusters.to_string(),
    );
    let mut args = vec![
        "--pg-port",
        &pg_port,
        "--strategy",
        "ring",
        "--shards",
        &shards,
        "--pool-size",
        &pool_size,
        "--data-dir",
        &data_dir,
    ];
    // (only when several: a build from before clusters has no such option)
    if clusters != "1" {
        args.extend(["--clusters", &clusters]);
    }
    Serve::start_with(addr, &args, |command| {
        command.stderr(Stdio::inherit());
    })
}

/// One deployment's throughput: bridge and direct, inserts and reads.
struct Throughput {
    clusters: u16,
    bridge_insert: f64,
    direct_insert: f64,
    bridge_read: f64,
    direct_read: f64,
}

/// With several cluster counts: each one's rates and ratios in one table.
fn print_clusters_side_by_side(rows: &[Throughput]) {
    println!();
    println!(
        "| clusters | inserts/s bridge | direct | bridge ÷ direct | reads/s bridge | direct | bridge ÷ direct |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        println!(
            "| {} | {:.0} | {:.0} | {:.0} % | {:.0} | {:.0} | {:.0} % |",
            row.clusters,
            row.bridge_insert,
            row.direct_insert,
            100.0 * row.bridge_insert / row.direct_insert,
            row.bridge_read,
            row.direct_read,
            100.0 * row.bridge_read / row.direct_read
        );
    }
}

/// Inserts and reads through NGINX in front of each count of `bridges`
/// over one local cluster (the first bridge starts it, the others join),
/// beside the first bridge alone and sent directly; printed side by side.
fn balanced(bridges: &[usize], settings: &Settings, runtime: &tokio::runtime::Runtime) {
    let most = bridges.iter().copied().max().unwrap_or(1);
    let pg_port = free_ports(27400, 3);
    let http_port = free_ports(28400, most as u16 + 1);
    let data_dir = std::env::temp_dir().join(format!("ecoshard-bench-lb-{}", std::process::id()));
    let addrs: Vec<String> = (1..=most)
        .map(|n| format!("127.0.0.1:{}", http_port + n as u16))
        .collect();
    let mut serves: Vec<Serve> = addrs
        .iter()
        .map(|addr| start_bridge(addr, pg_port, &data_dir, 1, settings))
        .collect();
    serves[0].data_dir = Some(data_dir.clone());
    let deployment = Deployment {
        addr: addrs[0].clone(),
        pg_port,
        data_dir,
        clusters: 1,
    };
    let lb = format!("127.0.0.1:{http_port}");
    let rows = runtime.block_on(balanced_rows(&deployment, &addrs, &lb, bridges, settings));
    // The bridges that joined first: the first one's servers stop after them.
    while let Some(serve) = serves.pop() {
        drop(serve);
    }
    println!(
        "\n{} clients, {} s per phase, ring over {} shards, 1 cluster, {} cores",
        settings.clients,
        settings.secs,
        settings.shards,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| through | inserts/s | reads/s |\n|---|---:|---:|");
    for (through, insert, read) in rows {
        println!("| {through} | {insert:.0} | {read:.0} |");
    }
}

/// The rows of [`balanced`]: what the requests went through, inserts and
/// reads per second.
async fn balanced_rows(
    deployment: &Deployment,
    addrs: &[String],
    lb: &str,
    bridges: &[usize],
    settings: &Settings,
) -> Vec<(String, f64, f64)> {
    let (clients, duration) = (settings.clients, Duration::from_secs(settings.secs));
    let router = Layout::with_count(StrategyKind::Ring, settings.shards)
        .unwrap()
        .build()
        .unwrap();
    for addr in addrs {
        wait_ready(addr).await;
    }
    // The direct reads read the rows the bridge inserted.
    let insert = bridge_phase(&addrs[0], clients, duration, Op::Insert, Vec::new()).await;
    let read = bridge_phase(&addrs[0], clients, duration, Op::Read, insert.ids.clone()).await;
    let bridge = (insert.ops_per_sec(), read.ops_per_sec());
    let direct = direct_phase(deployment, &router, clients, duration, Op::Insert, vec![]).await;
    let read = direct_phase(deployment, &router, clients, duration, Op::Read, insert.ids).await;
    let mut rows = vec![
        (
            "direct (tokio-postgres)".to_string(),
            direct.ops_per_sec(),
            read.ops_per_sec(),
        ),
        ("1 bridge, no NGINX".to_string(), bridge.0, bridge.1),
    ];
    for count in bridges {
        let balancer = balancer::Balancer::start(lb, &addrs[..*count]);
        let (insert, read) = insert_then_read(lb, clients, duration).await;
        rows.push((format!("NGINX + {count} bridge(s)"), insert, read));
        drop(balancer);
    }
    rows
}

/// Inserts, then reads of the rows inserted, through `addr`: their rates.
async fn insert_then_read(addr: &str, clients: usize, duration: Duration) -> (f64, f64) {
    let insert = bridge_phase(addr, clients, duration, Op::Insert, Vec::new()).await;
    let read = bridge_phase(addr, clients, duration, Op::Read, insert.ids.clone()).await;
    (insert.ops_per_sec(), read.ops_per_sec())
}

/// The phases against one deployment; `extras` adds the hung standby,
/// pgbench and the replication lag (all on `c1`).
async fn run(deployment: &Deployment, settings: &Settings, extras: bool) -> Throughput {
    let addr = deployment.addr.as_str();
    let clients = settings.clients;
    wait_ready(addr).await;
    let names = deployment.cluster_names();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let router = Layout::with_count(StrategyKind::Ring, settings.shards)
        .and_then(|layout| layout.placed(&names))
        .unwrap()
        .build()
        .unwrap();
    let duration = Duration::from_secs(settings.secs);
    println!(
        "bridge benchmark: {clients} clients, {} s per phase, ring over {} shards on {} cluster(s), loopback, {} cores",
        settings.secs,
        settings.shards,
        deployment.clusters,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let bridge_insert = bridge_phase(addr, clients, duration, Op::Insert, Vec::new()).await;
    let direct_insert = direct_phase(
        deployment,
        &router,
        clients,
        duration,
        Op::Insert,
        Vec::new(),
    )
    .await;
    let ids: Arc<Vec<String>> = Arc::new(bridge_insert.ids.clone());
    let bridge_read = bridge_phase(addr, clients, duration, Op::Read, ids.to_vec()).await;
    // The HTTP hop alone: the bridge's ceiling for any request, whatever the
    // database costs.
    let bridge_health = bridge_phase(addr, clients, duration, Op::Health, Vec::new()).await;
    let direct_read = direct_phase(
        deployment,
        &router,
        clients,
        duration,
        Op::Read,
        ids.to_vec(),
    )
    .await;
    print_phases(&[
        &bridge_insert,
        &direct_insert,
        &bridge_read,
        &direct_read,
        &bridge_health,
    ]);
    if extras {
        let (data_dir, pg_port) = (deployment.data_dir.as_path(), deployment.pg_port);
        hung_standby_phase(addr, data_dir, clients, duration, &ids, &bridge_read).await;
        pgbench(data_dir, pg_port, clients, settings.secs);
        lag_phase(
            pg_port,
            &deployment.password(0),
            &router,
            settings.lag_rate,
            Duration::from_secs(settings.lag_secs),
        )
        .await;
    }
    Throughput {
        clusters: deployment.clusters,
        bridge_insert: bridge_insert.ops_per_sec(),
        direct_insert: direct_insert.ops_per_sec(),
        bridge_read: bridge_read.ops_per_sec(),
        direct_read: direct_read.ops_per_sec(),
    }
}

/// The table of the main phases: bridge insert, direct insert, bridge
/// read, direct read, the health check; and the ratios.
fn print_phases(phases: &[&Outcome; 5]) {
    let [
        bridge_insert,
        direct_insert,
        bridge_read,
        direct_read,
        bridge_health,
    ] = *phases;
    println!();
    println!("| operation | path | ops/s | p50 ms | p99 ms | errors |");
    println!("|---|---|---:|---:|---:|---:|");
    for (name, path, result) in [
        ("insert one", "bridge (HTTP)", bridge_insert),
        ("insert one", "direct tokio-postgres", direct_insert),
        ("read by id", "bridge (HTTP, eventual)", bridge_read),
        (
            "read by id",
            "direct tokio-postgres (standbys)",
            direct_read,
        ),
        (
            "GET /api/health",
            "bridge (HTTP alone, no database)",
            bridge_health,
        ),
    ] {
        println!(
            "| {name} | {path} | {:.0} | {:.2} | {:.2} | {} |",
            result.ops_per_sec(),
            result.percentile(50.0),
            result.percentile(99.0),
            result.errors
        );
    }
    println!();
    println!(
        "bridge / direct throughput: insert {:.0} %, read {:.0} %",
        100.0 * bridge_insert.ops_per_sec() / direct_insert.ops_per_sec(),
        100.0 * bridge_read.ops_per_sec() / direct_read.ops_per_sec()
    );
    println!(
        "the HTTP hop alone answers {:.0} % of the direct read rate",
        100.0 * bridge_health.ops_per_sec() / direct_read.ops_per_sec()
    );
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Insert,
    Read,
    Health,
}

#[derive(Default)]
struct Outcome {
    latencies_us: Vec<u64>,
    errors: u64,
    elapsed: Duration,
    ids: Vec<String>,
}

impl Outcome {
    fn merge(&mut self, other: Outcome) {
        self.latencies_us.extend(other.latencies_us);
        self.errors += other.errors;
        self.ids.extend(other.ids);
        self.elapsed = self.elapsed.max(other.elapsed);
    }

    fn ops_per_sec(&self) -> f64 {
        self.latencies_us.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> f64 {
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        if sorted.is_empty() {
            return f64::NAN;
        }
        let index = ((sorted.len() - 1) as f64 * p / 100.0).round() as usize;
        sorted[index] as f64 / 1_000.0
    }
}

async fn wait_ready(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Ok(mut sender) = http_connect(addr).await
            && let Ok((200, body)) = http(&mut sender, "GET", "/api/cluster", None).await
        {
            let view: ecoshard_core::wire::ClusterView = serde_json::from_slice(&body).unwrap();
            if all_streaming(&view) {
                tokio::time::sleep(Duration::from_millis(600)).await;
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the bridge did not become ready");
}

async fn bridge_phase(
    addr: &str,
    clients: usize,
    duration: Duration,
    op: Op,
    ids: Vec<String>,
) -> Outcome {
    // Each phase inserts ids of its own, so phases can follow one another
    // over one database.
    static PHASES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let phase = PHASES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let ids = Arc::new(ids);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..clients {
        let addr = addr.to_string();
        let ids = Arc::clone(&ids);
        tasks.push(tokio::spawn(async move {
            let mut sender = http_connect(&addr).await.expect("connect to the bridge");
            let mut outcome = Outcome::default();
            let mut n = 0usize;
            while started.elapsed() < duration {
                let begin = Instant::now();
                let (path, method, body, id) = match op {
                    Op::Insert => {
                        let id = format!("hb{phase}_{worker}_{n}");
                        let body = format!(r#"{{"user_id":"{id}"}}"#);
                        ("/api/users".to_owned(), "POST", Some(body), Some(id))
                    }
                    Op::Read => {
                        let id = &ids[(worker * 7919 + n * 104_729) % ids.len()];
                        (format!("/api/users/{id}"), "GET", None, None)
                    }
                    Op::Health => ("/api/health".to_owned(), "GET", None, None),
                };
                let expected = if op == Op::Insert { 201 } else { 200 };
                let answer =
                    tokio::time::timeout(NO_ANSWER, http(&mut sender, method, &path, body)).await;
                let ok = matches!(answer, Ok(Ok((status, _))) if status == expected);
                if !matches!(answer, Ok(Ok(_))) {
                    // No answer in time (the connection's state is unknown),
                    // or the connection ended (NGINX closes a client's
                    // connection after 1,000 requests): a new one.
                    sender = http_connect(&addr).await.expect("connect to the bridge");
                }
                if ok {
                    outcome
                        .latencies_us
                        .push(begin.elapsed().as_micros() as u64);
                    outcome.ids.extend(id);
                } else {
                    outcome.errors += 1;
                }
                n += 1;
            }
            outcome.elapsed = started.elapsed();
            outcome
        }));
    }
    let mut total = Outcome::default();
    for task in tasks {
        total.merge(task.await.expect("worker"));
    }
    total
}

/// The same operations without the bridge: the core picks the shard and
/// its cluster, the insert goes to that cluster's primary, reads alternate
/// over its two standbys; each client has a connection to every cluster.
async fn direct_phase(
    deployment: &Deployment,
    router: &Router,
    clients: usize,
    duration: Duration,
    op: Op,
    ids: Vec<String>,
) -> Outcome {
    assert!(
        op != Op::Health,
        "the health check has no direct counterpart"
    );
    let ids = Arc::new(ids);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..clients {
        let mut connections = Vec::new();
        for index in 0..deployment.clusters as usize {
            let port = match op {
                Op::Insert => deployment.port(index),
                Op::Read | Op::Health => deployment.port(index) + 1 + (worker % 2) as u16,
            };
            connections.push(connect(port, &deployment.password(index)).await);
        }
        let router = router.clone();
        let ids = Arc::clone(&ids);
        tasks.push(tokio::spawn(async move {
            let statements = prepare_per_shard(&connections, &router, op).await;
            let mut outcome = Outcome::default();
            let mut n = 0usize;
            while started.elapsed() < duration {
                let begin = Instant::now();
                let ok = match op {
                    Op::Insert => {
                        let id = format!("hd{worker}_{n}");
                        let email = format!("{id}@ecomarket.example");
                        let (client, statement) = &statements[router.locate(id.as_bytes())];
                        client.execute(statement, &[&id, &id, &email]).await.is_ok()
                    }
                    Op::Read | Op::Health => {
                        let id = &ids[(worker * 7919 + n * 104_729) % ids.len()];
                        let (client, statement) = &statements[router.locate(id.as_bytes())];
                        matches!(client.query_opt(statement, &[id]).await, Ok(Some(_)))
                    }
                };
                if ok {
                    outcome
                        .latencies_us
                        .push(begin.elapsed().as_micros() as u64);
                } else {
                    outcome.errors += 1;
                }
                n += 1;
            }
            outcome.elapsed = started.elapsed();
            outcome
        }));
    }
    let mut total = Outcome::default();
    for task in tasks {
        total.merge(task.await.expect("worker"));
    }
    total
}

/// Each shard's statement for `op`, prepared on the connection to its
/// cluster (`connections[k]` is `c{k+1}`'s), in the router's shard order.
async fn prepare_per_shard<'c>(
    connections: &'c [Client],
    router: &Router,
    op: Op,
) -> Vec<(&'c Client, Statement)> {
    let mut statements = Vec::new();
    for shard in router.shards() {
        let sql = match op {
            Op::Insert => format!(
                "INSERT INTO \"shard_{}\".users (user_id, name, email) VALUES ($1, $2, $3)",
                shard.name
            ),
            Op::Read | Op::Health => format!(
                "SELECT user_id, name, email, created_at::text FROM \"shard_{}\".users WHERE user_id = $1",
                shard.name
            ),
        };
        let cluster = shard
            .cluster
            .as_deref()
            .and_then(|name| name.strip_prefix('c')?.parse::<usize>().ok())
            .map_or(0, |number| number - 1);
        let client = &connections[cluster];
        statements.push((client, client.prepare(&sql).await.expect("prepare")));
    }
    statements
}

/// Reads through the bridge for `duration` while standby-1 is hung (every
/// process of its server SIGSTOPped from the phase's start to its end),
/// beside `steady`, the same reads with every node answering; then waits
/// until standby-1 streams again.
async fn hung_standby_phase(
    addr: &str,
    data_dir: &Path,
    clients: usize,
    duration: Duration,
    ids: &[String],
    steady: &Outcome,
) {
    let frozen = Frozen::stop(&data_dir.join("standby-1"));
    let hung = bridge_phase(addr, clients, duration, Op::Read, ids.to_vec()).await;
    drop(frozen);
    let slowest = |outcome: &Outcome| outcome.latencies_us.iter().max().map_or(0, |max| *max);
    let over = |outcome: &Outcome, ms: u64| {
        outcome
            .latencies_us
            .iter()
            .filter(|latency| **latency >= ms * 1_000)
            .count()
    };
    println!();
    println!(
        "reads by id through the bridge (eventual), {clients} clients, {} s: every node up, and standby-1 hung (SIGSTOP) for the whole phase:",
        duration.as_secs()
    );
    println!("| standby-1 | reads/s | p50 ms | p99 ms | max ms | reads ≥ 500 ms | errors |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (name, outcome) in [("answering", steady), ("hung", &hung)] {
        println!(
            "| {name} | {:.0} | {:.2} | {:.2} | {:.1} | {} | {} |",
            outcome.ops_per_sec(),
            outcome.percentile(50.0),
            outcome.percentile(99.0),
            slowest(outcome) as f64 / 1_000.0,
            over(outcome, 500),
            outcome.errors
        );
    }
    wait_ready(addr).await;
}

/// pgbench on the same tables, for reference: inserts on the primary, reads
/// by id on a standby.
fn pgbench(data_dir: &Path, pg_port: u16, clients: usize, secs: u64) {
    let bindir = ecoshard_postgres::PgBinaries::find(None)
        .expect("PostgreSQL binaries")
        .bindir;
    let scripts = data_dir.join("bench-scripts");
    let _ = std::fs::create_dir_all(&scripts);
    let insert = scripts.join("insert.sql");
    let read = scripts.join("read.sql");
    std::fs::write(
        &insert,
        "\\set n random(1, 1000000000)\n\
         INSERT INTO shard_s0.users (user_id, name, email) VALUES ('pgb' || :client_id || '_' || :n, 'x', 'x@ecomarket.example') ON CONFLICT DO NOTHING;\n",
    )
    .unwrap();
    std::fs::write(
        &read,
        "\\set n random(0, 9999)\n\
         SELECT user_id, name, email, created_at FROM shard_s0.users WHERE user_id = 'hb0_' || :n;\n",
    )
    .unwrap();
    println!();
    println!("pgbench (reference, -M prepared, {clients} clients, {secs} s):");
    for (name, script, port) in [
        ("insert one (primary)", &insert, pg_port),
        ("read by id (standby-1)", &read, pg_port + 1),
    ] {
        let output = Command::new(bindir.join("pgbench"))
            .args([
                "-n",
                "-M",
                "prepared",
                "-h",
                "127.0.0.1",
                "-U",
                "ecoshard",
                "-d",
                "ecomarket",
            ])
            .args([
                "-p",
                &port.to_string(),
                "-c",
                &clients.to_string(),
                "-j",
                "2",
            ])
            .args(["-T", &secs.to_string(), "-f"])
            .arg(script)
            .env("PGPASSFILE", data_dir.join("pgpass"))
            .output()
            .expect("run pgbench");
        let text = String::from_utf8_lossy(&output.stdout);
        let find = |prefix: &str| {
            text.lines()
                .find_map(|line| line.trim().strip_prefix(prefix))
                .map(|rest| rest.split_whitespace().next().unwrap_or("?").to_string())
                .unwrap_or_else(|| "?".into())
        };
        if output.status.success() {
            println!(
                "  {name}: {} tps, latency average {} ms",
                find("tps = "),
                find("latency average = ")
            );
        } else {
            println!(
                "  {name}: pgbench failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
    }
}

/// Steady inserts on the primary; per standby, the time from the insert's
/// acknowledgement until the row is visible there (polled every ms).
async fn lag_phase(pg_port: u16, password: &str, router: &Router, rate: u64, duration: Duration) {
    let primary = connect(pg_port, password).await;
    let shard = &router.shards()[0].name;
    let insert = primary
        .prepare(&format!(
            "INSERT INTO \"shard_{shard}\".users (user_id, name, email) VALUES ($1, $1, 'lag@ecomarket.example')"
        ))
        .await
        .unwrap();
    let mut watchers = Vec::new();
    let mut queues = Vec::new();
    for standby in 1..=2u16 {
        let client = connect(pg_port + standby, password).await;
        let pending: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        queues.push(Arc::clone(&pending));
        let select = client
            .prepare(&format!(
                "SELECT user_id FROM \"shard_{shard}\".users WHERE user_id = ANY($1)"
            ))
            .await
            .unwrap();
        let stop_at = Instant::now() + duration + Duration::from_secs(2);
        watchers.push(tokio::spawn(async move {
            let mut lags_us = Vec::new();
            while Instant::now() < stop_at {
                let ids: Vec<String> = pending.lock().await.keys().cloned().collect();
                if !ids.is_empty() {
                    let rows = client.query(&select, &[&ids]).await.unwrap_or_default();
                    let now = Instant::now();
                    let mut pending = pending.lock().await;
                    for row in rows {
                        let id: String = row.get(0);
                        if let Some(acked) = pending.remove(&id) {
                            lags_us.push(now.duration_since(acked).as_micros() as u64);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let missing = pending.lock().await.len();
            (lags_us, missing)
        }));
    }
    // Keys that the ring places on the first shard, so one query per poll suffices.
    let keys: Vec<String> = (0..)
        .map(|n| format!("lag_{n}"))
        .filter(|key| router.locate(key.as_bytes()) == 0)
        .take((rate * duration.as_secs()) as usize)
        .collect();
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for key in &keys {
        ticker.tick().await;
        if primary.execute(&insert, &[key]).await.is_ok() {
            let acked = Instant::now();
            for queue in &queues {
                queue.lock().await.insert(key.clone(), acked);
            }
        }
    }
    println!();
    println!(
        "replication lag under {rate} inserts/s for {} s (ack on primary → row visible on the standby, 1 ms polling):",
        duration.as_secs()
    );
    for (index, watcher) in watchers.into_iter().enumerate() {
        let (mut lags, missing) = watcher.await.unwrap();
        lags.sort_unstable();
        let pick = |p: f64| {
            if lags.is_empty() {
                f64::NAN
            } else {
                lags[((lags.len() - 1) as f64 * p / 100.0).round() as usize] as f64 / 1_000.0
            }
        };
        println!(
            "  standby-{}: {} rows, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, never seen {missing}",
            index + 1,
            lags.len(),
            pick(50.0),
            pick(99.0),
            pick(100.0)
        );
    }
}
