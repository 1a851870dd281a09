//! Warm reads from watches (`JOBS_GATEWAY_WATCH_CACHE=on`): list and show of a tool in use
//! are answered from LIST+WATCH feeds of its objects instead of six LIST calls each.
//!
//! * **As the tool.** A tool's feeds use the tool's own connection, the one its requests
//!   use, so RBAC decides what they may see, as for a direct read; its watches are HTTP/2
//!   streams on the tool's one connection, read without a kube client ([`stream`]).
//! * **Five feeds per tool**: its Jobs (one-off and those of cron jobs, told apart by label
//!   here), CronJobs, ReplicationControllers or Deployments, Pods, and the events of Jobs.
//!   Objects are kept as compact JSON without `metadata.managedFields` (pods without their
//!   spec), parsed when a read asks for them ([`feed`]).
//! * **Only tools in use.** The first read of a tool starts its feeds and is answered from
//!   their first lists (the same reads a direct answer makes), or directly if they take longer
//!   than `write_wait`. A tool not read for `idle` has its feeds stopped and forgotten.
//! * **Read your writes.** A write through this gateway records what it changed (the object's
//!   new resourceVersion, or that it is gone). A read waits, at most `write_wait`, until the
//!   feeds have delivered it, and otherwise reads directly.
//! * **Failures fall back.** A feed whose list or watch fails stops the tool's cache: its reads
//!   go directly until the next read starts new feeds (after a pause that grows with repeated
//!   failures). An expired watch (410, as a status or an event) lists again in place
//!   (`jobs_gateway_watch_relists_total{kind}`). Every read's outcome is counted in
//!   `jobs_gateway_watch_reads_total{source,reason}`.

mod feed;
mod stream;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Event, Pod, ReplicationController};
use kube::api::{ListParams, WatchParams};
use kube::Resource;

use crate::credentials::ToolConnector;
use crate::runtime::{Snapshot, ToolRuntime};
use crate::writes::{lock, Pending, Writes};
use feed::Feed;
use jobs_core::labels::{self, Component, ContinuousComponent};
use stream::{Ended, Event as WatchEvent};

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
    /// How long the apiserver keeps one watch open before the feed watches again (290 s;
    /// tests shorten it to make an expired version come about).
    pub watch_timeout: Duration,
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
    jobs: Arc<Feed>,
    cronjobs: Arc<Feed>,
    rcs: Arc<Feed>,
    deployments: Arc<Feed>,
    pods: Arc<Feed>,
    events: Arc<Feed>,
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
    /// The one task that runs all five feeds.
    task: tokio::task::JoinHandle<()>,
    /// The connection the feeds use.
    connector: ToolConnector,
}

