//! The OpenAPI 3.1 document, generated from the routes the router really registers, and a
//! Swagger UI whose assets the gateway serves itself (no CDN).

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde_json::{json, Map, Value};

/// What one operation takes and gives.
struct Op {
    summary: &'static str,
    tag: &'static str,
    request: Option<&'static str>,
    ok: (u16, &'static str, Value),
    query: &'static [(&'static str, &'static str)],
}

/// Release 13/14 routes live under `…/api/v1/`; 16.x ones under `…/v1/`.
fn is_legacy(path: &str) -> bool {
    path.contains("/api/v1/")
}

fn schema(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn array_of(name: &str) -> Value {
    json!({"type": "array", "items": schema(name)})
}

fn wrapped(key: &str, inner: Value) -> Value {
    json!({"type": "object", "properties": {key: inner, "messages": schema("Messages")}, "required": [key]})
}

fn messages_only() -> Value {
    json!({"type": "object", "properties": {"messages": schema("Messages")}})
}

/// The logs service's time window: container logs have the kubelet's time on every line;
/// file logs have none.
const SINCE: &str = "lines from this time on: ISO 8601, or a duration before now such as 1h30m (default 1h); a job with file logging answers 400 (file lines carry no time)";
const UNTIL: &str = "lines up to this time: ISO 8601, or a duration before now; a job with file logging answers 400";

/// Describes a served (method, path); `None` means the route is undocumented (a test fails).
fn describe(method: &str, path: &str) -> Option<Op> {
    let legacy = is_legacy(path);
    // the part after the generation's prefix (whatever the configured route prefix is)
    let marker = if legacy { "/api/v1" } else { "/v1" };
    let tail = path.find(marker).map(|i| &path[i + marker.len()..])?;
    let logs_q: &[(&str, &str)] = &[
        (
            "follow",
            "\"true\" keeps the stream open and sends new lines as they are written",
        ),
        (
            "lines",
            "how many of the last lines to send (default 500, at most 5000)",
        ),
    ];
    let op = |summary, tag, request, ok| Op {
        summary,
        tag,
        request,
        ok,
        query: &[],
    };
    let empty_string = json!({"type": "string", "const": ""});
    let empty_obj = json!({"type": "object"});
    let ndjson = json!({"description": "NDJSON: one LogEntry per line"});
    Some(match (legacy, method, tail) {
        (true, "post", "/run/") => op(
            "Run a job (release 13); replies with the Kubernetes object created",
            "release 13",
            Some("RunRequest"),
            (
                200,
                "the created Job, CronJob or ReplicationController",
                empty_obj,
            ),
        ),
        (true, "get", "/show/{name}") | (true, "get", "/jobs/{name}") => op(
            "Show one job",
            "release 13/14",
            None,
            (200, "the job", schema("LegacyJob")),
        ),
        (true, "get", "/list/") | (true, "get", "/jobs/") => op(
            "List the caller's jobs",
            "release 13/14",
            None,
            (200, "all jobs", array_of("LegacyJob")),
        ),
        (true, "delete", "/delete/{name}") => op(
            "Delete one job and its pods",
            "release 13",
            None,
            (200, "deleted", empty_string),
        ),
        (true, "delete", "/flush/") => op(
            "Delete all the caller's jobs",
            "release 13",
            None,
            (200, "deleted", empty_string),
        ),
        (true, "post", "/restart/{name}") => op(
            "Restart a scheduled (run now) or continuous (new pods) job",
            "release 13",
            None,
            (200, "restarted", empty_string),
        ),
        (true, "get", "/logs/{name}") | (true, "get", "/jobs/{name}/logs") => Op {
            query: logs_q,
            ..op(
                "The job's logs: its containers' output from every pod, or its log files when it has file logging",
                "release 13/14",
                None,
                (200, "log lines", ndjson),
            )
        },
        (true, "get", "/images/") | (true, "get", "/containers/") => op(
            "Images jobs can use",
            "release 13/14",
            None,
            (200, "images", array_of("Image")),
        ),
        (true, "get", "/quota/") => op(
            "Kubernetes quotas and the gateway's job limits",
            "release 13/14",
            None,
            (200, "quota", schema("Quota")),
        ),
        (true, "post", "/jobs/") => op(
            "Run a job (release 14)",
            "release 14",
            Some("RunRequest"),
            (201, "the job", schema("LegacyJob")),
        ),
        (true, "delete", "/jobs/") => op(
            "Delete all the caller's jobs (release 14)",
            "release 14",
            None,
            (200, "deleted", empty_obj),
        ),
        (true, "delete", "/jobs/{name}") => op(
            "Delete one job (release 14)",
            "release 14",
            None,
            (200, "deleted", empty_obj),
        ),
        (true, "post", "/jobs/{name}/restart") => op(
            "Restart a job (release 14)",
            "release 14",
            None,
            (200, "restarted", empty_obj),
        ),
        (false, "get", "/tool/{tool}/jobs/") => Op {
            query: &[("include_unset", "False: only what the user set (for dump)")],
            ..op(
                "List the tool's jobs",
                "16.x",
                None,
                (200, "all jobs", wrapped("jobs", array_of("Job"))),
            )
        },
        (false, "post", "/tool/{tool}/jobs/") | (false, "put", "/tool/{tool}/jobs/") => op(
            "Run a job",
            "16.x",
            Some("NewJob"),
            (201, "the job", wrapped("job", schema("Job"))),
        ),
        (false, "patch", "/tool/{tool}/jobs/") => op(
            "Create or update a job (load)",
            "16.x",
            Some("NewJob"),
            (
                200,
                "what happened",
                json!({"type": "object", "properties": {"messages": schema("Messages"), "job_changed": {"type": "boolean"}}}),
            ),
        ),
        (false, "delete", "/tool/{tool}/jobs/") => op(
            "Delete all the tool's jobs",
            "16.x",
            None,
            (200, "deleted", messages_only()),
        ),
        (false, "get", "/tool/{tool}/jobs/{name}") => op(
            "Show one job",
            "16.x",
            None,
            (200, "the job", wrapped("job", schema("Job"))),
        ),
        (false, "delete", "/tool/{tool}/jobs/{name}") => op(
            "Delete one job",
            "16.x",
            None,
            (200, "deleted", messages_only()),
        ),
        (false, "post", "/tool/{tool}/jobs/{name}/restart") => op(
            "Restart a scheduled or continuous job",
            "16.x",
            None,
            (200, "restarted", messages_only()),
        ),
        (false, "get", "/tool/{tool}/jobs/{name}/logs") => Op {
            query: logs_q,
            ..op(
                "The job's logs: its containers' output from every pod, or its log files (16.1); one JSON object a line, labelled text/plain as the real server does",
                "16.x",
                None,
                (200, "log lines (text/plain)", ndjson),
            )
        },
        (false, "get", "/tool/{tool}/images/") => op(
            "Images jobs can use",
            "16.x",
            None,
            (200, "images", wrapped("images", array_of("Image"))),
        ),
        (false, "get", "/tool/{tool}/quotas/") => op(
            "Kubernetes quotas and the gateway's job limits",
            "16.x",
            None,
            (200, "quota", wrapped("quota", schema("QuotaV1"))),
        ),
        (false, "get", "/tool/{tool}/job/{name}/logs") => Op {
            query: &[
                (
                    "lines",
                    "how many of the last lines (default 500, at most 5000)",
                ),
                ("since", SINCE),
                ("until", UNTIL),
            ],
            ..op(
                "The job's logs, newest first: its containers' output from every pod (pod, container, the kubelet's time), or its log files (16.2 logs service)",
                "16.x logs",
                None,
                (
                    200,
                    "log entries",
                    json!({"type": "object", "properties": {"data": {"type": "object", "properties": {"logs": array_of("LogEntry"), "next": {"type": ["object", "null"]}}}}}),
                ),
            )
        },
        (false, "get", "/tool/{tool}/job/{name}/logs_stream") => Op {
            query: &[
                ("lines", "how many of the last lines to start with"),
                ("since", SINCE),
                ("until", UNTIL),
            ],
            ..op(
                "Follow the job's logs: new lines of every pod of the job as they come, new pods included (at most JOBS_GATEWAY_MAX_LOG_FOLLOWS streams per tool, else 429; 16.2 logs service)",
                "16.x logs",
                None,
                (200, "log lines", ndjson),
            )
        },
        _ => return None,
    })
}

fn components() -> Value {
    let status_v2 = json!({"type": "object", "properties": {
        "short": {"type": "string", "enum": ["pending", "running", "succeeded", "failed", "unknown"]},
        "duration": {"type": ["string", "null"]},
        "up_to_date": {"type": "boolean"},
        "messages": {"type": "array", "items": {"type": "string"}},
        "previous_schedule": {"type": "string"},
        "next_schedule": {"type": "string"}}});
    let category = |used: Value| {
        json!({"type": "object", "properties": {
        "name": {"type": "string"},
        "items": {"type": "array", "items": {"type": "object", "properties": {
            "name": {"type": "string"}, "limit": {}, "used": used}}}}})
    };
    json!({
        "securitySchemes": {
            "toolCertificate": {"type": "mutualTLS", "description": "The tool's client certificate (CN=<tool>, O=toolforge). Behind the jobs ingress, the ingress presents its own certificate and passes the verified subject in ssl-client-subject-dn."}
        },
        "schemas": {
            "RunRequest": {"type": "object", "description": "JSON, or a form with string booleans (release 13)", "required": ["name", "cmd", "imagename"], "properties": {
                "name": {"type": "string", "maxLength": 52}, "cmd": {"type": "string"}, "imagename": {"type": "string"},
                "schedule": {"type": "string"}, "continuous": {"type": ["boolean", "string"]},
                "filelog": {"type": ["boolean", "string"]}, "filelog_stdout": {"type": "string"}, "filelog_stderr": {"type": "string"},
                "retry": {"type": ["integer", "string"], "minimum": 0, "maximum": 5},
                "memory": {"type": "string"}, "cpu": {"type": "string"},
                "emails": {"type": "string", "enum": ["none", "all", "onfailure", "onfinish"]}}},
            "NewJob": {"type": "object", "additionalProperties": false, "required": ["name", "cmd", "imagename"], "properties": {
                "name": {"type": "string", "maxLength": 52}, "cmd": {"type": "string"}, "imagename": {"type": "string"},
                "job_type": {"type": "string", "enum": ["one-off", "scheduled", "continuous"]},
                "schedule": {"type": "string"}, "continuous": {"type": "boolean"}, "filelog": {"type": "boolean"},
                "filelog_stdout": {"type": "string"}, "filelog_stderr": {"type": "string"},
                "retry": {"type": "integer", "minimum": 0, "maximum": 5}, "memory": {"type": "string"}, "cpu": {"type": "string"},
                "emails": {"type": "string", "enum": ["none", "all", "onfailure", "onfinish"]},
                "mount": {"type": "string", "enum": ["all", "none"]}, "timeout": {"type": "integer", "minimum": 0},
                "replicas": {"type": "integer", "minimum": 0}, "port": {"type": ["integer", "string"]},
                "port_protocol": {"type": "string", "enum": ["tcp", "udp"]},
                "health_check": {"type": ["object", "null"], "properties": {"type": {"type": "string", "enum": ["script", "http"]}, "script": {"type": "string"}, "path": {"type": "string"}}}}},
            "LegacyJob": {"type": "object", "required": ["name", "cmd", "image", "image_state", "filelog", "status_short", "status_long"], "properties": {
                "name": {"type": "string"}, "cmd": {"type": "string"}, "image": {"type": "string"}, "image_state": {"type": "string"},
                "filelog": {"type": "string", "enum": ["True", "False"]},
                "filelog_stdout": {"type": ["string", "null"]}, "filelog_stderr": {"type": ["string", "null"]},
                "status_short": {"type": "string"}, "status_long": {"type": "string"}, "emails": {"type": "string"},
                "retry": {"type": "integer"}, "schedule": {"type": "string"}, "schedule_actual": {"type": "string"},
                "continuous": {"type": "boolean"}, "memory": {"type": "string"}, "cpu": {"type": "string"}}},
            "Job": {"type": "object", "required": ["name", "cmd", "imagename", "job_type"], "properties": {
                "name": {"type": "string"}, "cmd": {"type": "string"}, "imagename": {"type": "string"}, "image": {"type": "string"},
                "image_state": {"type": "string"}, "job_type": {"type": "string", "enum": ["one-off", "scheduled", "continuous"]},
                "filelog": {"type": "boolean"}, "filelog_stdout": {"type": ["string", "null"]}, "filelog_stderr": {"type": ["string", "null"]},
                "emails": {"type": "string"}, "mount": {"type": "string"}, "memory": {"type": "string"}, "cpu": {"type": "string"},
                "retry": {"type": "integer"}, "schedule": {"type": ["string", "null"]}, "schedule_actual": {"type": ["string", "null"]},
                "timeout": {"type": ["integer", "null"]}, "continuous": {"type": "boolean"}, "replicas": {"type": "integer"},
                "port": {"type": ["integer", "null"]}, "health_check": {"type": ["object", "null"]},
                "status_short": {"type": "string"}, "status_long": {"type": "string"}, "status": status_v2}},
            "Image": {"type": "object", "required": ["shortname", "image"], "properties": {"shortname": {"type": "string"}, "image": {"type": "string"}}},
            "Quota": {"type": "object", "properties": {"categories": {"type": "array", "items": category(json!({}))}}},
            "QuotaV1": {"type": "object", "properties": {"categories": {"type": "array", "items": category(json!({"type": ["string", "null"]}))}}},
            "LogEntry": {"type": "object", "required": ["datetime", "pod", "message"], "properties": {
                "datetime": {"type": "string"}, "pod": {"type": "string"}, "container": {"type": "string"}, "message": {"type": "string"}}},
            "Messages": {"type": "object", "properties": {
                "info": {"type": "array", "items": {"type": "string"}},
                "warning": {"type": "array", "items": {"type": "string"}},
                "error": {"type": "array", "items": {"type": "string"}}}},
            "LegacyError": {"type": "object", "required": ["message", "data"], "properties": {"message": {"type": "string"}, "data": {"type": "object"}}},
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "array", "items": {"type": "string"}}, "messages": {"$ref": "#/components/schemas/Messages"}}}
        }
    })
}

