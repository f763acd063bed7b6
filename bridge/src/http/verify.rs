//! `POST /api/verify`: the database checked against the layout in force
//! and its placement (see `service/verify.rs`); 200 and the report whether
//! clean or not, its `clean` field says.

use axum::extract::State;
use ecoshard_core::wire::VerifyReport;

use super::AppState;
use crate::http::error::ApiError;

/// `POST /api/verify`.
#[utoipa::path(post, path = "/verify", tag = "layout",
    responses(
        (status = 200, description = "The report, clean or not (`clean` says)", body = VerifyReport),
        (status = 409, description = "verify_running, rebalance_running", body = ecoshard_core::wire::ApiErrorBody),
        (status = 503, description = "primary_unavailable, verify_timed_out", body = ecoshard_core::wire::ApiErrorBody)))]
pub(crate) async fn verify(
    State(state): State<AppState>,
) -> Result<axum::Json<VerifyReport>, ApiError> {
    let service = state.service().clone();
    // On a task of its own: a client that hangs up does not cut a
    // verification off in the middle of a cursor.
    let report = tokio::spawn(async move { service.verify().await })
        .await
        .map_err(|error| ApiError::internal("verifying", error))??;
    Ok(axum::Json(report))
}
