//! A job as list and show report it, rendered per client generation.
//!
//! Release 13/14 clients read `filelog` as the string `"True"`/`"False"`, `status_short` /
//! `status_long` and `image`; 16.x clients need `job_type`, a boolean `filelog`, `imagename`,
//! the structured `status` object and `"0.5Gi"`/`"0.1"` for default resources.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Event, Pod, PodTemplateSpec, ReplicationController};

use super::command::parse_command;
use super::images::ImageCatalog;
use super::labels;
use super::quota::{format_cpu, format_memory};
use super::status::{self, StatusV2};
use super::wire::{legacy, v1, HealthCheck};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JobKind {
    #[default]
    OneOff,
    Scheduled,
    Continuous,
}

impl JobKind {
    pub fn job_type(self) -> &'static str {
        match self {
            JobKind::OneOff => "one-off",
            JobKind::Scheduled => "scheduled",
            JobKind::Continuous => "continuous",
        }
    }
}

/// Everything list/show know about one job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobView {
    pub name: String,
    pub kind: JobKind,
    pub cmd: String,
    pub image: String,
    pub image_state: String,
    pub filelog: bool,
    pub filelog_stdout: Option<String>,
    pub filelog_stderr: Option<String>,
    /// Whether the user gave the stdout / stderr paths; None for objects that don't say.
    pub log_paths_set: Option<(bool, bool)>,
    pub emails: String,
    pub mount: String,
    pub retry: i32,
    pub schedule: Option<String>,
    pub schedule_actual: Option<String>,
    pub timeout: Option<i64>,
    pub replicas: Option<i32>,
    /// Continuous jobs: (port, protocol) and the health check, as configured.
    pub port: Option<(i32, String)>,
    pub health_check: Option<HealthCheck>,
    /// Resource limits as set on the object (None: platform default).
    pub memory: Option<String>,
    pub cpu: Option<String>,
    pub status_short: String,
    pub status_long: String,
    pub status: StatusV2,
}

/// What the pod template tells about a job.
struct TemplateFacts {
    port: Option<(i32, String)>,
    health_check: Option<HealthCheck>,
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
    let limit = |k: &str| limits.and_then(|l| l.get(k)).map(|q| q.0.clone());
    let port = container
        .and_then(|c| c.ports.as_ref())
        .and_then(|p| p.first())
        .map(|p| {
            (
                p.container_port,
                p.protocol
                    .clone()
                    .unwrap_or_else(|| "TCP".into())
                    .to_lowercase(),
            )
        });
    let probe = container.and_then(|c| c.liveness_probe.as_ref());
    let health_check = probe.and_then(|p| {
        if let Some(cmd) = p.exec.as_ref().and_then(|e| e.command.as_ref()) {
            return match cmd.as_slice() {
                [sh, c, script] if sh == "/bin/sh" && c == "-c" => {
                    Some(HealthCheck::script(script.as_str()))
                }
                _ => None,
            };
        }
        p.http_get
            .as_ref()
            .and_then(|h| h.path.clone())
            .map(HealthCheck::http)
    });
    TemplateFacts {
        port,
        health_check,
        cmd: parsed.cmd,
        image,
        image_state,
        stdout: parsed.filelog_stdout,
        stderr: parsed.filelog_stderr,
        memory: limit("memory"),
        cpu: limit("cpu"),
    }
}

fn base_view(
    name: String,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    labels: &BTreeMap<String, String>,
    template: Option<&PodTemplateSpec>,
    catalog: &ImageCatalog,
    kind: JobKind,
) -> JobView {
    let facts = template_facts(template, labels, catalog);
    let filelog = labels.get(labels::FILELOG).map(String::as_str) == Some("yes");
    JobView {
        name,
        kind,
        cmd: facts.cmd,
        image: facts.image,
        image_state: facts.image_state,
        filelog,
        filelog_stdout: facts.stdout.filter(|_| filelog),
        filelog_stderr: facts.stderr.filter(|_| filelog),
        log_paths_set: meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(labels::LOG_PATHS_SET))
            .map(|v| (v.contains("stdout"), v.contains("stderr"))),
        emails: labels
            .get(labels::EMAILS)
            .cloned()
            .unwrap_or_else(|| "none".into()),
        mount: labels
            .get(labels::MOUNT)
            .cloned()
            .unwrap_or_else(|| "all".into()),
        retry: 0,
        schedule: None,
        schedule_actual: None,
        timeout: None,
        replicas: None,
        port: facts.port,
        health_check: facts.health_check,
        memory: facts.memory,
        cpu: facts.cpu,
        status_short: "Unknown".into(),
        status_long: String::new(),
        status: StatusV2 {
            short: "unknown".into(),
            duration: None,
            up_to_date: true,
            messages: vec![],
            previous_schedule: None,
            next_schedule: None,
        },
    }
}

