//! Inserting `count` generated users `<prefix>0` … all or nothing, each
//! into the shard the core picks: in one transaction when they go to one
//! cluster, in one two-phase transaction across the clusters they go to
//! otherwise; a repeat (every user stored already exactly so) writes nothing
//! and says so.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use deadpool_postgres::GenericClient;
use ecoshard_core::ShardLoad;
use ecoshard_core::wire::{BulkInsert, BulkResult};
use tokio_postgres::types::PgLsn;

use super::failover::{self, WRITE_TIMEOUT};
use super::input;
use super::twophase::{TwoPhase, TwoPhaseError};
use super::writes::{token, write_failed};
use super::{Error, Service};
use crate::cluster::{Cluster, discard};
use crate::db::{self, ShardSql, Stage, WriteFailure};
use crate::routing::RoutingTable;

/// Inserts `request.count` users `<prefix>0` … (a unique prefix when none
/// is given) all or nothing; whether it wrote them (`false`: every one was
/// stored exactly so already, nothing was written).
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
    let _permit = service
        .bulk_permits()
        .try_acquire()
        .map_err(|_| Error::BulkBusy)?;
    let started = Instant::now();
    // A shard move's cutover holds the insert back (within the write
    // deadline), as it does a single insert of that shard.
    let fence_deadline = tokio::time::Instant::now() + WRITE_TIMEOUT;
    super::coordination::renew(service, fence_deadline).await;
    let Some((_gate, table)) = service.routing().write_table_unfenced(fence_deadline).await else {
        return Err(Error::ShardFenced("a shard of this bulk insert".into()));
    };
    let plan = BulkPlan::new(&table, &prefix, request.count);
    let parts = plan.by_cluster(&table);
    for part in &parts {
        if let Some(refusal) =
            failover::write_refusal_on(service, service.cluster_named(part.cluster)?)
        {
            return Err(refusal);
        }
    }
    // Everything the insert does on the primaries, its read-back included.
    let deadline = tokio::time::Instant::now() + WRITE_TIMEOUT;
    let again = format!(
        "send the same bulk insert again (prefix {prefix:?}, count {})",
        request.count
    );
    let written = match &parts[..] {
        [part] => write_bulk(service, part, deadline).await,
        _ => write_across(service, &table, request.count, &prefix, deadline).await,
    };
    let (wrote, lsns) = match written {
        Ok(lsns) => (true, lsns),
        Err(Failure::Write(_, WriteFailure::Duplicate)) => {
            match stored_bulk(service, &table, &plan, deadline).await? {
                Some(lsns) => (false, lsns),
                None => {
                    return Err(Error::DuplicateBulk {
                        prefix,
                        count: request.count,
                    });
                }
            }
        }
        Err(failure) => return Err(failure.into_error(service, &prefix, &again)),
    };
    let written = if wrote { request.count } else { 0 };
    for (cluster, lsn) in &lsns {
        let rows = parts
            .iter()
            .filter(|part| wrote && part.cluster == cluster.name())
            .map(|part| part.inserted())
            .sum();
        service.record_write(rows, cluster, u64::from(*lsn));
    }
    let (served_by, lsn, lsns) = answer_tokens(service, &lsns);
    let result = BulkResult {
        inserted: written,
        shards: loads(service, &table, &plan),
        prefix,
        served_by,
        lsn,
        lsns,
        elapsed_ms: started.elapsed().as_secs_f64() * 1_000.0,
    };
    Ok((result, wrote))
}

/// The users per shard (with its cluster when there are several).
fn loads(service: &Service, table: &RoutingTable, plan: &BulkPlan) -> Vec<ShardLoad> {
    let several = service.clusters().several();
    let current = &table.current;
    let shards = current.shards.iter().zip(&plan.rows).enumerate();
    shards
        .map(|(position, (shard, rows))| ShardLoad {
            shard: shard.name.clone(),
            keys: rows.ids.len() as u64,
            cluster: several.then(|| current.cluster_of(position).to_string()),
        })
        .collect()
}

/// What a write's answer says of where it was written: the node (the first
/// cluster's primary), the read-your-writes token (the first cluster's),
/// and, with several clusters operated, every cluster's token by name.
pub(super) fn answer_tokens(
    service: &Service,
    lsns: &[(Arc<Cluster>, PgLsn)],
) -> (String, String, BTreeMap<String, String>) {
    let mut sorted: Vec<&(Arc<Cluster>, PgLsn)> = lsns.iter().collect();
    sorted.sort_by(|a, b| a.0.name().cmp(b.0.name()));
    let (served_by, lsn) = match sorted.first() {
        Some((cluster, lsn)) => (
            failover::node_label(service, cluster, cluster.primary().name()),
            token(service, cluster, *lsn),
        ),
        None => (String::new(), String::new()),
    };
    let lsns = match service.clusters().several() {
        true => sorted
            .iter()
            .map(|(cluster, lsn)| (cluster.name().to_string(), token(service, cluster, *lsn)))
            .collect(),
        false => BTreeMap::new(),
    };
    (served_by, lsn, lsns)
}

