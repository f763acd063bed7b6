//! The service's heartbeat: every [`TICK`] the nodes are checked (by the
//! cluster's monitor), the failover policy looks at what the checks found,
//! and a `Tick` (nodes, lag, counters and rates, the job, the failover) goes
//! to the live stream. Once a second the row estimates of every shard are
//! read from its cluster's primary's statistics, every cluster at once.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ecoshard_core::ShardLoad;
use ecoshard_core::wire::{NodeCount, Stats, Tick};

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
            bridges: state.coordination().views(),
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
/// is done), each from its cluster's primary's statistics: one catalog
/// query per cluster, all clusters at once, however large the tables (see
/// [`crate::db::row_estimates`]).
///
/// A cluster whose primary does not answer within [`ROW_COUNT_TIMEOUT`]
/// keeps its shards' last estimates (nothing can be written there until a
/// primary answers again); a shard no round has estimated yet is left out
/// (unknown). The other clusters' estimates go on.
///
/// A server's statistics start over when it crashes, and a promoted
/// standby has none of the primary's: each time a cluster's primary's
/// statistics began anew (another primary, or another `stats_reset`), and
/// once when the bridge starts, the tables of that cluster not analyzed or
/// vacuumed since are analyzed, which gives them an estimate again.
#[derive(Debug, Default)]
struct RowCounter {
    /// Per cluster: its primary and the start of its statistics when the
    /// cluster's tables were last analyzed for them.
    analyzed_for: BTreeMap<String, StatsEpoch>,
}

/// A primary's name and when its statistics began.
type StatsEpoch = (String, Option<SystemTime>);

/// What one cluster's primary estimated.
struct Counted {
    /// Rows per shard name.
    rows: Vec<(String, u64)>,
    /// The statistics its lost tables were analyzed for in this round.
    analyzed_for: Option<StatsEpoch>,
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
        let held = table.held_shards();
        let mut by_cluster: Vec<(&str, Vec<&ShardSql>)> = Vec::new();
        for &(cluster, shard) in &held {
            match by_cluster.iter_mut().find(|(name, _)| *name == cluster) {
                Some((_, shards)) => shards.push(shard),
                None => by_cluster.push((cluster, vec![shard])),
            }
        }
        let asked = by_cluster.iter().map(|(name, shards)| {
            let analyzed_for = self.analyzed_for.get(*name);
            async move {
                let primary = state.clusters().get(name)?.primary();
                estimate(primary, shards, analyzed_for).await
            }
        });
        let answers = futures::future::join_all(asked).await;
        let last = state.rows();
        let mut counted: BTreeMap<&str, ShardLoad> = BTreeMap::new();
        for ((cluster, shards), answer) in by_cluster.iter().zip(answers) {
            let Some(answer) = answer else {
                for shard in shards {
                    let kept = last.iter().find(|load| load.shard == shard.name);
                    if let Some(kept) = kept {
                        counted.insert(&shard.name, kept.clone());
                    }
                }
                continue;
            };
            if let Some(epoch) = answer.analyzed_for {
                self.analyzed_for.insert(cluster.to_string(), epoch);
            }
            let named = state.clusters().several().then(|| cluster.to_string());
            for (shard, (name, rows)) in shards.iter().zip(answer.rows) {
                let load = ShardLoad {
                    shard: name,
                    keys: rows,
                    cluster: named.clone(),
                };
                counted.insert(&shard.name, load);
            }
        }
        let rows = held
            .iter()
            .filter_map(|(_, shard)| counted.remove(shard.name.as_str()))
            .collect();
        state.set_rows(rows);
    }
}

/// Rows per shard of `shards` as PostgreSQL estimates them on `primary`,
/// after analyzing the tables whose statistics were lost when they began
/// anew since `analyzed_for`; `None` when it did not answer in time.
async fn estimate(
    primary: &Node,
    shards: &[&ShardSql],
    analyzed_for: Option<&StatsEpoch>,
) -> Option<Counted> {
    let deadline = tokio::time::Instant::now() + ROW_COUNT_TIMEOUT;
    let client = crate::cluster::checkout(&primary.pool, deadline)
        .await
        .ok()?;
    let schemas: Vec<String> = shards.iter().map(|shard| shard.schema.clone()).collect();
    let estimates = tokio::time::timeout_at(deadline, crate::db::row_estimates(&client, &schemas));
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
    let mut analyzed = None;
    if analyzed_for != Some(&epoch) {
        if !analyze_lost(&client, shards, &estimates).await {
            crate::cluster::discard(client);
            return None;
        }
        analyzed = Some(epoch);
    }
    let rows = shards
        .iter()
        .map(|shard| {
            let estimate = estimates.iter().find(|each| each.schema == shard.schema);
            (shard.name.clone(), estimate.map_or(0, |each| each.rows))
        })
        .collect();
    Some(Counted {
        rows,
        analyzed_for: analyzed,
    })
}

/// `ANALYZE` of each of `shards` whose statistics `estimates` says were
/// lost; `false` when one ran past [`ANALYZE_TIMEOUT`] (the connection is
/// then not to be reused).
async fn analyze_lost(
    client: &deadpool_postgres::Object,
    shards: &[&ShardSql],
    estimates: &[crate::db::RowEstimate],
) -> bool {
    for shard in shards {
        let lost = estimates
            .iter()
            .any(|estimate| estimate.schema == shard.schema && estimate.needs_analyze);
        if !lost {
            continue;
        }
        match tokio::time::timeout(ANALYZE_TIMEOUT, crate::db::analyze(client, shard)).await {
            Ok(Ok(())) => tracing::debug!("analyzed {}", shard.table),
            Ok(Err(error)) => {
                tracing::debug!("analyzing {}: {}", shard.table, crate::db::describe(&error))
            }
            Err(_) => return false,
        }
    }
    true
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
        let reads: Vec<u64> = node_counts(&mut stats).map(|count| count.count).collect();
        let now = Instant::now();
        self.samples.push_back((now, stats.writes, reads));
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
                for (count, then) in node_counts(&mut stats).zip(reads_then) {
                    count.per_sec = rate(count.count, *then);
                }
                stats.reads_per_sec = every_read(&stats).map(|count| count.per_sec).sum();
            }
        }
        stats.failed_reads = service.counters().failed_reads.load(Ordering::Relaxed);
        stats
    }
}

/// Every read count of `stats`, in a fixed order: the first cluster's
/// nodes (`reads`), then each cluster's when there are several.
fn node_counts(stats: &mut Stats) -> impl Iterator<Item = &mut NodeCount> {
    stats.reads.iter_mut().chain(
        stats
            .clusters
            .iter_mut()
            .flat_map(|cluster| cluster.reads.iter_mut()),
    )
}

/// Each node's count once: every cluster's nodes when there are several,
/// else the one cluster's.
fn every_read(stats: &Stats) -> Box<dyn Iterator<Item = &NodeCount> + '_> {
    if stats.clusters.is_empty() {
        Box::new(stats.reads.iter())
    } else {
        Box::new(
            stats
                .clusters
                .iter()
                .flat_map(|cluster| cluster.reads.iter()),
        )
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or(0)
}
