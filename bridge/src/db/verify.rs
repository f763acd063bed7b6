//! The SQL of a verification (`service/verify.rs`): which shard schemas a
//! node holds, a read-only snapshot with the WAL position it includes, each
//! shard's row count and order-independent checksum, and its ids through a
//! cursor in chunks (ten million rows never need ten million ids at once).

use deadpool_postgres::GenericClient;
use deadpool_postgres::Transaction;
use tokio_postgres::types::PgLsn;

use super::ShardSql;

/// One shard table's count and checksum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ShardSum {
    /// `count(*)`.
    pub(crate) rows: u64,
    /// Sum of `hashtextextended(row::text, 0)` over the rows, as numeric
    /// text (no overflow; the same rows in any order give the same sum).
    pub(crate) checksum: String,
}

/// The shard names of every `shard_<name>` schema holding a `users`
/// table on this node, sorted. Schemas whose name is not a shard name the
/// core would take are left out (nothing of ecoshard's).
pub(crate) async fn shard_names(
    client: &impl GenericClient,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT substr(n.nspname, 7) FROM pg_namespace n
               JOIN pg_class c ON c.relnamespace = n.oid
              WHERE c.relname = 'users' AND c.relkind = 'r'
                AND n.nspname ~ '^shard_[A-Za-z0-9_-]{1,32}$'
              ORDER BY 1",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// Opens a read-only `REPEATABLE READ` transaction and takes its snapshot:
/// on a primary, the WAL insert position read after the snapshot (every
/// commit the snapshot sees is before it); on a standby, its replay
/// position read after the snapshot.
pub(crate) async fn snapshot(
    client: &mut deadpool_postgres::Object,
    statement_limit: std::time::Duration,
) -> Result<(Transaction<'_>, PgLsn), tokio_postgres::Error> {
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    // A count over ten million rows takes longer than the nodes' default.
    tx.batch_execute(&format!(
        "SET LOCAL statement_timeout = {}",
        statement_limit.as_millis()
    ))
    .await?;
    // The first query takes the snapshot; the position is read after it.
    tx.query_one("SELECT 1", &[]).await?;
    let lsn: Option<PgLsn> = tx
        .query_one(
            "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
                         ELSE pg_current_wal_insert_lsn() END",
            &[],
        )
        .await?
        .get(0);
    Ok((tx, lsn.unwrap_or(PgLsn::from(0))))
}

/// The WAL position a standby has replayed (its insert position on a
/// primary).
pub(crate) async fn replayed(client: &impl GenericClient) -> Result<PgLsn, tokio_postgres::Error> {
    let lsn: Option<PgLsn> = client
        .query_one(
            "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
                         ELSE pg_current_wal_insert_lsn() END",
            &[],
        )
        .await?
        .get(0);
    Ok(lsn.unwrap_or(PgLsn::from(0)))
}

/// Count and checksum of one shard's rows, in the caller's snapshot.
pub(crate) async fn shard_sum(
    client: &impl GenericClient,
    shard: &ShardSql,
) -> Result<ShardSum, tokio_postgres::Error> {
    let row = client
        .query_one(
            &format!(
                "SELECT count(*), coalesce(sum(hashtextextended(u::text, 0)::numeric), 0)::text
                   FROM {} u",
                shard.table
            ),
            &[],
        )
        .await?;
    Ok(ShardSum {
        rows: row.get::<_, i64>(0).max(0) as u64,
        checksum: row.get(1),
    })
}

/// Opens the cursor over one shard's ids (inside the caller's transaction).
pub(crate) async fn open_ids(
    tx: &Transaction<'_>,
    shard: &ShardSql,
) -> Result<(), tokio_postgres::Error> {
    tx.batch_execute(&format!(
        "DECLARE verify_ids NO SCROLL CURSOR FOR SELECT user_id FROM {}",
        shard.table
    ))
    .await
}

/// The next `chunk` ids of the cursor (fewer at its end, none past it).
pub(crate) async fn next_ids(
    tx: &Transaction<'_>,
    chunk: u32,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows = tx
        .query(&format!("FETCH FORWARD {chunk} FROM verify_ids"), &[])
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// Closes the cursor.
pub(crate) async fn close_ids(tx: &Transaction<'_>) -> Result<(), tokio_postgres::Error> {
    tx.batch_execute("CLOSE verify_ids").await
}
