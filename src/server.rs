//! Listeners: TLS setup (rustls via axum-server) and the plain-HTTP admin port.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::{Json, Router};
use axum_server::tls_rustls::RustlsConfig;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::zeroize::Zeroizing;
use tokio::task::JoinSet;

use crate::api::auth::Listener;
use crate::api::guard::LoadLimits;
use crate::api::{self, AppState};
use crate::config::Config;
use crate::credentials::{CredentialStore, StoreSettings};
use crate::filewatch::{Current, FileWatch, Source};
use crate::limits::{
    quota_file, spawn_housekeeping, JobQuota, JobQuotas, QuotaFile, Rate, RateLimits,
};
use jobs_core::images::ImageCatalog;
use jobs_core::pem::pem_certificates;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

fn read(path: &std::path::Path) -> Result<Vec<u8>, StartError> {
    std::fs::read(path).map_err(|e| StartError(format!("reading {}: {e}", path.display())))
}

/// A server config that asks for a client certificate chained to `client_ca`. Connections without
/// one are let through the handshake so that the API can answer 401 with a JSON explanation.
pub fn tls_config(
    cert_pem: &[u8],
    key_pem: &[u8],
    client_ca_pem: &[u8],
) -> Result<rustls::ServerConfig, StartError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for der in pem_certificates(client_ca_pem).map_err(StartError)? {
        roots
            .add(CertificateDer::from(der))
            .map_err(|e| StartError(format!("client CA: {e}")))?;
    }
    if roots.is_empty() {
        return Err(StartError("the client CA file holds no certificate".into()));
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| StartError(format!("client verifier: {e}")))?;
    let chain: Vec<CertificateDer<'static>> = pem_certificates(cert_pem)
        .map_err(StartError)?
        .into_iter()
        .map(CertificateDer::from)
        .collect();
    let mut reader = key_pem;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut reader)
        .ok()
        .flatten()
        .ok_or_else(|| StartError("the server key file holds no usable private key".into()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StartError(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| StartError(format!("server certificate: {e}")))?;
    // HTTP/1.1 only: every client speaks it (nginx upstream, the CLIs), and an h1 connection's
    // idle time is bounded (JOBS_GATEWAY_CLIENT_IDLE_MS); hyper has no idle limit for h2
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// What the listeners serve, made from the TLS files as a whole: a config per listener (in the
/// order of the listeners) and the certificate's notAfter.
struct TlsSet {
    configs: Vec<Arc<rustls::ServerConfig>>,
    not_after: Option<i64>,
}

/// The files the TLS listeners are made from: the certificate, the key, then the CA file of each
/// listener (its client certificates chain to it). Re-read every `period` (a renewed certificate,
/// a rotated CA: cert-manager, a Kubernetes secret update), a new set is taken only when it is
/// whole (the certificate matches its key, the CAs parse); see [`crate::filewatch`].
fn tls_files(cert: PathBuf, key: PathBuf, cas: Vec<PathBuf>, period: Duration) -> Source<TlsSet> {
    let mut paths = vec![cert, key];
    paths.extend(cas);
    Source::new("TLS files", paths, |files| match files {
        [cert, key, cas @ ..] => Ok(TlsSet {
            configs: cas
                .iter()
                .map(|ca| tls_config(cert, key, ca).map(Arc::new).map_err(|e| e.0))
                .collect::<Result<_, _>>()?,
            not_after: certificate_not_after(cert),
        }),
        _ => Err("no certificate and key".into()),
    })
    .every(period)
}

/// The serving certificate's notAfter (unix seconds).
fn certificate_not_after(cert_pem: &[u8]) -> Option<i64> {
    let ders = pem_certificates(cert_pem).ok()?;
    let der = ders.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// Publishes the serving certificate's notAfter as a gauge to alert on.
fn publish_certificate_expiry(not_after: Option<i64>) {
    if let Some(t) = not_after {
        crate::metrics::global().set(
            "jobs_gateway_tls_certificate_not_after_seconds",
            "when the serving certificate expires (unix time)",
            t,
        );
    }
}

/// Watches the TLS files: a whole new set switches every listener in `live` (in the order of
/// the set's configs) for new connections, while connections already open keep the config
/// they started with; a refused set, an unreadable or hung file, is logged and counted once.
fn spawn_tls_reloader(files: FileWatch<TlsSet>, live: Vec<RustlsConfig>, cert: PathBuf) {
    let metrics = crate::metrics::global();
    let count = |result: &str| {
        metrics.inc(
            "jobs_gateway_tls_reloads_total",
            vec![("result", result.into())],
        )
    };
    // both series exist from the start, so that a first refusal is an increase
    for result in ["applied", "refused"] {
        metrics.touch(
            "jobs_gateway_tls_reloads_total",
            vec![("result", result.into())],
        );
    }
    files
        .on_change(move |set: &TlsSet| {
            for (live, config) in live.iter().zip(&set.configs) {
                live.reload_from_config(config.clone());
            }
            publish_certificate_expiry(set.not_after);
            count("applied");
            tracing::info!(cert = %cert.display(), "TLS certificate, key and CAs reloaded");
        })
        .on_problem(move |problem| {
            tracing::warn!(
                "TLS files not reloaded: {problem}; the listeners keep the previous ones"
            );
            count("refused");
        })
        .spawn();
}

/// How often the image list and the quota file are read again.
const DATA_FILE_PERIOD: Duration = Duration::from_secs(5);

/// The watchers of the files [`build_state`] loaded, to start once the runtime runs.
pub struct FileWatches {
    images: Option<FileWatch<ImageCatalog>>,
    quotas: Option<FileWatch<QuotaFile>>,
}

impl FileWatches {
    /// Starts re-reading the files (on the current Tokio runtime).
    pub fn spawn(self) {
        if let Some(w) = self.images {
            w.spawn();
        }
        if let Some(w) = self.quotas {
            w.spawn();
        }
    }
}

/// Builds the shared state from configuration: the files are read now (an error stops
/// start-up); their watchers are returned, not started.
pub fn build_state(config: Config) -> Result<(AppState, FileWatches), StartError> {
    let images = match &config.images_file {
        Some(path) => Some(image_list(path.clone()).load().map_err(StartError)?),
        None => None,
    };
    let credentials = CredentialStore::new(StoreSettings {
        home_root: config.home_root.clone(),
        organisation: config.organisation.clone(),
        kube_url: config.kube_url.clone(),
        kube_ca_pem: read(&config.kube_ca)?,
        fs_timeout: config.fs_timeout,
        kube_timeout: config.kube_timeout,
        capacity: config.client_cache_size,
        recheck: config.credential_recheck,
        idle: config.kube_idle,
        max_blocking_reads: config.max_blocking_reads,
    })
    .map_err(StartError)?;
    let rate_limits = Arc::new(RateLimits::new(
        Rate {
            per_second: config.rate.0,
            burst: config.rate.1,
        },
        Rate {
            per_second: config.write_rate.0,
            burst: config.write_rate.1,
        },
    ));
    let quota_file = match &config.quotas_file {
        Some(path) => Some(
            quota_file(path.clone(), DATA_FILE_PERIOD)
                .load()
                .map_err(StartError)?,
        ),
        None => None,
    };
    let quotas = JobQuotas::new(
        JobQuota {
            running: config.max_running_jobs,
            scheduled: config.max_scheduled_jobs,
        },
        quota_file.as_ref().map(FileWatch::current),
    )
    .with_creation_slot(config.creation_slot);
    let load = LoadLimits {
        in_flight: Arc::new(tokio::sync::Semaphore::new(config.max_in_flight)),
        timeout: config.request_timeout,
        max_body: config.max_body_bytes,
    };
    let state = AppState {
        draining: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        stopping: Arc::new(tokio::sync::watch::Sender::new(false)),
        follows: crate::api::podlogs::FollowSlots::new(config.max_log_follows),
        watch: config
            .watch_cache
            .map(|w| Arc::new(crate::watchcache::WatchCache::new(w))),
        rate_limits,
        quotas: Arc::new(quotas),
        load,
        config: Arc::new(config),
        credentials: Arc::new(credentials),
        catalog: match &images {
            Some(watch) => watch.current(),
            None => Current::fixed(ImageCatalog::builtin()),
        },
    };
    let watches = FileWatches {
        images,
        quotas: quota_file,
    };
    Ok((state, watches))
}

/// The image list file (a mounted ConfigMap), re-read every [`DATA_FILE_PERIOD`] once watched;
/// a broken new version keeps the previous list.
fn image_list(path: PathBuf) -> Source<ImageCatalog> {
    let shown = path.clone();
    Source::new("image list", vec![path], move |files| match files {
        [bytes] => {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| format!("{} is not UTF-8", shown.display()))?;
            ImageCatalog::from_yaml(text)
        }
        _ => Err(format!("image list {}: not read", shown.display())),
    })
    .every(DATA_FILE_PERIOD)
}

/// Whether the apiserver accepts TCP connections (readiness).
async fn apiserver_reachable(url: &str) -> bool {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return false;
    };
    let Some(host) = uri.host() else { return false };
    let port = uri.port_u16().unwrap_or(443);
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    matches!(
        tokio::time::timeout(
            Duration::from_secs(1),
            tokio::net::TcpStream::connect((host.as_str(), port))
        )
        .await,
        Ok(Ok(_))
    )
}

/// Prometheus text: request and Kubernetes call metrics plus credential-cache figures.
fn render_metrics(state: &AppState) -> String {
    let c = state.credentials.stats();
    crate::metrics::global().render(&[
        (
            "jobs_gateway_credential_cache_hits_total",
            "counter",
            "requests served by a cached kube client",
            c.hits,
        ),
        (
            "jobs_gateway_credential_cache_misses_total",
            "counter",
            "first requests of a tool (client built)",
            c.misses,
        ),
        (
            "jobs_gateway_credential_cache_reloads_total",
            "counter",
            "clients rebuilt because the tool's files changed",
            c.reloads,
        ),
        (
            "jobs_gateway_credential_cache_evictions_total",
            "counter",
            "clients dropped to stay within the cache size",
            c.evictions,
        ),
        (
            "jobs_gateway_credential_cache_tools",
            "gauge",
            "kube clients kept warm",
            state.credentials.cached_tools() as u64,
        ),
        (
            "jobs_gateway_kube_connected_tools",
            "gauge",
            "warm tools with an open apiserver connection",
            state.credentials.connected_tools() as u64,
        ),
    ])
}

/// Closes the apiserver connections of quiet tools and gives the memory back.
fn spawn_connection_sweeper(credentials: Arc<CredentialStore>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(credentials.idle_sweep_period());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if credentials.close_idle_connections() > 0 {
                crate::memory::trim_soon();
            }
        }
    });
}

