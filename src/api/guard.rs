//! Request-wide protections and bookkeeping: request ids, the audit line of every mutating call,
//! the global in-flight cap, request timeouts and the body size limit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use super::error::ApiError;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Per-request facts filled in by inner layers and handlers, read by the audit line.
#[derive(Debug, Default)]
pub struct RequestContext {
    pub id: String,
    tool: Mutex<Option<String>>,
    job: Mutex<Option<String>>,
}

impl RequestContext {
    pub fn set_tool(&self, tool: &str) {
        *self.tool.lock().unwrap_or_else(|p| p.into_inner()) = Some(tool.to_string());
    }

    pub fn set_job(&self, job: &str) {
        *self.job.lock().unwrap_or_else(|p| p.into_inner()) = Some(job.to_string());
    }

    fn tool(&self) -> Option<String> {
        self.tool.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn job(&self) -> Option<String> {
        self.job.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn next_request_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static PREFIX: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let prefix = PREFIX.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
            .unwrap_or(0);
        nanos ^ std::process::id().rotate_left(16)
    });
    format!(
        "{prefix:08x}-{:08x}",
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn is_mutating(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Outermost layer: gives every request an id (also returned in `x-request-id`) and writes one
/// audit line per mutating call. Never logs certificates, keys or bodies.
pub async fn request_context(mut req: Request, next: Next) -> Response {
    let ctx = Arc::new(RequestContext {
        id: next_request_id(),
        ..Default::default()
    });
    req.extensions_mut().insert(ctx.clone());
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let flavor = super::error::Flavor::of_path(&path);
    let span = tracing::info_span!("request", request_id = %ctx.id, method = %method, path = %path);
    let mut resp =
        tracing::Instrument::instrument(super::error::FLAVOR.scope(flavor, next.run(req)), span)
            .await;
    if let Ok(v) = HeaderValue::from_str(&ctx.id) {
        resp.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    if is_mutating(&method) {
        tracing::info!(
            target: "audit",
            request_id = %ctx.id,
            tool = ctx.tool().as_deref().unwrap_or("-"),
            action = %method,
            path = %path,
            job = ctx.job().as_deref().unwrap_or("-"),
            status = resp.status().as_u16(),
            result = if resp.status().is_success() { "ok" } else { "refused" },
            "audit"
        );
    }
    resp
}

/// Limits shared by all requests of a listener.
#[derive(Clone)]
pub struct LoadLimits {
    pub in_flight: Arc<Semaphore>,
    pub timeout: Duration,
    pub max_body: u64,
}

/// Refuses work beyond the in-flight cap (503) and over-long bodies (413), and bounds the
/// time one request may take (504).
pub async fn load_guard(State(limits): State<LoadLimits>, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body) {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than {} bytes", limits.max_body),
        )
        .into_response();
    }
    let Ok(_permit) = limits.in_flight.clone().try_acquire_owned() else {
        let mut e = ApiError::unavailable("the gateway is busy; try again in a moment");
        e.retry_after = Some(1);
        return e.into_response();
    };
    match tokio::time::timeout(limits.timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "the request took longer than {} s and was abandoned",
                limits.timeout.as_secs()
            ),
        )
        .into_response(),
    }
}

/// A request body read up to the configured size limit; larger bodies get 413 even when they
/// come chunked, without a Content-Length.
pub struct LimitedBody(pub axum::body::Bytes);

impl<S> axum::extract::FromRequest<S> for LimitedBody
where
    S: Send + Sync,
    LoadLimits: axum::extract::FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = <LoadLimits as axum::extract::FromRef<S>>::from_ref(state).max_body;
        axum::body::to_bytes(req.into_body(), limit as usize)
            .await
            .map(LimitedBody)
            .map_err(|_| {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the request body is larger than {limit} bytes or could not be read"),
                )
            })
    }
}
