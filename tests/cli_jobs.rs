//! `toolforge-jobs run --wait`, `logs`, `load` and `dump` against the real gateway and
//! the local cluster, whose node runs the jobs.

mod cli_support;
mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use cli_support::*;
use common::append_line;

/// `run --wait` of a job the node runs with `command`.
async fn run_waiting(t: &Tool, job: &str, command: &str) -> Run {
    let mut cmd = t.cmd(&[
        "run",
        job,
        "--command",
        command,
        "--image",
        "bookworm",
        "--wait",
        "90",
    ]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().unwrap_or_else(|e| panic!("{e}"));
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"));
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_ends_with_the_job() {
    let t = Tool::new("cli-wait");
    t.ok(&["flush", "--yes"]);

    let ok = run_waiting(&t, "good", "sleep 2; echo done").await;
    assert_eq!(ok.code, 0, "{ok}");
    assert!(ok.stdout.contains("job 'good' completed"), "{ok}");
    assert!(
        !ok.stderr.contains('\r') && !ok.stderr.contains("waiting for"),
        "no spinner into a pipe: {ok}"
    );

    let bad = run_waiting(&t, "bad", "sleep 1; exit 3").await;
    assert_eq!(bad.code, 1, "{bad}");
    assert!(bad.stderr.contains("error: job 'bad' failed"), "{bad}");
    assert!(bad.stdout.contains("Job name:"), "the job is shown: {bad}");

    // a job nobody finishes: the wait times out with exit 2
    let slow = t.run(&[
        "run",
        "slow",
        "--command",
        "sleep 1000",
        "--image",
        "bookworm",
        "--wait",
        "2",
    ]);
    assert_eq!(slow.code, 2, "{slow}");
    assert!(slow.stderr.contains("timed out"), "{slow}");
}

#[test]
fn logs_print_the_job_output_and_follow_it() {
    let t = Tool::new("cli-logs");
    t.ok(&["flush", "--yes"]);
    t.ok(&[
        "run",
        "talk",
        "--command",
        "./talk.sh",
        "--image",
        "bookworm",
    ]);
    let out = t.pki.home_root.join(&t.name).join("talk.out");
    std::fs::write(&out, "first line\nsecond line\nthird line\n").unwrap_or_else(|e| panic!("{e}"));

    let all = t.ok(&["logs", "talk"]);
    let lines: Vec<&str> = all.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{all}");
    assert!(lines[0].ends_with("first line"), "time order: {all}");
    assert!(lines[2].ends_with("third line"), "{all}");
    assert!(lines[0].contains("[talk"), "the pod is named: {all}");
    let last = t.ok(&["logs", "talk", "-l", "1"]);
    assert_eq!(last.stdout.lines().count(), 1, "{last}");
    assert!(last.stdout.trim_end().ends_with("third line"), "{last}");
    let json = t.ok(&["logs", "talk", "--json"]);
    for l in json.stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}"));
        assert!(v["message"].is_string());
    }
    t.expect(1, &["logs", "nope"]);

    // -f: what is there, then what is appended
    let mut child = t
        .cmd(&["logs", "talk", "-f"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut appended = false;
    while !seen.iter().any(|l: &String| l.ends_with("fourth line")) {
        assert!(Instant::now() < deadline, "follow saw only {seen:?}");
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push(l);
        }
        if !appended && seen.len() >= 3 {
            append_line(&out, "fourth line");
            appended = true;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen[0].ends_with("first line"), "{seen:?}");
}

#[test]
fn load_creates_then_changes_nothing_and_dump_loads_back() {
    let t = Tool::new("cli-load");
    t.ok(&["flush", "--yes"]);
    let file = t.write(
        "jobs.yaml",
        "# my jobs\n\
         - name: backup\n  command: ./backup.sh\n  image: bookworm\n  schedule: '@daily'\n  cpu: 0.5\n  emails: onfailure\n\
         - name: bot\n  command: ./bot.py --forever\n  image: bookworm\n  continuous: true\n  no-filelog: true\n\
         - name: hourly\n  command: date\n  image: bookworm\n  schedule: '17 * * * *'\n  filelog-stdout: logs/hourly.txt\n  retry: 2\n",
    );
    let f = path_str(&file);

    let plan = t.ok(&["load", f, "--dry-run"]);
    assert_eq!(
        plan.stdout.matches("create").count(),
        3,
        "dry run plans three creations: {plan}"
    );
    assert!(t.names().is_empty(), "a dry run changes nothing");

    let first = t.ok(&["load", f]);
    assert!(
        first.stdout.contains("3 job(s) loaded, 3 changed"),
        "{first}"
    );
    assert_eq!(t.names(), ["backup", "bot", "hourly"]);
    let show = t.ok(&["show", "backup"]);
    assert!(show.stdout.contains("cpu: 0.5"), "{show}");

    let second = t.ok(&["load", f]);
    assert!(
        second.stdout.contains("3 job(s) loaded, no changes"),
        "loading the same file again changes nothing: {second}"
    );
    let plan = t.ok(&["load", f, "--dry-run"]);
    assert!(plan.stdout.contains("dry run: no changes"), "{plan}");

    // dump, then load the dump: no changes either
    let dumped = t.home.join("dump.yaml");
    t.ok(&["dump", "-f", path_str(&dumped)]);
    let text = std::fs::read_to_string(&dumped).unwrap_or_else(|e| panic!("{e}"));
    assert!(text.contains("name: backup"), "{text}");
    assert!(!text.contains("status"), "{text}");
    assert_eq!(
        t.ok(&["dump"]).stdout,
        text,
        "dump to stdout and to a file agree"
    );
    let plan = t.ok(&["load", path_str(&dumped), "--dry-run"]);
    assert!(
        plan.stdout.contains("dry run: no changes"),
        "{plan}\n{text}"
    );
    let again = t.ok(&["load", path_str(&dumped)]);
    assert!(
        again.stdout.contains("3 job(s) loaded, no changes"),
        "loading a dump changes nothing: {again}\n{text}"
    );

    // one job changed in the file: the dry run names it and what changed, --job limits
    let changed = t.write(
        "changed.yaml",
        &std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("{e}"))
            .replace("./bot.py --forever", "./bot.py --once-more")
            .replace("- name: backup", "- name: extra\n  command: x\n  image: bookworm\n  continuous: true\n- name: backup"),
    );
    let plan = t.ok(&["load", path_str(&changed), "--dry-run"]);
    assert!(plan.stdout.contains("update"), "{plan}");
    assert!(plan.stdout.contains("bot (command)"), "{plan}");
    assert!(plan.stdout.contains("create"), "{plan}");
    let only = t.ok(&["load", path_str(&changed), "--job", "bot"]);
    assert!(only.stdout.contains("1 job(s) loaded, 1 changed"), "{only}");
    let bot: serde_json::Value = serde_json::from_str(&t.ok(&["show", "bot", "--json"]).stdout)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(bot["cmd"], "./bot.py --once-more");
    assert!(!t.names().contains(&"extra".to_string()));
    t.expect(1, &["load", path_str(&changed), "--job", "nope"]);

    // a broken file is a user error naming the file
    let broken = t.write("broken.yaml", "- name: x\n  image: bookworm\n");
    let r = t.expect(1, &["load", path_str(&broken)]);
    assert!(r.stderr.contains("command"), "{r}");
    // load never deletes: jobs not in the file stay
    let one = t.write("one.yaml", "- {name: hourly, command: date, image: bookworm, schedule: '17 * * * *', filelog-stdout: logs/hourly.txt, retry: 2}\n");
    t.ok(&["load", path_str(&one)]);
    assert_eq!(t.names(), ["backup", "bot", "hourly"]);
}

/// The gateway's dump (`?include_unset=False`) reports memory normalised (`1Gi` → `1.0Gi`)
/// while its create-or-update compares a hash of the literal text, so loading a dump of a job
/// with `mem` re-creates it. Needs a gateway change (hash canonical quantities, or report the
/// quantity as set); un-ignore then.
#[test]
fn dump_of_a_job_with_memory_loads_back_unchanged() {
    let t = Tool::new("cli-load-mem");
    t.ok(&["flush", "--yes"]);
    t.ok(&[
        "run",
        "big",
        "--command",
        "./x",
        "--image",
        "bookworm",
        "--schedule",
        "@daily",
        "--mem",
        "1Gi",
    ]);
    let dumped = t.home.join("dump.yaml");
    t.ok(&["dump", "-f", path_str(&dumped)]);
    let again = t.ok(&["load", path_str(&dumped)]);
    assert!(again.stdout.contains("no changes"), "{again}");
}
