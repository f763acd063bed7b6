//! Verification, as Vitess's VDiff does it: the database checked against the
//! layout in force and its placement, on every cluster's primary, and each
//! standby against its primary up to a WAL position. One at a time, never
//! while a rebalance job runs (except for that job's own check before it
//! drops a source), every database call within a deadline.
//!
//! **Exactly once across all clusters** follows from what is checked, so
//! no id is ever looked up on two clusters: every row's id is located by
//! the core (`Router::locate`) and its shard by the placement, which gives
//! each id exactly one home (cluster, shard); each shard schema is a table
//! keyed by `user_id`, so a home holds an id at most once; a row anywhere
//! else is counted as misplaced. Hence zero misplaced rows means each id is
//! stored at most once, in its home. Schemas are checked too: one found on
//! a cluster the placement does not name, or a layout shard's schema
//! missing where the placement puts it, is a difference.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Object;
use ecoshard_core::wire::{
    ClusterVerify, JobState, MisplacedRow, RebalanceJob, ShardVerify, StandbyVerify, VerifyReport,
};
use tokio::time::Instant;
use tokio_postgres::types::PgLsn;

use super::{Error, Service};
use crate::cluster::{Cluster, Node, checkout};
use crate::db::verify::{self as sql, ShardSum};
use crate::db::{ShardSql, describe};
use crate::routing::RoutingTable;

/// Ids located per chunk of the cursor (one trip to the blocking pool).
const CHUNK_IDS: u32 = 50_000;
/// Misplaced rows kept as examples in the report.
const MAX_EXAMPLES: usize = 10;
/// Longest one statement may take (a count, a checksum, a chunk of ids):
/// set as the transaction's `statement_timeout`, and waited for a little
/// longer by the bridge.
pub(crate) const STATEMENT_LIMIT: Duration = Duration::from_secs(60);
/// Longest a whole verification may take.
pub const VERIFY_LIMIT: Duration = Duration::from_secs(600);
/// Longest a standby is waited for to replay up to the primary's position.
const STANDBY_WAIT: Duration = Duration::from_secs(5);
/// Rounds of checksums taken before a standby is called inconclusive.
const ROUNDS: u32 = 4;

/// Why no verification was made.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Refusal {
    /// Another verification runs.
    Busy,
    /// A rebalance job runs (or failed and waits for a restart).
    RebalanceRunning(Option<Box<RebalanceJob>>),
    /// A layout was applied while verifying.
    LayoutChanged,
    /// A primary did not answer, or refused.
    Unavailable {
        /// `c1/primary`.
        node: String,
        /// What went wrong.
        why: String,
    },
    /// The whole verification ran past [`VERIFY_LIMIT`].
    TimedOut,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Busy => {
                f.write_str("a verification is running (one at a time); retry when it is done")
            }
            Refusal::RebalanceRunning(Some(job)) => write!(
                f,
                "rebalance job {} is {} ({} of {} rows moved): rows are between two layouts, \
                 so the database cannot be verified now; verify when the job is done",
                job.id,
                if job.state == JobState::Failed {
                    "failed and waits for a restart"
                } else {
                    "running"
                },
                job.moved,
                job.total
            ),
            Refusal::RebalanceRunning(None) => f.write_str(
                "a rebalance job is starting, so the database cannot be verified now; verify \
                 when it is done",
            ),
            Refusal::LayoutChanged => f.write_str(
                "a layout was applied while verifying, so the report would mix two layouts; \
                 verify again when its job is done",
            ),
            Refusal::Unavailable { node, why } => {
                write!(
                    f,
                    "{node} did not answer the verification: {why}; nothing was changed"
                )
            }
            Refusal::TimedOut => write!(
                f,
                "the verification did not finish within {} s; nothing was changed",
                VERIFY_LIMIT.as_secs()
            ),
        }
    }
}

impl From<Refusal> for Error {
    fn from(refusal: Refusal) -> Self {
        Error::Verify(refusal)
    }
}

