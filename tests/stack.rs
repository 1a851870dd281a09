//! The one-command local stack: `dev/stack.sh up` on free ports in a temporary STACK_DIR,
//! then the curl lines it prints, pasted into a shell as a user would, then `dev/stack.sh down`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;

/// The target directory this test binary was built in (…/target/debug/jobs-gateway).
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_jobs-gateway"))
        .parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("odd binary path {}", env!("CARGO_BIN_EXE_jobs-gateway")))
        .to_path_buf()
}

struct Stack {
    dir: tempfile::TempDir,
    ports: [(&'static str, u16); 4],
}

impl Stack {
    fn script(&self, verb: &str) -> Command {
        let mut cmd = Command::new("bash");
        cmd.arg(repo().join("dev/stack.sh"))
            .arg(verb)
            .env("STACK_DIR", self.dir.path())
            // the stack builds the gateway with cargo: into the target dir of this test run
            .env("CARGO_TARGET_DIR", target_dir())
            // stack.sh starts its own cluster; nothing of the test cluster's env must leak in
            .env_remove("KUBECONFIG");
        for (k, v) in self.ports {
            cmd.env(k, v.to_string());
        }
        cmd
    }

    /// Where the stack's cluster keeps its etcd data (ETCD_DATA in cluster/cluster.conf).
    fn etcd_data(&self) -> PathBuf {
        let conf = std::fs::read_to_string(self.dir.path().join("cluster/cluster.conf"))
            .unwrap_or_else(|e| panic!("cluster/cluster.conf: {e}"));
        conf.lines()
            .find_map(|l| l.strip_prefix("ETCD_DATA="))
            .unwrap_or_else(|| panic!("no ETCD_DATA in cluster.conf:\n{conf}"))
            .into()
    }

    fn pids(&self) -> Vec<(String, u32)> {
        let d = self.dir.path();
        let mut files = vec![d.join("gateway.pid"), d.join("ingress/nginx.pid")];
        if let Ok(rd) = std::fs::read_dir(d.join("cluster/pids")) {
            files.extend(rd.filter_map(|e| e.ok()).map(|e| e.path()));
        }
        files
            .into_iter()
            .filter_map(|f| {
                let pid = std::fs::read_to_string(&f).ok()?.trim().parse().ok()?;
                Some((f.display().to_string(), pid))
            })
            .collect()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // --purge: the cluster's etcd data lives in /dev/shm, outside the temporary STACK_DIR
        match self.script("down").arg("--purge").output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!("dev/stack.sh down: {}", String::from_utf8_lossy(&o.stderr)),
            Err(e) => eprintln!("dev/stack.sh down: {e}"),
        }
    }
}

/// Running, and not a zombie waiting to be reaped.
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The printed `curl` command whose last argument ends with `url_end`, continuation
/// lines joined, exactly as it would be pasted into a shell.
fn printed_curl(stdout: &str, url_end: &str) -> String {
    let joined = stdout.replace("\\\n", " ");
    joined
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("curl ") && l.ends_with(url_end))
        .unwrap_or_else(|| panic!("no curl line for {url_end} in:\n{stdout}"))
        .to_string()
}

fn shell(line: &str) -> String {
    let o = Command::new("bash")
        .args(["-c", line])
        .output()
        .unwrap_or_else(|e| panic!("bash: {e}"));
    assert!(o.status.success(), "{line}\n{}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(line: &str) -> serde_json::Value {
    let out = shell(line);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{line}\nnot JSON ({e}): {out}"))
}

#[test]
fn stack_up_prints_working_curl_lines_and_down_stops_everything() {
    let ports = [
        ("GATEWAY_DIRECT_PORT", free_port()),
        ("GATEWAY_INGRESS_PORT", free_port()),
        ("GATEWAY_ADMIN_PORT", free_port()),
        ("INGRESS_PORT", free_port()),
    ];
    let stack = Stack {
        dir: tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")),
        ports,
    };

    let up = stack
        .script("up")
        .output()
        .unwrap_or_else(|e| panic!("dev/stack.sh up: {e}"));
    assert!(up.status.success(), "dev/stack.sh up failed: {}", text(&up));
    let stdout = String::from_utf8_lossy(&up.stdout).into_owned();

    // the gateway that runs is the binary built into this run's target dir
    let gw_pid = std::fs::read_to_string(stack.dir.path().join("gateway.pid"))
        .unwrap_or_else(|e| panic!("no gateway.pid: {e}"));
    let exe = std::fs::read_link(format!("/proc/{}/exe", gw_pid.trim()))
        .unwrap_or_else(|e| panic!("gateway {gw_pid} not running: {e}"));
    assert_eq!(exe, target_dir().join("debug/jobs-gateway"));

    // the demo job ran on the node; its output was read back through the gateway
    assert!(
        stdout.contains("Hello from demo-") && stdout.contains("a pod on the local node"),
        "no demo output: {}",
        text(&up)
    );
    assert!(stdout.contains("Python 3."), "{}", text(&up));

    let ingress_port = ports[3].1;
    let list = printed_curl(&stdout, &format!(":{ingress_port}/jobs/api/v1/list/"));
    let listed = json(&list);
    assert_eq!(listed, serde_json::json!([]), "a fresh stack has no jobs");

    let run = printed_curl(&stdout, &format!(":{ingress_port}/jobs/api/v1/run/"));
    let created = json(&run);
    assert_eq!(created["metadata"]["namespace"], "tool-alice", "{created}");
    let listed = json(&list);
    let names: Vec<&str> = listed
        .as_array()
        .unwrap_or_else(|| panic!("list is not an array: {listed}"))
        .iter()
        .filter_map(|j| j["name"].as_str())
        .collect();
    assert_eq!(names, ["hello"]);
    let delete = printed_curl(
        &stdout,
        &format!(":{ingress_port}/jobs/api/v1/delete/hello"),
    );
    shell(&delete);

    let pids = stack.pids();
    assert!(
        pids.len() >= 5,
        "expected gateway, nginx, etcd, kube-apiserver, kube-controller-manager: {pids:?}"
    );
    for (file, pid) in &pids {
        assert!(running(*pid), "{file}: {pid} is not running after up");
    }

    let down = stack
        .script("down")
        .output()
        .unwrap_or_else(|e| panic!("dev/stack.sh down: {e}"));
    assert!(down.status.success(), "dev/stack.sh down: {}", text(&down));
    assert!(
        text(&down).contains("no leftovers"),
        "down says nothing of the node is left: {}",
        text(&down)
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left: Vec<_> = pids.iter().filter(|(_, p)| running(*p)).collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still running after dev/stack.sh down: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for (_, port) in ports {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} still answers after down"
        );
    }

    // a fresh start: --purge also deletes the etcd data kept outside STACK_DIR
    let etcd_data = stack.etcd_data();
    assert!(etcd_data.is_dir(), "{}", etcd_data.display());
    let purge = stack
        .script("down")
        .arg("--purge")
        .output()
        .unwrap_or_else(|e| panic!("dev/stack.sh down --purge: {e}"));
    assert!(purge.status.success(), "{}", text(&purge));
    assert!(
        !etcd_data.exists(),
        "{} left behind by down --purge",
        etcd_data.display()
    );
}
