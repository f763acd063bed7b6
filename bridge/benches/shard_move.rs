//! A whole shard moved between two local clusters by logical replication
//! (a placement change), with a steady insert load on that shard's keys:
//! the job's total time and each phase's, and the moving shard's write
//! pause as its inserts saw it (p50, p99, max of the inserts in flight
//! during the cutover) beside the job's own `write_pause_ms`.
//!
//! `cargo bench -p ecoshard-bridge --bench shard_move`: `ecoshard serve
//! --clusters 2` (modulo over s0 on `c1` and s1 on `c2`) in a temporary
//! directory, `ecoshard load` of ECOSHARD_BENCH_ROWS users (2,000,000: about
//! half on each shard), then ECOSHARD_BENCH_MOVES placement changes (3) with
//! `ecoshard apply --layout-json`, s1 to `c1`, back to `c2`, and so on.
//! The insert load: ECOSHARD_BENCH_CLIENTS threads (4) inserting keys of s1
//! through the bridge at ECOSHARD_BENCH_RATE inserts/s in all (200), from
//! before each apply until its job has ended. ECOSHARD_BENCH_WAL_WRITER_DELAY_MS
//! (unset: the servers' 200 ms) sets `wal_writer_delay` on both primaries
//! first. Stops its bridge and servers and deletes its directory at the end.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ecoshard_core::wire::{JobState, MovePhase, RebalanceJob};
use ecoshard_core::{Layout, Router, StrategyKind};

#[path = "../tests/common/blocking.rs"]
mod blocking;

use blocking::{BIN, Scratch, Serve, free_ports, setting};

/// The shard that moves.
const MOVING: &str = "s1";

/// An insert with no answer by then counts as failed.
const INSERT_WITHIN: Duration = Duration::from_secs(30);

fn main() {
    let rows = setting("ECOSHARD_BENCH_ROWS", 2_000_000);
    let moves = setting("ECOSHARD_BENCH_MOVES", 3);
    let pg_port = free_ports(30800, 13);
    let addr = format!("127.0.0.1:{}", free_ports(30900, 1));
    let scratch = Scratch::new("bench-shard-move");
    let (pg_port_arg, data_dir) = (pg_port.to_string(), scratch.dir.display().to_string());
    let _bridge = Serve::start(
        &addr,
        &[
            "--pg-port",
            &pg_port_arg,
            "--strategy",
            "modulo",
            "--shards",
            "2",
            "--clusters",
            "2",
            "--data-dir",
            &data_dir,
        ],
    );
    if let Ok(delay) = std::env::var("ECOSHARD_BENCH_WAL_WRITER_DELAY_MS") {
        set_wal_writer_delay(&scratch, pg_port, &delay);
    }
    let url = format!("http://{addr}");
    let loaded = Instant::now();
    let output = ecoshard(&["load", "--url", &url, "--count", &rows.to_string()]);
    eprintln!(
        "loaded {rows} users in {:.1} s: {}",
        loaded.elapsed().as_secs_f64(),
        output.trim()
    );
    let router = Layout::with_count(StrategyKind::Modulo, 2)
        .unwrap()
        .build()
        .unwrap();
    println!(
        "| run | move | rows | total s | setting up s | copying s | catching up s | cutover s | \
         verifying s | cleanup s | write_pause_ms (job) | inserts in the cutover | p50 ms | p99 ms | \
         max ms | inserts during the move | p50 ms | p99 ms | max ms | failed |"
    );
    println!("|{}", "---:|".repeat(20));
    for run in 0..moves {
        let target = if run % 2 == 0 { "c1" } else { "c2" };
        let measured = measure_move(&addr, &url, &router, target, run);
        measured.print(run + 1, target);
    }
}

