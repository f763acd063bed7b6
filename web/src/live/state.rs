//! `Live` and its reducer: every answer and stream event becomes a
//! [`LiveAction`].

use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

use ecoshard_core::wire::{
    BulkResult, ClusterMode, ClusterView, Health, InsertResult, NodeRole, NodeStatus, ReadResult,
    RebalanceJob, Stats, Tick,
};
use yew::Reducible;

use crate::format::{millis, thousands};

/// How much lag history each chart keeps, in ms.
pub const LAG_WINDOW_MS: u64 = 3 * 60 * 1_000;
/// Entries kept in the activity log.
const LOG_LENGTH: usize = 12;

/// Whether a bridge answers where the page was loaded from.
#[derive(Clone, Debug, PartialEq)]
pub enum BridgeStatus {
    /// Asking.
    Checking,
    /// No bridge: the page works as the explorer alone.
    Absent {
        /// What happened when asking, for the curious.
        reason: String,
    },
    /// A bridge answered its health check.
    Present {
        /// Its version.
        version: String,
    },
}

/// The event stream's state.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamStatus {
    /// Not started (no bridge).
    Idle,
    /// Opening.
    Connecting,
    /// Receiving ticks.
    Open,
    /// Dropped; trying again after a pause.
    Reconnecting {
        /// Tries since it dropped.
        attempt: u32,
        /// Pause before the next try, in ms.
        delay_ms: u32,
    },
}

/// One lag sample as charted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LagPoint {
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
    /// Replay lag in ms (`None` when PostgreSQL reports none: idle).
    pub replay_ms: Option<f64>,
    /// Bytes not yet replayed.
    pub byte_lag: Option<i64>,
    /// Whether the standby was up.
    pub up: bool,
}

/// Good news or bad news.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogKind {
    /// Something worked.
    Ok,
    /// Something failed; the text says what.
    Error,
}

/// One line of the activity log.
#[derive(Clone, Debug, PartialEq)]
pub struct LogEntry {
    /// Good or bad.
    pub kind: LogKind,
    /// The line.
    pub text: String,
    /// Counts entries, as a stable key for the list.
    pub serial: u64,
}

/// The live view's state.
#[derive(Clone, Debug, PartialEq)]
pub struct Live {
    /// Whether a bridge is there.
    pub bridge: BridgeStatus,
    /// The event stream.
    pub stream: StreamStatus,
    /// Local or external cluster (from `/api/cluster`).
    pub mode: Option<ClusterMode>,
    /// Every node, primary first, as of the last tick.
    pub nodes: Vec<NodeStatus>,
    /// Recent lag per standby, oldest first.
    pub lag: BTreeMap<String, VecDeque<LagPoint>>,
    /// Counters as of the last tick.
    pub stats: Stats,
    /// The running or last rebalance job.
    pub job: Option<RebalanceJob>,
    /// Version of the layout in force.
    pub layout_version: Option<u64>,
    /// Strategy and shard count in force, for people.
    pub layout_summary: Option<String>,
    /// The last insert.
    pub last_insert: Option<InsertResult>,
    /// The last read.
    pub last_read: Option<ReadResult>,
    /// Recent activity, newest first.
    pub log: VecDeque<LogEntry>,
    /// Ticks received.
    pub ticks: u64,
    /// Next log serial.
    serial: u64,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            bridge: BridgeStatus::Checking,
            stream: StreamStatus::Idle,
            mode: None,
            nodes: Vec::new(),
            lag: BTreeMap::new(),
            stats: Stats::default(),
            job: None,
            layout_version: None,
            layout_summary: None,
            last_insert: None,
            last_read: None,
            log: VecDeque::new(),
            ticks: 0,
            serial: 0,
        }
    }
}

