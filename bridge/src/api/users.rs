//! `POST /api/users`, `POST /api/users/bulk`, `GET /api/users/{id}`: writes go
//! to the primary, into the shard the core picks; reads go to a standby as
//! the consistency allows, else the primary, and say who served them.

use std::sync::atomic::{AtomicU64, Ordering};
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
use crate::db;
use crate::error::ApiError;
use crate::failover::{self, WRITE_TIMEOUT};
use crate::nodes::Node;
use crate::reads::{self, Found, ReadError};
use crate::state::{AppState, pool_error};
use crate::validate;

/// Most users one bulk insert makes.
pub const MAX_BULK: u64 = 10_000;

/// `POST /api/users`.
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
    let shard = table.current.locate(&user_id);
    let primary = state.cluster().primary();
    let written = match (table.moving_from(&user_id), &table.current.batch) {
        // The usual case: the insert joins the primary's batch.
        (None, Some(sql)) => {
            let position = table.current.position(&user_id);
            match primary
                .insert_batches
                .insert(sql, position, &user_id, &name, &email)
                .await
            {
                Ok(Some(inserted)) => Ok(inserted),
                Ok(None) => Err(duplicate(&user_id)),
                Err(failure) if failure.timed_out => Err(failover::write_not_acknowledged(&state)),
                Err(failure) if failure.node_down => {
                    tracing::warn!("write to the primary: {}", failure.message);
                    Err(failover::primary_unavailable(&state))
                }
                Err(failure) => Err(ApiError::internal("write", failure.message)),
            }
        }
        (moving_from, _) => {
            let client = primary.pool.get().await.map_err(|error| {
                tracing::warn!("write to the primary: {}", pool_error(&error));
                failover::primary_unavailable(&state)
            })?;
            let written = tokio::time::timeout(WRITE_TIMEOUT, async {
                match moving_from {
                    // A rebalance moves this key's owner: the row may still be at the old one.
                    Some(old_shard) => {
                        db::insert_user_unless_in(
                            &client, shard, old_shard, &user_id, &name, &email,
                        )
                        .await
                    }
                    None => db::insert_user(&client, shard, &user_id, &name, &email).await,
                }
                .map_err(|error| write_error(&user_id, &error))?
                .ok_or_else(|| duplicate(&user_id))
            })
            .await;
            let Ok(written) = written else {
                return Err(failover::write_timed_out(&state, client));
            };
            written
        }
    };
    let inserted = written?;
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

/// `POST /api/users/bulk`: `count` users `<prefix>0` …, in one transaction.
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
    let shards = &table.current.shards;
    let mut batches: Vec<(Vec<String>, Vec<String>, Vec<String>)> =
        vec![(Vec::new(), Vec::new(), Vec::new()); shards.len()];
    for index in 0..request.count {
        let user_id = format!("{prefix}{index}");
        let shard = table.current.router.locate(user_id.as_bytes());
        let batch = &mut batches[shard];
        batch.1.push(format!("User {index}"));
        batch.2.push(format!("{user_id}@ecomarket.example"));
        batch.0.push(user_id);
    }
    let primary = state.cluster().primary();
    let mut client = primary.pool.get().await.map_err(|error| {
        tracing::warn!("bulk write to the primary: {}", pool_error(&error));
        failover::primary_unavailable(&state)
    })?;
    let written = tokio::time::timeout(WRITE_TIMEOUT, async {
        let tx = client
            .transaction()
            .await
            .map_err(|error| write_error(&prefix, &error))?;
        if let Some(previous) = &table.previous {
            // During a rebalance, keys whose owner changes may still be at the old one.
            let mut by_old_shard: Vec<Vec<String>> = vec![Vec::new(); previous.shards.len()];
            for (ids, _, _) in &batches {
                for user_id in ids {
                    let old = previous.router.locate(user_id.as_bytes());
                    if previous.shards[old].name != table.current.locate(user_id).name {
                        by_old_shard[old].push(user_id.clone());
                    }
                }
            }
            for (old_shard, ids) in previous.shards.iter().zip(&by_old_shard) {
                if ids.is_empty() {
                    continue;
                }
                let found = db::existing_users(&tx, old_shard, ids)
                    .await
                    .map_err(|error| write_error(&prefix, &error))?;
                if let Some(user_id) = found.first() {
                    return Err(duplicate(user_id));
                }
            }
        }
        for (shard, (ids, names, emails)) in shards.iter().zip(&batches) {
            if !ids.is_empty() {
                db::insert_users(&tx, shard, ids, names, emails)
                    .await
                    .map_err(|error| write_error(&prefix, &error))?;
            }
        }
        tx.commit()
            .await
            .map_err(|error| write_error(&prefix, &error))?;
        let lsn_statement = client
            .prepare_cached(db::CURRENT_LSN)
            .await
            .map_err(|error| write_error(&prefix, &error))?;
        let lsn: PgLsn = client
            .query_one(&lsn_statement, &[])
            .await
            .map_err(|error| write_error(&prefix, &error))?
            .get(0);
        Ok::<PgLsn, ApiError>(lsn)
    })
    .await;
    let Ok(written) = written else {
        return Err(failover::write_timed_out(&state, client));
    };
    let lsn = written?;
    state.record_write(request.count, u64::from(lsn));
    Ok((
        StatusCode::CREATED,
        axum::Json(BulkResult {
            inserted: request.count,
            prefix,
            shards: shards
                .iter()
                .zip(&batches)
                .map(|(shard, batch)| ShardLoad {
                    shard: shard.name.clone(),
                    keys: batch.0.len() as u64,
                })
                .collect(),
            served_by: primary.name().to_string(),
            lsn: lsn.to_string(),
            elapsed_ms: started.elapsed().as_secs_f64() * 1_000.0,
        }),
    ))
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

fn duplicate(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "duplicate_user",
        format!("a user with id {what:?} already exists; nothing was written"),
    )
}

fn write_error(what: &str, error: &tokio_postgres::Error) -> ApiError {
    if db::is_unique_violation(error) {
        duplicate(what)
    } else if db::is_node_failure(error) || db::is_read_only(error) {
        tracing::warn!("write failed: {}", db::describe(error));
        ApiError::primary_unavailable()
    } else {
        ApiError::internal("write", db::describe(error))
    }
}

/// `b<ms since epoch>-<n>-`: unique per bridge run and across restarts.
fn unique_prefix() -> String {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    format!(
        "b{}-{}-",
        crate::monitor::now_ms(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    )
}
