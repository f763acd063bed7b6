//! The mover: for a job just begun, creates the new shards' schemas and
//! swaps the routing (reads under both layouts first, writes by the target
//! once every live bridge reads under both); then plans from the real
//! keys, moves each misplaced row with one statement per batch (delete from
//! the old shard, insert into the new one, count it in the job row: one
//! transaction), checks that nothing is left, completes the job, and drops
//! the schemas of shards the new layout no longer has. Layout builds and
//! plans run off the async workers (`off_workers`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ecoshard_core::wire::JobState;
use ecoshard_core::{Layout, PlanSummary, Router, StrategyKind};
use tokio::sync::{OwnedMutexGuard, oneshot};

use super::{Pending, StepError, between, build_placement, off_workers, store};
use crate::routing::{BuiltLayout, RoutingTable, wait_unshared};
use crate::service::Service;

/// Longest the mover waits for requests holding an old routing table.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);
/// Pause before trying again after the primary failed.
const RETRY_PAUSE: Duration = Duration::from_secs(1);
/// Longest one batch between clusters may take, from its first statement
/// to its decision (past it, it is rolled back and tried again).
const BATCH_LIMIT: Duration = Duration::from_secs(30);
/// Rounds of "scan, move what is misplaced" before giving up.
const MAX_ROUNDS: usize = 3;
/// Why a job stops when the database no longer holds it.
const GONE: &str = "the database no longer holds this job running with its target layout \
                    (lost to a failover without synchronous replication?)";

/// The keys of each shard, by shard name.
pub(super) type Keys = BTreeMap<String, Vec<String>>;
/// Rows to move, by (from, to) shard names, sorted by user_id.
type Moves = BTreeMap<(String, String), Vec<String>>;

