//! The SQL the bridge runs on behalf of requests, as functions over
//! `&impl GenericClient` (a pooled connection or a transaction). Values are
//! always bound parameters; only validated shard names are spliced in.

mod health;
pub mod jobs;
mod pool;
pub mod schema;
mod shard;

pub use health::{NodeCheck, Replication, RowEstimate, analyze, check, replay_lsn, row_estimates};

pub use pool::{CheckoutError, checkout, discard, make_pool};
pub use shard::{
    BatchRow, BatchSql, CREATED_AT, MAX_BATCH_SHARDS, ShardSql, Written, insert_batch, select_batch,
};

use deadpool_postgres::{ClientWrapper, GenericClient};
use ecoshard_core::wire::User;
use tokio_postgres::error::{Severity, SqlState};
use tokio_postgres::types::{PgLsn, ToSql, Type};

/// What a single insert gives back.
#[derive(Debug)]
pub struct Inserted {
    /// `created_at` as stored (RFC 3339).
    pub created_at: String,
    /// WAL write position right after the commit.
    pub lsn: PgLsn,
}

/// How far a write had gone when it failed: what decides whether it may
/// have committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Nothing that commits had been sent: no connection yet, preparing, or
    /// a statement inside a transaction whose `COMMIT` was not sent.
    BeforeCommit,
    /// The statement that commits (an insert outside a transaction, or a
    /// `COMMIT`) had been sent.
    Committing,
    /// That statement succeeded; what failed came after it (reading the WAL
    /// position after the commit).
    Committed,
}

/// A write's database error, and how far the write had gone.
#[derive(Debug)]
pub struct WriteError {
    /// Where it failed.
    pub stage: Stage,
    /// The error.
    pub error: tokio_postgres::Error,
}

impl WriteError {
    /// Wraps an error met at `stage`.
    pub fn at(stage: Stage) -> impl FnOnce(tokio_postgres::Error) -> Self {
        move |error| WriteError { stage, error }
    }

    /// What the failure means for the write (see [`write_failure`]).
    pub fn failure(&self) -> WriteFailure {
        write_failure(&self.error, self.stage)
    }
}

/// A failed write, by what the bridge can tell about its outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteFailure {
    /// The id is taken: refused, nothing written.
    Duplicate,
    /// Not written: no connection, or the server refused the statement
    /// (its transaction did not commit). `unavailable`: the node cannot take
    /// writes now (gone, shutting down, read-only); else the error is
    /// unexpected.
    NotTaken {
        /// The node cannot take writes now.
        unavailable: bool,
        /// What happened, for the log.
        message: String,
    },
    /// Sent, then no answer said whether it committed: the session died,
    /// ran past the deadline (`timed_out`), or the WAL position after a
    /// commit could not be read. The write may be in the database.
    Unknown {
        /// No answer within the deadline.
        timed_out: bool,
        /// What happened, for the log.
        message: String,
    },
}

/// What `error`, met at `stage`, says about a write.
///
/// Before the commit was sent nothing can have committed. Once it was sent,
/// an error the server returned for the statement itself (severity `ERROR`:
/// a unique violation, a read-only node, a cancelled statement) means its
/// transaction did not commit; anything else — the connection closed, or a
/// `FATAL` that ends the session (a backend terminated while it waits for a
/// synchronous standby has already committed locally) — leaves the outcome
/// unknown. After the commit succeeded, every failure leaves it unknown too.
pub fn write_failure(error: &tokio_postgres::Error, stage: Stage) -> WriteFailure {
    let refused = error
        .as_db_error()
        .is_some_and(|db| db.parsed_severity() == Some(Severity::Error));
    match stage {
        Stage::Committed => WriteFailure::Unknown {
            timed_out: false,
            message: format!("committed, then: {}", describe(error)),
        },
        Stage::Committing if !refused => WriteFailure::Unknown {
            timed_out: false,
            message: describe(error),
        },
        Stage::BeforeCommit | Stage::Committing if is_unique_violation(error) => {
            WriteFailure::Duplicate
        }
        Stage::BeforeCommit | Stage::Committing => WriteFailure::NotTaken {
            unavailable: is_node_failure(error) || is_read_only(error),
            message: describe(error),
        },
    }
}

