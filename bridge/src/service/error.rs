//! What the service refuses, or fails at, in its own words: one variant per
//! cause, one sentence per cause (`Display`). Nothing here knows HTTP; the
//! HTTP edge maps each variant to a status and a stable code
//! (`http/error.rs`), and keeps the sentence.

use std::fmt;

use ecoshard_core::wire::{Consistency, JobState, RebalanceJob};
use tokio_postgres::types::PgLsn;

use super::input::Invalid;

/// Why the service did not do what it was asked.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Error {
    /// A value of the request breaks a rule; nothing was tried.
    Invalid(Invalid),
    /// A layout the database does not take (see [`LayoutRefusal`]).
    Layout(LayoutRefusal),
    /// No user with that id, on the node that served the read.
    UserNotFound {
        /// The node that served the read.
        served_by: String,
        /// The read's consistency.
        consistency: Consistency,
    },
    /// No rebalance job with that id.
    JobNotFound(u64),
    /// No cluster with that name.
    UnknownCluster {
        /// The name asked for (at most 40 characters of it).
        name: String,
        /// The clusters there are.
        clusters: Vec<String>,
    },
    /// No node with that name.
    UnknownNode {
        /// The name asked for (at most 40 characters of it).
        name: String,
        /// The nodes there are.
        nodes: Vec<String>,
    },
    /// The id is taken by a user stored differently; nothing was written.
    DuplicateUser(String),
    /// Some of a bulk insert's ids are taken, not all as it would write
    /// them; nothing was written.
    DuplicateBulk {
        /// The ids' prefix.
        prefix: String,
        /// How many ids (`prefix0` …).
        count: u64,
    },
    /// A rebalance job runs (or failed and waits for a restart), or one is
    /// starting (`None`).
    RebalanceBusy(Option<Box<RebalanceJob>>),
    /// A rebalance job runs, started by another bridge (named).
    RebalanceElsewhere(Box<RebalanceJob>, String),
    /// This bridge's heartbeat may have lapsed in the catalog: it takes no
    /// write until it has heartbeated and reloaded the routing.
    BridgeFenced,
    /// A read found nothing on a bridge in that state, beside other
    /// bridges: a job they ran since may have moved the row.
    BridgeFencedRead,
    /// The database's layout is not the one this bridge routes by.
    LayoutChanged,
    /// Node actions need servers this bridge started.
    NotLocal {
        /// The bridge connects to an external cluster.
        external: bool,
    },
    /// The cluster's state forbids the node action; says why.
    NodeActionRefused(String),
    /// Stopping or starting a node failed (the details are logged).
    NodeActionFailed {
        /// `stopping` or `starting`.
        doing: &'static str,
        /// The node.
        node: String,
    },
    /// A data set is being generated: one at a time, and no rebalance
    /// starts meanwhile.
    Generating,
    /// A data set is not generated while a rebalance job runs (or failed
    /// and waits for a restart): the job, when known.
    GenerateDuringRebalance(Option<Box<RebalanceJob>>),
    /// A write waited for its shard's cutover to another cluster past its
    /// deadline (what: "the shard of \"id\"", "a shard of this bulk
    /// insert"); nothing was written.
    ShardFenced(String),
    /// A generation did not finish within its deadline and was rolled back.
    GenerateTimedOut {
        /// Users asked for.
        count: u64,
        /// The deadline, in seconds.
        limit_secs: u64,
    },
    /// As many bulk inserts as the bridge runs at once are running.
    BulkBusy,
    /// Writes are refused: the primary is not answering, or is being
    /// replaced. Nothing was written.
    PrimaryUnavailable(PrimaryDown),
    /// A write was sent and the primary may have committed it.
    WriteOutcomeUnknown {
        /// No answer within the write deadline (else the session ended).
        timed_out: bool,
        /// Commits wait for a synchronous standby.
        sync_replication: bool,
        /// The write deadline, in seconds.
        limit_secs: u64,
        /// What to send again to repeat it safely.
        again: String,
    },
    /// A read only the primary can answer got no answer within the read
    /// deadline; `next` says what to do.
    ReadTimedOut {
        /// The primary's name.
        primary: String,
        /// The read deadline, in ms.
        limit_ms: u128,
        /// What to do instead.
        next: &'static str,
    },
    /// No node could serve a read.
    ReadUnavailable {
        /// What the read asked for.
        consistency: Consistency,
        /// What a read-your-writes read must see.
        after_lsn: u64,
        /// The primary's name.
        primary: String,
    },
    /// No node answered a sample of the ids within the read deadline.
    SampleUnavailable {
        /// The primary's name.
        primary: String,
    },
    /// A transaction across clusters, or a recovery pass, failed (see
    /// [`TwoPhaseError`]).
    TwoPhase(TwoPhaseError),
    /// No verification now (see [`super::verify::Refusal`]).
    Verify(super::verify::Refusal),
    /// A bug or an unexpected database error; `context` is logged, never
    /// answered.
    Internal(String),
}

