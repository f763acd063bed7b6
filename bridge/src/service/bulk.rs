//! Inserting `count` generated users `<prefix>0` … in one transaction (all
//! or nothing), each into the shard the core picks; a repeat (every user
//! stored already exactly so) writes nothing and says so.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use ecoshard_core::ShardLoad;
use ecoshard_core::wire::{BulkInsert, BulkResult};
use tokio_postgres::types::PgLsn;

use super::failover::{self, WRITE_TIMEOUT};
use super::input;
use super::writes::write_failed;
use super::{Error, Service};
use crate::cluster::{Cluster, discard};
use crate::db::{self, Stage, WriteFailure};
use crate::routing::RoutingTable;

/// Inserts `request.count` users `<prefix>0` … (a unique prefix when none
/// is given) in one transaction; whether it wrote them (`false`: every one
/// was stored exactly so already, nothing was written).
pub(crate) async fn bulk(
    service: &Service,
    request: BulkInsert,
) -> Result<(BulkResult, bool), Error> {
    input::count(request.count)?;
    let prefix = match request.prefix {
        Some(prefix) => {
            input::prefix(&prefix)?;
            prefix
        }
        None => unique_prefix(),
    };
    service.one_cluster("bulk inserts")?;
    if let Some(refusal) = failover::write_refusal(service) {
        return Err(refusal);
    }
    let _permit = service
        .bulk_permits()
        .try_acquire()
        .map_err(|_| Error::BulkBusy)?;
    let started = Instant::now();
    let (_gate, table) = service.routing().write_table().await;
    let plan = BulkPlan::new(&table, &prefix, request.count);
    let primary = service.cluster().primary();
    // Everything the insert does on the primary, its read-back included.
    let deadline = tokio::time::Instant::now() + WRITE_TIMEOUT;
    let (wrote, lsn) = match write_bulk(service.cluster(), &table, &plan, deadline).await {
        Ok(lsn) => {
            service.record_write(request.count, service.cluster(), u64::from(lsn));
            (true, lsn)
        }
        Err(WriteFailure::Duplicate) => {
            match stored_bulk(service, &table, &plan, deadline).await? {
                Some(lsn) => {
                    service.record_write(0, service.cluster(), u64::from(lsn));
                    (false, lsn)
                }
                None => {
                    return Err(Error::DuplicateBulk {
                        prefix,
                        count: request.count,
                    });
                }
            }
        }
        Err(failure) => {
            let again = format!(
                "send the same bulk insert again (prefix {prefix:?}, count {})",
                request.count
            );
            return Err(write_failed(
                service,
                service.cluster(),
                failure,
                &prefix,
                &again,
            ));
        }
    };
    let result = BulkResult {
        inserted: if wrote { request.count } else { 0 },
        shards: table
            .current
            .shards
            .iter()
            .zip(&plan.rows)
            .map(|(shard, rows)| ShardLoad {
                shard: shard.name.clone(),
                keys: rows.ids.len() as u64,
                cluster: None,
            })
            .collect(),
        prefix,
        served_by: primary.name().to_string(),
        lsn: lsn.to_string(),
        elapsed_ms: started.elapsed().as_secs_f64() * 1_000.0,
    };
    Ok((result, wrote))
}

/// Users to write into one shard: ids, names, e-mails.
#[derive(Clone, Debug, Default)]
struct Rows {
    ids: Vec<String>,
    names: Vec<String>,
    emails: Vec<String>,
}

impl Rows {
    fn push(&mut self, user_id: &str, name: &str, email: &str) {
        self.ids.push(user_id.to_owned());
        self.names.push(name.to_owned());
        self.emails.push(email.to_owned());
    }
}

/// Where a bulk insert's users go.
#[derive(Debug)]
struct BulkPlan {
    /// Per shard of the layout in force.
    rows: Vec<Rows>,
    /// During a rebalance, per shard of the layout being left: the users
    /// whose owner changes (a user of that id may still be there).
    moving: Vec<Rows>,
}

impl BulkPlan {
    fn new(table: &RoutingTable, prefix: &str, count: u64) -> Self {
        let current = &table.current;
        let mut rows = vec![Rows::default(); current.shards.len()];
        let mut moving =
            vec![Rows::default(); table.previous.as_ref().map_or(0, |p| p.shards.len())];
        for index in 0..count {
            let user_id = format!("{prefix}{index}");
            let (name, email) = (
                format!("User {index}"),
                format!("{user_id}@ecomarket.example"),
            );
            let shard = current.router.locate(user_id.as_bytes());
            rows[shard].push(&user_id, &name, &email);
            if let Some(previous) = &table.previous {
                let old = previous.router.locate(user_id.as_bytes());
                if previous.shards[old].name != current.shards[shard].name {
                    moving[old].push(&user_id, &name, &email);
                }
            }
        }
        BulkPlan { rows, moving }
    }

