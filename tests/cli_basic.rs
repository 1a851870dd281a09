//! `toolforge-jobs` as a process against the real gateway and the genuine apiserver: every
//! subcommand, its stdout and its exit code.

mod cli_support;
mod common;

use cli_support::*;
use serde_json::Value;

#[test]
fn run_list_show_restart_delete_flush() {
    let t = Tool::new("cli-basic");
    t.ok(&["flush", "--yes"]);

    let images = t.ok(&["images"]);
    assert!(images.stdout.contains("Short name"), "{images}");
    assert!(images.stdout.contains("bookworm"), "{images}");
    let images_json: Value = serde_json::from_str(&t.ok(&["images", "--json"]).stdout)
        .unwrap_or_else(|e| panic!("images --json: {e}"));
    assert!(images_json.as_array().is_some_and(|a| !a.is_empty()));

    let r = t.ok(&[
        "run",
        "once",
        "--command",
        "echo hello world",
        "--image",
        "bookworm",
        "--retry",
        "2",
    ]);
    // the server's reply carries no info message (as the 16.x server's), so a run from cron
    // prints nothing
    assert_eq!(r.stdout, "", "run prints nothing: {r}");
    t.ok(&[
        "run",
        "nightly",
        "--command",
        "./backup.sh --all",
        "--image",
        "bookworm",
        "--schedule",
        "@daily",
        "--mem",
        "1Gi",
        "--cpu",
        "0.5",
        "--emails",
        "onfailure",
    ]);
    t.ok(&[
        "run",
        "daemon",
        "--command",
        "sleep infinity",
        "--image",
        "bookworm",
        "--continuous",
        "--no-filelog",
    ]);

    assert_eq!(t.names(), ["daemon", "nightly", "once"]);
    let list = t.ok(&["list"]);
    let lines: Vec<&str> = list.stdout.lines().collect();
    assert!(lines[0].starts_with("Job name"), "{list}");
    assert!(
        lines[0].contains("Job type") && lines[0].contains("Status"),
        "{list}"
    );
    assert!(list.stdout.contains("scheduled: @daily"), "{list}");
    assert!(list.stdout.contains("continuous"), "{list}");
    assert!(list.stdout.contains("one-off"), "{list}");
    assert!(
        !list.stdout.contains('\x1b'),
        "no colours into a pipe: {list}"
    );
    let long = t.ok(&["list", "-o", "long"]);
    assert!(long.stdout.contains("./backup.sh --all"), "{long}");
    assert!(long.stdout.contains("mem: 1.0Gi, cpu: 0.5"), "{long}");
    let json: Value = serde_json::from_str(&t.ok(&["list", "--json"]).stdout)
        .unwrap_or_else(|e| panic!("list --json: {e}"));
    assert_eq!(json.as_array().map(Vec::len), Some(3));
    let json2: Value = serde_json::from_str(&t.ok(&["list", "-o", "json"]).stdout)
        .unwrap_or_else(|e| panic!("list -o json: {e}"));
    // the two spellings give the same jobs
    assert_eq!(without_status(&json), without_status(&json2));
    // a narrow terminal ($COLUMNS) cuts the command column, keeps every line inside
    let mut narrow = t.cmd(&["list", "-o", "long"]);
    narrow.env("COLUMNS", "60");
    let out = narrow.output().unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().all(|l| l.chars().count() <= 60),
        "COLUMNS=60:\n{text}"
    );

    let show = t.ok(&["show", "nightly"]);
    for want in [
        "Job name:",
        "nightly",
        "Command:",
        "./backup.sh --all",
        "scheduled: @daily",
        "Emails:",
        "onfailure",
        "Status:",
        "Hints:",
    ] {
        assert!(show.stdout.contains(want), "show lacks {want:?}: {show}");
    }
    let shown: Value = serde_json::from_str(&t.ok(&["show", "once", "--json"]).stdout)
        .unwrap_or_else(|e| panic!("show --json: {e}"));
    assert_eq!(shown["name"], "once");
    assert_eq!(shown["cmd"], "echo hello world");
    assert_eq!(shown["retry"], 2);

    // errors: one line on stderr, exit 1 for what the server refuses
    let missing = t.expect(1, &["show", "nope"]);
    assert!(missing.stderr.starts_with("error: "), "{missing}");
    assert_eq!(missing.stderr.lines().count(), 1, "{missing}");
    assert!(missing.stdout.is_empty(), "{missing}");
    let dup = t.expect(
        1,
        &["run", "once", "--command", "true", "--image", "bookworm"],
    );
    assert!(dup.stderr.starts_with("error: "), "{dup}");
    let bad_image = t.expect(
        1,
        &[
            "run",
            "img",
            "--command",
            "true",
            "--image",
            "no-such-image",
        ],
    );
    assert!(bad_image.stderr.contains("error: "), "{bad_image}");
    // refused by the client before any request
    let r = t.expect(
        1,
        &[
            "run",
            "p",
            "--command",
            "x",
            "--image",
            "bookworm",
            "--port",
            "80",
        ],
    );
    assert!(r.stderr.contains("continuous"), "{r}");
    // a usage error is clap's (exit 2)
    t.expect(2, &["run", "x", "--command", "x"]);

    t.ok(&["restart", "daemon"]);
    t.expect(1, &["restart", "nope"]);

    let quota = t.ok(&["quota"]);
    assert!(!quota.stdout.trim().is_empty(), "{quota}");
    let q: Value = serde_json::from_str(&t.ok(&["quota", "--json"]).stdout)
        .unwrap_or_else(|e| panic!("quota --json: {e}"));
    assert!(q["categories"].is_array(), "{q}");

    let del = t.ok(&["delete", "once"]);
    assert_eq!(del.stdout, "", "delete prints nothing: {del}");
    t.expect(1, &["delete", "once"]);
    assert_eq!(t.names(), ["daemon", "nightly"]);

    // flush: never without confirmation when it can't ask
    let refused = t.expect(1, &["flush"]);
    assert!(refused.stderr.contains("--yes"), "{refused}");
    assert_eq!(t.names(), ["daemon", "nightly"]);
    let flushed = t.ok(&["flush", "--yes"]);
    assert_eq!(flushed.stdout, "", "flush --yes prints nothing: {flushed}");
    assert!(t.names().is_empty());
    assert_eq!(t.ok(&["list"]).stdout, "", "an empty list prints nothing");
}