fn error_responses(legacy: bool) -> Map<String, Value> {
    let err = if legacy {
        schema("LegacyError")
    } else {
        schema("Error")
    };
    let mut m = Map::new();
    for (code, text) in [
        (
            "400",
            "invalid request (the message says which field and why)",
        ),
        ("401", "no client certificate"),
        (
            "403",
            "not allowed: identity refused, tool mismatch, credentials unusable, or a quota",
        ),
        ("404", "no such job"),
        ("409", "a job with that name exists"),
        ("413", "request body too large"),
        ("429", "too many requests from this tool; see Retry-After"),
        (
            "503",
            "Kubernetes or the tool's home is unreachable right now; try again",
        ),
    ] {
        m.insert(
            code.into(),
            json!({"description": text, "content": {"application/json": {"schema": err}}}),
        );
    }
    m
}

/// The document for the given (method, path) routes plus the unauthenticated ones.
pub fn document(served: &[(&'static str, String)]) -> Value {
    let mut paths = Map::new();
    for (method, path) in served {
        let Some(op) = describe(method, path) else {
            continue;
        };
        let legacy = is_legacy(path);
        let mut params: Vec<Value> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|p| json!({"name": p, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        for (q, d) in op.query {
            params.push(json!({"name": q, "in": "query", "required": false, "description": d, "schema": {"type": "string"}}));
        }
        let (code, desc, body) = op.ok;
        let mut responses = error_responses(legacy);
        let ok = if desc == "log lines (text/plain)" {
            json!({"description": "log lines", "content": {"text/plain": {"schema": {"type": "string", "description": "one LogEntry object (JSON) a line"}}}})
        } else if desc == "log lines" {
            json!({"description": desc, "content": {"application/x-ndjson": {"schema": schema("LogEntry")}}})
        } else {
            json!({"description": desc, "content": {"application/json": {"schema": body}}})
        };
        responses.insert(code.to_string(), ok);
        let mut operation = json!({
            "summary": op.summary,
            "tags": [op.tag],
            "operationId": format!("{method}{}", path.replace(['/', '{', '}', '.'], "_")),
            "parameters": params,
            "responses": responses,
            "security": [{"toolCertificate": []}],
        });
        if let Some(req) = op.request {
            let mut content = json!({"application/json": {"schema": schema(req)}});
            if req == "RunRequest" {
                content["application/x-www-form-urlencoded"] = json!({"schema": schema(req)});
            }
            operation["requestBody"] = json!({"required": true, "content": content});
        }
        let entry = paths
            .entry(path.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[*method] = operation;
    }
    let open = |summary: &str, body: Value| json!({"get": {"summary": summary, "tags": ["service"], "security": [], "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": body}}}}}});
    paths.insert(
        "/healthz".into(),
        open("Liveness", json!({"type": "string"})),
    );
    paths.insert(
        "/v1/healthz".into(),
        open("Liveness (16.x shape)", json!({"type": "object"})),
    );
    paths.insert(
        "/openapi.json".into(),
        open("This document", json!({"type": "object"})),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Toolforge jobs gateway",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Runs one-off, scheduled and continuous jobs on Kubernetes as the calling tool. Serves the routes of the toolforge-jobs CLI releases 13 and 14 (/jobs/api/v1) and 16.x (/jobs/v1/tool/<tool>, /logs/v1/tool/<tool>). Swagger UI: /docs/."
        },
        "paths": paths,
        "components": components(),
    })
}

