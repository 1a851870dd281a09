//! The OLD status strings (spec §4.1, §4.2), as the release 13/14 clients read them:
//! `status_short` of a one-off Job, a CronJob, a ReplicationController and a Deployment,
//! and `status_long` of the first pod.

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Event, Pod, ReplicationController};
use std::borrow::Borrow;

use super::facts::{
    container_statuses, events_for, format_duration, job_counts, newest_failed_create,
    pod_is_running_and_ready, pod_phase, pods_fail_to_run, render_time, to_utc, unable_to_start,
};
use crate::command;

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

#[cfg(test)]
#[path = "legacy_tests.rs"]
mod tests;
