//! A job as list and show report it (the shape the `toolforge-jobs` CLI parses).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Event, Pod, PodTemplateSpec, ReplicationController};
use serde::Serialize;

use super::command::parse_command;
use super::images::ImageCatalog;
use super::labels;
use super::status;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct JobView {
    pub name: String,
    pub cmd: String,
    pub image: String,
    pub image_state: String,
    /// `"True"` or `"False"`: older clients compare the text.
    pub filelog: String,
    pub filelog_stdout: Option<String>,
    pub filelog_stderr: Option<String>,
    pub status_short: String,
    pub status_long: String,
    pub emails: String,
    pub retry: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_actual: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continuous: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// Which kind of job this is, for the server's own use.
    #[serde(skip)]
    pub kind: JobKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JobKind {
    #[default]
    OneOff,
    Scheduled,
    Continuous,
}

/// What the pod template tells about a job.
struct TemplateFacts {
    cmd: String,
    image: String,
    image_state: String,
    stdout: Option<String>,
    stderr: Option<String>,
    memory: Option<String>,
    cpu: Option<String>,
}

fn template_facts(
    template: Option<&PodTemplateSpec>,
    labels: &BTreeMap<String, String>,
    catalog: &ImageCatalog,
) -> TemplateFacts {
    let container = template
        .and_then(|t| t.spec.as_ref())
        .and_then(|s| s.containers.first());
    let command: Vec<String> = container
        .and_then(|c| c.command.clone())
        .unwrap_or_default();
    let args: Vec<String> = container.and_then(|c| c.args.clone()).unwrap_or_default();
    let parsed = parse_command(&command, &args, labels);
    let image_ref = container.and_then(|c| c.image.clone()).unwrap_or_default();
    let (image, image_state) = match catalog.by_container(&image_ref) {
        Some(i) => (i.canonical_name.clone(), i.state.clone()),
        None => (image_ref, "unknown".to_string()),
    };
    let limits = container
        .and_then(|c| c.resources.as_ref())
        .and_then(|r| r.limits.as_ref());
    let limit = |k: &str, default: &str| {
        limits
            .and_then(|l| l.get(k))
            .map(|q| q.0.clone())
            .filter(|v| v != default)
    };
    TemplateFacts {
        cmd: parsed.cmd,
        image,
        image_state,
        stdout: parsed.filelog_stdout,
        stderr: parsed.filelog_stderr,
        memory: limit("memory", "512Mi"),
        cpu: limit("cpu", "500m"),
    }
}

fn base_view(
    name: String,
    labels: &BTreeMap<String, String>,
    template: Option<&PodTemplateSpec>,
    catalog: &ImageCatalog,
    kind: JobKind,
) -> JobView {
    let facts = template_facts(template, labels, catalog);
    let filelog = labels.get(labels::FILELOG).map(String::as_str) == Some("yes");
    JobView {
        name,
        cmd: facts.cmd,
        image: facts.image,
        image_state: facts.image_state,
        filelog: if filelog { "True" } else { "False" }.into(),
        filelog_stdout: facts.stdout,
        filelog_stderr: facts.stderr,
        status_short: "Unknown".into(),
        status_long: String::new(),
        emails: labels
            .get(labels::EMAILS)
            .cloned()
            .unwrap_or_else(|| "none".into()),
        retry: 0,
        schedule: None,
        schedule_actual: None,
        continuous: None,
        memory: facts.memory,
        cpu: facts.cpu,
        kind,
    }
}

/// The pods that belong to one job (same name label).
pub fn pods_of(pods: &[Pod], job: &str) -> Vec<Pod> {
    pods.iter()
        .filter(|p| {
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(labels::NAME))
                .map(String::as_str)
                == Some(job)
        })
        .cloned()
        .collect()
}

fn events_of(events: &[Event], uid: Option<&str>) -> Vec<Event> {
    let Some(uid) = uid else { return vec![] };
    events
        .iter()
        .filter(|e| e.involved_object.uid.as_deref() == Some(uid))
        .cloned()
        .collect()
}

pub fn job_view(
    job: &Job,
    pods: &[Pod],
    events: &[Event],
    catalog: &ImageCatalog,
    now: DateTime<Utc>,
) -> JobView {
    let name = job.metadata.name.clone().unwrap_or_default();
    let labels = job.metadata.labels.clone().unwrap_or_default();
    let spec = job.spec.as_ref();
    let mut v = base_view(
        name.clone(),
        &labels,
        spec.map(|s| &s.template),
        catalog,
        JobKind::OneOff,
    );
    v.retry = spec.and_then(|s| s.backoff_limit).unwrap_or(0);
    let own_events = events_of(events, job.metadata.uid.as_deref());
    v.status_short = status::job_status_short(job, &own_events, now);
    v.status_long = status::status_long(&pods_of(pods, &name));
    v
}

pub fn cronjob_view(
    cj: &CronJob,
    jobs: &[Job],
    pods: &[Pod],
    events: &[Event],
    catalog: &ImageCatalog,
    now: DateTime<Utc>,
) -> JobView {
    let name = cj.metadata.name.clone().unwrap_or_default();
    let labels = cj.metadata.labels.clone().unwrap_or_default();
    let job_spec = cj.spec.as_ref().and_then(|s| s.job_template.spec.as_ref());
    let mut v = base_view(
        name.clone(),
        &labels,
        job_spec.map(|s| &s.template),
        catalog,
        JobKind::Scheduled,
    );
    v.retry = job_spec.and_then(|s| s.backoff_limit).unwrap_or(0);
    let actual = cj
        .spec
        .as_ref()
        .map(|s| s.schedule.clone())
        .unwrap_or_default();
    v.schedule = Some(
        cj.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(labels::CRON_EXPRESSION))
            .cloned()
            .unwrap_or_else(|| actual.clone()),
    );
    v.schedule_actual = Some(actual);
    let own_jobs: Vec<Job> = jobs
        .iter()
        .filter(|j| {
            j.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(labels::NAME))
                .map(String::as_str)
                == Some(name.as_str())
        })
        .cloned()
        .collect();
    v.status_short = status::cronjob_status_short(cj, &own_jobs, events, now);
    v.status_long = status::status_long(&pods_of(pods, &name));
    v
}

pub fn rc_view(rc: &ReplicationController, pods: &[Pod], catalog: &ImageCatalog) -> JobView {
    let name = rc.metadata.name.clone().unwrap_or_default();
    let labels = rc.metadata.labels.clone().unwrap_or_default();
    let mut v = base_view(
        name.clone(),
        &labels,
        rc.spec.as_ref().and_then(|s| s.template.as_ref()),
        catalog,
        JobKind::Continuous,
    );
    v.continuous = Some(true);
    let own = pods_of(pods, &name);
    v.status_short = status::rc_status_short(rc, &own);
    v.status_long = status::status_long(&own);
    v
}

pub fn deployment_view(d: &Deployment, pods: &[Pod], catalog: &ImageCatalog) -> JobView {
    let name = d.metadata.name.clone().unwrap_or_default();
    let labels = d.metadata.labels.clone().unwrap_or_default();
    let mut v = base_view(
        name.clone(),
        &labels,
        d.spec.as_ref().map(|s| &s.template),
        catalog,
        JobKind::Continuous,
    );
    v.continuous = Some(true);
    let own = pods_of(pods, &name);
    v.status_short = status::deployment_status_short(d, &own);
    v.status_long = status::status_long(&own);
    v
}
