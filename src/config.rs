//! Configuration, read from `JOBS_GATEWAY_*` environment variables (see README.md).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Who mounts the tools' storage into job pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HomeMount {
    /// Nobody here: Toolforge's volume-admission webhook adds the mounts (production).
    None,
    /// The pod template itself: a hostPath volume of the home root, mounted at the same path,
    /// and `HOME`, for jobs with `mount: all` (as the original's templates did before its
    /// webhook existed; the local cluster uses this).
    HostPath,
}

/// Which controller runs continuous jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContinuousKind {
    ReplicationController,
    Deployment,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Direct mTLS listener (tool certificates); `None` disables it.
    pub direct_addr: Option<SocketAddr>,
    /// Listener for the jobs ingress (ingress client certificate + subject header).
    pub ingress_addr: Option<SocketAddr>,
    /// Plain-HTTP admin port: /healthz, /readyz.
    pub admin_addr: Option<SocketAddr>,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    /// CA bundle that signs tool certificates.
    pub client_ca: PathBuf,
    /// CA bundle that signs the ingress's client certificate.
    pub ingress_ca: PathBuf,
    /// Common name the ingress's client certificate must carry.
    pub ingress_cn: String,
    /// Organisation the ingress's client certificate must carry (and nothing else).
    pub ingress_org: String,
    pub kube_url: String,
    pub kube_ca: PathBuf,
    pub home_root: PathBuf,
    pub organisation: String,
    pub continuous_kind: ContinuousKind,
    /// Whether job pods get the home root as a hostPath volume (`hostpath`), or nothing and
    /// the platform's volume-admission webhook mounts the storage (`none`, the default).
    pub home_mount: HomeMount,
    /// Upper bound for one read of a tool's credential files (NFS can hang).
    pub fs_timeout: Duration,
    /// Upper bound for one call to the apiserver.
    pub kube_timeout: Duration,
    /// Most kube clients kept warm at once.
    pub client_cache_size: usize,
    /// How long a tool's credential files, once checked, are not looked at again.
    pub credential_recheck: Duration,
    /// How long a tool's unused apiserver connection stays open.
    pub kube_idle: Duration,
    /// How often the listeners' certificate, key and CA files are read for changes (0: never).
    pub tls_reload: Duration,
    /// A client connection that sends no complete request head for this long is closed: an
    /// idle keep-alive connection, or a client that trickles its headers (a new connection:
    /// at most 10 s to its first request).
    pub client_idle: Duration,
    /// On SIGTERM: how long readiness fails while the listeners still serve (so that the
    /// endpoints controller and the ingress stop sending traffic first).
    pub shutdown_delay: Duration,
    /// Then: how long requests in flight may take to finish before the process exits.
    pub shutdown_grace: Duration,
    /// Followed log streams one tool may have open at once; more get 429.
    pub max_log_follows: usize,
    /// Optional YAML file with the image list.
    pub images_file: Option<PathBuf>,
    pub log_json: bool,
    /// Requests per second and burst, per tool, for every call.
    pub rate: (u32, u32),
    /// Requests per second and burst, per tool, for calls that change something.
    pub write_rate: (u32, u32),
    /// Most requests being served at once; more get 503.
    pub max_in_flight: usize,
    pub request_timeout: Duration,
    pub max_body_bytes: u64,
    /// Default job quotas: running (one-off + continuous) and scheduled jobs per tool.
    pub max_running_jobs: u32,
    pub max_scheduled_jobs: u32,
    /// Extra prefix the routes are also served under (`/jobs`: the CLIs' default base URLs).
    pub route_prefix: String,
    /// Optional YAML file with per-tool quota overrides.
    pub quotas_file: Option<PathBuf>,
    /// Whether one tool's creates are serialised within this process (an optimisation only:
    /// the job quotas are decided by Kubernetes after each create).
    pub creation_slot: bool,
    /// Most credential reads in flight at once (each may hang on NFS).
    pub max_blocking_reads: usize,
    /// Warm list and show from watches of the tool's objects (`None`: off).
    pub watch_cache: Option<crate::watchcache::WatchSettings>,
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn addr(name: &str, default: Option<&str>) -> Result<Option<SocketAddr>, ConfigError> {
    let raw = match std::env::var(name) {
        Ok(v) if v.trim().is_empty() => return Ok(None),
        Ok(v) => v,
        Err(_) => match default {
            Some(d) => d.to_string(),
            None => return Ok(None),
        },
    };
    raw.parse().map(Some).map_err(|_| {
        ConfigError(format!(
            "{name}={raw:?} is not an address like 127.0.0.1:8443"
        ))
    })
}

