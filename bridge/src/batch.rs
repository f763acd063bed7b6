//! Reads by key that arrive together on one node go to PostgreSQL as one
//! statement.
//!
//! A read joins its node's queue. When fewer than [`MAX_IN_FLIGHT`] batches
//! are running on that node, it starts one, which takes everything queued;
//! reads that arrive meanwhile queue up and leave together with the next
//! batch. Nothing waits on a timer: alone, a read goes at once, on the
//! shard's single-key statement; under concurrent load, one statement answers
//! many (`user_id = ANY($n)` per shard of the layout, `UNION ALL`), which saves
//! PostgreSQL a statement and both sides a round trip per read.
//!
//! A batch runs in a task of its own, so a client that goes away never
//! strands the reads queued behind its own. A failure (no connection, an
//! error from the node) answers every read of the batch, which then tries
//! the next node as any failed read does.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use deadpool_postgres::Pool;
use ecoshard_core::wire::User;
use tokio::sync::oneshot;
use tokio_postgres::types::ToSql;

use crate::db;
use crate::routing::CREATED_AT;

/// Batches running at once on one node: two keeps both cores of a small
/// machine busy while a batch is on the wire, and still lets reads gather.
pub const MAX_IN_FLIGHT: usize = 2;

/// Reads in one statement at most.
pub const MAX_BATCH: usize = 128;

/// Layouts with more shards than this read key by key: their statement would
/// carry an index scan per shard, most of them over an empty array.
pub const MAX_BATCH_SHARDS: usize = 16;

/// The statements of one layout's batched reads.
#[derive(Debug)]
pub struct BatchSql {
    /// Per shard, in layout order: the single-key `SELECT` (a batch of one).
    singles: Vec<String>,
    /// Every shard's rows for an array of keys each, tagged with the shard's
    /// position: `SELECT 0, … FROM s0 WHERE user_id = ANY($1) UNION ALL …`.
    union: String,
}

impl BatchSql {
    /// The statements for shards with these tables and single-key `SELECT`s,
    /// in layout order; `None` when the layout has too many shards to batch.
    pub fn new<'a>(shards: impl ExactSizeIterator<Item = (&'a str, &'a str)>) -> Option<Self> {
        if shards.len() > MAX_BATCH_SHARDS {
            return None;
        }
        let mut singles = Vec::with_capacity(shards.len());
        let mut parts = Vec::with_capacity(shards.len());
        for (index, (table, select)) in shards.enumerate() {
            singles.push(select.to_owned());
            parts.push(format!(
                "SELECT {index}::int4, user_id, name, email, {CREATED_AT} FROM {table} \
                 WHERE user_id = ANY(${}::text[])",
                index + 1
            ));
        }
        Some(BatchSql {
            singles,
            union: parts.join(" UNION ALL "),
        })
    }
}

/// Why a batch found no answer: said once, given to each of its reads.
#[derive(Clone, Debug)]
pub struct Failure {
    /// The node itself failed (it leaves the read rotation).
    pub node_down: bool,
    /// What happened, for the log.
    pub message: String,
}

/// A read's answer: the row, or none, or why the node could not say.
pub type Answer = Result<Option<User>, Failure>;

struct Pending {
    sql: Arc<BatchSql>,
    shard: usize,
    key: String,
    reply: oneshot::Sender<Answer>,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<Pending>,
    running: usize,
}

/// One node's read queue.
pub struct Batcher {
    pool: Pool,
    queue: Arc<Mutex<Queue>>,
    counts: Arc<Counts>,
}

/// Statements sent and reads they answered.
#[derive(Default)]
struct Counts {
    statements: AtomicU64,
    reads: AtomicU64,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").finish_non_exhaustive()
    }
}

impl Batcher {
    /// A queue sending its batches over `pool`.
    pub fn new(pool: Pool) -> Self {
        Batcher {
            pool,
            queue: Arc::default(),
            counts: Arc::default(),
        }
    }

    /// Statements sent so far, and the reads they answered (more reads than
    /// statements: reads shared statements).
    pub fn sent(&self) -> (u64, u64) {
        (
            self.counts.statements.load(Ordering::Relaxed),
            self.counts.reads.load(Ordering::Relaxed),
        )
    }

