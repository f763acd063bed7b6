//! A realistic data set in seconds: `count` generated users `<prefix>0` …
//! (named and e-mailed as the bulk insert names them), each into the shard
//! the core picks, written with binary `COPY` per shard in one transaction
//! (all or nothing) — one two-phase transaction across the clusters when
//! the layout places shards on several. The ids are generated and routed on the blocking pool,
//! in chunks handed to the `COPY`s as they come, so the async workers keep
//! answering. One generation at a time, never beside a rebalance.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ecoshard_core::ShardLoad;
use ecoshard_core::wire::{GenerateResult, GenerateUsers, JobState};
use tokio::sync::{OwnedMutexGuard, SemaphorePermit, mpsc};
use tokio_postgres::types::PgLsn;

use super::bulk::{answer_tokens, lsn_now};
use super::failover;
use super::input;
use super::twophase::{TwoPhase, TwoPhaseError};
use super::{Error, Service};
use crate::cluster::{Cluster, discard};
use crate::db::{self, CopyInto, Stage, WriteFailure};
use crate::routing::RoutingTable;

/// Users generated and routed per chunk (one `COPY` per shard per chunk).
const CHUNK_ROWS: u64 = 50_000;
/// Ids read back, evenly spread, when checking a repeat.
const SAMPLE_ROWS: u64 = 1_000;

/// How long a generation of `count` users may take on the primary: 10 s,
/// and 10 µs more per user (20 s for a million). Past it the transaction
/// is rolled back.
pub fn deadline_for(count: u64) -> Duration {
    Duration::from_secs(10)
        + Duration::from_micros(10).saturating_mul(count.min(u32::MAX.into()) as u32)
}

/// Generates and writes `request.count` users `<prefix>0` … (a unique
/// prefix when none is given); whether it wrote them (`false`: every one
/// was stored exactly so already, nothing was written).
pub(crate) async fn generate(
    service: &Service,
    request: GenerateUsers,
) -> Result<(GenerateResult, bool), Error> {
    input::generate_count(request.count)?;
    let prefix = match request.prefix {
        Some(prefix) => {
            input::prefix(&prefix)?;
            prefix
        }
        None => super::bulk::unique_prefix(),
    };
    let _held = hold(service)?;
    let started = Instant::now();
    // A shard move's cutover holds the data set back (within the write
    // deadline), as it does a single insert of that shard.
    let fence_deadline = tokio::time::Instant::now() + super::failover::WRITE_TIMEOUT;
    super::coordination::renew(service, fence_deadline).await;
    let Some((_gate, table)) = service.routing().write_table_unfenced(fence_deadline).await else {
        return Err(Error::ShardFenced("a shard of this data set".into()));
    };
    if table.previous.is_some() {
        return Err(Error::GenerateDuringRebalance(
            service.rebalancer().job_summary().map(Box::new),
        ));
    }
    let set = DataSet {
        prefix,
        count: request.count,
        limit: deadline_for(request.count),
    };
    let mut clusters = Vec::with_capacity(table.current.clusters.len());
    for held in &table.current.clusters {
        let cluster = service.cluster_named(&held.cluster)?;
        if let Some(refusal) = failover::write_refusal_on(service, cluster) {
            return Err(refusal);
        }
        clusters.push(Arc::clone(cluster));
    }
    let deadline = tokio::time::Instant::now() + set.limit;
    let written = match &clusters[..] {
        [cluster] => write(cluster, &table, &set, deadline).await,
        _ => write_across(service, &table, &set, deadline).await,
    };
    let (wrote, lsns, shards) = match written {
        Ok((lsns, shards)) => (true, lsns, shards),
        Err(Failed::Write(_, WriteFailure::Duplicate)) => {
            let (lsns, shards) = stored(service, &table, &set, deadline).await?;
            (false, lsns, shards)
        }
        Err(failed) => return Err(failed.into_error(service, &set)),
    };
    for (cluster, lsn) in &lsns {
        let rows = (0..shards.len())
            .filter(|&position| wrote && table.current.cluster_of(position) == cluster.name())
            .map(|position| shards[position])
            .sum();
        service.record_write(rows, cluster, u64::from(*lsn));
    }
    let (served_by, lsn, lsns) = answer_tokens(service, &lsns);
    let elapsed = started.elapsed().as_secs_f64();
    let inserted = if wrote { set.count } else { 0 };
    let result = GenerateResult {
        inserted,
        shards: loads(service, &table, &shards),
        prefix: set.prefix,
        served_by,
        lsn,
        lsns,
        elapsed_ms: elapsed * 1_000.0,
        rows_per_sec: inserted as f64 / elapsed.max(1e-9),
    };
    Ok((result, wrote))
}

