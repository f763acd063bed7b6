//! The service's heartbeat: every [`TICK`] the nodes are checked (by the
//! cluster's monitor), the failover policy looks at what the checks found,
//! and a `Tick` (nodes, lag, counters and rates, the job, the failover) goes
//! to the live stream. Once a second the row estimates of every shard are
//! read from PostgreSQL's statistics.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ecoshard_core::ShardLoad;
use ecoshard_core::wire::{Stats, Tick};

use super::Service;
use crate::cluster::Node;
use crate::db::ShardSql;

/// Time between ticks.
pub const TICK: Duration = Duration::from_millis(250);

/// Starts the monitor and the row counter; they end with the runtime. The
/// counter's first round runs before this returns, so that a table it has
/// to analyze is analyzed before any request of this bridge writes to it.
pub(crate) async fn start(state: &Service) {
    let ticker = state.clone();
    tokio::spawn(async move { run_ticks(ticker).await });
    let mut counter = RowCounter::default();
    counter.round(state).await;
    let state = state.clone();
    tokio::spawn(async move { counter.run(&state).await });
}

async fn run_ticks(state: Service) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut rates = Rates::default();
    loop {
        interval.tick().await;
        check_every_cluster(&state).await;
        super::failover::after_check(&state);
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
            clusters: state.clusters_nodes(),
        };
        match serde_json::to_string(&tick) {
            Ok(json) => state.publish_tick(Arc::from(json), stats),
            Err(error) => tracing::error!("serialising a tick: {error}"),
        }
    }
}

/// Checks every node of every cluster, all at once.
pub(crate) async fn check_every_cluster(state: &Service) {
    let at_ms = now_ms();
    futures::future::join_all(
        state
            .clusters()
            .all()
            .iter()
            .map(|cluster| crate::cluster::monitor::check_nodes(cluster, at_ms)),
    )
    .await;
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
    async fn run(mut self, state: &Service) {
        let mut interval = tokio::time::interval(ROW_COUNT_EVERY);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            interval.tick().await;
            self.round(state).await;
        }
    }

    async fn round(&mut self, state: &Service) {
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
                        tracing::debug!(
                            "analyzing {}: {}",
                            shard.table,
                            crate::db::describe(&error)
                        )
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
                    cluster: None,
                })
                .collect(),
        )
    }
}

/// Writes and reads per second (in all and per node) over the last second.
#[derive(Debug, Default)]
struct Rates {
    /// When, rows written, reads per node.
    samples: VecDeque<(Instant, u64, Vec<u64>)>,
}

impl Rates {
    fn update(&mut self, service: &Service) -> Stats {
        let mut stats = service.stats();
        let reads: Vec<u64> = stats.reads.iter().map(|count| count.count).collect();
        let now = Instant::now();
        self.samples.push_back((now, stats.writes, reads.clone()));
        while self.samples.len() > 2
            && now.duration_since(self.samples[0].0) > Duration::from_millis(1_050)
        {
            self.samples.pop_front();
        }
        if let Some((then, writes, reads_then)) = self.samples.front() {
            let seconds = now.duration_since(*then).as_secs_f64();
            if seconds > 0.0 {
                let rate = |now: u64, then: u64| now.saturating_sub(then) as f64 / seconds;
                stats.writes_per_sec = rate(stats.writes, *writes);
                for (count, then) in stats.reads.iter_mut().zip(reads_then) {
                    count.per_sec = rate(count.count, *then);
                }
                stats.reads_per_sec = stats.reads.iter().map(|count| count.per_sec).sum();
            }
        }
        stats.failed_reads = service.counters().failed_reads.load(Ordering::Relaxed);
        stats
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or(0)
}
