//! The watch cache (`JOBS_GATEWAY_WATCH_CACHE=on`) on real jobs of the local node: its
//! replies are the direct replies, warm reads make no apiserver call, a write through the
//! gateway shows in the very next read, and a change made elsewhere shows within moments; a
//! refused watch falls back to direct reads, and an expired one lists again in place.

mod common;

use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DeleteParams};
use serde_json::json;

/// The tests read often: rates high enough not to be what they meet.
const CACHE: &[(&str, &str)] = &[
    ("JOBS_GATEWAY_WATCH_CACHE", "on"),
    ("JOBS_GATEWAY_RATE_PER_SEC", "1000"),
    ("JOBS_GATEWAY_RATE_BURST", "1000"),
];
const DIRECT: &[(&str, &str)] = &[
    ("JOBS_GATEWAY_RATE_PER_SEC", "1000"),
    ("JOBS_GATEWAY_RATE_BURST", "1000"),
];

struct Tool {
    name: &'static str,
    pki: Pki,
    client: reqwest::Client,
}

impl Tool {
    /// A provisioned tool whose earlier jobs and pods are gone.
    async fn new(name: &'static str, gw: &Gateway, pki: Pki) -> Self {
        let (c, k) = pki.tool_cert(name);
        let client = https(&pki.cluster.ca, Some((&c, &k)));
        let t = Self { name, pki, client };
        let (status, body) = call(t.client.delete(t.v1(gw, "jobs/"))).await;
        assert_eq!(status, 200, "flush: {body}");
        until_no_pods(&t.pki.cluster, name).await;
        t
    }

    fn v1(&self, gw: &Gateway, path: &str) -> String {
        gw.direct_url(&format!("/jobs/v1/tool/{}/{path}", self.name))
    }

