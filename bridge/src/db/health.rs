//! What the bridge asks a node about itself: whether it is in recovery and
//! its WAL position, the primary's view of its standbys
//! (`pg_stat_replication`), a standby's replay position, and PostgreSQL's
//! row estimate of each shard table.

use deadpool_postgres::GenericClient;
use tokio_postgres::types::PgLsn;

use super::ShardSql;

/// One row of `pg_stat_replication`: a standby as the primary sees it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Replication {
    /// The standby's `application_name` (its node name).
    pub(crate) application_name: String,
    /// `streaming`, `catchup`, …
    pub(crate) state: Option<String>,
    /// `async`, `sync`, `quorum`, …
    pub(crate) sync_state: Option<String>,
    /// `write_lag` in ms.
    pub(crate) write_lag_ms: Option<f64>,
    /// `flush_lag` in ms.
    pub(crate) flush_lag_ms: Option<f64>,
    /// `replay_lag` in ms.
    pub(crate) replay_lag_ms: Option<f64>,
    /// Bytes of WAL the standby has not replayed.
    pub(crate) byte_lag: Option<i64>,
}

/// What one health check found.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct NodeCheck {
    /// `pg_is_in_recovery()`: a standby.
    pub(crate) in_recovery: bool,
    /// Replay position of a standby, WAL write position of a primary.
    pub(crate) lsn: Option<u64>,
    /// The standbys the node streams to (asked of the primary only).
    pub(crate) replication: Vec<Replication>,
}

const CHECK_SQL: &str = "SELECT pg_is_in_recovery(),
        CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END";

const REPLICATION_SQL: &str = "SELECT application_name, state, sync_state,
        (EXTRACT(epoch FROM write_lag) * 1000)::float8,
        (EXTRACT(epoch FROM flush_lag) * 1000)::float8,
        (EXTRACT(epoch FROM replay_lag) * 1000)::float8,
        pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::int8
   FROM pg_stat_replication";

/// One health check: recovery and WAL position, and, when `as_primary` and
/// the node is not in recovery, its `pg_stat_replication`.
pub(crate) async fn check(
    client: &impl GenericClient,
    as_primary: bool,
) -> Result<NodeCheck, tokio_postgres::Error> {
    let statement = client.prepare_cached(CHECK_SQL).await?;
    let row = client.query_one(&statement, &[]).await?;
    let lsn: Option<PgLsn> = row.get(1);
    let mut check = NodeCheck {
        in_recovery: row.get(0),
        lsn: lsn.map(u64::from),
        replication: Vec::new(),
    };
    if as_primary && !check.in_recovery {
        let statement = client.prepare_cached(REPLICATION_SQL).await?;
        for row in client.query(&statement, &[]).await? {
            check.replication.push(Replication {
                application_name: row.get(0),
                state: row.get(1),
                sync_state: row.get(2),
                write_lag_ms: row.get(3),
                flush_lag_ms: row.get(4),
                replay_lag_ms: row.get(5),
                byte_lag: row.get(6),
            });
        }
    }
    Ok(check)
}

/// Replay position of a standby (`None` when it is not one).
pub(crate) async fn replay_lsn(
    client: &impl GenericClient,
) -> Result<Option<PgLsn>, tokio_postgres::Error> {
    let statement = client
        .prepare_cached("SELECT pg_last_wal_replay_lsn()")
        .await?;
    Ok(client.query_one(&statement, &[]).await?.get(0))
}

/// PostgreSQL's estimate of one shard table's rows.
#[derive(Debug, PartialEq)]
pub(crate) struct RowEstimate {
    /// The shard's schema (`shard_<name>`).
    pub(crate) schema: String,
    /// `n_live_tup`.
    pub(crate) rows: u64,
    /// Not vacuumed or analyzed since the server's statistics began: when
    /// they began anew (a crash; a promoted standby has none of the old
    /// primary's), `n_live_tup` counts only what changed since, and an
    /// `ANALYZE` gives the table an estimate again.
    pub(crate) needs_analyze: bool,
}

/// The row estimates of the `users` tables of `schemas`, from the
/// statistics PostgreSQL keeps (`pg_stat_user_tables.n_live_tup`), and when
/// those statistics began (`pg_stat_bgwriter.stats_reset`: a crash, a
/// reset, or the start of a standby from a base backup starts them anew).
/// One catalog query whatever the tables hold; no table is read or locked.
pub(crate) async fn row_estimates(
    client: &impl GenericClient,
    schemas: &[String],
) -> Result<(Vec<RowEstimate>, Option<std::time::SystemTime>), tokio_postgres::Error> {
    let statement = client.prepare_cached(ROW_ESTIMATES).await?;
    let rows = client.query(&statement, &[&schemas]).await?;
    let began = rows.first().and_then(|row| row.get(3));
    let estimates = rows
        .iter()
        .map(|row| RowEstimate {
            schema: row.get(0),
            rows: row.get::<_, i64>(1).max(0) as u64,
            needs_analyze: row.get(2),
        })
        .collect();
    Ok((estimates, began))
}

/// Not vacuumed or analyzed since the statistics began.
const ROW_ESTIMATES: &str = "SELECT s.schemaname::text, s.n_live_tup,
        s.last_vacuum IS NULL AND s.last_autovacuum IS NULL
        AND s.last_analyze IS NULL AND s.last_autoanalyze IS NULL,
        (SELECT stats_reset FROM pg_stat_bgwriter)
   FROM pg_stat_user_tables s
  WHERE s.relname = 'users' AND s.schemaname = ANY($1)";

/// `ANALYZE` of one shard's table, skipped when it is locked: samples at
/// most 300 × `default_statistics_target` rows whatever the table's size,
/// and sets its row estimate.
pub(crate) async fn analyze(
    client: &impl GenericClient,
    shard: &ShardSql,
) -> Result<(), tokio_postgres::Error> {
    client
        .batch_execute(&format!("ANALYZE (SKIP_LOCKED) {}", shard.table))
        .await
}
