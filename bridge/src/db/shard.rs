//! The SQL text of one shard (its table's statements) and of a layout's
//! batches (one statement over every shard), built once per layout, and
//! the batched statements themselves.

use std::collections::HashMap;

use deadpool_postgres::Object;
use ecoshard_core::wire::User;
use tokio_postgres::types::{PgLsn, ToSql};

use super::schema::shard_schema;
use super::{Stage, WriteError, insert_returning, then_lsn, user_at};

/// `created_at` as RFC 3339 in UTC, microseconds.
pub(crate) const CREATED_AT: &str =
    "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')";

/// The SQL of one shard, built once per layout.
#[derive(Debug)]
pub struct ShardSql {
    /// Shard name.
    pub name: String,
    /// `shard_<name>`, as the catalog has it (unquoted).
    pub(crate) schema: String,
    /// `"shard_<name>".users`.
    pub(crate) table: String,
    /// `INSERT … ($1 id, $2 name, $3 email) RETURNING created_at text`.
    pub(crate) insert: String,
    /// Bulk insert from three `text[]`.
    pub(crate) insert_many: String,
    /// `SELECT user_id, name, email, created_at text … WHERE user_id = $1`.
    pub(crate) select: String,
}

impl ShardSql {
    /// The SQL of the shard named `name` (a name the core validated).
    pub(crate) fn new(name: &str) -> Self {
        let schema = shard_schema(name);
        let table = format!("{schema}.users");
        ShardSql {
            name: name.to_string(),
            schema: schema.trim_matches('"').to_owned(),
            table: table.clone(),
            insert: format!(
                "INSERT INTO {table} (user_id, name, email) VALUES ($1, $2, $3) RETURNING {CREATED_AT}"
            ),
            insert_many: format!(
                "INSERT INTO {table} (user_id, name, email) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[])"
            ),
            select: format!(
                "SELECT user_id, name, email, {CREATED_AT} FROM {table} WHERE user_id = $1"
            ),
        }
    }
}

/// Layouts with more shards than this go row by row: their statements would
/// carry a part per shard, most of them over an empty array.
pub(crate) const MAX_BATCH_SHARDS: usize = 16;

/// The statements of one layout's batches.
#[derive(Debug)]
pub struct BatchSql {
    /// Per shard, in layout order: the single-key `SELECT` (a batch of one).
    selects: Vec<String>,
    /// Per shard: the single-row `INSERT … RETURNING created_at`.
    inserts: Vec<String>,
    /// Every shard's rows for an array of keys each, tagged with the shard's
    /// position: `SELECT 0, … FROM s0 WHERE user_id = ANY($1) UNION ALL …`.
    select_all: String,
    /// Every shard's inserts from three arrays each (ids, names, e-mails),
    /// the rows written tagged with the shard's position.
    insert_all: String,
}

impl BatchSql {
    /// The statements for a layout's shards; `None` when it has too many
    /// shards to batch.
    pub(crate) fn new(shards: &[ShardSql]) -> Option<Self> {
        if shards.len() > MAX_BATCH_SHARDS {
            return None;
        }
        let mut selects = Vec::with_capacity(shards.len());
        let mut inserts = Vec::with_capacity(shards.len());
        let mut select_parts = Vec::with_capacity(shards.len());
        let mut insert_parts = Vec::with_capacity(shards.len());
        let mut insert_results = Vec::with_capacity(shards.len());
        for (index, shard) in shards.iter().enumerate() {
            let table = &shard.table;
            selects.push(shard.select.clone());
            inserts.push(shard.insert.clone());
            select_parts.push(format!(
                "SELECT {index}::int4, user_id, name, email, {CREATED_AT} FROM {table} \
                 WHERE user_id = ANY(${}::text[])",
                index + 1
            ));
            let first = 3 * index + 1;
            insert_parts.push(format!(
                "i{index} AS (INSERT INTO {table} (user_id, name, email) \
                 SELECT * FROM unnest(${first}::text[], ${}::text[], ${}::text[]) \
                 ON CONFLICT (user_id) DO NOTHING RETURNING user_id, {CREATED_AT} AS created_at)",
                first + 1,
                first + 2
            ));
            insert_results.push(format!(
                "SELECT {index}::int4, user_id, created_at FROM i{index}"
            ));
        }
        Some(BatchSql {
            selects,
            inserts,
            select_all: select_parts.join(" UNION ALL "),
            insert_all: format!(
                "WITH {} {}",
                insert_parts.join(", "),
                insert_results.join(" UNION ALL ")
            ),
        })
    }

    /// Shards of the layout.
    pub(crate) fn shards(&self) -> usize {
        self.selects.len()
    }
}

