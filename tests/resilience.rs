//! The apiserver going away and coming back, on a cluster of this test's own (so stopping its
//! apiserver cannot disturb other tests).

mod common;

use std::time::{Duration, Instant};

use common::*;

#[tokio::test]
async fn apiserver_down_gives_503_quickly_and_recovery_needs_no_restart() {
    let (own, cluster) = OwnCluster::start(&[], &[]);
    let pki = Pki::new(&cluster);
    provision(&pki, "res-alice");
    // every list reads the apiserver (the watch cache would answer from its last events)
    let gw = Gateway::start(&pki, &[("JOBS_GATEWAY_WATCH_CACHE", "off")]);
    let (c, k) = pki.tool_cert("res-alice");
    let client = https(&cluster.ca, Some((&c, &k)));
    let plain = reqwest::Client::new();
    let ready = |gw: &Gateway| format!("http://{}/readyz", gw.admin);

    let (status, _) = call(client.get(gw.direct_url("/api/v1/list/"))).await;
    assert_eq!(status, 200);
    assert_eq!(call(plain.get(ready(&gw))).await.0, 200);

    own.script("stop.sh", &["kube-apiserver"]);
    let t = Instant::now();
    let (status, body) = call(client.get(gw.direct_url("/api/v1/list/"))).await;
    let took = t.elapsed();
    assert_eq!(status, 503, "{body}");
    assert!(took < Duration::from_secs(2), "503 took {took:?}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("unreachable"),
        "{body}"
    );
    let (status, _) = call(plain.get(ready(&gw))).await;
    assert_eq!(status, 503, "readiness reflects the apiserver");
    let (status, _) = call(plain.get(format!("http://{}/healthz", gw.admin))).await;
    assert_eq!(status, 200, "liveness does not depend on the apiserver");

    own.script("start.sh", &["kube-apiserver"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = call(client.get(gw.direct_url("/api/v1/list/"))).await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "no recovery: {status} {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(call(plain.get(ready(&gw))).await.0, 200);
}
