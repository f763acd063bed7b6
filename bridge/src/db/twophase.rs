//! Two-phase commit's SQL: a participant's transaction opened and prepared
//! (`PREPARE TRANSACTION`), finished (`COMMIT PREPARED`, `ROLLBACK
//! PREPARED`), the ecoshard prepared transactions a primary holds in this
//! database, and the catalog's decision log (`ecoshard.decisions`) and move
//! log (`ecoshard.moves`, migration 3) with the coordination lock.

use deadpool_postgres::GenericClient;
use tokio_postgres::error::SqlState;

/// Key of the advisory lock that coordinators hold shared from their first
/// `PREPARE` until their decision is committed, and a recovery pass holds
/// exclusively (`service/twophase.rs` says why).
pub(crate) const COORDINATION_LOCK: i64 = 0x6563_6f32_7063_6c6b; // "eco2pclk"

/// Every ecoshard gid of the catalog `catalog` starts so: `ecoshard_<oid>_`.
pub(crate) fn gid_prefix(catalog: i64) -> String {
    format!("ecoshard_{catalog}_")
}

/// The gid of transaction `txid`'s part on `cluster`:
/// `ecoshard_<catalog oid>_<txid>_<cluster>`; `None` for a cluster name
/// outside the core's rule (`[a-z][a-z0-9_-]*`), which a gid never splices.
pub(crate) fn gid(catalog: i64, txid: i64, cluster: &str) -> Option<String> {
    let plain = cluster
        .as_bytes()
        .first()
        .is_some_and(u8::is_ascii_lowercase)
        && cluster.len() <= 31
        && cluster
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    plain.then(|| format!("{}{txid}_{cluster}", gid_prefix(catalog)))
}

/// The transaction and cluster a gid of `prefix` names.
pub(crate) fn parse_gid<'a>(prefix: &str, gid: &'a str) -> Option<(i64, &'a str)> {
    let (txid, cluster) = gid.strip_prefix(prefix)?.split_once('_')?;
    Some((txid.parse().ok()?, cluster))
}

/// Opens a transaction on `client`'s session (ended by [`prepare`],
/// [`commit`] or [`rollback`]).
pub(crate) async fn begin(client: &impl GenericClient) -> Result<(), tokio_postgres::Error> {
    client.batch_execute("BEGIN").await
}

/// Commits the session's open transaction.
pub(crate) async fn commit(client: &impl GenericClient) -> Result<(), tokio_postgres::Error> {
    client.batch_execute("COMMIT").await
}

/// Rolls the session's open transaction back.
pub(crate) async fn rollback(client: &impl GenericClient) -> Result<(), tokio_postgres::Error> {
    client.batch_execute("ROLLBACK").await
}

/// A new transaction id from the decision log's sequence, and the catalog
/// database's oid (which tells its gids from another database's on a
/// shared server: gids are unique per server, not per database).
pub(crate) async fn new_txid(
    client: &impl GenericClient,
) -> Result<(i64, i64), tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT (SELECT oid FROM pg_database WHERE datname = current_database())::bigint, \
                    nextval('ecoshard.decisions_txid_seq')",
            &[],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

/// The catalog database's oid (see [`new_txid`]).
pub(crate) async fn catalog_id(client: &impl GenericClient) -> Result<i64, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT oid::bigint FROM pg_database WHERE datname = current_database()",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

/// Takes the coordination lock shared until the open transaction ends.
pub(crate) async fn hold_shared(client: &impl GenericClient) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "SELECT pg_advisory_xact_lock_shared($1)",
            &[&COORDINATION_LOCK],
        )
        .await
        .map(drop)
}

/// Takes the coordination lock exclusively until the open transaction
/// ends, waiting at most `wait_ms`; `false` when it was not free by then.
pub(crate) async fn hold_exclusive(
    client: &impl GenericClient,
    wait_ms: u64,
) -> Result<bool, tokio_postgres::Error> {
    client
        .batch_execute(&format!("SET LOCAL lock_timeout = {wait_ms}"))
        .await?;
    match client
        .execute("SELECT pg_advisory_xact_lock($1)", &[&COORDINATION_LOCK])
        .await
    {
        Ok(_) => Ok(true),
        Err(error) if error.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => Ok(false),
        Err(error) => Err(error),
    }
}

