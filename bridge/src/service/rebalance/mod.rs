//! Applying a layout to the data: a rebalance job.
//!
//! `PUT /api/layout` answers a layout equal to the one in force at once,
//! storing nothing. Otherwise it stores the target layout and the job in one
//! transaction and starts the mover (`mover.rs`), which creates the new
//! shards' schemas, swaps the routing (writes by the new layout, reads under
//! the new and the old one), waits for requests still holding the old
//! routing, plans from the real keys, then moves exactly the rows whose owner
//! changed, in batches, each batch one statement that also counts it in the
//! job row. The PUT answers with the plan when it is ready within
//! `PLAN_WAIT`, else without it.
//!
//! Layout builds and plans (up to a few hundred ms at the core's bounds, and
//! a plan grows with the rows) run on the blocking pool (`off_workers`),
//! never on the async workers that answer requests.
//!
//! A bridge that finds a job running at start-up resumes it: the rows left
//! to move are the rows found in a shard that is not their owner under the
//! target layout. Whichever bridge runs a job holds its lock, and another
//! takes the job over when its runner dies (`takeover.rs`).

mod across;
mod between;
mod mover;
mod shard_move;
mod takeover;

pub(crate) use takeover::consider as consider_takeover;

use crate::db::jobs as store;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use ecoshard_core::wire::{JobState, LayoutView, RebalanceJob};
use ecoshard_core::{ErrorKind, Layout, StrategyKind};

use super::failover::{self, WRITE_TIMEOUT};
use super::{Error, LayoutRefusal, Service, StartError};
use crate::routing::{BuiltLayout, RoutingTable};

pub(crate) use store::StoredJob;

/// The replay bound per cluster that the routing after a job of layout
/// `version` takes (`c1_lsn`: `c1`'s position after it). Public for a test
/// that stops a cluster's primary at that moment.
pub async fn replay_bounds_after_job(
    service: &Service,
    version: u64,
    c1_lsn: u64,
) -> std::collections::BTreeMap<String, u64> {
    across::positions(service, version, c1_lsn).await
}

/// Rows moved per transaction unless told otherwise. Chosen with
/// `benches/rebalance.rs` (BENCHMARKS.md, Rebalance): throughput peaks at
/// 5,000–10,000 rows per transaction, and at 5,000 a transaction holds its
/// rows for about 30 ms, which is the longest an insert of a key being moved
/// waits.
pub const DEFAULT_BATCH_ROWS: usize = 5_000;
/// Most rows per moving transaction.
pub const MAX_BATCH_ROWS: usize = 100_000;
/// Most shards a layout applied to the database may have: each is a schema
/// with a table, all created in one transaction (PostgreSQL's lock table
/// bounds how many one transaction may create).
pub(crate) const MAX_DATABASE_SHARDS: usize = 256;

/// Longest `PUT /api/layout` waits for the plan before answering without it
/// (`plan` null, `total` 0: `GET /api/rebalance/{id}` has it later).
pub(crate) const PLAN_WAIT: Duration = Duration::from_millis(500);
/// Longest a new job waits for a reload of the catalog to let go of the
/// rebalance slot (a reload has 3 s to read, then swaps).
const SLOT_WAIT: Duration = Duration::from_secs(5);

/// What `PUT /api/layout` did.
#[derive(Debug)]
pub(crate) enum Applied {
    /// The layout is the one in force: nothing stored, nothing scanned.
    InForce(LayoutView),
    /// A job started; it carries its plan when that was ready within
    /// `PLAN_WAIT`.
    Started(RebalanceJob),
}

/// Runs `work` (a layout build, a plan) on the blocking pool, so that the
/// async workers go on answering requests meanwhile. A panic in `work` comes
/// back as an error.
pub(crate) async fn off_workers<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| format!("a layout build or plan did not finish: {error}"))
}

/// Why a step of a job (the mover's or a shard move's) failed.
#[derive(Debug)]
pub(super) enum StepError {
    /// A primary is unreachable or no longer the primary (a failover is
    /// under way), or a target is still behind: try again, on whichever
    /// node is primary then.
    Retry(String),
    /// Anything else: the job fails (and a restart resumes it).
    Fatal(String),
    /// This bridge no longer holds the job's lock: its run stops, the job
    /// stays running for whoever takes the lock.
    Stopped(String),
}

