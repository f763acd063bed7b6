//! `GET /api/openapi.json`: the OpenAPI document of the HTTP API, generated
//! from the code — each handler's `#[utoipa::path]` (method, path,
//! parameters, body, answers) and the wire types' derived schemas — by the
//! same calls that put the routes in the router (see [`super::api_routes`]).
//! docs/api.md stays the prose guide.

use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;
use utoipa::openapi::OpenApi as Document;

use super::error::ApiError;

/// What the document says besides its paths.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "ecoshard bridge",
        description = "Routes users rows to shard schemas on a replicated PostgreSQL. \
            docs/api.md is the guide. Every error is `ApiErrorBody`; besides each \
            operation's own errors, any request may be refused by the edge rules: \
            414 uri_too_long, 431 headers_too_large, 421 misdirected_host, and for \
            changes 403 cross_origin and 401 unauthorized (see docs/api.md, Who may \
            call the bridge); API requests beyond the in-flight limit get 429 busy.",
        license(name = "MIT OR Apache-2.0")
    ),
    components(schemas(ecoshard_core::wire::ApiErrorBody, ecoshard_core::wire::Tick)),
    tags(
        (name = "cluster", description = "Nodes, lag, counters, the live stream"),
        (name = "layout", description = "The layout in force and rebalance jobs"),
        (name = "users", description = "Writes and reads routed by the core"),
        (name = "nodes", description = "Failure simulation on a local cluster"),
        (name = "operations", description = "Metrics and this document")
    )
)]
pub(crate) struct ApiDoc;

/// The whole document: the routes' entries, `/api` ones under `/api`.
pub(crate) fn document() -> Document {
    let (_, api) = super::api_routes().split_for_parts();
    let (_, top) = super::top_routes().split_for_parts();
    top.nest("/api", api)
}

/// `GET /api/openapi.json`.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "This document (OpenAPI 3.1)", content_type = "application/json"))
)]
pub(crate) async fn openapi() -> Response {
    match document().to_json() {
        Ok(json) => (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            json,
        )
            .into_response(),
        Err(error) => ApiError::internal("writing the OpenAPI document", error).into_response(),
    }
}
