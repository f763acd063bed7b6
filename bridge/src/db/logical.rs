//! The SQL of moving a whole shard between clusters with PostgreSQL's
//! logical replication (`service/rebalance/shard_move.rs`): the move's rows
//! in the catalog (`ecoshard.shard_move`, migration 3), the publication on
//! the source, the subscription on the target, their progress, the
//! source's position, the check of the source's rows against the target's,
//! and the clean-up. Every step is idempotent, so a resumed move repeats
//! the step it was killed in.

use deadpool_postgres::GenericClient;
use ecoshard_core::wire::MovePhase;
use tokio_postgres::types::PgLsn;

use crate::db::schema::shard_schema;

/// A shard's move as stored.
#[derive(Clone, Debug)]
pub(crate) struct StoredMove {
    /// The shard.
    pub(crate) shard: String,
    /// Its position in the layout (names the publication, subscription and slot).
    pub(crate) position: u32,
    /// Its cluster before.
    pub(crate) source: String,
    /// Its cluster after.
    pub(crate) target: String,
    /// The phase reached.
    pub(crate) phase: MovePhase,
    /// Rows on the source when the move began.
    pub(crate) rows_total: Option<u64>,
    /// The source table's size when the move began.
    pub(crate) bytes_total: Option<u64>,
    /// The write pause of its cutover.
    pub(crate) write_pause_ms: Option<u64>,
    /// The write fence of its cutover, raised (before the decision) or
    /// decided under (after it): see `db/fence.rs`.
    pub(crate) fence: Option<u64>,
}

/// The name of the publication, subscription and slot of job `job`'s move
/// of the shard at `position` in `database`: lower-case letters, digits and
/// `_` only, as slot names must be. Slots are per server, not per database,
/// and each database numbers its jobs from 1: the database's name is in it
/// (hashed, FNV-1a, to keep it short and plain).
pub(crate) fn replication_name(database: &str, job: u64, position: u32) -> String {
    format!("{}{job}_{position}", replication_prefix(database))
}

/// The start of every [`replication_name`] in `database`.
pub(crate) fn replication_prefix(database: &str) -> String {
    let hash = database.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    format!("ecoshard_move_{hash:08x}_")
}

/// The phase's name in the catalog.
pub(crate) fn phase_name(phase: MovePhase) -> &'static str {
    match phase {
        MovePhase::SettingUp => "setting_up",
        MovePhase::Copying => "copying",
        MovePhase::CatchingUp => "catching_up",
        MovePhase::Cutover => "cutover",
        MovePhase::Verifying => "verifying",
        MovePhase::Cleanup => "cleanup",
        MovePhase::Done => "done",
    }
}

fn phase_of(name: &str) -> MovePhase {
    match name {
        "copying" => MovePhase::Copying,
        "catching_up" => MovePhase::CatchingUp,
        "cutover" => MovePhase::Cutover,
        "verifying" => MovePhase::Verifying,
        "cleanup" => MovePhase::Cleanup,
        "done" => MovePhase::Done,
        _ => MovePhase::SettingUp,
    }
}

/// Records job `job`'s moves (shard, position, source, target), unless
/// recorded already (a resumed job keeps its rows).
pub(crate) async fn record_moves(
    client: &impl GenericClient,
    job: u64,
    moves: &[(String, u32, String, String)],
) -> Result<(), tokio_postgres::Error> {
    for (shard, position, source, target) in moves {
        client
            .execute(
                "INSERT INTO ecoshard.shard_move (job, shard, position, source, target) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                &[&(job as i64), shard, &(*position as i32), source, target],
            )
            .await?;
    }
    Ok(())
}

/// Job `job`'s moves, in layout order.
pub(crate) async fn moves(
    client: &impl GenericClient,
    job: u64,
) -> Result<Vec<StoredMove>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT shard, position, source, target, phase, rows_total, bytes_total, write_pause_ms, \
                    fence \
               FROM ecoshard.shard_move WHERE job = $1 ORDER BY position",
            &[&(job as i64)],
        )
        .await?;
    let count = |value: Option<i64>| value.map(|value| value.max(0) as u64);
    Ok(rows
        .iter()
        .map(|row| StoredMove {
            shard: row.get(0),
            position: row.get::<_, i32>(1).max(0) as u32,
            source: row.get(2),
            target: row.get(3),
            phase: phase_of(row.get(4)),
            rows_total: count(row.get(5)),
            bytes_total: count(row.get(6)),
            write_pause_ms: count(row.get(7)),
            fence: count(row.get(8)),
        })
        .collect())
}

