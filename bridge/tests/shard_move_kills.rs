//! The binary killed (SIGKILL) in each phase of a whole-shard move between
//! two clusters, [`KILL_RUNS`] times, the shard going back and forth, with
//! inserts running: each restart resumes the move and converges — every
//! acknowledged insert readable, verify clean (each row once, where the
//! core and the placement say), the source's schema gone, no publication,
//! subscription or slot left.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::blocking::{Scratch, Serve, eventually_some, http};
use common::{connect_primary_in, free_ports};
use ecoshard_core::wire::{JobState, MovePhase, RebalanceJob, VerifyReport};
use ecoshard_core::{Layout, StrategyKind};

/// Kill runs: each moves shard s0 to the other cluster and kills the
/// bridge once, in the phase `PHASES[run % PHASES.len()]` (or the first
/// later point the poll sees); the issue asks for at least 20 over both
/// kinds of move (the key mover's are its own).
const KILL_RUNS: usize = 20;
/// The phases killed in, in turn.
const PHASES: [MovePhase; 6] = [
    MovePhase::SettingUp,
    MovePhase::Copying,
    MovePhase::CatchingUp,
    MovePhase::Cutover,
    MovePhase::Verifying,
    MovePhase::Cleanup,
];
/// The longest a move may take to converge after a restart.
const JOB_LIMIT: Duration = Duration::from_secs(300);

fn job(addr: &str, id: u64) -> Option<RebalanceJob> {
    let (status, body) = http(addr, "GET", &format!("/api/rebalance/{id}"), None)?;
    (status == 200).then(|| serde_json::from_str(&body).unwrap())
}

/// Ring over three shards, s0 on `s0_on`, s1 on c2, s2 on c1.
fn layout(s0_on: &str) -> String {
    let mut layout = Layout::with_count(StrategyKind::Ring, 3).unwrap();
    for (shard, cluster) in layout.shards.iter_mut().zip([s0_on, "c2", "c1"]) {
        shard.cluster = Some(cluster.to_string());
    }
    serde_json::to_string(&layout).unwrap()
}

/// Inserts `prefixN` one after another until `stop`, through restarts
/// (refused connections are retried): the ids acknowledged (201).
fn insert_until(addr: String, prefix: String, stop: Arc<AtomicBool>) -> Vec<String> {
    let mut acknowledged = Vec::new();
    let mut index = 0;
    while !stop.load(Ordering::Relaxed) {
        let id = format!("{prefix}{index}");
        let body = format!(r#"{{"user_id":"{id}"}}"#);
        match http(&addr, "POST", "/api/users", Some(&body)) {
            Some((201, _)) => {
                acknowledged.push(id);
                index += 1;
            }
            // Repeating an insert whose outcome is unknown is safe: 200
            // when it was stored.
            Some((200, _)) => {
                acknowledged.push(id);
                index += 1;
            }
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    acknowledged
}

/// Waits for job `id` to reach `phase` (or a later point), then kills the
/// bridge; the phase it was last seen in.
fn kill_in(bridge: &mut Serve, addr: &str, id: u64, phase: MovePhase) -> String {
    let seen = eventually_some(JOB_LIMIT, || {
        let job = job(addr, id)?;
        let at = job.shard_move.as_ref().map(|progress| progress.phase);
        let reached = job.state != JobState::Running
            || at.is_some_and(|at| {
                PHASES.iter().position(|p| *p == at) >= PHASES.iter().position(|p| *p == phase)
            });
        reached.then(|| format!("{:?} {at:?}", job.state))
    })
    .expect("the move never reached the phase");
    bridge.kill();
    seen
}

#[test]
fn a_bridge_killed_in_every_phase_of_a_shard_move_resumes_it_and_converges() {
    let scratch = Scratch::new("shard-move-kills");
    let port = free_ports(23000, 12).to_string();
    let addr = format!("127.0.0.1:{}", free_ports(23100, 1));
    let data_dir = scratch.dir.display().to_string();
    let args = [
        "--pg-port",
        &port,
        "--data-dir",
        &data_dir,
        "--clusters",
        "2",
        "--standbys",
        "1",
    ];
    let mut bridge = Serve::start(&addr, &args);
    for index in 0..2_000 {
        let body = format!(r#"{{"user_id":"before_{index}"}}"#);
        assert_eq!(
            http(&addr, "POST", "/api/users", Some(&body)).map(|(status, _)| status),
            Some(201)
        );
    }
    let mut acknowledged = Vec::new();
    for run in 0..KILL_RUNS {
        let phase = PHASES[run % PHASES.len()];
        let to = if run % 2 == 0 { "c2" } else { "c1" };
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (addr, stop) = (addr.clone(), Arc::clone(&stop));
            std::thread::spawn(move || insert_until(addr, format!("run{run}_"), stop))
        };
        let (status, body) = http(&addr, "PUT", "/api/layout", Some(&layout(to))).unwrap();
        assert_eq!(status, 202, "{body}");
        let started: RebalanceJob = serde_json::from_str(&body).unwrap();
        let seen = kill_in(&mut bridge, &addr, started.id, phase);
        bridge = Serve::start(&addr, &args);
        let done = eventually_some(JOB_LIMIT, || {
            job(&addr, started.id).filter(|job| job.state != JobState::Running)
        })
        .expect("the resumed move never ended");
        stop.store(true, Ordering::Relaxed);
        acknowledged.extend(writer.join().unwrap());
        assert_eq!(
            done.state,
            JobState::Done,
            "run {run}, killed at {seen}: {done:?}"
        );
        eprintln!("run {run}: s0 → {to}, killed at {seen}: converged");
        converged(&addr, &scratch, to, &acknowledged);
    }
    drop(bridge);
}

/// Verify clean, every acknowledged id readable, s0's source schema gone
/// and nothing of the move left on either cluster.
fn converged(addr: &str, scratch: &Scratch, s0_on: &str, acknowledged: &[String]) {
    let (status, body) = http(addr, "POST", "/api/verify", Some("")).unwrap();
    assert_eq!(status, 200, "{body}");
    let report: VerifyReport = serde_json::from_str(&body).unwrap();
    assert!(report.clean, "{report:?}");
    for id in acknowledged {
        let (status, body) = http(
            addr,
            "GET",
            &format!("/api/users/{id}?consistency=strong"),
            None,
        )
        .unwrap();
        assert_eq!(status, 200, "{id}: {body}");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for (cluster, dir) in [("c1", scratch.dir.clone()), ("c2", scratch.dir.join("c2"))] {
            let client = connect_primary_in(&dir).await;
            let left = ecoshard_bridge::db::logical::leftovers(&client, "ecomarket")
                .await
                .unwrap();
            assert_eq!(left, Vec::<String>::new(), "{cluster}");
            let has_s0: bool = client
                .query_one("SELECT to_regnamespace('shard_s0') IS NOT NULL", &[])
                .await
                .unwrap()
                .get(0);
            assert_eq!(has_s0, cluster == s0_on, "shard_s0 on {cluster}");
        }
    });
}
