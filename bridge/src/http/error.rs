//! `ApiError`: every error the HTTP API answers, with one stable JSON shape
//! `{"error": {"code", "message"}}`. Internals are logged, never sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ecoshard_core::wire::{ApiErrorBody, ApiErrorDetail, Consistency};

use crate::service::input::Invalid;
use crate::service::verify::Refusal;
use crate::service::{Error, LayoutRefusal, TwoPhaseError};

/// An error answered to an HTTP client.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status (4xx for the client's mistakes, 5xx for ours or the database's).
    pub(crate) status: StatusCode,
    /// Stable machine-readable code.
    pub(crate) code: &'static str,
    /// One sentence for people.
    pub(crate) message: String,
}

impl ApiError {
    /// An error with this status, code and message.
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 with a code naming what was wrong.
    pub(crate) fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 for a route that does not exist.
    pub(crate) fn no_route() -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such endpoint (see docs/api.md)",
        )
    }

    /// 500, after logging what happened.
    pub(crate) fn internal(context: &str, error: impl std::fmt::Display) -> Self {
        tracing::error!("{context}: {error}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error (logged by the bridge)",
        )
    }

    /// The JSON body.
    pub(crate) fn body(&self) -> ApiErrorBody {
        ApiErrorBody {
            error: ApiErrorDetail {
                code: self.code.to_string(),
                message: self.message.clone(),
            },
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

/// The one translation of the service's errors into HTTP: a status and a
/// stable code per cause, the service's sentence as the message.
impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        let (status, code) = status_and_code(&error);
        ApiError::new(status, code, error.to_string())
    }
}

fn status_and_code(error: &Error) -> (StatusCode, &'static str) {
    use StatusCode as S;
    match error {
        Error::Invalid(invalid) => (S::BAD_REQUEST, invalid_code(invalid)),
        Error::Layout(LayoutRefusal::Invalid(_)) => (S::BAD_REQUEST, "invalid_layout"),
        Error::Layout(LayoutRefusal::BoundedLoad) => (S::BAD_REQUEST, "unsupported_strategy"),
        Error::Layout(LayoutRefusal::TooManyShards { .. }) => (S::BAD_REQUEST, "too_many_shards"),
        Error::Layout(LayoutRefusal::UnknownCluster { .. }) => (S::BAD_REQUEST, "unknown_cluster"),
        Error::Layout(LayoutRefusal::PlacementAndKeys { .. }) => {
            (S::BAD_REQUEST, "placement_and_keys")
        }
        Error::UserNotFound { .. } => (S::NOT_FOUND, "user_not_found"),
        Error::JobNotFound(_) => (S::NOT_FOUND, "job_not_found"),
        Error::UnknownNode { .. } => (S::NOT_FOUND, "unknown_node"),
        Error::UnknownCluster { .. } => (S::NOT_FOUND, "unknown_cluster"),
        Error::DuplicateUser(_) | Error::DuplicateBulk { .. } => (S::CONFLICT, "duplicate_user"),
        Error::RebalanceBusy(_) => (S::CONFLICT, "rebalance_running"),
        Error::LayoutChanged => (S::CONFLICT, "layout_changed"),
        Error::NotLocal { .. } => (S::CONFLICT, "not_local"),
        Error::NodeActionRefused(_) => (S::CONFLICT, "node_action_refused"),
        Error::Generating => (S::CONFLICT, "generate_running"),
        Error::GenerateDuringRebalance(_) => (S::CONFLICT, "rebalance_running"),
        Error::ShardFenced(_) => (S::SERVICE_UNAVAILABLE, "shard_cutover"),
        Error::RebalanceElsewhere(..) => (S::CONFLICT, "rebalance_running"),
        Error::BridgeFenced | Error::BridgeFencedRead => (S::SERVICE_UNAVAILABLE, "bridge_fenced"),
        Error::GenerateTimedOut { .. } => (S::SERVICE_UNAVAILABLE, "generate_timed_out"),
        Error::BulkBusy => (S::TOO_MANY_REQUESTS, "busy"),
        Error::PrimaryUnavailable(_) => (S::SERVICE_UNAVAILABLE, "primary_unavailable"),
        Error::WriteOutcomeUnknown { .. } => (S::SERVICE_UNAVAILABLE, "write_outcome_unknown"),
        Error::ReadTimedOut { .. } => (S::SERVICE_UNAVAILABLE, "read_timed_out"),
        Error::ReadUnavailable {
            consistency: Consistency::Strong,
            ..
        } => (S::SERVICE_UNAVAILABLE, "primary_unavailable"),
        Error::ReadUnavailable { .. } => (S::SERVICE_UNAVAILABLE, "no_node_available"),
        Error::SampleUnavailable { .. } => (S::SERVICE_UNAVAILABLE, "no_node_available"),
        Error::NodeActionFailed { .. } => (S::INTERNAL_SERVER_ERROR, "node_action_failed"),
        Error::TwoPhase(error) => two_phase_status_and_code(error),
        Error::Verify(refusal) => verify_status(refusal),
        Error::Internal(_) => (S::INTERNAL_SERVER_ERROR, "internal"),
    }
}

