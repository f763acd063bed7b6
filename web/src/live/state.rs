//! `Live` and its reducer: every answer and stream event becomes a
//! [`LiveAction`].

use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

use ecoshard_core::wire::{
    BulkResult, ClusterMode, ClusterView, FailoverEvent, FailoverView, Health, InsertResult,
    JobState, LayoutView, NodeAction, NodeRole, NodeStatus, ReadResult, RebalanceJob, Stats, Tick,
};
use yew::Reducible;

use crate::api::ApiError;
use crate::format::{millis, thousands};
use crate::live::Prediction;

/// How much lag history each chart keeps, in ms.
pub const LAG_WINDOW_MS: u64 = 3 * 60 * 1_000;
/// Entries kept in the activity log.
const LOG_LENGTH: usize = 12;
/// Span over which reads per second are counted, in ms.
const RATE_WINDOW_MS: u64 = 2_000;

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
    /// How many times in a row it happened (a refused write at 10 a second
    /// is one line, not a flood).
    pub repeats: u32,
    /// Counts entries, as a stable key for the list.
    pub serial: u64,
}

/// How to stop a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopMode {
    /// A clean shutdown (`pg_ctl stop -m fast`).
    Fast,
    /// Like a crash (`-m immediate`: no checkpoint).
    Immediate,
}

impl StopMode {
    /// The `mode` query value.
    pub fn name(self) -> &'static str {
        match self {
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        }
    }
}

/// A stop or start the page asked for and is waiting on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeRequest {
    /// Stopping.
    Stop(StopMode),
    /// Starting.
    Start,
}

