//! Fairness at the apiserver (issue 13): the gateway calls the apiserver as each tool, so API
//! Priority and Fairness, configured by deploy/flowcontrol.yaml (applied exactly as shipped),
//! keeps one tool's flood from starving another tool's requests, whichever replica or client
//! they come through.
//!
//! The test runs a control plane of its own (etcd and kube-apiserver, no node: nothing here
//! needs pods) whose total concurrency is made small (`--max-requests-inflight=6
//! --max-mutating-requests-inflight=2`: 8 seats instead of 600, a property of the apiserver,
//! not of our manifests), so that two cores can fill the tools' priority level: with the
//! shipped shares (30 of 235) it gets ceil(8 · 30 / 235) = 2 seats, and one tool's flow can
//! hold `handSize × queueLengthLimit` (6 × 50) requests waiting before it is refused.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The flooding tool and the quiet one. Their shuffle-shard hands (see [`hand`]) share only
/// queue 28, so the quiet tool always has queues the flood does not fill.
const FLOOD: &str = "apf-flood";
const QUIET: &str = "apf-quiet";
const SCHEMA: &str = "toolforge-tools";
/// The apiserver's total concurrency for this test (see the module comment).
const APISERVER_FLAGS: &str = "--max-requests-inflight=6 --max-mutating-requests-inflight=2";

/// The queues (of `queues`) a flow may use: the apiserver's shuffle sharding (k8s.io/apiserver
/// v1.20 `hashFlowID` and `shufflesharding.Dealer.Deal`), a hash of the flow schema's name and
/// the flow distinguisher (for ByUser: the user name, i.e. the tool). A request goes to the
/// shortest queue of its flow's hand, so a tool is starved by another only if all its queues
/// are in the other's hand.
fn hand(schema: &str, user: &str, queues: u64, hand_size: usize) -> BTreeSet<u64> {
    let mut h = Sha256::new();
    h.update(schema.as_bytes());
    h.update([0u8]);
    h.update(user.as_bytes());
    let sum = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&sum[..8]);
    let mut value = u64::from_le_bytes(first);
    let mut remainders = Vec::with_capacity(hand_size);
    for i in 0..hand_size as u64 {
        remainders.push(value % (queues - i));
        value /= queues - i;
    }
    let mut cards = BTreeSet::new();
    for i in 0..hand_size {
        let mut card = remainders[i];
        for j in (1..=i).rev() {
            if card >= remainders[j - 1] {
                card += 1;
            }
        }
        cards.insert(card);
    }
    cards
}

fn kubectl(cluster: &Cluster) -> Command {
    let mut cmd = Command::new("kubectl");
    cmd.env("KUBECONFIG", cluster.run_dir.join("admin.kubeconfig"));
    cmd
}

/// The shipped PriorityLevelConfiguration's queuing: (queues, handSize, queueLengthLimit).
fn shipped_queuing() -> (u64, usize, u64) {
    let path = repo().join("deploy/flowcontrol.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let v: Value = serde::Deserialize::deserialize(doc)
            .unwrap_or_else(|e: serde_yaml::Error| panic!("{}: {e}", path.display()));
        if v["kind"] == "PriorityLevelConfiguration" && v["metadata"]["name"] == SCHEMA {
            let q = &v["spec"]["limited"]["limitResponse"]["queuing"];
            let n = |k: &str| {
                q[k].as_u64()
                    .unwrap_or_else(|| panic!("no queuing.{k} in {}", path.display()))
            };
            return (n("queues"), n("handSize") as usize, n("queueLengthLimit"));
        }
    }
    panic!(
        "no PriorityLevelConfiguration {SCHEMA} in {}",
        path.display()
    )
}

/// The apiserver's /metrics (as admin: the exempt priority level, never queued).
async fn apiserver_metrics(admin: &reqwest::Client, cluster: &Cluster) -> String {
    let resp = admin
        .get(format!("{}/metrics", cluster.url))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 200);
    resp.text().await.unwrap_or_default()
}

/// The sum of a metric over its series whose labels include all of `labels`.
fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

/// For each tool: the response codes of its requests in the apiserver's audit log.
fn audited_codes(cluster: &Cluster, tools: &[&str]) -> BTreeMap<String, BTreeMap<u64, u64>> {
    let text = std::fs::read_to_string(&cluster.audit_log).unwrap_or_default();
    let mut out: BTreeMap<String, BTreeMap<u64, u64>> = BTreeMap::new();
    for line in text.lines() {
        let Ok(ev) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let user = ev["user"]["username"].as_str().unwrap_or_default();
        if ev["stage"] != "ResponseComplete" || !tools.contains(&user) {
            continue;
        }
        let code = ev["responseStatus"]["code"].as_u64().unwrap_or_default();
        *out.entry(user.to_string())
            .or_default()
            .entry(code)
            .or_default() += 1;
    }
    out
}

