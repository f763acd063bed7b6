//! Reads by key, and inserts, that arrive together on one node go to
//! PostgreSQL as one statement.
//!
//! A request joins its node's queue (one for reads, one for inserts). When
//! fewer than [`MAX_IN_FLIGHT`] batches of that queue are running, it starts
//! one, which takes everything queued; requests that arrive meanwhile queue
//! up and leave together with the next batch. Nothing waits on a timer:
//! alone, a request goes at once, on its shard's single-row statement; under
//! concurrent load one statement answers many — reads `user_id = ANY($n)`
//! per shard of the layout, `UNION ALL`; inserts one
//! `INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING` per shard in one
//! statement, so one commit (one WAL flush) for all of them. That saves
//! PostgreSQL a statement, a commit and both sides a round trip per request.
//!
//! An insert is answered only once its batch has committed, with the WAL
//! position read after that commit; an id already stored (or twice in one
//! batch) is a duplicate, answered after that commit too, and nothing else
//! of the batch depends on it.
//!
//! A request that finds nothing queued and a place free is a batch of one
//! and runs on its own task (no task spawned, no hand-over between
//! threads: what a lone request costs at low concurrency). A batch of
//! several runs in a task of its own. Either way a client that goes away
//! never strands the requests queued behind its own: the place it held,
//! given back, passes to a new batch task. A failure (no connection, an
//! error from the node) answers every request of the batch. Each batch has
//! a deadline (the read deadline for reads, the write deadline for inserts)
//! covering its checkout and its statements; a connection whose statement
//! ran past it is closed, so a hung node holds a queue's place for one
//! deadline at most. Reads whose requester stopped waiting are dropped
//! before their batch runs.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use deadpool_postgres::Pool;
use ecoshard_core::wire::User;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_postgres::types::PgLsn;

use crate::db::{
    self, BatchRow, BatchSql, CheckoutError, Inserted, WriteFailure, Written, checkout, discard,
};

/// Batches of one queue running at once: two keeps both cores of a small
/// machine busy while a batch is on the wire, and still lets requests gather.
pub(crate) const MAX_IN_FLIGHT: usize = 2;

/// Requests in one statement at most.
pub(crate) const MAX_BATCH: usize = 128;

/// Why a read batch found no answer: said once, given to each of its reads.
#[derive(Clone, Debug)]
pub(crate) struct ReadFailure {
    /// The node itself failed: it leaves the read rotation.
    pub(crate) node_down: bool,
    /// No answer within the read deadline (the node is then down too).
    pub(crate) timed_out: bool,
    /// What happened, for the log.
    pub(crate) message: String,
}

impl ReadFailure {
    fn checkout(error: &CheckoutError) -> Self {
        ReadFailure {
            node_down: error.is_node(),
            timed_out: matches!(error, CheckoutError::TimedOut),
            message: error.to_string(),
        }
    }

    fn query(error: &tokio_postgres::Error) -> Self {
        ReadFailure {
            node_down: db::kind(error).node_cannot_serve(),
            timed_out: false,
            message: db::describe(error),
        }
    }

    fn timed_out(limit: Duration) -> Self {
        ReadFailure {
            node_down: true,
            timed_out: true,
            message: format!("no answer within {} ms", limit.as_millis()),
        }
    }

    fn lost() -> Self {
        ReadFailure {
            node_down: false,
            timed_out: false,
            message: "the batch ended without an answer".to_owned(),
        }
    }
}

/// A read's answer: the row, or none, or why the node could not say.
pub(crate) type ReadAnswer = Result<Option<User>, ReadFailure>;

/// An insert's answer: written (`Some`), a duplicate id (`None`: stored
/// already, or twice in the batch), or why not and whether it may be
/// written all the same.
pub(crate) type InsertAnswer = Result<Option<Inserted>, WriteFailure>;

/// A read waiting in a queue.
pub struct Read {
    sql: Arc<BatchSql>,
    shard: usize,
    key: String,
    reply: oneshot::Sender<ReadAnswer>,
}

/// An insert waiting in a queue.
pub struct Insert {
    sql: Arc<BatchSql>,
    shard: usize,
    user_id: String,
    name: String,
    email: String,
    /// When its requester stops waiting.
    deadline: Instant,
    reply: oneshot::Sender<InsertAnswer>,
}

