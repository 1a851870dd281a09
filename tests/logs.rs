//! Logs of jobs without file logging, as the real service serves them: the containers' output
//! read from the kubelet through the apiserver as the tool, from every pod of the job. Real
//! pods on the local node, the real CLIs from PyPI and the Rust CLI.

mod cli_support;
mod common;

use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use serde_json::{json, Value};

/// Runs a job (16.x route) and waits until its logs service reply has at least `want`
/// entries; returns them (newest first, as the service sends them).
async fn logs_until(
    client: &reqwest::Client,
    gw: &Gateway,
    tool: &str,
    job: &str,
    want: usize,
) -> Vec<Value> {
    let url = gw.direct_url(&format!(
        "/logs/v1/tool/{tool}/job/{job}/logs?direction=newest_first"
    ));
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (status, body) = call(client.get(&url)).await;
        let entries = body["data"]["logs"].as_array().cloned().unwrap_or_default();
        if status == 200 && entries.len() >= want {
            return entries;
        }
        assert!(
            status == 200 || status == 404,
            "logs of {job}: {status} {body}"
        );
        assert!(
            Instant::now() < deadline,
            "logs of {job} never had {want} entries: {body}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Creates a job with the 16.x API, without file logging unless the job says (the API's
/// default is file logging; the 16.x CLI sends `filelog: false` unless asked).
async fn run(client: &reqwest::Client, gw: &Gateway, tool: &str, mut job: Value) {
    if job.get("filelog").is_none() {
        job["filelog"] = json!(false);
    }
    let (status, body) = call(
        client
            .post(gw.direct_url(&format!("/jobs/v1/tool/{tool}/jobs/")))
            .json(&job),
    )
    .await;
    assert_eq!(status, 201, "{job} → {body}");
}

/// A provisioned tool with its own gateway and a client with its certificate, its jobs of
/// earlier runs deleted. The `Pki` holds the tool's home: keep it while the test runs.
async fn fresh_tool(tool: &str, env: &[(&str, &str)]) -> (Pki, Gateway, reqwest::Client) {
    let cluster = cluster();
    let pki = Pki::new(&cluster);
    provision(&pki, tool);
    let gw = start_gateway_retrying(&pki, env);
    let (c, k) = pki.tool_cert(tool);
    let client = https(&cluster.ca, Some((&c, &k)));
    flush(&client, &gw, tool).await;
    (pki, gw, client)
}

/// Deletes the tool's jobs of earlier runs.
async fn flush(client: &reqwest::Client, gw: &Gateway, tool: &str) {
    let (status, body) =
        call(client.delete(gw.direct_url(&format!("/jobs/v1/tool/{tool}/jobs/")))).await;
    assert_eq!(status, 200, "flush: {body}");
}

fn messages(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .filter_map(|e| e["message"].as_str().map(str::to_string))
        .collect()
}

/// Reads NDJSON lines from a followed stream until `stop` says so or `secs` pass.
async fn read_stream(
    resp: reqwest::Response,
    secs: u64,
    mut stop: impl FnMut(&[Value]) -> bool,
) -> Vec<Value> {
    let mut body = resp.bytes_stream();
    let mut buf = Vec::new();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let chunk = tokio::time::timeout_at(deadline, body.next()).await;
        let Ok(Some(Ok(chunk))) = chunk else {
            return seen;
        };
        buf.extend_from_slice(&chunk);
        while let Some(i) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            let v: Value = serde_json::from_slice(&line)
                .unwrap_or_else(|e| panic!("a stream line is not JSON ({e}): {line:?}"));
            seen.push(v);
        }
        if stop(&seen) {
            return seen;
        }
    }
}