impl From<tokio_postgres::Error> for StepError {
    fn from(error: tokio_postgres::Error) -> Self {
        if crate::db::kind(&error).node_cannot_serve() {
            StepError::Retry(crate::db::describe(&error))
        } else {
            StepError::Fatal(crate::db::describe(&error))
        }
    }
}

/// Builds a stored layout's placement off the async workers.
pub(crate) async fn build_placement(view: &LayoutView) -> Result<BuiltLayout, String> {
    let view = view.clone();
    off_workers(move || BuiltLayout::new(&view))
        .await?
        .map_err(|error| error.to_string())
}

/// The rebalance side of the bridge's state: the running or last job, and
/// the slot a job holds from its start until its last clean-up.
#[derive(Debug)]
pub struct Rebalancer {
    batch_rows: usize,
    slot: Arc<tokio::sync::Mutex<()>>,
    job: RwLock<Option<RebalanceJob>>,
    /// The lock of the job this bridge runs, and looks at others' jobs.
    runs: takeover::Runs,
}

impl Rebalancer {
    /// Moving `batch_rows` rows per transaction (clamped to 1..=[`MAX_BATCH_ROWS`]).
    pub(crate) fn new(batch_rows: usize, last_job: Option<RebalanceJob>) -> Self {
        Rebalancer {
            batch_rows: batch_rows.clamp(1, MAX_BATCH_ROWS),
            slot: Arc::new(tokio::sync::Mutex::new(())),
            job: RwLock::new(last_job),
            runs: takeover::Runs::default(),
        }
    }

    /// Whether this bridge runs a job now (it holds a job's lock).
    pub(crate) fn runs_a_job(&self) -> bool {
        self.job().is_some_and(|job| self.runs.holds(job.id))
    }

    /// The running or last job.
    pub fn job(&self) -> Option<RebalanceJob> {
        self.job.read().ok().and_then(|job| job.clone())
    }

    /// The running or last job without its plan: what every stream tick
    /// carries (the plan grows with the shard count; `GET
    /// /api/rebalance/{id}` answers it).
    pub(crate) fn job_summary(&self) -> Option<RebalanceJob> {
        let slot = self.job.read().ok()?;
        let job = slot.as_ref()?;
        Some(RebalanceJob {
            plan: None,
            error: job.error.clone(),
            shard_move: job.shard_move.clone(),
            ..*job
        })
    }

    /// The slot, when no job holds it: held, no job starts (a data set is
    /// being generated).
    pub(crate) fn try_hold(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        Arc::clone(&self.slot).try_lock_owned().ok()
    }

    pub(crate) fn set_job(&self, job: RebalanceJob) {
        if let Ok(mut slot) = self.job.write() {
            *slot = Some(job);
        }
    }

    fn update(&self, id: u64, change: impl FnOnce(&mut RebalanceJob)) {
        if let Ok(mut slot) = self.job.write()
            && let Some(job) = slot.as_mut()
            && job.id == id
        {
            change(job);
        }
    }
}

/// A job to resume (found at start-up) or just begun.
#[derive(Debug)]
pub(crate) struct Pending {
    job: StoredJob,
    from: LayoutView,
    to: LayoutView,
    /// Just begun: the new shards' schemas are still to be created and the
    /// routing to be swapped.
    just_begun: bool,
}

/// What start-up found in the database.
#[derive(Debug)]
pub(crate) struct Startup {
    /// The routing to start with (two layouts when a job is to be resumed).
    pub(crate) table: RoutingTable,
    /// The job to resume.
    pub(crate) pending: Option<Pending>,
    /// The latest job, for the stream.
    pub(crate) last_job: Option<RebalanceJob>,
}

