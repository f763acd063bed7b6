//! Atomic commit across clusters' primaries, on PostgreSQL's own two-phase
//! commit, with its decision log in the catalog (`c1`) and the recovery
//! pass that finishes what a coordinator left in doubt.
//!
//! The protocol. A coordinator ([`TwoPhase`]) opens a catalog transaction,
//! takes the coordination lock shared in it and a transaction id; each
//! participant (a cluster's primary) runs its statements in a transaction
//! and prepares it as `ecoshard_<catalog>_<txid>_<cluster>`; then the
//! coordinator inserts the decision into `ecoshard.decisions` and commits
//! the catalog transaction: that commit is the decision, and releases the
//! lock. The parts commit in the order the caller gives (a key move: the
//! destination first), and the decision is marked done. Presumed abort: a
//! prepared part with no decision is rolled back.
//!
//! Why recovery is safe. A pass holds the lock exclusively, so no
//! coordinator is between its first statement and its decision then: every
//! part it lists either has its decision committed (commit it) or belongs
//! to a coordinator that gave up or died, whose catalog session — and the
//! lock with it — ended; that coordinator can never decide, since its
//! decision is written on that very session (roll it back). After the
//! decision nobody rolls back, so a part that is gone when it is committed
//! was committed by the other side. The lock is taken before any
//! participant works, so a coordinator waiting for it holds no row lock
//! another may wait on.
//!
//! The steps are public so that a test can stop a coordinator between any
//! two of them (dropping it closes its connections, as a killed process's
//! would be closed); no HTTP route reaches them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Object;
use tokio::time::Instant;

use super::Service;
pub use super::error::TwoPhaseError;
use crate::cluster::Cluster;
use crate::db::twophase as sql;
use crate::db::{Stage, WriteFailure};

/// Longest a recovery pass may take.
pub const RECOVERY_DEADLINE: Duration = Duration::from_secs(10);
/// Longest a pass waits for coordinators to release the lock.
const RECOVERY_LOCK_WAIT: Duration = Duration::from_secs(3);
/// Time between two periodic passes.
const RECOVERY_EVERY: Duration = Duration::from_secs(10);
/// How long a done decision stays in the log before a recovery pass
/// deletes it (a rebalance's batches, named by the move log, stay).
pub const KEEP_DONE: Duration = Duration::from_secs(3600);
/// Most decisions one pass deletes, so a pass stays short.
const PRUNE_LIMIT: i64 = 10_000;
/// Longest rolling back a transaction that failed may take.
const ABORT_LIMIT: Duration = Duration::from_secs(2);
/// The step of a rebalance batch's decision that finds its job not running.
pub(crate) const COUNTING: &str = "counting the moved rows";

/// A transaction across clusters' primaries, step by step: [`begin`],
/// [`join`] each cluster and run its statements on the connection it
/// gives, then [`commit`] (or [`prepare`], [`decide`], [`commit_next`] one
/// at a time). Every failure before the decision rolls it back everywhere.
///
/// [`begin`]: TwoPhase::begin
/// [`join`]: TwoPhase::join
/// [`commit`]: TwoPhase::commit
/// [`prepare`]: TwoPhase::prepare
/// [`decide`]: TwoPhase::decide
/// [`commit_next`]: TwoPhase::commit_next
pub struct TwoPhase {
    service: Service,
    purpose: String,
    deadline: Instant,
    /// The session holding the open catalog transaction and the lock.
    catalog: Option<Object>,
    catalog_id: i64,
    txid: i64,
    participants: Vec<Participant>,
    /// Indexes into `participants`, in commit order, once decided.
    order: Vec<usize>,
    /// Parts of `order` committed so far.
    committed: usize,
    phase: Phase,
    /// A rebalance batch to log with the decision.
    moved: Option<sql::MovedBatch>,
    /// Its job's `moved` once decided.
    job_moved: Option<u64>,
}

/// One cluster's part.
struct Participant {
    cluster: Arc<Cluster>,
    gid: String,
    client: Option<Object>,
    part: Part,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    Working,
    Prepared,
    Committed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Open,
    Decided,
    Ended,
}