/// Runs a job to its end; `slot` is held until then, `planned` told once
/// the plan is stored.
pub(super) async fn run(
    state: Service,
    pending: Pending,
    slot: OwnedMutexGuard<()>,
    mut planned: Option<oneshot::Sender<()>>,
) {
    let id = pending.job.id;
    if pending.just_begun && !begin_routing(&state, &pending).await {
        return;
    }
    if !pending.just_begun && create_shards(&state, &pending).await.is_none() {
        return;
    }
    // Every other live bridge routes by both layouts too before a row moves.
    let routing = (pending.to.version, Some(pending.from.version));
    crate::service::coordination::wait_followers(&state, id, routing).await;
    let mut job = pending.job.clone();
    let completed_at_lsn = loop {
        match work(&state, &pending, &mut job, &mut planned).await {
            Ok(lsn) => break lsn,
            Err(StepError::Retry(why)) => {
                tracing::warn!("rebalance job {id}: {why}; trying again");
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Err(StepError::Fatal(why)) => {
                tracing::error!("rebalance job {id} failed: {why}");
                fail(&state, id, &why).await;
                return;
            }
            Err(StepError::Stopped(why)) => {
                tracing::warn!("rebalance job {id}: {why}; this bridge stops it");
                return;
            }
        }
    };
    finish(&state, &pending, &job, completed_at_lsn).await;
    drop(slot);
}

/// For a job just begun: creates the new shards' schemas (retrying while
/// the primary is away), then routes reads under both layouts with writes
/// still by the old one, until every other live bridge does too; only then
/// writes by the target, and tells the others. A row written by the target
/// is then never looked for where a bridge reads the old layout alone
/// (issue 12's load test saw a 404 for an id just acknowledged through the
/// other bridge). Standbys serve both once they have replayed the schemas.
/// Whether the job goes on (else it failed).
async fn begin_routing(state: &Service, pending: &Pending) -> bool {
    let Some(lsns) = create_shards(state, pending).await else {
        return false;
    };
    if !swap_both(state, pending, &lsns, false).await {
        return false;
    }
    let reading_both = (pending.from.version, Some(pending.to.version));
    crate::service::coordination::wait_followers(state, pending.job.id, reading_both).await;
    if !swap_both(state, pending, &lsns, true).await {
        return false;
    }
    crate::service::coordination::announce(state).await;
    true
}

/// Routes by both layouts, writes by the target when `by_target` (else by
/// the old one), and waits for the requests under the table it replaced:
/// reads under the old layout alone look only at old owners, and writes by
/// it must have ended before the keys are scanned. Whether it did (else
/// the job failed).
async fn swap_both(
    state: &Service,
    pending: &Pending,
    lsns: &BTreeMap<String, u64>,
    by_target: bool,
) -> bool {
    let (to, from) = match build_both(pending).await {
        Ok(built) => built,
        Err(error) => {
            let why = format!("building the layouts: {error}");
            fail(state, pending.job.id, &why).await;
            return false;
        }
    };
    let (current, previous) = if by_target { (to, from) } else { (from, to) };
    let table = RoutingTable {
        current,
        previous: Some(previous),
        min_replay_lsn: lsns.clone(),
    };
    let old = state.routing().swap(table).await;
    if !wait_unshared(old, DRAIN_LIMIT).await {
        tracing::warn!(
            "requests under the routing before layout {} still run after {DRAIN_LIMIT:?}; \
             going on anyway",
            pending.to.version
        );
    }
    true
}

/// Creates the new shards' schemas on their clusters, retrying while a
/// primary is away (a resumed job too: one killed before may not have them
/// on every cluster); the WAL position after, per cluster. `None` when the
/// job failed, or this bridge lost its lock.
async fn create_shards(state: &Service, pending: &Pending) -> Option<BTreeMap<String, u64>> {
    let id = pending.job.id;
    loop {
        let created = match super::takeover::still_runs(state, id) {
            Ok(()) => super::across::create_shards(state, &pending.to.layout, None)
                .await
                .map_err(|error| match error {
                    crate::db::schema::SchemaError::Db(error) => StepError::from(error),
                    other => StepError::Retry(other.to_string()),
                }),
            Err(stopped) => Err(stopped),
        };
        match created {
            Ok(lsns) => return Some(lsns),
            Err(StepError::Retry(why)) => {
                tracing::warn!("rebalance job {id}: {why}; trying again");
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Err(StepError::Fatal(why)) => {
                fail(state, id, &format!("creating the new shards: {why}")).await;
                return None;
            }
            Err(StepError::Stopped(why)) => {
                tracing::warn!("rebalance job {id}: {why}; this bridge stops it");
                return None;
            }
        }
    }
}

/// Plans (once), moves, checks and completes; the WAL position after the
/// completing commit.
async fn work(
    state: &Service,
    pending: &Pending,
    job: &mut store::StoredJob,
    planned: &mut Option<oneshot::Sender<()>>,
) -> Result<u64, StepError> {
    let mut client = state
        .cluster()
        .primary()
        .pool
        .get()
        .await
        .map_err(|error| StepError::Retry(crate::db::describe_pool(&error)))?;
    let clusters = state.clusters().names();
    let routers = routers(&pending.from.layout, &pending.to.layout, clusters).await?;
    let batch_rows = state.rebalancer().batch_rows;
    let mut round = 0;
    loop {
        let keys = super::across::scan(state, &pending.from.layout, &pending.to.layout)
            .await
            .map_err(|error| error.map_or_else(StepError::Retry, StepError::from))?;
        let (moves, plan) = sort_out(&routers, keys, job.total.is_none()).await?;
        if let Some(plan) = plan {
            let count = moves.values().map(|keys| keys.len() as u64).sum();
            if plan.moved != count {
                tracing::warn!(
                    "rebalance job {}: the core plans {} moves, the shards hold {count} misplaced rows",
                    job.id,
                    plan.moved
                );
            }
            let (total, plan) = store::set_plan(&client, job.id, count, &plan).await?;
            job.total = Some(total);
            job.plan = plan;
            let view = job.view();
            state.rebalancer().update(job.id, |memory| *memory = view);
            tracing::info!("rebalance job {}: {total} rows to move", job.id);
        }
        if let Some(planned) = planned.take() {
            let _ = planned.send(());
        }
        if moves.is_empty() {
            break;
        }
        round += 1;
        if round > MAX_ROUNDS {
            return Err(StepError::Fatal(format!(
                "rows are still misplaced after {MAX_ROUNDS} rounds of moving"
            )));
        }
        let clusters = super::across::shard_clusters(&pending.from.layout, &pending.to.layout);
        move_rows(state, &mut client, job, (&moves, &clusters), batch_rows).await?;
    }
    super::takeover::still_runs(state, job.id)?;
    let runner = state.coordination().name();
    let lsn = store::complete(
        &mut client,
        job.id,
        pending.to.version,
        job.moving_ms,
        runner,
    )
    .await?
    .ok_or_else(|| gone(state, job.id))?;
    job.state = JobState::Done;
    Ok(lsn)
}

/// Moves `moves` in batches of `batch_rows`, in order of (from, to) shard
/// names, then user_id. A batch within `c1` (the catalog's cluster) is one
/// statement (one transaction) that deletes the rows from the old shard,
/// inserts them into the new one and adds them to the job's `moved`; any
/// other batch is one two-phase transaction (`between.rs`), counted in
/// the job with its decision.
async fn move_rows(
    state: &Service,
    client: &mut deadpool_postgres::Client,
    job: &mut store::StoredJob,
    (moves, clusters): (&Moves, &BTreeMap<String, String>),
    batch_rows: usize,
) -> Result<(), StepError> {
    let started = Instant::now();
    let base_ms = job.moving_ms;
    let c1 = crate::cluster::DEFAULT_CLUSTER;
    for ((from, to), keys) in moves {
        let route = between::Route {
            from: (from, clusters.get(from).map_or(c1, String::as_str)),
            to: (to, clusters.get(to).map_or(c1, String::as_str)),
        };
        let statement = match (route.from.1, route.to.1) {
            (a, b) if a == c1 && b == c1 => Some(store::prepare_move(&*client, from, to).await?),
            _ => None,
        };
        for batch in keys.chunks(batch_rows) {
            super::takeover::still_runs(state, job.id)?;
            let moving_ms = base_ms + started.elapsed().as_millis() as u64;
            let runner = (job.id, state.coordination().name());
            let moved = match &statement {
                Some(statement) => {
                    let moved = store::move_batch(client, statement, batch, runner, moving_ms);
                    Some(moved.await?.ok_or_else(|| gone(state, job.id))?)
                }
                None => move_between(state, job, route, batch, moving_ms).await?,
            };
            if let Some(moved) = moved {
                job.moved = moved;
            }
            job.moving_ms = base_ms + started.elapsed().as_millis() as u64;
            let (moved, rows_per_sec) = (
                job.moved,
                store::rows_per_sec(job.moved, job.moving_ms as f64),
            );
            state.rebalancer().update(job.id, |memory| {
                memory.moved = moved;
                memory.rows_per_sec = rows_per_sec;
            });
        }
    }
    Ok(())
}

/// One batch as a two-phase transaction: the job's `moved` after it
/// (`None`: none of its rows was left to move).
async fn move_between(
    state: &Service,
    job: &store::StoredJob,
    route: between::Route<'_>,
    batch: &[String],
    moving_ms: u64,
) -> Result<Option<u64>, StepError> {
    let deadline = tokio::time::Instant::now() + BATCH_LIMIT;
    match between::move_batch(state, job.id, route, batch, moving_ms, deadline).await {
        Ok(moved) => Ok(moved),
        Err(between::BatchError::JobGone) => Err(gone(state, job.id)),
        Err(between::BatchError::Failed(error)) => Err(StepError::Retry(error.to_string())),
    }
}

/// Why the catalog no longer holds job `id` running under this bridge:
/// another took it over (this one lost its lock), or it is gone.
fn gone(state: &Service, id: u64) -> StepError {
    match super::takeover::still_runs(state, id) {
        Err(stopped) => stopped,
        Ok(()) => StepError::Fatal(GONE.into()),
    }
}

/// After the completing commit: routing by the new layout alone (standbys
/// serve it once they have replayed the last move), then, once no request
/// holds the old routing, the schemas of shards the new layout lacks are
/// dropped if empty; then the job counts as done.
async fn finish(state: &Service, pending: &Pending, job: &store::StoredJob, lsn: u64) {
    let view = job.view();
    match build_placement(&pending.to).await {
        Ok(current) => {
            let version = current.version;
            let old = state
                .routing()
                .swap(RoutingTable {
                    current,
                    previous: None,
                    min_replay_lsn: super::across::positions(state, version, lsn).await,
                })
                .await;
            let kept: BTreeSet<&str> = pending
                .to
                .layout
                .shards
                .iter()
                .map(|shard| shard.name.as_str())
                .collect();
            let gone: Vec<&str> = pending
                .from
                .layout
                .shards
                .iter()
                .map(|shard| shard.name.as_str())
                .filter(|name| !kept.contains(name))
                .collect();
            if !gone.is_empty() {
                // Nobody reads under the old layout when its shards go.
                let routing = (version, None);
                crate::service::coordination::wait_followers(state, job.id, routing).await;
                if wait_unshared(old, DRAIN_LIMIT).await {
                    match verified(state, job.id).await {
                        Some(true) => {
                            let clusters = super::across::shard_clusters(
                                &pending.from.layout,
                                &pending.to.layout,
                            );
                            drop_shards(state, &gone, &clusters).await;
                        }
                        Some(false) => {}
                        None => return,
                    }
                } else {
                    tracing::warn!(
                        "requests under the old layout still run after {DRAIN_LIMIT:?}; \
                         leaving shards {gone:?} for the next start to drop"
                    );
                }
            }
        }
        Err(error) => tracing::error!("rebalance job {}: {error}", job.id),
    }
    tracing::info!(
        "rebalance job {} done: {} rows moved, {:.0} rows/s",
        job.id,
        job.moved,
        view.rows_per_sec
    );
    state.rebalancer().update(job.id, |memory| *memory = view);
}

/// Whether the database verifies clean under the new layout, so that job
/// `id` may drop the shards it emptied. A difference fails the job with the
/// report's first differences, and nothing is dropped; a verification that
/// could not be made leaves the shards for the next start to drop.
/// `Some(true)`: clean; `Some(false)`: not verified; `None`: the job failed.
async fn verified(state: &Service, id: u64) -> Option<bool> {
    match state.verify_before_cleanup(id).await {
        Ok(report) if report.clean => Some(true),
        Ok(report) => {
            let first: Vec<&str> = report
                .differences
                .iter()
                .take(3)
                .map(String::as_str)
                .collect();
            let why = format!(
                "the verification before dropping the emptied shards found {} difference(s), \
                 so nothing was dropped: {}",
                report.differences.len(),
                first.join("; ")
            );
            fail(state, id, &why).await;
            None
        }
        Err(error) => {
            tracing::warn!(
                "rebalance job {id}: no verification before dropping the emptied shards \
                 ({error}); leaving them for the next start to drop"
            );
            Some(false)
        }
    }
}

/// Drops the schemas of shards `names` (if empty), each on its cluster.
async fn drop_shards(state: &Service, names: &[&str], clusters: &BTreeMap<String, String>) {
    for cluster in state.clusters().all() {
        let here: Vec<&str> = names
            .iter()
            .copied()
            .filter(|name| clusters.get(*name).map(String::as_str) == Some(cluster.name()))
            .collect();
        if here.is_empty() {
            continue;
        }
        let mut client = match cluster.primary().pool.get().await {
            Ok(client) => client,
            Err(error) => {
                tracing::warn!(
                    "dropping shards {here:?}: {}; the next start drops them",
                    crate::db::describe_pool(&error)
                );
                continue;
            }
        };
        for name in here {
            match crate::db::schema::drop_shard_if_empty(&mut client, name).await {
                Ok(true) => tracing::info!("dropped the schema of shard {name}"),
                Ok(false) => tracing::warn!("shard {name} is not empty; its schema is kept"),
                Err(error) => tracing::warn!("dropping shard {name}: {error}"),
            }
        }
    }
}

/// Records that job `id` failed with `why`: in the catalog while this
/// bridge is the job's runner, and in memory. A job another bridge has
/// taken over is left to it, as it is in the catalog.
pub(super) async fn fail(state: &Service, id: u64, why: &str) {
    let runner = state.coordination().name();
    if let Ok(client) = state.cluster().primary().pool.get().await {
        match store::fail(&client, id, why, runner).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!("job {id} runs on another bridge now: not marked failed ({why})");
                return;
            }
            Err(error) => tracing::error!(
                "recording that job {id} failed: {}",
                crate::db::describe(&error)
            ),
        }
    }
    let why = why.to_string();
    state.rebalancer().update(id, |memory| {
        memory.state = JobState::Failed;
        memory.error = Some(why);
    });
}

