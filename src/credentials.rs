//! Each tool's own Kubernetes credentials, loaded from its home and cached as a kube client.
//!
//! The gateway never calls Kubernetes with an identity of its own: for every request it takes
//! the certificate and key that the platform keeps in `<home-root>/<tool>/.toolskube/` (or the
//! files that the tool's `.kube/config` names) and builds a client from them. The apiserver
//! address and CA come from the gateway's configuration, never from the tool's files, so a tool
//! cannot point the gateway somewhere else.
//!
//! Reads go through a bounded blocking pool with a timeout, because NFS can hang: a hung read
//! holds one slot and fails that tool's request with 503, other tools carry on. A tool whose read
//! is still hung gets 503 at once instead of taking a second slot.
//!
//! A tool's checked certificate and TLS config are cached and reused; its apiserver connection
//! is kept while it is in use. The files are stat'ed again when the last check is older than
//! the recheck time (every request with `0`); a changed size, mtime or inode (a rotated
//! certificate) reloads them. One check or load per tool runs at a time; requests that arrive
//! meanwhile take its result if it started after they arrived.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use tokio::sync::Semaphore;

use crate::home::{HomeError, HomeFile, Problem, ToolHome};
use jobs_core::identity::{certificate_subject, ToolName};
use jobs_core::pem::pem_certificates;

/// Largest credential file read; real ones are a few KiB.
const MAX_FILE_LEN: u64 = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("no Kubernetes credentials found for tool '{tool}' (looked for {looked_for})")]
    Missing { tool: String, looked_for: String },
    #[error("the Kubernetes credentials of tool '{tool}' are not usable: {reason}")]
    Invalid { tool: String, reason: String },
    #[error("reading the home of tool '{tool}' timed out; try again later")]
    Timeout { tool: String },
    #[error("reading the home of tool '{tool}' failed: {reason}")]
    Io { tool: String, reason: String },
    #[error("could not build a Kubernetes client for tool '{tool}': {reason}")]
    Client { tool: String, reason: String },
}

/// Identity of the files a client was built from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    files: Vec<(PathBuf, u64, i64, i64, u64)>,
}

struct Entry {
    stamp: FileStamp,
    /// The tool's TLS config: its checked certificate and key. Behind a pointer: the cache's
    /// table has a slot per tool, and a config is a large struct; shared with the tool's
    /// connection.
    tls: Arc<rustls::ClientConfig>,
    /// Its connection to the apiserver; dropped, closing the connection, once unused for the
    /// idle time, and made again (with a new TLS handshake) on the next request.
    connector: Option<ToolConnector>,
    last_used: Instant,
    /// When the files were last found unchanged (or read).
    checked: Instant,
}

/// PEM material that passed the checks.
struct Material {
    stamp: FileStamp,
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
}

/// Counters for /metrics and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub reloads: u64,
    pub evictions: u64,
}

pub struct CredentialStore {
    home_root: PathBuf,
    organisation: String,
    /// The apiserver, parsed once for every tool's connection.
    target: Arc<crate::apiconn::Target>,
    tls: ApiserverTls,
    fs_timeout: Duration,
    connect_timeout: Duration,
    recheck: Duration,
    idle: Duration,
    capacity: usize,
    blocking: Arc<Semaphore>,
    /// Tools with a read that timed out and is still hanging.
    stuck: Arc<Mutex<HashMap<ToolName, usize>>>,
    cache: Mutex<HashMap<ToolName, Entry>>,
    /// Per tool with a check or load under way: requests that need one wait for it and take
    /// its result instead of reading the same files (on NFS) again each.
    loading: Arc<Mutex<HashMap<ToolName, Arc<tokio::sync::Mutex<()>>>>>,
    /// Counted without a lock (the fast path already holds the cache lock).
    stats: Counters,
}

