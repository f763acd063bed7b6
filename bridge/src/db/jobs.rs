//! The rebalance job in the database (`ecoshard.rebalance`, migration 2):
//! starting one with its target layout, the schemas of its new shards, its
//! progress, its end. Every change
//! of state is one transaction, so a killed bridge leaves a state it can
//! resume from.

use deadpool_postgres::GenericClient;
use ecoshard_core::wire::{JobState, LayoutView, RebalanceJob};
use ecoshard_core::{Layout, PlanSummary};
use tokio_postgres::types::PgLsn;

use crate::db::schema::{SCHEMA_LOCK, ensure_shards, shard_schema};

/// A job as stored.
#[derive(Clone, Debug)]
pub(crate) struct StoredJob {
    /// Id.
    pub(crate) id: u64,
    /// Running, done or failed.
    pub(crate) state: JobState,
    /// Layout version before.
    pub(crate) from_version: u64,
    /// Layout version after.
    pub(crate) to_version: u64,
    /// Rows moved.
    pub(crate) moved: u64,
    /// Rows to move, once planned.
    pub(crate) total: Option<u64>,
    /// Time spent moving, over every run of the job.
    pub(crate) moving_ms: u64,
    /// The plan, once made.
    pub(crate) plan: Option<PlanSummary>,
    /// Why it failed.
    pub(crate) error: Option<String>,
    /// The bridge that started it (by its name), if recorded.
    pub(crate) runner: Option<String>,
}

impl StoredJob {
    /// The wire form.
    pub(crate) fn view(&self) -> RebalanceJob {
        RebalanceJob {
            id: self.id,
            state: self.state,
            moved: self.moved,
            total: self.total.unwrap_or(0),
            rows_per_sec: rows_per_sec(self.moved, self.moving_ms as f64),
            from_version: self.from_version,
            to_version: self.to_version,
            plan: self.plan.clone(),
            error: self.error.clone(),
            shard_move: None,
        }
    }
}

/// `moved` over `moving_ms`, 0 before any time passed.
pub(crate) fn rows_per_sec(moved: u64, moving_ms: f64) -> f64 {
    if moving_ms > 0.0 {
        moved as f64 / (moving_ms / 1_000.0)
    } else {
        0.0
    }
}

/// Why a job could not start.
#[derive(Debug)]
pub(crate) enum BeginError {
    /// A job is running, or failed with its target layout still in place.
    Busy(Box<StoredJob>),
    /// The layout in force changed since the request looked at it.
    Moved,
    /// The database refused.
    Db(crate::db::schema::SchemaError),
}

impl From<tokio_postgres::Error> for BeginError {
    fn from(error: tokio_postgres::Error) -> Self {
        BeginError::Db(error.into())
    }
}

impl From<crate::db::schema::SchemaError> for BeginError {
    fn from(error: crate::db::schema::SchemaError) -> Self {
        BeginError::Db(error)
    }
}

/// A started job.
#[derive(Debug)]
pub(crate) struct Begun {
    /// The job.
    pub(crate) job: StoredJob,
    /// The target layout, with its new version.
    pub(crate) target: LayoutView,
}

/// In one transaction under the schema lock: stores `layout` as the target
/// (version = the active one + 1) and the job. The schemas of new shards
/// come next ([`create_shards`], seconds for hundreds of shards), before any
/// request is routed by the target.
pub(crate) async fn begin(
    client: &mut deadpool_postgres::Client,
    from_version: u64,
    layout: &Layout,
    runner: &str,
) -> Result<Begun, BeginError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .await?;
    if let Some(job) = unfinished(&tx).await? {
        return Err(BeginError::Busy(Box::new(job)));
    }
    let active: Option<i64> = tx
        .query_opt(
            "SELECT version FROM ecoshard.layout WHERE state = 'active'",
            &[],
        )
        .await?
        .map(|row| row.get(0));
    if active != Some(from_version as i64) {
        return Err(BeginError::Moved);
    }
    let to_version: i64 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) + 1 FROM ecoshard.layout",
            &[],
        )
        .await?
        .get(0);
    let json = serde_json::to_string(layout).map_err(|error| {
        BeginError::Db(crate::db::schema::SchemaError::BadStoredLayout(
            error.to_string(),
        ))
    })?;
    tx.execute(
        "INSERT INTO ecoshard.layout (version, layout, state) VALUES ($1, $2::text::jsonb, 'target')",
        &[&to_version, &json],
    )
    .await?;
    let id: i64 = tx
        .query_one(
            "INSERT INTO ecoshard.rebalance (from_version, to_version, state, runner) \
             VALUES ($1, $2, 'running', $3) RETURNING id",
            &[&(from_version as i64), &to_version, &runner],
        )
        .await?
        .get(0);
    tx.commit().await?;
    Ok(Begun {
        job: StoredJob {
            id: id as u64,
            state: JobState::Running,
            from_version,
            to_version: to_version as u64,
            moved: 0,
            total: None,
            moving_ms: 0,
            plan: None,
            error: None,
            runner: Some(runner.to_owned()),
        },
        target: LayoutView {
            version: to_version as u64,
            layout: layout.clone(),
            placement: Vec::new(),
        },
    })
}

