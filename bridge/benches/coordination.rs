//! What coordinating several bridges through the catalog costs, and how
//! fast it propagates, against real `ecoshard serve` processes over one
//! local cluster (bridge A starts it, bridge B joins it):
//!
//! 1. **Propagation.** Many layout changes applied on A (alternating ring
//!    and jump over the same 3 shards, over a small table, so each job is
//!    quick), in blocks by NOTIFY and by polling alone (the catalog's
//!    triggers disabled), a random pause before each change so polling
//!    meets every phase of B's heartbeat. Per change, from the job's
//!    transaction (its `started_at`, by the catalog's clock) until B routes
//!    writes by the new layout, and from the job's end (`finished_at`)
//!    until B routes by it alone. B's moment is the timestamp of its own
//!    log line `following layout N … from the catalog`, written just before
//!    it swaps its routing: nothing polls B, so the measurement adds no
//!    delay to what it measures. All three clocks are the machine's one
//!    real-time clock.
//! 2. **What the catalog's statements cost.** `pg_stat_statements` on the
//!    primary (loaded for this run) over idle windows with A and B live,
//!    then A alone: calls and execution time per second per statement.
//! 3. **What coordination costs a write.** Inserts sent directly to A with
//!    A alone, with B registered and live, and sent directly with
//!    tokio-postgres, side by side in rounds (every other round B's phase
//!    before A's alone; B started for its phase and stopped after it); and
//!    the CPU time A's process takes per insert and B's process takes
//!    beside it, from `/proc`, which the machine's other load moves less
//!    than throughput.
//!
//! `cargo bench -p ecoshard-bridge --bench coordination`; settings from the
//! environment: ECOSHARD_BENCH_CHANGES (layout changes per mode, 100; 0
//! skips part 1), ECOSHARD_BENCH_BLOCK (changes per block of one mode, 25),
//! ECOSHARD_BENCH_ROWS (rows in the table, 300), ECOSHARD_BENCH_WINDOW
//! (seconds per idle window, 10; 0 skips part 2), ECOSHARD_BENCH_ROUNDS
//! (rounds of part 3, 3; 0 skips it), ECOSHARD_BENCH_SECS (per insert
//! phase, 8), ECOSHARD_BENCH_CLIENTS (closed-loop inserting clients, 16).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ecoshard_core::wire::{ClusterView, LayoutView, RebalanceJob};
use ecoshard_core::{Layout, StrategyKind};
use tokio_postgres::{AsyncMessage, Client, NoTls};

#[path = "../tests/common/blocking.rs"]
mod blocking;
#[path = "support/http.rs"]
mod client;
#[path = "../tests/common/direct.rs"]
mod direct;
#[path = "../tests/common/random.rs"]
mod random;

use blocking::{BIN, Scratch, Serve, all_streaming, free_ports, setting};
use client::{http, http_connect};
use direct::{config, connect};
use random::Random;

/// Longest one layout change may take, end to end.
const CHANGE_LIMIT: Duration = Duration::from_secs(120);

/// The catalog's triggers that announce layout and job changes.
const TRIGGERS: [(&str, &str); 2] = [
    ("ecoshard.layout", "layout_changed"),
    ("ecoshard.rebalance", "job_changed"),
];

