//! The live view's reducer, natively: every answer and stream tick the page
//! gets becomes the state it shows (lag history, roles, jobs, the log).

use ecoshard_core::wire::{
    BridgeView, BulkResult, ClusterNodes, ClusterReads, Consistency, FailoverEvent, FailoverView,
    JobState, LagSample, LayoutView, MovePhase, NodeCount, NodeRole, NodeStatus, ReadResult,
    RebalanceJob, ShardMoveProgress, Stats, Tick, User,
};
use ecoshard_core::{Layout, ShardLoad, StrategyKind, plan_numbered};
use ecoshard_web::api::ApiError;
use ecoshard_web::live::{
    Applying, LAG_WINDOW_MS, LOG_LENGTH, Live, LiveAction, LogKind, Prediction, ROWS_SETTLE_MS,
    StreamStatus, bridge_heartbeat,
};

fn node(name: &str, role: NodeRole, up: bool, lag_ms: Option<f64>, at_ms: u64) -> NodeStatus {
    NodeStatus {
        name: name.to_string(),
        role,
        addr: "127.0.0.1:5433".to_string(),
        up,
        lag: (role == NodeRole::Standby).then(|| LagSample {
            node: name.to_string(),
            state: up.then(|| "streaming".to_string()),
            sync_state: Some("async".to_string()),
            write_lag_ms: lag_ms,
            flush_lag_ms: lag_ms,
            replay_lag_ms: lag_ms,
            byte_lag: Some(0),
            up,
            at_ms,
        }),
    }
}

/// The reads per second the bridge says standby-2 served, in every [`tick`].
const STANDBY_2_PER_SEC: f64 = 7.5;

fn tick(at_ms: u64, standby_up: bool) -> LiveAction {
    LiveAction::Tick(Box::new(Tick {
        at_ms,
        nodes: vec![
            node("primary", NodeRole::Primary, true, None, at_ms),
            node("standby-1", NodeRole::Standby, standby_up, Some(1.5), at_ms),
            node("standby-2", NodeRole::Standby, true, None, at_ms),
        ],
        stats: Stats {
            reads: vec![NodeCount {
                node: "standby-2".to_string(),
                count: at_ms / 1_000,
                per_sec: STANDBY_2_PER_SEC,
            }],
            ..Stats::default()
        },
        rebalance: None,
        layout_version: 1,
        failover: FailoverView::default(),
        clusters: Vec::new(),
        bridges: Vec::new(),
    }))
}

#[test]
fn ticks_build_lag_history_within_the_window() {
    let mut live = Live::default();
    for second in 0..400u64 {
        live = live.apply(tick(1_000_000 + second * 1_000, true));
    }
    let history = &live.lag["standby-1"];
    // One sample a second: the window and the sample at its start.
    assert_eq!(history.len(), (LAG_WINDOW_MS / 1_000 + 1) as usize);
    assert_eq!(history.back().unwrap().replay_ms, Some(1.5));
    assert_eq!(live.lag["standby-2"].back().unwrap().replay_ms, None);
    assert_eq!(live.stream, StreamStatus::Open);
    assert_eq!(live.reads_by("standby-2"), 1_399);
    assert_eq!(live.reads_by("standby-1"), 0);
    assert_eq!(live.standbys().count(), 2);
    // The same sample twice is kept once.
    let again = live.apply(tick(1_399_000, true));
    assert_eq!(again.lag["standby-1"].len(), history.len());
}

#[test]
fn a_stopped_standby_shows_down() {
    let live = Live::default()
        .apply(tick(1_000, true))
        .apply(tick(2_000, false));
    let standby = live.nodes.iter().find(|n| n.name == "standby-1").unwrap();
    assert!(!standby.up);
    assert!(!live.lag["standby-1"].back().unwrap().up);
}

#[test]
fn jobs_only_move_forward() {
    let job = |moved, state| {
        LiveAction::Job(Box::new(RebalanceJob {
            id: 7,
            state,
            moved,
            total: 100,
            rows_per_sec: 50.0,
            from_version: 1,
            to_version: 2,
            plan: None,
            error: None,
            shard_move: None,
        }))
    };
    let live = Live::default()
        .apply(job(40, JobState::Running))
        .apply(job(20, JobState::Running));
    assert_eq!(
        live.job.as_ref().unwrap().moved,
        40,
        "a late poll is ignored"
    );
    let done = live.apply(job(100, JobState::Done));
    assert_eq!(done.job.as_ref().unwrap().state, JobState::Done);
}

#[test]
fn the_log_keeps_the_newest_entries_first() {
    let read = ReadResult {
        user: User {
            user_id: "user_1".to_string(),
            name: "user_1".to_string(),
            email: "user_1@ecomarket.example".to_string(),
            created_at: "2025-01-01T00:00:00Z".to_string(),
        },
        shard: "s2".to_string(),
        served_by: "standby-1".to_string(),
        lag_ms: Some(0.8),
        consistency: Consistency::Eventual,
        cluster: None,
    };
    let mut live = Live::default().apply(LiveAction::Read(Box::new(read)));
    assert_eq!(
        live.log[0].text,
        "read user_1 (eventual) from standby-1 on shard s2: lag 0.8 ms"
    );
    for index in 0..20 {
        live = live.apply(LiveAction::Failed(format!("failure {index}")));
    }
    assert_eq!(live.log.len(), LOG_LENGTH);
    assert_eq!(live.log[0].text, "failure 19");
    assert_eq!(live.log[0].kind, LogKind::Error);
    assert!(live.log[0].serial > live.log[1].serial);
}