/// What the flooding tool's direct requests got.
#[derive(Default)]
struct FloodCounts {
    ok: AtomicU64,
    rejected: AtomicU64,
    other: AtomicU64,
    failed: AtomicU64,
    stop: AtomicBool,
}

impl FloodCounts {
    fn get(&self) -> (u64, u64, u64, u64) {
        (
            self.ok.load(Ordering::SeqCst),
            self.rejected.load(Ordering::SeqCst),
            self.other.load(Ordering::SeqCst),
            self.failed.load(Ordering::SeqCst),
        )
    }
}

/// Each flooding worker makes at most this many requests (the test's load is bounded).
const FLOOD_REQUESTS_PER_WORKER: u64 = 60;

/// One flooding worker: LISTs of the tool's pods, straight to the apiserver with the tool's
/// certificate, one after the other as fast as they are answered. After a refusal it waits a
/// little (only to bound the test's load; the queues stay full meanwhile).
async fn flood_worker(client: reqwest::Client, url: String, counts: Arc<FloodCounts>) {
    for _ in 0..FLOOD_REQUESTS_PER_WORKER {
        if counts.stop.load(Ordering::SeqCst) {
            return;
        }
        match client.get(&url).send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let _ = resp.bytes().await;
                match status {
                    200 => counts.ok.fetch_add(1, Ordering::SeqCst),
                    429 => {
                        counts.rejected.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        0
                    }
                    _ => counts.other.fetch_add(1, Ordering::SeqCst),
                };
            }
            Err(_) => {
                counts.failed.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// A 16.x list (`GET /jobs/v1/tool/<tool>/jobs/`) through the gateway: (status, Retry-After,
/// body).
async fn list_jobs(
    client: &reqwest::Client,
    gw: &Gateway,
    tool: &str,
) -> (u16, Option<String>, Value) {
    let resp = client
        .get(gw.direct_url(&format!("/jobs/v1/tool/{tool}/jobs/")))
        .send()
        .await
        .unwrap_or_else(|e| panic!("listing {tool}'s jobs: {e}"));
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = resp.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, retry_after, body)
}

fn job_names(body: &Value) -> Vec<String> {
    body["jobs"]
        .as_array()
        .map(|jobs| {
            jobs.iter()
                .filter_map(|j| j["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tool_flooding_the_apiserver_does_not_starve_another_tools_list() {
    let started = Instant::now();
    // etcd and kube-apiserver only: nothing here needs pods
    let (own, cluster) = OwnCluster::start(
        &["etcd", "kube-apiserver"],
        &[("TJF_APISERVER_EXTRA_ARGS", APISERVER_FLAGS)],
    );
    let (queues, hand_size, queue_length) = shipped_queuing();

    // The two tools' hands: the quiet one has queues outside the flood's.
    let flood_hand = hand(SCHEMA, FLOOD, queues, hand_size);
    let quiet_hand = hand(SCHEMA, QUIET, queues, hand_size);
    assert_eq!(flood_hand.len(), hand_size);
    assert!(
        !quiet_hand.is_subset(&flood_hand),
        "{QUIET}'s queues {quiet_hand:?} are all in {FLOOD}'s {flood_hand:?}: pick other names"
    );

    // deploy/flowcontrol.yaml, exactly as shipped
    run_ok(
        kubectl(&cluster)
            .arg("apply")
            .arg("-f")
            .arg(repo().join("deploy/flowcontrol.yaml")),
    );
    let uid = run_ok(kubectl(&cluster).args([
        "get",
        "flowschema",
        SCHEMA,
        "-o",
        "jsonpath={.metadata.uid}",
    ]));
    let uid = uid.trim().to_string();
    let pki = Pki::new(&cluster);
    provision(&pki, FLOOD);
    provision(&pki, QUIET);
    // the flooding tool's own connections, straight to the apiserver, and its (and the quiet
    // tool's) client of the gateway
    let (c, k) = pki.tool_cert(FLOOD);
    let flood_direct = https(&cluster.ca, Some((&c, &k)));
    let flood_via_gateway = https(&cluster.ca, Some((&c, &k)));
    let (c, k) = pki.tool_cert(QUIET);
    let quiet = https(&cluster.ca, Some((&c, &k)));
    let admin = https(&cluster.ca, Some((&cluster.admin_cert, &cluster.admin_key)));
    let pods_url = format!("{}/api/v1/namespaces/tool-{FLOOD}/pods", cluster.url);

    // The apiserver takes up a new FlowSchema within moments: wait until the flooding tool's
    // requests are classified into it and the priority level has its seats.
    let deadline = Instant::now() + Duration::from_secs(20);
    let seats = loop {
        let resp = flood_direct
            .get(&pods_url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(resp.status().as_u16(), 200);
        let schema = resp
            .headers()
            .get("x-kubernetes-pf-flowschema-uid")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let seats = metric_sum(
            &apiserver_metrics(&admin, &cluster).await,
            "apiserver_flowcontrol_request_concurrency_limit",
            &[("priority_level", SCHEMA)],
        ) as u64;
        if schema == uid && seats > 0 {
            break seats;
        }
        assert!(
            Instant::now() < deadline,
            "{FLOOD}'s requests are not in {SCHEMA} ({schema:?}, want {uid}), {seats} seats"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // every list reads the apiserver (the watch cache would answer the flood itself)
    let gw = start_gateway_retrying(&pki, &[("JOBS_GATEWAY_WATCH_CACHE", "off")]);
    // the quiet tool has one job, which each of its lists must show
    let (status, body) = call(
        quiet
            .post(gw.direct_url(&format!("/jobs/v1/tool/{QUIET}/jobs/")))
            .json(&json!({"name": "quiet", "imagename": "bookworm", "cmd": "./tick.sh"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, _, body) = list_jobs(&quiet, &gw, QUIET).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(job_names(&body), ["quiet"]);

    let before = apiserver_metrics(&admin, &cluster).await;
    let schema_labels = [("flow_schema", SCHEMA), ("priority_level", SCHEMA)];

    // The flood: more LISTs at once than the flooding tool's queues and seats can hold.
    let capacity = hand_size as u64 * queue_length + seats;
    let workers = capacity + 60;
    assert!(
        workers <= 500,
        "{workers} workers: the test's load stays bounded"
    );
    let counts = Arc::new(FloodCounts::default());
    let mut flood = tokio::task::JoinSet::new();
    for _ in 0..workers {
        flood.spawn(flood_worker(
            flood_direct.clone(),
            pods_url.clone(),
            counts.clone(),
        ));
    }
    let flood_deadline = Instant::now() + Duration::from_secs(30);
    while counts.get().1 == 0 {
        assert!(
            Instant::now() < flood_deadline,
            "{workers} concurrent LISTs got no 429 from the apiserver: {:?}",
            counts.get()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The apiserver's own view: the waiting requests are the flooding tool's, in its queues.
    let dump = admin
        .get(format!(
            "{}/debug/api_priority_and_fairness/dump_requests",
            cluster.url
        ))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .text()
        .await
        .unwrap_or_default();
    let mut waiting_queues = BTreeSet::new();
    let mut waiting = 0;
    for row in dump.lines().skip(1) {
        let cols: Vec<&str> = row.split(',').map(str::trim).collect();
        if cols.len() < 5 || cols[0] != SCHEMA {
            continue;
        }
        assert_eq!(cols[1], SCHEMA, "{row}");
        assert_eq!(cols[4], FLOOD, "only the flood waits: {row}");
        waiting += 1;
        waiting_queues.insert(
            cols[2]
                .parse::<u64>()
                .unwrap_or_else(|e| panic!("{row}: {e}")),
        );
    }
    assert!(
        waiting_queues.is_subset(&flood_hand) && !waiting_queues.is_empty(),
        "{FLOOD}'s requests wait in queues {waiting_queues:?}, its hand is {flood_hand:?}"
    );

    // Meanwhile the quiet tool lists its jobs through the gateway, as a user would, and the
    // flooding tool does too.
    let rejected_at_start = counts.get().1;
    let quiet_lists = 20;
    let quiet_side = async {
        let mut seen = Vec::new();
        for _ in 0..quiet_lists {
            let (status, _, body) = list_jobs(&quiet, &gw, QUIET).await;
            seen.push((status, job_names(&body), body));
        }
        seen
    };
    let flood_side = async {
        let mut seen = Vec::new();
        for _ in 0..25 {
            let (status, retry_after, body) = list_jobs(&flood_via_gateway, &gw, FLOOD).await;
            let refused = status != 200;
            seen.push((status, retry_after, body));
            if refused && seen.iter().filter(|s| s.0 != 200).count() >= 3 {
                break;
            }
        }
        seen
    };
    let lists_started = Instant::now();
    let (quiet_seen, flood_seen) = tokio::join!(quiet_side, flood_side);
    let lists_took = lists_started.elapsed();
    let rejected_at_end = counts.get().1;
    counts.stop.store(true, Ordering::SeqCst);
    while flood.join_next().await.is_some() {}
    let (ok, rejected, other, failed) = counts.get();
    let after = apiserver_metrics(&admin, &cluster).await;
    let gateway_metrics = metrics_text(&gw).await;

    let delta = |name: &str| {
        metric_sum(&after, name, &schema_labels) - metric_sum(&before, name, &schema_labels)
    };
    let apf_rejected = delta("apiserver_flowcontrol_rejected_requests_total");
    let apf_dispatched = delta("apiserver_flowcontrol_dispatched_requests_total");
    let gateway_429 = metric_sum(
        &gateway_metrics,
        "jobs_gateway_kube_requests_total",
        &[("result", "429")],
    );
    println!(
        "seats {seats}, capacity {capacity}, {workers} workers: {FLOOD} direct: {ok} ok, \
         {rejected} rejected (429), {other} other, {failed} failed; {waiting} waiting in \
         queues {waiting_queues:?} (hand {flood_hand:?}, {QUIET}'s {quiet_hand:?}); \
         apiserver {SCHEMA}: {apf_rejected} rejected, {apf_dispatched} dispatched; gateway \
         kube 429s {gateway_429}; {FLOOD} via the gateway: {:?}; the lists took {lists_took:?}, \
         the test so far {:?}",
        flood_seen.iter().map(|s| s.0).collect::<Vec<_>>(),
        started.elapsed()
    );

    // The quiet tool was never refused and saw its job every time, while the flood went on
    // being refused (so its lists ran during the flood, not after it).
    for (status, names, body) in &quiet_seen {
        assert_eq!(*status, 200, "{QUIET}'s list during the flood: {body}");
        assert_eq!(names, &["quiet"], "{body}");
    }
    assert!(
        rejected_at_end > rejected_at_start,
        "the flood was still being refused while {QUIET} listed: {rejected_at_start} → {rejected_at_end}"
    );

    // The flooding tool, through the gateway, gets the apiserver's refusal as a 429 with
    // Retry-After, saying Kubernetes is busy (not a 500).
    let refusals: Vec<_> = flood_seen.iter().filter(|s| s.0 != 200).collect();
    assert!(
        !refusals.is_empty(),
        "{FLOOD}'s lists through the gateway all succeeded during its flood"
    );
    for (status, retry_after, body) in &refusals {
        assert_eq!(*status, 429, "{body}");
        let seconds = retry_after.as_deref().and_then(|s| s.parse::<u64>().ok());
        assert!(
            seconds.is_some_and(|s| s >= 1),
            "429 without a Retry-After in seconds ({retry_after:?}): {body}"
        );
        let message = body["error"][0].as_str().unwrap_or_default();
        assert!(
            message.starts_with("Kubernetes is busy") && message.contains("Too many requests"),
            "{body}"
        );
    }
    assert!(gateway_429 >= refusals.len() as f64, "{gateway_429}");

    // The apiserver refused requests in our priority level, at least every 429 the flood
    // saw, and dispatched the rest there.
    assert!(
        rejected > 0 && other == 0,
        "{rejected} refused, {other} other answers"
    );
    assert!(
        apf_rejected >= rejected as f64,
        "{SCHEMA} rejected {apf_rejected}, the flood saw {rejected} 429s"
    );
    assert!(
        apf_dispatched >= (ok + quiet_lists) as f64,
        "{SCHEMA} dispatched {apf_dispatched}, the flood alone had {ok} answered"
    );

    // Per tool, from the apiserver's audit log: the flooding tool's requests were refused
    // with 429, none of the quiet tool's.
    let audit_deadline = Instant::now() + Duration::from_secs(10);
    let codes = loop {
        let codes = audited_codes(&cluster, &[FLOOD, QUIET]);
        let flood_429 = codes
            .get(FLOOD)
            .and_then(|c| c.get(&429))
            .copied()
            .unwrap_or_default();
        if flood_429 >= rejected || Instant::now() > audit_deadline {
            break codes;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!("audited response codes: {codes:?}");
    let flood_codes = codes.get(FLOOD).cloned().unwrap_or_default();
    let quiet_codes = codes.get(QUIET).cloned().unwrap_or_default();
    assert!(
        flood_codes.get(&429).copied().unwrap_or_default() >= rejected,
        "{flood_codes:?}"
    );
    assert!(
        quiet_codes.keys().all(|code| *code < 300),
        "{QUIET} got refusals: {quiet_codes:?}"
    );
    assert!(
        quiet_codes.values().sum::<u64>() >= quiet_lists,
        "{quiet_codes:?}"
    );

    drop(gw);
    drop(own);
    println!("the test took {:?}", started.elapsed());
}