fn main() {
    let settings = Settings {
        changes: setting("ECOSHARD_BENCH_CHANGES", 100) as usize,
        block: setting("ECOSHARD_BENCH_BLOCK", 25).max(1) as usize,
        rows: setting("ECOSHARD_BENCH_ROWS", 300),
        window: setting("ECOSHARD_BENCH_WINDOW", 10),
        rounds: setting("ECOSHARD_BENCH_ROUNDS", 3) as usize,
        secs: setting("ECOSHARD_BENCH_SECS", 8),
        clients: setting("ECOSHARD_BENCH_CLIENTS", 16) as usize,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let pg_port = free_ports(27500, 3);
    let http_port = free_ports(28500, 2);
    // Its servers stopped and files deleted however the run ends.
    let scratch = Scratch::new("bench-coord");
    let data_dir = scratch.dir.clone();
    load_statistics(&data_dir, pg_port);
    let run = Run {
        a: format!("127.0.0.1:{http_port}"),
        b: format!("127.0.0.1:{}", http_port + 1),
        pg_port,
        data_dir: data_dir.clone(),
        settings,
    };
    let _a = run.start("bench-a", &run.a);
    println!(
        "coordination benchmark: 2 bridges over 1 local cluster (primary + 2 standbys), {} cores, load average {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
    let catalog = runtime.block_on(run.prepare());
    let b = run.start("bench-b", &run.b);
    runtime.block_on(wait_live(&run.a, 2));
    if run.settings.changes > 0 {
        runtime.block_on(propagation(&run, &catalog, &b));
    }
    if run.settings.window > 0 {
        statements(&run, &runtime, &catalog, b);
    } else {
        drop(b);
    }
    if run.settings.rounds > 0 {
        writes(&run, &runtime);
    }
    println!("\nload average at the end: {}", load_average());
}

/// What the run is asked to do.
struct Settings {
    changes: usize,
    block: usize,
    rows: u64,
    window: u64,
    rounds: usize,
    secs: u64,
    clients: usize,
}

/// The two bridges' addresses, the cluster's first port and directory.
struct Run {
    a: String,
    b: String,
    pg_port: u16,
    data_dir: PathBuf,
    settings: Settings,
}

impl Run {
    /// `ecoshard serve` named `name` on `addr` over the run's cluster
    /// (the first one starts it, later ones join it).
    fn start(&self, name: &str, addr: &str) -> Serve {
        let pool_size = (self.settings.clients * 2).to_string();
        let (pg_port, data_dir) = (
            self.pg_port.to_string(),
            self.data_dir.display().to_string(),
        );
        let args = [
            "--name",
            name,
            "--pg-port",
            &pg_port,
            "--data-dir",
            &data_dir,
            "--strategy",
            "ring",
            "--shards",
            "3",
            "--pool-size",
            &pool_size,
        ];
        Serve::start_with(addr, &args, |_| {})
    }

    /// The `ecoshard` role's password, from the cluster's passfile.
    fn password(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("pgpass"))
            .ok()
            .and_then(|text| ecoshard_postgres::pgpass::lookup(&text, "ecoshard"))
            .expect("the cluster's passfile")
    }

    /// Once A answers with every node streaming: a connection to the
    /// catalog with `pg_stat_statements` created, and the table seeded.
    async fn prepare(&self) -> Client {
        wait_ready(&self.a).await;
        let catalog = connect(self.pg_port, &self.password()).await;
        // Planning counted too: the bridges' statements are unnamed, so
        // planned at every call.
        for sql in [
            "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
            "ALTER SYSTEM SET pg_stat_statements.track_planning = on",
            "SELECT pg_reload_conf()",
        ] {
            catalog
                .batch_execute(sql)
                .await
                .expect("pg_stat_statements");
        }
        let body = format!(r#"{{"count": {}, "prefix": "seed_"}}"#, self.settings.rows);
        let mut sender = http_connect(&self.a).await.expect("connect to A");
        let (status, text) = http(&mut sender, "POST", "/api/users/bulk", Some(body))
            .await
            .expect("seed the table");
        assert!((200..300).contains(&status), "seeding: {status} {text:?}");
        catalog
    }
}

/// `ecoshard cluster up`, `pg_stat_statements` loaded by the primary
/// (`ALTER SYSTEM`, so in its data directory), `ecoshard cluster down`:
/// the bridges then start the cluster with it.
fn load_statistics(data_dir: &Path, pg_port: u16) {
    let (dir, port) = (data_dir.display().to_string(), pg_port.to_string());
    let cluster = |verb: &str| {
        let status = Command::new(BIN)
            .args(["cluster", verb, "--data-dir", &dir, "--pg-port", &port])
            .stdout(Stdio::null())
            .status()
            .expect("ecoshard cluster");
        assert!(status.success(), "ecoshard cluster {verb}: {status}");
    };
    cluster("up");
    let password = std::fs::read_to_string(data_dir.join("pgpass"))
        .ok()
        .and_then(|text| ecoshard_postgres::pgpass::lookup(&text, "ecoshard"))
        .expect("the cluster's passfile");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let client = connect(pg_port, &password).await;
        client
            .batch_execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
            .await
            .expect("ALTER SYSTEM");
    });
    cluster("down");
}

/// The one-, five- and fifteen-minute load averages.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "?".into())
}

