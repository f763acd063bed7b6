//! A bridge that does not run the job routes as the one that does: the
//! layout in force alone; during a job moving keys both layouts for reads
//! and, for writes, the layout the job's bridge writes by (the old one
//! until every bridge reads under both, then the target); during a
//! placement change each shard on its target once its cutover is decided,
//! with the fence of a cutover under way held (`fence.rs`); exactly as the
//! mover's swaps do, reloaded from the catalog, never from memory.

use std::time::Duration;

use ecoshard_core::wire::{JobState, LayoutView};

use super::fence::Held;
use crate::db::jobs as store;
use crate::db::logical::{StoredMove, moves};
use crate::db::schema::{active_layout, target_layout};
use crate::routing::{RoutingTable, wait_unshared};
use crate::service::Service;
use crate::service::rebalance::{self, build_placement};

/// Longest the routing waits for requests under the table it replaced.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);
/// Longest the catalog may take to answer the reload.
const RELOAD_DEADLINE: Duration = Duration::from_secs(3);

/// What a reload did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Adopted {
    /// Nothing: this bridge holds the job's slot (a local apply or a
    /// generation), so the reload waits for the next round.
    Busy,
    /// The routing in force is the catalog's.
    Unchanged,
    /// The routing was swapped for the catalog's, or the fence it holds
    /// changed.
    Swapped,
}

/// What the catalog holds: the layout in force, and the job with its target.
struct Catalog {
    active: LayoutView,
    target: Option<LayoutView>,
    unfinished: Option<store::StoredJob>,
    latest: Option<store::StoredJob>,
    /// The unfinished job's shard moves (a placement change's).
    moves: Vec<StoredMove>,
    /// The layout version the unfinished job's bridge writes by.
    runner_version: Option<u64>,
    c1_lsn: u64,
}

/// Reloads the layout and job from the catalog and swaps the routing when
/// it differs from the one in force (waiting for the requests under the
/// old one), then holds the fence of a placement change's cutover under
/// way (lets it go once decided). Nothing while this bridge runs a job or
/// generates a data set (its routing is the job's; a generation holds
/// back another bridge's job, which waits for this one to follow).
pub(super) async fn adopt(service: &Service) -> Result<Adopted, String> {
    // Held through the read and the swap: a job this bridge began meanwhile
    // would otherwise see its routing swapped back to what the catalog
    // said before it (and its job replaced by the older one).
    let Some(slot) = service.rebalancer().try_hold() else {
        return Ok(Adopted::Busy);
    };
    let catalog = tokio::time::timeout(RELOAD_DEADLINE, read(service))
        .await
        .map_err(|_| "the catalog did not answer the reload within 3 s".to_owned())??;
    let own = service.coordination().name();
    let running = catalog
        .unfinished
        .as_ref()
        .filter(|job| job.state == JobState::Running);
    if running.is_some_and(|job| job.runner.as_deref() == Some(own)) {
        return Ok(Adopted::Unchanged);
    }
    if let Some(job) = &catalog.latest {
        show_job(service, job);
    }
    let (current, previous, fence) = wanted(service, &catalog)?;
    let following = service.routing().table();
    let same = following.current.version == current.version
        && following.current.layout() == &current.layout
        && following.previous.as_ref().map(|old| old.version)
            == previous.as_ref().map(|view| view.version);
    // Not held past here: the swap waits until nobody holds the old table.
    drop(following);
    if same {
        let held = super::fence::hold(service, fence.fence).await;
        let cut_over = super::fence::cut_over(service, fence.cut_over);
        return Ok(if held || cut_over {
            Adopted::Swapped
        } else {
            Adopted::Unchanged
        });
    }
    let version = current.version;
    let table = RoutingTable {
        current: build_placement(&current).await?,
        previous: match &previous {
            Some(previous) => Some(build_placement(previous).await?),
            None => None,
        },
        min_replay_lsn: match &previous {
            // The job's first step may not have made the target's yet.
            Some(previous) => {
                let target = [previous, &current].into_iter().max_by_key(|v| v.version);
                let target = &target.unwrap_or(&current).layout;
                // Within a deadline: a runner paused inside its job's first
                // step holds the schema lock, and the heartbeats wait for
                // this round.
                let until = tokio::time::Instant::now() + RELOAD_DEADLINE;
                rebalance::create_shards(service, target, until)
                    .await
                    .map_err(|error| format!("creating the target's shards: {error}"))?
            }
            None => rebalance::replay_bounds_after_job(service, version, catalog.c1_lsn).await,
        },
    };
    tracing::info!(
        "following layout {version}{} from the catalog",
        previous
            .as_ref()
            .map(|old| format!(" (reads also under {})", old.version))
            .unwrap_or_default()
    );
    let old = service.routing().swap(table).await;
    // A decided shard's writes go to its target from here.
    super::fence::hold(service, fence.fence).await;
    drop(slot);
    if !wait_unshared(old, DRAIN_LIMIT).await {
        tracing::warn!("requests under the old routing still run after {DRAIN_LIMIT:?}");
    }
    super::fence::cut_over(service, fence.cut_over);
    Ok(Adopted::Swapped)
}

