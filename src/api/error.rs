//! Errors as clients see them: a status code and `{"message": …, "data": {…}}`.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::credentials::CredentialError;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub data: Value,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            data: json!({}),
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    pub fn with_data(mut self, data: Value) -> Self {
        self.data = data;
        self
    }
}

/// The error shape a request's client generation parses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Release 13/14: `{"message": …, "data": {…}}`.
    Legacy,
    /// 16.x: `{"error": [...], "messages": {"error": [...], …}}`.
    V1,
}

tokio::task_local! {
    /// Set per request by the outermost layer, from the route prefix.
    pub static FLAVOR: Flavor;
}

impl Flavor {
    pub fn of_path(path: &str) -> Self {
        if path.contains("/v1/tool/") {
            Flavor::V1
        } else {
            Flavor::Legacy
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let flavor = FLAVOR.try_with(|f| *f).unwrap_or(Flavor::Legacy);
        let body = match flavor {
            Flavor::Legacy => json!({"message": self.message, "data": self.data}),
            Flavor::V1 => json!({
                "error": [self.message],
                "messages": {"error": [self.message], "info": [], "warning": []},
            }),
        };
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert("retry-after", v);
            }
        }
        resp
    }
}

impl From<CredentialError> for ApiError {
    fn from(e: CredentialError) -> Self {
        let status = match e {
            CredentialError::Missing { .. } | CredentialError::Invalid { .. } => {
                StatusCode::FORBIDDEN
            }
            CredentialError::Timeout { .. } | CredentialError::Io { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            CredentialError::Client { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

pub const QUOTA_HELP: &str = "https://w.wiki/6YLP";

/// Maps a Kubernetes failure to what the caller should see, keeping its meaning.
pub fn from_kube(e: &kube::Error, what: &str) -> ApiError {
    match e {
        kube::Error::Api(status) => {
            let msg = status.message.clone();
            match status.code {
                403 if msg.contains("exceeded quota") => {
                    crate::metrics::global().inc(
                        "jobs_gateway_refusals_total",
                        vec![("reason", "kube_quota".into())],
                    );
                    ApiError::new(
                    StatusCode::FORBIDDEN,
                    format!("Out of quota for this kind of job ({msg}). Please see {QUOTA_HELP} for details."),
                )
                }
                403 => ApiError::forbidden(format!("Kubernetes refused to {what}: {msg}")),
                401 => ApiError::forbidden(format!(
                    "Kubernetes did not accept the tool's credentials: {msg}"
                )),
                404 => ApiError::not_found(msg),
                409 => ApiError::new(
                    StatusCode::CONFLICT,
                    "An object with the same name exists already",
                ),
                422 | 400 => ApiError::bad_request(format!("Kubernetes rejected the job: {msg}")),
                429 => ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!("Kubernetes is busy: {msg}"),
                ),
                500..=599 => ApiError::unavailable(format!("Kubernetes failed to {what}: {msg}")),
                _ => ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    format!("Kubernetes failed to {what}: {msg}"),
                ),
            }
        }
        kube::Error::SerdeError(_) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("unexpected reply from Kubernetes while trying to {what}"),
        ),
        _ => ApiError::unavailable(format!(
            "the Kubernetes API is unreachable, could not {what}; try again later"
        )),
    }
}
