//! A failover of a shard move's source or target cluster: before the
//! cutover's decision the move starts over from setting up against the
//! primaries now (PostgreSQL 15 carries no logical slot to a promoted
//! standby, the subscription names the old source primary, and a promoted
//! target's copy of the subscription may be behind its slot); after it,
//! the routing is made sure to send the shard to the target and the move
//! goes on. ARCHITECTURE.md says why each case is safe.

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
/// subscription names the old primary). Setting up not yet done holds.
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
    drop(on_target);
    let on_source = primary(source).await?;
    Ok(sql::confirmed_flush(&on_source, name).await?.is_some())
}

/// A retry when [`setup_stands`] no longer: a copy or a catch-up would
/// wait for ever on a subscription whose source primary is gone.
pub(super) async fn moved_on(
    source: &Cluster,
    target: &Cluster,
    name: &str,
) -> Result<(), StepError> {
    if setup_stands(source, target, name, MovePhase::Copying).await? {
        return Ok(());
    }
    Err(StepError::Retry(format!(
        "the primary of {} or {} changed under the subscription {name}",
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
        "rebalance job {}: the primary of {} or {} changed while shard {shard} was being \
         copied: its move starts over from setting up",
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