/// A transaction across clusters that was decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    /// Its id in the decision log.
    pub txid: i64,
    /// Every part committed now; `false`: the recovery pass commits the rest.
    pub finished: bool,
    /// A rebalance batch's job: its rows moved, this batch counted.
    pub job_moved: Option<u64>,
}

/// What a recovery pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Parts committed (their transaction was decided).
    pub committed: u64,
    /// Parts rolled back (no decision).
    pub rolled_back: u64,
    /// Parts left for a later pass (their cluster did not answer, or a
    /// coordinator was finishing them).
    pub left: u64,
    /// Done decisions older than [`KEEP_DONE`] deleted from the log.
    pub pruned: u64,
}

impl TwoPhase {
    /// Opens a transaction across clusters that must be decided by
    /// `deadline`: the catalog's transaction, the lock, an id.
    pub async fn begin(
        service: &Service,
        purpose: &str,
        deadline: Instant,
    ) -> Result<Self, TwoPhaseError> {
        let catalog = service
            .cluster()
            .primary_client(deadline)
            .await
            .map_err(|error| catalog_error(error.to_string()))?;
        let opened = within(deadline, async {
            sql::begin(&catalog).await?;
            sql::hold_shared(&catalog).await?;
            sql::new_txid(&catalog).await
        })
        .await;
        let (catalog_id, txid) = match opened {
            Ok(ids) => ids,
            Err(failed) => {
                crate::cluster::discard(catalog);
                return Err(catalog_error(failed.to_string()));
            }
        };
        Ok(TwoPhase {
            service: service.clone(),
            purpose: purpose.to_string(),
            deadline,
            catalog: Some(catalog),
            catalog_id,
            txid,
            participants: Vec::new(),
            order: Vec::new(),
            committed: 0,
            phase: Phase::Open,
            moved: None,
            job_moved: None,
        })
    }

    /// Its id in the decision log.
    pub fn txid(&self) -> i64 {
        self.txid
    }

    /// By when it must be decided.
    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Rolls back every part now (before the decision; after it, nothing):
    /// for a caller that found its own statements failing.
    pub(crate) async fn roll_back_now(&mut self) {
        if self.phase == Phase::Open {
            self.roll_back().await;
        }
    }

    /// Logs `batch` with the decision (the move log).
    pub(crate) fn log_move(&mut self, batch: sql::MovedBatch) {
        self.moved = Some(batch);
    }

    /// Opens `cluster`'s part on its primary; the connection its statements
    /// go to (the same when it joined already).
    pub async fn join(
        &mut self,
        cluster: &str,
    ) -> Result<&deadpool_postgres::Client, TwoPhaseError> {
        if self.phase != Phase::Open {
            return Err(self.misuse("joining after the decision").await);
        }
        let index = match self.position(cluster) {
            Some(index) => index,
            None => self.open_part(cluster).await?,
        };
        self.client(cluster)
            .filter(|_| self.participants[index].part == Part::Working)
            .ok_or(TwoPhaseError::OutOfOrder("joining a part already prepared"))
    }

    /// The connection of `cluster`'s part, while it is open.
    pub fn client(&self, cluster: &str) -> Option<&deadpool_postgres::Client> {
        let index = self.position(cluster)?;
        self.participants[index].client.as_ref()
    }

    async fn open_part(&mut self, name: &str) -> Result<usize, TwoPhaseError> {
        let clusters = self.service.clusters();
        let Some(cluster) = clusters.all().iter().find(|c| c.name() == name).cloned() else {
            let error = TwoPhaseError::UnknownCluster {
                name: name.chars().take(40).collect(),
                clusters: clusters.names(),
            };
            self.roll_back().await;
            return Err(error);
        };
        let Some(gid) = sql::gid(self.catalog_id, self.txid, name) else {
            let why = "its name is not one a transaction id takes".to_string();
            return Err(self.fail(name, "naming its part", why).await);
        };
        let client = match cluster.primary_client(self.deadline).await {
            Ok(client) => client,
            Err(error) => return Err(self.fail(name, "connecting", error.to_string()).await),
        };
        if let Err(failed) = within(self.deadline, sql::begin(&client)).await {
            crate::cluster::discard(client);
            return Err(self.fail(name, "beginning", failed.to_string()).await);
        }
        self.participants.push(Participant {
            cluster,
            gid,
            client: Some(client),
            part: Part::Working,
        });
        Ok(self.participants.len() - 1)
    }

