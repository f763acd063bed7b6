//! The database: every SQL text the bridge runs, as functions over a
//! connection or a transaction, the connections themselves (pools, taken
//! within a deadline), and the one classification of PostgreSQL's errors.
//! Values are always bound parameters; only validated shard names and
//! checked database names are spliced in.

pub(crate) mod bridges;
mod copy;
mod error;
pub(crate) mod fence;
mod health;
pub(crate) mod jobs;
pub mod logical;
pub(crate) mod moves;
mod pool;
pub mod schema;
mod shard;
pub(crate) mod twophase;
mod users;
pub(crate) mod verify;

pub(crate) use copy::{CopyInto, copy_users, count_generated};
pub(crate) use error::{
    ErrorKind, WriteError, describe, describe_pool, kind, pool_failure_is_node,
};
pub use error::{Stage, WriteFailure, write_failure};
pub(crate) use health::{NodeCheck, RowEstimate, analyze, check, replay_lsn, row_estimates};

pub(crate) use pool::{CheckoutError, checkout, discard, make_pool};
pub(crate) use shard::{
    BatchRow, BatchSql, CREATED_AT, ShardSql, Written, insert_batch, select_batch,
};
pub(crate) use users::{
    CURRENT_LSN, Inserted, ShardDraw, StoredPart, existing_users, insert_returning, insert_user,
    insert_user_unless_in, insert_users, lsn_after_commit, read_user, sample_user_ids, stored_user,
    stored_users, then_lsn, user_at,
};
