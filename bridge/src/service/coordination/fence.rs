//! A shard move's write fence held by every bridge, through the catalog
//! (`db/fence.rs`): the mover raises it on the move's row, and every other
//! bridge, told by NOTIFY or its heartbeat's poll, fences the shard in its
//! own routing (no write of it runs, none starts) and records the fence in
//! its row; the mover takes the source's position only once every live
//! bridge has, or its lease has lapsed (it is self-fenced: ARCHITECTURE.md,
//! "Several bridges"). After the decision each bridge routes the shard to
//! its target, then lets its fence go and records the cutover; the mover
//! checks and drops the source only once every live bridge has.

use std::time::{Duration, Instant};

use ecoshard_core::wire::MovePhase;

use super::{LEASE, catalog, lock};
use crate::db::fence::{self as sql, Ack};
use crate::db::logical::StoredMove;
use crate::service::Service;

/// Between two looks at the other bridges while the mover waits for them.
const POLL: Duration = Duration::from_millis(5);
/// Longest one look may take.
const LOOK_DEADLINE: Duration = Duration::from_secs(1);

/// What this bridge holds, as its heartbeat records it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Held {
    /// The shard fenced in this bridge's routing, and the fence's number.
    pub(crate) fence: Option<(String, u64)>,
    /// The fence of the latest decided cutover this bridge routes by.
    pub(crate) cut_over: Option<u64>,
}

impl Held {
    /// The fence the catalog holds up and the latest cutover it decided,
    /// for a placement change with its stored `moves`: what a bridge
    /// following it must hold. A fence counts only while the job is
    /// `running` (a job that failed is not in a cutover; its resumption
    /// lifts what it left).
    pub(crate) fn of(running: bool, moves: &[StoredMove]) -> Held {
        let decided = |phase| {
            matches!(
                phase,
                MovePhase::Verifying | MovePhase::Cleanup | MovePhase::Done
            )
        };
        let fence = moves
            .iter()
            .filter(|stored| running && !decided(stored.phase))
            .find_map(|stored| Some((stored.shard.clone(), stored.fence?)));
        let cut_over = moves
            .iter()
            .filter(|stored| decided(stored.phase))
            .filter_map(|stored| stored.fence)
            .max();
        Held { fence, cut_over }
    }
}

/// What this bridge's heartbeat records of the fences: the one it holds
/// and the latest cutover it routes by.
pub(super) fn recorded(service: &Service) -> (Option<u64>, Option<u64>) {
    let held = lock(&service.coordination().fence);
    (held.fence.as_ref().map(|(_, fence)| *fence), held.cut_over)
}

/// A follower, once its routing is the catalog's (a decided shard goes
/// to its target): holds `wanted` (raised in its routing before it is
/// recorded, so the record never claims more than holds) and lets any
/// other fence go. Whether that changed anything.
pub(super) async fn hold(service: &Service, wanted: Option<(String, u64)>) -> bool {
    let held = lock(&service.coordination().fence).fence.clone();
    if held == wanted {
        return false;
    }
    let routing = service.routing();
    match &wanted {
        Some((shard, _)) => routing.fence(shard).await,
        None => routing.lift_fence(),
    }
    lock(&service.coordination().fence).fence = wanted;
    true
}

/// A bridge that starts running a job (resumed, or taken over from
/// another) lets go of the fence it held as a follower: from here its
/// routing and fences are the job's.
pub(crate) async fn let_go(service: &Service) {
    hold(service, None).await;
}

/// A follower, once no request runs under a routing that sends a shard
/// decided by `cut_over` to its source: records it. Whether it was new.
pub(super) fn cut_over(service: &Service, cut_over: Option<u64>) -> bool {
    let mut held = lock(&service.coordination().fence);
    let changed = held.cut_over != cut_over;
    held.cut_over = cut_over;
    changed
}

/// The mover: waits until every live bridge but this one shows `ack` of
/// fence `fence` in its row, or has let its lease lapse, until `until`
/// (for ever when `None`, saying so every 5 s); the bridges still lagging
/// past it.
pub(crate) async fn wait_acknowledged(
    service: &Service,
    job: u64,
    fence: u64,
    ack: Ack,
    until: Option<Instant>,
) -> Result<(), Vec<String>> {
    let (started, mut said) = (Instant::now(), Instant::now());
    loop {
        let lagging = match lagging(service, fence, ack).await {
            Ok(lagging) if lagging.is_empty() => break,
            Ok(lagging) => lagging,
            Err(why) => vec![format!("(the catalog: {why})")],
        };
        if until.is_some_and(|until| Instant::now() >= until) {
            return Err(lagging);
        }
        if said.elapsed() > Duration::from_secs(5) {
            tracing::warn!(
                "job {job}: waiting for bridges {lagging:?} to show fence {fence} {ack:?}"
            );
            said = Instant::now();
        }
        tokio::time::sleep(POLL).await;
    }
    tracing::debug!(
        "job {job}: every live bridge shows fence {fence} {ack:?} after {:?}",
        started.elapsed()
    );
    Ok(())
}

/// The live bridges but this one not showing `ack` of `fence`.
async fn lagging(service: &Service, fence: u64, ack: Ack) -> Result<Vec<String>, String> {
    let client = catalog(service).await?;
    let name = service.coordination().name();
    let asked = sql::lagging(&client, name, LEASE, fence, ack);
    match tokio::time::timeout(LOOK_DEADLINE, asked).await {
        Ok(Ok(lagging)) => Ok(lagging),
        Ok(Err(error)) => Err(crate::db::describe(&error)),
        Err(_) => {
            crate::cluster::discard(client);
            Err("the catalog did not answer within the deadline".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(shard: &str, phase: MovePhase, fence: Option<u64>) -> StoredMove {
        StoredMove {
            shard: shard.to_owned(),
            position: 0,
            source: "c1".to_owned(),
            target: "c2".to_owned(),
            phase,
            rows_total: None,
            bytes_total: None,
            write_pause_ms: None,
            fence,
        }
    }

    /// The fence held (shard, number) and the latest cutover routed by.
    type Expected<'s> = (Option<(&'s str, u64)>, Option<u64>);

    #[test]
    fn a_follower_holds_the_raised_fence_of_a_running_job_and_routes_by_the_decided_ones() {
        let check = |running: bool, moves: &[StoredMove], expected: Expected<'_>| {
            let held = Held::of(running, moves);
            let fence = held
                .fence
                .as_ref()
                .map(|(shard, fence)| (shard.as_str(), *fence));
            assert_eq!((fence, held.cut_over), expected, "{running} {moves:?}");
        };
        let s0 = |phase, fence| stored("s0", phase, fence);
        let s1 = |phase, fence| stored("s1", phase, fence);
        check(true, &[s0(MovePhase::Copying, None)], (None, None));
        check(true, &[s0(MovePhase::Cutover, None)], (None, None));
        check(
            true,
            &[s0(MovePhase::Cutover, Some(7))],
            (Some(("s0", 7)), None),
        );
        check(false, &[s0(MovePhase::Cutover, Some(7))], (None, None));
        check(true, &[s0(MovePhase::Verifying, Some(7))], (None, Some(7)));
        check(
            true,
            &[
                s0(MovePhase::Done, Some(7)),
                s1(MovePhase::Cutover, Some(9)),
            ],
            (Some(("s1", 9)), Some(7)),
        );
        check(
            true,
            &[
                s0(MovePhase::Done, Some(7)),
                s1(MovePhase::Cleanup, Some(9)),
            ],
            (None, Some(9)),
        );
        check(false, &[s0(MovePhase::Done, None)], (None, None));
    }
}