/// The rows of `keys` (each a shard's position in the layout and a key), by
/// (position, key): one key on its shard's single-key statement, more in
/// one statement over every shard.
pub(crate) async fn select_batch(
    client: &Object,
    sql: &BatchSql,
    keys: &[(usize, &str)],
) -> Result<HashMap<(usize, String), User>, tokio_postgres::Error> {
    let mut found = HashMap::with_capacity(keys.len());
    if let [(shard, key)] = keys {
        let select = client.prepare_cached(&sql.selects[*shard]).await?;
        if let Some(row) = client.query_opt(&select, &[key]).await? {
            found.insert((*shard, (*key).to_owned()), user_at(&row, 0));
        }
        return Ok(found);
    }
    let mut by_shard: Vec<Vec<&str>> = vec![Vec::new(); sql.shards()];
    for (shard, key) in keys {
        by_shard[*shard].push(key);
    }
    let params: Vec<&(dyn ToSql + Sync)> = by_shard
        .iter()
        .map(|keys| keys as &(dyn ToSql + Sync))
        .collect();
    let select = client.prepare_cached(&sql.select_all).await?;
    for row in client.query(&select, &params).await? {
        let shard = usize::try_from(row.get::<_, i32>(0)).unwrap_or(usize::MAX);
        let user = user_at(&row, 1);
        found.insert((shard, user.user_id.clone()), user);
    }
    Ok(found)
}

/// One user a batched insert writes into the shard at `shard` (its
/// position in the layout).
#[derive(Clone, Copy, Debug)]
pub(crate) struct BatchRow<'a> {
    /// The shard's position in the layout.
    pub(crate) shard: usize,
    /// Its id.
    pub(crate) user_id: &'a str,
    /// Its name.
    pub(crate) name: &'a str,
    /// Its e-mail.
    pub(crate) email: &'a str,
}

/// Rows a batched insert wrote, by (shard position, id): their `created_at`.
pub(crate) type Written = HashMap<(usize, String), String>;

/// Writes `rows` (distinct ids) in one statement, so one commit; answers
/// `created_at` of each row written (an id already stored is not) and the
/// WAL position read after the commit.
pub(crate) async fn insert_batch(
    client: &Object,
    sql: &BatchSql,
    rows: &[BatchRow<'_>],
) -> Result<(Written, PgLsn), WriteError> {
    let mut written = HashMap::with_capacity(rows.len());
    if let [only] = rows {
        let inserted = insert_returning(
            client,
            &sql.inserts[only.shard],
            only.user_id,
            only.name,
            only.email,
        )
        .await?;
        let lsn = inserted.as_ref().map_or(PgLsn::from(0), |row| row.lsn);
        if let Some(inserted) = inserted {
            written.insert((only.shard, only.user_id.to_owned()), inserted.created_at);
        }
        return Ok((written, lsn));
    }
    // Each shard's rows in id order: concurrent batches then take their
    // rows' locks in one order (shards in order, ids in order), so two
    // batches sharing ids wait for each other instead of deadlocking.
    let mut ordered: Vec<&BatchRow<'_>> = rows.iter().collect();
    ordered.sort_unstable_by(|a, b| (a.shard, a.user_id).cmp(&(b.shard, b.user_id)));
    let mut columns: Vec<[Vec<&str>; 3]> = vec![Default::default(); sql.shards()];
    for row in ordered {
        let [ids, names, emails] = &mut columns[row.shard];
        ids.push(row.user_id);
        names.push(row.name);
        emails.push(row.email);
    }
    let params: Vec<&(dyn ToSql + Sync)> = columns
        .iter()
        .flat_map(|shard| shard.iter().map(|column| column as &(dyn ToSql + Sync)))
        .collect();
    let insert = client
        .prepare_cached(&sql.insert_all)
        .await
        .map_err(WriteError::at(Stage::BeforeCommit))?;
    let (stored, lsn) = then_lsn(client, client.query(&insert, &params)).await?;
    for row in stored {
        let shard = usize::try_from(row.get::<_, i32>(0)).unwrap_or(usize::MAX);
        written.insert((shard, row.get::<_, String>(1)), row.get::<_, String>(2));
    }
    Ok((written, lsn))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_statement_covers_every_shard_with_arrays() {
        let sql = BatchSql::new(&[ShardSql::new("s0"), ShardSql::new("s1")]).unwrap();
        assert_eq!(sql.shards(), 2);
        assert!(sql.select_all.contains("WHERE user_id = ANY($1::text[])"));
        assert!(sql.select_all.contains(" UNION ALL SELECT 1::int4,"));
        assert!(sql.select_all.contains("WHERE user_id = ANY($2::text[])"));
        assert!(sql.insert_all.contains(
            "unnest($4::text[], $5::text[], $6::text[]) ON CONFLICT (user_id) DO NOTHING"
        ));
        assert!(
            sql.insert_all
                .ends_with("SELECT 1::int4, user_id, created_at FROM i1")
        );
        let many: Vec<ShardSql> = (0..=MAX_BATCH_SHARDS)
            .map(|n| ShardSql::new(&format!("s{n}")))
            .collect();
        assert!(BatchSql::new(&many).is_none());
    }
}