/// Why a bulk insert (or a data set) wrote nothing, or may have.
#[derive(Debug)]
pub(super) enum Failure {
    /// One cluster's statements or its commit failed.
    Write(Arc<Cluster>, WriteFailure),
    /// The transaction across clusters failed.
    TwoPhase(TwoPhaseError),
}

impl Failure {
    pub(super) fn into_error(self, service: &Service, what: &str, again: &str) -> Error {
        match self {
            Failure::Write(cluster, failure) => {
                write_failed(service, &cluster, failure, what, again)
            }
            Failure::TwoPhase(
                error @ (TwoPhaseError::DecisionUnknown { .. } | TwoPhaseError::Unfinished { .. }),
            ) => {
                tracing::warn!("write of {what:?}: outcome unknown: {error}");
                failover::write_outcome_unknown(service, false, again)
            }
            Failure::TwoPhase(error) => Error::from(error),
        }
    }
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
}

/// One cluster's share of a bulk insert.
#[derive(Debug)]
struct ClusterPart<'p> {
    cluster: &'p str,
    /// During a rebalance: shards being left on this cluster and the users
    /// whose owner changes (a user of that id may still be there).
    checks: Vec<(&'p ShardSql, &'p Rows)>,
    /// Shards of the layout in force on this cluster and their users.
    inserts: Vec<(&'p ShardSql, &'p Rows)>,
}

impl ClusterPart<'_> {
    fn inserted(&self) -> u64 {
        self.inserts
            .iter()
            .map(|(_, rows)| rows.ids.len() as u64)
            .sum()
    }
}

impl BulkPlan {
    /// The plan per cluster it touches, in the order of the layout's
    /// clusters (then the clusters only the layout being left holds).
    fn by_cluster<'p>(&'p self, table: &'p RoutingTable) -> Vec<ClusterPart<'p>> {
        let mut parts: Vec<ClusterPart<'p>> = Vec::new();
        let mut part_of = |cluster: &'p str| -> usize {
            match parts.iter().position(|part| part.cluster == cluster) {
                Some(index) => index,
                None => {
                    parts.push(ClusterPart {
                        cluster,
                        checks: Vec::new(),
                        inserts: Vec::new(),
                    });
                    parts.len() - 1
                }
            }
        };
        let current = &table.current;
        let mut inserts = Vec::new();
        for (position, (shard, rows)) in current.shards.iter().zip(&self.rows).enumerate() {
            if !rows.ids.is_empty() {
                inserts.push((part_of(current.cluster_of(position)), shard, rows));
            }
        }
        let mut checks = Vec::new();
        if let Some(previous) = &table.previous {
            for (position, (shard, rows)) in previous.shards.iter().zip(&self.moving).enumerate() {
                if !rows.ids.is_empty() {
                    checks.push((part_of(previous.cluster_of(position)), shard, rows));
                }
            }
        }
        for (index, shard, rows) in inserts {
            parts[index].inserts.push((shard, rows));
        }
        for (index, shard, rows) in checks {
            parts[index].checks.push((shard, rows));
        }
        parts
    }
}

/// The bulk insert within one cluster, in one transaction, by `deadline`;
/// the WAL position after its commit.
async fn write_bulk(
    service: &Service,
    part: &ClusterPart<'_>,
    deadline: tokio::time::Instant,
) -> Result<Vec<(Arc<Cluster>, PgLsn)>, Failure> {
    let cluster = Arc::clone(
        service
            .cluster_named(part.cluster)
            .map_err(|_| Failure::TwoPhase(TwoPhaseError::OutOfOrder("an unknown cluster")))?,
    );
    let failed = |failure| Failure::Write(Arc::clone(&cluster), failure);
    let mut client = cluster
        .primary_client(deadline)
        .await
        .map_err(|error| failed(error.not_taken()))?;
    let committing = AtomicBool::new(false);
    let written =
        tokio::time::timeout_at(deadline, insert_bulk(&mut client, part, &committing)).await;
    match written {
        Ok(Ok(lsn)) => Ok(vec![(Arc::clone(&cluster), lsn)]),
        Ok(Err(failure)) => Err(failed(failure)),
        Err(_) => {
            discard(client);
            let message = "no answer before the deadline".to_owned();
            Err(failed(if committing.load(Ordering::SeqCst) {
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
            }))
        }
    }
}