    /// Prepares `cluster`'s part: its work is then kept through crashes,
    /// and commits or rolls back with the decision.
    pub async fn prepare(&mut self, cluster: &str) -> Result<(), TwoPhaseError> {
        let index = match self.position(cluster) {
            Some(index) if self.phase == Phase::Open => index,
            _ => return Err(self.misuse("preparing a part not open").await),
        };
        let participant = &mut self.participants[index];
        let Some(client) = participant.client.as_ref() else {
            return Err(self.misuse("preparing a part without its connection").await);
        };
        match within(self.deadline, sql::prepare(client, &participant.gid)).await {
            Ok(true) => {
                participant.part = Part::Prepared;
                Ok(())
            }
            Ok(false) => {
                let why = "a statement of its transaction had failed, so PREPARE rolled it back";
                Err(self.fail(cluster, "preparing", why.to_string()).await)
            }
            Err(failed) => {
                // Whether it was prepared is unknown: the session is closed,
                // and a part it left is rolled back by the recovery pass.
                close(&mut participant.client, false);
                Err(self.fail(cluster, "preparing", failed.to_string()).await)
            }
        }
    }

    /// Decides: logs the decision to commit every part (in `commit_order`,
    /// then the rest in the order they joined) and commits it in the
    /// catalog. Every part must be prepared.
    pub async fn decide(&mut self, commit_order: &[&str]) -> Result<i64, TwoPhaseError> {
        let names: Vec<&str> = self.participants.iter().map(|p| p.cluster.name()).collect();
        let order = match commit_order_of(&names, commit_order) {
            Some(order) if self.phase == Phase::Open && !order.is_empty() => order,
            _ => {
                return Err(self
                    .misuse("deciding without parts, or in another order")
                    .await);
            }
        };
        if self.participants.iter().any(|p| p.part != Part::Prepared) {
            return Err(self.misuse("deciding before every part is prepared").await);
        }
        let Some(catalog) = self.catalog.as_ref() else {
            return Err(self
                .misuse("deciding without the catalog's connection")
                .await);
        };
        let ordered: Vec<String> = order.iter().map(|&i| names[i].to_string()).collect();
        let logged = within(
            self.deadline,
            log_decision(
                catalog,
                self.txid,
                &ordered,
                &self.purpose,
                self.moved.as_ref(),
            ),
        )
        .await;
        let c1 = crate::cluster::DEFAULT_CLUSTER;
        match logged {
            Ok(Some(job_moved)) => {
                self.phase = Phase::Decided;
                self.order = order;
                self.job_moved = self.moved.as_ref().map(|_| job_moved.max(0) as u64);
                Ok(self.txid)
            }
            Ok(None) => {
                let why = "the job is not running".to_string();
                Err(self.fail(c1, COUNTING, why).await)
            }
            Err(Failed::Db(error)) if !undecided(&error) => Err(self.unknown(&describe(&error))),
            Err(Failed::TimedOut) => Err(self.unknown(&Failed::TimedOut.to_string())),
            Err(Failed::Db(error)) => {
                let why = crate::db::describe(&error);
                Err(self.fail(c1, "logging the decision", why).await)
            }
        }
    }

    /// Commits the next part in the commit order; its cluster, or `None`
    /// when every part is committed.
    pub async fn commit_next(&mut self) -> Result<Option<String>, TwoPhaseError> {
        if self.phase != Phase::Decided {
            return Err(TwoPhaseError::OutOfOrder(
                "committing a part before the decision",
            ));
        }
        let Some(&index) = self.order.get(self.committed) else {
            return Ok(None);
        };
        let participant = &mut self.participants[index];
        let name = participant.cluster.name().to_string();
        let committed = match participant.client.as_ref() {
            Some(client) => within(
                self.deadline,
                sql::commit_prepared(client, &participant.gid),
            )
            .await
            .map_err(|failed| failed.to_string()),
            None => Err("its connection is closed".to_string()),
        };
        match committed {
            // `false`: a recovery pass committed it first.
            Ok(_) => {
                participant.part = Part::Committed;
                self.committed += 1;
                Ok(Some(name))
            }
            Err(why) => {
                close(&mut participant.client, false);
                self.phase = Phase::Ended;
                recover_soon(&self.service);
                Err(TwoPhaseError::Unfinished {
                    txid: self.txid,
                    cluster: name,
                    why,
                })
            }
        }
    }

