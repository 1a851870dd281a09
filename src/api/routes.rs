//! The routes of each API generation and the router of a listener.

use axum::routing::{delete, get, post, MethodRouter};
use axum::Json;
use axum::Router;

use super::auth::{AuthPolicy, Listener};
use super::state::AppState;
use super::{auth, error, guard, handlers, openapi, v1};
use std::sync::Arc;

/// A router under construction that also records what it serves, for the OpenAPI document.
struct Routes {
    router: Router<AppState>,
    prefix: String,
    served: Vec<(&'static str, String)>,
}

impl Routes {
    fn new(prefix: &str) -> Self {
        Self {
            router: Router::new(),
            prefix: prefix.to_string(),
            served: Vec::new(),
        }
    }

    /// Serves `path` (and its twin with/without a trailing slash) for `methods`.
    fn add(mut self, path: &str, methods: &[&'static str], mr: MethodRouter<AppState>) -> Self {
        for m in methods {
            self.served.push((m, format!("{}{path}", self.prefix)));
        }
        let trimmed = path.trim_end_matches('/');
        self.router = self
            .router
            .route(trimmed, mr.clone())
            .route(&format!("{trimmed}/"), mr);
        self
    }

    fn exact(mut self, path: &str, methods: &[&'static str], mr: MethodRouter<AppState>) -> Self {
        for m in methods {
            self.served.push((m, format!("{}{path}", self.prefix)));
        }
        self.router = self.router.route(path, mr);
        self
    }
}

/// Release 13 (`run/`, `show/N`, …) and release 14 (`jobs/`, `jobs/N`, …) routes.
fn legacy_routes(prefix: &str) -> Routes {
    use handlers::*;
    Routes::new(prefix)
        .add("/run/", &["post"], post(legacy_run))
        .exact("/show/{name}", &["get"], get(legacy_show))
        .add("/list/", &["get"], get(legacy_list))
        .exact(
            "/delete/{name}",
            &["delete"],
            delete(legacy_delete::<false>),
        )
        .add("/flush/", &["delete"], delete(legacy_flush::<false>))
        .exact("/restart/{name}", &["post"], post(legacy_restart::<false>))
        .exact("/logs/{name}", &["get"], get(legacy_logs))
        .add("/images/", &["get"], get(legacy_images))
        .add("/containers/", &["get"], get(legacy_images))
        .add("/quota/", &["get"], get(legacy_quota))
        .add(
            "/jobs/",
            &["get", "post", "delete"],
            get(legacy_list)
                .post(legacy_create)
                .delete(legacy_flush::<true>),
        )
        .add(
            "/jobs/{name}",
            &["get", "delete"],
            get(legacy_show).delete(legacy_delete::<true>),
        )
        .add(
            "/jobs/{name}/restart",
            &["post"],
            post(legacy_restart::<true>),
        )
        .add("/jobs/{name}/logs", &["get"], get(legacy_logs))
}

/// 16.x routes under `/v1/tool/{tool}`.
fn v1_routes(prefix: &str) -> Routes {
    Routes::new(prefix)
        .add(
            "/tool/{tool}/jobs/",
            &["get", "post", "put", "patch", "delete"],
            get(v1::list)
                .post(v1::create)
                .put(v1::create)
                .patch(v1::upsert)
                .delete(v1::flush),
        )
        .add(
            "/tool/{tool}/jobs/{name}",
            &["get", "delete"],
            get(v1::show).delete(v1::delete),
        )
        .add(
            "/tool/{tool}/jobs/{name}/restart",
            &["post"],
            post(v1::restart),
        )
        .add("/tool/{tool}/jobs/{name}/logs", &["get"], get(v1::job_logs))
        .add("/tool/{tool}/images/", &["get"], get(v1::images))
        .add("/tool/{tool}/quotas/", &["get"], get(v1::quotas))
}

/// The logs service routes of 16.2 (`/logs/v1/tool/{tool}/job/{name}/…`).
fn logs_routes(prefix: &str) -> Routes {
    Routes::new(prefix)
        .exact(
            "/tool/{tool}/job/{name}/logs",
            &["get"],
            get(v1::paged_logs),
        )
        .exact(
            "/tool/{tool}/job/{name}/logs_stream",
            &["get"],
            get(v1::stream_logs),
        )
}

/// Every authenticated route, bare and under `prefix` (default `/jobs`, where the CLIs' default
/// base URLs point), and the list of (method, path) served.
fn job_routes(prefix: &str) -> (Router<AppState>, Vec<(&'static str, String)>) {
    let mut router = Router::new();
    let mut served = Vec::new();
    for r in [
        legacy_routes("/api/v1"),
        legacy_routes(&format!("{prefix}/api/v1")),
        v1_routes("/v1"),
        v1_routes(&format!("{prefix}/v1")),
        logs_routes("/logs/v1"),
    ] {
        router = router.nest(&r.prefix, r.router);
        served.extend(r.served);
    }
    (router, served)
}

/// (method, path) of every authenticated route.
pub fn served_routes(prefix: &str) -> Vec<(&'static str, String)> {
    job_routes(prefix).1
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
        ingress_org: state.config.ingress_org.clone(),
        rate_limits: state.rate_limits.clone(),
    });
    let load = state.load.clone();
    let (routes, served) = job_routes(&state.config.route_prefix);
    let doc = Arc::new(openapi::document(&served));
    let authed = routes
        .layer(axum::middleware::from_fn_with_state(
            policy,
            auth::require_caller,
        ))
        .route_layer(axum::middleware::from_fn(crate::metrics::track));
    Router::new()
        .route("/healthz", get(handlers::healthz))
        .route("/v1/healthz", get(v1_healthz))
        .route(
            "/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { Json((*doc).clone()) }
            }),
        )
        .route("/docs", get(openapi::swagger_page))
        .route("/docs/", get(openapi::swagger_page))
        .route("/docs/{file}", get(openapi::swagger_asset))
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