/// Stores the phase job `job`'s move of `shard` has reached (with the
/// write pause, once known). A phase before the decision lifts any fence
/// left raised (by a cutover whose lifting did not reach the catalog).
pub(crate) async fn set_phase(
    client: &impl GenericClient,
    job: u64,
    shard: &str,
    phase: MovePhase,
    write_pause_ms: Option<u64>,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "UPDATE ecoshard.shard_move SET phase = $3, \
                    write_pause_ms = coalesce($4, write_pause_ms), \
                    fence = CASE WHEN $3 IN ('verifying', 'cleanup', 'done') THEN fence END \
              WHERE job = $1 AND shard = $2",
            &[
                &(job as i64),
                &shard,
                &phase_name(phase),
                &write_pause_ms.map(|ms| ms as i64),
            ],
        )
        .await?;
    Ok(())
}

/// Stores the source's rows and bytes when the move began, unless stored;
/// answers what is stored. Adds the rows to the job's `total`.
pub(crate) async fn set_size(
    client: &impl GenericClient,
    job: u64,
    shard: &str,
    (rows, bytes): (u64, u64),
) -> Result<(u64, u64), tokio_postgres::Error> {
    let row = client
        .query_one(
            "WITH sized AS (
                 UPDATE ecoshard.shard_move SET rows_total = $3, bytes_total = $4
                  WHERE job = $1 AND shard = $2 AND rows_total IS NULL
                 RETURNING rows_total),
             counted AS (
                 UPDATE ecoshard.rebalance SET total = coalesce(total, 0) + sized.rows_total
                   FROM sized WHERE id = $1)
             SELECT coalesce((SELECT rows_total FROM sized), m.rows_total),
                    coalesce((SELECT $4::bigint FROM sized), m.bytes_total)
               FROM ecoshard.shard_move m WHERE job = $1 AND shard = $2",
            &[&(job as i64), &shard, &(rows as i64), &(bytes as i64)],
        )
        .await?;
    let value = |index: usize| row.get::<_, Option<i64>>(index).unwrap_or(0).max(0) as u64;
    Ok((value(0), value(1)))
}

/// Marks job `job`'s move of `shard` done and adds its rows to the job's
/// `moved`, in one statement (once: a move done already adds nothing).
pub(crate) async fn finish_move(
    client: &impl GenericClient,
    job: u64,
    shard: &str,
    moving_ms: u64,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "WITH done AS (
                 UPDATE ecoshard.shard_move SET phase = 'done'
                  WHERE job = $1 AND shard = $2 AND phase <> 'done'
                 RETURNING coalesce(rows_total, 0) AS rows)
             UPDATE ecoshard.rebalance SET moved = moved + done.rows, moving_ms = $3
               FROM done WHERE id = $1",
            &[&(job as i64), &shard, &(moving_ms as i64)],
        )
        .await?;
    Ok(())
}

/// The shard's rows and table size (with its index) on this node.
pub(crate) async fn shard_size(
    client: &impl GenericClient,
    shard: &str,
) -> Result<(u64, u64), tokio_postgres::Error> {
    let table = format!("{}.users", shard_schema(shard));
    let row = client
        .query_one(
            &format!("SELECT count(*), pg_total_relation_size($1::text::regclass) FROM {table}"),
            &[&table],
        )
        .await?;
    Ok((
        row.get::<_, i64>(0).max(0) as u64,
        row.get::<_, i64>(1).max(0) as u64,
    ))
}

