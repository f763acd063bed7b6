//! `POST /api/users`, `POST /api/users/bulk`, `GET /api/users/{id}`: writes go
//! to the primary, into the shard the core picks; reads go to a standby as
//! the consistency allows, else the primary, and say who served them.
//!
//! A write answers what the bridge knows of its outcome: written (201), not
//! taken (409, 503 `primary_unavailable`), or sent and maybe committed (503
//! `write_outcome_unknown`). Sending an insert again whose users are stored
//! exactly as it would write them answers 200 and writes nothing, so a
//! client can repeat an insert whose outcome it does not know.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use ecoshard_core::ShardLoad;
use ecoshard_core::wire::{
    BulkInsert, BulkResult, Consistency, InsertResult, NewUser, ReadResult, User,
};
use serde::Deserialize;
use tokio_postgres::types::PgLsn;

use super::{Json, Path, Query};
use crate::cluster::{Node, checkout, discard};
use crate::db::ShardSql;
use crate::db::{self, Stage, WriteFailure};
use crate::http::error::ApiError;
use crate::routing::RoutingTable;
use crate::routing::batch::InsertAnswer;
use crate::service::AppState;
use crate::service::failover::{self, WRITE_TIMEOUT};
use crate::service::input as validate;
use crate::service::reads::{self, Found, ReadError};

/// Most users one bulk insert makes.
pub const MAX_BULK: u64 = 10_000;

/// `POST /api/users`: 201 written; 200 stored already exactly as sent.
pub async fn insert(
    State(state): State<AppState>,
    Json(new_user): Json<NewUser>,
) -> Result<(StatusCode, axum::Json<InsertResult>), ApiError> {
    validate::user_id(&new_user.user_id)?;
    if let Some(name) = &new_user.name {
        validate::name(name)?;
    }
    if let Some(email) = &new_user.email {
        validate::email(email)?;
    }
    let user_id = new_user.user_id;
    let name = new_user.name.unwrap_or_else(|| user_id.clone());
    let email = new_user
        .email
        .unwrap_or_else(|| format!("{user_id}@ecomarket.example"));
    if let Some(refusal) = failover::write_refusal(&state) {
        return Err(refusal);
    }
    // Held until the commit: a rebalance swaps tables between writes only.
    let (_gate, table) = state.routing().write_table().await;
    // Everything the insert does on the primary, its read-back included.
    let deadline = tokio::time::Instant::now() + WRITE_TIMEOUT;
    let shard = table.current.locate(&user_id);
    let primary = state.cluster().primary();
    let user = (user_id.as_str(), name.as_str(), email.as_str());
    let written = match (table.moving_from(&user_id), &table.current.batch) {
        // The usual case: the insert joins the primary's batch.
        (None, Some(sql)) => {
            let position = table.current.position(&user_id);
            primary
                .insert_batches
                .insert(sql, position, &user_id, &name, &email, deadline)
                .await
        }
        (moving_from, _) => insert_alone(primary, shard, moving_from, user, deadline).await,
    };
    let inserted = match written {
        Ok(Some(inserted)) => inserted,
        Ok(None) | Err(WriteFailure::Duplicate) => {
            return stored_as_sent(&state, &table, user, deadline).await;
        }
        Err(failure) => {
            return Err(write_failed(
                &state,
                failure,
                &user_id,
                "send the same insert again",
            ));
        }
    };
    state.record_write(1, u64::from(inserted.lsn));
    Ok((
        StatusCode::CREATED,
        axum::Json(InsertResult {
            user: User {
                user_id,
                name,
                email,
                created_at: inserted.created_at,
            },
            shard: shard.name.clone(),
            served_by: primary.name().to_string(),
            lsn: inserted.lsn.to_string(),
        }),
    ))
}

/// A user to write: id, name, e-mail.
type UserFields<'u> = (&'u str, &'u str, &'u str);

