//! Several bridges behind a real load balancer (NGINX), as `cargo xtask demo
//! --bridges 2` runs them: one local cluster, a first `ecoshard serve` that
//! starts it and a second that joins it, NGINX in front. The original
//! suite's six checks through the load balancer, requests reaching both
//! bridges (each answer names its bridge in `X-Ecoshard-Bridge`), the event
//! stream arriving unbuffered, and a bridge killed under load.

mod common;
mod rows;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Write as _};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::balancer::{Balancer, Reply, call};
use common::blocking::{Scratch, Serve, all_streaming, eventually, free_ports};
use common::{LIMIT, connect};
use ecoshard_bridge::{ClusterOptions, LocalCluster};
use ecoshard_core::wire::{BulkResult, ClusterView, InsertResult, ReadResult, Tick};
use ecoshard_core::{Layout, StrategyKind};

/// Two bridges over one cluster, NGINX in front, and the cluster joined by
/// this process too (to read PostgreSQL directly). Dropped in order: NGINX,
/// the joined bridge, the first, this process's hold on the cluster (the
/// first bridge's watchdog then stops its servers), the data directory.
struct Balanced {
    balancer: Balancer,
    _joined: Serve,
    first: Serve,
    cluster: Arc<LocalCluster>,
    _scratch: Scratch,
    /// The bridges' addresses: the first's, the joined one's.
    addrs: [String; 2],
}

impl Balanced {
    fn start(name: &str, pg_base: u16, http_base: u16, args: &[&str]) -> Balanced {
        let scratch = Scratch::new(name);
        let pg_port = free_ports(pg_base, 3);
        let http = free_ports(http_base, 3);
        let addrs = [1, 2].map(|n| format!("127.0.0.1:{}", http + n));
        let dir = scratch.dir.display().to_string();
        let port = pg_port.to_string();
        let mut all = vec!["--data-dir", &dir, "--pg-port", &port, "--pool-size", "4"];
        all.extend(args);
        // Each bridge named by its address: the name X-Ecoshard-Bridge carries.
        let first = Serve::start(
            &addrs[0],
            &[all.as_slice(), &["--name", &addrs[0]]].concat(),
        );
        let joined = Serve::start(
            &addrs[1],
            &[all.as_slice(), &["--name", &addrs[1]]].concat(),
        );
        assert!(joined.log().contains("joined"), "{}", joined.log());
        assert!(!first.log().contains("joined"), "{}", first.log());
        let cluster = Arc::new(
            LocalCluster::start(&ClusterOptions::new(&scratch.dir, pg_port))
                .expect("joining the cluster from the test"),
        );
        assert!(cluster.joined());
        let balancer = Balancer::start(&format!("127.0.0.1:{http}"), &addrs);
        Balanced {
            balancer,
            _joined: joined,
            first,
            cluster,
            _scratch: scratch,
            addrs,
        }
    }

    fn lb(&self) -> &str {
        &self.balancer.addr
    }

    /// A request through the load balancer, which must be answered.
    fn call(&self, method: &str, path: &str, body: Option<&str>) -> Reply {
        call(self.lb(), method, path, body)
            .unwrap_or_else(|| panic!("{method} {path}: no answer through the load balancer"))
    }