fn admin_router(state: AppState) -> Router {
    let for_metrics = state.clone();
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let state = for_metrics.clone();
                async move {
                    (
                        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        render_metrics(&state),
                    )
                }
            }),
        )
        .route("/healthz", get(|| async { Json("OK") }))
        .route(
            "/readyz",
            get(move || {
                let url = state.config.kube_url.clone();
                let draining = state.draining.clone();
                async move {
                    if draining.load(std::sync::atomic::Ordering::Relaxed) {
                        return (http::StatusCode::SERVICE_UNAVAILABLE, Json("draining"));
                    }
                    if apiserver_reachable(&url).await {
                        (http::StatusCode::OK, Json("OK"))
                    } else {
                        (
                            http::StatusCode::SERVICE_UNAVAILABLE,
                            Json("apiserver unreachable"),
                        )
                    }
                }
            }),
        )
}

/// Longest a new client connection may take to send its first request.
const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A listener's limits on its clients: HTTP/1.1 only, also for a client that skips ALPN and
/// sends the HTTP/2 preface (hyper has no idle limit for h2 connections); a connection that
/// sends no first request within min(`idle`, 10 s) is let go; every request head (after idle
/// keep-alive, or headers sent slowly) must arrive within `idle`. A request being served (a
/// slow upload, a streamed reply such as followed logs) is not cut.
fn bounded<A: axum_server::Address, Acc>(
    server: axum_server::Server<A, Acc>,
    idle: Duration,
) -> axum_server::Server<A, Acc> {
    let mut server = server
        .http1_only()
        .first_request_timeout(idle.min(FIRST_REQUEST_TIMEOUT));
    server
        .http_builder()
        .http1()
        .header_read_timeout(Some(idle));
    server
}

