//! Failover in the bridge: watching the primary's health checks, promoting a
//! standby (through the cluster's node control) when the primary's server is
//! gone (`--auto-failover`), following a promotion another process using the
//! cluster made (`cluster.json`), and saying why a write or a strong read is
//! refused meanwhile, or why its outcome is unknown. Writes are bounded in
//! time: none waits on a dead or silent primary for more than
//! [`WRITE_TIMEOUT`] (reads: [`crate::cluster::Cluster::read_timeout`]).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use ecoshard_core::wire::{Consistency, FailoverEvent, FailoverView};

use super::{Error, PrimaryDown, Service};
use crate::cluster::{Cluster, Control};

/// Health checks of the primary failed in a row before a failover is
/// considered (checks every 250 ms). Two are enough: a failover also needs
/// the primary's server to be gone, which a slow primary is not.
pub(crate) const FAILOVER_AFTER_CHECKS: u32 = 2;
pub(crate) use crate::cluster::WRITE_TIMEOUT;
/// Wait after a failover that did not happen before trying again.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Node actions and failovers of one bridge.
#[derive(Debug)]
pub(crate) struct Failover {
    control: Option<Control>,
    auto: bool,
    /// One node action or failover at a time.
    operations: tokio::sync::Mutex<()>,
    in_progress: AtomicBool,
    down_checks: AtomicU32,
    down_since: Mutex<Option<Instant>>,
    retry_at: Mutex<Option<Instant>>,
    last: RwLock<Option<FailoverEvent>>,
    /// Failovers made or followed (another process promoted) since the
    /// bridge started: the primary changes it went through.
    pub(crate) done: AtomicU64,
}

impl Failover {
    /// `control`: the node control of the cluster, if the bridge has one
    /// (node actions and failover need it). `auto`: promote a standby when
    /// the primary is gone.
    pub(crate) fn new(control: Option<Control>, auto: bool) -> Self {
        if auto && control.is_none() {
            tracing::warn!("automatic failover needs the local cluster; it is off");
        }
        Failover {
            auto: auto && control.is_some(),
            control,
            operations: tokio::sync::Mutex::new(()),
            in_progress: AtomicBool::new(false),
            down_checks: AtomicU32::new(0),
            down_since: Mutex::new(None),
            retry_at: Mutex::new(None),
            last: RwLock::new(None),
            done: AtomicU64::new(0),
        }
    }

    /// The node control, when the bridge runs the cluster's servers.
    pub(crate) fn control(&self) -> Option<&Control> {
        self.control.as_ref()
    }

    /// Whether commits wait for a synchronous standby.
    pub(crate) fn sync_replication(&self) -> bool {
        self.control
            .as_ref()
            .is_some_and(|control| control.sync_replication())
    }

    /// Whether a standby is promoted automatically.
    pub(crate) fn is_auto(&self) -> bool {
        self.auto
    }

    /// Whether a failover runs now.
    pub(crate) fn in_progress(&self) -> bool {
        self.in_progress.load(Ordering::SeqCst)
    }

    /// Waits for the other node actions and failovers to finish; hold the
    /// guard while stopping or starting a node.
    pub(crate) async fn lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.operations.lock().await
    }

    /// A failover made: the last one, and one more done.
    fn record(&self, event: FailoverEvent) {
        if let Ok(mut last) = self.last.write() {
            *last = Some(event);
        }
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    /// Settings and the last failover, for `GET /api/cluster`.
    pub(crate) fn view(&self) -> FailoverView {
        FailoverView {
            auto: self.auto,
            sync_replication: self.sync_replication(),
            in_progress: self.in_progress(),
            last: self.last.read().ok().and_then(|last| last.clone()),
        }
    }
}

/// Called after every round of health checks: for every cluster, counts
/// its primary's failed checks and, with automatic failover, starts one
/// when they add up. Each cluster fails over on its own.
pub(crate) fn after_check(state: &Service) {
    for index in 0..state.clusters().all().len() {
        after_check_of(state, index);
    }
}

/// [`after_check`] for the `index`-th cluster.
fn after_check_of(state: &Service, index: usize) {
    let failover = state.failover_of(index);
    let cluster = &state.clusters().all()[index];
    if let Some(promoted) = cluster.other_primary()
        && failover.control.is_some()
        && !failover.in_progress.swap(true, Ordering::SeqCst)
    {
        let promoted = promoted.name().to_string();
        let state = state.clone();
        tokio::spawn(async move {
            follow(&state, index, &promoted).await;
            let failover = state.failover_of(index);
            failover.in_progress.store(false, Ordering::SeqCst);
        });
        return;
    }
    if cluster.primary().is_up() {
        failover.down_checks.store(0, Ordering::SeqCst);
        set(&failover.down_since, None);
        return;
    }
    let checks = failover.down_checks.fetch_add(1, Ordering::SeqCst) + 1;
    if checks == 1 {
        set(&failover.down_since, Some(Instant::now()));
    }
    if !failover.auto || checks < FAILOVER_AFTER_CHECKS {
        return;
    }
    if get(&failover.retry_at).is_some_and(|at| Instant::now() < at) {
        return;
    }
    if failover.in_progress.swap(true, Ordering::SeqCst) {
        return;
    }
    let down_since = get(&failover.down_since).unwrap_or_else(Instant::now);
    let state = state.clone();
    tokio::spawn(async move {
        run(&state, index, down_since).await;
        state
            .failover_of(index)
            .in_progress
            .store(false, Ordering::SeqCst);
    });
}

