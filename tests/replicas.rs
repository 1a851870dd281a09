//! Several gateway replicas serving one tool at once: the per-tool job quota and job names
//! hold across processes (Kubernetes decides, not an in-process lock).

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Event, Pod, ReplicationController};
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
    /// `extra`: settings of both gateways besides [`replica_env`]'s.
    fn new(tool: &str, extra: &[(&'static str, &'static str)]) -> Self {
        let cluster = cluster();
        let pki = Pki::new(&cluster);
        provision(&pki, tool);
        let mut env = replica_env();
        env.extend_from_slice(extra);
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

/// The sum of one counter over its label sets in a gateway's /metrics.
async fn counter(gw: &Gateway, name: &str) -> f64 {
    metrics_text(gw)
        .await
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .fold(0.0, |a, b| a + b)
}

/// Every object of `api`, as stored now.
async fn stored<K>(api: &Api<K>) -> Vec<K>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .items
}

/// One metadata field (name, uid) of every object of `api`.
async fn each<K>(
    api: &Api<K>,
    field: fn(kube::api::ObjectMeta) -> Option<String>,
) -> BTreeSet<String>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    stored(api)
        .await
        .into_iter()
        .filter_map(|o| field(o.meta().clone()))
        .collect()
}

/// Seconds since the epoch; with a second's margin, so that objects made at the start of a
/// test are after its `epoch_now()`.
fn epoch_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64 - 1)
        .unwrap_or(0)
}

fn made_since(meta: &kube::api::ObjectMeta, since: i64) -> bool {
    meta.creation_timestamp
        .as_ref()
        .is_none_or(|t| t.0.as_second() >= since)
}

