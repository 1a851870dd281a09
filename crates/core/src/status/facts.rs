//! Pod and event facts, read by both the OLD strings and the NEW object: times and
//! durations, quota types, the newest `FailedCreate` event, job counts, container states,
//! pod phase and readiness, which pods belong to a Job.
//!
//! Pure helpers only; nothing here knows how a status is worded.

use chrono::{DateTime, SecondsFormat, Utc};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStatus, Event, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::borrow::Borrow;

pub(super) fn to_utc(time: &Time) -> Option<DateTime<Utc>> {
    let nanos = u32::try_from(time.0.subsec_nanosecond()).unwrap_or(0);
    DateTime::from_timestamp(time.0.as_second(), nanos)
}

/// RFC 3339 in UTC with a `Z` suffix and whole seconds, e.g. `2026-11-26T04:00:00Z`.
pub(super) fn render_time(time: &Time) -> String {
    match to_utc(time) {
        Some(utc) => utc.to_rfc3339_opts(SecondsFormat::Secs, true),
        None => time.0.to_string(),
    }
}

pub(super) fn duration_since(start: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Option<String> {
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
pub(super) fn unable_to_start(message: Option<&str>, quota_marker: &str) -> String {
    match message {
        Some(message) if message.contains(quota_marker) => format!(
            "Unable to start, out of quota for {}",
            quota_types(message).join(", ")
        ),
        _ => "Unable to start".to_string(),
    }
}

pub(super) fn event_time(event: &Event) -> Option<DateTime<Utc>> {
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
pub(super) fn newest_failed_create(
    events: &[&Event],
) -> Option<(Option<DateTime<Utc>>, Option<String>)> {
    let mut sorted: Vec<&Event> = events.to_vec();
    sorted.sort_by_key(|event| std::cmp::Reverse(event_time(event)));
    sorted
        .into_iter()
        .find(|event| event.reason.as_deref() == Some("FailedCreate"))
        .map(|event| (event_time(event), event.message.clone()))
}

/// Events about `job`: matching `involvedObject.uid` (lenient when either uid is missing).
pub(super) fn events_for<'a, E: Borrow<Event>>(job: &Job, events: &'a [E]) -> Vec<&'a Event> {
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

pub(super) fn job_counts(job: &Job) -> (i32, i32, i32) {
    job.status.as_ref().map_or((0, 0, 0), |s| {
        (
            s.active.unwrap_or(0),
            s.ready.unwrap_or(0),
            s.failed.unwrap_or(0),
        )
    })
}

pub(super) fn container_statuses(pod: &Pod) -> &[ContainerStatus] {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or(&[])
}

pub(super) fn pod_phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.phase.as_deref())
}

pub(super) fn pod_is_running_and_ready(pod: &Pod) -> bool {
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
pub(super) fn pods_fail_to_run<P: Borrow<Pod>>(pods: &[P]) -> bool {
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

pub(super) fn last_condition(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::PodCondition> {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|conds| conds.last())
}

pub(super) fn pod_belongs_to(pod: &Pod, job: &Job) -> bool {
    let Some(name) = job.metadata.name.as_ref() else {
        return false;
    };
    pod.metadata.labels.as_ref().is_some_and(|labels| {
        ["job-name", "batch.kubernetes.io/job-name"]
            .iter()
            .any(|key| labels.get(*key) == Some(name))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::test_fixtures::now;
    use serde_json::json;

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

    #[test]
    fn time_rendering() {
        let t: Time = serde_json::from_value(json!("2026-11-26T04:00:00Z")).unwrap();
        assert_eq!(render_time(&t), "2026-11-26T04:00:00Z");
        assert_eq!(to_utc(&t), Some(now()));
    }
}