/// In one transaction under the schema lock: the schemas of the shards of
/// `layout` that do not exist yet. Answers `pg_current_wal_lsn()` after the
/// commit: the shards exist from there on.
pub(crate) async fn create_shards(
    client: &mut deadpool_postgres::Client,
    layout: &Layout,
) -> Result<u64, crate::db::schema::SchemaError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .await?;
    ensure_shards(&tx, layout).await?;
    tx.commit().await?;
    let lsn: PgLsn = client.query_one(crate::db::CURRENT_LSN, &[]).await?.get(0);
    Ok(u64::from(lsn))
}

/// The job that is running or failed with its target still in place, if any.
pub(crate) async fn unfinished(
    client: &impl GenericClient,
) -> Result<Option<StoredJob>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {COLUMNS} FROM ecoshard.rebalance r \
                 WHERE state = 'running' OR (state = 'failed' AND EXISTS \
                     (SELECT 1 FROM ecoshard.layout l WHERE l.version = r.to_version AND l.state = 'target')) \
                 ORDER BY id DESC LIMIT 1"
            ),
            &[],
        )
        .await?;
    Ok(row.as_ref().map(from_row))
}

/// The job with this id.
pub(crate) async fn load(
    client: &impl GenericClient,
    id: u64,
) -> Result<Option<StoredJob>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM ecoshard.rebalance WHERE id = $1"),
            &[&(id.min(i64::MAX as u64) as i64)],
        )
        .await?;
    Ok(row.as_ref().map(from_row))
}

/// The latest job, if any.
pub(crate) async fn latest(
    client: &impl GenericClient,
) -> Result<Option<StoredJob>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM ecoshard.rebalance ORDER BY id DESC LIMIT 1"),
            &[],
        )
        .await?;
    Ok(row.as_ref().map(from_row))
}

/// Marks a failed job running again (a restart resumes it), with no
/// runner: no bridge runs it until one takes its lock.
pub(crate) async fn mark_running(
    client: &impl GenericClient,
    id: u64,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "UPDATE ecoshard.rebalance SET state = 'running', error = NULL, runner = NULL \
             WHERE id = $1",
            &[&(id as i64)],
        )
        .await?;
    Ok(())
}

/// Stores the plan and the number of rows to move, unless already stored
/// (a resumed job keeps its first plan); answers what is stored.
pub(crate) async fn set_plan(
    client: &impl GenericClient,
    id: u64,
    total: u64,
    plan: &PlanSummary,
) -> Result<(u64, Option<PlanSummary>), tokio_postgres::Error> {
    let plan_json = serde_json::to_string(plan).unwrap_or_else(|_| "null".into());
    client
        .execute(
            "UPDATE ecoshard.rebalance SET total = $2, plan = $3::text::json \
             WHERE id = $1 AND total IS NULL",
            &[&(id as i64), &(total as i64), &plan_json],
        )
        .await?;
    let row = client
        .query_one(
            "SELECT total, plan::text FROM ecoshard.rebalance WHERE id = $1",
            &[&(id as i64)],
        )
        .await?;
    let stored_total: Option<i64> = row.get(0);
    let stored_plan: Option<String> = row.get(1);
    Ok((
        stored_total.unwrap_or(total as i64).max(0) as u64,
        stored_plan.and_then(|json| serde_json::from_str(&json).ok()),
    ))
}

/// Ends the job in one transaction: the old layout retired, the target
/// active, the job done. Answers the WAL position after the commit, or
/// `None` (and changes nothing) when the database does not hold the job
/// running with `runner` as its runner and its target (e.g. lost to a
/// failover under asynchronous replication, or taken over by another
/// bridge).
pub(crate) async fn complete(
    client: &mut deadpool_postgres::Client,
    id: u64,
    to_version: u64,
    moving_ms: u64,
    runner: &str,
) -> Result<Option<u64>, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .await?;
    let finished = tx
        .execute(
            "UPDATE ecoshard.rebalance SET state = 'done', finished_at = now(), moving_ms = $2 \
             WHERE id = $1 AND state = 'running' AND runner = $3",
            &[&(id as i64), &(moving_ms as i64), &runner],
        )
        .await?;
    let retired = tx
        .execute(
            "UPDATE ecoshard.layout SET state = 'retired' WHERE state = 'active'",
            &[],
        )
        .await?;
    let activated = tx
        .execute(
            "UPDATE ecoshard.layout SET state = 'active' WHERE version = $1 AND state = 'target'",
            &[&(to_version as i64)],
        )
        .await?;
    if (finished, retired, activated) != (1, 1, 1) {
        tx.rollback().await?;
        return Ok(None);
    }
    tx.commit().await?;
    let lsn: PgLsn = client.query_one(crate::db::CURRENT_LSN, &[]).await?.get(0);
    Ok(Some(u64::from(lsn)))
}