/// Prepares the session's open transaction as `gid`; whether PostgreSQL
/// holds it prepared now. (`PREPARE TRANSACTION` takes no bound parameter:
/// `gid` comes from [`gid`], integers and a checked cluster name. On a
/// transaction a statement failed in, `PREPARE` rolls back without an
/// error, hence the check.)
pub(crate) async fn prepare(
    client: &impl GenericClient,
    gid: &str,
) -> Result<bool, tokio_postgres::Error> {
    client
        .batch_execute(&format!("PREPARE TRANSACTION '{gid}'"))
        .await?;
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_prepared_xacts WHERE gid = $1)",
            &[&gid],
        )
        .await?;
    Ok(row.get(0))
}

/// Commits the prepared transaction `gid`; `false` when there is none
/// (finished already).
pub(crate) async fn commit_prepared(
    client: &impl GenericClient,
    gid: &str,
) -> Result<bool, tokio_postgres::Error> {
    finish_prepared(client, "COMMIT", gid).await
}

/// Rolls the prepared transaction `gid` back; `false` when there is none
/// (finished already).
pub(crate) async fn rollback_prepared(
    client: &impl GenericClient,
    gid: &str,
) -> Result<bool, tokio_postgres::Error> {
    finish_prepared(client, "ROLLBACK", gid).await
}

/// `COMMIT` or `ROLLBACK` `PREPARED` (gid spliced as in [`prepare`]).
async fn finish_prepared(
    client: &impl GenericClient,
    verb: &str,
    gid: &str,
) -> Result<bool, tokio_postgres::Error> {
    match client
        .batch_execute(&format!("{verb} PREPARED '{gid}'"))
        .await
    {
        Ok(()) => Ok(true),
        Err(error) if error.code() == Some(&SqlState::UNDEFINED_OBJECT) => Ok(false),
        Err(error) => Err(error),
    }
}

/// The gids starting with `prefix` that this database has prepared.
pub(crate) async fn prepared(
    client: &impl GenericClient,
    prefix: &str,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT gid FROM pg_prepared_xacts \
             WHERE database = current_database() AND starts_with(gid, $1) ORDER BY gid",
            &[&prefix],
        )
        .await?;
    Ok(rows.into_iter().map(|row| row.get(0)).collect())
}

/// Logs the decision to commit `txid` on `participants` (in the order
/// their parts commit), inside the coordinator's open catalog transaction.
pub(crate) async fn record_decision(
    client: &impl GenericClient,
    txid: i64,
    participants: &[String],
    purpose: &str,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO ecoshard.decisions (txid, participants, purpose) VALUES ($1, $2, $3)",
            &[&txid, &participants, &purpose],
        )
        .await
        .map(drop)
}

/// A decision as logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Decision {
    /// The transaction.
    pub(crate) txid: i64,
    /// Its clusters, in the order their parts commit.
    pub(crate) participants: Vec<String>,
    /// Whether every part is known committed.
    pub(crate) done: bool,
}

/// The decisions of `txids`, and every decision not done yet.
pub(crate) async fn decisions(
    client: &impl GenericClient,
    txids: &[i64],
) -> Result<Vec<Decision>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT txid, participants, done_at IS NOT NULL FROM ecoshard.decisions \
             WHERE done_at IS NULL OR txid = ANY($1) ORDER BY txid",
            &[&txids],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| Decision {
            txid: row.get(0),
            participants: row.get(1),
            done: row.get(2),
        })
        .collect())
}

/// Marks the decisions of `txids` done: every part committed.
pub(crate) async fn mark_done(
    client: &impl GenericClient,
    txids: &[i64],
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "UPDATE ecoshard.decisions SET done_at = now() \
             WHERE txid = ANY($1) AND done_at IS NULL",
            &[&txids],
        )
        .await
        .map(drop)
}

