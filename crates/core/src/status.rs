//! Job status computation: the OLD `status_short`/`status_long` strings (spec §4.1, §4.2)
//! and the NEW structured status object (spec §4.3).
//!
//! Everything here is pure: callers fetch the Kubernetes objects and pass them in.

use chrono::{DateTime, SecondsFormat, Utc};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ContainerStatus, Event, Pod, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::{Deserialize, Serialize};
use std::borrow::Borrow;

use super::command;
use super::schedule;

/// Seconds after a (re)start before unavailable replicas of a continuous job count as failed.
const CONTINUOUS_FAILURE_GRACE_SECS: i64 = 600;

pub const FAILS_TO_RUN: &str = "Specified command fails to run";
/// What the 2023 server (release 13/14's) said for the same state: the 16.x server renamed it
/// (spec §4.1, 701e051).
pub const LEGACY_FAILS_TO_START: &str = "Fails to start";

/// A continuous job's short status in the words of the release 13/14 server.
pub fn legacy_status_short(short: &str) -> &str {
    if short == FAILS_TO_RUN {
        LEGACY_FAILS_TO_START
    } else {
        short
    }
}

// === Shared helpers ===

fn to_utc(time: &Time) -> Option<DateTime<Utc>> {
    let nanos = u32::try_from(time.0.subsec_nanosecond()).unwrap_or(0);
    DateTime::from_timestamp(time.0.as_second(), nanos)
}

/// RFC 3339 in UTC with a `Z` suffix and whole seconds, e.g. `2026-11-26T04:00:00Z`.
fn render_time(time: &Time) -> String {
    match to_utc(time) {
        Some(utc) => utc.to_rfc3339_opts(SecondsFormat::Secs, true),
        None => time.0.to_string(),
    }
}

fn duration_since(start: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Option<String> {
    start.map(|start| format_duration((now - start).num_seconds()))
}

/// `<d>d<h>h<m>m<s>s` with zero parts left out; seconds only when there are no days or
/// when the result would otherwise be empty. Negative input counts as 0.
pub fn format_duration(secs: i64) -> String {
    let secs = secs.max(0);
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (hours, rest) = (rest / 3_600, rest % 3_600);
    let (minutes, seconds) = (rest / 60, rest % 60);
    let mut out = String::new();
    for (value, unit) in [(days, "d"), (hours, "h"), (minutes, "m")] {
        if value > 0 {
            out.push_str(&format!("{value}{unit}"));
        }
    }
    if (seconds > 0 && days == 0) || out.is_empty() {
        out.push_str(&format!("{seconds}s"));
    }
    out
}

/// Resource types named in a quota error: the text after the last `limited: `, split on
/// `,`, the part before `=`, without a `requests.`/`limits.` prefix. Sorted, de-duplicated.
pub fn quota_types(message: &str) -> Vec<String> {
    let tail = message.rsplit("limited: ").next().unwrap_or(message);
    let mut types: Vec<String> = tail
        .split(',')
        .map(|item| {
            let key = item.split('=').next().unwrap_or(item).trim();
            let key = key
                .strip_prefix("requests.")
                .or_else(|| key.strip_prefix("limits."))
                .unwrap_or(key);
            key.to_string()
        })
        .filter(|key| !key.is_empty())
        .collect();
    types.sort();
    types.dedup();
    types
}

/// `Unable to start`, plus `, out of quota for <types>` when `message` has `quota_marker`.
fn unable_to_start(message: Option<&str>, quota_marker: &str) -> String {
    match message {
        Some(message) if message.contains(quota_marker) => format!(
            "Unable to start, out of quota for {}",
            quota_types(message).join(", ")
        ),
        _ => "Unable to start".to_string(),
    }
}

fn event_time(event: &Event) -> Option<DateTime<Utc>> {
    event
        .last_timestamp
        .as_ref()
        .and_then(to_utc)
        .or_else(|| {
            event.event_time.as_ref().and_then(|t| {
                let nanos = u32::try_from(t.0.subsec_nanosecond()).unwrap_or(0);
                DateTime::from_timestamp(t.0.as_second(), nanos)
            })
        })
        .or_else(|| event.metadata.creation_timestamp.as_ref().and_then(to_utc))
}

/// The newest `FailedCreate` event (events sorted by last timestamp, newest first).
fn newest_failed_create(events: &[&Event]) -> Option<(Option<DateTime<Utc>>, Option<String>)> {
    let mut sorted: Vec<&Event> = events.to_vec();
    sorted.sort_by_key(|event| std::cmp::Reverse(event_time(event)));
    sorted
        .into_iter()
        .find(|event| event.reason.as_deref() == Some("FailedCreate"))
        .map(|event| (event_time(event), event.message.clone()))
}

/// Events about `job`: matching `involvedObject.uid` (lenient when either uid is missing).
fn events_for<'a, E: Borrow<Event>>(job: &Job, events: &'a [E]) -> Vec<&'a Event> {
    let uid = job.metadata.uid.as_deref();
    events
        .iter()
        .map(Borrow::borrow)
        .filter(|event| match (uid, event.involved_object.uid.as_deref()) {
            (Some(job_uid), Some(event_uid)) => job_uid == event_uid,
            _ => true,
        })
        .collect()
}

fn job_counts(job: &Job) -> (i32, i32, i32) {
    job.status.as_ref().map_or((0, 0, 0), |s| {
        (
            s.active.unwrap_or(0),
            s.ready.unwrap_or(0),
            s.failed.unwrap_or(0),
        )
    })
}

fn container_statuses(pod: &Pod) -> &[ContainerStatus] {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or(&[])
}

fn pod_phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.phase.as_deref())
}

fn pod_is_running_and_ready(pod: &Pod) -> bool {
    let ready = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conds| {
            conds
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        });
    pod_phase(pod) == Some("Running") && ready
}

/// A container waiting in `CrashLoopBackOff` or terminated with reason `Error`.
fn pods_fail_to_run<P: Borrow<Pod>>(pods: &[P]) -> bool {
    pods.iter()
        .map(Borrow::borrow)
        .flat_map(container_statuses)
        .any(|cs| {
            let state = cs.state.as_ref();
            let waiting = state
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.reason.as_deref());
            let terminated = state
                .and_then(|s| s.terminated.as_ref())
                .and_then(|t| t.reason.as_deref());
            waiting == Some("CrashLoopBackOff") || terminated == Some("Error")
        })
}

// === OLD status_short ===

