//! `GET /api/health`, `/api/cluster`, `/api/layout`, `/api/stats`.

use axum::extract::State;
use ecoshard_core::wire::{ClusterView, Health, LayoutView, Stats};

use crate::http::AppState;

/// Liveness: answers as long as the bridge runs.
#[utoipa::path(get, path = "/health", tag = "cluster",
    responses((status = 200, description = "The bridge runs", body = Health)))]
pub(crate) async fn health() -> axum::Json<Health> {
    axum::Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// Nodes with their health and lag, and the layout in force.
#[utoipa::path(get, path = "/cluster", tag = "cluster",
    responses((status = 200, description = "The nodes, the layout, the failover", body = ClusterView)))]
pub(crate) async fn cluster(State(state): State<AppState>) -> axum::Json<ClusterView> {
    axum::Json(state.service().cluster_view())
}

/// The layout in force and its version.
#[utoipa::path(get, path = "/layout", tag = "layout",
    responses((status = 200, description = "The layout in force", body = LayoutView)))]
pub(crate) async fn layout(State(state): State<AppState>) -> axum::Json<LayoutView> {
    axum::Json(state.service().layout_view())
}

/// Counters, rates and rows per shard.
#[utoipa::path(get, path = "/stats", tag = "cluster",
    responses((status = 200, description = "Counters since start, rates, row estimates", body = Stats)))]
pub(crate) async fn stats(State(state): State<AppState>) -> axum::Json<Stats> {
    axum::Json(state.service().stats())
}
