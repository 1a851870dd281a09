//! End-to-end benchmark: the jobs gateway against the same reads made directly on the
//! apiserver with the same tool certificate. Needs the local cluster; run it with
//!
//!   bench/run.sh [--tools N] [--json PATH] [...]
//!
//! which builds the release gateway, starts the cluster, runs this program
//! (`cargo bench --bench gateway -- ARGS`) and stops the cluster. See bench/README.md.
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it does nothing.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use futures::stream::{self, StreamExt};
use k8s_openapi::api::core::v1::{LimitRange, Namespace, Pod};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, ListParams, PostParams};
use serde_json::{json, Value};

use jobs_core::images::ImageCatalog;
use jobs_core::labels::ContinuousComponent;
use jobs_core::objects::{self, BuildContext};
use jobs_core::request::{fields_from_body, RunRequest};
use jobs_core::schedule::parse_schedule;
use jobs_gateway::runtime::ToolRuntime;

const USAGE: &str = "\
gateway benchmark: bench/run.sh [options] (or, with a running cluster's env sourced,
cargo bench --bench gateway -- [options])
  --tools N            tools to provision and warm (env BENCH_TOOLS, default 100)
  --jobs-per-tool N    jobs created per tool (default 10: 5 one-off, 3 scheduled, 2 continuous)
  --seconds S          time limit of one measurement cell (default 5)
  --max-requests N     request limit of one measurement cell (default 2000)
  --concurrency LIST   comma-separated concurrency levels (default 1,16,64)
  --cold-samples N     cold tools measured for the first-request latency (default 20)
  --rounds N           split each cell into N alternating direct/gateway rounds (default 4)
  --kube-idle-ms N     the gateway's JOBS_GATEWAY_KUBE_IDLE_MS (default 15000, as in production);
                       memory is measured again once the tools' connections have idled out
  --memory-only        provision, warm and measure memory only (no throughput cells)
  --watch-cache        the gateway answers warm list and show from watches
                       (JOBS_GATEWAY_WATCH_CACHE=on)
  --watch-idle-ms N    the gateway's JOBS_GATEWAY_WATCH_IDLE_MS (default 300000)
  --direct-http1       direct baseline with a stock kube client (HTTP/1.1) instead of one
                       built like the gateway's (HTTP/2)
  --direct-slim        direct baseline parses the lists like the gateway, without
                       metadata.managedFields (default: parsed whole, as kube's Api::list
                       does); shows the cost of the extra hop alone
  --json PATH          write the results as JSON (default bench/results.json)
  --gateway-bin PATH   the release jobs-gateway binary (env BENCH_GATEWAY_BIN)
  --work-dir DIR       where tool homes, certificates and logs go (default: a temp dir)
  --gateway-log LEVEL  RUST_LOG of the gateway (default info, as in production)";

#[derive(Debug, Clone)]
struct Args {
    tools: usize,
    jobs_per_tool: usize,
    seconds: f64,
    max_requests: usize,
    concurrency: Vec<usize>,
    cold_samples: usize,
    rounds: usize,
    memory_only: bool,
    kube_idle_ms: u64,
    direct_http1: bool,
    direct_slim: bool,
    watch_cache: bool,
    watch_idle_ms: u64,
    json: PathBuf,
    gateway_bin: PathBuf,
    work_dir: Option<PathBuf>,
    gateway_log: String,
}

/// The checkout, read at run time (cargo sets it): a target dir shared by checkouts at other
/// paths may hold a binary built from another one.
fn repo() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

fn die(msg: impl std::fmt::Display) -> ! {
    eprintln!("gateway bench: {msg}");
    std::process::exit(2);
}