/// Everything that changes the live view.
#[derive(Clone, Debug, PartialEq)]
pub enum LiveAction {
    /// The health check answered.
    BridgeFound(Health),
    /// The health check failed.
    BridgeAbsent(String),
    /// `/api/cluster` answered.
    Cluster(ClusterView),
    /// The stream is opening.
    StreamConnecting,
    /// The stream is open.
    StreamOpen,
    /// The stream dropped; next try after a pause.
    StreamLost {
        /// Tries since it dropped.
        attempt: u32,
        /// Pause before the next try, in ms.
        delay_ms: u32,
    },
    /// A stream tick.
    Tick(Box<Tick>),
    /// An insert went through.
    Inserted(Box<InsertResult>),
    /// A bulk insert went through.
    BulkInserted(BulkResult),
    /// A read came back.
    Read(Box<ReadResult>),
    /// A rebalance started or progressed (answer of `PUT /api/layout` or a poll).
    Job(Box<RebalanceJob>),
    /// A node was asked to stop or start.
    NodeAsked {
        /// The node.
        name: String,
        /// Start (true) or stop.
        start: bool,
    },
    /// Something failed; the sentence says what.
    Failed(String),
}

impl Live {
    /// Applies one action.
    pub fn apply(&self, action: LiveAction) -> Live {
        let mut next = self.clone();
        match action {
            LiveAction::BridgeFound(health) => {
                next.bridge = BridgeStatus::Present {
                    version: health.version,
                };
            }
            LiveAction::BridgeAbsent(reason) => {
                next.bridge = BridgeStatus::Absent { reason };
                next.stream = StreamStatus::Idle;
            }
            LiveAction::Cluster(view) => {
                next.mode = Some(view.mode);
                next.layout_version = Some(view.layout.version);
                next.layout_summary = Some(format!(
                    "{} over {} shards",
                    view.layout.layout.strategy.name(),
                    view.layout.layout.shards.len()
                ));
                next.record_nodes(&view.nodes, None);
            }
            LiveAction::StreamConnecting => next.stream = StreamStatus::Connecting,
            LiveAction::StreamOpen => next.stream = StreamStatus::Open,
            LiveAction::StreamLost { attempt, delay_ms } => {
                next.stream = StreamStatus::Reconnecting { attempt, delay_ms };
            }
            LiveAction::Tick(tick) => {
                let tick = *tick;
                next.stream = StreamStatus::Open;
                next.ticks += 1;
                next.record_nodes(&tick.nodes, Some(tick.at_ms));
                next.stats = tick.stats;
                if tick.rebalance.is_some() {
                    next.job = tick.rebalance;
                }
                if next.layout_version != Some(tick.layout_version) {
                    next.layout_version = Some(tick.layout_version);
                }
            }
            LiveAction::Inserted(result) => {
                next.push_log(
                    LogKind::Ok,
                    format!(
                        "inserted {} → shard {} on {} at {}",
                        result.user.user_id, result.shard, result.served_by, result.lsn
                    ),
                );
                next.last_insert = Some(*result);
            }
            LiveAction::BulkInserted(result) => {
                next.push_log(
                    LogKind::Ok,
                    format!(
                        "inserted {} users ({}0 …) on {} in {}",
                        thousands(result.inserted),
                        result.prefix,
                        result.served_by,
                        millis(Some(result.elapsed_ms))
                    ),
                );
            }
            LiveAction::Read(result) => {
                next.push_log(
                    LogKind::Ok,
                    format!(
                        "read {} ({}) from {} on shard {}, lag {}",
                        result.user.user_id,
                        result.consistency.name(),
                        result.served_by,
                        result.shard,
                        millis(result.lag_ms)
                    ),
                );
                next.last_read = Some(*result);
            }
            LiveAction::Job(job) => {
                let newer = next.job.as_ref().is_none_or(|current| {
                    current.id != job.id || current.moved <= job.moved || current.state != job.state
                });
                if newer {
                    next.job = Some(*job);
                }
            }
            LiveAction::NodeAsked { name, start } => {
                let verb = if start { "start" } else { "stop" };
                next.push_log(LogKind::Ok, format!("asked {name} to {verb}"));
            }
            LiveAction::Failed(message) => next.push_log(LogKind::Error, message),
        }
        next
    }

