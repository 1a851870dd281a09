//! Unit tests of the NEW status object (`v2.rs`).

use super::*;
use crate::status::test_fixtures::{
    cj_job, cond, container, crash_pod, cronjob, event, job, now, pod, ready_pod, QUOTA_MSG,
};
use serde_json::json;

// The generic functions at the concrete types the tests use (so `&[]` needs no annotation).
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

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
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