/// Why writes are refused now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PrimaryDown {
    /// The primary's name.
    pub(crate) primary: String,
    /// A standby is being promoted in its place now.
    pub(crate) failing_over: bool,
    /// A standby will be promoted when its server is gone.
    pub(crate) auto_failover: bool,
}

/// Why a layout is not applied to the database.
#[derive(Clone, Debug, PartialEq)]
pub enum LayoutRefusal {
    /// Not a layout: the core's (or the JSON's) reason.
    Invalid(String),
    /// bounded-load places a key by every other key.
    BoundedLoad,
    /// More shards than the database takes.
    TooManyShards {
        /// Shards asked for.
        count: usize,
        /// Most the database takes.
        limit: usize,
    },
    /// A change that moves shards between clusters and also changes where
    /// keys go (strategy, shards, weights, parameters): two steps.
    PlacementAndKeys {
        /// Shards that would change cluster.
        shards: usize,
    },
    /// A shard names a cluster the bridge does not operate.
    UnknownCluster {
        /// The shard.
        shard: String,
        /// The cluster it names.
        cluster: String,
        /// The clusters there are.
        clusters: Vec<String>,
    },
}

/// Why a transaction across clusters (`service/twophase.rs`), or a
/// recovery pass, did not do what it was asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TwoPhaseError {
    /// The catalog (`c1`'s primary) did not answer or refused.
    CatalogUnavailable {
        /// What happened.
        why: String,
    },
    /// A step before the decision failed: the transaction is rolled back on
    /// every cluster (now, or by the recovery pass), nothing of it committed.
    NotCommitted {
        /// The cluster the step ran on.
        cluster: String,
        /// The step, e.g. `preparing`.
        step: &'static str,
        /// What happened.
        why: String,
    },
    /// The decision's commit was sent and not confirmed: only the log
    /// knows, and the recovery pass finishes the transaction as it says.
    DecisionUnknown {
        /// The transaction.
        txid: i64,
        /// What happened.
        why: String,
    },
    /// Decided, but a part did not commit now: the recovery pass commits it.
    Unfinished {
        /// The transaction.
        txid: i64,
        /// The cluster of the part.
        cluster: String,
        /// What happened.
        why: String,
    },
    /// A recovery pass found coordinators holding the lock through its wait.
    RecoveryBusy,
    /// No cluster with that name.
    UnknownCluster {
        /// The name.
        name: String,
        /// The clusters there are.
        clusters: Vec<String>,
    },
    /// A step called out of order: a bug in the caller.
    OutOfOrder(&'static str),
}

impl Error {
    /// A bug or unexpected failure: logs `context: detail` and answers
    /// [`Error::Internal`].
    pub(crate) fn internal(context: &str, detail: impl fmt::Display) -> Self {
        tracing::error!("{context}: {detail}");
        Error::Internal(context.to_owned())
    }
}

impl From<Invalid> for Error {
    fn from(invalid: Invalid) -> Self {
        Error::Invalid(invalid)
    }
}

impl From<TwoPhaseError> for Error {
    fn from(error: TwoPhaseError) -> Self {
        Error::TwoPhase(error)
    }
}

impl From<LayoutRefusal> for Error {
    fn from(refusal: LayoutRefusal) -> Self {
        Error::Layout(refusal)
    }
}