/// Runs every configured listener until one fails.
pub async fn run(config: Config) -> Result<(), StartError> {
    let mut signals = Signals::new()?;
    let cert = read(&config.tls_cert)?;
    let mut key = Zeroizing::new(read(&config.tls_key)?);
    let client_ca = read(&config.client_ca)?;
    let ingress_ca = read(&config.ingress_ca)?;
    let direct_addr = config.direct_addr;
    let ingress_addr = config.ingress_addr;
    let admin_addr = config.admin_addr;
    let tls_reload = config.tls_reload;
    publish_certificate_expiry(certificate_not_after(&cert));
    crate::metrics::set_kube_timeout(config.kube_timeout);
    let (state, watches) = build_state(config)?;
    watches.spawn();
    if let Some(cache) = &state.watch {
        cache.spawn_sweeper();
    }
    spawn_housekeeping(state.rate_limits.clone());
    spawn_connection_sweeper(state.credentials.clone());
    // the TLS listeners in order, with their CA files; a disabled listener's CA was read above
    // all the same (a missing one stops start-up, as it always has)
    let mut listeners = Vec::new();
    let mut ca_files = Vec::new();
    let mut contents = vec![cert, std::mem::take(&mut *key)];
    if let Some(addr) = direct_addr {
        listeners.push((addr, Listener::Direct));
        ca_files.push(state.config.client_ca.clone());
        contents.push(client_ca);
    }
    if let Some(addr) = ingress_addr {
        listeners.push((addr, Listener::Ingress));
        ca_files.push(state.config.ingress_ca.clone());
        contents.push(ingress_ca);
    }
    // the key's bytes live on only inside rustls: zeroed once the configs are made
    let tls = tls_files(
        state.config.tls_cert.clone(),
        state.config.tls_key.clone(),
        ca_files,
        tls_reload,
    )
    .load_from(contents)
    .map_err(StartError)?;
    let mut tasks: JoinSet<Result<(), StartError>> = JoinSet::new();
    // shared by the TLS listeners (a handle each): stops them together, gracefully
    let control = axum_server::Control::new();
    let mut live = Vec::new();
    for ((addr, listener), config) in listeners.into_iter().zip(&tls.current().get().configs) {
        let rustls = RustlsConfig::from_config(config.clone());
        live.push(rustls.clone());
        let app = api::router(state.clone(), listener);
        let stop = axum_server::Handle::<SocketAddr>::with_control(control.clone());
        let idle = state.config.client_idle;
        tasks.spawn(async move {
            tracing::info!(%addr, ?listener, "listening (TLS)");
            // TCP_NODELAY: a reply written in two segments must not wait for the client's
            // delayed ACK (Nagle), which cost ~40 ms on some fresh connections
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(rustls)
                .acceptor(axum_server::accept::NoDelayAcceptor::new());
            bounded(axum_server::bind(addr).acceptor(acceptor), idle)
                .handle(stop)
                .serve(app.into_make_service())
                .await
                .map_err(|e| StartError(format!("{listener:?} listener on {addr}: {e}")))
        });
    }
    if !tls_reload.is_zero() {
        spawn_tls_reloader(tls, live, state.config.tls_cert.clone());
    }
    let mut admin: JoinSet<Result<(), StartError>> = JoinSet::new();
    if let Some(addr) = admin_addr {
        let app = admin_router(state.clone());
        let idle = state.config.client_idle;
        admin.spawn(async move {
            tracing::info!(%addr, "listening (admin, plain HTTP)");
            // probes and scrapes send their request at once
            bounded(axum_server::bind(addr), idle)
                .serve(app.into_make_service())
                .await
                .map_err(|e| StartError(format!("admin listener on {addr}: {e}")))
        });
    }
    let signal = tokio::select! {
        Some(ended) = tasks.join_next() => return Err(listener_ended(ended)),
        Some(ended) = admin.join_next() => return Err(listener_ended(ended)),
        signal = signals.next() => signal,
    };

    // Shutting down, as a rolling update or a drained node asks. Kubernetes takes a terminating
    // pod out of the endpoints at once; the delay gives kube-proxy and the ingress time to
    // follow while everything still serves (/readyz answers 503 meanwhile, for balancers that
    // poll it). Then no new connections, followed logs end, and the requests in flight get the
    // grace time. The admin port serves until the end. A second signal stops at once.
    let (delay, grace) = (state.config.shutdown_delay, state.config.shutdown_grace);
    tracing::info!(
        delay_ms = delay.as_millis() as u64,
        grace_ms = grace.as_millis() as u64,
        "{signal}: shutting down; new connections are refused after the delay, requests in flight then have the grace time (a second signal stops at once)"
    );
    state
        .draining
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let drained = async {
        tokio::time::sleep(delay).await;
        state.stopping.send_replace(true);
        control.graceful_shutdown(Some(grace));
        let started = tokio::time::Instant::now();
        while let Some(ended) = tasks.join_next().await {
            if let Ok(Err(e)) = ended {
                tracing::warn!("{e}");
            }
        }
        started.elapsed() < grace
    };
    tokio::select! {
        in_time = drained => {
            if in_time {
                tracing::info!("stopped: every request in flight finished");
            } else {
                tracing::warn!("stopped: the grace time ran out, open connections were cut");
            }
        }
        again = signals.next() => {
            control.shutdown();
            tracing::warn!("{again} again: stopped at once, open connections were cut");
        }
    }
    admin.abort_all();
    Ok(())
}

