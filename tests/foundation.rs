//! The core path against the genuine kube-apiserver: a tool's certificate goes in, the gateway
//! loads that tool's own credentials from its home, and Kubernetes sees the call as that tool.

mod common;

use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ReplicationController, ResourceQuota};
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

fn jobs_body(name: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut body = json!({"name": name, "imagename": "bookworm", "cmd": "echo hello"});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body
}

/// Lines of the apiserver audit log that record `verb` on `resource` named `name` in `ns`.
fn audit_users(cluster: &Cluster, verb: &str, resource: &str, ns: &str, name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(&cluster.audit_log).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| {
            e["verb"] == verb
                && e["objectRef"]["resource"] == resource
                && e["objectRef"]["namespace"] == ns
                && (e["objectRef"]["name"] == name
                    || e["responseObject"]["metadata"]["name"] == name
                    || e["requestObject"]["metadata"]["name"] == name)
        })
        .filter_map(|e| e["user"]["username"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn each_kind_of_job_runs_as_the_tool() {
    let cluster = cluster();
    let pki = Pki::new(&cluster);
    let tool = "alice";
    provision(&pki, tool);
    let gw = Gateway::start(&pki, &[]);
    let (cert, key) = pki.tool_cert(tool);
    let client = https(&pki.cluster.ca, Some((&cert, &key)));
    // start clean (the cluster is shared by the whole run)
    let (status, _) = call(client.delete(gw.direct_url("/api/v1/flush/"))).await;
    assert_eq!(status, 200);

    let runs = [
        ("once", json!({})),
        ("nightly", json!({"schedule": "@daily"})),
        ("daemon", json!({"continuous": true})),
    ];
    for (name, extra) in &runs {
        let (status, body) = call(
            client
                .post(gw.direct_url("/api/v1/run/"))
                .json(&jobs_body(name, extra.clone())),
        )
        .await;
        assert_eq!(status, 200, "run {name}: {body}");
        assert_eq!(body["metadata"]["namespace"], "tool-alice");
    }

    let admin = admin(&cluster);
    let job = Api::<Job>::namespaced(admin.clone(), "tool-alice")
        .get("once")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let labels = job.metadata.labels.unwrap_or_default();
    assert_eq!(
        labels
            .get("app.kubernetes.io/created-by")
            .map(String::as_str),
        Some("alice")
    );
    let cj = Api::<CronJob>::namespaced(admin.clone(), "tool-alice")
        .get("nightly")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let schedule = cj.spec.map(|s| s.schedule).unwrap_or_default();
    assert_eq!(
        schedule.split(' ').count(),
        5,
        "the macro was spread to 5 fields: {schedule}"
    );
    Api::<ReplicationController>::namespaced(admin.clone(), "tool-alice")
        .get("daemon")
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // Kubernetes recorded the tool, not a service account or admin, as the creator.
    for (resource, name) in [
        ("jobs", "once"),
        ("cronjobs", "nightly"),
        ("replicationcontrollers", "daemon"),
    ] {
        let deadline = Instant::now() + Duration::from_secs(10);
        let users = loop {
            let users = audit_users(&cluster, "create", resource, "tool-alice", name);
            if !users.is_empty() || Instant::now() > deadline {
                break users;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert!(!users.is_empty(), "no audit record for {resource}/{name}");
        assert!(
            users.iter().all(|u| u == "alice"),
            "{resource}/{name} created by {users:?}"
        );
    }

    let (status, list) = call(client.get(gw.direct_url("/api/v1/list/"))).await;
    assert_eq!(status, 200);
    let mut names: Vec<&str> = list
        .as_array()
        .map(|a| a.iter().filter_map(|j| j["name"].as_str()).collect())
        .unwrap_or_default();
    names.sort();
    assert_eq!(names, ["daemon", "nightly", "once"]);

    let (status, shown) = call(client.get(gw.direct_url("/api/v1/show/nightly"))).await;
    assert_eq!(status, 200);
    assert_eq!(shown["schedule"], "@daily");
    assert_eq!(shown["image"], "bookworm");
    assert_eq!(shown["cmd"], "echo hello");

    let (status, _) = call(
        client
            .post(gw.direct_url("/api/v1/run/"))
            .json(&jobs_body("once", json!({}))),
    )
    .await;
    assert_eq!(status, 409, "a second job with a taken name");

    let (status, _) = call(client.delete(gw.direct_url("/api/v1/delete/once"))).await;
    assert_eq!(status, 200);
    let (status, body) = call(client.get(gw.direct_url("/api/v1/show/once"))).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["message"], "Job 'once' does not exist");
    let (status, _) = call(client.delete(gw.direct_url("/api/v1/delete/once"))).await;
    assert_eq!(status, 404);

    let (status, _) = call(client.delete(gw.direct_url("/jobs/api/v1/flush/"))).await;
    assert_eq!(status, 200);
    let (status, list) = call(client.get(gw.direct_url("/jobs/api/v1/list/"))).await;
    assert_eq!((status, list), (200, json!([])));
}

#[tokio::test]
async fn a_tool_cannot_touch_another_tools_jobs() {
    let cluster = cluster();
    let pki = Pki::new(&cluster);
    provision(&pki, "iso-alice");
    provision(&pki, "iso-bob");
    let gw = Gateway::start(&pki, &[]);
    let (ac, ak) = pki.tool_cert("iso-alice");
    let (bc, bk) = pki.tool_cert("iso-bob");
    let alice = https(&cluster.ca, Some((&ac, &ak)));
    let bob = https(&cluster.ca, Some((&bc, &bk)));
    call(bob.delete(gw.direct_url("/api/v1/flush/"))).await;
    let (status, body) = call(
        bob.post(gw.direct_url("/api/v1/run/"))
            .json(&jobs_body("secret", json!({"continuous": true}))),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let (status, list) = call(alice.get(gw.direct_url("/api/v1/list/"))).await;
    assert_eq!(status, 200);
    assert!(
        !list.to_string().contains("secret"),
        "alice sees bob's job: {list}"
    );
    for path in [
        "/api/v1/show/secret",
        "/api/v1/show/..%2F..%2Ftool-iso-bob%2Fsecret",
        "/api/v1/show/tool-iso-bob.secret",
    ] {
        let (status, _) = call(alice.get(gw.direct_url(path))).await;
        assert_eq!(status, 404, "{path}");
    }
    let (status, _) = call(alice.delete(gw.direct_url("/api/v1/delete/secret"))).await;
    assert_eq!(status, 404);
    let (status, _) = call(alice.delete(gw.direct_url("/api/v1/flush/"))).await;
    assert_eq!(status, 200);

    let (status, shown) = call(bob.get(gw.direct_url("/api/v1/show/secret"))).await;
    assert_eq!(status, 200, "bob's job survived alice's delete and flush");
    assert_eq!(shown["continuous"], true);
    let rcs = Api::<ReplicationController>::namespaced(admin(&cluster), "tool-iso-bob")
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rcs.items.len(), 1);
}

#[tokio::test]
async fn resource_quota_refusal_is_reported_and_nothing_half_created() {
    let cluster = cluster();
    let pki = Pki::new(&cluster);
    let tool = "quota-alice";
    provision(&pki, tool);
    let ns = "tool-quota-alice";
    let admin = admin(&cluster);
    let quotas = Api::<ResourceQuota>::namespaced(admin.clone(), ns);
    let quota: ResourceQuota = serde_json::from_value(json!({
        "metadata": {"name": "tool-quota"},
        "spec": {"hard": {"count/jobs.batch": "2"}},
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    match quotas.create(&PostParams::default(), &quota).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => panic!("{e}"),
    }
    // the quota controller must have computed usage before admission enforces it
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let q = quotas
            .get("tool-quota")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        if q.status.and_then(|s| s.hard).is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "quota status never appeared");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let gw = Gateway::start(&pki, &[]);
    let (cert, key) = pki.tool_cert(tool);
    let client = https(&cluster.ca, Some((&cert, &key)));
    call(client.delete(gw.direct_url("/api/v1/flush/"))).await;
    for name in ["q1", "q2"] {
        let (status, body) = call(
            client
                .post(gw.direct_url("/api/v1/run/"))
                .json(&jobs_body(name, json!({}))),
        )
        .await;
        assert_eq!(status, 200, "{name}: {body}");
    }
    let (status, body) = call(
        client
            .post(gw.direct_url("/api/v1/run/"))
            .json(&jobs_body("q3", json!({}))),
    )
    .await;
    assert!((400..500).contains(&status), "third job: {status} {body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("quota"),
        "message does not name the quota: {message}"
    );
    assert!(message.contains("count/jobs.batch"), "{message}");
    let jobs = Api::<Job>::namespaced(admin, ns)
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<String> = jobs
        .items
        .iter()
        .filter_map(|j| j.metadata.name.clone())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(!names.contains(&"q3".to_string()));
    let (status, _) = call(client.get(gw.direct_url("/api/v1/show/q3"))).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn identity_headers_are_believed_only_from_the_ingress() {
    let cluster = cluster();
    let pki = Pki::new(&cluster);
    provision(&pki, "hdr-alice");
    provision(&pki, "hdr-bob");
    let gw = Gateway::start(&pki, &[]);
    let (ac, ak) = pki.tool_cert("hdr-alice");
    let alice = https(&cluster.ca, Some((&ac, &ak)));
    let ingress = https(
        &cluster.ca,
        Some((
            &pki.path("ingress-client.crt"),
            &pki.path("ingress-client.key"),
        )),
    );
    let anonymous = https(&cluster.ca, None);
    let forged = "CN=hdr-bob,O=toolforge";
    let body = jobs_body("forged", json!({}));

    // direct listener, alice's certificate, header claiming bob
    let (status, reply) = call(
        alice
            .post(gw.direct_url("/api/v1/run/"))
            .header("ssl-client-subject-dn", forged)
            .json(&body),
    )
    .await;
    assert_eq!(status, 403, "{reply}");
    // ingress listener, but the connection is alice's, not the ingress's
    let (status, reply) = call(
        alice
            .post(gw.ingress_url("/api/v1/run/"))
            .header("ssl-client-subject-dn", forged)
            .json(&body),
    )
    .await;
    assert_eq!(status, 403, "{reply}");
    // no client certificate at all, on either listener
    for url in [
        gw.direct_url("/api/v1/run/"),
        gw.ingress_url("/api/v1/run/"),
    ] {
        let (status, _) = call(
            anonymous
                .post(url)
                .header("ssl-client-subject-dn", forged)
                .json(&body),
        )
        .await;
        assert_eq!(status, 401);
    }
    let jobs = Api::<Job>::namespaced(admin(&cluster), "tool-hdr-bob")
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        jobs.items.is_empty(),
        "a forged header created a job as bob"
    );

    // the real ingress may speak for a tool
    let (status, reply) = call(
        ingress
            .get(gw.ingress_url("/api/v1/list/"))
            .header("ssl-client-subject-dn", "CN=hdr-alice,O=toolforge"),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    // ...but only with a well-formed subject of the tool organisation
    for bad in [
        "CN=hdr-alice",
        "CN=hdr-alice,O=admins",
        "CN=a,CN=hdr-alice,O=toolforge",
        "garbage",
    ] {
        let (status, _) = call(
            ingress
                .get(gw.ingress_url("/api/v1/list/"))
                .header("ssl-client-subject-dn", bad),
        )
        .await;
        assert_eq!(status, 403, "{bad}");
    }
    let (status, _) = call(ingress.get(gw.ingress_url("/api/v1/list/"))).await;
    assert_eq!(status, 401, "ingress connection without a subject header");
}

#[tokio::test]
async fn rotated_certificates_take_effect_without_restart() {
    let cluster = cluster();
    let pki = Pki::new(&cluster);
    provision(&pki, "rot-alice");
    provision(&pki, "rot-bob");
    // files once checked are trusted for this long; the default is 1 s
    let recheck = Duration::from_millis(300);
    let gw = Gateway::start(&pki, &[("JOBS_GATEWAY_CREDENTIAL_RECHECK_MS", "300")]);
    let (cert, key) = pki.tool_cert("rot-alice");
    let client = https(&cluster.ca, Some((&cert, &key)));
    let (status, _) = call(client.get(gw.direct_url("/api/v1/list/"))).await;
    assert_eq!(status, 200);

    // The platform puts a wrong certificate into alice's home: the next request notices.
    let (bc, bk) = pki.tool_cert("rot-bob");
    let home = pki.home_root.join("rot-alice/.toolskube");
    std::fs::copy(&bc, home.join("client.crt.new")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::copy(&bk, home.join("client.key.new")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::rename(home.join("client.key.new"), home.join("client.key"))
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::rename(home.join("client.crt.new"), home.join("client.crt"))
        .unwrap_or_else(|e| panic!("{e}"));
    tokio::time::sleep(recheck + Duration::from_millis(100)).await;
    let (status, body) = call(client.get(gw.direct_url("/api/v1/list/"))).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("rot-bob"),
        "{body}"
    );

    // A fresh certificate for alice works on the next request, same process.
    pki.mint_tool("rot-alice");
    tokio::time::sleep(recheck + Duration::from_millis(100)).await;
    let (cert2, key2) = pki.tool_cert("rot-alice");
    let client2 = https(&cluster.ca, Some((&cert2, &key2)));
    let (status, body) = call(client2.get(gw.direct_url("/api/v1/list/"))).await;
    assert_eq!(status, 200, "{body}");
    assert!(gw.log_text().contains("listening"), "same gateway process");
}

#[tokio::test]
async fn home_certificates_of_another_tool_or_outside_the_home_are_refused() {
    let cluster = cluster();
    let pki = Pki::new(&cluster);
    provision(&pki, "link-alice");
    provision(&pki, "link-bob");
    // look at the files on every request
    let gw = Gateway::start(&pki, &[("JOBS_GATEWAY_CREDENTIAL_RECHECK_MS", "0")]);
    let (cert, key) = pki.tool_cert("link-alice");
    let client = https(&cluster.ca, Some((&cert, &key)));
    // alice's .toolskube becomes a link into bob's home
    let dir = pki.home_root.join("link-alice/.toolskube");
    std::fs::rename(&dir, pki.home_root.join("link-alice/.toolskube.old"))
        .unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink(pki.home_root.join("link-bob/.toolskube"), &dir)
        .unwrap_or_else(|e| panic!("{e}"));
    let (status, body) = call(client.get(gw.direct_url("/api/v1/list/"))).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("outside"),
        "{body}"
    );
    // alice's whole home is a link to bob's
    std::fs::remove_file(&dir).unwrap_or_else(|e| panic!("{e}"));
    let home = pki.home_root.join("link-alice");
    std::fs::rename(&home, pki.home_root.join("link-alice.real")).unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink(pki.home_root.join("link-bob"), &home)
        .unwrap_or_else(|e| panic!("{e}"));
    let (status, body) = call(client.get(gw.direct_url("/api/v1/list/"))).await;
    assert_eq!(status, 403, "{body}");
    // no home at all
    std::fs::remove_file(&home).unwrap_or_else(|e| panic!("{e}"));
    let (status, body) = call(client.get(gw.direct_url("/api/v1/list/"))).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("no Kubernetes credentials"),
        "{body}"
    );
}

/// The certificate the gateway presents to a new TLS connection on `addr` (DER).
async fn served_certificate(addr: std::net::SocketAddr, ca: &std::path::Path) -> Vec<u8> {
    let tls = tls_stream(addr, ca, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    tls.get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .unwrap_or_else(|| panic!("no server certificate"))
}

fn first_certificate(path: &std::path::Path) -> Vec<u8> {
    let pem = std::fs::read(path).unwrap_or_else(|e| panic!("{e}"));
    jobs_core::pem::pem_certificates(&pem)
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no certificate in {}", path.display()))
}

/// Puts a copy of `from` at `to` in one step (rename), as a secret update does.
fn replace_file(from: &std::path::Path, to: &std::path::Path) {
    let tmp = to.with_extension("new");
    std::fs::copy(from, &tmp).unwrap_or_else(|e| panic!("{e}"));
    std::fs::rename(&tmp, to).unwrap_or_else(|e| panic!("{e}"));
}

fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn a_renewed_gateway_certificate_is_served_without_restart_and_a_torn_one_is_not() {
    let cluster = cluster();
    let pki = Pki::new(&cluster);
    provision(&pki, "renew-carol");
    let gw = Gateway::start(&pki, &[("JOBS_GATEWAY_TLS_RELOAD_MS", "200")]);
    let expiry = "jobs_gateway_tls_certificate_not_after_seconds";
    let original = first_certificate(&pki.path("gateway.crt"));
    let saved = pki.dir.path().join("gateway-original.crt");
    std::fs::copy(pki.path("gateway.crt"), &saved).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(served_certificate(gw.direct, &cluster.ca).await, original);
    let expiry_before = metric(&metrics_text(&gw).await, expiry);
    assert!(expiry_before.is_some(), "{}", metrics_text(&gw).await);
    // a client connected before the renewal
    let (cert, key) = pki.tool_cert("renew-carol");
    let client = https(&cluster.ca, Some((&cert, &key)));
    let (status, body) = call(client.get(gw.direct_url("/api/v1/list/"))).await;
    assert_eq!(status, 200, "{body}");

    // cert-manager renews: a new key pair, valid for 30 days instead of the dev default
    let (new_crt, new_key) = pki.mint_client_with(
        "gateway-renewed",
        "/CN=jobs-gateway",
        &["--server", "--days", "30"],
    );
    let renewed = first_certificate(&new_crt);
    assert_ne!(renewed, original);

    // Half-way through: the new certificate beside the old key. Refused, the old pair stays.
    replace_file(&new_crt, &pki.path("gateway.crt"));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        served_certificate(gw.direct, &cluster.ca).await,
        original,
        "a certificate that does not match the key must not be taken"
    );
    let (status, body) = call(client.get(gw.direct_url("/api/v1/list/"))).await;
    assert_eq!(status, 200, "{body}");
    let text = metrics_text(&gw).await;
    assert_eq!(
        metric(&text, "jobs_gateway_tls_reloads_total{result=\"refused\"}"),
        Some(1.0),
        "one refusal, logged once although the files stayed torn for several checks: {text}"
    );
    assert!(
        gw.log_text().contains("TLS files not reloaded"),
        "{}",
        gw.log_text()
    );

    // Rolled back to what is served: nothing to reload, nothing new to report.
    replace_file(&saved, &pki.path("gateway.crt"));
    tokio::time::sleep(Duration::from_millis(800)).await;
    let text = metrics_text(&gw).await;
    assert_eq!(
        metric(&text, "jobs_gateway_tls_reloads_total{result=\"applied\"}"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "jobs_gateway_tls_reloads_total{result=\"refused\"}"),
        Some(1.0),
        "{text}"
    );
    replace_file(&new_crt, &pki.path("gateway.crt"));

    // The key arrives: new connections get the renewed certificate, same process.
    replace_file(&new_key, &pki.path("gateway.key"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while served_certificate(gw.direct, &cluster.ca).await != renewed {
        assert!(
            Instant::now() < deadline,
            "renewed certificate not served: {}",
            gw.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(served_certificate(gw.ingress, &cluster.ca).await, renewed);
    let fresh = https(&cluster.ca, Some((&cert, &key)));
    let (status, body) = call(fresh.get(gw.direct_url("/api/v1/list/"))).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(client.get(gw.direct_url("/api/v1/list/"))).await;
    assert_eq!(
        status, 200,
        "the client connected before still works: {body}"
    );
    let text = metrics_text(&gw).await;
    assert_eq!(
        metric(&text, "jobs_gateway_tls_reloads_total{result=\"applied\"}"),
        Some(1.0),
        "{text}"
    );
    let expiry_after = metric(&text, expiry);
    assert!(
        expiry_after < expiry_before,
        "the gauge follows the 30-day certificate: {expiry_before:?} -> {expiry_after:?}"
    );
    let log = gw.log_text();
    assert!(log.contains("reloaded"), "{log}");
    assert!(
        !log.contains("PRIVATE KEY") && !log.contains("BEGIN"),
        "{log}"
    );
}
