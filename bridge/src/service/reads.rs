//! Serving a read by key: which nodes to try and in what order, each try
//! within the read deadline, and why none answered.
//!
//! A node that fails a read fast (refused, gone) costs nothing: the next
//! candidate is tried. A node that does not answer within the deadline is
//! taken out of the rotation until a health check passes, and the read
//! goes on to the next candidate; a read gives up after two such
//! deadlines, so it waits at most twice the deadline, and one hung node
//! costs it at most one. The primary is the last candidate; a strong read
//! has no other.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ecoshard_core::wire::{Consistency, ReadResult, User};
use tokio::time::Instant;

use super::{Error, Service, coordination, failover, input};
use crate::cluster::{Cluster, Node, checkout, discard};
use crate::db;
use crate::db::BatchSql;
use crate::db::ShardSql;
use crate::routing::RoutingTable;

/// Deadlines one read may run past before it gives up.
const MAX_TIMEOUTS: usize = 2;

/// What a node answered: the row and the name of its shard, or not found.
type Found = Option<(User, String)>;

/// A read answered, and by which node.
#[derive(Debug)]
struct Served<'a> {
    /// The node that answered.
    node: &'a Node,
    /// What it found.
    found: Found,
}

/// Why no node answered a read.
#[derive(Debug, PartialEq, Eq)]
enum ReadError {
    /// A strong read: the primary did not answer within the deadline.
    PrimaryTimedOut,
    /// No candidate answered (each failed, or ran past the deadline: the
    /// nodes named in `timed_out`).
    Unavailable {
        /// Nodes that did not answer within the deadline.
        timed_out: Vec<String>,
    },
}

/// Reads `user_id` from the first candidate node that answers (see the
/// module's documentation). `after_lsn`: what a read-your-writes read must see.
async fn read<'a>(
    cluster: &'a Cluster,
    table: &RoutingTable,
    request: &Request<'_>,
    consistency: Consistency,
    after_lsn: u64,
) -> Result<Served<'a>, ReadError> {
    let mut candidates = cluster.read_candidates(consistency, after_lsn);
    let bound = table.replay_bound(cluster.name());
    if bound > 0 {
        // Standbys behind the table's start may not hold what it reads yet.
        candidates.ready.retain(|node| node.lsn() >= bound);
        candidates.behind.retain(|node| node.lsn() >= bound);
    }
    // Standbys that had not replayed far enough when last checked are
    // checked live before reading: once replay has passed the LSN, a new
    // snapshot on that standby includes the write.
    let tries = candidates
        .ready
        .iter()
        .map(|node| (*node, None))
        .chain(
            candidates
                .behind
                .iter()
                .map(|node| (*node, Some(after_lsn))),
        )
        .chain(std::iter::once((candidates.primary, None)));
    let mut timed_out = Vec::new();
    for (node, must_have_replayed) in tries {
        if timed_out.len() == MAX_TIMEOUTS {
            break;
        }
        let outcome = match must_have_replayed {
            Some(lsn) => match replayed(node, lsn, request.limit).await {
                Attempt::Answered(_) => request.on(node).await,
                other => other,
            },
            None => request.on(node).await,
        };
        match outcome {
            Attempt::Answered(found) => return Ok(Served { node, found }),
            Attempt::Failed => {}
            Attempt::TimedOut => {
                // Said once per node going down, not once per read.
                if node.mark_down() {
                    tracing::warn!(
                        "{} did not answer a read within {} ms: out of the read rotation until its health check passes",
                        node.name(),
                        request.limit.as_millis()
                    );
                }
                timed_out.push(node.name().to_string());
            }
        }
    }
    if consistency == Consistency::Strong && !timed_out.is_empty() {
        return Err(ReadError::PrimaryTimedOut);
    }
    Err(ReadError::Unavailable { timed_out })
}

/// How one try went.
#[derive(Debug)]
enum Attempt {
    Answered(Found),
    /// The node failed fast (taken out of the rotation if the failure is the
    /// node's), or, for a replay check, had not replayed far enough.
    Failed,
    /// No answer within the deadline.
    TimedOut,
}