    /// Prepares the parts not prepared yet (in the order they joined),
    /// decides, commits every part in `commit_order` and marks the decision
    /// done. A part that does not commit now is left to the recovery pass
    /// (`finished: false`), and so are the parts after it.
    pub async fn commit(mut self, commit_order: &[&str]) -> Result<Committed, TwoPhaseError> {
        let working: Vec<String> = self
            .participants
            .iter()
            .filter(|participant| participant.part == Part::Working)
            .map(|participant| participant.cluster.name().to_string())
            .collect();
        for cluster in working {
            self.prepare(&cluster).await?;
        }
        let txid = self.decide(commit_order).await?;
        loop {
            match self.commit_next().await {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(error @ TwoPhaseError::Unfinished { .. }) => {
                    tracing::warn!("{error}");
                    return Ok(Committed {
                        txid,
                        finished: false,
                        job_moved: self.job_moved,
                    });
                }
                Err(error) => return Err(error),
            }
        }
        self.finish().await;
        Ok(Committed {
            txid,
            finished: true,
            job_moved: self.job_moved,
        })
    }

    /// Rolls back every part (before the decision; after it, nothing).
    pub async fn abort(mut self) {
        if self.phase == Phase::Open {
            self.roll_back().await;
        }
    }

    /// After every part committed: the decision is marked done (else the
    /// next recovery pass marks it) and the connections go back.
    async fn finish(&mut self) {
        if let Some(catalog) = self.catalog.as_ref() {
            let marked = within(self.deadline, sql::mark_done(catalog, &[self.txid])).await;
            if let Err(failed) = &marked {
                tracing::debug!("marking transaction {} done: {failed}", self.txid);
            }
            close(&mut self.catalog, marked.is_ok());
        }
        for participant in &mut self.participants {
            close(&mut participant.client, true);
        }
        self.phase = Phase::Ended;
    }

    /// Rolls back every part and then the catalog's transaction (releasing
    /// the lock only once no part it knows is left prepared). A part in an
    /// unknown state is left to the recovery pass, started now.
    async fn roll_back(&mut self) {
        let deadline = Instant::now() + ABORT_LIMIT;
        let mut left = false;
        for participant in &mut self.participants {
            let rolled_back = match (participant.part, participant.client.as_ref()) {
                (Part::Working, Some(client)) => {
                    within(deadline, sql::rollback(client)).await.is_ok()
                }
                (Part::Prepared, Some(client)) => {
                    within(deadline, sql::rollback_prepared(client, &participant.gid))
                        .await
                        .is_ok()
                }
                (Part::Committed, _) => true,
                (_, None) => false,
            };
            close(&mut participant.client, rolled_back);
            left |= !rolled_back;
        }
        if let Some(catalog) = self.catalog.as_ref() {
            let ended = within(deadline, sql::rollback(catalog)).await.is_ok();
            close(&mut self.catalog, ended);
        }
        self.phase = Phase::Ended;
        if left {
            recover_soon(&self.service);
        }
    }

    /// A step before the decision failed: everything is rolled back.
    async fn fail(&mut self, cluster: &str, step: &'static str, why: String) -> TwoPhaseError {
        self.roll_back().await;
        TwoPhaseError::NotCommitted {
            cluster: cluster.to_string(),
            step,
            why,
        }
    }

    /// A step out of order: before the decision, everything is rolled back.
    async fn misuse(&mut self, what: &'static str) -> TwoPhaseError {
        if self.phase == Phase::Open {
            self.roll_back().await;
        }
        TwoPhaseError::OutOfOrder(what)
    }