/// What is generated: `<prefix>0` … `<prefix>{count-1}`, within `limit`.
#[derive(Debug)]
struct DataSet {
    prefix: String,
    count: u64,
    limit: Duration,
}

/// The one generation's permit and the rebalance slot: no rebalance starts
/// while a data set is written.
fn hold(service: &Service) -> Result<(SemaphorePermit<'_>, OwnedMutexGuard<()>), Error> {
    let permit = service
        .generate_permit()
        .try_acquire()
        .map_err(|_| Error::Generating)?;
    let rebalancer = service.rebalancer();
    let refused = || Error::GenerateDuringRebalance(rebalancer.job_summary().map(Box::new));
    let slot = rebalancer.try_hold().ok_or_else(refused)?;
    if rebalancer
        .job()
        .is_some_and(|job| job.state == JobState::Failed)
    {
        return Err(refused());
    }
    Ok((permit, slot))
}

/// Why a generation wrote nothing (or may have committed).
#[derive(Debug)]
enum Failed {
    /// The database refused, or the session ended, on that cluster.
    Write(Arc<Cluster>, WriteFailure),
    /// The transaction across clusters failed.
    TwoPhase(TwoPhaseError),
    /// The deadline passed before the commit was sent: rolled back.
    TimedOut,
    /// The deadline passed while the commit was on its way.
    CommitTimedOut,
    /// The generating thread failed (a bug).
    Generator(String),
}

impl Failed {
    fn into_error(self, service: &Service, set: &DataSet) -> Error {
        let again = format!(
            "send the same generate again (prefix {:?}, count {})",
            set.prefix, set.count
        );
        let unknown = |timed_out| Error::WriteOutcomeUnknown {
            timed_out,
            sync_replication: service.failover().sync_replication(),
            limit_secs: set.limit.as_secs(),
            again: again.clone(),
        };
        match self {
            Failed::TimedOut => Error::GenerateTimedOut {
                count: set.count,
                limit_secs: set.limit.as_secs(),
            },
            Failed::CommitTimedOut => unknown(true),
            Failed::Generator(why) => Error::internal("generating users", why),
            Failed::Write(_, WriteFailure::Unknown { message, .. }) => {
                tracing::warn!("generate {:?}: outcome unknown: {message}", set.prefix);
                unknown(false)
            }
            Failed::Write(cluster, failure) => {
                super::writes::write_failed(service, &cluster, failure, &set.prefix, &again)
            }
            Failed::TwoPhase(
                error @ (TwoPhaseError::DecisionUnknown { .. } | TwoPhaseError::Unfinished { .. }),
            ) => {
                tracing::warn!("generate {:?}: outcome unknown: {error}", set.prefix);
                unknown(false)
            }
            Failed::TwoPhase(error) => Error::from(error),
        }
    }
}

/// The data set on the one cluster holding every shard, in one transaction
/// on its primary, by `deadline`: the WAL position after its commit, and
/// the users per shard.
async fn write(
    cluster: &Arc<Cluster>,
    table: &Arc<RoutingTable>,
    set: &DataSet,
    deadline: tokio::time::Instant,
) -> Result<(Vec<(Arc<Cluster>, PgLsn)>, Vec<u64>), Failed> {
    let mut client = cluster
        .primary_client(deadline)
        .await
        .map_err(|error| Failed::Write(Arc::clone(cluster), error.not_taken()))?;
    let committing = AtomicBool::new(false);
    let copied = copy_all(&mut client, cluster, table, set, &committing);
    match tokio::time::timeout_at(deadline, copied).await {
        Ok(copied) => copied.map(|(lsn, shards)| (vec![(Arc::clone(cluster), lsn)], shards)),
        Err(_) => {
            // Closed, not pooled: the transaction ends with its connection.
            discard(client);
            Err(if committing.load(Ordering::SeqCst) {
                Failed::CommitTimedOut
            } else {
                Failed::TimedOut
            })
        }
    }
}

