//! Jobs that really run: the local cluster's node (kubelet, containerd, runc) runs the pods the
//! gateway's objects make, with the bookworm image from the node's registry and the tool's home
//! mounted as production does. Nothing here writes a pod's status by hand.

mod common;

use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde_json::{json, Value};

struct Tool {
    name: &'static str,
    pki: Pki,
    gw: Gateway,
    client: reqwest::Client,
}

impl Tool {
    /// A provisioned tool with a gateway, its jobs of earlier runs flushed.
    async fn new(name: &'static str) -> Self {
        let cluster = cluster();
        let pki = Pki::new(&cluster);
        provision(&pki, name);
        let gw = start_gateway_retrying(&pki, &[]);
        let (c, k) = pki.tool_cert(name);
        let client = https(&cluster.ca, Some((&c, &k)));
        let t = Self {
            name,
            pki,
            gw,
            client,
        };
        let (status, body) = call(t.client.delete(t.v1("jobs/"))).await;
        assert_eq!(status, 200, "flush: {body}");
        // and the pods of those jobs are gone, so that no status below is an old pod's
        until_no_pods(&t.pki.cluster, name).await;
        t
    }

    fn v1(&self, path: &str) -> String {
        self.gw
            .direct_url(&format!("/jobs/v1/tool/{}/{path}", self.name))
    }

    fn legacy(&self, path: &str) -> String {
        self.gw.direct_url(&format!("/jobs/api/v1/{path}"))
    }

    async fn run(&self, job: Value) {
        let (status, body) = call(self.client.post(self.v1("jobs/")).json(&job)).await;
        assert_eq!(status, 201, "{job} → {body}");
    }