/// The OLD Job rules; `check_complete` toggles step 1. `None` when no rule applies.
fn job_rules(
    job: &Job,
    events: &[&Event],
    now: DateTime<Utc>,
    check_complete: bool,
) -> Option<String> {
    let status = job.status.as_ref();
    if check_complete {
        let complete = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|conds| conds.iter().find(|c| c.type_ == "Complete"));
        match complete.map(|c| c.status.as_str()) {
            Some("True") => return Some("Completed".to_string()),
            Some("False") => return Some("Not running".to_string()),
            _ => {}
        }
    }
    let (active, _, failed) = job_counts(job);
    if failed > 0 {
        return Some("Failed".to_string());
    }
    if active > 0 {
        if let Some(start) = status.and_then(|s| s.start_time.as_ref()).and_then(to_utc) {
            return Some(format!(
                "Running for {}",
                format_duration((now - start).num_seconds())
            ));
        }
    }
    newest_failed_create(events)
        .map(|(_, message)| unable_to_start(message.as_deref(), "is forbidden: exceeded quota"))
}

/// OLD `status_short` of a one-off Job. `events` must already be limited to this Job.
pub fn job_status_short<E: Borrow<Event>>(job: &Job, events: &[E], now: DateTime<Utc>) -> String {
    let events: Vec<&Event> = events.iter().map(Borrow::borrow).collect();
    job_rules(job, &events, now, true).unwrap_or_else(|| "Unknown".to_string())
}

/// OLD `status_short` of a CronJob. `jobs` are the Jobs of this CronJob (active ones and
/// manual runs); `events` may cover several Jobs and are matched by involved-object uid.
pub fn cronjob_status_short<J: Borrow<Job>, E: Borrow<Event>>(
    cj: &CronJob,
    jobs: &[J],
    events: &[E],
    now: DateTime<Utc>,
) -> String {
    let active_refs = cj
        .status
        .as_ref()
        .and_then(|s| s.active.as_deref())
        .unwrap_or(&[]);
    for reference in active_refs {
        let found = jobs.iter().map(Borrow::borrow).find(|job: &&Job| {
            job.metadata.name == reference.name
                && (reference.uid.is_none() || job.metadata.uid == reference.uid)
        });
        if let Some(job) = found {
            if let Some(status) = job_rules(job, &events_for(job, events), now, false) {
                return status;
            }
        }
    }
    for job in jobs
        .iter()
        .map(Borrow::borrow)
        .filter(|job| is_manual_run(cj, job))
    {
        if let Some(status) = job_rules(job, &events_for(job, events), now, false) {
            return status;
        }
    }
    match cj
        .status
        .as_ref()
        .and_then(|s| s.last_schedule_time.as_ref())
    {
        Some(time) => format!("Last schedule time: {}", render_time(time)),
        None => "Waiting for scheduled time".to_string(),
    }
}

/// A Job created by hand from this CronJob: `instantiate: manual` annotation, owned by the
/// CronJob (kind, name and uid) and running the same command.
pub fn is_manual_run(cj: &CronJob, job: &Job) -> bool {
    let manual = job
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("cronjob.kubernetes.io/instantiate"))
        .is_some_and(|v| v == "manual");
    let owned = cj.metadata.uid.is_some()
        && job
            .metadata
            .owner_references
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .any(|owner| {
                owner.kind == "CronJob"
                    && Some(&owner.name) == cj.metadata.name.as_ref()
                    && Some(&owner.uid) == cj.metadata.uid.as_ref()
            });
    manual && owned && {
        let template = cj.spec.as_ref().and_then(|s| s.job_template.spec.as_ref());
        let cj_cmd =
            template.and_then(|spec| parsed_command(&spec.template, cj.metadata.labels.as_ref()));
        let job_cmd = job
            .spec
            .as_ref()
            .and_then(|spec| parsed_command(&spec.template, job.metadata.labels.as_ref()));
        cj_cmd.is_some() && cj_cmd == job_cmd
    }
}

fn parsed_command(
    template: &k8s_openapi::api::core::v1::PodTemplateSpec,
    labels: Option<&std::collections::BTreeMap<String, String>>,
) -> Option<command::ParsedCommand> {
    let container = template.spec.as_ref()?.containers.first()?;
    let empty = std::collections::BTreeMap::new();
    let labels = labels
        .or_else(|| template.metadata.as_ref().and_then(|m| m.labels.as_ref()))
        .unwrap_or(&empty);
    Some(command::parse_command(
        container.command.as_deref().unwrap_or(&[]),
        container.args.as_deref().unwrap_or(&[]),
        labels,
    ))
}

/// Short status of a continuous job run as a v1 ReplicationController (replicas 1).
pub fn rc_status_short<P: Borrow<Pod>>(rc: &ReplicationController, pods: &[P]) -> String {
    let status = rc.status.as_ref();
    if status.and_then(|s| s.ready_replicas).unwrap_or(0) >= 1
        || pods
            .iter()
            .map(Borrow::borrow)
            .any(pod_is_running_and_ready)
    {
        return "Running".to_string();
    }
    let quota = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|conds| {
            conds.iter().find(|c| {
                c.type_ == "ReplicaFailure"
                    && c.message
                        .as_deref()
                        .is_some_and(|m| m.contains("exceeded quota"))
            })
        });
    if let Some(condition) = quota {
        return unable_to_start(condition.message.as_deref(), "exceeded quota");
    }
    if pods_fail_to_run(pods) {
        return FAILS_TO_RUN.to_string();
    }
    "Not running".to_string()
}

/// OLD `status_short` of a Deployment (the later matching condition wins).
pub fn deployment_status_short<P: Borrow<Pod>>(d: &Deployment, pods: &[P]) -> String {
    let conditions = d
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or(&[]);
    let mut result = "Unknown".to_string();
    for condition in conditions {
        match (condition.type_.as_str(), condition.status.as_str()) {
            ("Available", "True") => result = "Running".to_string(),
            ("Available", "False") => result = "Not running".to_string(),
            ("ReplicaFailure", "True")
                if condition.reason.as_deref() == Some("FailedCreate")
                    && condition
                        .message
                        .as_deref()
                        .is_some_and(|m| m.contains("forbidden: exceeded quota")) =>
            {
                result = unable_to_start(condition.message.as_deref(), "forbidden: exceeded quota");
            }
            _ => {}
        }
    }
    if result == "Not running" && pods_fail_to_run(pods) {
        return FAILS_TO_RUN.to_string();
    }
    result
}

// === OLD status_long ===