impl Drop for ToolFeeds {
    fn drop(&mut self) {
        self.task.abort();
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
        match feeds.snapshot(name) {
            Ok(snap) => {
                count("cache", "warm");
                Some(snap)
            }
            Err(e) => {
                tracing::warn!(tool = %feeds.tool, "a watched object did not parse ({e}); reading directly");
                feeds.broken.store(true, Ordering::Release);
                count("direct", "watch_failed");
                None
            }
        }
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

    /// The tool's running feeds, or new ones. Called for every read: finds the tool's feeds
    /// without allocating its name.
    fn feeds_of(&self, rt: &ToolRuntime) -> Result<Arc<ToolFeeds>, &'static str> {
        let Some(connector) = rt.connector() else {
            return Err("no_connection");
        };
        let tool = rt.tool();
        let mut tools = lock(&self.tools);
        match tools.get(tool) {
            Some(f) if !f.broken.load(Ordering::Acquire) => {
                if f.connector.same(connector) {
                    return Ok(f.clone());
                }
                // the tool's credentials were read again (rotated, or evicted and reloaded):
                // feeds on its current connection replace those on the old one, below
            }
            Some(_) => {
                tools.remove(tool);
                let mut failures = lock(&self.failures);
                let entry = failures
                    .entry(tool.to_string())
                    .or_insert((0, Instant::now()));
                entry.0 = entry.0.saturating_add(1);
                // 1 s, 2 s, 4 s … up to a minute before the next try
                let pause = Duration::from_secs(1 << entry.0.min(6)).min(Duration::from_secs(60));
                entry.1 = Instant::now() + pause;
                return Err("watch_failed");
            }
            None => {
                if let Some((_, until)) = lock(&self.failures).get(tool) {
                    if Instant::now() < *until {
                        return Err("backoff");
                    }
                }
            }
        }
        let writes = self.writes_of(tool);
        let feeds = Arc::new(ToolFeeds::start(rt, connector, writes, self.settings));
        tools.insert(tool.to_string(), feeds.clone());
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
                    // the dropped feeds' objects, and their connections once closed, are freed
                    crate::memory::trim_soon();
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
    fn start(
        rt: &ToolRuntime,
        connector: &ToolConnector,
        writes: Arc<Writes>,
        settings: WatchSettings,
    ) -> Self {
        let continuous = rt.continuous();
        let tool = rt.tool().to_string();
        let broken = Arc::new(AtomicBool::new(false));
        let jobs = Arc::new(Feed::new(true, false));
        let cronjobs = Arc::new(Feed::new(true, false));
        let rcs = Arc::new(Feed::new(
            continuous == ContinuousComponent::ReplicationControllers,
            false,
        ));
        let deployments = Arc::new(Feed::new(
            continuous == ContinuousComponent::Deployments,
            false,
        ));
        let pods = Arc::new(Feed::new(true, true));
        let events = Arc::new(Feed::new(true, false));
        let ns: Arc<str> = rt.namespace().into();
        let sel = |c: Option<Component>| -> Option<Arc<str>> {
            Some(labels::selector_string(&labels::selector_labels(&tool, c, None)).into())
        };
        let cont = Component::Continuous(continuous);
        // jobs and pods are selected alike
        let all = sel(None);
        let mut feeds = Vec::with_capacity(5);
        feeds.extend([
            (Watched::of::<Job>(&ns, all.clone(), None), jobs.clone()),
            (
                Watched::of::<CronJob>(&ns, sel(Some(Component::CronJobs)), None),
                cronjobs.clone(),
            ),
            (Watched::of::<Pod>(&ns, all, None), pods.clone()),
            (
                Watched::of::<Event>(&ns, None, Some(crate::runtime::JOB_EVENTS)),
                events.clone(),
            ),
        ]);
        feeds.push(match continuous {
            ContinuousComponent::ReplicationControllers => (
                Watched::of::<ReplicationController>(&ns, sel(Some(cont)), None),
                rcs.clone(),
            ),
            ContinuousComponent::Deployments => (
                Watched::of::<Deployment>(&ns, sel(Some(cont)), None),
                deployments.clone(),
            ),
        });
        let task = spawn_feeds(connector.clone(), feeds, broken.clone(), settings);
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
            task,
            connector: connector.clone(),
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
    fn feed(&self, plural: &str) -> Option<&Feed> {
        Some(match plural {
            "jobs" => &self.jobs,
            "cronjobs" => &self.cronjobs,
            "replicationcontrollers" => &self.rcs,
            "deployments" => &self.deployments,
            "pods" => &self.pods,
            "events" => &self.events,
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
    fn snapshot(&self, name: Option<&str>) -> Result<Snapshot, serde_json::Error> {
        let sel = |c: Option<Component>| labels::selector_labels(&self.tool, c, name);
        let cont = sel(Some(Component::Continuous(self.continuous)));
        let cron = sel(Some(Component::CronJobs));
        Ok(Snapshot {
            jobs: self.jobs.select(Some(&sel(Some(Component::Jobs))))?,
            cronjob_jobs: self.jobs.select(Some(&cron))?,
            cronjobs: self.cronjobs.select(Some(&cron))?,
            rcs: self.rcs.select(Some(&cont))?,
            deployments: self.deployments.select(Some(&cont))?,
            pods: self.pods.select(Some(&sel(None)))?,
            events: self.events.select(None)?,
        })
    }
}

/// What one feed lists and watches: a kind in the tool's namespace, narrowed by selectors.
/// One kind watched in a tool's namespace. The strings are shared between a tool's feeds or
/// static: the collection's URL is made when a request needs it (every few minutes), not
/// kept per feed.
struct Watched {
    plural: std::borrow::Cow<'static, str>,
    namespace: Arc<str>,
    url_of: fn(&(), Option<&str>) -> String,
    labels: Option<Arc<str>>,
    fields: Option<&'static str>,
}

impl Watched {
    fn of<K: Resource<DynamicType = ()>>(
        namespace: &Arc<str>,
        labels: Option<Arc<str>>,
        fields: Option<&'static str>,
    ) -> Self {
        Self {
            plural: K::plural(&()),
            namespace: namespace.clone(),
            url_of: K::url_path,
            labels,
            fields,
        }
    }

    /// The kind's collection in the namespace (`/apis/batch/v1/namespaces/tool-x/jobs`).
    fn url(&self) -> String {
        (self.url_of)(&(), Some(&self.namespace))
    }

    fn list(&self) -> Result<http::Request<Vec<u8>>, String> {
        let mut lp = ListParams::default();
        if let Some(l) = &self.labels {
            lp = lp.labels(l);
        }
        if let Some(f) = &self.fields {
            lp = lp.fields(f);
        }
        kube::core::Request::new(self.url())
            .list(&lp)
            .map_err(|e| format!("list request: {e}"))
    }

    fn watch(&self, version: &str, timeout: Duration) -> Result<http::Request<Vec<u8>>, String> {
        // bookmarks (on by default) keep the version current while nothing of the tool's changes
        let seconds = u32::try_from(timeout.as_secs())
            .unwrap_or(290)
            .clamp(1, 290);
        let mut wp = WatchParams::default().timeout(seconds);
        if let Some(l) = &self.labels {
            wp = wp.labels(l);
        }
        if let Some(f) = &self.fields {
            wp = wp.fields(f);
        }
        kube::core::Request::new(self.url())
            .watch(&wp, version)
            .map_err(|e| format!("watch request: {e}"))
    }
}

/// Runs a tool's feeds in one task (one connection handle and one task per tool, not per
/// kind). Each lists, then watches from the list's version, keeping its feed current; an
/// expired watch lists again. The first other failure marks the tool's feeds broken and ends
/// them all: the tool's reads go directly until new feeds start.
fn spawn_feeds(
    connector: ToolConnector,
    feeds: Vec<(Watched, Arc<Feed>)>,
    broken: Arc<AtomicBool>,
    settings: WatchSettings,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let settings = &settings;
        let following = feeds.iter().map(|(what, feed)| {
            let connector = &connector;
            Box::pin(async move {
                let reason = match follow(connector, what, feed, settings).await {
                    Err(reason) => reason,
                    Ok(never) => match never {},
                };
                (&*what.plural, reason)
            })
        });
        let ((plural, reason), _, _) = futures::future::select_all(following).await;
        tracing::info!(kind = %plural, "watch ended ({reason}); reads go directly");
        crate::metrics::global().inc(
            "jobs_gateway_watch_failures_total",
            vec![("kind", plural.to_string())],
        );
        for (_, feed) in &feeds {
            feed.set_live(false);
        }
        broken.store(true, Ordering::Release);
    })
}

async fn follow(
    connector: &ToolConnector,
    what: &Watched,
    feed: &Feed,
    settings: &WatchSettings,
) -> Result<std::convert::Infallible, String> {
    let delay = settings.event_delay;
    'list: loop {
        // the list's and the watch's futures are boxed: what stays in the task's state while
        // it waits for events is a pointer, not the largest state of any request
        // (the request is made in a statement of its own: a temporary of the awaiting
        // statement would keep its room in this future's state)
        let request = what.list()?;
        let listing = Box::pin(stream::list(
            connector,
            request,
            &what.plural,
            feed.drop_spec,
        ));
        let (mut version, objects) = listing.await?;
        feed.replace(objects, version.parse().unwrap_or(0));
        feed.set_live(true);
        // watches in a row that ended at once without an event
        let mut hasty = 0u32;
        loop {
            let request = what.watch(&version, settings.watch_timeout)?;
            let started = Instant::now();
            let mut heard = false;
            let watching = Box::pin(stream::watch(
                connector,
                request,
                &what.plural,
                feed.drop_spec,
                || feed.set_live(true),
                |event| {
                    heard = true;
                    let step = match event {
                        WatchEvent::Put(object) => {
                            version = object.version.to_string();
                            Some((object, false))
                        }
                        WatchEvent::Delete(object) => {
                            version = object.version.to_string();
                            Some((object, true))
                        }
                        WatchEvent::Bookmark(v, text) => {
                            version = text;
                            feed.delivered(v);
                            None
                        }
                        // end the watch (stream::watch does not pass them on)
                        WatchEvent::Expired | WatchEvent::Interrupted => None,
                    };
                    async move {
                        if let Some((object, gone)) = step {
                            if !delay.is_zero() {
                                // boxed: tests only, and a sleep is 112 bytes of every
                                // waiting watch's state otherwise
                                Box::pin(tokio::time::sleep(delay)).await;
                            }
                            if gone {
                                feed.remove(&object);
                            } else {
                                feed.put(object);
                            }
                        }
                    }
                },
            ));
            // until the next watch is taken (or the list is made again), reads go directly
            let ended = watching.await?;
            feed.set_live(false);
            if ended == Ended::Expired {
                crate::metrics::global().inc(
                    "jobs_gateway_watch_relists_total",
                    vec![("kind", what.plural.to_string())],
                );
                continue 'list;
            }
            // a watch that keeps ending at once (a proxy cutting it, a failing apiserver) is
            // not asked for again in a tight loop: a growing pause, then the feed fails
            if !heard
                && started.elapsed() < (settings.watch_timeout / 2).min(Duration::from_secs(1))
            {
                hasty += 1;
                if hasty > 5 {
                    return Err("the watch keeps ending as soon as it is opened".into());
                }
                Box::pin(tokio::time::sleep(Duration::from_millis(50 << hasty))).await;
            } else {
                hasty = 0;
            }
        }
    }
}
