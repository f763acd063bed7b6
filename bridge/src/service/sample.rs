//! A sample of the ids the database holds, for the page's explorer: drawn
//! from every shard of the layout in force (and, during a rebalance, from
//! the shards it empties), each shard in proportion to its rows, read on
//! the shard's cluster from a standby (else the primary) within the read
//! deadline, every cluster at once.

use ecoshard_core::ShardLoad;
use ecoshard_core::wire::{Consistency, UserSample};
use tokio::time::Instant;

use super::{Error, Service, input};
use crate::cluster::{Node, checkout, discard};
use crate::db::{self, ShardDraw, ShardSql};
use crate::routing::RoutingTable;

/// How much more than its share a shard's sample asks of PostgreSQL, and
/// how many rows more, so that a Bernoulli draw that comes out short of its
/// expected size still fills the share (four standard deviations and more
/// short, at any share); the `LIMIT` cuts what is over.
const OVERDRAW: f64 = 1.5;
const OVERDRAW_ROWS: f64 = 20.0;

/// Up to `count` ids (default [`UserSample::DEFAULT_COUNT`]) drawn from the
/// shards that hold rows, with the layout version and the rows they held:
/// each cluster's shards read on that cluster, every cluster at once. A
/// cluster none of whose nodes answers fails the whole sample (with its
/// primary named): a sample without its shards' ids would show the
/// explorer a database where they hold nothing.
pub(crate) async fn sample_users(
    service: &Service,
    count: Option<u64>,
) -> Result<UserSample, Error> {
    let count = count.unwrap_or(UserSample::DEFAULT_COUNT);
    input::sample_count(count)?;
    let table = service.routing().table();
    let held_shards = table.held_shards();
    let estimates = service.rows();
    let held: Vec<u64> = held_shards
        .iter()
        .map(|(_, shard)| rows_of(&estimates, &shard.name))
        .collect();
    let mut by_cluster: Vec<ClusterDraws<'_>> = Vec::new();
    for (&(cluster, shard), draw) in held_shards.iter().zip(draws(&held, count)) {
        let at = by_cluster.iter().position(|each| each.cluster == cluster);
        let at = at.unwrap_or_else(|| {
            by_cluster.push(ClusterDraws {
                cluster,
                shards: Vec::new(),
                draws: Vec::new(),
            });
            by_cluster.len() - 1
        });
        by_cluster[at].shards.push(shard);
        by_cluster[at].draws.push(draw);
    }
    let samples = by_cluster
        .iter()
        .map(|each| sample_cluster(service, &table, each));
    let mut ids = Vec::new();
    let mut served_by = Vec::new();
    for sample in futures::future::join_all(samples).await {
        let (node, drawn) = sample?;
        ids.extend(drawn);
        served_by.push(node);
    }
    ids.truncate(count as usize);
    Ok(UserSample {
        version: table.current.version,
        rows: held.iter().sum::<u64>().max(ids.len() as u64),
        ids,
        served_by: served_by.join(", "),
    })
}

/// One cluster's shards and their draws.
struct ClusterDraws<'t> {
    cluster: &'t str,
    shards: Vec<&'t ShardSql>,
    draws: Vec<ShardDraw>,
}

/// The ids drawn on `each`'s cluster, from a standby in the read rotation
/// (that has replayed up to the table's bound), else the primary, each
/// within the read deadline; with the node that answered (`c2/standby-1`
/// with several clusters).
async fn sample_cluster(
    service: &Service,
    table: &RoutingTable,
    each: &ClusterDraws<'_>,
) -> Result<(String, Vec<String>), Error> {
    let cluster = service.cluster_named(each.cluster)?;
    let named = |node: &Node| match service.clusters().several() {
        true => format!("{}/{}", cluster.name(), node.name()),
        false => node.name().to_string(),
    };
    let mut candidates = cluster.read_candidates(Consistency::Eventual, 0);
    let bound = table.replay_bound(cluster.name());
    candidates.ready.retain(|node| node.lsn() >= bound);
    let nodes = candidates
        .ready
        .into_iter()
        .chain(std::iter::once(candidates.primary));
    for node in nodes {
        let sample = sample_on(node, &each.shards, &each.draws, cluster.read_timeout);
        if let Some(ids) = sample.await {
            return Ok((named(node), ids));
        }
    }
    Err(Error::SampleUnavailable {
        primary: named(cluster.primary()),
    })
}

/// The sample on `node` within `limit`; `None` when it failed or ran past it.
async fn sample_on(
    node: &Node,
    shards: &[&ShardSql],
    draws: &[ShardDraw],
    limit: std::time::Duration,
) -> Option<Vec<String>> {
    let deadline = Instant::now() + limit;
    let client = checkout(&node.pool, deadline).await.ok()?;
    let sample = db::sample_user_ids(&client, shards, draws);
    match tokio::time::timeout_at(deadline, sample).await {
        Ok(Ok(ids)) => Some(ids),
        Ok(Err(error)) => {
            tracing::debug!("sample on {}: {}", node.name(), db::describe(&error));
            None
        }
        Err(_) => {
            discard(client);
            None
        }
    }
}

/// The rows the estimates give `shard` (0 when they have none yet).
fn rows_of(estimates: &[ShardLoad], shard: &str) -> u64 {
    estimates
        .iter()
        .find(|load| load.shard == shard)
        .map_or(0, |load| load.keys)
}

/// Each shard's draw for `count` ids in all, from the rows each holds: its
/// share of `count` in proportion to its rows, each row drawn with a chance
/// a little over share ÷ rows. When the shards hold no more than `count`
/// rows (or their estimates are not in yet), every row is taken.
fn draws(held: &[u64], count: u64) -> Vec<ShardDraw> {
    let total: u64 = held.iter().sum();
    if total <= count {
        let all = ShardDraw {
            limit: count as i64,
            percent: 100.0,
        };
        return vec![all; held.len()];
    }
    held.iter()
        .map(|&rows| {
            let share = (count as f64 * rows as f64 / total as f64).ceil();
            let percent = if rows == 0 {
                100.0
            } else {
                (100.0 * (OVERDRAW * share + OVERDRAW_ROWS) / rows as f64).min(100.0)
            };
            ShardDraw {
                limit: share as i64,
                percent: percent as f32,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(held: &[u64], count: u64, expected: &[(i64, f32)]) {
        let got: Vec<(i64, f32)> = draws(held, count)
            .iter()
            .map(|draw| (draw.limit, draw.percent))
            .collect();
        assert_eq!(got, expected, "{held:?} for {count}");
    }

    #[test]
    fn each_shard_gives_its_share_of_the_sample() {
        check(&[], 10, &[]);
        check(&[3, 4], 10, &[(10, 100.0), (10, 100.0)]);
        check(&[0, 0], 10, &[(10, 100.0), (10, 100.0)]);
        check(&[1_000, 1_000], 100, &[(50, 9.5), (50, 9.5)]);
        check(&[3_000, 1_000], 100, &[(75, 4.4166665), (25, 5.75)]);
        check(&[10_000, 0], 100, &[(100, 1.7), (0, 100.0)]);
        check(&[90, 20], 100, &[(82, 100.0), (19, 100.0)]);
    }
}