fn job(id: u64, moved: u64, state: JobState) -> RebalanceJob {
    RebalanceJob {
        id,
        state,
        moved,
        total: 100,
        rows_per_sec: 50.0,
        from_version: id,
        to_version: id + 1,
        plan: None,
        error: None,
        shard_move: None,
    }
}

fn refusal(status: u16, code: &str, message: &str) -> ApiError {
    ApiError {
        status: Some(status),
        code: code.to_string(),
        message: message.to_string(),
    }
}

#[test]
fn the_stream_never_takes_a_job_backwards() {
    let live = Live::default()
        .apply(LiveAction::Job(Box::new(job(3, 10, JobState::Running))))
        .apply(LiveAction::Job(Box::new(job(2, 100, JobState::Done))));
    assert_eq!(live.job.as_ref().unwrap().id, 3, "an older job is ignored");
    let done = live.apply(LiveAction::Job(Box::new(job(3, 100, JobState::Done))));
    assert_eq!(
        done.log[0].text,
        "rebalance job 3 done: 100 rows moved, layout v4 in force"
    );
    let late = done.apply(LiveAction::Job(Box::new(job(3, 90, JobState::Running))));
    assert_eq!(
        late.job.as_ref().unwrap().state,
        JobState::Done,
        "a late poll"
    );
    // A failed job runs again once a restarted bridge resumes it.
    let failed = Live::default().apply(LiveAction::Job(Box::new(job(4, 5, JobState::Failed))));
    let resumed = failed.apply(LiveAction::Job(Box::new(job(4, 5, JobState::Running))));
    assert!(resumed.job_running());
}

fn tick_with_job(at_ms: u64, job: RebalanceJob) -> LiveAction {
    let LiveAction::Tick(mut tick) = tick(at_ms, true) else {
        unreachable!()
    };
    tick.rebalance = Some(job);
    LiveAction::Tick(tick)
}

#[test]
fn a_jobs_plan_is_fetched_once_and_kept_while_ticks_carry_none() {
    let old = Layout::with_count(StrategyKind::Ring, 3)
        .unwrap()
        .build()
        .unwrap();
    let new = Layout::with_count(StrategyKind::Ring, 4)
        .unwrap()
        .build()
        .unwrap();
    let plan = plan_numbered(&old, &new, "user_", 100).summary();
    // Answered before its plan: nothing to fetch yet.
    let planning = RebalanceJob {
        total: 0,
        ..job(5, 0, JobState::Running)
    };
    let live = Live::default().apply(tick_with_job(1_000, planning));
    assert_eq!(live.plan_wanted(), None);
    // Planned: a tick says how many rows, not which; the page fetches the plan.
    let live = live.apply(tick_with_job(2_000, job(5, 10, JobState::Running)));
    assert_eq!(live.plan_wanted(), Some(5));
    let fetched = live.apply(LiveAction::Job(Box::new(RebalanceJob {
        plan: Some(plan.clone()),
        ..job(5, 10, JobState::Running)
    })));
    assert_eq!(fetched.plan_wanted(), None);
    let later = fetched
        .apply(tick_with_job(3_000, job(5, 60, JobState::Running)))
        .apply(tick_with_job(4_000, job(5, 100, JobState::Done)));
    let shown = later.job.as_ref().unwrap();
    assert_eq!((shown.moved, shown.state), (100, JobState::Done));
    assert_eq!(shown.plan.as_ref(), Some(&plan), "the plan stays");
    assert_eq!(later.plan_wanted(), None);
    // The next job wants its own plan.
    let next = later.apply(tick_with_job(5_000, job(6, 0, JobState::Running)));
    assert_eq!(next.plan_wanted(), Some(6));
    assert_eq!(next.job.as_ref().unwrap().plan, None);
}

/// Job `id` moving shard `s1` from `c2` to `c1`, at `phase`.
fn shard_move(id: u64, phase: MovePhase, state: JobState) -> RebalanceJob {
    let done = u64::from(phase == MovePhase::Done);
    RebalanceJob {
        moved: 100 * done,
        shard_move: Some(Box::new(ShardMoveProgress {
            shard: "s1".to_string(),
            from_cluster: "c2".to_string(),
            to_cluster: "c1".to_string(),
            phase,
            shards_done: done,
            shards_total: 1,
            rows: 100 * done,
            rows_total: 100,
            bytes: 8_192 * done,
            bytes_total: 8_192,
            rows_per_sec: 0.0,
            eta_ms: None,
            write_pause_ms: (phase == MovePhase::Done).then_some(3),
        })),
        ..job(id, 0, state)
    }
}

#[test]
fn a_shard_move_is_logged_by_its_shard_and_clusters_not_as_planning_rows() {
    let started = Live::default()
        .apply(LiveAction::ApplySent {
            target: "Ring over 3 shards".to_string(),
        })
        .apply(LiveAction::ApplyStarted {
            job: Box::new(shard_move(2, MovePhase::SettingUp, JobState::Running)),
            prediction: None,
        });
    assert_eq!(
        started.log[0].text,
        "applying Ring over 3 shards: job 2 (v2 → v3) moves s1: c2 → c1"
    );
    let done = started
        .apply(tick_with_job(
            1_000,
            shard_move(2, MovePhase::Copying, JobState::Running),
        ))
        .apply(tick_with_job(
            2_000,
            shard_move(2, MovePhase::Done, JobState::Done),
        ));
    assert_eq!(
        done.log[0].text,
        "rebalance job 2 done: s1 moved from c2 to c1: 100 rows, layout v3 in force"
    );
    let shown = done.job.as_ref().unwrap().shard_move.as_ref().unwrap();
    assert_eq!(shown.phase, MovePhase::Done);
}