/// Opens the transaction, `COPY`s each chunk the generator hands over into
/// its shards, commits, reads the WAL position.
async fn copy_all(
    client: &mut deadpool_postgres::Object,
    cluster: &Arc<Cluster>,
    table: &Arc<RoutingTable>,
    set: &DataSet,
    committing: &AtomicBool,
) -> Result<(PgLsn, Vec<u64>), Failed> {
    let at =
        |stage| move |error| Failed::Write(Arc::clone(cluster), db::write_failure(&error, stage));
    let tx = client
        .transaction()
        .await
        .map_err(at(Stage::BeforeCommit))?;
    let (chunks, generator) = spawn_generator(Arc::clone(table), set.prefix.clone(), set.count);
    let mut chunks = chunks;
    while let Some(chunk) = chunks.recv().await {
        for (shard, rows) in table.current.shards.iter().zip(&chunk) {
            if !rows.ids.is_empty() {
                let into = CopyInto::Transaction(&tx);
                db::copy_users(into, shard, &rows.ids, &rows.names, &rows.emails)
                    .await
                    .map_err(at(Stage::BeforeCommit))?;
            }
        }
    }
    let shards = generator
        .await
        .map_err(|error| Failed::Generator(error.to_string()))?;
    committing.store(true, Ordering::SeqCst);
    tx.commit().await.map_err(at(Stage::Committing))?;
    let lsn = db::lsn_after_commit(client)
        .await
        .map_err(|error| Failed::Write(Arc::clone(cluster), error.failure()))?;
    Ok((lsn, shards))
}

/// The data set over several clusters in one two-phase transaction, by
/// `deadline`: every cluster holding a shard joins, each chunk is copied
/// into its shards on their clusters, then each part is prepared, the
/// decision taken, the parts committed; each cluster's WAL position after
/// its commit, and the users per shard.
async fn write_across(
    service: &Service,
    table: &Arc<RoutingTable>,
    set: &DataSet,
    deadline: tokio::time::Instant,
) -> Result<(Vec<(Arc<Cluster>, PgLsn)>, Vec<u64>), Failed> {
    let mut transaction = TwoPhase::begin(service, "generate", deadline)
        .await
        .map_err(Failed::TwoPhase)?;
    for held in &table.current.clusters {
        transaction
            .join(&held.cluster)
            .await
            .map_err(Failed::TwoPhase)?;
    }
    let copied = copy_parts(service, &transaction, table, set);
    let shards = match tokio::time::timeout_at(deadline, copied).await {
        Ok(Ok(shards)) => shards,
        Ok(Err(failed)) => {
            transaction.abort().await;
            return Err(failed);
        }
        Err(_) => {
            transaction.abort().await;
            return Err(Failed::TimedOut);
        }
    };
    let committed = transaction.commit(&[]).await.map_err(Failed::TwoPhase)?;
    if !committed.finished {
        return Err(Failed::TwoPhase(TwoPhaseError::Unfinished {
            txid: committed.txid,
            cluster: String::new(),
            why: "a part did not commit now; the recovery pass commits it".to_string(),
        }));
    }
    let mut lsns = Vec::with_capacity(table.current.clusters.len());
    for held in &table.current.clusters {
        let cluster = Arc::clone(
            service
                .cluster_named(&held.cluster)
                .map_err(|_| Failed::TwoPhase(TwoPhaseError::OutOfOrder("an unknown cluster")))?,
        );
        let lsn =
            lsn_now(&cluster, deadline, committed.txid)
                .await
                .map_err(|failure| match failure {
                    super::bulk::Failure::TwoPhase(error) => Failed::TwoPhase(error),
                    super::bulk::Failure::Write(cluster, failure) => {
                        Failed::Write(cluster, failure)
                    }
                })?;
        lsns.push((cluster, lsn));
    }
    Ok((lsns, shards))
}

