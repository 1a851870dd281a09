//! The Kubernetes objects a run request becomes.
//!
//! One-off → batch/v1 Job, scheduled → batch/v1 CronJob, continuous → v1 ReplicationController
//! (or apps/v1 Deployment when configured). Every object and its pods carry the Toolforge labels,
//! so list, show, delete and flush select exactly one tool's jobs.

use serde_json::{json, Value};

use super::command::wrap_command;
use super::images::Image;
use super::labels::{self, Component, ContinuousComponent};
use super::quantity::{plain_number, Quantity};
use super::request::{HealthCheck, RunRequest};

/// Seconds a finished one-off Job is kept before Kubernetes removes it.
pub const JOB_TTL_AFTER_FINISHED: i64 = 30;
const DEFAULT_MEMORY: f64 = 512.0 * 1024.0 * 1024.0;
const DEFAULT_CPU: f64 = 0.5;

/// Everything needed to build a job's object.
pub struct BuildContext<'a> {
    pub tool: &'a str,
    pub home: &'a str,
    pub image: &'a Image,
    pub continuous_kind: ContinuousComponent,
    /// The 5-field schedule actually sent to Kubernetes (scheduled jobs only).
    pub schedule_actual: Option<&'a str>,
    /// The home root to mount into the pod as a hostPath volume (at the same path), when the
    /// pod template mounts the storage itself (`JOBS_GATEWAY_HOME_MOUNT=hostpath`).
    pub home_root_mount: Option<&'a str>,
}

/// Which object a request makes.
pub fn component_of(req: &RunRequest, kind: ContinuousComponent) -> Component {
    if req.schedule.is_some() {
        Component::CronJobs
    } else if req.continuous {
        Component::Continuous(kind)
    } else {
        Component::Jobs
    }
}

fn one_resource(q: &Quantity, default: f64) -> (String, String) {
    let request = if q.value < default {
        q.text.clone()
    } else {
        plain_number(q.value / 2.0)
    };
    (q.text.clone(), request)
}

/// Limits as given; requests equal below the platform default, half of it above.
pub fn resources(memory: Option<&Quantity>, cpu: Option<&Quantity>) -> Value {
    let mut limits = serde_json::Map::new();
    let mut requests = serde_json::Map::new();
    if let Some(m) = memory {
        let (l, r) = one_resource(m, DEFAULT_MEMORY);
        limits.insert("memory".into(), l.into());
        requests.insert("memory".into(), r.into());
    }
    if let Some(c) = cpu {
        let (l, r) = one_resource(c, DEFAULT_CPU);
        limits.insert("cpu".into(), l.into());
        requests.insert("cpu".into(), r.into());
    }
    if limits.is_empty() {
        return json!({});
    }
    json!({"limits": limits, "requests": requests})
}

fn job_template_spec(template: Value, req: &RunRequest) -> Value {
    let mut spec = json!({
        "template": template,
        "ttlSecondsAfterFinished": JOB_TTL_AFTER_FINISHED,
        "backoffLimit": req.retry,
    });
    if let Some(t) = req.timeout {
        spec["activeDeadlineSeconds"] = json!(t);
    }
    spec
}