/// One insert on a connection of its own (not batched: the layout has too
/// many shards, or a rebalance moves the key and the old owner is checked),
/// by `deadline`.
async fn insert_alone(
    primary: &Node,
    shard: &ShardSql,
    moving_from: Option<&ShardSql>,
    (user_id, name, email): UserFields<'_>,
    deadline: tokio::time::Instant,
) -> InsertAnswer {
    let client = checkout(&primary.pool, deadline)
        .await
        .map_err(|error| error.not_taken())?;
    let insert = async {
        match moving_from {
            // A rebalance moves this key's owner: the row may still be at the old one.
            Some(old_shard) => {
                db::insert_user_unless_in(&client, shard, old_shard, user_id, name, email).await
            }
            None => db::insert_user(&client, shard, user_id, name, email).await,
        }
    };
    match tokio::time::timeout_at(deadline, insert).await {
        Ok(Ok(written)) => Ok(written),
        Ok(Err(error)) => match error.failure() {
            WriteFailure::Duplicate => Ok(None),
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

/// For an insert whose id is taken: 200 with the stored user and the WAL
/// position now when it is stored as sent (a repeat), else 409. Read back
/// by `deadline`; past it, 503 (nothing was written either way).
async fn stored_as_sent(
    state: &AppState,
    table: &RoutingTable,
    (user_id, name, email): UserFields<'_>,
    deadline: tokio::time::Instant,
) -> Result<(StatusCode, axum::Json<InsertResult>), ApiError> {
    let primary = state.cluster().primary();
    let shards = table.read_shards(user_id);
    let unavailable = |why: String| {
        tracing::warn!("reading back {user_id:?}, whose id is taken: {why}");
        failover::primary_unavailable(state)
    };

    let client = checkout(&primary.pool, deadline)
        .await
        .map_err(|error| unavailable(error.to_string()))?;
    let stored =
        tokio::time::timeout_at(deadline, db::stored_user(&client, &shards, user_id)).await;
    let (found, lsn) = match stored {
        Ok(Ok(stored)) => stored,
        Ok(Err(error)) => return Err(unavailable(db::describe(&error))),
        Err(_) => {
            discard(client);
            return Err(unavailable("no answer in time".to_owned()));
        }
    };
    match found {
        Some((user, index)) if user.name == name && user.email == email => {
            state.record_write(0, u64::from(lsn));
            Ok((
                StatusCode::OK,
                axum::Json(InsertResult {
                    user,
                    shard: shards[index].name.clone(),
                    served_by: primary.name().to_string(),
                    lsn: lsn.to_string(),
                }),
            ))
        }
        _ => Err(duplicate(user_id)),
    }
}

/// `POST /api/users/bulk`: `count` users `<prefix>0` …, in one transaction;
/// 201 written, 200 every one stored already exactly so.
pub async fn bulk(
    State(state): State<AppState>,
    Json(request): Json<BulkInsert>,
) -> Result<(StatusCode, axum::Json<BulkResult>), ApiError> {
    if request.count == 0 || request.count > MAX_BULK {
        return Err(ApiError::bad_request(
            "invalid_count",
            format!("count must be 1 to {MAX_BULK}, not {}", request.count),
        ));
    }
    let prefix = match request.prefix {
        Some(prefix) => {
            validate::prefix(&prefix)?;
            prefix
        }
        None => unique_prefix(),
    };
    if let Some(refusal) = failover::write_refusal(&state) {
        return Err(refusal);
    }
    let _permit = state
        .bulk_permits()
        .try_acquire()
        .map_err(|_| super::busy("other bulk inserts are running; try again when they finish"))?;
    let started = Instant::now();
    let (_gate, table) = state.routing().write_table().await;
    let plan = BulkPlan::new(&table, &prefix, request.count);
    let primary = state.cluster().primary();
    // Everything the insert does on the primary, its read-back included.
    let deadline = tokio::time::Instant::now() + WRITE_TIMEOUT;
    let (status, lsn) = match write_bulk(primary, &table, &plan, deadline).await {
        Ok(lsn) => {
            state.record_write(request.count, u64::from(lsn));
            (StatusCode::CREATED, lsn)
        }
        Err(WriteFailure::Duplicate) => match stored_bulk(&state, &table, &plan, deadline).await? {
            Some(lsn) => {
                state.record_write(0, u64::from(lsn));
                (StatusCode::OK, lsn)
            }
            None => return Err(bulk_duplicate(&prefix, request.count)),
        },
        Err(failure) => {
            let again = format!(
                "send the same bulk insert again (prefix {prefix:?}, count {})",
                request.count
            );
            return Err(write_failed(&state, failure, &prefix, &again));
        }
    };
    Ok((
        status,
        axum::Json(BulkResult {
            inserted: if status == StatusCode::CREATED {
                request.count
            } else {
                0
            },
            shards: table
                .current
                .shards
                .iter()
                .zip(&plan.rows)
                .map(|(shard, rows)| ShardLoad {
                    shard: shard.name.clone(),
                    keys: rows.ids.len() as u64,
                })
                .collect(),
            prefix,
            served_by: primary.name().to_string(),
            lsn: lsn.to_string(),
            elapsed_ms: started.elapsed().as_secs_f64() * 1_000.0,
        }),
    ))
}

/// Users to write into one shard: ids, names, e-mails.
#[derive(Clone, Debug, Default)]
struct Rows {
    ids: Vec<String>,
    names: Vec<String>,
    emails: Vec<String>,
}

impl Rows {
    fn push(&mut self, user_id: &str, name: &str, email: &str) {
        self.ids.push(user_id.to_owned());
        self.names.push(name.to_owned());
        self.emails.push(email.to_owned());
    }
}

/// Where a bulk insert's users go.
#[derive(Debug)]
struct BulkPlan {
    /// Per shard of the layout in force.
    rows: Vec<Rows>,
    /// During a rebalance, per shard of the layout being left: the users
    /// whose owner changes (a user of that id may still be there).
    moving: Vec<Rows>,
}

impl BulkPlan {
    fn new(table: &RoutingTable, prefix: &str, count: u64) -> Self {
        let current = &table.current;
        let mut rows = vec![Rows::default(); current.shards.len()];
        let mut moving =
            vec![Rows::default(); table.previous.as_ref().map_or(0, |p| p.shards.len())];
        for index in 0..count {
            let user_id = format!("{prefix}{index}");
            let (name, email) = (
                format!("User {index}"),
                format!("{user_id}@ecomarket.example"),
            );
            let shard = current.router.locate(user_id.as_bytes());
            rows[shard].push(&user_id, &name, &email);
            if let Some(previous) = &table.previous {
                let old = previous.router.locate(user_id.as_bytes());
                if previous.shards[old].name != current.shards[shard].name {
                    moving[old].push(&user_id, &name, &email);
                }
            }
        }
        BulkPlan { rows, moving }
    }

    /// Every (table, rows) pair that may hold the plan's users.
    fn parts<'p>(&'p self, table: &'p RoutingTable) -> Vec<db::StoredPart<'p>> {
        let current = table.current.shards.iter().zip(&self.rows);
        let previous = table
            .previous
            .iter()
            .flat_map(|previous| previous.shards.iter().zip(&self.moving));
        current
            .chain(previous)
            .filter(|(_, rows)| !rows.ids.is_empty())
            .map(|(shard, rows)| (shard, &rows.ids[..], &rows.names[..], &rows.emails[..]))
            .collect()
    }
}

/// The bulk insert in one transaction, by `deadline`; the WAL position
/// after its commit.
async fn write_bulk(
    primary: &Node,
    table: &RoutingTable,
    plan: &BulkPlan,
    deadline: tokio::time::Instant,
) -> Result<PgLsn, WriteFailure> {
    let mut client = checkout(&primary.pool, deadline)
        .await
        .map_err(|error| error.not_taken())?;
    let committing = AtomicBool::new(false);
    let written =
        tokio::time::timeout_at(deadline, insert_bulk(&mut client, table, plan, &committing)).await;
    match written {
        Ok(written) => written,
        Err(_) => {
            discard(client);
            let message = "no answer before the deadline".to_owned();
            Err(if committing.load(Ordering::SeqCst) {
                WriteFailure::Unknown {
                    timed_out: true,
                    message,
                }
            } else {
                // The transaction ends with its connection: nothing commits.
                WriteFailure::NotTaken {
                    unavailable: true,
                    message,
                }
            })
        }
    }
}

async fn insert_bulk(
    client: &mut deadpool_postgres::Object,
    table: &RoutingTable,
    plan: &BulkPlan,
    committing: &AtomicBool,
) -> Result<PgLsn, WriteFailure> {
    let at = |stage| move |error| db::write_failure(&error, stage);
    let tx = client
        .transaction()
        .await
        .map_err(at(Stage::BeforeCommit))?;
    if let Some(previous) = &table.previous {
        // During a rebalance, users whose owner changes may still be at the old one.
        for (old_shard, rows) in previous.shards.iter().zip(&plan.moving) {
            if rows.ids.is_empty() {
                continue;
            }
            let found = db::existing_users(&tx, old_shard, &rows.ids)
                .await
                .map_err(at(Stage::BeforeCommit))?;
            if !found.is_empty() {
                return Err(WriteFailure::Duplicate);
            }
        }
    }
    for (shard, rows) in table.current.shards.iter().zip(&plan.rows) {
        if !rows.ids.is_empty() {
            db::insert_users(&tx, shard, &rows.ids, &rows.names, &rows.emails)
                .await
                .map_err(at(Stage::BeforeCommit))?;
        }
    }
    committing.store(true, Ordering::SeqCst);
    tx.commit().await.map_err(at(Stage::Committing))?;
    let lsn = client
        .prepare_cached(db::CURRENT_LSN)
        .await
        .map_err(at(Stage::Committed))?;
    let lsn = client
        .query_one(&lsn, &[])
        .await
        .map_err(at(Stage::Committed))?;
    Ok(lsn.get(0))
}

/// For a bulk insert refused as a duplicate: the WAL position now when
/// every one of its users is stored exactly as it would write them (a
/// repeat), `None` when not. Read back by `deadline`.
async fn stored_bulk(
    state: &AppState,
    table: &RoutingTable,
    plan: &BulkPlan,
    deadline: tokio::time::Instant,
) -> Result<Option<PgLsn>, ApiError> {
    let unavailable = |why: String| {
        tracing::warn!("reading back a bulk insert whose ids are taken: {why}");
        failover::primary_unavailable(state)
    };
    let client = checkout(&state.cluster().primary().pool, deadline)
        .await
        .map_err(|error| unavailable(error.to_string()))?;
    let parts = plan.parts(table);
    let counted = tokio::time::timeout_at(deadline, db::count_stored_users(&client, &parts)).await;
    let (stored, lsn) = match counted {
        Ok(Ok(counted)) => counted,
        Ok(Err(error)) => return Err(unavailable(db::describe(&error))),
        Err(_) => {
            discard(client);
            return Err(unavailable("no answer in time".to_owned()));
        }
    };
    let planned: usize = plan.rows.iter().map(|rows| rows.ids.len()).sum();
    Ok((stored == planned as u64).then_some(lsn))
}

/// Query of `GET /api/users/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadParams {
    /// `eventual` (default), `strong` or `read-your-writes`.
    consistency: Option<String>,
    /// For `read-your-writes`: the `lsn` an insert answered (default: the
    /// latest write this bridge acknowledged).
    lsn: Option<String>,
}

/// `GET /api/users/{id}?consistency=…&lsn=…`.
pub async fn read(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    Query(params): Query<ReadParams>,
) -> Result<axum::Json<ReadResult>, ApiError> {
    validate::user_id(&user_id)?;
    let consistency = match params.consistency.as_deref() {
        None | Some("eventual") => Consistency::Eventual,
        Some("strong") => Consistency::Strong,
        Some("read-your-writes") => Consistency::ReadYourWrites,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_consistency",
                format!(
                    "unknown consistency {:?}: use eventual, strong or read-your-writes",
                    other.chars().take(40).collect::<String>()
                ),
            ));
        }
    };
    let after_lsn = match (&params.lsn, consistency) {
        (Some(text), Consistency::ReadYourWrites) => text
            .parse::<PgLsn>()
            .map(u64::from)
            .map_err(|_| ApiError::bad_request("invalid_lsn", "lsn must look like 0/3000148"))?,
        (Some(_), _) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "lsn is only for consistency=read-your-writes",
            ));
        }
        (None, _) => state.counters().last_write_lsn.load(Ordering::Relaxed),
    };
    let table = state.routing().table();
    match reads::read(state.cluster(), &table, &user_id, consistency, after_lsn).await {
        Ok(served) => answer(served.node, served.found, consistency),
        Err(error) => {
            state
                .counters()
                .failed_reads
                .fetch_add(1, Ordering::Relaxed);
            Err(match error {
                ReadError::PrimaryTimedOut => failover::read_timed_out(
                    &state,
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
                    failover::read_unavailable(&state, consistency, after_lsn)
                }
            })
        }
    }
}