/// The layout the page asked the bridge to apply, and what came of it.
#[derive(Clone, Debug, PartialEq)]
pub enum Applying {
    /// Nothing asked yet (or the answer was read).
    Idle,
    /// `PUT /api/layout` is on its way.
    Sending {
        /// The layout, for people.
        target: String,
    },
    /// The bridge started a job (or found nothing to move).
    Started {
        /// The layout, for people.
        target: String,
        /// The job it started.
        job_id: u64,
        /// What the explorer expected it to move, worked out when it was sent.
        prediction: Option<Prediction>,
    },
    /// The bridge refused it.
    Refused {
        /// The layout, for people.
        target: String,
        /// Its answer.
        error: ApiError,
    },
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
    /// Version of the layout writes go by (from the last tick).
    pub layout_version: Option<u64>,
    /// The layout in force with its version, as last fetched; stale when
    /// `layout_version` moved past it (see [`Live::layout_is_stale`]).
    pub layout: Option<LayoutView>,
    /// Failover settings, whether one runs, the last one.
    pub failover: FailoverView,
    /// Reads per second per node over the last two seconds.
    pub read_rates: BTreeMap<String, f64>,
    /// The layout the page last asked to apply.
    pub applying: Applying,
    /// Stops and starts under way, per node.
    pub node_requests: BTreeMap<String, NodeRequest>,
    /// Inserts the bridge refused with 503 (primary down or being replaced)
    /// since the page opened.
    pub writes_refused: u64,
    /// Steady-traffic inserts the bridge acknowledged.
    pub steady_inserts: u64,
    /// Steady-traffic read-backs that found their row.
    pub steady_reads: u64,
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
    /// Read counters of recent ticks, for the rates.
    read_history: VecDeque<(u64, Vec<(String, u64)>)>,
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
            layout: None,
            failover: FailoverView::default(),
            read_rates: BTreeMap::new(),
            applying: Applying::Idle,
            node_requests: BTreeMap::new(),
            writes_refused: 0,
            steady_inserts: 0,
            steady_reads: 0,
            last_insert: None,
            last_read: None,
            log: VecDeque::new(),
            ticks: 0,
            serial: 0,
            read_history: VecDeque::new(),
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
    /// A steady-traffic insert went through (counted, not logged).
    SteadyInserted(Box<InsertResult>),
    /// A steady-traffic read-back came back (counted, not logged).
    SteadyRead(Box<ReadResult>),
    /// `GET /api/layout` answered.
    Layout(LayoutView),
    /// A rebalance progressed (a poll of `GET /api/rebalance/{id}`).
    Job(Box<RebalanceJob>),
    /// `PUT /api/layout` was sent.
    ApplySent {
        /// The layout, for people.
        target: String,
    },
    /// The bridge answered `PUT /api/layout` with a job.
    ApplyStarted {
        /// The job.
        job: Box<RebalanceJob>,
        /// What the explorer expected, worked out when it was sent.
        prediction: Option<Prediction>,
    },
    /// The bridge refused the layout.
    ApplyRefused(ApiError),
    /// A node was asked to stop or start.
    NodeAsked {
        /// The node.
        name: String,
        /// What was asked.
        request: NodeRequest,
    },
    /// The bridge did (or found done) what was asked of a node.
    NodeActed(NodeAction),
    /// Stopping or starting a node failed.
    NodeActionFailed {
        /// The node.
        name: String,
        /// The bridge's answer.
        error: ApiError,
    },
    /// An insert (single or bulk) failed.
    WriteFailed {
        /// What was written, for the log ("Insert", "Bulk insert").
        what: String,
        /// The bridge's answer.
        error: ApiError,
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
                next.layout = Some(view.layout);
                next.failover = view.failover;
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
                if self.ticks > 0 {
                    next.note_changes(self, &tick);
                }
                next.record_nodes(&tick.nodes, Some(tick.at_ms));
                next.record_read_rates(&tick.stats, tick.at_ms);
                next.stats = tick.stats;
                if let Some(job) = tick.rebalance {
                    next.merge_job(job);
                }
                next.layout_version = Some(tick.layout_version);
                next.failover = tick.failover;
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
            LiveAction::SteadyInserted(result) => {
                next.steady_inserts += 1;
                next.last_insert = Some(*result);
            }
            LiveAction::SteadyRead(result) => {
                next.steady_reads += 1;
                next.last_read = Some(*result);
            }
            LiveAction::Layout(view) => {
                next.layout = Some(view);
            }
            LiveAction::Job(job) => next.merge_job(*job),
            LiveAction::ApplySent { target } => {
                next.applying = Applying::Sending { target };
            }
            LiveAction::ApplyStarted { job, prediction } => {
                let target = match &self.applying {
                    Applying::Sending { target } => target.clone(),
                    _ => String::new(),
                };
                let text = if job.total == 0 && job.from_version == job.to_version {
                    format!("{target}: the layout in force already; nothing to move")
                } else {
                    format!(
                        "applying {target}: job {} (v{} → v{}) moves {} rows",
                        job.id,
                        job.from_version,
                        job.to_version,
                        thousands(job.total)
                    )
                };
                next.push_log(LogKind::Ok, text);
                next.applying = Applying::Started {
                    target,
                    job_id: job.id,
                    prediction,
                };
                next.merge_job(*job);
            }
            LiveAction::ApplyRefused(error) => {
                let target = match &self.applying {
                    Applying::Sending { target } => target.clone(),
                    _ => String::new(),
                };
                next.push_log(
                    LogKind::Error,
                    format!("Apply {target}: refused — {}", error.message),
                );
                next.applying = Applying::Refused { target, error };
            }
            LiveAction::NodeAsked { name, request } => {
                let text = match request {
                    NodeRequest::Stop(mode) => format!("asked {name} to stop ({})", mode.name()),
                    NodeRequest::Start => format!("asked {name} to start"),
                };
                next.push_log(LogKind::Ok, text);
                next.node_requests.insert(name, request);
            }
            LiveAction::NodeActed(action) => {
                next.node_requests.remove(&action.node);
                next.push_log(LogKind::Ok, action.message);
            }
            LiveAction::NodeActionFailed { name, error } => {
                next.node_requests.remove(&name);
                next.push_log(LogKind::Error, format!("{name}: {}", error.message));
            }
            LiveAction::WriteFailed { what, error } => {
                if error.status == Some(503) {
                    next.writes_refused += 1;
                }
                let status = error
                    .status
                    .map(|status| format!(" ({status} {})", error.code))
                    .unwrap_or_default();
                next.push_log(
                    LogKind::Error,
                    format!("{what} refused{status}: {}", error.message),
                );
            }
            LiveAction::Failed(message) => next.push_log(LogKind::Error, message),
        }
        next
    }

    /// Whether the fetched layout is older than the one writes go by (a
    /// rebalance began or ended): time to fetch it again.
    pub fn layout_is_stale(&self) -> bool {
        match (&self.layout, self.layout_version) {
            (Some(layout), Some(version)) => layout.version != version,
            (None, Some(_)) => true,
            _ => false,
        }
    }

    /// The node that takes writes now, whatever its name.
    pub fn primary(&self) -> Option<&NodeStatus> {
        self.nodes
            .iter()
            .find(|node| node.role == NodeRole::Primary)
    }

    /// Whether a rebalance job is running.
    pub fn job_running(&self) -> bool {
        self.job
            .as_ref()
            .is_some_and(|job| job.state == JobState::Running)
    }

    /// Rows in the database, as last counted.
    pub fn rows(&self) -> u64 {
        self.stats.rows.iter().map(|shard| shard.keys).sum()
    }

    /// Reads per second node `node` served lately.
    pub fn read_rate(&self, node: &str) -> f64 {
        self.read_rates.get(node).copied().unwrap_or(0.0)
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

    /// Takes a job from a tick, a poll or an answer: a newer job replaces
    /// an older one; the same job only moves forward (a late poll never
    /// takes a finished job back to running, but a failed job resumed by a
    /// restarted bridge runs again).
    fn merge_job(&mut self, job: RebalanceJob) {
        use JobState::{Done, Failed, Running};
        let accept = match &self.job {
            None => true,
            Some(current) if job.id != current.id => job.id > current.id,
            Some(current) => match (current.state, job.state) {
                (Running, Running) => job.moved >= current.moved,
                (Done, Running) => false,
                _ => true,
            },
        };
        if !accept {
            return;
        }
        let finished = self
            .job
            .as_ref()
            .is_some_and(|current| current.id == job.id && current.state == Running)
            && job.state != Running;
        if finished {
            let text = match (&job.state, &job.error) {
                (Failed, error) => format!(
                    "rebalance job {} failed: {}",
                    job.id,
                    error.as_deref().unwrap_or("no reason given")
                ),
                _ => format!(
                    "rebalance job {} done: {} rows moved, layout v{} in force",
                    job.id,
                    thousands(job.moved),
                    job.to_version
                ),
            };
            let kind = if job.state == Done {
                LogKind::Ok
            } else {
                LogKind::Error
            };
            self.push_log(kind, text);
        }
        self.job = Some(job);
    }

    /// Logs what changed since the last tick: nodes down or up, roles, a failover.
    fn note_changes(&mut self, before: &Live, tick: &Tick) {
        for node in &tick.nodes {
            let Some(old) = before.nodes.iter().find(|old| old.name == node.name) else {
                continue;
            };
            if old.role != node.role && node.role == NodeRole::Primary {
                self.push_log(
                    LogKind::Ok,
                    format!("{} is the primary now: writes go to it", node.name),
                );
            }
            if old.up && !node.up {
                let text = match node.role {
                    NodeRole::Primary => format!(
                        "{} (primary) is down: writes answer 503, reads go on from the standbys",
                        node.name
                    ),
                    NodeRole::Standby => {
                        format!("{} is down: reads go to the other nodes", node.name)
                    }
                };
                self.push_log(LogKind::Error, text);
            } else if !old.up && node.up {
                self.push_log(LogKind::Ok, format!("{} is up again", node.name));
            }
        }
        if tick.failover.in_progress && !before.failover.in_progress {
            self.push_log(
                LogKind::Error,
                "failover under way: promoting the most advanced standby".to_string(),
            );
        }
        let new_event = tick.failover.last.as_ref().filter(|event| {
            before
                .failover
                .last
                .as_ref()
                .is_none_or(|old| old.at_ms != event.at_ms)
        });
        if let Some(event) = new_event {
            let text = failover_sentence(event);
            self.push_log(LogKind::Ok, text);
        }
    }

    fn record_read_rates(&mut self, stats: &Stats, at_ms: u64) {
        let counts: Vec<(String, u64)> = stats
            .reads
            .iter()
            .map(|count| (count.node.clone(), count.count))
            .collect();
        self.read_history.push_back((at_ms, counts));
        while self
            .read_history
            .front()
            .is_some_and(|(first, _)| *first + RATE_WINDOW_MS < at_ms)
        {
            self.read_history.pop_front();
        }
        self.read_rates.clear();
        let (Some((first_ms, first)), Some((last_ms, last))) =
            (self.read_history.front(), self.read_history.back())
        else {
            return;
        };
        let span = last_ms.saturating_sub(*first_ms) as f64 / 1_000.0;
        if span <= 0.0 {
            return;
        }
        for (node, count) in last {
            let earlier = first
                .iter()
                .find(|(name, _)| name == node)
                .map_or(0, |(_, count)| *count);
            // A restarted bridge counts from 0 again: no negative rates.
            let rate = count.saturating_sub(earlier) as f64 / span;
            self.read_rates.insert(node.clone(), rate);
        }
    }

    fn push_log(&mut self, kind: LogKind, text: String) {
        if let Some(newest) = self.log.front_mut()
            && newest.kind == kind
            && newest.text == text
        {
            newest.repeats += 1;
            return;
        }
        self.serial += 1;
        self.log.push_front(LogEntry {
            kind,
            text,
            repeats: 1,
            serial: self.serial,
        });
        self.log.truncate(LOG_LENGTH);
    }
}

