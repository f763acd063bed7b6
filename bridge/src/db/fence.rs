//! A shard move's write fence in the catalog, held by every bridge
//! (migration 6): the mover raises it on the move's row (a new number from
//! `ecoshard.fences` each time), each bridge records in its own row the
//! fence it holds and the latest decided cutover it routes by, and the
//! decision is stored only while the fence it was taken under stands.

use std::time::Duration;

use deadpool_postgres::GenericClient;

/// What a bridge's row must show for a fence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ack {
    /// It holds the fence: no write of the shard runs there, none starts.
    Held,
    /// It routes the shard to its target (the cutover decided under the
    /// fence, or a later one).
    CutOver,
}

/// Raises a new fence on job `job`'s move of `shard`, in its cutover: its
/// number, `None` when the move is not in its cutover.
pub(crate) async fn raise(
    client: &impl GenericClient,
    job: u64,
    shard: &str,
) -> Result<Option<u64>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "UPDATE ecoshard.shard_move SET fence = nextval('ecoshard.fences')
              WHERE job = $1 AND shard = $2 AND phase = 'cutover'
              RETURNING fence",
            &[&(job as i64), &shard],
        )
        .await?;
    Ok(row.map(|row| row.get::<_, i64>(0).max(0) as u64))
}

/// Lifts fence `fence` (any, when `None`) of job `job`'s move of `shard`,
/// unless the cutover was decided under it.
pub(crate) async fn lift(
    client: &impl GenericClient,
    job: u64,
    shard: &str,
    fence: Option<u64>,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "UPDATE ecoshard.shard_move SET fence = NULL
              WHERE job = $1 AND shard = $2 AND phase = 'cutover'
                AND ($3::bigint IS NULL OR fence = $3)",
            &[&(job as i64), &shard, &fence.map(|fence| fence as i64)],
        )
        .await?;
    Ok(())
}

/// The cutover's decision (`verifying`: the shard lives on the target),
/// with the source's position it waited for and the write pause, stored
/// only while fence `fence` stands; whether it was.
pub(crate) async fn decide(
    client: &impl GenericClient,
    job: u64,
    shard: &str,
    fence: u64,
    (source_lsn, write_pause_ms): (u64, u64),
) -> Result<bool, tokio_postgres::Error> {
    let decided = client
        .execute(
            "UPDATE ecoshard.shard_move
                SET phase = 'verifying', source_lsn = $4, write_pause_ms = $5
              WHERE job = $1 AND shard = $2 AND phase = 'cutover' AND fence = $3",
            &[
                &(job as i64),
                &shard,
                &(fence as i64),
                &(source_lsn as i64),
                &(write_pause_ms as i64),
            ],
        )
        .await?;
    Ok(decided == 1)
}

/// The live bridges other than `name` (heartbeat within `lease`, by the
/// catalog's clock) whose row does not show `ack` of fence `fence`.
pub(crate) async fn lagging(
    client: &impl GenericClient,
    name: &str,
    lease: Duration,
    fence: u64,
    ack: Ack,
) -> Result<Vec<String>, tokio_postgres::Error> {
    super::bridges::live_others_where(
        client,
        (name, lease),
        "coalesce(cut_over, 0) < $3 AND ($4 OR fence IS DISTINCT FROM $3)",
        &[&(fence as i64), &(ack == Ack::CutOver)],
    )
    .await
}