    async fn text(&self, url: String) -> String {
        let resp = self
            .client
            .get(url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(resp.status(), 200);
        resp.text().await.unwrap_or_default()
    }

    async fn names(&self, gw: &Gateway) -> Vec<String> {
        let (status, body) = call(self.client.get(self.v1(gw, "jobs/"))).await;
        assert_eq!(status, 200, "{body}");
        body["jobs"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|j| j["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The sum of a counter over the series whose labels include every `key="value"` given.
async fn counter(gw: &Gateway, name: &str, labels: &[&str]) -> u64 {
    metrics_text(gw)
        .await
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && labels.iter().all(|p| l.contains(p)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Reads through the cache gateway until one is answered from the cache.
async fn warm(t: &Tool, gw: &Gateway) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let before = counter(gw, "jobs_gateway_watch_reads_total", &["source=\"cache\""]).await;
        t.names(gw).await;
        if counter(gw, "jobs_gateway_watch_reads_total", &["source=\"cache\""]).await > before {
            return;
        }
        assert!(Instant::now() < deadline, "the cache never became warm");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The reply with its clock readings (`5s`, `1m30s`, `2d3h`) blanked: two reads a moment apart
/// differ only there.
fn without_clock(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let starts = chars[i].is_ascii_digit() && (i == 0 || !chars[i - 1].is_alphanumeric());
        if starts {
            let mut j = i;
            while j < chars.len() && (chars[j].is_ascii_digit() || "dhms".contains(chars[j])) {
                j += 1;
            }
            let token: String = chars[i..j].iter().collect();
            let ends_clean = j == chars.len() || !chars[j].is_alphanumeric();
            if ends_clean && token.ends_with(['d', 'h', 'm', 's']) {
                out.push_str("<t>");
                i = j;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

#[tokio::test]
async fn cached_replies_are_the_direct_replies_and_warm_reads_call_no_apiserver() {
    let cluster = cluster();
    let pki = Pki::new(&cluster);
    provision(&pki, "wc-alice");
    let cached = start_gateway_retrying(&pki, CACHE);
    let direct = start_gateway_retrying(&pki, DIRECT);
    let t = Tool::new("wc-alice", &direct, pki).await;
    for job in [
        json!({"name": "done", "imagename": "bookworm", "cmd": "true"}),
        json!({"name": "broken", "imagename": "bookworm", "cmd": "exit 3"}),
        json!({"name": "busy", "imagename": "bookworm", "cmd": "sleep 300"}),
        json!({"name": "daily", "imagename": "bookworm", "cmd": "date", "schedule": "@daily"}),
        json!({"name": "server", "imagename": "bookworm", "cmd": "sleep 300", "continuous": true}),
        json!({"name": "crashing", "imagename": "bookworm", "cmd": "exit 1", "continuous": true,
               "filelog": true}),
    ] {
        let (status, body) = call(t.client.post(t.v1(&direct, "jobs/")).json(&job)).await;
        assert_eq!(status, 201, "{job} → {body}");
    }
    // wait (through the direct gateway) until the one-off jobs have ended and the others run
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, body) = call(t.client.get(t.v1(&direct, "jobs/"))).await;
        let short = |n: &str| -> String {
            body["jobs"]
                .as_array()
                .and_then(|a| a.iter().find(|j| j["name"] == n))
                .and_then(|j| j["status"]["short"].as_str())
                .unwrap_or_default()
                .to_string()
        };
        if short("done") == "succeeded" && short("broken") == "failed" && short("busy") == "running"
        {
            break;
        }
        assert!(Instant::now() < deadline, "jobs did not settle: {body}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    warm(&t, &cached).await;
    let mut routes = vec!["jobs/".to_string(), "jobs/?include_unset=false".to_string()];
    for name in [
        "done", "broken", "busy", "daily", "server", "crashing", "missing",
    ] {
        routes.push(format!("jobs/{name}"));
    }
    let cache_reads = counter(
        &cached,
        "jobs_gateway_watch_reads_total",
        &["source=\"cache\""],
    )
    .await;
    for route in &routes {
        // a moment apart, the pods may move on (the crashing job restarts): retry a little
        let mut last = String::new();
        let mut same = false;
        for _ in 0..10 {
            let before = t.client.get(t.v1(&direct, route)).send().await;
            let from_cache = t.client.get(t.v1(&cached, route)).send().await;
            let (Ok(before), Ok(from_cache)) = (before, from_cache) else {
                panic!("{route}: a request failed");
            };
            assert_eq!(before.status(), from_cache.status(), "{route}");
            let (a, b) = (
                before.text().await.unwrap_or_default(),
                from_cache.text().await.unwrap_or_default(),
            );
            if without_clock(&a) == without_clock(&b) {
                same = true;
                break;
            }
            last = format!("direct: {a}\ncached: {b}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert!(same, "{route} differs:\n{last}");
    }
    let served = counter(
        &cached,
        "jobs_gateway_watch_reads_total",
        &["source=\"cache\""],
    )
    .await;
    assert!(
        served - cache_reads >= routes.len() as u64 - 1,
        "the cache gateway read directly: {}",
        metrics_text(&cached).await
    );
    let legacy = cached.direct_url("/jobs/api/v1/jobs/");
    let legacy_direct = direct.direct_url("/jobs/api/v1/jobs/");
    let (a, b) = (t.text(legacy_direct).await, t.text(legacy).await);
    assert_eq!(without_clock(&a), without_clock(&b), "release 14 list");

    // warm reads are answered without a single apiserver call
    let before = counter(
        &cached,
        "jobs_gateway_kube_requests_total",
        &["verb=\"list\""],
    )
    .await;
    for _ in 0..20 {
        t.names(&cached).await;
        let (status, _) = call(t.client.get(t.v1(&cached, "jobs/busy"))).await;
        assert_eq!(status, 200);
    }
    let after = counter(
        &cached,
        "jobs_gateway_kube_requests_total",
        &["verb=\"list\""],
    )
    .await;
    assert_eq!(
        after, before,
        "20 warm lists and shows listed from the apiserver"
    );
    let (status, body) = call(t.client.delete(t.v1(&direct, "jobs/"))).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_write_shows_in_the_next_read_and_a_change_made_elsewhere_within_seconds() {
    let cluster = cluster();
    let pki = Pki::new(&cluster);
    provision(&pki, "wc-bob");
    // every watch event arrives 300 ms late: a read that did not wait for the tool's own
    // write would miss it
    let mut env = CACHE.to_vec();
    env.push(("JOBS_GATEWAY_WATCH_EVENT_DELAY_MS", "300"));
    let gw = start_gateway_retrying(&pki, &env);
    let t = Tool::new("wc-bob", &gw, pki).await;
    warm(&t, &gw).await;
    for round in 0..3 {
        let name = format!("quick-{round}");
        let job = json!({"name": name, "imagename": "bookworm", "cmd": "sleep 120"});
        let (status, body) = call(t.client.post(t.v1(&gw, "jobs/")).json(&job)).await;
        assert_eq!(status, 201, "{body}");
        assert!(
            t.names(&gw).await.contains(&name),
            "created {name}, not listed at once"
        );
        let (status, shown) = call(t.client.get(t.v1(&gw, &format!("jobs/{name}")))).await;
        assert_eq!(status, 200, "{shown}");
        let (status, body) = call(t.client.delete(t.v1(&gw, &format!("jobs/{name}")))).await;
        assert_eq!(status, 200, "{body}");
        assert!(
            !t.names(&gw).await.contains(&name),
            "deleted {name}, still listed"
        );
        let (status, _) = call(t.client.get(t.v1(&gw, &format!("jobs/{name}")))).await;
        assert_eq!(status, 404, "deleted {name}, still shown");
    }
    // made through the gateway, deleted behind its back: gone from the list within seconds
    let job = json!({"name": "elsewhere", "imagename": "bookworm", "cmd": "sleep 120"});
    let (status, body) = call(t.client.post(t.v1(&gw, "jobs/")).json(&job)).await;
    assert_eq!(status, 201, "{body}");
    assert!(t.names(&gw).await.contains(&"elsewhere".to_string()));
    let jobs = Api::<Job>::namespaced(admin(&t.pki.cluster), "tool-wc-bob");
    jobs.delete("elsewhere", &DeleteParams::background())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while t.names(&gw).await.contains(&"elsewhere".to_string()) {
        assert!(
            Instant::now() < deadline,
            "a delete made elsewhere never showed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        counter(&gw, "jobs_gateway_watch_reads_total", &["source=\"cache\""]).await >= 10,
        "{}",
        metrics_text(&gw).await
    );
    let (status, body) = call(t.client.delete(t.v1(&gw, "jobs/"))).await;
    assert_eq!(status, 200, "{body}");
    assert!(t.names(&gw).await.is_empty(), "flushed, still listed");
}

#[tokio::test]
async fn a_refused_watch_falls_back_to_direct_reads_and_the_cache_comes_back() {
    use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
    use kube::api::PostParams;
    let cluster = cluster();
    let pki = Pki::new(&cluster);
    // a binding left changed by an earlier, interrupted run would stop provisioning
    let left = Api::<RoleBinding>::namespaced(admin(&cluster), "tool-wc-carol");
    if let Ok(b) = left.get("toolforge-tool").await {
        if b.role_ref.name != "toolforge-tool" {
            let _ = left
                .delete("toolforge-tool", &DeleteParams::default())
                .await;
        }
    }
    provision(&pki, "wc-carol");
    let mut env = CACHE.to_vec();
    env.push(("JOBS_GATEWAY_WATCH_IDLE_MS", "1000"));
    let gw = start_gateway_retrying(&pki, &env);
    let t = Tool::new("wc-carol", &gw, pki).await;
    let job = json!({"name": "steady", "imagename": "bookworm", "cmd": "sleep 120"});
    let (status, body) = call(t.client.post(t.v1(&gw, "jobs/")).json(&job)).await;
    assert_eq!(status, 201, "{body}");
    warm(&t, &gw).await;

    // the tool may still list events, but no longer watch them
    let admin = admin(&t.pki.cluster);
    let roles = Api::<ClusterRole>::all(admin.clone());
    let mut role = roles
        .get("toolforge-tool")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    role.metadata = kube::api::ObjectMeta {
        name: Some("toolforge-tool-no-event-watch".into()),
        ..Default::default()
    };
    for rule in role.rules.iter_mut().flatten() {
        if rule.resources.iter().flatten().any(|r| r == "events") {
            rule.resources = Some(
                rule.resources
                    .iter()
                    .flatten()
                    .filter(|r| *r != "events")
                    .cloned()
                    .collect(),
            );
        }
    }
    role.rules.get_or_insert_with(Vec::new).push(
        serde_json::from_value(
            json!({"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list"]}),
        )
        .unwrap_or_else(|e| panic!("{e}")),
    );
    let _ = roles
        .delete("toolforge-tool-no-event-watch", &DeleteParams::default())
        .await;
    roles
        .create(&PostParams::default(), &role)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let bindings = Api::<RoleBinding>::namespaced(admin.clone(), "tool-wc-carol");
    let original = bindings
        .get("toolforge-tool")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let rebind = |role: &str| {
        let mut b = original.clone();
        b.metadata = kube::api::ObjectMeta {
            name: Some("toolforge-tool".into()),
            namespace: Some("tool-wc-carol".into()),
            ..Default::default()
        };
        b.role_ref.name = role.to_string();
        b
    };
    // a RoleBinding's role cannot change: replace the binding
    bindings
        .delete("toolforge-tool", &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    bindings
        .create(
            &PostParams::default(),
            &rebind("toolforge-tool-no-event-watch"),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // an open watch was authorised when it began and goes on: let the tool's feeds idle out
    // (1 s here), so that the next read starts new ones, whose event watch is refused. Every
    // read answers all the same.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let failures = || {
        counter(
            &gw,
            "jobs_gateway_watch_failures_total",
            &["kind=\"events\""],
        )
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while failures().await == 0 {
        assert_eq!(t.names(&gw).await, ["steady"], "a read during the failure");
        assert!(
            Instant::now() < deadline,
            "the refused watch was never noticed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for _ in 0..5 {
        assert_eq!(t.names(&gw).await, ["steady"], "a read after the failure");
    }
    let direct_reads = counter(
        &gw,
        "jobs_gateway_watch_reads_total",
        &["source=\"direct\""],
    )
    .await;
    assert!(direct_reads >= 5, "{}", metrics_text(&gw).await);

    // allowed again: the cache comes back after its pause
    bindings
        .delete("toolforge-tool", &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    bindings
        .create(&PostParams::default(), &rebind("toolforge-tool"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let _ = roles
        .delete("toolforge-tool-no-event-watch", &DeleteParams::default())
        .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let before = counter(&gw, "jobs_gateway_watch_reads_total", &["source=\"cache\""]).await;
        assert_eq!(t.names(&gw).await, ["steady"]);
        if counter(&gw, "jobs_gateway_watch_reads_total", &["source=\"cache\""]).await > before {
            break;
        }
        assert!(Instant::now() < deadline, "the cache never came back");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (status, body) = call(t.client.delete(t.v1(&gw, "jobs/"))).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn two_replicas_with_caches_see_each_others_writes_within_seconds() {
    let cluster = cluster();
    let pki = Pki::new(&cluster);
    provision(&pki, "wc-dave");
    let a = start_gateway_retrying(&pki, CACHE);
    let b = start_gateway_retrying(&pki, CACHE);
    let t = Tool::new("wc-dave", &a, pki).await;
    warm(&t, &a).await;
    warm(&t, &b).await;
    let job = json!({"name": "shared", "imagename": "bookworm", "cmd": "sleep 120"});
    let (status, body) = call(t.client.post(t.v1(&a, "jobs/")).json(&job)).await;
    assert_eq!(status, 201, "{body}");
    seen_within(&t, &b, "shared", true).await;
    let (status, body) = call(t.client.delete(t.v1(&b, "jobs/shared"))).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        !t.names(&b).await.contains(&"shared".to_string()),
        "its own delete"
    );
    seen_within(&t, &a, "shared", false).await;
    assert!(
        counter(&b, "jobs_gateway_watch_reads_total", &["source=\"cache\""]).await >= 2,
        "{}",
        metrics_text(&b).await
    );
}

/// Waits (at most 5 s) until `name` is listed (`present`) or not by `gw`.
async fn seen_within(t: &Tool, gw: &Gateway, name: &str, present: bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while t.names(gw).await.contains(&name.to_string()) != present {
        assert!(
            Instant::now() < deadline,
            "{name} {} on the other replica after 5 s",
            if present {
                "not listed"
            } else {
                "still listed"
            }
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A watch whose version the apiserver has compacted away is answered 410: the feed lists
/// again in place (`jobs_gateway_watch_relists_total`), the tool's reads stay on the cache
/// without a failure, and what changes afterwards still shows. An apiserver of the test's own
/// without its watch cache (watches then read etcd, whose compaction expires old versions),
/// compacting every second, and feeds that watch again every second make it happen in
/// moments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_watch_lists_again_and_reads_stay_on_the_cache() {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::PostParams;
    let (_own, cluster) = OwnCluster::start(
        &["etcd", "kube-apiserver"],
        &[(
            "TJF_APISERVER_EXTRA_ARGS",
            "--watch-cache=false --etcd-compaction-interval=1s",
        )],
    );
    let pki = Pki::new(&cluster);
    provision(&pki, "wc-dora");
    let mut env = CACHE.to_vec();
    env.push(("JOBS_GATEWAY_WATCH_TIMEOUT_MS", "1000"));
    let gw = start_gateway_retrying(&pki, &env);
    let t = Tool::new("wc-dora", &gw, pki).await;
    // no node here: the job is an object, which is all a feed follows
    let job = json!({"name": "kept", "imagename": "bookworm", "cmd": "true"});
    let (status, body) = call(t.client.post(t.v1(&gw, "jobs/")).json(&job)).await;
    assert_eq!(status, 201, "{body}");
    warm(&t, &gw).await;

    // Other writes move etcd's revision on; compaction then drops the version the feeds
    // watch from (nothing of the tool's changes, so their version stays where it was).
    let admin = admin(&t.pki.cluster);
    let maps = Api::<ConfigMap>::namespaced(admin.clone(), "default");
    let relists = || counter(&gw, "jobs_gateway_watch_relists_total", &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut i = 0;
    while relists().await == 0 {
        assert!(
            Instant::now() < deadline,
            "no watch was ever expired: {}",
            metrics_text(&gw).await
        );
        let map: ConfigMap = serde_json::from_value(
            json!({"metadata": {"name": format!("churn-{i}")}, "data": {"i": i.to_string()}}),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        maps.create(&PostParams::default(), &map)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        i += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // the feeds never broke: reads come from the cache, and a change made elsewhere shows
    assert_eq!(
        counter(&gw, "jobs_gateway_watch_failures_total", &[]).await,
        0,
        "{}",
        metrics_text(&gw).await
    );
    warm(&t, &gw).await;
    assert_eq!(t.names(&gw).await, ["kept"]);
    Api::<Job>::namespaced(admin, "tool-wc-dora")
        .delete("kept", &DeleteParams::background())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    seen_within(&t, &gw, "kept", false).await;
    warm(&t, &gw).await;
    assert!(t.names(&gw).await.is_empty());
}
