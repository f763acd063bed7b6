//! A failover of a shard move's source or target cluster: before the
//! cutover's decision the move starts over from setting up against the
//! primaries now (PostgreSQL 15 carries no logical slot to a promoted
//! standby, the subscription names the old source primary, and a promoted
//! target's copy of the subscription may be behind its slot); after it,
//! the routing is made sure to send the shard to the target and the move
//! goes on. ARCHITECTURE.md says why each case is safe. A table
//! synchronisation whose slot the source lost (seen after both primaries
//! were stopped just after the table's copy) starts the move over too.

use std::sync::Arc;

use ecoshard_core::wire::MovePhase;

use super::super::{StepError, build_placement};
use super::{Run, catalog, placed_now, primary};
use crate::cluster::Cluster;
use crate::db::logical as sql;
use crate::routing::RoutingTable;

/// Whether `phase` comes before the cutover's decision (the shard still
/// lives on its source).
pub(super) fn before_decision(phase: MovePhase) -> bool {
    matches!(
        phase,
        MovePhase::SettingUp | MovePhase::Copying | MovePhase::CatchingUp | MovePhase::Cutover
    )
}

/// Before the decision: whether what setting up made still holds after
/// any failover since — the subscription on the target's primary, stamped
/// with that primary's timeline (a promoted target standby carries the
/// subscription, but its progress may be behind the slot's), and the slot
/// on the source's primary (a promoted source standby has none, and the
/// subscription names the old primary) — and whether its table's
/// synchronisation can still end (see [`sync_slot_lost`]). Setting up not
/// yet done holds.
pub(super) async fn setup_stands(
    source: &Cluster,
    target: &Cluster,
    name: &str,
    phase: MovePhase,
) -> Result<bool, StepError> {
    let on_target = primary(target).await?;
    let stamp = match sql::subscription_stamp(&on_target, name).await? {
        None => return Ok(phase == MovePhase::SettingUp),
        Some(stamp) => stamp,
    };
    if stamp != Some(sql::timeline(&on_target).await?) {
        return Ok(false);
    }
    let needed = sql::sync_slots_needed(&on_target, name).await?;
    drop(on_target);
    let on_source = primary(source).await?;
    if sql::confirmed_flush(&on_source, name).await?.is_none() {
        return Ok(false);
    }
    drop(on_source);
    Ok(needed.is_empty() || !sync_slot_lost(source, target, name, &needed).await?)
}

/// Between two looks at a table synchronisation's missing slot.
const SYNC_SLOT_LOOK_AGAIN: std::time::Duration = std::time::Duration::from_secs(1);

/// Whether a table whose copy has finished waits for a synchronisation
/// slot the source no longer has: PostgreSQL's worker then fails for ever
/// ("replication slot … does not exist") and the copy never ends. Seen
/// once both primaries were stopped just after the table's copy (the
/// bridge that started them killed); the move starts over. Looked at twice
/// a second apart, the table's state read again: the worker itself drops
/// that slot a moment before it records the table as synchronised.
async fn sync_slot_lost(
    source: &Cluster,
    target: &Cluster,
    name: &str,
    needed: &[String],
) -> Result<bool, StepError> {
    let missing = sql::missing_slots(&primary(source).await?, needed).await?;
    if missing.is_empty() {
        return Ok(false);
    }
    tokio::time::sleep(SYNC_SLOT_LOOK_AGAIN).await;
    let needed = sql::sync_slots_needed(&primary(target).await?, name).await?;
    let still = sql::missing_slots(&primary(source).await?, &needed).await?;
    Ok(still.iter().any(|slot| missing.contains(slot)))
}

/// A retry when [`setup_stands`] no longer: a copy or a catch-up would
/// wait for ever on a subscription whose source primary is gone or whose
/// table synchronisation lost its slot.
pub(super) async fn moved_on(
    source: &Cluster,
    target: &Cluster,
    name: &str,
) -> Result<(), StepError> {
    if setup_stands(source, target, name, MovePhase::Copying).await? {
        return Ok(());
    }
    Err(StepError::Retry(format!(
        "the subscription {name} from {} to {} no longer stands (a primary changed, or a \
         table's synchronisation lost its slot)",
        source.name(),
        target.name()
    )))
}

/// Starts the shard's move over from setting up, after a failover of its
/// source or target before the decision (the shard still lives on the
/// source, which has every write): the subscription dropped (without its
/// slot when the source's primary is no longer the one it names), the
/// slot dropped if left, the target's table emptied, the phase stored.
pub(super) async fn start_over(
    run: &Run,
    source: &Cluster,
    target: &Cluster,
    name: &str,
    shard: &str,
) -> Result<MovePhase, StepError> {
    tracing::warn!(
        "rebalance job {}: what setting up made for shard {shard} no longer stands (the \
         primary of {} or {} changed, or a table's synchronisation lost its slot): its move \
         starts over from setting up",
        run.job,
        source.name(),
        target.name()
    );
    sql::drop_subscription(&primary(target).await?, name).await?;
    if !sql::drop_slot(&primary(source).await?, name).await? {
        return Err(StepError::Retry(format!(
            "the slot {name} on {} is still in use",
            source.name()
        )));
    }
    sql::empty_shard(&primary(target).await?, shard).await?;
    sql::set_phase(
        &catalog(run).await?,
        run.job,
        shard,
        MovePhase::SettingUp,
        None,
    )
    .await?;
    Ok(MovePhase::SettingUp)
}

/// After the decision: the routing swapped to the shard on `target`
/// unless it routes there already (a cutover whose decision committed
/// though its answer was lost, as when `c1`'s primary dies), answering
/// the table replaced, for the cleanup to wait on.
pub(super) async fn routed_to_target(
    run: &Run,
    shard: &str,
    target: &Cluster,
) -> Result<Option<Arc<RoutingTable>>, StepError> {
    let routing = run.service.routing();
    let table = routing.table();
    let position = table
        .current
        .layout()
        .shards
        .iter()
        .position(|s| s.name == shard);
    if position.is_some_and(|position| table.current.cluster_of(position) == target.name()) {
        return Ok(None);
    }
    drop(table);
    let stored = sql::moves(&catalog(run).await?, run.job).await?;
    let current = build_placement(&placed_now(&run.from, &run.to, &stored))
        .await
        .map_err(StepError::Fatal)?;
    Ok(Some(
        routing
            .swap(RoutingTable {
                current,
                previous: None,
                min_replay_lsn: Default::default(),
            })
            .await,
    ))
}