fn required(name: &str) -> Result<String, ConfigError> {
    var(name).ok_or_else(|| ConfigError(format!("{name} must be set")))
}

fn number<T: std::str::FromStr>(name: &str, default: T) -> Result<T, ConfigError> {
    match var(name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| ConfigError(format!("{name}={v:?} is not a number"))),
    }
}

/// A duration setting in milliseconds.
fn millis(name: &str, default: u64) -> Result<Duration, ConfigError> {
    number(name, default).map(Duration::from_millis)
}

/// An `on`/`off` setting.
fn switch(name: &str, default: bool) -> Result<bool, ConfigError> {
    match var(name).as_deref() {
        None => Ok(default),
        Some("on") => Ok(true),
        Some("off") => Ok(false),
        Some(other) => Err(ConfigError(format!("{name}={other:?}: use on or off"))),
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let client_ca = PathBuf::from(required("JOBS_GATEWAY_CLIENT_CA")?);
        let continuous_kind = match var("JOBS_GATEWAY_CONTINUOUS_KIND").as_deref() {
            None | Some("replicationcontroller") => ContinuousKind::ReplicationController,
            Some("deployment") => ContinuousKind::Deployment,
            Some(other) => {
                return Err(ConfigError(format!(
                "JOBS_GATEWAY_CONTINUOUS_KIND={other:?}: use replicationcontroller or deployment"
            )))
            }
        };
        let home_mount = match var("JOBS_GATEWAY_HOME_MOUNT").as_deref() {
            None | Some("none") => HomeMount::None,
            Some("hostpath") => HomeMount::HostPath,
            Some(other) => {
                return Err(ConfigError(format!(
                    "JOBS_GATEWAY_HOME_MOUNT={other:?}: use none or hostpath"
                )))
            }
        };
        let log_json = match var("JOBS_GATEWAY_LOG_FORMAT").as_deref() {
            None | Some("plain") => false,
            Some("json") => true,
            Some(other) => {
                return Err(ConfigError(format!(
                    "JOBS_GATEWAY_LOG_FORMAT={other:?}: use plain or json"
                )))
            }
        };
        let cfg = Self {
            direct_addr: addr("JOBS_GATEWAY_DIRECT_ADDR", None)?,
            ingress_addr: addr("JOBS_GATEWAY_INGRESS_ADDR", Some("127.0.0.1:8443"))?,
            admin_addr: addr("JOBS_GATEWAY_ADMIN_ADDR", Some("127.0.0.1:9000"))?,
            tls_cert: PathBuf::from(required("JOBS_GATEWAY_TLS_CERT")?),
            tls_key: PathBuf::from(required("JOBS_GATEWAY_TLS_KEY")?),
            ingress_ca: var("JOBS_GATEWAY_INGRESS_CA")
                .map(PathBuf::from)
                .unwrap_or_else(|| client_ca.clone()),
            client_ca,
            ingress_cn: var("JOBS_GATEWAY_INGRESS_CN").unwrap_or_else(|| "jobs-ingress".into()),
            ingress_org: var("JOBS_GATEWAY_INGRESS_ORG")
                .unwrap_or_else(|| "toolforge-infra".into()),
            kube_url: required("JOBS_GATEWAY_KUBE_URL")?,
            kube_ca: PathBuf::from(required("JOBS_GATEWAY_KUBE_CA")?),
            home_root: PathBuf::from(
                var("JOBS_GATEWAY_HOME_ROOT").unwrap_or_else(|| "/data/project".into()),
            ),
            organisation: var("JOBS_GATEWAY_ORG").unwrap_or_else(|| "toolforge".into()),
            continuous_kind,
            home_mount,
            fs_timeout: millis("JOBS_GATEWAY_FS_TIMEOUT_MS", 3000)?,
            kube_timeout: millis("JOBS_GATEWAY_KUBE_TIMEOUT_MS", 10_000)?,
            client_cache_size: number("JOBS_GATEWAY_CLIENT_CACHE_SIZE", 2000usize)?,
            kube_idle: millis("JOBS_GATEWAY_KUBE_IDLE_MS", 15_000)?,
            credential_recheck: millis("JOBS_GATEWAY_CREDENTIAL_RECHECK_MS", 1000)?,
            tls_reload: millis("JOBS_GATEWAY_TLS_RELOAD_MS", 10_000)?,
            client_idle: millis("JOBS_GATEWAY_CLIENT_IDLE_MS", 75_000)?,
            shutdown_delay: millis("JOBS_GATEWAY_SHUTDOWN_DELAY_MS", 5_000)?,
            shutdown_grace: millis("JOBS_GATEWAY_SHUTDOWN_GRACE_MS", 20_000)?,
            images_file: var("JOBS_GATEWAY_IMAGES_FILE").map(PathBuf::from),
            max_log_follows: number("JOBS_GATEWAY_MAX_LOG_FOLLOWS", 5usize)?,
            log_json,
            rate: (
                number("JOBS_GATEWAY_RATE_PER_SEC", 10u32)?,
                number("JOBS_GATEWAY_RATE_BURST", 30u32)?,
            ),
            write_rate: (
                number("JOBS_GATEWAY_WRITE_RATE_PER_SEC", 2u32)?,
                number("JOBS_GATEWAY_WRITE_BURST", 20u32)?,
            ),
            max_in_flight: number("JOBS_GATEWAY_MAX_IN_FLIGHT", 1024usize)?,
            request_timeout: millis("JOBS_GATEWAY_REQUEST_TIMEOUT_MS", 60_000)?,
            max_body_bytes: number("JOBS_GATEWAY_MAX_BODY_BYTES", 64 * 1024u64)?,
            max_running_jobs: number("JOBS_GATEWAY_MAX_RUNNING_JOBS", 16u32)?,
            max_scheduled_jobs: number("JOBS_GATEWAY_MAX_SCHEDULED_JOBS", 34u32)?,
            quotas_file: var("JOBS_GATEWAY_QUOTAS_FILE").map(PathBuf::from),
            creation_slot: switch("JOBS_GATEWAY_CREATION_SLOT", true)?,
            route_prefix: var("JOBS_GATEWAY_ROUTE_PREFIX").unwrap_or_else(|| "/jobs".into()),
            max_blocking_reads: number("JOBS_GATEWAY_MAX_BLOCKING_READS", 64usize)?,
            watch_cache: if switch("JOBS_GATEWAY_WATCH_CACHE", false)? {
                Some(crate::watchcache::WatchSettings {
                    idle: millis("JOBS_GATEWAY_WATCH_IDLE_MS", 300_000)?,
                    write_wait: millis("JOBS_GATEWAY_WATCH_WRITE_WAIT_MS", 2_000)?,
                    event_delay: millis("JOBS_GATEWAY_WATCH_EVENT_DELAY_MS", 0)?,
                    // whole seconds, at least one: the apiserver's timeoutSeconds
                    watch_timeout: millis("JOBS_GATEWAY_WATCH_TIMEOUT_MS", 290_000)?
                        .max(Duration::from_secs(1)),
                })
            } else {
                None
            },
        };
        for (name, value) in [
            ("JOBS_GATEWAY_RATE_PER_SEC", cfg.rate.0),
            ("JOBS_GATEWAY_RATE_BURST", cfg.rate.1),
            ("JOBS_GATEWAY_WRITE_RATE_PER_SEC", cfg.write_rate.0),
            ("JOBS_GATEWAY_WRITE_BURST", cfg.write_rate.1),
        ] {
            if value == 0 {
                return Err(ConfigError(format!("{name} must be at least 1")));
            }
        }
        if cfg.max_in_flight == 0 || cfg.max_blocking_reads == 0 {
            return Err(ConfigError(
                "JOBS_GATEWAY_MAX_IN_FLIGHT and JOBS_GATEWAY_MAX_BLOCKING_READS must be at least 1"
                    .into(),
            ));
        }
        if cfg.direct_addr.is_none() && cfg.ingress_addr.is_none() {
            return Err(ConfigError(
                "neither JOBS_GATEWAY_DIRECT_ADDR nor JOBS_GATEWAY_INGRESS_ADDR is set".into(),
            ));
        }
        let p = &cfg.route_prefix;
        let prefix_ok = p.starts_with('/')
            && !p.ends_with('/')
            && p.len() <= 100
            && !p
                .split('/')
                .any(|seg| seg == "v1" || seg == "api" || seg == "..")
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"/-_.".contains(&b));
        if !prefix_ok {
            return Err(ConfigError(format!(
                "JOBS_GATEWAY_ROUTE_PREFIX={p:?}: use a path like /jobs (lower case, no trailing '/', no 'api' or 'v1' segment)"
            )));
        }
        if cfg.ingress_org == cfg.organisation {
            return Err(ConfigError(
                "JOBS_GATEWAY_INGRESS_ORG must differ from the tools' organisation".into(),
            ));
        }
        if cfg.client_idle < Duration::from_secs(1) {
            return Err(ConfigError(
                "JOBS_GATEWAY_CLIENT_IDLE_MS must be at least 1000 (clients over a network need time to send a request)".into(),
            ));
        }
        if cfg.client_cache_size == 0 {
            return Err(ConfigError(
                "JOBS_GATEWAY_CLIENT_CACHE_SIZE must be at least 1".into(),
            ));
        }
        Ok(cfg)
    }
}
