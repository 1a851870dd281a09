//! The Kubernetes manifests in deploy/ and ingress/k8s/: kustomize renders them into what
//! the READMEs promise, and the genuine kube-apiserver accepts every object (server dry run).

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;
use serde_json::Value;

/// `kubectl kustomize DIR`, parsed into one JSON value per object.
fn kustomize(dir: &str) -> Vec<Value> {
    let yaml = run_ok(
        Command::new("kubectl")
            .arg("kustomize")
            .arg(repo().join(dir)),
    );
    serde_yaml::Deserializer::from_str(&yaml)
        .map(|doc| {
            serde_yaml::from_value::<Value>(
                serde::Deserialize::deserialize(doc)
                    .unwrap_or_else(|e: serde_yaml::Error| panic!("{dir}: bad YAML: {e}")),
            )
            .unwrap_or_else(|e| panic!("{dir}: {e}"))
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind}/{name} rendered"))
}

fn kubectl(cluster: &Cluster) -> Command {
    let mut cmd = Command::new("kubectl");
    cmd.env("KUBECONFIG", cluster.run_dir.join("admin.kubeconfig"));
    cmd
}

/// Creates (for real, idempotently) just the Namespace objects of the rendered directories,
/// which a server-side dry run of namespaced objects needs.
fn apply_namespaces(cluster: &Cluster, objects: &[Value]) {
    let list = serde_json::json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": objects.iter().filter(|o| o["kind"] == "Namespace").collect::<Vec<_>>(),
    });
    let mut child = kubectl(cluster)
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("kubectl: {e}"));
    child
        .stdin
        .take()
        .unwrap_or_else(|| panic!("kubectl stdin"))
        .write_all(list.to_string().as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("kubectl: {e}"));
    assert!(
        out.status.success(),
        "applying the namespaces: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn kustomize_renders_the_deployment_and_the_ingress_as_documented() {
    let deploy = kustomize("deploy");
    let ingress = kustomize("ingress/k8s");

    let d = find(&deploy, "Deployment", "jobs-gateway");
    assert_eq!(d["metadata"]["namespace"], "jobs-gateway");
    assert_eq!(d["spec"]["replicas"], 2);
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    // the gateway never calls the apiserver as itself: no token in the pod, no Role at all
    let sa = find(&deploy, "ServiceAccount", "jobs-gateway");
    assert_eq!(sa["automountServiceAccountToken"], false);
    assert!(
        !deploy
            .iter()
            .any(|o| o["kind"] == "Role" || o["kind"] == "RoleBinding"),
        "no RBAC for the gateway's own identity"
    );
    let containers = pod["containers"]
        .as_array()
        .unwrap_or_else(|| panic!("no containers: {pod}"));
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert_eq!(
        c["image"], "jobs-gateway:latest",
        "kustomize images: applied"
    );
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    let homes = c["volumeMounts"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["mountPath"] == "/data/project"))
        .unwrap_or_else(|| panic!("tool homes not mounted: {c}"));
    assert_eq!(homes["readOnly"], true);

    // the Service selects the Deployment's pods and exposes the port the Ingress uses
    let svc = find(&deploy, "Service", "jobs-gateway");
    let pod_labels = &d["spec"]["template"]["metadata"]["labels"];
    let selector = svc["spec"]["selector"]
        .as_object()
        .unwrap_or_else(|| panic!("Service without selector: {svc}"));
    for (k, v) in selector {
        assert_eq!(
            &pod_labels[k], v,
            "Service selector {k} does not match the pods"
        );
    }
    let ing = find(&ingress, "Ingress", "jobs-gateway");
    assert_eq!(ing["metadata"]["namespace"], "jobs-gateway");
    let backend = &ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"];
    assert_eq!(backend["name"], "jobs-gateway");
    let port_name = &backend["port"]["name"];
    assert!(
        svc["spec"]["ports"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| &p["name"] == port_name)),
        "Ingress backend port {port_name} is not a port of the Service: {svc}"
    );

    // users are verified by nginx (client certificate required, against the cluster CA)
    let a = &ing["metadata"]["annotations"];
    assert_eq!(
        a["nginx.ingress.kubernetes.io/auth-tls-verify-client"],
        "on"
    );
    assert_eq!(
        a["nginx.ingress.kubernetes.io/auth-tls-secret"],
        "jobs-gateway/cluster-ca"
    );
    assert_eq!(a["nginx.ingress.kubernetes.io/backend-protocol"], "HTTPS");
    assert_eq!(a["nginx.ingress.kubernetes.io/proxy-ssl-verify"], "on");
    // one tool, one replica: consistent hashing on the verified subject
    assert_eq!(
        a["nginx.ingress.kubernetes.io/upstream-hash-by"],
        "$ssl_client_s_dn"
    );
    assert!(
        a.get("nginx.ingress.kubernetes.io/configuration-snippet")
            .is_none(),
        "snippets duplicate the identity header (ingress/README.md)"
    );
    assert_eq!(ing["spec"]["ingressClassName"], "jobs");
    find(&ingress, "IngressClass", "jobs");
    let ctl = find(&ingress, "ConfigMap", "ingress-nginx-jobs-controller");
    assert_eq!(ctl["data"]["enable-underscores-in-headers"], "false");
    assert_eq!(ctl["data"]["allow-snippet-annotations"], "false");
}