    /// Reads `key` from the shard at position `shard` of the layout `sql`
    /// was built for.
    pub async fn read(&self, sql: &Arc<BatchSql>, shard: usize, key: &str) -> Answer {
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            queue.waiting.push(Pending {
                sql: Arc::clone(sql),
                shard,
                key: key.to_owned(),
                reply,
            });
            let start = queue.running < MAX_IN_FLIGHT;
            if start {
                queue.running += 1;
            }
            start
        };
        if start {
            tokio::spawn(drain(
                self.pool.clone(),
                Arc::clone(&self.queue),
                Arc::clone(&self.counts),
            ));
        }
        answer.await.unwrap_or_else(|_| {
            Err(Failure {
                node_down: false,
                message: "the batch ended without an answer".to_owned(),
            })
        })
    }
}

/// Runs batches until the queue is empty, then gives its place back.
async fn drain(pool: Pool, queue: Arc<Mutex<Queue>>, counts: Arc<Counts>) {
    let place = Place {
        pool: pool.clone(),
        queue: Arc::clone(&queue),
        counts: Arc::clone(&counts),
    };
    loop {
        let batch = {
            let mut queue = queue.lock().unwrap_or_else(PoisonError::into_inner);
            if queue.waiting.is_empty() {
                break;
            }
            let take = queue.waiting.len().min(MAX_BATCH);
            queue.waiting.drain(..take).collect::<Vec<_>>()
        };
        run(&pool, batch, &counts).await;
    }
    drop(place);
}

/// A running batch's place in its node's queue, given back when the task
/// ends — also when it ends by a panic, so that no read is left queued
/// behind a place nobody holds.
struct Place {
    pool: Pool,
    queue: Arc<Mutex<Queue>>,
    counts: Arc<Counts>,
}

impl Drop for Place {
    fn drop(&mut self) {
        let waiting = {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            if queue.waiting.is_empty() {
                queue.running -= 1;
            }
            !queue.waiting.is_empty()
        };
        // Reads queued after the last look: the place passes to a new task.
        if waiting && let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(drain(
                self.pool.clone(),
                Arc::clone(&self.queue),
                Arc::clone(&self.counts),
            ));
        } else if waiting {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            queue.running -= 1;
        }
    }
}

/// Answers every read of `batch`, one statement per layout it holds (one,
/// unless the layout changed while it gathered).
async fn run(pool: &Pool, mut batch: Vec<Pending>, counts: &Counts) {
    while let Some(first) = batch.first() {
        let sql = Arc::clone(&first.sql);
        let (group, rest): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .partition(|pending| Arc::ptr_eq(&pending.sql, &sql));
        batch = rest;
        counts.statements.fetch_add(1, Ordering::Relaxed);
        counts
            .reads
            .fetch_add(group.len() as u64, Ordering::Relaxed);
        match query(pool, &sql, &group).await {
            Ok(rows) => {
                for pending in group {
                    let user = rows.get(&(pending.shard, pending.key));
                    let _ = pending.reply.send(Ok(user.cloned()));
                }
            }
            Err(failure) => {
                for pending in group {
                    let _ = pending.reply.send(Err(failure.clone()));
                }
            }
        }
    }
}

