//! Test harness: the genuine local cluster (started by tests/run.sh), certificates minted with
//! certs-dev/mint.sh, tool namespaces made by tests/cluster/provision-tool.sh, and the real
//! gateway binary on loopback ports.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use tempfile::TempDir;

/// The running local cluster, as described by the env file tests/run.sh sources.
#[derive(Clone, Debug)]
pub struct Cluster {
    pub url: String,
    pub ca: PathBuf,
    pub ca_key: PathBuf,
    pub admin_cert: PathBuf,
    pub admin_key: PathBuf,
    pub audit_log: PathBuf,
    pub run_dir: PathBuf,
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the integration tests with tests/run.sh, which starts the local cluster")
    })
}

pub fn cluster() -> Cluster {
    Cluster {
        url: env("TJF_KUBE_URL"),
        ca: env("TJF_KUBE_CA").into(),
        ca_key: env("TJF_KUBE_CA_KEY").into(),
        admin_cert: env("TJF_KUBE_ADMIN_CERT").into(),
        admin_key: env("TJF_KUBE_ADMIN_KEY").into(),
        audit_log: env("TJF_KUBE_AUDIT_LOG").into(),
        run_dir: env("TJF_KUBE_RUN_DIR").into(),
    }
}

/// A cluster of one test's own, in a temporary RUN_DIR (for tests that stop its parts or
/// start it with other flags, which must not disturb the shared one); stopped, its etcd data
/// purged, on drop, also when the test fails.
pub struct OwnCluster {
    run_dir: TempDir,
}

impl OwnCluster {
    /// Starts `components` (start.sh's names; all when empty) with `env` set for start.sh.
    pub fn start(components: &[&str], env: &[(&str, &str)]) -> (Self, Cluster) {
        let run_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let own = Self { run_dir };
        // start.sh stops what it started if it fails; `own` stops the rest on a later panic
        run_ok(
            Command::new("bash")
                .arg(repo().join("tests/cluster/start.sh"))
                .arg(own.run_dir.path())
                .args(components)
                .envs(env.iter().copied()),
        );
        let text = std::fs::read_to_string(own.run_dir.path().join("env"))
            .unwrap_or_else(|e| panic!("{e}"));
        let get = |name: &str| -> String {
            text.lines()
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
            run_dir: own.run_dir.path().to_path_buf(),
        };
        (own, cluster)
    }