/// Reads the rebalance state next to the active layout: a target layout and
/// its unfinished job mean routing by both and resuming the job. With none,
/// drops the (empty) schemas of shards only retired layouts had.
pub(crate) async fn startup(
    client: &mut deadpool_postgres::Client,
    active: &LayoutView,
) -> Result<Startup, StartError> {
    let schema_error = StartError::Schema;
    let db_error = |error: tokio_postgres::Error| StartError::Schema(error.into());
    let target = crate::db::schema::target_layout(&*client)
        .await
        .map_err(schema_error)?;
    let last_job = store::latest(&*client)
        .await
        .map_err(db_error)?
        .map(|job| job.view());
    let current = build_placement(active).await.map_err(stored_layout_error)?;
    let Some(target) = target else {
        drop_retired_shards(client).await?;
        return Ok(Startup {
            table: RoutingTable {
                current,
                previous: None,
                min_replay_lsn: Default::default(),
            },
            pending: None,
            last_job,
        });
    };
    if let Some(resumed) = shard_move::startup(client, active, &target).await? {
        return Ok(resumed);
    }
    let job = unfinished_job(client, &target).await?;
    // A job stored just before the bridge died may not have its shards yet
    // (here `c1`'s, which routing needs now; the mover creates the other
    // clusters' before it moves anything).
    let on_default = crate::routing::layout_on(&target.layout, crate::cluster::DEFAULT_CLUSTER);
    let lsn = store::create_shards(client, &on_default)
        .await
        .map_err(StartError::Schema)?;
    let table = RoutingTable {
        current: build_placement(&target)
            .await
            .map_err(stored_layout_error)?,
        previous: Some(current),
        min_replay_lsn: [(crate::cluster::DEFAULT_CLUSTER.to_owned(), lsn)].into(),
    };
    Ok(Startup {
        table,
        last_job: Some(job.view()),
        pending: Some(Pending {
            job,
            from: active.clone(),
            to: target,
            just_begun: false,
        }),
    })
}

/// Drops the (empty) schemas of shards only retired layouts had.
async fn drop_retired_shards(client: &mut deadpool_postgres::Client) -> Result<(), StartError> {
    for name in crate::db::schema::retired_shards(&*client)
        .await
        .map_err(StartError::Schema)?
    {
        match crate::db::schema::drop_shard_if_empty(client, &name).await {
            Ok(true) => tracing::info!("dropped the empty schema of retired shard {name}"),
            Ok(false) => {}
            Err(error) => tracing::warn!("dropping retired shard {name}: {error}"),
        }
    }
    Ok(())
}

/// The job moving to `target`, marked running again if it had failed.
async fn unfinished_job(
    client: &deadpool_postgres::Client,
    target: &LayoutView,
) -> Result<StoredJob, StartError> {
    let db_error = |error: tokio_postgres::Error| StartError::Schema(error.into());
    let Some(mut job) = store::unfinished(client).await.map_err(db_error)? else {
        return Err(StartError::Schema(
            crate::db::schema::SchemaError::BadStoredLayout(format!(
                "layout version {} is a rebalance target, but no job moves to it",
                target.version
            )),
        ));
    };
    if job.state == JobState::Failed {
        tracing::info!(
            "resuming rebalance job {} (it had failed: {:?})",
            job.id,
            job.error
        );
        store::mark_running(client, job.id)
            .await
            .map_err(db_error)?;
        job.state = JobState::Running;
        job.error = None;
        job.runner = None;
    } else {
        tracing::info!(
            "resuming rebalance job {}: layout {} → {}, {} of {} rows moved",
            job.id,
            job.from_version,
            job.to_version,
            job.moved,
            job.total
                .map_or_else(|| "?".into(), |total| total.to_string())
        );
    }
    Ok(job)
}

/// Resumes a job found at start-up when this bridge gets its lock (see
/// `takeover.rs`); else it is followed as another bridge's.
pub(crate) async fn resume(state: &Service, pending: Pending) {
    let Ok(slot) = Arc::clone(&state.rebalancer().slot).try_lock_owned() else {
        tracing::error!(
            "a rebalance job runs already; not resuming job {}",
            pending.job.id
        );
        return;
    };
    takeover::resume(state, pending, slot).await;
}

/// Creates the schemas of `layout`'s shards missing on their clusters (as
/// a job's first step does; a bridge following the job makes sure of them
/// too), each cluster's by `until`; each cluster's WAL position after.
pub(crate) async fn create_shards(
    service: &Service,
    layout: &Layout,
    until: tokio::time::Instant,
) -> Result<std::collections::BTreeMap<String, u64>, crate::db::schema::SchemaError> {
    across::create_shards(service, layout, Some(until)).await
}

pub(crate) use shard_move::placed_now;

/// Whether going from `from` to `to` moves whole shards between clusters
/// (a placement change) rather than keys.
pub(crate) fn is_placement_change(from: &Layout, to: &Layout) -> bool {
    shard_move::placement_only(from, to).is_some()
}

/// Whether the database takes `layout`: a valid layout that places each
/// key by itself, with at most [`MAX_DATABASE_SHARDS`] shards. The one
/// check every way of giving the database a layout goes through.
pub fn check_database_layout(layout: &Layout) -> Result<(), LayoutRefusal> {
    layout
        .validate()
        .map_err(|error| LayoutRefusal::Invalid(error.to_string()))?;
    if layout.strategy == StrategyKind::BoundedLoad {
        return Err(LayoutRefusal::BoundedLoad);
    }
    if layout.shards.len() > MAX_DATABASE_SHARDS {
        return Err(LayoutRefusal::TooManyShards {
            count: layout.shards.len(),
            limit: MAX_DATABASE_SHARDS,
        });
    }
    Ok(())
}