/// `COPY`s each chunk the generator hands over into its shards, each on
/// its cluster's part of `transaction`; the users per shard.
async fn copy_parts(
    service: &Service,
    transaction: &TwoPhase,
    table: &Arc<RoutingTable>,
    set: &DataSet,
) -> Result<Vec<u64>, Failed> {
    let (mut chunks, generator) = spawn_generator(Arc::clone(table), set.prefix.clone(), set.count);
    while let Some(chunk) = chunks.recv().await {
        for (position, (shard, rows)) in table.current.shards.iter().zip(&chunk).enumerate() {
            if rows.ids.is_empty() {
                continue;
            }
            let name = table.current.cluster_of(position);
            let cluster = service
                .cluster_named(name)
                .map_err(|_| Failed::Generator(format!("{name} is not operated")))?;
            let cluster = Arc::clone(cluster);
            let Some(client) = transaction.client(name) else {
                return Err(Failed::Generator(format!("{name} has no part")));
            };
            db::copy_users(
                CopyInto::Open(client),
                shard,
                &rows.ids,
                &rows.names,
                &rows.emails,
            )
            .await
            .map_err(|error| {
                Failed::Write(cluster, db::write_failure(&error, Stage::BeforeCommit))
            })?;
        }
    }
    generator
        .await
        .map_err(|error| Failed::Generator(error.to_string()))
}

/// One shard's part of a chunk: ids, names, e-mails.
#[derive(Clone, Debug, Default)]
struct Rows {
    ids: Vec<String>,
    names: Vec<String>,
    emails: Vec<String>,
}

/// Generates and routes the users on the blocking pool, a chunk (rows per
/// shard of the layout in force) at a time, at most two chunks ahead of the
/// `COPY`s; the generator ends early when the receiver is dropped, and
/// answers the users per shard.
fn spawn_generator(
    table: Arc<RoutingTable>,
    prefix: String,
    count: u64,
) -> (mpsc::Receiver<Vec<Rows>>, tokio::task::JoinHandle<Vec<u64>>) {
    let (sender, receiver) = mpsc::channel(2);
    let generator = tokio::task::spawn_blocking(move || {
        let current = &table.current;
        let mut shards = vec![0_u64; current.shards.len()];
        for start in (0..count).step_by(CHUNK_ROWS as usize) {
            let mut chunk = vec![Rows::default(); current.shards.len()];
            for index in start..(start + CHUNK_ROWS).min(count) {
                let user_id = format!("{prefix}{index}");
                let rows = &mut chunk[current.position(&user_id)];
                rows.names.push(format!("User {index}"));
                rows.emails.push(format!("{user_id}@ecomarket.example"));
                rows.ids.push(user_id);
            }
            for (total, rows) in shards.iter_mut().zip(&chunk) {
                *total += rows.ids.len() as u64;
            }
            if sender.blocking_send(chunk).is_err() {
                break;
            }
        }
        shards
    });
    (receiver, generator)
}

/// For a generation refused as a duplicate: each cluster's WAL position
/// now and the users per shard when every one of its users is stored as it
/// would write them (a repeat); else [`Error::DuplicateBulk`]. Checks, by
/// `deadline`, cluster by cluster (no rebalance runs, so no user moves
/// between them meanwhile), that each shard holds as many users of the
/// generated form in the id range as the core places there, and reads back
/// a sample of [`SAMPLE_ROWS`] ids, evenly spread, where the core places
/// them.
async fn stored(
    service: &Service,
    table: &Arc<RoutingTable>,
    set: &DataSet,
    deadline: tokio::time::Instant,
) -> Result<(Vec<(Arc<Cluster>, PgLsn)>, Vec<u64>), Error> {
    let (shards, sample) = plan(Arc::clone(table), set.prefix.clone(), set.count).await?;
    let mut lsns = Vec::with_capacity(table.current.clusters.len());
    for held in &table.current.clusters {
        let cluster = service.cluster_named(&held.cluster)?;
        let planned = Planned {
            shards: &shards,
            sample: &sample,
        };
        match stored_on(service, cluster, table, set, planned, deadline).await? {
            Some(lsn) => lsns.push((Arc::clone(cluster), lsn)),
            None => {
                return Err(Error::DuplicateBulk {
                    prefix: set.prefix.clone(),
                    count: set.count,
                });
            }
        }
    }
    Ok((lsns, shards))
}

