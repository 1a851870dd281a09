//! Warm reads from watches (`JOBS_GATEWAY_WATCH_CACHE=on`): list and show of a tool in use
//! are answered from LIST+WATCH feeds of its objects instead of six LIST calls each.
//!
//! * **As the tool.** A tool's feeds use the tool's own Kubernetes client, the one its requests
//!   use, so RBAC decides what they may see, as for a direct read; its watches share the
//!   tool's connection (HTTP/2 streams where the apiserver speaks it).
//! * **Five feeds per tool**: its Jobs (one-off and those of cron jobs, told apart by label
//!   here), CronJobs, ReplicationControllers or Deployments, Pods, and the events of Jobs.
//!   Stored objects lose `metadata.managedFields`, as direct reads do.
//! * **Only tools in use.** The first read of a tool starts its feeds and is answered from
//!   their first lists (the same reads a direct answer makes), or directly if they take longer
//!   than `write_wait`. A tool not read for `idle` has its feeds stopped and forgotten.
//! * **Read your writes.** A write through this gateway records what it changed (the object's
//!   new resourceVersion, or that it is gone). A read waits, at most `write_wait`, until the
//!   feeds have delivered it, and otherwise reads directly.
//! * **Failures fall back.** A feed whose list or watch fails stops the tool's cache: its reads
//!   go directly until the next read starts new feeds (after a pause that grows with repeated
//!   failures). An expired watch (410) lists again in place. Every outcome is counted in
//!   `jobs_gateway_watch_reads_total{source,reason}`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Event, Pod, ReplicationController};
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use kube::Resource;
use serde::de::DeserializeOwned;

use crate::runtime::{Snapshot, ToolRuntime};
use crate::writes::{lock, Pending, Writes};
use jobs_core::labels::{self, Component, ContinuousComponent};

/// Settings of the cache.
#[derive(Debug, Clone, Copy)]
pub struct WatchSettings {
    /// A tool not read for this long has its feeds stopped.
    pub idle: Duration,
    /// How long a read waits for the feeds to deliver the tool's own writes.
    pub write_wait: Duration,
    /// Each watch event is applied this much later (0 in production; tests use it to show
    /// that a read waits for the tool's own writes instead of racing the watch).
    pub event_delay: Duration,
}

/// The feeds of every tool in use.
pub struct WatchCache {
    settings: WatchSettings,
    tools: Mutex<HashMap<String, Arc<ToolFeeds>>>,
    /// Failures in a row per tool, and when its feeds may start again.
    failures: Mutex<HashMap<String, (u32, Instant)>>,
    /// Each tool's writes not yet seen delivered, kept whether or not its feeds run, so that
    /// a write made while its feeds start is waited for too.
    writes: Mutex<HashMap<String, Arc<Writes>>>,
}

