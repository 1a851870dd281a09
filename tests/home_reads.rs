//! The gateway reads a tool's home only as the tool itself could (issue 16): file logs and
//! credentials are opened beneath the home with `openat2` (no symbolic link, nothing outside
//! the home, whatever is swapped meanwhile) and must be regular files of the home's owner with
//! one link. A hard link to another tool's file, a link, a file of another uid, a FIFO or a
//! device node is refused with 403 naming no server path; other tools carry on.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use serde_json::json;

/// What bob keeps to himself; no reply to alice may contain it.
const SECRET: &str = "bob's secret line";

fn logs_url(gw: &Gateway, tool: &str, job: &str) -> String {
    gw.direct_url(&format!("/logs/v1/tool/{tool}/job/{job}/logs"))
}

fn cstring(path: &Path) -> std::ffi::CString {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap_or_else(|e| panic!("{e}"))
}

fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .unwrap_or_else(|e| panic!("{e}"));
}

fn remove(path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path).unwrap_or_else(|e| panic!("{e}")),
        Ok(_) => std::fs::remove_file(path).unwrap_or_else(|e| panic!("{e}")),
        Err(_) => {}
    }
}

/// Puts `new` at `path` in one step, whatever `path` is now: a job's pod on the node may
/// create or hold the log file at any moment, so it is never removed and made again.
fn put_in_place(new: &Path, path: &Path) {
    let (a, b) = (cstring(new), cstring(path));
    // SAFETY: NUL-terminated paths that outlive the call
    let swapped = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if swapped == 0 {
        remove(new);
    } else {
        std::fs::rename(new, path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

fn mkfifo(path: &Path) {
    let p = cstring(path);
    // SAFETY: a NUL-terminated path that outlives the call
    let done = unsafe { libc::mkfifo(p.as_ptr(), 0o644) };
    assert_eq!(done, 0, "{}", std::io::Error::last_os_error());
}

/// A character device with /dev/zero's numbers: reading it would never end.
fn mknod_zero(path: &Path) {
    let p = cstring(path);
    // SAFETY: a NUL-terminated path that outlives the call
    let done = unsafe { libc::mknod(p.as_ptr(), libc::S_IFCHR | 0o644, libc::makedev(1, 5)) };
    assert_eq!(done, 0, "{}", std::io::Error::last_os_error());
}

/// A refusal as issue 16 wants it: 403, quickly, saying why, naming no server path and
/// showing nothing of bob's.
fn assert_refused(label: &str, status: u16, body: &serde_json::Value, why: &str, pki: &Pki) {
    let text = body.to_string();
    assert_eq!(status, 403, "{label}: {text}");
    assert!(text.contains(why), "{label}: wanted {why:?} in {text}");
    assert!(!text.contains(SECRET), "{label}: bob's file shown: {text}");
    let server_paths = [
        pki.dir.path().display().to_string(),
        std::fs::canonicalize(pki.dir.path())
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    ];
    for p in server_paths.iter().filter(|p| !p.is_empty()) {
        assert!(
            !text.contains(p.as_str()),
            "{label}: names a server path: {text}"
        );
    }
}

#[tokio::test]
async fn file_logs_are_read_only_as_the_tool_could() {
    let cluster = cluster();
    let pki = Pki::new(&cluster);
    let (alice_tool, bob_tool) = ("hr-alice", "hr-bob");
    provision(&pki, alice_tool);
    provision(&pki, bob_tool);
    let gw = Gateway::start(&pki, &[]);
    let client = |tool: &str| {
        let (c, k) = pki.tool_cert(tool);
        https(&cluster.ca, Some((&c, &k)))
    };
    let (alice, bob) = (client(alice_tool), client(bob_tool));
    let alice_home = pki.home_root.join(alice_tool);
    let bob_home = pki.home_root.join(bob_tool);
    let secret = bob_home.join("secret.txt");
    write_private(&secret, &format!("{SECRET}\n"));

    // bob has file logs of his own, which must keep working whatever alice does
    fresh_filelog_job(&bob, &gw, "lg").await;
    write_private(&bob_home.join("lg.out"), "bob's own log line\n");
    let bob_still_fine = || async {
        let (status, body) = call(bob.get(logs_url(&gw, bob_tool, "lg"))).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.to_string().contains("bob's own log line"), "{body}");
    };
    bob_still_fine().await;

    fresh_filelog_job(&alice, &gw, "lg").await;
    let out = alice_home.join("lg.out");
    std::fs::write(&out, "alice's line\n").unwrap_or_else(|e| panic!("{e}"));
    let (status, body) = call(alice.get(logs_url(&gw, alice_tool, "lg"))).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.to_string().contains("alice's line"), "{body}");

    type Setup<'a> = Box<dyn Fn(&Path) + 'a>;
    let cases: Vec<(&str, Setup, &str)> = vec![
        (
            // the report of issue 16: alice's log replaced by a hard link to bob's file
            "hard link to another home's file",
            Box::new(|p| std::fs::hard_link(&secret, p).unwrap_or_else(|e| panic!("{e}"))),
            "has more than one hard link",
        ),
        (
            "symbolic link to another home's file",
            Box::new(|p| std::os::unix::fs::symlink(&secret, p).unwrap_or_else(|e| panic!("{e}"))),
            "symbolic link",
        ),
        (
            "symbolic link that stays in the home",
            Box::new(|p| {
                std::fs::write(alice_home.join("real.out"), "x\n")
                    .unwrap_or_else(|e| panic!("{e}"));
                std::os::unix::fs::symlink("real.out", p).unwrap_or_else(|e| panic!("{e}"))
            }),
            "symbolic link",
        ),
        (
            "a file owned by another uid",
            Box::new(|p| {
                write_private(p, &format!("{SECRET}\n"));
                std::os::unix::fs::chown(p, Some(4242), Some(4242))
                    .unwrap_or_else(|e| panic!("{e}"))
            }),
            "not owned by the tool",
        ),
        ("a FIFO", Box::new(mkfifo), "not a regular file"),
        ("a device node", Box::new(mknod_zero), "not a regular file"),
        (
            "a directory",
            Box::new(|p| std::fs::create_dir(p).unwrap_or_else(|e| panic!("{e}"))),
            "not a regular file",
        ),
    ];
    let staged = alice_home.join("lg.new");
    for (label, setup, why) in &cases {
        remove(&staged);
        setup(&staged);
        put_in_place(&staged, &out);
        let started = Instant::now();
        let (status, body) = call(alice.get(logs_url(&gw, alice_tool, "lg"))).await;
        assert_refused(label, status, &body, why, &pki);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{label}: took {:?}",
            started.elapsed()
        );
        // the file is named as the tool knows it, relative to its home
        assert!(body.to_string().contains("lg.out"), "{label}: {body}");
        // the other generations' log routes refuse it the same way
        for url in [
            gw.direct_url("/jobs/api/v1/jobs/lg/logs"),
            gw.direct_url(&format!("/jobs/v1/tool/{alice_tool}/jobs/lg/logs")),
        ] {
            let (status, body) = call(alice.get(url.as_str())).await;
            assert_refused(&format!("{label} ({url})"), status, &body, why, &pki);
        }
        bob_still_fine().await;
    }
    remove(&alice_home.join("real.out"));

    // a log path configured outside the home (bob's file, by its absolute path) is refused
    // without the path being echoed
    let (status, body) = call(
        alice
            .post(gw.direct_url("/jobs/api/v1/jobs/"))
            .json(&json!({
                "name": "abs", "imagename": "bookworm", "cmd": "./work.sh", "filelog": true,
                "filelog_stdout": secret.display().to_string(),
            })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = call(alice.get(logs_url(&gw, alice_tool, "abs"))).await;
    assert_refused(
        "absolute path outside",
        status,
        &body,
        "outside the tool's home",
        &pki,
    );
    // … while an absolute path inside the home is read
    let (status, body) = call(
        alice
            .post(gw.direct_url("/jobs/api/v1/jobs/"))
            .json(&json!({
                "name": "absin", "imagename": "bookworm", "cmd": "./work.sh", "filelog": true,
                "filelog_stdout": alice_home.join("absin.log").display().to_string(),
            })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    std::fs::write(alice_home.join("absin.log"), "absolute but mine\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let (status, body) = call(alice.get(logs_url(&gw, alice_tool, "absin"))).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.to_string().contains("absolute but mine"), "{body}");

    // and alice's own, plain log file is read again
    std::fs::write(&staged, "alice's line again\n").unwrap_or_else(|e| panic!("{e}"));
    put_in_place(&staged, &out);
    let (status, body) = call(alice.get(logs_url(&gw, alice_tool, "lg"))).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.to_string().contains("alice's line again"), "{body}");
    bob_still_fine().await;
    call(alice.delete(gw.direct_url("/jobs/api/v1/flush/"))).await;
    call(bob.delete(gw.direct_url("/jobs/api/v1/flush/"))).await;
}

/// A followed log stops when its file is swapped for a link to another tool's file: the
/// reads while following are confined like the first one.
#[tokio::test]
async fn a_followed_log_never_follows_into_another_home() {
    let cluster = cluster();
    let pki = Pki::new(&cluster);
    let (alice_tool, bob_tool) = ("hr-follow-alice", "hr-follow-bob");
    provision(&pki, alice_tool);
    provision(&pki, bob_tool);
    let gw = Gateway::start(&pki, &[]);
    let (c, k) = pki.tool_cert(alice_tool);
    let alice = https(&cluster.ca, Some((&c, &k)));
    let secret = pki.home_root.join(bob_tool).join("secret.txt");
    write_private(&secret, &format!("{SECRET}\n"));
    fresh_filelog_job(&alice, &gw, "lg").await;
    let out = pki.home_root.join(alice_tool).join("lg.out");
    std::fs::write(&out, "first\n").unwrap_or_else(|e| panic!("{e}"));
    let mut resp = follow_logs(
        &alice,
        gw.direct_url("/jobs/api/v1/jobs/lg/logs?follow=true"),
    )
    .await;
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut swapped = false;
    loop {
        assert!(Instant::now() < deadline, "the stream never ended: {seen}");
        if !swapped && seen.contains("first") {
            // bob's file, hard-linked in place of alice's log: longer, so it looks appended
            let staged = out.with_extension("new");
            std::fs::hard_link(&secret, &staged).unwrap_or_else(|e| panic!("{e}"));
            put_in_place(&staged, &out);
            swapped = true;
        }
        match tokio::time::timeout(Duration::from_secs(5), resp.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                seen.push_str(&String::from_utf8_lossy(&chunk));
                // read on from where alice's file ended, bob's would show its end
                assert!(!seen.contains("secret line"), "bob's file followed: {seen}");
            }
            Ok(Ok(None)) => break,
            Ok(Err(e)) => panic!("{e}: after {seen}"),
            Err(_) => {}
        }
    }
    assert!(swapped && seen.contains("first"), "{seen}");
}

#[tokio::test]
async fn a_directory_swapped_for_a_link_in_a_tight_loop_never_leads_out() {
    let cluster = cluster();
    let pki = Pki::new(&cluster);
    let (alice_tool, bob_tool) = ("hr-race-alice", "hr-race-bob");
    provision(&pki, alice_tool);
    provision(&pki, bob_tool);
    // 200 reads of one tool in a few seconds: above the default rate limit
    let gw = Gateway::start(
        &pki,
        &[
            ("JOBS_GATEWAY_RATE_PER_SEC", "1000"),
            ("JOBS_GATEWAY_RATE_BURST", "1000"),
        ],
    );
    let (c, k) = pki.tool_cert(alice_tool);
    let alice = https(&cluster.ca, Some((&c, &k)));
    let alice_home = pki.home_root.join(alice_tool);
    let bob_home = pki.home_root.join(bob_tool);
    call(alice.delete(gw.direct_url("/jobs/api/v1/flush/"))).await;
    let (status, body) = call(
        alice
            .post(gw.direct_url("/jobs/api/v1/jobs/"))
            .json(&json!({
                "name": "race", "imagename": "bookworm", "cmd": "./work.sh", "filelog": true,
                "filelog_stdout": "logs/race.out",
            })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    // alice's logs/race.out; bob's race.out at the same place below his home, and a link
    // `logs.swap` to bob's home that keeps trading places with alice's `logs` directory. A
    // check of the path followed by an open would, now and then, open bob's file.
    std::fs::create_dir(alice_home.join("logs")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(alice_home.join("logs/race.out"), "alice's race line\n")
        .unwrap_or_else(|e| panic!("{e}"));
    write_private(&bob_home.join("race.out"), &format!("{SECRET}\n"));
    std::os::unix::fs::symlink(&bob_home, alice_home.join("logs.swap"))
        .unwrap_or_else(|e| panic!("{e}"));

    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicU64::new(0));
    let swapper = std::thread::spawn({
        let (stop, swaps) = (stop.clone(), swaps.clone());
        let (a, b): (PathBuf, PathBuf) = (alice_home.join("logs"), alice_home.join("logs.swap"));
        move || {
            let (a, b) = (cstring(&a), cstring(&b));
            let deadline = Instant::now() + Duration::from_secs(120);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                // SAFETY: NUL-terminated paths that outlive the call
                let done = unsafe {
                    libc::renameat2(
                        libc::AT_FDCWD,
                        a.as_ptr(),
                        libc::AT_FDCWD,
                        b.as_ptr(),
                        libc::RENAME_EXCHANGE,
                    )
                };
                assert_eq!(done, 0, "{}", std::io::Error::last_os_error());
                swaps.fetch_add(1, Ordering::Relaxed);
            }
        }
    });

    let url = logs_url(&gw, alice_tool, "race");
    let reads = futures::stream::iter(0..200)
        .map(|_| call(alice.get(url.as_str())))
        .buffer_unordered(8)
        .collect::<Vec<_>>();
    let results = tokio::time::timeout(Duration::from_secs(90), reads).await;
    stop.store(true, Ordering::Relaxed);
    swapper
        .join()
        .unwrap_or_else(|_| panic!("the swapper failed"));
    let results = results.unwrap_or_else(|_| panic!("200 reads took more than 90 s"));

    let (mut read, mut refused) = (0, 0);
    for (status, body) in &results {
        let text = body.to_string();
        assert!(!text.contains(SECRET), "bob's file was read: {text}");
        match status {
            200 => {
                assert!(text.contains("alice's race line"), "{text}");
                read += 1;
            }
            403 => {
                assert_refused("swapped directory", *status, body, "symbolic link", &pki);
                refused += 1;
            }
            other => panic!("unexpected {other}: {text}"),
        }
    }
    let swaps = swaps.load(Ordering::Relaxed);
    eprintln!("200 reads during {swaps} swaps: {read} read alice's file, {refused} refused");
    assert!(swaps > 200, "only {swaps} swaps: the race was not run");
    // the swapping really happened under the reads: both states were met
    assert!(read > 0 && refused > 0, "{read} read, {refused} refused");
    call(alice.delete(gw.direct_url("/jobs/api/v1/flush/"))).await;
}

/// Copies a file out of the home (a tool's presented certificate stays usable).
fn copy_to(from: &Path, to: &Path) -> PathBuf {
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    to.to_path_buf()
}

fn kubeconfig(cert: &str, key: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts:\n- name: c\n  context: {{cluster: k, user: u}}\nusers:\n- name: u\n  user:\n    client-certificate: {cert}\n    client-key: {key}\n"
    )
}

#[tokio::test]
async fn credential_files_are_read_only_as_the_tool_could() {
    let cluster = cluster();
    let pki = Pki::new(&cluster);
    let tools = [
        "hr-c-hardlink",
        "hr-c-owner",
        "hr-c-fifo",
        "hr-c-device",
        "hr-c-kubeout",
        "hr-c-kubeabs",
        "hr-c-kuberel",
        "hr-c-kubelink",
    ];
    let bob_tool = "hr-c-bob";
    provision(&pki, bob_tool);
    let outside = pki.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap_or_else(|e| panic!("{e}"));
    let mut presented = std::collections::HashMap::new();
    for tool in tools {
        provision(&pki, tool);
        let (c, k) = pki.tool_cert(tool);
        let c = copy_to(&c, &outside.join(format!("{tool}.crt")));
        let k = copy_to(&k, &outside.join(format!("{tool}.key")));
        presented.insert(tool, (c, k));
    }
    let home = |tool: &str| pki.home_root.join(tool);
    let (bob_crt, bob_key) = pki.tool_cert(bob_tool);

    // the tool's own key, but as a hard link to a file outside its home: the certificate and
    // key checks would pass, the link count does not
    let key = home("hr-c-hardlink").join(".toolskube/client.key");
    remove(&key);
    std::fs::hard_link(&presented["hr-c-hardlink"].1, &key).unwrap_or_else(|e| panic!("{e}"));
    // the tool's own key, owned by another uid
    let key = home("hr-c-owner").join(".toolskube/client.key");
    std::os::unix::fs::chown(&key, Some(4242), None).unwrap_or_else(|e| panic!("{e}"));
    // a FIFO, refused at once (not waited on like a hung server)
    let crt = home("hr-c-fifo").join(".toolskube/client.crt");
    remove(&crt);
    mkfifo(&crt);
    let crt = home("hr-c-device").join(".toolskube/client.crt");
    remove(&crt);
    mknod_zero(&crt);
    // .kube/config naming bob's files by their absolute paths
    for tool in [
        "hr-c-kubeout",
        "hr-c-kubeabs",
        "hr-c-kuberel",
        "hr-c-kubelink",
    ] {
        remove(&home(tool).join(".toolskube/client.crt"));
        remove(&home(tool).join(".toolskube/client.key"));
    }
    let write = |path: PathBuf, text: &str| {
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    write(
        home("hr-c-kubeout").join(".kube/config"),
        &kubeconfig(
            &bob_crt.display().to_string(),
            &bob_key.display().to_string(),
        ),
    );
    // the Toolforge layout: absolute paths into the tool's own home (its root's real path,
    // as mint.sh writes them) …
    let certs = home("hr-c-kubeabs").join(".certs");
    std::fs::create_dir(&certs).unwrap_or_else(|e| panic!("{e}"));
    let real = std::fs::canonicalize(&certs).unwrap_or_else(|e| panic!("{e}"));
    copy_to(&presented["hr-c-kubeabs"].0, &certs.join("client.crt"));
    copy_to(&presented["hr-c-kubeabs"].1, &certs.join("client.key"));
    write(
        home("hr-c-kubeabs").join(".kube/config"),
        &kubeconfig(
            &real.join("client.crt").display().to_string(),
            &real.join("client.key").display().to_string(),
        ),
    );
    // … or paths relative to .kube/
    let certs = home("hr-c-kuberel").join(".certs");
    std::fs::create_dir(&certs).unwrap_or_else(|e| panic!("{e}"));
    copy_to(&presented["hr-c-kuberel"].0, &certs.join("client.crt"));
    copy_to(&presented["hr-c-kuberel"].1, &certs.join("client.key"));
    write(
        home("hr-c-kuberel").join(".kube/config"),
        &kubeconfig("../.certs/client.crt", "../.certs/client.key"),
    );
    // a relative path through a link to bob's credentials
    std::os::unix::fs::symlink(
        home(bob_tool).join(".toolskube"),
        home("hr-c-kubelink").join("bobs"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    write(
        home("hr-c-kubelink").join(".kube/config"),
        &kubeconfig("../bobs/client.crt", "../bobs/client.key"),
    );

    let gw = Gateway::start(&pki, &[]);
    for (tool, want, why) in [
        ("hr-c-hardlink", 403, "has more than one hard link"),
        ("hr-c-owner", 403, "not owned by the tool"),
        ("hr-c-fifo", 403, "not a regular file"),
        ("hr-c-device", 403, "not a regular file"),
        ("hr-c-kubeout", 403, "outside the tool's home"),
        ("hr-c-kubelink", 403, "symbolic link"),
        ("hr-c-kubeabs", 200, ""),
        ("hr-c-kuberel", 200, ""),
    ] {
        let (c, k) = &presented[tool];
        let client = https(&cluster.ca, Some((c, k)));
        let started = Instant::now();
        let (status, body) = call(client.get(gw.direct_url("/api/v1/list/"))).await;
        if want == 200 {
            assert_eq!(status, 200, "{tool}: {body}");
            continue;
        }
        assert_refused(tool, status, &body, why, &pki);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{tool}: took {:?}",
            started.elapsed()
        );
    }
    // bob is unaffected by all of it
    let (c, k) = pki.tool_cert(bob_tool);
    let bob = https(&cluster.ca, Some((&c, &k)));
    let (status, body) = call(bob.get(gw.direct_url("/api/v1/list/"))).await;
    assert_eq!(status, 200, "{body}");
}
