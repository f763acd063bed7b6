//! The monitor: every 250 ms it checks every node, reads the primary's
//! `pg_stat_replication`, decides which standbys are in the read rotation, and
//! publishes a `Tick` to the live stream. Once a second it reads PostgreSQL's
//! row estimate of every shard.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ecoshard_core::ShardLoad;
use ecoshard_core::wire::{LagSample, Stats, Tick};
use tokio_postgres::types::PgLsn;

use crate::cluster::{Cluster, Node};
use crate::routing::ShardSql;
use crate::service::AppState;

/// Time between ticks.
pub const TICK: Duration = Duration::from_millis(250);
/// Longest a health check may take before the node counts as down.
const CHECK_TIMEOUT: Duration = Duration::from_millis(700);

/// One row of `pg_stat_replication`.
#[derive(Debug)]
struct Replication {
    application_name: String,
    state: Option<String>,
    sync_state: Option<String>,
    write_lag_ms: Option<f64>,
    flush_lag_ms: Option<f64>,
    replay_lag_ms: Option<f64>,
    byte_lag: Option<i64>,
}

const REPLICATION_SQL: &str = "SELECT application_name, state, sync_state,
        (EXTRACT(epoch FROM write_lag) * 1000)::float8,
        (EXTRACT(epoch FROM flush_lag) * 1000)::float8,
        (EXTRACT(epoch FROM replay_lag) * 1000)::float8,
        pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::int8
   FROM pg_stat_replication";

const CHECK_SQL: &str = "SELECT pg_is_in_recovery(),
        CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END";

/// What one check found.
#[derive(Debug, Default)]
struct Check {
    in_recovery: bool,
    lsn: Option<u64>,
    replication: Vec<Replication>,
}

/// Starts the monitor and the row counter; they end with the runtime. The
/// counter's first round runs before this returns, so that a table it has
/// to analyze is analyzed before any request of this bridge writes to it.
pub async fn start(state: &AppState) {
    let ticker = state.clone();
    tokio::spawn(async move { run_ticks(ticker).await });
    let mut counter = RowCounter::default();
    counter.round(state).await;
    let state = state.clone();
    tokio::spawn(async move { counter.run(&state).await });
}

async fn run_ticks(state: AppState) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut rates = Rates::default();
    loop {
        interval.tick().await;
        check_nodes(state.cluster()).await;
        crate::service::failover::after_check(&state);
        let stats = rates.update(&state);
        let tick = Tick {
            at_ms: now_ms(),
            nodes: state.cluster().nodes.iter().map(Node::status).collect(),
            stats: stats.clone(),
            // Without its plan, which grows with the shard count: the page
            // fetches it once from GET /api/rebalance/{id}.
            rebalance: state.rebalancer().job_summary(),
            layout_version: state.routing().table().current.version,
            failover: state.failover().view(),
        };
        match serde_json::to_string(&tick) {
            Ok(json) => state.publish_tick(Arc::from(json), stats),
            Err(error) => tracing::error!("serialising a tick: {error}"),
        }
    }
}

/// Time between two row estimates.
const ROW_COUNT_EVERY: Duration = Duration::from_secs(1);
/// Longest the estimates' query may take.
const ROW_COUNT_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest an `ANALYZE` of a table whose statistics are lost may take.
const ANALYZE_TIMEOUT: Duration = Duration::from_secs(10);

/// Every second, the row estimates of every shard (during a rebalance also
/// of the shards only the old layout has, which still hold rows until it
/// is done), from the primary's statistics: one catalog query, however
/// large the tables (see [`crate::db::row_estimates`]).
///
/// A server's statistics start over when it crashes, and a promoted
/// standby has none of the primary's: each time the primary's statistics
/// began anew (another primary, or another `stats_reset`), and once when
/// the bridge starts, the tables not analyzed or vacuumed since are
/// analyzed, which gives them an estimate again.
#[derive(Debug, Default)]
struct RowCounter {
    /// The primary and the start of its statistics when tables were last
    /// analyzed for them.
    analyzed_for: Option<(String, Option<SystemTime>)>,
}