/// Verifies the database now: the report, clean or not; refused while a
/// rebalance job runs, unless it is `for_job` and its routing is by the
/// new layout alone (the job's own check before it drops a source).
pub(crate) async fn verify(service: &Service, for_job: Option<u64>) -> Result<VerifyReport, Error> {
    let _permit = service
        .verify_permit()
        .try_acquire()
        .map_err(|_| Refusal::Busy)?;
    let job = service.rebalancer().job_summary();
    let table = service.routing().table();
    let busy = job
        .as_ref()
        .is_some_and(|job| job.state != JobState::Done && Some(job.id) != for_job);
    if busy || table.previous.is_some() {
        return Err(Refusal::RebalanceRunning(job.map(Box::new)).into());
    }
    let expected = Arc::new(Expected::new(service, Arc::clone(&table)));
    let started = std::time::Instant::now();
    let mut report = Building::default();
    let every_cluster = async {
        for cluster in service.clusters().all() {
            verify_cluster(cluster, &expected, &mut report).await?;
        }
        Ok::<(), Error>(())
    };
    tokio::time::timeout(VERIFY_LIMIT, every_cluster)
        .await
        .map_err(|_| Refusal::TimedOut)??;
    let job_now = service.rebalancer().job_summary().map(|job| job.id);
    if !Arc::ptr_eq(&service.routing().table(), &table) || job_now != job.map(|job| job.id) {
        return Err(Refusal::LayoutChanged.into());
    }
    Ok(report.finish(&expected, started.elapsed()))
}

/// Where every row belongs: the layout in force (its router) and the
/// cluster of each of its shards.
#[derive(Debug)]
struct Expected {
    table: Arc<RoutingTable>,
    /// The cluster of each shard, by name.
    clusters: HashMap<String, String>,
}

impl Expected {
    fn new(service: &Service, table: Arc<RoutingTable>) -> Self {
        let view = service.placed_view(table.view());
        let clusters = view
            .layout
            .shards
            .iter()
            .map(|shard| shard.name.clone())
            .zip(view.placement)
            .collect();
        Expected { table, clusters }
    }

    /// The home of `id`: its shard and that shard's cluster.
    fn home(&self, id: &str) -> (&str, &str) {
        let shard = &self.table.current.locate(id).name;
        let cluster = self.clusters.get(shard).map_or("", String::as_str);
        (shard, cluster)
    }

    /// The cluster the placement puts `shard` on (`None`: not in the layout).
    fn cluster_of(&self, shard: &str) -> Option<&str> {
        self.clusters.get(shard).map(String::as_str)
    }

    /// How many of `ids`, found in `shard` on `cluster`, belong elsewhere,
    /// and up to `keep` of them.
    fn misplaced(
        &self,
        ids: &[String],
        cluster: &str,
        shard: &str,
        keep: usize,
    ) -> (u64, Vec<MisplacedRow>) {
        let mut count = 0;
        let mut examples = Vec::new();
        for id in ids {
            let (home_shard, home_cluster) = self.home(id);
            if home_shard != shard || home_cluster != cluster {
                count += 1;
                if examples.len() < keep {
                    examples.push(MisplacedRow {
                        id: id.clone(),
                        found: format!("{cluster}/{shard}"),
                        belongs: format!("{home_cluster}/{home_shard}"),
                    });
                }
            }
        }
        (count, examples)
    }
}

/// The report as it is built.
#[derive(Debug, Default)]
struct Building {
    clusters: Vec<ClusterVerify>,
    misplaced: u64,
    examples: Vec<MisplacedRow>,
    differences: Vec<String>,
    notes: Vec<String>,
}

