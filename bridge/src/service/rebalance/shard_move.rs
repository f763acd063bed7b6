//! A placement change: the same strategy and shards, one or more of them on
//! another cluster. Each such shard moves whole with PostgreSQL's logical
//! replication, as Citus moves shards, one shard at a time, in phases
//! stored in the catalog (`ecoshard.shard_move` on `c1`), so a killed
//! bridge resumes the phase it was in:
//!
//! 1. *setting up*: the shard's table on the target's primary, a
//!    publication of the shard's schema on the source's, a subscription
//!    on the target to it (its slot named after the job);
//! 2. *copying*: the subscription's initial copy;
//! 3. *catching up*: until the target has confirmed the source's WAL
//!    position, but for a little;
//! 4. *cutover*: the shard's writes fenced on every live bridge (other
//!    shards' go on; `coordination/fence.rs`), the source's position
//!    taken, waited for on the target, the decision stored under the fence
//!    (the shard lives on the target from here), the routing swapped, the
//!    fence lifted here; every live bridge routes the shard to the target
//!    before the next phase;
//! 5. *verifying*: every source row present and equal on the target
//!    (counts and checksums, in chunks of ids); a difference stops the job
//!    and keeps the source;
//! 6. *cleanup*: the subscription (and with it its slot), the publication
//!    and the source's schema dropped.
//!
//! When every shard is moved, the target layout becomes the active one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ecoshard_core::Layout;
use ecoshard_core::wire::{JobState, LayoutView, MovePhase, ShardMoveProgress};
use tokio::sync::OwnedMutexGuard;

use super::{Applied, Pending, Startup, StepError, StoredJob, build_placement, store};
use crate::cluster::Cluster;
use crate::db::fence::{self as fences, Ack};
use crate::db::logical::{self as sql, StoredMove};
use crate::routing::{RoutingTable, wait_unshared};
use crate::service::coordination::fence as coordination;
use crate::service::failover::{self, WRITE_TIMEOUT};
use crate::service::{Error, LayoutRefusal, Service, StartError};
use restart::{before_decision, moved_on, routed_to_target, setup_stands, start_over};

mod restart;

/// Pause between two looks at a copy's progress or a catch-up.
const POLL: Duration = Duration::from_millis(200);
/// Between two log lines saying that a copy or a catch-up still waits.
const SAY_EVERY: Duration = Duration::from_secs(30);
/// Pause between two looks at the target's position during a cutover.
const CUTOVER_POLL: Duration = Duration::from_millis(2);
/// Longest the shard's writes stay fenced waiting for the target; past it
/// the fence lifts and the cutover is tried again after catching up.
const CUTOVER_LIMIT: Duration = Duration::from_secs(2);
/// How far behind the source (WAL bytes) the target may be for a cutover
/// to start.
const CATCH_UP_BYTES: u64 = 256 * 1024;
/// Pause before trying again after a cluster failed.
const RETRY_PAUSE: Duration = Duration::from_secs(1);
/// Longest a cleanup waits for requests still holding the old routing.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);
/// Ids compared per chunk when verifying.
const VERIFY_CHUNK: i64 = 20_000;

/// `layout` with no shard naming a cluster: where keys go, and nothing else.
fn keys_only(layout: &Layout) -> Layout {
    let mut stripped = layout.clone();
    for shard in &mut stripped.shards {
        shard.cluster = None;
    }
    stripped
}

/// The shards (name, position, source, target) that change cluster from
/// `from` to `to` (both naming every shard's cluster) when that is all
/// that changes; `None` otherwise.
pub(super) fn placement_only(
    from: &Layout,
    to: &Layout,
) -> Option<Vec<(String, u32, String, String)>> {
    if keys_only(from) != keys_only(to) {
        return None;
    }
    let moves: Vec<_> = (0..)
        .zip(
            crate::routing::clusters_of(from)
                .into_iter()
                .zip(crate::routing::clusters_of(to)),
        )
        .zip(&to.shards)
        .filter(|((_, (source, target)), _)| source != target)
        .map(|((position, (source, target)), shard)| (shard.name.clone(), position, source, target))
        .collect();
    (!moves.is_empty()).then_some(moves)
}

