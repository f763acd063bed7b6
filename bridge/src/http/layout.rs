//! `PUT /api/layout` (apply a layout: a rebalance job) and
//! `GET /api/rebalance/{id}` (its progress).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use ecoshard_core::wire::RebalanceJob;

use super::{AppState, Json, Path};
use crate::http::error::ApiError;
use crate::service::rebalance::{self, Applied};

/// `PUT /api/layout`: 202 and the job (with its plan when it was ready in
/// time); 200 and the layout in force when the layout is that one (nothing
/// stored, nothing moves).
#[utoipa::path(put, path = "/layout", tag = "layout",
    request_body = ecoshard_core::Layout,
    responses(
        (status = 202, description = "A rebalance job started", body = RebalanceJob),
        (status = 200, description = "That layout is in force already: nothing moves", body = ecoshard_core::wire::LayoutView),
        (status = 400, description = "invalid_layout, too_many_shards, unsupported_strategy, unknown_cluster, invalid_json", body = ecoshard_core::wire::ApiErrorBody),
        (status = 409, description = "rebalance_running, layout_changed, generate_running", body = ecoshard_core::wire::ApiErrorBody),
        (status = 413, description = "body_too_large", body = ecoshard_core::wire::ApiErrorBody),
        (status = 415, description = "unsupported_media_type", body = ecoshard_core::wire::ApiErrorBody),
        (status = 422, description = "invalid_body", body = ecoshard_core::wire::ApiErrorBody),
        (status = 503, description = "primary_unavailable", body = ecoshard_core::wire::ApiErrorBody)))]
pub(crate) async fn apply(
    State(state): State<AppState>,
    Json(body): Json<serde_json::Value>,
) -> Result<Response, ApiError> {
    let service = state.service().clone();
    // On a task of its own: a client that hangs up must not cancel a job
    // half begun (stored, but its routing not swapped yet).
    let applied = tokio::spawn(async move { rebalance::apply_json(&service, body).await })
        .await
        .map_err(|error| ApiError::internal("applying a layout", error))??;
    Ok(match applied {
        Applied::InForce(view) => (StatusCode::OK, axum::Json(view)).into_response(),
        Applied::Started(job) => (StatusCode::ACCEPTED, axum::Json(job)).into_response(),
    })
}

/// `GET /api/rebalance/{id}`.
#[utoipa::path(get, path = "/rebalance/{id}", tag = "layout",
    params(("id" = u64, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The job now, with its plan once made", body = RebalanceJob),
        (status = 400, description = "invalid_path: the id is not a number", body = ecoshard_core::wire::ApiErrorBody),
        (status = 404, description = "job_not_found", body = ecoshard_core::wire::ApiErrorBody)))]
pub(crate) async fn job(
    State(state): State<AppState>,
    Path(id): Path<u64>,
) -> Result<axum::Json<RebalanceJob>, ApiError> {
    Ok(axum::Json(rebalance::job(state.service(), id).await?))
}