impl Building {
    /// The report, with the differences only the whole shows: a layout
    /// shard whose schema is on no cluster the placement names.
    fn finish(mut self, expected: &Expected, elapsed: Duration) -> VerifyReport {
        let mut missing: Vec<(&String, &String)> = expected
            .clusters
            .iter()
            .filter(|(shard, cluster)| {
                !self.clusters.iter().any(|found| {
                    &found.cluster == *cluster && found.shards.iter().any(|s| &s.shard == *shard)
                })
            })
            .collect();
        missing.sort();
        for (shard, cluster) in missing {
            self.differences.push(format!(
                "shard {shard} belongs on {cluster}, which has no schema shard_{shard}"
            ));
        }
        VerifyReport {
            clean: self.differences.is_empty(),
            layout_version: expected.table.current.version,
            clusters: self.clusters,
            misplaced: self.misplaced,
            misplaced_examples: self.examples,
            differences: self.differences,
            notes: self.notes,
            elapsed_ms: elapsed.as_secs_f64() * 1_000.0,
        }
    }
}

/// One cluster: each shard schema on its primary (counted, checksummed,
/// its ids located), then each standby against the primary.
async fn verify_cluster(
    cluster: &Cluster,
    expected: &Arc<Expected>,
    report: &mut Building,
) -> Result<(), Error> {
    let primary = cluster.primary();
    let node = format!("{}/{}", cluster.name(), primary.name());
    let deadline = Instant::now() + STATEMENT_LIMIT;
    let mut client = cluster
        .primary_client(deadline)
        .await
        .map_err(|error| unavailable(&node, error.to_string()))?;
    let names = within(&node, sql::shard_names(&client)).await?;
    let shards: Vec<ShardSql> = names.iter().map(|name| ShardSql::new(name)).collect();
    let (first, found) = scan_primary(
        &mut client,
        &node,
        cluster.name(),
        &shards,
        expected,
        report,
    )
    .await?;
    for shard in &found {
        place(cluster.name(), shard, expected, report);
    }
    let mut standbys = Vec::new();
    for standby in cluster.standbys() {
        let compared = compare_standby(&mut client, &node, standby, &shards, first.clone()).await?;
        word_standby(cluster.name(), &compared, report);
        standbys.push(compared.view);
    }
    report.clusters.push(ClusterVerify {
        cluster: cluster.name().to_string(),
        primary: primary.name().to_string(),
        lsn: first.lsn.to_string(),
        shards: found,
        standbys,
    });
    Ok(())
}

/// One snapshot of the primary: each shard's count and checksum, and its
/// ids through a cursor, located in chunks on the blocking pool.
async fn scan_primary(
    client: &mut Object,
    node: &str,
    cluster: &str,
    shards: &[ShardSql],
    expected: &Arc<Expected>,
    report: &mut Building,
) -> Result<(Reading, Vec<ShardVerify>), Error> {
    let (tx, lsn) = within(node, sql::snapshot(client, STATEMENT_LIMIT)).await?;
    let mut sums = Vec::with_capacity(shards.len());
    let mut found = Vec::with_capacity(shards.len());
    for shard in shards {
        let sum = within(node, sql::shard_sum(&tx, shard)).await?;
        within(node, sql::open_ids(&tx, shard)).await?;
        let mut misplaced = 0;
        loop {
            let ids = within(node, sql::next_ids(&tx, CHUNK_IDS)).await?;
            if ids.is_empty() {
                break;
            }
            let (expected, cluster_name, shard_name) = (
                Arc::clone(expected),
                cluster.to_string(),
                shard.name.clone(),
            );
            let keep = MAX_EXAMPLES.saturating_sub(report.examples.len());
            let (count, examples) = tokio::task::spawn_blocking(move || {
                expected.misplaced(&ids, &cluster_name, &shard_name, keep)
            })
            .await
            .map_err(|error| Error::internal("locating ids", error))?;
            misplaced += count;
            report.examples.extend(examples);
        }
        within(node, sql::close_ids(&tx)).await?;
        report.misplaced += misplaced;
        found.push(ShardVerify {
            shard: shard.name.clone(),
            rows: sum.rows,
            checksum: sum.checksum.clone(),
            misplaced,
            placed_here: expected.cluster_of(&shard.name) == Some(cluster),
        });
        sums.push(sum);
    }
    within(node, tx.commit()).await?;
    Ok((Reading { lsn, sums }, found))
}