/// Waits until the namespace's pods made since `since` (a rerun's flushed pods may linger)
/// are exactly those of `jobs` (one each): no pod of an undone job is left behind.
async fn pods_settle_to(pods: &Api<Pod>, jobs: &Api<Job>, expected: usize, since: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job_uids = each(jobs, |m| m.uid).await;
        let pod_list: Vec<Pod> = stored(pods)
            .await
            .into_iter()
            .filter(|p| made_since(&p.metadata, since))
            .collect();
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

/// A refused run never started its command: the job controller's pod-creation events name
/// only the accepted jobs (an undone create was held, parallelism 0, until deleted).
async fn no_pod_made_for_refused_jobs(admin: &kube::Client, ns: &str, jobs: &Api<Job>, since: i64) {
    let job_uids = each(jobs, |m| m.uid).await;
    let events = Api::<Event>::namespaced(admin.clone(), ns)
        .list(&ListParams::default().fields("involvedObject.kind=Job,reason=SuccessfulCreate"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .items
        .into_iter()
        .filter(|e| made_since(&e.metadata, since))
        .collect::<Vec<_>>();
    assert!(!events.is_empty(), "the accepted jobs' pods were created");
    for e in &events {
        let uid = e.involved_object.uid.clone().unwrap_or_default();
        assert!(
            job_uids.contains(&uid),
            "a pod was created for job {:?} (uid {uid}), which is not one of the accepted jobs: {:?}",
            e.involved_object.name,
            e.message
        );
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
    let r = TwoReplicas::new(tool, &[("JOBS_GATEWAY_CREATION_SLOT", slot)]);
    r.flush_and_warm().await;
    let since = epoch_now();
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
    let names = each(&jobs, |m| m.name).await;
    assert_eq!(
        names, accepted,
        "the cluster holds exactly the accepted jobs, none of the refused ones"
    );
    let pods = Api::<Pod>::namespaced(admin.clone(), &ns);
    pods_settle_to(&pods, &jobs, QUOTA, since).await;
    no_pod_made_for_refused_jobs(&admin, &ns, &jobs, since).await;

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
    let r = TwoReplicas::new(tool, &[]);
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
        let n = stored(&jobs).await.len() + stored(&crons).await.len();
        assert_eq!(n, 1, "round {round}: one object holds the name");
    }
    let (status, body) = call(client.delete(a.direct_url("/api/v1/flush/"))).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn continuous_and_scheduled_jobs_raced_over_two_replicas_stay_within_their_quotas() {
    let cluster = cluster();
    let tool = "replicas-kinds";
    let r = TwoReplicas::new(tool, &[("JOBS_GATEWAY_CREATION_SLOT", "off")]);
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
    let rcs = each(
        &Api::<ReplicationController>::namespaced(admin.clone(), &ns),
        |m| m.name,
    )
    .await;
    assert_eq!(rcs, continuous, "only the accepted continuous jobs exist");
    let crons = each(&Api::<CronJob>::namespaced(admin.clone(), &ns), |m| m.name).await;
    assert_eq!(crons, scheduled, "only the accepted scheduled jobs exist");
    let (status, body) = call(client.delete(b.direct_url("/api/v1/flush/"))).await;
    assert_eq!(status, 200, "{body}");
}

/// The tool's Jobs as stored: (name, held), held meaning created and not yet released.
async fn stored_jobs(jobs: &Api<Job>) -> Vec<(String, bool)> {
    stored(jobs)
        .await
        .into_iter()
        .map(|j| {
            let held = j
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key("jobs.toolforge.org/held"));
            (j.metadata.name.unwrap_or_default(), held)
        })
        .collect()
}

/// A replica killed (SIGKILL) in the middle of a burst of runs: every run it or the other
/// replica accepted (200) is kept and runs; the objects its unfinished requests left behind
/// (created held, never released) start no pod and are deleted by the next census on the
/// surviving replica once older than the request timeout; the quota holds throughout.
#[tokio::test]
async fn killing_a_replica_mid_burst_loses_no_accepted_job_and_leaves_no_extra_one() {
    let cluster = cluster();
    let tool = "replicas-kill";
    // a short request timeout: held objects older than it are taken for left behind
    let mut r = TwoReplicas::new(
        tool,
        &[
            ("JOBS_GATEWAY_CREATION_SLOT", "off"),
            ("JOBS_GATEWAY_REQUEST_TIMEOUT_MS", "5000"),
        ],
    );
    r.flush_and_warm().await;
    let since = epoch_now();
    let admin = admin(&cluster);
    let ns = format!("tool-{tool}");
    let jobs = Api::<Job>::namespaced(admin.clone(), &ns);

    let runs = (0..40).map(|i| {
        let gw = if i % 2 == 0 { &r.a } else { &r.b };
        let req = r
            .client
            .post(gw.direct_url("/api/v1/run/"))
            .json(&json!({"name": format!("k{i}"), "imagename": "bookworm", "cmd": "sleep 1000"}));
        async move { (i, try_call(req).await) }
    });
    // kill replica a as soon as one of its jobs is seen held (created, not yet released):
    // that request, and likely others, are then between their create and their release
    let a_pid = r.a.pid();
    let of_a = |name: &str| {
        name.strip_prefix('k')
            .and_then(|i| i.parse::<u32>().ok())
            .is_some_and(|i| i % 2 == 0)
    };
    let killer = async {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !stored_jobs(&jobs)
            .await
            .iter()
            .any(|(name, held)| *held && of_a(name))
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        run_ok(Command::new("kill").arg("-KILL").arg(a_pid.to_string()));
    };
    let (results, ()) = tokio::join!(futures::future::join_all(runs), killer);
    assert!(
        r.a.wait_exit(Duration::from_secs(10)).is_some(),
        "replica a was killed"
    );

    let mut accepted = BTreeSet::new();
    let mut cut = 0;
    for (i, result) in &results {
        match result {
            Ok((200, _)) => {
                accepted.insert(format!("k{i}"));
            }
            Ok((403, body)) => {
                let msg = body["message"].as_str().unwrap_or_default();
                assert!(msg.contains("Job quota exceeded"), "run {i}: {msg}");
            }
            // replica a's requests in flight when it died
            Err(_) if i % 2 == 0 => cut += 1,
            other => panic!("run {i}: unexpected {other:?}"),
        }
    }
    eprintln!("accepted {accepted:?}, {cut} requests cut by the kill");
    assert!(
        accepted.len() <= QUOTA,
        "at most the quota accepted: {accepted:?}"
    );

    let check = |accepted: &BTreeSet<String>, stored: &[(String, bool)], when: &str| {
        let released: BTreeSet<String> = stored
            .iter()
            .filter(|(_, held)| !held)
            .map(|(n, _)| n.clone())
            .collect();
        assert!(
            accepted.is_subset(&released),
            "{when}: every accepted job is kept and released: accepted {accepted:?}, stored {stored:?}"
        );
        assert!(
            released.len() <= QUOTA,
            "{when}: no more released jobs than the quota: {stored:?}"
        );
    };
    let after_kill = stored_jobs(&jobs).await;
    check(&accepted, &after_kill, "right after the kill");
    let left_held = after_kill.iter().filter(|(_, held)| *held).count();

    // past the request timeout, the next run on the surviving replica removes what replica a
    // left held, counting only real jobs
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (status, body) = call(
        r.client
            .post(r.b.direct_url("/api/v1/run/"))
            .json(&json!({"name": "after", "imagename": "bookworm", "cmd": "sleep 1000"})),
    )
    .await;
    let released_before = after_kill.iter().filter(|(_, held)| !held).count();
    if released_before < QUOTA {
        assert_eq!(
            status, 200,
            "a free slot is given out after the kill: {body}"
        );
        accepted.insert("after".into());
    } else {
        assert_eq!(status, 403, "the quota is still full: {body}");
    }
    let settled = stored_jobs(&jobs).await;
    check(&accepted, &settled, "after the next run");
    assert!(
        settled.iter().all(|(_, held)| !held),
        "nothing is left held after the next census: {settled:?}"
    );
    let removed = counter(&r.b, "jobs_gateway_held_objects_removed_total").await;
    eprintln!("held objects left by the killed replica: {left_held}; removed by b: {removed}");
    assert!(removed >= left_held as f64, "b removed every held leftover");
    let pods = Api::<Pod>::namespaced(admin.clone(), &ns);
    pods_settle_to(&pods, &jobs, settled.len(), since).await;
    no_pod_made_for_refused_jobs(&admin, &ns, &jobs, since).await;

    let (status, body) = call(r.client.delete(r.b.direct_url("/api/v1/flush/"))).await;
    assert_eq!(status, 200, "{body}");
}

/// A Job as a replica that died between its create and its release leaves it: created held
/// (parallelism 0, marked), with the labels every job of the tool has.
fn left_held_job(tool: &str, name: &str) -> Job {
    serde_json::from_value(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "labels": {
                "toolforge": "tool",
                "app.kubernetes.io/managed-by": "toolforge-jobs-framework",
                "app.kubernetes.io/created-by": tool,
                "app.kubernetes.io/component": "jobs",
                "app.kubernetes.io/name": name,
                "app.kubernetes.io/version": "2",
            },
            "annotations": {"jobs.toolforge.org/held": "until the quota check"},
        },
        "spec": {
            "parallelism": 0,
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": name}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "job", "image": "bookworm", "command": ["true"]}],
                },
            },
        },
    }))
    .unwrap_or_else(|e| panic!("{e}"))
}

