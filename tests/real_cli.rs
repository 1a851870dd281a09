//! The real `toolforge-jobs` clients from PyPI (release 14 and 16.2.3, installed by
//! tests/cli/setup-venvs.sh) run whole scenarios against the gateway's direct mTLS listener and
//! the genuine local apiserver. Release 13 is not on PyPI: its recorded requests are replayed.
//! The last test checks that one server answers every generation in its own shape.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ReplicationController, ResourceQuota};
use kube::api::{Api, PostParams};
use serde_json::{json, Value};

/// A provisioned tool with a gateway in front of it.
struct Setup {
    pki: Pki,
    gw: Gateway,
    admin: kube::Client,
    tool: String,
}

impl Setup {
    fn new(tool: &str) -> Self {
        let cluster = cluster();
        let pki = Pki::new(&cluster);
        provision(&pki, tool);
        let gw = start_gateway_retrying(&pki, &[]);
        Self {
            admin: admin(&cluster),
            pki,
            gw,
            tool: tool.to_string(),
        }
    }

    fn ns(&self) -> String {
        format!("tool-{}", self.tool)
    }

    fn cli(&self, venv: &str) -> RealCli {
        let root = self.gw.direct_url("");
        RealCli::new(venv, &self.pki, &self.tool, &root)
    }

    fn home(&self) -> std::path::PathBuf {
        self.pki.home_root.join(&self.tool)
    }

    fn client(&self) -> reqwest::Client {
        let (cert, key) = self.pki.tool_cert(&self.tool);
        https(&self.pki.cluster.ca, Some((&cert, &key)))
    }

