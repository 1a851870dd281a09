//! Per-tool rate limits, job quotas, isolation from a hung home, and the audit trail.

mod common;

use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, ListParams};
use serde_json::json;

fn run_body(name: &str) -> serde_json::Value {
    json!({"name": name, "imagename": "bookworm", "cmd": "sleep 1000"})
}

#[tokio::test]
async fn a_tool_over_its_rate_gets_429_while_others_are_unaffected() {
    let cluster = cluster();
    let pki = Pki::new(&cluster);
    provision(&pki, "rl-alice");
    provision(&pki, "rl-bob");
    let gw = Gateway::start(
        &pki,
        &[
            ("JOBS_GATEWAY_RATE_PER_SEC", "1"),
            ("JOBS_GATEWAY_RATE_BURST", "5"),
        ],
    );
    let (ac, ak) = pki.tool_cert("rl-alice");
    let (bc, bk) = pki.tool_cert("rl-bob");
    let alice = https(&cluster.ca, Some((&ac, &ak)));
    let bob = https(&cluster.ca, Some((&bc, &bk)));
    let mut refused = None;
    // sent one after another: on a slow machine the bucket refills a little in between, so go
    // on until the refusal rather than stop at burst + a few
    for i in 0..50 {
        let resp = alice
            .get(gw.direct_url("/api/v1/list/"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        if resp.status().as_u16() == 429 {
            let retry = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let body: serde_json::Value = resp.json().await.unwrap_or_default();
            refused = Some((i, retry, body));
            break;
        }
        assert_eq!(resp.status().as_u16(), 200);
    }
    let (i, retry, body) = refused.unwrap_or_else(|| panic!("alice was never rate limited"));
    assert!(i >= 5, "refused after only {i} requests; the burst is 5");
    assert!(retry.is_some_and(|r| r >= 1), "Retry-After missing");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("too many requests"),
        "{body}"
    );
    let (status, _) = call(bob.get(gw.direct_url("/api/v1/list/"))).await;
    assert_eq!(status, 200, "bob is not affected by alice's limit");
}

#[tokio::test]
async fn the_seventeenth_running_job_is_refused_even_in_a_race() {
    let cluster = cluster();
    let pki = Pki::new(&cluster);
    let tool = "quota-grid";
    provision(&pki, tool);
    let gw = Gateway::start(
        &pki,
        &[
            ("JOBS_GATEWAY_WRITE_BURST", "100"),
            ("JOBS_GATEWAY_RATE_BURST", "200"),
        ],
    );
    let (c, k) = pki.tool_cert(tool);
    let client = https(&cluster.ca, Some((&c, &k)));
    call(client.delete(gw.direct_url("/api/v1/flush/"))).await;
    for i in 1..=15 {
        let (status, body) = call(
            client
                .post(gw.direct_url("/api/v1/run/"))
                .json(&run_body(&format!("j{i}"))),
        )
        .await;
        assert_eq!(status, 200, "job {i}: {body}");
    }
    // two runs race for the 16th and last slot
    let (a, b) = tokio::join!(
        call(
            client
                .post(gw.direct_url("/api/v1/run/"))
                .json(&run_body("race-a"))
        ),
        call(
            client
                .post(gw.direct_url("/api/v1/run/"))
                .json(&run_body("race-b"))
        )
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(
        statuses,
        [200, 403],
        "exactly one of the racing runs gets the last slot: {a:?} {b:?}"
    );
    let refused = if a.0 == 403 { a.1 } else { b.1 };
    let msg = refused["message"].as_str().unwrap_or_default();
    assert!(msg.contains("quota") && msg.contains("16"), "{msg}");
    let (status, body) = call(
        client
            .post(gw.direct_url("/api/v1/run/"))
            .json(&run_body("j17")),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let jobs = Api::<Job>::namespaced(admin(&cluster), "tool-quota-grid")
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(jobs.items.len(), 16);
    // scheduled jobs have their own quota
    let (status, body) = call(client.post(gw.direct_url("/api/v1/run/")).json(
        &json!({"name": "cron", "imagename": "bookworm", "cmd": "date", "schedule": "@hourly"}),
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    call(client.delete(gw.direct_url("/api/v1/flush/"))).await;
}

#[tokio::test]
async fn a_hung_home_read_for_one_tool_does_not_delay_others() {
    let cluster = cluster();
    let pki = Pki::new(&cluster);
    provision(&pki, "hang-alice");
    provision(&pki, "hang-bob");
    let gw = Gateway::start(
        &pki,
        &[
            ("JOBS_GATEWAY_FS_TIMEOUT_MS", "5000"),
            ("JOBS_GATEWAY_CREDENTIAL_RECHECK_MS", "0"),
        ],
    );
    let (ac, ak) = pki.tool_cert("hang-alice");
    let (bc, bk) = pki.tool_cert("hang-bob");
    let alice = https(&cluster.ca, Some((&ac, &ak)));
    let bob = https(&cluster.ca, Some((&bc, &bk)));
    let (status, _) = call(alice.get(gw.direct_url("/api/v1/list/"))).await;
    assert_eq!(status, 200);
    // bob is warm too, so his timings below are not those of a first request
    let (status, _) = call(bob.get(gw.direct_url("/api/v1/list/"))).await;
    assert_eq!(status, 200);

    // alice's certificate hangs like a hung NFS read
    let hung_home = hang_certificate(&pki, "hang-alice");

    let start = Instant::now();
    let hung = tokio::spawn({
        let url = gw.direct_url("/api/v1/list/");
        let alice = alice.clone();
        async move { call(alice.get(url)).await }
    });
    // while alice's read hangs, bob's requests go through promptly
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..5 {
        let t = Instant::now();
        let (status, _) = call(bob.get(gw.direct_url("/api/v1/list/"))).await;
        assert_eq!(status, 200);
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "bob waited {:?} (alice's read hangs for 5 s)",
            t.elapsed()
        );
    }
    let (status, body) = hung.await.unwrap_or_else(|e| panic!("{e}"));
    assert_read_timed_out(status, &body);
    assert!(start.elapsed() < Duration::from_secs(15));
    // a second request for alice fails fast instead of piling up another blocked read
    let t = Instant::now();
    let (status, _) = call(alice.get(gw.direct_url("/api/v1/list/"))).await;
    assert_eq!(status, 503);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "alice's second request took {:?} (a new read would hang for 5 s)",
        t.elapsed()
    );
    // unblock the stuck reader so the gateway can finish cleanly
    drop(hung_home);
}

#[tokio::test]
async fn mutating_calls_leave_one_audit_line_without_secrets() {
    let cluster = cluster();
    let pki = Pki::new(&cluster);
    provision(&pki, "audit-alice");
    let gw = Gateway::start(&pki, &[("JOBS_GATEWAY_LOG_FORMAT", "json")]);
    let (c, k) = pki.tool_cert("audit-alice");
    let client = https(&cluster.ca, Some((&c, &k)));
    let resp = client
        .post(gw.direct_url("/api/v1/run/"))
        .json(&run_body("audited"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 200);
    let id = resp
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no x-request-id header"));
    call(client.delete(gw.direct_url("/api/v1/delete/audited"))).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = gw.log_text();
    let audit: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["target"] == "audit")
        .collect();
    let run = audit
        .iter()
        .find(|l| l["fields"]["request_id"] == id.as_str())
        .unwrap_or_else(|| panic!("no audit line for request {id}: {log}"));
    assert_eq!(run["fields"]["tool"], "audit-alice");
    assert_eq!(run["fields"]["job"], "audited");
    assert_eq!(run["fields"]["action"], "POST");
    assert_eq!(run["fields"]["result"], "ok");
    assert!(audit
        .iter()
        .any(|l| l["fields"]["action"] == "DELETE" && l["fields"]["job"] == "audited"));
    assert!(!log.contains("BEGIN"), "PEM material in the log");
    let key_text = std::fs::read_to_string(&k).unwrap_or_default();
    let key_body = key_text.lines().nth(1).unwrap_or("-");
    assert!(!log.contains(key_body), "key material in the log");
}

#[tokio::test]
async fn a_request_given_up_during_a_hung_read_leaves_the_tool_failing_fast() {
    let cluster = cluster();
    let pki = Pki::new(&cluster);
    provision(&pki, "hang-carol");
    let gw = Gateway::start(
        &pki,
        &[
            ("JOBS_GATEWAY_FS_TIMEOUT_MS", "5000"),
            ("JOBS_GATEWAY_CREDENTIAL_RECHECK_MS", "0"),
        ],
    );
    let (c, k) = pki.tool_cert("hang-carol");
    let carol = https(&cluster.ca, Some((&c, &k)));
    let (status, _) = call(carol.get(gw.direct_url("/api/v1/list/"))).await;
    assert_eq!(status, 200);
    let hung_home = hang_certificate(&pki, "hang-carol");

    // the client gives up while the gateway's read of the certificate hangs
    let impatient = carol
        .get(gw.direct_url("/api/v1/list/"))
        .timeout(Duration::from_millis(500))
        .send()
        .await;
    assert!(impatient.is_err(), "{impatient:?}");
    // that read still holds a slot: the next request must not start another and wait 5 s
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    let (status, body) = call(carol.get(gw.direct_url("/api/v1/list/"))).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "the next request took {:?}",
        t.elapsed()
    );
    drop(hung_home);
}

/// Reads from `tls` until the server closes the connection (or 10 s pass); what was read and
/// when the close came.
async fn read_until_closed(
    tls: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
) -> (String, Option<Instant>) {
    use tokio::io::AsyncReadExt;
    let mut text = String::new();
    let mut chunk = [0u8; 16 * 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, tls.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (text, Some(Instant::now())),
            Ok(Ok(n)) => text.push_str(&String::from_utf8_lossy(&chunk[..n])),
            Err(_) => return (text, None),
        }
    }
}

#[tokio::test]
async fn silent_and_idle_client_connections_are_closed_but_a_followed_log_is_not() {
    use tokio::io::AsyncWriteExt;
    let cluster = cluster();
    let pki = Pki::new(&cluster);
    provision(&pki, "idle-dave");
    let gw = Gateway::start(&pki, &[("JOBS_GATEWAY_CLIENT_IDLE_MS", "1000")]);
    let (c, k) = pki.tool_cert("idle-dave");

    // HTTP/2 is not offered (its connections would have no idle limit): h1 is chosen
    let offered = tls_stream_offering(
        gw.direct,
        &cluster.ca,
        Some((&c, &k)),
        &[b"h2", b"http/1.1"],
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(offered.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    drop(offered);
    // nor by prior knowledge (the h2 preface without ALPN): no HTTP/2 SETTINGS frame comes back
    let mut h2 = tls_stream(gw.direct, &cluster.ca, Some((&c, &k)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    h2.flush().await.unwrap_or_else(|e| panic!("{e}"));
    let (text, closed) = read_until_closed(&mut h2).await;
    assert!(
        closed.is_some() && (text.is_empty() || text.starts_with("HTTP/1.1 ")),
        "the h2 preface got {text:?}"
    );

    // connected, authenticated, and then silent: let go after the idle time
    let mut silent = tls_stream(gw.direct, &cluster.ca, Some((&c, &k)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let opened = Instant::now();
    let (text, closed) = read_until_closed(&mut silent).await;
    let after = closed.map(|t| t - opened);
    assert!(
        after.is_some_and(|d| d >= Duration::from_millis(900)),
        "a silent connection was closed after {after:?}: {text:?}"
    );

    // the same on the plain-HTTP admin port
    let admin = std::net::TcpStream::connect(gw.admin).unwrap_or_else(|e| panic!("{e}"));
    admin
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap_or_else(|e| panic!("{e}"));
    let opened = Instant::now();
    let mut buf = [0u8; 64];
    let read = std::io::Read::read(&mut &admin, &mut buf);
    assert!(
        matches!(read, Ok(0)) && opened.elapsed() < Duration::from_secs(5),
        "a silent admin connection: {read:?} after {:?}",
        opened.elapsed()
    );

    // one request answered, then idle keep-alive: closed after the idle time too
    let mut idle = tls_stream(gw.direct, &cluster.ca, Some((&c, &k)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    idle.write_all(b"GET /api/v1/list/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let sent = Instant::now();
    let (text, closed) = read_until_closed(&mut idle).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let after = closed.map(|t| t - sent);
    assert!(
        after.is_some_and(|d| d >= Duration::from_millis(900)),
        "an idle keep-alive connection was closed after {after:?}"
    );

    // a request whose body comes slowly is being served, not idle: answered, not cut
    let body = br#"{"name": "slow", "imagename": "bookworm", "cmd": "./slow.sh"}"#;
    let mut slow = tls_stream(gw.direct, &cluster.ca, Some((&c, &k)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let head = format!(
        "POST /jobs/api/v1/jobs/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    slow.write_all(head.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for part in body.chunks(body.len() / 3 + 1) {
        slow.flush().await.unwrap_or_else(|e| panic!("{e}"));
        tokio::time::sleep(Duration::from_millis(700)).await;
        slow.write_all(part).await.unwrap_or_else(|e| panic!("{e}"));
    }
    slow.flush().await.unwrap_or_else(|e| panic!("{e}"));
    let (text, _) = read_until_closed(&mut slow).await;
    assert!(
        text.starts_with("HTTP/1.1 201"),
        "a body sent over 2 s: {text}"
    );

    // a followed log outlives the idle time: the connection is busy, not idle
    let client = https(&cluster.ca, Some((&c, &k)));
    fresh_filelog_job(&client, &gw, "tail").await;
    let log = pki.home_root.join("idle-dave/tail.out");
    std::fs::write(&log, "early\n").unwrap_or_else(|e| panic!("{e}"));
    let mut follow = follow_logs(
        &client,
        gw.direct_url("/jobs/api/v1/jobs/tail/logs?follow=true"),
    )
    .await;
    let started = Instant::now();
    let mut seen = String::new();
    let mut appended = false;
    while !seen.contains("late") {
        if !appended && started.elapsed() > Duration::from_millis(2500) {
            append_line(&log, "late");
            appended = true;
        }
        match tokio::time::timeout(Duration::from_millis(500), follow.chunk()).await {
            Ok(Ok(Some(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            Ok(other) => panic!("the followed log ended: {other:?} after {seen}"),
            Err(_) => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no 'late' line: {seen}"
        );
    }
    assert!(seen.contains("early"), "{seen}");
}
