//! Job features against the genuine apiserver: the image list reloading, LimitRange checks,
//! Deployment mode, status through a job's life (run by the node), followed logs and
//! deterministic schedules.

mod common;

use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, ListParams};
use serde_json::json;

#[tokio::test]
async fn the_image_list_reloads_when_its_file_changes() {
    let cluster = cluster();
    let pki = Pki::new(&cluster);
    let tool = "img-alice";
    provision(&pki, tool);
    let file = pki.dir.path().join("images-v1.yaml");
    std::fs::write(
        &file,
        "bookworm:\n  state: stable\n  variants:\n    jobs-framework: {image: registry.example/bookworm}\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let images_file = file.display().to_string();
    let gw = Gateway::start(&pki, &[("JOBS_GATEWAY_IMAGES_FILE", images_file.as_str())]);
    let (c, k) = pki.tool_cert(tool);
    let client = https(&cluster.ca, Some((&c, &k)));
    call(client.delete(gw.direct_url("/jobs/api/v1/flush/"))).await;
    let (status, images) = call(client.get(gw.direct_url("/jobs/api/v1/images/"))).await;
    assert_eq!(status, 200);
    assert_eq!(
        images,
        json!([{"shortname": "bookworm", "image": "registry.example/bookworm:latest"}])
    );
    let (status, body) = call(
        client
            .post(gw.direct_url("/jobs/api/v1/jobs/"))
            .json(&json!({"name": "py", "imagename": "python3.13", "cmd": "true"})),
    )
    .await;
    assert_eq!(status, 400);
    let msg = body["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("No such image 'python3.13'") && msg.contains("bookworm"),
        "{msg}"
    );

    // the ConfigMap (file) gains an image; no restart
    std::fs::write(
        &file,
        "bookworm:\n  state: stable\n  variants:\n    jobs-framework: {image: registry.example/bookworm}\n\
         python3.13:\n  state: stable\n  aliases: [tf-python313]\n  variants:\n    jobs-framework: {image: registry.example/python313}\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, images) = call(client.get(gw.direct_url("/jobs/api/v1/images/"))).await;
        if images.to_string().contains("python3.13") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new image never appeared: {images}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (status, body) = call(
        client
            .post(gw.direct_url("/jobs/api/v1/jobs/"))
            .json(&json!({"name": "py", "imagename": "tf-python313", "cmd": "true"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["image"], "python3.13");
    // a broken file keeps the last good list
    std::fs::write(&file, "::: not yaml").unwrap_or_else(|e| panic!("{e}"));
    tokio::time::sleep(Duration::from_secs(7)).await;
    let (_, images) = call(client.get(gw.direct_url("/jobs/api/v1/images/"))).await;
    assert!(images.to_string().contains("python3.13"), "{images}");
    call(client.delete(gw.direct_url("/jobs/api/v1/flush/"))).await;
}

#[tokio::test]
async fn memory_and_cpu_are_checked_against_the_limit_range_before_anything_is_created() {
    let cluster = cluster();
    let pki = Pki::new(&cluster);
    let tool = "lr-alice";
    provision(&pki, tool);
    let gw = Gateway::start(&pki, &[]);
    let (c, k) = pki.tool_cert(tool);
    let client = https(&cluster.ca, Some((&c, &k)));
    call(client.delete(gw.direct_url("/jobs/api/v1/flush/"))).await;
    let run = |mem: &str, cpu: &str| json!({"name": "big", "imagename": "bookworm", "cmd": "true", "memory": mem, "cpu": cpu});
    let (status, body) = call(
        client
            .post(gw.direct_url("/jobs/api/v1/jobs/"))
            .json(&run("8Gi", "500m")),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["message"],
        "Requested memory 8Gi is over maximum allowed per container (4Gi)"
    );
    let (status, body) = call(
        client
            .post(gw.direct_url("/jobs/api/v1/jobs/"))
            .json(&run("1Gi", "2")),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["message"],
        "Requested CPU 2 is over maximum allowed per container (1)"
    );
    let jobs = Api::<Job>::namespaced(admin(&cluster), "tool-lr-alice")
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(jobs.items.is_empty(), "a refused job was created");
    let (status, body) = call(
        client
            .post(gw.direct_url("/jobs/api/v1/jobs/"))
            .json(&run("1Gi", "750m")),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (body["memory"].as_str(), body["cpu"].as_str()),
        (Some("1Gi"), Some("750m"))
    );
    let job = Api::<Job>::namespaced(admin(&cluster), "tool-lr-alice")
        .get("big")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let res = serde_json::to_value(job.spec.map(|s| s.template).unwrap_or_default())
        .unwrap_or_default()["spec"]["containers"][0]["resources"]
        .clone();
    assert_eq!(res["limits"], json!({"memory": "1Gi", "cpu": "750m"}));
    // over the 512Mi/500m platform defaults the request is half the limit
    assert_eq!(
        res["requests"],
        json!({"memory": "536870912", "cpu": "375m"})
    );
    call(client.delete(gw.direct_url("/jobs/api/v1/flush/"))).await;
}

#[tokio::test]
async fn continuous_jobs_can_run_as_deployments() {
    let cluster = cluster();
    let pki = Pki::new(&cluster);
    let tool = "dep-alice";
    provision(&pki, tool);
    let gw = Gateway::start(&pki, &[("JOBS_GATEWAY_CONTINUOUS_KIND", "deployment")]);
    let (c, k) = pki.tool_cert(tool);
    let client = https(&cluster.ca, Some((&c, &k)));
    call(client.delete(gw.direct_url("/jobs/v1/tool/dep-alice/jobs/"))).await;
    let (status, body) = call(
        client
            .post(gw.direct_url("/jobs/v1/tool/dep-alice/jobs/"))
            .json(&json!({"name": "web", "imagename": "bookworm", "cmd": "serve", "job_type": "continuous", "replicas": 2, "port": 8000})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let deployments = Api::<Deployment>::namespaced(admin(&cluster), "tool-dep-alice");
    let d = deployments
        .get("web")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let spec = d.spec.clone().unwrap_or_default();
    assert_eq!(spec.replicas, Some(2));
    let container = spec.template.spec.clone().unwrap_or_default().containers;
    assert_eq!(
        container[0].ports.as_ref().map(|p| p[0].container_port),
        Some(8000)
    );
    assert!(
        container[0].liveness_probe.is_some(),
        "a port gets a TCP liveness probe"
    );
    let (status, shown) = call(client.get(gw.direct_url("/jobs/v1/tool/dep-alice/jobs/web"))).await;
    assert_eq!(status, 200);
    assert_eq!(shown["job"]["job_type"], "continuous");
    assert_eq!(shown["job"]["replicas"], 2);
    let (status, _) =
        call(client.post(gw.direct_url("/jobs/v1/tool/dep-alice/jobs/web/restart"))).await;
    assert_eq!(status, 200);
    let d = deployments
        .get("web")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let restarted = d
        .spec
        .and_then(|s| s.template.metadata)
        .and_then(|m| m.annotations)
        .and_then(|a| a.get("app.kubernetes.io/restartedAt").cloned());
    assert!(restarted.is_some(), "restart rolls the pods");
    let (status, _) = call(client.delete(gw.direct_url("/jobs/v1/tool/dep-alice/jobs/web"))).await;
    assert_eq!(status, 200);
    assert!(
        deployments.get("web").await.is_err(),
        "the Deployment is gone"
    );
}

#[tokio::test]
async fn a_job_goes_running_then_completed_in_both_status_shapes() {
    let cluster = cluster();
    let pki = Pki::new(&cluster);
    let tool = "life-alice";
    provision(&pki, tool);
    let gw = Gateway::start(&pki, &[]);
    let (c, k) = pki.tool_cert(tool);
    let client = https(&cluster.ca, Some((&c, &k)));
    call(client.delete(gw.direct_url("/jobs/api/v1/flush/"))).await;
    let (status, body) = call(
        client
            .post(gw.direct_url("/jobs/api/v1/jobs/"))
            .json(&json!({"name": "life", "imagename": "bookworm", "cmd": "sleep 8"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let v1 = || gw.direct_url("/jobs/v1/tool/life-alice/jobs/life");
    let old = || gw.direct_url("/jobs/api/v1/jobs/life");

    // the node starts the pod (pending lasts only as long as the sandbox takes)
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, shown) = call(client.get(v1())).await;
        let short = shown["job"]["status"]["short"].as_str().unwrap_or_default();
        if short == "running" {
            break;
        }
        assert!(
            ["pending", "unknown"].contains(&short),
            "before running: {shown}"
        );
        assert!(Instant::now() < deadline, "never running: {shown}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // "Running for" needs the Job's own status (active, startTime), which the job controller
    // writes after making the pod: it may come a moment later
    let deadline = Instant::now() + Duration::from_secs(15);
    let old_shown = loop {
        let (_, old_shown) = call(client.get(old())).await;
        let short = old_shown["status_short"].as_str().unwrap_or_default();
        if short.starts_with("Running for") {
            break old_shown;
        }
        assert!(
            Instant::now() < deadline,
            "never 'Running for': {old_shown}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        old_shown["status_long"]
            .as_str()
            .unwrap_or_default()
            .contains("Pod in 'Running' phase"),
        "{old_shown}"
    );

    // `sleep 8` ends: the Job completes
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, old_shown) = call(client.get(old())).await;
        if status == 404 {
            break; // the finished Job was already removed by its TTL
        }
        if old_shown["status_short"] == "Completed" {
            let (_, shown) = call(client.get(v1())).await;
            assert_eq!(shown["job"]["status"]["short"], "succeeded", "{shown}");
            break;
        }
        assert!(Instant::now() < deadline, "never completed: {old_shown}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn logs_follow_streams_new_lines_and_scheduled_times_are_deterministic() {
    let cluster = cluster();
    let pki = Pki::new(&cluster);
    let tool = "tf-test";
    provision(&pki, tool);
    let gw = Gateway::start(&pki, &[]);
    let (c, k) = pki.tool_cert(tool);
    let client = https(&cluster.ca, Some((&c, &k)));
    call(client.delete(gw.direct_url("/jobs/api/v1/flush/"))).await;
    // the spec's vector: seed "tool-tf-test myjob" spreads @daily to 52 16 * * *
    let (status, body) = call(
        client
            .post(gw.direct_url("/jobs/api/v1/jobs/"))
            .json(&json!({"name": "myjob", "imagename": "bookworm", "cmd": "./daily.sh", "schedule": "@daily", "filelog": true})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (body["schedule"].as_str(), body["schedule_actual"].as_str()),
        (Some("@daily"), Some("52 16 * * *"))
    );

    let log = pki.home_root.join(tool).join("myjob.out");
    std::fs::write(&log, "earlier\n").unwrap_or_else(|e| panic!("{e}"));
    let mut resp = follow_logs(
        &client,
        gw.direct_url("/jobs/api/v1/jobs/myjob/logs?follow=true&lines=10"),
    )
    .await;
    let mut seen = String::new();
    let mut appended = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !seen.contains("later") {
        assert!(
            Instant::now() < deadline,
            "followed lines never arrived: {seen}"
        );
        if !appended && seen.contains("earlier") {
            append_line(&log, "later");
            appended = true;
        }
        match tokio::time::timeout(Duration::from_secs(5), resp.chunk()).await {
            Ok(Ok(Some(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            Ok(other) => panic!("stream ended: {other:?} after {seen}"),
            Err(_) => {}
        }
    }
    for line in seen.lines() {
        let entry: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(entry["pod"], "myjob");
        assert!(entry["datetime"].is_string());
    }
    call(client.delete(gw.direct_url("/jobs/api/v1/flush/"))).await;
}