#[test]
fn a_late_answer_never_takes_a_shard_move_back_a_phase() {
    // The stream's tick can come before the answer to the PUT that started
    // the job; the rows moved stay 0 through a shard's phases.
    let ticked = Live::default()
        .apply(LiveAction::ApplySent {
            target: "Ring over 3 shards".to_string(),
        })
        .apply(tick_with_job(
            1_000,
            shard_move(2, MovePhase::Copying, JobState::Running),
        ));
    let answered = ticked.apply(LiveAction::ApplyStarted {
        job: Box::new(shard_move(2, MovePhase::SettingUp, JobState::Running)),
        prediction: None,
    });
    let phase = |live: &Live| {
        live.job
            .as_ref()
            .unwrap()
            .shard_move
            .as_ref()
            .unwrap()
            .phase
    };
    assert_eq!(phase(&answered), MovePhase::Copying);
    let next = answered.apply(tick_with_job(
        2_000,
        shard_move(2, MovePhase::CatchingUp, JobState::Running),
    ));
    assert_eq!(phase(&next), MovePhase::CatchingUp);
}

#[test]
fn the_layout_in_force_is_answered_without_a_job() {
    let in_force = LayoutView {
        version: 3,
        layout: Layout::with_count(StrategyKind::Ring, 4).unwrap(),
        placement: Vec::new(),
    };
    let live = Live::default()
        .apply(LiveAction::ApplySent {
            target: "Ring over 4 shards".to_string(),
        })
        .apply(LiveAction::ApplyInForce(in_force.clone()));
    assert_eq!(
        live.log[0].text,
        "Ring over 4 shards: the layout is already version 3; nothing to move"
    );
    assert_eq!(
        live.applying,
        Applying::InForce {
            target: "Ring over 4 shards".to_string(),
            version: 3,
        }
    );
    assert_eq!(live.job, None);
    assert_eq!(live.layout, Some(in_force));
}

#[test]
fn applying_keeps_the_prediction_with_the_job_and_refusals_with_their_sentence() {
    let prediction = Prediction {
        from_version: 1,
        key_count: 2_000,
        moved: 466,
        ideal_fraction: 0.25,
        keys_in_database: false,
    };
    let sent = Live::default().apply(LiveAction::ApplySent {
        target: "Ring over 4 shards".to_string(),
    });
    let started = sent.apply(LiveAction::ApplyStarted {
        job: Box::new(RebalanceJob {
            total: 0,
            ..job(2, 0, JobState::Running)
        }),
        prediction: Some(prediction.clone()),
    });
    assert_eq!(
        started.applying,
        Applying::Started {
            target: "Ring over 4 shards".to_string(),
            job_id: 2,
            prediction: Some(prediction),
        }
    );
    assert_eq!(started.job.as_ref().unwrap().id, 2);
    assert_eq!(
        started.log[0].text,
        "applying Ring over 4 shards: job 2 (v2 → v3) is planning which rows move"
    );
    let refused = started
        .apply(LiveAction::ApplySent {
            target: "Bounded-load over 4 shards".to_string(),
        })
        .apply(LiveAction::ApplyRefused(refusal(
            400,
            "unsupported_strategy",
            "bounded-load cannot be applied to the database",
        )));
    let Applying::Refused { target, error } = &refused.applying else {
        panic!("{:?}", refused.applying);
    };
    assert_eq!(target, "Bounded-load over 4 shards");
    assert_eq!(error.code, "unsupported_strategy");
    assert_eq!(refused.log[0].kind, LogKind::Error);
    assert_eq!(
        refused.job.as_ref().unwrap().id,
        2,
        "the last job stays shown"
    );
}

#[test]
fn a_failover_changes_roles_from_the_data_and_is_logged() {
    let before = Live::default().apply(tick(1_000, true));
    assert_eq!(before.primary().unwrap().name, "primary");
    let LiveAction::Tick(mut next) = tick(2_000, true) else {
        unreachable!()
    };
    next.nodes[0].role = NodeRole::Standby;
    next.nodes[0].up = false;
    next.nodes[1].role = NodeRole::Primary;
    next.failover = FailoverView {
        auto: true,
        sync_replication: false,
        in_progress: false,
        last: Some(FailoverEvent {
            from: "primary".to_string(),
            to: "standby-1".to_string(),
            at_ms: 1_900,
            detect_ms: 250.4,
            promote_ms: 41.9,
            total_ms: 372.0,
            repointed: vec!["standby-2".to_string()],
        }),
    };
    let after = before.apply(LiveAction::Tick(next));
    assert_eq!(after.primary().unwrap().name, "standby-1");
    let standbys: Vec<&str> = after.standbys().map(|node| node.name.as_str()).collect();
    assert_eq!(standbys, ["primary", "standby-2"]);
    let log: Vec<&str> = after.log.iter().map(|entry| entry.text.as_str()).collect();
    assert!(
        log.contains(&"standby-1 is the primary now: writes go to it"),
        "{log:?}"
    );
    assert!(
        log.iter().any(|line| line
            .starts_with("failover: standby-1 promoted in place of primary — detected in 250")),
        "{log:?}"
    );
    assert!(after.failover.auto);
}