/// Rows in a shard that is not their owner under `owner`, by (from, to),
/// sorted by user_id.
fn misplaced(keys: &Keys, owner: &Router) -> Moves {
    let mut moves = Moves::new();
    for (shard, ids) in keys {
        for user_id in ids {
            let to = &owner.locate_shard(user_id.as_bytes()).name;
            if to != shard {
                moves
                    .entry((shard.clone(), to.clone()))
                    .or_default()
                    .push(user_id.clone());
            }
        }
    }
    for ids in moves.values_mut() {
        ids.sort_unstable();
    }
    moves
}

/// The routers of a job's two layouts, placed over the clusters (so the
/// plan names each shard's cluster), built off the async workers.
struct Routers {
    /// Where rows were (`from`).
    old: Router,
    /// Where rows go (`to`).
    new: Router,
}

async fn routers(
    from: &Layout,
    to: &Layout,
    clusters: Vec<String>,
) -> Result<Arc<Routers>, StepError> {
    let (from, to) = (from.clone(), to.clone());
    let built = off_workers(move || {
        let clusters: Vec<&str> = clusters.iter().map(String::as_str).collect();
        let clusters = &clusters[..];
        Ok::<_, ecoshard_core::Error>(Routers {
            old: router(&from.placed(clusters)?)?,
            new: router(&to.placed(clusters)?)?,
        })
    })
    .await
    .map_err(StepError::Fatal)?
    .map_err(|error| StepError::Fatal(error.to_string()))?;
    Ok(Arc::new(built))
}

