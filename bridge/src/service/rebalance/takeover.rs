//! Which bridge runs a job, and another taking it over when that one dies.
//! The runner holds a session-level advisory lock for the job
//! (`db::bridges::try_job_lock`) on a catalog session of its own, from
//! before it moves anything to the job's end; PostgreSQL lets it go when
//! the session ends, however the bridge ends. Every bridge that does not
//! run the job looks at each heartbeat round whether its runner's lease
//! has lapsed (by the catalog's clock) and, if so, tries the lock: only
//! one session can get it, and whoever does records itself as the runner
//! and resumes the job exactly as start-up resumes it. The lease says when
//! to try; the lock decides: a runner that is merely slow or paused keeps
//! its session, its lock and the job.
//!
//! A runner whose session ended has lost the lock, so another bridge may
//! run the job: it stops before its next step (`still_runs`), and its
//! batches, which count in the job only while the job names it as runner,
//! roll back from the moment another takes the job (`take_job`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedMutexGuard, oneshot};

use super::{Pending, StepError, in_force, mover, shard_move, startup};
use crate::db::bridges as sql;
use crate::routing::wait_unshared;
use crate::service::Service;
use crate::service::coordination::LEASE;

/// Longest taking a job's lock may take (connecting included).
const LOCK_DEADLINE: Duration = Duration::from_secs(2);
/// Longest the catalog may take to answer a look at the running job.
const LOOK_DEADLINE: Duration = Duration::from_secs(1);
/// Longest the reload of a job taken over may take: it runs in the
/// background (no heartbeat or request waits for it), and just after a
/// failover of the catalog's primary it meets a cold server.
const RELOAD_DEADLINE: Duration = Duration::from_secs(30);
/// Longest a taken-over job's routing waits for requests under the old one.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);
/// Between two log lines saying that a lapsed runner still holds its lock.
const SAY_EVERY: Duration = Duration::from_secs(10);

/// A job's lock, held by a catalog session of this bridge.
pub(crate) struct JobLock {
    job: u64,
    /// Dropped, the session ends and the lock is let go.
    _client: tokio_postgres::Client,
    session: tokio::task::JoinHandle<()>,
}

impl JobLock {
    /// Whether the session holding the lock still runs.
    fn held(&self) -> bool {
        !self.session.is_finished()
    }
}

impl std::fmt::Debug for JobLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobLock")
            .field("job", &self.job)
            .field("held", &self.held())
            .finish()
    }
}

/// This bridge's side of running jobs: the lock of the job it runs, and
/// its looks at jobs it might take over.
#[derive(Debug, Default)]
pub(crate) struct Runs {
    lock: Mutex<Option<Arc<JobLock>>>,
    /// A look is under way (one at a time).
    looking: AtomicBool,
    /// The job whose held lock was last reported, and when.
    said: Mutex<Option<(u64, Instant)>>,
}

impl Runs {
    /// Whether this bridge holds job `id`'s lock now.
    pub(crate) fn holds(&self, id: u64) -> bool {
        lock(&self.lock)
            .as_ref()
            .is_some_and(|held| held.job == id && held.held())
    }
}

/// The value behind `mutex`, even if a holder panicked.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `Ok` while this bridge holds job `id`'s lock; else the job's run stops
/// (the job stays running in the catalog, for whoever takes the lock).
pub(super) fn still_runs(service: &Service, id: u64) -> Result<(), StepError> {
    if service.rebalancer().runs.holds(id) {
        Ok(())
    } else {
        Err(StepError::Stopped(format!(
            "this bridge's catalog session holding job {id}'s lock has ended"
        )))
    }
}

/// Runs `pending` (holding `slot`) under its job's lock, taken first unless
/// given: a job whose lock another session holds is left to it, one whose
/// lock could not be asked for to this bridge's next heartbeat round.
pub(super) async fn run_locked(
    service: Service,
    pending: Pending,
    slot: OwnedMutexGuard<()>,
    planned: Option<oneshot::Sender<()>>,
    taken: Option<JobLock>,
) {
    let id = pending.job.id;
    let taken = match taken {
        Some(taken) => Ok(Some(taken)),
        None => take_lock(&service, id).await,
    };
    let held = match taken {
        Ok(Some(held)) => Arc::new(held),
        Ok(None) => {
            tracing::warn!("job {id}: another bridge's session holds its lock; not running it");
            return;
        }
        Err(why) => {
            tracing::warn!("job {id}: taking its lock: {why}; trying again at the next heartbeat");
            return;
        }
    };
    *lock(&service.rebalancer().runs.lock) = Some(Arc::clone(&held));
    if shard_move::placement_only(&pending.from.layout, &pending.to.layout).is_some() {
        shard_move::run(service.clone(), pending, slot).await;
    } else {
        mover::run(service.clone(), pending, slot, planned).await;
    }
    let mut current = lock(&service.rebalancer().runs.lock);
    if current.as_ref().is_some_and(|now| Arc::ptr_eq(now, &held)) {
        *current = None;
    }
}