/// The refusal of a change that moves shards between clusters and also
/// changes where keys go: two steps.
pub(super) fn mixed_refusal(from: &Layout, to: &Layout) -> Option<LayoutRefusal> {
    let before: Vec<(&str, String)> = from
        .shards
        .iter()
        .map(|shard| shard.name.as_str())
        .zip(crate::routing::clusters_of(from))
        .collect();
    let crossing = to
        .shards
        .iter()
        .map(|shard| shard.name.as_str())
        .zip(crate::routing::clusters_of(to))
        .filter(|(name, cluster)| {
            before
                .iter()
                .any(|(old, old_cluster)| old == name && old_cluster != cluster)
        })
        .count();
    (crossing > 0 && keys_only(from) != keys_only(to))
        .then_some(LayoutRefusal::PlacementAndKeys { shards: crossing })
}

/// Starts the placement change from `from` to `layout`: every cluster
/// involved must answer first (else 503, nothing stored); then the job and
/// its target layout are stored and the move runs in the background.
pub(super) async fn start(
    service: &Service,
    from: LayoutView,
    layout: &Layout,
    moves: Vec<(String, u32, String, String)>,
    slot: OwnedMutexGuard<()>,
) -> Result<Applied, Error> {
    for (_, _, source, target) in &moves {
        for name in [source, target] {
            reachable(service, service.cluster_named(name)?).await?;
        }
    }
    let begun = super::begin(service, &from, layout).await?;
    tracing::info!(
        "rebalance job {}: layout {} → {}, moving shards {:?} between clusters",
        begun.job.id,
        from.version,
        begun.target.version,
        moves.iter().map(|(shard, ..)| shard).collect::<Vec<_>>()
    );
    let mut view = begun.job.view();
    view.shard_move = moves.first().map(|(shard, _, source, target)| {
        Box::new(ShardMoveProgress {
            shard: shard.clone(),
            from_cluster: source.clone(),
            to_cluster: target.clone(),
            phase: MovePhase::SettingUp,
            shards_done: 0,
            shards_total: moves.len() as u64,
            rows: 0,
            rows_total: 0,
            bytes: 0,
            bytes_total: 0,
            rows_per_sec: 0.0,
            eta_ms: None,
            write_pause_ms: None,
        })
    });
    service.rebalancer().set_job(view.clone());
    let pending = Pending {
        job: begun.job,
        from,
        to: begun.target,
        just_begun: true,
    };
    tokio::spawn(super::takeover::run_locked(
        service.clone(),
        pending,
        slot,
        None,
        None,
    ));
    Ok(Applied::Started(view))
}

/// Whether `cluster`'s primary answers within the write deadline, and lets
/// the bridge's role publish and subscribe.
async fn reachable(service: &Service, cluster: &Cluster) -> Result<(), Error> {
    let deadline = tokio::time::Instant::now() + WRITE_TIMEOUT;
    let unavailable = |why: String| {
        tracing::warn!("moving shards: {} does not answer: {why}", cluster.name());
        failover::primary_unavailable_on(service, cluster)
    };
    let client = cluster
        .primary_client(deadline)
        .await
        .map_err(|error| unavailable(error.to_string()))?;
    match tokio::time::timeout_at(deadline, sql::may_replicate(&client)).await {
        Ok(Ok(true)) => Ok(()),
        Ok(Ok(false)) => Err(LayoutRefusal::Invalid(format!(
            "moving shards between clusters needs the bridge's role to be a superuser on {} \
             (PostgreSQL 15 lets only superusers publish a schema and subscribe): nothing was \
             stored",
            cluster.name()
        ))
        .into()),
        Ok(Err(error)) => Err(unavailable(crate::db::describe(&error))),
        Err(_) => {
            crate::cluster::discard(client);
            Err(unavailable("no answer in time".to_owned()))
        }
    }
}