/// What a queue holds: requests that can share one statement per layout.
pub trait Job: Sized + Send + 'static {
    /// The layout's statements the request was made for.
    fn sql(&self) -> &Arc<BatchSql>;
    /// Whether nobody waits for its answer any more (it need not run).
    fn abandoned(&self) -> bool;
    /// Answers every request of `group` (all for the same layout), the
    /// batch's work bounded by `limit`.
    fn run(pool: &Pool, group: Vec<Self>, limit: Duration) -> impl Future<Output = ()> + Send;
}

struct Queue<J> {
    waiting: Vec<J>,
    running: usize,
}

/// Statements sent and requests they answered.
#[derive(Default)]
struct Counts {
    statements: AtomicU64,
    requests: AtomicU64,
}

/// One node's queue of one kind of request.
pub struct Batcher<J> {
    pool: Pool,
    queue: Arc<Mutex<Queue<J>>>,
    counts: Arc<Counts>,
    limit: Duration,
}

impl<J> std::fmt::Debug for Batcher<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").finish_non_exhaustive()
    }
}

impl<J: Job> Batcher<J> {
    /// A queue sending its batches over `pool`, each within `limit`.
    pub(crate) fn new(pool: Pool, limit: Duration) -> Self {
        Batcher {
            pool,
            queue: Arc::new(Mutex::new(Queue {
                waiting: Vec::new(),
                running: 0,
            })),
            counts: Arc::default(),
            limit,
        }
    }

    /// Statements sent so far, and the requests they answered (more requests
    /// than statements: requests shared statements).
    pub fn sent(&self) -> (u64, u64) {
        (
            self.counts.statements.load(Ordering::Relaxed),
            self.counts.requests.load(Ordering::Relaxed),
        )
    }

    /// Queues `job`, or hands it back with a place of its own to be run at
    /// once by its own task (see [`Batcher::submit`]).
    fn push(&self, job: J) -> Option<(J, Place<J>)> {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if queue.running >= MAX_IN_FLIGHT {
            queue.waiting.push(job);
            return None;
        }
        queue.running += 1;
        if queue.waiting.is_empty() {
            // Nothing to gather: this request is a batch of one, run by the
            // task that made it (no task to spawn, no hand-over between
            // threads), holding a place like any batch.
            drop(queue);
            return Some((job, self.place()));
        }
        queue.waiting.push(job);
        drop(queue);
        tokio::spawn(drain(self.place()));
        None
    }

    /// Sends `job`: at once on the caller's task when nothing else waits and
    /// a place is free, else in a batch; its answer comes through its reply.
    async fn submit(&self, job: J) {
        if let Some((job, place)) = self.push(job) {
            self.counts.statements.fetch_add(1, Ordering::Relaxed);
            self.counts.requests.fetch_add(1, Ordering::Relaxed);
            J::run(&self.pool, vec![job], self.limit).await;
            // Requests queued meanwhile go on in a batch of their own task.
            drop(place);
        }
    }

    /// A place in the queue, held by whoever runs a batch.
    fn place(&self) -> Place<J> {
        Place {
            pool: self.pool.clone(),
            queue: Arc::clone(&self.queue),
            counts: Arc::clone(&self.counts),
            limit: self.limit,
        }
    }
}

impl Batcher<Read> {
    /// Reads `key` from the shard at position `shard` of the layout `sql`
    /// was built for.
    pub(crate) async fn read(&self, sql: &Arc<BatchSql>, shard: usize, key: &str) -> ReadAnswer {
        let (reply, answer) = oneshot::channel();
        self.submit(Read {
            sql: Arc::clone(sql),
            shard,
            key: key.to_owned(),
            reply,
        })
        .await;
        answer.await.unwrap_or_else(|_| Err(ReadFailure::lost()))
    }
}

impl Batcher<Insert> {
    /// Inserts a user into the shard at position `shard` of the layout `sql`
    /// was built for; answers once it is committed, or at `deadline` (its
    /// batch ends by then too: waiting in the queue counts).
    pub(crate) async fn insert(
        &self,
        sql: &Arc<BatchSql>,
        shard: usize,
        user_id: &str,
        name: &str,
        email: &str,
        deadline: Instant,
    ) -> InsertAnswer {
        let (reply, answer) = oneshot::channel();
        let submitted = self.submit(Insert {
            sql: Arc::clone(sql),
            shard,
            user_id: user_id.to_owned(),
            name: name.to_owned(),
            email: email.to_owned(),
            deadline,
            reply,
        });
        let answer = async {
            submitted.await;
            answer.await
        };
        match tokio::time::timeout_at(deadline, answer).await {
            Ok(Ok(answer)) => answer,
            // A batch that ended without answering may have committed, and
            // one still running may commit: its statement may have been sent.
            Ok(Err(_)) => Err(WriteFailure::Unknown {
                timed_out: false,
                message: "the batch ended without an answer".to_owned(),
            }),
            Err(_) => Err(WriteFailure::Unknown {
                timed_out: true,
                message: "no answer before the deadline".to_owned(),
            }),
        }
    }
}