/// Holds a tool's load turn; the last one out removes the tool's gate.
struct LoadTurn {
    loading: Arc<Mutex<HashMap<ToolName, Arc<tokio::sync::Mutex<()>>>>>,
    tool: ToolName,
    held: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for LoadTurn {
    fn drop(&mut self) {
        let mut loading = lock(&self.loading);
        self.held = None;
        // the map's reference is the only one left: nobody holds or waits for this gate
        if loading
            .get(&self.tool)
            .is_some_and(|gate| Arc::strong_count(gate) == 1)
        {
            loading.remove(&self.tool);
        }
    }
}

/// The live counters behind [`CacheStats`].
#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    reloads: AtomicU64,
    evictions: AtomicU64,
}

/// Settings of a [`CredentialStore`].
pub struct StoreSettings {
    pub home_root: PathBuf,
    pub organisation: String,
    pub kube_url: String,
    pub kube_ca_pem: Vec<u8>,
    pub fs_timeout: Duration,
    pub kube_timeout: Duration,
    pub capacity: usize,
    /// How long a tool's files, once checked, are trusted unchanged (0: check on every request).
    pub recheck: Duration,
    /// How long an unused apiserver connection of a tool stays open.
    pub idle: Duration,
    /// Most credential reads in flight at once.
    pub max_blocking_reads: usize,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether one blocking read has finished, and whether it was given up on while hung.
#[derive(Default)]
struct ReadState {
    finished: bool,
    stuck: bool,
}

/// One blocking read's state, shared by the read and the request waiting for it.
struct ReadWatch {
    stuck_tools: Arc<Mutex<HashMap<ToolName, usize>>>,
    tool: ToolName,
    state: Arc<Mutex<ReadState>>,
}

/// Dropped when the blocking read really ends: clears the tool's "stuck" mark if it had one.
struct ReadGuard(ReadWatch);

impl Drop for ReadGuard {
    fn drop(&mut self) {
        let w = &self.0;
        let mut st = lock(&w.state);
        st.finished = true;
        if st.stuck {
            let mut stuck = lock(&w.stuck_tools);
            if let Some(n) = stuck.get_mut(&w.tool) {
                *n -= 1;
                if *n == 0 {
                    stuck.remove(&w.tool);
                }
            }
        }
    }
}

/// Dropped when a request stops waiting for a blocking read: if the read has not ended, the
/// tool is marked stuck (its next requests fail at once instead of each taking another slot
/// of the blocking pool); the read's own [`ReadGuard`] clears the mark when it ends.
struct MarkIfUnfinished(ReadWatch);

impl Drop for MarkIfUnfinished {
    fn drop(&mut self) {
        let w = &self.0;
        let mut st = lock(&w.state);
        if !st.finished && !st.stuck {
            st.stuck = true;
            *lock(&w.stuck_tools).entry(w.tool.clone()).or_insert(0) += 1;
        }
    }
}

impl CredentialStore {
    pub fn new(settings: StoreSettings) -> Result<Self, String> {
        let kube_url: http::Uri = settings
            .kube_url
            .parse()
            .map_err(|e| format!("apiserver URL {:?}: {e}", settings.kube_url))?;
        let target = crate::apiconn::Target::of(&kube_url).map_err(|e| e.to_string())?;
        let kube_ca = pem_certificates(&settings.kube_ca_pem)?;
        if kube_ca.is_empty() {
            return Err("the apiserver CA file holds no certificate".into());
        }
        Ok(Self {
            home_root: settings.home_root,
            organisation: settings.organisation,
            target: Arc::new(target),
            tls: ApiserverTls::new(&kube_ca)?,
            fs_timeout: settings.fs_timeout,
            connect_timeout: settings.kube_timeout.min(Duration::from_secs(2)),
            recheck: settings.recheck,
            idle: settings.idle,
            capacity: settings.capacity.max(1),
            blocking: Arc::new(Semaphore::new(settings.max_blocking_reads.max(1))),
            stuck: Arc::new(Mutex::new(HashMap::new())),
            cache: Mutex::new(HashMap::new()),
            loading: Arc::new(Mutex::new(HashMap::new())),
            stats: Counters::default(),
        })
    }