/// The differences and notes of one shard schema found on `cluster`.
fn place(cluster: &str, shard: &ShardVerify, expected: &Expected, report: &mut Building) {
    let name = &shard.shard;
    match expected.cluster_of(name) {
        Some(home) if home != cluster => report.differences.push(format!(
            "shard {name}'s schema is on {cluster}, where the placement does not put it \
             (shard {name} belongs on {home}); it holds {} rows",
            shard.rows
        )),
        Some(_) => {}
        None => report.notes.push(format!(
            "{cluster} holds schema shard_{name} of a shard the layout does not have \
             ({} rows)",
            shard.rows
        )),
    }
    if shard.misplaced > 0 {
        report.differences.push(format!(
            "{cluster}/{name} holds {} rows whose ids belong elsewhere",
            shard.misplaced
        ));
    }
}

/// Each shard's count and checksum in one snapshot, and the WAL position
/// it includes.
#[derive(Clone, Debug, PartialEq)]
struct Reading {
    lsn: PgLsn,
    sums: Vec<ShardSum>,
}

/// A standby compared: what the report shows, and the shards that differ
/// when it differs.
#[derive(Debug)]
struct Compared {
    view: StandbyVerify,
    differing: Vec<String>,
}

/// `node`'s answer within [`STATEMENT_LIMIT`] (and a second more: the
/// server's own `statement_timeout` ends it first).
async fn within<T>(
    node: &str,
    work: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, Error> {
    match tokio::time::timeout(STATEMENT_LIMIT + Duration::from_secs(1), work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(unavailable(node, describe(&error))),
        Err(_) => Err(unavailable(
            node,
            format!("no answer within {} s", STATEMENT_LIMIT.as_secs()),
        )),
    }
}

fn unavailable(node: &str, why: String) -> Error {
    Refusal::Unavailable {
        node: node.to_string(),
        why,
    }
    .into()
}

/// What rounds of checksums say about a standby.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// The last round's checksums are the primary's.
    Agrees,
    /// The same difference in two rounds in a row, each with no write on
    /// the primary from its snapshot to the next one: the standby had
    /// replayed everything the primary had, so the difference stays.
    Differs,
    /// Not yet known (the primary kept writing between snapshots).
    Undecided,
}

/// One round: the primary's sums, the standby's once it had replayed past
/// the primary's position, and whether the primary wrote nothing from its
/// snapshot to the next one (same WAL position, same sums).
#[derive(Clone, Debug, PartialEq)]
struct Round {
    primary: Vec<ShardSum>,
    standby: Vec<ShardSum>,
    quiet: bool,
}

/// The verdict of the rounds so far. Never [`Verdict::Differs`] on a
/// difference that writes in flight can explain: both rounds must be quiet
/// and alike.
fn verdict(rounds: &[Round]) -> Verdict {
    match rounds {
        [.., last] if last.standby == last.primary => Verdict::Agrees,
        [.., before, last]
            if before.quiet
                && last.quiet
                && before.primary == last.primary
                && before.standby == last.standby =>
        {
            Verdict::Differs
        }
        _ => Verdict::Undecided,
    }
}

/// Why a standby was not compared in a round.
#[derive(Debug)]
enum Missed {
    /// It had not replayed up to the position within [`STANDBY_WAIT`].
    Behind(Option<PgLsn>),
    /// It did not answer, or refused.
    Unreachable(String),
}