    fn view(&self) -> ClusterView {
        let reply = self.call("GET", "/api/cluster", None);
        assert_eq!(reply.status, 200, "{}", reply.body);
        serde_json::from_str(&reply.body).expect("cluster JSON")
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("a runtime")
}

#[test]
fn the_original_six_checks_pass_through_the_load_balancer_on_both_bridges() {
    let service = Balanced::start("balanced", 22200, 18900, &[]);
    let rt = runtime();
    requests_reach_both_bridges(&service);
    write_on_primary_is_visible_on_both_standbys(&service, &rt);
    reads_spread_round_robin_over_the_standbys(&service);
    lag_is_reported_from_pg_stat_replication(&service);
    users_are_placed_as_the_core_says(&service, &rt, StrategyKind::Ring, "ring_");
    a_stopped_standby_costs_no_read_and_rejoins_after_restart(&service);
    the_event_stream_arrives_unbuffered(&service);
}

/// Answers name both bridges, and each one's own address.
fn requests_reach_both_bridges(service: &Balanced) {
    let mut answered = BTreeMap::<String, u32>::new();
    for _ in 0..20 {
        let reply = service.call("GET", "/api/health", None);
        assert_eq!(reply.status, 200, "{}", reply.body);
        *answered
            .entry(reply.bridge.expect("X-Ecoshard-Bridge"))
            .or_default() += 1;
    }
    let names: BTreeSet<&String> = answered.keys().collect();
    assert_eq!(names, service.addrs.iter().collect(), "{answered:?}");
}

fn write_on_primary_is_visible_on_both_standbys(service: &Balanced, rt: &tokio::runtime::Runtime) {
    let reply = service.call(
        "POST",
        "/api/users",
        Some(r#"{"user_id":"ana","name":"Ana"}"#),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    let inserted: InsertResult = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(inserted.served_by, "primary");
    let sql = format!(
        "SELECT name FROM \"shard_{}\".users WHERE user_id = 'ana'",
        inserted.shard
    );
    rt.block_on(async {
        for standby in ["standby-1", "standby-2"] {
            let client = connect(&service.cluster, standby, "ecomarket").await;
            let seen = common::eventually(LIMIT, || async {
                client
                    .query_opt(&sql, &[])
                    .await
                    .ok()
                    .flatten()
                    .is_some_and(|row| row.get::<_, String>(0) == "Ana")
            })
            .await;
            assert!(seen, "the row never reached {standby}");
        }
    });
}

fn reads_spread_round_robin_over_the_standbys(service: &Balanced) {
    let reply = service.call("POST", "/api/users", Some(r#"{"user_id":"rr"}"#));
    assert_eq!(reply.status, 201, "{}", reply.body);
    let inserted: InsertResult = serde_json::from_str(&reply.body).unwrap();
    assert!(
        eventually(LIMIT, || all_streaming(&service.view())),
        "the standbys do not stream"
    );
    let mut served = BTreeMap::<String, u32>::new();
    let mut bridges = BTreeSet::new();
    let path = format!(
        "/api/users/rr?consistency=read-your-writes&lsn={}",
        inserted.lsn
    );
    for _ in 0..40 {
        let reply = service.call("GET", &path, None);
        assert_eq!(reply.status, 200, "{}", reply.body);
        let read: ReadResult = serde_json::from_str(&reply.body).unwrap();
        *served.entry(read.served_by).or_default() += 1;
        bridges.insert(reply.bridge.unwrap_or_default());
    }
    let one = served.get("standby-1").copied().unwrap_or(0);
    let two = served.get("standby-2").copied().unwrap_or(0);
    assert!(one >= 10 && two >= 10, "reads not spread: {served:?}");
    assert_eq!(bridges.len(), 2, "{bridges:?}");
}

fn lag_is_reported_from_pg_stat_replication(service: &Balanced) {
    let view = service.view();
    assert_eq!(view.nodes.len(), 3);
    assert_eq!(view.nodes[0].name, "primary");
    assert!(view.nodes[0].lag.is_none());
    for node in &view.nodes[1..] {
        let lag = node.lag.as_ref().expect("standbys carry lag");
        assert_eq!(lag.state.as_deref(), Some("streaming"), "{}", node.name);
        assert!(lag.byte_lag.is_some_and(|bytes| bytes >= 0), "{lag:?}");
    }
}

/// 300 users written through the load balancer, each in the shard the
/// core names (checked in PostgreSQL), each once.
fn users_are_placed_as_the_core_says(
    service: &Balanced,
    rt: &tokio::runtime::Runtime,
    strategy: StrategyKind,
    prefix: &str,
) {
    let body = format!(r#"{{"count":300,"prefix":"{prefix}"}}"#);
    let reply = service.call("POST", "/api/users/bulk", Some(&body));
    assert_eq!(reply.status, 201, "{}", reply.body);
    let bulk: BulkResult = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(bulk.inserted, 300);
    let router = Layout::with_count(strategy, 3).unwrap().build().unwrap();
    let stored = rt.block_on(async {
        let primary = connect(&service.cluster, "primary", "ecomarket").await;
        rows::snapshot(&primary, "").await.shards_of
    });
    for index in 0..300 {
        let id = format!("{prefix}{index}");
        let expected = &router.locate_shard(id.as_bytes()).name;
        assert_eq!(stored.get(&id), Some(&vec![expected.clone()]), "{id}");
    }
}

fn a_stopped_standby_costs_no_read_and_rejoins_after_restart(service: &Balanced) {
    let reply = service.call(
        "POST",
        "/api/users/bulk",
        Some(r#"{"count":50,"prefix":"f"}"#),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    let keys: Vec<String> = (0..50).map(|n| format!("f{n}")).collect();
    let load = Load::reads(service.lb(), &keys);
    assert!(load.goes_on(50), "the reads did not start");
    let stop = service.call("POST", "/api/nodes/standby-1/stop", None);
    assert_eq!(stop.status, 200, "{}", stop.body);
    // Both bridges see it down (answers come from either).
    let down = eventually(LIMIT, || (0..4).all(|_| !service.view().nodes[1].up));
    assert!(down, "standby-1 still reported up");
    assert!(load.goes_on(100), "reads stopped while standby-1 was down");
    let (ok, failed) = load.finish();
    assert!(
        failed.is_empty(),
        "{} failed reads: {:?}",
        failed.len(),
        failed.first()
    );
    eprintln!("{ok} reads through the load balancer, standby-1 stopped under them, none failed");
    let start = service.call("POST", "/api/nodes/standby-1/start", None);
    assert_eq!(start.status, 200, "{}", start.body);
    let rejoined = eventually(LIMIT, || {
        let reply = service.call("GET", "/api/users/f1", None);
        serde_json::from_str::<ReadResult>(&reply.body)
            .is_ok_and(|read| read.served_by == "standby-1")
    });
    assert!(rejoined, "standby-1 never served reads again");
}

/// Ticks are made every 250 ms; through an unbuffered proxy each reaches
/// the client before the next one is made (a buffering proxy holds several
/// and lets them go together). Both sides read this machine's clock.
fn the_event_stream_arrives_unbuffered(service: &Balanced) {
    let mut stream = std::net::TcpStream::connect(service.lb()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "GET /api/events HTTP/1.1\r\nHost: {}\r\n\r\n",
        service.lb()
    )
    .unwrap();
    let mut text = String::new();
    let mut ticks: Vec<(u64, u64)> = Vec::new(); // (made at, received at), ms
    let mut buffer = [0u8; 16 * 1024];
    while ticks.len() < 12 {
        let read = stream.read(&mut buffer).expect("the stream goes on");
        assert!(read > 0, "the stream ended: {text}");
        let received = now_ms();
        text.push_str(&String::from_utf8_lossy(&buffer[..read]));
        while let Some(end) = text.find("\n\n") {
            let event: String = text.drain(..end + 2).collect();
            if let Some(data) = event.lines().find_map(|line| line.strip_prefix("data: "))
                && event.lines().any(|line| line == "event: tick")
            {
                let tick: Tick = serde_json::from_str(data).expect("a Tick");
                ticks.push((tick.at_ms, received));
            }
        }
    }
    // The first answer may carry the latest tick with the head: leave it out.
    let in_time = ticks[1..]
        .windows(2)
        .filter(|pair| pair[0].1 < pair[1].0)
        .count();
    assert!(
        in_time >= 8,
        "{in_time} of 10 ticks reached the client before the next was made: {ticks:?}"
    );
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

#[test]
fn a_bridge_killed_under_load_fails_at_most_its_requests_in_flight_and_loses_no_insert() {
    let mut service = Balanced::start("balanced-kill", 22400, 19000, &["--strategy", "modulo"]);
    let rt = runtime();
    users_are_placed_as_the_core_says(&service, &rt, StrategyKind::Modulo, "mod_");
    let load = Load::inserts_and_reads(service.lb(), 4);
    assert!(load.goes_on(200), "the load did not start");
    // The first bridge, which started the cluster: its servers stay up for
    // the bridge that joined them.
    let kill_start = Instant::now();
    service.first.kill();
    let kill_end = Instant::now();
    assert!(load.goes_on(300), "the load stopped after the kill");
    let records = load.finish_records();
    let in_flight = records
        .iter()
        .filter(|record| record.start < kill_end && record.end > kill_start)
        .count();
    let failed: Vec<&Record> = records.iter().filter(|record| !record.ok).collect();
    assert!(
        failed.len() <= in_flight,
        "{} failed, {in_flight} in flight at the kill: {:?}",
        failed.len(),
        failed.first()
    );
    let after: BTreeSet<String> = records
        .iter()
        .filter(|record| record.start > kill_end)
        .filter_map(|record| record.bridge.clone())
        .collect();
    assert_eq!(after, BTreeSet::from([service.addrs[1].clone()]));
    // Every acknowledged insert stored once; none twice.
    let stored = rt.block_on(async {
        let primary = connect(&service.cluster, "primary", "ecomarket").await;
        rows::snapshot(&primary, "").await.shards_of
    });
    let acknowledged: Vec<&String> = records
        .iter()
        .filter(|record| record.ok)
        .filter_map(|record| record.inserted.as_ref())
        .collect();
    for id in &acknowledged {
        assert_eq!(stored.get(*id).map(Vec::len), Some(1), "{id}");
    }
    assert!(stored.values().all(|shards| shards.len() == 1));
    eprintln!(
        "{} requests ({} inserts acknowledged), {} failed, {in_flight} in flight at the kill",
        records.len(),
        acknowledged.len(),
        failed.len()
    );
    drop(service);
}

/// One request of a [`Load`].
#[derive(Debug)]
struct Record {
    start: Instant,
    end: Instant,
    ok: bool,
    bridge: Option<String>,
    /// The id an insert wrote.
    inserted: Option<String>,
    what: String,
}

/// Requests through the load balancer from several threads, each one at a
/// time, until told to stop.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<Vec<Record>>>,
}

impl Load {
    /// One thread reading `keys` in turn (strong, then eventual).
    fn reads(lb: &str, keys: &[String]) -> Load {
        let paths: Vec<String> = ["strong", "eventual"]
            .iter()
            .flat_map(|c| {
                keys.iter()
                    .map(move |k| format!("/api/users/{k}?consistency={c}"))
            })
            .collect();
        Load::spawn(1, |_| {
            let (lb, paths) = (lb.to_string(), paths.clone());
            move |n: u64| one(&lb, "GET", &paths[n as usize % paths.len()], None, None)
        })
    }

    /// `threads` threads inserting new ids, each read back (strong) after.
    fn inserts_and_reads(lb: &str, threads: usize) -> Load {
        let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
        Load::spawn(threads, |thread| {
            let (lb, acknowledged) = (lb.to_string(), Arc::clone(&acknowledged));
            move |n: u64| {
                let last = acknowledged.lock().unwrap().last().cloned();
                match last {
                    Some(id) if n % 2 == 1 => {
                        let path = format!("/api/users/{id}?consistency=strong");
                        one(&lb, "GET", &path, None, None)
                    }
                    _ => {
                        let id = format!("kill_{thread}_{n}");
                        let body = format!(r#"{{"user_id":"{id}"}}"#);
                        let record = one(&lb, "POST", "/api/users", Some(&body), Some(id.clone()));
                        if record.ok {
                            acknowledged.lock().unwrap().push(id);
                        }
                        record
                    }
                }
            }
        })
    }

    fn spawn<F: FnMut(u64) -> Record + Send + 'static>(
        threads: usize,
        mut make: impl FnMut(usize) -> F,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let threads = (0..threads)
            .map(|thread| {
                let (stop, ok) = (Arc::clone(&stop), Arc::clone(&ok));
                let mut request = make(thread);
                std::thread::spawn(move || {
                    let mut records = Vec::new();
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let record = request(n);
                        if record.ok {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        records.push(record);
                        n += 1;
                    }
                    records
                })
            })
            .collect();
        Load { stop, ok, threads }
    }

    /// Whether `more` requests succeed after those counted now, within [`LIMIT`].
    fn goes_on(&self, more: u64) -> bool {
        let seen = self.ok.load(Ordering::Relaxed);
        eventually(LIMIT, || self.ok.load(Ordering::Relaxed) >= seen + more)
    }

    fn finish_records(self) -> Vec<Record> {
        self.stop.store(true, Ordering::Relaxed);
        self.threads
            .into_iter()
            .flat_map(|thread| thread.join().expect("a load thread"))
            .collect()
    }

    /// Stops it: the requests that succeeded, and the others.
    fn finish(self) -> (usize, Vec<String>) {
        let records = self.finish_records();
        let failed = records
            .iter()
            .filter(|record| !record.ok)
            .map(|record| record.what.clone())
            .collect();
        (records.len(), failed)
    }
}

/// One request, timed: ok when answered 2xx.
fn one(lb: &str, method: &str, path: &str, body: Option<&str>, inserted: Option<String>) -> Record {
    let start = Instant::now();
    let reply = call(lb, method, path, body);
    let end = Instant::now();
    let ok = reply
        .as_ref()
        .is_some_and(|reply| (200..300).contains(&reply.status));
    Record {
        start,
        end,
        ok,
        bridge: reply.as_ref().and_then(|reply| reply.bridge.clone()),
        what: format!(
            "{method} {path}: {}",
            reply.map_or("no answer".to_string(), |r| format!(
                "{} {}",
                r.status, r.body
            ))
        ),
        inserted,
    }
}

/// Two processes over one cluster (here two handles in this one: the one
/// that started it and one that joined it) each ask for a failover once the
/// primary is gone, as two bridges with `--auto-failover` do: one standby is
/// promoted, and the second answer names that same promotion.
#[test]
fn a_failover_asked_by_two_processes_promotes_one_standby() {
    let first = common::start_cluster("balanced-failover", 22600, false);
    let port = first.nodes()[0].port;
    let joined = LocalCluster::start(&ClusterOptions::new(first.data_dir(), port))
        .expect("joining the cluster");
    assert!(joined.joined() && !first.joined());
    assert!(first.kill_node("primary").expect("killing the primary"));
    let promoted = first.fail_over().expect("the first failover");
    let again = joined.fail_over().expect("the second failover");
    assert_eq!(
        (again.from.as_str(), again.to.as_str()),
        ("primary", promoted.to.as_str())
    );
    assert_eq!(joined.primary_name(), promoted.to);
    let primaries = runtime().block_on(async {
        let mut primaries = Vec::new();
        for node in first
            .nodes()
            .into_iter()
            .filter(|node| node.name != "primary")
        {
            let client = connect(&first, &node.name, "postgres").await;
            let row = client.query_one("SELECT pg_is_in_recovery()", &[]).await;
            if !row.expect("pg_is_in_recovery").get::<_, bool>(0) {
                primaries.push(node.name);
            }
        }
        primaries
    });
    assert_eq!(primaries, [promoted.to]);
}

/// What NGINX sends to another bridge once the first took a request and
/// died before answering (`nginx/proxy.conf`): only what is the same done
/// twice. Behind it, two stand-ins for bridges: one reads each request whole
/// and closes the connection unanswered, the other answers 200. A fresh
/// NGINX for each case sends its first request to the first of them.
#[test]
fn the_load_balancer_repeats_on_another_bridge_only_what_is_safe_to_repeat() {
    let dying = StandIn::start(false);
    let answering = StandIn::start(true);
    let lb = format!("127.0.0.1:{}", free_ports(19100, 1));
    let check = |method: &str, path: &str, status: u16, repeated: bool| {
        let balancer = Balancer::start(&lb, &[dying.addr.clone(), answering.addr.clone()]);
        let before = answering.seen().len();
        let reply = call(&lb, method, path, Some("{}")).expect("an answer");
        drop(balancer);
        assert_eq!(reply.status, status, "{method} {path}: {}", reply.body);
        let line = format!("{method} {path} HTTP/1.1");
        assert_eq!(
            dying.seen().last(),
            Some(&line),
            "{method} {path} went first to the dying bridge"
        );
        let again = answering.seen()[before..].contains(&line);
        assert_eq!(again, repeated, "{method} {path} sent again: {again}");
        if status == 503 {
            assert!(
                reply.body.contains(r#""code":"no_bridge""#),
                "{}",
                reply.body
            );
        }
    };
    check("GET", "/api/layout", 200, true);
    check("GET", "/api/users/ana", 200, true);
    check("POST", "/api/users", 200, true);
    check("PUT", "/api/layout", 503, false);
    check("POST", "/api/users/bulk", 503, false);
    check("POST", "/api/users/generate", 503, false);
    check("POST", "/api/nodes/standby-1/stop", 503, false);
}

/// A stand-in for a bridge: it reads each request whole, notes its request
/// line, then answers 200 or closes the connection unanswered.
struct StandIn {
    addr: String,
    seen: Arc<Mutex<Vec<String>>>,
}

impl StandIn {
    fn start(answers: bool) -> StandIn {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        let addr = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let noted = Arc::clone(&seen);
        // Ends with the test binary.
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let Some(line) = read_request(&mut stream) else {
                    continue;
                };
                noted.lock().unwrap().push(line);
                if answers {
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    );
                }
            }
        });
        StandIn { addr, seen }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// Reads one request (head and `Content-Length` body): its request line.
fn read_request(stream: &mut std::net::TcpStream) -> Option<String> {
    let mut data = Vec::new();
    let mut buffer = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let read = stream.read(&mut buffer).ok().filter(|read| *read > 0)?;
        data.extend_from_slice(&buffer[..read]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while data.len() < head_end + 4 + length {
        let read = stream.read(&mut buffer).ok().filter(|read| *read > 0)?;
        data.extend_from_slice(&buffer[..read]);
    }
    head.lines().next().map(str::to_string)
}
