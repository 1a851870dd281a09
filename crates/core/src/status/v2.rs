//! The NEW structured status object (spec §4.3): the pod buckets, and the status of a
//! one-off, a scheduled and a continuous job.

use chrono::{DateTime, SecondsFormat, Utc};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Event, Pod};
use serde::{Deserialize, Serialize};
use std::borrow::Borrow;

use super::facts::{
    container_statuses, duration_since, events_for, job_counts, last_condition,
    newest_failed_create, pod_belongs_to, pod_phase, quota_types, render_time, to_utc,
    unable_to_start,
};
use crate::schedule;

/// Seconds after a (re)start before unavailable replicas of a continuous job count as failed.
const CONTINUOUS_FAILURE_GRACE_SECS: i64 = 600;

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
#[path = "v2_tests.rs"]
mod tests;
