//! Rows moved per second by a rebalance, at several batch sizes (rows per
//! moving transaction): 100,000 rows under modulo, 3 → 4 shards and back
//! (about 75,000 rows move each way), through `PUT /api/layout` on
//! `ecoshard serve` with its own local cluster; and ring 3 → 4 and back at
//! the default batch size.
//!
//! `cargo bench -p ecoshard-bridge --bench rebalance`; settings from the
//! environment: ECOSHARD_BENCH_ROWS (100000), ECOSHARD_BENCH_BATCHES
//! (comma-separated batch sizes, "100,250,1000,2000,5000,10000,25000"),
//! ECOSHARD_BENCH_REPEAT (round trips 3 → 4 → 3 per batch size, 2);
//! ECOSHARD_BENCH_ACROSS=1 measures keys moving between two clusters
//! instead (see [`across`]).
//! Stops its bridge and servers and deletes its directory at the end.

use std::time::{Duration, Instant};

use ecoshard_core::wire::{JobState, RebalanceJob};

#[path = "../tests/common/blocking.rs"]
mod blocking;

use blocking::{Scratch, Serve, free_ports, setting};

/// A request answered within 120 s (a rebalance's request plans first).
fn http(addr: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    blocking::request(addr, method, path, body, Duration::from_secs(120))
        .expect("an answer from the bridge")
}

fn serve(scratch: &Scratch, pg_port: u16, addr: &str, batch: usize) -> Serve {
    serve_clusters(scratch, pg_port, addr, batch, 1)
}

/// `ecoshard serve` over `clusters` local clusters (more are added beside
/// `c1` without moving its data).
fn serve_clusters(
    scratch: &Scratch,
    pg_port: u16,
    addr: &str,
    batch: usize,
    clusters: usize,
) -> Serve {
    let (pg_port, batch, data_dir, clusters) = (
        pg_port.to_string(),
        batch.to_string(),
        scratch.dir.display().to_string(),
        clusters.to_string(),
    );
    Serve::start(
        addr,
        &[
            "--pg-port",
            &pg_port,
            "--strategy",
            "modulo",
            "--shards",
            "3",
            "--rebalance-batch",
            &batch,
            "--clusters",
            &clusters,
            "--data-dir",
            &data_dir,
        ],
    )
}