/// What a dead replica left held counts while it may still be released (its name taken, its
/// slot used), and is deleted once older than the request timeout: the retry of the lost run
/// under its own name then succeeds, and so does a run in the freed slots.
#[tokio::test]
async fn runs_left_held_by_a_dead_replica_free_their_names_and_slots_after_the_request_timeout() {
    let cluster = cluster();
    let tool = "replicas-left";
    let pki = Pki::new(&cluster);
    provision(&pki, tool);
    let mut env = replica_env();
    env.push(("JOBS_GATEWAY_REQUEST_TIMEOUT_MS", "3000"));
    let gw = start_gateway_retrying(&pki, &env);
    let (c, k) = pki.tool_cert(tool);
    let client = https(&cluster.ca, Some((&c, &k)));
    let (status, body) = call(client.delete(gw.direct_url("/api/v1/flush/"))).await;
    assert_eq!(status, 200, "{body}");

    let admin = admin(&cluster);
    let jobs = Api::<Job>::namespaced(admin.clone(), &format!("tool-{tool}"));
    for i in 0..QUOTA {
        jobs.create(
            &Default::default(),
            &left_held_job(tool, &format!("lost{i}")),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }
    let run = |name: &str| {
        call(
            client
                .post(gw.direct_url("/api/v1/run/"))
                .json(&json!({"name": name, "imagename": "bookworm", "cmd": "sleep 1000"})),
        )
    };
    // young: their creates may still be released, so they hold their names and the quota
    let (status, body) = run("lost0").await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = run("other").await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Job quota exceeded"),
        "{body}"
    );

    // past the request timeout they are taken for left behind
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (status, body) = run("lost0").await;
    assert_eq!(status, 200, "the lost run, retried under its name: {body}");
    let (status, body) = run("other").await;
    assert_eq!(status, 200, "{body}");
    let stored = stored_jobs(&jobs).await;
    let mut names: Vec<&str> = stored.iter().map(|(n, _)| n.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        ["lost0", "other"],
        "the other leftovers are gone: {stored:?}"
    );
    assert!(stored.iter().all(|(_, held)| !held), "{stored:?}");
    let removed = counter(&gw, "jobs_gateway_held_objects_removed_total").await;
    assert_eq!(removed, QUOTA as f64, "each leftover deleted once");
    let (status, body) = call(client.delete(gw.direct_url("/api/v1/flush/"))).await;
    assert_eq!(status, 200, "{body}");
}