#[test]
fn refused_writes_are_counted_and_a_run_of_them_is_one_line() {
    let mut live = Live::default();
    for _ in 0..30 {
        live = live.apply(LiveAction::WriteFailed {
            what: "Insert".to_string(),
            error: refusal(503, "primary_unavailable", "the primary is down"),
        });
    }
    live = live.apply(LiveAction::WriteFailed {
        what: "Insert".to_string(),
        error: refusal(409, "duplicate_user", "user_1 exists"),
    });
    assert_eq!(live.writes_refused, 30, "only 503s count as refused");
    assert_eq!(live.log.len(), 2);
    assert_eq!(live.log[1].repeats, 30);
    assert_eq!(
        live.log[1].text,
        "Insert refused (503 primary_unavailable): the primary is down"
    );
}

#[test]
fn reads_per_second_are_the_bridges_and_nodes_going_down_are_logged() {
    let mut live = Live::default();
    // standby-2's counter grows by one a second (see `tick`), but the page
    // shows the rate the bridge sends beside it, not one of its own.
    for second in 0..5u64 {
        live = live.apply(tick(10_000 + second * 1_000, true));
    }
    assert_eq!(live.read_rate("standby-2"), STANDBY_2_PER_SEC);
    assert_eq!(live.read_rate("standby-1"), 0.0, "not in the tick");
    let down = live.apply(tick(15_000, false));
    assert_eq!(
        down.log[0].text,
        "standby-1 is down: reads go to the other nodes"
    );
    let up = down.apply(tick(16_000, true));
    assert_eq!(up.log[0].text, "standby-1 is up again");
}

#[test]
fn the_layout_is_fetched_again_when_the_stream_moves_past_it() {
    let view = LayoutView {
        version: 1,
        layout: ecoshard_core::Layout::with_count(ecoshard_core::StrategyKind::Ring, 3).unwrap(),
        placement: Vec::new(),
    };
    let live = Live::default().apply(LiveAction::Layout(view.clone()));
    assert!(!live.layout_is_stale(), "no tick yet");
    let live = live.apply(tick(1_000, true));
    assert!(!live.layout_is_stale(), "tick says v1");
    let LiveAction::Tick(mut next) = tick(2_000, true) else {
        unreachable!()
    };
    next.layout_version = 2;
    let moved_on = live.apply(LiveAction::Tick(next));
    assert!(moved_on.layout_is_stale());
    let fetched = moved_on.apply(LiveAction::Layout(LayoutView { version: 2, ..view }));
    assert!(!fetched.layout_is_stale());
}

#[test]
fn no_bridge_stops_the_stream() {
    let live = Live::default()
        .apply(LiveAction::StreamConnecting)
        .apply(LiveAction::BridgeAbsent("404".to_string()));
    assert_eq!(live.stream, StreamStatus::Idle);
    assert!(!live.has_bridge());
}

fn read_from(served_by: &str, lag_ms: Option<f64>, consistency: Consistency) -> LiveAction {
    LiveAction::Read(Box::new(ReadResult {
        user: User {
            user_id: "user_1".to_string(),
            name: "user_1".to_string(),
            email: "user_1@ecomarket.example".to_string(),
            created_at: "2025-01-01T00:00:00Z".to_string(),
        },
        shard: "s2".to_string(),
        served_by: served_by.to_string(),
        lag_ms,
        consistency,
        cluster: None,
    }))
}

#[test]
fn a_read_from_the_primary_has_no_lag_and_an_idle_standby_is_idle_not_unknown() {
    let live = Live::default().apply(tick(1_000, true));
    let check = |served_by: &str, lag_ms: Option<f64>, level: Consistency, expected: &str| {
        let read = live.apply(read_from(served_by, lag_ms, level));
        assert_eq!(read.log[0].text, expected, "{served_by} {lag_ms:?}");
    };
    check(
        "primary",
        Some(0.0),
        Consistency::Strong,
        "read user_1 (strong) from primary on shard s2: the primary: no replication lag",
    );
    check(
        "standby-2",
        None,
        Consistency::Eventual,
        "read user_1 (eventual) from standby-2 on shard s2: idle standby: no lag to replay",
    );
    check(
        "standby-1",
        Some(1.5),
        Consistency::Eventual,
        "read user_1 (eventual) from standby-1 on shard s2: lag 1.5 ms",
    );
}

/// A live view that saw the cluster streaming, then the primary down
/// (nobody lists the standbys in pg_stat_replication any more).
fn primary_went_down() -> Live {
    let LiveAction::Tick(mut down) = tick(2_000, true) else {
        unreachable!()
    };
    down.nodes[0].up = false;
    for standby in &mut down.nodes[1..] {
        let lag = standby.lag.as_mut().unwrap();
        (lag.state, lag.replay_lag_ms, lag.byte_lag) = (None, None, None);
    }
    Live::default()
        .apply(tick(1_000, true))
        .apply(LiveAction::Tick(down))
}