/// At start-up, for a job whose target only moves shards between
/// clusters: the routing by where each shard is now (on its target once
/// cut over), and the job to resume. `None` for any other job.
pub(super) async fn startup(
    client: &mut deadpool_postgres::Client,
    active: &LayoutView,
    target: &LayoutView,
) -> Result<Option<Startup>, StartError> {
    if placement_only(&active.layout, &target.layout).is_none() {
        return Ok(None);
    }
    let job = super::unfinished_job(client, target).await?;
    let stored = sql::moves(&*client, job.id)
        .await
        .map_err(|error| StartError::Schema(error.into()))?;
    let current = build_placement(&placed_now(active, target, &stored))
        .await
        .map_err(super::stored_layout_error)?;
    Ok(Some(Startup {
        table: RoutingTable {
            current,
            previous: None,
            min_replay_lsn: Default::default(),
        },
        last_job: Some(job.view()),
        pending: Some(Pending {
            job,
            from: active.clone(),
            to: target.clone(),
            just_begun: false,
        }),
    }))
}

/// The layout routed by during the job: `from`, with each shard cut over
/// (stored past its cutover) on its target cluster.
pub(crate) fn placed_now(from: &LayoutView, to: &LayoutView, stored: &[StoredMove]) -> LayoutView {
    let mut now = from.clone();
    for (shard, target) in now.layout.shards.iter_mut().zip(&to.layout.shards) {
        let cut_over = stored.iter().any(|stored| {
            stored.shard == shard.name
                && matches!(
                    stored.phase,
                    MovePhase::Verifying | MovePhase::Cleanup | MovePhase::Done
                )
        });
        if cut_over {
            shard.cluster = target.cluster.clone();
        }
    }
    now
}

/// One run of a job: the clusters' database name, and when it started.
struct Run {
    service: Service,
    job: u64,
    from: LayoutView,
    to: LayoutView,
    started: Instant,
    moving_ms: u64,
}