impl RowCounter {
    async fn run(mut self, state: &AppState) {
        let mut interval = tokio::time::interval(ROW_COUNT_EVERY);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            interval.tick().await;
            self.round(state).await;
        }
    }

    async fn round(&mut self, state: &AppState) {
        let table = state.routing().table();
        let shards: Vec<&ShardSql> = table
            .current
            .shards
            .iter()
            .chain(table.leaving_shards())
            .collect();
        if let Some(rows) = self.estimate(state.cluster().primary(), &shards).await {
            state.set_rows(rows);
        }
    }

    /// Rows per shard of `shards` as PostgreSQL estimates them on
    /// `primary`; `None` when it did not answer in time.
    async fn estimate(&mut self, primary: &Node, shards: &[&ShardSql]) -> Option<Vec<ShardLoad>> {
        let deadline = tokio::time::Instant::now() + ROW_COUNT_TIMEOUT;
        let client = crate::cluster::checkout(&primary.pool, deadline)
            .await
            .ok()?;
        let schemas: Vec<String> = shards.iter().map(|shard| shard.schema.clone()).collect();
        let estimates =
            tokio::time::timeout_at(deadline, crate::db::row_estimates(&client, &schemas));
        let (estimates, stats_began) = match estimates.await {
            Ok(Ok(estimates)) => estimates,
            Ok(Err(error)) => {
                tracing::debug!("row estimates: {}", crate::db::describe(&error));
                return None;
            }
            Err(_) => {
                crate::cluster::discard(client);
                return None;
            }
        };
        let epoch = (primary.name().to_string(), stats_began);
        if self.analyzed_for.as_ref() != Some(&epoch) {
            for shard in shards {
                let lost = estimates
                    .iter()
                    .any(|estimate| estimate.schema == shard.schema && estimate.needs_analyze);
                if !lost {
                    continue;
                }
                match tokio::time::timeout(ANALYZE_TIMEOUT, crate::db::analyze(&client, shard))
                    .await
                {
                    Ok(Ok(())) => tracing::debug!("analyzed {}", shard.table),
                    Ok(Err(error)) => {
                        tracing::debug!("ANALYZE {}: {}", shard.table, crate::db::describe(&error))
                    }
                    Err(_) => {
                        crate::cluster::discard(client);
                        return None;
                    }
                }
            }
            self.analyzed_for = Some(epoch);
        }
        Some(
            shards
                .iter()
                .map(|shard| ShardLoad {
                    shard: shard.name.clone(),
                    keys: estimates
                        .iter()
                        .find(|estimate| estimate.schema == shard.schema)
                        .map_or(0, |estimate| estimate.rows),
                })
                .collect(),
        )
    }
}

/// Checks every node at once and updates their state.
pub async fn check_nodes(cluster: &Cluster) {
    let checks = futures::future::join_all(
        cluster
            .nodes
            .iter()
            .map(|node| tokio::time::timeout(CHECK_TIMEOUT, check(node))),
    )
    .await;
    let checks: Vec<Option<Check>> = checks
        .into_iter()
        .map(|outcome| outcome.ok().and_then(Result::ok))
        .collect();
    let at_ms = now_ms();
    let primary = cluster.primary();
    let primary_index = cluster
        .nodes
        .iter()
        .position(|node| std::ptr::eq(node, primary))
        .unwrap_or(0);
    let primary_check = checks[primary_index]
        .as_ref()
        .filter(|check| !check.in_recovery);
    primary.record_check(
        primary_check.is_some(),
        primary_check.and_then(|check| check.lsn),
        None,
        false,
    );
    for (index, (node, check)) in cluster.nodes.iter().zip(&checks).enumerate() {
        if index == primary_index {
            continue;
        }
        if check.as_ref().is_some_and(|check| !check.in_recovery) {
            tracing::error!(
                "{} answers as a primary but is not the bridge's primary ({}): kept out of the read rotation",
                node.name(),
                primary.name()
            );
        }
        let up = check.is_some();
        let row = primary_check.and_then(|primary| {
            primary
                .replication
                .iter()
                .find(|row| row.application_name == node.name())
        });
        let lag = LagSample {
            node: node.name().to_string(),
            state: row.and_then(|row| row.state.clone()),
            sync_state: row.and_then(|row| row.sync_state.clone()),
            write_lag_ms: row.and_then(|row| row.write_lag_ms),
            flush_lag_ms: row.and_then(|row| row.flush_lag_ms),
            replay_lag_ms: row.and_then(|row| row.replay_lag_ms),
            byte_lag: row.and_then(|row| row.byte_lag),
            up,
            at_ms,
        };
        let eligible = in_rotation(
            check.as_ref().map(|check| check.in_recovery),
            primary_check.is_some(),
            row.map(|row| (row.state.as_deref(), row.replay_lag_ms)),
            cluster.max_lag_ms,
        );
        node.record_check(up, check.as_ref().and_then(|c| c.lsn), Some(lag), eligible);
    }
}

