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
//! target layout.

mod mover;

use crate::db::jobs as store;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::http::StatusCode;
use ecoshard_core::wire::{JobState, LayoutView, RebalanceJob};
use ecoshard_core::{Layout, StrategyKind};

use crate::http::error::ApiError;
use crate::routing::{Placement, RoutingTable};
use crate::service::{AppState, StartError, pool_error};

pub use store::StoredJob;

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
pub const MAX_DATABASE_SHARDS: usize = 256;

/// Longest `PUT /api/layout` waits for the plan before answering without it
/// (`plan` null, `total` 0: `GET /api/rebalance/{id}` has it later).
pub(crate) const PLAN_WAIT: Duration = Duration::from_millis(500);

/// What `PUT /api/layout` did.
#[derive(Debug)]
pub enum Applied {
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

/// Builds a stored layout's placement off the async workers.
pub(crate) async fn build_placement(view: &LayoutView) -> Result<Placement, String> {
    let view = view.clone();
    off_workers(move || Placement::new(&view))
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
}

impl Rebalancer {
    /// Moving `batch_rows` rows per transaction (clamped to 1..=[`MAX_BATCH_ROWS`]).
    pub fn new(batch_rows: usize, last_job: Option<RebalanceJob>) -> Self {
        Rebalancer {
            batch_rows: batch_rows.clamp(1, MAX_BATCH_ROWS),
            slot: Arc::new(tokio::sync::Mutex::new(())),
            job: RwLock::new(last_job),
        }
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
            ..*job
        })
    }

    fn set_job(&self, job: RebalanceJob) {
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
pub struct Pending {
    job: StoredJob,
    from: LayoutView,
    to: LayoutView,
    /// Just begun: the new shards' schemas are still to be created and the
    /// routing to be swapped.
    just_begun: bool,
}

/// What start-up found in the database.
#[derive(Debug)]
pub struct Startup {
    /// The routing to start with (two layouts when a job is to be resumed).
    pub table: RoutingTable,
    /// The job to resume.
    pub pending: Option<Pending>,
    /// The latest job, for the stream.
    pub last_job: Option<RebalanceJob>,
}

/// Reads the rebalance state next to the active layout: a target layout and
/// its unfinished job mean routing by both and resuming the job. With none,
/// drops the (empty) schemas of shards only retired layouts had.
pub async fn startup(
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
        return Ok(Startup {
            table: RoutingTable {
                current,
                previous: None,
                min_replay_lsn: 0,
            },
            pending: None,
            last_job,
        });
    };
    let Some(mut job) = store::unfinished(&*client).await.map_err(db_error)? else {
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
        store::mark_running(&*client, job.id)
            .await
            .map_err(db_error)?;
        job.state = JobState::Running;
        job.error = None;
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
    // A job stored just before the bridge died may not have its shards yet.
    let lsn = store::create_shards(client, &target.layout)
        .await
        .map_err(StartError::Schema)?;
    let table = RoutingTable {
        current: build_placement(&target)
            .await
            .map_err(stored_layout_error)?,
        previous: Some(current),
        min_replay_lsn: lsn,
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

/// Resumes a job found at start-up.
pub fn resume(state: &AppState, pending: Pending) {
    let Ok(slot) = Arc::clone(&state.rebalancer().slot).try_lock_owned() else {
        tracing::error!(
            "a rebalance job runs already; not resuming job {}",
            pending.job.id
        );
        return;
    };
    let state = state.clone();
    tokio::spawn(mover::run(state, pending, slot, None));
}

/// `PUT /api/layout`: nothing for the layout in force; else starts moving to
/// `layout` and answers the job, with its plan when it is ready within
/// `PLAN_WAIT`.
pub async fn apply(state: &AppState, layout: Layout) -> Result<Applied, ApiError> {
    if layout.strategy == StrategyKind::BoundedLoad {
        return Err(bounded_load_refused());
    }
    if layout.shards.len() > MAX_DATABASE_SHARDS {
        return Err(ApiError::bad_request(
            "too_many_shards",
            format!(
                "{} shards is more than the database takes: at most {MAX_DATABASE_SHARDS} \
                 (each is a schema, all created in one transaction)",
                layout.shards.len()
            ),
        ));
    }
    let rebalancer = state.rebalancer();
    let slot = Arc::clone(&rebalancer.slot)
        .try_lock_owned()
        .map_err(|_| busy(rebalancer.job()))?;
    if let Some(job) = rebalancer.job().filter(|job| job.state == JobState::Failed) {
        return Err(busy(Some(job)));
    }
    let from = state.routing().table().view();
    if layout == from.layout {
        return Ok(Applied::InForce(from));
    }
    let primary = state.cluster().primary();
    let mut client = primary.pool.get().await.map_err(|error| {
        tracing::warn!("applying a layout: {}", pool_error(&error));
        ApiError::primary_unavailable()
    })?;
    let begun = match store::begin(&mut client, from.version, &layout).await {
        Ok(begun) => begun,
        Err(store::BeginError::Busy(job)) => return Err(busy(Some(job.view()))),
        Err(store::BeginError::Moved) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "layout_changed",
                "the layout in the database is not the one this bridge routes by; restart the bridge",
            ));
        }
        Err(store::BeginError::Db(error)) => {
            return Err(match error {
                crate::db::schema::SchemaError::Db(error) => {
                    db_failure("starting a rebalance", &error)
                }
                other => ApiError::internal("starting a rebalance", other),
            });
        }
    };
    drop(client);
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
    tokio::spawn(mover::run(state.clone(), pending, slot, Some(planned_tx)));
    let _ = tokio::time::timeout(PLAN_WAIT, planned_rx).await;
    rebalancer
        .job()
        .filter(|job| job.id == id)
        .map(Applied::Started)
        .ok_or_else(|| ApiError::internal("rebalance", "the job vanished from memory"))
}

