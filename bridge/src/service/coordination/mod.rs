//! Several bridges over one catalog, coordinated through it: each bridge's
//! row and heartbeat (`db/bridges.rs`), the news of a layout or job change
//! (the catalog's NOTIFY on a connection of its own, and a poll with each
//! heartbeat as the fallback), the routing adopted on news (`follow.rs`),
//! a shard move's write fence held by every bridge (`fence.rs`), and the
//! self-fence: a bridge whose last heartbeat is too old refuses
//! writes until it has heartbeated again and reloaded the routing. A write
//! that finds the bridge fenced while the catalog's primary answers asks
//! for that heartbeat at once and waits for it (within its deadline), so
//! writes resume as soon as the catalog is back, not a round later.
//!
//! *Why no bridge writes by an old routing once others count it as dead:*
//! others count a bridge live while the catalog's `now() - heartbeat <
//! LEASE`. A heartbeat's `now()` is taken after this bridge sent it, so
//! from the moment it sent its last successful heartbeat at least `LEASE`
//! passes (on any clock running at the rate of the real one) before anyone
//! counts it as dead. It takes a write only until `LEASE - MARGIN` after
//! sending, measured on its own monotonic clock, and a write has
//! [`WRITE_TIMEOUT`] to finish, which `MARGIN` exceeds: every write it took
//! ended before anyone counts it as dead.

pub(crate) mod fence;
mod follow;

use follow::Adopted;

use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use ecoshard_core::wire::BridgeView;
use tokio::sync::Notify;

use super::failover::WRITE_TIMEOUT;
use super::{Error, Service};
use crate::db::bridges::{self as sql, Beat, BridgeRow, CatalogMark};

/// Between two heartbeats.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(1);
/// Longest one heartbeat may take.
const HEARTBEAT_DEADLINE: Duration = Duration::from_secs(1);
/// Others count a bridge live while its heartbeat is younger than this, by
/// the catalog's clock.
pub(crate) const LEASE: Duration = Duration::from_secs(10);
/// A bridge takes writes until `LEASE - MARGIN` after sending its last
/// successful heartbeat: a write's deadline and a second of clock slack.
const MARGIN: Duration = Duration::from_secs(WRITE_TIMEOUT.as_secs() + 1);
/// Between two looks at the other bridges while a job waits for them.
const WAIT_POLL: Duration = Duration::from_millis(50);
/// Longest a write waits for a fenced bridge's heartbeat.
const RENEW_WAIT: Duration = Duration::from_secs(2);
/// A heartbeat round taking longer is logged: it holds back the next one.
const SLOW_ROUND: Duration = Duration::from_secs(3);
/// Between two heartbeats asked for by a write, when one failed.
const RENEW_RETRY: Duration = Duration::from_millis(100);

/// Who this bridge is, for the others.
#[derive(Clone, Debug)]
pub struct Identity {
    /// Unique among the bridges of one catalog.
    pub name: String,
    /// Where it is reached.
    pub address: String,
}

/// This bridge's side of the coordination.
#[derive(Debug)]
pub(crate) struct Coordination {
    identity: Identity,
    /// Writes are taken until then (none before the first heartbeat).
    writable_until: Mutex<Option<Instant>>,
    /// The catalog's state the routing was last reloaded for.
    followed: Mutex<Option<CatalogMark>>,
    /// Told on each notification from the catalog, and by a write that
    /// wants a heartbeat now.
    news: Notify,
    /// Told after each heartbeat round, whatever it did.
    rounds: Notify,
    /// The bridges as last listed, and when.
    bridges: RwLock<(Vec<BridgeRow>, Option<Instant>)>,
    /// The shard move's fence this bridge holds as a follower, and the
    /// latest cutover it routes by (`fence.rs`).
    fence: Mutex<fence::Held>,
}

impl Coordination {
    pub(crate) fn new(identity: Identity) -> Self {
        Coordination {
            identity,
            writable_until: Mutex::new(None),
            followed: Mutex::new(None),
            news: Notify::new(),
            rounds: Notify::new(),
            bridges: RwLock::new((Vec::new(), None)),
            fence: Mutex::new(fence::Held::default()),
        }
    }

    /// This bridge's name.
    pub(crate) fn name(&self) -> &str {
        &self.identity.name
    }

    /// Whether this bridge may take a write now.
    fn writable(&self) -> bool {
        let until = *self
            .writable_until
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        until.is_some_and(|until| Instant::now() < until)
    }

    /// The bridges as last listed, their ages as of now; none when this
    /// one is alone (answers are then what they were before several).
    pub(crate) fn views(&self) -> Vec<BridgeView> {
        let guard = self.bridges.read().unwrap_or_else(|e| e.into_inner());
        let (rows, at) = &*guard;
        if rows.iter().all(|row| row.name == self.identity.name) {
            return Vec::new();
        }
        let since = at.map_or(0, |at| at.elapsed().as_millis() as u64);
        rows.iter()
            .map(|row| {
                let age = row.age_ms + since;
                BridgeView {
                    name: row.name.clone(),
                    address: row.address.clone(),
                    layout_version: row.version,
                    heartbeat_age_ms: age,
                    live: age < LEASE.as_millis() as u64,
                    runs_job: row.runs_job,
                    this: row.name == self.identity.name,
                }
            })
            .collect()
    }

