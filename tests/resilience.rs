//! The apiserver going away and coming back, on a cluster of this test's own (so stopping its
//! apiserver cannot disturb other tests).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

struct OwnCluster {
    run_dir: tempfile::TempDir,
}

impl OwnCluster {
    fn start() -> (Self, Cluster) {
        let run_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        run_ok(
            Command::new("bash")
                .arg(repo().join("tests/cluster/start.sh"))
                .arg(run_dir.path()),
        );
        let env =
            std::fs::read_to_string(run_dir.path().join("env")).unwrap_or_else(|e| panic!("{e}"));
        let get = |name: &str| -> String {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("export {name}=")))
                .map(|v| v.trim_matches('\'').to_string())
                .unwrap_or_else(|| panic!("{name} missing from the cluster env"))
        };
        let cluster = Cluster {
            url: get("TJF_KUBE_URL"),
            ca: PathBuf::from(get("TJF_KUBE_CA")),
            ca_key: PathBuf::from(get("TJF_KUBE_CA_KEY")),
            admin_cert: PathBuf::from(get("TJF_KUBE_ADMIN_CERT")),
            admin_key: PathBuf::from(get("TJF_KUBE_ADMIN_KEY")),
            audit_log: PathBuf::from(get("TJF_KUBE_AUDIT_LOG")),
            run_dir: run_dir.path().to_path_buf(),
        };
        (Self { run_dir }, cluster)
    }

    fn script(&self, name: &str, args: &[&str]) {
        run_ok(
            Command::new("bash")
                .arg(repo().join("tests/cluster").join(name))
                .arg(self.run_dir.path())
                .args(args),
        );
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo().join("tests/cluster/stop.sh"))
            .arg(self.run_dir.path())
            .arg("--purge")
            .output();
    }
}

#[tokio::test]
async fn apiserver_down_gives_503_quickly_and_recovery_needs_no_restart() {
    let (own, cluster) = OwnCluster::start();
    let pki = Pki::new(&cluster);
    provision(&pki, "res-alice");
    let gw = Gateway::start(&pki, &[]);
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