/// The misplaced rows of `keys` and, when `with_plan`, the core's plan over
/// them, worked out off the async workers (the key lists move there).
async fn sort_out(
    routers: &Arc<Routers>,
    keys: Keys,
    with_plan: bool,
) -> Result<(Moves, Option<PlanSummary>), StepError> {
    let routers = Arc::clone(routers);
    off_workers(move || {
        let moves = misplaced(&keys, &routers.new);
        let plan = with_plan.then(|| plan_summary(&routers.old, &routers.new, &keys));
        (moves, plan)
    })
    .await
    .map_err(StepError::Fatal)
}

/// The core's plan from `old` to `new` over the scanned rows that are where
/// `old` puts them: rows written under `new` since the routing changed are
/// in place already and not part of the change.
pub(super) fn plan_summary(old: &Router, new: &Router, keys: &Keys) -> PlanSummary {
    let in_old_place = keys.iter().flat_map(|(shard, ids)| {
        ids.iter()
            .filter(move |user_id| old.locate_shard(user_id.as_bytes()).name == *shard)
            .map(|user_id| user_id.as_bytes())
    });
    ecoshard_core::plan(old, new, in_old_place).summary()
}

/// The router that places single keys as the bridge does: a bounded-load
/// layout (stored before the bridge refused them) routes by its ring.
pub(super) fn router(layout: &Layout) -> Result<Router, ecoshard_core::Error> {
    if layout.strategy == StrategyKind::BoundedLoad {
        layout.clone().with_strategy(StrategyKind::Ring).build()
    } else {
        layout.build()
    }
}

