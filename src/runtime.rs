//! Calls to the Kubernetes API, made with the calling tool's own client.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Event, LimitRange, Pod, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{
    Api, DeleteParams, ListParams, LogParams, PostParams, Preconditions, PropagationPolicy,
    VersionMatch,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

use std::sync::{Arc, OnceLock};

use crate::credentials::ToolConnector;
use crate::writes::Writes;
use jobs_core::labels::{self, selector_string, Component, ContinuousComponent};

/// The events a reply reads: a job's `FailedCreate` events say why it could not start (out of
/// quota), and no other event changes any status text. Asking the apiserver for those only
/// keeps the rest (scheduling, pulls, starts: most events of a namespace) out of every read and
/// out of the watch cache.
pub const JOB_EVENTS: &str = "involvedObject.kind=Job,reason=FailedCreate";

/// What Kubernetes holds for a tool's jobs (optionally narrowed to one name).
#[derive(Default)]
pub struct Snapshot {
    pub jobs: Vec<Job>,
    pub cronjob_jobs: Vec<Job>,
    pub cronjobs: Vec<CronJob>,
    pub rcs: Vec<ReplicationController>,
    pub deployments: Vec<Deployment>,
    pub pods: Vec<Pod>,
    pub events: Vec<Event>,
}

impl Snapshot {
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
            && self.cronjobs.is_empty()
            && self.rcs.is_empty()
            && self.deployments.is_empty()
    }
}

/// The tool's job objects as the job quotas count them (see [`ToolRuntime::census`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Census {
    /// One-off jobs not finished plus continuous jobs.
    pub running: usize,
    /// Scheduled jobs.
    pub scheduled: usize,
    /// Objects (of any kind) carrying the job name asked about.
    pub same_name: usize,
}

/// A job object found by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Existing {
    pub component: Component,
    pub spec_hash: Option<String>,
    /// Held and older than the request timeout: left by a request that ended without
    /// releasing it (see [`ToolRuntime::census`], which deletes it).
    pub stale_held: bool,
}

/// Where a runtime's kube client comes from.
#[derive(Clone)]
enum Source {
    Client(kube::Client),
    /// The tool's connection: the kube client (a dispatch task and channel) is made on
    /// first use, so a request answered from the watch cache makes none.
    Connector {
        connector: ToolConnector,
        client: OnceLock<kube::Client>,
    },
}

#[derive(Clone)]
pub struct ToolRuntime {
    source: Source,
    tool: String,
    namespace: String,
    continuous: ContinuousComponent,
    /// Lists are parsed without `metadata.managedFields` (see [`jobs_core::slim`]).
    slim: bool,
    /// How old a held object (see [`jobs_core::objects::held`]) must be before a census takes it
    /// for one left by a request that ended without releasing it, and deletes it.
    held_stale: std::time::Duration,
    /// Where writes are recorded for the watch cache, when it follows this tool.
    writes: Option<Arc<Writes>>,
}

/// A held object that outlived the request that created it (see [`ToolRuntime::census`]).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stale {
    kind: &'static str,
    name: String,
    uid: String,
    resource_version: String,
}

/// A namespaced kind the runtime reads and writes typed (every k8s-openapi kind it uses).
trait Kind:
    kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
    + Clone
    + DeserializeOwned
    + serde::Serialize
    + std::fmt::Debug
{
}

impl<K> Kind for K where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug
{
}

fn params(sel: &BTreeMap<String, String>) -> ListParams {
    ListParams::default().labels(&selector_string(sel))
}

impl ToolRuntime {
    pub fn new(client: kube::Client, tool: &str, continuous: ContinuousComponent) -> Self {
        Self::from_source(Source::Client(client), tool, continuous)
    }

    /// Over a tool's connection (the gateway's requests).
    pub fn over(connector: ToolConnector, tool: &str, continuous: ContinuousComponent) -> Self {
        let source = Source::Connector {
            connector,
            client: OnceLock::new(),
        };
        Self::from_source(source, tool, continuous)
    }

