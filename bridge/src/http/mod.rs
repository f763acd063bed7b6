//! The HTTP API under `/api` (see docs/api.md) and the app around it: the
//! edge rules (hosts, origins, token, head sizes), the web page's static files
//! at `/`, compression, body limits.

mod cluster;
pub(crate) mod error;
mod events;
mod guard;
mod layout;
mod nodes;
pub(crate) mod page;
pub(crate) mod server;
mod state;
mod users;

pub use events::EventClients;
pub use guard::Token;
pub use state::{AppState, BridgeConfig};

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::routing::{get, post};
use serde::de::DeserializeOwned;
use tower_http::compression::CompressionLayer;

use crate::http::error::ApiError;

/// Largest request body accepted, in bytes.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

/// The whole app: `/api/…` and the web page, behind the edge rules.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route("/health", get(cluster::health))
        .route("/cluster", get(cluster::cluster))
        .route("/layout", get(cluster::layout).put(layout::apply))
        .route("/rebalance/{id}", get(layout::job))
        .route("/stats", get(cluster::stats))
        .route("/events", get(events::events))
        .route("/users", post(users::insert))
        .route("/users/bulk", post(users::bulk))
        .route("/users/{id}", get(users::read))
        .route("/sample", get(users::sample))
        .route("/nodes/{name}/stop", post(nodes::stop))
        .route("/nodes/{name}/start", post(nodes::start))
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
    let web_dir = state.web_dir().cloned();
    crate::http::page::mount(Router::new().nest("/api", api), web_dir.as_deref())
        .layer(CompressionLayer::new())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
        .with_state(state)
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