/// One read, to be tried on node after node.
struct Request<'r> {
    shards: &'r [&'r ShardSql],
    batch: Option<(&'r Arc<BatchSql>, usize)>,
    user_id: &'r str,
    limit: Duration,
}

impl Request<'_> {
    /// The read on `node`, within the deadline: in the node's batch when
    /// it can be, else on a connection of its own.
    async fn on(&self, node: &Node) -> Attempt {
        if let Some((sql, position)) = self.batch {
            let read = node.read_batches.read(sql, position, self.user_id);
            return match tokio::time::timeout(self.limit, read).await {
                Ok(Ok(found)) => {
                    Attempt::Answered(found.map(|user| (user, self.shards[0].name.clone())))
                }
                Ok(Err(failure)) if failure.timed_out => Attempt::TimedOut,
                Ok(Err(failure)) => {
                    tracing::debug!("read on {}: {}", node.name(), failure.message);
                    if failure.node_down {
                        node.mark_down();
                    }
                    Attempt::Failed
                }
                Err(_) => Attempt::TimedOut,
            };
        }
        let deadline = Instant::now() + self.limit;
        let client = match checkout(&node.pool, deadline).await {
            Ok(client) => client,
            Err(error) => return failed_checkout(node, &error),
        };
        let read = db::read_user(&client, self.shards, self.user_id);
        match tokio::time::timeout_at(deadline, read).await {
            Ok(Ok(found)) => Attempt::Answered(
                found.map(|(user, index)| (user, self.shards[index].name.clone())),
            ),
            Ok(Err(error)) => {
                tracing::debug!("read on {}: {}", node.name(), db::describe(&error));
                if db::kind(&error) == db::ErrorKind::NodeGone {
                    node.mark_down();
                }
                Attempt::Failed
            }
            Err(_) => {
                discard(client);
                Attempt::TimedOut
            }
        }
    }
}

/// Whether the standby `node` has replayed up to `after_lsn`, asked live
/// within `limit`: `Answered` when it has.
async fn replayed(node: &Node, after_lsn: u64, limit: Duration) -> Attempt {
    let deadline = Instant::now() + limit;
    let client = match checkout(&node.pool, deadline).await {
        Ok(client) => client,
        Err(error) => return failed_checkout(node, &error),
    };
    match tokio::time::timeout_at(deadline, db::replay_lsn(&client)).await {
        Ok(Ok(Some(lsn))) if u64::from(lsn) >= after_lsn => Attempt::Answered(None),
        Ok(_) => Attempt::Failed,
        Err(_) => {
            discard(client);
            Attempt::TimedOut
        }
    }
}

fn failed_checkout(node: &Node, error: &crate::cluster::CheckoutError) -> Attempt {
    tracing::debug!("read on {}: {error}", node.name());
    match error {
        crate::cluster::CheckoutError::TimedOut => Attempt::TimedOut,
        crate::cluster::CheckoutError::Pool(_) => {
            if error.is_node() {
                node.mark_down();
            }
            Attempt::Failed
        }
    }
}

/// Reads the user `user_id` at the consistency asked for (`eventual` when
/// none; `lsn`, for read-your-writes, what it must see: by default the
/// latest write this bridge acknowledged on the key's cluster), from the
/// first node of the key's shard's cluster that can serve it, and says
/// which node did. During a rebalance moving the key to another cluster,
/// the new shard's cluster is read first, then the old one's.
///
/// A bridge that finds nothing while it is fenced beside other bridges
/// (see [`coordination::not_found_is_sure`]) heartbeats and reloads the
/// routing first if it can, and reads again by it; else it says the answer
/// may be stale (503) rather than "not found".
pub(crate) async fn read_user(
    service: &Service,
    user_id: &str,
    consistency: Option<&str>,
    lsn: Option<&str>,
) -> Result<ReadResult, Error> {
    input::user_id(user_id)?;
    let (consistency, after) = input::read_level(consistency, lsn)?;
    let read = read_by_routing(service, user_id, consistency, after.as_ref()).await;
    if !matches!(read, Err(Error::UserNotFound { .. })) || coordination::not_found_is_sure(service)
    {
        return read;
    }
    let deadline = tokio::time::Instant::now() + service.cluster().read_timeout;
    coordination::renew(service, deadline).await;
    if !coordination::not_found_is_sure(service) {
        return Err(Error::BridgeFencedRead);
    }
    read_by_routing(service, user_id, consistency, after.as_ref()).await
}

