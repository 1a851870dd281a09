//! OpenAPI document, Swagger UI, metrics and request ids.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// The Python with openapi-spec-validator that tests/run.sh installs.
fn validator_python() -> String {
    std::env::var("TJF_PY_TOOLS").unwrap_or_else(|_| "/var/cache/jobs-gateway-py/bin/python".into())
}

#[tokio::test]
async fn openapi_document_validates_and_matches_the_served_routes() {
    let cluster = cluster();
    let pki = Pki::new(&cluster);
    let tool = "doc-alice";
    provision(&pki, tool);
    let gw = Gateway::start(
        &pki,
        &[
            ("JOBS_GATEWAY_RATE_BURST", "500"),
            ("JOBS_GATEWAY_WRITE_BURST", "500"),
        ],
    );
    let (c, k) = pki.tool_cert(tool);
    let client = https(&cluster.ca, Some((&c, &k)));
    let anonymous = https(&cluster.ca, None);

    let (status, doc) = call(anonymous.get(gw.direct_url("/openapi.json"))).await;
    assert_eq!(status, 200);
    let file = pki.dir.path().join("openapi.json");
    std::fs::write(&file, doc.to_string()).unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(validator_python())
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("running openapi-spec-validator: {e}"));
    assert!(
        out.status.success(),
        "the document is not valid OpenAPI: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // every documented operation is really served (no route-404, no 405)
    let paths = doc["paths"].as_object().cloned().unwrap_or_default();
    assert!(paths.len() > 40, "only {} paths documented", paths.len());
    let mut checked = 0;
    let mut failures = Vec::new();
    for (path, ops) in &paths {
        let url = path.replace("{tool}", tool).replace("{name}", "nosuchjob");
        for method in ops
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes())
                .unwrap_or_else(|e| panic!("{e}"));
            let mut req = client.request(m, gw.direct_url(&url));
            if matches!(method.as_str(), "post" | "put" | "patch") {
                req = req.json(&serde_json::json!({}));
            }
            let (status, body) = call(req).await;
            checked += 1;
            let route_missing = status == 405
                || (status == 404
                    && body["message"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("no such route"));
            if route_missing || status >= 500 {
                failures.push(format!("{method} {url}: {status} {body}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "documented but not served properly:\n{}",
        failures.join("\n")
    );
    assert!(checked > 50, "{checked}");

    // and an undocumented path is not served
    let (status, _) = call(client.get(gw.direct_url("/jobs/api/v1/nosuchroute/"))).await;
    assert_eq!(status, 404);
    assert!(!paths.contains_key("/jobs/api/v1/nosuchroute/"));

    // Swagger UI, with its assets served by the gateway itself
    let page = anonymous
        .get(gw.direct_url("/docs/"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.unwrap_or_default();
    assert!(
        html.contains("/docs/swagger-ui-bundle.js") && !html.contains("http"),
        "{html}"
    );
    for asset in [
        "/docs/swagger-ui-bundle.js",
        "/docs/swagger-ui.css",
        "/docs/init.js",
    ] {
        let r = anonymous
            .get(gw.direct_url(asset))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status().as_u16(), 200, "{asset}");
        assert!(
            r.bytes().await.map(|b| b.len()).unwrap_or(0) > 20,
            "{asset}"
        );
    }
}

/// The gateway's /metrics text (admin port).
fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

#[tokio::test]
async fn metrics_move_with_traffic_and_responses_carry_request_ids() {
    let cluster = cluster();
    let pki = Pki::new(&cluster);
    let tool = "met-alice";
    provision(&pki, tool);
    // each list reads the apiserver (the counts below are of those reads)
    let gw = Gateway::start(
        &pki,
        &[
            ("JOBS_GATEWAY_RATE_BURST", "4"),
            ("JOBS_GATEWAY_RATE_PER_SEC", "1"),
            ("JOBS_GATEWAY_WATCH_CACHE", "off"),
        ],
    );
    let (c, k) = pki.tool_cert(tool);
    let client = https(&cluster.ca, Some((&c, &k)));
    let before = metrics_text(&gw).await;
    assert_eq!(metric(&before, "jobs_gateway_http_requests_total{"), 0.0);

    // six at once: the burst of 4 lets four through whatever the machine's speed (sent one
    // after another, slow replies would let the bucket refill in between)
    let replies = futures::future::join_all(
        (0..6).map(|_| client.get(gw.direct_url("/jobs/api/v1/list/")).send()),
    )
    .await;
    let mut ids = std::collections::HashSet::new();
    let (mut ok, mut limited) = (0u32, 0u32);
    for r in replies {
        let r = r.unwrap_or_else(|e| panic!("{e}"));
        let id = r
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        ids.insert(id.unwrap_or_else(|| panic!("no x-request-id")));
        match r.status().as_u16() {
            200 => ok += 1,
            429 => limited += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(ids.len(), 6, "request ids are unique");
    assert!(
        ok >= 4 && limited >= 1,
        "burst of 4: {ok} answered, {limited} limited"
    );

    let after = metrics_text(&gw).await;
    let series = |status: &str| {
        format!(
            r#"jobs_gateway_http_requests_total{{route="/jobs/api/v1/list/",method="GET",status="{status}"}}"#
        )
    };
    assert_eq!(metric(&after, &series("200")), f64::from(ok), "{after}");
    assert_eq!(
        metric(&after, &series("429")),
        f64::from(limited),
        "{after}"
    );
    assert!(
        metric(
            &after,
            r#"jobs_gateway_refusals_total{reason="rate_limit"}"#
        ) >= 1.0,
        "{after}"
    );
    assert!(
        metric(
            &after,
            r#"jobs_gateway_kube_request_duration_seconds_count{verb="list",resource="jobs"}"#
        ) >= 4.0,
        "{after}"
    );
    assert!(
        metric(
            &after,
            r#"jobs_gateway_http_request_duration_seconds_bucket{route="/jobs/api/v1/list/",method="GET",le="+Inf"}"#
        ) >= 5.0
    );
    assert_eq!(
        metric(&after, "jobs_gateway_credential_cache_misses_total"),
        1.0,
        "{after}"
    );
    assert!(metric(&after, "jobs_gateway_credential_cache_hits_total") >= 3.0);
    assert_eq!(metric(&after, "jobs_gateway_credential_cache_tools"), 1.0);
    assert!(
        after.contains("jobs_gateway_http_requests_in_flight 0"),
        "{after}"
    );
}

#[tokio::test]
async fn routes_are_served_under_the_configured_prefix() {
    let cluster = cluster();
    let pki = Pki::new(&cluster);
    let tool = "pfx-alice";
    provision(&pki, tool);
    let gw = Gateway::start(&pki, &[("JOBS_GATEWAY_ROUTE_PREFIX", "/gw")]);
    let (c, k) = pki.tool_cert(tool);
    let client = https(&cluster.ca, Some((&c, &k)));
    for path in [
        "/gw/api/v1/list/",
        "/api/v1/list/",
        "/gw/v1/tool/pfx-alice/jobs/",
    ] {
        let (status, body) = call(client.get(gw.direct_url(path))).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (status, _) = call(client.get(gw.direct_url("/jobs/api/v1/list/"))).await;
    assert_eq!(status, 404, "the default prefix is replaced, not added");
    let (_, doc) = call(client.get(gw.direct_url("/openapi.json"))).await;
    assert!(doc["paths"]["/gw/api/v1/list/"]["get"].is_object());
    assert!(doc["paths"].get("/jobs/api/v1/list/").is_none());
}

#[tokio::test]
async fn a_quiet_tool_keeps_its_credentials_but_not_its_apiserver_connection() {
    let cluster = cluster();
    let pki = Pki::new(&cluster);
    let tool = "idle-alice";
    provision(&pki, tool);
    // long enough that the checks right after a (cold, slow on a busy machine) request still
    // see the connection open
    // no watches keep the connection open (the watch cache would, until it idles out)
    let gw = Gateway::start(
        &pki,
        &[
            ("JOBS_GATEWAY_KUBE_IDLE_MS", "2000"),
            ("JOBS_GATEWAY_WATCH_CACHE", "off"),
        ],
    );
    let apiserver_port: u16 = cluster
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("no port in {}", cluster.url));
    let (c, k) = pki.tool_cert(tool);
    let client = https(&cluster.ca, Some((&c, &k)));
    let before = gw.connections_to(apiserver_port);

    let (status, body) = call(client.get(gw.direct_url("/api/v1/list/"))).await;
    assert_eq!(status, 200, "{body}");
    let m = metrics_text(&gw).await;
    assert_eq!(metric(&m, "jobs_gateway_kube_connected_tools"), 1.0, "{m}");
    assert_eq!(
        gw.connections_to(apiserver_port),
        before + 1,
        "one HTTP/2 connection"
    );

    // quiet for longer than the idle time: the connection is closed, the tool stays warm
    let deadline = Instant::now() + Duration::from_secs(10);
    while gw.connections_to(apiserver_port) > before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        gw.connections_to(apiserver_port),
        before,
        "closed when idle"
    );
    let m = metrics_text(&gw).await;
    assert_eq!(metric(&m, "jobs_gateway_kube_connected_tools"), 0.0, "{m}");
    assert_eq!(
        metric(&m, "jobs_gateway_credential_cache_tools"),
        1.0,
        "{m}"
    );

    // the next request reconnects without reading the certificate again
    let (status, body) = call(client.get(gw.direct_url("/api/v1/list/"))).await;
    assert_eq!(status, 200, "{body}");
    let m = metrics_text(&gw).await;
    assert_eq!(metric(&m, "jobs_gateway_kube_connected_tools"), 1.0, "{m}");
    assert_eq!(
        metric(&m, "jobs_gateway_credential_cache_misses_total"),
        1.0,
        "{m}"
    );
}