    /// A ResourceQuota like Toolforge's, with its usage computed, so `quota` has numbers.
    async fn resource_quota(&self) {
        let quotas = Api::<ResourceQuota>::namespaced(self.admin.clone(), &self.ns());
        let quota: ResourceQuota = serde_json::from_value(json!({
            "metadata": {"name": "tool-quota"},
            "spec": {"hard": {
                "pods": "40",
                "count/jobs.batch": "30",
                "count/cronjobs.batch": "50",
                "count/replicationcontrollers": "10",
                "limits.cpu": "20",
                "limits.memory": "40Gi",
            }},
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        match quotas.create(&PostParams::default(), &quota).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => panic!("creating the ResourceQuota: {e}"),
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let q = quotas
                .get("tool-quota")
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            if q.status.and_then(|s| s.used).is_some() {
                break;
            }
            assert!(Instant::now() < deadline, "quota usage never appeared");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// uid of every job object of the tool, by name (to see whether `load` replaced any).
    async fn uids(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let cjs = Api::<CronJob>::namespaced(self.admin.clone(), &self.ns())
            .list(&Default::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let rcs = Api::<ReplicationController>::namespaced(self.admin.clone(), &self.ns())
            .list(&Default::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let jobs =
            Api::<k8s_openapi::api::batch::v1::Job>::namespaced(self.admin.clone(), &self.ns())
                .list(&Default::default())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        for m in cjs
            .items
            .iter()
            .map(|o| &o.metadata)
            .chain(rcs.items.iter().map(|o| &o.metadata))
            // Jobs the CronJob controller made (a schedule came round during the test) are
            // not what load created
            .chain(jobs.items.iter().map(|o| &o.metadata).filter(|m| {
                !m.owner_references
                    .iter()
                    .flatten()
                    .any(|r| r.kind == "CronJob")
            }))
        {
            out.push((
                m.name.clone().unwrap_or_default(),
                m.uid.clone().unwrap_or_default(),
            ));
        }
        out.sort();
        out
    }
}

fn names(out: &CliOutput) -> BTreeSet<String> {
    out.lines().into_iter().collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn write_log(setup: &Setup, file: &str, lines: &[&str]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(setup.home().join(file), text).unwrap_or_else(|e| panic!("{e}"));
}

/// Release 14 (toolforge-jobs-framework-cli 14 + weld 1.4.0): `/jobs/api/v1/...`.
#[tokio::test(flavor = "multi_thread")]
async fn release14_cli_full_scenario() {
    let s = Setup::new("cli14-alice");
    s.resource_quota().await;
    let cli = s.cli("r14");
    let home = s.home().display().to_string();

    cli.ok(&["flush"]);
    let images = cli.ok(&["images"]);
    assert!(images.stdout.contains("Short name"), "{images}");
    assert!(images.stdout.contains("bookworm"), "{images}");

    cli.ok(&[
        "run",
        "once",
        "--command",
        "sleep 600",
        "--image",
        "bookworm",
    ]);
    cli.ok(&[
        "run",
        "nightly",
        "--command",
        "date",
        "--image",
        "bookworm",
        "--schedule",
        "@daily",
    ]);
    cli.ok(&[
        "run",
        "daemon",
        "--command",
        "sleep infinity",
        "--image",
        "bookworm",
        "--continuous",
        "--mem",
        "1Gi",
    ]);
    let again = cli.run(&["run", "once", "--command", "x", "--image", "bookworm"]);
    assert_eq!(again.code, 1, "a taken name: {again}");
    assert!(again.stdout.contains("ERROR"), "{again}");

    let list = cli.ok(&["list"]);
    for want in [
        "Job name:",
        "Job type:",
        "Status:",
        "once",
        "nightly",
        "daemon",
    ] {
        assert!(list.stdout.contains(want), "list lacks {want}: {list}");
    }
    assert!(list.stdout.contains("schedule: @daily"), "{list}");
    assert!(list.stdout.contains("continuous"), "{list}");
    let long = cli.ok(&["list", "-o", "long"]);
    for want in [
        "Command:",
        "Image:",
        "File log:",
        "sleep infinity",
        "mem: 1Gi",
    ] {
        assert!(
            long.stdout.contains(want),
            "list -o long lacks {want}: {long}"
        );
    }
    let bare = cli.ok(&["list", "-o", "name"]);
    assert_eq!(names(&bare), set(&["daemon", "nightly", "once"]), "{bare}");

    let show = cli.ok(&["show", "nightly"]);
    for want in ["schedule: @daily", "bookworm", "date", "Hints:"] {
        assert!(show.stdout.contains(want), "show lacks {want}: {show}");
    }
    let missing = cli.run(&["show", "nosuch"]);
    assert_eq!(missing.code, 1, "{missing}");
    assert!(
        missing.stdout.contains("Job 'nosuch' does not exist"),
        "{missing}"
    );

    cli.ok(&["restart", "nightly"]);
    cli.ok(&["restart", "daemon"]);
    let oneoff = cli.run(&["restart", "once"]);
    assert_eq!(oneoff.code, 1, "restarting a one-off job: {oneoff}");
    assert!(
        oneoff
            .stdout
            .contains("ERROR: Error: Unable to restart a one-off job"),
        "{oneoff}"
    );

    // file logs: by default in <job>.out / <job>.err in the tool's home; default paths read
    // back as unset (so that `load` of a file without paths sees no change)
    let shown = cli.ok(&["show", "once"]);
    assert!(shown.stdout.contains("| File log:   | yes"), "{shown}");
    write_log(&s, "once.out", &["first line", "second line", "third line"]);
    let logs = cli.ok(&["logs", "once"]);
    for want in ["first line", "second line", "third line"] {
        assert!(logs.stdout.contains(want), "logs lack {want}: {logs}");
    }
    let last = cli.ok(&["logs", "once", "-l", "2"]);
    assert_eq!(last.lines().len(), 2, "{last}");
    assert!(!last.stdout.contains("first line"), "{last}");
    assert!(last.stdout.contains("third line"), "{last}");

    let quota = cli.ok(&["quota"]);
    for want in [
        "Running jobs",
        "Per-job limits",
        "Job definitions",
        "Memory",
    ] {
        assert!(quota.stdout.contains(want), "quota lacks {want}: {quota}");
    }

    cli.ok(&["delete", "once"]);
    assert_eq!(
        names(&cli.ok(&["list", "-o", "name"])),
        set(&["daemon", "nightly"])
    );
    let gone = cli.run(&["delete", "once"]);
    assert_eq!(gone.code, 0, "release 14 only warns: {gone}");
    assert!(gone.stdout.contains("does not exist"), "{gone}");

    cli.ok(&["flush"]);
    let empty = cli.ok(&["list"]);
    assert!(empty.stdout.trim().is_empty(), "list after flush: {empty}");
    assert!(cli.ok(&["list", "-o", "name"]).lines().is_empty());

    // load: release 14 deletes what the file does not name, adds the rest
    cli.ok(&["run", "stray", "--command", "true", "--image", "bookworm"]);
    let file = s.home().join("jobs.yaml");
    std::fs::write(
        &file,
        format!(
            "- name: loaded-once\n  command: ./once.sh\n  image: bookworm\n  no-filelog: true\n\
             - name: loaded-nightly\n  command: ./nightly.sh\n  image: bookworm\n  schedule: \"17 3 * * *\"\n  \
               filelog-stdout: {home}/nightly.log\n  filelog-stderr: {home}/nightly.log\n\
             - name: loaded-daemon\n  command: ./daemon.sh\n  image: bookworm\n  continuous: true\n  \
               emails: onfailure\n  filelog-stdout: {home}/daemon.out\n  filelog-stderr: {home}/daemon.err\n\
             - name: loaded-default-logs\n  command: ./plain.sh\n  image: bookworm\n  continuous: true\n"
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let file_arg = file.display().to_string();
    cli.ok(&["load", &file_arg]);
    let loaded = cli.ok(&["list", "-o", "name"]);
    assert_eq!(
        names(&loaded),
        set(&[
            "loaded-daemon",
            "loaded-default-logs",
            "loaded-nightly",
            "loaded-once"
        ]),
        "{loaded}"
    );
    let before = s.uids().await;
    let second = cli.ok(&["load", &file_arg]);
    assert_eq!(
        s.uids().await,
        before,
        "the second load replaced jobs: {second}"
    );
    let show = cli.ok(&["show", "loaded-daemon"]);
    assert!(show.stdout.contains("onfailure"), "{show}");
    cli.ok(&["flush"]);
}

/// Release 16.2.3 (toolforge-jobs-cli, weld 1.6.x): `/jobs/v1/tool/<tool>/...` and
/// `/logs/v1/tool/<tool>/...`.
#[tokio::test(flavor = "multi_thread")]
async fn release16_cli_full_scenario() {
    let s = Setup::new("cli16-alice");
    s.resource_quota().await;
    let cli = s.cli("r16");

    // run, delete, restart and flush print nothing on success, as against the real server
    // (whose replies carry empty messages): run from cron, any output would be mailed
    let silent = |out: CliOutput| assert_eq!(out.stdout, "", "{out}");
    silent(cli.ok(&["flush"]));
    let images = cli.ok(&["images"]);
    assert!(images.stdout.contains("bookworm"), "{images}");

    // a one-off job still running (the node runs it): its name stays taken
    silent(cli.ok(&[
        "run",
        "once",
        "--command",
        "sleep 600",
        "--image",
        "bookworm",
    ]));
    silent(cli.ok(&[
        "run",
        "nightly",
        "--command",
        "date",
        "--image",
        "bookworm",
        "--schedule",
        "@daily",
    ]));
    silent(cli.ok(&[
        "run",
        "daemon",
        "--command",
        "sleep infinity",
        "--image",
        "bookworm",
        "--continuous",
        "--mem",
        "1Gi",
    ]));
    let again = cli.run(&["run", "once", "--command", "x", "--image", "bookworm"]);
    assert_eq!(again.code, 1, "a taken name: {again}");
    assert!(
        again
            .stderr
            .contains("ERROR: A job with the name once already exists"),
        "the real server's 409 text: {again}"
    );

    let list = cli.ok(&["list"]);
    for want in [
        "Job name:",
        "Job type:",
        "Status:",
        "once",
        "nightly",
        "daemon",
    ] {
        assert!(list.stdout.contains(want), "list lacks {want}: {list}");
    }
    assert!(list.stdout.contains("@daily"), "{list}");
    let long = cli.ok(&["list", "-o", "long"]);
    for want in [
        "Command:",
        "Image:",
        "Replicas:",
        "sleep infinity",
        "mem: 1.0Gi",
    ] {
        assert!(
            long.stdout.contains(want),
            "list -o long lacks {want}: {long}"
        );
    }
    let bare = cli.ok(&["list", "-o", "name"]);
    assert_eq!(names(&bare), set(&["daemon", "nightly", "once"]), "{bare}");

    let show = cli.ok(&["show", "nightly"]);
    for want in ["scheduled", "@daily", "bookworm", "date", "Hints:"] {
        assert!(show.stdout.contains(want), "show lacks {want}: {show}");
    }
    let missing = cli.run(&["show", "nosuch"]);
    assert_eq!(missing.code, 1, "{missing}");
    assert!(
        missing.stderr.contains("Job 'nosuch' does not exist"),
        "{missing}"
    );

    silent(cli.ok(&["restart", "nightly"]));
    silent(cli.ok(&["restart", "daemon"]));
    let oneoff = cli.run(&["restart", "once"]);
    assert_eq!(oneoff.code, 1, "restarting a one-off job: {oneoff}");
    assert!(
        oneoff
            .stderr
            .contains("ERROR: Unable to restart a one-off job"),
        "{oneoff}"
    );

    // 16.x has file logs on by default too; the logs service reads them
    write_log(&s, "once.out", &["first line", "second line", "third line"]);
    let logs = cli.ok(&["logs", "once"]);
    for want in ["first line", "second line", "third line"] {
        assert!(logs.stdout.contains(want), "logs lack {want}: {logs}");
    }
    let order: Vec<usize> = ["first line", "second line", "third line"]
        .iter()
        .filter_map(|w| logs.stdout.find(w))
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "chronological: {logs}"
    );
    let last = cli.ok(&["logs", "once", "-l", "2"]);
    assert_eq!(last.lines().len(), 2, "{last}");
    assert!(!last.stdout.contains("first line"), "{last}");
    assert!(last.stdout.contains("third line"), "{last}");
    // a time window cannot be cut out of file logs: said plainly, not ignored
    for args in [
        &["logs", "once", "--since", "10m"][..],
        &["logs", "once", "-f", "--until", "2026-03-02T21:29:55+01:00"][..],
    ] {
        let out = cli.run(args);
        assert_eq!(out.code, 1, "{args:?}: {out}");
        assert!(out.all().contains("cannot be applied"), "{args:?}: {out}");
        assert!(!out.stdout.contains("first line"), "{args:?}: {out}");
    }

    let quota = cli.ok(&["quota"]);
    for want in [
        "Running jobs",
        "Per-job limits",
        "Job definitions",
        "Memory",
    ] {
        assert!(quota.stdout.contains(want), "quota lacks {want}: {quota}");
    }

    silent(cli.ok(&["delete", "once"]));
    assert_eq!(
        names(&cli.ok(&["list", "-o", "name"])),
        set(&["daemon", "nightly"])
    );
    let gone = cli.run(&["delete", "once"]);
    assert_eq!(gone.code, 1, "16.x fails on a missing job: {gone}");
    assert!(
        gone.stderr.contains("ERROR: Job 'once' does not exist"),
        "{gone}"
    );

    silent(cli.ok(&["flush"]));
    assert!(cli.ok(&["list", "-o", "name"]).lines().is_empty());

    // load: create-or-update with PATCH; a second load changes nothing
    let file = s.home().join("jobs.yaml");
    std::fs::write(
        &file,
        "- name: loaded-nightly\n  command: ./nightly.sh\n  image: bookworm\n  schedule: \"17 3 * * *\"\n\
         - name: loaded-daemon\n  command: ./daemon.sh\n  image: bookworm\n  continuous: true\n  emails: onfailure\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let file_arg = file.display().to_string();
    let first = cli.ok(&["load", &file_arg]);
    assert!(
        first.all().contains("2 job(s) loaded successfully"),
        "{first}"
    );
    // PATCH keeps the real server's info lines, which load prints
    for job in ["loaded-nightly", "loaded-daemon"] {
        assert!(
            first
                .stdout
                .contains(&format!("Job {job} created in storage and runtime")),
            "{first}"
        );
    }
    let loaded = cli.ok(&["list", "-o", "name"]);
    assert_eq!(
        names(&loaded),
        set(&["loaded-daemon", "loaded-nightly"]),
        "{loaded}"
    );
    let before = s.uids().await;
    let second = cli.ok(&["load", &file_arg]);
    assert!(
        second
            .stdout
            .contains("Job loaded-daemon is already up to date"),
        "{second}"
    );
    assert_eq!(
        s.uids().await,
        before,
        "the second load replaced jobs: {second}"
    );
    let show = cli.ok(&["show", "loaded-daemon"]);
    assert!(show.stdout.contains("onfailure"), "{show}");
    cli.ok(&["flush"]);
}

/// `run --wait` of jobs the node really runs: one succeeds, one fails.
async fn wait_scenario(venv: &str, tool: &str) {
    let s = Setup::new(tool);
    let cli = s.cli(venv);
    cli.ok(&["flush"]);
    let good = cli
        .command(&[
            "run",
            "good",
            "--command",
            "true",
            "--image",
            "bookworm",
            "--wait",
        ])
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let bad = cli
        .command(&[
            "run",
            "bad",
            "--command",
            "false",
            "--image",
            "bookworm",
            "--wait",
        ])
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    // the node runs both: `true` exits 0, `false` exits 1
    let good = tokio::task::spawn_blocking(move || RealCli::finish(good))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let bad = tokio::task::spawn_blocking(move || RealCli::finish(bad))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(good.code, 0, "run --wait of a succeeding job: {good}");
    assert!(good.all().contains("job 'good' completed"), "{good}");
    assert_eq!(bad.code, 1, "run --wait of a failing job: {bad}");
    assert!(bad.all().contains("ERROR"), "{bad}");
    assert!(bad.stdout.contains("Failed"), "the show table: {bad}");
    cli.ok(&["flush"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn release14_cli_run_wait() {
    wait_scenario("r14", "cli14-wait").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn release16_cli_run_wait() {
    wait_scenario("r16", "cli16-wait").await;
}

/// Sends a release-13 form body (what 668eff3 sent: every value a string).
async fn form_post(client: &reqwest::Client, url: &str, form: &str) -> (u16, Value) {
    call(
        client
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.to_string()),
    )
    .await
}

/// Release 13 is not on PyPI: replay its recorded requests and check the replies have the
/// shapes that client parses.
#[tokio::test(flavor = "multi_thread")]
async fn release13_recorded_requests() {
    let s = Setup::new("cli13-alice");
    s.resource_quota().await;
    let client = s.client();
    let b = |p: &str| s.gw.direct_url(&format!("/jobs/api/v1/{p}"));

    let (status, body) = call(client.delete(b("flush/"))).await;
    assert_eq!((status, &body), (200, &json!("")));

    let (status, body) = form_post(
        &client,
        &b("run/"),
        "name=daemon&imagename=bookworm&cmd=sleep+infinity&emails=none&retry=0&continuous=true&filelog=true",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = form_post(
        &client,
        &b("run/"),
        "name=nightly&imagename=bookworm&cmd=date&emails=onfailure&retry=2&schedule=%40daily&filelog=true",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // --no-filelog: release 13 leaves filelog out
    let (status, body) = form_post(
        &client,
        &b("run/"),
        "name=once&imagename=bookworm&cmd=echo+hi&emails=none&retry=0",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = form_post(
        &client,
        &b("run/"),
        "name=once&imagename=bookworm&cmd=echo+hi&emails=none&retry=0",
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(body["message"].is_string(), "{body}");

    let (status, list) = call(client.get(b("list/"))).await;
    assert_eq!(status, 200);
    let jobs = list
        .as_array()
        .unwrap_or_else(|| panic!("list/ must be a bare array: {list}"));
    let by_name = |n: &str| {
        jobs.iter()
            .find(|j| j["name"] == n)
            .cloned()
            .unwrap_or_else(|| panic!("{n} not listed: {list}"))
    };
    let daemon = by_name("daemon");
    assert_eq!(daemon["filelog"], "True");
    assert_eq!(daemon["continuous"], true);
    assert_eq!(daemon["image"], "bookworm");
    assert_eq!(daemon["image_state"], "stable");
    // default log paths read back as unset, as the user sent them (see legacy_json)
    assert_eq!(daemon["filelog_stdout"], serde_json::Value::Null);
    assert_eq!(daemon["filelog_stderr"], serde_json::Value::Null);
    assert!(daemon["status_short"].is_string(), "{daemon}");
    assert!(daemon["status_long"].is_string(), "{daemon}");
    assert_eq!(by_name("once")["filelog"], "False");
    let nightly = by_name("nightly");
    assert_eq!(nightly["schedule"], "@daily");
    assert_eq!(nightly["retry"], 2);
    assert_eq!(nightly["emails"], "onfailure");
    assert!(nightly.get("job_type").is_none(), "{nightly}");

    let (status, shown) = call(client.get(b("show/nightly"))).await;
    assert_eq!(status, 200);
    // the status may move between the two calls (the CronJob fires, a controller acts)
    let without_status = |mut job: serde_json::Value| {
        if let Some(o) = job.as_object_mut() {
            o.retain(|k, _| !k.starts_with("status"));
        }
        job
    };
    assert_eq!(
        without_status(shown),
        without_status(nightly),
        "show/ and list/ agree"
    );
    let (status, err) = call(client.get(b("show/nosuch"))).await;
    assert_eq!(status, 404);
    assert_eq!(err["message"], "Job 'nosuch' does not exist", "{err}");

    let (status, body) = call(client.post(b("restart/daemon"))).await;
    assert_eq!((status, &body), (200, &json!("")));
    let (status, body) = call(client.post(b("restart/once"))).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].is_string(), "{body}");

    let (status, images) = call(client.get(b("images/"))).await;
    assert_eq!(status, 200);
    let images = images
        .as_array()
        .unwrap_or_else(|| panic!("images/ must be a bare array: {images}"));
    assert!(
        images
            .iter()
            .any(|i| i["shortname"] == "bookworm" && i["image"].is_string()),
        "{images:?}"
    );

    let (status, quota) = call(client.get(b("quota/"))).await;
    assert_eq!(status, 200);
    let categories = quota["categories"]
        .as_array()
        .unwrap_or_else(|| panic!("{quota}"));
    assert!(!categories.is_empty());
    for c in categories {
        assert!(c["name"].is_string() && c["items"].is_array(), "{c}");
    }

    write_log(&s, "daemon.out", &["alpha", "beta"]);
    let resp = client
        .get(b("logs/daemon"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.text().await.unwrap_or_default();
    let entries: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert_eq!(entries.len(), 2, "{text}");
    assert_eq!(entries[1]["message"], "beta");
    assert!(entries[0]["datetime"].is_string() && entries[0]["pod"].is_string());

    let (status, body) = call(client.delete(b("delete/once"))).await;
    assert_eq!((status, &body), (200, &json!("")));
    let (status, body) = call(client.delete(b("flush/"))).await;
    assert_eq!((status, &body), (200, &json!("")));
    let (status, list) = call(client.get(b("list/"))).await;
    assert_eq!((status, &list), (200, &json!([])));
}

/// One server, one job, both shapes at once; errors in each generation's shape.
#[tokio::test(flavor = "multi_thread")]
async fn one_server_serves_every_generation() {
    let s = Setup::new("gen-alice");
    let client = s.client();
    let tool = &s.tool;
    let (status, _) = call(client.delete(s.gw.direct_url("/jobs/api/v1/jobs/"))).await;
    assert_eq!(status, 200);
    let (status, body) = call(client.post(s.gw.direct_url("/jobs/api/v1/jobs/")).json(
        &json!({"name": "shared", "imagename": "bookworm", "cmd": "./run.sh",
                          "emails": "none", "retry": 0, "schedule": "@hourly", "filelog": true}),
    ))
    .await;
    assert_eq!(status, 201, "{body}");

    let (status, old) = call(client.get(s.gw.direct_url("/jobs/api/v1/jobs/shared"))).await;
    assert_eq!(status, 200);
    assert_eq!(old["name"], "shared");
    assert_eq!(old["filelog"], "True");
    assert_eq!(old["schedule"], "@hourly");
    assert!(old["status_short"].is_string(), "{old}");
    assert!(
        old.get("job").is_none() && old.get("job_type").is_none(),
        "{old}"
    );

    let (status, new) =
        call(client.get(s.gw.direct_url(&format!("/jobs/v1/tool/{tool}/jobs/shared")))).await;
    assert_eq!(status, 200);
    let job = &new["job"];
    assert_eq!(job["name"], "shared");
    assert_eq!(job["job_type"], "scheduled");
    assert_eq!(job["filelog"], true);
    assert_eq!(job["imagename"], "bookworm");
    assert_eq!(job["schedule"], "@hourly");
    assert!(job["status"]["short"].is_string(), "{new}");

    let (status, err) = call(client.get(s.gw.direct_url("/jobs/api/v1/jobs/nosuch"))).await;
    assert_eq!(status, 404);
    assert_eq!(err["message"], "Job 'nosuch' does not exist", "{err}");
    assert!(err["data"].is_object(), "{err}");
    let (status, err) =
        call(client.get(s.gw.direct_url(&format!("/jobs/v1/tool/{tool}/jobs/nosuch")))).await;
    assert_eq!(status, 404);
    assert_eq!(
        err["error"],
        json!(["Job 'nosuch' does not exist"]),
        "{err}"
    );

    let (status, _) =
        call(client.delete(s.gw.direct_url(&format!("/jobs/v1/tool/{tool}/jobs/")))).await;
    assert_eq!(status, 200);
}

/// The `Resources:` row of a `show` table (both CLIs print `| Resources: | <value> |`).
fn resources_row(show: &CliOutput) -> String {
    show.stdout
        .lines()
        .find(|l| l.contains("Resources:"))
        .map(|l| {
            l.split('|')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .nth(1)
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_else(|| panic!("no Resources row: {show}"))
}

/// `memory` and `cpu` in release 13/14 replies: present when the job has a limit that differs
/// from the 2023 server's defaults (`512Mi`, `500m`, compared with what the apiserver
/// returns), absent otherwise (spec §1.2.2), so the CLIs show the values or `default`; 16.x
/// always gets both, normalised.
#[tokio::test(flavor = "multi_thread")]
async fn resources_are_reported_as_each_generation_s_server_did() {
    let s = Setup::new("cli-resources");
    let r14 = s.cli("r14");
    let r16 = s.cli("r16");
    r14.ok(&["flush"]);
    let run = |cli: &RealCli, name: &str, kind: &[&str], mem: &str, cpu: &str| {
        let mut args = vec!["run", name, "--command", "./work.sh", "--image", "bookworm"];
        args.extend_from_slice(kind);
        if !mem.is_empty() {
            args.extend_from_slice(&["--mem", mem]);
        }
        if !cpu.is_empty() {
            args.extend_from_slice(&["--cpu", cpu]);
        }
        cli.ok(&args);
    };
    run(&r14, "small", &[], "256Mi", "250m");
    run(&r14, "nightly", &["--schedule", "@daily"], "2Gi", "750m");
    run(&r14, "daemon", &["--continuous"], "3Gi", "");
    run(&r16, "cpu-only", &[], "", "1");
    // the platform defaults, given explicitly: the apiserver stores cpu 0.5 as 500m, and the
    // 2023 server compared that text with its defaults
    run(&r14, "as-default", &[], "512Mi", "0.5");
    run(&r14, "plain", &[], "", "");

    // (job, release 14 Resources row, 16.2.3 Resources row)
    let want = [
        ("small", "mem: 256Mi, cpu: 250m", "mem: 0.25Gi, cpu: 0.25"),
        ("nightly", "mem: 2Gi, cpu: 750m", "mem: 2.0Gi, cpu: 0.75"),
        (
            "daemon",
            "mem: 3Gi, cpu: default",
            "mem: 3.0Gi, cpu: default",
        ),
        ("cpu-only", "mem: default, cpu: 1", "mem: default, cpu: 1.0"),
        ("as-default", "default", "mem: default, cpu: 0.5"),
        ("plain", "default", "default"),
    ];
    for (job, old, new) in want {
        let shown = r14.ok(&["show", job]);
        assert_eq!(resources_row(&shown), old, "release 14 show {job}: {shown}");
        let shown = r16.ok(&["show", job]);
        assert_eq!(resources_row(&shown), new, "16.2.3 show {job}: {shown}");
    }
    let long = r14.ok(&["list", "-o", "long"]);
    assert!(long.stdout.contains("mem: 256Mi, cpu: 250m"), "{long}");

    // release 13 (not on PyPI) reads the same keys from list/ and show/N
    let client = s.client();
    let b = |p: &str| s.gw.direct_url(&format!("/jobs/api/v1/{p}"));
    let (status, list) = call(client.get(b("list/"))).await;
    assert_eq!(status, 200, "{list}");
    let listed = |job: &str| {
        list.as_array()
            .and_then(|a| a.iter().find(|j| j["name"] == job))
            .cloned()
            .unwrap_or_else(|| panic!("{job} not listed: {list}"))
    };
    let resources = |j: &Value| (j.get("memory").cloned(), j.get("cpu").cloned());
    for (job, memory, cpu) in [
        ("small", Some("256Mi"), Some("250m")),
        ("nightly", Some("2Gi"), Some("750m")),
        ("daemon", Some("3Gi"), None),
        ("cpu-only", None, Some("1")),
        ("as-default", None, None),
        ("plain", None, None),
    ] {
        let expected = (memory.map(|m| json!(m)), cpu.map(|c| json!(c)));
        assert_eq!(resources(&listed(job)), expected, "list/ {job}");
        let (status, shown) = call(client.get(b(&format!("show/{job}")))).await;
        assert_eq!(status, 200, "{shown}");
        assert_eq!(resources(&shown), expected, "show/{job}");
    }
    // the keys come last, after retry/schedule/continuous, as the 2023 server emitted them
    let keys: Vec<String> = listed("nightly")
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    assert_eq!(
        keys[keys.len() - 4..],
        ["schedule", "schedule_actual", "memory", "cpu"],
        "{keys:?}"
    );
    r14.ok(&["flush"]);
}

/// Asserts a 16.x error reply: the status and the text, in `error` and in `messages.error`.
fn v1_error(reply: &(u16, Value), status: u16, text: &str, what: &str) {
    let (got, body) = reply;
    assert_eq!(*got, status, "{what}: {body}");
    assert_eq!(body["error"], json!([text]), "{what}: {body}");
    assert_eq!(body["messages"]["error"], json!([text]), "{what}: {body}");
}

/// `call`, waiting out the gateway's per-tool write rate limit (429): the next test writes
/// more than its burst allows.
async fn call_patiently(req: reqwest::RequestBuilder) -> (u16, Value) {
    loop {
        let attempt = req
            .try_clone()
            .unwrap_or_else(|| panic!("a request that can't be sent twice"));
        let reply = call(attempt).await;
        if reply.0 != 429 {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
}

/// Every error text the 16.x routes share with the real server (spec §1.3, §3.3, §3.5, §5.3,
/// §6), word for word, and the info messages of PATCH.
#[tokio::test(flavor = "multi_thread")]
async fn v1_error_texts_are_the_real_server_s() {
    let s = Setup::new("v1-texts");
    let client = s.client();
    let tool = s.tool.clone();
    let url = |p: &str| s.gw.direct_url(&format!("/jobs/v1/tool/{tool}/{p}"));
    let (status, _) = call_patiently(client.delete(url("jobs/"))).await;
    assert_eq!(status, 200);
    let post = |body: Value| client.post(url("jobs/")).json(&body);
    let job = |name: &str| json!({"name": name, "imagename": "bookworm", "cmd": "./x.sh", "job_type": "one-off"});

    // run: a job that keeps running, so its name stays taken (a completed one-off job would
    // be run again under its name, and a failed one is removed after its TTL)
    let (status, body) = call_patiently(post(
        json!({"name": "once", "imagename": "bookworm", "cmd": "sleep 600", "job_type": "one-off"}),
    ))
    .await;
    assert_eq!(status, 201, "{body}");
    let rules = "See the documentation for the naming rules: https://w.wiki/6YL8";
    let cases: Vec<(Value, u16, String, &str)> = vec![
        (job("once"), 409, "A job with the name once already exists".into(), "a taken name"),
        (job(""), 400, format!("Job name is required. {rules}"), "an empty name"),
        (job("Bad_Name"), 400, format!("Invalid job name. {rules}"), "a bad name"),
        (
            job(&"a".repeat(53)),
            400,
            format!("Invalid job name, it can't be longer than 52 characters. {rules}"),
            "a long name",
        ),
        (
            json!({"name": "img", "imagename": "nosuch", "cmd": "x", "job_type": "one-off"}),
            400,
            "No such image 'nosuch'".into(),
            "an unknown image",
        ),
        (
            json!({"name": "cron", "imagename": "bookworm", "cmd": "x", "job_type": "scheduled", "schedule": "wrong"}),
            400,
            "Unable to parse cron expression \"wrong\": Expected to find 5 space-separated values, found 1".into(),
            "a bad schedule",
        ),
        (
            json!({"name": "web", "imagename": "bookworm", "cmd": "x", "job_type": "continuous",
                   "health_check": {"type": "http", "path": "/healthz"}}),
            400,
            "Port must be set for HTTP health checks".into(),
            "an http check without a port",
        ),
        (
            json!({"name": "nomount", "imagename": "bookworm", "cmd": "x", "job_type": "one-off", "mount": "none"}),
            400,
            "File logging is only available with --mount=all".into(),
            "file logs without storage",
        ),
        (
            json!({"name": "big", "imagename": "bookworm", "cmd": "x", "job_type": "one-off", "memory": "8Gi"}),
            400,
            "Requested memory 8Gi is over maximum allowed per container (4Gi)".into(),
            "memory over the LimitRange",
        ),
        (
            json!({"name": "big", "imagename": "bookworm", "cmd": "x", "job_type": "one-off", "cpu": "2"}),
            400,
            "Requested CPU 2 is over maximum allowed per container (1)".into(),
            "cpu over the LimitRange",
        ),
    ];
    for (body, status, text, what) in &cases {
        v1_error(
            &call_patiently(post(body.clone())).await,
            *status,
            text,
            what,
        );
    }

    // show, delete, restart
    let missing = "Job 'nosuch' does not exist";
    v1_error(
        &call_patiently(client.get(url("jobs/nosuch"))).await,
        404,
        missing,
        "show",
    );
    v1_error(
        &call_patiently(client.delete(url("jobs/nosuch"))).await,
        404,
        missing,
        "delete",
    );
    v1_error(
        &call_patiently(client.post(url("jobs/nosuch/restart"))).await,
        404,
        missing,
        "restart",
    );
    v1_error(
        &call_patiently(client.post(url("jobs/once/restart"))).await,
        400,
        "Unable to restart a one-off job",
        "restart of a one-off job",
    );

    // logs (16.1 reads them from the jobs API); the lines are read before the name
    for (path, status, text) in [
        (
            "jobs/once/logs?lines=abc",
            400,
            "Unable to parse lines as integer".to_string(),
        ),
        (
            "jobs/once/logs?lines=6000",
            400,
            "Requested number of 6000 lines is over limit of 5000".into(),
        ),
        (
            "jobs/Bad_Name/logs?lines=abc",
            400,
            "Unable to parse lines as integer".into(),
        ),
        (
            "jobs/Bad_Name/logs",
            400,
            format!("Invalid job name. {rules}"),
        ),
        (
            "jobs/nosuch/logs",
            404,
            "Job 'nosuch' does not have any logs available".into(),
        ),
        // file logs on, nothing written yet
        (
            "jobs/once/logs",
            404,
            "Job 'once' does not have any logs available".into(),
        ),
    ] {
        v1_error(
            &call_patiently(client.get(url(path))).await,
            status,
            &text,
            path,
        );
    }

    // another tool's path (era D's check)
    let other = s.gw.direct_url("/jobs/v1/tool/someone-else/jobs/");
    v1_error(
        &call_patiently(client.get(other)).await,
        403,
        &format!("Toolname mismatch: expected 'someone-else', got '{tool}'"),
        "another tool's path",
    );

    // PATCH (load): the real server's info messages
    let patch = |cmd: &str| {
        client
            .patch(url("jobs/"))
            .json(&json!({"name": "nightly", "imagename": "bookworm",
            "cmd": cmd, "job_type": "scheduled", "schedule": "@daily"}))
    };
    for (cmd, info, changed) in [
        ("./a.sh", "Job nightly created in storage and runtime", true),
        ("./a.sh", "Job nightly is already up to date", false),
        (
            "./b.sh",
            "Job nightly was updated in storage and runtime",
            true,
        ),
    ] {
        let (status, body) = call_patiently(patch(cmd)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["messages"]["info"], json!([info]), "{body}");
        assert_eq!(body["job_changed"], changed, "{body}");
    }
    let (status, body) = call_patiently(client.patch(url("jobs/")).json(&job("once"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["messages"]["info"],
        json!(["OneOffJobs can't be updated, delete and recreate it instead"]),
        "{body}"
    );

    // run, delete, restart and flush: empty messages, as the real server's
    let empty = json!({"info": [], "warning": [], "error": []});
    let (status, body) = call_patiently(client.post(url("jobs/nightly/restart"))).await;
    assert_eq!(
        (status, &body),
        (200, &json!({"messages": empty})),
        "{body}"
    );
    let (status, body) = call_patiently(post(job("second"))).await;
    assert_eq!((status, &body["messages"]), (201, &empty), "{body}");
    let (status, body) = call_patiently(client.delete(url("jobs/second"))).await;
    assert_eq!(
        (status, &body),
        (200, &json!({"messages": empty})),
        "{body}"
    );

    // an exceeded ResourceQuota, as the apiserver reports it
    let quotas = Api::<ResourceQuota>::namespaced(s.admin.clone(), &s.ns());
    let quota: ResourceQuota = serde_json::from_value(json!({
        "metadata": {"name": "no-cronjobs"},
        "spec": {"hard": {"count/cronjobs.batch": "1"}},
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    quotas
        .create(&PostParams::default(), &quota)
        .await
        .unwrap_or_else(|e| panic!("creating the ResourceQuota: {e}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = call_patiently(post(json!({"name": "cron2", "imagename": "bookworm",
            "cmd": "x", "job_type": "scheduled", "schedule": "@daily"})))
        .await;
        // until the quota controller has counted, the apiserver says "status unknown"
        if status != 201
            && body["error"][0]
                .as_str()
                .is_some_and(|e| e.starts_with("Out of quota"))
        {
            v1_error(
                &(status, body),
                403,
                "Out of quota for this kind of job. Please see https://w.wiki/6YLP for details.",
                "an exceeded ResourceQuota",
            );
            break;
        }
        assert!(status != 201, "created beyond the quota: {body}");
        assert!(Instant::now() < deadline, "the quota never applied: {body}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    quotas
        .delete("no-cronjobs", &Default::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let (status, body) = call_patiently(client.delete(url("jobs/"))).await;
    assert_eq!(
        (status, &body),
        (200, &json!({"messages": empty})),
        "{body}"
    );
}

/// The local jobs ingress (ingress/nginx), in front of a gateway's ingress listener.
struct Nginx {
    run_dir: tempfile::TempDir,
    port: u16,
}

impl Nginx {
    fn start(setup: &Setup) -> Self {
        let run_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port();
            let out = std::process::Command::new("bash")
                .arg(repo().join("ingress/nginx/start.sh"))
                .arg(run_dir.path())
                .env("CERTS_DIR", setup.pki.path(""))
                .env("CLIENT_CA", &setup.pki.cluster.ca)
                .env("INGRESS_PORT", port.to_string())
                .env("GATEWAY_UPSTREAM", setup.gw.ingress_url(""))
                .output()
                .unwrap_or_else(|e| panic!("starting nginx: {e}"));
            if out.status.success() {
                return Self { run_dir, port };
            }
            last = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        panic!("the jobs ingress did not start: {last}")
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(repo().join("ingress/nginx/stop.sh"))
            .arg(self.run_dir.path())
            .output();
    }
}

/// Both CLIs through the nginx jobs ingress (as in production, behind the API gateway).
#[tokio::test(flavor = "multi_thread")]
async fn both_clis_through_the_nginx_ingress() {
    let s = Setup::new("cli-nginx");
    let nginx = Nginx::start(&s);
    for (venv, job) in [("r14", "via14"), ("r16", "via16")] {
        let cli = RealCli::new(venv, &s.pki, &s.tool, &nginx.url());
        cli.ok(&[
            "run",
            job,
            "--command",
            "./x.sh",
            "--image",
            "bookworm",
            "--continuous",
        ]);
        let show = cli.ok(&["show", job]);
        assert!(show.stdout.contains("continuous"), "{show}");
        assert!(show.stdout.contains("./x.sh"), "{show}");
        write_log(&s, &format!("{job}.out"), &["via the ingress"]);
        let logs = cli.ok(&["logs", job]);
        assert!(logs.stdout.contains("via the ingress"), "{logs}");
        assert!(cli.ok(&["images"]).stdout.contains("bookworm"));
        cli.ok(&["restart", job]);
        cli.ok(&["delete", job]);
        let missing = cli.run(&["show", job]);
        assert_eq!(missing.code, 1, "{missing}");
    }
    // the requests really went through nginx
    let access = std::fs::read_to_string(nginx.run_dir.path().join("access.log"))
        .unwrap_or_else(|e| panic!("{e}"));
    for want in [
        "/jobs/api/v1/jobs/via14",
        "/jobs/v1/tool/cli-nginx/jobs/via16",
        "/logs/v1/tool/cli-nginx/job/via16/logs",
    ] {
        assert!(
            access.contains(want),
            "{want} not in the access log:\n{access}"
        );
    }
    let both = s.cli("r16");
    assert!(both.ok(&["list", "-o", "name"]).lines().is_empty());
}