/// Ring over s0…s2 on `c1` and, when `s3_on` names a cluster, s3 there.
fn ring_layout(s3_on: Option<&str>) -> String {
    let mut shards: Vec<String> = (0..3)
        .map(|index| format!(r#"{{"name":"s{index}","cluster":"c1"}}"#))
        .collect();
    if let Some(cluster) = s3_on {
        shards.push(format!(r#"{{"name":"s3","cluster":"{cluster}"}}"#));
    }
    format!(r#"{{"strategy":"ring","shards":[{}]}}"#, shards.join(","))
}

/// With ECOSHARD_BENCH_ACROSS=1: keys moving between two clusters against
/// the same moves within one, in the same run: ring 3 → 4 moves exactly
/// the keys of the new shard s3, put on `c2` (every move crosses) or on
/// `c1` (none does), and back; `ECOSHARD_BENCH_BATCHES` sizes.
fn across(scratch: &Scratch, pg_port: u16, addr: &str, batches: &[usize], repeat: usize) {
    println!("| keys move | batch (rows) | rows moved | moving rows/s | wall s |");
    println!("|---|---:|---:|---:|---:|");
    for batch in batches {
        let _bridge = serve_clusters(scratch, pg_port, addr, *batch, 2);
        let (status, body) = http(addr, "PUT", "/api/layout", Some(&ring_layout(None)));
        if status == 202 {
            let job: RebalanceJob = serde_json::from_str(&body).unwrap();
            while http(addr, "GET", &format!("/api/rebalance/{}", job.id), None)
                .1
                .contains("\"running\"")
            {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        for _ in 0..repeat {
            for (moves, s3_on) in [("within c1", "c1"), ("c1 ↔ c2", "c2")] {
                for layout in [ring_layout(Some(s3_on)), ring_layout(None)] {
                    let (job, wall) = rebalance(addr, &layout);
                    println!(
                        "| {moves} | {batch} | {} | {:.0} | {:.2} |",
                        job.moved,
                        job.rows_per_sec,
                        wall.as_secs_f64()
                    );
                }
            }
        }
    }
}

/// Applies `layout` and waits for the end: the job and the wall time from
/// the request to the job's end (planning included).
fn rebalance(addr: &str, layout: &str) -> (RebalanceJob, Duration) {
    let started = Instant::now();
    let (status, body) = http(addr, "PUT", "/api/layout", Some(layout));
    assert_eq!(status, 202, "{body}");
    let mut job: RebalanceJob = serde_json::from_str(&body).unwrap();
    while job.state == JobState::Running {
        std::thread::sleep(Duration::from_millis(10));
        let (status, body) = http(addr, "GET", &format!("/api/rebalance/{}", job.id), None);
        assert_eq!(status, 200, "{body}");
        job = serde_json::from_str(&body).unwrap();
    }
    assert_eq!(job.state, JobState::Done, "{job:?}");
    assert_eq!(job.moved, job.total);
    (job, started.elapsed())
}

fn main() {
    let rows = setting("ECOSHARD_BENCH_ROWS", 100_000);
    let batches: Vec<usize> = std::env::var("ECOSHARD_BENCH_BATCHES")
        .unwrap_or_else(|_| "100,250,1000,2000,5000,10000,25000".into())
        .split(',')
        .filter_map(|size| size.trim().parse().ok())
        .collect();
    let pg_port = free_ports(29800, 13);
    let addr = format!("127.0.0.1:{}", free_ports(29900, 1));
    let scratch = Scratch::new("bench-rebalance");

    {
        let _bridge = serve(&scratch, pg_port, &addr, 1_000);
        let mut inserted = 0;
        while inserted < rows {
            let count = (rows - inserted).min(10_000);
            let body = format!(r#"{{"count":{count},"prefix":"r{inserted}_"}}"#);
            let (status, text) = http(&addr, "POST", "/api/users/bulk", Some(&body));
            assert_eq!(status, 201, "{text}");
            inserted += count;
        }
        eprintln!("inserted {rows} rows");
    }

    let repeat = setting("ECOSHARD_BENCH_REPEAT", 2) as usize;
    if setting("ECOSHARD_BENCH_ACROSS", 0) == 1 {
        across(&scratch, pg_port, &addr, &batches, repeat);
        return;
    }
    println!(
        "| layout change | batch (rows) | rows moved | moving rows/s | wall s (plan + move) |"
    );
    println!("|---|---:|---:|---:|---:|");
    let report = |change: &str, batch: usize, job: &RebalanceJob, wall: Duration| {
        println!(
            "| {change} | {batch} | {} | {:.0} | {:.2} |",
            job.moved,
            job.rows_per_sec,
            wall.as_secs_f64()
        );
    };
    let mut summary = Vec::new();
    for batch in &batches {
        let _bridge = serve(&scratch, pg_port, &addr, *batch);
        let mut rates = Vec::new();
        for _ in 0..repeat {
            for (change, layout) in [
                ("modulo 3 → 4", r#"{"strategy":"modulo","shards":4}"#),
                ("modulo 4 → 3", r#"{"strategy":"modulo","shards":3}"#),
            ] {
                let (job, wall) = rebalance(&addr, layout);
                report(change, *batch, &job, wall);
                rates.push(job.rows_per_sec);
            }
        }
        rates.sort_by(f64::total_cmp);
        summary.push((*batch, rates));
    }
    let batch = ecoshard_bridge::DEFAULT_BATCH_ROWS;
    let _bridge = serve(&scratch, pg_port, &addr, batch);
    rebalance(&addr, r#"{"strategy":"ring","shards":3}"#);
    let (job, wall) = rebalance(&addr, r#"{"strategy":"ring","shards":4}"#);
    report("ring 3 → 4", batch, &job, wall);
    let (job, wall) = rebalance(&addr, r#"{"strategy":"ring","shards":3}"#);
    report("ring 4 → 3", batch, &job, wall);

    println!();
    println!("| batch (rows) | runs | median rows/s | min | max | ms per batch (at the median) |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for (batch, rates) in summary {
        let median = rates[rates.len() / 2];
        println!(
            "| {batch} | {} | {median:.0} | {:.0} | {:.0} | {:.1} |",
            rates.len(),
            rates[0],
            rates[rates.len() - 1],
            batch as f64 / median * 1_000.0
        );
    }
}