/// One failover: only when the primary's server is really gone (a primary
/// that runs but is slow to answer is left alone: promoting beside it would
/// make two primaries), then [`crate::cluster::NodeControl::fail_over`],
/// then writes go to the new primary.
async fn run(state: &Service, index: usize, down_since: Instant) {
    let failover = state.failover_of(index);
    let cluster = &state.clusters().all()[index];
    let Some(local) = failover.control.clone() else {
        return;
    };
    let _operation = failover.lock().await;
    let old = cluster.primary().name().to_string();
    let of = of_cluster(state, cluster);
    let running = {
        let local = Arc::clone(&local);
        let old = old.clone();
        tokio::task::spawn_blocking(move || local.is_running(&old)).await
    };
    match running {
        Ok(Ok(false)) => {}
        Ok(Ok(true)) => {
            tracing::warn!(
                "the primary{of} ({old}) does not answer but its server runs: not failing over"
            );
            set(&failover.retry_at, Some(Instant::now() + RETRY_AFTER));
            return;
        }
        Ok(Err(error)) => {
            tracing::error!("failover{of}: checking {old}: {error}");
            set(&failover.retry_at, Some(Instant::now() + RETRY_AFTER));
            return;
        }
        Err(error) => {
            tracing::error!("failover: {error}");
            return;
        }
    }
    let decided = Instant::now();
    tracing::warn!("the primary{of} ({old}) is gone: promoting the most advanced standby");
    let promoting = Arc::clone(&local);
    let outcome = tokio::task::spawn_blocking(move || promoting.fail_over()).await;
    match outcome {
        Ok(Ok(promotion)) => {
            cluster.set_primary(&promotion.to);
            // Not awaited: writes already go to the new primary; the
            // checkpoint only spares the standbys a rewind at their next start.
            tokio::task::spawn_blocking(move || {
                if let Err(error) = local.checkpoint() {
                    tracing::warn!("checkpoint after the failover: {error}");
                }
            });
            let event = FailoverEvent {
                from: promotion.from,
                to: promotion.to,
                at_ms: super::ticks::now_ms(),
                detect_ms: millis(decided.duration_since(down_since)),
                promote_ms: millis(promotion.promote_time),
                total_ms: millis(down_since.elapsed()),
                repointed: promotion.repointed,
            };
            tracing::warn!(
                "failover{of}: {} is the primary in place of {} (pg_promote {:.0} ms, {:.0} ms since the first failed check); {} now stream from it",
                event.to,
                event.from,
                event.promote_ms,
                event.total_ms,
                if event.repointed.is_empty() {
                    "no standbys".to_string()
                } else {
                    event.repointed.join(", ")
                }
            );
            failover.record(event);
            super::twophase::recover_soon(state); // prepared parts may wait on it
            failover.down_checks.store(0, Ordering::SeqCst);
            set(&failover.down_since, None);
        }
        Ok(Err(error)) => {
            tracing::error!("failover{of} failed: {error}");
            set(&failover.retry_at, Some(Instant::now() + RETRY_AFTER));
        }
        Err(error) => tracing::error!("failover: {error}"),
    }
}

/// Follows a promotion another process using the cluster made (another
/// bridge's failover, `POST …/fail-over` on it): `promoted` answers as a
/// primary, and only when the cluster's record (`cluster.json`, written by
/// the promoting process once the server takes writes) names it too do
/// writes go to it — a node out of recovery that the record does not name is
/// never taken for the primary. With or without `--auto-failover`.
async fn follow(state: &Service, index: usize, promoted: &str) {
    let failover = state.failover_of(index);
    let cluster = &state.clusters().all()[index];
    let Some(local) = failover.control.clone() else {
        return;
    };
    let _operation = failover.lock().await;
    let old = cluster.primary().name().to_string();
    let recorded = tokio::task::spawn_blocking(move || local.recorded_primary()).await;
    if recorded.ok().flatten().as_deref() != Some(promoted) || old == promoted {
        return;
    }
    let down_since = get(&failover.down_since).unwrap_or_else(Instant::now);
    cluster.set_primary(promoted);
    let event = FailoverEvent {
        from: old,
        to: promoted.to_string(),
        at_ms: super::ticks::now_ms(),
        detect_ms: millis(down_since.elapsed()),
        promote_ms: 0.0,
        total_ms: millis(down_since.elapsed()),
        repointed: Vec::new(),
    };
    tracing::warn!(
        "failover{}: {} is the primary in place of {}, promoted by another process using the cluster",
        of_cluster(state, cluster),
        event.to,
        event.from
    );
    failover.record(event);
    super::twophase::recover_soon(state);
    failover.down_checks.store(0, Ordering::SeqCst);
    set(&failover.down_since, None);
}

