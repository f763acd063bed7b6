//! A batch of rows moving between shards on different clusters, as the two
//! parts of one two-phase transaction: the source shard gives its rows up
//! (deleted, returned), the destination shard takes them (inserted as
//! they were).

use std::time::SystemTime;

use deadpool_postgres::GenericClient;

use crate::db::schema::shard_schema;

/// The rows of a batch, column by column.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct MovingRows {
    /// Their ids.
    pub(crate) user_ids: Vec<String>,
    /// Their names.
    pub(crate) names: Vec<String>,
    /// Their e-mails.
    pub(crate) emails: Vec<String>,
    /// When each was first written (kept through the move).
    pub(crate) created_at: Vec<SystemTime>,
}

impl MovingRows {
    /// How many.
    pub(crate) fn len(&self) -> usize {
        self.user_ids.len()
    }
}

/// Deletes the rows of `user_ids` from shard `from`, returning them (the
/// source's part; the rows stay locked until it commits or rolls back).
pub(crate) async fn take_rows(
    client: &impl GenericClient,
    from: &str,
    user_ids: &[String],
) -> Result<MovingRows, tokio_postgres::Error> {
    let sql = format!(
        "DELETE FROM {}.users WHERE user_id = ANY($1) \
         RETURNING user_id, name, email, created_at",
        shard_schema(from)
    );
    let mut rows = MovingRows::default();
    for row in client.query(&sql, &[&user_ids]).await? {
        rows.user_ids.push(row.get(0));
        rows.names.push(row.get(1));
        rows.emails.push(row.get(2));
        rows.created_at.push(row.get(3));
    }
    Ok(rows)
}

/// Inserts `rows` into shard `to` (the destination's part); how many.
pub(crate) async fn put_rows(
    client: &impl GenericClient,
    to: &str,
    rows: &MovingRows,
) -> Result<u64, tokio_postgres::Error> {
    let sql = format!(
        "INSERT INTO {}.users (user_id, name, email, created_at) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])",
        shard_schema(to)
    );
    client
        .execute(
            &sql,
            &[&rows.user_ids, &rows.names, &rows.emails, &rows.created_at],
        )
        .await
}
