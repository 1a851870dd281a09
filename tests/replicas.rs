//! Several gateway replicas serving one tool at once: the per-tool job quota and job names
//! hold across processes (Kubernetes decides, not an in-process lock).

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use kube::api::{Api, ListParams};
use serde_json::json;

const QUOTA: usize = 5;

fn replica_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("JOBS_GATEWAY_MAX_RUNNING_JOBS", "5"),
        ("JOBS_GATEWAY_MAX_SCHEDULED_JOBS", "2"),
        ("JOBS_GATEWAY_WRITE_BURST", "200"),
        ("JOBS_GATEWAY_WRITE_RATE_PER_SEC", "100"),
        ("JOBS_GATEWAY_RATE_BURST", "400"),
        ("JOBS_GATEWAY_RATE_PER_SEC", "200"),
    ]
}

/// The sum of one counter over its label sets in a gateway's /metrics.
/// One tool served by two gateway processes (replicas) over the same homes, and its client.
/// Fields drop in order: the gateways stop before the homes (in `pki`) go.
struct TwoReplicas {
    a: Gateway,
    b: Gateway,
    client: reqwest::Client,
    #[allow(dead_code)]
    pki: Pki,
}

impl TwoReplicas {
    /// `slot`: `JOBS_GATEWAY_CREATION_SLOT`, when given.
    fn new(tool: &str, slot: Option<&'static str>) -> Self {
        let cluster = cluster();
        let pki = Pki::new(&cluster);
        provision(&pki, tool);
        let mut env = replica_env();
        if let Some(slot) = slot {
            env.push(("JOBS_GATEWAY_CREATION_SLOT", slot));
        }
        let a = start_gateway_retrying(&pki, &env);
        let b = start_gateway_retrying(&pki, &env);
        let (c, k) = pki.tool_cert(tool);
        let client = https(&cluster.ca, Some((&c, &k)));
        Self { a, b, client, pki }
    }

    /// Flushes the tool's jobs, then warms both replicas (the tool's credentials loaded, a
    /// connection to the apiserver open), so that their creates really overlap.
    async fn flush_and_warm(&self) {
        let (status, body) = call(self.client.delete(self.a.direct_url("/api/v1/flush/"))).await;
        assert_eq!(status, 200, "{body}");
        for gw in [&self.a, &self.b] {
            let (status, body) = call(self.client.get(gw.direct_url("/api/v1/list/"))).await;
            assert_eq!(status, 200, "{body}");
        }
    }
}

async fn counter(gw: &Gateway, name: &str) -> f64 {
    metrics_text(gw)
        .await
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .fold(0.0, |a, b| a + b)
}

