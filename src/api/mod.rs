//! The HTTP API: routes, shared state, authentication per listener.

pub mod auth;
pub mod error;
pub mod guard;
pub mod handlers;
pub mod v1;

use std::sync::{Arc, RwLock};

use axum::routing::{delete, get, post, MethodRouter};
use axum::Json;
use axum::Router;

use crate::config::{Config, ContinuousKind};
use crate::credentials::CredentialStore;
use crate::jobs::images::ImageCatalog;
use crate::jobs::labels::ContinuousComponent;
use crate::limits::{JobQuotas, RateLimits};
use auth::{AuthPolicy, Listener};

/// Shared by every request.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub credentials: Arc<CredentialStore>,
    pub catalog: Arc<RwLock<Arc<ImageCatalog>>>,
    pub rate_limits: Arc<RateLimits>,
    pub quotas: Arc<JobQuotas>,
    pub load: guard::LoadLimits,
}

impl AppState {
    pub fn images(&self) -> Arc<ImageCatalog> {
        self.catalog
            .read()
            .map(|c| c.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    pub fn continuous_component(&self) -> ContinuousComponent {
        match self.config.continuous_kind {
            ContinuousKind::ReplicationController => ContinuousComponent::ReplicationControllers,
            ContinuousKind::Deployment => ContinuousComponent::Deployments,
        }
    }

    pub fn home_of(&self, tool: &str) -> String {
        self.config.home_root.join(tool).display().to_string()
    }
}

/// Adds a route under a path both with and without a trailing slash.
fn both(router: Router<AppState>, path: &str, method: MethodRouter<AppState>) -> Router<AppState> {
    let trimmed = path.trim_end_matches('/');
    router
        .route(trimmed, method.clone())
        .route(&format!("{trimmed}/"), method)
}

/// Release 13 (`run/`, `show/N`, …) and release 14 (`jobs/`, `jobs/N`, …) routes.
fn legacy_routes() -> Router<AppState> {
    use handlers::*;
    let mut r = Router::new();
    r = both(r, "/run/", post(legacy_run));
    r = r.route("/show/{name}", get(legacy_show));
    r = both(r, "/list/", get(legacy_list));
    r = r.route("/delete/{name}", delete(legacy_delete));
    r = both(r, "/flush/", delete(legacy_flush));
    r = r.route("/restart/{name}", post(legacy_restart));
    r = r.route("/logs/{name}", get(legacy_logs));
    r = both(r, "/images/", get(legacy_images));
    r = both(r, "/containers/", get(legacy_images));
    r = both(r, "/quota/", get(legacy_quota));
    r = both(
        r,
        "/jobs/",
        get(legacy_list)
            .post(legacy_create)
            .delete(legacy_flush_v14),
    );
    r = both(
        r,
        "/jobs/{name}",
        get(legacy_show).delete(legacy_delete_v14),
    );
    r = both(r, "/jobs/{name}/restart", post(legacy_restart_v14));
    r = both(r, "/jobs/{name}/logs", get(legacy_logs));
    r
}

/// 16.x routes under `/v1/tool/{tool}`.
fn v1_routes() -> Router<AppState> {
    let mut r = Router::new();
    r = both(
        r,
        "/tool/{tool}/jobs/",
        get(v1::list)
            .post(v1::create)
            .put(v1::create)
            .patch(v1::upsert)
            .delete(v1::flush),
    );
    r = both(
        r,
        "/tool/{tool}/jobs/{name}",
        get(v1::show).delete(v1::delete),
    );
    r = both(r, "/tool/{tool}/jobs/{name}/restart", post(v1::restart));
    r = both(r, "/tool/{tool}/jobs/{name}/logs", get(v1::job_logs));
    r = both(r, "/tool/{tool}/images/", get(v1::images));
    r = both(r, "/tool/{tool}/quotas/", get(v1::quotas));
    r
}

/// The logs service routes of 16.2 (`/logs/v1/tool/{tool}/job/{name}/…`).
fn logs_routes() -> Router<AppState> {
    Router::new()
        .route("/tool/{tool}/job/{name}/logs", get(v1::paged_logs))
        .route("/tool/{tool}/job/{name}/logs_stream", get(v1::stream_logs))
}

/// Every authenticated route, under each generation's default prefixes.
fn job_routes() -> Router<AppState> {
    Router::new()
        .nest("/api/v1", legacy_routes())
        .nest("/jobs/api/v1", legacy_routes())
        .nest("/v1", v1_routes())
        .nest("/jobs/v1", v1_routes())
        .nest("/logs/v1", logs_routes())
}

async fn v1_healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"health": {"status": "OK", "message": "OK"}, "messages": {}}))
}

/// The full router for one listener.
pub fn router(state: AppState, listener: Listener) -> Router {
    let policy = Arc::new(AuthPolicy {
        listener,
        organisation: state.config.organisation.clone(),
        ingress_cn: state.config.ingress_cn.clone(),
        rate_limits: state.rate_limits.clone(),
    });
    let load = state.load.clone();
    let authed = job_routes().layer(axum::middleware::from_fn_with_state(
        policy,
        auth::require_caller,
    ));
    Router::new()
        .route("/healthz", get(handlers::healthz))
        .route("/v1/healthz", get(v1_healthz))
        .merge(authed)
        .fallback(|| async {
            error::ApiError::not_found("no such route; see the API documentation")
        })
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(
            load,
            guard::load_guard,
        ))
        .layer(axum::middleware::from_fn(guard::request_context))
}