    /// Runs one of tests/cluster's scripts on this cluster, e.g. `stop.sh kube-apiserver`.
    pub fn script(&self, name: &str, args: &[&str]) {
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
        let out = Command::new("bash")
            .arg(repo().join("tests/cluster/stop.sh"))
            .arg(self.run_dir.path())
            .arg("--purge")
            .output();
        if let Ok(out) = out {
            if !out.status.success() {
                eprintln!("stop.sh failed: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
    }
}

/// The checkout under test. Read when the test runs (cargo sets it then too), not baked in at
/// compile time: checkouts at different paths share one target dir, and a binary cargo thinks
/// fresh may have been built from another checkout.
/// Established TCP connections of process `proc_dir` (`/proc/PID`, `/proc/self`) to port `port`
/// on 127.0.0.1.
pub fn established_connections(proc_dir: &str, port: u16) -> usize {
    let dir = format!("{proc_dir}/fd");
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .filter_map(|l| {
                    let l = l.to_string_lossy().into_owned();
                    l.strip_prefix("socket:[")
                        .and_then(|r| r.strip_suffix(']'))
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    let remote = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // remote address, state 01 = ESTABLISHED, inode
            f.len() > 9 && f[2] == remote && f[3] == "01" && inodes.contains(f[9])
        })
        .count()
}

pub fn repo() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// The gateway's Prometheus text from its admin port.
pub async fn metrics_text(gw: &Gateway) -> String {
    reqwest::Client::new()
        .get(format!("http://{}/metrics", gw.admin))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .text()
        .await
        .unwrap_or_default()
}

/// Makes reads of the tool's certificate hang like reads on a hung NFS server, until the
/// returned guard is dropped. The tool's `.toolskube` becomes the mount point of a FUSE file
/// system whose server never answers: opening anything in it waits (the gateway opens FIFOs
/// without waiting and refuses them, so a FIFO no longer stands in for a hung server).
pub fn hang_certificate(pki: &Pki, tool: &str) -> HungDir {
    let (crt, _) = pki.tool_cert(tool);
    let dir = crt
        .parent()
        .unwrap_or_else(|| panic!("{}", crt.display()))
        .to_path_buf();
    HungDir::mount(&dir)
}

/// A directory covered by a FUSE mount that never answers (see [`hang_certificate`]).
/// Dropping it aborts the connection (the waiting opens fail) and unmounts it.
pub struct HungDir {
    dir: PathBuf,
    fuse: Option<std::os::fd::OwnedFd>,
}

impl HungDir {
    pub fn mount(dir: &Path) -> Self {
        use std::os::fd::AsRawFd;
        use std::os::unix::ffi::OsStrExt;
        let fuse = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")
            .unwrap_or_else(|e| panic!("/dev/fuse (the hung-home tests need FUSE): {e}"));
        let fuse = std::os::fd::OwnedFd::from(fuse);
        let target =
            std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let options = std::ffi::CString::new(format!(
            "fd={},rootmode=40000,user_id=0,group_id=0",
            fuse.as_raw_fd()
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        // SAFETY: NUL-terminated strings that outlive the call
        let done = unsafe {
            libc::mount(
                c"jobs-gateway-test-hang".as_ptr(),
                target.as_ptr(),
                c"fuse".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                options.as_ptr().cast(),
            )
        };
        assert_eq!(
            done,
            0,
            "mounting FUSE on {}: {}",
            dir.display(),
            std::io::Error::last_os_error()
        );
        // the INIT request is never answered: every request on the mount waits
        Self {
            dir: dir.to_path_buf(),
            fuse: Some(fuse),
        }
    }
}

impl Drop for HungDir {
    fn drop(&mut self) {
        use std::os::unix::ffi::OsStrExt;
        if let Ok(target) = std::ffi::CString::new(self.dir.as_os_str().as_bytes()) {
            // SAFETY: a NUL-terminated string that outlives the call
            unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        }
        // closing the last descriptor aborts the connection: waiting requests end (ENOTCONN)
        self.fuse = None;
    }
}

/// Appends one line to a file, as a job writing its log does.
pub fn append_line(path: &Path, line: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    writeln!(f, "{line}").unwrap_or_else(|e| panic!("{e}"));
}

/// Removes every job of the client's tool, then creates the one-off job `name` with file logs
/// (release-14 route; 201).
pub async fn fresh_filelog_job(client: &reqwest::Client, gw: &Gateway, name: &str) {
    call(client.delete(gw.direct_url("/jobs/api/v1/flush/"))).await;
    let (status, body) = call(client.post(gw.direct_url("/jobs/api/v1/jobs/")).json(
        &serde_json::json!({"name": name, "imagename": "bookworm", "cmd": "./work.sh", "filelog": true}),
    ))
    .await;
    assert_eq!(status, 201, "{body}");
}

/// Opens a followed log stream (`GET url`, `follow=true` in it); panics unless it answers 200.
pub async fn follow_logs(client: &reqwest::Client, url: String) -> reqwest::Response {
    let resp = client
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 200);
    resp
}

/// The answer to a request whose home read hung: 503 saying it timed out.
pub fn assert_read_timed_out(status: u16, body: &serde_json::Value) {
    assert_eq!(status, 503, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains("timed out"), "{body}");
}

/// Runs a command and returns its stdout; panics with its output if it fails.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("could not start {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A port that is free now and was never handed out before in this process (the kernel
/// may offer a just-closed port again, which made two listeners collide).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("no free port: {e}"));
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Certificates for one test: gateway server cert, ingress client cert, tool homes.
pub struct Pki {
    pub dir: TempDir,
    pub home_root: PathBuf,
    pub cluster: Cluster,
}

impl Pki {
    pub fn new(cluster: &Cluster) -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let home_root = dir.path().join("project");
        std::fs::create_dir_all(&home_root).unwrap_or_else(|e| panic!("{e}"));
        run_ok(
            Command::new("bash")
                .arg(repo().join("certs-dev/mint.sh"))
                .args(["all", "--out"])
                .arg(dir.path().join("pki"))
                .arg("--ca-cert")
                .arg(&cluster.ca)
                .arg("--ca-key")
                .arg(&cluster.ca_key),
        );
        Self {
            dir,
            home_root,
            cluster: cluster.clone(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join("pki").join(name)
    }

    /// (Re)mints a tool's certificate into its home.
    pub fn mint_tool(&self, tool: &str) {
        run_ok(
            Command::new("bash")
                .arg(repo().join("certs-dev/mint.sh"))
                .arg("tool")
                .arg("--ca-cert")
                .arg(&self.cluster.ca)
                .arg("--ca-key")
                .arg(&self.cluster.ca_key)
                .arg("--tool-root")
                .arg(&self.home_root)
                .arg("--kube-url")
                .arg(&self.cluster.url)
                .arg("--kube-ca")
                .arg(&self.cluster.ca)
                .arg(tool),
        );
    }

    /// Mints an arbitrary client certificate; returns (cert, key).
    pub fn mint_client(&self, name: &str, subj: &str) -> (PathBuf, PathBuf) {
        let prefix = self.dir.path().join("clients").join(name);
        run_ok(
            Command::new("bash")
                .arg(repo().join("certs-dev/mint.sh"))
                .arg("client")
                .arg("--ca-cert")
                .arg(&self.cluster.ca)
                .arg("--ca-key")
                .arg(&self.cluster.ca_key)
                .arg("--out")
                .arg(&prefix)
                .arg("--subj")
                .arg(subj),
        );
        (prefix.with_extension("crt"), prefix.with_extension("key"))
    }

    pub fn tool_cert(&self, tool: &str) -> (PathBuf, PathBuf) {
        let base = self.home_root.join(tool).join(".toolskube");
        (base.join("client.crt"), base.join("client.key"))
    }
}

/// Creates the tool's namespace, RBAC and LimitRange in the cluster and mints its home.
pub fn provision(pki: &Pki, tool: &str) {
    // kubectl apply of the shared ClusterRole races when tests provision in parallel
    static PROVISION: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _serial = PROVISION.lock().unwrap_or_else(|p| p.into_inner());
    run_ok(
        Command::new("bash")
            .arg(repo().join("tests/cluster/provision-tool.sh"))
            .arg(&pki.cluster.run_dir)
            .arg(tool),
    );
    pki.mint_tool(tool);
}

/// A running gateway process; killed on drop.
pub struct Gateway {
    child: Child,
    pub direct: SocketAddr,
    pub ingress: SocketAddr,
    pub admin: SocketAddr,
    pub log: PathBuf,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gateway {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// TCP connections the gateway process has open to `port` on 127.0.0.1 (from /proc).
    pub fn connections_to(&self, port: u16) -> usize {
        established_connections(&format!("/proc/{}", self.pid()), port)
    }

    pub fn start(pki: &Pki, extra_env: &[(&str, &str)]) -> Self {
        let direct: SocketAddr = format!("127.0.0.1:{}", free_port())
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let ingress: SocketAddr = format!("127.0.0.1:{}", free_port())
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port())
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let log = pki
            .dir
            .path()
            .join(format!("gateway-{}.log", direct.port()));
        let log_file = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{e}"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_jobs-gateway"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .env("JOBS_GATEWAY_DIRECT_ADDR", direct.to_string())
            .env("JOBS_GATEWAY_INGRESS_ADDR", ingress.to_string())
            .env("JOBS_GATEWAY_ADMIN_ADDR", admin.to_string())
            .env("JOBS_GATEWAY_TLS_CERT", pki.path("gateway.crt"))
            .env("JOBS_GATEWAY_TLS_KEY", pki.path("gateway.key"))
            .env("JOBS_GATEWAY_CLIENT_CA", &pki.cluster.ca)
            .env("JOBS_GATEWAY_KUBE_URL", &pki.cluster.url)
            .env("JOBS_GATEWAY_KUBE_CA", &pki.cluster.ca)
            .env("JOBS_GATEWAY_HOME_ROOT", &pki.home_root)
            // jobs run on the local node: homes mounted as hostPath, images from its registry
            .env("JOBS_GATEWAY_HOME_MOUNT", "hostpath")
            .stdout(Stdio::null())
            .stderr(log_file);
        if let Ok(images) = std::env::var("TJF_IMAGES_FILE") {
            cmd.env("JOBS_GATEWAY_IMAGES_FILE", images);
        }
        // TJF_WATCH_CACHE=on: every suite against gateways with the watch cache on
        if let Ok(on) = std::env::var("TJF_WATCH_CACHE") {
            cmd.env("JOBS_GATEWAY_WATCH_CACHE", on);
        }
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting the gateway: {e}"));
        let mut gw = Gateway {
            child,
            direct,
            ingress,
            admin,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if std::net::TcpStream::connect(gw.admin).is_ok()
                && std::net::TcpStream::connect(gw.direct).is_ok()
                && std::net::TcpStream::connect(gw.ingress).is_ok()
            {
                break;
            }
            if let Ok(Some(status)) = gw.child.try_wait() {
                panic!("gateway exited with {status}: {}", gw.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "gateway did not start: {}",
                gw.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        gw
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn direct_url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.direct.port())
    }

    pub fn ingress_url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.ingress.port())
    }
}

pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An HTTPS client trusting the cluster CA, presenting (cert, key) if given.
pub fn https(ca: &Path, identity: Option<(&Path, &Path)>) -> reqwest::Client {
    install_crypto();
    let ca_pem = std::fs::read(ca).unwrap_or_else(|e| panic!("{e}"));
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(
            reqwest::Certificate::from_pem(&ca_pem).unwrap_or_else(|e| panic!("{e}")),
        )
        .timeout(Duration::from_secs(30));
    if let Some((cert, key)) = identity {
        let mut pem = std::fs::read(cert).unwrap_or_else(|e| panic!("{e}"));
        pem.extend(std::fs::read(key).unwrap_or_else(|e| panic!("{e}")));
        b = b.identity(reqwest::Identity::from_pem(&pem).unwrap_or_else(|e| panic!("{e}")));
    }
    b.build().unwrap_or_else(|e| panic!("{e}"))
}

/// A kube client acting as cluster admin, to check what really happened.
pub fn admin(cluster: &Cluster) -> kube::Client {
    install_crypto();
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut config = kube::Config::new(cluster.url.parse().unwrap_or_else(|e| panic!("{e}")));
    let ca = std::fs::read(&cluster.ca).unwrap_or_else(|e| panic!("{e}"));
    config.root_cert =
        Some(jobs_core::pem::pem_certificates(&ca).unwrap_or_else(|e| panic!("{e}")));
    config.auth_info.client_certificate_data =
        Some(b64.encode(std::fs::read(&cluster.admin_cert).unwrap_or_else(|e| panic!("{e}"))));
    config.auth_info.client_key_data = Some(
        b64.encode(std::fs::read(&cluster.admin_key).unwrap_or_else(|e| panic!("{e}")))
            .into(),
    );
    kube::Client::try_from(config).unwrap_or_else(|e| panic!("{e}"))
}

/// Sends a request and returns (status, JSON body).
pub async fn call(req: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("request failed: {e:?}"));
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    (status, body)
}

// ---------------------------------------------------------------- helpers for negative tests

impl Pki {
    /// Mints a client certificate with extra `mint.sh client` options (`--not-before`,
    /// `--not-after`, `--ca DIR`, `--server`, …); returns (cert, key).
    pub fn mint_client_with(&self, name: &str, subj: &str, extra: &[&str]) -> (PathBuf, PathBuf) {
        let prefix = self.dir.path().join("clients").join(name);
        let mut cmd = Command::new("bash");
        cmd.arg(repo().join("certs-dev/mint.sh")).arg("client");
        if !extra.contains(&"--ca") {
            cmd.arg("--ca-cert")
                .arg(&self.cluster.ca)
                .arg("--ca-key")
                .arg(&self.cluster.ca_key);
        }
        run_ok(
            cmd.arg("--out")
                .arg(&prefix)
                .arg("--subj")
                .arg(subj)
                .args(extra),
        );
        (prefix.with_extension("crt"), prefix.with_extension("key"))
    }
}

impl Gateway {
    /// Sends the gateway process a signal (`TERM`, `INT`, …) with kill(1).
    pub fn signal(&self, name: &str) {
        run_ok(
            Command::new("kill")
                .arg(format!("-{name}"))
                .arg(self.pid().to_string()),
        );
    }

    /// Waits up to `within` for the process to exit; its exit status, if it did.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the gateway process is still running (it did not panic or exit).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// Sends a request; a connection or TLS failure is `Err` instead of a panic.
pub async fn try_call(req: reqwest::RequestBuilder) -> Result<(u16, serde_json::Value), String> {
    let resp = req.send().await.map_err(|e| format!("{e:?}"))?;
    let status = resp.status().as_u16();
    let text = resp.text().await.map_err(|e| format!("{e:?}"))?;
    let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    Ok((status, body))
}

/// Sends raw HTTP/1.1 bytes over TLS to `addr` (trusting `ca`, presenting `identity` if given)
/// and returns (status, body). For what reqwest will not send: unnormalised paths, chunked
/// bodies without a length. The request should carry `Connection: close`.
/// A TLS connection to `addr` that trusts `ca`, with a client certificate if given (HTTP/1.1:
/// no ALPN).
pub async fn tls_stream(
    addr: SocketAddr,
    ca: &Path,
    identity: Option<(&Path, &Path)>,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
    tls_stream_offering(addr, ca, identity, &[]).await
}

/// [`tls_stream`] that offers these ALPN protocols.
pub async fn tls_stream_offering(
    addr: SocketAddr,
    ca: &Path,
    identity: Option<(&Path, &Path)>,
    alpn: &[&[u8]],
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
    use std::sync::Arc;
    install_crypto();
    let mut roots = rustls::RootCertStore::empty();
    let ca_pem = std::fs::read(ca).map_err(|e| e.to_string())?;
    for der in jobs_core::pem::pem_certificates(&ca_pem)? {
        roots
            .add(rustls_pki_types::CertificateDer::from(der))
            .map_err(|e| e.to_string())?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => {
            let cert_pem = std::fs::read(cert).map_err(|e| e.to_string())?;
            let chain = jobs_core::pem::pem_certificates(&cert_pem)?
                .into_iter()
                .map(rustls_pki_types::CertificateDer::from)
                .collect();
            let key_pem = std::fs::read(key).map_err(|e| e.to_string())?;
            let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
                .map_err(|e| e.to_string())?
                .ok_or("no private key")?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| e.to_string())?
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = config;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").map_err(|e| e.to_string())?;
    connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))
}

pub async fn raw_https(
    addr: SocketAddr,
    ca: &Path,
    identity: Option<(&Path, &Path)>,
    request: Vec<u8>,
) -> Result<(u16, serde_json::Value), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tls = tls_stream(addr, ca, identity).await?;
    // The server may answer early (413) and close while the body is still being written.
    let write_error = tls.write_all(&request).await.err();
    let _ = tls.flush().await;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match tls.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    if read.is_err() {
        return Err("no complete response within 30 s".into());
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Err(format!(
            "no HTTP response (write error: {write_error:?}): {text:?}"
        ));
    };
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line: {head:?}"))?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 || after.len() < n {
                break;
            }
            out.push_str(&after[..n]);
            rest = after[n..].trim_start_matches("\r\n");
        }
        out
    } else {
        body.to_string()
    };
    let json = serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body));
    Ok((status, json))
}