/// Writes to `cluster` refused before they are tried: a failover of it is
/// running, or this bridge's registration may have lapsed (it is fenced;
/// when `cluster`'s primary is down too, or `cluster` holds the catalog —
/// whose primary then did not answer the heartbeats, before the monitor
/// may have seen it — the answer says the primary is unavailable, as it did
/// before there were several bridges).
pub(crate) fn write_refusal_on(state: &Service, cluster: &Cluster) -> Option<Error> {
    let failing_over = failover_of(state, cluster).in_progress();
    let fenced = super::coordination::write_refusal(state);
    let catalogs = cluster.name() == crate::cluster::DEFAULT_CLUSTER;
    if failing_over || (fenced.is_some() && (catalogs || !cluster.primary().is_up())) {
        return Some(primary_unavailable_on(state, cluster));
    }
    fenced
}

/// Writes are refused: the primary is not answering (or is being
/// replaced), and what happens next.
pub(crate) fn primary_unavailable(state: &Service) -> Error {
    primary_unavailable_on(state, state.cluster())
}

/// [`primary_unavailable`] for the primary of `cluster`.
pub(crate) fn primary_unavailable_on(state: &Service, cluster: &Cluster) -> Error {
    let failover = failover_of(state, cluster);
    Error::PrimaryUnavailable(PrimaryDown {
        primary: node_label(state, cluster, cluster.primary().name()),
        failing_over: failover.in_progress(),
        auto_failover: failover.is_auto(),
    })
}

/// The write was sent and may have committed (`timed_out`: no answer
/// within [`WRITE_TIMEOUT`]; else the session to the primary ended first).
/// `again` says what to send to repeat it safely.
pub(crate) fn write_outcome_unknown(state: &Service, timed_out: bool, again: &str) -> Error {
    Error::WriteOutcomeUnknown {
        timed_out,
        sync_replication: state.failover().sync_replication(),
        limit_secs: WRITE_TIMEOUT.as_secs(),
        again: again.to_owned(),
    }
}

/// A read the primary had to answer and did not within the read deadline;
/// `next` says what to do.
pub(crate) fn read_timed_out(state: &Service, next: &'static str) -> Error {
    read_timed_out_on(state, state.cluster(), next)
}

/// [`read_timed_out`] for the primary of `cluster`.
pub(crate) fn read_timed_out_on(state: &Service, cluster: &Cluster, next: &'static str) -> Error {
    Error::ReadTimedOut {
        primary: node_label(state, cluster, cluster.primary().name()),
        limit_ms: cluster.read_timeout.as_millis(),
        next,
    }
}

/// A read no node of `cluster` could serve, with what its consistency needed.
pub(crate) fn read_unavailable_on(
    state: &Service,
    cluster: &Cluster,
    consistency: Consistency,
    after_lsn: u64,
) -> Error {
    Error::ReadUnavailable {
        consistency,
        after_lsn,
        primary: node_label(state, cluster, cluster.primary().name()),
    }
}

/// The failover policy of `cluster`.
fn failover_of<'s>(state: &'s Service, cluster: &Cluster) -> &'s Failover {
    let index = state.clusters().position(cluster.name()).unwrap_or(0);
    state.failover_of(index)
}

/// A node's name in messages: `primary` with one cluster, and on the
/// default cluster; `c2/primary` on another.
pub(crate) fn node_label(state: &Service, cluster: &Cluster, node: &str) -> String {
    if state.clusters().several() && cluster.name() != crate::cluster::DEFAULT_CLUSTER {
        format!("{}/{node}", cluster.name())
    } else {
        node.to_owned()
    }
}

/// ` of c2` in messages when there are several clusters; else nothing.
fn of_cluster(state: &Service, cluster: &crate::cluster::Cluster) -> String {
    if state.clusters().several() {
        format!(" of {}", cluster.name())
    } else {
        String::new()
    }
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1_000.0
}

fn set<T>(slot: &Mutex<Option<T>>, value: Option<T>) {
    *slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = value;
}

fn get<T: Copy>(slot: &Mutex<Option<T>>) -> Option<T> {
    *slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
