//! What the shards hold, read straight from PostgreSQL: how many rows,
//! where each key is, and a checksum over every row.

#![allow(dead_code)]

use std::collections::BTreeMap;

/// Every row of every shard schema, as one node has them now.
pub struct Snapshot {
    /// user_id → the shards holding it.
    pub shards_of: BTreeMap<String, Vec<String>>,
    /// md5 over every row (id, name, email, created_at) ordered by user_id,
    /// leaving out ids that start with the excluded prefix.
    pub checksum: String,
    /// Rows counted in the checksum.
    pub rows: i64,
}

/// Rows in every shard table, as `client`'s node has them now; `None`
/// while it cannot count them (a standby still replaying their creation).
pub async fn count(client: &tokio_postgres::Client) -> Option<i64> {
    let union = every_shard(client).await.ok()?;
    let sql = format!("SELECT count(*) FROM ({union}) t");
    client.query_one(&sql, &[]).await.ok().map(|row| row.get(0))
}

/// Reads every `shard_*` schema; rows whose id starts with `except_prefix`
/// (unless empty) are left out of `rows` and `checksum`, not of `shards_of`.
pub async fn snapshot(client: &tokio_postgres::Client, except_prefix: &str) -> Snapshot {
    let union = every_shard(client).await.unwrap();
    let mut shards_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in client
        .query(&format!("SELECT user_id, shard FROM ({union}) t"), &[])
        .await
        .unwrap()
    {
        shards_of.entry(row.get(0)).or_default().push(row.get(1));
    }
    let row = client
        .query_one(
            &format!(
                "SELECT count(*), coalesce(md5(string_agg(
                     user_id || '|' || name || '|' || email || '|' || created_at::text, ','
                     ORDER BY user_id)), '')
                 FROM ({union}) t WHERE $1 = '' OR user_id NOT LIKE $1 || '%'"
            ),
            &[&except_prefix],
        )
        .await
        .unwrap();
    Snapshot {
        shards_of,
        rows: row.get(0),
        checksum: row.get(1),
    }
}

/// Every row of every `shard_*` schema, each with its shard's name, as one
/// `SELECT … UNION ALL …`.
async fn every_shard(client: &tokio_postgres::Client) -> Result<String, tokio_postgres::Error> {
    let schemas: Vec<String> = client
        .query(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'shard\\_%' ORDER BY 1",
            &[],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    Ok(schemas
        .iter()
        .map(|schema| {
            format!(
                "SELECT '{}'::text AS shard, * FROM \"{schema}\".users",
                schema.trim_start_matches("shard_")
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL "))
}

/// Panics when a key is in more than one shard.
pub fn assert_no_key_twice(snapshot: &Snapshot) {
    for (user_id, shards) in &snapshot.shards_of {
        assert_eq!(shards.len(), 1, "{user_id} is in {shards:?}");
    }
}