/// Job `id`'s lock on a new catalog session; `None` when another session
/// holds it.
async fn take_lock(service: &Service, id: u64) -> Result<Option<JobLock>, String> {
    let config = service.cluster().primary().spec.config.clone();
    let taking = async {
        let (client, session) = sql::lock_session(&config).await?;
        let got = sql::try_job_lock(&client, id).await?;
        Ok::<_, tokio_postgres::Error>(got.then_some(JobLock {
            job: id,
            _client: client,
            session,
        }))
    };
    match tokio::time::timeout(LOCK_DEADLINE, taking).await {
        Ok(Ok(taken)) => Ok(taken),
        Ok(Err(error)) => Err(crate::db::describe(&error)),
        Err(_) => Err("the catalog did not answer in time".to_owned()),
    }
}

/// Whether the bridge `own` may try the lock of a running job recorded as
/// `runner`'s: its own (it does not run it now), one whose runner's lease
/// has lapsed, or one naming no runner.
fn may_try(own: &str, runner: Option<&str>, lapsed: bool) -> bool {
    lapsed || runner.is_none_or(|runner| runner == own)
}

/// At start-up: the job found unfinished is run here when this bridge may
/// try it and gets its lock; else it is followed, and looked at again at
/// each heartbeat round.
pub(crate) async fn resume(service: &Service, pending: Pending, slot: OwnedMutexGuard<()>) {
    let id = pending.job.id;
    match look(service).await {
        Ok(Some(job))
            if job.id == id && may_try(own(service), job.runner.as_deref(), job.lapsed) => {}
        Ok(Some(job)) if job.id == id => {
            tracing::info!(
                "job {id} runs on bridge {}: this bridge follows it",
                job.runner.as_deref().unwrap_or("?")
            );
            return;
        }
        Ok(_) => return,
        Err(why) => {
            tracing::warn!("job {id}: {why}; looking again at the next heartbeat");
            return;
        }
    }
    let taken = match take_lock(service, id).await {
        Ok(Some(taken)) => taken,
        Ok(None) => return say_held(service, id, None),
        Err(why) => {
            tracing::warn!("job {id}: taking its lock: {why}; trying again at the next heartbeat");
            return;
        }
    };
    if let Err(why) = record(service, id).await {
        tracing::warn!("job {id}: recording this bridge as its runner: {why}");
        return;
    }
    tracing::info!("resuming rebalance job {id} under its lock");
    run_taken(service, pending, slot, taken);
}

/// Runs `pending` in the background under its lock, `taken` already.
fn run_taken(service: &Service, pending: Pending, slot: OwnedMutexGuard<()>, taken: JobLock) {
    tokio::spawn(run_locked(
        service.clone(),
        pending,
        slot,
        None,
        Some(taken),
    ));
}

/// This bridge's name.
fn own(service: &Service) -> &str {
    service.coordination().name()
}

/// The job running now, read from the catalog within [`LOOK_DEADLINE`].
async fn look(service: &Service) -> Result<Option<sql::RunningJob>, String> {
    let deadline = tokio::time::Instant::now() + LOOK_DEADLINE;
    let client = service
        .cluster()
        .primary_client(deadline)
        .await
        .map_err(|error| error.to_string())?;
    match tokio::time::timeout_at(deadline, sql::running_job(&client, LEASE)).await {
        Ok(Ok(job)) => Ok(job),
        Ok(Err(error)) => Err(crate::db::describe(&error)),
        Err(_) => {
            crate::cluster::discard(client);
            Err("the catalog did not answer in time".to_owned())
        }
    }
}

/// Records this bridge as job `id`'s runner (it holds the lock).
async fn record(service: &Service, id: u64) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + LOOK_DEADLINE;
    let client = service
        .cluster()
        .primary_client(deadline)
        .await
        .map_err(|error| error.to_string())?;
    match tokio::time::timeout_at(deadline, sql::take_job(&client, id, own(service))).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(crate::db::describe(&error)),
        Err(_) => {
            crate::cluster::discard(client);
            Err("the catalog did not answer in time".to_owned())
        }
    }
}

