//! `POST /api/nodes/{name}/stop` and `…/start`: failure simulation on the
//! local cluster. Stopping the primary makes writes answer 503 (and, with
//! `--auto-failover`, promotes a standby); starting a node that is no longer
//! primary brings it back as a standby, never as a second primary.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use ecoshard_core::wire::{ClusterMode, NodeAction, NodeRole};
use serde::Deserialize;

use super::{Path, Query};
use crate::http::error::ApiError;
use crate::service::AppState;
use ecoshard_postgres::{ClusterError, LocalCluster};

/// Query of `POST /api/nodes/{name}/stop`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopParams {
    /// `fast` (default: a clean shutdown) or `immediate` (like a crash).
    mode: Option<String>,
}

/// `POST /api/nodes/{name}/stop?mode=fast|immediate`.
pub async fn stop(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(params): Query<StopParams>,
) -> Result<axum::Json<NodeAction>, ApiError> {
    let immediate = match params.mode.as_deref() {
        None | Some("fast") => false,
        Some("immediate") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_mode",
                format!(
                    "unknown stop mode {:?}: use fast (a clean shutdown) or immediate (like a crash)",
                    short(other)
                ),
            ));
        }
    };
    let local = local_cluster(&state)?;
    let node = known_node(&state, &name)?;
    let _operation = state.failover().lock().await;
    if !blocking(&local, {
        let name = name.clone();
        move |local| local.is_node_running(&name)
    })
    .await
    .map_err(|error| action_failed("stopping", &name, &error))?
    {
        node.mark_down();
        return Ok(answer(
            &state,
            &name,
            "stop",
            false,
            format!("{name} was already stopped"),
        ));
    }
    blocking(&local, {
        let name = name.clone();
        move |local| local.stop_node(&name, immediate)
    })
    .await
    .map_err(|error| action_failed("stopping", &name, &error))?;
    node.mark_down();
    let how = if immediate { "immediate" } else { "fast" };
    let message = if node.is_primary() {
        let next = if state.failover().is_auto() {
            "until a standby is promoted in its place (automatic failover)"
        } else {
            "until it is started again"
        };
        format!(
            "stopped {name} ({how}), the primary: writes answer 503 {next}; reads go to the standbys"
        )
    } else {
        format!("stopped {name} ({how}); reads go to the other nodes")
    };
    tracing::info!("{message}");
    Ok(answer(&state, &name, "stop", true, message))
}

/// `POST /api/nodes/{name}/start`.
pub async fn start(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<axum::Json<NodeAction>, ApiError> {
    let local = local_cluster(&state)?;
    known_node(&state, &name)?;
    let _operation = state.failover().lock().await;
    if blocking(&local, {
        let name = name.clone();
        move |local| local.is_node_running(&name)
    })
    .await
    .map_err(|error| action_failed("starting", &name, &error))?
    {
        return Ok(answer(
            &state,
            &name,
            "start",
            false,
            format!("{name} is already running"),
        ));
    }
    let rebuilt = blocking(&local, {
        let name = name.clone();
        move |local| local.start_node(&name)
    })
    .await
    .map_err(|error| action_failed("starting", &name, &error))?;
    crate::cluster::monitor::check_nodes(state.cluster(), crate::service::ticks::now_ms()).await;
    let primary = state.cluster().primary().name().to_string();
    let message = match rebuilt {
        _ if primary == name => format!("started {name}, the primary"),
        Some(how) => format!("started {name} as a standby of {primary}: {how}"),
        None => format!("started {name}, a standby of {primary}; it catches up through its slot"),
    };
    tracing::info!("{message}");
    Ok(answer(&state, &name, "start", true, message))
}

fn answer(
    state: &AppState,
    name: &str,
    action: &str,
    changed: bool,
    message: String,
) -> axum::Json<NodeAction> {
    let role = state
        .cluster()
        .node(name)
        .map(|node| node.role())
        .unwrap_or(NodeRole::Standby);
    axum::Json(NodeAction {
        node: name.to_string(),
        action: action.to_string(),
        changed,
        role,
        message,
    })
}

/// The local cluster, or 409 `not_local`.
fn local_cluster(state: &AppState) -> Result<Arc<LocalCluster>, ApiError> {
    match state.failover().local() {
        Some(local) => Ok(Arc::clone(local)),
        None => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_local",
            if state.mode() == ClusterMode::External {
                "the bridge connects to an external cluster: it did not start these servers and \
                 does not stop or start them"
            } else {
                "this bridge does not manage the servers of the local cluster"
            },
        )),
    }
}

/// The node called `name`, or 404 `unknown_node`.
fn known_node<'a>(state: &'a AppState, name: &str) -> Result<&'a crate::cluster::Node, ApiError> {
    state.cluster().node(name).ok_or_else(|| {
        let names: Vec<&str> = state.cluster().nodes.iter().map(|n| n.name()).collect();
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_node",
            format!(
                "no node named {:?}; the nodes are {}",
                short(name),
                names.join(", ")
            ),
        )
    })
}

/// Runs a blocking cluster operation (`pg_ctl`, `psql`) off the async threads.
async fn blocking<T: Send + 'static>(
    local: &Arc<LocalCluster>,
    operation: impl FnOnce(&LocalCluster) -> Result<T, ClusterError> + Send + 'static,
) -> Result<T, ClusterError> {
    let local = Arc::clone(local);
    tokio::task::spawn_blocking(move || operation(&local))
        .await
        .unwrap_or_else(|error| {
            Err(ClusterError::Command {
                what: "a node action".into(),
                detail: error.to_string(),
            })
        })
}

/// 409 `node_action_refused` when the cluster's state forbids it (the
/// message says why); else 500 `node_action_failed`, details in the log.
fn action_failed(doing: &str, name: &str, error: &ClusterError) -> ApiError {
    if let ClusterError::Refused { .. } = error {
        return ApiError::new(
            StatusCode::CONFLICT,
            "node_action_refused",
            error.to_string(),
        );
    }
    tracing::error!("{doing} {name}: {error}");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "node_action_failed",
        format!("{doing} {name} failed (details in the bridge's log)"),
    )
}

fn short(text: &str) -> String {
    text.chars().take(40).collect()
}