/// Whether the bridge's role may publish and subscribe here (PostgreSQL 15
/// allows `FOR TABLES IN SCHEMA` and `CREATE SUBSCRIPTION` to superusers).
pub(crate) async fn may_replicate(
    client: &impl GenericClient,
) -> Result<bool, tokio_postgres::Error> {
    Ok(client
        .query_one(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await?
        .get(0))
}

/// On the source: the publication of the shard's schema, unless it exists.
pub(crate) async fn create_publication(
    client: &impl GenericClient,
    name: &str,
    shard: &str,
) -> Result<(), tokio_postgres::Error> {
    let exists = client
        .query_opt("SELECT 1 FROM pg_publication WHERE pubname = $1", &[&name])
        .await?
        .is_some();
    if !exists {
        client
            .batch_execute(&format!(
                "CREATE PUBLICATION {name} FOR TABLES IN SCHEMA {}",
                shard_schema(shard)
            ))
            .await?;
    }
    Ok(())
}

/// On the target: the subscription to the source's publication `name`
/// through `conninfo`, with a slot of the same name (initial copy, then
/// streaming), unless it exists. Not in a transaction: PostgreSQL creates
/// the slot on the source from here. Its apply worker commits with
/// `synchronous_commit = on`: with the default (`off`) the target flushes
/// only every `wal_writer_delay` (200 ms), and the cutover, which waits for
/// the slot's confirmed flush position, paused the shard's writes in 200 ms
/// steps (BENCHMARKS.md, "A whole shard of 1M rows").
pub(crate) async fn create_subscription(
    client: &impl GenericClient,
    name: &str,
    conninfo: &str,
) -> Result<(), tokio_postgres::Error> {
    let exists = client
        .query_opt("SELECT 1 FROM pg_subscription WHERE subname = $1", &[&name])
        .await?
        .is_some();
    if !exists {
        client
            .batch_execute(&format!(
                "CREATE SUBSCRIPTION {name} CONNECTION {} PUBLICATION {name} \
                 WITH (slot_name = {name}, copy_data = true, synchronous_commit = on)",
                quote_literal(conninfo)
            ))
            .await?;
    }
    Ok(())
}

/// This node's timeline now (the first 8 hex digits of the WAL file being
/// written): a promotion starts a new one, so a subscription stamped with
/// its target's timeline ([`stamp_subscription`]) tells whether the
/// target's primary changed since it was set up.
pub(crate) async fn timeline(client: &impl GenericClient) -> Result<String, tokio_postgres::Error> {
    client
        .query_one(
            "SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)",
            &[],
        )
        .await
        .map(|row| row.get(0))
}

/// On the target: stamps subscription `name` with `timeline` (its comment,
/// which is replicated with it to the target's standbys).
pub(crate) async fn stamp_subscription(
    client: &impl GenericClient,
    name: &str,
    timeline: &str,
) -> Result<(), tokio_postgres::Error> {
    client
        .batch_execute(&format!(
            "COMMENT ON SUBSCRIPTION {name} IS {}",
            quote_literal(timeline)
        ))
        .await
}

/// On the target: subscription `name`'s stamp (`Some(None)` when it has
/// none yet), `None` when there is no such subscription.
pub(crate) async fn subscription_stamp(
    client: &impl GenericClient,
    name: &str,
) -> Result<Option<Option<String>>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT obj_description(oid, 'pg_subscription') FROM pg_subscription \
              WHERE subname = $1",
            &[&name],
        )
        .await?;
    Ok(row.map(|row| row.get(0)))
}

/// On the target: the shard's table emptied, for a copy that starts over.
pub(crate) async fn empty_shard(
    client: &impl GenericClient,
    shard: &str,
) -> Result<(), tokio_postgres::Error> {
    let table = format!("{}.users", shard_schema(shard));
    let exists = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await?
        .get::<_, bool>(0);
    if exists {
        client
            .batch_execute(&format!("TRUNCATE TABLE {table}"))
            .await?;
    }
    Ok(())
}

/// On the source: slot `name` dropped if it is left and not in use;
/// whether it is gone.
pub(crate) async fn drop_slot(
    client: &impl GenericClient,
    name: &str,
) -> Result<bool, tokio_postgres::Error> {
    client
        .execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
              WHERE slot_name = $1 AND NOT active",
            &[&name],
        )
        .await?;
    Ok(client
        .query_opt(
            "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
            &[&name],
        )
        .await?
        .is_none())
}