/// One tool's feeds.
struct ToolFeeds {
    jobs: Arc<Feed<Job>>,
    cronjobs: Arc<Feed<CronJob>>,
    rcs: Arc<Feed<ReplicationController>>,
    deployments: Arc<Feed<Deployment>>,
    pods: Arc<Feed<Pod>>,
    events: Arc<Feed<Event>>,
    continuous: ContinuousComponent,
    tool: String,
    writes: Arc<Writes>,
    /// Milliseconds since `born` of the last read.
    last_read: AtomicU64,
    born: Instant,
    /// Set when a feed failed: the tool's reads go directly, and the feeds are stopped.
    broken: Arc<AtomicBool>,
    /// Set by the first read these feeds answered.
    served: AtomicBool,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for ToolFeeds {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// What a feed keeps of an object: without `metadata.managedFields` (as direct reads), and
/// without what list and show never read.
trait Stored: Resource + Sized {
    fn stored(mut self) -> Self {
        self.meta_mut().managed_fields = None;
        self
    }
}

impl Stored for Job {}
impl Stored for CronJob {}
impl Stored for ReplicationController {}
impl Stored for Deployment {}
impl Stored for Event {}

/// Pods: their status, labels and times are read, never their spec (the job's own template
/// says what runs); the spec is most of a pod's size.
impl Stored for Pod {
    fn stored(mut self) -> Self {
        self.metadata.managed_fields = None;
        self.spec = None;
        self
    }
}

/// One LIST+WATCH of one kind in the tool's namespace.
struct Feed<K> {
    /// Off for a kind the tool's jobs do not use (the continuous kind not configured).
    used: bool,
    objects: RwLock<BTreeMap<String, K>>,
    /// Listed and watching.
    live: AtomicBool,
    /// Newest resourceVersion delivered (list, event or bookmark).
    version: AtomicU64,
}

impl<K: Clone> Feed<K> {
    fn new(used: bool) -> Self {
        Self {
            used,
            objects: RwLock::new(BTreeMap::new()),
            live: AtomicBool::new(!used),
            version: AtomicU64::new(0),
        }
    }

    fn ready(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }
}

/// `jobs_gateway_watch_reads_total{source,reason}`: where a list or show was answered from.
fn count(source: &str, reason: &str) {
    crate::metrics::global().inc(
        "jobs_gateway_watch_reads_total",
        vec![
            ("source", source.to_string()),
            ("reason", reason.to_string()),
        ],
    );
}

fn version_of<K: Resource>(obj: &K) -> u64 {
    obj.meta()
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn has_labels<K: Resource>(obj: &K, wanted: &BTreeMap<String, String>) -> bool {
    let have = obj.meta().labels.as_ref();
    wanted
        .iter()
        .all(|(k, v)| have.and_then(|h| h.get(k)) == Some(v))
}

/// Whether no object of the feed for which `matches` holds is left, apart from those being
/// deleted (a direct read would still list those, and so does the feed until they go).
fn none_left<K: Resource>(feed: &Feed<K>, matches: impl Fn(&K) -> bool) -> bool {
    let objects = feed.objects.read().unwrap_or_else(|p| p.into_inner());
    !objects
        .values()
        .any(|o| matches(o) && o.meta().deletion_timestamp.is_none())
}

/// What a read asks a feed of any kind about the tool's writes.
trait Delivery {
    /// Newest resourceVersion delivered.
    fn version(&self) -> u64;
    /// Whether none of these objects (by uid) is left, or each is being deleted.
    fn gone(&self, uids: &[String]) -> bool;
}

impl<K: Resource> Delivery for Feed<K> {
    fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    fn gone(&self, uids: &[String]) -> bool {
        none_left(self, |o| {
            o.meta()
                .uid
                .as_deref()
                .is_some_and(|u| uids.iter().any(|x| x == u))
        })
    }
}

/// The kinds a feed follows (each k8s-openapi kind of a tool's jobs).
trait FeedKind:
    Resource<DynamicType = ()>
    + Stored
    + Clone
    + DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
}

impl<K> FeedKind for K where
    K: Resource<DynamicType = ()>
        + Stored
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static
{
}

/// The objects of a feed carrying `wanted`, in name order (as a LIST gives them).
fn select<K: Resource + Clone>(feed: &Feed<K>, wanted: &BTreeMap<String, String>) -> Vec<K> {
    let objects = feed.objects.read().unwrap_or_else(|p| p.into_inner());
    objects
        .values()
        .filter(|o| has_labels(*o, wanted))
        .cloned()
        .collect()
}

impl WatchCache {
    pub fn new(settings: WatchSettings) -> Self {
        Self {
            settings,
            tools: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            writes: Mutex::new(HashMap::new()),
        }
    }

    /// Where the tool's writes are recorded.
    /// Called for every request of the tool: finds its entry without allocating once made.
    pub fn writes_of(&self, tool: &str) -> Arc<Writes> {
        let mut writes = lock(&self.writes);
        if let Some(w) = writes.get(tool) {
            return w.clone();
        }
        writes.entry(tool.to_string()).or_default().clone()
    }

    /// Number of tools whose feeds run.
    pub fn tools_watched(&self) -> usize {
        lock(&self.tools).len()
    }

    /// The tool's objects from its feeds, if they are running, live and have delivered the
    /// tool's writes; `None` means: read directly. Starts the feeds of a tool not watched.
    pub async fn snapshot(&self, rt: &ToolRuntime, name: Option<&str>) -> Option<Snapshot> {
        let feeds = match self.feeds_of(rt) {
            Ok(f) => f,
            Err(reason) => {
                count("direct", reason);
                return None;
            }
        };
        feeds
            .last_read
            .store(feeds.born.elapsed().as_millis() as u64, Ordering::Relaxed);
        if !feeds.ready() && !self.until_ready(&feeds).await {
            count("direct", "warming");
            return None;
        }
        if feeds.writes.overflow.swap(false, Ordering::AcqRel) {
            lock(&feeds.writes.pending).clear();
            count("direct", "writes_unknown");
            return None;
        }
        if !self.writes_delivered(&feeds).await {
            count("direct", "write_wait");
            return None;
        }
        if !feeds.served.swap(true, Ordering::AcqRel) {
            // these feeds work: a later failure of the tool starts its pauses afresh
            lock(&self.failures).remove(&feeds.tool);
        }
        count("cache", "warm");
        Some(feeds.snapshot(name))
    }

    /// Waits (at most `write_wait`) for feeds just started to have listed: their lists are
    /// the reads a direct answer would make, so the first read of a tool costs about what a
    /// direct one does, and the apiserver is not asked twice.
    async fn until_ready(&self, feeds: &ToolFeeds) -> bool {
        let deadline = tokio::time::Instant::now() + self.settings.write_wait;
        while !feeds.ready() {
            if tokio::time::Instant::now() >= deadline || feeds.broken.load(Ordering::Acquire) {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        true
    }

    /// Waits (bounded) until every recorded write of the tool is in its feeds.
    async fn writes_delivered(&self, feeds: &ToolFeeds) -> bool {
        let deadline = tokio::time::Instant::now() + self.settings.write_wait;
        loop {
            lock(&feeds.writes.pending).retain(|p| !feeds.delivered(p));
            if lock(&feeds.writes.pending).is_empty() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline || feeds.broken.load(Ordering::Acquire) {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn feeds_of(&self, rt: &ToolRuntime) -> Result<Arc<ToolFeeds>, &'static str> {
        let tool = rt.tool().to_string();
        let mut tools = lock(&self.tools);
        if let Some(f) = tools.get(&tool) {
            if !f.broken.load(Ordering::Acquire) {
                return Ok(f.clone());
            }
            tools.remove(&tool);
            let mut failures = lock(&self.failures);
            let entry = failures.entry(tool.clone()).or_insert((0, Instant::now()));
            entry.0 = entry.0.saturating_add(1);
            // 1 s, 2 s, 4 s … up to a minute before the next try
            let pause = Duration::from_secs(1 << entry.0.min(6)).min(Duration::from_secs(60));
            entry.1 = Instant::now() + pause;
            return Err("watch_failed");
        }
        if let Some((_, until)) = lock(&self.failures).get(&tool) {
            if Instant::now() < *until {
                return Err("backoff");
            }
        }
        let writes = self.writes_of(&tool);
        let feeds = Arc::new(ToolFeeds::start(rt, writes, self.settings.event_delay));
        tools.insert(tool, feeds.clone());
        Ok(feeds)
    }

    /// Stops the feeds of tools not read for the idle time; returns how many were stopped.
    pub fn drop_idle(&self) -> usize {
        let idle = self.settings.idle;
        let mut tools = lock(&self.tools);
        let before = tools.len();
        tools.retain(|_, f| {
            let read_at = Duration::from_millis(f.last_read.load(Ordering::Relaxed));
            f.born.elapsed().saturating_sub(read_at) < idle
        });
        let dropped = before - tools.len();
        let watched: Vec<String> = tools.keys().cloned().collect();
        drop(tools);
        // the writes of tools not watched matter only while their feeds could still start
        lock(&self.writes).retain(|t, w| watched.contains(t) || lock(&w.last).elapsed() < idle);
        lock(&self.failures).retain(|_, (_, until)| until.elapsed() < Duration::from_secs(600));
        dropped
    }

    /// Runs [`Self::drop_idle`] every few seconds, for as long as the cache lives.
    pub fn spawn_sweeper(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let period =
            (self.settings.idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(10));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                let Some(cache) = weak.upgrade() else { return };
                if cache.drop_idle() > 0 {
                    // the dropped feeds' objects and buffers are freed: give the pages back
                    let _ = tokio::task::spawn_blocking(crate::memory::trim).await;
                }
                crate::metrics::global().set(
                    "jobs_gateway_watched_tools",
                    "tools whose objects are watched for warm reads",
                    cache.tools_watched() as i64,
                );
            }
        });
    }
}

impl ToolFeeds {
    fn start(rt: &ToolRuntime, writes: Arc<Writes>, delay: Duration) -> Self {
        let continuous = rt.continuous();
        let tool = rt.tool().to_string();
        let broken = Arc::new(AtomicBool::new(false));
        let jobs = Arc::new(Feed::new(true));
        let cronjobs = Arc::new(Feed::new(true));
        let rcs = Arc::new(Feed::new(
            continuous == ContinuousComponent::ReplicationControllers,
        ));
        let deployments = Arc::new(Feed::new(continuous == ContinuousComponent::Deployments));
        let pods = Arc::new(Feed::new(true));
        let events = Arc::new(Feed::new(true));
        let sel = |c: Option<Component>| {
            labels::selector_string(&labels::selector_labels(&tool, c, None))
        };
        let client = rt.client();
        let ns = rt.namespace().to_string();
        let mut tasks = vec![
            spawn_feed(
                Api::namespaced(client.clone(), &ns),
                Some(sel(None)),
                None,
                jobs.clone(),
                broken.clone(),
                delay,
            ),
            spawn_feed(
                Api::namespaced(client.clone(), &ns),
                Some(sel(Some(Component::CronJobs))),
                None,
                cronjobs.clone(),
                broken.clone(),
                delay,
            ),
            spawn_feed(
                Api::namespaced(client.clone(), &ns),
                Some(sel(None)),
                None,
                pods.clone(),
                broken.clone(),
                delay,
            ),
            spawn_feed(
                Api::namespaced(client.clone(), &ns),
                None,
                Some("involvedObject.kind=Job".to_string()),
                events.clone(),
                broken.clone(),
                delay,
            ),
        ];
        let cont = Some(sel(Some(Component::Continuous(continuous))));
        tasks.push(match continuous {
            ContinuousComponent::ReplicationControllers => spawn_feed(
                Api::namespaced(client.clone(), &ns),
                cont,
                None,
                rcs.clone(),
                broken.clone(),
                delay,
            ),
            ContinuousComponent::Deployments => spawn_feed(
                Api::namespaced(client, &ns),
                cont,
                None,
                deployments.clone(),
                broken.clone(),
                delay,
            ),
        });
        Self {
            jobs,
            cronjobs,
            rcs,
            deployments,
            pods,
            events,
            continuous,
            tool,
            writes,
            last_read: AtomicU64::new(0),
            born: Instant::now(),
            broken,
            served: AtomicBool::new(false),
            tasks,
        }
    }

    fn ready(&self) -> bool {
        !self.broken.load(Ordering::Acquire)
            && self.jobs.ready()
            && self.cronjobs.ready()
            && self.rcs.ready()
            && self.deployments.ready()
            && self.pods.ready()
            && self.events.ready()
    }

    /// The feed of a kind, by its plural; `None` for a kind no feed watches (a write to it
    /// cannot make a read stale).
    fn feed(&self, plural: &str) -> Option<&dyn Delivery> {
        Some(match plural {
            "jobs" => &*self.jobs,
            "cronjobs" => &*self.cronjobs,
            "replicationcontrollers" => &*self.rcs,
            "deployments" => &*self.deployments,
            "pods" => &*self.pods,
            "events" => &*self.events,
            _ => return None,
        })
    }

    fn delivered(&self, p: &Pending) -> bool {
        match p {
            Pending::Version { plural, version } => {
                self.feed(plural).is_none_or(|f| f.version() >= *version)
            }
            Pending::Gone { plural, uids } => self.feed(plural).is_none_or(|f| f.gone(uids)),
        }
    }

    /// What [`ToolRuntime::snapshot`] would read, from the feeds.
    fn snapshot(&self, name: Option<&str>) -> Snapshot {
        let sel = |c: Option<Component>| labels::selector_labels(&self.tool, c, name);
        let cont = sel(Some(Component::Continuous(self.continuous)));
        Snapshot {
            jobs: select(&self.jobs, &sel(Some(Component::Jobs))),
            cronjob_jobs: select(&self.jobs, &sel(Some(Component::CronJobs))),
            cronjobs: select(&self.cronjobs, &sel(Some(Component::CronJobs))),
            rcs: if self.rcs.used {
                select(&self.rcs, &cont)
            } else {
                Vec::new()
            },
            deployments: if self.deployments.used {
                select(&self.deployments, &cont)
            } else {
                Vec::new()
            },
            pods: select(&self.pods, &sel(None)),
            events: {
                let objects = self
                    .events
                    .objects
                    .read()
                    .unwrap_or_else(|p| p.into_inner());
                objects.values().cloned().collect()
            },
        }
    }
}

/// Lists, then watches from the list's version, keeping `feed` current. An expired watch lists
/// again; any other failure marks the tool's feeds broken and ends.
fn spawn_feed<K>(
    api: Api<K>,
    labels: Option<String>,
    fields: Option<String>,
    feed: Arc<Feed<K>>,
    broken: Arc<AtomicBool>,
    delay: Duration,
) -> tokio::task::JoinHandle<()>
where
    K: FeedKind,
{
    tokio::spawn(async move {
        let plural = K::plural(&()).to_string();
        let result = follow(
            &api,
            labels.as_deref(),
            fields.as_deref(),
            &feed,
            &plural,
            delay,
        )
        .await;
        if let Err(reason) = result {
            tracing::info!(kind = %plural, "watch ended ({reason}); reads go directly");
            crate::metrics::global().inc(
                "jobs_gateway_watch_failures_total",
                vec![("kind", plural.clone())],
            );
        }
        feed.live.store(false, Ordering::Release);
        broken.store(true, Ordering::Release);
    })
}

async fn follow<K>(
    api: &Api<K>,
    labels: Option<&str>,
    fields: Option<&str>,
    feed: &Feed<K>,
    plural: &str,
    delay: Duration,
) -> Result<(), String>
where
    K: FeedKind,
{
    'list: loop {
        let mut lp = ListParams::default();
        if let Some(l) = labels {
            lp = lp.labels(l);
        }
        if let Some(f) = fields {
            lp = lp.fields(f);
        }
        let list = crate::metrics::kube_call("list", plural, api.list(&lp))
            .await
            .map_err(|e| format!("list: {e}"))?;
        let mut version = list.metadata.resource_version.clone().unwrap_or_default();
        {
            let mut objects = feed.objects.write().unwrap_or_else(|p| p.into_inner());
            objects.clear();
            for o in list.items {
                if let Some(n) = o.meta().name.clone() {
                    objects.insert(n, o.stored());
                }
            }
        }
        if let Ok(v) = version.parse::<u64>() {
            feed.version.fetch_max(v, Ordering::AcqRel);
        }
        feed.live.store(true, Ordering::Release);
        loop {
            let mut wp = WatchParams::default().timeout(290);
            if let Some(l) = labels {
                wp = wp.labels(l);
            }
            if let Some(f) = fields {
                wp = wp.fields(f);
            }
            crate::metrics::global().inc(
                "jobs_gateway_kube_requests_total",
                vec![
                    ("verb", "watch".to_string()),
                    ("resource", plural.to_string()),
                    ("result", "ok".to_string()),
                ],
            );
            let stream = api
                .watch(&wp, &version)
                .await
                .map_err(|e| format!("watch: {e}"))?;
            feed.live.store(true, Ordering::Release);
            futures::pin_mut!(stream);
            while let Some(event) = stream.next().await {
                let event = event.map_err(|e| format!("watch stream: {e}"))?;
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let (obj, gone) = match event {
                    WatchEvent::Added(o) | WatchEvent::Modified(o) => (o, false),
                    WatchEvent::Deleted(o) => (o, true),
                    WatchEvent::Bookmark(b) => {
                        version = b.metadata.resource_version;
                        if let Ok(v) = version.parse::<u64>() {
                            feed.version.fetch_max(v, Ordering::AcqRel);
                        }
                        continue;
                    }
                    WatchEvent::Error(status) if status.code == 410 => {
                        feed.live.store(false, Ordering::Release);
                        continue 'list;
                    }
                    WatchEvent::Error(status) => {
                        return Err(format!("watch error {}: {}", status.code, status.message))
                    }
                };
                let v = version_of(&obj);
                if let Some(rv) = obj.meta().resource_version.clone() {
                    version = rv;
                }
                if let Some(name) = obj.meta().name.clone() {
                    let mut objects = feed.objects.write().unwrap_or_else(|p| p.into_inner());
                    if gone {
                        objects.remove(&name);
                    } else {
                        objects.insert(name, obj.stored());
                    }
                }
                feed.version.fetch_max(v, Ordering::AcqRel);
            }
            // the watch ended (the server's timeout, or the connection went): until the next
            // one is open, reads go directly
            feed.live.store(false, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn pod(name: &str, job: &str, version: u64, deleting: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                uid: Some(format!("uid-{name}")),
                resource_version: Some(version.to_string()),
                labels: Some(BTreeMap::from([
                    ("app.kubernetes.io/name".to_string(), job.to_string()),
                    ("toolforge".to_string(), "tool".to_string()),
                ])),
                deletion_timestamp: deleting
                    .then_some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)),
                ..ObjectMeta::default()
            },
            ..Pod::default()
        }
    }

    fn feed_of(pods: Vec<Pod>) -> Feed<Pod> {
        let feed = Feed::new(true);
        {
            let mut objects = feed.objects.write().unwrap_or_else(|p| p.into_inner());
            for p in pods {
                let v = version_of(&p);
                feed.version.fetch_max(v, Ordering::AcqRel);
                objects.insert(p.metadata.name.clone().unwrap_or_default(), p);
            }
        }
        feed
    }

    #[test]
    fn selection_is_by_every_label_in_name_order() {
        let feed = feed_of(vec![
            pod("b", "web", 3, false),
            pod("a", "web", 2, false),
            pod("c", "cron", 4, false),
        ]);
        let web = BTreeMap::from([("app.kubernetes.io/name".to_string(), "web".to_string())]);
        let names: Vec<_> = select(&feed, &web)
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect();
        assert_eq!(names, ["a", "b"]);
        let both = BTreeMap::from([
            ("app.kubernetes.io/name".to_string(), "web".to_string()),
            ("toolforge".to_string(), "other".to_string()),
        ]);
        assert!(select(&feed, &both).is_empty());
        assert_eq!(feed.version(), 4);
    }

    #[test]
    fn a_delete_counts_as_delivered_once_nothing_deleted_is_left_but_what_is_being_deleted() {
        let deleted = ["uid-a".to_string(), "uid-b".to_string()];
        let feed = feed_of(vec![pod("a", "web", 2, false), pod("b", "web", 3, true)]);
        assert!(!feed.gone(&deleted));
        let feed = feed_of(vec![pod("b", "web", 3, true), pod("c", "cron", 4, false)]);
        assert!(feed.gone(&deleted));
        // a new object of the same name is another object
        let mut again = pod("a", "web", 5, false);
        again.metadata.uid = Some("uid-a2".into());
        let feed = feed_of(vec![again]);
        assert!(feed.gone(&deleted));
    }
}