/// Says (at most every [`SAY_EVERY`] per job) that job `id`'s runner
/// `runner` lapsed but its session still holds the lock.
fn say_held(service: &Service, id: u64, runner: Option<&str>) {
    let mut said = lock(&service.rebalancer().runs.said);
    if said.is_some_and(|(job, at)| job == id && at.elapsed() < SAY_EVERY) {
        return;
    }
    *said = Some((id, Instant::now()));
    tracing::info!(
        "job {id}: its runner {}'s lease has lapsed but its session still holds the job's \
         lock: not taking it over",
        runner.unwrap_or("?")
    );
}

/// After each heartbeat round (one that failed too: a bridge following a
/// placement change is fenced, and its rounds fail, until the job ends):
/// when a job runs whose runner's lease has
/// lapsed (or that is this bridge's and not run here), tries its lock and,
/// with it, takes the job over. One look at a time, in the background.
pub(crate) fn consider(service: &Service) {
    let runs = &service.rebalancer().runs;
    if runs.looking.swap(true, Ordering::AcqRel) {
        return;
    }
    let service = service.clone();
    tokio::spawn(async move {
        if let Err(why) = try_take_over(&service).await {
            tracing::warn!("looking at the running job: {why}");
        }
        service
            .rebalancer()
            .runs
            .looking
            .store(false, Ordering::Release);
    });
}

/// One look: the job taken over when this bridge may try it, runs no job,
/// and gets its lock.
async fn try_take_over(service: &Service) -> Result<(), String> {
    // A look the catalog did not answer is logged (by `consider`), not
    // passed over in silence: a bridge that never tries a lapsed runner's
    // lock says why.
    let Some(job) = look(service).await? else {
        return Ok(());
    };
    if !may_try(own(service), job.runner.as_deref(), job.lapsed) {
        return Ok(());
    }
    // Held: this bridge runs a job (maybe this one) or generates a data set.
    let Some(slot) = service.rebalancer().try_hold() else {
        return Ok(());
    };
    let Some(taken) = take_lock(service, job.id).await? else {
        say_held(service, job.id, job.runner.as_deref());
        return Ok(());
    };
    record(service, job.id).await?;
    tracing::info!(
        "job {}: its runner {} {}; this bridge takes it over",
        job.id,
        job.runner.as_deref().unwrap_or("?"),
        if job.lapsed {
            "lapsed and its session ended"
        } else {
            "is this bridge"
        }
    );
    let Some(pending) = reload(service, job.id).await? else {
        return Ok(());
    };
    run_taken(service, pending, slot, taken);
    Ok(())
}

/// Job `id` as start-up finds it in the catalog, its routing swapped in:
/// `None` when it is no longer the unfinished job.
async fn reload(service: &Service, id: u64) -> Result<Option<Pending>, String> {
    let deadline = tokio::time::Instant::now() + RELOAD_DEADLINE;
    let mut client = service
        .cluster()
        .primary_client(deadline)
        .await
        .map_err(|error| error.to_string())?;
    let found = match tokio::time::timeout_at(deadline, read_job(service, &mut client)).await {
        Ok(found) => found?,
        Err(_) => {
            // It may still wait for the schema lock: not for the next user.
            crate::cluster::discard(client);
            return Err("the catalog did not answer the job's reload in time".to_owned());
        }
    };
    drop(client);
    let Some(pending) = found.pending.filter(|pending| pending.job.id == id) else {
        return Ok(None);
    };
    if let Some(job) = found.last_job {
        service.rebalancer().set_job(job);
    }
    let old = service.routing().swap(found.table).await;
    if !wait_unshared(old, DRAIN_LIMIT).await {
        tracing::warn!("requests under the old routing still run after {DRAIN_LIMIT:?}");
    }
    Ok(Some(pending))
}

/// The layout in force and the unfinished job, read as start-up reads them.
async fn read_job(
    service: &Service,
    client: &mut deadpool_postgres::Client,
) -> Result<super::Startup, String> {
    let stored = crate::db::schema::active_layout(&*client)
        .await
        .map_err(|error| error.to_string())?
        .ok_or("the catalog holds no layout in force")?;
    let clusters = service.clusters().name_refs();
    let layout = in_force(&stored.layout, &clusters).map_err(|error| error.to_string())?;
    let active = ecoshard_core::wire::LayoutView { layout, ..stored };
    startup(client, &active)
        .await
        .map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::may_try;

    #[test]
    fn a_bridge_tries_a_running_jobs_lock_only_when_its_runner_lapsed_or_is_itself() {
        let check = |runner: Option<&str>, lapsed: bool, expected: bool| {
            assert_eq!(
                may_try("b", runner, lapsed),
                expected,
                "{runner:?} {lapsed}"
            );
        };
        check(Some("a"), false, false);
        check(Some("a"), true, true);
        check(Some("b"), false, true);
        check(Some("b"), true, true);
        check(None, false, true);
    }
}