fn pod_template(
    req: &RunRequest,
    ctx: &BuildContext<'_>,
    component: Component,
    labels: &std::collections::BTreeMap<String, String>,
) -> Value {
    let restart = match component {
        Component::Continuous(_) => "Always",
        _ => "Never",
    };
    let command = wrap_command(
        &req.cmd,
        &req.name,
        req.filelog,
        req.filelog_stdout.as_deref(),
        req.filelog_stderr.as_deref(),
    );
    let mut container = json!({
        "name": "job",
        "image": ctx.image.container,
        "workingDir": ctx.home,
        "env": [],
        "command": command,
        "resources": resources(req.memory.as_ref(), req.cpu.as_ref()),
    });
    if let Some((port, proto)) = &req.port {
        container["ports"] = json!([{"containerPort": port, "protocol": proto.to_uppercase()}]);
        container["env"] = json!([{"name": "PORT", "value": port.to_string()}]);
    }
    let probe = match (&req.health_check, &req.port) {
        (Some(HealthCheck::Script(script)), _) => {
            Some(json!({"exec": {"command": ["/bin/sh", "-c", script]}}))
        }
        (Some(HealthCheck::Http(path)), Some((port, _))) => {
            Some(json!({"httpGet": {"path": path, "port": port}}))
        }
        (None, Some((port, proto))) if proto == "tcp" => Some(json!({"tcpSocket": {"port": port}})),
        _ => None,
    };
    if let Some(mut p) = probe {
        p["periodSeconds"] = json!(10);
        p["failureThreshold"] = json!(3);
        p["timeoutSeconds"] = json!(5);
        container["livenessProbe"] = p;
    }
    let mut spec = json!({
        "restartPolicy": restart,
        "containers": [container],
    });
    if let (Some(root), "all") = (ctx.home_root_mount, req.mount.as_str()) {
        spec["volumes"] =
            json!([{"name": "home", "hostPath": {"path": root, "type": "Directory"}}]);
        let c = &mut spec["containers"][0];
        c["volumeMounts"] = json!([{"name": "home", "mountPath": root}]);
        if let Some(env) = c["env"].as_array_mut() {
            env.push(json!({"name": "HOME", "value": ctx.home}));
        }
    }
    json!({
        "metadata": {"labels": labels},
        "spec": spec,
    })
}

/// Quantities in `resources` as plain numbers, so `0.5` and `500m` hash alike (the apiserver
/// stores its canonical form, which a dump then reports).
fn canonical_quantities(v: &mut Value, in_resources: bool) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                canonical_quantities(child, in_resources || k == "resources");
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|i| canonical_quantities(i, in_resources)),
        Value::String(text) if in_resources => {
            if let Some(q) = Quantity::parse(text) {
                *text = plain_number(q.value);
            }
        }
        _ => {}
    }
}