#[test]
fn with_the_primary_down_the_charts_say_what_the_cards_say() {
    let live = primary_went_down();
    for node in live.standbys() {
        let chart = live.lag[&node.name].back().unwrap().word();
        assert_eq!(chart, live.node_lag(node), "{}", node.name);
        assert_eq!(chart, "not streaming", "{}", node.name);
    }
    // Streaming again: the idle standby says idle on both, the other its lag.
    let back = live.apply(tick(3_000, true));
    let words: Vec<(String, String)> = back
        .standbys()
        .map(|node| {
            (
                back.lag[&node.name].back().unwrap().word(),
                back.node_lag(node),
            )
        })
        .collect();
    assert_eq!(
        words,
        [
            ("1.5 ms".into(), "1.5 ms".into()),
            ("idle".into(), "idle".into())
        ]
    );
}

#[test]
fn with_the_primary_down_a_read_from_a_standby_says_not_streaming_as_its_card_does() {
    let live = primary_went_down();
    let read = live.apply(read_from("standby-2", None, Consistency::Eventual));
    let card = live.node_lag(&live.nodes[2]);
    assert_eq!(card, "not streaming");
    assert_eq!(
        read.log[0].text,
        "read user_1 (eventual) from standby-2 on shard s2: \
         standby not streaming: what it serves may be behind"
    );
}

fn tick_with_rows(at_ms: u64, rows: [u64; 2], job: Option<RebalanceJob>) -> LiveAction {
    let LiveAction::Tick(mut tick) = tick(at_ms, true) else {
        unreachable!()
    };
    tick.stats.rows = ["s0", "s1"]
        .iter()
        .zip(rows)
        .map(|(shard, keys)| ShardLoad {
            shard: shard.to_string(),
            keys,
            cluster: None,
        })
        .collect();
    tick.rebalance = job;
    LiveAction::Tick(tick)
}

#[test]
fn the_row_total_holds_while_a_job_moves_rows_and_says_why() {
    let running = job(3, 5_000, JobState::Running);
    let done = job(3, 100, JobState::Done);
    let layout = LayoutView {
        version: 4,
        layout: Layout::with_count(StrategyKind::Ring, 2).unwrap(),
        placement: Vec::new(),
    };
    let live = Live::default()
        .apply(LiveAction::Layout(layout))
        .apply(tick_with_rows(1_000, [150_000, 153_138], None));
    assert_eq!((live.rows(), live.rows_note()), (303_138, None));
    // Mid-move the estimates have taken in 5,000 deletes and not yet the inserts.
    let moving = live
        .apply(tick_with_rows(
            2_000,
            [150_000, 153_138],
            Some(running.clone()),
        ))
        .apply(tick_with_rows(3_000, [145_000, 153_138], Some(running)));
    assert_eq!(moving.rows(), 303_138, "held, not 298,138");
    assert!(moving.rows_note().unwrap().contains("job 3"));
    assert!(
        moving.database_now().ends_with("303,138 rows"),
        "{}",
        moving.database_now()
    );
    // Held until the estimates settle after the job, then the estimate again.
    let ended = moving.apply(tick_with_rows(
        4_000,
        [145_000, 153_138],
        Some(done.clone()),
    ));
    assert_eq!(ended.rows(), 303_138);
    let settled = ended.apply(tick_with_rows(
        4_000 + ROWS_SETTLE_MS,
        [145_000, 158_138],
        Some(done),
    ));
    assert_eq!((settled.rows(), settled.rows_note()), (303_138, None));
    assert_eq!(settled.rows_held, None);
}

#[test]
fn during_a_job_only_the_rebalance_panel_states_the_layout_version() {
    let view = |version| LayoutView {
        version,
        layout: Layout::with_count(StrategyKind::Ring, 4).unwrap(),
        placement: Vec::new(),
    };
    let running = job(3, 10, JobState::Running);
    let live = Live::default()
        .apply(tick_with_job(1_000, running))
        .apply(LiveAction::Layout(view(4)));
    let header = live.layout_header();
    assert_eq!(header, "layout changing: job 3 is moving rows");
    assert!(!header.contains("v4") && !header.contains("v3"), "{header}");
    assert!(
        live.database_now()
            .starts_with("moving v3 → v4 · Ring over 4 shards"),
        "{}",
        live.database_now()
    );
    let done = live.apply(tick_with_job(2_000, job(3, 100, JobState::Done)));
    assert_eq!(done.layout_header(), "layout v4: Ring over 4 shards");
    assert!(
        done.database_now().starts_with("v4 · Ring over 4 shards"),
        "{}",
        done.database_now()
    );
}

fn explorer_keys_answer(inserted: u64) -> BulkResult {
    BulkResult {
        inserted,
        prefix: "user_".to_string(),
        shards: Vec::new(),
        served_by: "primary".to_string(),
        lsn: "0/3000148".to_string(),
        lsns: Default::default(),
        elapsed_ms: 35.0,
    }
}

