//! The binary killed (SIGKILL) in the middle of a rebalance: the next start
//! resumes the job and finishes it with every row once and unchanged; and
//! `ecoshard apply` from a terminal, with its exit codes.

mod common;
mod rows;

use std::collections::BTreeMap;
use std::process::Output;
use std::time::Duration;

use common::blocking::{Scratch, Serve, check_refused, ecoshard, eventually, http};
use common::free_ports;
use ecoshard_core::wire::{JobState, LayoutView, RebalanceJob};
use ecoshard_core::{Layout, StrategyKind, thousands};
use rows::{assert_no_key_twice, snapshot};

fn job(addr: &str, id: u64) -> RebalanceJob {
    let (status, body) = http(addr, "GET", &format!("/api/rebalance/{id}"), None).expect("bridge");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// `ecoshard apply ARGS`.
fn apply(args: &[&str]) -> Output {
    ecoshard(&[&["apply"], args].concat())
}

#[test]
fn a_bridge_killed_mid_rebalance_resumes_and_finishes_it_and_apply_follows_a_job() {
    const BATCH: usize = 100;
    let scratch = Scratch::new("cli-rebalance");
    let port = free_ports(29600, 3);
    let addr = format!("127.0.0.1:{}", free_ports(29700, 1));
    let (port_arg, data_dir, batch) = (
        port.to_string(),
        scratch.dir.display().to_string(),
        BATCH.to_string(),
    );
    let args = [
        "--pg-port",
        &port_arg,
        "--data-dir",
        &data_dir,
        "--strategy",
        "modulo",
        "--shards",
        "3",
        "--rebalance-batch",
        &batch,
    ];
    let mut bridge = Serve::start(&addr, &args);
    let mut keys = Vec::new();
    for prefix in ["a", "b"] {
        let body = format!(r#"{{"count":10000,"prefix":"{prefix}"}}"#);
        let (status, text) = http(&addr, "POST", "/api/users/bulk", Some(&body)).unwrap();
        assert_eq!(status, 201, "{text}");
        keys.extend((0..10_000).map(|index| format!("{prefix}{index}")));
    }

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let passfile = std::fs::read_to_string(scratch.dir.join("pgpass")).unwrap();
    let password = ecoshard_postgres::pgpass::lookup(&passfile, "ecoshard").unwrap();
    let connect = || {
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(port)
            .user("ecoshard")
            .password(&password)
            .dbname("ecomarket");
        runtime.block_on(async {
            let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(connection);
            client
        })
    };
    let client = connect();
    let before = runtime.block_on(snapshot(&client, ""));
    assert_eq!(before.rows, 20_000);

    // The mover goes by (from, to) shard names, then user_id, BATCH rows at
    // a time: holding the 251st row of the first pair stops it after exactly
    // two batches.
    let three = Layout::with_count(StrategyKind::Modulo, 3)
        .unwrap()
        .build()
        .unwrap();
    let four = Layout::with_count(StrategyKind::Modulo, 4)
        .unwrap()
        .build()
        .unwrap();
    let mut moves: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for key in &keys {
        let (from, to) = (
            three.locate_shard(key.as_bytes()).name.clone(),
            four.locate_shard(key.as_bytes()).name.clone(),
        );
        if from != to {
            moves.entry((from, to)).or_default().push(key.clone());
        }
    }
    let total: usize = moves.values().map(Vec::len).sum();
    let ((first_from, _), first_keys) = moves.iter_mut().next().unwrap();
    first_keys.sort_unstable();
    let held = first_keys[2 * BATCH + 50].clone();
    let mut holder = connect();
    let lock = runtime.block_on(holder.transaction()).unwrap();
    runtime
        .block_on(lock.execute(
            &format!("SELECT 1 FROM \"shard_{first_from}\".users WHERE user_id = $1 FOR UPDATE"),
            &[&held],
        ))
        .unwrap();

    let (status, body) = http(
        &addr,
        "PUT",
        "/api/layout",
        Some(r#"{"strategy":"modulo","shards":4}"#),
    )
    .unwrap();
    assert_eq!(status, 202, "{body}");
    let started: RebalanceJob = serde_json::from_str(&body).unwrap();
    // The PUT waits for the plan half a second at most; the job has it then.
    let planned = eventually(Duration::from_secs(60), || {
        job(&addr, started.id).plan.is_some()
    });
    assert!(planned, "{:?}", job(&addr, started.id));
    assert_eq!(job(&addr, started.id).total, total as u64);
    let stopped = eventually(Duration::from_secs(60), || {
        job(&addr, started.id).moved == 2 * BATCH as u64
    });
    assert!(stopped, "{:?}", job(&addr, started.id));
    std::thread::sleep(Duration::from_millis(300));
    let midway = job(&addr, started.id);
    assert_eq!(midway.state, JobState::Running);
    assert!(
        0 < midway.moved && midway.moved < midway.total,
        "{midway:?}"
    );
    assert_eq!(midway.moved, 2 * BATCH as u64, "held on the third batch");

    // A second layout meanwhile: refused (409 → exit code 1), with the
    // command that follows the job in the way rather than a URL to poll.
    let url = format!("http://{addr}");
    let refused = apply(&["--url", &url, "--strategy", "ring", "--shards", "3"]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(
        stderr,
        format!(
            "error: rebalance job {id} is running (200 of {} rows moved); one job at a time: \
             ecoshard job {id} --follow waits for it (rebalance_running)\n",
            thousands(total as u64),
            id = started.id
        )
    );

    // ecoshard status and ecoshard job show the running job.
    let status = ecoshard(&["status", "--url", &url]);
    let table = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let running_line = format!(
        "job {id}: layout 1 → 2, running: 200 of {} rows moved (ecoshard job {id} --follow follows it)",
        thousands(total as u64),
        id = started.id
    );
    assert!(table.lines().any(|line| line == running_line), "{table}");
    assert!(
        table.contains("layout version 2: modulo, seed 0, 4 shards"),
        "{table}"
    );
    let shown = ecoshard(&["job", "--url", &url, "--format", "json"]);
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    let shown: RebalanceJob = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(
        (shown.id, shown.state, shown.moved),
        (started.id, JobState::Running, 200)
    );
    assert_eq!(shown.plan.map(|plan| plan.moved), Some(total as u64));

    // SIGKILL: nothing of the bridge runs on; its watchdog stops the servers
    // (ending the held transaction too).
    bridge.kill();
    drop(lock);
    drop(holder);
    drop(client);
    let bridge = Serve::start(&addr, &args);
    // ecoshard job --follow waits for the resumed job to end.
    let id = started.id.to_string();
    let followed = ecoshard(&["job", &id, "--url", &url, "--follow", "--format", "json"]);
    assert!(
        followed.status.success(),
        "{}",
        String::from_utf8_lossy(&followed.stderr)
    );
    let followed: RebalanceJob = serde_json::from_slice(&followed.stdout).unwrap();
    assert_eq!(followed.state, JobState::Done, "{followed:?}");
    let done = job(&addr, started.id);
    assert_eq!(done.state, JobState::Done, "{done:?}");
    assert_eq!(followed.moved, done.moved);
    assert_eq!((done.moved, done.total), (total as u64, total as u64));
    assert_eq!(done.to_version, 2);

    let client = connect();
    let job_rows = || {
        runtime
            .block_on(client.query_one("SELECT count(*) FROM ecoshard.rebalance", &[]))
            .unwrap()
            .get::<_, i64>(0)
    };
    let after = runtime.block_on(snapshot(&client, ""));
    assert_no_key_twice(&after);
    assert_eq!(
        (after.rows, &after.checksum),
        (before.rows, &before.checksum)
    );
    for (user_id, shards) in &after.shards_of {
        assert_eq!(
            shards[0],
            four.locate_shard(user_id.as_bytes()).name,
            "{user_id}"
        );
    }

    // ecoshard apply: back to 3 shards, followed to the end, JSON on stdout.
    let back = apply(&[
        "--url",
        &url,
        "--strategy",
        "modulo",
        "--shards",
        "3",
        "--format",
        "json",
    ]);
    assert!(
        back.status.success(),
        "{}",
        String::from_utf8_lossy(&back.stderr)
    );
    let back: RebalanceJob = serde_json::from_slice(&back.stdout).unwrap();
    assert_eq!(back.state, JobState::Done);
    assert_eq!((back.from_version, back.to_version), (2, 3));
    assert_eq!(back.moved, back.total);
    assert_eq!(back.plan.as_ref().map(|plan| plan.moved), Some(back.total));
    let home = runtime.block_on(snapshot(&client, ""));
    assert_eq!(home.shards_of, before.shards_of);
    assert_eq!(home.checksum, before.checksum);
    // The same layout again: nothing moves, nothing is stored (table output,
    // then the layout in force as JSON).
    let jobs_before = job_rows();
    let same = apply(&["--url", &url, "--strategy", "modulo", "--shards", "3"]);
    assert!(same.status.success());
    let text = String::from_utf8_lossy(&same.stdout);
    assert_eq!(text, "the layout is already version 3; nothing to move\n");
    let same = apply(&[
        "--url",
        &url,
        "--strategy",
        "modulo",
        "--shards",
        "3",
        "--format",
        "json",
    ]);
    assert!(same.status.success());
    let in_force: LayoutView = serde_json::from_slice(&same.stdout).unwrap();
    assert_eq!(in_force.version, 3);
    assert_eq!(job_rows(), jobs_before);

    // One case a line: the arguments, then the exit code and what its one
    // line says. The last two: serve refuses a first layout the database
    // cannot take, before it starts anything.
    let nowhere = [
        "--listen",
        "127.0.0.1:1",
        "--data-dir",
        "/nonexistent/ecoshard",
    ];
    #[rustfmt::skip]
    let cases: [(&[&str], i32, &str); 9] = [
        (&["apply", "--url", &url, "--strategy", "ring", "--shards", "0"], 2, "at least one shard"),
        (&["apply", "--url", &url, "--strategy", "bounded-load", "--shards", "4"], 2, "bounded-load is not applied"),
        (&["apply", "--url", &url, "--layout-json", r#"{"strategy":"ring","shards":3,"vnodes":0}"#], 2, "virtual nodes"),
        (&["apply", "--url", &url, "--layout-json", "@/nonexistent/layout.json"], 2, "/nonexistent/layout.json"),
        (&["apply", "--url", &url, "--shards", "4"], 2, "--strategy"),
        (&["apply", "--url", "ftp://example", "--strategy", "ring", "--shards", "4"], 2, "http://HOST:PORT"),
        (&["apply", "--url", "http://127.0.0.1:1", "--strategy", "ring", "--shards", "4"], 1, "cannot reach the bridge"),
        (&[&["serve", "--strategy", "bounded-load", "--shards", "3"][..], &nowhere].concat(), 2, "bounded-load"),
        (&[&["serve", "--strategy", "ring", "--shards", "257"][..], &nowhere].concat(), 2, "at most 256"),
    ];
    for (args, code, expected) in cases {
        check_refused(args, code, expected);
    }

    bridge.stop();
}

#[test]
fn status_and_job_show_a_bridge_s_cluster_layout_rows_and_jobs() {
    let scratch = Scratch::new("cli-status");
    let port = free_ports(30200, 3);
    let addr = format!("127.0.0.1:{}", free_ports(30300, 1));
    let url = format!("http://{addr}");
    let data_dir = scratch.dir.display().to_string();
    let _bridge = Serve::start(
        &addr,
        &["--pg-port", &port.to_string(), "--data-dir", &data_dir],
    );

    // No job yet; an unknown id; a bridge that is not there; URLs that are
    // not the bridge's. One case a line: the arguments, then the exit code
    // and what its one line says.
    #[rustfmt::skip]
    let cases: [(&[&str], i32, &str); 6] = [
        (&["job", "--url", &url], 1, "no rebalance job since it started"),
        (&["job", "99", "--url", &url], 2, "(job_not_found)"),
        (&["status", "--url", "http://127.0.0.1:1"], 1, "cannot reach the bridge at http://127.0.0.1:1/api/cluster"),
        (&["job", "--url", "http://127.0.0.1:1"], 1, "cannot reach the bridge at http://127.0.0.1:1/api/events"),
        (&["status", "--url", "not a url"], 2, "--url \"not a url\": not a URL"),
        (&["job", "1", "--url", "https://127.0.0.1:1"], 2, "use http://HOST:PORT"),
    ];
    for (args, code, expected) in cases {
        check_refused(args, code, expected);
    }

    let (status, body) = http(&addr, "POST", "/api/users/bulk", Some(r#"{"count":1000}"#)).unwrap();
    assert_eq!(status, 201, "{body}");
    // Rows are counted every second or so: wait until status has counted them.
    let mut table = String::new();
    let counted = eventually(Duration::from_secs(60), || {
        let output = ecoshard(&["status", "--url", &url]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        table = String::from_utf8_lossy(&output.stdout).into_owned();
        table
            .lines()
            .any(|line| line.starts_with("total") && line.ends_with(" 1,000"))
    });
    assert!(counted, "{table}");
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines[0], "local cluster (started by the bridge)", "{table}");
    assert!(lines[2].starts_with("primary    primary  up "), "{table}");
    assert!(lines[3].starts_with("standby-1  standby  "), "{table}");
    assert!(lines[4].starts_with("standby-2  standby  "), "{table}");
    assert!(
        lines.contains(&"layout version 1: ring, seed 0, 160 vnodes per shard, 3 shards"),
        "{table}"
    );
    assert!(
        lines.contains(&"no rebalance job since the bridge started"),
        "{table}"
    );

    // A job started without waiting, then followed by `ecoshard job` (the
    // running or last one) to its end; status shows it done.
    let started = ecoshard(&[
        "apply",
        "--url",
        &url,
        "-s",
        "ring",
        "-n",
        "4",
        "--no-wait",
        "--format",
        "json",
    ]);
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    let started: RebalanceJob = serde_json::from_slice(&started.stdout).unwrap();
    let followed = ecoshard(&["job", "--url", &url, "--follow", "--format", "json"]);
    assert!(
        followed.status.success(),
        "{}",
        String::from_utf8_lossy(&followed.stderr)
    );
    let followed: RebalanceJob = serde_json::from_slice(&followed.stdout).unwrap();
    assert_eq!((followed.id, followed.state), (started.id, JobState::Done));
    assert_eq!(followed.moved, followed.total);
    let report = ecoshard(&["status", "--url", &url, "--format", "json"]);
    assert!(report.status.success());
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(report["job"]["id"], started.id);
    assert_eq!(report["job"]["state"], "done");
    assert_eq!(report["cluster"]["layout"]["version"], 2);
    assert_eq!(report["cluster"]["nodes"].as_array().map(Vec::len), Some(3));
    assert!(report["stats"]["rows"].is_array(), "{report}");
    let table = ecoshard(&["job", &started.id.to_string(), "--url", &url]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert_eq!(
        table.lines().next(),
        Some(format!("job {}: layout 1 → 2, done", started.id).as_str()),
        "{table}"
    );
}
