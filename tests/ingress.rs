//! End to end through the REAL nginx jobs ingress (ingress/nginx/start.sh): user → nginx
//! (verifies the tool certificate, sets ssl-client-subject-dn) → gateway ingress listener
//! (trusts the header only from nginx's client certificate) → kube-apiserver as the tool.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, ListParams};
use serde_json::json;

/// A local nginx jobs ingress in front of a gateway's ingress listener; stopped on drop with
/// ingress/nginx/stop.sh (which signals only the PID nginx wrote into its run directory).
struct Ingress {
    run_dir: PathBuf,
    port: u16,
}

impl Ingress {
    fn start(pki: &Pki, gw: &Gateway) -> Self {
        Self::start_many(pki, &[gw])
    }

    /// nginx in front of several gateway processes (GATEWAY_UPSTREAMS), hashing on the subject.
    fn start_many(pki: &Pki, gws: &[&Gateway]) -> Self {
        let upstreams: Vec<String> = gws
            .iter()
            .map(|gw| format!("https://127.0.0.1:{}", gw.ingress.port()))
            .collect();
        let port = free_port();
        // the guard exists before start.sh runs, so a half-started nginx is stopped too
        let ingress = Ingress {
            run_dir: pki.dir.path().join(format!("ingress-{port}")),
            port,
        };
        run_ok(
            Command::new("bash")
                .arg(repo().join("ingress/nginx/start.sh"))
                .arg(&ingress.run_dir)
                .env("CERTS_DIR", pki.dir.path().join("pki"))
                .env("INGRESS_PORT", port.to_string())
                .env("GATEWAY_UPSTREAMS", upstreams.join(" "))
                // NOT the NGINX variable of start.sh: nginx itself reads NGINX (inherited
                // sockets) and then stays in the foreground; /usr/sbin is on PATH anyway
                .env_remove("NGINX"),
        );
        ingress
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.run_dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Ingress {
    fn drop(&mut self) {
        let out = Command::new("bash")
            .arg(repo().join("ingress/nginx/stop.sh"))
            .arg(&self.run_dir)
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!(
                "stopping nginx in {}: {}",
                self.run_dir.display(),
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => eprintln!("stopping nginx in {}: {e}", self.run_dir.display()),
        }
    }
}

fn run_body(name: &str) -> serde_json::Value {
    json!({"name": name, "imagename": "bookworm", "cmd": "echo hello"})
}

async fn jobs_in(cluster: &Cluster, ns: &str) -> Vec<String> {
    Api::<Job>::namespaced(admin(cluster), ns)
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("listing jobs in {ns}: {e}"))
        .items
        .into_iter()
        .filter_map(|j| j.metadata.name)
        .collect()
}

fn names(list: &serde_json::Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("list is not a JSON array: {list}"))
        .iter()
        .filter_map(|j| j["name"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn a_tool_runs_lists_and_deletes_a_job_through_nginx() {
    let cluster = cluster();
    let pki = Pki::new(&cluster);
    let tool = "ing-run";
    let ns = "tool-ing-run";
    provision(&pki, tool);
    let gw = Gateway::start(&pki, &[]);
    let ingress = Ingress::start(&pki, &gw);
    let (cert, key) = pki.tool_cert(tool);
    let client = https(&pki.path("ca.crt"), Some((&cert, &key)));
    let (status, _) = call(client.delete(ingress.url("/jobs/api/v1/flush/"))).await;
    assert_eq!(status, 200, "flush: {}", ingress.error_log());

    let (status, body) = call(
        client
            .post(ingress.url("/jobs/api/v1/run/"))
            .json(&run_body("via-nginx")),
    )
    .await;
    assert_eq!(status, 200, "run: {body}\n{}", gw.log_text());
    assert_eq!(body["metadata"]["namespace"], ns);

    // the job really exists in the tool's namespace, labelled as the tool's
    let job = Api::<Job>::namespaced(admin(&cluster), ns)
        .get_opt("via-nginx")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("job via-nginx was not created in {ns}"));
    let labels = job.metadata.labels.unwrap_or_default();
    assert_eq!(
        labels
            .get("app.kubernetes.io/created-by")
            .map(String::as_str),
        Some(tool)
    );

    let (status, list) = call(client.get(ingress.url("/jobs/api/v1/list/"))).await;
    assert_eq!(status, 200, "list: {list}");
    assert_eq!(names(&list), ["via-nginx"]);

    let (status, body) = call(client.delete(ingress.url("/jobs/api/v1/delete/via-nginx"))).await;
    assert_eq!(status, 200, "delete: {body}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left = jobs_in(&cluster, ns).await;
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "job still in {ns} after delete: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, list) = call(client.get(ingress.url("/jobs/api/v1/list/"))).await;
    assert_eq!((status, list), (200, json!([])));
}

#[tokio::test]
async fn nginx_rejects_no_certificate_and_certificates_of_another_ca() {
    let cluster = cluster();
    let pki = Pki::new(&cluster);
    let tool = "ing-rej";
    let ns = "tool-ing-rej";
    provision(&pki, tool);
    let gw = Gateway::start(&pki, &[]);
    let ingress = Ingress::start(&pki, &gw);

    // a second, unrelated dev CA, and a certificate it signs for the same tool name
    let other = pki.dir.path().join("other-ca");
    run_ok(
        Command::new("bash")
            .arg(repo().join("certs-dev/mint.sh"))
            .args(["all", "--out"])
            .arg(&other),
    );
    let prefix = other.join("ing-rej");
    run_ok(
        Command::new("bash")
            .arg(repo().join("certs-dev/mint.sh"))
            .arg("client")
            .arg("--ca-cert")
            .arg(other.join("ca.crt"))
            .arg("--ca-key")
            .arg(other.join("ca.key"))
            .arg("--out")
            .arg(&prefix)
            .arg("--subj")
            .arg(format!("/O=toolforge/CN={tool}")),
    );
    let (foreign_cert, foreign_key) = (prefix.with_extension("crt"), prefix.with_extension("key"));

    let anonymous = https(&pki.path("ca.crt"), None);
    let foreign = https(&pki.path("ca.crt"), Some((&foreign_cert, &foreign_key)));
    for (who, client, nginx_says) in [
        (
            "no certificate",
            &anonymous,
            "No required SSL certificate was sent",
        ),
        ("another CA", &foreign, "The SSL certificate error"),
    ] {
        for req in [
            client.get(ingress.url("/jobs/api/v1/list/")),
            client
                .post(ingress.url("/jobs/api/v1/run/"))
                .json(&run_body("must-not-run")),
        ] {
            let (status, body) = call(req).await;
            assert_eq!(status, 400, "{who}: {body}");
            // nginx's own error page, not a gateway answer (which would be JSON)
            let text = body.as_str().unwrap_or_default();
            assert!(text.contains(nginx_says), "{who}: {body}");
        }
    }
    assert_eq!(
        jobs_in(&cluster, ns).await,
        Vec::<String>::new(),
        "a rejected request created a job"
    );

    // the same tool with its genuine certificate gets through the same ingress
    let (cert, key) = pki.tool_cert(tool);
    let genuine = https(&pki.path("ca.crt"), Some((&cert, &key)));
    let (status, list) = call(genuine.get(ingress.url("/jobs/api/v1/list/"))).await;
    assert_eq!(status, 200, "{list}");
    assert!(list.is_array(), "{list}");
}

#[tokio::test]
async fn a_client_supplied_subject_header_does_not_change_who_acts() {
    let cluster = cluster();
    let pki = Pki::new(&cluster);
    let owner = "ing-owner";
    let victim = "ing-victim";
    provision(&pki, owner);
    provision(&pki, victim);
    let gw = Gateway::start(&pki, &[]);
    let ingress = Ingress::start(&pki, &gw);
    let (cert, key) = pki.tool_cert(owner);
    let client = https(&pki.path("ca.crt"), Some((&cert, &key)));
    let (status, _) = call(client.delete(ingress.url("/jobs/api/v1/flush/"))).await;
    assert_eq!(status, 200);
    let forged = format!("CN={victim},O=toolforge");

    for (header, job) in [
        ("ssl-client-subject-dn", "spoof-dash"),
        ("ssl_client_subject_dn", "spoof-underscore"),
    ] {
        let (status, body) = call(
            client
                .post(ingress.url("/jobs/api/v1/run/"))
                .header(header, &forged)
                .json(&run_body(job)),
        )
        .await;
        assert_eq!(status, 200, "{header}: {body}\n{}", gw.log_text());
        assert_eq!(
            body["metadata"]["namespace"], "tool-ing-owner",
            "{header}: {body}"
        );
    }

    let mut owned = jobs_in(&cluster, "tool-ing-owner").await;
    owned.sort();
    assert_eq!(owned, ["spoof-dash", "spoof-underscore"]);
    assert_eq!(
        jobs_in(&cluster, "tool-ing-victim").await,
        Vec::<String>::new(),
        "a forged header acted as {victim}"
    );

    // reading with a forged header also shows the certificate owner's jobs
    let (status, list) = call(
        client
            .get(ingress.url("/jobs/api/v1/list/"))
            .header("ssl-client-subject-dn", &forged),
    )
    .await;
    assert_eq!(status, 200, "{list}");
    let mut listed = names(&list);
    listed.sort();
    assert_eq!(listed, ["spoof-dash", "spoof-underscore"]);
}

/// Requests a gateway answered on the release-13 list route, from its /metrics.
async fn lists_served(gw: &Gateway) -> u64 {
    metrics_text(gw)
        .await
        .lines()
        .filter(|l| l.starts_with("jobs_gateway_http_requests_total{"))
        .filter(|l| l.contains("route=\"/jobs/api/v1/list/\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

#[tokio::test]
async fn nginx_sends_all_requests_of_one_tool_to_one_of_two_gateways() {
    let cluster = cluster();
    let pki = Pki::new(&cluster);
    let tools = ["ing-hash-a", "ing-hash-b", "ing-hash-c"];
    for tool in tools {
        provision(&pki, tool);
    }
    let env = [("JOBS_GATEWAY_RATE_BURST", "200")];
    let mut gws = vec![
        start_gateway_retrying(&pki, &env),
        start_gateway_retrying(&pki, &env),
    ];
    let ingress = Ingress::start_many(&pki, &[&gws[0], &gws[1]]);
    let mut placed = Vec::new();
    for round in 0..2 {
        for (i, tool) in tools.iter().enumerate() {
            let (cert, key) = pki.tool_cert(tool);
            let client = https(&pki.path("ca.crt"), Some((&cert, &key)));
            let before = [lists_served(&gws[0]).await, lists_served(&gws[1]).await];
            for _ in 0..10 {
                let (status, body) = call(client.get(ingress.url("/jobs/api/v1/list/"))).await;
                assert_eq!(status, 200, "{tool}: {body}\n{}", ingress.error_log());
            }
            let after = [lists_served(&gws[0]).await, lists_served(&gws[1]).await];
            let served = [after[0] - before[0], after[1] - before[1]];
            assert!(
                served == [10, 0] || served == [0, 10],
                "{tool}: all 10 requests on one gateway, got {served:?}"
            );
            let on = usize::from(served[1] == 10);
            if round == 0 {
                placed.push(on);
            } else {
                assert_eq!(placed[i], on, "{tool} stays on the same gateway");
            }
        }
    }
    eprintln!("tools {tools:?} placed on gateways {placed:?}");

    // the first tool's gateway goes away: every tool is served by the other one, at once
    // (nginx passes a request it could not send to the next server)
    drop(gws.remove(placed[0]));
    let survivor = &gws[0];
    for tool in tools {
        let (cert, key) = pki.tool_cert(tool);
        let client = https(&pki.path("ca.crt"), Some((&cert, &key)));
        let before = lists_served(survivor).await;
        for _ in 0..5 {
            let (status, body) = call(client.get(ingress.url("/jobs/api/v1/list/"))).await;
            assert_eq!(status, 200, "{tool}: {body}\n{}", ingress.error_log());
        }
        assert_eq!(lists_served(survivor).await - before, 5, "{tool}");
    }
}