/// The rows of `group`'s keys, by (shard position, key).
async fn query(
    pool: &Pool,
    sql: &BatchSql,
    group: &[Pending],
) -> Result<HashMap<(usize, String), User>, Failure> {
    let client = pool.get().await.map_err(|error| Failure {
        node_down: matches!(
            &error,
            deadpool_postgres::PoolError::Backend(_) | deadpool_postgres::PoolError::Timeout(_)
        ) && !matches!(
            &error,
            deadpool_postgres::PoolError::Timeout(deadpool_postgres::TimeoutType::Wait)
        ),
        message: crate::state::pool_error(&error),
    })?;
    let failed = |error: tokio_postgres::Error| Failure {
        node_down: db::is_node_failure(&error),
        message: db::describe(&error),
    };
    let user = |row: &tokio_postgres::Row, from: usize| User {
        user_id: row.get(from),
        name: row.get(from + 1),
        email: row.get(from + 2),
        created_at: row.get(from + 3),
    };
    let mut found = HashMap::with_capacity(group.len());
    if let [only] = group {
        let select = client
            .prepare_cached(&sql.singles[only.shard])
            .await
            .map_err(failed)?;
        if let Some(row) = client
            .query_opt(&select, &[&only.key])
            .await
            .map_err(failed)?
        {
            found.insert((only.shard, only.key.clone()), user(&row, 0));
        }
        return Ok(found);
    }
    let mut keys: Vec<Vec<&str>> = vec![Vec::new(); sql.singles.len()];
    for pending in group {
        keys[pending.shard].push(&pending.key);
    }
    let params: Vec<&(dyn ToSql + Sync)> = keys
        .iter()
        .map(|keys| keys as &(dyn ToSql + Sync))
        .collect();
    let union = client.prepare_cached(&sql.union).await.map_err(failed)?;
    for row in client.query(&union, &params).await.map_err(failed)? {
        let shard = usize::try_from(row.get::<_, i32>(0)).unwrap_or(usize::MAX);
        let user = user(&row, 1);
        found.insert((shard, user.user_id.clone()), user);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pool whose server never answers: every connection is refused.
    fn refused_pool() -> Pool {
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(1)
            .user("nobody")
            .dbname("none");
        let manager = deadpool_postgres::Manager::new(config, tokio_postgres::NoTls);
        Pool::builder(manager)
            .max_size(1)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .expect("pool")
    }

    fn sql() -> Arc<BatchSql> {
        Arc::new(
            BatchSql::new([("s0.users", "SELECT 1"), ("s1.users", "SELECT 2")].into_iter())
                .expect("two shards batch"),
        )
    }

    #[test]
    fn one_statement_reads_every_shard_by_array() {
        let sql = sql();
        assert_eq!(sql.singles, ["SELECT 1", "SELECT 2"]);
        assert!(
            sql.union
                .contains("FROM s0.users WHERE user_id = ANY($1::text[])")
        );
        assert!(sql.union.contains(" UNION ALL SELECT 1::int4,"));
        assert!(
            sql.union
                .contains("FROM s1.users WHERE user_id = ANY($2::text[])")
        );
        let many = (0..=MAX_BATCH_SHARDS)
            .map(|_| ("t.users", "SELECT 1"))
            .collect::<Vec<_>>();
        assert!(BatchSql::new(many.into_iter()).is_none());
    }

    #[tokio::test]
    async fn a_node_that_refuses_answers_every_read_with_a_failure() {
        let batcher = Batcher::new(refused_pool());
        let sql = sql();
        let reads = (0..5).map(|n| {
            let sql = Arc::clone(&sql);
            let batcher = &batcher;
            async move { batcher.read(&sql, n % 2, &format!("k{n}")).await }
        });
        for answer in futures::future::join_all(reads).await {
            let failure = answer.expect_err("no server");
            assert!(failure.node_down, "{failure:?}");
        }
        let queue = batcher.queue.lock().unwrap();
        assert_eq!((queue.running, queue.waiting.len()), (0, 0));
    }

    #[tokio::test]
    async fn a_place_given_up_with_reads_queued_passes_to_a_new_batch() {
        // As after a batch that panicked: its place is dropped while reads wait.
        let batcher = Batcher::new(refused_pool());
        let (reply, answer) = oneshot::channel();
        {
            let mut queue = batcher.queue.lock().unwrap();
            queue.running = MAX_IN_FLIGHT;
            queue.waiting.push(Pending {
                sql: sql(),
                shard: 0,
                key: "stranded".to_owned(),
                reply,
            });
        }
        drop(Place {
            pool: batcher.pool.clone(),
            queue: Arc::clone(&batcher.queue),
            counts: Arc::clone(&batcher.counts),
        });
        let answered = answer.await.expect("the read gets an answer");
        assert!(answered.is_err());
        tokio::task::yield_now().await;
        let queue = batcher.queue.lock().unwrap();
        assert_eq!(queue.running, MAX_IN_FLIGHT - 1);
        assert!(queue.waiting.is_empty());
    }
}
