//! One API error type, in Backstage's error JSON shape:
//! `{error: {name, message}, request: {method, url}, response: {statusCode}}`.
//! `name` values are stable codes clients may match on.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// Backstage's error names: InputError, AuthenticationError,
    /// NotAllowedError, NotFoundError, ConflictError, ServiceUnavailableError,
    /// Error.
    pub name: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn input(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            name: "InputError",
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            name: "NotFoundError",
            message: message.into(),
        }
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::CONFLICT,
            name: "ConflictError",
            message: message.into(),
        }
    }

    /// 401: the caller is not identified (no token, or an unknown one).
    pub fn unauthenticated(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            name: "AuthenticationError",
            message: message.into(),
        }
    }

    /// 403: identified, and not allowed.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::FORBIDDEN,
            name: "NotAllowedError",
            message: message.into(),
        }
    }

    /// 413: a body over [`crate::BODY_LIMIT`].
    pub fn too_large() -> ApiError {
        ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            name: "PayloadTooLargeError",
            message: format!(
                "the request body is over the limit of {} MiB",
                crate::BODY_LIMIT >> 20
            ),
        }
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            name: "ServiceUnavailableError",
            message: message.into(),
        }
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            name: "Error",
            message: message.into(),
        }
    }
}

impl From<plinth_store::StoreError> for ApiError {
    fn from(e: plinth_store::StoreError) -> ApiError {
        match e {
            plinth_store::StoreError::LocationExists(m) => {
                ApiError::conflict(format!("location {m} already exists"))
            }
            plinth_store::StoreError::Database(e) => {
                // Logged once here, where it is handled.
                tracing::error!(error = %e, "catalog database error");
                ApiError::unavailable("the catalog database is not available; try again shortly")
            }
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl From<plinth_catalog::ingest::IngestError> for ApiError {
    fn from(e: plinth_catalog::ingest::IngestError) -> ApiError {
        match e {
            plinth_catalog::ingest::IngestError::Store(s) => s.into(),
            other => ApiError::internal(other.to_string()),
        }
    }
}

/// The error as carried in a response until [`with_request`] writes it out.
#[derive(Debug, Clone)]
struct PendingError(ApiError);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = self.status.into_response();
        res.extensions_mut().insert(PendingError(self));
        res
    }
}

/// Writes error bodies with the request they answer, as Backstage does.
pub async fn with_request(req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    // Relative to the plugin's mount point, as Backstage's routers see it:
    // `/entities/by-name/...`, not `/api/catalog/entities/by-name/...`.
    let uri = req.uri().to_string();
    let url = uri
        .strip_prefix("/api/catalog")
        .filter(|rest| rest.is_empty() || rest.starts_with(['/', '?']))
        .map_or(uri.clone(), str::to_owned);
    let res = next.run(req).await;
    match res.extensions().get::<PendingError>().cloned() {
        Some(PendingError(e)) => {
            let body = json!({
                "error": {"name": e.name, "message": e.message},
                "request": {"method": method, "url": url},
                "response": {"statusCode": e.status.as_u16()},
            });
            (e.status, axum::Json(body)).into_response()
        }
        None => res,
    }
}