/// On the target: the table-synchronisation slots subscription `name`'s
/// tables need on the source now — those whose copy has finished and whose
/// catching up has not (`pg_subscription_rel.srsubstate = 'f'`), named as
/// PostgreSQL names them (`pg_<subscription>_sync_<table>_<system id>`,
/// the system identifier unsigned where `pg_control_system` shows it signed).
pub(crate) async fn sync_slots_needed(
    client: &impl GenericClient,
    name: &str,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT format('pg_%s_sync_%s_%s', s.oid, r.srrelid,
                           (SELECT system_identifier::numeric
                                   + CASE WHEN system_identifier < 0
                                          THEN 18446744073709551616 ELSE 0 END
                              FROM pg_control_system()))
               FROM pg_subscription s JOIN pg_subscription_rel r ON r.srsubid = s.oid
              WHERE s.subname = $1 AND r.srsubstate = 'f'",
            &[&name],
        )
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// On the source: those of `slots` it does not have.
pub(crate) async fn missing_slots(
    client: &impl GenericClient,
    slots: &[String],
) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT wanted FROM unnest($1::text[]) wanted
              WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = wanted)",
            &[&slots],
        )
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// On the target: whether every table of subscription `name` is ready
/// (`pg_subscription_rel.srsubstate = 'r'`: copied and streaming); `None`
/// when there is no such subscription.
pub(crate) async fn subscription_ready(
    client: &impl GenericClient,
    name: &str,
) -> Result<Option<bool>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT count(r.*), count(r.*) FILTER (WHERE r.srsubstate = 'r')
               FROM pg_subscription s LEFT JOIN pg_subscription_rel r ON r.srsubid = s.oid
              WHERE s.subname = $1 GROUP BY s.oid",
            &[&name],
        )
        .await?;
    Ok(row.map(|row| {
        let (tables, ready): (i64, i64) = (row.get(0), row.get(1));
        tables > 0 && tables == ready
    }))
}

/// On the target: how a subscription stands, for a wait that goes on long
/// — its tables and those ready, and the errors its table synchronisation
/// and apply workers have counted (`pg_stat_subscription_stats`; a worker
/// that cannot start streaming is not counted there, only in the server's
/// log).
pub(crate) async fn subscription_state(
    client: &impl GenericClient,
    name: &str,
) -> Result<Option<SubscriptionState>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT (SELECT count(*) FROM pg_subscription_rel r WHERE r.srsubid = s.oid),
                    (SELECT count(*) FROM pg_subscription_rel r
                      WHERE r.srsubid = s.oid AND r.srsubstate = 'r'),
                    coalesce(st.sync_error_count, 0), coalesce(st.apply_error_count, 0),
                    s.subenabled
               FROM pg_subscription s
               LEFT JOIN pg_stat_subscription_stats st ON st.subid = s.oid
              WHERE s.subname = $1",
            &[&name],
        )
        .await?;
    Ok(row.map(|row| SubscriptionState {
        tables: row.get(0),
        ready: row.get(1),
        sync_errors: row.get(2),
        apply_errors: row.get(3),
        enabled: row.get(4),
    }))
}

/// A subscription as [`subscription_state`] reads it.
#[derive(Debug)]
pub(crate) struct SubscriptionState {
    pub(crate) tables: i64,
    pub(crate) ready: i64,
    pub(crate) sync_errors: i64,
    pub(crate) apply_errors: i64,
    pub(crate) enabled: bool,
}

impl std::fmt::Display for SubscriptionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} of {} tables ready, {} table-sync and {} apply errors{}",
            self.ready,
            self.tables,
            self.sync_errors,
            self.apply_errors,
            if self.enabled { "" } else { ", disabled" }
        )
    }
}

/// On the target: the initial copy's progress into the shard's table
/// (`pg_stat_progress_copy`: rows, bytes), `None` when no copy runs.
pub(crate) async fn copy_progress(
    client: &impl GenericClient,
    shard: &str,
) -> Result<Option<(u64, u64)>, tokio_postgres::Error> {
    let table = format!("{}.users", shard_schema(shard));
    let row = client
        .query_opt(
            "SELECT tuples_processed, bytes_processed FROM pg_stat_progress_copy
              WHERE relid = to_regclass($1) LIMIT 1",
            &[&table],
        )
        .await?;
    Ok(row.map(|row| {
        (
            row.get::<_, i64>(0).max(0) as u64,
            row.get::<_, i64>(1).max(0) as u64,
        )
    }))
}

/// On the source: where slot `name`'s subscriber has confirmed it applied
/// and flushed up to (`pg_replication_slots.confirmed_flush_lsn`).
pub(crate) async fn confirmed_flush(
    client: &impl GenericClient,
    name: &str,
) -> Result<Option<u64>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = $1",
            &[&name],
        )
        .await?;
    Ok(row
        .and_then(|row| row.get::<_, Option<PgLsn>>(0))
        .map(u64::from))
}

/// The WAL position now (`pg_current_wal_lsn()`).
pub(crate) async fn current_lsn(client: &impl GenericClient) -> Result<u64, tokio_postgres::Error> {
    let lsn: PgLsn = client.query_one(crate::db::CURRENT_LSN, &[]).await?.get(0);
    Ok(u64::from(lsn))
}