/// `GET /api/rebalance/{id}`.
pub async fn job(state: &AppState, id: u64) -> Result<RebalanceJob, ApiError> {
    if let Some(job) = state.rebalancer().job().filter(|job| job.id == id) {
        return Ok(job);
    }
    // A read: bounded by the read deadline, like every read of a request.
    let deadline = tokio::time::Instant::now() + state.cluster().read_timeout;
    let client = crate::cluster::checkout(&state.cluster().primary().pool, deadline)
        .await
        .map_err(|error| {
            tracing::warn!("reading a rebalance job: {error}");
            ApiError::primary_unavailable()
        })?;
    match tokio::time::timeout_at(deadline, store::load(&client, id)).await {
        Ok(Ok(Some(job))) => Ok(job.view()),
        Ok(Ok(None)) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "job_not_found",
            format!("no rebalance job {id}"),
        )),
        Ok(Err(error)) => Err(db_failure("reading a rebalance job", &error)),
        Err(_) => {
            crate::cluster::discard(client);
            Err(crate::service::failover::read_timed_out(
                state,
                "retry in a moment",
            ))
        }
    }
}

/// 400 for bounded-load, which the bridge does not apply to the database.
pub fn bounded_load_refused() -> ApiError {
    ApiError::bad_request("unsupported_strategy", BOUNDED_LOAD_REFUSAL)
}

/// Why the database takes no bounded-load layout.
pub const BOUNDED_LOAD_REFUSAL: &str = "bounded-load is not applied to the database: where it puts a key depends on every other key, \
     so a row inserted or read by its key alone could not be found; use ring (the same ring \
     without the bound) for the database; ecoshard plan and the page still show bounded-load";

fn busy(job: Option<RebalanceJob>) -> ApiError {
    let message = match job {
        Some(job) if job.state == JobState::Failed => format!(
            "rebalance job {} failed ({}); restart the bridge to resume it before applying another layout",
            job.id,
            job.error.as_deref().unwrap_or("no reason recorded")
        ),
        Some(job) if job.state == JobState::Running => format!(
            "rebalance job {} is running ({} of {} rows moved); wait until GET /api/rebalance/{} says done",
            job.id, job.moved, job.total, job.id
        ),
        Some(job) => format!("rebalance job {} is finishing; retry in a moment", job.id),
        None => "a rebalance job is starting; retry in a moment".to_string(),
    };
    ApiError::new(StatusCode::CONFLICT, "rebalance_running", message)
}

fn stored_layout_error(why: String) -> StartError {
    StartError::Schema(crate::db::schema::SchemaError::BadStoredLayout(why))
}

fn db_failure(context: &str, error: &tokio_postgres::Error) -> ApiError {
    if crate::db::is_node_failure(error) {
        tracing::warn!("{context}: {}", crate::db::describe(error));
        ApiError::primary_unavailable()
    } else {
        ApiError::internal(context, crate::db::describe(error))
    }
}