    /// Every (table, rows) pair that may hold the plan's users.
    fn parts<'p>(&'p self, table: &'p RoutingTable) -> Vec<db::StoredPart<'p>> {
        let current = table.current.shards.iter().zip(&self.rows);
        let previous = table
            .previous
            .iter()
            .flat_map(|previous| previous.shards.iter().zip(&self.moving));
        current
            .chain(previous)
            .filter(|(_, rows)| !rows.ids.is_empty())
            .map(|(shard, rows)| (shard, &rows.ids[..], &rows.names[..], &rows.emails[..]))
            .collect()
    }
}

/// The bulk insert in one transaction, by `deadline`; the WAL position
/// after its commit.
async fn write_bulk(
    cluster: &Cluster,
    table: &RoutingTable,
    plan: &BulkPlan,
    deadline: tokio::time::Instant,
) -> Result<PgLsn, WriteFailure> {
    let mut client = cluster
        .primary_client(deadline)
        .await
        .map_err(|error| error.not_taken())?;
    let committing = AtomicBool::new(false);
    let written =
        tokio::time::timeout_at(deadline, insert_bulk(&mut client, table, plan, &committing)).await;
    match written {
        Ok(written) => written,
        Err(_) => {
            discard(client);
            let message = "no answer before the deadline".to_owned();
            Err(if committing.load(Ordering::SeqCst) {
                WriteFailure::Unknown {
                    timed_out: true,
                    message,
                }
            } else {
                // The transaction ends with its connection: nothing commits.
                WriteFailure::NotTaken {
                    unavailable: true,
                    message,
                }
            })
        }
    }
}

async fn insert_bulk(
    client: &mut deadpool_postgres::Object,
    table: &RoutingTable,
    plan: &BulkPlan,
    committing: &AtomicBool,
) -> Result<PgLsn, WriteFailure> {
    let at = |stage| move |error| db::write_failure(&error, stage);
    let tx = client
        .transaction()
        .await
        .map_err(at(Stage::BeforeCommit))?;
    if let Some(previous) = &table.previous {
        // During a rebalance, users whose owner changes may still be at the old one.
        for (old_shard, rows) in previous.shards.iter().zip(&plan.moving) {
            if rows.ids.is_empty() {
                continue;
            }
            let found = db::existing_users(&tx, old_shard, &rows.ids)
                .await
                .map_err(at(Stage::BeforeCommit))?;
            if !found.is_empty() {
                return Err(WriteFailure::Duplicate);
            }
        }
    }
    for (shard, rows) in table.current.shards.iter().zip(&plan.rows) {
        if !rows.ids.is_empty() {
            db::insert_users(&tx, shard, &rows.ids, &rows.names, &rows.emails)
                .await
                .map_err(at(Stage::BeforeCommit))?;
        }
    }
    committing.store(true, Ordering::SeqCst);
    tx.commit().await.map_err(at(Stage::Committing))?;
    let lsn = db::lsn_after_commit(client)
        .await
        .map_err(|error| error.failure())?;
    Ok(lsn)
}

/// For a bulk insert refused as a duplicate: the WAL position now when
/// every one of its users is stored exactly as it would write them (a
/// repeat), `None` when not. Read back by `deadline`.
async fn stored_bulk(
    service: &Service,
    table: &RoutingTable,
    plan: &BulkPlan,
    deadline: tokio::time::Instant,
) -> Result<Option<PgLsn>, Error> {
    let unavailable = |why: String| {
        tracing::warn!("reading back a bulk insert whose ids are taken: {why}");
        failover::primary_unavailable(service)
    };
    let client = service
        .cluster()
        .primary_client(deadline)
        .await
        .map_err(|error| unavailable(error.to_string()))?;
    let parts = plan.parts(table);
    let counted = tokio::time::timeout_at(deadline, db::count_stored_users(&client, &parts)).await;
    let (stored, lsn) = match counted {
        Ok(Ok(counted)) => counted,
        Ok(Err(error)) => return Err(unavailable(db::describe(&error))),
        Err(_) => {
            discard(client);
            return Err(unavailable("no answer in time".to_owned()));
        }
    };
    let planned: usize = plan.rows.iter().map(|rows| rows.ids.len()).sum();
    Ok((stored == planned as u64).then_some(lsn))
}

/// `b<ms since epoch>-<n>-`: unique per bridge run and across restarts.
pub(super) fn unique_prefix() -> String {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    format!(
        "b{}-{}-",
        super::ticks::now_ms(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    )
}