/// Routes served but not documented (should be empty).
pub fn undocumented(served: &[(&'static str, String)]) -> Vec<String> {
    served
        .iter()
        .filter(|(m, p)| describe(m, p).is_none())
        .map(|(m, p)| format!("{m} {p}"))
        .collect()
}

const SWAGGER_JS: &[u8] = include_bytes!("../../assets/swagger-ui/swagger-ui-bundle.js");
const SWAGGER_CSS: &[u8] = include_bytes!("../../assets/swagger-ui/swagger-ui.css");

pub async fn swagger_page() -> Html<&'static str> {
    Html(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Toolforge jobs gateway API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css"></head>
<body><div id="ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body></html>"#,
    )
}

pub async fn swagger_asset(Path(file): Path<String>) -> Response {
    let (kind, body): (&str, &'static [u8]) = match file.as_str() {
        "swagger-ui-bundle.js" => ("application/javascript", SWAGGER_JS),
        "swagger-ui.css" => ("text/css", SWAGGER_CSS),
        "init.js" => (
            "application/javascript",
            b"window.ui = SwaggerUIBundle({url: '/openapi.json', dom_id: '#ui'});\n",
        ),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_route_is_documented() {
        let served = crate::api::routes::served_routes("/jobs");
        assert!(served.len() > 40, "{}", served.len());
        assert_eq!(undocumented(&served), Vec::<String>::new());
        let doc = document(&served);
        for (m, p) in &served {
            assert!(doc["paths"][p][*m].is_object(), "{m} {p} missing");
        }
        let other = crate::api::routes::served_routes("/gw/jobs");
        assert_eq!(undocumented(&other), Vec::<String>::new());
        assert!(other
            .iter()
            .any(|(m, p)| *m == "get" && p == "/gw/jobs/api/v1/list/"));
        assert!(other
            .iter()
            .any(|(m, p)| *m == "get" && p == "/gw/jobs/v1/tool/{tool}/jobs/"));
    }
}