/// Inserts one user into its shard and reads the WAL position after the
/// commit. The two statements are pipelined: one round trip. `None` never
/// happens for a plain insert (an existing id is a unique violation); it is
/// there so that every single-row insert answers alike.
pub async fn insert_user(
    client: &ClientWrapper,
    shard: &ShardSql,
    user_id: &str,
    name: &str,
    email: &str,
) -> Result<Option<Inserted>, WriteError> {
    insert_returning(client, &shard.insert, user_id, name, email).await
}

/// Runs `insert` (`$1` id, `$2` name, `$3` e-mail, `RETURNING created_at`)
/// and reads the WAL position after its commit, pipelined: one round trip.
/// `None` when it wrote no row.
pub async fn insert_returning(
    client: &ClientWrapper,
    insert: &str,
    user_id: &str,
    name: &str,
    email: &str,
) -> Result<Option<Inserted>, WriteError> {
    let insert = client
        .prepare_cached(insert)
        .await
        .map_err(WriteError::at(Stage::BeforeCommit))?;
    let params: [&(dyn ToSql + Sync); 3] = [&user_id, &name, &email];
    let (row, lsn) = then_lsn(client, client.query_opt(&insert, &params)).await?;
    Ok(row.map(|row| Inserted {
        created_at: row.get(0),
        lsn,
    }))
}