/// The users per shard the core places the data set in, and a sample.
#[derive(Clone, Copy)]
struct Planned<'p> {
    shards: &'p [u64],
    sample: &'p [Rows],
}

/// [`stored`] on one cluster, over its shards: its WAL position when they
/// hold the data set's users as planned.
async fn stored_on(
    service: &Service,
    cluster: &Cluster,
    table: &RoutingTable,
    set: &DataSet,
    planned: Planned<'_>,
    deadline: tokio::time::Instant,
) -> Result<Option<PgLsn>, Error> {
    let unavailable = |why: String| {
        tracing::warn!("reading back a data set whose ids are taken: {why}");
        failover::primary_unavailable_on(service, cluster)
    };
    let client = cluster
        .primary_client(deadline)
        .await
        .map_err(|error| unavailable(error.to_string()))?;
    let here = |position: &usize| table.current.cluster_of(*position) == cluster.name();
    let checked = tokio::time::timeout_at(deadline, async {
        for position in (0..planned.shards.len()).filter(here) {
            let shard = &table.current.shards[position];
            let counted = db::count_generated(&client, shard, &set.prefix, set.count).await?;
            if counted != planned.shards[position] {
                return Ok(None);
            }
        }
        let parts = sample_parts(table, planned.sample, here);
        let sampled: usize = parts.iter().map(|(_, ids, _, _)| ids.len()).sum();
        let (found, lsn) = db::stored_users(&client, &parts).await?;
        Ok::<_, tokio_postgres::Error>((found.len() == sampled).then_some(lsn))
    });
    match checked.await {
        Ok(Ok(lsn)) => Ok(lsn),
        Ok(Err(error)) => Err(unavailable(db::describe(&error))),
        Err(_) => {
            discard(client);
            Err(unavailable("no answer in time".to_owned()))
        }
    }
}

/// Users per shard the core places `<prefix>0` … in, and a sample of them
/// by shard; worked out on the blocking pool.
async fn plan(
    table: Arc<RoutingTable>,
    prefix: String,
    count: u64,
) -> Result<(Vec<u64>, Vec<Rows>), Error> {
    super::rebalance::off_workers(move || {
        let current = &table.current;
        let mut shards = vec![0_u64; current.shards.len()];
        let mut sample = vec![Rows::default(); current.shards.len()];
        let step = (count / SAMPLE_ROWS).max(1);
        for index in 0..count {
            let user_id = format!("{prefix}{index}");
            let shard = current.position(&user_id);
            shards[shard] += 1;
            if index % step == 0 {
                let rows = &mut sample[shard];
                rows.names.push(format!("User {index}"));
                rows.emails.push(format!("{user_id}@ecomarket.example"));
                rows.ids.push(user_id);
            }
        }
        (shards, sample)
    })
    .await
    .map_err(|why| Error::internal("planning a data set", why))
}

/// A sample's parts on the shards at the positions `here` takes, for
/// [`db::stored_users`].
fn sample_parts<'p>(
    table: &'p RoutingTable,
    sample: &'p [Rows],
    here: impl Fn(&usize) -> bool,
) -> Vec<db::StoredPart<'p>> {
    table
        .current
        .shards
        .iter()
        .zip(sample)
        .enumerate()
        .filter(|(position, (_, rows))| here(position) && !rows.ids.is_empty())
        .map(|(_, part)| part)
        .map(|(shard, rows)| (shard, &rows.ids[..], &rows.names[..], &rows.emails[..]))
        .collect()
}

/// Users per shard, named (with their cluster when there are several).
fn loads(service: &Service, table: &RoutingTable, shards: &[u64]) -> Vec<ShardLoad> {
    let several = service.clusters().several();
    table
        .current
        .shards
        .iter()
        .zip(shards)
        .enumerate()
        .map(|(position, (shard, keys))| ShardLoad {
            shard: shard.name.clone(),
            keys: *keys,
            cluster: several.then(|| table.current.cluster_of(position).to_string()),
        })
        .collect()
}