/// Deletes at most `limit` decisions done more than `age_secs` ago that
/// no move log row names (a rebalance's batches stay as its history).
/// Safe: a done decision's parts are all committed, so no prepared part
/// can ever look it up again, and txids come from a sequence, never
/// reused. Answers how many went.
pub(crate) async fn prune_done(
    client: &impl GenericClient,
    age_secs: f64,
    limit: i64,
) -> Result<u64, tokio_postgres::Error> {
    client
        .execute(
            "DELETE FROM ecoshard.decisions WHERE txid IN ( \
                 SELECT d.txid FROM ecoshard.decisions d \
                 WHERE d.done_at < now() - make_interval(secs => $1) \
                   AND NOT EXISTS (SELECT 1 FROM ecoshard.moves m WHERE m.txid = d.txid) \
                 ORDER BY d.txid LIMIT $2)",
            &[&age_secs, &limit],
        )
        .await
}

/// One batch of a rebalance moved between clusters, for the move log.
#[derive(Clone, Debug)]
pub(crate) struct MovedBatch {
    /// The rebalance job.
    pub(crate) job: i64,
    /// Shard and cluster the rows left.
    pub(crate) from: (String, String),
    /// Shard and cluster they went to.
    pub(crate) to: (String, String),
    /// Rows moved.
    pub(crate) rows: i64,
    /// The job's time spent moving so far, with this batch (ms).
    pub(crate) moving_ms: i64,
    /// The bridge running the job: the batch counts only while it does.
    pub(crate) runner: String,
}

/// Logs `batch` as moved by transaction `txid` and counts it in its job,
/// inside the coordinator's open catalog transaction (so with its
/// decision); the job's `moved`, or `None` when the job is not running
/// under `batch.runner` (the decision must not be committed then).
pub(crate) async fn record_move(
    client: &impl GenericClient,
    txid: i64,
    batch: &MovedBatch,
) -> Result<Option<i64>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "WITH logged AS ( \
                 INSERT INTO ecoshard.moves \
                 (txid, job, from_shard, from_cluster, to_shard, to_cluster, rows) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING rows) \
             UPDATE ecoshard.rebalance \
                SET moved = moved + (SELECT rows FROM logged), moving_ms = $8 \
              WHERE id = $2 AND state = 'running' AND runner = $9 \
             RETURNING moved",
            &[
                &txid,
                &batch.job,
                &batch.from.0,
                &batch.from.1,
                &batch.to.0,
                &batch.to.1,
                &batch.rows,
                &batch.moving_ms,
                &batch.runner,
            ],
        )
        .await?;
    Ok(row.map(|row| row.get(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(catalog: i64, txid: i64, cluster: &str, expected: Option<&str>) {
        let built = gid(catalog, txid, cluster);
        assert_eq!(built.as_deref(), expected, "{cluster:?}");
        if let Some(built) = built {
            let parsed = parse_gid(&gid_prefix(catalog), &built);
            assert_eq!(parsed, Some((txid, cluster)));
        }
    }

    #[test]
    fn gids_splice_only_integers_and_plain_cluster_names() {
        check(16384, 7, "c2", Some("ecoshard_16384_7_c2"));
        check(1, 12, "eu_west-1", Some("ecoshard_1_12_eu_west-1"));
        check(1, 1, "c'; DROP", None);
        check(1, 1, "C1", None);
        check(1, 1, "", None);
        check(1, 1, "1c", None);
        check(1, 1, &"c".repeat(32), None);
    }

    #[test]
    fn another_catalogs_gids_are_not_read_as_ours() {
        assert_eq!(parse_gid("ecoshard_5_", "ecoshard_55_1_c1"), None);
        assert_eq!(parse_gid("ecoshard_5_", "ecoshard_5_x_c1"), None);
        assert_eq!(parse_gid("ecoshard_5_", "other"), None);
    }
}