/// OLD `status_long`, describing the first pod.
pub fn status_long<P: Borrow<Pod>>(pods: &[P]) -> String {
    let Some(pod) = pods.first().map(Borrow::borrow) else {
        return "No pods were created for this job.".to_string();
    };
    let status = pod.status.as_ref();
    let mut out = match status.and_then(|s| s.start_time.as_ref()) {
        Some(time) => format!("Last run at {}.", render_time(time)),
        None => "Run not attempted yet.".to_string(),
    };
    out.push_str(&format!(
        " Pod in '{}' phase.",
        pod_phase(pod).unwrap_or("unknown")
    ));
    let Some(cs) = container_statuses(pod).first() else {
        return out;
    };
    if cs.restart_count > 0 {
        out.push_str(&format!(
            " Pod has been restarted {} times.",
            cs.restart_count
        ));
    }
    let state = cs.state.as_ref();
    let waiting = state.and_then(|s| s.waiting.as_ref());
    let running = state.and_then(|s| s.running.as_ref());
    let terminated = state.and_then(|s| s.terminated.as_ref());
    let name = if waiting.is_some() {
        "waiting"
    } else if running.is_some() {
        "running"
    } else if terminated.is_some() {
        "terminated"
    } else {
        "unknown"
    };
    out.push_str(&format!(" State '{name}'."));
    let reason = waiting
        .and_then(|w| w.reason.as_deref())
        .or_else(|| terminated.and_then(|t| t.reason.as_deref()));
    if !(name == "running" && reason.is_none()) {
        out.push_str(&format!(" Reason '{}'.", reason.unwrap_or("unknown")));
    }
    let started = running
        .and_then(|r| r.started_at.as_ref())
        .or_else(|| terminated.and_then(|t| t.started_at.as_ref()));
    if let Some(time) = started {
        out.push_str(&format!(" Started at '{}'.", render_time(time)));
    }
    if let Some(t) = terminated {
        if let Some(time) = t.finished_at.as_ref() {
            out.push_str(&format!(" Finished at '{}'.", render_time(time)));
        }
        out.push_str(&format!(" Exit code '{}'.", t.exit_code));
    }
    let message = waiting
        .and_then(|w| w.message.as_deref())
        .or_else(|| terminated.and_then(|t| t.message.as_deref()));
    if let Some(message) = message {
        out.push_str(&format!(" Additional message:'{message}'."));
    }
    out
}

// === NEW status object ===

/// The NEW (v2) status object.
///
/// `up_to_date` is `true` here; the caller clears it when the stored job differs from the
/// runtime objects.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StatusV2 {
    /// `pending`, `running`, `succeeded`, `failed` or `unknown`.
    pub short: String,
    pub duration: Option<String>,
    pub up_to_date: bool,
    pub messages: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_schedule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_schedule: Option<String>,
}

impl StatusV2 {
    fn new(short: &str, duration: Option<String>, messages: Vec<String>) -> Self {
        Self {
            short: short.to_string(),
            duration,
            up_to_date: true,
            messages,
            previous_schedule: None,
            next_schedule: None,
        }
    }

    fn unknown() -> Self {
        Self::new("unknown", None, Vec::new())
    }

    fn is_unknown(&self) -> bool {
        self.short == "unknown"
    }
}

/// Pod buckets, in ascending priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Bucket {
    Unknown,
    Succeeded,
    Restarted,
    Running,
    Initializing,
    Scheduling,
    Failed,
}

fn last_condition(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::PodCondition> {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|conds| conds.last())
}

fn pod_v2(pod: &Pod, now: DateTime<Utc>) -> (Bucket, StatusV2) {
    let phase = pod_phase(pod).unwrap_or("").to_lowercase();
    let statuses = container_statuses(pod);
    let condition = last_condition(pod);
    let since_condition = duration_since(
        condition
            .and_then(|c| c.last_transition_time.as_ref())
            .and_then(to_utc),
        now,
    );
    let waiting = statuses.iter().find_map(|cs| {
        cs.state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .map(|w| (cs, w))
    });
    let terminated = statuses.iter().find_map(|cs| {
        cs.state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .map(|t| (cs, t))
    });
    let running = statuses
        .iter()
        .find_map(|cs| cs.state.as_ref().and_then(|s| s.running.as_ref()));

    match phase.as_str() {
        "pending" if statuses.is_empty() => {
            let mut messages = vec!["scheduling".to_string()];
            messages.extend(condition.and_then(|c| c.message.clone()));
            (
                Bucket::Scheduling,
                StatusV2::new("pending", since_condition, messages),
            )
        }
        "pending" if waiting.is_some() => {
            let mut messages = vec!["initializing".to_string()];
            messages.extend(waiting.and_then(|(_, w)| w.message.clone()));
            (
                Bucket::Initializing,
                StatusV2::new("pending", since_condition, messages),
            )
        }
        "running" if terminated.is_some() || waiting.is_some() => {
            let mut messages = Vec::new();
            if let Some((cs, t)) = terminated {
                messages.push(format!("restarted ({})", cs.restart_count));
                messages.push(format!("exitcode {}", t.exit_code));
            } else if let Some((cs, _)) = waiting {
                messages.push(format!("restarted ({})", cs.restart_count));
                let last = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref());
                messages.extend(last.map(|t| format!("exitcode {}", t.exit_code)));
            }
            (
                Bucket::Restarted,
                StatusV2::new("pending", since_condition, messages),
            )
        }
        "running" if running.is_some() => {
            let started = running.and_then(|r| r.started_at.as_ref()).and_then(to_utc);
            (
                Bucket::Running,
                StatusV2::new("running", duration_since(started, now), Vec::new()),
            )
        }
        "succeeded" if terminated.is_some() => {
            let finished = terminated
                .and_then(|(_, t)| t.finished_at.as_ref())
                .and_then(to_utc);
            (
                Bucket::Succeeded,
                StatusV2::new("succeeded", duration_since(finished, now), Vec::new()),
            )
        }
        "failed" => match terminated {
            Some((_, t)) => {
                let finished = t.finished_at.as_ref().and_then(to_utc);
                (
                    Bucket::Failed,
                    StatusV2::new(
                        "failed",
                        duration_since(finished, now),
                        vec![format!("exitcode {}", t.exit_code)],
                    ),
                )
            }
            None => (
                Bucket::Unknown,
                StatusV2::new("unknown", since_condition, Vec::new()),
            ),
        },
        _ => (
            Bucket::Unknown,
            StatusV2::new("unknown", since_condition, Vec::new()),
        ),
    }
}

/// Status from the pods: the highest-priority bucket wins (first pod on ties).
pub fn pod_status_v2<P: Borrow<Pod>>(pods: &[P], now: DateTime<Utc>) -> StatusV2 {
    let mut best: Option<(Bucket, StatusV2)> = None;
    for pod in pods.iter().map(Borrow::borrow) {
        let (bucket, status) = pod_v2(pod, now);
        if best.as_ref().is_none_or(|(b, _)| bucket > *b) {
            best = Some((bucket, status));
        }
    }
    best.map_or_else(StatusV2::unknown, |(_, status)| status)
}