#[tokio::test]
async fn a_one_off_job_s_container_output_is_served_by_every_logs_route() {
    let tool = "clog-alice";
    let (_pki, gw, client) = fresh_tool(tool, &[]).await;
    run(
        &client,
        &gw,
        tool,
        json!({"name": "say", "imagename": "bookworm",
        "cmd": "for i in 1 2 3 4 5; do echo line $i; done; sleep 1.5; echo oops >&2"}),
    )
    .await;
    // (stdout and stderr are two pipes, timed as containerd reads them: the pause before the
    // stderr line is what orders it after the others)
    let entries = logs_until(&client, &gw, tool, "say", 6).await;
    assert_eq!(
        messages(&entries),
        ["oops", "line 5", "line 4", "line 3", "line 2", "line 1"],
        "newest first: {entries:?}"
    );
    for e in &entries {
        assert!(
            e["pod"].as_str().unwrap_or_default().starts_with("say-"),
            "{e}"
        );
        assert_eq!(e["container"], "job", "{e}");
        let when = chrono::DateTime::parse_from_rfc3339(e["datetime"].as_str().unwrap_or_default())
            .unwrap_or_else(|err| panic!("{e}: {err}"));
        assert!((chrono::Utc::now() - when.with_timezone(&chrono::Utc)).num_seconds() < 300);
    }
    // lines: the last N
    let (status, two) = call(client.get(gw.direct_url(&format!(
        "/logs/v1/tool/{tool}/job/say/logs?lines=2&direction=newest_first"
    ))))
    .await;
    assert_eq!(status, 200, "{two}");
    assert_eq!(
        messages(
            two["data"]["logs"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or(&[])
        ),
        ["oops", "line 5"]
    );
    // since: a time after the job's output has nothing; a window around it has it all
    let (status, none) = call(client.get(gw.direct_url(&format!(
        "/logs/v1/tool/{tool}/job/say/logs?since=2099-01-01T00:00:00Z"
    ))))
    .await;
    assert_eq!(status, 404, "{none}");
    assert_eq!(
        none["error"],
        json!(["Job 'say' does not have any logs available"]),
        "{none}"
    );
    let (status, window) = call(client.get(gw.direct_url(&format!(
        "/logs/v1/tool/{tool}/job/say/logs?since=10m&until=2099-01-01T00:00:00Z"
    ))))
    .await;
    assert_eq!(status, 200, "{window}");
    assert_eq!(
        window["data"]["logs"].as_array().map(Vec::len),
        Some(6),
        "{window}"
    );
    // bad parameters
    for (query, text) in [
        ("lines=abc", "Unable to parse lines as integer"),
        (
            "lines=5001",
            "Requested number of 5001 lines is over limit of 5000",
        ),
        ("since=yesterday", "Invalid value for since"),
        ("until=1x", "Invalid value for until"),
    ] {
        let (status, body) =
            call(client.get(gw.direct_url(&format!("/logs/v1/tool/{tool}/job/say/logs?{query}"))))
                .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.to_string().contains(text), "{query}: {body}");
    }
    // release 14: NDJSON oldest first, without the container
    let resp = client
        .get(gw.direct_url("/jobs/api/v1/jobs/say/logs?follow=false"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.text().await.unwrap_or_default();
    let old: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert_eq!(
        messages(&old),
        ["line 1", "line 2", "line 3", "line 4", "line 5", "oops"]
    );
    assert!(
        old.iter()
            .all(|e| e.get("container").is_none() && e["pod"].is_string()),
        "{text}"
    );
    // 16.1: the jobs API's logs route, with the container
    let resp = client
        .get(gw.direct_url(&format!("/jobs/v1/tool/{tool}/jobs/say/logs?lines=1")))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // labelled as the real 16.x jobs API labels it (spec §1.3), unbuffered by nginx
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    assert_eq!(
        (header("content-type"), header("x-accel-buffering")),
        (Some("text/plain; charset=utf8".into()), Some("no".into()))
    );
    let text = resp.text().await.unwrap_or_default();
    let last: Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{text}: {e}"));
    assert_eq!(
        (last["message"].as_str(), last["container"].as_str()),
        (Some("oops"), Some("job"))
    );

    // a job with no pod that ever ran: nothing to show, said plainly
    run(
        &client,
        &gw,
        tool,
        json!({"name": "never", "imagename": "bookworm",
        "memory": "4Gi", "schedule": "0 0 1 1 *", "cmd": "true"}),
    )
    .await;
    let (status, body) =
        call(client.get(gw.direct_url(&format!("/logs/v1/tool/{tool}/job/never/logs")))).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        body["error"],
        json!(["Job 'never' does not have any logs available"])
    );
    // a file-logged job keeps its file logs, where a time window cannot apply
    run(
        &client,
        &gw,
        tool,
        json!({"name": "filed", "imagename": "bookworm", "filelog": true, "cmd": "echo in a file"}),
    )
    .await;
    let (status, body) =
        call(client.get(gw.direct_url(&format!("/logs/v1/tool/{tool}/job/filed/logs?since=1h"))))
            .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn a_continuous_job_is_followed_across_replicas_and_a_restart() {
    let tool = "follow-alice";
    let (_pki, gw, client) = fresh_tool(tool, &[("JOBS_GATEWAY_MAX_LOG_FOLLOWS", "2")]).await;
    run(&client, &gw, tool, json!({"name": "ticker", "imagename": "bookworm", "continuous": true,
        "replicas": 3, "cmd": "i=0; while true; do echo \"tick $i from $HOSTNAME\"; i=$((i+1)); sleep 1; done"}))
    .await;
    // three replicas, interleaved by time
    let deadline = Instant::now() + Duration::from_secs(90);
    let pods = loop {
        let entries = logs_until(&client, &gw, tool, "ticker", 1).await;
        let pods: std::collections::BTreeSet<String> = entries
            .iter()
            .filter_map(|e| e["pod"].as_str().map(str::to_string))
            .collect();
        if pods.len() == 3 {
            for e in &entries {
                let msg = e["message"].as_str().unwrap_or_default();
                let pod = e["pod"].as_str().unwrap_or_default();
                assert!(
                    msg.ends_with(&format!("from {pod}")),
                    "each line is its own pod's: {e}"
                );
            }
            break pods;
        }
        assert!(
            Instant::now() < deadline,
            "not 3 pods in the logs: {pods:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };

    let stream_url = gw.direct_url(&format!(
        "/logs/v1/tool/{tool}/job/ticker/logs_stream?lines=3"
    ));
    let resp = follow_logs(&client, stream_url.clone()).await;
    // a second follow fits (the limit is 2), a third is refused
    let second = follow_logs(&client, stream_url.clone()).await;
    let (status, body) = call(client.get(&stream_url)).await;
    assert_eq!(status, 429, "{body}");
    assert!(body.to_string().contains("log streams"), "{body}");
    drop(second);

    let (status, body) =
        call(client.post(gw.direct_url(&format!("/jobs/v1/tool/{tool}/jobs/ticker/restart"))))
            .await;
    assert_eq!(status, 200, "{body}");
    // the stream goes on with the new pods' lines
    let seen = read_stream(resp, 120, |seen| {
        seen.iter()
            .filter_map(|e| e["pod"].as_str())
            .any(|p| !pods.contains(p))
    })
    .await;
    let new_pods: Vec<&str> = seen
        .iter()
        .filter_map(|e| e["pod"].as_str())
        .filter(|p| !pods.contains(*p))
        .collect();
    assert!(
        !new_pods.is_empty(),
        "no line of a new pod after the restart: {seen:?}"
    );
    assert!(seen.len() >= 3, "{seen:?}");
    for e in &seen {
        for key in ["datetime", "pod", "container", "message"] {
            assert!(e[key].is_string(), "{key} in {e}");
        }
    }
    // the dropped streams gave their slots back
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let resp = client
            .get(&stream_url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        if resp.status().as_u16() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "follow slots were not given back"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn the_real_clis_and_the_rust_cli_print_a_job_s_container_logs() {
    let cluster = cluster();
    let t = cli_support::Tool::new("clilog-alice");
    let (c, k) = t.pki.tool_cert(&t.name);
    let client = https(&cluster.ca, Some((&c, &k)));
    flush(&client, &t.gw, &t.name).await;
    // container logs: the job is run without file logging
    let r = t.expect(
        0,
        &[
            "run",
            "chatty",
            "--image",
            "bookworm",
            "--no-filelog",
            "--command",
            "echo first; echo second",
            "--wait",
        ],
    );
    assert!(!r.stdout.contains("ERROR"), "{r}");
    let entries = logs_until(&client, &t.gw, &t.name, "chatty", 2).await;
    assert_eq!(messages(&entries), ["second", "first"]);

    let r = t.expect(0, &["logs", "chatty"]);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(
        lines.len() == 2 && lines[0].ends_with("first") && lines[1].ends_with("second"),
        "{r}"
    );
    let r16 = RealCli::new("r16", &t.pki, &t.name, &t.gw.direct_url(""));
    let out = r16.ok(&["logs", "chatty"]);
    let printed = out.lines();
    assert!(
        printed.iter().any(|l| l.ends_with("first"))
            && printed.iter().any(|l| l.ends_with("second")),
        "16.2.3 logs: {out}"
    );
    let r14 = RealCli::new("r14", &t.pki, &t.name, &t.gw.direct_url(""));
    let out = r14.ok(&["logs", "chatty"]);
    let printed = out.lines();
    assert!(
        printed.iter().any(|l| l.contains("first")) && printed.iter().any(|l| l.contains("second")),
        "release 14 logs: {out}"
    );
    // logs -f of a continuous job prints lines as they come; the Rust CLI's stream is ended
    // by a time limit here
    t.expect(
        0,
        &[
            "run",
            "talker",
            "--image",
            "bookworm",
            "--no-filelog",
            "--continuous",
            "--command",
            "i=0; while true; do echo said $i; i=$((i+1)); sleep 1; done",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mut child = t
            .cmd(&["logs", "-f", "talker"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        std::thread::sleep(Duration::from_secs(4));
        let _ = child.kill();
        let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.lines().filter(|l| l.contains("said ")).count() >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "logs -f printed no lines: {text}"
        );
    }
}

#[tokio::test]
async fn odd_bytes_a_window_before_the_last_lines_and_no_lines_asked_for() {
    let tool = "clog-bob";
    let (_pki, gw, client) = fresh_tool(tool, &[]).await;
    // a byte that is no UTF-8, then an early line, a pause and many late lines
    run(
        &client,
        &gw,
        tool,
        json!({"name": "chat", "imagename": "bookworm",
        "cmd": "printf 'odd \\377 byte\\n'; echo early; sleep 3; for i in $(seq 1 30); do echo late $i; done"}),
    )
    .await;
    let entries = logs_until(&client, &gw, tool, "chat", 32).await;
    let all = messages(&entries);
    assert_eq!(
        all.last().map(String::as_str),
        Some("odd \u{fffd} byte"),
        "{all:?}"
    );
    // `until` just after the early lines, with lines=1: the last line before it, not nothing
    let early = entries
        .iter()
        .find(|e| e["message"] == "early")
        .unwrap_or_else(|| panic!("{entries:?}"));
    let when = chrono::DateTime::parse_from_rfc3339(early["datetime"].as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    let until = (when + chrono::Duration::seconds(1)).to_rfc3339();
    let url = reqwest::Url::parse_with_params(
        &gw.direct_url(&format!("/logs/v1/tool/{tool}/job/chat/logs")),
        &[
            ("lines", "1"),
            ("until", until.as_str()),
            ("direction", "newest_first"),
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (status, body) = call(client.get(url)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        messages(
            body["data"]["logs"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or(&[])
        ),
        ["early"],
        "{body}"
    );
    // lines=0 asks for none: an empty page, not "no logs"
    let (status, body) =
        call(client.get(gw.direct_url(&format!("/logs/v1/tool/{tool}/job/chat/logs?lines=0"))))
            .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["logs"], json!([]), "{body}");
    // a followed stream with an `until` in the past ends at once, after the lines before it
    let resp = follow_logs(
        &client,
        reqwest::Url::parse_with_params(
            &gw.direct_url(&format!("/logs/v1/tool/{tool}/job/chat/logs_stream")),
            &[("until", until.as_str())],
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .to_string(),
    )
    .await;
    let t0 = Instant::now();
    let seen = read_stream(resp, 30, |_| false).await;
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "the stream did not end at until"
    );
    assert_eq!(
        messages(&seen).last().map(String::as_str),
        Some("early"),
        "{seen:?}"
    );
}
