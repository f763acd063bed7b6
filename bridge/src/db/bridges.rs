//! The bridges serving one catalog (`ecoshard.bridges`, migration 5): each
//! bridge's row, its heartbeat by the catalog server's clock and the
//! routing it follows; and the channel on which the catalog announces, in
//! the changing transaction, that a layout or a job changed.

use std::time::Duration;

use deadpool_postgres::GenericClient;
use tokio_postgres::{AsyncMessage, NoTls};

/// The channel the catalog's triggers notify (migration 5).
pub(crate) const CHANNEL: &str = "ecoshard_catalog";

/// What a bridge says of itself in a heartbeat.
#[derive(Clone, Debug)]
pub(crate) struct Beat<'a> {
    /// Its name.
    pub(crate) name: &'a str,
    /// Where it is reached.
    pub(crate) address: &'a str,
    /// Its process id.
    pub(crate) pid: u32,
    /// The layout version its writes go by.
    pub(crate) version: u64,
    /// The layout version its reads also look under (a job's old one).
    pub(crate) previous: Option<u64>,
    /// The shard move's fence it holds (`db/fence.rs`).
    pub(crate) fence: Option<u64>,
    /// The fence of the latest decided cutover it routes by.
    pub(crate) cut_over: Option<u64>,
}

/// The catalog's state as a heartbeat read it: a change in it is news (a
/// layout stored, activated or retired, a job begun or ended, a shard
/// move's phase or fence).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CatalogMark {
    active: Option<i64>,
    target: Option<i64>,
    job: Option<(i64, String)>,
    phases: Option<String>,
    /// The layout version the latest job's bridge writes by (it changes
    /// once, when every bridge reads under both layouts of a key move).
    runner_version: Option<i64>,
}

/// One bridge's row as others see it.
#[derive(Clone, Debug)]
pub(crate) struct BridgeRow {
    pub(crate) name: String,
    pub(crate) address: String,
    pub(crate) version: u64,
    /// Since its last heartbeat, by the catalog's clock.
    pub(crate) age_ms: u64,
    /// Whether it started the job running now.
    pub(crate) runs_job: bool,
}

/// Records `beat` (the heartbeat is the catalog's `now()`; a new process
/// under a known name starts its row over) and answers the catalog's
/// state, in one statement.
pub(crate) async fn heartbeat(
    client: &impl GenericClient,
    beat: &Beat<'_>,
) -> Result<CatalogMark, tokio_postgres::Error> {
    let row = client
        .query_one(
            "WITH beat AS (
                 INSERT INTO ecoshard.bridges (name, address, pid, version, previous, fence,
                     cut_over)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (name) DO UPDATE SET address = EXCLUDED.address,
                     pid = EXCLUDED.pid, heartbeat = now(), version = EXCLUDED.version,
                     previous = EXCLUDED.previous, fence = EXCLUDED.fence,
                     cut_over = EXCLUDED.cut_over,
                     started_at = CASE WHEN bridges.pid = EXCLUDED.pid
                                       THEN bridges.started_at ELSE now() END
                 RETURNING 1)
             SELECT (SELECT count(*) FROM beat),
                 (SELECT version FROM ecoshard.layout WHERE state = 'active'),
                 (SELECT version FROM ecoshard.layout WHERE state = 'target'),
                 job.id, job.state,
                 (SELECT string_agg(shard || ':' || phase || coalesce(':' || fence, ''), ','
                                    ORDER BY shard)
                    FROM ecoshard.shard_move WHERE shard_move.job = job.id),
                 (SELECT version FROM ecoshard.bridges WHERE name = job.runner)
             FROM (SELECT 1) one
             LEFT JOIN LATERAL (SELECT id, state, runner FROM ecoshard.rebalance
                                ORDER BY id DESC LIMIT 1) job ON true",
            &[
                &beat.name,
                &beat.address,
                &(beat.pid as i32),
                &(beat.version as i64),
                &beat.previous.map(|version| version as i64),
                &beat.fence.map(|fence| fence as i64),
                &beat.cut_over.map(|fence| fence as i64),
            ],
        )
        .await?;
    let job: Option<i64> = row.get(3);
    Ok(CatalogMark {
        active: row.get(1),
        target: row.get(2),
        job: job.map(|id| (id, row.get(4))),
        phases: row.get(5),
        runner_version: row.get(6),
    })
}

/// The layout version bridge `name` last said its writes go by, if it has
/// a row.
pub(crate) async fn version_of(
    client: &impl GenericClient,
    name: &str,
) -> Result<Option<u64>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT version FROM ecoshard.bridges WHERE name = $1",
            &[&name],
        )
        .await?;
    Ok(row.map(|row| row.get::<_, i64>(0).max(0) as u64))
}

/// Tells every bridge listening on [`CHANNEL`] to look at the catalog now
/// (a job's bridge changed the routing it writes by).
pub(crate) async fn notify(client: &impl GenericClient) -> Result<(), tokio_postgres::Error> {
    client
        .execute("SELECT pg_notify($1, '')", &[&CHANNEL])
        .await?;
    Ok(())
}

/// The bridges that heartbeated within the last minute, by name.
pub(crate) async fn list(
    client: &impl GenericClient,
) -> Result<Vec<BridgeRow>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT name, address, version,
                 (extract(epoch FROM now() - heartbeat) * 1000)::bigint,
                 name IS NOT DISTINCT FROM (SELECT runner FROM ecoshard.rebalance
                                            WHERE state = 'running' ORDER BY id DESC LIMIT 1)
             FROM ecoshard.bridges WHERE heartbeat > now() - interval '60 seconds'
             ORDER BY name",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| BridgeRow {
            name: row.get(0),
            address: row.get(1),
            version: row.get::<_, i64>(2).max(0) as u64,
            age_ms: row.get::<_, i64>(3).max(0) as u64,
            runs_job: row.get(4),
        })
        .collect())
}