/// Why the process stops when a listener ended before any shutdown was asked for.
fn listener_ended(ended: Result<Result<(), StartError>, tokio::task::JoinError>) -> StartError {
    match ended {
        Ok(Err(e)) => e,
        Ok(Ok(())) => StartError("a listener stopped".into()),
        Err(e) => StartError(format!("listener task failed: {e}")),
    }
}

/// SIGTERM (Kubernetes stopping the pod) and SIGINT (Ctrl-C), watched from the start.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Self, StartError> {
        use tokio::signal::unix::{signal, SignalKind};
        let watch = |kind: SignalKind| {
            signal(kind).map_err(|e| StartError(format!("cannot watch for signals: {e}")))
        };
        Ok(Self {
            term: watch(SignalKind::terminate())?,
            int: watch(SignalKind::interrupt())?,
        })
    }

    /// The next signal that comes, by name.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_list_file_fails_start_up_as_before() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("images-v1.yaml");
        let load = || image_list(path.clone()).load().map(|w| w.current().get());
        let missing = load().err().unwrap_or_default();
        assert!(
            missing.starts_with(&format!("reading {}: No such file", path.display())),
            "{missing}"
        );
        std::fs::write(&path, b"\xff: x\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            load().err(),
            Some(format!("{} is not UTF-8", path.display()))
        );
        std::fs::write(&path, "a: {}\n").unwrap_or_else(|e| panic!("{e}"));
        let broken = load().err().unwrap_or_default();
        assert!(broken.starts_with("image list: "), "{broken}");
        std::fs::write(
            &path,
            "bookworm:\n  state: stable\n  variants:\n    jobs-framework: {image: registry.example/bookworm}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let catalog = load().unwrap_or_else(|e| panic!("{e}"));
        assert!(catalog.resolve("bookworm").is_some());
    }

    /// A self-signed certificate and its key (PEM files), made with openssl.
    fn self_signed(dir: &std::path::Path, name: &str) -> (PathBuf, PathBuf) {
        let (cert, key) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        let made = std::process::Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "2"])
            .args(["-subj", &format!("/CN={name}"), "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .unwrap_or_else(|e| panic!("openssl: {e}"));
        assert!(made.status.success(), "{made:?}");
        (cert, key)
    }

    /// Puts a copy of `from` at `to` in one step, as a secret update does.
    fn replace(from: &std::path::Path, to: &std::path::Path) {
        let tmp = to.with_extension("new");
        std::fs::copy(from, &tmp).unwrap_or_else(|e| panic!("{e}"));
        std::fs::rename(&tmp, to).unwrap_or_else(|e| panic!("{e}"));
    }

    async fn eventually(what: &str, done: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(
                std::time::Instant::now() < deadline,
                "not within 5 s: {what}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn a_torn_tls_set_is_refused_once_and_a_whole_one_taken() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let d = dir.path();
        let (old_cert, old_key) = self_signed(d, "old");
        let (new_cert, new_key) = self_signed(d, "new");
        let (cert, key, ca) = (d.join("tls.crt"), d.join("tls.key"), d.join("ca.crt"));
        replace(&old_cert, &cert);
        replace(&old_key, &key);
        replace(&old_cert, &ca);
        let files = || {
            tls_files(
                cert.clone(),
                key.clone(),
                vec![ca.clone(), ca.clone()],
                Duration::from_millis(10),
            )
        };
        let watch = files().load().unwrap_or_else(|e| panic!("{e}"));
        let first = watch.current().get();
        assert_eq!(first.configs.len(), 2, "a config per listener");
        assert!(first.not_after.is_some());
        let stats = watch.stats();
        let problems = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let applied = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (p, a) = (problems.clone(), applied.clone());
        let reported = move || p.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let taken = move || a.load(std::sync::atomic::Ordering::SeqCst);
        let seen = problems.clone();
        let applies = applied.clone();
        watch
            .on_change(move |set| {
                assert_eq!(set.configs.len(), 2);
                applies.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            })
            .on_problem(move |text| {
                seen.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(text.into())
            })
            .spawn();
        let reads_more = |n: u64| {
            let want = stats.reads() + n;
            let stats = stats.clone();
            async move { eventually("reads", || stats.reads() >= want).await }
        };

        // half-way: the new certificate beside the old key, for several checks
        replace(&new_cert, &cert);
        eventually("the torn set refused", || reported().len() == 1).await;
        reads_more(5).await;
        assert_eq!(reported().len(), 1, "{:?}", reported());
        assert!(
            reported()[0].starts_with("server certificate: "),
            "{:?}",
            reported()
        );
        // rolled back to what is served, then torn the same way again: nothing new to report
        replace(&old_cert, &cert);
        reads_more(3).await;
        replace(&new_cert, &cert);
        reads_more(3).await;
        assert_eq!((reported().len(), taken()), (1, 0), "{:?}", reported());
        // the key arrives: the whole new set is taken
        replace(&new_key, &key);
        eventually("the new set taken", || taken() == 1).await;
        let texts = reported().join("\n");
        assert!(
            !texts.contains("PRIVATE KEY") && !texts.contains("BEGIN"),
            "{texts}"
        );

        // at start, a torn set stops start-up with the message it always had
        replace(&old_key, &key);
        let torn = files().load().err().unwrap_or_default();
        assert!(torn.starts_with("server certificate: "), "{torn}");
    }
}