/// Seconds since the epoch, now.
fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}

/// Part 1: layout changes on A in blocks of each mode, alternating;
/// printed as percentiles per mode.
async fn propagation(run: &Run, catalog: &Client, b: &Serve) {
    let heard = listen(run.pg_port, &run.password()).await;
    let mut samples: [Vec<Sample>; 2] = [Vec::new(), Vec::new()];
    let mut random = Random::seeded();
    let started = Instant::now();
    println!(
        "\npart 1: {} layout changes per mode on A, in blocks of {}, {} rows; load average {}",
        run.settings.changes,
        run.settings.block,
        run.settings.rows,
        load_average()
    );
    let mut index = 0;
    while samples.iter().any(|mode| mode.len() < run.settings.changes) {
        for (mode, polled) in [(0, false), (1, true)] {
            set_triggers(catalog, !polled).await;
            let count = run
                .settings
                .block
                .min(run.settings.changes - samples[mode].len());
            for _ in 0..count {
                tokio::time::sleep(Duration::from_millis(random.below(1_000))).await;
                let layout = if index % 2 == 0 {
                    StrategyKind::Jump
                } else {
                    StrategyKind::Ring
                };
                index += 1;
                let sample = change(run, catalog, b, &heard, layout).await;
                samples[mode].push(sample);
            }
        }
    }
    set_triggers(catalog, true).await;
    println!(
        "{} changes in {:.0} s; load average {}",
        index,
        started.elapsed().as_secs_f64(),
        load_average()
    );
    print_propagation(&samples);
}

/// One change's moments, in seconds since the epoch.
struct Sample {
    /// The job's transaction began (`started_at`).
    begun: f64,
    /// The bench's own listener heard the catalog's notification.
    heard: Option<f64>,
    /// B's log: it routes writes by the new layout (reads also by the old).
    following: Option<f64>,
    /// The job ended (`finished_at`).
    done: f64,
    /// B's log: it routes by the new layout alone.
    alone: Option<f64>,
}

