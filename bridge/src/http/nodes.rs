//! `POST /api/nodes/{name}/stop` and `…/start` (`c1`'s nodes), and
//! `POST /api/clusters/{cluster}/nodes/{name}/stop` and `…/start` (any
//! cluster's): the service's failure simulation on clusters whose servers
//! the bridge runs.

use axum::extract::State;
use ecoshard_core::wire::NodeAction;
use serde::Deserialize;

use super::{AppState, Path, Query};
use crate::http::error::ApiError;
use crate::service;

/// Query of `POST /api/nodes/{name}/stop`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StopParams {
    /// `fast` (default: a clean shutdown) or `immediate` (like a crash).
    mode: Option<String>,
}

/// `POST /api/nodes/{name}/stop?mode=fast|immediate`.
#[utoipa::path(post, path = "/nodes/{name}/stop", tag = "nodes",
    params(
        ("name" = String, Path, description = "primary, standby-1, standby-2, …"),
        ("mode" = Option<String>, Query, description = "fast (default: a clean shutdown) or immediate (like a crash)")),
    responses(
        (status = 200, description = "Stopped, or stopped already", body = NodeAction),
        (status = 400, description = "invalid_mode, invalid_query", body = ecoshard_core::wire::ApiErrorBody),
        (status = 404, description = "unknown_node", body = ecoshard_core::wire::ApiErrorBody),
        (status = 409, description = "not_local, node_action_refused", body = ecoshard_core::wire::ApiErrorBody),
        (status = 500, description = "node_action_failed", body = ecoshard_core::wire::ApiErrorBody)))]
pub(crate) async fn stop(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(params): Query<StopParams>,
) -> Result<axum::Json<NodeAction>, ApiError> {
    let action = service::nodes::stop(state.service(), None, &name, params.mode.as_deref()).await?;
    Ok(axum::Json(action))
}

/// `POST /api/nodes/{name}/start`.
#[utoipa::path(post, path = "/nodes/{name}/start", tag = "nodes",
    params(("name" = String, Path, description = "primary, standby-1, standby-2, …")),
    responses(
        (status = 200, description = "Started, or running already", body = NodeAction),
        (status = 404, description = "unknown_node", body = ecoshard_core::wire::ApiErrorBody),
        (status = 409, description = "not_local, node_action_refused", body = ecoshard_core::wire::ApiErrorBody),
        (status = 500, description = "node_action_failed", body = ecoshard_core::wire::ApiErrorBody)))]
pub(crate) async fn start(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<axum::Json<NodeAction>, ApiError> {
    Ok(axum::Json(
        service::nodes::start(state.service(), None, &name).await?,
    ))
}

/// `POST /api/clusters/{cluster}/nodes/{name}/stop?mode=fast|immediate`.
#[utoipa::path(post, path = "/clusters/{cluster}/nodes/{name}/stop", tag = "nodes",
    params(
        ("cluster" = String, Path, description = "c1, c2, …"),
        ("name" = String, Path, description = "primary, standby-1, standby-2, … of that cluster"),
        ("mode" = Option<String>, Query, description = "fast (default: a clean shutdown) or immediate (like a crash)")),
    responses(
        (status = 200, description = "Stopped, or stopped already", body = NodeAction),
        (status = 400, description = "invalid_mode, invalid_query", body = ecoshard_core::wire::ApiErrorBody),
        (status = 404, description = "unknown_cluster, unknown_node", body = ecoshard_core::wire::ApiErrorBody),
        (status = 409, description = "not_local, node_action_refused", body = ecoshard_core::wire::ApiErrorBody),
        (status = 500, description = "node_action_failed", body = ecoshard_core::wire::ApiErrorBody)))]
pub(crate) async fn stop_in_cluster(
    State(state): State<AppState>,
    Path((cluster, name)): Path<(String, String)>,
    Query(params): Query<StopParams>,
) -> Result<axum::Json<NodeAction>, ApiError> {
    let mode = params.mode.as_deref();
    let action = service::nodes::stop(state.service(), Some(&cluster), &name, mode).await?;
    Ok(axum::Json(action))
}

/// `POST /api/clusters/{cluster}/nodes/{name}/start`.
#[utoipa::path(post, path = "/clusters/{cluster}/nodes/{name}/start", tag = "nodes",
    params(
        ("cluster" = String, Path, description = "c1, c2, …"),
        ("name" = String, Path, description = "primary, standby-1, standby-2, … of that cluster")),
    responses(
        (status = 200, description = "Started, or running already", body = NodeAction),
        (status = 404, description = "unknown_cluster, unknown_node", body = ecoshard_core::wire::ApiErrorBody),
        (status = 409, description = "not_local, node_action_refused", body = ecoshard_core::wire::ApiErrorBody),
        (status = 500, description = "node_action_failed", body = ecoshard_core::wire::ApiErrorBody)))]
pub(crate) async fn start_in_cluster(
    State(state): State<AppState>,
    Path((cluster, name)): Path<(String, String)>,
) -> Result<axum::Json<NodeAction>, ApiError> {
    Ok(axum::Json(
        service::nodes::start(state.service(), Some(&cluster), &name).await?,
    ))
}