/// NEW status of a one-off Job (also used for the latest Job of a CronJob).
pub fn oneoff_status_v2<P: Borrow<Pod>, E: Borrow<Event>>(
    job: &Job,
    pods: &[P],
    events: &[E],
    now: DateTime<Utc>,
) -> StatusV2 {
    let from_pods = pod_status_v2(pods, now);
    if !from_pods.is_unknown() {
        return from_pods;
    }
    let status = job.status.as_ref();
    let conditions = status.and_then(|s| s.conditions.as_deref()).unwrap_or(&[]);
    let true_condition = |kind: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == kind && c.status == "True")
    };
    if let Some(c) = true_condition("Complete") {
        let at = c
            .last_transition_time
            .as_ref()
            .or_else(|| status.and_then(|s| s.completion_time.as_ref()))
            .and_then(to_utc);
        return StatusV2::new("succeeded", duration_since(at, now), Vec::new());
    }
    if let Some(c) = true_condition("Failed") {
        let at = c.last_transition_time.as_ref().and_then(to_utc);
        let messages = c.message.iter().cloned().collect();
        return StatusV2::new("failed", duration_since(at, now), messages);
    }
    let (active, ready, _) = job_counts(job);
    if active > 0 && ready == 0 {
        let started = status.and_then(|s| s.start_time.as_ref()).and_then(to_utc);
        return StatusV2::new("pending", duration_since(started, now), Vec::new());
    }
    if active == 0 && ready == 0 {
        if let Some((at, message)) = newest_failed_create(&events_for(job, events)) {
            let text = unable_to_start(message.as_deref(), "is forbidden: exceeded quota");
            return StatusV2::new("failed", duration_since(at, now), vec![text]);
        }
    }
    from_pods
}

/// NEW status of a scheduled job.
///
/// `latest_job` is the newest of the newest automatic and the newest manual Job; `pods` may
/// include other Jobs' pods (they are filtered by the `job-name` label).
pub fn scheduled_status_v2<P: Borrow<Pod>, E: Borrow<Event>>(
    cj: &CronJob,
    latest_job: Option<&Job>,
    pods: &[P],
    events: &[E],
    now: DateTime<Utc>,
) -> StatusV2 {
    let cj_status = cj.status.as_ref();
    let previous = cj_status.and_then(|s| s.last_schedule_time.as_ref());
    let mut status = match latest_job {
        Some(job) => {
            let own_pods: Vec<&Pod> = pods
                .iter()
                .map(Borrow::borrow)
                .filter(|pod| pod_belongs_to(pod, job))
                .collect();
            oneoff_status_v2(job, &own_pods, events, now)
        }
        None => {
            let since = [
                cj_status.and_then(|s| s.last_successful_time.as_ref()),
                previous,
                cj.metadata.creation_timestamp.as_ref(),
            ]
            .into_iter()
            .flatten()
            .filter_map(to_utc)
            .max();
            StatusV2::new("pending", duration_since(since, now), Vec::new())
        }
    };
    status.previous_schedule = previous.map(render_time);
    let start = previous.and_then(to_utc).unwrap_or(now);
    status.next_schedule = cj
        .spec
        .as_ref()
        .and_then(|spec| schedule::next_run_after(&spec.schedule, start))
        .map(|next| next.to_rfc3339_opts(SecondsFormat::Secs, true));
    status
}

fn pod_belongs_to(pod: &Pod, job: &Job) -> bool {
    let Some(name) = job.metadata.name.as_ref() else {
        return false;
    };
    pod.metadata.labels.as_ref().is_some_and(|labels| {
        ["job-name", "batch.kubernetes.io/job-name"]
            .iter()
            .any(|key| labels.get(*key) == Some(name))
    })
}