/// Runs batches until the queue is empty, then gives its place back.
async fn drain<J: Job>(place: Place<J>) {
    let (pool, queue, counts, limit) = (
        place.pool.clone(),
        Arc::clone(&place.queue),
        Arc::clone(&place.counts),
        place.limit,
    );
    loop {
        let mut batch = {
            let mut queue = queue.lock().unwrap_or_else(PoisonError::into_inner);
            if queue.waiting.is_empty() {
                break;
            }
            let take = queue.waiting.len().min(MAX_BATCH);
            queue.waiting.drain(..take).collect::<Vec<_>>()
        };
        batch.retain(|job| !job.abandoned());
        // One statement per layout (one, unless the layout changed while
        // the batch gathered).
        while let Some(first) = batch.first() {
            let sql = Arc::clone(first.sql());
            let (group, rest): (Vec<_>, Vec<_>) = batch
                .into_iter()
                .partition(|job| Arc::ptr_eq(job.sql(), &sql));
            batch = rest;
            counts.statements.fetch_add(1, Ordering::Relaxed);
            counts
                .requests
                .fetch_add(group.len() as u64, Ordering::Relaxed);
            J::run(&pool, group, limit).await;
        }
    }
    drop(place);
}

/// A running batch's place in its queue, given back when the task ends —
/// also when it ends by a panic, so that no request is left queued behind a
/// place nobody holds.
struct Place<J: Job> {
    pool: Pool,
    queue: Arc<Mutex<Queue<J>>>,
    counts: Arc<Counts>,
    limit: Duration,
}

impl<J: Job> Drop for Place<J> {
    fn drop(&mut self) {
        let waiting = {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            if queue.waiting.is_empty() {
                queue.running -= 1;
            }
            !queue.waiting.is_empty()
        };
        // Requests queued after the last look: the place passes to a new task.
        if waiting && let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(drain(Place {
                pool: self.pool.clone(),
                queue: Arc::clone(&self.queue),
                counts: Arc::clone(&self.counts),
                limit: self.limit,
            }));
        } else if waiting {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            queue.running -= 1;
        }
    }
}

impl Job for Read {
    fn sql(&self) -> &Arc<BatchSql> {
        &self.sql
    }

    fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }

    async fn run(pool: &Pool, group: Vec<Self>, limit: Duration) {
        match read_rows(pool, &group, limit).await {
            Ok(rows) => {
                for read in group {
                    let user = rows.get(&(read.shard, read.key));
                    let _ = read.reply.send(Ok(user.cloned()));
                }
            }
            Err(failure) => {
                for read in group {
                    let _ = read.reply.send(Err(failure.clone()));
                }
            }
        }
    }
}

/// The rows of `group`'s keys, by (shard position, key), within `limit`.
async fn read_rows(
    pool: &Pool,
    group: &[Read],
    limit: Duration,
) -> Result<HashMap<(usize, String), User>, ReadFailure> {
    let deadline = Instant::now() + limit;
    let client = checkout(pool, deadline)
        .await
        .map_err(|error| ReadFailure::checkout(&error))?;
    let keys: Vec<(usize, &str)> = group
        .iter()
        .map(|read| (read.shard, read.key.as_str()))
        .collect();
    let Some(sql) = group.first().map(|read| &read.sql) else {
        return Ok(HashMap::new());
    };
    let select = db::select_batch(&client, sql, &keys);
    match tokio::time::timeout_at(deadline, select).await {
        Ok(rows) => rows.map_err(|error| ReadFailure::query(&error)),
        Err(_) => {
            discard(client);
            Err(ReadFailure::timed_out(limit))
        }
    }
}

impl Job for Insert {
    fn sql(&self) -> &Arc<BatchSql> {
        &self.sql
    }

