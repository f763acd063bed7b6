//! `POST /api/users`, `POST /api/users/bulk`, `POST /api/users/generate`,
//! `GET /api/users/{id}`, `GET /api/sample`: the service's writes and reads,
//! answered as HTTP. A write answers 201 when it wrote, 200 when it found its
//! users stored exactly so already (a repeat).

use axum::extract::State;
use axum::http::StatusCode;
use ecoshard_core::wire::{
    BulkInsert, BulkResult, GenerateResult, GenerateUsers, InsertResult, NewUser, ReadResult,
    UserSample,
};
use serde::Deserialize;

use super::{AppState, Json, Path, Query};
use crate::http::error::ApiError;
use crate::service;

/// `POST /api/users`: 201 written; 200 stored already exactly as sent.
#[utoipa::path(post, path = "/users", tag = "users",
    request_body = NewUser,
    responses(
        (status = 201, description = "Written", body = InsertResult),
        (status = 200, description = "A repeat: stored already exactly so", body = InsertResult),
        (status = 400, description = "invalid_json, invalid_user_id, invalid_name, invalid_email", body = ecoshard_core::wire::ApiErrorBody),
        (status = 409, description = "duplicate_user", body = ecoshard_core::wire::ApiErrorBody),
        (status = 413, description = "body_too_large", body = ecoshard_core::wire::ApiErrorBody),
        (status = 415, description = "unsupported_media_type", body = ecoshard_core::wire::ApiErrorBody),
        (status = 422, description = "invalid_body", body = ecoshard_core::wire::ApiErrorBody),
        (status = 503, description = "primary_unavailable, write_outcome_unknown", body = ecoshard_core::wire::ApiErrorBody)))]
pub(crate) async fn insert(
    State(state): State<AppState>,
    Json(new_user): Json<NewUser>,
) -> Result<(StatusCode, axum::Json<InsertResult>), ApiError> {
    let inserted = service::writes::insert(state.service(), new_user).await?;
    Ok((created(inserted.created), axum::Json(inserted.result)))
}

/// `POST /api/users/bulk`: 201 written; 200 every user stored already
/// exactly so.
#[utoipa::path(post, path = "/users/bulk", tag = "users",
    request_body = BulkInsert,
    responses(
        (status = 201, description = "Written, in one transaction", body = BulkResult),
        (status = 200, description = "A repeat: every user stored already exactly so", body = BulkResult),
        (status = 400, description = "invalid_json, invalid_count, invalid_prefix", body = ecoshard_core::wire::ApiErrorBody),
        (status = 409, description = "duplicate_user: nothing written", body = ecoshard_core::wire::ApiErrorBody),
        (status = 429, description = "busy: too many bulk inserts at once", body = ecoshard_core::wire::ApiErrorBody),
        (status = 503, description = "primary_unavailable, write_outcome_unknown", body = ecoshard_core::wire::ApiErrorBody)))]
pub(crate) async fn bulk(
    State(state): State<AppState>,
    Json(request): Json<BulkInsert>,
) -> Result<(StatusCode, axum::Json<BulkResult>), ApiError> {
    let (result, wrote) = service::bulk::bulk(state.service(), request).await?;
    Ok((created(wrote), axum::Json(result)))
}

/// `POST /api/users/generate`: 201 written with `COPY`; 200 every user
/// stored already exactly so.
#[utoipa::path(post, path = "/users/generate", tag = "users",
    request_body = GenerateUsers,
    responses(
        (status = 201, description = "Written with COPY, in one transaction", body = GenerateResult),
        (status = 200, description = "A repeat: every user stored already exactly so", body = GenerateResult),
        (status = 400, description = "invalid_json, invalid_count, invalid_prefix", body = ecoshard_core::wire::ApiErrorBody),
        (status = 409, description = "duplicate_user, generate_running, rebalance_running: nothing written", body = ecoshard_core::wire::ApiErrorBody),
        (status = 503, description = "primary_unavailable, generate_timed_out, write_outcome_unknown", body = ecoshard_core::wire::ApiErrorBody)))]
pub(crate) async fn generate(
    State(state): State<AppState>,
    Json(request): Json<GenerateUsers>,
) -> Result<(StatusCode, axum::Json<GenerateResult>), ApiError> {
    let (result, wrote) = service::generate::generate(state.service(), request).await?;
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
#[utoipa::path(get, path = "/users/{id}", tag = "users",
    params(
        ("id" = String, Path, description = "The user_id"),
        ("consistency" = Option<ecoshard_core::wire::Consistency>, Query, description = "eventual (default), strong or read-your-writes"),
        ("lsn" = Option<String>, Query, description = "For read-your-writes: an insert's lsn (default: the latest write acknowledged)")),
    responses(
        (status = 200, description = "The user, where and by which node", body = ReadResult),
        (status = 400, description = "invalid_user_id, invalid_consistency, invalid_lsn, invalid_query", body = ecoshard_core::wire::ApiErrorBody),
        (status = 404, description = "user_not_found", body = ecoshard_core::wire::ApiErrorBody),
        (status = 503, description = "primary_unavailable, no_node_available, read_timed_out", body = ecoshard_core::wire::ApiErrorBody)))]
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
#[utoipa::path(get, path = "/sample", tag = "users",
    params(("count" = Option<u64>, Query, description = "How many ids: 1 to 10,000 (default 2,000)")),
    responses(
        (status = 200, description = "Ids drawn from every shard, with the layout version", body = UserSample),
        (status = 400, description = "invalid_count, invalid_query", body = ecoshard_core::wire::ApiErrorBody),
        (status = 503, description = "no_node_available", body = ecoshard_core::wire::ApiErrorBody)))]
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