/// No `what` named `name`, and the names there are.
fn unknown(f: &mut fmt::Formatter<'_>, what: &str, name: &str, known: &[String]) -> fmt::Result {
    write!(
        f,
        "no {what} named {name:?}; the {what}s are {}",
        known.join(", ")
    )
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Invalid(invalid) => invalid.fmt(f),
            Error::Layout(refusal) => refusal.fmt(f),
            Error::UserNotFound {
                served_by,
                consistency,
            } => write!(
                f,
                "no user with that id (served by {served_by}, consistency {})",
                consistency.name()
            ),
            Error::JobNotFound(id) => write!(f, "no rebalance job {id}"),
            Error::UnknownCluster { name, clusters } => unknown(f, "cluster", name, clusters),
            Error::UnknownNode { name, nodes } => unknown(f, "node", name, nodes),
            Error::DuplicateUser(id) => write!(
                f,
                "a user with id {id:?} already exists with another name or e-mail; \
                 nothing was written"
            ),
            Error::DuplicateBulk { prefix, count } => write!(
                f,
                "some of the ids {prefix}0 … {prefix}{} exist, not all as this insert would \
                 write them; nothing was written",
                count.saturating_sub(1)
            ),
            Error::RebalanceBusy(job) => busy(f, job.as_deref()),
            Error::LayoutChanged => f.write_str(LAYOUT_CHANGED),
            Error::NotLocal { external } => f.write_str(not_local(*external)),
            Error::NodeActionRefused(why) => f.write_str(why),
            Error::NodeActionFailed { doing, node } => {
                write!(f, "{doing} {node} failed (details in the bridge's log)")
            }
            Error::Generating => f.write_str(GENERATING),
            Error::GenerateDuringRebalance(job) => generate_refused(f, job.as_deref()),
            Error::ShardFenced(what) => write!(f, "{what}{SHARD_FENCED}"),
            Error::RebalanceElsewhere(job, bridge) => elsewhere(f, job, bridge),
            Error::BridgeFenced => f.write_str(BRIDGE_FENCED),
            Error::BridgeFencedRead => f.write_str(BRIDGE_FENCED_READ),
            Error::GenerateTimedOut { count, limit_secs } => write!(
                f,
                "the primary did not take the {} users within {limit_secs} s: the transaction \
                 was rolled back and nothing was written; generate fewer users at once",
                ecoshard_core::thousands(*count)
            ),
            Error::BulkBusy => {
                f.write_str("other bulk inserts are running; try again when they finish")
            }
            Error::PrimaryUnavailable(down) => down.fmt(f),
            Error::WriteOutcomeUnknown {
                timed_out,
                sync_replication,
                limit_secs,
                again,
            } => outcome_unknown(f, *timed_out, *sync_replication, *limit_secs, again),
            Error::ReadTimedOut {
                primary,
                limit_ms,
                next,
            } => write!(
                f,
                "{} did not answer within {limit_ms} ms: {next}",
                the_primary(primary)
            ),
            Error::ReadUnavailable {
                consistency,
                after_lsn,
                primary,
            } => unavailable(f, *consistency, *after_lsn, primary),
            Error::SampleUnavailable { primary } => write!(
                f,
                "no node answered the sample within the read deadline (the standbys in the \
                 read rotation, then {}); retry in a moment",
                the_primary(primary)
            ),
            Error::TwoPhase(error) => error.fmt(f),
            Error::Verify(refusal) => refusal.fmt(f),
            Error::Internal(_) => f.write_str("internal error (logged by the bridge)"),
        }
    }
}

const SHARD_FENCED: &str = " is being cut over to another cluster and its writes waited past \
                            the write deadline; nothing was written: send the same request again";

impl fmt::Display for TwoPhaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TwoPhaseError::CatalogUnavailable { why } => write!(
                f,
                "the catalog on c1's primary did not answer ({why}); no transaction across \
                 clusters is decided or recovered without it"
            ),
            TwoPhaseError::NotCommitted { cluster, step, why } => write!(
                f,
                "{step} on {cluster} failed ({why}): the transaction across clusters is rolled \
                 back and nothing of it was written on any cluster"
            ),
            TwoPhaseError::DecisionUnknown { txid, why } => write!(
                f,
                "the catalog did not confirm the decision to commit transaction {txid} ({why}): \
                 it commits on every cluster or on none, as the recovery pass finds in the log"
            ),
            TwoPhaseError::Unfinished { txid, cluster, why } => write!(
                f,
                "transaction {txid} is committed, but its part on {cluster} did not finish now \
                 ({why}); the recovery pass finishes it"
            ),
            TwoPhaseError::RecoveryBusy => f.write_str(
                "transactions across clusters held the coordination lock through the recovery \
                 pass's wait; the next pass tries again",
            ),
            TwoPhaseError::UnknownCluster { name, clusters } => {
                unknown(f, "cluster", name, clusters)
            }
            TwoPhaseError::OutOfOrder(what) => {
                write!(f, "a two-phase commit step out of order: {what}")
            }
        }
    }
}