/// Runs a placement change to its end; `slot` is held until then.
pub(super) async fn run(service: Service, pending: Pending, slot: OwnedMutexGuard<()>) {
    coordination::let_go(&service).await;
    let run = Run {
        service,
        job: pending.job.id,
        from: pending.from,
        to: pending.to,
        started: Instant::now(),
        moving_ms: pending.job.moving_ms,
    };
    let mut job = pending.job;
    loop {
        match every_shard(&run, &mut job).await {
            Ok(()) => break,
            Err(StepError::Retry(why)) => {
                tracing::warn!("rebalance job {}: {why}; trying again", run.job);
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Err(StepError::Fatal(why)) => {
                tracing::error!("rebalance job {} failed: {why}", run.job);
                fail(&run, &why).await;
                return;
            }
            Err(StepError::Stopped(why)) => {
                tracing::warn!("rebalance job {}: {why}; this bridge stops it", run.job);
                return;
            }
        }
    }
    drop(slot);
}

/// Moves every shard not moved yet, then completes the job.
async fn every_shard(run: &Run, job: &mut StoredJob) -> Result<(), StepError> {
    let moves = placement_only(&run.from.layout, &run.to.layout).unwrap_or_default();
    let catalog = catalog(run).await?;
    sql::record_moves(&catalog, run.job, &moves).await?;
    let stored = sql::moves(&catalog, run.job).await?;
    drop(catalog);
    for (done, shard) in stored.iter().enumerate() {
        if shard.phase != MovePhase::Done {
            move_shard(run, shard, (done as u64, stored.len() as u64)).await?;
        }
    }
    super::takeover::still_runs(&run.service, run.job)?;
    complete(run, job, &stored).await
}

/// The catalog's primary (`c1`).
async fn catalog(run: &Run) -> Result<deadpool_postgres::Client, StepError> {
    primary(run.service.cluster()).await
}

async fn primary(cluster: &Cluster) -> Result<deadpool_postgres::Client, StepError> {
    cluster.primary().pool.get().await.map_err(|error| {
        StepError::Retry(format!(
            "{}: {}",
            cluster.name(),
            crate::db::describe_pool(&error)
        ))
    })
}

/// A shard's move, from its stored phase to done.
async fn move_shard(run: &Run, stored: &StoredMove, shards: (u64, u64)) -> Result<(), StepError> {
    let source = cluster(run, &stored.source)?;
    let target = cluster(run, &stored.target)?;
    let name = sql::replication_name(&database(source), run.job, stored.position);
    let mut progress = Progress::new(stored, shards);
    let mut old_table = None;
    let mut fence = stored.fence;
    let mut phase = stored.phase;
    if matches!(phase, MovePhase::Verifying | MovePhase::Cleanup) {
        old_table = routed_to_target(run, &stored.shard, target).await?;
    }
    while phase != MovePhase::Done {
        super::takeover::still_runs(&run.service, run.job)?;
        if before_decision(phase) && !setup_stands(source, target, &name, phase).await? {
            phase = start_over(run, source, target, &name, &stored.shard).await?;
        }
        progress.phase = phase;
        show(run, &progress);
        let next = match phase {
            MovePhase::SettingUp => set_up(run, source, target, &name, &mut progress).await?,
            MovePhase::Copying => copy(source, target, &name, &mut progress, run).await?,
            MovePhase::CatchingUp => catch_up(run, (source, target), &name).await?,
            MovePhase::Cutover => {
                // A fence left by a cutover that ended without lifting it.
                fences::lift(&catalog(run).await?, run.job, &stored.shard, None).await?;
                catch_up(run, (source, target), &name).await?;
                let (old, decided) = cutover(run, source, target, &name, &mut progress).await?;
                (old_table, fence) = (Some(old), Some(decided));
                MovePhase::Verifying
            }
            MovePhase::Verifying => {
                everyone_cut_over(run, fence).await;
                verify(source, target, &stored.shard).await?
            }
            MovePhase::Cleanup => {
                everyone_cut_over(run, fence).await;
                if let Some(old) = old_table.take() {
                    wait_unshared(old, DRAIN_LIMIT).await;
                }
                clean_up(source, target, &name, &stored.shard).await?
            }
            MovePhase::Done => MovePhase::Done,
        };
        let catalog = catalog(run).await?;
        if next == MovePhase::Done {
            sql::finish_move(&catalog, run.job, &stored.shard, elapsed_ms(run)).await?;
        } else if next != MovePhase::Verifying {
            // (the cutover stored `verifying` itself: its decision)
            sql::set_phase(&catalog, run.job, &stored.shard, next, None).await?;
        }
        phase = next;
    }
    progress.phase = MovePhase::Done;
    progress.view.shards_done += 1;
    show(run, &progress);
    Ok(())
}

fn cluster<'s>(run: &'s Run, name: &str) -> Result<&'s Arc<Cluster>, StepError> {
    run.service
        .clusters()
        .get(name)
        .ok_or_else(|| StepError::Fatal(format!("cluster {name} is not operated by this bridge")))
}

/// The database the bridge uses on `cluster`.
fn database(cluster: &Cluster) -> String {
    cluster
        .primary()
        .spec
        .config
        .get_dbname()
        .unwrap_or("ecomarket")
        .to_owned()
}

fn elapsed_ms(run: &Run) -> u64 {
    run.moving_ms + run.started.elapsed().as_millis() as u64
}

/// Setting up: the shard's table on the target, its size on the source,
/// the publication there and the subscription on the target.
async fn set_up(
    run: &Run,
    source: &Cluster,
    target: &Cluster,
    name: &str,
    progress: &mut Progress,
) -> Result<MovePhase, StepError> {
    let shard = progress.view.shard.clone();
    let mut on_target = primary(target).await?;
    let alone = layout_of_shard(&run.to.layout, &shard);
    store::create_shards(&mut on_target, &alone)
        .await
        .map_err(|error| match error {
            crate::db::schema::SchemaError::Db(error) => StepError::from(error),
            other => StepError::Fatal(other.to_string()),
        })?;
    let on_source = primary(source).await?;
    let size = sql::shard_size(&on_source, &shard).await?;
    let (rows_total, bytes_total) =
        sql::set_size(&catalog(run).await?, run.job, &shard, size).await?;
    progress.view.rows_total = rows_total;
    progress.view.bytes_total = bytes_total;
    sql::create_publication(&on_source, name, &shard).await?;
    let conninfo = source.primary().spec.subscriber_conninfo();
    if sql::subscription_stamp(&on_target, name).await?.is_none() {
        sql::create_subscription(&on_target, name, &conninfo).await?;
        sql::stamp_subscription(&on_target, name, &sql::timeline(&on_target).await?).await?;
    }
    Ok(MovePhase::Copying)
}

