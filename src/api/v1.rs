//! The 16.x routes: `/v1/tool/<tool>/…` and the logs service's `/logs/v1/tool/<tool>/…`.
//! The tool in the path must be the authenticated tool. Every reply is a JSON object.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;

use super::auth::Caller;
use super::error::ApiError;
use super::guard::{LimitedBody, RequestContext};
use super::handlers::{self, LogParams, LogRoute};
use super::state::AppState;
use jobs_core::quota;
use jobs_core::request::Dialect;
use jobs_core::view;
use jobs_core::wire::v1::{
    ImagesReply, Job, JobDefinition, JobReply, JobsReply, LogsData, LogsPage, Messages,
    MessagesReply, QuotaReply,
};
use jobs_core::wire::LogEntry;

fn messages(info: &[String]) -> Messages {
    Messages::info(info)
}

fn said(info: &[String]) -> Json<MessagesReply> {
    Json(MessagesReply {
        messages: messages(info),
        job_changed: None,
    })
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
) -> Result<Response, ApiError> {
    same_tool(&caller, &tool)?;
    let views = handlers::list_views(&state, &caller).await?;
    Ok(if q.include_unset() {
        Json(JobsReply::<Job> {
            jobs: views.iter().map(view::v1_job).collect(),
            messages: messages(&[]),
        })
        .into_response()
    } else {
        Json(JobsReply::<JobDefinition> {
            jobs: views.iter().map(view::v1_definition).collect(),
            messages: messages(&[]),
        })
        .into_response()
    })
}

pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((tool, name)): Path<(String, String)>,
    Query(q): Query<ListParams>,
) -> Result<Response, ApiError> {
    same_tool(&caller, &tool)?;
    let v = handlers::show_view(&state, &caller, &name).await?;
    Ok(if q.include_unset() {
        Json(JobReply {
            job: view::v1_job(&v),
            messages: messages(&[]),
        })
        .into_response()
    } else {
        Json(JobReply::<JobDefinition> {
            job: view::v1_definition(&v),
            messages: messages(&[]),
        })
        .into_response()
    })
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
) -> Result<(StatusCode, Json<JobReply>), ApiError> {
    same_tool(&caller, &tool)?;
    let (req, _) =
        handlers::create_job(&state, &caller, &ctx, &headers, &body, Dialect::V1).await?;
    let v = handlers::show_view(&state, &caller, &req.name).await?;
    Ok((
        StatusCode::CREATED,
        Json(JobReply {
            job: view::v1_job(&v),
            messages: messages(&[]),
        }),
    ))
}

pub async fn upsert(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<Arc<RequestContext>>,
    Path(tool): Path<String>,
    headers: HeaderMap,
    LimitedBody(body): LimitedBody,
) -> Result<Json<MessagesReply>, ApiError> {
    same_tool(&caller, &tool)?;
    let (message, changed) = handlers::upsert_job(&state, &caller, &ctx, &headers, &body).await?;
    Ok(Json(MessagesReply {
        messages: messages(&[message]),
        job_changed: Some(changed),
    }))
}

/// Empty `messages`, as the 16.x server (a flush from cron prints nothing).
pub async fn flush(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(tool): Path<String>,
) -> Result<Json<MessagesReply>, ApiError> {
    same_tool(&caller, &tool)?;
    handlers::flush_jobs(&state, &caller).await?;
    Ok(said(&[]))
}

/// Empty `messages`, as the 16.x server (a delete from cron prints nothing).
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<Arc<RequestContext>>,
    Path((tool, name)): Path<(String, String)>,
) -> Result<Json<MessagesReply>, ApiError> {
    same_tool(&caller, &tool)?;
    handlers::delete_job(&state, &caller, &ctx, &name).await?;
    Ok(said(&[]))
}

/// Empty `messages`, as the 16.x server (a restart from cron prints nothing).
pub async fn restart(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<Arc<RequestContext>>,
    Path((tool, name)): Path<(String, String)>,
) -> Result<Json<MessagesReply>, ApiError> {
    same_tool(&caller, &tool)?;
    handlers::restart_job(&state, &caller, &ctx, &name).await?;
    Ok(said(&[]))
}

pub async fn images(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(tool): Path<String>,
) -> Result<Json<ImagesReply>, ApiError> {
    same_tool(&caller, &tool)?;
    Ok(Json(ImagesReply {
        images: handlers::image_list(&state),
        messages: Messages::none(),
    }))
}

pub async fn quotas(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(tool): Path<String>,
) -> Result<Json<QuotaReply>, ApiError> {
    same_tool(&caller, &tool)?;
    let p = handlers::quota_parts(&state, &caller).await?;
    Ok(Json(QuotaReply {
        quota: quota::v1_quota(p.rq.as_ref(), p.lr.as_ref(), p.continuous_key, &p.usage),
        messages: Messages::none(),
    }))
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
) -> Result<Json<LogsPage>, ApiError> {
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
    let mut entries: Vec<LogEntry> = bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect();
    entries.reverse();
    Ok(Json(LogsPage {
        data: LogsData {
            logs: entries,
            next: None,
        },
        messages: Messages::none(),
    }))
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
