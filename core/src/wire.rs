//! The JSON shapes the bridge serves and the page reads (feature `serde`).
//! Both sides serialise these same structs, so they cannot drift apart.
//!
//! Field names are a stable surface: scripts use them. Add fields; do not
//! rename or remove them.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::layout::Layout;
use crate::plan::{PlanSummary, ShardLoad};
// What utoipa's derive expands to uses the std prelude's macros.
#[cfg(feature = "openapi")]
use alloc::{format, vec};

/// Every HTTP error: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiErrorBody {
    /// The error.
    pub error: ApiErrorDetail,
}

/// Code and message of an HTTP error.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiErrorDetail {
    /// Stable, machine-readable code (`"invalid_json"`, `"primary_unavailable"`, …).
    pub code: String,
    /// One sentence for people.
    pub message: String,
}

/// `GET /api/health`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// `"ok"`.
    pub status: String,
    /// Version of the bridge.
    pub version: String,
}

/// Whether the bridge started the cluster itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ClusterMode {
    /// Started by the bridge on loopback; nodes can be stopped and started.
    Local,
    /// Given by URLs; the bridge only connects.
    External,
}

/// A node's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    /// Takes writes.
    Primary,
    /// Streams from the primary; serves reads.
    Standby,
}

/// One node of the cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeStatus {
    /// `primary`, `standby-1`, `standby-2`, …
    pub name: String,
    /// Primary or standby.
    pub role: NodeRole,
    /// `host:port`.
    pub addr: String,
    /// Whether it answered the last health check.
    pub up: bool,
    /// Replication lag, for standbys.
    pub lag: Option<LagSample>,
}

/// Replication state of one standby, as the primary sees it
/// (`pg_stat_replication`) plus whether the standby itself answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LagSample {
    /// Standby name (its `application_name`).
    pub node: String,
    /// `pg_stat_replication.state` (`streaming`, `catchup`, …); `None` when the
    /// standby is not connected to the primary.
    pub state: Option<String>,
    /// `pg_stat_replication.sync_state` (`async`, `sync`, `quorum`, …).
    pub sync_state: Option<String>,
    /// `write_lag` in ms; `None` when PostgreSQL reports NULL (normal when idle).
    pub write_lag_ms: Option<f64>,
    /// `flush_lag` in ms; `None` when NULL.
    pub flush_lag_ms: Option<f64>,
    /// `replay_lag` in ms; `None` when NULL.
    pub replay_lag_ms: Option<f64>,
    /// `pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)` in bytes.
    pub byte_lag: Option<i64>,
    /// Whether the standby answered its own health check.
    pub up: bool,
    /// When this was sampled, ms since the Unix epoch.
    pub at_ms: u64,
}

/// `GET /api/layout`: the layout in force, its version and where its shards
/// live.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LayoutView {
    /// Increases by one with every applied layout.
    pub version: u64,
    /// The layout, as stored: a shard names its cluster only where
    /// round-robin would not give it that one (so, over one cluster, never).
    pub layout: Layout,
    /// Each shard's cluster, in the layout's shard order: `placement[i]` is
    /// where `layout.shards[i]` lives (absent from older bridges: empty).
    #[serde(default)]
    pub placement: Vec<String>,
}

/// `GET /api/cluster`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClusterView {
    /// Local or external cluster.
    pub mode: ClusterMode,
    /// Every node, in a fixed order (`primary`, `standby-1`, …). Names never
    /// change; roles do, after a failover: look at each node's `role`.
    pub nodes: Vec<NodeStatus>,
    /// The layout in force.
    pub layout: LayoutView,
    /// Failover settings and the last failover.
    #[serde(default)]
    pub failover: FailoverView,
    /// With several clusters, every cluster (`c1` first, whose nodes and
    /// failover are also `nodes` and `failover` above); absent with one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clusters: Vec<ClusterNodes>,
    /// The bridges registered in the catalog with a recent heartbeat (this
    /// one among them); absent from older bridges' answers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bridges: Vec<BridgeView>,
}