#[test]
fn inserting_the_explorers_keys_twice_says_they_are_in_and_hides_the_hint() {
    let inserted = |inserted| LiveAction::ExplorerKeysInserted {
        count: 2_000,
        result: explorer_keys_answer(inserted),
    };
    let live = Live::default().apply(inserted(2_000));
    assert_eq!(
        live.log[0].text,
        "inserted the explorer's 2,000 keys (user_0 … user_1999) on primary in 35 ms"
    );
    let again = live.apply(inserted(0));
    assert_eq!(
        again.log[0].text,
        "the explorer's 2,000 keys (user_0 … user_1999) are in the database already: nothing written"
    );
    assert_eq!(again.log[0].kind, LogKind::Ok);
    assert!(again.explorer_keys_in(2_000));
    assert!(!again.explorer_keys_in(3_000), "other keys are not in");
    // 3,000 keys over the 2,000 stored differently: which part, in words.
    let clash = again.apply(LiveAction::ExplorerKeysRefused {
        count: 3_000,
        error: refusal(409, "duplicate_user", "some of the ids user_0 … user_2999 exist, not all as this insert would write them; nothing was written"),
    });
    assert_eq!(clash.log[0].kind, LogKind::Error);
    assert_eq!(
        clash.log[0].text,
        "the explorer's 3,000 keys (user_0 … user_2999) were not inserted: part of that range is in the database already, stored differently — some of the ids user_0 … user_2999 exist, not all as this insert would write them; nothing was written"
    );
    assert!(!clash.log[0].text.contains("\"user_\""));
    // With the keys in, the comparison no longer asks to insert them.
    let prediction = |keys_in_database| Prediction {
        from_version: 1,
        key_count: 2_000,
        moved: 466,
        ideal_fraction: 0.25,
        keys_in_database,
    };
    let (_, before) = ecoshard_web::live::compare_with_plan(&prediction(false), 1, 700, 3_000);
    assert!(before.contains("insert the explorer's keys"), "{before}");
    let (_, after) = ecoshard_web::live::compare_with_plan(&prediction(true), 1, 700, 3_000);
    assert!(!after.contains("insert the explorer's keys"), "{after}");
    assert!(after.contains("1,000 other rows"), "{after}");
}

#[test]
fn node_actions_read_as_sentences_in_the_activity() {
    let asked = Live::default().apply(LiveAction::NodeAsked {
        name: "primary".to_string(),
        request: ecoshard_web::live::NodeRequest::Start,
    });
    let acted = asked.apply(LiveAction::NodeActed(ecoshard_core::wire::NodeAction {
        node: "primary".to_string(),
        action: "start".to_string(),
        changed: true,
        role: NodeRole::Primary,
        message: "started the primary".to_string(),
    }));
    let lines: Vec<&str> = acted.log.iter().map(|entry| entry.text.as_str()).collect();
    assert_eq!(lines, ["started the primary", "asked primary to start"]);
}

/// A tick of a bridge over `c1` (a primary, two standbys, lag 1.5 ms) and
/// `c2` (a primary and one standby, lag 9 ms, up or down).
fn two_cluster_tick(at_ms: u64, c2_standby_up: bool) -> LiveAction {
    let LiveAction::Tick(mut tick) = tick(at_ms, true) else {
        unreachable!()
    };
    let c2_nodes = vec![
        node("primary", NodeRole::Primary, true, None, at_ms),
        node(
            "standby-1",
            NodeRole::Standby,
            c2_standby_up,
            Some(9.0),
            at_ms,
        ),
    ];
    tick.clusters = vec![
        ClusterNodes {
            name: "c1".to_string(),
            nodes: tick.nodes.clone(),
            failover: FailoverView::default(),
        },
        ClusterNodes {
            name: "c2".to_string(),
            nodes: c2_nodes,
            failover: FailoverView::default(),
        },
    ];
    LiveAction::Tick(tick)
}

#[test]
fn each_clusters_standbys_keep_their_own_lag() {
    let mut live = Live::default();
    for second in 0..3u64 {
        live = live.apply(two_cluster_tick(1_000_000 + second * 1_000, true));
    }
    assert_eq!(live.clusters.len(), 2);
    assert_eq!(
        live.standby_keys(),
        ["standby-1", "standby-2", "c2/standby-1"]
    );
    // c2's standby-1 is not c1's: each its own history.
    assert_eq!(live.lag["standby-1"].back().unwrap().replay_ms, Some(1.5));
    assert_eq!(
        live.lag["c2/standby-1"].back().unwrap().replay_ms,
        Some(9.0)
    );
    assert_eq!(live.lag["c2/standby-1"].len(), 3);
    // The first cluster's nodes go by their own names, as with one.
    assert_eq!(live.node_key("c1", "standby-1"), "standby-1");
    assert_eq!(live.node_key("c2", "standby-1"), "c2/standby-1");
    assert_eq!(Live::default().node_key("c1", "primary"), "primary");
    // c2's reads are not c1's standby-1's.
    assert_eq!(live.reads_by("c2/standby-2"), 0);
}

#[test]
fn a_standby_down_in_c2_is_logged_under_c2_and_c1_says_nothing() {
    let live = Live::default()
        .apply(two_cluster_tick(1_000_000, true))
        .apply(two_cluster_tick(1_001_000, false));
    let lines: Vec<&str> = live.log.iter().map(|entry| entry.text.as_str()).collect();
    assert_eq!(
        lines,
        ["c2: standby-1 is down: reads go to the other nodes"]
    );
    let c1 = &live.clusters[0].nodes;
    assert!(c1.iter().all(|node| node.up), "{c1:?}");
    assert!(!live.lag["c2/standby-1"].back().unwrap().up);
    assert!(live.lag["standby-1"].back().unwrap().up);
}