/// `layout` with only the shard `name`.
fn layout_of_shard(layout: &Layout, name: &str) -> Layout {
    let mut alone = layout.clone();
    alone.shards.retain(|shard| shard.name == name);
    alone
}

/// Copying: until every table of the subscription is ready, showing the
/// rows and bytes copied so far.
async fn copy(
    source: &Cluster,
    target: &Cluster,
    name: &str,
    progress: &mut Progress,
    run: &Run,
) -> Result<MovePhase, StepError> {
    let started = Instant::now();
    let shard = progress.view.shard.clone();
    let mut said = Instant::now();
    loop {
        moved_on(source, target, name).await?;
        let client = primary(target).await?;
        if said.elapsed() > SAY_EVERY {
            say_waiting(
                run,
                &format!("shard {shard}'s copy to {}", target.name()),
                started,
            );
            if let Some(state) = sql::subscription_state(&client, name).await? {
                tracing::warn!(
                    "rebalance job {}: the subscription {name}: {state}",
                    run.job
                );
            }
            said = Instant::now();
        }
        match sql::subscription_ready(&client, name).await? {
            Some(true) => break,
            Some(false) => {}
            None => {
                return Err(StepError::Retry(format!(
                    "the subscription {name} on {} is gone: the move sets up again",
                    target.name()
                )));
            }
        }
        let (rows, bytes) = match sql::copy_progress(&client, &shard).await? {
            Some(done) => done,
            None => sql::shard_size(&client, &shard).await?,
        };
        progress.copied(rows, bytes, started.elapsed());
        show(run, progress);
        drop(client);
        tokio::time::sleep(POLL).await;
    }
    let client = primary(target).await?;
    let (rows, _) = sql::shard_size(&client, &shard).await?;
    progress.copied(rows, progress.view.bytes_total, started.elapsed());
    Ok(MovePhase::CatchingUp)
}

/// Catching up: until the target has confirmed the source's WAL but for
/// [`CATCH_UP_BYTES`].
async fn catch_up(
    run: &Run,
    (source, target): (&Cluster, &Cluster),
    name: &str,
) -> Result<MovePhase, StepError> {
    let (started, mut said) = (Instant::now(), Instant::now());
    loop {
        moved_on(source, target, name).await?;
        let client = primary(source).await?;
        let now = sql::current_lsn(&client).await?;
        let Some(confirmed) = sql::confirmed_flush(&client, name).await? else {
            return Err(StepError::Retry(format!(
                "the replication slot {name} on {} is gone: the move sets up again",
                source.name()
            )));
        };
        if now.saturating_sub(confirmed) <= CATCH_UP_BYTES {
            return Ok(MovePhase::Cutover);
        }
        if said.elapsed() > SAY_EVERY {
            let behind = now.saturating_sub(confirmed);
            let what = format!("{}'s catching up ({behind} bytes behind)", target.name());
            say_waiting(run, &what, started);
            said = Instant::now();
        }
        drop(client);
        tokio::time::sleep(POLL).await;
    }
}

/// Says that `what` (a copy, a catch-up) still goes on since `started`.
fn say_waiting(run: &Run, what: &str, started: Instant) {
    tracing::warn!(
        "rebalance job {}: {what} still goes on after {:?}",
        run.job,
        started.elapsed()
    );
}

