//! `GET /api/health`, `/api/cluster`, `/api/layout`, `/api/stats`.

use axum::extract::State;
use ecoshard_core::wire::{ClusterView, Health, LayoutView, Stats};

use crate::http::AppState;

/// Liveness: answers as long as the bridge runs.
pub(crate) async fn health() -> axum::Json<Health> {
    axum::Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// Nodes with their health and lag, and the layout in force.
pub(crate) async fn cluster(State(state): State<AppState>) -> axum::Json<ClusterView> {
    axum::Json(state.service().cluster_view())
}

/// The layout in force and its version.
pub(crate) async fn layout(State(state): State<AppState>) -> axum::Json<LayoutView> {
    axum::Json(state.service().layout_view())
}

/// Counters, rates and rows per shard.
pub(crate) async fn stats(State(state): State<AppState>) -> axum::Json<Stats> {
    axum::Json(state.service().stats())
}