/// The primary as a sentence names it: "the primary" when its node is named
/// so (not "the primary (primary)"), else "the primary (standby-1)".
pub(crate) fn the_primary(name: &str) -> String {
    if name == "primary" {
        "the primary".to_string()
    } else {
        format!("the primary ({name})")
    }
}

/// Why node actions are refused on a cluster this bridge did not start.
fn not_local(external: bool) -> &'static str {
    if external {
        "the bridge connects to an external cluster: it did not start these servers and \
         does not stop or start them"
    } else {
        "this bridge does not manage the servers of the local cluster"
    }
}

impl fmt::Display for PrimaryDown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.failing_over {
            return f.write_str(
                "the primary is gone and a standby is being promoted: retry in a moment",
            );
        }
        let next = if self.auto_failover {
            "until it is back or a standby is promoted in its place"
        } else {
            "until it is back"
        };
        write!(
            f,
            "{} is not answering: writes are refused {next}",
            the_primary(&self.primary)
        )
    }
}

impl fmt::Display for LayoutRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayoutRefusal::Invalid(why) => write!(
                f,
                "{why} (a layout is {{\"strategy\": \"ring\", \"shards\": 4, \"vnodes\": 160}}, \
                 shards a count or a list of {{\"name\", \"weight\"}})"
            ),
            LayoutRefusal::BoundedLoad => f.write_str(BOUNDED_LOAD_REFUSAL),
            LayoutRefusal::TooManyShards { count, limit } => write!(
                f,
                "{count} shards is more than the database takes: at most {limit} (each is a \
                 schema, all created in one transaction)"
            ),
            LayoutRefusal::UnknownCluster {
                shard,
                cluster,
                clusters,
            } => write!(
                f,
                "shard {shard:?} names cluster {cluster:?}, which this bridge does not operate: \
                 shards go on {} (leave \"cluster\" out to place shards round-robin over them)",
                clusters.join(", ")
            ),
            LayoutRefusal::PlacementAndKeys { shards } => write!(
                f,
                "this change moves {shards} shards to other clusters and also changes which \
                 shard keys go to; do it in two steps: first the same shards on their new \
                 clusters (a placement change), then the other change: nothing was stored"
            ),
        }
    }
}

/// Why the database takes no bounded-load layout.
pub(crate) const BOUNDED_LOAD_REFUSAL: &str = "bounded-load is not applied to the database: where it puts a key depends on every other key, \
     so a row inserted or read by its key alone could not be found; use ring (the same ring \
     without the bound) for the database; ecoshard plan and the page still show bounded-load";

fn busy(f: &mut fmt::Formatter<'_>, job: Option<&RebalanceJob>) -> fmt::Result {
    match job {
        Some(job) if job.state == JobState::Failed => write!(
            f,
            "rebalance job {} failed ({}); restart the bridge to resume it before applying \
             another layout",
            job.id,
            job.error.as_deref().unwrap_or("no reason recorded")
        ),
        Some(job) if job.state == JobState::Running => write!(
            f,
            "rebalance job {} is running ({} of {} rows moved); wait until GET \
             /api/rebalance/{} says done",
            job.id, job.moved, job.total, job.id
        ),
        Some(job) => write!(
            f,
            "rebalance job {} is finishing; retry in a moment",
            job.id
        ),
        None => f.write_str("a rebalance job is starting; retry in a moment"),
    }
}

/// A job refused because another bridge runs `job`.
fn elsewhere(f: &mut fmt::Formatter<'_>, job: &RebalanceJob, bridge: &str) -> fmt::Result {
    write!(
        f,
        "rebalance job {} runs on bridge {bridge} (layout {} → {}); wait until GET \
         /api/rebalance/{} says done",
        job.id, job.from_version, job.to_version, job.id
    )
}

/// Why a layout is refused while this bridge catches up with another's.
const LAYOUT_CHANGED: &str = "the layout in the database is not the one this bridge routes by \
                              (another bridge applied one); this bridge follows it within a \
                              second or so: retry then";

/// Why a fenced bridge takes no write.
const BRIDGE_FENCED_READ: &str = "this bridge found no such user, but it has not heartbeated in the \
                                  catalog recently: another bridge may have moved the user since, so \
                                  the answer may be stale; retry in a moment or use another bridge";
