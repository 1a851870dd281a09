//! The job operations, shared by every API generation, and the release 13/14 routes.
//! Each operation acts only inside the caller's namespace, with the caller's own client.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::Utc;
use k8s_openapi::api::core::v1::LimitRange;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::{from_kube, job_name_taken, no_logs_available, ApiError, Flavor};
use super::filelogs::{self, log_files, read_tail};
use super::guard::{LimitedBody, RequestContext};
use super::podlogs;
use super::state::AppState;
use crate::runtime::{Existing, Snapshot, ToolRuntime};
use jobs_core::labels::Component;
use jobs_core::logs;
use jobs_core::objects::{self, BuildContext};
use jobs_core::quantity::Quantity;
use jobs_core::quota::{self, GatewayJobUsage};
use jobs_core::request::{check_job_name, fields_from_body, Dialect, RunRequest};
use jobs_core::schedule::{parse_schedule, parse_schedule_v1};
use jobs_core::view::{self, JobView};
use jobs_core::wire;

pub async fn healthz() -> Json<&'static str> {
    Json("OK")
}

// ---------------------------------------------------------------- shared operations

pub async fn runtime(state: &AppState, caller: &Caller) -> Result<ToolRuntime, ApiError> {
    let connector = state.credentials.connector_for(&caller.tool).await?;
    let writes = state
        .watch
        .as_ref()
        .map(|w| w.writes_of(caller.tool.as_str()));
    Ok(ToolRuntime::over(
        connector,
        caller.tool.as_str(),
        state.continuous_component(),
    )
    .held_stale_after(state.config.request_timeout)
    .recording(writes))
}

/// The tool's objects for list and show: from the watch cache when it is on and has them,
/// else read now.
async fn snapshot(
    state: &AppState,
    rt: &ToolRuntime,
    name: Option<&str>,
) -> Result<Snapshot, kube::Error> {
    if let Some(cache) = &state.watch {
        if let Some(snap) = cache.snapshot(rt, name).await {
            return Ok(snap);
        }
    }
    rt.snapshot(name).await
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
        out.push(view::rc_view(rc, &snap.pods, &catalog, now));
    }
    for d in &snap.deployments {
        out.push(view::deployment_view(d, &snap.pods, &catalog, now));
    }
    out
}

pub async fn list_views(state: &AppState, caller: &Caller) -> Result<Vec<JobView>, ApiError> {
    let rt = runtime(state, caller).await?;
    let snap = snapshot(state, &rt, None)
        .await
        .map_err(|e| from_kube(&e, "list jobs"))?;
    let out = views(state, &snap);
    drop_later(snap);
    Ok(out)
}

/// Frees a snapshot (many objects) in a task of its own, after the reply is on its way.
fn drop_later(snap: Snapshot) {
    tokio::spawn(async move { drop(snap) });
}

pub fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("Job '{name}' does not exist"))
}

/// 400 for a run whose image is unknown. The 16.x server names the image and nothing else;
/// release 13/14 replies also list the valid names.
pub fn no_such_image(image: &str, valid: &str, dialect: Dialect) -> ApiError {
    ApiError::bad_request(match dialect {
        Dialect::V1 => format!("No such image '{image}'"),
        Dialect::Legacy => format!("No such image '{image}'. Valid images: {valid}"),
    })
}

/// PATCH info when a job was created (spec §1.3, PATCH messages).
pub fn created_message(name: &str) -> String {
    format!("Job {name} created in storage and runtime")
}

/// PATCH info when a job was replaced by its new definition.
pub fn updated_message(name: &str) -> String {
    format!("Job {name} was updated in storage and runtime")
}

/// PATCH info when the definition is what already runs.
pub fn up_to_date_message(name: &str) -> String {
    format!("Job {name} is already up to date")
}

/// PATCH info for a one-off job that exists already.
pub const ONE_OFF_NOT_UPDATED: &str = "OneOffJobs can't be updated, delete and recreate it instead";