/// A short hash of a manifest, stored as an annotation to tell whether an update changes it.
pub fn spec_hash(manifest: &Value) -> String {
    use sha2::{Digest, Sha256};
    let mut canonical = manifest.clone();
    canonical_quantities(&mut canonical, false);
    let digest = Sha256::digest(canonical.to_string().as_bytes());
    digest.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// Builds the manifest and stamps it with its hash.
pub fn build(req: &RunRequest, ctx: &BuildContext<'_>) -> Value {
    let mut manifest = build_plain(req, ctx);
    let hash = spec_hash(&manifest);
    if !manifest["metadata"]["annotations"].is_object() {
        manifest["metadata"]["annotations"] = json!({});
    }
    manifest["metadata"]["annotations"][labels::SPEC_HASH] = json!(hash);
    if req.filelog {
        let given: Vec<&str> = [
            (req.log_paths_given.0, "stdout"),
            (req.log_paths_given.1, "stderr"),
        ]
        .into_iter()
        .filter_map(|(set, n)| set.then_some(n))
        .collect();
        manifest["metadata"]["annotations"][labels::LOG_PATHS_SET] = json!(given.join(","));
    }
    manifest
}

/// The manifest as first created: a Job with parallelism 0, a ReplicationController or
/// Deployment with 0 replicas, marked [`labels::HELD`], so that no controller starts a pod of
/// it before the gateway has arbitrated the create (quota and name, against every parallel
/// create on any replica) and released it with [`release_patch`]. A create that loses the
/// arbitration is deleted without a pod ever having run. `None` for a CronJob: it starts
/// nothing before its next scheduled time, long after the arbitration.
pub fn held(manifest: &Value) -> Option<Value> {
    let mut held = manifest.clone();
    match manifest["kind"].as_str()? {
        "Job" => held["spec"]["parallelism"] = json!(0),
        "ReplicationController" | "Deployment" => held["spec"]["replicas"] = json!(0),
        _ => return None,
    }
    if !held["metadata"]["annotations"].is_object() {
        held["metadata"]["annotations"] = json!({});
    }
    held["metadata"]["annotations"][labels::HELD] = json!("until the quota check");
    Some(held)
}

/// The JSON patch (RFC 6902) that releases the held object of uid `uid` created from
/// `manifest`: it applies only to that very object (a `test` of the uid), gives back the
/// manifest's parallelism or replicas, and drops the mark.
pub fn release_patch(manifest: &Value, uid: &str) -> Option<Value> {
    let (path, value) = match manifest["kind"].as_str()? {
        // the Job's default parallelism
        "Job" => (
            "/spec/parallelism",
            manifest["spec"]["parallelism"].as_i64().unwrap_or(1),
        ),
        "ReplicationController" | "Deployment" => (
            "/spec/replicas",
            manifest["spec"]["replicas"].as_i64().unwrap_or(1),
        ),
        _ => return None,
    };
    // RFC 6901: "/" in a key is written "~1"
    let mark = format!("/metadata/annotations/{}", labels::HELD.replace('/', "~1"));
    Some(json!([
        {"op": "test", "path": "/metadata/uid", "value": uid},
        {"op": "replace", "path": path, "value": value},
        {"op": "remove", "path": mark},
    ]))
}

/// The manifest for a run request, as JSON ready to POST (without the hash annotation).
fn build_plain(req: &RunRequest, ctx: &BuildContext<'_>) -> Value {
    let component = component_of(req, ctx.continuous_kind);
    let ns = format!("tool-{}", ctx.tool);
    let labels = labels::object_labels(
        ctx.tool,
        &req.name,
        component,
        req.filelog,
        &req.emails,
        &req.mount,
    );
    let template = pod_template(req, ctx, component, &labels);
    match component {
        Component::Jobs => json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": req.name, "namespace": ns, "labels": labels},
            "spec": {
                "template": template,
                "ttlSecondsAfterFinished": JOB_TTL_AFTER_FINISHED,
                "backoffLimit": req.retry,
            },
        }),
        Component::CronJobs => json!({
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {
                "name": req.name,
                "namespace": ns,
                "labels": labels,
                "annotations": {
                    labels::CRON_EXPRESSION: req.schedule.clone().unwrap_or_default(),
                },
            },
            "spec": {
                "schedule": ctx.schedule_actual.unwrap_or_default(),
                "successfulJobsHistoryLimit": 1,
                "failedJobsHistoryLimit": 1,
                "concurrencyPolicy": "Forbid",
                "startingDeadlineSeconds": 30,
                "jobTemplate": {"spec": job_template_spec(template, req)},
            },
        }),
        Component::Continuous(kind) => {
            let selector = labels::selector_labels(ctx.tool, None, Some(&req.name));
            match kind {
                ContinuousComponent::ReplicationControllers => json!({
                    "apiVersion": "v1",
                    "kind": "ReplicationController",
                    "metadata": {"name": req.name, "namespace": ns, "labels": labels},
                    "spec": {"replicas": req.replicas, "selector": selector, "template": template},
                }),
                ContinuousComponent::Deployments => json!({
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": {"name": req.name, "namespace": ns, "labels": labels},
                    "spec": {
                        "replicas": req.replicas,
                        "selector": {"matchLabels": selector},
                        "strategy": {"type": "Recreate"},
                        "template": template,
                    },
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{fields_from_body, RunRequest};

    fn request(body: &str) -> RunRequest {
        let f = fields_from_body(Some("application/json"), body.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        RunRequest::from_fields(&f).unwrap_or_else(|e| panic!("{e}"))
    }

    fn image() -> Image {
        Image {
            canonical_name: "bookworm".into(),
            aliases: vec![],
            container: "registry/bookworm:latest".into(),
            state: "stable".into(),
        }
    }

    /// Tool alice's context: continuous jobs as ReplicationControllers, no schedule, no home
    /// mount.
    fn alice(img: &Image) -> BuildContext<'_> {
        BuildContext {
            tool: "alice",
            home: "/data/project/alice",
            image: img,
            continuous_kind: ContinuousComponent::ReplicationControllers,
            schedule_actual: None,
            home_root_mount: None,
        }
    }

    #[test]
    fn one_off_job_manifest() {
        let img = image();
        let req = request(r#"{"name":"myjob","imagename":"bookworm","cmd":"./run.sh","retry":2}"#);
        let ctx = alice(&img);
        let labels = json!({
            "toolforge": "tool",
            "app.kubernetes.io/managed-by": "toolforge-jobs-framework",
            "app.kubernetes.io/created-by": "alice",
            "app.kubernetes.io/version": "2",
            "app.kubernetes.io/component": "jobs",
            "app.kubernetes.io/name": "myjob",
            "jobs.toolforge.org/emails": "none",
            "toolforge.org/mount-storage": "all",
        });
        let built = build(&req, &ctx);
        let hash = built["metadata"]["annotations"]["jobs.toolforge.org/spec-hash"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_default();
        assert_eq!(hash.len(), 24);
        assert_eq!(
            built,
            json!({
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {
                    "name": "myjob",
                    "namespace": "tool-alice",
                    "labels": labels,
                    "annotations": {"jobs.toolforge.org/spec-hash": hash},
                },
                "spec": {
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [{
                                "name": "job",
                                "image": "registry/bookworm:latest",
                                "workingDir": "/data/project/alice",
                                "env": [],
                                "command": ["/bin/sh", "-c", "--", "./run.sh"],
                                "resources": {},
                            }],
                        },
                    },
                    "ttlSecondsAfterFinished": 30,
                    "backoffLimit": 2,
                },
            })
        );
    }

    #[test]
    fn held_objects_start_no_pod_and_their_release_restores_the_manifest() {
        let img = image();
        let mut ctx = alice(&img);
        let mark = "/metadata/annotations/jobs.toolforge.org~1held";
        let job = build(
            &request(r#"{"name":"a","imagename":"bookworm","cmd":"x"}"#),
            &ctx,
        );
        let held_job = held(&job).unwrap_or_else(|| panic!("a Job is held"));
        assert_eq!(held_job["spec"]["parallelism"], 0);
        assert!(held_job["metadata"]["annotations"][labels::HELD].is_string());
        // nothing else differs: the spec hash (of the unheld manifest) stays valid
        let mut back = held_job.clone();
        back["spec"]
            .as_object_mut()
            .map(|s| s.remove("parallelism"));
        back["metadata"]["annotations"]
            .as_object_mut()
            .map(|a| a.remove(labels::HELD));
        assert_eq!(back, job);
        assert_eq!(
            release_patch(&job, "u-1"),
            Some(json!([
                {"op": "test", "path": "/metadata/uid", "value": "u-1"},
                {"op": "replace", "path": "/spec/parallelism", "value": 1},
                {"op": "remove", "path": mark},
            ]))
        );

        let three = request(
            r#"{"name":"c","imagename":"bookworm","cmd":"x","continuous":true,"replicas":3}"#,
        );
        for kind in [
            ContinuousComponent::ReplicationControllers,
            ContinuousComponent::Deployments,
        ] {
            ctx.continuous_kind = kind;
            let cont = build(&three, &ctx);
            let held_cont = held(&cont).unwrap_or_else(|| panic!("{kind:?} is held"));
            assert_eq!(held_cont["spec"]["replicas"], 0);
            let patch = release_patch(&cont, "u-2").unwrap_or_default();
            assert_eq!(
                patch[1],
                json!({"op": "replace", "path": "/spec/replicas", "value": 3})
            );
            assert_eq!(patch[2]["path"], mark);
        }

        ctx.schedule_actual = Some("5 * * * *");
        let cron = build(
            &request(r#"{"name":"s","imagename":"bookworm","cmd":"x","schedule":"5 * * * *"}"#),
            &ctx,
        );
        assert_eq!(cron["kind"], "CronJob");
        assert_eq!(held(&cron), None);
        assert_eq!(release_patch(&cron, "u-3"), None);
    }

    #[test]
    fn continuous_and_scheduled_manifests() {
        let img = image();
        let mut ctx = alice(&img);
        let rc = build(
            &request(r#"{"name":"svc","imagename":"bookworm","cmd":"serve","continuous":true}"#),
            &ctx,
        );
        assert_eq!(rc["kind"], "ReplicationController");
        assert_eq!(rc["spec"]["replicas"], 1);
        assert_eq!(rc["spec"]["template"]["spec"]["restartPolicy"], "Always");
        assert_eq!(
            rc["spec"]["selector"],
            json!({
                "toolforge": "tool",
                "app.kubernetes.io/managed-by": "toolforge-jobs-framework",
                "app.kubernetes.io/created-by": "alice",
                "app.kubernetes.io/name": "svc",
            })
        );
        assert_eq!(
            rc["metadata"]["labels"]["app.kubernetes.io/component"],
            "replicationcontrollers"
        );
        ctx.continuous_kind = ContinuousComponent::Deployments;
        let d = build(
            &request(r#"{"name":"svc","imagename":"bookworm","cmd":"serve","continuous":true}"#),
            &ctx,
        );
        assert_eq!(d["kind"], "Deployment");
        assert_eq!(d["spec"]["selector"]["matchLabels"], rc["spec"]["selector"]);
        ctx.schedule_actual = Some("52 16 * * *");
        let cj = build(
            &request(
                r#"{"name":"cj","imagename":"bookworm","cmd":"date","schedule":"@daily","filelog":true}"#,
            ),
            &ctx,
        );
        assert_eq!(cj["kind"], "CronJob");
        assert_eq!(cj["spec"]["schedule"], "52 16 * * *");
        assert_eq!(
            cj["metadata"]["annotations"]["jobs.toolforge.org/cron-expression"],
            "@daily"
        );
        assert_eq!(cj["spec"]["concurrencyPolicy"], "Forbid");
        assert_eq!(
            cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"][3],
            "exec 1>>cj.out;exec 2>>cj.err;date"
        );
    }

    #[test]
    fn equal_quantities_hash_alike() {
        let a = json!({"spec": {"resources": {"limits": {"cpu": "0.5", "memory": "1Gi"}}}});
        let b = json!({"spec": {"resources": {"limits": {"cpu": "500m", "memory": "1024Mi"}}}});
        let c = json!({"spec": {"resources": {"limits": {"cpu": "600m", "memory": "1Gi"}}}});
        assert_eq!(spec_hash(&a), spec_hash(&b));
        assert_ne!(spec_hash(&a), spec_hash(&c));
    }

    #[test]
    fn resources_follow_the_platform_rules() {
        let q = |s: &str| Quantity::parse(s).unwrap_or_else(|| panic!("{s}"));
        assert_eq!(resources(None, None), json!({}));
        assert_eq!(
            resources(Some(&q("1Gi")), Some(&q("750m"))),
            json!({"limits": {"memory": "1Gi", "cpu": "750m"}, "requests": {"memory": "536870912", "cpu": "0.375"}})
        );
        assert_eq!(
            resources(Some(&q("256Mi")), Some(&q("100m"))),
            json!({"limits": {"memory": "256Mi", "cpu": "100m"}, "requests": {"memory": "256Mi", "cpu": "100m"}})
        );
        assert_eq!(
            resources(None, Some(&q("1"))),
            json!({"limits": {"cpu": "1"}, "requests": {"cpu": "0.5"}})
        );
    }
}