#[test]
fn a_stop_asked_of_c2s_standby_is_under_way_for_it_alone() {
    let asked = Live::default()
        .apply(two_cluster_tick(1_000_000, true))
        .apply(LiveAction::NodeAsked {
            name: "c2/standby-1".to_string(),
            request: ecoshard_web::live::NodeRequest::Start,
        });
    assert!(asked.node_requests.contains_key("c2/standby-1"));
    assert!(!asked.node_requests.contains_key("standby-1"));
    let answer = ecoshard_core::wire::NodeAction {
        node: "standby-1".to_string(),
        action: "start".to_string(),
        changed: true,
        role: NodeRole::Standby,
        message: "started standby-1".to_string(),
    };
    let acted = asked.apply(LiveAction::NodeActed(ecoshard_web::api::qualified_action(
        "c2/standby-1",
        answer,
    )));
    assert!(acted.node_requests.is_empty());
    assert_eq!(
        acted.log.iter().next().unwrap().text,
        "c2: started standby-1"
    );
}

#[test]
fn a_cluster_holds_the_shards_its_placement_names() {
    let view = LayoutView {
        version: 2,
        layout: Layout::with_count(StrategyKind::Ring, 3).unwrap(),
        placement: vec!["c1".into(), "c2".into(), "c1".into()],
    };
    let live = Live::default().apply(LiveAction::Layout(view));
    assert_eq!(live.cluster_shards("c1"), "holds s0, s2 (2 of 3 shards)");
    assert_eq!(live.cluster_shards("c2"), "holds s1 (1 of 3 shards)");
    assert_eq!(live.cluster_shards("c3"), "holds no shards");
}

/// Whether the page finds `target` in force when the bridge stores
/// `stored` (both layouts' JSON), with one cluster or two.
fn check_in_force(two_clusters: bool, stored: &str, target: &str, expected: bool) {
    let mut live = Live::default();
    if two_clusters {
        live = live.apply(two_cluster_tick(1_000_000, true));
    }
    let layout: Layout = serde_json::from_str(stored).unwrap();
    live = live.apply(LiveAction::Layout(LayoutView {
        version: 1,
        layout,
        placement: Vec::new(),
    }));
    let target: Layout = serde_json::from_str(target).unwrap();
    assert_eq!(
        live.is_in_force(&target),
        expected,
        "{stored} against {target:?}"
    );
}

#[test]
fn the_layout_in_force_is_judged_by_placement_not_by_its_json() {
    const BARE: &str = r#"{"strategy": "ring", "shards": 2}"#;
    const NAMED: &str = r#"{"strategy": "ring", "shards": [{"name": "s0", "cluster": "c1"}, {"name": "s1", "cluster": "c2"}]}"#;
    const BOTH_C1: &str = r#"{"strategy": "ring", "shards": [{"name": "s0", "cluster": "c1"}, {"name": "s1", "cluster": "c1"}]}"#;
    const HALF: &str =
        r#"{"strategy": "ring", "shards": [{"name": "s0"}, {"name": "s1", "cluster": "c2"}]}"#;
    check_in_force(false, BARE, BARE, true);
    check_in_force(false, BARE, BOTH_C1, true);
    check_in_force(false, BARE, r#"{"strategy": "jump", "shards": 2}"#, false);
    check_in_force(true, NAMED, NAMED, true);
    check_in_force(true, NAMED, BARE, true);
    check_in_force(true, NAMED, HALF, true);
    check_in_force(true, NAMED, BOTH_C1, false);
    check_in_force(true, BOTH_C1, BARE, false);
    check_in_force(false, NAMED, NAMED, false);
}

/// Each cluster's reads come in the tick under its name (`stats.clusters`,
/// nodes named within their cluster, so `standby-1` in each): another
/// cluster's land on its own node's card, and the first cluster's cards
/// read `stats.reads`, as with one cluster.
#[test]
fn another_clusters_reads_land_on_its_own_nodes_card() {
    let LiveAction::Tick(mut tick) = two_cluster_tick(1_000_000, true) else {
        unreachable!()
    };
    let count = |node: &str, count, per_sec| NodeCount {
        node: node.to_string(),
        count,
        per_sec,
    };
    tick.stats.reads = vec![count("standby-1", 3, 1.0)];
    tick.stats.clusters = vec![
        ClusterReads {
            cluster: "c1".to_string(),
            reads: vec![count("standby-1", 3, 1.0)],
        },
        ClusterReads {
            cluster: "c2".to_string(),
            reads: vec![count("primary", 0, 0.0), count("standby-1", 7, 2.0)],
        },
    ];
    let live = Live::default().apply(LiveAction::Tick(tick));
    let key = live.node_key("c2", "standby-1");
    assert_eq!((live.reads_by(&key), live.read_rate(&key)), (7, 2.0));
    assert_eq!(
        (live.reads_by("standby-1"), live.read_rate("standby-1")),
        (3, 1.0)
    );
    assert_eq!(live.reads_by(&live.node_key("c2", "primary")), 0);
    assert_eq!(live.reads_by("c3/standby-1"), 0);
    let listed: Vec<(String, u64)> = live
        .read_counts()
        .into_iter()
        .map(|count| (count.node, count.count))
        .collect();
    assert_eq!(
        listed,
        [
            ("standby-1".to_string(), 3),
            ("c2/primary".to_string(), 0),
            ("c2/standby-1".to_string(), 7)
        ]
    );
}

/// A bridge as the tick lists it: `bridge-N` on `127.0.0.1:808N`.
fn bridge(n: u8, version: u64, age_ms: u64, runs_job: bool, this: bool) -> BridgeView {
    BridgeView {
        name: format!("bridge-{n}"),
        address: format!("127.0.0.1:808{n}"),
        layout_version: version,
        heartbeat_age_ms: age_ms,
        live: age_ms < 10_000,
        runs_job,
        this,
    }
}

/// [`tick`] at `at_ms`, at layout `version`, with `bridges` listed.
fn bridges_tick(at_ms: u64, version: u64, bridges: Vec<BridgeView>) -> LiveAction {
    let LiveAction::Tick(mut tick) = tick(at_ms, true) else {
        unreachable!()
    };
    tick.layout_version = version;
    tick.bridges = bridges;
    LiveAction::Tick(tick)
}

/// The log's lines, newest first.
fn log_lines(live: &Live) -> Vec<(LogKind, String)> {
    live.log
        .iter()
        .map(|entry| (entry.kind, entry.text.clone()))
        .collect()
}

#[test]
fn one_bridge_lists_none_and_logs_nothing_about_bridges() {
    let live = Live::default()
        .apply(bridges_tick(1_000, 1, Vec::new()))
        .apply(bridges_tick(2_000, 1, Vec::new()));
    assert!(live.bridges.is_empty());
    assert!(live.log.is_empty());
}

#[test]
fn a_tick_with_two_bridges_shows_both_and_logs_the_one_that_joined() {
    let two = vec![
        bridge(1, 2, 400, false, true),
        bridge(2, 2, 900, false, false),
    ];
    let live = Live::default()
        .apply(bridges_tick(1_000, 2, Vec::new()))
        .apply(bridges_tick(2_000, 2, two.clone()));
    assert_eq!(live.bridges, two);
    let names: Vec<&str> = live.bridges.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["bridge-1", "bridge-2"]);
    assert_eq!(
        log_lines(&live),
        [(
            LogKind::Ok,
            "bridge bridge-2 joined (127.0.0.1:8082)".to_string()
        )]
    );
    // The same bridges again: nothing new to say.
    let again = live.apply(bridges_tick(3_000, 2, two));
    assert_eq!(again.log.len(), 1);
}