/// The pods that belong to one job (same name label).
pub fn pods_of<'a>(pods: &'a [Pod], job: &str) -> Vec<&'a Pod> {
    pods.iter()
        .filter(|p| label(&p.metadata.labels, labels::NAME) == Some(job))
        .collect()
}

fn label<'a>(labels: &'a Option<BTreeMap<String, String>>, key: &str) -> Option<&'a str> {
    labels.as_ref().and_then(|l| l.get(key)).map(String::as_str)
}

fn events_of<'a>(events: &'a [Event], uid: Option<&str>) -> Vec<&'a Event> {
    let Some(uid) = uid else { return vec![] };
    events
        .iter()
        .filter(|e| e.involved_object.uid.as_deref() == Some(uid))
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
        &job.metadata,
        &labels,
        spec.map(|s| &s.template),
        catalog,
        JobKind::OneOff,
    );
    v.retry = spec.and_then(|s| s.backoff_limit).unwrap_or(0);
    let own_events = events_of(events, job.metadata.uid.as_deref());
    let own_pods = pods_of(pods, &name);
    v.status_short = status::job_status_short(job, &own_events, now);
    v.status_long = status::status_long(&own_pods);
    v.status = status::oneoff_status_v2(job, &own_pods, &own_events, now);
    v
}

fn created(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<DateTime<Utc>> {
    meta.creation_timestamp
        .as_ref()
        .and_then(|t| DateTime::from_timestamp(t.0.as_second(), 0))
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
        &cj.metadata,
        &labels,
        job_spec.map(|s| &s.template),
        catalog,
        JobKind::Scheduled,
    );
    v.retry = job_spec.and_then(|s| s.backoff_limit).unwrap_or(0);
    v.timeout = job_spec.and_then(|s| s.active_deadline_seconds);
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
    let own_jobs: Vec<&Job> = jobs
        .iter()
        .filter(|j| label(&j.metadata.labels, labels::NAME) == Some(name.as_str()))
        .collect();
    let own_pods = pods_of(pods, &name);
    v.status_short = status::cronjob_status_short(cj, &own_jobs, events, now);
    v.status_long = status::status_long(&own_pods);
    let latest = own_jobs
        .iter()
        .copied()
        .max_by_key(|j| j.metadata.creation_timestamp.as_ref().map(|t| t.0));
    let latest_pods: Vec<&Pod> = match latest.and_then(|j| j.metadata.name.as_deref()) {
        Some(job_name) => own_pods
            .iter()
            .copied()
            .filter(|p| label(&p.metadata.labels, "job-name") == Some(job_name))
            .collect(),
        None => vec![],
    };
    let latest_events = events_of(events, latest.and_then(|j| j.metadata.uid.as_deref()));
    v.status = status::scheduled_status_v2(cj, latest, &latest_pods, &latest_events, now);
    v
}

/// The message of a ReplicaFailure condition caused by a quota, if there is one.
fn quota_failure<'a>(
    conditions: impl Iterator<Item = (&'a str, &'a str, Option<&'a String>)>,
) -> Option<String> {
    conditions
        .filter(|(kind, status, _)| *kind == "ReplicaFailure" && *status == "True")
        .find_map(|(_, _, message)| message.filter(|m| m.contains("exceeded quota")).cloned())
}