async fn insert_bulk(
    client: &mut deadpool_postgres::Object,
    part: &ClusterPart<'_>,
    committing: &AtomicBool,
) -> Result<PgLsn, WriteFailure> {
    let at = |stage| move |error| db::write_failure(&error, stage);
    let tx = client
        .transaction()
        .await
        .map_err(at(Stage::BeforeCommit))?;
    write_part(&tx, part).await?;
    committing.store(true, Ordering::SeqCst);
    tx.commit().await.map_err(at(Stage::Committing))?;
    let lsn = db::lsn_after_commit(client)
        .await
        .map_err(|error| error.failure())?;
    Ok(lsn)
}

/// One cluster's statements, in its open transaction: no user whose owner
/// changes is at its old owner still (locked there until the end), then
/// the inserts.
async fn write_part(
    client: &impl GenericClient,
    part: &ClusterPart<'_>,
) -> Result<(), WriteFailure> {
    let at = |error| db::write_failure(&error, Stage::BeforeCommit);
    for (old_shard, rows) in &part.checks {
        let found = db::existing_users(client, old_shard, &rows.ids)
            .await
            .map_err(at)?;
        if !found.is_empty() {
            return Err(WriteFailure::Duplicate);
        }
    }
    for (shard, rows) in &part.inserts {
        db::insert_users(client, shard, &rows.ids, &rows.names, &rows.emails)
            .await
            .map_err(at)?;
    }
    Ok(())
}

/// The bulk insert over several clusters in one two-phase transaction, by
/// `deadline`: each cluster's part prepared, the decision, the commits;
/// each cluster's WAL position after its commit.
async fn write_across(
    service: &Service,
    table: &RoutingTable,
    count: u64,
    prefix: &str,
    deadline: tokio::time::Instant,
) -> Result<Vec<(Arc<Cluster>, PgLsn)>, Failure> {
    let mut transaction = TwoPhase::begin(service, "bulk insert", deadline)
        .await
        .map_err(Failure::TwoPhase)?;
    let clusters = transaction
        .join_bulk_on(service, table, prefix, count)
        .await?;
    let committed = transaction.commit(&[]).await.map_err(Failure::TwoPhase)?;
    if !committed.finished {
        return Err(Failure::TwoPhase(TwoPhaseError::Unfinished {
            txid: committed.txid,
            cluster: clusters.join(", "),
            why: "a part did not commit now; the recovery pass commits it".to_string(),
        }));
    }
    let mut lsns = Vec::with_capacity(clusters.len());
    for name in &clusters {
        let cluster = service
            .cluster_named(name)
            .map_err(|_| Failure::TwoPhase(TwoPhaseError::OutOfOrder("an unknown cluster")))?;
        lsns.push((
            Arc::clone(cluster),
            lsn_now(cluster, deadline, committed.txid).await?,
        ));
    }
    Ok(lsns)
}

/// `cluster`'s WAL position now, after a transaction `txid` committed on
/// it: past its commit.
pub(super) async fn lsn_now(
    cluster: &Arc<Cluster>,
    deadline: tokio::time::Instant,
    txid: i64,
) -> Result<PgLsn, Failure> {
    let unknown = |why: String| {
        Failure::TwoPhase(TwoPhaseError::Unfinished {
            txid,
            cluster: cluster.name().to_string(),
            why: format!("committed, its WAL position not read: {why}"),
        })
    };
    let client = cluster
        .primary_client(deadline)
        .await
        .map_err(|error| unknown(error.to_string()))?;
    match tokio::time::timeout_at(deadline, db::lsn_after_commit(&client)).await {
        Ok(Ok(lsn)) => Ok(lsn),
        Ok(Err(error)) => Err(unknown(format!("{error:?}"))),
        Err(_) => {
            discard(client);
            Err(unknown("no answer in time".to_string()))
        }
    }
}