fn answer(
    node: &Node,
    found: Found,
    consistency: Consistency,
) -> Result<axum::Json<ReadResult>, ApiError> {
    node.reads.fetch_add(1, Ordering::Relaxed);
    match found {
        Some((user, shard)) => Ok(axum::Json(ReadResult {
            user,
            shard,
            served_by: node.name().to_string(),
            lag_ms: node.lag_ms(),
            consistency,
        })),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "user_not_found",
            format!(
                "no user with that id (served by {}, consistency {})",
                node.name(),
                consistency.name()
            ),
        )),
    }
}

fn duplicate(user_id: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "duplicate_user",
        format!(
            "a user with id {user_id:?} already exists with another name or e-mail; \
             nothing was written"
        ),
    )
}

fn bulk_duplicate(prefix: &str, count: u64) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "duplicate_user",
        format!(
            "some of the ids {prefix}0 … {prefix}{} exist, not all as this insert would write \
             them; nothing was written",
            count - 1
        ),
    )
}

/// The answer to a write that failed: `what` names it (an id, a bulk
/// prefix), `again` says how to repeat it when its outcome is unknown.
fn write_failed(state: &AppState, failure: WriteFailure, what: &str, again: &str) -> ApiError {
    match failure {
        WriteFailure::Duplicate => duplicate(what),
        WriteFailure::NotTaken {
            unavailable: true,
            message,
        } => {
            tracing::warn!("write of {what:?} not taken by the primary: {message}");
            failover::primary_unavailable(state)
        }
        WriteFailure::NotTaken { message, .. } => ApiError::internal("write", message),
        WriteFailure::Unknown { timed_out, message } => {
            tracing::warn!("write of {what:?}: outcome unknown: {message}");
            failover::write_outcome_unknown(state, timed_out, again)
        }
    }
}

/// `b<ms since epoch>-<n>-`: unique per bridge run and across restarts.
fn unique_prefix() -> String {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    format!(
        "b{}-{}-",
        crate::service::ticks::now_ms(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    )
}