    /// The decision's commit was sent and not confirmed.
    fn unknown(&mut self, why: &str) -> TwoPhaseError {
        self.phase = Phase::Ended;
        close(&mut self.catalog, false);
        recover_soon(&self.service);
        TwoPhaseError::DecisionUnknown {
            txid: self.txid,
            why: why.to_string(),
        }
    }

    fn position(&self, cluster: &str) -> Option<usize> {
        self.participants
            .iter()
            .position(|participant| participant.cluster.name() == cluster)
    }
}

/// A coordinator dropped before it ended (stopped, or its caller gave up)
/// closes its sessions as a killed process's would be closed: the open
/// transactions, and the lock, end with them; prepared parts stay for the
/// recovery pass.
impl Drop for TwoPhase {
    fn drop(&mut self) {
        close(&mut self.catalog, false);
        for participant in &mut self.participants {
            close(&mut participant.client, false);
        }
    }
}

/// In the catalog's open transaction: the decision, the batch `moved` (when
/// a rebalance's) counted in its job, then the commit that decides. The
/// job's `moved` (0 without a batch), or `None`, nothing committed, when
/// the batch's job is not running.
async fn log_decision(
    catalog: &Object,
    txid: i64,
    participants: &[String],
    purpose: &str,
    moved: Option<&sql::MovedBatch>,
) -> Result<Option<i64>, tokio_postgres::Error> {
    sql::record_decision(catalog, txid, participants, purpose).await?;
    let job_moved = match moved {
        Some(batch) => sql::record_move(catalog, txid, batch).await?,
        None => Some(0),
    };
    if job_moved.is_some() {
        sql::commit(catalog).await?;
    }
    Ok(job_moved)
}

/// Gives a connection back to its pool (`clean`) or closes it.
fn close(slot: &mut Option<Object>, clean: bool) {
    match slot.take() {
        Some(client) if !clean => crate::cluster::discard(client),
        _ => {}
    }
}

/// Whether the error the decision's commit met says it did not commit.
fn undecided(error: &tokio_postgres::Error) -> bool {
    matches!(
        crate::db::write_failure(error, Stage::Committing),
        WriteFailure::NotTaken { .. } | WriteFailure::Duplicate
    )
}

fn describe(error: &tokio_postgres::Error) -> String {
    crate::db::describe(error)
}

fn catalog_error(why: String) -> TwoPhaseError {
    TwoPhaseError::CatalogUnavailable { why }
}

/// The parts' indexes in commit order: `first` (each a joined cluster,
/// once), then the others in the order they joined; `None` when `first`
/// names another cluster or one twice.
fn commit_order_of(joined: &[&str], first: &[&str]) -> Option<Vec<usize>> {
    let mut order = Vec::with_capacity(joined.len());
    for name in first {
        let index = joined.iter().position(|joined| joined == name)?;
        if order.contains(&index) {
            return None;
        }
        order.push(index);
    }
    order.extend((0..joined.len()).filter(|index| !first.contains(&joined[*index])));
    Some(order)
}

/// Why a statement gave no answer.
#[derive(Debug)]
enum Failed {
    /// None before the deadline.
    TimedOut,
    /// The database's error.
    Db(tokio_postgres::Error),
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failed::TimedOut => f.write_str("no answer before the deadline"),
            Failed::Db(error) => f.write_str(&describe(error)),
        }
    }
}

/// `work` by `deadline`.
async fn within<T>(
    deadline: Instant,
    work: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, Failed> {
    match tokio::time::timeout_at(deadline, work).await {
        Ok(done) => done.map_err(Failed::Db),
        Err(_) => Err(Failed::TimedOut),
    }
}

/// Runs a recovery pass now, then one every [`RECOVERY_EVERY`] for as long
/// as the runtime lives.
pub(crate) async fn start(service: &Service) {
    pass(service, "at start-up").await;
    let service = service.clone();
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(RECOVERY_EVERY);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        interval.tick().await;
        loop {
            interval.tick().await;
            pass(&service, "periodic").await;
        }
    });
}

/// Starts a recovery pass (after a failover, or a part left in doubt).
pub(crate) fn recover_soon(service: &Service) {
    let service = service.clone();
    tokio::spawn(async move { pass(&service, "on demand").await });
}