    /// Whether no other bridge was in the catalog when last listed.
    fn alone(&self) -> bool {
        let guard = self.bridges.read().unwrap_or_else(|e| e.into_inner());
        guard.0.iter().all(|row| row.name == self.identity.name)
    }
}

/// Writes refused: this bridge's registration may have lapsed.
pub(crate) fn write_refusal(service: &Service) -> Option<Error> {
    (!service.coordination().writable()).then_some(Error::BridgeFenced)
}

/// Whether a read that found nothing may be answered so: this bridge is
/// not fenced, or it was alone in the catalog when last listed. Else
/// another bridge may have run a job since and moved the row where this
/// bridge's routing does not look. (A bridge alone keeps answering "not
/// found" while the catalog is away, as one bridge always did; a bridge
/// registering only while this one cannot reach the catalog is not seen.)
pub(crate) fn not_found_is_sure(service: &Service) -> bool {
    let coordination = service.coordination();
    coordination.writable() || coordination.alone()
}

/// When this bridge is fenced and the catalog's primary answers its health
/// checks: asks for a heartbeat round now and waits for one that makes it
/// writable again, at most [`RENEW_WAIT`] and never past `deadline`. The
/// caller then checks [`write_refusal`] as usual. A write taken after this
/// is as safe as one taken after a regular round: the lease counts from
/// the heartbeat's sending, and the write's deadline was set before it.
pub(crate) async fn renew(service: &Service, deadline: tokio::time::Instant) {
    let coordination = service.coordination();
    if coordination.writable() || !service.cluster().primary().is_up() {
        return;
    }
    let until = deadline.min(tokio::time::Instant::now() + RENEW_WAIT);
    let renewing = async {
        loop {
            let round = coordination.rounds.notified();
            tokio::pin!(round);
            round.as_mut().enable();
            if coordination.writable() {
                return;
            }
            coordination.news.notify_one();
            round.await;
            if coordination.writable() {
                return;
            }
            tokio::time::sleep(RENEW_RETRY).await;
        }
    };
    // Past `until` the write is refused as fenced, as before asking.
    let _ = tokio::time::timeout_at(until, renewing).await;
}

/// Registers this bridge (one heartbeat round, so it starts writable when
/// the catalog answers), then heartbeats every [`HEARTBEAT`] and listens
/// for the catalog's news. After each round it looks for a job whose runner
/// has lapsed, to take it over (`rebalance::consider_takeover`).
pub(crate) async fn start(service: &Service) {
    if let Err(why) = round(service).await {
        tracing::warn!("registering this bridge in the catalog: {why}; writes wait for it");
    }
    let beating = service.clone();
    tokio::spawn(async move { heartbeats(beating).await });
    let listening = service.clone();
    tokio::spawn(async move { listen(listening).await });
}

async fn heartbeats(service: Service) {
    loop {
        let news = service.coordination().news.notified();
        tokio::select! {
            () = tokio::time::sleep(HEARTBEAT) => {}
            () = news => {}
        }
        let started = Instant::now();
        if let Err(why) = round(&service).await {
            tracing::warn!("heartbeat: {why}");
        }
        let took = started.elapsed();
        if took > SLOW_ROUND {
            tracing::warn!(
                "a heartbeat round took {took:?} (without one for {:?}, writes are refused)",
                LEASE - MARGIN
            );
        }
        // Also after a round that failed: a bridge following a placement
        // change fails each round (it is fenced) yet must take it over.
        super::rebalance::consider_takeover(&service);
        service.coordination().rounds.notify_waiters();
    }
}

/// One heartbeat; on news (or after a lapse) the routing reloaded from the
/// catalog and the heartbeat repeated with it; the bridges listed.
async fn round(service: &Service) -> Result<(), String> {
    let coordination = service.coordination();
    let sent = Instant::now();
    let lapsed = !coordination.writable();
    let mark = beat(service).await?;
    let followed = lock(&coordination.followed).clone();
    if lapsed || followed.as_ref() != Some(&mark) {
        let adopted = follow::adopt(service).await?;
        if adopted == Adopted::Swapped {
            beat(service).await?;
        }
        // A reload put off is tried again at the next round; a bridge
        // whose lease lapsed stays fenced until then (jobs may have moved
        // rows meanwhile), unless the slot is its own job's, whose routing
        // it has.
        if adopted == Adopted::Busy && lapsed && !service.rebalancer().runs_a_job() {
            return Err("the routing is busy (a data set or a job's start holds it):                         reloading it, and taking writes, wait for the next round"
                .to_owned());
        }
        if adopted != Adopted::Busy {
            *lock(&coordination.followed) = Some(mark);
        }
    }
    *lock(&coordination.writable_until) = Some(sent + LEASE - MARGIN);
    let client = catalog(service).await?;
    let listed = tokio::time::timeout(HEARTBEAT_DEADLINE, sql::list(&client)).await;
    if let Ok(Ok(rows)) = listed {
        let mut bridges = coordination
            .bridges
            .write()
            .unwrap_or_else(|e| e.into_inner());
        *bridges = (rows, Some(Instant::now()));
    }
    Ok(())
}

