//! Generated data sets: users written into a shard with PostgreSQL's binary
//! `COPY` (many times faster than `INSERT` for a million rows), and the
//! check that a data set is stored already exactly as it would be written.

use std::pin::pin;

use deadpool_postgres::ClientWrapper;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use super::ShardSql;

/// Where a `COPY` runs: a transaction of the bridge's, or a connection in
/// a transaction opened by its statements (a two-phase transaction's part).
#[derive(Clone, Copy)]
pub(crate) enum CopyInto<'c, 't> {
    /// A transaction.
    Transaction(&'c tokio_postgres::Transaction<'t>),
    /// A connection whose transaction is open.
    Open(&'c tokio_postgres::Client),
}

/// Writes the users `ids[i]`, `names[i]`, `emails[i]` into `shard` with one
/// binary `COPY` (inside the caller's transaction); how many it wrote. An id
/// already stored fails the whole `COPY` with a unique violation.
pub(crate) async fn copy_users(
    client: CopyInto<'_, '_>,
    shard: &ShardSql,
    ids: &[String],
    names: &[String],
    emails: &[String],
) -> Result<u64, tokio_postgres::Error> {
    let statement = format!(
        "COPY {} (user_id, name, email) FROM STDIN (FORMAT binary)",
        shard.table
    );
    let sink = match client {
        CopyInto::Transaction(transaction) => transaction.copy_in(&statement).await?,
        CopyInto::Open(client) => client.copy_in(&statement).await?,
    };
    let mut writer = pin!(BinaryCopyInWriter::new(
        sink,
        &[Type::TEXT, Type::TEXT, Type::TEXT]
    ));
    for ((id, name), email) in ids.iter().zip(names).zip(emails) {
        let row: [&(dyn ToSql + Sync); 3] = [id, name, email];
        writer.as_mut().write(&row).await?;
    }
    writer.finish().await
}

/// How many users of `shard` are generated ones `<prefix><n>` with `n`
/// below `count` (digits as written, no leading zero), named `User <n>` and
/// e-mailed `<prefix><n>@ecomarket.example`. One scan of the shard's table.
pub(crate) async fn count_generated(
    client: &ClientWrapper,
    shard: &ShardSql,
    prefix: &str,
    count: u64,
) -> Result<u64, tokio_postgres::Error> {
    let sql = format!(
        "SELECT count(*) FROM (SELECT user_id, name, email, \
                substr(user_id, char_length($1) + 1) AS n \
            FROM {} WHERE starts_with(user_id, $1)) AS generated \
         WHERE CASE WHEN n ~ '^(0|[1-9][0-9]{{0,18}})$' THEN n::numeric < $2::numeric \
                    ELSE false END \
           AND name = 'User ' || n AND email = user_id || '@ecomarket.example'",
        shard.table
    );
    let limit = i64::try_from(count).unwrap_or(i64::MAX);
    let params: [(&(dyn ToSql + Sync), Type); 2] = [(&prefix, Type::TEXT), (&limit, Type::INT8)];
    let row = client.query_typed_one(&sql, &params).await?;
    Ok(row.get::<_, i64>(0).max(0) as u64)
}