async fn pass(service: &Service, when: &str) {
    match recover(service, Instant::now() + RECOVERY_DEADLINE).await {
        Ok(done) if done != Recovered::default() => tracing::info!(
            "recovery pass ({when}): {} prepared parts committed, {} rolled back, {} left",
            done.committed,
            done.rolled_back,
            done.left
        ),
        Ok(_) => {}
        Err(error) => tracing::debug!("recovery pass ({when}): {error}"),
    }
}

/// One recovery pass: under the lock held exclusively, every ecoshard
/// prepared part of this database on every primary is committed when its
/// decision is logged and rolled back when not; decisions whose every part
/// is committed are marked done.
pub async fn recover(service: &Service, deadline: Instant) -> Result<Recovered, TwoPhaseError> {
    let catalog = service
        .cluster()
        .primary_client(deadline)
        .await
        .map_err(|error| catalog_error(error.to_string()))?;
    let recovered = recover_locked(service, &catalog, deadline).await;
    if recovered.is_err() {
        crate::cluster::discard(catalog);
    }
    recovered
}

async fn recover_locked(
    service: &Service,
    catalog: &Object,
    deadline: Instant,
) -> Result<Recovered, TwoPhaseError> {
    // A lock_timeout of 0 would wait for ever.
    let wait = RECOVERY_LOCK_WAIT.min(deadline.saturating_duration_since(Instant::now()));
    let wait_ms = (wait.as_millis() as u64).max(1);
    let locked = within(deadline, async {
        sql::begin(catalog).await?;
        if !sql::hold_exclusive(catalog, wait_ms).await? {
            return Ok(None);
        }
        sql::catalog_id(catalog).await.map(Some)
    })
    .await
    .map_err(|failed| catalog_error(failed.to_string()))?;
    let Some(catalog_id) = locked else {
        return Err(TwoPhaseError::RecoveryBusy);
    };
    let prefix = sql::gid_prefix(catalog_id);
    let mut listings = futures::future::join_all(
        service
            .clusters()
            .all()
            .iter()
            .map(|cluster| list(cluster, &prefix, deadline)),
    )
    .await;
    let txids: Vec<i64> = listings
        .iter()
        .flat_map(|listing| listing.gids.iter().flatten())
        .filter_map(|gid| sql::parse_gid(&prefix, gid).map(|(txid, _)| txid))
        .collect();
    let decisions = within(deadline, sql::decisions(catalog, &txids))
        .await
        .map_err(|failed| catalog_error(failed.to_string()))?;
    let listed: Vec<(&str, Option<&[String]>)> = listings
        .iter()
        .map(|listing| (listing.cluster.as_str(), listing.gids.as_deref()))
        .collect();
    let plan = plan_recovery(&prefix, &listed, &decisions);
    let (mut recovered, done) = resolve(&plan, &mut listings, deadline).await;
    recovered.pruned = within(deadline, async {
        sql::mark_done(catalog, &done).await?;
        let pruned = sql::prune_done(catalog, KEEP_DONE.as_secs_f64(), PRUNE_LIMIT).await?;
        sql::commit(catalog).await.map(|()| pruned)
    })
    .await
    .map_err(|failed| catalog_error(failed.to_string()))?;
    Ok(recovered)
}

/// One primary's prepared parts, and the connection that finishes them.
struct Listing {
    cluster: String,
    client: Option<Object>,
    /// `None`: the primary did not answer.
    gids: Option<Vec<String>>,
}

async fn list(cluster: &Arc<Cluster>, prefix: &str, deadline: Instant) -> Listing {
    let mut listing = Listing {
        cluster: cluster.name().to_string(),
        client: None,
        gids: None,
    };
    let client = match cluster.primary_client(deadline).await {
        Ok(client) => client,
        Err(error) => {
            tracing::debug!("recovery: {}'s primary: {error}", cluster.name());
            return listing;
        }
    };
    match within(deadline, sql::prepared(&client, prefix)).await {
        Ok(gids) => {
            listing.gids = Some(gids);
            listing.client = Some(client);
        }
        Err(failed) => {
            tracing::debug!(
                "recovery: listing {}'s prepared parts: {failed}",
                cluster.name()
            );
            crate::cluster::discard(client);
        }
    }
    listing
}