#[test]
fn a_lapsed_bridge_shows_as_such_and_is_logged_once() {
    let live = Live::default().apply(bridges_tick(
        1_000,
        1,
        vec![
            bridge(1, 1, 300, false, true),
            bridge(2, 1, 800, false, false),
        ],
    ));
    let lapsed = vec![
        bridge(1, 1, 300, false, true),
        bridge(2, 1, 12_400, false, false),
    ];
    let live = live
        .apply(bridges_tick(2_000, 1, lapsed.clone()))
        .apply(bridges_tick(3_000, 1, lapsed));
    assert!(!live.bridges[1].live);
    assert!(live.bridges[0].live);
    assert_eq!(
        log_lines(&live),
        [(
            LogKind::Error,
            "bridge bridge-2 lapsed: no heartbeat within the 10 s lease, so it refuses writes"
                .to_string()
        )]
    );
}

#[test]
fn the_jobs_runner_is_marked_and_a_bridge_behind_says_which_version_is_in_force() {
    let live = Live::default().apply(bridges_tick(
        1_000,
        3,
        vec![
            bridge(1, 3, 300, false, true),
            bridge(2, 2, 800, true, false),
        ],
    ));
    let runners: Vec<&str> = live
        .bridges
        .iter()
        .filter(|b| b.runs_job)
        .map(|b| b.name.as_str())
        .collect();
    assert_eq!(runners, ["bridge-2"]);
    let this: Vec<&str> = live
        .bridges
        .iter()
        .filter(|b| b.this)
        .map(|b| b.name.as_str())
        .collect();
    assert_eq!(this, ["bridge-1"]);
    fn check(live: &Live, bridge: &BridgeView, expected: &str) {
        assert_eq!(live.bridge_layout(bridge), expected);
    }
    check(&live, &live.bridges[0], "routes by v3 (in force)");
    check(&live, &live.bridges[1], "routes by v2, v3 in force");
}

#[test]
fn a_bridges_heartbeat_is_worded_in_seconds() {
    fn check(age_ms: u64, expected: &str) {
        assert_eq!(
            bridge_heartbeat(&bridge(1, 1, age_ms, false, true)),
            expected
        );
    }
    check(0, "heartbeat 0.0 s ago");
    check(412, "heartbeat 0.4 s ago");
    check(12_400, "heartbeat 12.4 s ago");
}

#[test]
fn the_clusters_answer_lists_the_bridges_before_the_first_tick() {
    let LiveAction::Tick(first) = tick(1_000, true) else {
        unreachable!()
    };
    let view = ecoshard_core::wire::ClusterView {
        mode: ecoshard_core::wire::ClusterMode::Local,
        nodes: first.nodes.clone(),
        layout: LayoutView {
            version: 1,
            layout: Layout::with_count(StrategyKind::Ring, 3).unwrap(),
            placement: Vec::new(),
        },
        failover: FailoverView::default(),
        clusters: Vec::new(),
        bridges: vec![
            bridge(1, 1, 300, false, true),
            bridge(2, 1, 800, false, false),
        ],
    };
    let live = Live::default().apply(LiveAction::Cluster(view));
    assert_eq!(live.bridges.len(), 2);
}
