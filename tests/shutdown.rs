//! Stopping the gateway the way Kubernetes does (SIGTERM, then SIGKILL after the pod's grace
//! period): traffic is turned away first, nothing in flight is cut, the process exits by itself.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_turns_traffic_away_then_finishes_what_is_in_flight_and_exits() {
    let cluster = cluster();
    let pki = Pki::new(&cluster);
    provision(&pki, "stop-alice");
    provision(&pki, "stop-bob");
    let delay = Duration::from_millis(3000);
    let mut gw = Gateway::start(
        &pki,
        &[
            ("JOBS_GATEWAY_SHUTDOWN_DELAY_MS", "3000"),
            ("JOBS_GATEWAY_SHUTDOWN_GRACE_MS", "15000"),
            // bob's hung read ends (with 503) well after the delay: his request is in flight
            // when the listeners stop
            ("JOBS_GATEWAY_FS_TIMEOUT_MS", "6000"),
            ("JOBS_GATEWAY_CREDENTIAL_RECHECK_MS", "0"),
        ],
    );
    let admin = |path: &str| format!("http://{}{path}", gw.admin);
    let (ac, ak) = pki.tool_cert("stop-alice");
    let alice = https(&cluster.ca, Some((&ac, &ak)));
    let (bc, bk) = pki.tool_cert("stop-bob");
    let bob = https(&cluster.ca, Some((&bc, &bk)));

    // alice follows the file log of a job
    fresh_filelog_job(&alice, &gw, "tail").await;
    std::fs::write(pki.home_root.join("stop-alice/tail.out"), "one\ntwo\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let mut follow = follow_logs(
        &alice,
        gw.direct_url("/jobs/api/v1/jobs/tail/logs?follow=true"),
    )
    .await;
    let followed = tokio::spawn(async move {
        let mut text = String::new();
        loop {
            match follow.chunk().await {
                Ok(Some(chunk)) => text.push_str(&String::from_utf8_lossy(&chunk)),
                Ok(None) => return Ok((text, Instant::now())),
                Err(e) => return Err(format!("{e} after {text:?}")),
            }
        }
    });

    // bob's request is in flight: his certificate read hangs (as on a hung NFS server) until
    // the fs timeout
    let (status, _) = call(bob.get(gw.direct_url("/api/v1/list/"))).await;
    assert_eq!(status, 200);
    let hung_home = hang_certificate(&pki, "stop-bob");
    let in_flight = tokio::spawn({
        let url = gw.direct_url("/api/v1/list/");
        async move { (try_call(bob.get(url)).await, Instant::now()) }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (status, _) = call(reqwest::Client::new().get(admin("/readyz"))).await;
    assert_eq!(status, 200, "ready before the signal");
    let signalled = Instant::now();
    gw.signal("TERM");

    // at once: not ready any more (traffic goes elsewhere), still alive, still serving
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let (status, body) = call(reqwest::Client::new().get(admin("/readyz"))).await;
        if status == 503 {
            assert_eq!(body, json!("draining"));
            break;
        }
        assert!(Instant::now() < deadline, "/readyz still {status} {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) = call(reqwest::Client::new().get(admin("/healthz"))).await;
    assert_eq!(status, 200, "alive while draining");
    let late = https(&cluster.ca, Some((&ac, &ak)));
    let (status, body) = call(late.get(gw.direct_url("/api/v1/list/"))).await;
    assert_eq!(status, 200, "served during the delay: {body}");

    // after the delay the follow stream ends cleanly (not cut), and no new connection is taken
    let (text, ended) = tokio::time::timeout(Duration::from_secs(20), followed)
        .await
        .unwrap_or_else(|_| panic!("the followed log never ended: {}", gw.log_text()))
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("the followed log was cut: {e}"));
    assert!(
        text.contains("\"one\"") && text.contains("\"two\""),
        "{text}"
    );
    let ended_after = ended - signalled;
    assert!(
        ended_after >= delay && ended_after < Duration::from_secs(10),
        "the stream ended {ended_after:?} after SIGTERM"
    );
    for addr in [gw.direct, gw.ingress] {
        let deadline = Instant::now() + Duration::from_secs(2);
        while std::net::TcpStream::connect(addr).is_ok() {
            assert!(
                Instant::now() < deadline,
                "{addr} still accepts connections after the delay"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // the request in flight gets its real answer (503 after the fs timeout), not a reset
    let (answer, answered) = tokio::time::timeout(Duration::from_secs(20), in_flight)
        .await
        .unwrap_or_else(|_| panic!("no answer to the request in flight: {}", gw.log_text()))
        .unwrap_or_else(|e| panic!("{e}"));
    let (status, body) = answer.unwrap_or_else(|e| panic!("the request in flight was cut: {e}"));
    assert!(
        answered > ended,
        "answered after the listeners stopped (else this proves nothing)"
    );
    assert_read_timed_out(status, &body);

    // and then the process exits by itself, successfully, well within the grace time
    let exit = gw.wait_exit(Duration::from_secs(10));
    drop(hung_home);
    let log = gw.log_text();
    assert!(
        exit.is_some_and(|s| s.success()),
        "exit {exit:?} after SIGTERM: {log}"
    );
    assert!(log.contains("SIGTERM: shutting down"), "{log}");
    assert!(
        log.contains("stopped: every request in flight finished"),
        "{log}"
    );
}

#[tokio::test]
async fn a_second_signal_stops_at_once() {
    install_crypto();
    let cluster = cluster();
    let pki = Pki::new(&cluster);
    let mut gw = Gateway::start(
        &pki,
        &[
            ("JOBS_GATEWAY_SHUTDOWN_DELAY_MS", "30000"),
            ("JOBS_GATEWAY_SHUTDOWN_GRACE_MS", "30000"),
        ],
    );
    gw.signal("TERM");
    // the first signal is being handled: readiness fails
    let deadline = Instant::now() + Duration::from_secs(5);
    let admin = format!("http://{}/readyz", gw.admin);
    while call(reqwest::Client::new().get(&admin)).await.0 != 503 {
        assert!(
            Instant::now() < deadline,
            "never draining: {}",
            gw.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Ctrl-C, impatient: no 30 s delay and 30 s grace
    let again = Instant::now();
    gw.signal("INT");
    let exit = gw.wait_exit(Duration::from_secs(5));
    let log = gw.log_text();
    assert!(
        exit.is_some_and(|s| s.success()),
        "exit {exit:?} {:?} after the second signal: {log}",
        again.elapsed()
    );
    assert!(log.contains("SIGINT again: stopped at once"), "{log}");
}