/// NEW status of a continuous job.
///
/// `rc_or_deploy_replicas` is `(replicas, readyReplicas, unavailableReplicas)`;
/// `quota_failure` is the message of a ReplicaFailure condition about quota, if any;
/// `created_or_restarted` is the last restart time, or the creation time.
pub fn continuous_status_v2<P: Borrow<Pod>>(
    rc_or_deploy_replicas: (i32, i32, i32),
    quota_failure: Option<String>,
    pods: &[P],
    created_or_restarted: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> StatusV2 {
    let (replicas, ready, unavailable) = rc_or_deploy_replicas;
    let from_pods = pod_status_v2(pods, now);
    if from_pods.short == "running" {
        return from_pods;
    }
    if let Some(message) = quota_failure {
        let types = quota_types(&message);
        let text = if types.is_empty() {
            "Unable to start".to_string()
        } else {
            format!("Unable to start, out of quota for {}", types.join(", "))
        };
        return StatusV2::new("failed", None, vec![text]);
    }
    let past_grace = created_or_restarted
        .is_some_and(|at| (now - at).num_seconds() > CONTINUOUS_FAILURE_GRACE_SECS);
    if unavailable > 0 && past_grace {
        return StatusV2::new("failed", from_pods.duration, from_pods.messages);
    }
    if !from_pods.is_unknown() {
        return from_pods;
    }
    if unavailable > 0 {
        return StatusV2::new(
            "pending",
            duration_since(created_or_restarted, now),
            Vec::new(),
        );
    }
    if ready == replicas {
        return StatusV2::new(
            "running",
            duration_since(created_or_restarted, now),
            Vec::new(),
        );
    }
    StatusV2::unknown()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    const NOW: &str = "2026-11-26T04:00:00Z";

    // The generic functions at the concrete types the tests use (so `&[]` needs no annotation).
    fn job_status_short(job: &Job, events: &[Event], now: DateTime<Utc>) -> String {
        super::job_status_short(job, events, now)
    }
    fn cronjob_status_short(
        cj: &CronJob,
        jobs: &[Job],
        events: &[Event],
        now: DateTime<Utc>,
    ) -> String {
        super::cronjob_status_short(cj, jobs, events, now)
    }
    fn rc_status_short(rc: &ReplicationController, pods: &[Pod]) -> String {
        super::rc_status_short(rc, pods)
    }
    fn deployment_status_short(d: &Deployment, pods: &[Pod]) -> String {
        super::deployment_status_short(d, pods)
    }
    fn status_long(pods: &[Pod]) -> String {
        super::status_long(pods)
    }
    fn pod_status_v2(pods: &[Pod], now: DateTime<Utc>) -> StatusV2 {
        super::pod_status_v2(pods, now)
    }
    fn oneoff_status_v2(job: &Job, pods: &[Pod], events: &[Event], now: DateTime<Utc>) -> StatusV2 {
        super::oneoff_status_v2(job, pods, events, now)
    }
    fn scheduled_status_v2(
        cj: &CronJob,
        latest_job: Option<&Job>,
        pods: &[Pod],
        events: &[Event],
        now: DateTime<Utc>,
    ) -> StatusV2 {
        super::scheduled_status_v2(cj, latest_job, pods, events, now)
    }
    fn continuous_status_v2(
        replicas: (i32, i32, i32),
        quota_failure: Option<String>,
        pods: &[Pod],
        created_or_restarted: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StatusV2 {
        super::continuous_status_v2(replicas, quota_failure, pods, created_or_restarted, now)
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(NOW)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn job(status: Value) -> Job {
        serde_json::from_value(json!({
            "metadata": {"name": "myjob", "uid": "job-uid"},
            "status": status
        }))
        .unwrap()
    }

    fn event(reason: &str, message: &str, last: &str) -> Event {
        serde_json::from_value(json!({
            "metadata": {"name": "ev"},
            "involvedObject": {"kind": "Job", "uid": "job-uid"},
            "reason": reason,
            "message": message,
            "lastTimestamp": last
        }))
        .unwrap()
    }

    fn container(state: Value, restarts: i32) -> Value {
        json!({
            "name": "job", "image": "img", "imageID": "id", "ready": false,
            "restartCount": restarts, "state": state
        })
    }

    fn pod(phase: &str, conditions: Value, statuses: Option<Vec<Value>>) -> Pod {
        let mut status = json!({"phase": phase, "conditions": conditions});
        if let Some(statuses) = statuses {
            status["containerStatuses"] = Value::Array(statuses);
        }
        serde_json::from_value(json!({
            "metadata": {"name": "p", "labels": {"job-name": "myjob"}},
            "status": status
        }))
        .unwrap()
    }

    fn cond(kind: &str, status: &str, time: &str, message: Option<&str>) -> Value {
        let mut c = json!({"type": kind, "status": status, "lastTransitionTime": time});
        if let Some(m) = message {
            c["message"] = json!(m);
        }
        c
    }

    const QUOTA_MSG: &str = "pods \"myjob-abc\" is forbidden: exceeded quota: tool-x, requested: limits.memory=4Gi, used: limits.memory=8Gi, limited: limits.cpu=100m,limits.memory=12";

    // --- format_duration / quota_types ---

    #[test]
    fn format_duration_vectors() {
        let vectors = [
            (0, "0s"),
            (61, "1m1s"),
            (3600, "1h"),
            (3661, "1h1m1s"),
            (86401, "1d"),
            (90061, "1d1h1m"),
            (172800, "2d"),
            (59, "59s"),
            (-5, "0s"),
        ];
        for (secs, want) in vectors {
            assert_eq!(format_duration(secs), want, "{secs}");
        }
    }

    #[test]
    fn quota_types_extraction() {
        assert_eq!(
            quota_types("... limited: limits.cpu=100m,limits.memory=12"),
            vec!["cpu", "memory"]
        );
        assert_eq!(
            quota_types("x limited: a=1 limited: limits.cpu=2,requests.cpu=1"),
            vec!["cpu"]
        );
        assert_eq!(
            quota_types("exceeded quota: q, limited: pods=3,count/jobs.batch=2"),
            vec!["count/jobs.batch", "pods"]
        );
    }

    // --- OLD job status ---

    #[test]
    fn job_completed_and_not_running() {
        let j = job(json!({"conditions": [{"type": "Complete", "status": "True"}]}));
        assert_eq!(job_status_short(&j, &[], now()), "Completed");
        let j = job(json!({"failed": 1, "conditions": [{"type": "Complete", "status": "False"}]}));
        assert_eq!(job_status_short(&j, &[], now()), "Not running");
    }

    #[test]
    fn job_failed_and_running() {
        let j = job(json!({"failed": 2, "active": 1, "startTime": "2026-11-26T03:00:00Z"}));
        assert_eq!(job_status_short(&j, &[], now()), "Failed");
        let j = job(json!({"active": 1, "startTime": "2026-11-26T02:58:59Z"}));
        assert_eq!(job_status_short(&j, &[], now()), "Running for 1h1m1s");
    }

    #[test]
    fn job_unable_to_start_uses_newest_failed_create() {
        let j = job(json!({}));
        let events = vec![
            event("FailedCreate", "some other error", "2026-11-26T03:00:00Z"),
            event("FailedCreate", QUOTA_MSG, "2026-11-26T03:30:00Z"),
            event("SuccessfulCreate", "created pod", "2026-11-26T03:50:00Z"),
        ];
        assert_eq!(
            job_status_short(&j, &events, now()),
            "Unable to start, out of quota for cpu, memory"
        );
        assert_eq!(job_status_short(&j, &events[..1], now()), "Unable to start");
    }

    #[test]
    fn job_event_time_fallbacks() {
        let j = job(json!({}));
        let micro: Event = serde_json::from_value(json!({
            "metadata": {"name": "a"},
            "involvedObject": {"uid": "job-uid"},
            "reason": "FailedCreate", "message": "plain",
            "eventTime": "2026-11-26T03:59:00.123456Z"
        }))
        .unwrap();
        let created: Event = serde_json::from_value(json!({
            "metadata": {"name": "b", "creationTimestamp": "2026-11-26T03:00:00Z"},
            "involvedObject": {"uid": "job-uid"},
            "reason": "FailedCreate", "message": QUOTA_MSG
        }))
        .unwrap();
        assert_eq!(
            job_status_short(&j, &[created, micro], now()),
            "Unable to start"
        );
    }

    #[test]
    fn job_unknown() {
        assert_eq!(job_status_short(&job(json!({})), &[], now()), "Unknown");
        let j: Job = serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
        assert_eq!(job_status_short(&j, &[], now()), "Unknown");
    }

    // --- OLD cronjob status ---

    fn cronjob(status: Value) -> CronJob {
        serde_json::from_value(json!({
            "metadata": {"name": "cj", "uid": "cj-uid", "labels": {"app.kubernetes.io/version": "2"}},
            "spec": {
                "schedule": "0 4 * * *",
                "jobTemplate": {"spec": {"template": {"spec": {"containers": [
                    {"name": "job", "command": ["/bin/sh", "-c", "--", "./backup.sh"]}
                ]}}}}
            },
            "status": status
        }))
        .unwrap()
    }

    fn cj_job(name: &str, uid: &str, manual: bool, script: &str, status: Value) -> Job {
        let mut value = json!({
            "metadata": {
                "name": name, "uid": uid,
                "labels": {"app.kubernetes.io/version": "2"},
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "cj", "uid": "cj-uid"}]
            },
            "spec": {"template": {"spec": {"containers": [
                {"name": "job", "command": ["/bin/sh", "-c", "--", script]}
            ]}}},
            "status": status
        });
        if manual {
            value["metadata"]["annotations"] =
                json!({"cronjob.kubernetes.io/instantiate": "manual"});
        }
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn cronjob_not_run_yet() {
        assert_eq!(
            cronjob_status_short(&cronjob(json!({})), &[], &[], now()),
            "Waiting for scheduled time"
        );
    }

    #[test]
    fn cronjob_previous_run_no_running_job() {
        let cj = cronjob(json!({"lastScheduleTime": "2026-11-25T04:00:00Z"}));
        assert_eq!(
            cronjob_status_short(&cj, &[], &[], now()),
            "Last schedule time: 2026-11-25T04:00:00Z"
        );
    }

    #[test]
    fn cronjob_with_running_job() {
        let cj = cronjob(json!({
            "lastScheduleTime": "2026-11-26T04:00:00Z",
            "active": [{"kind": "Job", "name": "cj-1", "uid": "u1"}]
        }));
        let running = cj_job(
            "cj-1",
            "u1",
            false,
            "./backup.sh",
            json!({"active": 1, "startTime": "2026-11-26T03:59:00Z"}),
        );
        assert_eq!(
            cronjob_status_short(&cj, &[running], &[], now()),
            "Running for 1m"
        );
    }

    #[test]
    fn cronjob_active_job_quota_event() {
        let cj = cronjob(json!({"active": [{"name": "cj-1", "uid": "u1"}]}));
        let stuck = cj_job("cj-1", "u1", false, "./backup.sh", json!({}));
        let mut ev = event("FailedCreate", QUOTA_MSG, "2026-11-26T03:59:00Z");
        ev.involved_object.uid = Some("u1".to_string());
        let mut other = event("FailedCreate", "x", "2026-11-26T03:59:30Z");
        other.involved_object.uid = Some("someone-else".to_string());
        assert_eq!(
            cronjob_status_short(&cj, &[stuck], &[ev, other], now()),
            "Unable to start, out of quota for cpu, memory"
        );
    }

    #[test]
    fn cronjob_manual_restart() {
        let cj = cronjob(json!({"lastScheduleTime": "2026-11-25T04:00:00Z"}));
        let manual = cj_job(
            "cj-1764129000",
            "m1",
            true,
            "./backup.sh",
            json!({"active": 1, "startTime": "2026-11-26T03:00:00Z"}),
        );
        assert_eq!(
            cronjob_status_short(&cj, std::slice::from_ref(&manual), &[], now()),
            "Running for 1h"
        );
        // Different command: not a manual run of this CronJob.
        let other = cj_job(
            "cj-2",
            "m2",
            true,
            "./other.sh",
            json!({"active": 1, "startTime": "2026-11-26T03:00:00Z"}),
        );
        assert!(!is_manual_run(&cj, &other));
        // Not annotated.
        let auto = cj_job(
            "cj-3",
            "m3",
            false,
            "./backup.sh",
            json!({"active": 1, "startTime": "2026-11-26T03:00:00Z"}),
        );
        assert_eq!(
            cronjob_status_short(&cj, &[other, auto], &[], now()),
            "Last schedule time: 2026-11-25T04:00:00Z"
        );
    }

    #[test]
    fn cronjob_completed_manual_run_falls_back() {
        let cj = cronjob(json!({"lastScheduleTime": "2026-11-25T04:00:00Z"}));
        let done = cj_job(
            "cj-1",
            "m1",
            true,
            "./backup.sh",
            json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}),
        );
        assert_eq!(
            cronjob_status_short(&cj, &[done], &[], now()),
            "Last schedule time: 2026-11-25T04:00:00Z"
        );
    }

    // --- RC and Deployment ---

    fn crash_pod() -> Pod {
        pod(
            "Running",
            json!([]),
            Some(vec![container(
                json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}}),
                4,
            )]),
        )
    }

    fn error_pod() -> Pod {
        pod(
            "Running",
            json!([]),
            Some(vec![container(
                json!({"terminated": {"reason": "Error", "exitCode": 1}}),
                1,
            )]),
        )
    }

    fn ready_pod() -> Pod {
        pod(
            "Running",
            json!([cond("Ready", "True", "2026-11-26T03:00:00Z", None)]),
            Some(vec![container(
                json!({"running": {"startedAt": "2026-11-26T03:00:00Z"}}),
                0,
            )]),
        )
    }

    fn rc(status: Value) -> ReplicationController {
        serde_json::from_value(json!({"metadata": {"name": "c"}, "status": status})).unwrap()
    }

    #[test]
    fn rc_statuses() {
        assert_eq!(
            rc_status_short(&rc(json!({"replicas": 1, "readyReplicas": 1})), &[]),
            "Running"
        );
        assert_eq!(
            rc_status_short(&rc(json!({"replicas": 1})), &[ready_pod()]),
            "Running"
        );
        let quota = rc(json!({"replicas": 0, "conditions": [
            {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": QUOTA_MSG}
        ]}));
        assert_eq!(
            rc_status_short(&quota, &[]),
            "Unable to start, out of quota for cpu, memory"
        );
        assert_eq!(
            rc_status_short(&rc(json!({"replicas": 1})), &[crash_pod()]),
            "Specified command fails to run"
        );
        assert_eq!(
            rc_status_short(&rc(json!({"replicas": 1})), &[error_pod()]),
            "Specified command fails to run"
        );
        assert_eq!(
            rc_status_short(&rc(json!({"replicas": 1})), &[]),
            "Not running"
        );
        let no_status: ReplicationController =
            serde_json::from_value(json!({"metadata": {"name": "c"}})).unwrap();
        assert_eq!(rc_status_short(&no_status, &[]), "Not running");
    }

    fn deployment(conditions: Option<Value>) -> Deployment {
        let mut value = json!({"metadata": {"name": "d"}, "status": {}});
        if let Some(c) = conditions {
            value["status"]["conditions"] = c;
        }
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn deployment_statuses() {
        assert_eq!(deployment_status_short(&deployment(None), &[]), "Unknown");
        let available = deployment(Some(json!([
            {"type": "Progressing", "status": "True"},
            {"type": "Available", "status": "True"}
        ])));
        assert_eq!(deployment_status_short(&available, &[]), "Running");
        let down = deployment(Some(json!([{"type": "Available", "status": "False"}])));
        assert_eq!(deployment_status_short(&down, &[]), "Not running");
        assert_eq!(
            deployment_status_short(&down, &[crash_pod()]),
            "Specified command fails to run"
        );
        assert_eq!(
            deployment_status_short(&down, &[error_pod()]),
            "Specified command fails to run"
        );
        let quota = deployment(Some(json!([
            {"type": "Available", "status": "False"},
            {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": QUOTA_MSG}
        ])));
        assert_eq!(
            deployment_status_short(&quota, &[crash_pod()]),
            "Unable to start, out of quota for cpu, memory"
        );
        // Later condition overwrites an earlier one.
        let later = deployment(Some(json!([
            {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": QUOTA_MSG},
            {"type": "Available", "status": "True"}
        ])));
        assert_eq!(deployment_status_short(&later, &[]), "Running");
        let only_progressing = deployment(Some(json!([{"type": "Progressing", "status": "True"}])));
        assert_eq!(deployment_status_short(&only_progressing, &[]), "Unknown");
    }

    // --- status_long ---

    #[test]
    fn status_long_no_pods() {
        assert_eq!(status_long(&[]), "No pods were created for this job.");
    }

    #[test]
    fn status_long_running() {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "status": {"phase": "Running", "startTime": "2026-11-26T03:00:00Z",
                "containerStatuses": [container(json!({"running": {"startedAt": "2026-11-26T03:00:05Z"}}), 0)]}
        }))
        .unwrap();
        assert_eq!(
            status_long(&[p]),
            "Last run at 2026-11-26T03:00:00Z. Pod in 'Running' phase. State 'running'. Started at '2026-11-26T03:00:05Z'."
        );
    }

    #[test]
    fn status_long_terminated_with_restarts() {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "status": {"phase": "Failed", "startTime": "2026-11-26T03:00:00Z",
                "containerStatuses": [container(json!({"terminated": {
                    "reason": "Error", "exitCode": 2, "message": "boom",
                    "startedAt": "2026-11-26T03:00:01Z", "finishedAt": "2026-11-26T03:00:09Z"
                }}), 3)]}
        }))
        .unwrap();
        assert_eq!(
            status_long(&[p]),
            "Last run at 2026-11-26T03:00:00Z. Pod in 'Failed' phase. Pod has been restarted 3 times. State 'terminated'. Reason 'Error'. Started at '2026-11-26T03:00:01Z'. Finished at '2026-11-26T03:00:09Z'. Exit code '2'. Additional message:'boom'."
        );
    }

    #[test]
    fn status_long_waiting_and_not_started() {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "status": {"containerStatuses": [container(json!({"waiting": {}}), 0)]}
        }))
        .unwrap();
        assert_eq!(
            status_long(&[p]),
            "Run not attempted yet. Pod in 'unknown' phase. State 'waiting'. Reason 'unknown'."
        );
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"}, "status": {"phase": "Pending"}
        }))
        .unwrap();
        assert_eq!(
            status_long(&[p]),
            "Run not attempted yet. Pod in 'Pending' phase."
        );
    }

    // --- NEW pod table ---

    fn v2(short: &str, duration: Option<&str>, messages: &[&str]) -> StatusV2 {
        StatusV2 {
            short: short.to_string(),
            duration: duration.map(str::to_string),
            up_to_date: true,
            messages: messages.iter().map(|m| (*m).to_string()).collect(),
            previous_schedule: None,
            next_schedule: None,
        }
    }

    fn scheduling_pod() -> Pod {
        pod(
            "Pending",
            json!([cond(
                "PodScheduled",
                "False",
                "2026-11-26T03:59:00Z",
                Some("0/3 nodes are available")
            )]),
            None,
        )
    }

    fn initializing_pod() -> Pod {
        pod(
            "Pending",
            json!([cond("Initialized", "True", "2026-11-26T03:58:00Z", None)]),
            Some(vec![container(
                json!({"waiting": {"reason": "ContainerCreating", "message": "pulling image"}}),
                0,
            )]),
        )
    }

    fn failed_pod() -> Pod {
        pod(
            "Failed",
            json!([]),
            Some(vec![container(
                json!({"terminated": {"exitCode": 3, "finishedAt": "2026-11-26T03:00:00Z"}}),
                0,
            )]),
        )
    }

    fn succeeded_pod() -> Pod {
        pod(
            "Succeeded",
            json!([]),
            Some(vec![container(
                json!({"terminated": {"exitCode": 0, "finishedAt": "2026-11-26T02:00:00Z"}}),
                0,
            )]),
        )
    }

    #[test]
    fn pod_table_rows() {
        let n = now();
        assert_eq!(
            pod_status_v2(&[scheduling_pod()], n),
            v2(
                "pending",
                Some("1m"),
                &["scheduling", "0/3 nodes are available"]
            )
        );
        assert_eq!(
            pod_status_v2(&[initializing_pod()], n),
            v2("pending", Some("2m"), &["initializing", "pulling image"])
        );
        assert_eq!(
            pod_status_v2(&[ready_pod()], n),
            v2("running", Some("1h"), &[])
        );
        let restarted_terminated = pod(
            "Running",
            json!([cond("Ready", "False", "2026-11-26T03:59:50Z", None)]),
            Some(vec![container(json!({"terminated": {"exitCode": 137}}), 2)]),
        );
        assert_eq!(
            pod_status_v2(&[restarted_terminated], n),
            v2("pending", Some("10s"), &["restarted (2)", "exitcode 137"])
        );
        let mut waiting = container(json!({"waiting": {"reason": "CrashLoopBackOff"}}), 5);
        waiting["lastState"] = json!({"terminated": {"exitCode": 1}});
        let restarted_waiting = pod(
            "Running",
            json!([cond("Ready", "False", "2026-11-26T03:00:00Z", None)]),
            Some(vec![waiting]),
        );
        assert_eq!(
            pod_status_v2(&[restarted_waiting], n),
            v2("pending", Some("1h"), &["restarted (5)", "exitcode 1"])
        );
        assert_eq!(
            pod_status_v2(&[succeeded_pod()], n),
            v2("succeeded", Some("2h"), &[])
        );
        assert_eq!(
            pod_status_v2(&[failed_pod()], n),
            v2("failed", Some("1h"), &["exitcode 3"])
        );
        let odd = pod(
            "Unknown",
            json!([cond("Ready", "False", "2026-11-25T04:00:00Z", None)]),
            None,
        );
        assert_eq!(pod_status_v2(&[odd], n), v2("unknown", Some("1d"), &[]));
        assert_eq!(pod_status_v2(&[], n), v2("unknown", None, &[]));
    }

    #[test]
    fn pod_bucket_priority() {
        let n = now();
        assert_eq!(
            pod_status_v2(&[succeeded_pod(), ready_pod(), failed_pod()], n).short,
            "failed"
        );
        assert_eq!(
            pod_status_v2(&[ready_pod(), initializing_pod(), scheduling_pod()], n).messages[0],
            "scheduling"
        );
        assert_eq!(
            pod_status_v2(&[ready_pod(), initializing_pod()], n).messages[0],
            "initializing"
        );
        assert_eq!(
            pod_status_v2(&[succeeded_pod(), crash_pod(), ready_pod()], n).short,
            "running"
        );
        assert_eq!(
            pod_status_v2(&[succeeded_pod(), crash_pod()], n).messages[0],
            "restarted (4)"
        );
    }

    #[test]
    fn status_v2_serialization() {
        let status = v2("running", Some("1h"), &[]);
        assert_eq!(
            serde_json::to_value(&status).unwrap(),
            json!({"short": "running", "duration": "1h", "up_to_date": true, "messages": []})
        );
        let mut status = v2("pending", None, &["x"]);
        status.previous_schedule = Some("2026-11-26T04:00:00Z".to_string());
        status.next_schedule = Some("2026-11-27T04:00:00Z".to_string());
        assert_eq!(
            serde_json::to_value(&status).unwrap(),
            json!({"short": "pending", "duration": null, "up_to_date": true, "messages": ["x"],
                   "previous_schedule": "2026-11-26T04:00:00Z", "next_schedule": "2026-11-27T04:00:00Z"})
        );
    }

    // --- NEW one-off ---

    #[test]
    fn oneoff_pods_win() {
        let j = job(json!({"active": 1, "startTime": "2026-11-26T03:00:00Z"}));
        assert_eq!(
            oneoff_status_v2(&j, &[ready_pod()], &[], now()),
            v2("running", Some("1h"), &[])
        );
    }

    #[test]
    fn oneoff_conditions() {
        let done = job(json!({"conditions": [
            {"type": "Complete", "status": "True", "lastTransitionTime": "2026-11-26T03:30:00Z"}
        ]}));
        assert_eq!(
            oneoff_status_v2(&done, &[], &[], now()),
            v2("succeeded", Some("30m"), &[])
        );
        let failed = job(json!({"failed": 1, "conditions": [
            {"type": "Failed", "status": "True", "lastTransitionTime": "2026-11-26T03:00:00Z",
             "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}
        ]}));
        assert_eq!(
            oneoff_status_v2(&failed, &[], &[], now()),
            v2(
                "failed",
                Some("1h"),
                &["Job has reached the specified backoff limit"]
            )
        );
    }

    #[test]
    fn oneoff_pending_and_unable_to_start() {
        let pending = job(json!({"active": 1, "ready": 0, "startTime": "2026-11-26T03:59:00Z"}));
        assert_eq!(
            oneoff_status_v2(&pending, &[], &[], now()),
            v2("pending", Some("1m"), &[])
        );
        let stuck = job(json!({}));
        let events = [event("FailedCreate", QUOTA_MSG, "2026-11-26T03:59:30Z")];
        assert_eq!(
            oneoff_status_v2(&stuck, &[], &events, now()),
            v2(
                "failed",
                Some("30s"),
                &["Unable to start, out of quota for cpu, memory"]
            )
        );
        assert_eq!(
            oneoff_status_v2(&stuck, &[], &[], now()),
            v2("unknown", None, &[])
        );
    }

    // --- NEW scheduled ---

    #[test]
    fn scheduled_without_job() {
        let cj: CronJob = serde_json::from_value(json!({
            "metadata": {"name": "cj", "creationTimestamp": "2026-11-20T00:00:00Z"},
            "spec": {"schedule": "0 4 * * *", "jobTemplate": {}},
            "status": {"lastScheduleTime": "2026-11-25T04:00:00Z",
                       "lastSuccessfulTime": "2026-11-25T04:01:00Z"}
        }))
        .unwrap();
        let mut want = v2("pending", Some("23h59m"), &[]);
        want.previous_schedule = Some("2026-11-25T04:00:00Z".to_string());
        want.next_schedule = Some("2026-11-26T04:00:00Z".to_string());
        assert_eq!(scheduled_status_v2(&cj, None, &[], &[], now()), want);
    }

    #[test]
    fn scheduled_never_run() {
        let cj: CronJob = serde_json::from_value(json!({
            "metadata": {"name": "cj", "creationTimestamp": "2026-11-26T03:00:00Z"},
            "spec": {"schedule": "*/15 * * * *", "jobTemplate": {}}
        }))
        .unwrap();
        let mut want = v2("pending", Some("1h"), &[]);
        want.next_schedule = Some("2026-11-26T04:15:00Z".to_string());
        assert_eq!(scheduled_status_v2(&cj, None, &[], &[], now()), want);
    }

    #[test]
    fn scheduled_with_latest_job_filters_pods() {
        let cj = cronjob(json!({"lastScheduleTime": "2026-11-26T04:00:00Z"}));
        let latest = cj_job(
            "cj-1",
            "u1",
            false,
            "./backup.sh",
            json!({"active": 1, "startTime": "2026-11-26T04:00:00Z"}),
        );
        let mut own = ready_pod();
        own.metadata.labels = Some(
            [(
                "batch.kubernetes.io/job-name".to_string(),
                "cj-1".to_string(),
            )]
            .into(),
        );
        let foreign = failed_pod(); // labelled job-name=myjob
        let got = scheduled_status_v2(&cj, Some(&latest), &[foreign.clone(), own], &[], now());
        let mut want = v2("running", Some("1h"), &[]);
        want.previous_schedule = Some("2026-11-26T04:00:00Z".to_string());
        want.next_schedule = Some("2026-11-27T04:00:00Z".to_string());
        assert_eq!(got, want);
        // Only foreign pods: falls back to the Job rules (active, not ready -> pending).
        let got = scheduled_status_v2(&cj, Some(&latest), &[foreign], &[], now());
        assert_eq!(got.short, "pending");
        assert_eq!(got.duration.as_deref(), Some("0s"));
    }

    // --- NEW continuous ---

    #[test]
    fn continuous_rules() {
        let n = now();
        let created = Some(at("2026-11-26T03:00:00Z"));
        let recent = Some(at("2026-11-26T03:59:00Z"));
        // 1. running pod wins, even with a quota failure.
        assert_eq!(
            continuous_status_v2(
                (1, 1, 0),
                Some(QUOTA_MSG.to_string()),
                &[ready_pod()],
                created,
                n
            ),
            v2("running", Some("1h"), &[])
        );
        // 2. quota failure.
        assert_eq!(
            continuous_status_v2((1, 0, 1), Some(QUOTA_MSG.to_string()), &[], created, n),
            v2(
                "failed",
                None,
                &["Unable to start, out of quota for cpu, memory"]
            )
        );
        // 3. unavailable for more than 600 s.
        assert_eq!(
            continuous_status_v2((1, 0, 1), None, &[crash_pod()], created, n),
            v2("failed", None, &["restarted (4)"])
        );
        // 4. recent restart: pod status.
        assert_eq!(
            continuous_status_v2((1, 0, 1), None, &[crash_pod()], recent, n),
            v2("pending", None, &["restarted (4)"])
        );
        // 5. no pods: unavailable gives pending, all ready gives running.
        assert_eq!(
            continuous_status_v2((1, 0, 1), None, &[], recent, n),
            v2("pending", Some("1m"), &[])
        );
        assert_eq!(
            continuous_status_v2((2, 2, 0), None, &[], created, n),
            v2("running", Some("1h"), &[])
        );
        // 6. unknown.
        assert_eq!(
            continuous_status_v2((2, 1, 0), None, &[], None, n),
            v2("unknown", None, &[])
        );
    }

    #[test]
    fn time_rendering() {
        let t: Time = serde_json::from_value(json!("2026-11-26T04:00:00Z")).unwrap();
        assert_eq!(render_time(&t), "2026-11-26T04:00:00Z");
        assert_eq!(to_utc(&t), Some(now()));
    }
}
