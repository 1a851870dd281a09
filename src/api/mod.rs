//! The HTTP API: routes, shared state, authentication per listener.

pub mod auth;
pub mod error;
pub mod guard;
pub mod handlers;

use std::sync::{Arc, RwLock};

use axum::routing::{get, post};
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

/// The authenticated routes of one API generation (release 13's `/api/v1/...`).
fn job_routes() -> Router<AppState> {
    use handlers::*;
    Router::new()
        .route("/api/v1/run/", post(run))
        .route("/api/v1/run", post(run))
        .route("/api/v1/show/{name}", get(show))
        .route("/api/v1/list/", get(list))
        .route("/api/v1/list", get(list))
        .route(
            "/api/v1/delete/{name}",
            axum::routing::delete(handlers::delete),
        )
        .route("/api/v1/flush/", axum::routing::delete(flush))
        .route("/api/v1/flush", axum::routing::delete(flush))
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
        .merge(authed.clone())
        .nest("/jobs", authed)
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