    fn from_source(source: Source, tool: &str, continuous: ContinuousComponent) -> Self {
        Self {
            source,
            tool: tool.to_string(),
            namespace: format!("tool-{tool}"),
            continuous,
            slim: true,
            held_stale: std::time::Duration::from_secs(60),
            writes: None,
        }
    }

    /// See the field `held_stale`; the gateway passes its request timeout (no request can
    /// still be about to release an object created longer ago).
    pub fn held_stale_after(mut self, after: std::time::Duration) -> Self {
        self.held_stale = after;
        self
    }

    /// Parses list replies whole, `managedFields` included, as a plain kube client does (the
    /// benchmark's direct reference).
    pub fn keep_managed_fields(mut self) -> Self {
        self.slim = false;
        self
    }

    /// The tool's kube client.
    fn client(&self) -> &kube::Client {
        match &self.source {
            Source::Client(client) => client,
            Source::Connector { connector, client } => client.get_or_init(|| connector.client()),
        }
    }

    /// The tool's connection, when the runtime was made over one (the watch cache follows
    /// the tool's objects with it).
    pub fn connector(&self) -> Option<&ToolConnector> {
        match &self.source {
            Source::Client(_) => None,
            Source::Connector { connector, .. } => Some(connector),
        }
    }

    pub fn tool(&self) -> &str {
        &self.tool
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn continuous(&self) -> ContinuousComponent {
        self.continuous
    }

    /// Records what this runtime's writes change, so that reads from the watch cache wait
    /// for them (see [`crate::writes`]).
    pub fn recording(mut self, writes: Option<Arc<Writes>>) -> Self {
        self.writes = writes;
        self
    }

    fn wrote<K: Kind>(&self, obj: &K) {
        if let Some(w) = &self.writes {
            w.wrote(&K::plural(&()), obj.meta().resource_version.as_deref());
        }
    }

    fn removed<K: Kind>(&self, uids: Option<Vec<String>>) {
        if let Some(w) = &self.writes {
            w.removed(&K::plural(&()), uids);
        }
    }

    fn api<K: Kind>(&self) -> Api<K> {
        Api::namespaced(self.client().clone(), &self.namespace)
    }

    fn sel(&self, c: Option<Component>, name: Option<&str>) -> BTreeMap<String, String> {
        labels::selector_labels(&self.tool, c, name)
    }

    async fn list_of<K>(&self, lp: ListParams) -> Result<Vec<K>, kube::Error>
    where
        K: Kind,
    {
        let plural = K::plural(&()).to_string();
        if !self.slim {
            let api = self.api::<K>();
            return Ok(crate::metrics::kube_call("list", &plural, api.list(&lp))
                .await?
                .items);
        }
        let url = K::url_path(&(), Some(&self.namespace));
        let request = kube::core::Request::new(url)
            .list(&lp)
            .map_err(kube::Error::BuildRequest)?;
        let text =
            crate::metrics::kube_call("list", &plural, self.client().request_text(request)).await?;
        let list: kube::core::ObjectList<K> =
            serde_json::from_slice(&jobs_core::slim::without_managed_fields(text.into_bytes()))
                .map_err(kube::Error::SerdeError)?;
        Ok(list.items)
    }

    async fn count_of<K>(&self, lp: ListParams) -> Result<Vec<K>, kube::Error>
    where
        K: Kind,
    {
        self.list_of::<K>(lp.limit(1)).await
    }

    /// Deletes every object of a kind carrying `sel`.
    async fn delete_of<K>(&self, sel: BTreeMap<String, String>) -> Result<(), kube::Error>
    where
        K: Kind,
    {
        let plural = K::plural(&()).to_string();
        let api = self.api::<K>();
        let deleted = crate::metrics::kube_call(
            "deletecollection",
            &plural,
            api.delete_collection(&DeleteParams::background(), &params(&sel)),
        )
        .await?;
        self.removed::<K>(deleted.left().map(|list| {
            list.items
                .iter()
                .filter_map(|o| o.meta().uid.clone())
                .collect()
        }));
        Ok(())
    }

    /// Reads everything list/show needs, in parallel, with label selectors (never per job).
    pub async fn snapshot(&self, name: Option<&str>) -> Result<Snapshot, kube::Error> {
        let cont = params(&self.sel(Some(Component::Continuous(self.continuous)), name));
        let (jobs, cronjob_jobs, cronjobs, rcs, deployments, pods, events) = tokio::try_join!(
            self.list_of::<Job>(params(&self.sel(Some(Component::Jobs), name))),
            self.list_of::<Job>(params(&self.sel(Some(Component::CronJobs), name))),
            self.list_of::<CronJob>(params(&self.sel(Some(Component::CronJobs), name))),
            async {
                match self.continuous {
                    ContinuousComponent::ReplicationControllers => {
                        self.list_of::<ReplicationController>(cont.clone()).await
                    }
                    ContinuousComponent::Deployments => Ok(Vec::new()),
                }
            },
            async {
                match self.continuous {
                    ContinuousComponent::Deployments => {
                        self.list_of::<Deployment>(cont.clone()).await
                    }
                    ContinuousComponent::ReplicationControllers => Ok(Vec::new()),
                }
            },
            self.list_of::<Pod>(params(&self.sel(None, name))),
            self.list_of::<Event>(ListParams::default().fields(JOB_EVENTS)),
        )?;
        Ok(Snapshot {
            jobs,
            cronjob_jobs,
            cronjobs,
            rcs,
            deployments,
            pods,
            events,
        })
    }

    /// (running one-off + continuous jobs, scheduled jobs) of the tool, for the job quotas.
    pub async fn counts(&self) -> Result<(usize, usize), kube::Error> {
        let c = self.census(None, None, None).await?;
        Ok((c.running, c.scheduled))
    }

    /// The tool's job objects counted for the job quotas, as stored now (`at: None`) or at
    /// exactly one resource version (`resourceVersionMatch=Exact`, read from etcd at that
    /// revision): everything created before that revision and not yet gone then, nothing
    /// created after it. `skip_uid` leaves one object out; `name` also counts the objects of
    /// that job name.
    ///
    /// Held objects (created, not yet released: [`jobs_core::objects::held`]) count like the
    /// others, since their creates may yet win their arbitration, unless older than
    /// `held_stale`: those were left by a request that ended without releasing them (its
    /// replica died, or the request was cut), never ran a pod, and are deleted here (each
    /// only if still unchanged since this read, so a late release wins over the deletion).
    pub async fn census(
        &self,
        at: Option<&str>,
        skip_uid: Option<&str>,
        name: Option<&str>,
    ) -> Result<Census, kube::Error> {
        let lp = |sel: BTreeMap<String, String>| {
            let lp = params(&sel);
            match at {
                Some(rv) => lp.at(rv).matching(VersionMatch::Exact),
                None => lp,
            }
        };
        let cont = lp(self.sel(Some(Component::Continuous(self.continuous)), None));
        let crons = lp(self.sel(Some(Component::CronJobs), None));
        let cron_api = self.api::<CronJob>();
        let (jobs, cronjobs, continuous) = tokio::try_join!(
            self.list_of::<Job>(lp(self.sel(Some(Component::Jobs), None))),
            crate::metrics::kube_call("list", "cronjobs", cron_api.list_metadata(&crons)),
            async {
                match self.continuous {
                    ContinuousComponent::ReplicationControllers => crate::metrics::kube_call(
                        "list",
                        "replicationcontrollers",
                        self.api::<ReplicationController>().list_metadata(&cont),
                    )
                    .await
                    .map(|l| l.items.into_iter().map(|o| o.metadata).collect::<Vec<_>>()),
                    ContinuousComponent::Deployments => crate::metrics::kube_call(
                        "list",
                        "deployments",
                        self.api::<Deployment>().list_metadata(&cont),
                    )
                    .await
                    .map(|l| l.items.into_iter().map(|o| o.metadata).collect::<Vec<_>>()),
                }
            },
        )?;
        let finished = |j: &Job| {
            j.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| {
                    c.iter().any(|c| {
                        (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True"
                    })
                })
        };
        let kept = |m: &ObjectMeta| skip_uid.is_none() || m.uid.as_deref() != skip_uid;
        let named = |m: &ObjectMeta| {
            name.is_some()
                && m.labels
                    .as_ref()
                    .and_then(|l| l.get(labels::NAME))
                    .map(String::as_str)
                    == name
        };
        let is_stale = |m: &ObjectMeta| self.is_stale_held(m);
        let cont_kind = match self.continuous {
            ContinuousComponent::ReplicationControllers => "ReplicationController",
            ContinuousComponent::Deployments => "Deployment",
        };
        let job_metas: Vec<&ObjectMeta> = jobs.iter().map(|j| &j.metadata).collect();
        let cron_metas: Vec<&ObjectMeta> = cronjobs.items.iter().map(|o| &o.metadata).collect();
        let cont_metas: Vec<&ObjectMeta> = continuous.iter().collect();
        let stale: Vec<Stale> = job_metas
            .iter()
            .map(|m| ("Job", *m))
            .chain(cont_metas.iter().map(|m| (cont_kind, *m)))
            .filter(|(_, m)| is_stale(m))
            .filter_map(|(kind, m)| {
                Some(Stale {
                    kind,
                    name: m.name.clone()?,
                    uid: m.uid.clone()?,
                    resource_version: m.resource_version.clone()?,
                })
            })
            .collect();
        let kept = |m: &ObjectMeta| kept(m) && !is_stale(m);
        let running = jobs
            .iter()
            .filter(|j| kept(&j.metadata) && !finished(j))
            .count()
            + cont_metas.iter().filter(|m| kept(m)).count();
        let scheduled = cron_metas.iter().filter(|m| kept(m)).count();
        let same_name = [job_metas, cron_metas, cont_metas]
            .iter()
            .flatten()
            .filter(|m| kept(m) && named(m))
            .count();
        for s in &stale {
            tracing::warn!(tool = %self.tool, job = %s.name, kind = s.kind, "deleting a held object its request left behind (created, never released)");
            let r = self
                .delete_exact(s.kind, &s.name, &s.uid, Some(&s.resource_version))
                .await;
            crate::metrics::global().inc(
                "jobs_gateway_held_objects_removed_total",
                vec![(
                    "result",
                    if r.is_ok() { "deleted" } else { "failed" }.into(),
                )],
            );
            if let Err(e) = r {
                // released or deleted since the read (409/404), or a passing failure: the
                // next census tries again
                tracing::info!(tool = %self.tool, job = %s.name, error = %e, "held object not deleted");
            }
        }
        Ok(Census {
            running,
            scheduled,
            same_name,
        })
    }

    /// Deletes one object this gateway just created (`kind` and `uid` from the create reply)
    /// and, for a Job, the pods its controller may already have made; pods made after that
    /// are removed by the garbage collector (background propagation: the object is gone at
    /// once).
    pub async fn delete_created(
        &self,
        kind: &str,
        name: &str,
        uid: &str,
    ) -> Result<(), kube::Error> {
        self.delete_exact(kind, name, uid, None).await
    }

    /// Deletes the object `name` of `kind` only if it is still the one of `uid` (and, with
    /// `resource_version`, still unchanged since that version); a 404 counts as done.
    async fn delete_exact(
        &self,
        kind: &str,
        name: &str,
        uid: &str,
        resource_version: Option<&str>,
    ) -> Result<(), kube::Error> {
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            preconditions: Some(Preconditions {
                uid: Some(uid.to_string()),
                resource_version: resource_version.map(str::to_string),
            }),
            ..DeleteParams::default()
        };
        let gone = |r: Result<(), kube::Error>| match r {
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            r => r,
        };
        async fn del<K>(rt: &ToolRuntime, name: &str, dp: &DeleteParams) -> Result<(), kube::Error>
        where
            K: Kind,
        {
            let plural = K::plural(&()).to_string();
            crate::metrics::kube_call("delete", &plural, rt.api::<K>().delete(name, dp)).await?;
            let uid = dp.preconditions.as_ref().and_then(|p| p.uid.clone());
            rt.removed::<K>(uid.map(|u| vec![u]));
            Ok(())
        }
        match kind {
            "Job" => {
                gone(del::<Job>(self, name, &dp).await)?;
                let pods = BTreeMap::from([("controller-uid".to_string(), uid.to_string())]);
                self.delete_of::<Pod>(pods).await
            }
            "CronJob" => gone(del::<CronJob>(self, name, &dp).await),
            "ReplicationController" => gone(del::<ReplicationController>(self, name, &dp).await),
            _ => gone(del::<Deployment>(self, name, &dp).await),
        }
    }