    /// Whether a bridge answered.
    pub fn has_bridge(&self) -> bool {
        matches!(self.bridge, BridgeStatus::Present { .. })
    }

    /// The standbys, in node order.
    pub fn standbys(&self) -> impl Iterator<Item = &NodeStatus> {
        self.nodes
            .iter()
            .filter(|node| node.role == NodeRole::Standby)
    }

    /// Reads served by `node` since the bridge started.
    pub fn reads_by(&self, node: &str) -> u64 {
        self.stats
            .reads
            .iter()
            .find(|count| count.node == node)
            .map_or(0, |count| count.count)
    }

    fn record_nodes(&mut self, nodes: &[NodeStatus], at_ms: Option<u64>) {
        self.nodes = nodes.to_vec();
        let Some(now) = at_ms else {
            return;
        };
        for node in nodes.iter().filter(|node| node.role == NodeRole::Standby) {
            let history = self.lag.entry(node.name.clone()).or_default();
            let point = LagPoint {
                at_ms: node.lag.as_ref().map_or(now, |lag| lag.at_ms.max(1)),
                replay_ms: node.lag.as_ref().and_then(|lag| lag.replay_lag_ms),
                byte_lag: node.lag.as_ref().and_then(|lag| lag.byte_lag),
                up: node.up,
            };
            // Samples arrive in order; a repeated sample adds nothing.
            if history.back().is_some_and(|last| last.at_ms >= point.at_ms) {
                continue;
            }
            history.push_back(point);
            while history
                .front()
                .is_some_and(|first| first.at_ms + LAG_WINDOW_MS < point.at_ms)
            {
                history.pop_front();
            }
        }
    }

    fn push_log(&mut self, kind: LogKind, text: String) {
        self.serial += 1;
        self.log.push_front(LogEntry {
            kind,
            text,
            serial: self.serial,
        });
        self.log.truncate(LOG_LENGTH);
    }
}

impl Reducible for Live {
    type Action = LiveAction;

    fn reduce(self: Rc<Self>, action: LiveAction) -> Rc<Self> {
        Rc::new(self.apply(action))
    }
}

#[cfg(test)]
mod tests {
    use ecoshard_core::wire::{Consistency, FailoverView, JobState, LagSample, NodeCount, User};

    use super::*;

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
                }],
                ..Stats::default()
            },
            rebalance: None,
            layout_version: 1,
            failover: FailoverView::default(),
        }))
    }

    #[test]
    fn ticks_build_lag_history_within_the_window() {
        let mut live = Live::default();
        for second in 0..400u64 {
            live = live.apply(tick(1_000_000 + second * 1_000, true));
        }
        let history = &live.lag["standby-1"];
        assert!(history.len() <= (LAG_WINDOW_MS / 1_000 + 1) as usize);
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
        };
        let mut live = Live::default().apply(LiveAction::Read(Box::new(read)));
        assert_eq!(
            live.log[0].text,
            "read user_1 (eventual) from standby-1 on shard s2, lag 0.8 ms"
        );
        for index in 0..20 {
            live = live.apply(LiveAction::Failed(format!("failure {index}")));
        }
        assert_eq!(live.log.len(), LOG_LENGTH);
        assert_eq!(live.log[0].text, "failure 19");
        assert_eq!(live.log[0].kind, LogKind::Error);
        assert!(live.log[0].serial > live.log[1].serial);
    }

    #[test]
    fn no_bridge_stops_the_stream() {
        let live = Live::default()
            .apply(LiveAction::StreamConnecting)
            .apply(LiveAction::BridgeAbsent("404".to_string()));
        assert_eq!(live.stream, StreamStatus::Idle);
        assert!(!live.has_bridge());
    }
}