/// Applies a layout of `strategy` over the same 3 shards on A, waits for
/// the job to end and for B to route by its layout alone: its moments.
async fn change(
    run: &Run,
    catalog: &Client,
    b: &Serve,
    heard: &Heard,
    strategy: StrategyKind,
) -> Sample {
    let json = serde_json::to_string(&Layout::with_count(strategy, 3).unwrap()).unwrap();
    let sent = epoch_now();
    let mut sender = http_connect(&run.a).await.expect("connect to A");
    let (status, body) = http(&mut sender, "PUT", "/api/layout", Some(json))
        .await
        .expect("PUT /api/layout");
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
    let job: RebalanceJob = serde_json::from_slice(&body).expect("the job");
    let limit = Instant::now() + CHANGE_LIMIT;
    let (begun, done) = loop {
        let row = catalog
            .query_one(
                "SELECT state, extract(epoch FROM started_at)::float8,
                        extract(epoch FROM finished_at)::float8
                 FROM ecoshard.rebalance WHERE id = $1",
                &[&(job.id as i64)],
            )
            .await
            .expect("the job's row");
        let state: String = row.get(0);
        assert_ne!(state, "failed", "job {} failed", job.id);
        if state == "done" {
            break (row.get::<_, f64>(1), row.get::<_, f64>(2));
        }
        assert!(Instant::now() < limit, "job {} never ended", job.id);
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let version = job.to_version;
    let alone_line = format!("following layout {version} from the catalog");
    while !b.log().contains(&alone_line) {
        assert!(Instant::now() < limit, "B never followed layout {version}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = b.log();
    let following_line = format!("following layout {version} (reads also under");
    Sample {
        begun,
        heard: heard.first_after(sent),
        following: logged_at(catalog, &log, &following_line).await,
        done,
        alone: logged_at(catalog, &log, &alone_line).await,
    }
}

/// The timestamp of the first line of `log` containing `text`, in seconds
/// since the epoch (the catalog parses it: tracing's RFC 3339 form).
async fn logged_at(catalog: &Client, log: &str, text: &str) -> Option<f64> {
    let line = log.lines().find(|line| line.contains(text))?;
    let stamp = line.split_whitespace().next()?;
    let row = catalog
        .query_one(
            "SELECT extract(epoch FROM $1::text::timestamptz)::float8",
            &[&stamp],
        )
        .await
        .ok()?;
    Some(row.get(0))
}

/// Enables or disables the catalog's triggers that NOTIFY.
async fn set_triggers(catalog: &Client, enabled: bool) {
    let verb = if enabled { "ENABLE" } else { "DISABLE" };
    for (table, trigger) in TRIGGERS {
        catalog
            .batch_execute(&format!("ALTER TABLE {table} {verb} TRIGGER {trigger}"))
            .await
            .expect("ALTER TABLE … TRIGGER");
    }
}

/// When the bench's own listener heard the catalog's notifications.
struct Heard {
    at: Arc<Mutex<Vec<f64>>>,
    _client: Client,
}

impl Heard {
    /// The first notification heard at or after `since`.
    fn first_after(&self, since: f64) -> Option<f64> {
        let at = self.at.lock().unwrap();
        at.iter().copied().find(|at| *at >= since)
    }
}

/// A connection of the bench's own listening on the catalog's channel.
async fn listen(port: u16, password: &str) -> Heard {
    let (client, mut connection) = config(port, password)
        .connect(NoTls)
        .await
        .expect("listening connection");
    let at: Arc<Mutex<Vec<f64>>> = Arc::default();
    let heard = Arc::clone(&at);
    tokio::spawn(async move {
        while let Some(Ok(message)) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            if let AsyncMessage::Notification(_) = message {
                heard.lock().unwrap().push(epoch_now());
            }
        }
    });
    client
        .batch_execute("LISTEN ecoshard_catalog")
        .await
        .expect("LISTEN");
    Heard {
        at,
        _client: client,
    }
}

/// One interval of a change, in seconds, when both its ends were seen.
type Interval = fn(&Sample) -> Option<f64>;

/// Part 1's tables: per mode, each interval's percentiles.
fn print_propagation(samples: &[Vec<Sample>; 2]) {
    println!("\n| mode | interval | changes | p50 ms | p90 ms | p99 ms | max ms | not seen |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for (mode, samples) in ["NOTIFY", "polling only"].iter().zip(samples) {
        let intervals: [(&str, Interval); 4] = [
            ("job begun → B routes writes by it", |s: &Sample| {
                Some(s.following? - s.begun)
            }),
            ("job done → B routes by it alone", |s: &Sample| {
                Some(s.alone? - s.done)
            }),
            (
                "job begun → the bench's listener hears it",
                |s: &Sample| Some(s.heard? - s.begun),
            ),
            ("job begun → job done", |s: &Sample| {
                Some(s.done - s.begun)
            }),
        ];
        for (name, interval) in &intervals {
            let mut ms: Vec<f64> = samples
                .iter()
                .filter_map(*interval)
                .map(|seconds| seconds * 1_000.0)
                .collect();
            if ms.is_empty() {
                continue;
            }
            ms.sort_by(f64::total_cmp);
            let missed = samples.len() - ms.len();
            println!(
                "| {mode} | {name} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {missed} |",
                ms.len(),
                rank(&ms, 50.0),
                rank(&ms, 90.0),
                rank(&ms, 99.0),
                ms[ms.len() - 1],
            );
        }
    }
}

/// The nearest-rank percentile `p` of `sorted`.
fn rank(sorted: &[f64], p: f64) -> f64 {
    let index = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[index.clamp(1, sorted.len()) - 1]
}

/// Part 2: the catalog's statements over an idle window with A and B
/// live, then (B stopped, its lease lapsed) with A alone.
fn statements(run: &Run, runtime: &tokio::runtime::Runtime, catalog: &Client, b: Serve) {
    let window = Duration::from_secs(run.settings.window);
    println!(
        "\npart 2: the primary's statements over idle windows of {} s (pg_stat_statements); load average {}",
        window.as_secs(),
        load_average()
    );
    let both = runtime.block_on(statement_window(catalog, window));
    drop(b);
    runtime.block_on(wait_live(&run.a, 1));
    let alone = runtime.block_on(statement_window(catalog, window));
    print_statements(&[("A and B live", both), ("A alone", alone)], window);
}

/// One kind of statement's calls and time (planning and execution) over
/// a window.
struct Counted {
    kind: String,
    calls: i64,
    exec_ms: f64,
}

/// The statements run on the primary over `window`, by kind.
async fn statement_window(catalog: &Client, window: Duration) -> Vec<Counted> {
    catalog
        .batch_execute("SELECT pg_stat_statements_reset()")
        .await
        .expect("pg_stat_statements_reset");
    tokio::time::sleep(window).await;
    let rows = catalog
        .query(
            "SELECT query, calls, total_plan_time + total_exec_time FROM pg_stat_statements
             WHERE query NOT LIKE '%pg_stat_statements%'",
            &[],
        )
        .await
        .expect("pg_stat_statements");
    let mut kinds: Vec<Counted> = Vec::new();
    for row in rows {
        let query: String = row.get(0);
        let kind = statement_kind(&query);
        let (calls, exec_ms): (i64, f64) = (row.get(1), row.get(2));
        match kinds.iter_mut().find(|counted| counted.kind == kind) {
            Some(counted) => {
                counted.calls += calls;
                counted.exec_ms += exec_ms;
            }
            None => kinds.push(Counted {
                kind,
                calls,
                exec_ms,
            }),
        }
    }
    kinds.sort_by_key(|counted| std::cmp::Reverse(counted.calls));
    kinds
}

/// What a statement on the primary is for, from its text (else the
/// start of its text).
fn statement_kind(query: &str) -> String {
    let kinds = [
        (
            "INSERT INTO ecoshard.bridges",
            "coordination: heartbeat (upsert + catalog state)",
        ),
        (
            "FROM ecoshard.bridges WHERE heartbeat >",
            "coordination: list of bridges",
        ),
        ("FROM ecoshard.bridges", "coordination: other"),
        ("pg_stat_replication", "monitor: replication state"),
        ("pg_is_in_recovery", "monitor: health check"),
        ("n_live_tup", "ticks: row estimates"),
        ("ecoshard.decisions", "two-phase recovery pass"),
        ("pg_prepared_xacts", "two-phase recovery pass"),
        ("pg_advisory_xact_lock", "two-phase recovery pass"),
        ("lock_timeout", "two-phase recovery pass"),
        ("FROM pg_database", "two-phase recovery pass"),
    ];
    kinds
        .iter()
        .find(|(text, _)| query.contains(text))
        .map_or_else(
            || {
                let words: Vec<&str> = query.split_whitespace().collect();
                format!("`{}`", words.join(" ").chars().take(60).collect::<String>())
            },
            |(_, kind)| (*kind).to_owned(),
        )
}

/// Part 2's table: per window and kind, calls and execution time per second.
fn print_statements(windows: &[(&str, Vec<Counted>)], window: Duration) {
    let secs = window.as_secs_f64();
    println!("\n| bridges | statement | calls/s | planning + execution ms/s | mean µs |");
    println!("|---|---|---:|---:|---:|");
    for (name, kinds) in windows {
        for counted in kinds {
            println!(
                "| {name} | {} | {:.2} | {:.3} | {:.0} |",
                counted.kind,
                counted.calls as f64 / secs,
                counted.exec_ms / secs,
                1_000.0 * counted.exec_ms / counted.calls.max(1) as f64
            );
        }
    }
}

/// Part 3: rounds of inserts sent directly, through A alone and through A
/// with B live, side by side.
fn writes(run: &Run, runtime: &tokio::runtime::Runtime) {
    let (clients, duration) = (run.settings.clients, Duration::from_secs(run.settings.secs));
    println!(
        "\npart 3: {clients} clients inserting, {} s per phase, {} rounds; load average {}",
        duration.as_secs(),
        run.settings.rounds,
        load_average()
    );
    let layout = runtime.block_on(layout_in_force(&run.a));
    let password = run.password();
    let a = serve_pid("bench-a").expect("bridge A's process");
    let mut rounds = Vec::new();
    for round in 0..run.settings.rounds {
        let load = load_average();
        let direct = runtime.block_on(direct_inserts(
            run.pg_port,
            &password,
            &layout,
            clients,
            duration,
        ));
        let inserts = || bridge_inserts(&run.a, clients, duration);
        // Every other round B's phase first, so a drift over the round
        // does not favour one side.
        let mut alone = None;
        if round % 2 == 0 {
            alone = Some(on_cpu(&[a], || runtime.block_on(inserts())));
        }
        let b = run.start("bench-b", &run.b);
        runtime.block_on(wait_live(&run.a, 2));
        let b_pid = serve_pid("bench-b").expect("bridge B's process");
        let beside = on_cpu(&[a, b_pid], || runtime.block_on(inserts()));
        drop(b);
        runtime.block_on(wait_live(&run.a, 1));
        let alone = alone.unwrap_or_else(|| on_cpu(&[a], || runtime.block_on(inserts())));
        rounds.push(Round {
            load,
            direct,
            alone,
            beside,
        });
    }
    print_writes(&rounds);
}

/// One round of part 3: the load average at its start, the direct
/// inserts, A's alone and A's with B live, each with the CPU time of the
/// bridges' processes over it (A's; A's and B's).
struct Round {
    load: String,
    direct: Outcome,
    alone: (Outcome, Vec<Duration>),
    beside: (Outcome, Vec<Duration>),
}

/// Part 3's table, one line per round.
fn print_writes(rounds: &[Round]) {
    println!(
        "\n| round | load average | direct ins/s | A alone ins/s | A, B live ins/s | alone ÷ direct | B live ÷ alone | p50 alone / B live ms | A's CPU µs per insert, alone / B live | B's CPU, % of a core | errors |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (index, round) in rounds.iter().enumerate() {
        let ((alone, alone_cpu), (beside, beside_cpu)) = (&round.alone, &round.beside);
        let per_insert = |outcome: &Outcome, cpu: Duration| {
            cpu.as_secs_f64() * 1e6 / outcome.latencies_us.len().max(1) as f64
        };
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.0} | {:.0} % | {:.1} % | {:.2} / {:.2} | {:.0} / {:.0} | {:.1} % | {} |",
            index + 1,
            round.load,
            round.direct.per_sec(),
            alone.per_sec(),
            beside.per_sec(),
            100.0 * alone.per_sec() / round.direct.per_sec(),
            100.0 * beside.per_sec() / alone.per_sec(),
            alone.percentile(50.0),
            beside.percentile(50.0),
            per_insert(alone, alone_cpu[0]),
            per_insert(beside, beside_cpu[0]),
            100.0 * beside_cpu[1].as_secs_f64() / beside.elapsed.as_secs_f64(),
            round.direct.errors + alone.errors + beside.errors
        );
    }
}