/// Whether a standby serves eventual reads: it answered and is in recovery,
/// and either the primary is down (then the standbys are the best there is)
/// or the primary lists it as `streaming` with a replay lag within the bound
/// (NULL lag, normal when idle, counts as none). A standby the primary does
/// not list may be far behind: out.
fn in_rotation(
    in_recovery: Option<bool>,
    primary_up: bool,
    replication: Option<(Option<&str>, Option<f64>)>,
    max_lag_ms: f64,
) -> bool {
    if in_recovery != Some(true) {
        return false;
    }
    if !primary_up {
        return true;
    }
    match replication {
        Some((state, replay_lag_ms)) => {
            state == Some("streaming") && replay_lag_ms.unwrap_or(0.0) <= max_lag_ms
        }
        None => false,
    }
}

async fn check(node: &Node) -> Result<Check, String> {
    let client = node.monitor_pool.get().await.map_err(|e| e.to_string())?;
    let statement = client
        .prepare_cached(CHECK_SQL)
        .await
        .map_err(|e| e.to_string())?;
    let row = client
        .query_one(&statement, &[])
        .await
        .map_err(|e| e.to_string())?;
    let in_recovery: bool = row.get(0);
    let lsn: Option<PgLsn> = row.get(1);
    let mut check = Check {
        in_recovery,
        lsn: lsn.map(u64::from),
        replication: Vec::new(),
    };
    if node.is_primary() && !in_recovery {
        let statement = client
            .prepare_cached(REPLICATION_SQL)
            .await
            .map_err(|e| e.to_string())?;
        for row in client
            .query(&statement, &[])
            .await
            .map_err(|e| e.to_string())?
        {
            check.replication.push(Replication {
                application_name: row.get(0),
                state: row.get(1),
                sync_state: row.get(2),
                write_lag_ms: row.get(3),
                flush_lag_ms: row.get(4),
                replay_lag_ms: row.get(5),
                byte_lag: row.get(6),
            });
        }
    }
    Ok(check)
}

/// Writes and reads per second over the last second.
#[derive(Debug, Default)]
struct Rates {
    samples: VecDeque<(Instant, u64, u64)>,
}

impl Rates {
    fn update(&mut self, state: &AppState) -> Stats {
        let mut stats = state.stats();
        let reads: u64 = stats.reads.iter().map(|count| count.count).sum();
        let now = Instant::now();
        self.samples.push_back((now, stats.writes, reads));
        while self.samples.len() > 2
            && now.duration_since(self.samples[0].0) > Duration::from_millis(1_050)
        {
            self.samples.pop_front();
        }
        if let Some((then, writes, reads_then)) = self.samples.front().copied() {
            let seconds = now.duration_since(then).as_secs_f64();
            if seconds > 0.0 {
                stats.writes_per_sec = (stats.writes - writes) as f64 / seconds;
                stats.reads_per_sec = (reads - reads_then) as f64 / seconds;
            }
        }
        stats.failed_reads = state.counters().failed_reads.load(Ordering::Relaxed);
        stats
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(
        in_recovery: Option<bool>,
        primary_up: bool,
        replication: Option<(Option<&str>, Option<f64>)>,
        expected: bool,
    ) {
        assert_eq!(
            in_rotation(in_recovery, primary_up, replication, 1_000.0),
            expected,
            "{in_recovery:?} {primary_up} {replication:?}"
        );
    }

    #[test]
    fn rotation_table() {
        let streaming = Some("streaming");
        check(Some(true), true, Some((streaming, None)), true);
        check(Some(true), true, Some((streaming, Some(12.0))), true);
        check(Some(true), true, Some((streaming, Some(1_000.0))), true);
        check(Some(true), true, Some((streaming, Some(1_000.5))), false);
        check(Some(true), true, Some((Some("catchup"), None)), false);
        check(Some(true), true, Some((None, None)), false);
        check(Some(true), true, None, false);
        check(Some(true), false, None, true);
        check(Some(false), true, Some((streaming, None)), false);
        check(None, true, Some((streaming, None)), false);
        check(None, false, None, false);
    }
}