/// The cutover (see the module's doc), its fence held by every live
/// bridge (`coordination/fence.rs`); answers the routing table it
/// replaced (requests may still hold it: the source is dropped once they
/// are done) and the fence it was decided under. This bridge's fence is
/// lifted whatever happens, the catalog's when nothing was decided.
async fn cutover(
    run: &Run,
    source: &Cluster,
    target: &Cluster,
    name: &str,
    progress: &mut Progress,
) -> Result<(Arc<RoutingTable>, u64), StepError> {
    let shard = progress.view.shard.clone();
    let on_source = primary(source).await?;
    let on_target = primary(target).await?;
    let catalog = catalog(run).await?;
    let routing = run.service.routing();
    let fenced = Instant::now();
    let Some(fence) = fences::raise(&catalog, run.job, &shard).await? else {
        return Err(StepError::Retry(format!(
            "shard {shard}'s move is no longer in its cutover"
        )));
    };
    routing.fence(&shard).await;
    let swapped = async {
        everyone_fenced(run, &shard, fence, fenced).await?;
        let lsn = sql::current_lsn(&on_source).await?;
        while sql::confirmed_flush(&on_source, name).await?.unwrap_or(0) < lsn {
            if fenced.elapsed() > CUTOVER_LIMIT {
                return Err(StepError::Retry(format!(
                    "{} had not applied {}'s writes to shard {shard} after {CUTOVER_LIMIT:?}; \
                     its writes go on, and the cutover is tried again",
                    target.name(),
                    source.name()
                )));
            }
            tokio::time::sleep(CUTOVER_POLL).await;
        }
        let target_lsn = sql::current_lsn(&on_target).await?;
        let pause = fenced.elapsed().as_millis() as u64;
        if !fences::decide(&catalog, run.job, &shard, fence, (lsn, pause)).await? {
            return Err(StepError::Retry(format!(
                "shard {shard}'s fence {fence} was lifted before the decision; the cutover is \
                 tried again"
            )));
        }
        let stored = sql::moves(&catalog, run.job).await?;
        let current = build_placement(&placed_now(&run.from, &run.to, &stored))
            .await
            .map_err(StepError::Fatal)?;
        Ok(routing
            .swap(RoutingTable {
                current,
                previous: None,
                min_replay_lsn: [(target.name().to_owned(), target_lsn)].into(),
            })
            .await)
    }
    .await;
    routing.lift_fence();
    let pause = fenced.elapsed();
    if swapped.is_ok() {
        tracing::info!(
            "shard {shard} cut over to {}: its writes waited {pause:?} here",
            target.name()
        );
        progress.view.write_pause_ms = Some(pause.as_millis() as u64);
    } else if let Err(error) = fences::lift(&catalog, run.job, &shard, Some(fence)).await {
        // Lifted when the cutover is tried again, or by the next phase.
        tracing::warn!(
            "lifting shard {shard}'s fence: {}",
            crate::db::describe(&error)
        );
    }
    swapped.map(|old| (old, fence))
}

/// Waits until every live bridge but this one holds `fence` (or its
/// lease lapsed) until [`CUTOVER_LIMIT`] after `fenced`.
async fn everyone_fenced(
    run: &Run,
    shard: &str,
    fence: u64,
    fenced: Instant,
) -> Result<(), StepError> {
    let until = Some(fenced + CUTOVER_LIMIT);
    coordination::wait_acknowledged(&run.service, run.job, fence, Ack::Held, until)
        .await
        .map_err(|lagging| {
            StepError::Retry(format!(
                "bridges {lagging:?} did not fence shard {shard} within {CUTOVER_LIMIT:?}; its \
                 writes go on, and the cutover is tried again"
            ))
        })
}

/// After the decision under `fence`: waits until every live bridge but
/// this one routes the shard to its target (or its lease lapsed), so that
/// none writes it to the source and none reads a source about to go.
async fn everyone_cut_over(run: &Run, fence: Option<u64>) {
    if let Some(fence) = fence {
        // Without a limit, it cannot fail.
        let _ =
            coordination::wait_acknowledged(&run.service, run.job, fence, Ack::CutOver, None).await;
    }
}