/// `phase`'s outcome and the CPU time (user and system) each of `pids`
/// took over it.
fn on_cpu(pids: &[u32], phase: impl FnOnce() -> Outcome) -> (Outcome, Vec<Duration>) {
    let before: Vec<Duration> = pids.iter().map(|pid| cpu_time(*pid)).collect();
    let outcome = phase();
    let used = pids
        .iter()
        .zip(before)
        .map(|(pid, before)| cpu_time(*pid).saturating_sub(before))
        .collect();
    (outcome, used)
}

/// The CPU time process `pid` has used, from `/proc` (clock ticks of 10 ms:
/// Linux's `USER_HZ`).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // `pid (comm) state …`: utime and stime are the 12th and 13th fields
    // after the command's closing parenthesis.
    let after = stat.rfind(')').map_or("", |at| &stat[at + 1..]);
    let ticks: u64 = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|field| field.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

/// The process of `ecoshard serve --name NAME`, from `/proc`.
fn serve_pid(name: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.find_map(|entry| {
        let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let args: Vec<&[u8]> = cmdline.split(|byte| *byte == 0).collect();
        let serving = args.iter().any(|arg| *arg == b"serve");
        let named = args
            .windows(2)
            .any(|pair| pair[0] == b"--name" && pair[1] == name.as_bytes());
        (serving && named).then_some(pid)
    })
}