/// `ecoshard ARGS`: its stdout; panics with its stderr when it fails.
fn ecoshard(args: &[&str]) -> String {
    let output = Command::new(BIN).args(args).output().expect("run ecoshard");
    assert!(
        output.status.success(),
        "ecoshard {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `wal_writer_delay` set to `ms` on both clusters' primaries (`ALTER
/// SYSTEM`, then a reload): how often a subscriber that commits
/// asynchronously flushes what it applied.
fn set_wal_writer_delay(scratch: &Scratch, pg_port: u16, ms: &str) {
    let bindir = ecoshard_postgres::PgBinaries::find(None)
        .expect("PostgreSQL binaries")
        .bindir;
    for (port, dir) in [
        (pg_port, scratch.dir.clone()),
        (pg_port + 10, scratch.dir.join("c2")),
    ] {
        let output = Command::new(bindir.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "ecoshard",
                "-d",
                "ecomarket",
                "-Atq",
            ])
            .args(["-p", &port.to_string()])
            .args([
                "-c",
                &format!("ALTER SYSTEM SET wal_writer_delay = '{ms}ms'"),
            ])
            .args(["-c", "SELECT pg_reload_conf()"])
            .env("PGPASSFILE", dir.join("pgpass"))
            .output()
            .expect("run psql");
        assert!(
            output.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    eprintln!("wal_writer_delay = {ms} ms on both primaries");
}

/// Modulo over s0 on `c1` and s1 on `target`.
fn layout_with_moving_on(target: &str) -> String {
    format!(
        r#"{{"strategy":"modulo","shards":[{{"name":"s0","cluster":"c1"}},{{"name":"{MOVING}","cluster":"{target}"}}]}}"#
    )
}

/// One insert: when it was sent, how long it took, whether it was taken.
struct Insert {
    sent: Instant,
    took: Duration,
    taken: bool,
}

/// What one move measured.
struct Measured {
    job: RebalanceJob,
    total: Duration,
    /// When each phase was first seen, in order.
    phases: Vec<(MovePhase, Instant)>,
    /// From the last look before the cutover to the first look after it.
    cutover: (Instant, Instant),
    inserts: Vec<Insert>,
}

/// Starts the insert load, applies the layout placing the moving shard on
/// `target` and follows its job to the end (one look every 10 ms), then
/// stops the load.
fn measure_move(addr: &str, url: &str, router: &Router, target: &str, run: u64) -> Measured {
    let stop = Arc::new(AtomicBool::new(false));
    let load = start_load(addr, router, run, &stop);
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let layout = layout_with_moving_on(target);
    let answer = ecoshard(&[
        "apply",
        "--url",
        url,
        "--layout-json",
        &layout,
        "--no-wait",
        "--format",
        "json",
    ]);
    let mut job: RebalanceJob = serde_json::from_str(&answer).expect("the job as JSON");
    let mut phases: Vec<(MovePhase, Instant)> = Vec::new();
    let mut before_cutover = started;
    let mut after_cutover = None;
    loop {
        let seen = Instant::now();
        if let Some(phase) = job.shard_move.as_ref().map(|progress| progress.phase) {
            if phases.last().is_none_or(|(last, _)| *last != phase) {
                phases.push((phase, seen));
            }
            match phase {
                MovePhase::SettingUp | MovePhase::Copying | MovePhase::CatchingUp => {
                    before_cutover = seen;
                }
                MovePhase::Cutover => {}
                _ => {
                    after_cutover.get_or_insert(seen);
                }
            }
        }
        if job.state != JobState::Running {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        job = job_now(addr, job.id);
    }
    let total = started.elapsed();
    if phases
        .last()
        .is_none_or(|(last, _)| *last != MovePhase::Done)
    {
        phases.push((MovePhase::Done, Instant::now()));
    }
    stop.store(true, Ordering::Relaxed);
    let inserts = load
        .into_iter()
        .flat_map(|thread| thread.join().unwrap())
        .collect();
    assert_eq!(job.state, JobState::Done, "{job:?}");
    Measured {
        job,
        total,
        phases,
        cutover: (
            before_cutover,
            after_cutover.expect("the job passed its cutover"),
        ),
        inserts,
    }
}

/// `GET /api/rebalance/{id}`.
fn job_now(addr: &str, id: u64) -> RebalanceJob {
    let (status, body) = blocking::request(
        addr,
        "GET",
        &format!("/api/rebalance/{id}"),
        None,
        Duration::from_secs(30),
    )
    .expect("the job");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("the job as JSON")
}

/// ECOSHARD_BENCH_CLIENTS threads inserting keys of the moving shard
/// (`sm<run>_<client>_<n>`), each at its share of ECOSHARD_BENCH_RATE,
/// until `stop`.
fn start_load(
    addr: &str,
    router: &Router,
    run: u64,
    stop: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<Vec<Insert>>> {
    let clients = setting("ECOSHARD_BENCH_CLIENTS", 4).max(1);
    let rate = setting("ECOSHARD_BENCH_RATE", 200).max(1);
    let every = Duration::from_secs_f64(clients as f64 / rate as f64);
    let moving = router
        .shards()
        .iter()
        .position(|shard| shard.name == MOVING)
        .unwrap();
    (0..clients)
        .map(|client| {
            let (addr, router, stop) = (addr.to_owned(), router.clone(), Arc::clone(stop));
            std::thread::spawn(move || {
                let mut keys = (0..)
                    .map(|n| format!("sm{run}_{client}_{n}"))
                    .filter(|key| router.locate(key.as_bytes()) == moving);
                let mut inserts = Vec::new();
                let mut next = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let key = keys.next().unwrap();
                    let body = format!(r#"{{"user_id":"{key}"}}"#);
                    let sent = Instant::now();
                    let answer =
                        blocking::request(&addr, "POST", "/api/users", Some(&body), INSERT_WITHIN);
                    let taken = matches!(answer, Some((201, _)));
                    inserts.push(Insert {
                        sent,
                        took: sent.elapsed(),
                        taken,
                    });
                    next += every;
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
                inserts
            })
        })
        .collect()
}

impl Measured {
    /// One row of the table.
    fn print(&self, run: u64, target: &str) {
        let from = if target == "c1" { "c2" } else { "c1" };
        let progress = self.job.shard_move.as_deref();
        let phase_secs = |phase: MovePhase| {
            let Some(at) = self.phases.iter().position(|(seen, _)| *seen == phase) else {
                return "–".to_owned();
            };
            let (_, end) = self.phases[at + 1];
            format!("{:.2}", (end - self.phases[at].1).as_secs_f64())
        };
        let (start, end) = self.cutover;
        let in_cutover: Vec<&Insert> = self
            .inserts
            .iter()
            .filter(|insert| insert.sent <= end && insert.sent + insert.took >= start)
            .collect();
        let all: Vec<&Insert> = self.inserts.iter().collect();
        println!(
            "| {run} | {MOVING} {from} → {target} | {} | {:.2} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            progress.map_or(0, |progress| progress.rows_total),
            self.total.as_secs_f64(),
            phase_secs(MovePhase::SettingUp),
            phase_secs(MovePhase::Copying),
            phase_secs(MovePhase::CatchingUp),
            phase_secs(MovePhase::Cutover),
            phase_secs(MovePhase::Verifying),
            phase_secs(MovePhase::Cleanup),
            progress
                .and_then(|progress| progress.write_pause_ms)
                .map_or("–".to_owned(), |pause| pause.to_string()),
            latencies(&in_cutover),
            latencies(&all),
            self.inserts.iter().filter(|insert| !insert.taken).count(),
        );
    }
}

/// `count | p50 | p99 | max` of the inserts' latencies, ms.
fn latencies(inserts: &[&Insert]) -> String {
    let mut took: Vec<Duration> = inserts.iter().map(|insert| insert.took).collect();
    took.sort_unstable();
    if took.is_empty() {
        return "0 | – | – | –".to_owned();
    }
    let pick = |p: f64| {
        let index = ((took.len() - 1) as f64 * p / 100.0).round() as usize;
        format!("{:.1}", took[index].as_secs_f64() * 1_000.0)
    };
    format!(
        "{} | {} | {} | {}",
        took.len(),
        pick(50.0),
        pick(99.0),
        pick(100.0)
    )
}