pub fn rc_view(
    rc: &ReplicationController,
    pods: &[Pod],
    catalog: &ImageCatalog,
    now: DateTime<Utc>,
) -> JobView {
    let name = rc.metadata.name.clone().unwrap_or_default();
    let labels = rc.metadata.labels.clone().unwrap_or_default();
    let mut v = base_view(
        name.clone(),
        &rc.metadata,
        &labels,
        rc.spec.as_ref().and_then(|s| s.template.as_ref()),
        catalog,
        JobKind::Continuous,
    );
    let replicas = rc.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    v.replicas = Some(replicas);
    let own = pods_of(pods, &name);
    v.status_short = status::rc_status_short(rc, &own);
    v.status_long = status::status_long(&own);
    let st = rc.status.as_ref();
    let ready = st.and_then(|s| s.ready_replicas).unwrap_or(0);
    let quota_failure = quota_failure(
        st.and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .map(|c| (c.type_.as_str(), c.status.as_str(), c.message.as_ref())),
    );
    v.status = status::continuous_status_v2(
        (replicas, ready, (replicas - ready).max(0)),
        quota_failure,
        &own,
        created(&rc.metadata),
        now,
    );
    v
}

pub fn deployment_view(
    d: &Deployment,
    pods: &[Pod],
    catalog: &ImageCatalog,
    now: DateTime<Utc>,
) -> JobView {
    let name = d.metadata.name.clone().unwrap_or_default();
    let labels = d.metadata.labels.clone().unwrap_or_default();
    let mut v = base_view(
        name.clone(),
        &d.metadata,
        &labels,
        d.spec.as_ref().map(|s| &s.template),
        catalog,
        JobKind::Continuous,
    );
    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    v.replicas = Some(replicas);
    let own = pods_of(pods, &name);
    v.status_short = status::deployment_status_short(d, &own);
    v.status_long = status::status_long(&own);
    let st = d.status.as_ref();
    let quota_failure = quota_failure(
        st.and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .map(|c| (c.type_.as_str(), c.status.as_str(), c.message.as_ref())),
    );
    v.status = status::continuous_status_v2(
        (
            replicas,
            st.and_then(|s| s.ready_replicas).unwrap_or(0),
            st.and_then(|s| s.unavailable_replicas).unwrap_or(0),
        ),
        quota_failure,
        &own,
        created(&d.metadata),
        now,
    );
    v
}

/// A log path that is just the default for the job (`<job>.out` in the home, relative or
/// absolute). Release 14's `load` compares these fields with the YAML file, where defaults are
/// absent, so reporting them as null keeps a second `load` from recreating every job.
fn is_default_log(path: &str, job: &str, ext: &str, home: &str) -> bool {
    let file = format!("{job}.{ext}");
    path == file || path == format!("{}/{file}", home.trim_end_matches('/'))
}

/// Release 13/14 shape (key order as the original service). `home` is the tool's home.
pub fn legacy_job(v: &JobView, home: &str) -> legacy::Job {
    let shown = |p: &Option<String>, ext: &str, given: Option<bool>| -> Option<String> {
        match (p, given) {
            (Some(p), Some(true)) => Some(p.clone()),
            (Some(p), None) if !is_default_log(p, &v.name, ext, home) => Some(p.clone()),
            _ => None,
        }
    };
    let given = v.log_paths_set;
    legacy::Job {
        name: v.name.clone(),
        cmd: v.cmd.clone(),
        image: v.image.clone(),
        image_state: v.image_state.clone(),
        filelog: if v.filelog { "True" } else { "False" }.to_string(),
        filelog_stdout: shown(&v.filelog_stdout, "out", given.map(|g| g.0)),
        filelog_stderr: shown(&v.filelog_stderr, "err", given.map(|g| g.1)),
        status_short: status::legacy_status_short(&v.status_short).to_string(),
        status_long: v.status_long.clone(),
        emails: v.emails.clone(),
        retry: v.retry,
        schedule: v.schedule.clone(),
        schedule_actual: v.schedule.as_ref().map(|_| v.schedule_actual.clone()),
        continuous: (v.kind == JobKind::Continuous).then_some(true),
        memory: v.memory.clone().filter(|m| m != "512Mi"),
        cpu: v.cpu.clone().filter(|c| c != "500m"),
    }
}

