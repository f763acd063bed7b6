//! Applying a layout to the data: a rebalance job.
//!
//! `PUT /api/layout` stores the target layout and the job in one transaction,
//! swaps the routing (writes by the new layout, reads under the new and the
//! old one), waits for requests still holding the old routing, then plans
//! from the real keys and answers; the mover (`mover.rs`) moves exactly the
//! rows whose owner changed, in batches, each batch one statement that also
//! counts it in the job row. A bridge that finds a job running at start-up
//! resumes it: the rows left to move are the rows found in a shard that is
//! not their owner under the target layout.

mod mover;
mod store;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::http::StatusCode;
use ecoshard_core::wire::{JobState, LayoutView, RebalanceJob};
use ecoshard_core::{Layout, StrategyKind};

use crate::error::ApiError;
use crate::routing::{Placement, RoutingTable};
use crate::state::{AppState, StartError, pool_error};

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

/// Longest `PUT /api/layout` waits for the plan before answering without it.
const PLAN_WAIT: Duration = Duration::from_secs(60);

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
    /// Just begun: the routing still has to be swapped; the new shards exist
    /// from this WAL position on.
    swap_at_lsn: Option<u64>,
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
    let target = crate::schema::target_layout(&*client)
        .await
        .map_err(schema_error)?;
    let last_job = store::latest(&*client)
        .await
        .map_err(db_error)?
        .map(|job| job.view());
    let current = Placement::new(active).map_err(StartError::Layout)?;
    let Some(target) = target else {
        for name in crate::schema::retired_shards(&*client)
            .await
            .map_err(StartError::Schema)?
        {
            match crate::schema::drop_shard_if_empty(client, &name).await {
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
            crate::schema::SchemaError::BadStoredLayout(format!(
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
    let lsn: tokio_postgres::types::PgLsn = client
        .query_one(crate::db::CURRENT_LSN, &[])
        .await
        .map_err(db_error)?
        .get(0);
    let table = RoutingTable {
        current: Placement::new(&target).map_err(StartError::Layout)?,
        previous: Some(current),
        min_replay_lsn: u64::from(lsn),
    };
    Ok(Startup {
        table,
        last_job: Some(job.view()),
        pending: Some(Pending {
            job,
            from: active.clone(),
            to: target,
            swap_at_lsn: None,
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

/// `PUT /api/layout`: starts moving to `layout`; answers the job with its plan.
/// 202 for a job started, 200 for a layout equal to the one in force (a
/// job that moves nothing, no new version).
pub async fn apply(
    state: &AppState,
    layout: Layout,
) -> Result<(StatusCode, RebalanceJob), ApiError> {
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
    let primary = state.cluster().primary();
    let mut client = primary.pool.get().await.map_err(|error| {
        tracing::warn!("applying a layout: {}", pool_error(&error));
        ApiError::primary_unavailable()
    })?;
    if layout == from.layout {
        let keys = mover::scan(&client, &from.layout, &from.layout)
            .await
            .map_err(|error| db_failure("planning", &error))?;
        let plan = mover::plan_summary(&from.layout, &from.layout, &keys)
            .map_err(|error| ApiError::internal("planning", error))?;
        let job = store::record_no_op(&client, from.version, &plan)
            .await
            .map_err(|error| db_failure("recording a no-op layout", &error))?
            .view();
        rebalancer.set_job(job.clone());
        return Ok((StatusCode::OK, job));
    }
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
                crate::schema::SchemaError::Db(error) => db_failure("starting a rebalance", &error),
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
        swap_at_lsn: Some(begun.lsn),
    };
    tokio::spawn(mover::run(state.clone(), pending, slot, Some(planned_tx)));
    let _ = tokio::time::timeout(PLAN_WAIT, planned_rx).await;
    let job = rebalancer
        .job()
        .filter(|job| job.id == id)
        .ok_or_else(|| ApiError::internal("rebalance", "the job vanished from memory"))?;
    Ok((StatusCode::ACCEPTED, job))
}

/// `GET /api/rebalance/{id}`.
pub async fn job(state: &AppState, id: u64) -> Result<RebalanceJob, ApiError> {
    if let Some(job) = state.rebalancer().job().filter(|job| job.id == id) {
        return Ok(job);
    }
    // A read: bounded by the read deadline, like every read of a request.
    let deadline = tokio::time::Instant::now() + state.cluster().read_timeout;
    let client = crate::nodes::checkout(&state.cluster().primary().pool, deadline)
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
            crate::nodes::discard(client);
            Err(crate::failover::read_timed_out(state, "retry in a moment"))
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

fn db_failure(context: &str, error: &tokio_postgres::Error) -> ApiError {
    if crate::db::is_node_failure(error) {
        tracing::warn!("{context}: {}", crate::db::describe(error));
        ApiError::primary_unavailable()
    } else {
        ApiError::internal(context, crate::db::describe(error))
    }
}