/// [`read_user`] by the routing this bridge follows now.
async fn read_by_routing(
    service: &Service,
    user_id: &str,
    consistency: Consistency,
    after: Option<&input::ReadAfter>,
) -> Result<ReadResult, Error> {
    if let Some(named) = after.as_ref().and_then(|after| after.cluster.as_deref())
        && service.clusters().get(named).is_none()
    {
        return Err(input::Invalid::LsnCluster {
            cluster: named.chars().take(40).collect(),
            clusters: service.clusters().names(),
        }
        .into());
    }
    let table = service.routing().table();
    let plan = table.read_plan(user_id);
    let mut not_found = None;
    for on in &plan {
        let cluster = service.cluster_named(on.cluster)?;
        let (level, after_lsn) = read_level_on(cluster, consistency, after);
        // One shard to look in on this cluster: the read can join the
        // node's batch (of the layout the shard is of).
        let built = if on.previous {
            table.previous.as_ref()
        } else {
            Some(&table.current)
        };
        let batch = built
            .filter(|_| on.shards.len() == 1)
            .and_then(|built| built.batch_for(user_id));
        let request = Request {
            shards: &on.shards,
            batch,
            user_id,
            limit: cluster.read_timeout,
        };
        match read(cluster, &table, &request, level, after_lsn).await {
            Ok(Served {
                node,
                found: Some(found),
            }) => {
                return Ok(answer(service, cluster, node, found, consistency));
            }
            Ok(Served { node, found: None }) => {
                node.reads.fetch_add(1, Ordering::Relaxed);
                not_found = Some(node.name().to_string());
            }
            Err(error) => return Err(read_failed(service, cluster, error, consistency, after_lsn)),
        }
    }
    Err(Error::UserNotFound {
        served_by: not_found.unwrap_or_default(),
        consistency,
    })
}

/// The consistency a read on `cluster` is served at, and the position it
/// must see: a read-your-writes token of another cluster (the key's shard
/// has moved since) tells nothing of this one, so the primary serves it.
fn read_level_on(
    cluster: &Cluster,
    consistency: Consistency,
    after: Option<&input::ReadAfter>,
) -> (Consistency, u64) {
    if consistency != Consistency::ReadYourWrites {
        return (consistency, 0);
    }
    match after {
        None => (consistency, cluster.last_write_lsn.load(Ordering::Relaxed)),
        Some(after) => {
            let of = after
                .cluster
                .as_deref()
                .unwrap_or(crate::cluster::DEFAULT_CLUSTER);
            if of == cluster.name() {
                (consistency, after.lsn)
            } else {
                (Consistency::Strong, 0)
            }
        }
    }
}

/// The error of a read no node of `cluster` answered.
fn read_failed(
    service: &Service,
    cluster: &Cluster,
    error: ReadError,
    consistency: Consistency,
    after_lsn: u64,
) -> Error {
    service
        .counters()
        .failed_reads
        .fetch_add(1, Ordering::Relaxed);
    match error {
        ReadError::PrimaryTimedOut => failover::read_timed_out_on(
            service,
            cluster,
            "strong reads go to it alone; retry, or read with consistency=eventual \
             to be served by a standby meanwhile",
        ),
        ReadError::Unavailable { timed_out } => {
            if !timed_out.is_empty() {
                tracing::warn!(
                    "a {} read failed; no answer in time from {}",
                    consistency.name(),
                    timed_out.join(", ")
                );
            }
            failover::read_unavailable_on(service, cluster, consistency, after_lsn)
        }
    }
}

/// The answer of the node of `cluster` that found the user.
fn answer(
    service: &Service,
    cluster: &Cluster,
    node: &Node,
    (user, shard): (User, String),
    consistency: Consistency,
) -> ReadResult {
    node.reads.fetch_add(1, Ordering::Relaxed);
    ReadResult {
        user,
        shard,
        served_by: node.name().to_string(),
        lag_ms: node.lag_ms(),
        consistency,
        cluster: service.answer_cluster(cluster),
    }
}