    /// Its requester is gone (past its deadline, or its client hung up): it
    /// was answered "outcome unknown", or nothing, and is not sent.
    fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }

    async fn run(pool: &Pool, group: Vec<Self>, limit: Duration) {
        // Done when the first of its requesters stops waiting.
        let deadline = group
            .iter()
            .map(|insert| insert.deadline)
            .fold(Instant::now() + limit, Instant::min);
        // An id twice in one batch: the first one is written; the others are
        // duplicates of it, answered once it has committed (so that they
        // find it stored), or with its failure.
        let mut seen = std::collections::HashSet::with_capacity(group.len());
        let (first, again): (Vec<_>, Vec<_>) = group
            .into_iter()
            .partition(|insert| seen.insert(insert.user_id.clone()));
        let outcome = write_rows(pool, &first, deadline).await;
        for insert in again {
            let _ = insert.reply.send(match &outcome {
                Ok(_) => Ok(None),
                Err(failure) => Err(failure.clone()),
            });
        }
        match outcome {
            Ok((written, lsn)) => {
                for insert in first {
                    let created_at = written.get(&(insert.shard, insert.user_id));
                    let _ = insert.reply.send(Ok(created_at.map(|created_at| Inserted {
                        created_at: created_at.clone(),
                        lsn,
                    })));
                }
            }
            Err(failure) => {
                for insert in first {
                    let _ = insert.reply.send(Err(failure.clone()));
                }
            }
        }
    }
}