    /// Polls 16.x `show` until `done` holds for the job, for at most `secs`; returns it.
    async fn until(&self, name: &str, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let (status, shown) = call(self.client.get(self.v1(&format!("jobs/{name}")))).await;
            if status == 200 && done(&shown["job"]) {
                return shown["job"].clone();
            }
            assert!(
                Instant::now() < deadline,
                "job {name} did not get there within {secs} s: {status} {shown}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// The release-14 `show` of the job.
    async fn legacy_show(&self, name: &str) -> Value {
        let (status, shown) = call(self.client.get(self.legacy(&format!("jobs/{name}")))).await;
        assert_eq!(status, 200, "{shown}");
        shown
    }

    fn home(&self) -> std::path::PathBuf {
        self.pki.home_root.join(self.name)
    }

    /// The names of the job's pods, as the cluster admin sees them.
    async fn pods(&self, job: &str) -> Vec<Pod> {
        let pods = Api::<Pod>::namespaced(admin(&self.pki.cluster), &format!("tool-{}", self.name));
        pods.list(&ListParams::default().labels(&format!("app.kubernetes.io/name={job}")))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .items
    }
}

fn short(job: &Value) -> &str {
    job["status"]["short"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_one_off_job_runs_to_completed_with_its_output_in_the_file_log() {
    let t = Tool::new("run-alice").await;
    t.run(
        json!({"name": "hello", "imagename": "bookworm", "filelog": true,
        "cmd": "echo hello from $(id -un) in $PWD; python3 -c 'print(6*7)'; echo to-stderr >&2"}),
    )
    .await;
    let done = t.until("hello", 90, |j| short(j) == "succeeded").await;
    assert_eq!(done["status"]["messages"], json!([]), "{done}");
    let old = t.legacy_show("hello").await;
    assert_eq!(old["status_short"], "Completed", "{old}");
    let long = old["status_long"].as_str().unwrap_or_default();
    assert!(
        long.contains("Pod in 'Succeeded' phase") && long.contains("Exit code '0'"),
        "{long}"
    );
    // the container wrote into the tool's home, which the gateway reads back
    let out = std::fs::read_to_string(t.home().join("hello.out")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        out,
        format!("hello from root in {}\n42\n", t.home().display()),
        "the job's stdout"
    );
    let err = std::fs::read_to_string(t.home().join("hello.err")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(err, "to-stderr\n");
    let (status, logs) = call(
        t.client
            .get(t.gw.direct_url("/logs/v1/tool/run-alice/job/hello/logs?direction=newest_first")),
    )
    .await;
    assert_eq!(status, 200, "{logs}");
    let messages: Vec<&str> = logs["data"]["logs"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["message"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        messages.contains(&"42") && messages.contains(&"to-stderr"),
        "{logs}"
    );

    // once it has completed, the 16.x server runs it again under the same name (spec §1.3);
    // release 14's server refused any name in use
    let (status, body) = call(
        t.client
            .post(t.legacy("jobs/"))
            .json(&json!({"name": "hello", "imagename": "bookworm", "cmd": "true"})),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    let uid_of = |v: &Value| v["metadata"]["uid"].as_str().map(str::to_string);
    let first_uid = {
        let jobs = Api::<k8s_openapi::api::batch::v1::Job>::namespaced(
            admin(&t.pki.cluster),
            "tool-run-alice",
        );
        let job = jobs.get("hello").await.unwrap_or_else(|e| panic!("{e}"));
        uid_of(&serde_json::to_value(job).unwrap_or_default())
    };
    t.run(json!({"name": "hello", "imagename": "bookworm", "filelog": true, "cmd": "echo again"}))
        .await;
    let again = t.until("hello", 90, |j| short(j) == "succeeded").await;
    assert_eq!(again["cmd"], "echo again", "{again}");
    let jobs = Api::<k8s_openapi::api::batch::v1::Job>::namespaced(
        admin(&t.pki.cluster),
        "tool-run-alice",
    );
    let job = jobs.get("hello").await.unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(
        uid_of(&serde_json::to_value(job).unwrap_or_default()),
        first_uid,
        "a new Job"
    );
    // while a run is in progress, the name is taken
    t.run(json!({"name": "slow", "imagename": "bookworm", "cmd": "sleep 60"}))
        .await;
    let (status, body) = call(
        t.client
            .post(t.v1("jobs/"))
            .json(&json!({"name": "slow", "imagename": "bookworm", "cmd": "true"})),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body["error"],
        json!(["A job with the name slow already exists"])
    );
}

#[tokio::test]
async fn a_failing_command_is_failed_with_its_exit_code() {
    let t = Tool::new("fail-alice").await;
    t.run(json!({"name": "boom", "imagename": "bookworm", "cmd": "echo about to fail; exit 3"}))
        .await;
    let failed = t.until("boom", 90, |j| short(j) == "failed").await;
    let messages = failed["status"]["messages"].to_string();
    assert!(messages.contains("exitcode 3"), "{failed}");
    let old = t.legacy_show("boom").await;
    assert_eq!(old["status_short"], "Failed", "{old}");
    let long = old["status_long"].as_str().unwrap_or_default();
    assert!(
        long.contains("Pod in 'Failed' phase") && long.contains("Exit code '3'"),
        "{long}"
    );
}

#[tokio::test]
async fn a_scheduled_job_fires_and_its_run_shows() {
    let t = Tool::new("cron-alice").await;
    t.run(
        json!({"name": "tick", "imagename": "bookworm", "schedule": "* * * * *",
        "filelog": true, "cmd": "date +%s"}),
    )
    .await;
    // the CronJob controller makes a Job at the next minute; its pod runs and writes the log
    let old = {
        let deadline = Instant::now() + Duration::from_secs(150);
        loop {
            let old = t.legacy_show("tick").await;
            let long = old["status_long"].as_str().unwrap_or_default().to_string();
            if long.contains("Pod in 'Succeeded' phase") {
                break old;
            }
            assert!(Instant::now() < deadline, "the schedule never ran: {old}");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    };
    let short_text = old["status_short"].as_str().unwrap_or_default();
    assert!(short_text.starts_with("Last schedule time: "), "{old}");
    let out = std::fs::read_to_string(t.home().join("tick.out")).unwrap_or_else(|e| panic!("{e}"));
    let when: i64 = out
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("the scheduled run wrote no time: {out:?}"));
    assert!((chrono::Utc::now().timestamp() - when).abs() < 180, "{out}");
    let shown = t.until("tick", 10, |_| true).await;
    assert_eq!(shown["job_type"], "scheduled", "{shown}");
    assert!(
        ["succeeded", "pending", "running"].contains(&short(&shown)),
        "{shown}"
    );
}

#[tokio::test]
async fn a_continuous_job_keeps_running_and_restart_gives_it_a_new_pod() {
    let t = Tool::new("cont-alice").await;
    t.run(
        json!({"name": "svc", "imagename": "bookworm", "continuous": true,
        "cmd": "python3 -m http.server 8000"}),
    )
    .await;
    let running = t.until("svc", 90, |j| short(j) == "running").await;
    assert_eq!(running["job_type"], "continuous", "{running}");
    let old = t.legacy_show("svc").await;
    assert_eq!(old["status_short"], "Running", "{old}");
    // pods of an earlier run of this test may still be terminating: only live ones count
    let live = |pods: Vec<Pod>| -> Vec<(String, bool)> {
        pods.into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .map(|p| {
                let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
                (p.metadata.name.unwrap_or_default(), running)
            })
            .collect()
    };
    let before = live(t.pods("svc").await);
    assert_eq!(before.len(), 1, "{before:?}");
    let (status, body) = call(t.client.post(t.v1("jobs/svc/restart"))).await;
    assert_eq!(status, 200, "{body}");
    // a new pod runs; the old one is going or gone
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let now = live(t.pods("svc").await);
        let new_running = now.iter().any(|(n, running)| *running && *n != before[0].0);
        if new_running && !now.iter().any(|(n, _)| *n == before[0].0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no new pod after restart: {now:?} (before: {before:?})"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let after = t.until("svc", 60, |j| short(j) == "running").await;
    assert_eq!(after["status"]["messages"], json!([]), "{after}");
}

#[tokio::test]
async fn a_continuous_job_whose_command_exits_is_reported_as_failing_to_start() {
    let t = Tool::new("crash-alice").await;
    t.run(
        json!({"name": "crash", "imagename": "bookworm", "continuous": true,
        "cmd": "echo starting; exit 1"}),
    )
    .await;
    // the kubelet restarts it with back-off: CrashLoopBackOff
    let deadline = Instant::now() + Duration::from_secs(120);
    let old = loop {
        let old = t.legacy_show("crash").await;
        // (pods of an earlier run of this test may still be going away meanwhile)
        let long = old["status_long"].as_str().unwrap_or_default();
        if old["status_short"] == "Fails to start" && long.contains("Pod has been restarted") {
            break old;
        }
        assert!(Instant::now() < deadline, "never 'Fails to start': {old}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let long = old["status_long"].as_str().unwrap_or_default();
    assert!(long.contains("Pod has been restarted"), "{long}");
    // the 16.x object: within its first 10 minutes a failing continuous job is pending, with
    // its restarts (and the last exit code or the back-off) as the messages; never running
    let shown = t.until("crash", 30, |_| true).await;
    assert_eq!(short(&shown), "pending", "{shown}");
    let first = shown["status"]["messages"][0].as_str().unwrap_or_default();
    assert!(first.starts_with("restarted ("), "{shown}");
    assert_eq!(
        shown["status_short"], "Specified command fails to run",
        "{shown}"
    );
    let pods = t.pods("crash").await;
    let restarts = pods
        .iter()
        .filter_map(|p| {
            p.status
                .as_ref()?
                .container_statuses
                .as_ref()?
                .first()
                .map(|c| c.restart_count)
        })
        .max()
        .unwrap_or(0);
    assert!(restarts >= 1, "the kubelet restarted the container");
}

#[tokio::test]
async fn a_job_over_its_memory_quota_reports_the_quota_message_of_the_controllers() {
    let t = Tool::new("quota-alice").await;
    let quota = json!({"apiVersion": "v1", "kind": "ResourceQuota",
        "metadata": {"name": "tool-quota", "namespace": "tool-quota-alice"},
        "spec": {"hard": {"limits.memory": "1Gi", "requests.memory": "1Gi"}}});
    let rq: k8s_openapi::api::core::v1::ResourceQuota =
        serde_json::from_value(quota).unwrap_or_else(|e| panic!("{e}"));
    let quotas = Api::<k8s_openapi::api::core::v1::ResourceQuota>::namespaced(
        admin(&t.pki.cluster),
        "tool-quota-alice",
    );
    let _ = quotas.delete("tool-quota", &Default::default()).await;
    quotas
        .create(&Default::default(), &rq)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // the quota controller computes the quota's status before pods are checked against it
    tokio::time::sleep(Duration::from_secs(2)).await;
    // within the LimitRange (max 4Gi), so the gateway creates the Job; its pod is refused by
    // the apiserver's quota admission, which the Job controller records as an event
    t.run(json!({"name": "big", "imagename": "bookworm", "memory": "2Gi", "cmd": "true"}))
        .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let old = loop {
        let old = t.legacy_show("big").await;
        let s = old["status_short"].as_str().unwrap_or_default();
        if s.starts_with("Unable to start, out of quota for ") {
            break old;
        }
        assert!(Instant::now() < deadline, "no quota refusal shown: {old}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        old["status_short"]
            .as_str()
            .unwrap_or_default()
            .contains("memory"),
        "the refused resource is named: {old}"
    );
    let shown = t.until("big", 5, |_| true).await;
    assert_eq!(short(&shown), "failed", "{shown}");
    assert_eq!(
        shown["status"]["messages"],
        json!(["Unable to start, out of quota for memory"]),
        "{shown}"
    );
    assert!(t.pods("big").await.is_empty(), "no pod was admitted");
}

#[tokio::test]
async fn a_pod_has_no_route_out_and_no_ipv6() {
    let t = Tool::new("net-alice").await;
    t.run(json!({"name": "net", "imagename": "bookworm", "filelog": true,
        "cmd": "cat /proc/net/route; echo ---; cat /proc/net/if_inet6; echo ---; python3 -c \"import socket; s=socket.socket(); s.settimeout(3); print(s.connect_ex(('198.51.100.7', 80)))\""}))
    .await;
    t.until("net", 90, |j| short(j) == "succeeded").await;
    let out = std::fs::read_to_string(t.home().join("net.out")).unwrap_or_else(|e| panic!("{e}"));
    let parts: Vec<&str> = out.split("---\n").collect();
    assert_eq!(parts.len(), 3, "{out}");
    // the routing table: the pods' own subnet only, no default route (destination 0)
    let routes: Vec<Vec<&str>> = parts[0]
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(!routes.is_empty(), "{out}");
    assert!(
        routes.iter().all(|r| r.get(1) != Some(&"00000000")),
        "a default route in the pod: {out}"
    );
    // IPv6 is off in the pod: no address at all, not even link-local
    assert_eq!(parts[1].trim(), "", "IPv6 addresses in the pod: {out}");
    // a connection to an address outside fails at once: the network is unreachable (101)
    assert_eq!(parts[2].trim(), "101", "{out}");
}