    pub fn stats(&self) -> CacheStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CacheStats {
            hits: get(&self.stats.hits),
            misses: get(&self.stats.misses),
            reloads: get(&self.stats.reloads),
            evictions: get(&self.stats.evictions),
        }
    }

    pub fn cached_tools(&self) -> usize {
        lock(&self.cache).len()
    }

    /// The connection of `tool` to the apiserver: its requests act as `tool`.
    pub async fn connector_for(&self, tool: &ToolName) -> Result<ToolConnector, CredentialError> {
        let arrived = Instant::now();
        if let Some(entry) = lock(&self.cache).get_mut(tool) {
            if entry.checked.elapsed() < self.recheck {
                entry.last_used = arrived;
                self.stats.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(self.connector_of(tool, entry));
            }
        }
        // One check or load per tool at a time. Whoever waited takes a result whose reads
        // started after it arrived instead of doing the same reads again. The wait is bounded
        // like a read: the one ahead gives up after the fs timeout.
        let _turn = tokio::time::timeout(self.fs_timeout, self.load_turn(tool))
            .await
            .map_err(|_| CredentialError::Timeout {
                tool: tool.to_string(),
            })?;
        let cached_stamp = {
            let mut cache = lock(&self.cache);
            match cache.get_mut(tool) {
                Some(entry)
                    if entry.checked >= arrived || entry.checked.elapsed() < self.recheck =>
                {
                    entry.last_used = Instant::now();
                    self.stats.hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(self.connector_of(tool, entry));
                }
                Some(entry) => Some(entry.stamp.clone()),
                None => None,
            }
        };
        // when the files were looked at: a rotation after this is not seen by this check
        let started = Instant::now();
        if let Some(stamp) = cached_stamp {
            let home_root = self.home_root.clone();
            let t = tool.clone();
            let current = self
                .run_blocking(tool, move || stamp_files(&home_root, &t))
                .await?;
            if current == stamp {
                let mut cache = lock(&self.cache);
                if let Some(entry) = cache.get_mut(tool) {
                    if entry.stamp == current {
                        entry.last_used = Instant::now();
                        entry.checked = started;
                        self.stats.hits.fetch_add(1, Ordering::Relaxed);
                        return Ok(self.connector_of(tool, entry));
                    }
                }
            }
            self.stats.reloads.fetch_add(1, Ordering::Relaxed);
        } else {
            self.stats.misses.fetch_add(1, Ordering::Relaxed);
        }
        let home_root = self.home_root.clone();
        let org = self.organisation.clone();
        let t = tool.clone();
        let apiserver_tls = self.tls.clone();
        // The TLS config is built on the reading thread too: what a warm tool keeps is then
        // allocated apart from the short-lived buffers of requests and connections, so the
        // allocator can give those pages back once a connection closes.
        let (material, tls) = self
            .run_blocking(tool, move || {
                let material = load_material(&home_root, &t, &org)?;
                let tls = apiserver_tls
                    .client_config(&material.cert_pem, &material.key_pem)
                    .map_err(|reason| CredentialError::Client {
                        tool: t.to_string(),
                        reason,
                    })?;
                Ok((material, Arc::new(tls)))
            })
            .await?;
        let mut entry = Entry {
            stamp: material.stamp,
            tls,
            connector: None,
            last_used: Instant::now(),
            checked: started,
        };
        let connector = self.connector_of(tool, &mut entry);
        let mut cache = lock(&self.cache);
        cache.insert(tool.clone(), entry);
        if cache.len() > self.capacity {
            let oldest = cache
                .iter()
                .filter(|(name, _)| *name != tool)
                .min_by_key(|(_, e)| e.last_used)
                .map(|(name, _)| name.clone());
            if let Some(name) = oldest {
                cache.remove(&name);
                self.stats.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(connector)
    }

    /// Waits for the tool's turn to check or load its files.
    async fn load_turn(&self, tool: &ToolName) -> LoadTurn {
        let gate = lock(&self.loading)
            .entry(tool.clone())
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(())))
            .clone();
        LoadTurn {
            loading: self.loading.clone(),
            tool: tool.clone(),
            held: Some(gate.lock_owned().await),
        }
    }