/// What the database stores for `layout` given over `clusters` (a shard
/// naming none placed round-robin by position over them): with one cluster
/// its canonical form (see [`Layout::canonical`]: no cluster named, as
/// layouts were always stored); with several, every shard naming its
/// cluster, so that the stored layout says where each shard is whatever
/// clusters a later bridge operates. A shard naming a cluster not in
/// `clusters` is refused.
pub(crate) fn stored_form(layout: &Layout, clusters: &[&str]) -> Result<Layout, LayoutRefusal> {
    if clusters.len() == 1 {
        layout.canonical(clusters)
    } else {
        layout.placed(clusters)
    }
    .map_err(refusal)
}

/// A stored layout as the bridge routes by it over `clusters`: a shard
/// naming no cluster is on `c1` (it was stored by a bridge of one
/// cluster); one naming a cluster not in `clusters` is refused.
pub(crate) fn in_force(stored: &Layout, clusters: &[&str]) -> Result<Layout, LayoutRefusal> {
    let mut named = stored.clone();
    for (shard, cluster) in named
        .shards
        .iter_mut()
        .zip(crate::routing::clusters_of(stored))
    {
        shard.cluster = Some(cluster);
    }
    stored_form(&named, clusters)
}

/// The core's placement error as the database's refusal.
fn refusal(error: ecoshard_core::Error) -> LayoutRefusal {
    match error.kind() {
        ErrorKind::UnknownCluster {
            shard,
            cluster,
            clusters,
        } => LayoutRefusal::UnknownCluster {
            shard: shard.clone(),
            cluster: cluster.clone(),
            clusters: clusters.clone(),
        },
        _ => LayoutRefusal::Invalid(error.to_string()),
    }
}

/// [`apply`] of a layout given as JSON.
pub(crate) async fn apply_json(
    service: &Service,
    json: serde_json::Value,
) -> Result<Applied, Error> {
    let layout: Layout =
        serde_json::from_value(json).map_err(|error| LayoutRefusal::Invalid(error.to_string()))?;
    apply(service, layout).await
}

/// The rebalance slot for a new job. Held by this bridge's job or a data
/// set: refused. Held a moment by a reload of the catalog or a look for a
/// job to take over: waited for, within [`SLOT_WAIT`] (then a job another
/// bridge runs is refused by the catalog, naming that bridge).
async fn take_slot(service: &Service) -> Result<tokio::sync::OwnedMutexGuard<()>, Error> {
    let rebalancer = service.rebalancer();
    let busy = || {
        if service.generating() {
            Error::Generating
        } else {
            Error::RebalanceBusy(rebalancer.job().map(Box::new))
        }
    };
    if let Some(slot) = rebalancer.try_hold() {
        return Ok(slot);
    }
    if rebalancer.runs_a_job() || service.generating() {
        return Err(busy());
    }
    let waiting = Arc::clone(&rebalancer.slot).lock_owned();
    tokio::time::timeout(SLOT_WAIT, waiting)
        .await
        .map_err(|_| busy())
}

