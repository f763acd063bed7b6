//! The one classification of PostgreSQL's errors — what an error says
//! about the node and the statement — and what a failed write's error says
//! about its outcome; errors in one line for logs.

use tokio_postgres::error::{Severity, SqlState};

/// What a database error says, for every caller alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// A duplicate key: the id is taken.
    Duplicate,
    /// The node is read-only: a standby, not the primary (it was demoted,
    /// or the bridge has not seen a failover yet).
    ReadOnly,
    /// The node itself is unreachable or going away (the connection closed,
    /// a shutdown, no room for a connection), not this one statement.
    NodeGone,
    /// PostgreSQL rolled this transaction back because of a concurrent one
    /// (a deadlock, a serialization failure: class 40): nothing of it
    /// committed, and the same statement may succeed when sent again.
    Conflict,
    /// This one statement failed.
    Statement,
}

impl ErrorKind {
    /// Whether the node cannot serve now (gone, or not the primary any
    /// more): a write is not taken, a retry goes to the primary then.
    pub(crate) fn node_cannot_serve(self) -> bool {
        matches!(self, ErrorKind::ReadOnly | ErrorKind::NodeGone)
    }
}

/// What `error` says (see [`ErrorKind`]).
pub(crate) fn kind(error: &tokio_postgres::Error) -> ErrorKind {
    if error.is_closed() {
        return ErrorKind::NodeGone;
    }
    match error.code() {
        None => ErrorKind::NodeGone,
        Some(code) if *code == SqlState::UNIQUE_VIOLATION => ErrorKind::Duplicate,
        Some(code) if *code == SqlState::READ_ONLY_SQL_TRANSACTION => ErrorKind::ReadOnly,
        Some(code) if code.code().starts_with("40") => ErrorKind::Conflict,
        // 08 connection exception, 57 operator intervention (shutdown,
        // cannot connect now), 53 insufficient resources, 58 system error.
        Some(code) if matches!(&code.code()[..2], "08" | "57" | "53" | "58") => ErrorKind::NodeGone,
        Some(_) => ErrorKind::Statement,
    }
}

/// How far a write had gone when it failed: what decides whether it may
/// have committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Nothing that commits had been sent: no connection yet, preparing, or
    /// a statement inside a transaction whose `COMMIT` was not sent.
    BeforeCommit,
    /// The statement that commits (an insert outside a transaction, or a
    /// `COMMIT`) had been sent.
    Committing,
    /// That statement succeeded; what failed came after it (reading the WAL
    /// position after the commit).
    Committed,
}

/// A write's database error, and how far the write had gone.
#[derive(Debug)]
pub(crate) struct WriteError {
    /// Where it failed.
    pub(crate) stage: Stage,
    /// The error.
    pub(crate) error: tokio_postgres::Error,
}

impl WriteError {
    /// Wraps an error met at `stage`.
    pub(crate) fn at(stage: Stage) -> impl FnOnce(tokio_postgres::Error) -> Self {
        move |error| WriteError { stage, error }
    }

    /// What the failure means for the write (see [`write_failure`]).
    pub(crate) fn failure(&self) -> WriteFailure {
        write_failure(&self.error, self.stage)
    }
}

/// A failed write, by what the bridge can tell about its outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteFailure {
    /// The id is taken: refused, nothing written.
    Duplicate,
    /// Not written: no connection, or the server refused the statement
    /// (its transaction did not commit). `unavailable`: the node cannot take
    /// writes now (gone, shutting down, read-only); else the error is
    /// unexpected.
    NotTaken {
        /// The node cannot take writes now.
        unavailable: bool,
        /// What happened, for the log.
        message: String,
    },
    /// Sent, then no answer said whether it committed: the session died,
    /// ran past the deadline (`timed_out`), or the WAL position after a
    /// commit could not be read. The write may be in the database.
    Unknown {
        /// No answer within the deadline.
        timed_out: bool,
        /// What happened, for the log.
        message: String,
    },
}

/// What `error`, met at `stage`, says about a write.
///
/// Before the commit was sent nothing can have committed. Once it was sent,
/// an error the server returned for the statement itself (severity `ERROR`:
/// a unique violation, a read-only node, a cancelled statement) means its
/// transaction did not commit; anything else — the connection closed, or a
/// `FATAL` that ends the session (a backend terminated while it waits for a
/// synchronous standby has already committed locally) — leaves the outcome
/// unknown. After the commit succeeded, every failure leaves it unknown too.
pub fn write_failure(error: &tokio_postgres::Error, stage: Stage) -> WriteFailure {
    let refused = error
        .as_db_error()
        .is_some_and(|db| db.parsed_severity() == Some(Severity::Error));
    match stage {
        Stage::Committed => WriteFailure::Unknown {
            timed_out: false,
            message: format!("committed, then: {}", describe(error)),
        },
        Stage::Committing if !refused => WriteFailure::Unknown {
            timed_out: false,
            message: describe(error),
        },
        Stage::BeforeCommit | Stage::Committing if kind(error) == ErrorKind::Duplicate => {
            WriteFailure::Duplicate
        }
        Stage::BeforeCommit | Stage::Committing => WriteFailure::NotTaken {
            unavailable: kind(error).node_cannot_serve(),
            message: describe(error),
        },
    }
}

/// A pool error in one line.
pub(crate) fn describe_pool(error: &deadpool_postgres::PoolError) -> String {
    match error {
        deadpool_postgres::PoolError::Backend(error) => describe(error),
        other => other.to_string(),
    }
}

/// Whether failing to get a pooled connection says the node itself is gone
/// (no connection could be made or checked) rather than the pool being busy.
pub(crate) fn pool_failure_is_node(error: &deadpool_postgres::PoolError) -> bool {
    use deadpool_postgres::{PoolError, TimeoutType};
    matches!(error, PoolError::Backend(_) | PoolError::Timeout(_))
        && !matches!(error, PoolError::Timeout(TimeoutType::Wait))
}

/// A database error in one line: the server's message, or the client's.
pub(crate) fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            let mut text = error.to_string();
            let mut source = std::error::Error::source(error);
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            text
        }
    }
}