const BRIDGE_FENCED: &str = "this bridge has not heartbeated in the catalog recently, so other \
                             bridges may count it as gone; nothing was written: it takes writes \
                             again once it has heartbeated and reloaded the routing, retry in a \
                             moment or use another bridge";

/// Why a generation, or a layout, waits for the generation running.
const GENERATING: &str = "a data set is being generated (one at a time, and no rebalance starts \
     meanwhile); retry when it is written";

fn generate_refused(f: &mut fmt::Formatter<'_>, job: Option<&RebalanceJob>) -> fmt::Result {
    match job {
        Some(job) if job.state == JobState::Failed => write!(
            f,
            "rebalance job {} failed and waits for a restart of the bridge to resume it; a data \
             set is generated only when no rebalance runs",
            job.id
        ),
        Some(job) => write!(
            f,
            "rebalance job {} is running ({} of {} rows moved); a data set is generated only \
             when no rebalance runs: wait until GET /api/rebalance/{} says done",
            job.id, job.moved, job.total, job.id
        ),
        None => f.write_str(
            "a rebalance job is running; a data set is generated only when no rebalance runs",
        ),
    }
}

fn outcome_unknown(
    f: &mut fmt::Formatter<'_>,
    timed_out: bool,
    sync_replication: bool,
    limit_secs: u64,
    again: &str,
) -> fmt::Result {
    match (timed_out, sync_replication) {
        (true, true) => write!(
            f,
            "no standby confirmed the write within {limit_secs} s (synchronous replication \
             needs one)"
        )?,
        (true, false) => write!(
            f,
            "the primary did not confirm the write within {limit_secs} s"
        )?,
        (false, _) => {
            f.write_str("the connection to the primary ended before it confirmed the write")?
        }
    }
    write!(
        f,
        ": the primary may have committed it; read it back with consistency=strong, or \
         {again}: repeating it is safe"
    )
}

fn unavailable(
    f: &mut fmt::Formatter<'_>,
    consistency: Consistency,
    after_lsn: u64,
    primary: &str,
) -> fmt::Result {
    match consistency {
        Consistency::Strong => write!(
            f,
            "strong reads go to {}, which is not answering: read with consistency=eventual \
             to be served by a standby meanwhile",
            the_primary(primary)
        ),
        Consistency::ReadYourWrites => write!(
            f,
            "no standby has replayed up to {} and {} is not answering: retry, or read with \
             consistency=eventual",
            PgLsn::from(after_lsn),
            the_primary(primary)
        ),
        Consistency::Eventual => f.write_str(
            "no node could serve the read: the primary and the standbys in rotation failed",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(error: Error, expected: &str) {
        assert_eq!(error.to_string(), expected);
    }

    fn down(primary: &str) -> Error {
        Error::PrimaryUnavailable(PrimaryDown {
            primary: primary.to_string(),
            failing_over: false,
            auto_failover: false,
        })
    }

    fn strong(primary: &str) -> Error {
        Error::ReadUnavailable {
            consistency: Consistency::Strong,
            after_lsn: 0,
            primary: primary.to_string(),
        }
    }

    fn sample(primary: &str) -> Error {
        Error::SampleUnavailable {
            primary: primary.to_string(),
        }
    }

    #[test]
    fn a_primary_named_primary_is_not_named_twice() {
        check(
            down("primary"),
            "the primary is not answering: writes are refused until it is back",
        );
        check(
            down("standby-1"),
            "the primary (standby-1) is not answering: writes are refused until it is back",
        );
        check(
            strong("primary"),
            "strong reads go to the primary, which is not answering: read with \
             consistency=eventual to be served by a standby meanwhile",
        );
        check(
            Error::ReadUnavailable {
                consistency: Consistency::ReadYourWrites,
                after_lsn: 0x3000148,
                primary: "primary".to_string(),
            },
            "no standby has replayed up to 0/3000148 and the primary is not answering: retry, \
             or read with consistency=eventual",
        );
        check(
            Error::ReadTimedOut {
                primary: "standby-2".to_string(),
                limit_ms: 1000,
                next: "retry",
            },
            "the primary (standby-2) did not answer within 1000 ms: retry",
        );
        check(
            sample("primary"),
            "no node answered the sample within the read deadline (the standbys in the read \
             rotation, then the primary); retry in a moment",
        );
    }
}