    /// The entry's connection (made if it was dropped).
    fn connector_of(&self, tool: &ToolName, entry: &mut Entry) -> ToolConnector {
        entry
            .connector
            .get_or_insert_with(|| {
                ToolConnector::new(
                    entry.tls.clone(),
                    self.target.clone(),
                    tool.namespace(),
                    self.connect_timeout,
                )
            })
            .clone()
    }

    /// Drops the connections of tools unused for the idle time (their connections close;
    /// the tools stay warm). Returns how many were dropped.
    pub fn close_idle_connections(&self) -> usize {
        // taken under the lock every request needs, dropped (connections shut) after it
        // a connection still held elsewhere (the watch cache's feeds, a request following
        // logs) stays: taking it would only make the tool's next request open a second one
        let quiet: Vec<ToolConnector> = lock(&self.cache)
            .values_mut()
            .filter(|entry| entry.last_used.elapsed() >= self.idle)
            .filter(|entry| {
                entry
                    .connector
                    .as_ref()
                    .is_some_and(|c| !c.held_elsewhere())
            })
            .filter_map(|entry| entry.connector.take())
            .collect();
        quiet.len()
    }

    /// Tools whose connection to the apiserver is open.
    pub fn connected_tools(&self) -> usize {
        lock(&self.cache)
            .values()
            .filter(|e| e.connector.is_some())
            .count()
    }

    /// How often [`Self::close_idle_connections`] should run.
    pub fn idle_sweep_period(&self) -> Duration {
        (self.idle / 3).clamp(Duration::from_millis(100), Duration::from_secs(5))
    }

    /// Forgets a tool's client (used when the apiserver rejects its credentials).
    pub fn forget(&self, tool: &ToolName) {
        lock(&self.cache).remove(tool);
    }

    /// Runs a blocking filesystem operation for `tool` on the bounded pool, with the read
    /// timeout. A tool whose earlier read is still hung fails at once instead of piling up.
    pub async fn run_blocking<T, F>(&self, tool: &ToolName, f: F) -> Result<T, CredentialError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, CredentialError> + Send + 'static,
    {
        let timeout = || CredentialError::Timeout {
            tool: tool.to_string(),
        };
        if lock(&self.stuck).contains_key(tool) {
            return Err(timeout());
        }
        let state = Arc::new(Mutex::new(ReadState::default()));
        let watch = || ReadWatch {
            stuck_tools: self.stuck.clone(),
            tool: tool.clone(),
            state: state.clone(),
        };
        let guard = ReadGuard(watch());
        let deadline = tokio::time::Instant::now() + self.fs_timeout;
        let permit =
            match tokio::time::timeout_at(deadline, self.blocking.clone().acquire_owned()).await {
                Ok(Ok(p)) => p,
                _ => return Err(timeout()),
            };
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let _guard = guard;
            f()
        });
        // however this wait ends (done, timed out, or the request given up by its client), a
        // read still under way marks the tool stuck until it ends
        let _abandon = MarkIfUnfinished(watch());
        match tokio::time::timeout_at(deadline, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(CredentialError::Io {
                tool: tool.to_string(),
                reason: format!("reader task failed: {join}"),
            }),
            Err(_) => Err(timeout()),
        }
    }
}