fn parse_args(raw: &[String]) -> Args {
    let repo = repo();
    let mut a = Args {
        tools: std::env::var("BENCH_TOOLS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100),
        jobs_per_tool: 10,
        seconds: 5.0,
        max_requests: 2000,
        concurrency: vec![1, 16, 64],
        cold_samples: 20,
        rounds: 4,
        memory_only: false,
        kube_idle_ms: 15_000,
        direct_http1: false,
        direct_slim: false,
        watch_cache: false,
        watch_idle_ms: 300_000,
        json: repo.join("bench/results.json"),
        gateway_bin: std::env::var("BENCH_GATEWAY_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|_| repo.join("target/release/jobs-gateway")),
        work_dir: None,
        gateway_log: "info".into(),
    };
    let mut it = raw.iter();
    let num = |v: Option<&String>, flag: &str| -> usize {
        v.and_then(|v| v.parse().ok())
            .unwrap_or_else(|| die(format!("{flag} needs a number")))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--bench" => {}
            "--tools" => a.tools = num(it.next(), arg),
            "--jobs-per-tool" => a.jobs_per_tool = num(it.next(), arg),
            "--seconds" => {
                a.seconds = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| die("--seconds needs a number"))
            }
            "--max-requests" => a.max_requests = num(it.next(), arg),
            "--cold-samples" => a.cold_samples = num(it.next(), arg),
            "--rounds" => a.rounds = num(it.next(), arg).max(1),
            "--concurrency" => {
                a.concurrency = it
                    .next()
                    .map(|v| v.split(',').filter_map(|c| c.trim().parse().ok()).collect())
                    .unwrap_or_default();
                if a.concurrency.is_empty() || a.concurrency.contains(&0) {
                    die("--concurrency needs a list like 1,16,64");
                }
            }
            "--memory-only" => a.memory_only = true,
            "--kube-idle-ms" => a.kube_idle_ms = num(it.next(), arg) as u64,
            "--direct-http1" => a.direct_http1 = true,
            "--direct-slim" => a.direct_slim = true,
            "--watch-cache" => a.watch_cache = true,
            "--watch-idle-ms" => a.watch_idle_ms = num(it.next(), arg) as u64,
            "--json" => {
                a.json = it
                    .next()
                    .unwrap_or_else(|| die("--json needs a path"))
                    .into()
            }
            "--gateway-bin" => {
                a.gateway_bin = it
                    .next()
                    .unwrap_or_else(|| die("--gateway-bin needs a path"))
                    .into()
            }
            "--work-dir" => {
                a.work_dir = Some(
                    it.next()
                        .unwrap_or_else(|| die("--work-dir needs a path"))
                        .into(),
                )
            }
            "--gateway-log" => {
                a.gateway_log = it
                    .next()
                    .unwrap_or_else(|| die("--gateway-log needs a level"))
                    .clone()
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => die(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if a.tools < 2 {
        die("--tools must be at least 2");
    }
    a.cold_samples = a.cold_samples.min(a.tools - 1).max(1);
    a
}

// ---------------------------------------------------------------- cluster and tools

struct Cluster {
    url: String,
    ca: PathBuf,
    ca_key: PathBuf,
    admin_cert: PathBuf,
    admin_key: PathBuf,
    run_dir: PathBuf,
}

fn cluster_from_env() -> Option<Cluster> {
    let v = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
    Some(Cluster {
        url: v("TJF_KUBE_URL")?,
        ca: v("TJF_KUBE_CA")?.into(),
        ca_key: v("TJF_KUBE_CA_KEY")?.into(),
        admin_cert: v("TJF_KUBE_ADMIN_CERT")?.into(),
        admin_key: v("TJF_KUBE_ADMIN_KEY")?.into(),
        run_dir: v("TJF_KUBE_RUN_DIR")?.into(),
    })
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| die(format!("{}: {e}", p.display())))
}

/// Which client the direct baseline uses.
static DIRECT_HTTP1: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// Whether the direct baseline parses lists without managedFields, like the gateway.
static DIRECT_SLIM: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The direct baseline's runtime: kube's typed lists by default (`managedFields` parsed).
fn direct_runtime(client: kube::Client, tool: &str) -> ToolRuntime {
    let rt = ToolRuntime::new(client, tool, ContinuousComponent::ReplicationControllers);
    if DIRECT_SLIM.load(Ordering::Relaxed) {
        rt
    } else {
        rt.keep_managed_fields()
    }
}

/// A tool's kube client for the direct baseline: by default built the way the gateway builds
/// one (credentials.rs: `ToolConnector`, HTTP/2 only, one connection per tool), with
/// `--direct-http1` a stock `kube::Client` (HTTP/1.1, one connection per parallel read).
fn tool_client(url: &str, ca: &Path, cert: &Path, key: &Path, ns: &str) -> kube::Client {
    if DIRECT_HTTP1.load(Ordering::Relaxed) {
        return kube_client(url, ca, cert, key, ns);
    }
    use jobs_core::pem::pem_certificates;
    use jobs_gateway::credentials::{ApiserverTls, ToolConnector};
    let roots = pem_certificates(&read(ca)).unwrap_or_else(|e| die(e));
    let tls = ApiserverTls::new(&roots)
        .and_then(|t| t.client_config(&read(cert), &read(key)))
        .unwrap_or_else(|e| die(e));
    let target = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| e.to_string())
        .and_then(|u| jobs_gateway::apiconn::Target::of(&u).map_err(|e| e.to_string()))
        .unwrap_or_else(|e| die(e));
    ToolConnector::new(
        std::sync::Arc::new(tls),
        std::sync::Arc::new(target),
        ns.to_string(),
        Duration::from_secs(2),
    )
    .client()
}

fn kube_config(url: &str, ca: &Path, cert: &Path, key: &Path, ns: &str) -> kube::Config {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut config = kube::Config::new(url.parse().unwrap_or_else(|e| die(e)));
    config.default_namespace = ns.to_string();
    config.root_cert = Some(jobs_core::pem::pem_certificates(&read(ca)).unwrap_or_else(|e| die(e)));
    config.connect_timeout = Some(Duration::from_secs(2));
    config.read_timeout = Some(Duration::from_secs(30));
    config.write_timeout = Some(Duration::from_secs(30));
    config.auth_info.client_certificate_data = Some(b64.encode(read(cert)));
    config.auth_info.client_key_data = Some(b64.encode(read(key)).into());
    config
}

/// A stock kube client (HTTP/1.1).
fn kube_client(url: &str, ca: &Path, cert: &Path, key: &Path, ns: &str) -> kube::Client {
    kube::Client::try_from(kube_config(url, ca, cert, key, ns)).unwrap_or_else(|e| die(e))
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| die(format!("could not start {cmd:?}: {e}")));
    if !out.status.success() {
        die(format!(
            "{cmd:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tool_name(i: usize) -> String {
    format!("bench{i:04}")
}

fn ok_or_exists<T>(r: Result<T, kube::Error>, what: &str) {
    match r {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => die(format!("{what}: {e}")),
    }
}

/// Namespace, RoleBinding and LimitRange per tool, as provision-tool.sh makes them, in bulk.
async fn provision(admin: &kube::Client, tools: &[String]) {
    stream::iter(tools.iter().cloned())
        .for_each_concurrent(16, |tool| {
            let admin = admin.clone();
            async move {
                let ns = format!("tool-{tool}");
                let pp = PostParams::default();
                let n: Namespace = serde_json::from_value(json!({
                    "metadata": {"name": ns, "labels": {"toolforge.org/tool": tool}}
                }))
                .unwrap_or_else(|e| die(e));
                ok_or_exists(Api::<Namespace>::all(admin.clone()).create(&pp, &n).await, &ns);
                let rb: RoleBinding = serde_json::from_value(json!({
                    "metadata": {"name": "toolforge-tool", "namespace": ns},
                    "subjects": [{"kind": "User", "name": tool, "apiGroup": "rbac.authorization.k8s.io"}],
                    "roleRef": {"kind": "ClusterRole", "name": "toolforge-tool", "apiGroup": "rbac.authorization.k8s.io"},
                }))
                .unwrap_or_else(|e| die(e));
                ok_or_exists(
                    Api::<RoleBinding>::namespaced(admin.clone(), &ns).create(&pp, &rb).await,
                    &ns,
                );
                let lr: LimitRange = serde_json::from_value(json!({
                    "metadata": {"name": "tool-limits", "namespace": ns},
                    "spec": {"limits": [{
                        "type": "Container",
                        "default": {"cpu": "500m", "memory": "512Mi"},
                        "defaultRequest": {"cpu": "150m", "memory": "256Mi"},
                        "max": {"cpu": "1", "memory": "4Gi"},
                    }]},
                }))
                .unwrap_or_else(|e| die(e));
                ok_or_exists(
                    Api::<LimitRange>::namespaced(admin, &ns).create(&pp, &lr).await,
                    &ns,
                );
            }
        })
        .await;
}

/// The job names of every tool, and the run request body each comes from.
fn job_bodies(jobs_per_tool: usize) -> Vec<(String, String)> {
    (0..jobs_per_tool)
        .map(|j| match j % 10 {
            0..=4 => {
                let name = format!("oneoff-{j}");
                let body = json!({"name": name, "imagename": "bookworm", "cmd": "./batch.sh --all"});
                (name, body.to_string())
            }
            5..=7 => {
                let name = format!("cron-{j}");
                let body = json!({"name": name, "imagename": "python3.11", "cmd": "python3 nightly.py", "schedule": "@daily", "emails": "onfailure"});
                (name, body.to_string())
            }
            _ => {
                let name = format!("web-{j}");
                let body = json!({"name": name, "imagename": "node18", "cmd": "node server.js", "continuous": true, "port": 8000});
                (name, body.to_string())
            }
        })
        .collect()
}

/// Creates the jobs with the admin client, built by the gateway's own object builders (same
/// labels and shapes as a run through the gateway). Returns the pods to expect.
async fn create_jobs(admin: &kube::Client, tools: &[String], home_root: &Path, per_tool: usize) {
    let bodies = job_bodies(per_tool);
    let catalog = ImageCatalog::builtin();
    let mut manifests = Vec::new();
    for tool in tools {
        let home = home_root.join(tool).display().to_string();
        for (name, body) in &bodies {
            let fields = fields_from_body(Some("application/json"), body.as_bytes())
                .unwrap_or_else(|e| die(e));
            let req = RunRequest::from_fields(&fields).unwrap_or_else(|e| die(e));
            let image = catalog
                .resolve(&req.image)
                .unwrap_or_else(|| die(format!("no image {}", req.image)));
            let schedule = req.schedule.as_ref().map(|s| {
                parse_schedule(s, &format!("tool-{tool} {name}")).unwrap_or_else(|e| die(e))
            });
            let manifest = objects::build(
                &req,
                &BuildContext {
                    tool,
                    home: &home,
                    image,
                    continuous_kind: ContinuousComponent::ReplicationControllers,
                    schedule_actual: schedule.as_ref().map(|s| s.actual.as_str()),
                    home_root_mount: None,
                },
            );
            manifests.push((tool.clone(), unscheduled(manifest)));
        }
    }
    stream::iter(manifests)
        .for_each_concurrent(16, |(tool, manifest)| {
            let rt = ToolRuntime::new(
                admin.clone(),
                &tool,
                ContinuousComponent::ReplicationControllers,
            );
            async move {
                ok_or_exists(
                    rt.create(manifest).await,
                    &format!("creating a job of {tool}"),
                );
            }
        })
        .await;
}

/// The manifest with its pods bound to a node label no node has: they stay Pending, so the
/// jobs stay as made (on the local cluster's real node they would run, fail, and be removed
/// by their TTL), and the node does not run the bench's thousand pods beside what it measures.
fn unscheduled(mut manifest: Value) -> Value {
    let pod_spec = if manifest["kind"] == "CronJob" {
        manifest.pointer_mut("/spec/jobTemplate/spec/template/spec")
    } else {
        manifest.pointer_mut("/spec/template/spec")
    };
    match pod_spec.and_then(Value::as_object_mut) {
        Some(spec) => {
            spec.insert(
                "nodeSelector".into(),
                json!({"jobs-gateway-bench/unscheduled": "true"}),
            );
        }
        None => die("a manifest without a pod template"),
    }
    manifest
}

fn expected_pods(tools: usize, per_tool: usize) -> usize {
    tools
        * (0..per_tool)
            .filter(|j| matches!(j % 10, 0..=4 | 8..=9))
            .count()
}

async fn framework_pods(admin: &kube::Client) -> usize {
    Api::<Pod>::all(admin.clone())
        .list_metadata(
            &ListParams::default()
                .labels("toolforge=tool,app.kubernetes.io/managed-by=toolforge-jobs-framework"),
        )
        .await
        .map(|l| l.items.len())
        .unwrap_or(0)
}

// ---------------------------------------------------------------- the gateway process

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| die(format!("no free port: {e}")))
}

struct Gateway {
    child: Child,
    port: u16,
    admin_port: u16,
    log: PathBuf,
}

/// The gateway's count of the Kubernetes LIST calls it made (its `/metrics`).
fn kube_lists(admin_port: u16) -> u64 {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", admin_port)) else {
        return 0;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.lines()
        .filter(|l| {
            l.starts_with("jobs_gateway_kube_requests_total{") && l.contains("verb=\"list\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

impl Gateway {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(&mut self) {
        // SIGTERM to our own child by PID, SIGKILL if it is still there after 3 s.
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

fn start_gateway(
    args: &Args,
    cluster: &Cluster,
    pki: &Path,
    home_root: &Path,
    work: &Path,
) -> Gateway {
    let port = free_port();
    let admin_port = free_port();
    let log = work.join("gateway.log");
    let log_file = std::fs::File::create(&log).unwrap_or_else(|e| die(e));
    let big = "1000000";
    let child = Command::new(&args.gateway_bin)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", &args.gateway_log)
        .env("JOBS_GATEWAY_DIRECT_ADDR", format!("127.0.0.1:{port}"))
        .env("JOBS_GATEWAY_INGRESS_ADDR", "")
        .env("JOBS_GATEWAY_ADMIN_ADDR", format!("127.0.0.1:{admin_port}"))
        // no traffic to turn away when the run ends: no delay, and a grace within stop()'s 3 s
        .env("JOBS_GATEWAY_SHUTDOWN_DELAY_MS", "0")
        .env("JOBS_GATEWAY_SHUTDOWN_GRACE_MS", "2000")
        .env("JOBS_GATEWAY_TLS_CERT", pki.join("gateway.crt"))
        .env("JOBS_GATEWAY_TLS_KEY", pki.join("gateway.key"))
        .env("JOBS_GATEWAY_CLIENT_CA", &cluster.ca)
        .env("JOBS_GATEWAY_KUBE_URL", &cluster.url)
        .env("JOBS_GATEWAY_KUBE_CA", &cluster.ca)
        .env("JOBS_GATEWAY_HOME_ROOT", home_root)
        .env("JOBS_GATEWAY_RATE_PER_SEC", big)
        .env("JOBS_GATEWAY_RATE_BURST", big)
        .env("JOBS_GATEWAY_WRITE_RATE_PER_SEC", big)
        .env("JOBS_GATEWAY_WRITE_BURST", big)
        .env("JOBS_GATEWAY_MAX_IN_FLIGHT", "100000")
        .env("JOBS_GATEWAY_KUBE_IDLE_MS", args.kube_idle_ms.to_string())
        .env(
            "JOBS_GATEWAY_WATCH_CACHE",
            if args.watch_cache { "on" } else { "off" },
        )
        .env("JOBS_GATEWAY_WATCH_IDLE_MS", args.watch_idle_ms.to_string())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .unwrap_or_else(|e| die(format!("starting {}: {e}", args.gateway_bin.display())));
    let mut gw = Gateway {
        child,
        port,
        admin_port,
        log,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            && std::net::TcpStream::connect(("127.0.0.1", admin_port)).is_ok()
        {
            return gw;
        }
        if let Ok(Some(status)) = gw.child.try_wait() {
            die(format!(
                "the gateway exited with {status}: {}",
                std::fs::read_to_string(&gw.log).unwrap_or_default()
            ));
        }
        if Instant::now() > deadline {
            gw.stop();
            die("the gateway did not start within 20 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// (VmRSS, VmHWM) in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU time (user + system) of a process so far, in milliseconds.
fn cpu_ms(pid: u32, ticks_per_sec: f64) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields after the command: state is field 3, utime 14, stime 15.
    let ticks = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(14) + ticks(15)) * 1000.0 / ticks_per_sec
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_string()
}

// ---------------------------------------------------------------- requests

fn https_client(ca: &Path, cert: &Path, key: &Path) -> reqwest::Client {
    let mut pem = read(cert);
    pem.extend(read(key));
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&read(ca)).unwrap_or_else(|e| die(e)))
        .identity(reqwest::Identity::from_pem(&pem).unwrap_or_else(|e| die(e)))
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_else(|e| die(e))
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Via {
    Gateway,
    Direct,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Op {
    List,
    Show,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::List => "list",
            Op::Show => "show",
        }
    }
}

struct Shared {
    base: String,
    tools: Vec<String>,
    jobs: Vec<String>,
    gateway: Vec<reqwest::Client>,
    direct: Vec<ToolRuntime>,
}

async fn gateway_get(client: &reqwest::Client, url: &str) -> Result<usize, String> {
    let resp = client.get(url).send().await.map_err(|e| format!("{e:?}"))?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| format!("{e:?}"))?;
    if !status.is_success() {
        return Err(format!("{status}: {}", String::from_utf8_lossy(&body)));
    }
    Ok(body.len())
}

impl Shared {
    /// Request number `i`: tools in turn, and for show the tool's jobs in turn.
    async fn call(&self, via: Via, op: Op, i: usize) -> Result<(), String> {
        let t = i % self.tools.len();
        let job = &self.jobs[(i / self.tools.len()) % self.jobs.len()];
        match (via, op) {
            (Via::Gateway, Op::List) => {
                gateway_get(&self.gateway[t], &format!("{}/api/v1/list/", self.base))
                    .await
                    .map(|_| ())
            }
            (Via::Gateway, Op::Show) => gateway_get(
                &self.gateway[t],
                &format!("{}/api/v1/show/{job}", self.base),
            )
            .await
            .map(|_| ()),
            (Via::Direct, Op::List) => self.direct[t]
                .snapshot(None)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            (Via::Direct, Op::Show) => {
                let snap = self.direct[t]
                    .snapshot(Some(job))
                    .await
                    .map_err(|e| e.to_string())?;
                if snap.is_empty() {
                    return Err(format!("job {job} of {} not found", self.tools[t]));
                }
                Ok(())
            }
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Cell {
    requests: usize,
    errors: usize,
    first_error: Option<String>,
    seconds: f64,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    mean_ms: f64,
    /// CPU time (user + system) the gateway process used per request in this cell.
    gateway_cpu_ms: Option<f64>,
    /// Kubernetes LIST calls the gateway made per request in this cell.
    kube_lists_per_request: Option<f64>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Latencies (ms) of the successful requests of one run, the errors, and its wall time.
#[derive(Default)]
struct Raw {
    lat: Vec<f64>,
    errors: Vec<String>,
    seconds: f64,
}

impl Raw {
    fn merge(&mut self, other: Raw) {
        self.lat.extend(other.lat);
        self.errors.extend(other.errors);
        self.seconds += other.seconds;
    }

    fn cell(mut self) -> Cell {
        self.lat.sort_by(|a, b| a.total_cmp(b));
        let lat = &self.lat;
        Cell {
            requests: lat.len() + self.errors.len(),
            errors: self.errors.len(),
            first_error: self.errors.first().cloned(),
            seconds: self.seconds,
            rps: lat.len() as f64 / self.seconds,
            p50_ms: percentile(lat, 0.5),
            p99_ms: percentile(lat, 0.99),
            mean_ms: if lat.is_empty() {
                f64::NAN
            } else {
                lat.iter().sum::<f64>() / lat.len() as f64
            },
            gateway_cpu_ms: None,
            kube_lists_per_request: None,
        }
    }
}

/// Runs requests `first..first+max` at `concurrency` until all were started or `limit` has
/// passed; a request started before the limit is waited for.
async fn run_cell<F, Fut>(
    concurrency: usize,
    limit: Duration,
    first: usize,
    max: usize,
    f: Arc<F>,
) -> Raw
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + limit;
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let f = f.clone();
        let next = next.clone();
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= max || Instant::now() >= deadline {
                    break;
                }
                let t0 = Instant::now();
                match f(first + i).await {
                    Ok(()) => lat.push(t0.elapsed().as_secs_f64() * 1000.0),
                    Err(e) => errors.push(e),
                }
            }
            (lat, errors)
        }));
    }
    let mut raw = Raw::default();
    for w in workers {
        let (l, e) = w.await.unwrap_or_else(|e| die(e));
        raw.lat.extend(l);
        raw.errors.extend(e);
    }
    raw.seconds = start.elapsed().as_secs_f64();
    raw
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    percentile(v, 0.5)
}

fn cell_json(c: &Cell) -> Value {
    json!({
        "requests": c.requests, "errors": c.errors, "first_error": c.first_error,
        "seconds": round3(c.seconds), "requests_per_second": round3(c.rps),
        "p50_ms": round3(c.p50_ms), "p99_ms": round3(c.p99_ms), "mean_ms": round3(c.mean_ms),
        "gateway_cpu_ms_per_request": c.gateway_cpu_ms.map(round3),
        "kube_lists_per_request": c.kube_lists_per_request.map(round3),
    })
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn pass(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "MISS"
    }
}

// ---------------------------------------------------------------- main

fn main() {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    if !raw.iter().any(|a| a == "--bench") {
        // cargo test --all-targets runs bench targets without --bench: nothing to do here.
        println!("gateway bench: skipped (not run by cargo bench; use bench/run.sh)");
        return;
    }
    let args = parse_args(&raw);
    DIRECT_HTTP1.store(args.direct_http1, Ordering::Relaxed);
    DIRECT_SLIM.store(args.direct_slim, Ordering::Relaxed);
    let Some(cluster) = cluster_from_env() else {
        println!("gateway bench: skipped: no cluster (TJF_KUBE_* unset); run bench/run.sh");
        return;
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| die(e));
    runtime.block_on(bench(args, cluster));
}

fn say(msg: impl std::fmt::Display) {
    eprintln!("[{}] {msg}", chrono::Utc::now().format("%H:%M:%S"));
}

async fn bench(args: Args, cluster: Cluster) {
    let load_start = loadavg();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    say(format!("load at start: {load_start} ({cores} cores)"));
    let repo = repo();
    let _tmp;
    let work = match &args.work_dir {
        Some(d) => {
            std::fs::create_dir_all(d).unwrap_or_else(|e| die(e));
            d.clone()
        }
        None => {
            _tmp = tempfile::tempdir().unwrap_or_else(|e| die(e));
            _tmp.path().to_path_buf()
        }
    };
    let home_root = work.join("project");
    let pki = work.join("pki");
    std::fs::create_dir_all(&home_root).unwrap_or_else(|e| die(e));
    let n = args.tools;
    let tools: Vec<String> = (0..n).map(tool_name).collect();
    let mint = repo.join("certs-dev/mint.sh");

    // --- provisioning
    let t = Instant::now();
    run_ok(
        Command::new("bash")
            .arg(&mint)
            .args(["all", "--out"])
            .arg(&pki)
            .arg("--ca-cert")
            .arg(&cluster.ca)
            .arg("--ca-key")
            .arg(&cluster.ca_key),
    );
    // The shared ClusterRole (and the first tool) the way the tests make them.
    run_ok(
        Command::new("bash")
            .arg(repo.join("tests/cluster/provision-tool.sh"))
            .arg(&cluster.run_dir)
            .arg(&tools[0]),
    );
    let admin = kube_client(
        &cluster.url,
        &cluster.ca,
        &cluster.admin_cert,
        &cluster.admin_key,
        "default",
    );
    provision(&admin, &tools).await;
    say(format!(
        "provisioned {n} namespaces in {:.1} s",
        t.elapsed().as_secs_f64()
    ));

    let t = Instant::now();
    // a work dir used before (--work-dir on a running cluster) keeps the homes it minted
    let to_mint: Vec<String> = tools
        .iter()
        .filter(|t| !home_root.join(t).join(".toolskube/client.crt").exists())
        .cloned()
        .collect();
    let chunks: Vec<Vec<String>> = to_mint
        .chunks(to_mint.len().div_ceil(cores.max(1)).max(1))
        .map(|c| c.to_vec())
        .collect();
    let minters: Vec<_> = chunks
        .into_iter()
        .map(|names| {
            Command::new("bash")
                .arg(&mint)
                .arg("tool")
                .arg("--ca-cert")
                .arg(&cluster.ca)
                .arg("--ca-key")
                .arg(&cluster.ca_key)
                .arg("--tool-root")
                .arg(&home_root)
                .arg("--kube-url")
                .arg(&cluster.url)
                .arg("--kube-ca")
                .arg(&cluster.ca)
                .args(&names)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| die(e))
        })
        .collect();
    for m in minters {
        let out = m.wait_with_output().unwrap_or_else(|e| die(e));
        if !out.status.success() {
            die(format!(
                "mint.sh tool failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    say(format!(
        "minted {} tool certificates in {:.1} s ({} kept from an earlier run)",
        to_mint.len(),
        t.elapsed().as_secs_f64(),
        n - to_mint.len()
    ));

    let t = Instant::now();
    create_jobs(&admin, &tools, &home_root, args.jobs_per_tool).await;
    let want_pods = expected_pods(n, args.jobs_per_tool);
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut pods = framework_pods(&admin).await;
    while pods < want_pods && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        pods = framework_pods(&admin).await;
    }
    say(format!(
        "created {} jobs ({pods}/{want_pods} pods made by the controllers) in {:.1} s",
        n * args.jobs_per_tool,
        t.elapsed().as_secs_f64()
    ));
    tokio::time::sleep(Duration::from_secs(2)).await;

    // --- clients
    let cred = |tool: &str| {
        let d = home_root.join(tool).join(".toolskube");
        (d.join("client.crt"), d.join("client.key"))
    };
    let gateway_clients: Vec<reqwest::Client> = tools
        .iter()
        .map(|tl| {
            let (c, k) = cred(tl);
            https_client(&cluster.ca, &c, &k)
        })
        .collect();
    let direct: Vec<ToolRuntime> = tools
        .iter()
        .map(|tl| {
            let (c, k) = cred(tl);
            let client = tool_client(&cluster.url, &cluster.ca, &c, &k, &format!("tool-{tl}"));
            direct_runtime(client, tl)
        })
        .collect();
    let jobs: Vec<String> = job_bodies(args.jobs_per_tool)
        .into_iter()
        .map(|(name, _)| name)
        .collect();

    // --- gateway
    let mut gw = start_gateway(&args, &cluster, &pki, &home_root, &work);
    let pid = gw.pid();
    let base = format!("https://127.0.0.1:{}", gw.port);
    let shared = Arc::new(Shared {
        base: base.clone(),
        tools: tools.clone(),
        jobs,
        gateway: gateway_clients,
        direct,
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss_start, _) = memory_kib(pid);
    say(format!(
        "gateway pid {pid} on {base}, RSS {} KiB",
        rss_start
    ));

    // One warm tool: the one-time costs (TLS configs, runtime threads, allocator arenas).
    let list_url = format!("{base}/api/v1/list/");
    let body_len = gateway_get(&shared.gateway[0], &list_url)
        .await
        .unwrap_or_else(|e| die(format!("first list through the gateway: {e}")));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (rss_one, _) = memory_kib(pid);
    say(format!(
        "list of one tool: {body_len} bytes of JSON; RSS with 1 warm tool {rss_one} KiB"
    ));

    // --- cold vs warm first request (each with a new client connection to the gateway)
    let mut cold = Vec::new();
    let mut warm_new = Vec::new();
    let mut warm_kept = Vec::new();
    let mut direct_new = Vec::new();
    let mut direct_kept = Vec::new();
    for k in 0..args.cold_samples {
        let ti = 1 + k;
        let (c, key) = cred(&tools[ti]);
        let timed = |client: reqwest::Client| {
            let url = list_url.clone();
            async move {
                let t0 = Instant::now();
                gateway_get(&client, &url)
                    .await
                    .unwrap_or_else(|e| die(format!("cold-tool list: {e}")));
                (t0.elapsed().as_secs_f64() * 1000.0, client)
            }
        };
        let (ms, _) = timed(https_client(&cluster.ca, &c, &key)).await;
        cold.push(ms);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (ms, again) = timed(https_client(&cluster.ca, &c, &key)).await;
        warm_new.push(ms);
        let (ms, _) = timed(again).await;
        warm_kept.push(ms);
        // Direct: a new kube client (new TLS connections) vs the same client again.
        let rt = direct_runtime(
            tool_client(
                &cluster.url,
                &cluster.ca,
                &c,
                &key,
                &format!("tool-{}", tools[ti]),
            ),
            &tools[ti],
        );
        for out in [&mut direct_new, &mut direct_kept] {
            let t0 = Instant::now();
            rt.snapshot(None)
                .await
                .unwrap_or_else(|e| die(format!("direct list: {e}")));
            out.push(t0.elapsed().as_secs_f64() * 1000.0);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cold_ms = median(&mut cold);
    let warm_new_ms = median(&mut warm_new);
    let warm_kept_ms = median(&mut warm_kept);
    let direct_new_ms = median(&mut direct_new);
    let direct_kept_ms = median(&mut direct_kept);
    say(format!(
        "cold tool first list {cold_ms:.2} ms, warm (new connection) {warm_new_ms:.2} ms, warm (kept connection) {warm_kept_ms:.2} ms"
    ));

    // --- warm every tool, then memory. Each tool's request comes on a connection of its own
    // that is closed right after, as the CLI does: what stays in the gateway is the tool's
    // state, not the client's connection.
    let t = Instant::now();
    let warm_errors: Vec<String> = stream::iter(0..n)
        .map(|i| {
            let (c, key) = cred(&tools[i]);
            let client = https_client(&cluster.ca, &c, &key);
            let url = list_url.clone();
            async move { gateway_get(&client, &url).await.err() }
        })
        .buffer_unordered(8)
        .filter_map(|e| async move { e })
        .collect()
        .await;
    if let Some(e) = warm_errors.first() {
        die(format!(
            "warming {} tools: {} errors, first: {e}",
            n,
            warm_errors.len()
        ));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (rss_all, hwm_all) = memory_kib(pid);
    let fds_all = open_fds(pid);
    let per_tool_kib = (rss_all as f64 - rss_one as f64) / (n as f64 - 1.0);
    say(format!(
        "warmed {n} tools in {:.1} s: RSS {rss_all} KiB (peak {hwm_all}), {fds_all} open fds, {per_tool_kib:.1} KiB per extra warm tool",
        t.elapsed().as_secs_f64()
    ));
    // The tools stay warm (checked certificates and TLS configs) once their apiserver
    // connections have idled out. The gateway's sweep runs every third of the idle time, so
    // they are closed within 4/3 of it; twice it is a safe wait.
    // With the watch cache, a tool's watches keep its connection open until they idle out
    // (swept every quarter of that time) and only then can the connection idle out.
    let watch_idle = if args.watch_cache {
        args.watch_idle_ms
    } else {
        0
    };
    let idle_wait =
        Duration::from_millis(2 * (args.kube_idle_ms + watch_idle)) + Duration::from_secs(2);
    say(format!(
        "waiting {:.0} s for the apiserver connections to idle out",
        idle_wait.as_secs_f64()
    ));
    tokio::time::sleep(idle_wait).await;
    let (rss_idle, _) = memory_kib(pid);
    let fds_idle = open_fds(pid);
    let per_tool_idle_kib = (rss_idle as f64 - rss_one as f64) / (n as f64 - 1.0);
    say(format!(
        "{n} warm tools, connections idled out: RSS {rss_idle} KiB, {fds_idle} open fds, {per_tool_idle_kib:.1} KiB per extra warm tool"
    ));

    // --- throughput and latency, gateway vs direct
    let mut cells: BTreeMap<(Op, usize), (Cell, Cell)> = BTreeMap::new();
    let ticks = clock_ticks();
    let ops: &[Op] = if args.memory_only {
        &[]
    } else {
        &[Op::List, Op::Show]
    };
    for &op in ops {
        for &c in &args.concurrency {
            let call = |via: Via| {
                let sh = shared.clone();
                Arc::new(move |i: usize| {
                    let sh = sh.clone();
                    async move { sh.call(via, op, i).await }
                })
            };
            // Warm-up: every tool once on both sides (warm connection pools for every tool),
            // and at least 4 requests per worker.
            for via in [Via::Direct, Via::Gateway] {
                run_cell(c, Duration::from_secs(30), 0, (c * 4).max(n), call(via)).await;
            }
            // The cell's time and request budget per side, in alternating rounds (direct,
            // gateway, direct, ...) so that a change of the machine's load hits both sides.
            let rounds = args.rounds;
            let mut raw_d = Raw::default();
            let mut raw_g = Raw::default();
            let mut gateway_cpu = 0.0;
            let mut lists = 0u64;
            for r in 0..rounds {
                let limit = Duration::from_secs_f64(args.seconds / rounds as f64);
                let max = args.max_requests.div_ceil(rounds);
                raw_d.merge(run_cell(c, limit, r * max, max, call(Via::Direct)).await);
                let cpu_before = cpu_ms(pid, ticks);
                let lists_before = kube_lists(gw.admin_port);
                raw_g.merge(run_cell(c, limit, r * max, max, call(Via::Gateway)).await);
                gateway_cpu += cpu_ms(pid, ticks) - cpu_before;
                lists += kube_lists(gw.admin_port).saturating_sub(lists_before);
            }
            let d = raw_d.cell();
            let mut g = raw_g.cell();
            if g.requests > 0 {
                g.gateway_cpu_ms = Some(gateway_cpu / g.requests as f64);
                g.kube_lists_per_request = Some(lists as f64 / g.requests as f64);
            }
            for (via, cell) in [("direct", &d), ("gateway", &g)] {
                say(format!(
                    "{:<4} c={c:<3} {via:<7} {:>8.1} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  ({} requests, {} errors)",
                    op.name(),
                    cell.rps,
                    cell.p50_ms,
                    cell.p99_ms,
                    cell.requests,
                    cell.errors
                ));
                if let Some(e) = &cell.first_error {
                    say(format!("  first error: {e}"));
                }
            }
            cells.insert((op, c), (g, d));
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss_after, hwm_after) = memory_kib(pid);
    let fds_after = open_fds(pid);
    gw.stop();
    let load_end = loadavg();
    let gateway_log_lines = std::fs::read_to_string(&gw.log)
        .map(|t| t.lines().count())
        .unwrap_or(0);

    // --- report
    let load1 = |s: &str| {
        s.split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let busy = load1(&load_start) > cores as f64 || load1(&load_end) > cores as f64;
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(format!(
        "jobs-gateway benchmark: {n} tools × {} jobs ({} jobs, {pods} pods), loopback, {cores} cores",
        args.jobs_per_tool,
        n * args.jobs_per_tool
    ));
    line(format!("load average at start: {load_start}"));
    line(format!("load average at end:   {load_end}"));
    if busy {
        line(format!(
            "NOTE: the load average was above the {cores} cores: other work shared the CPU with the gateway, the apiserver and this client; absolute numbers are pessimistic"
        ));
    }
    line(String::new());
    if !args.memory_only {
        line(format!(
            "cells: at most {} s or {} requests per side, in {} alternating rounds (direct, gateway, ...); requests go to the tools in turn; direct = the same parallel label-selected reads (jobs, cronjob jobs, cronjobs, replicationcontrollers, pods, events) with the tool's own certificate, {}",
            args.seconds,
            args.max_requests,
            args.rounds,
            match (args.direct_http1, args.direct_slim) {
                (true, false) => "stock kube client (HTTP/1.1), typed lists",
                (true, true) => "stock kube client (HTTP/1.1), lists parsed like the gateway's (no managedFields)",
                (false, false) => "kube client built like the gateway's (HTTP/2), typed lists as kube's Api::list parses them",
                (false, true) => "kube client built like the gateway's (HTTP/2), lists parsed like the gateway's (no managedFields)",
            }
        ));
        line(format!(
            "{:<5} {:>3} | {:>9} {:>8} {:>8} | {:>9} {:>8} {:>8} | {:>9} {:>9} | {:>10} | {:>6}",
            "op",
            "c",
            "gw req/s",
            "gw p50",
            "gw p99",
            "dir req/s",
            "dir p50",
            "dir p99",
            "p50 ratio",
            "rps ratio",
            "gw CPU/req",
            "errors"
        ));
        line("-".repeat(117));
        for ((op, c), (g, d)) in &cells {
            line(format!(
                "{:<5} {:>3} | {:>9.1} {:>6.2}ms {:>6.2}ms | {:>9.1} {:>6.2}ms {:>6.2}ms | {:>8.3}x {:>8.3}x | {:>8.2}ms | {:>6}",
                op.name(),
                c,
                g.rps,
                g.p50_ms,
                g.p99_ms,
                d.rps,
                d.p50_ms,
                d.p99_ms,
                g.p50_ms / d.p50_ms,
                g.rps / d.rps,
                g.gateway_cpu_ms.unwrap_or(f64::NAN),
                g.errors + d.errors
            ));
        }
        line(String::new());
    }
    line(format!(
        "first request of a cold tool (median of {}; new client connection each): {cold_ms:.2} ms; warm tool, new connection: {warm_new_ms:.2} ms; warm tool, kept connection: {warm_kept_ms:.2} ms",
        args.cold_samples
    ));
    line(format!(
        "direct reference: new kube client (new TLS connections) {direct_new_ms:.2} ms; same client again {direct_kept_ms:.2} ms"
    ));
    line(format!(
        "gateway RSS: {} KiB at start, {} KiB with 1 warm tool, {} KiB with {n} warm tools ({} open fds), {} KiB {} (peak {} KiB, {} open fds)",
        rss_start,
        rss_one,
        rss_all,
        fds_all,
        rss_after,
        if args.memory_only { "at the end" } else { "after the load cells" },
        hwm_after.max(hwm_all),
        fds_after
    ));
    line(format!(
        "memory per additional warm tool: {per_tool_kib:.1} KiB with its apiserver connection open, {per_tool_idle_kib:.1} KiB once it idled out after {} ms (RSS {rss_idle} KiB, {fds_idle} open fds) ((RSS at {n} warm − RSS at 1 warm) / {})",
        args.kube_idle_ms,
        n - 1
    ));
    line(format!("gateway log: {gateway_log_lines} lines"));
    line(String::new());

    // Goals
    let mut goals = Vec::new();
    line(format!(
        "{:<52} {:<38} {:<12} result",
        "goal", "measured", "target"
    ));
    line("-".repeat(112));
    let mut goal = |name: &str, measured: String, target: &str, ok: Option<bool>| {
        let res = ok.map_or("n/a", pass);
        goals.push(json!({"goal": name, "measured": measured, "target": target, "result": res}));
        format!("{name:<52} {measured:<38} {target:<12} {res}")
    };
    let mut goal_lines = Vec::new();
    if let Some((g, d)) = cells.get(&(Op::List, 1)) {
        let r = g.p50_ms / d.p50_ms;
        goal_lines.push(goal(
            "warm list p50 at c=1, gateway / direct",
            format!("{r:.3}x ({:.2} ms / {:.2} ms)", g.p50_ms, d.p50_ms),
            "<= 1.10x",
            Some(r <= 1.10),
        ));
    }
    let top = args.concurrency.iter().copied().max().unwrap_or(64);
    for op in [Op::List, Op::Show] {
        if let Some((g, d)) = cells.get(&(op, top)) {
            let r = g.rps / d.rps;
            goal_lines.push(goal(
                &format!("{} throughput at c={top}, gateway / direct", op.name()),
                format!("{r:.3} ({:.1} / {:.1} req/s)", g.rps, d.rps),
                ">= 0.90",
                Some(r >= 0.90 && g.errors == 0),
            ));
        }
    }
    if args.watch_cache {
        // the watch cache's own goals (issue "Faster than the apiserver itself")
        if let Some((g, d)) = cells.get(&(Op::List, 1)) {
            let r = g.p50_ms / d.p50_ms;
            goal_lines.push(goal(
                "watch cache: warm list p50 at c=1, gateway / direct",
                format!("{r:.3}x ({:.2} ms / {:.2} ms)", g.p50_ms, d.p50_ms),
                "<= 0.50x",
                Some(r <= 0.50),
            ));
        }
        for op in [Op::List, Op::Show] {
            for c in [16, 64] {
                if let Some((g, d)) = cells.get(&(op, c)) {
                    let r = g.rps / d.rps;
                    goal_lines.push(goal(
                        &format!(
                            "watch cache: {} throughput at c={c}, gateway / direct",
                            op.name()
                        ),
                        format!("{r:.2}x ({:.1} / {:.1} req/s)", g.rps, d.rps),
                        ">= 3x",
                        Some(r >= 3.0 && g.errors == 0),
                    ));
                }
            }
            if let Some((g, _)) = cells.get(&(op, 1)) {
                let calls = g.kube_lists_per_request.unwrap_or(f64::NAN);
                goal_lines.push(goal(
                    &format!("watch cache: apiserver LISTs per warm {} (c=1)", op.name()),
                    format!("{calls:.3}"),
                    "~ 0",
                    Some(calls < 0.05),
                ));
            }
        }
    }
    let delta = cold_ms - warm_new_ms;
    goal_lines.push(goal(
        "cold tool first request, above warm",
        format!("+{delta:.2} ms ({cold_ms:.2} vs {warm_new_ms:.2} ms)"),
        "<= 15 ms",
        Some(delta <= 15.0),
    ));
    // RSS with 1,000 warm tools: measured when N >= 1000, else extrapolated from the per-tool
    // cost; once with every tool's apiserver connection still open (all 1,000 used within the
    // idle timeout), once after the connections idled out (the tools stay warm).
    let rss_1000 = |measured: u64, per_tool: f64| {
        if n >= 1000 {
            (
                measured as f64 / 1024.0,
                format!("measured with {n} warm tools"),
            )
        } else {
            (
                (rss_one as f64 + per_tool * 999.0) / 1024.0,
                format!(
                    "EXTRAPOLATED from N={n}: {:.1} MiB + 999 × {per_tool:.1} KiB",
                    rss_one as f64 / 1024.0
                ),
            )
        }
    };
    let (rss_1000_mb, how) = rss_1000(rss_all, per_tool_kib);
    let (rss_1000_idle_mb, how_idle) = rss_1000(rss_idle, per_tool_idle_kib);
    // with the watch cache, a warm tool's watches keep its connection open until they idle out
    let (idled, open) = if args.watch_cache {
        (
            "RSS with 1,000 warm tools (watches, connections idled out)",
            "RSS with 1,000 warm tools, all watches open",
        )
    } else {
        (
            "RSS with 1,000 warm tools (connections idled out)",
            "RSS with 1,000 warm tools, all connections open",
        )
    };
    goal_lines.push(goal(
        idled,
        format!("{rss_1000_idle_mb:.1} MiB"),
        "<= 40 MiB",
        Some(rss_1000_idle_mb <= 40.0),
    ));
    goal_lines.push(goal(
        open,
        format!("{rss_1000_mb:.1} MiB"),
        "<= 40 MiB",
        Some(rss_1000_mb <= 40.0),
    ));
    for l in goal_lines {
        line(l);
    }
    line(format!("  (RSS: {how_idle}; with connections open: {how})"));
    print!("{out}");

    let results = json!({
        "tools": n,
        "jobs_per_tool": args.jobs_per_tool,
        "pods": pods,
        "cores": cores,
        "loadavg_start": load_start,
        "loadavg_end": load_end,
        "busy": busy,
        "cell_seconds": args.seconds,
        "cell_max_requests": args.max_requests,
        "cell_rounds": args.rounds,
        "direct_client": if args.direct_http1 { "http1" } else { "http2" },
        "direct_parse": if args.direct_slim { "without managedFields" } else { "typed, whole" },
        "cells": cells.iter().map(|((op, c), (g, d))| json!({
            "op": op.name(), "concurrency": c,
            "gateway": cell_json(g), "direct": cell_json(d),
            "p50_ratio": round3(g.p50_ms / d.p50_ms), "rps_ratio": round3(g.rps / d.rps),
        })).collect::<Vec<_>>(),
        "cold_first_request": {
            "samples": args.cold_samples,
            "cold_ms": round3(cold_ms), "warm_new_connection_ms": round3(warm_new_ms),
            "warm_kept_connection_ms": round3(warm_kept_ms),
            "direct_new_client_ms": round3(direct_new_ms), "direct_same_client_ms": round3(direct_kept_ms),
        },
        "memory": {
            "rss_start_kib": rss_start, "rss_one_warm_kib": rss_one, "rss_all_warm_kib": rss_all,
            "open_fds_all_warm": fds_all, "rss_after_load_kib": rss_after, "peak_kib": hwm_after.max(hwm_all),
            "open_fds_after_load": fds_after,
            "per_warm_tool_kib": round3(per_tool_kib),
            "rss_1000_tools_mib": round3(rss_1000_mb), "rss_1000_basis": how,
            "kube_idle_ms": args.kube_idle_ms, "watch_cache": args.watch_cache, "watch_idle_ms": args.watch_idle_ms, "rss_all_idle_kib": rss_idle,
            "open_fds_all_idle": fds_idle, "per_warm_idle_tool_kib": round3(per_tool_idle_kib),
            "rss_1000_idle_tools_mib": round3(rss_1000_idle_mb), "rss_1000_idle_basis": how_idle,
        },
        "goals": goals,
    });
    if let Some(dir) = args.json.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(
        &args.json,
        serde_json::to_string_pretty(&results).unwrap_or_default() + "\n",
    )
    .unwrap_or_else(|e| die(format!("{}: {e}", args.json.display())));
    say(format!("wrote {}", args.json.display()));
}
