//! The 16.x routes: `/v1/tool/<tool>/…` and the logs service's `/logs/v1/tool/<tool>/…`.
//! The tool in the path must be the authenticated tool. Every reply is a JSON object.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::ApiError;
use super::guard::{LimitedBody, RequestContext};
use super::handlers::{self, LogParams, LogRoute};
use super::AppState;
use jobs_core::quota;
use jobs_core::request::Dialect;
use jobs_core::view;

fn messages(info: &[String]) -> Value {
    json!({"info": info, "warning": [], "error": []})
}

/// The path's tool must be the caller.
fn same_tool(caller: &Caller, tool: &str) -> Result<(), ApiError> {
    if tool != caller.tool.as_str() {
        return Err(ApiError::forbidden(format!(
            "Toolname mismatch: expected '{tool}', got '{}'",
            caller.tool
        )));
    }
    Ok(())
}

#[derive(Debug, Deserialize, Default)]
pub struct ListParams {
    include_unset: Option<String>,
}

impl ListParams {
    fn include_unset(&self) -> bool {
        !self
            .include_unset
            .as_deref()
            .is_some_and(|v| v.eq_ignore_ascii_case("false"))
    }
}

pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(tool): Path<String>,
    Query(q): Query<ListParams>,
) -> Result<Json<Value>, ApiError> {
    same_tool(&caller, &tool)?;
    let views = handlers::list_views(&state, &caller).await?;
    let jobs: Vec<Value> = views
        .iter()
        .map(|v| view::v1_json(v, q.include_unset()))
        .collect();
    Ok(Json(json!({"jobs": jobs, "messages": messages(&[])})))
}

pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((tool, name)): Path<(String, String)>,
    Query(q): Query<ListParams>,
) -> Result<Json<Value>, ApiError> {
    same_tool(&caller, &tool)?;
    let v = handlers::show_view(&state, &caller, &name).await?;
    Ok(Json(
        json!({"job": view::v1_json(&v, q.include_unset()), "messages": messages(&[])}),
    ))
}

/// 201 with the job. Like the 16.x server, no info message: the CLI prints every info line,
/// and a `run` from cron must print nothing (spec §1.3, tjf-cli-newest §4).
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<Arc<RequestContext>>,
    Path(tool): Path<String>,
    headers: HeaderMap,
    LimitedBody(body): LimitedBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    same_tool(&caller, &tool)?;
    let (req, _) =
        handlers::create_job(&state, &caller, &ctx, &headers, &body, Dialect::V1).await?;
    let v = handlers::show_view(&state, &caller, &req.name).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "job": view::v1_json(&v, true),
            "messages": messages(&[]),
        })),
    ))
}

pub async fn upsert(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<Arc<RequestContext>>,
    Path(tool): Path<String>,
    headers: HeaderMap,
    LimitedBody(body): LimitedBody,
) -> Result<Json<Value>, ApiError> {
    same_tool(&caller, &tool)?;
    let (message, changed) = handlers::upsert_job(&state, &caller, &ctx, &headers, &body).await?;
    Ok(Json(
        json!({"messages": messages(&[message]), "job_changed": changed}),
    ))
}

/// Empty `messages`, as the 16.x server (a flush from cron prints nothing).
pub async fn flush(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(tool): Path<String>,
) -> Result<Json<Value>, ApiError> {
    same_tool(&caller, &tool)?;
    handlers::flush_jobs(&state, &caller).await?;
    Ok(Json(json!({"messages": messages(&[])})))
}

/// Empty `messages`, as the 16.x server (a delete from cron prints nothing).
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<Arc<RequestContext>>,
    Path((tool, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    same_tool(&caller, &tool)?;
    handlers::delete_job(&state, &caller, &ctx, &name).await?;
    Ok(Json(json!({"messages": messages(&[])})))
}

/// Empty `messages`, as the 16.x server (a restart from cron prints nothing).
pub async fn restart(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<Arc<RequestContext>>,
    Path((tool, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    same_tool(&caller, &tool)?;
    handlers::restart_job(&state, &caller, &ctx, &name).await?;
    Ok(Json(json!({"messages": messages(&[])})))
}

pub async fn images(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(tool): Path<String>,
) -> Result<Json<Value>, ApiError> {
    same_tool(&caller, &tool)?;
    Ok(Json(
        json!({"images": handlers::image_list(&state), "messages": {}}),
    ))
}

pub async fn quotas(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(tool): Path<String>,
) -> Result<Json<Value>, ApiError> {
    same_tool(&caller, &tool)?;
    let p = handlers::quota_parts(&state, &caller).await?;
    Ok(Json(json!({
        "quota": quota::v1_quota(p.rq.as_ref(), p.lr.as_ref(), p.continuous_key, &p.usage),
        "messages": {},
    })))
}

/// 16.1.x reads logs from the jobs API as NDJSON (with the container key).
pub async fn job_logs(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((tool, name)): Path<(String, String)>,
    Query(params): Query<LogParams>,
) -> Result<Response, ApiError> {
    same_tool(&caller, &tool)?;
    handlers::log_response(&state, &caller, &name, &params, LogRoute::JobsV1).await
}

#[derive(Debug, Deserialize, Default)]
pub struct PagedLogParams {
    lines: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

/// 16.2 logs service, without `-f`: one page, newest first, no further pages.
pub async fn paged_logs(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((tool, name)): Path<(String, String)>,
    Query(params): Query<PagedLogParams>,
) -> Result<Json<Value>, ApiError> {
    same_tool(&caller, &tool)?;
    let resp = handlers::log_response(
        &state,
        &caller,
        &name,
        &LogParams {
            follow: None,
            lines: params.lines,
            since: params.since,
            until: params.until,
        },
        LogRoute::LogsService,
    )
    .await?;
    let bytes = axum::body::to_bytes(resp.into_body(), 64 * 1024 * 1024)
        .await
        .map_err(|_| ApiError::unavailable("reading the logs failed"))?;
    let mut entries: Vec<Value> = bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect();
    entries.reverse();
    Ok(Json(
        json!({"data": {"logs": entries, "next": null}, "messages": {}}),
    ))
}

/// 16.2 logs service with `-f`: NDJSON stream.
pub async fn stream_logs(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((tool, name)): Path<(String, String)>,
    Query(params): Query<PagedLogParams>,
) -> Result<Response, ApiError> {
    same_tool(&caller, &tool)?;
    handlers::log_response(
        &state,
        &caller,
        &name,
        &LogParams {
            follow: Some("true".into()),
            lines: params.lines,
            since: params.since,
            until: params.until,
        },
        LogRoute::LogsService,
    )
    .await
}