/// The value behind `mutex`, even if a holder panicked.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// This bridge's heartbeat with the routing it follows now, within the
/// heartbeat's deadline; the catalog's state.
async fn beat(service: &Service) -> Result<CatalogMark, String> {
    let table = service.routing().table();
    let identity = &service.coordination().identity;
    let (fence, cut_over) = fence::recorded(service);
    let beat = Beat {
        name: &identity.name,
        address: &identity.address,
        pid: std::process::id(),
        version: table.current.version,
        previous: table.previous.as_ref().map(|previous| previous.version),
        fence,
        cut_over,
    };
    let client = catalog(service).await?;
    match tokio::time::timeout(HEARTBEAT_DEADLINE, sql::heartbeat(&client, &beat)).await {
        Ok(Ok(mark)) => Ok(mark),
        Ok(Err(error)) => Err(crate::db::describe(&error)),
        Err(_) => {
            crate::cluster::discard(client);
            Err("the catalog did not answer within the heartbeat's deadline".into())
        }
    }
}

/// A connection to the catalog (`c1`'s primary) within the heartbeat's
/// deadline.
async fn catalog(service: &Service) -> Result<deadpool_postgres::Client, String> {
    let deadline = tokio::time::Instant::now() + HEARTBEAT_DEADLINE;
    service
        .cluster()
        .primary_client(deadline)
        .await
        .map_err(|error| error.to_string())
}

/// Listens for the catalog's news on a connection of its own to `c1`'s
/// primary, connecting again after it ends or when the primary changes.
async fn listen(service: Service) {
    loop {
        let primary = service.cluster().primary();
        let (name, config) = (primary.name().to_owned(), primary.spec.config.clone());
        let waker = service.clone();
        let connected = tokio::time::timeout(
            HEARTBEAT_DEADLINE * 2,
            sql::listen(&config, move || waker.coordination().news.notify_one()),
        )
        .await;
        if let Ok(Ok((client, mut task))) = connected {
            loop {
                tokio::select! {
                    _ = &mut task => break,
                    () = tokio::time::sleep(HEARTBEAT) => {}
                }
                if service.cluster().primary().name() != name {
                    break;
                }
            }
            drop(client);
            task.abort();
        }
        tokio::time::sleep(HEARTBEAT).await;
    }
}

/// Records the routing this bridge follows now and tells the other bridges
/// to look at the catalog, so that they follow a job's bridge that has
/// begun writing by the target without waiting for their next round. When
/// it fails, their next round sees it (the runner's version is part of
/// the catalog's state a heartbeat reads).
pub(crate) async fn announce(service: &Service) {
    let announced = async {
        beat(service).await?;
        let client = catalog(service).await?;
        match tokio::time::timeout(HEARTBEAT_DEADLINE, sql::notify(&client)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(crate::db::describe(&error)),
            Err(_) => Err("the catalog did not answer in time".to_owned()),
        }
    };
    if let Err(why) = announced.await {
        tracing::warn!("announcing this bridge's routing: {why}; the next heartbeat does");
    }
}

/// Waits until every live bridge but this one follows `version` (writes)
/// with `previous` (reads also under it), or its lease has lapsed, so that
/// a job's next step assumes every writer routes as this bridge does.
pub(crate) async fn wait_followers(service: &Service, job: u64, routing: (u64, Option<u64>)) {
    let started = Instant::now();
    let mut said = Instant::now();
    loop {
        match lagging(service, routing).await {
            Ok(lagging) if lagging.is_empty() => {
                if started.elapsed() > HEARTBEAT {
                    tracing::info!(
                        "job {job}: every live bridge follows layout {} after {:?}",
                        routing.0,
                        started.elapsed()
                    );
                }
                return;
            }
            Ok(lagging) if said.elapsed() > Duration::from_secs(5) => {
                tracing::warn!(
                    "job {job}: waiting for bridges {lagging:?} to follow layout {}",
                    routing.0
                );
                said = Instant::now();
            }
            Err(why) if said.elapsed() > Duration::from_secs(5) => {
                tracing::warn!("job {job}: asking which bridges follow it: {why}");
                said = Instant::now();
            }
            _ => {}
        }
        tokio::time::sleep(WAIT_POLL).await;
    }
}

/// The live bridges but this one not following `routing`.
async fn lagging(service: &Service, routing: (u64, Option<u64>)) -> Result<Vec<String>, String> {
    let client = catalog(service).await?;
    let name = service.coordination().name();
    match tokio::time::timeout(
        HEARTBEAT_DEADLINE,
        sql::lagging(&client, name, LEASE, routing),
    )
    .await
    {
        Ok(Ok(lagging)) => Ok(lagging),
        Ok(Err(error)) => Err(crate::db::describe(&error)),
        Err(_) => {
            crate::cluster::discard(client);
            Err("the catalog did not answer within the deadline".into())
        }
    }
}