/// The next `limit` of the shard's rows after `after` (by `user_id`), each
/// its id and row hash (`hashtextextended(row::text, 0)`, as verify sums it).
pub(crate) async fn row_hashes(
    client: &impl GenericClient,
    shard: &str,
    after: &str,
    limit: i64,
) -> Result<Vec<(String, i64)>, tokio_postgres::Error> {
    let rows = client
        .query(
            &format!(
                "SELECT user_id, hashtextextended(u::text, 0) FROM {}.users u \
                  WHERE user_id > $1 ORDER BY user_id LIMIT $2",
                shard_schema(shard)
            ),
            &[&after, &limit],
        )
        .await?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}

/// How many of `ids` the shard holds and the sum of their row hashes, as
/// numeric text.
pub(crate) async fn sum_of(
    client: &impl GenericClient,
    shard: &str,
    ids: &[String],
) -> Result<(u64, String), tokio_postgres::Error> {
    let row = client
        .query_one(
            &format!(
                "SELECT count(*), coalesce(sum(hashtextextended(u::text, 0)::numeric), 0)::text \
                   FROM {}.users u WHERE user_id = ANY($1)",
                shard_schema(shard)
            ),
            &[&ids],
        )
        .await?;
    Ok((row.get::<_, i64>(0).max(0) as u64, row.get(1)))
}

/// On the target: drops subscription `name`, which drops its slot on the
/// source. When that fails (the slot is gone already: a drop killed
/// between the source's slot and the target's catalog), the subscription
/// is dropped without its slot, which [`drop_source`] then drops if left.
pub(crate) async fn drop_subscription(
    client: &impl GenericClient,
    name: &str,
) -> Result<(), tokio_postgres::Error> {
    let dropped = client
        .batch_execute(&format!("DROP SUBSCRIPTION IF EXISTS {name}"))
        .await;
    if dropped.is_ok() {
        return Ok(());
    }
    client
        .batch_execute(&format!(
            "ALTER SUBSCRIPTION {name} DISABLE;
             ALTER SUBSCRIPTION {name} SET (slot_name = NONE);
             DROP SUBSCRIPTION {name}"
        ))
        .await
}

/// On the source: the slot (if the subscription left it), the publication
/// and the shard's schema with its rows. `false`, and nothing dropped, when
/// the slot is still in use (its subscriber's sender has not exited yet).
pub(crate) async fn drop_source(
    client: &impl GenericClient,
    name: &str,
    shard: &str,
) -> Result<bool, tokio_postgres::Error> {
    if !drop_slot(client, name).await? {
        return Ok(false);
    }
    client
        .batch_execute(&format!(
            "DROP PUBLICATION IF EXISTS {name}; DROP SCHEMA IF EXISTS {} CASCADE",
            shard_schema(shard)
        ))
        .await?;
    Ok(true)
}

/// Publications, subscriptions and slots of ecoshard's moves in `database`
/// on this node: what a finished move leaves behind (nothing). For tests
/// and operators, over a plain connection.
pub async fn leftovers(
    client: &tokio_postgres::Client,
    database: &str,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let pattern = format!("{}%", replication_prefix(database));
    let rows = client
        .query(
            "SELECT 'publication ' || pubname FROM pg_publication WHERE pubname LIKE $1
             UNION ALL SELECT 'subscription ' || subname FROM pg_subscription
                        WHERE subname LIKE $1
             UNION ALL SELECT 'slot ' || slot_name::text FROM pg_replication_slots
                        WHERE slot_name LIKE $1",
            &[&pattern],
        )
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// `text` as a SQL string literal.
fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_literals() {
        let name = replication_name("ecomarket", 12, 3);
        assert!(
            name.starts_with("ecoshard_move_") && name.ends_with("_12_3"),
            "{name}"
        );
        assert_ne!(name, replication_name("other", 12, 3));
        assert!(name.len() <= 63);
        assert_eq!(quote_literal("a'b"), "'a''b'");
        for phase in [
            MovePhase::SettingUp,
            MovePhase::Copying,
            MovePhase::CatchingUp,
            MovePhase::Cutover,
            MovePhase::Verifying,
            MovePhase::Cleanup,
            MovePhase::Done,
        ] {
            assert_eq!(phase_of(phase_name(phase)), phase);
        }
    }
}
