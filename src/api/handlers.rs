//! Route handlers. Each one acts only inside the caller's namespace, with the caller's client.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::{Extension, Json};
use chrono::Utc;
use k8s_openapi::api::core::v1::LimitRange;
use serde_json::{json, Value};

use std::sync::Arc;

use super::auth::Caller;
use super::error::{from_kube, ApiError};
use super::guard::RequestContext;
use super::AppState;
use crate::jobs::objects::{self, BuildContext};
use crate::jobs::quantity::Quantity;
use crate::jobs::request::{check_job_name, fields_from_body, RunRequest};
use crate::jobs::runtime::{Snapshot, ToolRuntime};
use crate::jobs::schedule::parse_schedule;
use crate::jobs::view::{self, JobView};

pub async fn healthz() -> Json<&'static str> {
    Json("OK")
}

async fn runtime(state: &AppState, caller: &Caller) -> Result<ToolRuntime, ApiError> {
    let client = state.credentials.client_for(&caller.tool).await?;
    Ok(ToolRuntime::new(
        client,
        caller.tool.as_str(),
        state.continuous_component(),
    ))
}

/// Views of every job in a snapshot: one-off jobs, then scheduled, then continuous.
pub fn views(state: &AppState, snap: &Snapshot) -> Vec<JobView> {
    let catalog = state.images();
    let now = Utc::now();
    let mut out = Vec::new();
    for j in &snap.jobs {
        out.push(view::job_view(j, &snap.pods, &snap.events, &catalog, now));
    }
    for cj in &snap.cronjobs {
        out.push(view::cronjob_view(
            cj,
            &snap.cronjob_jobs,
            &snap.pods,
            &snap.events,
            &catalog,
            now,
        ));
    }
    for rc in &snap.rcs {
        out.push(view::rc_view(rc, &snap.pods, &catalog));
    }
    for d in &snap.deployments {
        out.push(view::deployment_view(d, &snap.pods, &catalog));
    }
    out
}

pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<JobView>>, ApiError> {
    let rt = runtime(&state, &caller).await?;
    let snap = rt
        .snapshot(None)
        .await
        .map_err(|e| from_kube(&e, "list jobs"))?;
    Ok(Json(views(&state, &snap)))
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("Job '{name}' does not exist"))
}

pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    if check_job_name(&name).is_err() {
        return Err(not_found(&name));
    }
    let rt = runtime(&state, &caller).await?;
    let snap = rt
        .snapshot(Some(&name))
        .await
        .map_err(|e| from_kube(&e, "read the job"))?;
    views(&state, &snap)
        .into_iter()
        .next()
        .map(Json)
        .ok_or_else(|| not_found(&name))
}

pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<Arc<RequestContext>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    ctx.set_job(&name);
    if check_job_name(&name).is_err() {
        return Err(not_found(&name));
    }
    let rt = runtime(&state, &caller).await?;
    if !rt
        .exists(&name)
        .await
        .map_err(|e| from_kube(&e, "look up the job"))?
    {
        return Err(not_found(&name));
    }
    rt.delete(Some(&name))
        .await
        .map_err(|e| from_kube(&e, "delete the job"))?;
    tracing::info!(tool = %caller.tool, job = %name, action = "delete", "job deleted");
    Ok(Json(json!("")))
}

pub async fn flush(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    let rt = runtime(&state, &caller).await?;
    rt.delete(None)
        .await
        .map_err(|e| from_kube(&e, "delete the jobs"))?;
    tracing::info!(tool = %caller.tool, action = "flush", "all jobs deleted");
    Ok(Json(json!("")))
}

