//! Errors as Backstage's backend answers them (`shared/spec/catalog-api.md` §1.1):
//!
//! ```json
//! {"error": {"name": "NotFoundError", "message": "…"},
//!  "request": {"method": "GET", "url": "/entities/by-name/component/default/x"},
//!  "response": {"statusCode": 404}}
//! ```
//!
//! A handler answers an [`ApiError`]; [`with_request`] (a middleware on each API router) adds
//! the request's method and URL, which the handler does not know.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error in Backstage's vocabulary; the name decides the status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {message}")]
pub struct ApiError {
    pub name: &'static str,
    pub message: String,
}

impl ApiError {
    /// 400: the request is malformed.
    pub fn input(message: impl Into<String>) -> ApiError {
        ApiError {
            name: "InputError",
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            name: "NotFoundError",
            message: message.into(),
        }
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError {
            name: "ConflictError",
            message: message.into(),
        }
    }

    pub fn not_allowed(message: impl Into<String>) -> ApiError {
        ApiError {
            name: "NotAllowedError",
            message: message.into(),
        }
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError {
            name: "ServiceUnavailableError",
            message: message.into(),
        }
    }

    pub fn internal() -> ApiError {
        ApiError {
            name: "Error",
            message: "An internal error occurred".into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self.name {
            "InputError" => StatusCode::BAD_REQUEST,
            "AuthenticationError" => StatusCode::UNAUTHORIZED,
            "NotAllowedError" => StatusCode::FORBIDDEN,
            "NotFoundError" => StatusCode::NOT_FOUND,
            "ConflictError" => StatusCode::CONFLICT,
            "NotImplementedError" => StatusCode::NOT_IMPLEMENTED,
            "ServiceUnavailableError" => StatusCode::SERVICE_UNAVAILABLE,
            "PayloadTooLargeError" => StatusCode::PAYLOAD_TOO_LARGE,
            "TooManyRequestsError" => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The error a catalog-store answer stands for. Internal details stay in the log.
    pub fn from_status(status: &tonic::Status) -> ApiError {
        use tonic::Code;
        let message = status.message().to_owned();
        match status.code() {
            Code::InvalidArgument | Code::OutOfRange => ApiError::input(message),
            Code::NotFound => ApiError::not_found(message),
            Code::AlreadyExists | Code::Aborted => ApiError::conflict(message),
            Code::PermissionDenied | Code::FailedPrecondition => ApiError::not_allowed(message),
            Code::Unavailable | Code::DeadlineExceeded => {
                tracing::warn!(%status, "a backend is unavailable");
                ApiError::unavailable("The catalog is unavailable; try again shortly")
            }
            _ => {
                tracing::error!(%status, "a backend failed");
                ApiError::internal()
            }
        }
    }
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> ApiError {
        ApiError::from_status(&status)
    }
}

impl From<cadastre_query::QueryError> for ApiError {
    fn from(error: cadastre_query::QueryError) -> ApiError {
        ApiError::input(error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        // The body is written by `with_request`, which knows the request.
        let mut response = status.into_response();
        response.extensions_mut().insert(self);
        response
    }
}

fn is_json(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"))
}

/// Writes the error body of responses that carry an [`ApiError`], and of the framework's own
/// refusals.
pub async fn with_request(request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let url = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let response = next.run(request).await;
    let status = response.status();
    let error = match response.extensions().get::<ApiError>().cloned() {
        Some(error) => error,
        // The framework's own refusals (unknown route, wrong method, malformed path, body
        // too large) get the same body as ours.
        None if (status.is_client_error() || status.is_server_error())
            && !is_json(response.headers()) =>
        {
            ApiError {
                name: match status.as_u16() {
                    400 => "InputError",
                    401 => "AuthenticationError",
                    403 | 405 => "NotAllowedError",
                    404 => "NotFoundError",
                    413 => "PayloadTooLargeError",
                    415 => "UnsupportedMediaTypeError",
                    429 => "TooManyRequestsError",
                    503 => "ServiceUnavailableError",
                    _ => "Error",
                },
                message: status
                    .canonical_reason()
                    .unwrap_or("The request failed")
                    .to_owned(),
            }
        }
        None => return response,
    };
    let body = json!({
        "error": {"name": error.name, "message": error.message},
        "request": {"method": method, "url": url},
        "response": {"statusCode": status.as_u16()},
    });
    let mut answer = (status, axum::Json(body)).into_response();
    // Keep headers such as Retry-After.
    for (name, value) in response.headers() {
        if name != axum::http::header::CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            answer.headers_mut().insert(name.clone(), value.clone());
        }
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_decide_statuses_and_grpc_codes_map_to_names() {
        assert_eq!(ApiError::input("x").status(), StatusCode::BAD_REQUEST);
        assert_eq!(ApiError::not_found("x").status(), StatusCode::NOT_FOUND);
        assert_eq!(
            ApiError::internal().status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        let from = |code| ApiError::from_status(&tonic::Status::new(code, "why")).name;
        assert_eq!(from(tonic::Code::InvalidArgument), "InputError");
        assert_eq!(from(tonic::Code::NotFound), "NotFoundError");
        assert_eq!(from(tonic::Code::AlreadyExists), "ConflictError");
        assert_eq!(from(tonic::Code::Unavailable), "ServiceUnavailableError");
        assert_eq!(from(tonic::Code::Internal), "Error");
        // Internal details never reach the client.
        assert_eq!(
            ApiError::from_status(&tonic::Status::internal("db password wrong")).message,
            "An internal error occurred"
        );
    }
}