/// The TLS parts every tool's apiserver connection shares: the crypto provider and one
/// verifier of the apiserver's certificate (one parsed root store for all tools). Only the
/// client certificate and key are per tool (and no session is resumed, so no TLS session
/// state is kept or shared between tools).
#[derive(Clone)]
pub struct ApiserverTls {
    provider: Arc<rustls::crypto::CryptoProvider>,
    verifier: Arc<rustls::client::WebPkiServerVerifier>,
}

impl ApiserverTls {
    /// From the DER certificates of the apiserver CA bundle.
    pub fn new(ca_der: &[Vec<u8>]) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for der in ca_der {
            roots
                .add(rustls_pki_types::CertificateDer::from(der.clone()))
                .map_err(|e| format!("apiserver CA: {e}"))?;
        }
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .map_err(|e| format!("apiserver CA: {e}"))?;
        Ok(Self { provider, verifier })
    }

    /// A client config presenting this certificate chain and key (PEM).
    pub fn client_config(
        &self,
        cert_pem: &[u8],
        key_pem: &[u8],
    ) -> Result<rustls::ClientConfig, String> {
        let chain = rustls_pemfile::certs(&mut &cert_pem[..])
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("certificate: {e}"))?;
        let key = rustls_pemfile::private_key(&mut &key_pem[..])
            .map_err(|e| format!("private key: {e}"))?
            .ok_or_else(|| "no private key in the key file".to_string())?;
        let mut config = rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_webpki_verifier(self.verifier.clone())
            .with_client_auth_cert(chain, key)
            .map_err(|e| format!("client certificate: {e}"))?;
        // No TLS session resumption: a full handshake costs well under a millisecond of CPU
        // when a quiet tool reconnects, while stored tickets would be kept per tool, allocated
        // amid connection buffers (and the default store reserves room for 256 servers).
        config.resumption = rustls::client::Resumption::disabled();
        crate::apiconn::offer_h2(&mut config);
        Ok(config)
    }
}

/// A tool's connection to the apiserver, over its TLS config ([`crate::apiconn`]: HTTP/2, so
/// the parallel reads of one request share one connection and one TLS handshake). The
/// credential store drops the connector of a tool quiet for its idle time, which closes the
/// connection; the next request makes a new one. A `kube::Client` (which spawns a dispatch
/// task and channel of its own) is made only for a request that calls Kubernetes, by
/// [`ToolConnector::client`], so an idle tool costs only its TLS config.
#[derive(Clone)]
pub struct ToolConnector(Arc<Shared>);

/// What a [`ToolConnector`] shares between its clones (a handle is one pointer: requests and
/// the watch cache's feeds each keep one).
struct Shared {
    connection: crate::apiconn::Connection,
    namespace: String,
}

impl ToolConnector {
    /// A connector presenting `tls` (a config of [`ApiserverTls::client_config`]).
    pub fn new(
        tls: Arc<rustls::ClientConfig>,
        apiserver: Arc<crate::apiconn::Target>,
        namespace: String,
        connect_timeout: Duration,
    ) -> Self {
        Self(Arc::new(Shared {
            connection: crate::apiconn::Connection::new(tls, apiserver, connect_timeout),
            namespace,
        }))
    }

    /// Whether a clone of this handle is held anywhere else.
    fn held_elsewhere(&self) -> bool {
        Arc::strong_count(&self.0) > 1
    }

    /// Whether both handles are the same connection (a rotated certificate, or a connection
    /// closed when idle and made again, is another one).
    pub fn same(&self, other: &ToolConnector) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Sends one request over this tool's connection without a kube client (no dispatch task
    /// or channel): the watch cache's lists and watches, whose bodies it reads itself.
    pub async fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<crate::apiconn::Body>, crate::apiconn::Error> {
        self.0
            .connection
            .send(request.map(bytes::Bytes::from))
            .await
    }