/// Checks requested memory/CPU against the namespace's per-container LimitRange.
fn check_limits(ranges: &[LimitRange], req: &RunRequest) -> Result<(), ApiError> {
    for range in ranges {
        let Some(spec) = range.spec.as_ref() else {
            continue;
        };
        for item in spec.limits.iter().filter(|i| i.type_ == "Container") {
            for (what, key, asked) in [
                ("CPU", "cpu", req.cpu.as_ref()),
                ("memory", "memory", req.memory.as_ref()),
            ] {
                let Some(asked) = asked else { continue };
                let bound = |m: &Option<
                    std::collections::BTreeMap<
                        String,
                        k8s_openapi::apimachinery::pkg::api::resource::Quantity,
                    >,
                >| {
                    m.as_ref()
                        .and_then(|m| m.get(key))
                        .and_then(|q| Quantity::parse(&q.0))
                };
                if let Some(min) = bound(&item.min) {
                    if asked.value < min.value {
                        return Err(ApiError::bad_request(format!(
                            "Requested {what} {} is less than minimum required per container ({})",
                            asked.text, min.text
                        )));
                    }
                }
                if let Some(max) = bound(&item.max) {
                    if asked.value > max.value {
                        return Err(ApiError::bad_request(format!(
                            "Requested {what} {} is over maximum allowed per container ({})",
                            asked.text, max.text
                        )));
                    }
                }
            }
        }
    }
    Ok(())
}

/// The gateway's own per-tool limits on the number of jobs (like the grid's).
async fn check_job_quota(
    state: &AppState,
    caller: &Caller,
    rt: &ToolRuntime,
    req: &RunRequest,
) -> Result<(), ApiError> {
    let quota = state.quotas.for_tool(&caller.tool);
    let (running, scheduled) = rt
        .counts()
        .await
        .map_err(|e| from_kube(&e, "count the tool's jobs"))?;
    if req.schedule.is_some() {
        if scheduled >= quota.scheduled as usize {
            return Err(ApiError::forbidden(format!(
                "Job quota exceeded: tool '{}' already has {scheduled} scheduled jobs and may have at most {}. Delete one first.",
                caller.tool, quota.scheduled
            )));
        }
    } else if running >= quota.running as usize {
        return Err(ApiError::forbidden(format!(
            "Job quota exceeded: tool '{}' already has {running} running one-off and continuous jobs and may have at most {}. Wait for one to finish or delete one first.",
            caller.tool, quota.running
        )));
    }
    Ok(())
}

/// Validates a run request and builds its manifest, without touching Kubernetes.
pub fn prepare(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(RunRequest, Value), ApiError> {
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let fields = fields_from_body(content_type, body).map_err(ApiError::bad_request)?;
    let req = RunRequest::from_fields(&fields).map_err(ApiError::bad_request)?;
    let catalog = state.images();
    let image = catalog.resolve(&req.image).ok_or_else(|| {
        ApiError::bad_request(format!(
            "No such image '{}'. Valid images: {}",
            req.image,
            catalog.valid_names()
        ))
    })?;
    let tool = caller.tool.as_str();
    let schedule = match &req.schedule {
        Some(text) => Some(
            parse_schedule(text, &format!("tool-{tool} {}", req.name))
                .map_err(ApiError::bad_request)?,
        ),
        None => None,
    };
    let home = state.home_of(tool);
    let manifest = objects::build(
        &req,
        &BuildContext {
            tool,
            home: &home,
            image,
            continuous_kind: state.continuous_component(),
            schedule_actual: schedule.as_ref().map(|s| s.actual.as_str()),
        },
    );
    Ok((req, manifest))
}

pub async fn run(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<Arc<RequestContext>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let (req, manifest) = prepare(&state, &caller, &headers, &body)?;
    ctx.set_job(&req.name);
    let rt = runtime(&state, &caller).await?;
    // One creation at a time per tool: the quota check and the create must not interleave.
    let _slot = state.quotas.creation_slot(&caller.tool).await;
    if rt
        .exists(&req.name)
        .await
        .map_err(|e| from_kube(&e, "look up existing jobs"))?
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "A job with the same name exists already",
        ));
    }
    check_job_quota(&state, &caller, &rt, &req).await?;
    if req.memory.is_some() || req.cpu.is_some() {
        let ranges = rt
            .limit_ranges()
            .await
            .map_err(|e| from_kube(&e, "read the namespace limits"))?;
        check_limits(&ranges, &req)?;
    }
    let created = rt.create(manifest.clone()).await.map_err(|e| {
        tracing::info!(tool = %caller.tool, job = %req.name, action = "run", error = %e, "create refused");
        from_kube(&e, "create the job").with_data(json!({"k8s_object": manifest}))
    })?;
    tracing::info!(tool = %caller.tool, job = %req.name, action = "run", kind = %manifest["kind"], "job created");
    Ok((StatusCode::OK, Json(created)))
}