/// The layout A routes by now.
async fn layout_in_force(addr: &str) -> Layout {
    let mut sender = http_connect(addr).await.expect("connect to A");
    let (status, body) = http(&mut sender, "GET", "/api/layout", None)
        .await
        .expect("GET /api/layout");
    assert_eq!(status, 200);
    serde_json::from_slice::<LayoutView>(&body)
        .expect("the layout")
        .layout
}

/// Closed-loop inserts of one phase.
#[derive(Default)]
struct Outcome {
    latencies_us: Vec<u64>,
    errors: u64,
    elapsed: Duration,
}

impl Outcome {
    fn merge(&mut self, other: Outcome) {
        self.latencies_us.extend(other.latencies_us);
        self.errors += other.errors;
        self.elapsed = self.elapsed.max(other.elapsed);
    }

    fn per_sec(&self) -> f64 {
        self.latencies_us.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> f64 {
        let mut sorted: Vec<f64> = self
            .latencies_us
            .iter()
            .map(|us| *us as f64 / 1e3)
            .collect();
        if sorted.is_empty() {
            return f64::NAN;
        }
        sorted.sort_by(f64::total_cmp);
        rank(&sorted, p)
    }
}

/// A distinct prefix for each insert phase's ids.
fn phase_prefix() -> String {
    static PHASES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let phase = PHASES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("w{phase}")
}

/// `clients` closed-loop clients inserting one user per request through
/// the bridge at `addr`, each on its own keep-alive connection.
async fn bridge_inserts(addr: &str, clients: usize, duration: Duration) -> Outcome {
    let prefix = phase_prefix();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..clients {
        let (addr, prefix) = (addr.to_owned(), prefix.clone());
        tasks.push(tokio::spawn(async move {
            let mut sender = http_connect(&addr).await.expect("connect to the bridge");
            let mut outcome = Outcome::default();
            let mut n = 0;
            while started.elapsed() < duration {
                let begin = Instant::now();
                let body = format!(r#"{{"user_id":"{prefix}_{worker}_{n}"}}"#);
                match http(&mut sender, "POST", "/api/users", Some(body)).await {
                    Ok((201, _)) => outcome
                        .latencies_us
                        .push(begin.elapsed().as_micros() as u64),
                    Ok(_) => outcome.errors += 1,
                    Err(_) => {
                        outcome.errors += 1;
                        sender = http_connect(&addr).await.expect("connect to the bridge");
                    }
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

/// The same inserts without a bridge: the core picks the shard, a prepared
/// `INSERT` goes to the primary on each client's own connection.
async fn direct_inserts(
    port: u16,
    password: &str,
    layout: &Layout,
    clients: usize,
    duration: Duration,
) -> Outcome {
    let router = layout.build().expect("the layout in force");
    let prefix = phase_prefix();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..clients {
        let client = connect(port, password).await;
        let (router, prefix) = (router.clone(), prefix.clone());
        tasks.push(tokio::spawn(async move {
            let mut statements = Vec::new();
            for shard in router.shards() {
                let sql = format!(
                    "INSERT INTO \"shard_{}\".users (user_id, name, email) VALUES ($1, $2, $3)",
                    shard.name
                );
                statements.push(client.prepare(&sql).await.expect("prepare"));
            }
            let mut outcome = Outcome::default();
            let mut n = 0;
            while started.elapsed() < duration {
                let begin = Instant::now();
                let id = format!("{prefix}_{worker}_{n}");
                let email = format!("{id}@ecomarket.example");
                let statement = &statements[router.locate(id.as_bytes())];
                match client.execute(statement, &[&id, &id, &email]).await {
                    Ok(_) => outcome
                        .latencies_us
                        .push(begin.elapsed().as_micros() as u64),
                    Err(_) => outcome.errors += 1,
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

/// Waits until `addr` answers with every node up and streaming.
async fn wait_ready(addr: &str) {
    let limit = Instant::now() + Duration::from_secs(120);
    while Instant::now() < limit {
        if let Some(view) = cluster_view(addr).await
            && all_streaming(&view)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{addr} never had every node streaming");
}

/// Waits until `addr` lists `count` live bridges (one: only itself, when
/// the others' leases have lapsed).
async fn wait_live(addr: &str, count: usize) {
    let limit = Instant::now() + Duration::from_secs(60);
    while Instant::now() < limit {
        if let Some(view) = cluster_view(addr).await {
            let live = view.bridges.iter().filter(|bridge| bridge.live).count();
            // Alone, a bridge lists nobody.
            if live == count || (count == 1 && live == 0) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{addr} never listed {count} live bridges");
}

/// `GET /api/cluster` of `addr`, if it answers.
async fn cluster_view(addr: &str) -> Option<ClusterView> {
    let mut sender = http_connect(addr).await.ok()?;
    let (status, body) = http(&mut sender, "GET", "/api/cluster", None).await.ok()?;
    (status == 200).then(|| serde_json::from_slice(&body).ok())?
}