/// Rounds of: the standby's checksums once it has replayed past the
/// primary's last position, compared; on a difference, the primary's again.
async fn compare_standby(
    primary: &mut Object,
    primary_node: &str,
    standby: &Node,
    shards: &[ShardSql],
    mut reading: Reading,
) -> Result<Compared, Error> {
    let mut rounds: Vec<Round> = Vec::new();
    let mut view = StandbyVerify {
        node: standby.name().to_string(),
        outcome: "inconclusive".to_string(),
        primary_lsn: reading.lsn.to_string(),
        replay_lsn: None,
        rounds: 0,
    };
    for round in 1..=ROUNDS {
        view.rounds = round;
        view.primary_lsn = reading.lsn.to_string();
        let theirs = match standby_reading(standby, shards, reading.lsn).await {
            Ok(theirs) => theirs,
            Err(missed) => {
                (view.outcome, view.replay_lsn) = match missed {
                    Missed::Behind(at) => ("behind".to_string(), at.map(|lsn| lsn.to_string())),
                    Missed::Unreachable(why) => {
                        tracing::warn!("verifying {}: {why}", standby.name());
                        ("unreachable".to_string(), None)
                    }
                };
                return Ok(Compared {
                    view,
                    differing: Vec::new(),
                });
            }
        };
        view.replay_lsn = Some(theirs.lsn.to_string());
        let next = if theirs.sums == reading.sums {
            reading.clone()
        } else {
            primary_reading(primary, primary_node, shards).await?
        };
        rounds.push(Round {
            quiet: next.lsn == reading.lsn && next.sums == reading.sums,
            primary: reading.sums.clone(),
            standby: theirs.sums.clone(),
        });
        match verdict(&rounds) {
            Verdict::Agrees => {
                view.outcome = "agrees".to_string();
                return Ok(Compared {
                    view,
                    differing: Vec::new(),
                });
            }
            Verdict::Differs => {
                view.outcome = "differs".to_string();
                let differing = differing(shards, &reading.sums, &theirs.sums);
                return Ok(Compared { view, differing });
            }
            Verdict::Undecided => reading = next,
        }
    }
    Ok(Compared {
        view,
        differing: Vec::new(),
    })
}

/// The shards whose sums differ, each in words.
fn differing(shards: &[ShardSql], primary: &[ShardSum], standby: &[ShardSum]) -> Vec<String> {
    shards
        .iter()
        .zip(primary.iter().zip(standby))
        .filter(|(_, (ours, theirs))| ours != theirs)
        .map(|(shard, (ours, theirs))| {
            format!(
                "{}: {} rows (checksum {}) on the standby, {} (checksum {}) on the primary",
                shard.name, theirs.rows, theirs.checksum, ours.rows, ours.checksum
            )
        })
        .collect()
}

/// The report's sentence for a standby that differs or was not compared.
fn word_standby(cluster: &str, compared: &Compared, report: &mut Building) {
    let view = &compared.view;
    let node = format!("{cluster}/{}", view.node);
    match view.outcome.as_str() {
        "differs" => report.differences.push(format!(
            "{node} differs from its primary at {}, the same in two rounds with no write \
             between: {}",
            view.primary_lsn,
            compared.differing.join("; ")
        )),
        "inconclusive" => report.notes.push(format!(
            "{node}: inconclusive: writes kept coming ({} rounds of checksums, none taken \
             with the primary at rest; the last at {})",
            view.rounds, view.primary_lsn
        )),
        "behind" => report.notes.push(format!(
            "{node} had not replayed up to {} within {} s (it was at {}): not compared",
            view.primary_lsn,
            STANDBY_WAIT.as_secs(),
            view.replay_lsn.as_deref().unwrap_or("an unknown position")
        )),
        "unreachable" => report
            .notes
            .push(format!("{node} did not answer: not compared")),
        _ => {}
    }
}