/// Marks the job failed with `why`, while `runner` runs it (a bridge the
/// job was taken from changes nothing: whether it did, is the answer).
pub(crate) async fn fail(
    client: &impl GenericClient,
    id: u64,
    why: &str,
    runner: &str,
) -> Result<bool, tokio_postgres::Error> {
    let failed = client
        .execute(
            "UPDATE ecoshard.rebalance SET state = 'failed', error = $2, finished_at = now() \
             WHERE id = $1 AND runner = $3",
            &[&(id as i64), &why, &runner],
        )
        .await?;
    Ok(failed == 1)
}

const COLUMNS: &str =
    "id, state, from_version, to_version, moved, total, moving_ms, plan::text, error, runner";

fn from_row(row: &tokio_postgres::Row) -> StoredJob {
    let state: String = row.get(1);
    let plan: Option<String> = row.get(7);
    StoredJob {
        id: row.get::<_, i64>(0) as u64,
        state: match state.as_str() {
            "running" => JobState::Running,
            "done" => JobState::Done,
            _ => JobState::Failed,
        },
        from_version: row.get::<_, i64>(2) as u64,
        to_version: row.get::<_, i64>(3) as u64,
        moved: row.get::<_, i64>(4).max(0) as u64,
        total: row
            .get::<_, Option<i64>>(5)
            .map(|total| total.max(0) as u64),
        moving_ms: row.get::<_, i64>(6).max(0) as u64,
        plan: plan.and_then(|json| serde_json::from_str(&json).ok()),
        error: row.get(8),
        runner: row.get(9),
    }
}

/// One batch from shard `from` to shard `to`: `$1` the user_ids, `$2` the
/// job id, `$3` the time spent moving so far (ms), `$4` the bridge running
/// it. Answers the job's `moved`, or no row when the job is not running, or
/// runs under another bridge (it was taken over): the caller then rolls
/// back.
pub(crate) fn move_sql(from: &str, to: &str) -> String {
    format!(
        "WITH moved AS (
             DELETE FROM {from}.users WHERE user_id = ANY($1)
             RETURNING user_id, name, email, created_at),
         inserted AS (
             INSERT INTO {to}.users (user_id, name, email, created_at)
             SELECT user_id, name, email, created_at FROM moved
             RETURNING 1)
         UPDATE ecoshard.rebalance
            SET moved = moved + (SELECT count(*) FROM inserted), moving_ms = $3
          WHERE id = $2 AND state = 'running' AND runner = $4
         RETURNING moved",
        from = shard_schema(from),
        to = shard_schema(to),
    )
}

/// [`move_sql`] from `from` to `to`, prepared on `client`.
pub(crate) async fn prepare_move(
    client: &impl GenericClient,
    from: &str,
    to: &str,
) -> Result<tokio_postgres::Statement, tokio_postgres::Error> {
    client.prepare(&move_sql(from, to)).await
}

/// Moves `ids` with `statement` (from [`prepare_move`]) in a transaction of
/// its own and counts them in job `id`'s `moved` (with `moving_ms`, the time
/// spent moving so far); answers the job's `moved`. `None`, and nothing
/// moved (rolled back), when the database does not hold the job running
/// with `runner` as its bridge.
pub(crate) async fn move_batch(
    client: &mut deadpool_postgres::Client,
    statement: &tokio_postgres::Statement,
    ids: &[String],
    (id, runner): (u64, &str),
    moving_ms: u64,
) -> Result<Option<u64>, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let Some(row) = tx
        .query_opt(
            statement,
            &[&ids, &(id as i64), &(moving_ms as i64), &runner],
        )
        .await?
    else {
        tx.rollback().await?;
        return Ok(None);
    };
    tx.commit().await?;
    Ok(Some(row.get::<_, i64>(0).max(0) as u64))
}

/// Every `user_id` of each shard of `names`, by shard name.
pub(crate) async fn shard_keys(
    client: &impl GenericClient,
    names: impl IntoIterator<Item = &str>,
) -> Result<std::collections::BTreeMap<String, Vec<String>>, tokio_postgres::Error> {
    let mut keys = std::collections::BTreeMap::new();
    for name in names {
        let rows = client
            .query(
                &format!("SELECT user_id FROM {}.users", shard_schema(name)),
                &[],
            )
            .await?;
        keys.insert(
            name.to_string(),
            rows.iter().map(|row| row.get(0)).collect(),
        );
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn move_sql_names_both_shards_and_binds_every_value() {
        let sql = move_sql("s0", "s3");
        assert!(sql.contains("DELETE FROM \"shard_s0\".users WHERE user_id = ANY($1)"));
        assert!(sql.contains("INSERT INTO \"shard_s3\".users"));
        assert!(sql.contains("WHERE id = $2 AND state = 'running' AND runner = $4"));
    }
}