fn two_phase_status_and_code(error: &TwoPhaseError) -> (StatusCode, &'static str) {
    use StatusCode as S;
    match error {
        TwoPhaseError::CatalogUnavailable { .. } | TwoPhaseError::NotCommitted { .. } => {
            (S::SERVICE_UNAVAILABLE, "primary_unavailable")
        }
        TwoPhaseError::DecisionUnknown { .. } | TwoPhaseError::Unfinished { .. } => {
            (S::SERVICE_UNAVAILABLE, "write_outcome_unknown")
        }
        TwoPhaseError::UnknownCluster { .. } => (S::NOT_FOUND, "unknown_cluster"),
        TwoPhaseError::RecoveryBusy | TwoPhaseError::OutOfOrder(_) => {
            (S::INTERNAL_SERVER_ERROR, "internal")
        }
    }
}

fn verify_status(refusal: &Refusal) -> (StatusCode, &'static str) {
    use StatusCode as S;
    match refusal {
        Refusal::Busy => (S::CONFLICT, "verify_running"),
        Refusal::RebalanceRunning(_) | Refusal::LayoutChanged => (S::CONFLICT, "rebalance_running"),
        Refusal::Unavailable { .. } => (S::SERVICE_UNAVAILABLE, "primary_unavailable"),
        Refusal::TimedOut => (S::SERVICE_UNAVAILABLE, "verify_timed_out"),
    }
}

fn invalid_code(invalid: &Invalid) -> &'static str {
    match invalid {
        Invalid::UserIdEmpty | Invalid::UserIdTooLong(_) | Invalid::UserIdCharacters => {
            "invalid_user_id"
        }
        Invalid::Prefix => "invalid_prefix",
        Invalid::Name => "invalid_name",
        Invalid::Email => "invalid_email",
        Invalid::Count(_) | Invalid::GenerateCount(_) | Invalid::SampleCount(_) => "invalid_count",
        Invalid::Consistency(_) => "invalid_consistency",
        Invalid::Lsn | Invalid::LsnCluster { .. } => "invalid_lsn",
        Invalid::LsnWithoutReadYourWrites => "invalid_query",
        Invalid::StopMode(_) => "invalid_mode",
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> Self {
        use axum::extract::rejection::JsonRejection;
        if caused_by::<crate::http::server::BodyTimedOut>(&rejection) {
            return ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                "the request body did not arrive in time",
            );
        }
        let text = rejection.body_text();
        match rejection {
            JsonRejection::JsonSyntaxError(_) => ApiError::bad_request("invalid_json", text),
            JsonRejection::JsonDataError(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", text)
            }
            JsonRejection::MissingJsonContentType(_) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ),
            JsonRejection::BytesRejection(_)
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!(
                        "the body is over the limit of {} bytes",
                        crate::http::MAX_BODY_BYTES
                    ),
                )
            }
            other => ApiError::new(other.status(), "invalid_body", text),
        }
    }
}

/// Whether `error` or an error under it is an `E`.
fn caused_by<E: std::error::Error + 'static>(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if error.is::<E>() {
            return true;
        }
        cause = error.source();
    }
    false
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::bad_request("invalid_query", rejection.body_text())
    }
}

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::PathRejection) -> Self {
        ApiError::bad_request("invalid_path", rejection.body_text())
    }
}