/// 16.x shape with `include_unset` (list and show by default): every field.
pub fn v1_job(v: &JobView) -> v1::Job {
    let (mut retry, mut schedule, mut schedule_actual, mut timeout) = (None, None, None, None);
    let (mut continuous, mut replicas, mut port, mut port_protocol, mut health_check) =
        (None, None, None, None, None);
    match v.kind {
        JobKind::OneOff => retry = Some(v.retry),
        JobKind::Scheduled => {
            retry = Some(v.retry);
            schedule = Some(v.schedule.clone());
            schedule_actual = Some(v.schedule_actual.clone());
            timeout = Some(v.timeout);
        }
        JobKind::Continuous => {
            continuous = Some(true);
            replicas = Some(v.replicas.unwrap_or(1));
            port = Some(v.port.as_ref().map(|p| p.0));
            port_protocol = v.port.as_ref().map(|p| p.1.clone());
            health_check = Some(v.health_check.clone());
        }
    }
    v1::Job {
        name: v.name.clone(),
        cmd: v.cmd.clone(),
        imagename: v.image.clone(),
        image: v.image.clone(),
        job_type: v.kind.job_type().to_string(),
        image_state: v.image_state.clone(),
        filelog: v.filelog,
        filelog_stdout: v.filelog_stdout.clone(),
        filelog_stderr: v.filelog_stderr.clone(),
        emails: v.emails.clone(),
        mount: v.mount.clone(),
        memory: v
            .memory
            .as_deref()
            .map(format_memory)
            .unwrap_or_else(|| "0.5Gi".into()),
        cpu: v
            .cpu
            .as_deref()
            .map(format_cpu)
            .unwrap_or_else(|| "0.1".into()),
        status_short: v.status_short.clone(),
        status_long: v.status_long.clone(),
        status: v.status.clone(),
        retry,
        schedule,
        schedule_actual,
        timeout,
        continuous,
        replicas,
        port,
        port_protocol,
        health_check,
    }
}