pub async fn show_view(state: &AppState, caller: &Caller, name: &str) -> Result<JobView, ApiError> {
    if check_job_name(name).is_err() {
        return Err(not_found(name));
    }
    let rt = runtime(state, caller).await?;
    let snap = snapshot(state, &rt, Some(name))
        .await
        .map_err(|e| from_kube(&e, "read the job"))?;
    let out = views(state, &snap).into_iter().next();
    drop_later(snap);
    out.ok_or_else(|| not_found(name))
}

/// The caller's runtime for an operation on the job `name` (which is recorded for the audit
/// line); a name that breaks the naming rules cannot exist, so it is simply not found.
async fn runtime_for_job(
    state: &AppState,
    caller: &Caller,
    ctx: &RequestContext,
    name: &str,
) -> Result<ToolRuntime, ApiError> {
    ctx.set_job(name);
    if check_job_name(name).is_err() {
        return Err(not_found(name));
    }
    runtime(state, caller).await
}

pub async fn delete_job(
    state: &AppState,
    caller: &Caller,
    ctx: &RequestContext,
    name: &str,
) -> Result<(), ApiError> {
    let rt = runtime_for_job(state, caller, ctx, name).await?;
    if !rt
        .exists(name)
        .await
        .map_err(|e| from_kube(&e, "look up the job"))?
    {
        return Err(not_found(name));
    }
    rt.delete(Some(name))
        .await
        .map_err(|e| from_kube(&e, "delete the job"))
}

pub async fn flush_jobs(state: &AppState, caller: &Caller) -> Result<(), ApiError> {
    let rt = runtime(state, caller).await?;
    rt.delete(None)
        .await
        .map_err(|e| from_kube(&e, "delete the jobs"))
}

pub async fn restart_job(
    state: &AppState,
    caller: &Caller,
    ctx: &RequestContext,
    name: &str,
) -> Result<(), ApiError> {
    let rt = runtime_for_job(state, caller, ctx, name).await?;
    let existing = rt
        .existing(name)
        .await
        .map_err(|e| from_kube(&e, "look up the job"))?
        .ok_or_else(|| not_found(name))?;
    if existing.component == Component::Jobs {
        return Err(ApiError::bad_request("Unable to restart a one-off job"));
    }
    rt.restart(name, existing.component)
        .await
        .map_err(|e| from_kube(&e, "restart the job"))
}