/// What the catalog says to route by: the layout writes go by, the one
/// reads also look under, and the fence to hold (a placement change's).
/// During a job moving keys, both layouts, writes by the one the job's
/// bridge writes by: the old one until every live bridge reads under both
/// (no bridge writes a row where another looks under the old layout
/// alone), then the target.
fn wanted(
    service: &Service,
    catalog: &Catalog,
) -> Result<(LayoutView, Option<LayoutView>, Held), String> {
    let clusters = service.clusters().name_refs();
    let in_force = |view: &LayoutView| -> Result<LayoutView, String> {
        let layout = rebalance::in_force(&view.layout, &clusters).map_err(|e| e.to_string())?;
        Ok(LayoutView {
            layout,
            ..view.clone()
        })
    };
    let active = in_force(&catalog.active)?;
    let moving = match (&catalog.target, &catalog.unfinished) {
        (Some(target), Some(job)) if job.state != JobState::Done => Some((in_force(target)?, job)),
        _ => None,
    };
    Ok(match moving {
        Some((target, job)) if rebalance::is_placement_change(&active.layout, &target.layout) => {
            let running = job.state == JobState::Running;
            let now = rebalance::placed_now(&active, &target, &catalog.moves);
            (now, None, Held::of(running, &catalog.moves))
        }
        Some((target, _)) if catalog.runner_version.is_some_and(|v| v < target.version) => {
            (active, Some(target), Held::default())
        }
        Some((target, _)) => (target, Some(active), Held::default()),
        None => (active, None, Held::default()),
    })
}

/// Shows the catalog's latest job, unless this bridge holds its own copy of
/// that job in the same state (the richer one: a shard move's phases and
/// progress are not stored) or a newer job: one this bridge began while
/// the catalog was read (a `PUT /api/layout` racing a reload answered 500
/// "the job vanished from memory" when the older job replaced it).
fn show_job(service: &Service, job: &store::StoredJob) {
    let job = job.view();
    let held = service.rebalancer().job();
    if held.is_none_or(|held| held.id < job.id || (held.id == job.id && held.state != job.state)) {
        service.rebalancer().set_job(job);
    }
}

/// The catalog's layouts and jobs, and `c1`'s WAL position after them.
async fn read(service: &Service) -> Result<Catalog, String> {
    let deadline = tokio::time::Instant::now() + RELOAD_DEADLINE;
    let client = service
        .cluster()
        .primary_client(deadline)
        .await
        .map_err(|error| error.to_string())?;
    let db = |error: tokio_postgres::Error| crate::db::describe(&error);
    let active = active_layout(&client)
        .await
        .map_err(|error| error.to_string())?
        .ok_or("the catalog holds no layout in force")?;
    let target = target_layout(&client)
        .await
        .map_err(|error| error.to_string())?;
    let unfinished = store::unfinished(&client).await.map_err(db)?;
    let latest = store::latest(&client).await.map_err(db)?;
    let moves = match &unfinished {
        Some(job) => moves(&client, job.id).await.map_err(db)?,
        None => Vec::new(),
    };
    let runner = unfinished.as_ref().and_then(|job| job.runner.as_deref());
    let runner_version = match runner {
        Some(name) => crate::db::bridges::version_of(&client, name)
            .await
            .map_err(db)?,
        None => None,
    };
    let lsn: tokio_postgres::types::PgLsn = client
        .query_one(crate::db::CURRENT_LSN, &[])
        .await
        .map_err(db)?
        .get(0);
    Ok(Catalog {
        active,
        target,
        unfinished,
        latest,
        moves,
        runner_version,
        c1_lsn: u64::from(lsn),
    })
}