/// What a pass does, from what it listed and the log.
#[derive(Debug, Default, PartialEq, Eq)]
struct RecoveryPlan {
    /// Parts with no decision, by (cluster, gid): rolled back.
    roll_back: Vec<(String, String)>,
    /// Decided transactions, their parts still prepared.
    commit: Vec<DecidedParts>,
}

/// A decided transaction's parts to commit, in its commit order.
#[derive(Debug, PartialEq, Eq)]
struct DecidedParts {
    txid: i64,
    /// (cluster, gid), up to the first participant that did not answer.
    parts: Vec<(String, String)>,
    /// Every participant answered: once `parts` commit, it is done.
    complete: bool,
}

/// The plan for the parts `listed` per cluster (`None`: did not answer),
/// given the `decisions` of their transactions and those not done.
fn plan_recovery(
    prefix: &str,
    listed: &[(&str, Option<&[String]>)],
    decisions: &[sql::Decision],
) -> RecoveryPlan {
    let decided: BTreeMap<i64, &sql::Decision> = decisions
        .iter()
        .map(|decision| (decision.txid, decision))
        .collect();
    let mut plan = RecoveryPlan::default();
    for (cluster, gids) in listed {
        for gid in gids.iter().copied().flatten() {
            if let Some((txid, _)) = sql::parse_gid(prefix, gid)
                && !decided.contains_key(&txid)
            {
                plan.roll_back.push((cluster.to_string(), gid.clone()));
            }
        }
    }
    for decision in decisions {
        let mut parts = Vec::new();
        let mut complete = true;
        for participant in &decision.participants {
            let Some((_, Some(gids))) = listed.iter().find(|(name, _)| name == participant) else {
                complete = false;
                break;
            };
            let ours = |gid: &&String| {
                sql::parse_gid(prefix, gid) == Some((decision.txid, participant.as_str()))
            };
            if let Some(gid) = gids.iter().find(ours) {
                parts.push((participant.clone(), gid.clone()));
            }
        }
        if !(decision.done && parts.is_empty()) {
            plan.commit.push(DecidedParts {
                txid: decision.txid,
                parts,
                complete,
            });
        }
    }
    plan
}

/// Carries out `plan` over the listings' connections; what it did, and the
/// transactions now done. A decided transaction's parts commit in order,
/// and stop at the first that fails.
async fn resolve(
    plan: &RecoveryPlan,
    listings: &mut [Listing],
    deadline: Instant,
) -> (Recovered, Vec<i64>) {
    let mut recovered = Recovered::default();
    for (cluster, gid) in &plan.roll_back {
        if finish_part(listings, cluster, gid, false, deadline).await {
            recovered.rolled_back += 1;
        } else {
            recovered.left += 1;
        }
    }
    let mut done = Vec::new();
    for decided in &plan.commit {
        let mut committed = 0;
        for (cluster, gid) in &decided.parts {
            if !finish_part(listings, cluster, gid, true, deadline).await {
                break;
            }
            committed += 1;
        }
        recovered.committed += committed as u64;
        recovered.left += (decided.parts.len() - committed) as u64;
        if decided.complete && committed == decided.parts.len() {
            done.push(decided.txid);
        }
    }
    (recovered, done)
}