/// Checks requested memory/CPU against the namespace's per-container LimitRange.
fn check_limits(ranges: &[LimitRange], req: &RunRequest) -> Result<(), ApiError> {
    type Bounds = Option<
        std::collections::BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    >;
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
                let bound = |m: &Bounds| {
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
    quota_verdict(caller, req, &quota, running, scheduled)
}

/// The quota refusal for `running`/`scheduled` jobs other than the one asked for.
fn quota_verdict(
    caller: &Caller,
    req: &RunRequest,
    quota: &crate::limits::JobQuota,
    running: usize,
    scheduled: usize,
) -> Result<(), ApiError> {
    let refuse = || {
        crate::metrics::global().inc(
            "jobs_gateway_refusals_total",
            vec![("reason", "job_quota".into())],
        )
    };
    if req.schedule.is_some() {
        if scheduled >= quota.scheduled as usize {
            refuse();
            return Err(ApiError::forbidden(format!(
                "Job quota exceeded: tool '{}' already has {scheduled} scheduled jobs and may have at most {}. Delete one first.",
                caller.tool, quota.scheduled
            )));
        }
    } else if running >= quota.running as usize {
        refuse();
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
    dialect: Dialect,
) -> Result<(RunRequest, Value), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if dialect == Dialect::V1
        && content_type.is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
    {
        return Err(ApiError::bad_request("this API takes JSON bodies only"));
    }
    let fields = fields_from_body(content_type, body).map_err(ApiError::bad_request)?;
    let mut req = RunRequest::parse(&fields, dialect).map_err(ApiError::bad_request)?;
    let catalog = state.images();
    let image = catalog
        .resolve(&req.image)
        .ok_or_else(|| no_such_image(&req.image, &catalog.valid_names(), dialect))?;
    let tool = caller.tool.as_str();
    let parse = match dialect {
        Dialect::Legacy => parse_schedule,
        Dialect::V1 => parse_schedule_v1,
    };
    let schedule = match &req.schedule {
        Some(text) => {
            Some(parse(text, &format!("tool-{tool} {}", req.name)).map_err(ApiError::bad_request)?)
        }
        None => None,
    };
    let home = state.home_of(tool);
    if dialect == Dialect::V1 && req.filelog {
        // 16.x shows absolute log paths; relative ones are relative to the home
        let absolute = |p: Option<String>, ext: &str| -> String {
            match p {
                Some(p) if p.starts_with('/') => p,
                Some(p) => format!("{home}/{p}"),
                None => format!("{home}/{}.{ext}", req.name),
            }
        };
        req.filelog_stdout = Some(absolute(req.filelog_stdout.take(), "out"));
        req.filelog_stderr = Some(absolute(req.filelog_stderr.take(), "err"));
    }
    let manifest = objects::build(
        &req,
        &BuildContext {
            tool,
            home: &home,
            image,
            continuous_kind: state.continuous_component(),
            schedule_actual: schedule.as_ref().map(|s| s.actual.as_str()),
            home_root_mount: state.home_root_mount(),
        },
    );
    Ok((req, manifest))
}

/// Quota and LimitRange checks, the create (held: no pod starts), the check that no parallel
/// create (on any replica) took the last slot or the name first, then the release. Whatever
/// fails after the create deletes it again: the job is either accepted and running, or gone
/// without a pod ever having run.
async fn create_checked(
    state: &AppState,
    caller: &Caller,
    rt: &ToolRuntime,
    req: &RunRequest,
    manifest: &Value,
    flavor: Flavor,
) -> Result<Value, ApiError> {
    check_job_quota(state, caller, rt, req).await?;
    if req.memory.is_some() || req.cpu.is_some() {
        let ranges = rt
            .limit_ranges()
            .await
            .map_err(|e| from_kube(&e, "read the namespace limits"))?;
        check_limits(&ranges, req)?;
    }
    let created = rt
        .create(objects::held(manifest).unwrap_or_else(|| manifest.clone()))
        .await
        .map_err(|e| {
            tracing::info!(tool = %caller.tool, job = %req.name, error = %e, "create refused");
            from_kube(&e, "create the job").with_data(json!({"k8s_object": manifest}))
        })?;
    arbitrate(state, caller, rt, req, &created, flavor).await?;
    let (kind, uid) = (
        created["kind"].as_str().unwrap_or_default(),
        created["metadata"]["uid"].as_str().unwrap_or_default(),
    );
    // no patch for what is not held
    let Some(patch) = objects::release_patch(manifest, uid) else {
        return Ok(created);
    };
    match rt.release(kind, &req.name, &patch).await {
        Ok(released) => Ok(released),
        Err(e) => {
            tracing::warn!(tool = %caller.tool, job = %req.name, error = %e, "could not release the created job; deleting it");
            if let Err(d) = rt.delete_created(kind, &req.name, uid).await {
                // left held (no pod runs): the next census of the tool deletes it
                tracing::error!(tool = %caller.tool, job = %req.name, error = %d, "could not delete the unreleased job");
            }
            Err(from_kube(&e, "start the created job"))
        }
    }
}

/// The job quota and the job name, decided by Kubernetes rather than by any lock: another
/// gateway replica may be creating for the same tool at the same moment. The objects the
/// tool had at exactly the resource version of the create (all created before it, none
/// after) are counted; if they already fill the quota, or already hold this job name under
/// another kind, the new object is the one too many and is deleted again, with the refusal a
/// check before the create gives. Of any set of racing creates, the ones created first win,
/// so the quota holds across replicas.
async fn arbitrate(
    state: &AppState,
    caller: &Caller,
    rt: &ToolRuntime,
    req: &RunRequest,
    created: &Value,
    flavor: Flavor,
) -> Result<(), ApiError> {
    let meta = &created["metadata"];
    let (Some(kind), Some(uid), Some(rv)) = (
        created["kind"].as_str(),
        meta["uid"].as_str(),
        meta["resourceVersion"].as_str(),
    ) else {
        return Err(ApiError::unavailable(
            "the apiserver's reply to the create has no kind, uid or resourceVersion",
        ));
    };
    let verdict = match rt.census(Some(rv), Some(uid), Some(&req.name)).await {
        Err(e) => Err(from_kube(&e, "count the tool's jobs")),
        Ok(c) if c.same_name > 0 => Err(job_name_taken(&req.name, flavor)),
        Ok(c) => {
            let quota = state.quotas.for_tool(&caller.tool);
            quota_verdict(caller, req, &quota, c.running, c.scheduled)
        }
    };
    let Err(refusal) = verdict else {
        return Ok(());
    };
    crate::metrics::global().inc(
        "jobs_gateway_creates_undone_total",
        vec![("kind", kind.to_string())],
    );
    tracing::info!(tool = %caller.tool, job = %req.name, "created one job too many (a parallel create came first); deleting it");
    if let Err(e) = rt.delete_created(kind, &req.name, uid).await {
        tracing::error!(tool = %caller.tool, job = %req.name, error = %e, "could not delete the job created over the quota");
        return Err(from_kube(&e, "undo the create over the quota"));
    }
    Err(refusal)
}

/// The object holding the job name `name`, if any. One that is held and stale (left by a
/// request that ended without releasing it: it never ran) is deleted first, so that a retry
/// of that run under its name is not refused for good.
async fn existing_job(rt: &ToolRuntime, name: &str) -> Result<Option<Existing>, ApiError> {
    let lookup = |e: kube::Error| from_kube(&e, "look up existing jobs");
    let found = rt.existing(name).await.map_err(lookup)?;
    if !found.as_ref().is_some_and(|e| e.stale_held) {
        return Ok(found);
    }
    rt.remove_stale_held()
        .await
        .map_err(|e| from_kube(&e, "remove a job left unreleased"))?;
    rt.existing(name).await.map_err(lookup)
}

/// Creates a job; 409 when the name is taken.
pub async fn create_job(
    state: &AppState,
    caller: &Caller,
    ctx: &RequestContext,
    headers: &HeaderMap,
    body: &[u8],
    dialect: Dialect,
) -> Result<(RunRequest, Value), ApiError> {
    let (req, manifest) = prepare(state, caller, headers, body, dialect)?;
    ctx.set_job(&req.name);
    let rt = runtime(state, caller).await?;
    // One creation at a time per tool in this process: spares racing runs on one replica a
    // create that `arbitrate` would undo. Correctness does not rest on it (see `arbitrate`).
    let _slot = state.quotas.creation_slot(&caller.tool).await;
    let flavor = match dialect {
        Dialect::Legacy => Flavor::Legacy,
        Dialect::V1 => Flavor::V1,
    };
    if existing_job(&rt, &req.name).await?.is_some() {
        // the 16.x server runs a job again under its name once the last run has completed
        // (spec §1.3, POST row): the finished one is deleted and the new one created
        let completed = dialect == Dialect::V1
            && show_view(state, caller, &req.name)
                .await
                .is_ok_and(|v| v.status_short.eq_ignore_ascii_case("completed"));
        if !completed {
            return Err(job_name_taken(&req.name, flavor));
        }
        tracing::info!(tool = %caller.tool, job = %req.name, "replacing the completed job of the same name");
        rt.delete(Some(&req.name))
            .await
            .map_err(|e| from_kube(&e, "delete the completed job"))?;
    }
    let created = create_checked(state, caller, &rt, &req, &manifest, flavor).await?;
    Ok((req, created))
}

/// Create-or-update (16.x `load`): (message, whether anything changed).
pub async fn upsert_job(
    state: &AppState,
    caller: &Caller,
    ctx: &RequestContext,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(String, bool), ApiError> {
    let (req, manifest) = prepare(state, caller, headers, body, Dialect::V1)?;
    ctx.set_job(&req.name);
    let rt = runtime(state, caller).await?;
    let _slot = state.quotas.creation_slot(&caller.tool).await;
    let existing = existing_job(&rt, &req.name).await?;
    let wanted = objects::component_of(&req, state.continuous_component());
    let name = &req.name;
    match existing {
        None => {
            create_checked(state, caller, &rt, &req, &manifest, Flavor::V1).await?;
            Ok((created_message(name), true))
        }
        Some(e) if e.component == Component::Jobs && wanted == Component::Jobs => {
            Ok((ONE_OFF_NOT_UPDATED.into(), false))
        }
        Some(e)
            if e.component == wanted
                && e.spec_hash.as_deref()
                    == manifest["metadata"]["annotations"][jobs_core::labels::SPEC_HASH]
                        .as_str() =>
        {
            Ok((up_to_date_message(name), false))
        }
        Some(_) => {
            rt.delete(Some(name))
                .await
                .map_err(|e| from_kube(&e, "replace the job"))?;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while rt
                .exists(name)
                .await
                .map_err(|e| from_kube(&e, "replace the job"))?
            {
                if tokio::time::Instant::now() > deadline {
                    return Err(ApiError::unavailable(format!(
                        "the old version of job {name} is still being deleted; try again"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            create_checked(state, caller, &rt, &req, &manifest, Flavor::V1).await?;
            Ok((updated_message(name), true))
        }
    }
}

pub fn image_list(state: &AppState) -> Vec<wire::Image> {
    state
        .images()
        .listed()
        .iter()
        .map(|i| wire::Image {
            shortname: i.canonical_name.clone(),
            image: i.container.clone(),
        })
        .collect()
}

/// ResourceQuota, LimitRange and the gateway's own job limits of the caller.
pub async fn quota_parts(state: &AppState, caller: &Caller) -> Result<QuotaParts, ApiError> {
    let rt = runtime(state, caller).await?;
    let (rqs, lrs, (running, scheduled)) =
        tokio::try_join!(rt.resource_quotas(), rt.limit_ranges(), rt.counts())
            .map_err(|e| from_kube(&e, "read the quotas"))?;
    let q = state.quotas.for_tool(&caller.tool);
    Ok(QuotaParts {
        rq: rqs.into_iter().next(),
        lr: lrs.into_iter().next(),
        usage: GatewayJobUsage {
            running_limit: q.running,
            running_used: running,
            scheduled_limit: q.scheduled,
            scheduled_used: scheduled,
        },
        continuous_key: match state.continuous_component() {
            jobs_core::labels::ContinuousComponent::ReplicationControllers => {
                "count/replicationcontrollers"
            }
            jobs_core::labels::ContinuousComponent::Deployments => "count/deployments.apps",
        },
    })
}

pub struct QuotaParts {
    pub rq: Option<k8s_openapi::api::core::v1::ResourceQuota>,
    pub lr: Option<LimitRange>,
    pub usage: GatewayJobUsage,
    pub continuous_key: &'static str,
}

#[derive(Debug, Deserialize, Default)]
pub struct LogParams {
    pub follow: Option<String>,
    pub lines: Option<String>,
    /// The 16.2 logs service's `since`/`until` (ISO 8601 time or a duration before now).
    #[serde(skip)]
    pub since: Option<String>,
    #[serde(skip)]
    pub until: Option<String>,
}

impl LogParams {
    /// `since`/`until` select by the time of each line; file logs have none, so they are
    /// refused rather than silently ignored.
    fn refuse_time_window(&self) -> Result<(), ApiError> {
        let given: Vec<&str> = [
            ("since (--since)", &self.since),
            ("until (--until)", &self.until),
        ]
        .into_iter()
        .filter(|(_, v)| v.is_some())
        .map(|(k, _)| k)
        .collect();
        if given.is_empty() {
            return Ok(());
        }
        Err(ApiError::bad_request(format!(
            "{} cannot be applied: this job's logs are files whose lines carry no time; use --last N (the last N lines) instead",
            given.join(" and ")
        )))
    }
}

/// The logs service reads the last hour when no `since` is given, as the real one does.
const LOGS_SERVICE_SINCE: &str = "1h";

/// A job without file logging: its containers' logs, from every pod of the job.
async fn container_log_response(
    state: &AppState,
    caller: &Caller,
    name: &str,
    params: &LogParams,
    lines: usize,
    follow: bool,
    route: LogRoute,
) -> Result<Response, ApiError> {
    let now = Utc::now();
    let since_text = match (&params.since, route) {
        (Some(s), _) => Some(s.as_str()),
        (None, LogRoute::LogsService) => Some(LOGS_SERVICE_SINCE),
        (None, _) => None,
    };
    let since = since_text
        .map(|s| jobs_core::podlogs::parse_time_bound("since", s, now))
        .transpose()
        .map_err(ApiError::bad_request)?;
    let until = params
        .until
        .as_deref()
        .map(|s| jobs_core::podlogs::parse_time_bound("until", s, now))
        .transpose()
        .map_err(ApiError::bad_request)?;
    let with_container = route != LogRoute::Legacy;
    let slot = if follow {
        Some(state.follows.acquire(caller.tool.as_str())?)
    } else {
        None
    };
    let rt = runtime(state, caller).await?;
    let started = Utc::now();
    let read = podlogs::read(&rt, name, lines, since, until).await?;
    match slot {
        None => {
            // nothing to show is the real server's 404; none asked for (lines=0) is an
            // empty reply, as for file logs
            if read.is_empty() && lines > 0 {
                return Err(no_logs_available(name));
            }
            let mut out = String::new();
            for l in &read {
                out.push_str(&podlogs::ndjson_line(l, with_container));
            }
            Ok(log_lines(route, Body::from(out)))
        }
        Some(slot) => Ok(log_lines(
            route,
            podlogs::follow(
                rt,
                name.to_string(),
                read,
                (lines == 0).then_some(started),
                since,
                until,
                with_container,
                state.stopping.subscribe(),
                slot,
            ),
        )),
    }
}

/// The route a log request came by: the shape of its entries and the words of its errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogRoute {
    /// Release 14 `jobs/N/logs` (and `logs/N`): entries without the container key.
    Legacy,
    /// 16.1 `/v1/tool/<tool>/jobs/N/logs`, worded as the 16.x jobs API (spec §1.3): the
    /// lines are read first, then the name is held to the naming rules, and a job that isn't
    /// there has no logs available.
    JobsV1,
    /// The 16.2 logs service (`/logs/v1/tool/<tool>/job/N/...`).
    LogsService,
}

/// The log entries of a job's file logs, and a stream for `follow`.
pub async fn log_response(
    state: &AppState,
    caller: &Caller,
    name: &str,
    params: &LogParams,
    route: LogRoute,
) -> Result<Response, ApiError> {
    let with_container = route != LogRoute::Legacy;
    let bad_name = check_job_name(name).err();
    if route != LogRoute::JobsV1 && bad_name.is_some() {
        return Err(ApiError::bad_request(format!("Invalid job name '{name}'")));
    }
    let lines = logs::parse_lines(params.lines.as_deref()).map_err(ApiError::bad_request)?;
    if let Some(rules) = bad_name {
        return Err(ApiError::bad_request(rules));
    }
    let follow = params
        .follow
        .as_deref()
        .is_some_and(|f| f.eq_ignore_ascii_case("true"));
    let job = match show_view(state, caller, name).await {
        Err(e) if route == LogRoute::JobsV1 && e.status == StatusCode::NOT_FOUND => {
            return Err(no_logs_available(name))
        }
        shown => shown?,
    };
    if !job.filelog {
        return container_log_response(state, caller, name, params, lines, follow, route).await;
    }
    params.refuse_time_window()?;
    let follow_slot = if follow {
        Some(state.follows.acquire(caller.tool.as_str())?)
    } else {
        None
    };
    let files = log_files(state, caller, &job).await?;
    let mut out = String::new();
    let mut offsets = Vec::new();
    for (stream, path) in &files {
        let (tail, offset, mtime) = read_tail(state, caller, path.clone(), lines).await?;
        for e in logs::entries(name, stream, tail, mtime) {
            out.push_str(&entry_line(&e, with_container));
        }
        offsets.push((stream.clone(), path.clone(), offset));
    }
    let first = Bytes::from(out);
    if !follow {
        return Ok(log_lines(route, Body::from(first)));
    }
    let store = state.credentials.clone();
    let home_root = state.config.home_root.clone();
    let tool = caller.tool.clone();
    let job_name = name.to_string();
    let stopping = state.stopping.subscribe();
    let stream = futures::stream::unfold(
        (
            Some(first),
            offsets,
            tokio::time::Instant::now() + podlogs::FOLLOW_LIMIT,
        ),
        move |(first, mut offsets, until)| {
            let store = store.clone();
            let home_root = home_root.clone();
            let tool = tool.clone();
            let job_name = job_name.clone();
            let mut stopping = stopping.clone();
            async move {
                if let Some(f) = first {
                    return Some((Ok::<Bytes, std::io::Error>(f), (None, offsets, until)));
                }
                loop {
                    if tokio::time::Instant::now() > until {
                        return None;
                    }
                    // the gateway shutting down (already, or during the wait) ends the stream
                    // cleanly (the client sees its end) rather than holding the process until
                    // the grace time runs out
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                        _ = stopping.wait_for(|stop| *stop) => return None,
                    }
                    let mut chunk = String::new();
                    for (stream, path, offset) in offsets.iter_mut() {
                        let (new_lines, new_offset) =
                            filelogs::read_more(&store, &home_root, &tool, path, *offset).await?;
                        *offset = new_offset;
                        for e in logs::entries(&job_name, stream, new_lines, Utc::now()) {
                            chunk.push_str(&entry_line(&e, with_container));
                        }
                    }
                    if !chunk.is_empty() {
                        return Some((Ok(Bytes::from(chunk)), (None, offsets, until)));
                    }
                }
            }
        },
    );
    // the follow slot is given back when the stream ends or the client goes away
    let stream = futures::StreamExt::map(stream, move |chunk| {
        let _held = &follow_slot;
        chunk
    });
    Ok(log_lines(route, Body::from_stream(stream)))
}

fn entry_line(e: &logs::LogEntry, with_container: bool) -> String {
    let mut v = json!({"datetime": e.datetime, "pod": e.pod, "message": e.message});
    if with_container {
        v["container"] = json!(e.container);
    }
    format!("{v}\n")
}

/// A reply of log lines, one JSON object each, never buffered by nginx. The 16.x jobs API
/// labels them `text/plain; charset=utf8`, word for word as the real server (spec §1.3); the
/// other routes say what they are, NDJSON.
fn log_lines(route: LogRoute, body: Body) -> Response {
    let content_type = match route {
        LogRoute::JobsV1 => "text/plain; charset=utf8",
        LogRoute::Legacy | LogRoute::LogsService => "application/x-ndjson; charset=utf-8",
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        body,
    )
        .into_response()
}

// ---------------------------------------------------------------- release 13/14 routes

pub async fn legacy_list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<wire::legacy::Job>>, ApiError> {
    let views = list_views(&state, &caller).await?;
    let home = state.home_of(caller.tool.as_str());
    Ok(Json(
        views.iter().map(|v| view::legacy_job(v, &home)).collect(),
    ))
}

pub async fn legacy_show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<wire::legacy::Job>, ApiError> {
    let shown = show_view(&state, &caller, &name).await?;
    Ok(Json(view::legacy_job(
        &shown,
        &state.home_of(caller.tool.as_str()),
    )))
}

/// Release 13 `run/`: replies with the object Kubernetes created.
pub async fn legacy_run(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<Arc<RequestContext>>,
    headers: HeaderMap,
    LimitedBody(body): LimitedBody,
) -> Result<Json<Value>, ApiError> {
    let (_, created) = create_job(&state, &caller, &ctx, &headers, &body, Dialect::Legacy).await?;
    Ok(Json(created))
}

/// Release 14 POST `jobs/`: 201 with the job.
pub async fn legacy_create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<Arc<RequestContext>>,
    headers: HeaderMap,
    LimitedBody(body): LimitedBody,
) -> Result<(StatusCode, Json<wire::legacy::Job>), ApiError> {
    let (req, _) = create_job(&state, &caller, &ctx, &headers, &body, Dialect::Legacy).await?;
    let shown = show_view(&state, &caller, &req.name).await?;
    Ok((
        StatusCode::CREATED,
        Json(view::legacy_job(
            &shown,
            &state.home_of(caller.tool.as_str()),
        )),
    ))
}

/// Release 13 answers a write with `""`, release 14 (`jobs/` routes) with `{}`.
fn written<const V14: bool>() -> Json<Value> {
    Json(if V14 { json!({}) } else { json!("") })
}

pub async fn legacy_delete<const V14: bool>(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<Arc<RequestContext>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    delete_job(&state, &caller, &ctx, &name).await?;
    Ok(written::<V14>())
}

pub async fn legacy_flush<const V14: bool>(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    flush_jobs(&state, &caller).await?;
    Ok(written::<V14>())
}

pub async fn legacy_restart<const V14: bool>(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<Arc<RequestContext>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    restart_job(&state, &caller, &ctx, &name).await?;
    Ok(written::<V14>())
}

pub async fn legacy_images(State(state): State<AppState>) -> Json<Vec<wire::Image>> {
    Json(image_list(&state))
}

pub async fn legacy_quota(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<wire::Quota>, ApiError> {
    let p = quota_parts(&state, &caller).await?;
    Ok(Json(quota::legacy_quota(
        p.rq.as_ref(),
        p.lr.as_ref(),
        p.continuous_key,
        &p.usage,
    )))
}

pub async fn legacy_logs(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(params): Query<LogParams>,
) -> Result<Response, ApiError> {
    log_response(&state, &caller, &name, &params, LogRoute::Legacy).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_of_the_16x_server() {
        assert_eq!(not_found("x").message, "Job 'x' does not exist");
        assert_eq!(not_found("x").status, StatusCode::NOT_FOUND);
        let none = no_logs_available("x");
        assert_eq!(
            (none.status, none.message.as_str()),
            (
                StatusCode::NOT_FOUND,
                "Job 'x' does not have any logs available"
            )
        );
        let image = no_such_image("nosuch", "bookworm, python3.11", Dialect::V1);
        assert_eq!(
            (image.status, image.message.as_str()),
            (StatusCode::BAD_REQUEST, "No such image 'nosuch'")
        );
        assert_eq!(
            no_such_image("nosuch", "bookworm", Dialect::Legacy).message,
            "No such image 'nosuch'. Valid images: bookworm"
        );
        assert_eq!(created_message("x"), "Job x created in storage and runtime");
        assert_eq!(
            updated_message("x"),
            "Job x was updated in storage and runtime"
        );
        assert_eq!(up_to_date_message("x"), "Job x is already up to date");
        assert_eq!(
            ONE_OFF_NOT_UPDATED,
            "OneOffJobs can't be updated, delete and recreate it instead"
        );
    }
}