/// One bridge serving the same database, as its row in the catalog says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BridgeView {
    /// Its name (`--name`, by default `<hostname>:<port>`).
    pub name: String,
    /// Where it is reached (`--advertise`, by default its listen address).
    pub address: String,
    /// The layout version its routing follows (writes go by it).
    pub layout_version: u64,
    /// How long ago its last heartbeat was, by the catalog server's clock.
    pub heartbeat_age_ms: u64,
    /// Whether its heartbeat is within the lease: others count it as live.
    pub live: bool,
    /// Whether it runs the rebalance job under way.
    pub runs_job: bool,
    /// Whether it is the bridge that answered.
    pub this: bool,
}

/// One cluster of several: its name, its nodes and its failover.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClusterNodes {
    /// `c1`, `c2`, …
    pub name: String,
    /// Its nodes, named within the cluster (`primary`, `standby-1`, …).
    pub nodes: Vec<NodeStatus>,
    /// Its failover settings and last failover (each cluster fails over on its own).
    #[serde(default)]
    pub failover: FailoverView,
}

/// `POST /api/users` body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// The shard key.
    pub user_id: String,
    /// Display name; defaults to the id.
    #[serde(default)]
    pub name: Option<String>,
    /// E-mail; defaults to `<id>@ecomarket.example`.
    #[serde(default)]
    pub email: Option<String>,
}

/// A stored user.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    /// The shard key.
    pub user_id: String,
    /// Display name.
    pub name: String,
    /// E-mail.
    pub email: String,
    /// When it was inserted (RFC 3339).
    pub created_at: String,
}

/// `POST /api/users` answer: 201 written, or 200 for a repeat (the user was
/// stored already exactly as sent; nothing was written).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InsertResult {
    /// The row as stored.
    pub user: User,
    /// Shard it went to (a repeat: where it is).
    pub shard: String,
    /// Node that took the write (the primary).
    pub served_by: String,
    /// The read-your-writes token: the WAL position of the commit
    /// (`pg_current_wal_lsn()` after it), e.g. `0/3000148`; for a repeat,
    /// the position when the row was read back, which is past its commit.
    /// With several clusters it names the cluster it is a position of,
    /// e.g. `c2/0/3000148`.
    pub lsn: String,
    /// With several clusters, the cluster holding the shard (absent with one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
}

/// `POST /api/users/bulk` body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BulkInsert {
    /// How many users to generate and insert.
    pub count: u64,
    /// Prefix of the generated ids; a unique one is chosen when absent.
    #[serde(default)]
    pub prefix: Option<String>,
}

impl BulkInsert {
    /// Most users one bulk insert makes: the bridge refuses more, and the
    /// page offers no more.
    pub const MAX_COUNT: u64 = 10_000;
}

/// `POST /api/users/bulk` answer: 201 written, or 200 for a repeat (every
/// user was stored already exactly so; nothing was written).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BulkResult {
    /// Rows this request inserted: `count`, or 0 for a repeat.
    pub inserted: u64,
    /// The prefix the ids were generated with (`<prefix>0` …).
    pub prefix: String,
    /// The users per shard (where they went, or, for a repeat, where they are).
    pub shards: Vec<ShardLoad>,
    /// Node that took the writes (with several clusters: the first
    /// cluster's primary that did).
    pub served_by: String,
    /// Read-your-writes token after the commit (with several clusters: the
    /// first cluster's in `lsns`).
    pub lsn: String,
    /// With several clusters: each cluster written's read-your-writes
    /// token (`c2/0/3000148`), by cluster; absent with one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lsns: BTreeMap<String, String>,
    /// Time the inserts took, in ms.
    pub elapsed_ms: f64,
}

/// `POST /api/users/generate` body: a data set written with `COPY`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateUsers {
    /// How many users to generate (1 to [`GenerateUsers::MAX_COUNT`]).
    pub count: u64,
    /// Prefix of the generated ids; a unique one is chosen when absent.
    #[serde(default)]
    pub prefix: Option<String>,
}

impl GenerateUsers {
    /// Most users one generation writes: ten million, about a gigabyte of
    /// rows and indexes, written in one transaction.
    pub const MAX_COUNT: u64 = 10_000_000;
    /// The data sets the page offers.
    pub const PAGE_SIZES: [u64; 2] = [100_000, 1_000_000];
}