/// Commits (or rolls back) the part `gid` on `cluster`; whether it is
/// finished now (a part already gone is).
async fn finish_part(
    listings: &mut [Listing],
    cluster: &str,
    gid: &str,
    commit: bool,
    deadline: Instant,
) -> bool {
    let Some(listing) = listings
        .iter_mut()
        .find(|listing| listing.cluster == cluster)
    else {
        return false;
    };
    let Some(client) = listing.client.as_ref() else {
        return false;
    };
    let finished = if commit {
        within(deadline, sql::commit_prepared(client, gid)).await
    } else {
        within(deadline, sql::rollback_prepared(client, gid)).await
    };
    match finished {
        Ok(_) => true,
        Err(failed) => {
            tracing::warn!("recovery: finishing {gid} on {cluster}: {failed}");
            if matches!(failed, Failed::TimedOut) {
                close(&mut listing.client, false);
            }
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_order(joined: &[&str], first: &[&str], expected: Option<&[usize]>) {
        assert_eq!(
            commit_order_of(joined, first).as_deref(),
            expected,
            "{joined:?} {first:?}"
        );
    }

    #[test]
    fn commit_order_names_some_parts_first_then_the_rest_as_they_joined() {
        check_order(&["c1", "c2"], &[], Some(&[0, 1]));
        check_order(&["c1", "c2"], &["c2"], Some(&[1, 0]));
        check_order(&["c1", "c2", "c3"], &["c3", "c1"], Some(&[2, 0, 1]));
        check_order(&["c1", "c2"], &["c4"], None);
        check_order(&["c1", "c2"], &["c2", "c2"], None);
        check_order(&[], &[], Some(&[]));
    }

    const PREFIX: &str = "ecoshard_9_";

    fn gids(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| format!("{PREFIX}{name}")).collect()
    }

    fn decision(txid: i64, participants: &[&str], done: bool) -> sql::Decision {
        sql::Decision {
            txid,
            participants: participants.iter().map(|name| name.to_string()).collect(),
            done,
        }
    }

    fn decided(txid: i64, parts: &[(&str, &str)], complete: bool) -> DecidedParts {
        DecidedParts {
            txid,
            parts: parts
                .iter()
                .map(|(cluster, gid)| (cluster.to_string(), format!("{PREFIX}{gid}")))
                .collect(),
            complete,
        }
    }

    fn check(
        listed: &[(&str, Option<Vec<String>>)],
        decisions: &[sql::Decision],
        roll_back: &[(&str, &str)],
        commit: Vec<DecidedParts>,
    ) {
        let listed: Vec<(&str, Option<&[String]>)> = listed
            .iter()
            .map(|(cluster, gids)| (*cluster, gids.as_deref()))
            .collect();
        let expected = RecoveryPlan {
            roll_back: roll_back
                .iter()
                .map(|(cluster, gid)| (cluster.to_string(), format!("{PREFIX}{gid}")))
                .collect(),
            commit,
        };
        assert_eq!(plan_recovery(PREFIX, &listed, decisions), expected);
    }

    #[test]
    fn recovery_commits_what_the_log_decided_and_rolls_back_the_rest() {
        let undecided_prepared = [("c1", Some(gids(&["4_c1"]))), ("c2", Some(gids(&["4_c2"])))];
        check(
            &undecided_prepared,
            &[],
            &[("c1", "4_c1"), ("c2", "4_c2")],
            vec![],
        );
        let decided_prepared = [("c1", Some(gids(&["5_c1"]))), ("c2", Some(gids(&["5_c2"])))];
        check(
            &decided_prepared,
            &[decision(5, &["c2", "c1"], false)],
            &[],
            vec![decided(5, &[("c2", "5_c2"), ("c1", "5_c1")], true)],
        );
        let first_committed = [("c1", Some(gids(&["5_c1"]))), ("c2", Some(vec![]))];
        check(
            &first_committed,
            &[decision(5, &["c2", "c1"], false)],
            &[],
            vec![decided(5, &[("c1", "5_c1")], true)],
        );
        let all_committed = [("c1", Some(vec![])), ("c2", Some(vec![]))];
        check(
            &all_committed,
            &[decision(5, &["c2", "c1"], false)],
            &[],
            vec![decided(5, &[], true)],
        );
        let first_unreachable = [("c1", Some(gids(&["5_c1"]))), ("c2", None)];
        check(
            &first_unreachable,
            &[decision(5, &["c2", "c1"], false)],
            &[],
            vec![decided(5, &[], false)],
        );
        let another_catalogs = [("c1", Some(vec!["ecoshard_8_5_c1".to_string()]))];
        check(&another_catalogs, &[], &[], vec![]);
        let done_and_gone = [("c1", Some(vec![]))];
        check(&done_and_gone, &[decision(3, &["c1"], true)], &[], vec![]);
    }
}