    /// A kube client over this tool's connection.
    pub fn client(&self) -> kube::Client {
        let shared = self.0.clone();
        let service = tower::service_fn(move |request: http::Request<kube::client::Body>| {
            let shared = shared.clone();
            async move {
                use http_body_util::BodyExt as _;
                let (parts, body) = request.into_parts();
                let body = body.collect().await?.to_bytes();
                shared
                    .connection
                    .send(http::Request::from_parts(parts, body))
                    .await
            }
        });
        kube::Client::new(service, self.0.namespace.clone())
    }
}

/// A refused or failed read in the tool's home as a credential error; it names paths relative
/// to the home only.
fn home_err(tool: &ToolName, e: HomeError) -> CredentialError {
    match e.problem {
        Problem::Missing => CredentialError::Missing {
            tool: tool.to_string(),
            looked_for: e
                .path
                .unwrap_or_else(|| "the tool's home directory".to_string()),
        },
        Problem::Io(_) | Problem::Unsupported => CredentialError::Io {
            tool: tool.to_string(),
            reason: e.to_string(),
        },
        _ => invalid(tool, e.to_string()),
    }
}

fn invalid(tool: &ToolName, reason: impl Into<String>) -> CredentialError {
    CredentialError::Invalid {
        tool: tool.to_string(),
        reason: reason.into(),
    }
}

const TOOLSKUBE_CERT: &str = ".toolskube/client.crt";
const TOOLSKUBE_KEY: &str = ".toolskube/client.key";
const KUBECONFIG: &str = ".kube/config";

/// An opened credential file: its path relative to the home, and the checked handle.
type Named = (PathBuf, HomeFile);

/// The credential files of a tool, opened in its home (see [`crate::home`]) and checked, and
/// the stamp of what was opened.
struct Opened {
    stamp: FileStamp,
    pem: Pem,
}

enum Pem {
    /// Certificate and key files, still to be read (from the handles that were stamped).
    Files { cert: Box<Named>, key: Box<Named> },
    /// Inline in `.kube/config` (already read).
    Inline { cert_pem: Vec<u8>, key_pem: Vec<u8> },
}

fn stamp_of(files: &[&Named]) -> FileStamp {
    FileStamp {
        files: files
            .iter()
            .map(|(rel, f)| {
                let m = &f.meta;
                (rel.clone(), m.len(), m.mtime(), m.mtime_nsec(), m.ino())
            })
            .collect(),
    }
}

