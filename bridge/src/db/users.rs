//! The statements of the `users` table of each shard: one user inserted
//! (and the WAL position after its commit, in the same round trip), read
//! from one shard or from two at once (a rebalance's new and old owner),
//! many inserted, and a bulk insert's users checked against what is stored.

use super::{CREATED_AT, ShardSql, Stage, WriteError};
use deadpool_postgres::{ClientWrapper, GenericClient};
use ecoshard_core::wire::User;
use tokio_postgres::types::{PgLsn, ToSql, Type};

/// What a single insert gives back.
#[derive(Debug)]
pub(crate) struct Inserted {
    /// `created_at` as stored (RFC 3339).
    pub(crate) created_at: String,
    /// WAL write position right after the commit.
    pub(crate) lsn: PgLsn,
}

/// Inserts one user into its shard and reads the WAL position after the
/// commit. The two statements are pipelined: one round trip. `None` never
/// happens for a plain insert (an existing id is a unique violation); it is
/// there so that every single-row insert answers alike.
pub(crate) async fn insert_user(
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
pub(crate) async fn insert_returning(
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
pub(crate) async fn then_lsn<T>(
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

/// The WAL position read right after a transaction's commit (a bulk
/// insert's, a generated data set's): past that commit. Failing here leaves
/// the commit done, so the error is at [`Stage::Committed`].
pub(crate) async fn lsn_after_commit(client: &ClientWrapper) -> Result<PgLsn, WriteError> {
    let lsn = client
        .prepare_cached(CURRENT_LSN)
        .await
        .map_err(WriteError::at(Stage::Committed))?;
    let lsn = client
        .query_one(&lsn, &[])
        .await
        .map_err(WriteError::at(Stage::Committed))?;
    Ok(lsn.get(0))
}

/// WAL write position of the primary.
pub(crate) const CURRENT_LSN: &str = "SELECT pg_current_wal_lsn()";

/// Reads one user from the first of `shards` that holds it: the row and the
/// index of its shard in `shards`. Two shards (a rebalance runs) are read in
/// one statement, so one snapshot: a row moved between them in one
/// transaction is seen exactly once, before or after its move.
///
/// One shard's statement is prepared once per connection; a pair's is not
/// (sent with its parameter types, in one round trip): between two layouts
/// of N shards there are up to N² pairs, and a connection would otherwise
/// keep a prepared statement for each pair it ever read.
pub(crate) async fn read_user(
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
pub(crate) async fn stored_user(
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
pub(crate) fn user_at(row: &tokio_postgres::Row, from: usize) -> User {
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
pub(crate) async fn insert_user_unless_in(
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
pub(crate) async fn existing_users(
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
pub(crate) async fn insert_users(
    client: &impl GenericClient,
    shard: &ShardSql,
    ids: &[String],
    names: &[String],
    emails: &[String],
) -> Result<u64, tokio_postgres::Error> {
    let insert = client.prepare_cached(&shard.insert_many).await?;
    client.execute(&insert, &[&ids, &names, &emails]).await
}

/// One table's part of [`stored_users`]: the table and the rows a
/// bulk insert would write there (ids, names, e-mails).
pub(crate) type StoredPart<'a> = (&'a ShardSql, &'a [String], &'a [String], &'a [String]);

/// The ids in `parts` stored exactly so (same id, name and e-mail), each
/// once, over every part in one statement (one snapshot, so a row a
/// rebalance moves between two parts counts once), and the WAL position
/// right after. The ids, not a count: a bulk insert over several clusters
/// joins what each cluster holds. Not prepared: its text depends on the
/// parts.
pub(crate) async fn stored_users(
    client: &ClientWrapper,
    parts: &[StoredPart<'_>],
) -> Result<(Vec<String>, PgLsn), tokio_postgres::Error> {
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
        "SELECT DISTINCT user_id FROM ({}) AS stored(user_id)",
        selects.join(" UNION ALL ")
    );
    let lsn = client.prepare_cached(CURRENT_LSN).await?;
    let (stored, lsn) = futures::try_join!(
        client.query_typed(&sql, &params),
        client.query_one(&lsn, &[])
    )?;
    let ids = stored.iter().map(|row| row.get(0)).collect();
    Ok((ids, lsn.get(0)))
}

/// How many ids to draw from one shard, and each row's chance of being
/// drawn, in percent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ShardDraw {
    /// Most ids to take from the shard.
    pub(crate) limit: i64,
    /// `TABLESAMPLE BERNOULLI`'s percentage: 0 to 100.
    pub(crate) percent: f32,
}

/// Ids drawn from each of `shards` as `draws` says (one per shard, in the
/// same order), in one statement, so one snapshot: a row a rebalance moves
/// between two of them is seen once. `TABLESAMPLE BERNOULLI` gives every
/// row the same chance in one pass over the table; at 100 % it reads the
/// first `limit` rows.
pub(crate) async fn sample_user_ids(
    client: &ClientWrapper,
    shards: &[&ShardSql],
    draws: &[ShardDraw],
) -> Result<Vec<String>, tokio_postgres::Error> {
    if shards.is_empty() {
        return Ok(Vec::new());
    }
    let selects: Vec<String> = shards
        .iter()
        .enumerate()
        .map(|(index, shard)| {
            format!(
                "(SELECT user_id FROM {} TABLESAMPLE BERNOULLI (${}) LIMIT ${})",
                shard.table,
                2 * index + 1,
                2 * index + 2
            )
        })
        .collect();
    let params: Vec<(&(dyn ToSql + Sync), Type)> = draws
        .iter()
        .flat_map(|draw| {
            [
                (&draw.percent as &(dyn ToSql + Sync), Type::FLOAT4),
                (&draw.limit as &(dyn ToSql + Sync), Type::INT8),
            ]
        })
        .collect();
    let rows = client
        .query_typed(&selects.join(" UNION ALL "), &params)
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}
