//! Turning a connection and its request into a caller (a tool), per listener.
//!
//! * Direct listener: the client certificate, already verified by rustls against the tool CA.
//!   An `ssl-client-subject-dn` header here is refused: only the ingress may send it.
//! * Ingress listener: the connection must have presented the ingress's own client certificate;
//!   only then is the `ssl-client-subject-dn` header read, and it is parsed strictly.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_server::tls::TlsInfo;

use super::error::ApiError;
use super::guard::{is_mutating, RequestContext};
use jobs_core::identity::{self, ToolName};

pub const SUBJECT_HEADER: &str = "ssl-client-subject-dn";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Direct,
    Ingress,
}

/// What the auth layer needs to know.
#[derive(Clone)]
pub struct AuthPolicy {
    pub listener: Listener,
    pub organisation: String,
    pub ingress_cn: String,
    pub ingress_org: String,
    pub rate_limits: Arc<crate::limits::RateLimits>,
}

/// The authenticated caller, put into request extensions.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tool: ToolName,
}

fn leaf(req: &Request) -> Option<Vec<u8>> {
    req.extensions()
        .get::<Arc<TlsInfo>>()
        .and_then(|info| info.peer_certificates.first().cloned())
}

fn authenticate(policy: &AuthPolicy, req: &Request) -> Result<ToolName, ApiError> {
    let header = req
        .headers()
        .get_all(SUBJECT_HEADER)
        .iter()
        .collect::<Vec<_>>();
    let Some(cert) = leaf(req) else {
        return Err(ApiError::unauthorized(
            "a client certificate is required: present your tool's certificate",
        ));
    };
    let subject = identity::certificate_subject(&cert).map_err(|e| ApiError::forbidden(e.0))?;
    match policy.listener {
        Listener::Direct => {
            if !header.is_empty() {
                return Err(ApiError::forbidden(format!(
                    "the '{SUBJECT_HEADER}' header is only accepted from the jobs ingress"
                )));
            }
            identity::identity_from_attributes(&subject, &policy.organisation)
                .map_err(|e| ApiError::forbidden(e.0))
        }
        Listener::Ingress => {
            let cns: Vec<&str> = subject
                .iter()
                .flatten()
                .filter(|a| a.kind == "CN")
                .map(|a| a.value.as_str())
                .collect();
            let orgs: Vec<&str> = subject
                .iter()
                .flatten()
                .filter(|a| a.kind == "O")
                .map(|a| a.value.as_str())
                .collect();
            if cns != [policy.ingress_cn.as_str()] || orgs != [policy.ingress_org.as_str()] {
                return Err(ApiError::forbidden(
                    "this listener only serves the jobs ingress; the connection did not authenticate as it",
                ));
            }
            let value = match header.as_slice() {
                [] => {
                    return Err(ApiError::unauthorized(format!(
                        "missing '{SUBJECT_HEADER}' header"
                    )))
                }
                [one] => one.to_str().map_err(|_| {
                    ApiError::forbidden(format!("the '{SUBJECT_HEADER}' header is not text"))
                })?,
                _ => {
                    return Err(ApiError::forbidden(format!(
                        "more than one '{SUBJECT_HEADER}' header"
                    )))
                }
            };
            identity::identity_from_dn(value, &policy.organisation)
                .map_err(|e| ApiError::forbidden(e.0))
        }
    }
}

/// Middleware: authenticate, or answer 401/403 without running the handler.
pub async fn require_caller(
    State(policy): State<Arc<AuthPolicy>>,
    mut req: Request,
    next: Next,
) -> Response {
    match authenticate(&policy, &req) {
        Ok(tool) => {
            if let Some(ctx) = req.extensions().get::<Arc<RequestContext>>() {
                ctx.set_tool(tool.as_str());
            }
            if let Err(wait) = policy.rate_limits.check(&tool, is_mutating(req.method())) {
                tracing::info!(tool = %tool, "rate limited");
                crate::metrics::global().inc(
                    "jobs_gateway_refusals_total",
                    vec![("reason", "rate_limit".into())],
                );
                let mut e = ApiError::new(
                    axum::http::StatusCode::TOO_MANY_REQUESTS,
                    format!("too many requests from tool '{tool}'; try again in {wait} s"),
                );
                e.retry_after = Some(wait);
                return e.into_response();
            }
            req.extensions_mut().insert(Caller { tool });
            next.run(req).await
        }
        Err(e) => {
            tracing::info!(status = e.status.as_u16(), reason = %e.message, "authentication refused");
            e.into_response()
        }
    }
}