/// Applies `layout` to the database: nothing for the layout in force; else
/// starts a job moving to it and answers the job, with its plan when that
/// is ready within `PLAN_WAIT`.
pub(crate) async fn apply(service: &Service, layout: Layout) -> Result<Applied, Error> {
    check_database_layout(&layout)?;
    let layout = stored_form(&layout, &service.clusters().name_refs())?;
    let rebalancer = service.rebalancer();
    let slot = take_slot(service).await?;
    if let Some(job) = rebalancer.job().filter(|job| job.state == JobState::Failed) {
        return Err(Error::RebalanceBusy(Some(Box::new(job))));
    }
    let table = service.routing().table();
    let from = table.view();
    // A bridge following another's job routes by its target, in force for
    // writes but not yet the database's layout.
    if layout == from.layout && table.previous.is_none() {
        return Ok(Applied::InForce(service.placed_view(from)));
    }
    // Not held past here: the job's first swap waits until nobody holds
    // the table it replaces (held to the answer, it held every job back
    // for the plan's wait, 500 ms, and the plan with it).
    drop(table);
    if let Some(refusal) = shard_move::mixed_refusal(&from.layout, &layout) {
        return Err(refusal.into());
    }
    if let Some(moves) = shard_move::placement_only(&from.layout, &layout) {
        return shard_move::start(service, from, &layout, moves, slot).await;
    }
    let begun = begin(service, &from, &layout).await?;
    tracing::info!(
        "rebalance job {}: layout {} → {} ({} over {} shards)",
        begun.job.id,
        from.version,
        begun.target.version,
        layout.strategy,
        layout.shards.len()
    );
    rebalancer.set_job(begun.job.view());
    let id = begun.job.id;
    let (planned_tx, planned_rx) = tokio::sync::oneshot::channel();
    let pending = Pending {
        job: begun.job,
        from,
        to: begun.target,
        just_begun: true,
    };
    let run = takeover::run_locked(service.clone(), pending, slot, Some(planned_tx), None);
    tokio::spawn(run);
    let _ = tokio::time::timeout(PLAN_WAIT, planned_rx).await;
    rebalancer
        .job()
        .filter(|job| job.id == id)
        .map(Applied::Started)
        .ok_or_else(|| Error::internal("rebalance", "the job vanished from memory"))
}

/// Stores the target layout and its job (see [`store::begin`]), within the
/// write deadline.
async fn begin(
    service: &Service,
    from: &LayoutView,
    layout: &Layout,
) -> Result<store::Begun, Error> {
    let deadline = tokio::time::Instant::now() + WRITE_TIMEOUT;
    let mut client = service
        .cluster()
        .primary_client(deadline)
        .await
        .map_err(|error| {
            tracing::warn!("applying a layout: {error}");
            failover::primary_unavailable(service)
        })?;
    let runner = service.coordination().name();
    let begun = store::begin(&mut client, from.version, layout, runner);
    match tokio::time::timeout_at(deadline, begun).await {
        Ok(Ok(begun)) => Ok(begun),
        Ok(Err(store::BeginError::Busy(job))) => match job.runner.as_deref() {
            Some(other) if other != runner && job.state == JobState::Running => Err(
                Error::RebalanceElsewhere(Box::new(job.view()), other.to_owned()),
            ),
            _ => Err(Error::RebalanceBusy(Some(Box::new(job.view())))),
        },
        Ok(Err(store::BeginError::Moved)) => Err(Error::LayoutChanged),
        Ok(Err(store::BeginError::Db(crate::db::schema::SchemaError::Db(error)))) => {
            Err(db_failure(service, "starting a rebalance", &error))
        }
        Ok(Err(store::BeginError::Db(other))) => {
            Err(Error::internal("starting a rebalance", other))
        }
        // Its transaction ends with its connection: nothing was stored.
        Err(_) => {
            crate::cluster::discard(client);
            Err(failover::primary_unavailable(service))
        }
    }
}

/// The job `id`, running or stored.
pub(crate) async fn job(service: &Service, id: u64) -> Result<RebalanceJob, Error> {
    if let Some(job) = service.rebalancer().job().filter(|job| job.id == id) {
        return Ok(job);
    }
    // A read: bounded by the read deadline, like every read of a request.
    let deadline = tokio::time::Instant::now() + service.cluster().read_timeout;
    let client = service
        .cluster()
        .primary_client(deadline)
        .await
        .map_err(|error| {
            tracing::warn!("reading a rebalance job: {error}");
            failover::primary_unavailable(service)
        })?;
    match tokio::time::timeout_at(deadline, store::load(&client, id)).await {
        Ok(Ok(Some(job))) => Ok(job.view()),
        Ok(Ok(None)) => Err(Error::JobNotFound(id)),
        Ok(Err(error)) => Err(db_failure(service, "reading a rebalance job", &error)),
        Err(_) => {
            crate::cluster::discard(client);
            Err(failover::read_timed_out(service, "retry in a moment"))
        }
    }
}

fn stored_layout_error(why: String) -> StartError {
    StartError::Schema(crate::db::schema::SchemaError::BadStoredLayout(why))
}

/// A database error met on behalf of a request: the primary is gone (or
/// no longer the primary), or something unexpected.
fn db_failure(service: &Service, context: &str, error: &tokio_postgres::Error) -> Error {
    if crate::db::kind(error).node_cannot_serve() {
        tracing::warn!("{context}: {}", crate::db::describe(error));
        failover::primary_unavailable(service)
    } else {
        Error::internal(context, crate::db::describe(error))
    }
}