/// `POST /api/users/generate` answer: 201 written, or 200 for a repeat
/// (every user was stored already exactly so; nothing was written).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerateResult {
    /// Rows this request inserted: `count`, or 0 for a repeat.
    pub inserted: u64,
    /// The prefix the ids were generated with (`<prefix>0` …).
    pub prefix: String,
    /// The users per shard (where they went, or, for a repeat, where they are).
    pub shards: Vec<ShardLoad>,
    /// Node that took the writes (with several clusters: the first
    /// cluster's primary that did).
    pub served_by: String,
    /// Read-your-writes token after the commit (with several clusters: the
    /// first cluster's in `lsns`).
    pub lsn: String,
    /// With several clusters: each cluster written's read-your-writes
    /// token (`c2/0/3000148`), by cluster; absent with one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lsns: BTreeMap<String, String>,
    /// From taking the routing table to the WAL position read after the
    /// commit, in ms.
    pub elapsed_ms: f64,
    /// `inserted` over `elapsed_ms`, rows per second (0 for a repeat).
    pub rows_per_sec: f64,
}

/// How fresh a read must be.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Consistency {
    /// Any healthy standby within the lag bound (else the primary).
    #[default]
    Eventual,
    /// The primary.
    Strong,
    /// A standby that has replayed past a given LSN (else the primary).
    ReadYourWrites,
}

impl Consistency {
    /// Every consistency, in the order a page offers them.
    pub const ALL: [Consistency; 3] = [
        Consistency::Eventual,
        Consistency::ReadYourWrites,
        Consistency::Strong,
    ];

    /// The consistency called `name` (as [`Consistency::name`] says it).
    pub fn from_name(name: &str) -> Option<Consistency> {
        Consistency::ALL
            .into_iter()
            .find(|consistency| consistency.name() == name)
    }

    /// The name used in the query string.
    pub const fn name(self) -> &'static str {
        match self {
            Consistency::Eventual => "eventual",
            Consistency::Strong => "strong",
            Consistency::ReadYourWrites => "read-your-writes",
        }
    }
}

/// `GET /api/sample?count=N` answer: ids drawn from every shard of the
/// layout in force, each shard in proportion to its rows, so the sample
/// spreads over the shards as the rows do.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserSample {
    /// Version of the layout the ids were drawn under.
    pub version: u64,
    /// The sampled ids (at most the `count` asked for; fewer when the
    /// database holds fewer rows, or PostgreSQL's sample came out short).
    pub ids: Vec<String>,
    /// Rows the shards held when sampled: PostgreSQL's estimate, as
    /// [`Stats::rows`] (not a count).
    pub rows: u64,
    /// Node the ids were read from.
    pub served_by: String,
}

impl UserSample {
    /// Most ids one sample holds: the bridge refuses more.
    pub const MAX_COUNT: u64 = 10_000;
    /// Ids drawn when no count is given.
    pub const DEFAULT_COUNT: u64 = 2_000;
}

/// `GET /api/users/{id}` answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReadResult {
    /// The row.
    pub user: User,
    /// Shard holding it.
    pub shard: String,
    /// Node that served the read.
    pub served_by: String,
    /// That node's replay lag when it was chosen, in ms (0 for the primary;
    /// `None` when PostgreSQL reported none).
    pub lag_ms: Option<f64>,
    /// The consistency asked for.
    pub consistency: Consistency,
    /// With several clusters, the cluster of the node that served it
    /// (absent with one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
}

/// A count per node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeCount {
    /// Node name.
    pub node: String,
    /// The count.
    pub count: u64,
    /// Per second over the last second, as the bridge counted them (absent
    /// from older bridges: 0).
    #[serde(default)]
    pub per_sec: f64,
}

/// `GET /api/stats`, and part of every stream tick.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Stats {
    /// Reads served per node since start (with several clusters, `c1`'s
    /// nodes; every cluster's are in `clusters`).
    pub reads: Vec<NodeCount>,
    /// Rows written since start.
    pub writes: u64,
    /// Writes per second over the last second.
    pub writes_per_sec: f64,
    /// Reads per second over the last second, every cluster's.
    pub reads_per_sec: f64,
    /// Reads that failed since start.
    pub failed_reads: u64,
    /// Rows per shard: PostgreSQL's estimate on the primary
    /// (`pg_stat_user_tables.n_live_tup`, read every second), not a count.
    /// Exact once the servers' statistics include the last commits (they
    /// are flushed a second to about ten seconds after them); a `VACUUM` or
    /// `ANALYZE` running beside inserts may leave it off until the next one.
    pub rows: Vec<ShardLoad>,
    /// With several clusters, each cluster's reads per node, `c1` first
    /// (node names repeat across clusters: `standby-1` in each); absent
    /// with one, and from older bridges.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clusters: Vec<ClusterReads>,
}

