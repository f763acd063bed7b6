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
pub(crate) async fn job(
    State(state): State<AppState>,
    Path(id): Path<u64>,
) -> Result<axum::Json<RebalanceJob>, ApiError> {
    Ok(axum::Json(rebalance::job(state.service(), id).await?))
}