/// 16.x shape with `include_unset=false` (for `dump`): only what the user set, plus the keys
/// the client requires.
pub fn v1_definition(v: &JobView) -> v1::JobDefinition {
    let default_out = format!("{}.out", v.name);
    let default_err = format!("{}.err", v.name);
    v1::JobDefinition {
        name: v.name.clone(),
        cmd: v.cmd.clone(),
        imagename: v.image.clone(),
        image: v.image.clone(),
        job_type: v.kind.job_type().to_string(),
        filelog: (!v.filelog).then_some(false),
        filelog_stdout: v
            .filelog_stdout
            .clone()
            .filter(|p| !p.ends_with(&default_out)),
        filelog_stderr: v
            .filelog_stderr
            .clone()
            .filter(|p| !p.ends_with(&default_err)),
        emails: Some(v.emails.clone()).filter(|e| e != "none"),
        mount: Some(v.mount.clone()).filter(|m| m != "all"),
        // as the user set them, so that loading a dump changes nothing
        memory: v.memory.clone(),
        cpu: v.cpu.clone(),
        port: v.port.as_ref().map(|p| p.0),
        port_protocol: v
            .port
            .as_ref()
            .map(|p| p.1.clone())
            .filter(|proto| proto != "tcp"),
        health_check: v.health_check.clone(),
        retry: (v.retry > 0).then_some(v.retry),
        schedule: v.schedule.clone(),
        timeout: v.timeout,
        replicas: v
            .replicas
            .filter(|r| v.kind == JobKind::Continuous && *r != 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn legacy_json(v: &JobView, home: &str) -> Value {
        serde_json::to_value(legacy_job(v, home)).unwrap_or_default()
    }

    fn v1_json(v: &JobView, include_unset: bool) -> Value {
        if include_unset {
            serde_json::to_value(v1_job(v)).unwrap_or_default()
        } else {
            serde_json::to_value(v1_definition(v)).unwrap_or_default()
        }
    }

    fn sample() -> JobView {
        JobView {
            name: "cj".into(),
            kind: JobKind::Scheduled,
            cmd: "date".into(),
            image: "php7.4".into(),
            image_state: "stable".into(),
            filelog: false,
            filelog_stdout: None,
            filelog_stderr: None,
            log_paths_set: None,
            emails: "none".into(),
            mount: "all".into(),
            retry: 0,
            schedule: Some("@daily".into()),
            schedule_actual: Some("21 6 * * *".into()),
            timeout: None,
            replicas: None,
            port: None,
            health_check: None,
            memory: None,
            cpu: None,
            status_short: "Waiting for scheduled time".into(),
            status_long: "No pods were created for this job.".into(),
            status: StatusV2 {
                short: "pending".into(),
                duration: None,
                up_to_date: true,
                messages: vec![],
                previous_schedule: None,
                next_schedule: None,
            },
        }
    }

    #[test]
    fn legacy_shape_matches_the_original_service() {
        let text =
            serde_json::to_string(&legacy_json(&sample(), "/data/project/t")).unwrap_or_default();
        assert_eq!(
            text,
            r#"{"name":"cj","cmd":"date","image":"php7.4","image_state":"stable","filelog":"False","filelog_stdout":null,"filelog_stderr":null,"status_short":"Waiting for scheduled time","status_long":"No pods were created for this job.","emails":"none","retry":0,"schedule":"@daily","schedule_actual":"21 6 * * *"}"#
        );
    }

    #[test]
    fn default_log_paths_read_back_as_null_for_old_clients() {
        let mut s = sample();
        s.filelog = true;
        s.filelog_stdout = Some("cj.out".into());
        s.filelog_stderr = Some("/data/project/t/cj.err".into());
        let v = legacy_json(&s, "/data/project/t");
        assert_eq!(
            (&v["filelog"], &v["filelog_stdout"], &v["filelog_stderr"]),
            (&json!("True"), &Value::Null, &Value::Null)
        );
        s.filelog_stdout = Some("/data/project/t/logs/cj.out".into());
        assert_eq!(
            legacy_json(&s, "/data/project/t")["filelog_stdout"],
            "/data/project/t/logs/cj.out"
        );
        // what the user gave is reported as given, even when it equals the default
        s.filelog_stdout = Some("/data/project/t/cj.out".into());
        s.log_paths_set = Some((true, false));
        let v = legacy_json(&s, "/data/project/t");
        assert_eq!(
            (&v["filelog_stdout"], &v["filelog_stderr"]),
            (&json!("/data/project/t/cj.out"), &Value::Null)
        );
    }

    #[test]
    fn a_crashing_continuous_job_in_each_generation_s_words() {
        let mut s = sample();
        s.status_short = status::FAILS_TO_RUN.into();
        assert_eq!(
            legacy_json(&s, "/data/project/t")["status_short"],
            "Fails to start"
        );
        assert_eq!(
            v1_json(&s, true)["status_short"],
            "Specified command fails to run"
        );
    }

    #[test]
    fn v1_shape_has_job_type_boolean_filelog_and_default_resources() {
        let v = v1_json(&sample(), true);
        assert_eq!(v["job_type"], "scheduled");
        assert_eq!(v["filelog"], false);
        assert_eq!(v["imagename"], "php7.4");
        assert_eq!(v["memory"], "0.5Gi");
        assert_eq!(v["cpu"], "0.1");
        assert_eq!(v["status"]["short"], "pending");
        let mut s = sample();
        s.memory = Some("1Gi".into());
        s.cpu = Some("500m".into());
        let v = v1_json(&s, true);
        assert_eq!(
            (v["memory"].as_str(), v["cpu"].as_str()),
            (Some("1.0Gi"), Some("0.5"))
        );
        let dump = v1_json(&s, false);
        assert_eq!(dump["memory"], "1Gi", "dumps keep the quantity as set");
        assert_eq!(dump["schedule"], "@daily");
        assert_eq!(dump["filelog"], false);
        assert!(dump.get("status").is_none());
        assert!(dump.get("emails").is_none());
    }
}