/// Writes `group` (distinct ids) in one statement, so one commit; answers
/// `created_at` of each row written and the WAL position read after the
/// commit. Bounded by `deadline`: past it the connection is closed, and the
/// rows may or may not be committed.
async fn write_rows(
    pool: &Pool,
    group: &[Insert],
    deadline: Instant,
) -> Result<(Written, PgLsn), WriteFailure> {
    let client = checkout(pool, deadline)
        .await
        .map_err(|error| error.not_taken())?;
    let Some(sql) = group.first().map(|insert| &insert.sql) else {
        return Ok((HashMap::new(), PgLsn::from(0)));
    };
    let rows: Vec<BatchRow<'_>> = group
        .iter()
        .map(|insert| BatchRow {
            shard: insert.shard,
            user_id: &insert.user_id,
            name: &insert.name,
            email: &insert.email,
        })
        .collect();
    let mut sent = tokio::time::timeout_at(deadline, db::insert_batch(&client, sql, &rows)).await;
    if let Ok(Err(error)) = &sent
        && db::kind(&error.error) == db::ErrorKind::Conflict
    {
        // Rolled back for a concurrent transaction (nothing committed): once
        // more, within the same deadline.
        tracing::info!("insert batch sent again: {}", db::describe(&error.error));
        sent = tokio::time::timeout_at(deadline, db::insert_batch(&client, sql, &rows)).await;
    }
    match sent {
        Ok(Ok(written)) => Ok(written),
        Ok(Err(error)) => match error.failure() {
            // Only a single-row insert reports an id taken as an error.
            WriteFailure::Duplicate => Ok((HashMap::new(), PgLsn::from(0))),
            failure => Err(failure),
        },
        Err(_) => {
            discard(client);
            Err(WriteFailure::Unknown {
                timed_out: true,
                message: "no commit before the deadline".to_owned(),
            })
        }
    }
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
        let shards = [db::ShardSql::new("s0"), db::ShardSql::new("s1")];
        Arc::new(BatchSql::new(&shards).expect("two shards batch"))
    }

    const LIMIT: Duration = Duration::from_secs(5);

    /// Past this a wait that should end at once has hung: the test fails
    /// rather than running forever.
    const NEVER: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn a_node_that_refuses_answers_every_request_with_a_failure() {
        let reads = Batcher::<Read>::new(refused_pool(), LIMIT);
        let inserts = Batcher::<Insert>::new(refused_pool(), LIMIT);
        let sql = sql();
        let answers = (0..5).map(|n| {
            let (sql, reads) = (Arc::clone(&sql), &reads);
            async move { reads.read(&sql, n % 2, &format!("k{n}")).await.map(|_| ()) }
        });
        // Two ids twice: a repeat gets the failure of the first.
        let written = (0..5).map(|n| {
            let (sql, inserts) = (Arc::clone(&sql), &inserts);
            async move {
                let id = format!("k{}", n % 3);
                let deadline = Instant::now() + LIMIT;
                inserts
                    .insert(&sql, n % 2, &id, "n", "e", deadline)
                    .await
                    .map(|_| ())
            }
        });
        let (answers, written) = futures::join!(
            futures::future::join_all(answers),
            futures::future::join_all(written)
        );
        assert_eq!((answers.len(), written.len()), (5, 5));
        for answer in answers {
            // Refused at once (not past a deadline): the node leaves the
            // read rotation.
            let failure = answer.expect_err("a read answered by a node that refuses");
            assert!(failure.node_down && !failure.timed_out, "{failure:?}");
        }
        for answer in written {
            // Refused before anything was sent: not written, for sure.
            let failure = answer.expect_err("an insert taken by a node that refuses");
            assert!(
                matches!(
                    failure,
                    WriteFailure::NotTaken {
                        unavailable: true,
                        ..
                    }
                ),
                "{failure:?}"
            );
        }
        // Each request was in a batch that ran, and every batch gave its
        // place back.
        assert_eq!(reads.sent().1, 5);
        assert_eq!(inserts.sent().1, 5);
        for queue in [
            reads.queue.lock().unwrap().running,
            inserts.queue.lock().unwrap().running,
        ] {
            assert_eq!(queue, 0);
        }
    }

    #[tokio::test]
    async fn reads_nobody_waits_for_are_not_sent() {
        let batcher = Arc::new(Batcher::<Read>::new(refused_pool(), LIMIT));
        let sql = sql();
        // Every place taken: what comes now is queued, not run at once.
        batcher.queue.lock().unwrap().running = MAX_IN_FLIGHT;
        let (reply, answer) = oneshot::channel();
        drop(answer);
        let read = Read {
            sql: Arc::clone(&sql),
            shard: 0,
            key: "gone".to_owned(),
            reply,
        };
        assert!(read.abandoned());
        assert!(
            batcher.push(read).is_none(),
            "queued behind the full places"
        );
        // Queued with it, a read that is waited for: the batch that takes
        // both sends that one alone.
        let wanted = tokio::spawn({
            let (batcher, sql) = (Arc::clone(&batcher), Arc::clone(&sql));
            async move { batcher.read(&sql, 1, "wanted").await }
        });
        let queued = async {
            while batcher.queue.lock().unwrap().waiting.len() < 2 {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(NEVER, queued)
            .await
            .expect("the read joins the queue");
        drop(batcher.place());
        let wanted = wanted.await.expect("the read's task");
        assert!(wanted.is_err_and(|failure| failure.node_down));
        let given_back = futures::future::poll_fn(|context| {
            let running = batcher.queue.lock().unwrap().running;
            if running == MAX_IN_FLIGHT - 1 {
                std::task::Poll::Ready(batcher.sent())
            } else {
                context.waker().wake_by_ref();
                std::task::Poll::Pending
            }
        });
        let sent = tokio::time::timeout(NEVER, given_back)
            .await
            .expect("the batch gives its place back");
        assert_eq!(sent, (1, 1), "statements and the requests they answered");
    }

    #[tokio::test]
    async fn a_lone_request_runs_at_once_and_gives_its_place_back() {
        let batcher = Batcher::<Read>::new(refused_pool(), LIMIT);
        let answer = batcher.read(&sql(), 0, "alone").await;
        assert!(answer.is_err_and(|failure| failure.node_down));
        let queue = batcher.queue.lock().unwrap();
        assert_eq!((queue.running, queue.waiting.len()), (0, 0));
        assert_eq!(batcher.sent(), (1, 1));
    }

    #[tokio::test]
    async fn a_place_given_up_with_requests_queued_passes_to_a_new_batch() {
        // As after a batch that panicked: its place is dropped while reads wait.
        let batcher = Batcher::<Read>::new(refused_pool(), LIMIT);
        let (reply, answer) = oneshot::channel();
        {
            let mut queue = batcher.queue.lock().unwrap();
            queue.running = MAX_IN_FLIGHT;
            queue.waiting.push(Read {
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
            limit: LIMIT,
        });
        let answered = answer.await.expect("the read gets an answer");
        assert!(answered.is_err());
        tokio::task::yield_now().await;
        let queue = batcher.queue.lock().unwrap();
        assert_eq!(queue.running, MAX_IN_FLIGHT - 1);
        assert!(queue.waiting.is_empty());
    }
}
