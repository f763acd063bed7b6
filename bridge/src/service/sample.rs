//! A sample of the ids the database holds, for the page's explorer: drawn
//! from every shard of the layout in force (and, during a rebalance, from
//! the shards it empties), each shard in proportion to its rows, read from a
//! standby (else the primary) within the read deadline.

use ecoshard_core::ShardLoad;
use ecoshard_core::wire::{Consistency, UserSample};
use tokio::time::Instant;

use super::{Error, Service, input};
use crate::cluster::{Node, checkout, discard};
use crate::db::{self, ShardDraw, ShardSql};

/// How much more than its share a shard's sample asks of PostgreSQL, and
/// how many rows more, so that a Bernoulli draw that comes out short of its
/// expected size still fills the share (four standard deviations and more
/// short, at any share); the `LIMIT` cuts what is over.
const OVERDRAW: f64 = 1.5;
const OVERDRAW_ROWS: f64 = 20.0;

/// Up to `count` ids (default [`UserSample::DEFAULT_COUNT`]) drawn from the
/// shards that hold rows, with the layout version and the rows they held.
pub(crate) async fn sample_users(
    service: &Service,
    count: Option<u64>,
) -> Result<UserSample, Error> {
    let count = count.unwrap_or(UserSample::DEFAULT_COUNT);
    input::sample_count(count)?;
    let table = service.routing().table();
    let shards: Vec<&ShardSql> = table
        .current
        .shards
        .iter()
        .chain(table.leaving_shards())
        .collect();
    let estimates = service.rows();
    let held: Vec<u64> = shards
        .iter()
        .map(|shard| rows_of(&estimates, &shard.name))
        .collect();
    let draws = draws(&held, count);
    let cluster = service.cluster();
    let candidates = cluster.read_candidates(Consistency::Eventual, 0);
    let nodes = candidates
        .ready
        .into_iter()
        .chain(std::iter::once(candidates.primary));
    for node in nodes {
        if let Some(mut ids) = sample_on(node, &shards, &draws, cluster.read_timeout).await {
            ids.truncate(count as usize);
            return Ok(UserSample {
                version: table.current.version,
                rows: held.iter().sum::<u64>().max(ids.len() as u64),
                ids,
                served_by: node.name().to_string(),
            });
        }
    }
    Err(Error::SampleUnavailable {
        primary: cluster.primary().name().to_string(),
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
