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
use serde_json::{json, Map, Value};

use super::command::parse_command;
use super::images::ImageCatalog;
use super::labels;
use super::quota::{format_cpu, format_memory};
use super::status::{self, StatusV2};

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
    pub health_check: Option<Value>,
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
    health_check: Option<Value>,
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
                    Some(json!({"type": "script", "script": script}))
                }
                _ => None,
            };
        }
        p.http_get
            .as_ref()
            .and_then(|h| h.path.clone())
            .map(|path| json!({"type": "http", "path": path}))
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
pub fn legacy_json(v: &JobView, home: &str) -> Value {
    let shown = |p: &Option<String>, ext: &str, given: Option<bool>| -> Value {
        match (p, given) {
            (Some(p), Some(true)) => json!(p),
            (Some(p), None) if !is_default_log(p, &v.name, ext, home) => json!(p),
            _ => Value::Null,
        }
    };
    let given = v.log_paths_set;
    let mut m = Map::new();
    m.insert("name".into(), json!(v.name));
    m.insert("cmd".into(), json!(v.cmd));
    m.insert("image".into(), json!(v.image));
    m.insert("image_state".into(), json!(v.image_state));
    m.insert(
        "filelog".into(),
        json!(if v.filelog { "True" } else { "False" }),
    );
    m.insert(
        "filelog_stdout".into(),
        shown(&v.filelog_stdout, "out", given.map(|g| g.0)),
    );
    m.insert(
        "filelog_stderr".into(),
        shown(&v.filelog_stderr, "err", given.map(|g| g.1)),
    );
    m.insert(
        "status_short".into(),
        json!(status::legacy_status_short(&v.status_short)),
    );
    m.insert("status_long".into(), json!(v.status_long));
    m.insert("emails".into(), json!(v.emails));
    m.insert("retry".into(), json!(v.retry));
    if let Some(s) = &v.schedule {
        m.insert("schedule".into(), json!(s));
        m.insert("schedule_actual".into(), json!(v.schedule_actual));
    }
    if v.kind == JobKind::Continuous {
        m.insert("continuous".into(), json!(true));
    }
    if let Some(mem) = v.memory.as_ref().filter(|m| *m != "512Mi") {
        m.insert("memory".into(), json!(mem));
    }
    if let Some(cpu) = v.cpu.as_ref().filter(|c| *c != "500m") {
        m.insert("cpu".into(), json!(cpu));
    }
    Value::Object(m)
}

/// 16.x shape. With `include_unset == false` (for `dump`) only what the user set, plus the
/// keys the client requires.
pub fn v1_json(v: &JobView, include_unset: bool) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(v.name));
    m.insert("cmd".into(), json!(v.cmd));
    m.insert("imagename".into(), json!(v.image));
    m.insert("image".into(), json!(v.image));
    m.insert("job_type".into(), json!(v.kind.job_type()));
    let memory = v.memory.as_deref().map(format_memory);
    let cpu = v.cpu.as_deref().map(format_cpu);
    if include_unset {
        m.insert("image_state".into(), json!(v.image_state));
        m.insert("filelog".into(), json!(v.filelog));
        m.insert("filelog_stdout".into(), json!(v.filelog_stdout));
        m.insert("filelog_stderr".into(), json!(v.filelog_stderr));
        m.insert("emails".into(), json!(v.emails));
        m.insert("mount".into(), json!(v.mount));
        m.insert(
            "memory".into(),
            json!(memory.unwrap_or_else(|| "0.5Gi".into())),
        );
        m.insert("cpu".into(), json!(cpu.unwrap_or_else(|| "0.1".into())));
        m.insert("status_short".into(), json!(v.status_short));
        m.insert("status_long".into(), json!(v.status_long));
        m.insert(
            "status".into(),
            serde_json::to_value(&v.status).unwrap_or(Value::Null),
        );
        match v.kind {
            JobKind::OneOff => {
                m.insert("retry".into(), json!(v.retry));
            }
            JobKind::Scheduled => {
                m.insert("retry".into(), json!(v.retry));
                m.insert("schedule".into(), json!(v.schedule));
                m.insert("schedule_actual".into(), json!(v.schedule_actual));
                m.insert("timeout".into(), json!(v.timeout));
            }
            JobKind::Continuous => {
                m.insert("continuous".into(), json!(true));
                m.insert("replicas".into(), json!(v.replicas.unwrap_or(1)));
                match &v.port {
                    Some((port, proto)) => {
                        m.insert("port".into(), json!(port));
                        m.insert("port_protocol".into(), json!(proto));
                    }
                    None => {
                        m.insert("port".into(), Value::Null);
                    }
                }
                m.insert(
                    "health_check".into(),
                    v.health_check.clone().unwrap_or(Value::Null),
                );
            }
        }
    } else {
        if !v.filelog {
            m.insert("filelog".into(), json!(false));
        }
        let default_out = format!("{}.out", v.name);
        let default_err = format!("{}.err", v.name);
        if let Some(p) = v
            .filelog_stdout
            .as_ref()
            .filter(|p| !p.ends_with(&default_out))
        {
            m.insert("filelog_stdout".into(), json!(p));
        }
        if let Some(p) = v
            .filelog_stderr
            .as_ref()
            .filter(|p| !p.ends_with(&default_err))
        {
            m.insert("filelog_stderr".into(), json!(p));
        }
        if v.emails != "none" {
            m.insert("emails".into(), json!(v.emails));
        }
        if v.mount != "all" {
            m.insert("mount".into(), json!(v.mount));
        }
        // as the user set them, so that loading a dump changes nothing
        if let Some(mem) = &v.memory {
            m.insert("memory".into(), json!(mem));
        }
        if let Some(cpu) = &v.cpu {
            m.insert("cpu".into(), json!(cpu));
        }
        if let Some((port, proto)) = &v.port {
            m.insert("port".into(), json!(port));
            if proto != "tcp" {
                m.insert("port_protocol".into(), json!(proto));
            }
        }
        if let Some(h) = &v.health_check {
            m.insert("health_check".into(), h.clone());
        }
        if v.retry > 0 {
            m.insert("retry".into(), json!(v.retry));
        }
        if let Some(s) = &v.schedule {
            m.insert("schedule".into(), json!(s));
        }
        if let Some(t) = v.timeout {
            m.insert("timeout".into(), json!(t));
        }
        if v.kind == JobKind::Continuous && v.replicas.unwrap_or(1) != 1 {
            m.insert("replicas".into(), json!(v.replicas));
        }
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

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