impl TwoPhase {
    /// A bulk insert of `count` users `<prefix>0` … as parts of this
    /// transaction, under the layout in force: joins each cluster its users
    /// go to (or, during a rebalance, may be at) and runs its statements
    /// there, prepared by the caller's next steps; the clusters joined. A
    /// statement that fails rolls everything back. Public so that a test
    /// can stop a bulk insert's coordinator after any step.
    pub async fn join_bulk(
        &mut self,
        service: &Service,
        prefix: &str,
        count: u64,
    ) -> Result<Vec<String>, TwoPhaseError> {
        let (_gate, table) = service.routing().write_table().await;
        self.join_bulk_on(service, &table, prefix, count)
            .await
            .map_err(|failure| match failure {
                Failure::TwoPhase(error) => error,
                Failure::Write(cluster, failure) => TwoPhaseError::NotCommitted {
                    cluster: cluster.name().to_string(),
                    step: "inserting",
                    why: format!("{failure:?}"),
                },
            })
    }

    async fn join_bulk_on(
        &mut self,
        service: &Service,
        table: &RoutingTable,
        prefix: &str,
        count: u64,
    ) -> Result<Vec<String>, Failure> {
        let plan = BulkPlan::new(table, prefix, count);
        let parts = plan.by_cluster(table);
        let deadline = self.deadline();
        for part in &parts {
            let client = self.join(part.cluster).await.map_err(Failure::TwoPhase)?;
            let written = tokio::time::timeout_at(deadline, write_part(client, part)).await;
            let failure = match written {
                Ok(Ok(())) => continue,
                Ok(Err(failure)) => failure,
                Err(_) => WriteFailure::NotTaken {
                    unavailable: true,
                    message: "no answer before the deadline".to_owned(),
                },
            };
            self.roll_back_now().await;
            let cluster = service
                .cluster_named(part.cluster)
                .map_err(|_| Failure::TwoPhase(TwoPhaseError::OutOfOrder("an unknown cluster")))?;
            return Err(Failure::Write(Arc::clone(cluster), failure));
        }
        Ok(parts.iter().map(|part| part.cluster.to_string()).collect())
    }
}

/// For a bulk insert refused as a duplicate: each cluster's WAL position
/// now when every one of its users is stored exactly as it would write
/// them (a repeat), `None` when not. Read back by `deadline`, cluster by
/// cluster; the ids found are joined, so a user a rebalance moved between
/// two clusters meanwhile counts once. Such a user can be missed by one
/// pass (read at its destination before it came, at its source after it
/// left), never by two: a key moves once per job, and the routing table
/// held keeps the job from ending. So during a rebalance a pass that finds
/// too few is read once more.
async fn stored_bulk(
    service: &Service,
    table: &RoutingTable,
    plan: &BulkPlan,
    deadline: tokio::time::Instant,
) -> Result<Option<Vec<(Arc<Cluster>, PgLsn)>>, Error> {
    let planned: usize = plan.rows.iter().map(|rows| rows.ids.len()).sum();
    let parts = plan.by_cluster(table);
    let passes = if table.previous.is_some() && parts.len() > 1 {
        2
    } else {
        1
    };
    let mut found = std::collections::HashSet::new();
    let mut lsns = Vec::new();
    for _ in 0..passes {
        lsns.clear();
        for part in &parts {
            let cluster = service.cluster_named(part.cluster)?;
            let (ids, lsn) = stored_on(service, cluster, &part.stored(), deadline).await?;
            found.extend(ids);
            lsns.push((Arc::clone(cluster), lsn));
        }
        if found.len() == planned {
            return Ok(Some(lsns));
        }
    }
    Ok(None)
}

impl<'p> ClusterPart<'p> {
    /// Every (table, rows) pair of this cluster that may hold the users.
    fn stored(&self) -> Vec<db::StoredPart<'p>> {
        self.inserts
            .iter()
            .chain(&self.checks)
            .map(|(shard, rows)| (*shard, &rows.ids[..], &rows.names[..], &rows.emails[..]))
            .collect()
    }
}

/// The ids of `parts` stored exactly so on `cluster`, and its WAL position.
async fn stored_on(
    service: &Service,
    cluster: &Cluster,
    parts: &[db::StoredPart<'_>],
    deadline: tokio::time::Instant,
) -> Result<(Vec<String>, PgLsn), Error> {
    let unavailable = |why: String| {
        tracing::warn!("reading back a bulk insert whose ids are taken: {why}");
        failover::primary_unavailable_on(service, cluster)
    };
    let client = cluster
        .primary_client(deadline)
        .await
        .map_err(|error| unavailable(error.to_string()))?;
    match tokio::time::timeout_at(deadline, db::stored_users(&client, parts)).await {
        Ok(Ok(stored)) => Ok(stored),
        Ok(Err(error)) => Err(unavailable(db::describe(&error))),
        Err(_) => {
            discard(client);
            Err(unavailable("no answer in time".to_owned()))
        }
    }
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
