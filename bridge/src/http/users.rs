//! `POST /api/users`, `POST /api/users/bulk`, `GET /api/users/{id}`,
//! `GET /api/sample`: the service's writes and reads, answered as HTTP. A write answers 201 when it
//! wrote, 200 when it found its users stored exactly so already (a repeat).

use axum::extract::State;
use axum::http::StatusCode;
use ecoshard_core::wire::{BulkInsert, BulkResult, InsertResult, NewUser, ReadResult, UserSample};
use serde::Deserialize;

use super::{AppState, Json, Path, Query};
use crate::http::error::ApiError;
use crate::service;

/// `POST /api/users`: 201 written; 200 stored already exactly as sent.
pub(crate) async fn insert(
    State(state): State<AppState>,
    Json(new_user): Json<NewUser>,
) -> Result<(StatusCode, axum::Json<InsertResult>), ApiError> {
    let inserted = service::writes::insert(state.service(), new_user).await?;
    Ok((created(inserted.created), axum::Json(inserted.result)))
}

/// `POST /api/users/bulk`: 201 written; 200 every user stored already
/// exactly so.
pub(crate) async fn bulk(
    State(state): State<AppState>,
    Json(request): Json<BulkInsert>,
) -> Result<(StatusCode, axum::Json<BulkResult>), ApiError> {
    let (result, wrote) = service::bulk::bulk(state.service(), request).await?;
    Ok((created(wrote), axum::Json(result)))
}

/// Query of `GET /api/users/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReadParams {
    /// `eventual` (default), `strong` or `read-your-writes`.
    consistency: Option<String>,
    /// For `read-your-writes`: the `lsn` an insert answered (default: the
    /// latest write this bridge acknowledged).
    lsn: Option<String>,
}

/// `GET /api/users/{id}?consistency=…&lsn=…`.
pub(crate) async fn read(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    Query(params): Query<ReadParams>,
) -> Result<axum::Json<ReadResult>, ApiError> {
    let consistency = params.consistency.as_deref();
    let lsn = params.lsn.as_deref();
    let read = service::reads::read_user(state.service(), &user_id, consistency, lsn).await?;
    Ok(axum::Json(read))
}

/// Query of `GET /api/sample`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SampleParams {
    /// How many ids (default [`UserSample::DEFAULT_COUNT`]).
    count: Option<u64>,
}

/// `GET /api/sample?count=N`: ids drawn from every shard, with the layout
/// version they were drawn under.
pub(crate) async fn sample(
    State(state): State<AppState>,
    Query(params): Query<SampleParams>,
) -> Result<axum::Json<UserSample>, ApiError> {
    let sample = service::sample::sample_users(state.service(), params.count).await?;
    Ok(axum::Json(sample))
}

fn created(wrote: bool) -> StatusCode {
    if wrote {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}