/// The primary's sums in a new snapshot.
async fn primary_reading(
    client: &mut Object,
    node: &str,
    shards: &[ShardSql],
) -> Result<Reading, Error> {
    let (tx, lsn) = within(node, sql::snapshot(client, STATEMENT_LIMIT)).await?;
    let mut sums = Vec::with_capacity(shards.len());
    for shard in shards {
        sums.push(within(node, sql::shard_sum(&tx, shard)).await?);
    }
    within(node, tx.commit()).await?;
    Ok(Reading { lsn, sums })
}

/// The standby's sums once it has replayed up to `lsn` (waited for within
/// [`STANDBY_WAIT`]).
async fn standby_reading(node: &Node, shards: &[ShardSql], lsn: PgLsn) -> Result<Reading, Missed> {
    let deadline = Instant::now() + STANDBY_WAIT;
    let mut client = checkout(&node.pool, deadline)
        .await
        .map_err(|error| Missed::Unreachable(error.to_string()))?;
    let failed = |error: tokio_postgres::Error| Missed::Unreachable(describe(&error));
    loop {
        let replayed = tokio::time::timeout_at(deadline, sql::replayed(&client)).await;
        match replayed {
            Ok(Ok(at)) if at >= lsn => break,
            Ok(Ok(at)) if Instant::now() >= deadline => return Err(Missed::Behind(Some(at))),
            Ok(Ok(_)) => tokio::time::sleep(Duration::from_millis(20)).await,
            Ok(Err(error)) => return Err(failed(error)),
            Err(_) => return Err(Missed::Behind(None)),
        }
    }
    let reading = async {
        let (tx, at) = sql::snapshot(&mut client, STATEMENT_LIMIT).await?;
        let mut sums = Vec::with_capacity(shards.len());
        for shard in shards {
            sums.push(sql::shard_sum(&tx, shard).await?);
        }
        tx.commit().await?;
        Ok::<_, tokio_postgres::Error>(Reading { lsn: at, sums })
    };
    match tokio::time::timeout(STATEMENT_LIMIT + Duration::from_secs(1), reading).await {
        Ok(Ok(reading)) => Ok(reading),
        Ok(Err(error)) => Err(failed(error)),
        Err(_) => Err(Missed::Unreachable("no answer in time".to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sums(rows: &[u64]) -> Vec<ShardSum> {
        rows.iter()
            .map(|&rows| ShardSum {
                rows,
                checksum: (rows * 7).to_string(),
            })
            .collect()
    }

    /// A round: primary rows, standby rows, quiet.
    fn round(primary: &[u64], standby: &[u64], quiet: bool) -> Round {
        Round {
            primary: sums(primary),
            standby: sums(standby),
            quiet,
        }
    }

    fn check(rounds: &[Round], expected: Verdict) {
        assert_eq!(verdict(rounds), expected, "{rounds:?}");
    }

    #[test]
    fn a_standby_differs_only_on_a_difference_that_stays() {
        check(&[], Verdict::Undecided);
        check(&[round(&[3, 4], &[3, 4], false)], Verdict::Agrees);
        check(&[round(&[3, 4], &[3, 5], true)], Verdict::Undecided);
        check(
            &[
                round(&[3, 4], &[3, 5], false),
                round(&[3, 5], &[3, 5], false),
            ],
            Verdict::Agrees,
        );
        check(
            &[round(&[3, 4], &[3, 5], true), round(&[3, 4], &[3, 5], true)],
            Verdict::Differs,
        );
        check(
            &[
                round(&[3, 4], &[3, 5], false),
                round(&[3, 4], &[3, 5], true),
            ],
            Verdict::Undecided,
        );
        check(
            &[
                round(&[3, 4], &[3, 5], true),
                round(&[3, 4], &[3, 5], false),
            ],
            Verdict::Undecided,
        );
        check(
            &[round(&[3, 4], &[3, 5], true), round(&[3, 4], &[3, 6], true)],
            Verdict::Undecided,
        );
        check(
            &[round(&[3, 4], &[3, 5], true), round(&[3, 5], &[3, 6], true)],
            Verdict::Undecided,
        );
    }
}
