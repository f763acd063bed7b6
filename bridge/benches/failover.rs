//! Time to promote a standby: `ecoshard serve --auto-failover` with its own
//! local cluster, a writer inserting through the bridge without pause, and
//! the primary's postmaster killed with SIGKILL, several times over. Per run:
//! from the kill to the first write the bridge acknowledges again (what a
//! client sees), the bridge's own account (first failed health check →
//! decision → `pg_promote` → writes resumed), and the old primary's way
//! back as a standby (`POST /api/nodes/{name}/start`: pg_rewind).
//!
//! `cargo bench -p ecoshard-bridge --bench failover`; settings from the
//! environment: ECOSHARD_BENCH_FAILOVERS (runs per mode, 5),
//! ECOSHARD_BENCH_SYNC (`0` asynchronous only, `1` synchronous only, unset both),
//! ECOSHARD_BENCH_LOG (set: show the bridge's log).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ecoshard_core::wire::FailoverEvent;

#[path = "../tests/common/blocking.rs"]
mod blocking;

use blocking::{
    Serve, all_streaming, cluster_view, eventually, free_ports, http, primary_of, setting,
};

/// One failover, as measured.
struct Run {
    from: String,
    to: String,
    /// SIGKILL → first acknowledged write, ms.
    client_ms: f64,
    /// Writes refused (503) meanwhile.
    refused: u64,
    event: FailoverEvent,
    /// `POST …/start` of the old primary (rebuilt as a standby), ms.
    rejoin_ms: f64,
}

fn main() {
    let runs = setting("ECOSHARD_BENCH_FAILOVERS", 5) as usize;
    let modes: &[bool] = match std::env::var("ECOSHARD_BENCH_SYNC").as_deref() {
        Ok("0") => &[false],
        Ok("1") => &[true],
        _ => &[false, true],
    };
    println!(
        "failover benchmark: {runs} runs per mode, SIGKILL of the primary's postmaster, \
         a writer inserting one row at a time through the bridge, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for &sync in modes {
        let results = bench_mode(sync, runs);
        report(sync, &results);
    }
}

fn bench_mode(sync: bool, runs: usize) -> Vec<Run> {
    let pg_port = free_ports(29440, 3);
    let http_port = free_ports(28480, 1);
    let addr = format!("127.0.0.1:{http_port}");
    let data_dir = std::env::temp_dir().join(format!(
        "ecoshard-bench-failover-{}-{}",
        if sync { "sync" } else { "async" },
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&data_dir);
    let (pg_port_arg, data_dir_arg) = (pg_port.to_string(), data_dir.display().to_string());
    let mut args = vec![
        "--pg-port",
        &pg_port_arg,
        "--auto-failover",
        "--data-dir",
        &data_dir_arg,
    ];
    if sync {
        args.push("--sync-replication");
    }
    let mut bridge = Serve::start_with(&addr, &args, |command| {
        command.env("RUST_LOG", "warn");
        if std::env::var_os("ECOSHARD_BENCH_LOG").is_some() {
            command.stderr(Stdio::inherit());
        }
    });
    bridge.data_dir = Some(data_dir.clone());
    let mut results = Vec::new();
    for index in 0..runs {
        wait_for("every node to stream", || {
            all_streaming(&cluster_view(&addr))
        });
        // Some rows first, so the standbys have work to catch up on.
        let (status, body) =
            http(&addr, "POST", "/api/users/bulk", Some(r#"{"count":1000}"#)).expect("bulk insert");
        assert_eq!(status, 201, "{body}");
        let from = primary_of(&cluster_view(&addr));
        let previous = cluster_view(&addr).failover.last.map(|event| event.at_ms);
        kill(&data_dir, &from);
        let killed = Instant::now();
        let mut refused = 0;
        let mut late = 0;
        let mut sequence = 0;
        loop {
            sequence += 1;
            let body = format!(r#"{{"user_id":"f{index}_{sequence}"}}"#);
            match http(&addr, "POST", "/api/users", Some(&body)) {
                // A backend of the killed postmaster may still take a write
                // for a moment: wait for one on the new primary.
                Some((201, answer)) if !answer.contains(&format!(r#""served_by":"{from}""#)) => {
                    break;
                }
                Some((201, _)) => late += 1,
                Some((503, _)) => {
                    refused += 1;
                    std::thread::sleep(Duration::from_millis(2));
                }
                other => panic!("unexpected answer to a write: {other:?}"),
            }
            assert!(
                killed.elapsed() < Duration::from_secs(120),
                "writes never resumed"
            );
        }
        let client_ms = killed.elapsed().as_secs_f64() * 1_000.0;
        if late > 0 {
            println!(
                "run {}: {late} writes taken by {from}'s backends after the kill",
                index + 1
            );
        }
        let view = cluster_view(&addr);
        let event = view
            .failover
            .last
            .filter(|event| Some(event.at_ms) != previous)
            .expect("the bridge reports the failover");
        let rejoin = Instant::now();
        let (status, body) = http(&addr, "POST", &format!("/api/nodes/{from}/start"), None)
            .expect("start the old primary");
        assert_eq!(status, 200, "{body}");
        let rejoin_ms = rejoin.elapsed().as_secs_f64() * 1_000.0;
        results.push(Run {
            from,
            to: event.to.clone(),
            client_ms,
            refused,
            event,
            rejoin_ms,
        });
    }
    drop(bridge);
    results
}

fn report(sync: bool, runs: &[Run]) {
    println!();
    println!(
        "{} replication:",
        if sync {
            "synchronous (ANY 1)"
        } else {
            "asynchronous"
        }
    );
    println!(
        "| run | from → to | kill → first acknowledged write | first failed check → decision | pg_promote | first failed check → writes resumed | writes refused (503) | old primary back as standby (pg_rewind + start) |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|");
    for (index, run) in runs.iter().enumerate() {
        println!(
            "| {} | {} → {} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {} | {:.0} ms |",
            index + 1,
            run.from,
            run.to,
            run.client_ms,
            run.event.detect_ms,
            run.event.promote_ms,
            run.event.total_ms,
            run.refused,
            run.rejoin_ms
        );
    }
    let column = |pick: fn(&Run) -> f64| {
        let mut values: Vec<f64> = runs.iter().map(pick).collect();
        values.sort_by(f64::total_cmp);
        (
            values[values.len() / 2],
            values[0],
            values[values.len() - 1],
        )
    };
    for (name, pick) in [
        (
            "kill → first acknowledged write",
            (|run| run.client_ms) as fn(&Run) -> f64,
        ),
        ("pg_promote alone", |run| run.event.promote_ms),
        ("first failed check → writes resumed", |run| {
            run.event.total_ms
        }),
        ("old primary back as standby", |run| run.rejoin_ms),
    ] {
        let (median, min, max) = column(pick);
        println!("{name}: median {median:.0} ms (min {min:.0}, max {max:.0})");
    }
}

/// SIGKILL to the node's postmaster (pid in the first line of postmaster.pid).
fn kill(data_dir: &Path, node: &str) {
    let pid_file = data_dir.join(node).join("postmaster.pid");
    let text = std::fs::read_to_string(&pid_file).expect("postmaster.pid");
    let pid = text.lines().next().expect("a pid").trim().to_string();
    let status = Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -KILL {pid}");
}

fn wait_for(what: &str, condition: impl FnMut() -> bool) {
    let held = eventually(Duration::from_secs(180), condition);
    assert!(held, "timed out waiting for {what}");
}
