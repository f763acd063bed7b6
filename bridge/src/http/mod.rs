//! The HTTP API under `/api` (see docs/api.md) and the app around it: the
//! edge rules (hosts, origins, token, head sizes), the web page's static files
//! at `/`, compression, body limits.

mod cluster;
pub(crate) mod error;
mod events;
mod guard;
mod layout;
mod metrics;
mod nodes;
mod openapi;
pub(crate) mod page;
pub(crate) mod server;
mod state;
mod users;
mod verify;

pub use events::EventClients;
pub use guard::Token;
pub use state::{AppState, BridgeConfig, hostname};

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{NotForContentType, Predicate as _, SizeAbove};
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::error::ApiError;

/// Answers smaller than this are sent uncompressed.
const COMPRESS_ABOVE_BYTES: u16 = 1024;

/// Largest request body accepted, in bytes.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

/// The whole app: `/api/…`, `/metrics` and the web page, behind the edge rules.
pub fn app(state: AppState) -> Router {
    let (api, _) = api_routes().split_for_parts();
    let api = api
        .fallback(|| async { ApiError::no_route() })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method (see docs/api.md)",
            )
        })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limit_in_flight,
        ));
    let (routes, _) = top_routes().split_for_parts();
    let web_dir = state.web_dir().cloned();
    crate::http::page::mount(routes.nest("/api", api), web_dir.as_deref())
        // The page's files and large answers are compressed; a small JSON
        // answer (a read, an insert) is not worth the CPU or the latency.
        .layer(
            CompressionLayer::new().compress_when(
                SizeAbove::new(COMPRESS_ABOVE_BYTES)
                    .and(NotForContentType::GRPC)
                    .and(NotForContentType::IMAGES)
                    .and(NotForContentType::SSE),
            ),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
        // Outermost, so that refusals by the edge rules are counted too.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(axum::middleware::map_response_with_state(
            state.clone(),
            name_the_bridge,
        ))
        .with_state(state)
}

/// The header naming the bridge that answered (behind a load balancer,
/// which of them).
pub const BRIDGE_HEADER: &str = "x-ecoshard-bridge";

/// Adds [`BRIDGE_HEADER`] to every answer when the bridge has a name.
async fn name_the_bridge(
    axum::extract::State(state): axum::extract::State<AppState>,
    mut response: axum::response::Response,
) -> axum::response::Response {
    if let Some(name) = state.name_header() {
        response.headers_mut().insert(BRIDGE_HEADER, name.clone());
    }
    response
}

/// The routes under `/api`, one line each: `routes!` takes a handler's
/// method and path from its `#[utoipa::path]`, so a route added here has
/// its OpenAPI entry (`tests/openapi.rs` checks every route of the app).
pub(crate) fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(cluster::health))
        .routes(routes!(cluster::cluster))
        .routes(routes!(cluster::layout, layout::apply))
        .routes(routes!(layout::job))
        .routes(routes!(cluster::stats))
        .routes(routes!(events::events))
        .routes(routes!(users::insert))
        .routes(routes!(users::bulk))
        .routes(routes!(users::generate))
        .routes(routes!(users::read))
        .routes(routes!(users::sample))
        .routes(routes!(nodes::stop))
        .routes(routes!(nodes::start))
        .routes(routes!(nodes::stop_in_cluster))
        .routes(routes!(nodes::start_in_cluster))
        .routes(routes!(verify::verify))
        .routes(routes!(openapi::openapi))
}

/// The routes outside `/api`, and the document's own description.
pub(crate) fn top_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi()).routes(routes!(metrics::metrics))
}

/// Refuses API requests beyond `max_in_flight` with 429 instead of queueing them.
async fn limit_in_flight(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    match state.in_flight().try_acquire() {
        Ok(_permit) => next.run(request).await,
        Err(_) => busy("the bridge is handling as many requests as it takes; retry shortly")
            .into_response(),
    }
}

/// 429 `busy`.
pub(crate) fn busy(message: &str) -> ApiError {
    ApiError::new(StatusCode::TOO_MANY_REQUESTS, "busy", message)
}

/// `axum::Json` with rejections turned into [`ApiError`]s.
#[derive(Debug)]
pub(crate) struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(value) = axum::Json::<T>::from_request(request, state).await?;
        Ok(Json(value))
    }
}

/// `axum::extract::Query` with rejections turned into [`ApiError`]s.
#[derive(Debug)]
pub(crate) struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Query(value))
    }
}

/// `axum::extract::Path` with rejections turned into [`ApiError`]s.
#[derive(Debug)]
pub(crate) struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(value) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Path(value))
    }
}