    /// Whether `m` is of a held object older than `held_stale` (see [`Self::census`]).
    fn is_stale_held(&self, m: &ObjectMeta) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        m.annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(labels::HELD))
            && m.creation_timestamp
                .as_ref()
                .is_some_and(|t| now - t.0.as_second() > self.held_stale.as_secs() as i64)
    }

    /// Deletes the tool's stale held objects (see [`Self::census`]).
    pub async fn remove_stale_held(&self) -> Result<(), kube::Error> {
        self.census(None, None, None).await.map(|_| ())
    }

    /// Releases a held object (see [`jobs_core::objects::held`]) with the JSON patch of
    /// [`jobs_core::objects::release_patch`]; returns the object as stored after the release.
    pub async fn release(
        &self,
        kind: &str,
        name: &str,
        patch: &Value,
    ) -> Result<Value, kube::Error> {
        async fn json_patch<K>(
            rt: &ToolRuntime,
            name: &str,
            patch: &Value,
        ) -> Result<Value, kube::Error>
        where
            K: Kind,
        {
            let plural = K::plural(&()).to_string();
            let url = format!("{}/{name}", K::url_path(&(), Some(&rt.namespace)));
            let body = serde_json::to_vec(patch).map_err(kube::Error::SerdeError)?;
            let request = http::Request::patch(url)
                .header(http::header::CONTENT_TYPE, "application/json-patch+json")
                .body(body)
                .map_err(|e| {
                    kube::Error::BuildRequest(kube::core::request::Error::BuildRequest(e))
                })?;
            let stored: K =
                crate::metrics::kube_call("patch", &plural, rt.client().request::<K>(request))
                    .await?;
            rt.wrote(&stored);
            serde_json::to_value(stored).map_err(kube::Error::SerdeError)
        }
        match kind {
            "Job" => json_patch::<Job>(self, name, patch).await,
            "ReplicationController" => json_patch::<ReplicationController>(self, name, patch).await,
            _ => json_patch::<Deployment>(self, name, patch).await,
        }
    }

    /// Whether any job object of this name exists.
    pub async fn exists(&self, name: &str) -> Result<bool, kube::Error> {
        let jobs = params(&self.sel(Some(Component::Jobs), Some(name)));
        let crons = params(&self.sel(Some(Component::CronJobs), Some(name)));
        let cont = params(&self.sel(Some(Component::Continuous(self.continuous)), Some(name)));
        let (a, b, c) = tokio::try_join!(
            self.count_of::<Job>(jobs),
            self.count_of::<CronJob>(crons),
            async {
                match self.continuous {
                    ContinuousComponent::ReplicationControllers => self
                        .count_of::<ReplicationController>(cont.clone())
                        .await
                        .map(|l| l.len()),
                    ContinuousComponent::Deployments => self
                        .count_of::<Deployment>(cont.clone())
                        .await
                        .map(|l| l.len()),
                }
            },
        )?;
        Ok(!a.is_empty() || !b.is_empty() || c > 0)
    }

    async fn create_typed<K>(&self, manifest: Value) -> Result<Value, kube::Error>
    where
        K: Kind,
    {
        let obj: K = serde_json::from_value(manifest).map_err(kube::Error::SerdeError)?;
        let plural = K::plural(&()).to_string();
        let api = self.api::<K>();
        let created =
            crate::metrics::kube_call("create", &plural, api.create(&PostParams::default(), &obj))
                .await?;
        self.wrote(&created);
        serde_json::to_value(created).map_err(kube::Error::SerdeError)
    }

    /// Creates a manifest built by `objects::build`; returns the object Kubernetes stored.
    pub async fn create(&self, manifest: Value) -> Result<Value, kube::Error> {
        match manifest["kind"].as_str() {
            Some("Job") => self.create_typed::<Job>(manifest).await,
            Some("CronJob") => self.create_typed::<CronJob>(manifest).await,
            Some("ReplicationController") => {
                self.create_typed::<ReplicationController>(manifest).await
            }
            _ => self.create_typed::<Deployment>(manifest).await,
        }
    }

    /// Deletes one job (`Some(name)`) or all of the tool's jobs, with their pods.
    pub async fn delete(&self, name: Option<&str>) -> Result<(), kube::Error> {
        let cont = self.sel(Some(Component::Continuous(self.continuous)), name);
        tokio::try_join!(
            self.delete_of::<Job>(self.sel(Some(Component::Jobs), name)),
            self.delete_of::<CronJob>(self.sel(Some(Component::CronJobs), name)),
            async {
                match self.continuous {
                    ContinuousComponent::ReplicationControllers => {
                        self.delete_of::<ReplicationController>(cont.clone()).await
                    }
                    ContinuousComponent::Deployments => {
                        self.delete_of::<Deployment>(cont.clone()).await
                    }
                }
            },
        )?;
        // Jobs made by a CronJob, then pods last so no controller recreates them.
        self.delete_of::<Job>(self.sel(None, name)).await?;
        self.delete_of::<Pod>(self.sel(None, name)).await?;
        Ok(())
    }

    /// The object that holds a job of this name, if any: its kind and its spec hash.
    pub async fn existing(&self, name: &str) -> Result<Option<Existing>, kube::Error> {
        let jobs = params(&self.sel(Some(Component::Jobs), Some(name)));
        let crons = params(&self.sel(Some(Component::CronJobs), Some(name)));
        let cont = params(&self.sel(Some(Component::Continuous(self.continuous)), Some(name)));
        let (a, b, c) = tokio::try_join!(
            self.list_of::<Job>(jobs),
            self.list_of::<CronJob>(crons),
            async {
                match self.continuous {
                    ContinuousComponent::ReplicationControllers => self
                        .list_of::<ReplicationController>(cont.clone())
                        .await
                        .map(|l| l.into_iter().map(|o| o.metadata).collect::<Vec<_>>()),
                    ContinuousComponent::Deployments => self
                        .list_of::<Deployment>(cont.clone())
                        .await
                        .map(|l| l.into_iter().map(|o| o.metadata).collect::<Vec<_>>()),
                }
            },
        )?;
        let hash = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
            m.annotations
                .as_ref()
                .and_then(|a| a.get(labels::SPEC_HASH))
                .cloned()
        };
        if let Some(j) = a.first() {
            return Ok(Some(Existing {
                component: Component::Jobs,
                spec_hash: hash(&j.metadata),
                stale_held: self.is_stale_held(&j.metadata),
            }));
        }
        if let Some(cj) = b.first() {
            return Ok(Some(Existing {
                component: Component::CronJobs,
                spec_hash: hash(&cj.metadata),
                stale_held: false,
            }));
        }
        Ok(c.first().map(|m| Existing {
            component: Component::Continuous(self.continuous),
            spec_hash: hash(m),
            stale_held: self.is_stale_held(m),
        }))
    }

    /// Restarts a scheduled job (runs it now) or a continuous one (new pods).
    pub async fn restart(&self, name: &str, what: Component) -> Result<(), kube::Error> {
        match what {
            Component::Jobs => Ok(()),
            Component::CronJobs => {
                let api = self.api::<CronJob>();
                let cj = crate::metrics::kube_call("get", "cronjobs", api.get(name)).await?;
                let spec = cj
                    .spec
                    .as_ref()
                    .and_then(|s| s.job_template.spec.clone())
                    .unwrap_or_default();
                let labels = spec
                    .template
                    .metadata
                    .as_ref()
                    .and_then(|m| m.labels.clone())
                    .unwrap_or_default();
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let job = serde_json::json!({
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "metadata": {
                        "name": format!("{name}-{now}"),
                        "namespace": self.namespace,
                        "labels": labels,
                        "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
                        "ownerReferences": [{
                            "apiVersion": "batch/v1",
                            "kind": "CronJob",
                            "name": name,
                            "uid": cj.metadata.uid.clone().unwrap_or_default(),
                        }],
                    },
                    "spec": spec,
                });
                self.create_typed::<Job>(job).await.map(|_| ())
            }
            Component::Continuous(ContinuousComponent::ReplicationControllers) => {
                // The controller replaces the deleted pods with new ones.
                self.delete_of::<Pod>(self.sel(None, Some(name))).await
            }
            Component::Continuous(ContinuousComponent::Deployments) => {
                let stamp = chrono::Utc::now().to_rfc3339();
                let patch = serde_json::json!({"spec": {"template": {"metadata": {"annotations": {
                    "app.kubernetes.io/restartedAt": stamp
                }}}}});
                let patched = self
                    .api::<Deployment>()
                    .patch(
                        name,
                        &kube::api::PatchParams::default(),
                        &kube::api::Patch::Merge(&patch),
                    )
                    .await?;
                self.wrote(&patched);
                Ok(())
            }
        }
    }

    /// The namespace's ResourceQuotas.
    pub async fn resource_quotas(
        &self,
    ) -> Result<Vec<k8s_openapi::api::core::v1::ResourceQuota>, kube::Error> {
        self.list_of(ListParams::default()).await
    }

    /// Every pod of the job `name` (one-off: its Job's; scheduled: those of its Jobs;
    /// continuous: the current replicas), by the labels the templates give them.
    pub async fn job_pods(&self, name: &str) -> Result<Vec<Pod>, kube::Error> {
        self.list_of::<Pod>(params(&self.sel(None, Some(name))))
            .await
    }

    /// One pod of the tool's namespace.
    pub async fn pod(&self, name: &str) -> Result<Pod, kube::Error> {
        crate::metrics::kube_call("get", "pods", self.api::<Pod>().get(name)).await
    }

    /// A container's log as a stream of bytes (with `follow`, open until the container
    /// stops or the connection is closed).
    pub async fn pod_log_stream(
        &self,
        pod: &str,
        lp: &LogParams,
    ) -> Result<impl futures::AsyncBufRead + Unpin + Send + 'static, kube::Error> {
        let stream =
            crate::metrics::kube_call("get", "pods/log", self.api::<Pod>().log_stream(pod, lp))
                .await?;
        Ok(Box::pin(stream))
    }

    /// The namespace's LimitRanges (may be empty).
    pub async fn limit_ranges(&self) -> Result<Vec<LimitRange>, kube::Error> {
        Ok(self
            .api::<LimitRange>()
            .list(&ListParams::default())
            .await?
            .items)
    }
}
