//! Errors as clients see them: a status code and `{"message": …, "data": {…}}`.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::credentials::CredentialError;
use jobs_core::wire;

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

    /// The flavor of the request being served (release 13/14 outside of a request).
    pub fn current() -> Self {
        FLAVOR.try_with(|f| *f).unwrap_or(Flavor::Legacy)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = match Flavor::current() {
            Flavor::Legacy => (
                self.status,
                Json(wire::legacy::ErrorReply {
                    message: self.message,
                    data: self.data,
                }),
            )
                .into_response(),
            Flavor::V1 => {
                (self.status, Json(wire::v1::ErrorReply::new(&self.message))).into_response()
            }
        };
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

/// 409 for a run whose name is taken, worded as each generation's server did: the 2023
/// service said `A job with the same name exists already`, the 16.x one names the job.
pub fn job_name_taken(name: &str, flavor: Flavor) -> ApiError {
    let message = match flavor {
        Flavor::Legacy => "A job with the same name exists already".to_string(),
        Flavor::V1 => format!("A job with the name {name} already exists"),
    };
    ApiError::new(StatusCode::CONFLICT, message)
}

/// Maps a Kubernetes failure to what the caller should see, keeping its meaning, in the
/// wording of the request's client generation.
pub fn from_kube(e: &kube::Error, what: &str) -> ApiError {
    from_kube_as(e, what, Flavor::current())
}

/// [`from_kube`] for a given flavor. The 16.x server words an exceeded ResourceQuota and a
/// name taken in the runtime its own way (spec §5.3); the rest is the gateway's.
pub fn from_kube_as(e: &kube::Error, what: &str, flavor: Flavor) -> ApiError {
    match e {
        kube::Error::Api(status) => {
            let msg = status.message.clone();
            match status.code {
                403 if msg.contains("exceeded quota") => {
                    crate::metrics::global().inc(
                        "jobs_gateway_refusals_total",
                        vec![("reason", "kube_quota".into())],
                    );
                    let message = match flavor {
                        Flavor::Legacy => format!("Out of quota for this kind of job ({msg}). Please see {QUOTA_HELP} for details."),
                        Flavor::V1 => format!("Out of quota for this kind of job. Please see {QUOTA_HELP} for details."),
                    };
                    ApiError::new(StatusCode::FORBIDDEN, message)
                }
                403 => ApiError::forbidden(format!("Kubernetes refused to {what}: {msg}")),
                401 => ApiError::forbidden(format!(
                    "Kubernetes did not accept the tool's credentials: {msg}"
                )),
                404 => ApiError::not_found(msg),
                409 => ApiError::new(
                    StatusCode::CONFLICT,
                    match flavor {
                        Flavor::Legacy => "An object with the same name exists already",
                        Flavor::V1 => {
                            "A k8s object with the same name exists already in the runtime"
                        }
                    },
                ),
                422 | 400 => ApiError::bad_request(format!("Kubernetes rejected the job: {msg}")),
                // the apiserver's API Priority and Fairness (or max-in-flight) refused the
                // tool's request: its queues are full. The apiserver's Retry-After does not
                // reach us (kube keeps the body only); it says 1 s, as does a Status without
                // details.
                429 => {
                    let mut e = ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        format!("Kubernetes is busy: {msg}"),
                    );
                    e.retry_after = Some(
                        status
                            .details
                            .as_ref()
                            .map(|d| u64::from(d.retry_after_seconds))
                            .filter(|s| *s > 0)
                            .unwrap_or(1),
                    );
                    e
                }
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

/// 404 of a log request when there is nothing to show (the 16.x server's words).
pub fn no_logs_available(name: &str) -> ApiError {
    ApiError::not_found(format!("Job '{name}' does not have any logs available"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16, message: &str) -> kube::Error {
        let status: kube::core::Status =
            serde_json::from_value(json!({"code": code, "message": message}))
                .unwrap_or_else(|e| panic!("{e}"));
        kube::Error::Api(Box::new(status))
    }

    #[test]
    fn a_taken_name_is_worded_as_each_generation_s_server() {
        let v1 = job_name_taken("once", Flavor::V1);
        assert_eq!(v1.status, StatusCode::CONFLICT);
        assert_eq!(v1.message, "A job with the name once already exists");
        let legacy = job_name_taken("once", Flavor::Legacy);
        assert_eq!(legacy.status, StatusCode::CONFLICT);
        assert_eq!(legacy.message, "A job with the same name exists already");
    }

    /// What the apiserver sends when API Priority and Fairness refuses a request (plain text,
    /// not a Status; kube keeps it as the message), and a Status with retryAfterSeconds.
    #[test]
    fn a_busy_apiserver_is_a_429_with_retry_after() {
        let plain = kube::Error::Api(Box::new(
            kube::core::Status::failure(
                "Too many requests, please try again later.",
                "Failed to parse error data",
            )
            .with_code(429),
        ));
        let e = from_kube_as(&plain, "list jobs", Flavor::V1);
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            e.message,
            "Kubernetes is busy: Too many requests, please try again later."
        );
        assert_eq!(e.retry_after, Some(1));
        let resp = e.into_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            resp.headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
            Some("1")
        );
        let status: kube::core::Status = serde_json::from_value(json!({
            "code": 429,
            "message": "slow down",
            "details": {"retryAfterSeconds": 7},
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let e = from_kube_as(
            &kube::Error::Api(Box::new(status)),
            "list jobs",
            Flavor::Legacy,
        );
        assert_eq!(e.retry_after, Some(7));
    }

    #[test]
    fn kubernetes_refusals_in_the_16x_wording() {
        let quota = api_error(
            403,
            "jobs.batch \"blah\" is forbidden: exceeded quota: tool-blah, requested: count/jobs.batch=1, used: count/jobs.batch=15, limited: count/jobs.batch=15",
        );
        assert_eq!(
            from_kube_as(&quota, "create the job", Flavor::V1).message,
            "Out of quota for this kind of job. Please see https://w.wiki/6YLP for details."
        );
        let exists = api_error(409, "jobs.batch \"aa\" already exists");
        let e = from_kube_as(&exists, "create the job", Flavor::V1);
        assert_eq!(e.status, StatusCode::CONFLICT);
        assert_eq!(
            e.message,
            "A k8s object with the same name exists already in the runtime"
        );
        // release 13/14 keep the 2023 wording
        assert_eq!(
            from_kube_as(&exists, "create the job", Flavor::Legacy).message,
            "An object with the same name exists already"
        );
    }
}
