//! Unit tests of the OLD status strings (`legacy.rs`).

use super::*;
use crate::status::test_fixtures::{
    cj_job, container, crash_pod, cronjob, event, job, now, pod, ready_pod, QUOTA_MSG,
};
use serde_json::{json, Value};

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