/// One cluster's reads per node, in [`Stats::clusters`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClusterReads {
    /// `c1`, `c2`, …
    pub cluster: String,
    /// Reads served per node of this cluster since start, named within it,
    /// with their rates over the last second.
    pub reads: Vec<NodeCount>,
}

/// State of a rebalance job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Moving rows.
    Running,
    /// Every planned row moved.
    Done,
    /// Stopped by an error (see `error`). Every row is readable (reads look
    /// under both layouts); restarting the bridge resumes the job.
    Failed,
}

/// A rebalance job: `PUT /api/layout` answer (202), `GET /api/rebalance/{id}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RebalanceJob {
    /// Job id.
    pub id: u64,
    /// Running, done or failed.
    pub state: JobState,
    /// Rows moved so far.
    pub moved: u64,
    /// Rows the plan moves (0 while a running job is still planning).
    pub total: u64,
    /// Moving speed over the job so far.
    pub rows_per_sec: f64,
    /// Layout version before.
    pub from_version: u64,
    /// Layout version after.
    pub to_version: u64,
    /// The plan over the rows present when the job started: `None` until it
    /// is made, and always `None` in a [`Tick`] (it grows with the shard
    /// count; `GET /api/rebalance/{id}` carries it).
    pub plan: Option<PlanSummary>,
    /// Why it failed.
    pub error: Option<String>,
    /// For a placement change (whole shards moving between clusters by
    /// logical replication): the shard moving now, its phase and progress.
    /// Absent for a layout change that moves keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_move: Option<Box<ShardMoveProgress>>,
}

/// Phase of a whole-shard move between clusters, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MovePhase {
    /// The shard's table on the target, a publication on the source, a
    /// subscription on the target.
    SettingUp,
    /// The subscription's initial copy.
    Copying,
    /// Streaming the source's changes since the copy.
    CatchingUp,
    /// The shard's writes fenced until the target has applied the
    /// source's last position; then its routing swaps to the target.
    Cutover,
    /// The source's rows checked against the target's (count, checksum).
    Verifying,
    /// Subscription (and its slot), publication and source schema dropped.
    Cleanup,
    /// Moved.
    Done,
}

/// Progress of one shard's move (see [`RebalanceJob::shard_move`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShardMoveProgress {
    /// The shard moving now.
    pub shard: String,
    /// Its cluster before.
    pub from_cluster: String,
    /// Its cluster after.
    pub to_cluster: String,
    /// Where the move is.
    pub phase: MovePhase,
    /// Shards of the job moved so far.
    pub shards_done: u64,
    /// Shards the job moves.
    pub shards_total: u64,
    /// Rows of this shard on the target so far.
    pub rows: u64,
    /// Rows of this shard on the source when the move began.
    pub rows_total: u64,
    /// Bytes of the initial copy so far (PostgreSQL's
    /// `pg_stat_progress_copy`; the table's size once the copy is done).
    pub bytes: u64,
    /// The source table's size when the move began.
    pub bytes_total: u64,
    /// Copying speed so far.
    pub rows_per_sec: f64,
    /// Estimated time left for the copy, ms (`None` until a rate is known).
    pub eta_ms: Option<u64>,
    /// How long this shard's writes waited at its cutover, ms (once cut over).
    pub write_pause_ms: Option<u64>,
}

/// One `tick` of `GET /api/events` (Server-Sent Events, every ~250 ms).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Tick {
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
    /// Every node with its lag.
    pub nodes: Vec<NodeStatus>,
    /// Counters.
    pub stats: Stats,
    /// The running or last rebalance job, without its plan (`plan` is `None`).
    pub rebalance: Option<RebalanceJob>,
    /// Version of the layout in force.
    pub layout_version: u64,
    /// Failover settings, whether one runs now and the last one, as in
    /// `GET /api/cluster` (absent from ticks of older bridges: all off, none).
    #[serde(default)]
    pub failover: FailoverView,
    /// With several clusters, every cluster with its nodes and failover, as
    /// in `GET /api/cluster`; absent with one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clusters: Vec<ClusterNodes>,
    /// The bridges serving the database, as in `GET /api/cluster` (absent
    /// from ticks of older bridges).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bridges: Vec<BridgeView>,
}