/// Opens the tool's credential files: `.toolskube/client.crt` and `.key` first, else
/// `.kube/config` and what it names. Every file is opened beneath the home, no link followed,
/// and must be a regular file of the home's owner with one link.
fn open_credentials(root: &Path, tool: &ToolName) -> Result<Opened, CredentialError> {
    let home = ToolHome::open(root, tool.as_str()).map_err(|e| home_err(tool, e))?;
    let open = |rel: &Path| -> Result<Named, CredentialError> {
        let f = home.open_file(rel).map_err(|e| home_err(tool, e))?;
        Ok((rel.to_path_buf(), f))
    };
    match home.open_file(Path::new(TOOLSKUBE_CERT)) {
        Ok(cert) => {
            let cert = (PathBuf::from(TOOLSKUBE_CERT), cert);
            let key = open(Path::new(TOOLSKUBE_KEY))?;
            return Ok(Opened {
                stamp: stamp_of(&[&cert, &key]),
                pem: Pem::Files {
                    cert: Box::new(cert),
                    key: Box::new(key),
                },
            });
        }
        // a key without its certificate: the certificate is what is missing
        Err(e) if e.is_missing() => match home.open_file(Path::new(TOOLSKUBE_KEY)) {
            Err(k) if k.is_missing() => {}
            _ => return Err(home_err(tool, e)),
        },
        Err(e) => return Err(home_err(tool, e)),
    }
    let kubeconfig = match home.open_file(Path::new(KUBECONFIG)) {
        Ok(f) => (PathBuf::from(KUBECONFIG), f),
        Err(e) if e.is_missing() => {
            return Err(CredentialError::Missing {
                tool: tool.to_string(),
                looked_for: format!("{TOOLSKUBE_CERT} and {KUBECONFIG} in the tool's home"),
            })
        }
        Err(e) => return Err(home_err(tool, e)),
    };
    let raw = read_limited(tool, &kubeconfig.0, &kubeconfig.1)?;
    match kubeconfig_creds(tool, &raw)? {
        KubeconfigCreds::Inline { cert_pem, key_pem } => Ok(Opened {
            stamp: stamp_of(&[&kubeconfig]),
            pem: Pem::Inline { cert_pem, key_pem },
        }),
        KubeconfigCreds::Paths { cert, key } => {
            // relative to .kube/ as kubectl takes them, or absolute under the home's path
            let named = |configured: &str, what: &str| -> Result<Named, CredentialError> {
                let rel = if Path::new(configured).is_absolute() {
                    home.relative(configured).ok_or_else(|| {
                        invalid(
                            tool,
                            format!(
                                "the {what} that {KUBECONFIG} names is outside the tool's home"
                            ),
                        )
                    })?
                } else {
                    Path::new(".kube").join(configured)
                };
                open(&rel)
            };
            let cert = named(&cert, "client-certificate")?;
            let key = named(&key, "client-key")?;
            Ok(Opened {
                stamp: stamp_of(&[&kubeconfig, &cert, &key]),
                pem: Pem::Files {
                    cert: Box::new(cert),
                    key: Box::new(key),
                },
            })
        }
    }
}

/// The stamp of the files the current client would be built from.
fn stamp_files(root: &Path, tool: &ToolName) -> Result<FileStamp, CredentialError> {
    Ok(open_credentials(root, tool)?.stamp)
}

/// Reads an opened file, at most [`MAX_FILE_LEN`] bytes.
fn read_limited(tool: &ToolName, rel: &Path, file: &HomeFile) -> Result<Vec<u8>, CredentialError> {
    let failed = |e: std::io::Error| CredentialError::Io {
        tool: tool.to_string(),
        reason: format!("{}: {e}", rel.display()),
    };
    let mut buf = Vec::new();
    (&file.file)
        .take(MAX_FILE_LEN + 1)
        .read_to_end(&mut buf)
        .map_err(failed)?;
    if buf.len() as u64 > MAX_FILE_LEN {
        return Err(invalid(tool, format!("{} is too large", rel.display())));
    }
    Ok(buf)
}

enum KubeconfigCreds {
    /// As written in the kubeconfig.
    Paths {
        cert: String,
        key: String,
    },
    Inline {
        cert_pem: Vec<u8>,
        key_pem: Vec<u8>,
    },
}

/// Reads the user entry of the kubeconfig's current context.
fn kubeconfig_creds(tool: &ToolName, raw: &[u8]) -> Result<KubeconfigCreds, CredentialError> {
    let doc: serde_yaml::Value =
        serde_yaml::from_slice(raw).map_err(|_| invalid(tool, ".kube/config is not valid YAML"))?;
    let current = doc
        .get("current-context")
        .and_then(|v| v.as_str())
        .ok_or_else(|| invalid(tool, ".kube/config has no current-context"))?;
    let find = |section: &str, name: &str| -> Option<serde_yaml::Value> {
        doc.get(section)?
            .as_sequence()?
            .iter()
            .find(|e| e.get("name").and_then(|n| n.as_str()) == Some(name))
            .cloned()
    };
    let context = find("contexts", current)
        .ok_or_else(|| invalid(tool, format!(".kube/config has no context {current:?}")))?;
    let user_name = context
        .get("context")
        .and_then(|c| c.get("user"))
        .and_then(|u| u.as_str())
        .ok_or_else(|| invalid(tool, ".kube/config context names no user"))?;
    let user = find("users", user_name)
        .and_then(|u| u.get("user").cloned())
        .ok_or_else(|| invalid(tool, format!(".kube/config has no user {user_name:?}")))?;
    let field = |k: &str| user.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let b64 = base64::engine::general_purpose::STANDARD;
    if let (Some(c), Some(k)) = (field("client-certificate-data"), field("client-key-data")) {
        let cert_pem = b64
            .decode(c.trim())
            .map_err(|_| invalid(tool, "client-certificate-data is not base64"))?;
        let key_pem = b64
            .decode(k.trim())
            .map_err(|_| invalid(tool, "client-key-data is not base64"))?;
        return Ok(KubeconfigCreds::Inline { cert_pem, key_pem });
    }
    let (Some(cert), Some(key)) = (field("client-certificate"), field("client-key")) else {
        return Err(invalid(
            tool,
            ".kube/config names no client certificate and key",
        ));
    };
    Ok(KubeconfigCreds::Paths { cert, key })
}