/// Waits until the namespace's pods are exactly those of `jobs` (one each), then checks that
/// it stays so for a moment: no pod of an undone job is left behind.
async fn pods_settle_to(pods: &Api<Pod>, jobs: &Api<Job>, expected: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job_uids: BTreeSet<String> = jobs
            .list(&ListParams::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .items
            .into_iter()
            .filter_map(|j| j.metadata.uid)
            .collect();
        let pod_list = pods
            .list(&ListParams::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .items;
        let owners: Vec<String> = pod_list
            .iter()
            .map(|p| {
                p.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .map(|o| o.uid.clone())
                    .next()
                    .unwrap_or_default()
            })
            .collect();
        let live: Vec<&Pod> = pod_list
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        if pod_list.len() == expected
            && live.len() == expected
            && owners.iter().all(|o| job_uids.contains(o))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "pods did not settle to one for each of the {expected} jobs: {} pods, owners {owners:?}, jobs {job_uids:?}",
            pod_list.len()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn forty_parallel_runs_over_two_replicas_make_exactly_the_quota() {
    forty_parallel_runs("replicas-quota", "on").await;
}

/// Without the in-process slot all 40 creates race at once, 20 in each process: the quota is
/// kept by Kubernetes alone.
#[tokio::test]
async fn forty_parallel_runs_without_the_in_process_slot_make_exactly_the_quota() {
    forty_parallel_runs("replicas-noslot", "off").await;
}

async fn forty_parallel_runs(tool: &str, slot: &'static str) {
    let cluster = cluster();
    let r = TwoReplicas::new(tool, Some(slot));
    r.flush_and_warm().await;
    let (a, b, client) = (&r.a, &r.b, &r.client);

    let runs = (0..40).map(|i| {
        let gw = if i % 2 == 0 { a } else { b };
        let req = client
            .post(gw.direct_url("/api/v1/run/"))
            .json(&json!({"name": format!("r{i}"), "imagename": "bookworm", "cmd": "sleep 1000"}));
        async move { (i, call(req).await) }
    });
    let results = futures::future::join_all(runs).await;
    let mut accepted = BTreeSet::new();
    for (i, (status, body)) in &results {
        match status {
            200 => {
                accepted.insert(format!("r{i}"));
            }
            403 => {
                let msg = body["message"].as_str().unwrap_or_default();
                assert!(
                    msg.contains("Job quota exceeded") && msg.contains("at most 5"),
                    "run {i}: {msg}"
                );
            }
            other => panic!("run {i}: unexpected {other}: {body}"),
        }
    }
    assert_eq!(
        accepted.len(),
        QUOTA,
        "exactly the quota's number of runs succeed over both replicas: {accepted:?}"
    );

    let admin = admin(&cluster);
    let ns = format!("tool-{tool}");
    let jobs = Api::<Job>::namespaced(admin.clone(), &ns);
    let names: BTreeSet<String> = jobs
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .items
        .into_iter()
        .filter_map(|j| j.metadata.name)
        .collect();
    assert_eq!(
        names, accepted,
        "the cluster holds exactly the accepted jobs, none of the refused ones"
    );
    let pods = Api::<Pod>::namespaced(admin.clone(), &ns);
    pods_settle_to(&pods, &jobs, QUOTA).await;

    let undone = counter(a, "jobs_gateway_creates_undone_total").await
        + counter(b, "jobs_gateway_creates_undone_total").await;
    eprintln!("slot {slot}: creates undone after a parallel create came first: {undone}");
    if slot == "off" {
        assert!(
            undone > 0.0,
            "40 unserialised creates and none undone: the race was not exercised"
        );
    }

    // the next run, on either replica, is refused as before
    for gw in [a, b] {
        let (status, body) = call(
            client
                .post(gw.direct_url("/api/v1/run/"))
                .json(&json!({"name": "late", "imagename": "bookworm", "cmd": "sleep 1000"})),
        )
        .await;
        assert_eq!(status, 403, "{body}");
    }
    let (status, body) = call(client.delete(b.direct_url("/api/v1/flush/"))).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn one_job_name_raced_as_two_kinds_on_two_replicas_exists_once() {
    let cluster = cluster();
    let tool = "replicas-name";
    let r = TwoReplicas::new(tool, None);
    let (a, b, client) = (&r.a, &r.b, &r.client);
    let admin = admin(&cluster);
    let ns = format!("tool-{tool}");
    let jobs = Api::<Job>::namespaced(admin.clone(), &ns);
    let crons = Api::<CronJob>::namespaced(admin.clone(), &ns);
    for round in 0..5 {
        let (status, body) = call(client.delete(a.direct_url("/api/v1/flush/"))).await;
        assert_eq!(status, 200, "{body}");
        let name = format!("same{round}");
        let one_off = client
            .post(a.direct_url("/api/v1/run/"))
            .json(&json!({"name": name, "imagename": "bookworm", "cmd": "sleep 1000"}));
        let scheduled = client.post(b.direct_url("/api/v1/run/")).json(
            &json!({"name": name, "imagename": "bookworm", "cmd": "date", "schedule": "@hourly"}),
        );
        let (x, y) = tokio::join!(call(one_off), call(scheduled));
        let mut statuses = [x.0, y.0];
        statuses.sort();
        assert_eq!(
            statuses,
            [200, 409],
            "round {round}: one run gets the name, the other is told it is taken: {} {}, {} {}",
            x.0,
            x.1["message"],
            y.0,
            y.1["message"]
        );
        let lp = ListParams::default();
        let n = jobs
            .list(&lp)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .items
            .len()
            + crons
                .list(&lp)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .items
                .len();
        assert_eq!(n, 1, "round {round}: one object holds the name");
    }
    let (status, body) = call(client.delete(a.direct_url("/api/v1/flush/"))).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn continuous_and_scheduled_jobs_raced_over_two_replicas_stay_within_their_quotas() {
    let cluster = cluster();
    let tool = "replicas-kinds";
    let r = TwoReplicas::new(tool, Some("off"));
    r.flush_and_warm().await;
    let (a, b, client) = (&r.a, &r.b, &r.client);
    let runs = (0..24).map(|i| {
        let gw = if i % 2 == 0 { a } else { b };
        let body = if i % 4 < 2 {
            json!({"name": format!("c{i}"), "imagename": "bookworm", "cmd": "sleep 1000", "continuous": true})
        } else {
            json!({"name": format!("s{i}"), "imagename": "bookworm", "cmd": "date", "schedule": "@daily"})
        };
        let req = client.post(gw.direct_url("/api/v1/run/")).json(&body);
        async move { (i, call(req).await) }
    });
    let results = futures::future::join_all(runs).await;
    let (mut continuous, mut scheduled) = (BTreeSet::new(), BTreeSet::new());
    for (i, (status, body)) in &results {
        let name = if i % 4 < 2 {
            format!("c{i}")
        } else {
            format!("s{i}")
        };
        match status {
            200 if i % 4 < 2 => {
                continuous.insert(name);
            }
            200 => {
                scheduled.insert(name);
            }
            403 => {
                let msg = body["message"].as_str().unwrap_or_default();
                let expected = if i % 4 < 2 { "at most 5" } else { "at most 2" };
                assert!(
                    msg.contains("Job quota exceeded") && msg.contains(expected),
                    "run {name}: {msg}"
                );
            }
            other => panic!("run {name}: unexpected {other}: {body}"),
        }
    }
    assert_eq!(continuous.len(), QUOTA, "{continuous:?}");
    assert_eq!(scheduled.len(), 2, "{scheduled:?}");
    let admin = admin(&cluster);
    let ns = format!("tool-{tool}");
    let rcs: BTreeSet<String> = Api::<ReplicationController>::namespaced(admin.clone(), &ns)
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .items
        .into_iter()
        .filter_map(|o| o.metadata.name)
        .collect();
    assert_eq!(rcs, continuous, "only the accepted continuous jobs exist");
    let crons: BTreeSet<String> = Api::<CronJob>::namespaced(admin.clone(), &ns)
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .items
        .into_iter()
        .filter_map(|o| o.metadata.name)
        .collect();
    assert_eq!(crons, scheduled, "only the accepted scheduled jobs exist");
    let (status, body) = call(client.delete(b.direct_url("/api/v1/flush/"))).await;
    assert_eq!(status, 200, "{body}");
}