/// Verifying: every row of the source's shard is on the target, equal
/// (count and checksum per chunk of ids; the source takes no writes any
/// more, the target may have new rows). A difference fails the job with
/// the source kept.
async fn verify(source: &Cluster, target: &Cluster, shard: &str) -> Result<MovePhase, StepError> {
    let on_source = primary(source).await?;
    let on_target = primary(target).await?;
    let mut after = String::new();
    loop {
        let chunk = sql::row_hashes(&on_source, shard, &after, VERIFY_CHUNK).await?;
        let Some((last, _)) = chunk.last() else {
            return Ok(MovePhase::Cleanup);
        };
        let sum: i128 = chunk.iter().map(|(_, hash)| i128::from(*hash)).sum();
        let ids: Vec<String> = chunk.iter().map(|(id, _)| id.clone()).collect();
        let (found, target_sum) = sql::sum_of(&on_target, shard, &ids).await?;
        if found != ids.len() as u64 || target_sum != sum.to_string() {
            return Err(StepError::Fatal(format!(
                "shard {shard} differs between {} and {} for the {} ids from {:?} to {last:?} \
                 ({found} found on {}, checksums {sum} and {target_sum}): the source is kept \
                 and nothing is dropped",
                source.name(),
                target.name(),
                ids.len(),
                ids[0],
                target.name()
            )));
        }
        after = last.clone();
    }
}

/// Cleanup: the subscription (its slot with it), then the publication and
/// the source's schema.
async fn clean_up(
    source: &Cluster,
    target: &Cluster,
    name: &str,
    shard: &str,
) -> Result<MovePhase, StepError> {
    sql::drop_subscription(&primary(target).await?, name).await?;
    if !sql::drop_source(&primary(source).await?, name, shard).await? {
        return Err(StepError::Retry(format!(
            "the slot {name} on {} is still in use",
            source.name()
        )));
    }
    Ok(MovePhase::Done)
}

/// Every shard moved: drops what a restart may have recreated of the
/// sources (an empty schema), then makes the target the active layout and
/// routes by it alone.
async fn complete(run: &Run, job: &mut StoredJob, stored: &[StoredMove]) -> Result<(), StepError> {
    for moved in stored {
        let source = cluster(run, &moved.source)?;
        let name = sql::replication_name(&database(source), run.job, moved.position);
        if !sql::drop_source(&primary(source).await?, &name, &moved.shard).await? {
            return Err(StepError::Retry(format!(
                "the slot {name} on {} is still in use",
                source.name()
            )));
        }
    }
    let mut catalog = catalog(run).await?;
    let runner = run.service.coordination().name();
    let completed = store::complete(
        &mut catalog,
        run.job,
        run.to.version,
        elapsed_ms(run),
        runner,
    );
    let Some(_) = completed.await? else {
        super::takeover::still_runs(&run.service, run.job)?;
        return Err(StepError::Fatal(
            "the database no longer holds this job running with its target layout".into(),
        ));
    };
    let current = build_placement(&run.to).await.map_err(StepError::Fatal)?;
    run.service
        .routing()
        .swap(RoutingTable {
            current,
            previous: None,
            min_replay_lsn: Default::default(),
        })
        .await;
    if let Some(done) = store::load(&catalog, run.job).await? {
        *job = done;
    }
    job.state = JobState::Done;
    let view = job.view();
    run.service.rebalancer().update(run.job, |memory| {
        let shard_move = memory.shard_move.take();
        *memory = view;
        memory.shard_move = shard_move;
    });
    tracing::info!(
        "rebalance job {} done: {} shards moved",
        run.job,
        stored.len()
    );
    Ok(())
}

async fn fail(run: &Run, why: &str) {
    super::mover::fail(&run.service, run.job, why).await;
}

/// A shard's progress as the job shows it.
struct Progress {
    view: ShardMoveProgress,
    phase: MovePhase,
}

impl Progress {
    fn new(stored: &StoredMove, (shards_done, shards_total): (u64, u64)) -> Self {
        Progress {
            phase: stored.phase,
            view: ShardMoveProgress {
                shard: stored.shard.clone(),
                from_cluster: stored.source.clone(),
                to_cluster: stored.target.clone(),
                phase: stored.phase,
                shards_done,
                shards_total,
                rows: 0,
                rows_total: stored.rows_total.unwrap_or(0),
                bytes: 0,
                bytes_total: stored.bytes_total.unwrap_or(0),
                rows_per_sec: 0.0,
                eta_ms: None,
                write_pause_ms: stored.write_pause_ms,
            },
        }
    }