fn load_material(root: &Path, tool: &ToolName, org: &str) -> Result<Material, CredentialError> {
    let Opened { stamp, pem } = open_credentials(root, tool)?;
    let (cert_pem, key_pem) = match pem {
        Pem::Files { cert, key } => (
            read_limited(tool, &cert.0, &cert.1)?,
            read_limited(tool, &key.0, &key.1)?,
        ),
        Pem::Inline { cert_pem, key_pem } => (cert_pem, key_pem),
    };
    check_certificate(tool, org, &cert_pem)?;
    check_key(tool, &cert_pem, &key_pem)?;
    Ok(Material {
        stamp,
        cert_pem,
        key_pem,
    })
}

/// The certificate must be this tool's (CN and O), and valid now.
fn check_certificate(tool: &ToolName, org: &str, pem: &[u8]) -> Result<(), CredentialError> {
    let ders = pem_certificates(pem)
        .map_err(|_| invalid(tool, "the certificate file is not valid PEM"))?;
    let Some(leaf) = ders.first() else {
        return Err(invalid(tool, "the certificate file holds no certificate"));
    };
    let subject = certificate_subject(leaf).map_err(|e| invalid(tool, e.0))?;
    match jobs_core::identity::identity_from_attributes(&subject, org) {
        Ok(name) if &name == tool => {}
        Ok(name) => {
            return Err(invalid(
                tool,
                format!("the certificate in the home is for '{name}', not for '{tool}'"),
            ))
        }
        Err(e) => return Err(invalid(tool, format!("the certificate in the home: {e}"))),
    }
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(leaf)
        .map_err(|_| invalid(tool, "the certificate could not be parsed"))?;
    let validity = cert.validity();
    let now = ASN1Time::now();
    if now < validity.not_before {
        return Err(invalid(tool, "the certificate is not valid yet"));
    }
    if now > validity.not_after {
        return Err(invalid(tool, "the certificate has expired"));
    }
    Ok(())
}

/// The key must parse and belong to the certificate.
fn check_key(tool: &ToolName, cert_pem: &[u8], key_pem: &[u8]) -> Result<(), CredentialError> {
    let mut reader = key_pem;
    let key = match rustls_pemfile::private_key(&mut reader) {
        Ok(Some(k)) => k,
        _ => return Err(invalid(tool, "the key file holds no usable private key")),
    };
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|_| invalid(tool, "the key file holds no usable private key"))?;
    let chain: Vec<rustls_pki_types::CertificateDer<'static>> = pem_certificates(cert_pem)
        .map_err(|_| invalid(tool, "the certificate file is not valid PEM"))?
        .into_iter()
        .map(rustls_pki_types::CertificateDer::from)
        .collect();
    rustls::sign::CertifiedKey::new(chain, signing)
        .keys_match()
        .map_err(|_| {
            invalid(
                tool,
                "the key in the home does not belong to its certificate",
            )
        })
}
