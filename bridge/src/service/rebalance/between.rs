//! A batch of misplaced rows moved as one two-phase transaction: between
//! shards on two clusters (the source gives the rows up, the destination
//! takes them, the destination commits first), or between two shards of a
//! cluster that does not hold the catalog. Either way the job counts the
//! batch in its decision, so `moved` is exact whatever step a crash stops.

use tokio::time::Instant;

use crate::db::moves::{put_rows, take_rows};
use crate::db::twophase::MovedBatch;
use crate::service::Service;
use crate::service::twophase::{COUNTING, TwoPhase, TwoPhaseError};

/// Where one batch goes: (shard, cluster) each way.
#[derive(Clone, Copy, Debug)]
pub(super) struct Route<'a> {
    /// The shard and cluster the rows leave.
    pub(super) from: (&'a str, &'a str),
    /// The shard and cluster they go to.
    pub(super) to: (&'a str, &'a str),
}

/// Why a batch did not move.
#[derive(Debug)]
pub(super) enum BatchError {
    /// The job is no longer running in the database, or no longer under
    /// this bridge.
    JobGone,
    /// Anything else: nothing of the batch committed, or it did and the
    /// recovery pass finishes it; a later round moves what is misplaced.
    Failed(TwoPhaseError),
}

/// Moves the rows of `user_ids` along `route` for job `job` (with
/// `moving_ms`, the job's time spent moving so far) by `deadline`; the
/// job's `moved` after it (`None`: none of the rows was there any more).
pub(super) async fn move_batch(
    service: &Service,
    job: u64,
    route: Route<'_>,
    user_ids: &[String],
    moving_ms: u64,
    deadline: Instant,
) -> Result<Option<u64>, BatchError> {
    let ((from_shard, from_cluster), (to_shard, to_cluster)) = (route.from, route.to);
    let mut transaction = TwoPhase::begin(service, "rebalance", deadline)
        .await
        .map_err(BatchError::Failed)?;
    let source = transaction
        .join(from_cluster)
        .await
        .map_err(BatchError::Failed)?;
    let taken = tokio::time::timeout_at(deadline, take_rows(source, from_shard, user_ids)).await;
    let rows = match taken {
        Ok(Ok(rows)) if rows.len() > 0 => rows,
        Ok(Ok(_)) => {
            transaction.abort().await;
            return Ok(None);
        }
        Ok(Err(error)) => return Err(failed(transaction, from_cluster, &describe(&error)).await),
        Err(_) => return Err(failed(transaction, from_cluster, LATE).await),
    };
    let destination = transaction
        .join(to_cluster)
        .await
        .map_err(BatchError::Failed)?;
    let put = tokio::time::timeout_at(deadline, put_rows(destination, to_shard, &rows)).await;
    match put {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => return Err(failed(transaction, to_cluster, &describe(&error)).await),
        Err(_) => return Err(failed(transaction, to_cluster, LATE).await),
    }
    transaction.log_move(MovedBatch {
        job: job as i64,
        from: (from_shard.to_owned(), from_cluster.to_owned()),
        to: (to_shard.to_owned(), to_cluster.to_owned()),
        rows: rows.len() as i64,
        moving_ms: moving_ms as i64,
        runner: service.coordination().name().to_owned(),
    });
    match transaction.commit(&[to_cluster]).await {
        Ok(committed) => Ok(committed.job_moved),
        Err(TwoPhaseError::NotCommitted { step, .. }) if step == COUNTING => {
            Err(BatchError::JobGone)
        }
        Err(error) => Err(BatchError::Failed(error)),
    }
}

/// Why a statement of a batch is given up.
const LATE: &str = "no answer before the batch's deadline";

fn describe(error: &tokio_postgres::Error) -> String {
    crate::db::describe(error)
}

/// A statement of the batch failed: everything is rolled back.
async fn failed(transaction: TwoPhase, cluster: &str, why: &str) -> BatchError {
    transaction.abort().await;
    BatchError::Failed(TwoPhaseError::NotCommitted {
        cluster: cluster.to_owned(),
        step: "moving rows",
        why: why.to_owned(),
    })
}