/// `statement`'s result, and the WAL position read right after it (after
/// its commit: `statement` runs outside a transaction). The two are
/// pipelined: one round trip. The error says whether `statement` failed
/// ([`Stage::Committing`]) or only the WAL position ([`Stage::Committed`]).
pub async fn then_lsn<T>(
    client: &ClientWrapper,
    statement: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<(T, PgLsn), WriteError> {
    let lsn = client
        .prepare_cached(CURRENT_LSN)
        .await
        .map_err(WriteError::at(Stage::BeforeCommit))?;
    match futures::join!(statement, client.query_one(&lsn, &[])) {
        (Ok(value), Ok(lsn)) => Ok((value, lsn.get(0))),
        (Err(error), _) => Err(WriteError::at(Stage::Committing)(error)),
        (Ok(_), Err(error)) => Err(WriteError::at(Stage::Committed)(error)),
    }
}

/// WAL write position of the primary.
pub const CURRENT_LSN: &str = "SELECT pg_current_wal_lsn()";

/// Reads one user from the first of `shards` that holds it: the row and the
/// index of its shard in `shards`. Two shards (a rebalance runs) are read in
/// one statement, so one snapshot: a row moved between them in one
/// transaction is seen exactly once, before or after its move.
///
/// One shard's statement is prepared once per connection; a pair's is not
/// (sent with its parameter types, in one round trip): between two layouts
/// of N shards there are up to N² pairs, and a connection would otherwise
/// keep a prepared statement for each pair it ever read.
pub async fn read_user(
    client: &ClientWrapper,
    shards: &[&ShardSql],
    user_id: &str,
) -> Result<Option<(User, usize)>, tokio_postgres::Error> {
    let row = match shards {
        [only] => {
            let select = client.prepare_cached(&only.select).await?;
            client.query_opt(&select, &[&user_id]).await?
        }
        [first, second, ..] => {
            client
                .query_typed_opt(
                    &select_from_either(first, second),
                    &[(&user_id, Type::TEXT)],
                )
                .await?
        }
        [] => return Ok(None),
    };
    Ok(row.map(|row| {
        let user = user_at(&row, 0);
        let index = if shards.len() == 1 {
            0
        } else {
            row.get::<_, i32>(4).max(0) as usize
        };
        (user, index)
    }))
}

/// [`read_user`] on the primary, and the WAL position right after it, in
/// one round trip: the position is past the commit of the row read.
pub async fn stored_user(
    client: &ClientWrapper,
    shards: &[&ShardSql],
    user_id: &str,
) -> Result<(Option<(User, usize)>, PgLsn), tokio_postgres::Error> {
    let lsn = client.prepare_cached(CURRENT_LSN).await?;
    let (found, lsn) = futures::try_join!(
        read_user(client, shards, user_id),
        client.query_one(&lsn, &[])
    )?;
    Ok((found, lsn.get(0)))
}

/// The user in `row`'s columns `from` … `from + 3` (id, name, e-mail,
/// `created_at` as text).
pub fn user_at(row: &tokio_postgres::Row, from: usize) -> User {
    User {
        user_id: row.get(from),
        name: row.get(from + 1),
        email: row.get(from + 2),
        created_at: row.get(from + 3),
    }
}

/// `SELECT … FROM first UNION ALL SELECT … FROM second LIMIT 1`, with the
/// position (0 or 1) of the shard that answered as a fifth column.
fn select_from_either(first: &ShardSql, second: &ShardSql) -> String {
    use CREATED_AT;
    format!(
        "(SELECT user_id, name, email, {CREATED_AT}, 0 FROM {} WHERE user_id = $1) \
         UNION ALL \
         (SELECT user_id, name, email, {CREATED_AT}, 1 FROM {} WHERE user_id = $1) LIMIT 1",
        first.table, second.table
    )
}

/// Inserts one user into `shard` unless `old_shard` (its owner under the
/// layout a rebalance is leaving) still holds that id; `Ok(None)` then.
/// `FOR SHARE` waits for a mover's transaction on that row, then sees the
/// outcome: a row still there is a duplicate; a row just moved makes the
/// insert a unique violation in `shard`. Pipelined with the WAL position;
/// not prepared (one statement per pair of shards, see [`read_user`]).
pub async fn insert_user_unless_in(
    client: &ClientWrapper,
    shard: &ShardSql,
    old_shard: &ShardSql,
    user_id: &str,
    name: &str,
    email: &str,
) -> Result<Option<Inserted>, WriteError> {
    let sql = format!(
        "INSERT INTO {} (user_id, name, email) SELECT $1, $2, $3 \
         WHERE NOT EXISTS (SELECT 1 FROM {} WHERE user_id = $1 FOR SHARE) RETURNING {}",
        shard.table, old_shard.table, CREATED_AT
    );
    let params: [(&(dyn ToSql + Sync), Type); 3] = [
        (&user_id, Type::TEXT),
        (&name, Type::TEXT),
        (&email, Type::TEXT),
    ];
    let (row, lsn) = then_lsn(client, client.query_typed_opt(&sql, &params)).await?;
    Ok(row.map(|row| Inserted {
        created_at: row.get(0),
        lsn,
    }))
}

/// Which of `ids` `shard` holds, locking them (`FOR SHARE`) until the end
/// of the transaction: bulk inserts during a rebalance check the old owner.
pub async fn existing_users(
    client: &impl GenericClient,
    shard: &ShardSql,
    ids: &[String],
) -> Result<Vec<String>, tokio_postgres::Error> {
    let sql = format!(
        "SELECT user_id FROM {} WHERE user_id = ANY($1) FOR SHARE",
        shard.table
    );
    let statement = client.prepare_cached(&sql).await?;
    Ok(client
        .query(&statement, &[&ids])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect())
}

/// Inserts many users into one shard.
pub async fn insert_users(
    client: &impl GenericClient,
    shard: &ShardSql,
    ids: &[String],
    names: &[String],
    emails: &[String],
) -> Result<u64, tokio_postgres::Error> {
    let insert = client.prepare_cached(&shard.insert_many).await?;
    client.execute(&insert, &[&ids, &names, &emails]).await
}

/// One table's part of [`count_stored_users`]: the table and the rows a
/// bulk insert would write there (ids, names, e-mails).
pub type StoredPart<'a> = (&'a ShardSql, &'a [String], &'a [String], &'a [String]);

/// How many of the ids in `parts` are stored exactly so (same id, name
/// and e-mail), over every part in one statement (one snapshot, so a row
/// a rebalance moves between two parts counts once), and the WAL position
/// right after. Not prepared: its text depends on the parts.
pub async fn count_stored_users(
    client: &ClientWrapper,
    parts: &[StoredPart<'_>],
) -> Result<(u64, PgLsn), tokio_postgres::Error> {
    let mut selects = Vec::with_capacity(parts.len());
    let mut params: Vec<(&(dyn ToSql + Sync), Type)> = Vec::with_capacity(3 * parts.len());
    for (index, (shard, ids, names, emails)) in parts.iter().enumerate() {
        let first = 3 * index + 1;
        selects.push(format!(
            "SELECT t.user_id FROM {} t \
             JOIN unnest(${first}, ${}, ${}) AS u(user_id, name, email) \
             ON t.user_id = u.user_id AND t.name = u.name AND t.email = u.email",
            shard.table,
            first + 1,
            first + 2
        ));
        params.extend([
            (ids as &(dyn ToSql + Sync), Type::TEXT_ARRAY),
            (names as &(dyn ToSql + Sync), Type::TEXT_ARRAY),
            (emails as &(dyn ToSql + Sync), Type::TEXT_ARRAY),
        ]);
    }
    if selects.is_empty() {
        selects.push("SELECT NULL::text WHERE false".to_owned());
    }
    let sql = format!(
        "SELECT count(DISTINCT user_id) FROM ({}) AS stored(user_id)",
        selects.join(" UNION ALL ")
    );
    let lsn = client.prepare_cached(CURRENT_LSN).await?;
    let (count, lsn) = futures::try_join!(
        client.query_typed_one(&sql, &params),
        client.query_one(&lsn, &[])
    )?;
    Ok((count.get::<_, i64>(0).max(0) as u64, lsn.get(0)))
}

/// Whether the error is a duplicate key.
pub fn is_unique_violation(error: &tokio_postgres::Error) -> bool {
    error.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// Whether the error says the node is read-only: a standby, not the primary
/// (it was demoted, or the bridge has not seen a failover yet).
pub fn is_read_only(error: &tokio_postgres::Error) -> bool {
    error.code() == Some(&SqlState::READ_ONLY_SQL_TRANSACTION)
}

/// A pool error in one line.
pub fn describe_pool(error: &deadpool_postgres::PoolError) -> String {
    match error {
        deadpool_postgres::PoolError::Backend(error) => describe(error),
        other => other.to_string(),
    }
}

/// Whether failing to get a pooled connection says the node itself is gone
/// (no connection could be made or checked) rather than the pool being busy.
pub fn pool_failure_is_node(error: &deadpool_postgres::PoolError) -> bool {
    use deadpool_postgres::{PoolError, TimeoutType};
    matches!(error, PoolError::Backend(_) | PoolError::Timeout(_))
        && !matches!(error, PoolError::Timeout(TimeoutType::Wait))
}

/// Whether the error means the node itself is unreachable or going away
/// (as opposed to a problem with this one statement).
pub fn is_node_failure(error: &tokio_postgres::Error) -> bool {
    if error.is_closed() {
        return true;
    }
    match error.code() {
        None => true,
        Some(code) => {
            let class = &code.code()[..2];
            // 08 connection exception, 57 operator intervention (shutdown,
            // cannot connect now), 53 insufficient resources, 58 system error.
            matches!(class, "08" | "57" | "53" | "58")
        }
    }
}

/// A database error in one line: the server's message, or the client's.
pub fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            let mut text = error.to_string();
            let mut source = std::error::Error::source(error);
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            text
        }
    }
}