#[test]
fn the_apiserver_accepts_every_manifest_in_a_server_dry_run() {
    let cluster = cluster();
    for dir in ["deploy", "ingress/k8s"] {
        let objects = kustomize(dir);
        assert!(!objects.is_empty(), "{dir} renders nothing");
        apply_namespaces(&cluster, &objects);
        let out = run_ok(
            kubectl(&cluster)
                .args(["apply", "--dry-run=server", "-k"])
                .arg(repo().join(dir)),
        );
        let lines: Vec<&str> = out.lines().collect();
        for o in &objects {
            let kind = o["kind"]
                .as_str()
                .unwrap_or_else(|| panic!("object without kind: {o}"))
                .to_lowercase();
            let name = o["metadata"]["name"]
                .as_str()
                .unwrap_or_else(|| panic!("object without name: {o}"));
            // e.g. "deployment.apps/jobs-gateway created (server dry run)"
            assert!(
                lines.iter().any(|l| {
                    let (resource, rest) = l.split_once('/').unwrap_or_default();
                    resource.split('.').next() == Some(kind.as_str())
                        && rest.starts_with(&format!("{name} "))
                        && l.ends_with("(server dry run)")
                }),
                "{dir}: {kind}/{name} not accepted by the apiserver:\n{out}"
            );
        }
    }
}

#[test]
fn the_tools_have_a_flow_schema_by_user_in_a_priority_level_of_their_own() {
    let deploy = kustomize("deploy");
    let fs = find(&deploy, "FlowSchema", "toolforge-tools");
    assert_eq!(fs["apiVersion"], "flowcontrol.apiserver.k8s.io/v1beta1");
    let spec = &fs["spec"];
    assert_eq!(
        spec["distinguisherMethod"]["type"], "ByUser",
        "each tool is its own flow"
    );
    let precedence = spec["matchingPrecedence"].as_i64().unwrap_or_default();
    assert!(
        precedence > 900 && precedence < 9000,
        "after the system schemas, before service-accounts/global-default: {precedence}"
    );
    let rule = &spec["rules"][0];
    assert_eq!(rule["subjects"][0]["kind"], "Group");
    assert_eq!(rule["subjects"][0]["group"]["name"], "toolforge");
    let level = spec["priorityLevelConfiguration"]["name"]
        .as_str()
        .unwrap_or_else(|| panic!("no priority level: {fs}"));
    let plc = find(&deploy, "PriorityLevelConfiguration", level);
    assert_eq!(plc["spec"]["type"], "Limited");
    assert_eq!(plc["spec"]["limited"]["limitResponse"]["type"], "Queue");
}

/// The FlowSchema applied for real: a request made with a tool's certificate (as the gateway
/// makes them) is classified into it, an admin's is not.
#[tokio::test]
async fn a_tools_apiserver_requests_are_classified_into_the_tools_flow_schema() {
    let cluster = cluster();
    let pki = Pki::new(&cluster);
    let tool = "flow-schema";
    provision(&pki, tool);
    let manifest = repo().join("deploy/flowcontrol.yaml");
    // applied for real and left in place: it only changes how tools' requests are queued, and
    // a second run finds it unchanged
    run_ok(kubectl(&cluster).arg("apply").arg("-f").arg(&manifest));
    let uid = run_ok(kubectl(&cluster).args([
        "get",
        "flowschema",
        "toolforge-tools",
        "-o",
        "jsonpath={.metadata.uid}",
    ]));
    let uid = uid.trim().to_string();
    assert!(!uid.is_empty());
    let (c, k) = pki.tool_cert(tool);
    let as_tool = https(&cluster.ca, Some((&c, &k)));
    let url = format!("{}/api/v1/namespaces/tool-{tool}/pods", cluster.url);
    let header = "x-kubernetes-pf-flowschema-uid";
    // the apiserver picks up a new FlowSchema within a few seconds
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let resp = as_tool
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(resp.status().as_u16(), 200);
        let got = resp
            .headers()
            .get(header)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        if got == uid {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the tool's request stayed in flow schema {got:?}, not toolforge-tools ({uid})"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    let as_admin = https(&cluster.ca, Some((&cluster.admin_cert, &cluster.admin_key)));
    let resp = as_admin
        .get(&url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 200);
    assert_ne!(
        resp.headers().get(header).and_then(|v| v.to_str().ok()),
        Some(uid.as_str()),
        "only tools are in the tools' flow schema"
    );
}