/// `POST /api/nodes/{name}/stop` and `…/start` answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeAction {
    /// The node (`primary`, `standby-1`, …).
    pub node: String,
    /// `stop` or `start`.
    pub action: String,
    /// Whether anything changed: `false` when it was already stopped (or running).
    pub changed: bool,
    /// Its role now.
    pub role: NodeRole,
    /// What happened, in one sentence.
    pub message: String,
}

/// Failover settings and history, in `GET /api/cluster`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FailoverView {
    /// Whether a standby is promoted automatically when the primary's server is gone.
    pub auto: bool,
    /// Whether commits wait for one standby (`synchronous_standby_names = ANY 1 (…)`).
    pub sync_replication: bool,
    /// Whether a failover is running now (writes answer 503 until it ends).
    pub in_progress: bool,
    /// The last failover this bridge made, if any.
    pub last: Option<FailoverEvent>,
}

/// One failover: a standby promoted in place of a primary that was gone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FailoverEvent {
    /// The node that was primary.
    pub from: String,
    /// The standby promoted.
    pub to: String,
    /// When writes went to the new primary, ms since the Unix epoch.
    pub at_ms: u64,
    /// From the first failed health check of the old primary to the decision to promote, ms.
    pub detect_ms: f64,
    /// `pg_promote` alone (the call, waiting for the promotion to finish), ms.
    pub promote_ms: f64,
    /// From the first failed health check to writes going to the new primary, ms.
    pub total_ms: f64,
    /// Standbys pointed at the new primary.
    pub repointed: Vec<String>,
}

/// `POST /api/verify` answer (200 whether clean or not): the database
/// checked against the layout in force and its placement, on every cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerifyReport {
    /// No difference found (notes do not count).
    pub clean: bool,
    /// Version of the layout verified against.
    pub layout_version: u64,
    /// Each cluster: its primary's shards and each standby's comparison.
    pub clusters: Vec<ClusterVerify>,
    /// Rows found outside the shard the core names for their id, or on a
    /// cluster the placement does not put that shard on.
    pub misplaced: u64,
    /// A few of those rows.
    pub misplaced_examples: Vec<MisplacedRow>,
    /// Each difference, in a sentence (empty when clean).
    pub differences: Vec<String>,
    /// What was not a difference but is worth knowing (a standby not
    /// compared, writes that kept coming, an empty leftover schema).
    pub notes: Vec<String>,
    /// How long the verification took, in ms.
    pub elapsed_ms: f64,
}

/// One cluster in a [`VerifyReport`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClusterVerify {
    /// `c1`, `c2`, …
    pub cluster: String,
    /// The node that was primary.
    pub primary: String,
    /// The WAL position the primary's counts and checksums include.
    pub lsn: String,
    /// Every shard schema found on the primary, with its rows and checksum.
    pub shards: Vec<ShardVerify>,
    /// Each standby compared with the primary.
    pub standbys: Vec<StandbyVerify>,
}

/// One shard schema on one cluster's primary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShardVerify {
    /// The shard (its schema is `shard_<name>`).
    pub shard: String,
    /// Rows counted.
    pub rows: u64,
    /// Sum of `hashtextextended(row::text, 0)` over its rows: the same rows
    /// give the same sum, in any order.
    pub checksum: String,
    /// Rows in it whose id belongs elsewhere.
    pub misplaced: u64,
    /// The placement puts this shard on this cluster.
    pub placed_here: bool,
}

/// A standby against its primary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StandbyVerify {
    /// `standby-1`, …
    pub node: String,
    /// `agrees`, `differs`, `inconclusive` (writes kept coming), `behind`
    /// (did not replay up to `primary_lsn` in time), `unreachable`.
    pub outcome: String,
    /// The primary's WAL position last compared with.
    pub primary_lsn: String,
    /// The standby's replay position when its checksums were taken.
    pub replay_lsn: Option<String>,
    /// Rounds of checksums taken.
    pub rounds: u32,
}

/// A row found where it does not belong.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MisplacedRow {
    /// Its id.
    pub id: String,
    /// Where it is: `c1/s0`.
    pub found: String,
    /// Where the core and the placement put it: `c1/s2`.
    pub belongs: String,
}