    /// `rows` and `bytes` copied in `elapsed`: the rate and the time left.
    fn copied(&mut self, rows: u64, bytes: u64, elapsed: Duration) {
        self.view.rows = rows;
        self.view.bytes = bytes;
        let seconds = elapsed.as_secs_f64();
        if seconds > 0.0 && rows > 0 {
            self.view.rows_per_sec = rows as f64 / seconds;
            let left = self.view.rows_total.saturating_sub(rows) as f64;
            self.view.eta_ms = Some((left / self.view.rows_per_sec * 1_000.0) as u64);
        }
    }
}

/// Shows `progress` in the job the ticks and `GET /api/rebalance/{id}` carry.
fn show(run: &Run, progress: &Progress) {
    let mut view = progress.view.clone();
    view.phase = progress.phase;
    if matches!(
        view.phase,
        MovePhase::Verifying | MovePhase::Cleanup | MovePhase::Done
    ) {
        view.rows = view.rows.max(view.rows_total);
        view.bytes = view.bytes.max(view.bytes_total);
        view.eta_ms = Some(0);
    }
    run.service.rebalancer().update(run.job, |memory| {
        memory.shard_move = Some(Box::new(view));
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecoshard_core::StrategyKind;

    fn placed(strategy: StrategyKind, count: u64, clusters: &[&str]) -> Layout {
        let mut layout = Layout::with_count(strategy, count).unwrap();
        for (shard, cluster) in layout.shards.iter_mut().zip(clusters) {
            shard.cluster = Some((*cluster).to_owned());
        }
        layout
    }

    #[test]
    fn only_a_change_of_clusters_is_a_placement_change() {
        let check = |to: Layout, expected: Option<Vec<&str>>| {
            let from = placed(StrategyKind::Ring, 3, &["c1", "c2", "c1"]);
            let moves = placement_only(&from, &to).map(|moves| {
                moves
                    .into_iter()
                    .map(|(shard, ..)| shard)
                    .collect::<Vec<_>>()
            });
            let expected =
                expected.map(|names| names.iter().map(|name| name.to_string()).collect());
            assert_eq!(moves, expected, "{to:?}");
        };
        check(
            placed(StrategyKind::Ring, 3, &["c1", "c2", "c2"]),
            Some(vec!["s2"]),
        );
        check(
            placed(StrategyKind::Ring, 3, &["c2", "c1", "c1"]),
            Some(vec!["s0", "s1"]),
        );
        check(placed(StrategyKind::Ring, 3, &["c1", "c2", "c1"]), None);
        check(
            placed(StrategyKind::Ring, 4, &["c1", "c2", "c2", "c1"]),
            None,
        );
        check(placed(StrategyKind::Maglev, 3, &["c1", "c2", "c2"]), None);
    }

    #[test]
    fn moving_shards_and_keys_at_once_is_refused_with_two_steps() {
        let from = placed(StrategyKind::Ring, 3, &["c1", "c2", "c1"]);
        let check = |to: Layout, expected: Option<usize>| {
            let refused = mixed_refusal(&from, &to).map(|refusal| match refusal {
                LayoutRefusal::PlacementAndKeys { shards } => shards,
                other => panic!("{other:?}"),
            });
            assert_eq!(refused, expected, "{to:?}");
        };
        check(
            placed(StrategyKind::Ring, 4, &["c1", "c2", "c2", "c1"]),
            Some(1),
        );
        check(
            placed(StrategyKind::Ring, 4, &["c1", "c2", "c1", "c2"]),
            None,
        );
        check(placed(StrategyKind::Ring, 3, &["c1", "c2", "c2"]), None);
        check(
            placed(StrategyKind::Maglev, 3, &["c2", "c1", "c1"]),
            Some(2),
        );
    }
}