// ---------------------------------------------------------------- the real toolforge-jobs CLIs

/// Where tests/cli/setup-venvs.sh keeps the CLI virtualenvs (`r14`, `r16`).
pub fn cli_venvs() -> PathBuf {
    std::env::var_os("TJF_CLI_VENVS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/jobs-gateway-cli"))
}

/// Runs tests/cli/setup-venvs.sh once per test process; it does nothing when the venvs are
/// already installed at the right versions (tests/run.sh runs it before `cargo test`).
pub fn ensure_cli_venvs() {
    static DONE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        let out = Command::new("bash")
            .arg(repo().join("tests/cli/setup-venvs.sh"))
            .output()
            .unwrap_or_else(|e| panic!("could not run setup-venvs.sh: {e}"));
        assert!(
            out.status.success(),
            "tests/cli/setup-venvs.sh failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// Drops ANSI colour sequences (the CLIs colour their level names).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// What one CLI run gave: exit code and (colour-free) output.
#[derive(Debug, Clone)]
pub struct CliOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    /// stdout and stderr together (release 14 logs to stdout, 16.x to stderr).
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// Non-empty stdout lines, trimmed.
    pub fn lines(&self) -> Vec<String> {
        self.stdout
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }
}

impl std::fmt::Display for CliOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A real `toolforge-jobs` from PyPI, run as a tool: HOME is the tool's home (with the
/// `.kube/config` mint.sh wrote and a `.toolforge.yaml` pointing at the gateway).
pub struct RealCli {
    pub exe: PathBuf,
    pub home: PathBuf,
    pub ca: PathBuf,
    pub tool: String,
}

impl RealCli {
    /// `venv` is `r14` or `r16`; `gateway_root` is `https://127.0.0.1:PORT` (each generation
    /// appends its default jobs endpoint).
    pub fn new(venv: &str, pki: &Pki, tool: &str, gateway_root: &str) -> Self {
        ensure_cli_venvs();
        let exe = cli_venvs().join(venv).join("bin/toolforge-jobs");
        assert!(exe.exists(), "{} is missing", exe.display());
        let home = pki.home_root.join(tool);
        std::fs::write(
            home.join(".toolforge.yaml"),
            format!("api_gateway:\n  url: {gateway_root}\n"),
        )
        .unwrap_or_else(|e| panic!("writing .toolforge.yaml: {e}"));
        Self {
            exe,
            home,
            ca: pki.cluster.ca.clone(),
            tool: tool.to_string(),
        }
    }

    /// The command with the environment a tool account has (and nothing of ours).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.args(args)
            .current_dir(&self.home)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("USER", format!("tools.{}", self.tool))
            .env("LOGNAME", format!("tools.{}", self.tool))
            .env("LANG", "C.UTF-8")
            .env("PYTHONIOENCODING", "utf-8")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("NO_PROXY", "*")
            .env("REQUESTS_CA_BUNDLE", &self.ca)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> CliOutput {
        let child = self
            .command(args)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.exe.display()));
        let out = Self::finish(child);
        // shown with --nocapture or when the test fails
        println!("$ toolforge-jobs {}\n{out}", args.join(" "));
        out
    }

    /// Waits for a spawned CLI (see `command`).
    pub fn finish(child: Child) -> CliOutput {
        let out = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("waiting for the CLI: {e}"));
        CliOutput {
            code: out.status.code().unwrap_or(-1),
            stdout: strip_ansi(&String::from_utf8_lossy(&out.stdout)),
            stderr: strip_ansi(&String::from_utf8_lossy(&out.stderr)),
        }
    }

    /// Runs and insists on exit 0.
    pub fn ok(&self, args: &[&str]) -> CliOutput {
        let out = self.run(args);
        assert_eq!(out.code, 0, "toolforge-jobs {args:?} failed:\n{out}");
        out
    }
}

/// `Gateway::start`, retried: `free_port` can hand out the same port twice (the probe
/// listener is closed before the gateway binds), which makes a start fail with EADDRINUSE.
pub fn start_gateway_retrying(pki: &Pki, extra_env: &[(&str, &str)]) -> Gateway {
    let mut last = String::new();
    for _ in 0..3 {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Gateway::start(pki, extra_env)
        })) {
            Ok(gw) => return gw,
            Err(e) => {
                last = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
            }
        }
    }
    panic!("the gateway did not start in 3 attempts: {last}")
}

/// Waits (at most 90 s) until the tool's namespace has no pod left, so that no status read
/// after it is an old pod's (after a flush of the jobs of earlier runs).
pub async fn until_no_pods(cluster: &Cluster, tool: &str) {
    let pods = kube::Api::<k8s_openapi::api::core::v1::Pod>::namespaced(
        admin(cluster),
        &format!("tool-{tool}"),
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    while !pods
        .list(&kube::api::ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .items
        .is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "pods of earlier runs never went away"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
