//! A realistic data set in seconds: `count` generated users `<prefix>0` …
//! (named and e-mailed as the bulk insert names them), each into the shard
//! the core picks, written with binary `COPY` per shard in one transaction
//! (all or nothing). The ids are generated and routed on the blocking pool,
//! in chunks handed to the `COPY`s as they come, so the async workers keep
//! answering. One generation at a time, never beside a rebalance.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ecoshard_core::ShardLoad;
use ecoshard_core::wire::{GenerateResult, GenerateUsers, JobState};
use tokio::sync::{OwnedMutexGuard, SemaphorePermit, mpsc};
use tokio_postgres::types::PgLsn;

use super::failover;
use super::input;
use super::{Error, Service};
use crate::cluster::discard;
use crate::db::{self, Stage, WriteFailure};
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
    service.one_cluster("generated data sets")?;
    if let Some(refusal) = failover::write_refusal(service) {
        return Err(refusal);
    }
    let _held = hold(service)?;
    let started = Instant::now();
    let (_gate, table) = service.routing().write_table().await;
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
    let deadline = tokio::time::Instant::now() + set.limit;
    let (wrote, lsn, shards) = match write(service, &table, &set, deadline).await {
        Ok((lsn, shards)) => {
            service.record_write(set.count, service.cluster(), u64::from(lsn));
            (true, lsn, shards)
        }
        Err(Failed::Write(WriteFailure::Duplicate)) => {
            let (lsn, shards) = stored(service, &table, &set, deadline).await?;
            service.record_write(0, service.cluster(), u64::from(lsn));
            (false, lsn, shards)
        }
        Err(failed) => return Err(failed.into_error(service, &set)),
    };
    let elapsed = started.elapsed().as_secs_f64();
    let inserted = if wrote { set.count } else { 0 };
    let result = GenerateResult {
        inserted,
        shards: loads(&table, &shards),
        prefix: set.prefix,
        served_by: service.cluster().primary().name().to_string(),
        lsn: lsn.to_string(),
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
    /// The database refused, or the session ended.
    Write(WriteFailure),
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
            Failed::Write(WriteFailure::Unknown { message, .. }) => {
                tracing::warn!("generate {:?}: outcome unknown: {message}", set.prefix);
                unknown(false)
            }
            Failed::Write(failure) => super::writes::write_failed(
                service,
                service.cluster(),
                failure,
                &set.prefix,
                &again,
            ),
        }
    }
}

/// The data set in one transaction on the primary, by `deadline`: the WAL
/// position after its commit, and the users per shard.
async fn write(
    service: &Service,
    table: &Arc<RoutingTable>,
    set: &DataSet,
    deadline: tokio::time::Instant,
) -> Result<(PgLsn, Vec<u64>), Failed> {
    let mut client = service
        .cluster()
        .primary_client(deadline)
        .await
        .map_err(|error| Failed::Write(error.not_taken()))?;
    let committing = AtomicBool::new(false);
    let copied = copy_all(&mut client, table, set, &committing);
    match tokio::time::timeout_at(deadline, copied).await {
        Ok(copied) => copied,
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
    table: &Arc<RoutingTable>,
    set: &DataSet,
    committing: &AtomicBool,
) -> Result<(PgLsn, Vec<u64>), Failed> {
    let at = |stage| move |error| Failed::Write(db::write_failure(&error, stage));
    let tx = client
        .transaction()
        .await
        .map_err(at(Stage::BeforeCommit))?;
    let (chunks, generator) = spawn_generator(Arc::clone(table), set.prefix.clone(), set.count);
    let mut chunks = chunks;
    while let Some(chunk) = chunks.recv().await {
        for (shard, rows) in table.current.shards.iter().zip(&chunk) {
            if !rows.ids.is_empty() {
                db::copy_users(&tx, shard, &rows.ids, &rows.names, &rows.emails)
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
        .map_err(|error| Failed::Write(error.failure()))?;
    Ok((lsn, shards))
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

/// For a generation refused as a duplicate: the WAL position now and the
/// users per shard when every one of its users is stored as it would write
/// them (a repeat); else [`Error::DuplicateBulk`]. Checks, by `deadline`,
/// that each shard holds as many users of the generated form in the id
/// range as the core places there, and reads back a sample of
/// [`SAMPLE_ROWS`] ids, evenly spread, where the core places them.
async fn stored(
    service: &Service,
    table: &Arc<RoutingTable>,
    set: &DataSet,
    deadline: tokio::time::Instant,
) -> Result<(PgLsn, Vec<u64>), Error> {
    let (shards, sample) = plan(Arc::clone(table), set.prefix.clone(), set.count).await?;
    let unavailable = |why: String| {
        tracing::warn!("reading back a data set whose ids are taken: {why}");
        failover::primary_unavailable(service)
    };
    let client = service
        .cluster()
        .primary_client(deadline)
        .await
        .map_err(|error| unavailable(error.to_string()))?;
    let checked = tokio::time::timeout_at(deadline, async {
        for (shard, planned) in table.current.shards.iter().zip(&shards) {
            if db::count_generated(&client, shard, &set.prefix, set.count).await? != *planned {
                return Ok(None);
            }
        }
        let sampled: usize = sample.iter().map(|rows| rows.ids.len()).sum();
        let parts = sample_parts(table, &sample);
        let (found, lsn) = db::count_stored_users(&client, &parts).await?;
        Ok::<_, tokio_postgres::Error>((found == sampled as u64).then_some(lsn))
    });
    match checked.await {
        Ok(Ok(Some(lsn))) => Ok((lsn, shards)),
        Ok(Ok(None)) => Err(Error::DuplicateBulk {
            prefix: set.prefix.clone(),
            count: set.count,
        }),
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

/// A sample's parts, for [`db::count_stored_users`].
fn sample_parts<'p>(table: &'p RoutingTable, sample: &'p [Rows]) -> Vec<db::StoredPart<'p>> {
    table
        .current
        .shards
        .iter()
        .zip(sample)
        .filter(|(_, rows)| !rows.ids.is_empty())
        .map(|(shard, rows)| (shard, &rows.ids[..], &rows.names[..], &rows.emails[..]))
        .collect()
}

/// Users per shard, named.
fn loads(table: &RoutingTable, shards: &[u64]) -> Vec<ShardLoad> {
    table
        .current
        .shards
        .iter()
        .zip(shards)
        .map(|(shard, keys)| ShardLoad {
            shard: shard.name.clone(),
            keys: *keys,
            cluster: None,
        })
        .collect()
}
