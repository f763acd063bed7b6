//! `Live` and its reducer: every answer and stream event becomes a
//! [`LiveAction`].

use std::collections::VecDeque;
use std::rc::Rc;

use ecoshard_core::Layout;
use ecoshard_core::wire::{
    BridgeView, BulkResult, ClusterMode, ClusterNodes, ClusterView, FailoverView, Health,
    InsertResult, JobState, LayoutView, NodeAction, NodeCount, NodeRole, NodeStatus, ReadResult,
    RebalanceJob, Stats, Tick,
};
use yew::Reducible;

use crate::api::ApiError;
use crate::format::{millis, thousands};
use crate::live::changes::{bridge_changes, changes, node_changes};
use crate::live::log::{ActivityLog, LogKind};
use crate::live::words::phase_position;
use crate::live::{
    Applying, BridgeStatus, HeldRows, NameMap, NodeRequest, Prediction, StreamStatus,
    shard_move_ended, shard_move_route,
};

/// How much lag history each chart keeps, in ms.
pub const LAG_WINDOW_MS: u64 = 3 * 60 * 1_000;

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
    /// Whether the primary listed it as connected (`pg_stat_replication`).
    pub streaming: bool,
}

impl LagPoint {
    /// The lag in words, as the standby's card says it.
    pub fn word(&self) -> String {
        crate::live::standby_lag(self.up, self.streaming, self.replay_ms)
    }
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
    /// Every node, primary first, as of the last tick (with several
    /// clusters, the first cluster's: `c1`, which holds the shards).
    pub nodes: Vec<NodeStatus>,
    /// With several clusters, each with its nodes and failover as of the
    /// last tick, the first one's also in `nodes` and `failover`; empty
    /// with one.
    pub clusters: Vec<ClusterNodes>,
    /// With several bridges over the database, each as of the last tick
    /// (the one streaming to this page marked `this`); empty with one.
    pub bridges: Vec<BridgeView>,
    /// Recent lag per standby, oldest first, by [`Live::node_key`].
    pub lag: NameMap<VecDeque<LagPoint>>,
    /// Counters as of the last tick.
    pub stats: Stats,
    /// The row total held while a job moves rows (see [`Live::rows`]).
    pub rows_held: Option<HeldRows>,
    /// How many of the explorer's numbered keys the database holds, as
    /// this page inserted them (or found them stored already).
    pub explorer_keys_stored: Option<u64>,
    /// The running or last rebalance job.
    pub job: Option<RebalanceJob>,
    /// Version of the layout writes go by (from the last tick).
    pub layout_version: Option<u64>,
    /// The layout in force with its version, as last fetched; stale when
    /// `layout_version` moved past it (see [`Live::layout_is_stale`]).
    pub layout: Option<LayoutView>,
    /// Failover settings, whether one runs, the last one.
    pub failover: FailoverView,
    /// The layout the page last asked to apply.
    pub applying: Applying,
    /// Stops and starts under way, per node (by [`Live::node_key`]).
    pub node_requests: NameMap<NodeRequest>,
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
    pub log: ActivityLog,
    /// Ticks received.
    pub ticks: u64,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            bridge: BridgeStatus::Checking,
            stream: StreamStatus::Idle,
            mode: None,
            nodes: Vec::new(),
            clusters: Vec::new(),
            bridges: Vec::new(),
            lag: NameMap::default(),
            stats: Stats::default(),
            rows_held: None,
            explorer_keys_stored: None,
            job: None,
            layout_version: None,
            layout: None,
            failover: FailoverView::default(),
            applying: Applying::Idle,
            node_requests: NameMap::default(),
            writes_refused: 0,
            steady_inserts: 0,
            steady_reads: 0,
            last_insert: None,
            last_read: None,
            log: ActivityLog::default(),
            ticks: 0,
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
    /// The explorer's `count` keys went in (or were in already).
    ExplorerKeysInserted {
        /// How many keys.
        count: u64,
        /// The bridge's answer.
        result: BulkResult,
    },
    /// The bridge refused the explorer's `count` keys.
    ExplorerKeysRefused {
        /// How many keys.
        count: u64,
        /// The bridge's answer.
        error: ApiError,
    },
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
    /// The bridge answered that the layout is the one in force: nothing
    /// stored, nothing moved.
    ApplyInForce(LayoutView),
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
    /// Applies one action: each kind to the function of its group below.
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
            LiveAction::Cluster(view) => next.take_cluster(view),
            LiveAction::StreamConnecting => next.stream = StreamStatus::Connecting,
            LiveAction::StreamOpen => next.stream = StreamStatus::Open,
            LiveAction::StreamLost { attempt, delay_ms } => {
                next.stream = StreamStatus::Reconnecting { attempt, delay_ms };
            }
            LiveAction::Tick(tick) => next.take_tick(*tick),
            LiveAction::Inserted(result) => next.inserted(*result),
            LiveAction::BulkInserted(result) => next.bulk_inserted(&result),
            LiveAction::ExplorerKeysInserted { count, result } => {
                next.explorer_keys_inserted(count, &result);
            }
            LiveAction::ExplorerKeysRefused { count, error } => {
                next.explorer_keys_refused(count, &error);
            }
            LiveAction::Read(result) => next.read(*result),
            LiveAction::SteadyInserted(result) => {
                next.steady_inserts += 1;
                next.last_insert = Some(*result);
            }
            LiveAction::SteadyRead(result) => {
                next.steady_reads += 1;
                next.last_read = Some(*result);
            }
            LiveAction::WriteFailed { what, error } => next.write_failed(&what, &error),
            LiveAction::Layout(view) => next.layout = Some(view),
            LiveAction::Job(job) => next.merge_job(*job),
            LiveAction::ApplySent { target } => next.applying = Applying::Sending { target },
            LiveAction::ApplyStarted { job, prediction } => next.apply_started(*job, prediction),
            LiveAction::ApplyInForce(view) => next.apply_in_force(view),
            LiveAction::ApplyRefused(error) => next.apply_refused(error),
            LiveAction::NodeAsked { name, request } => next.node_asked(name, request),
            LiveAction::NodeActed(action) => {
                next.node_requests.remove(&action.node);
                next.push_log(LogKind::Ok, action.message);
            }
            LiveAction::NodeActionFailed { name, error } => {
                next.node_requests.remove(&name);
                next.push_log(LogKind::Error, format!("{name}: {}", error.message));
            }
            LiveAction::Failed(message) => next.push_log(LogKind::Error, message),
        }
        next
    }

    /// Whether `target` is the layout in force as the bridge would judge it:
    /// both placed over the clusters it runs (`c1` alone when the ticks name
    /// none) are the same. The bridge stores every shard naming its cluster
    /// with several, the canonical form with one, so their JSON can differ
    /// where the placement does not.
    pub fn is_in_force(&self, target: &Layout) -> bool {
        let Some(view) = &self.layout else {
            return false;
        };
        let mut clusters: Vec<&str> = self.clusters.iter().map(|c| c.name.as_str()).collect();
        if clusters.is_empty() {
            clusters.push("c1");
        }
        match (view.layout.placed(&clusters), target.placed(&clusters)) {
            (Ok(stored), Ok(target)) => stored == target,
            _ => false,
        }
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

    /// The job whose plan the page lacks but the bridge has made (its total
    /// is known, or it ended): fetch it once from `GET /api/rebalance/{id}`,
    /// since ticks carry jobs without their plans.
    pub fn plan_wanted(&self) -> Option<u64> {
        self.job
            .as_ref()
            .filter(|job| job.plan.is_none() && (job.total > 0 || job.state != JobState::Running))
            .map(|job| job.id)
    }

    /// The node that takes writes now, whatever its name.
    pub fn primary(&self) -> Option<&NodeStatus> {
        self.nodes
            .iter()
            .find(|node| node.role == NodeRole::Primary)
    }

    /// The name a node of `cluster` goes by on this page (its lag
    /// history, its stop or start under way, its read count): the first
    /// cluster's nodes by their own names, as with one cluster; another
    /// cluster's as `c2/standby-1`, as the command line names them.
    pub fn node_key(&self, cluster: &str, node: &str) -> String {
        if self
            .clusters
            .first()
            .is_none_or(|first| first.name == cluster)
        {
            node.to_string()
        } else {
            format!("{cluster}/{node}")
        }
    }

    /// Whether a rebalance job is running.
    pub fn job_running(&self) -> bool {
        self.job
            .as_ref()
            .is_some_and(|job| job.state == JobState::Running)
    }

    /// Reads per second `node` served over the last second, as the bridge
    /// counted them (0 when it is not in the last tick).
    pub fn read_rate(&self, node: &str) -> f64 {
        self.node_reads(node).map_or(0.0, |count| count.per_sec)
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

    /// Every cluster's standbys by [`Live::node_key`], cluster by cluster:
    /// with one cluster, the standbys' names.
    pub fn standby_keys(&self) -> Vec<String> {
        if self.clusters.is_empty() {
            return self.standbys().map(|node| node.name.clone()).collect();
        }
        self.clusters
            .iter()
            .flat_map(|cluster| {
                cluster
                    .nodes
                    .iter()
                    .filter(|node| node.role == NodeRole::Standby)
                    .map(|node| self.node_key(&cluster.name, &node.name))
            })
            .collect()
    }

    /// Every node's reads, by [`Live::node_key`]: each cluster's with
    /// several (`standby-1`, …, `c2/standby-1`, …), else the one cluster's.
    pub fn read_counts(&self) -> Vec<NodeCount> {
        if self.stats.clusters.is_empty() {
            return self.stats.reads.clone();
        }
        self.stats
            .clusters
            .iter()
            .flat_map(|cluster| {
                cluster.reads.iter().map(|count| NodeCount {
                    node: self.node_key(&cluster.cluster, &count.node),
                    ..count.clone()
                })
            })
            .collect()
    }

    /// Reads served by `node` since the bridge started.
    pub fn reads_by(&self, node: &str) -> u64 {
        self.node_reads(node).map_or(0, |count| count.count)
    }

    /// `node`'s reads by its [`Live::node_key`]: another cluster's
    /// (`c2/standby-1`) from that cluster's counts, the first cluster's
    /// from `reads` (all of them with one cluster).
    fn node_reads(&self, node: &str) -> Option<&NodeCount> {
        let (reads, name) = match node.split_once('/') {
            Some((cluster, name)) => {
                let of_cluster = self.stats.clusters.iter().find(|c| c.cluster == cluster)?;
                (&of_cluster.reads, name)
            }
            None => (&self.stats.reads, node),
        };
        reads.iter().find(|count| count.node == name)
    }

    fn record_nodes(&mut self, nodes: &[NodeStatus], at_ms: Option<u64>) {
        self.nodes = nodes.to_vec();
        if let Some(now) = at_ms {
            self.record_lag("", nodes, now);
        }
    }

    /// Adds each standby's sample to its history, by its name after `prefix`
    /// (`""` for the first cluster, `c2/` for `c2`'s).
    fn record_lag(&mut self, prefix: &str, nodes: &[NodeStatus], now: u64) {
        for node in nodes.iter().filter(|node| node.role == NodeRole::Standby) {
            let history = self.lag.get_or_default(format!("{prefix}{}", node.name));
            let point = LagPoint {
                at_ms: node.lag.as_ref().map_or(now, |lag| lag.at_ms.max(1)),
                replay_ms: node.lag.as_ref().and_then(|lag| lag.replay_lag_ms),
                byte_lag: node.lag.as_ref().and_then(|lag| lag.byte_lag),
                up: node.up,
                streaming: crate::live::words::streaming(node),
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
    /// restarted bridge runs again) and keeps its plan once known (ticks
    /// carry none).
    fn merge_job(&mut self, mut job: RebalanceJob) {
        use JobState::{Done, Failed, Running};
        let accept = match &self.job {
            None => true,
            Some(current) if job.id != current.id => job.id > current.id,
            Some(current) => match (current.state, job.state) {
                (Running, Running) => {
                    job.moved >= current.moved && move_stage(&job) >= move_stage(current)
                }
                (Done, Running) => false,
                _ => true,
            },
        };
        if !accept {
            return;
        }
        if let Some(current) = self.job.as_ref().filter(|current| current.id == job.id)
            && job.plan.is_none()
        {
            job.plan = current.plan.clone();
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
                    "rebalance job {} done: {}, layout v{} in force",
                    job.id,
                    job.shard_move.as_ref().map_or_else(
                        || format!("{} rows moved", thousands(job.moved)),
                        |progress| shard_move_ended(progress, job.moved)
                    ),
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

    pub(crate) fn push_log(&mut self, kind: LogKind, text: String) {
        self.log.push(kind, text);
    }
}

/// How far a placement change got (shards moved, then the phase of the one
/// moving): a job's answers and ticks may arrive out of order, and a shard
/// move's rows stay the same through its phases.
fn move_stage(job: &RebalanceJob) -> (u64, usize) {
    job.shard_move.as_ref().map_or((0, 0), |progress| {
        (progress.shards_done, phase_position(progress.phase))
    })
}

/// The cluster and the stream: what `/api/cluster` and each tick say.
impl Live {
    fn take_cluster(&mut self, view: ClusterView) {
        self.mode = Some(view.mode);
        self.layout_version = Some(view.layout.version);
        self.layout = Some(view.layout);
        self.failover = view.failover;
        self.record_nodes(&view.nodes, None);
        self.clusters = view.clusters;
        self.bridges = view.bridges;
    }

    /// A tick: what it changed goes to the log (from the second tick on),
    /// then its nodes, counters, job, layout version and failover are taken.
    fn take_tick(&mut self, tick: Tick) {
        self.stream = StreamStatus::Open;
        if self.ticks > 0 {
            for (kind, text) in self.tick_changes(&tick) {
                self.push_log(kind, text);
            }
        }
        self.ticks += 1;
        self.record_nodes(&tick.nodes, Some(tick.at_ms));
        for cluster in tick.clusters.iter().skip(1) {
            self.record_lag(&format!("{}/", cluster.name), &cluster.nodes, tick.at_ms);
        }
        self.clusters = tick.clusters.clone();
        self.bridges = tick.bridges.clone();
        // The total before this tick (this tick's, on the first one).
        let before = if self.stats.rows.is_empty() {
            tick.stats.rows.iter().map(|shard| shard.keys).sum()
        } else {
            self.estimated_rows()
        };
        self.stats = tick.stats;
        if let Some(job) = tick.rebalance {
            self.merge_job(job);
        }
        self.hold_rows(before, tick.at_ms);
        self.layout_version = Some(tick.layout_version);
        self.failover = tick.failover;
    }
}

/// What a tick changed, in words: the bridges joining, lapsing or gone,
/// then as one cluster's (no names), or, with several, each cluster's lines
/// after its name.
impl Live {
    fn tick_changes(&self, tick: &Tick) -> Vec<(LogKind, String)> {
        let mut lines = bridge_changes(&self.bridges, &tick.bridges);
        if tick.clusters.is_empty() {
            lines.extend(changes(&self.nodes, &self.failover, tick));
            return lines;
        }
        for cluster in &tick.clusters {
            let Some(old) = self.clusters.iter().find(|old| old.name == cluster.name) else {
                continue;
            };
            let found = node_changes(&old.nodes, &old.failover, &cluster.nodes, &cluster.failover);
            lines.extend(
                found
                    .into_iter()
                    .map(|(kind, text)| (kind, format!("{}: {text}", cluster.name))),
            );
        }
        lines
    }
}

/// Traffic: inserts and reads the page made, and writes refused.
impl Live {
    fn inserted(&mut self, result: InsertResult) {
        self.push_log(
            LogKind::Ok,
            format!(
                "inserted {} → shard {} on {} at {}",
                result.user.user_id, result.shard, result.served_by, result.lsn
            ),
        );
        self.last_insert = Some(result);
    }

    fn bulk_inserted(&mut self, result: &BulkResult) {
        self.push_log(
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

    fn read(&mut self, result: ReadResult) {
        self.push_log(
            LogKind::Ok,
            format!(
                "read {} ({}) from {} on shard {}: {}",
                result.user.user_id,
                result.consistency.name(),
                result.served_by,
                result.shard,
                self.read_lag(&result)
            ),
        );
        self.last_read = Some(result);
    }

    /// A refused insert: logged with its status and code; a 503 (primary
    /// down or being replaced) is counted too.
    fn write_failed(&mut self, what: &str, error: &ApiError) {
        if error.status == Some(503) {
            self.writes_refused += 1;
        }
        let status = error
            .status
            .map(|status| format!(" ({status} {})", error.code))
            .unwrap_or_default();
        self.push_log(
            LogKind::Error,
            format!("{what} refused{status}: {}", error.message),
        );
    }
}

/// Applying a layout: what the bridge answered to the one the page sent.
impl Live {
    /// The layout being sent, as [`LiveAction::ApplySent`] named it.
    fn sent_target(&self) -> String {
        match &self.applying {
            Applying::Sending { target } => target.clone(),
            _ => String::new(),
        }
    }

    fn apply_started(&mut self, job: RebalanceJob, prediction: Option<Prediction>) {
        let target = self.sent_target();
        let text = if let Some(progress) = &job.shard_move {
            format!(
                "applying {target}: job {} (v{} → v{}) moves {}",
                job.id,
                job.from_version,
                job.to_version,
                shard_move_route(progress)
            )
        } else if job.plan.is_none() && job.state == JobState::Running {
            format!(
                "applying {target}: job {} (v{} → v{}) is planning which rows move",
                job.id, job.from_version, job.to_version
            )
        } else {
            format!(
                "applying {target}: job {} (v{} → v{}) moves {} rows",
                job.id,
                job.from_version,
                job.to_version,
                thousands(job.total)
            )
        };
        self.push_log(LogKind::Ok, text);
        self.applying = Applying::Started {
            target,
            job_id: job.id,
            prediction,
        };
        self.merge_job(job);
    }

    fn apply_in_force(&mut self, view: LayoutView) {
        let target = self.sent_target();
        self.push_log(
            LogKind::Ok,
            format!(
                "{target}: the layout is already version {}; nothing to move",
                view.version
            ),
        );
        self.applying = Applying::InForce {
            target,
            version: view.version,
        };
        self.layout = Some(view);
    }

    fn apply_refused(&mut self, error: ApiError) {
        let target = self.sent_target();
        self.push_log(
            LogKind::Error,
            format!("Apply {target}: refused — {}", error.message),
        );
        self.applying = Applying::Refused { target, error };
    }
}

/// Nodes: stops and starts the page asked for.
impl Live {
    fn node_asked(&mut self, name: String, request: NodeRequest) {
        let text = match request {
            NodeRequest::Stop(mode) => format!("asked {name} to stop ({})", mode.name()),
            NodeRequest::Start => format!("asked {name} to start"),
        };
        self.push_log(LogKind::Ok, text);
        self.node_requests.insert(name, request);
    }
}

impl Reducible for Live {
    type Action = LiveAction;

    fn reduce(self: Rc<Self>, action: LiveAction) -> Rc<Self> {
        Rc::new(self.apply(action))
    }
}
