//! Fixtures shared by the unit tests of `facts`, `legacy` and `v2`: a fixed `now`, Jobs,
//! CronJobs, events, pods and the quota error message.

use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Event, Pod};
use serde_json::{json, Value};

const NOW: &str = "2026-11-26T04:00:00Z";

pub(super) fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(NOW)
        .unwrap()
        .with_timezone(&Utc)
}

pub(super) fn job(status: Value) -> Job {
    serde_json::from_value(json!({
        "metadata": {"name": "myjob", "uid": "job-uid"},
        "status": status
    }))
    .unwrap()
}

pub(super) fn event(reason: &str, message: &str, last: &str) -> Event {
    serde_json::from_value(json!({
        "metadata": {"name": "ev"},
        "involvedObject": {"kind": "Job", "uid": "job-uid"},
        "reason": reason,
        "message": message,
        "lastTimestamp": last
    }))
    .unwrap()
}

pub(super) fn container(state: Value, restarts: i32) -> Value {
    json!({
        "name": "job", "image": "img", "imageID": "id", "ready": false,
        "restartCount": restarts, "state": state
    })
}

pub(super) fn pod(phase: &str, conditions: Value, statuses: Option<Vec<Value>>) -> Pod {
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

pub(super) fn cond(kind: &str, status: &str, time: &str, message: Option<&str>) -> Value {
    let mut c = json!({"type": kind, "status": status, "lastTransitionTime": time});
    if let Some(m) = message {
        c["message"] = json!(m);
    }
    c
}

pub(super) const QUOTA_MSG: &str = "pods \"myjob-abc\" is forbidden: exceeded quota: tool-x, requested: limits.memory=4Gi, used: limits.memory=8Gi, limited: limits.cpu=100m,limits.memory=12";

pub(super) fn cronjob(status: Value) -> CronJob {
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

pub(super) fn cj_job(name: &str, uid: &str, manual: bool, script: &str, status: Value) -> Job {
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
        value["metadata"]["annotations"] = json!({"cronjob.kubernetes.io/instantiate": "manual"});
    }
    serde_json::from_value(value).unwrap()
}

pub(super) fn crash_pod() -> Pod {
    pod(
        "Running",
        json!([]),
        Some(vec![container(
            json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}}),
            4,
        )]),
    )
}

pub(super) fn ready_pod() -> Pod {
    pod(
        "Running",
        json!([cond("Ready", "True", "2026-11-26T03:00:00Z", None)]),
        Some(vec![container(
            json!({"running": {"startedAt": "2026-11-26T03:00:00Z"}}),
            0,
        )]),
    )
}
