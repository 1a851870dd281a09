//! Criterion micro-benchmarks of the gateway's per-request CPU work that needs no cluster:
//! the RFC 4514 DN parser and identity rules (ingress listener, every request), and the run
//! request → Kubernetes object path (every create).
//!
//!   cargo bench --bench micro            # all
//!   cargo bench --bench micro -- dn      # only the DN benchmarks
//!
//! `cargo test --all-targets` runs each benchmark once as a smoke test.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};

use jobs_core::identity::dn::DistinguishedName;
use jobs_core::identity::identity_from_dn;
use jobs_core::images::ImageCatalog;
use jobs_core::labels::ContinuousComponent;
use jobs_core::objects::{self, BuildContext};
use jobs_core::request::{fields_from_body, RunRequest};
use jobs_core::schedule::parse_schedule;

/// What nginx sends for a tool certificate.
const DN_TOOL: &str = "CN=mytool,O=toolforge";
/// A longer subject with escapes and a multi-valued RDN (not a tool identity).
const DN_LONG: &str =
    r"CN=Smith\, John \2B co,OU=Sales+OU=Support,O=Example\, Inc.,L=M\C3\BCnchen,C=DE";

fn dn(c: &mut Criterion) {
    let mut g = c.benchmark_group("dn");
    g.bench_function("parse/tool", |b| {
        b.iter(|| DistinguishedName::parse(black_box(DN_TOOL)))
    });
    g.bench_function("parse/long_escaped", |b| {
        b.iter(|| DistinguishedName::parse(black_box(DN_LONG)))
    });
    g.bench_function("identity_from_dn/tool", |b| {
        b.iter(|| identity_from_dn(black_box(DN_TOOL), black_box("toolforge")))
    });
    g.bench_function("identity_from_dn/refused", |b| {
        b.iter(|| identity_from_dn(black_box(DN_LONG), black_box("toolforge")))
    });
    g.finish();
}

const ONE_OFF: &str =
    r#"{"name":"myjob","imagename":"bookworm","cmd":"./run.sh --flag value","retry":2}"#;
const SCHEDULED: &str = r#"{"name":"nightly","imagename":"python3.11","cmd":"python3 cron.py","schedule":"@daily","filelog":"true","memory":"1Gi","cpu":"500m","emails":"onfailure"}"#;
const CONTINUOUS: &str = r#"{"name":"web","imagename":"node18","cmd":"node server.js","continuous":true,"port":8000,"health_check":{"type":"http","path":"/healthz"},"replicas":2}"#;

fn request(body: &str) -> RunRequest {
    let fields = fields_from_body(Some("application/json"), body.as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    RunRequest::from_fields(&fields).unwrap_or_else(|e| panic!("{e}"))
}

fn objects_bench(c: &mut Criterion) {
    let catalog = ImageCatalog::builtin();
    let mut g = c.benchmark_group("objects");
    g.bench_function("request/parse_one_off", |b| {
        b.iter(|| {
            let fields = fields_from_body(Some("application/json"), black_box(ONE_OFF.as_bytes()))?;
            RunRequest::from_fields(&fields)
        })
    });
    g.bench_function("request/parse_continuous", |b| {
        b.iter(|| {
            let fields =
                fields_from_body(Some("application/json"), black_box(CONTINUOUS.as_bytes()))?;
            RunRequest::from_fields(&fields)
        })
    });
    for (label, body) in [
        ("one_off", ONE_OFF),
        ("scheduled", SCHEDULED),
        ("continuous", CONTINUOUS),
    ] {
        let req = request(body);
        let image = catalog
            .resolve(&req.image)
            .unwrap_or_else(|| panic!("image {}", req.image));
        let schedule = req
            .schedule
            .as_ref()
            .map(|s| parse_schedule(s, "tool-mytool nightly").unwrap_or_else(|e| panic!("{e}")));
        let ctx = BuildContext {
            tool: "mytool",
            home: "/data/project/mytool",
            image,
            continuous_kind: ContinuousComponent::ReplicationControllers,
            schedule_actual: schedule.as_ref().map(|s| s.actual.as_str()),
            home_root_mount: None,
        };
        g.bench_function(format!("build/{label}"), |b| {
            b.iter(|| objects::build(black_box(&req), black_box(&ctx)))
        });
    }
    // The whole CPU path of a create: body → fields → request → image → manifest.
    g.bench_function("body_to_manifest/one_off", |b| {
        b.iter(|| {
            let fields = fields_from_body(Some("application/json"), black_box(ONE_OFF.as_bytes()))
                .unwrap_or_else(|e| panic!("{e}"));
            let req = RunRequest::from_fields(&fields).unwrap_or_else(|e| panic!("{e}"));
            let image = catalog
                .resolve(&req.image)
                .unwrap_or_else(|| panic!("image"));
            objects::build(
                &req,
                &BuildContext {
                    tool: "mytool",
                    home: "/data/project/mytool",
                    image,
                    continuous_kind: ContinuousComponent::ReplicationControllers,
                    schedule_actual: None,
                    home_root_mount: None,
                },
            )
        })
    });
    g.bench_function("images/builtin_catalog", |b| b.iter(ImageCatalog::builtin));
    g.finish();
}

criterion_group!(benches, dn, objects_bench);
criterion_main!(benches);