/// The live bridges other than `name` (heartbeat within `lease`, by the
/// catalog's clock) that do not follow `version` with `previous`.
pub(crate) async fn lagging(
    client: &impl GenericClient,
    name: &str,
    lease: Duration,
    (version, previous): (u64, Option<u64>),
) -> Result<Vec<String>, tokio_postgres::Error> {
    let previous = previous.map(|version| version as i64);
    live_others_where(
        client,
        (name, lease),
        "version < $3 OR previous IS DISTINCT FROM $4",
        &[&(version as i64), &previous],
    )
    .await
}

/// The names of the live bridges other than `name` (heartbeat within
/// `lease`, by the catalog's clock) for which `condition` holds, in name
/// order; `condition`'s parameters are `$3` on, given in `parameters`.
pub(crate) async fn live_others_where(
    client: &impl GenericClient,
    (name, lease): (&str, Duration),
    condition: &str,
    parameters: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<String>, tokio_postgres::Error> {
    let sql = format!(
        "SELECT name FROM ecoshard.bridges
          WHERE name <> $1
            AND heartbeat > now() - make_interval(secs => $2::float8)
            AND ({condition})
          ORDER BY name"
    );
    let seconds = lease.as_secs_f64();
    let mut all: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&name, &seconds];
    all.extend_from_slice(parameters);
    let rows = client.query(&sql, &all).await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// Records `name` as the bridge running job `id` (it holds the job's
/// lock): from this commit on, no batch of another runner counts.
pub(crate) async fn take_job(
    client: &impl GenericClient,
    id: u64,
    name: &str,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "UPDATE ecoshard.rebalance SET runner = $2 WHERE id = $1",
            &[&(id as i64), &name],
        )
        .await?;
    Ok(())
}

/// A connection of its own to the catalog, listening on [`CHANNEL`]:
/// `on_news` is called at each notification. The task ends when the
/// connection does; drop the client to end it.
pub(crate) async fn listen(
    config: &tokio_postgres::Config,
    on_news: impl Fn() + Send + 'static,
) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let task = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(_))) => on_news(),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            }
        }
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    Ok((client, task))
}

/// The first key of every job's advisory lock (the second is the job's
/// id): a space of its own, apart from the catalog's other advisory locks,
/// which take one `bigint` key (`pg_locks` shows a two-key lock with
/// `objsubid` 2, a `bigint` one with 1, so the two never meet).
pub(crate) const JOB_LOCK_SPACE: i32 = 0x6a6f_6273; // "jobs"

/// The second key of job `id`'s lock: its id's low 32 bits (one job runs
/// at a time, so two jobs 2^32 apart never hold it together).
fn job_key(id: u64) -> i32 {
    id as u32 as i32
}

/// A session of its own on the catalog (`config`: `c1`'s primary) for a
/// job's lock, with TCP keepalives both ways: the server ends it (and so
/// lets the lock go) within some 11 s of this host vanishing, and this
/// side learns as soon that the server is gone. The task ends when the
/// session does; drop the client to end it.
pub(crate) async fn lock_session(
    config: &tokio_postgres::Config,
) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), tokio_postgres::Error> {
    let mut config = config.clone();
    config
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(5))
        .keepalives_interval(Duration::from_secs(2))
        .keepalives_retries(3);
    let (client, connection) = config.connect(NoTls).await?;
    let task = tokio::spawn(async move {
        let _ = connection.await;
    });
    client
        .batch_execute(
            "SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; \
             SET tcp_keepalives_count = 3",
        )
        .await?;
    Ok((client, task))
}

/// Tries job `id`'s lock for `client`'s session (never waits): whether the
/// session holds it now. It holds it until the session ends.
pub(crate) async fn try_job_lock(
    client: &tokio_postgres::Client,
    id: u64,
) -> Result<bool, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT pg_try_advisory_lock($1, $2)",
            &[&JOB_LOCK_SPACE, &job_key(id)],
        )
        .await?;
    Ok(row.get(0))
}

/// The job running now, as the bridges that may take it over see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RunningJob {
    /// Its id.
    pub(crate) id: u64,
    /// The bridge recorded as running it.
    pub(crate) runner: Option<String>,
    /// Whether that bridge's heartbeat is at least `lease` old by the
    /// catalog's clock (or it has none).
    pub(crate) lapsed: bool,
}

/// The job running now, its runner and whether the runner's lease (`lease`)
/// has lapsed.
pub(crate) async fn running_job(
    client: &impl GenericClient,
    lease: Duration,
) -> Result<Option<RunningJob>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT r.id, r.runner,
                 b.heartbeat IS NULL OR b.heartbeat <= now() - make_interval(secs => $1::float8)
             FROM ecoshard.rebalance r LEFT JOIN ecoshard.bridges b ON b.name = r.runner
             WHERE r.state = 'running' ORDER BY r.id DESC LIMIT 1",
            &[&lease.as_secs_f64()],
        )
        .await?;
    Ok(row.map(|row| RunningJob {
        id: row.get::<_, i64>(0) as u64,
        runner: row.get(1),
        lapsed: row.get(2),
    }))
}