/// Both layouts of a job just begun, built off the async workers.
async fn build_both(pending: &Pending) -> Result<(BuiltLayout, BuiltLayout), String> {
    let (to, from) = (pending.to.clone(), pending.from.clone());
    off_workers(move || Ok((BuiltLayout::new(&to)?, BuiltLayout::new(&from)?)))
        .await?
        .map_err(|error: ecoshard_core::Error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misplaced_rows_are_grouped_by_shard_pair_and_sorted() {
        let owner = Layout::with_count(StrategyKind::Modulo, 4)
            .unwrap()
            .build()
            .unwrap();
        let mut keys = Keys::new();
        for shard in ["s0", "s1", "s2"] {
            keys.insert(shard.to_string(), Vec::new());
        }
        let old = Layout::with_count(StrategyKind::Modulo, 3)
            .unwrap()
            .build()
            .unwrap();
        for index in (0..300).rev() {
            let key = format!("user_{index}");
            let shard = old.locate_shard(key.as_bytes()).name.clone();
            keys.get_mut(&shard).unwrap().push(key);
        }
        let moves = misplaced(&keys, &owner);
        let plan = ecoshard_core::plan_numbered(&old, &owner, "user_", 300);
        let count: usize = moves.values().map(Vec::len).sum();
        assert_eq!(count as u64, plan.moved);
        for ((from, to), ids) in &moves {
            assert_ne!(from, to);
            assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "{ids:?}");
            for id in ids {
                assert_eq!(&owner.locate_shard(id.as_bytes()).name, to);
            }
        }
    }
}