/// A failover in one sentence, with its timings.
pub fn failover_sentence(event: &FailoverEvent) -> String {
    let mut text = format!(
        "failover: {} promoted in place of {} — detected in {}, pg_promote {}, writes back after {}",
        event.to,
        event.from,
        millis(Some(event.detect_ms)),
        millis(Some(event.promote_ms)),
        millis(Some(event.total_ms))
    );
    if !event.repointed.is_empty() {
        text.push_str(&format!("; {} now follow it", event.repointed.join(", ")));
    }
    text
}

impl Reducible for Live {
    type Action = LiveAction;

    fn reduce(self: Rc<Self>, action: LiveAction) -> Rc<Self> {
        Rc::new(self.apply(action))
    }
}

#[cfg(test)]
mod tests {
    use ecoshard_core::wire::{Consistency, LagSample, NodeCount, User};

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

    #[test]
    fn applying_keeps_the_prediction_with_the_job_and_refusals_with_their_sentence() {
        let prediction = Prediction {
            from_version: 1,
            key_count: 2_000,
            moved: 466,
            ideal_fraction: 0.25,
        };
        let sent = Live::default().apply(LiveAction::ApplySent {
            target: "Ring over 4 shards".to_string(),
        });
        let started = sent.apply(LiveAction::ApplyStarted {
            job: Box::new(job(2, 0, JobState::Running)),
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
        assert!(
            started.log[0]
                .text
                .starts_with("applying Ring over 4 shards: job 2")
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
    fn reads_per_second_come_from_the_counters_and_nodes_going_down_are_logged() {
        let mut live = Live::default();
        // standby-2's counter grows by one a second (see `tick`).
        for second in 0..5u64 {
            live = live.apply(tick(10_000 + second * 1_000, true));
        }
        assert!(
            (live.read_rate("standby-2") - 1.0).abs() < 1e-9,
            "{:?}",
            live.read_rates
        );
        assert_eq!(live.read_rate("standby-1"), 0.0);
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
            layout: ecoshard_core::Layout::with_count(ecoshard_core::StrategyKind::Ring, 3)
                .unwrap(),
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
}