#[test]
fn connection_and_tls_failures_exit_2_and_config_failures_exit_1() {
    let t = Tool::new("cli-errors");
    // nothing listens there
    let port = common::free_port();
    let r = t.expect(2, &["list", "--url", &format!("https://127.0.0.1:{port}")]);
    assert!(r.stderr.starts_with("error: "), "{r}");
    assert!(r.stderr.contains("cannot reach"), "{r}");
    // the server's certificate is not signed by the CA we trust: refused, never insecure
    let mut cmd = t.cmd(&["list"]);
    cmd.env("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt");
    let out = cmd.output().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        out.status.code(),
        Some(2),
        "system roots must not trust the dev CA: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // no kubeconfig, no certificate: a user error
    let mut cmd = t.cmd(&["list"]);
    cmd.env("KUBECONFIG", t.home.join("missing"));
    let out = cmd.output().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("become"));
    // the URL from ~/.toolforge.yaml is used when the env is unset
    t.write(
        ".toolforge.yaml",
        &format!("api_gateway:\n  url: {}\n", t.api_url()),
    );
    let mut cmd = t.cmd(&["list"]);
    cmd.env_remove("TOOL_TOOLFORGE_API_URL");
    let out = cmd.output().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // explicit --cert/--key/--ca and --url without any kubeconfig
    let (cert, key) = t.pki.tool_cert(&t.name);
    let mut cmd = t.cmd(&[
        "list",
        "--cert",
        path_str(&cert),
        "--key",
        path_str(&key),
        "--ca",
        path_str(&t.pki.cluster.ca),
        "--url",
        &t.api_url(),
    ]);
    cmd.env("KUBECONFIG", t.home.join("missing"))
        .env_remove("REQUESTS_CA_BUNDLE");
    let out = cmd.output().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        out.status.code(),
        Some(0),
        "tool from the certificate CN: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let comp = t.ok(&["completions", "bash"]);
    assert!(comp.stdout.contains("toolforge-jobs"), "{comp}");
}

/// A `list --json` reply without its status: the clock runs ("Running for 0s" → "1s") and the
/// controllers act (a pod appears) between two calls, so only what the jobs are is compared.
fn without_status(list: &Value) -> Value {
    let mut list = list.clone();
    for job in list.as_array_mut().into_iter().flatten() {
        if let Some(job) = job.as_object_mut() {
            job.retain(|key, _| !key.starts_with("status"));
        }
    }
    list
}
