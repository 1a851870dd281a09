//! `load` (create-or-update each job of a YAML file with PATCH, as 16.x does; never deletes),
//! `load --dry-run` (compare with the current jobs, change nothing) and `dump` (the current
//! jobs as a file `load` accepts).

use std::path::Path;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use serde_yaml::{Mapping, Value as Yaml};

use super::args::LoadArgs;
use super::ctx::{pretty, typed, Ctx};
use super::error::{print_warning, CliError};
use super::jobs::JobSpec;
use super::output::{self, Spinner, Style};
use super::wait::wait_for;
use jobs_core::quota::{format_cpu, format_memory};
use jobs_core::wire::v1::{JobDefinition, MessagesReply};

/// One entry of a load file.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub spec: JobSpec,
    /// One-off jobs: wait this many seconds for them to finish.
    pub wait: Option<u64>,
}

const KEYS: &[&str] = &[
    "name",
    "command",
    "image",
    "schedule",
    "continuous",
    "wait",
    "retry",
    "mem",
    "cpu",
    "emails",
    "mount",
    "filelog",
    "no-filelog",
    "filelog-stdout",
    "filelog-stderr",
    "timeout",
    "replicas",
    "port",
    "health-check-script",
    "health-check-http",
];

fn scalar(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn flag(v: &Yaml, key: &str, job: &str) -> Result<bool, CliError> {
    match v {
        Yaml::Bool(b) => Ok(*b),
        Yaml::String(s) if ["yes", "true"].contains(&s.to_ascii_lowercase().as_str()) => {
            print_warning(&format!(
                "job '{job}': write `{key}: true` instead of `{key}: {s}`"
            ));
            Ok(true)
        }
        Yaml::String(s) if ["no", "false"].contains(&s.to_ascii_lowercase().as_str()) => Ok(false),
        _ => Err(CliError::User(format!(
            "job '{job}': '{key}' must be true or false"
        ))),
    }
}

/// Parses the YAML text of a load file.
pub fn parse_entries(text: &str) -> Result<Vec<Entry>, CliError> {
    let doc: Yaml = serde_yaml::from_str(text)
        .map_err(|e| CliError::User(format!("the file is not valid YAML: {e}")))?;
    let items = match doc {
        Yaml::Sequence(s) => s,
        Yaml::Null => Vec::new(),
        _ => {
            return Err(CliError::User(
                "the file must be a YAML list of jobs".into(),
            ))
        }
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Yaml::Mapping(m) = item else {
            return Err(CliError::User(format!(
                "entry {} of the file is not a mapping",
                i + 1
            )));
        };
        let get = |k: &str| m.get(Yaml::String(k.into()));
        let name = get("name")
            .and_then(scalar)
            .ok_or_else(|| CliError::User(format!("entry {} of the file has no 'name'", i + 1)))?;
        for k in m.keys() {
            let key = k.as_str().unwrap_or("?");
            if !KEYS.contains(&key) {
                print_warning(&format!("job '{name}': unknown key '{key}' ignored"));
            }
        }
        let text = |k: &str| get(k).and_then(scalar);
        let num = |k: &str| -> Result<Option<i64>, CliError> {
            match get(k) {
                None | Some(Yaml::Null) => Ok(None),
                Some(v) => scalar(v)
                    .and_then(|s| s.parse::<i64>().ok())
                    .map(Some)
                    .ok_or_else(|| {
                        CliError::User(format!("job '{name}': '{k}' must be a whole number"))
                    }),
            }
        };
        let bool_key = |k: &str| -> Result<Option<bool>, CliError> {
            get(k).map(|v| flag(v, k, &name)).transpose()
        };
        let filelog = match (bool_key("filelog")?, bool_key("no-filelog")?) {
            (_, Some(true)) => Some(false),
            (Some(true), _) => Some(true),
            _ => None,
        };
        let wait =
            match get("wait") {
                None | Some(Yaml::Null) | Some(Yaml::Bool(false)) => None,
                Some(Yaml::Bool(true)) => Some(600),
                Some(v) => Some(scalar(v).and_then(|s| s.parse::<u64>().ok()).ok_or_else(
                    || CliError::User(format!("job '{name}': 'wait' must be true or seconds")),
                )?),
            };
        let retry = match num("retry")? {
            None => None,
            Some(r) if (0..=5).contains(&r) => Some(r as u8),
            Some(_) => {
                return Err(CliError::User(format!(
                    "job '{name}': 'retry' must be from 0 to 5"
                )))
            }
        };
        let port = match get("port") {
            None | Some(Yaml::Null) => None,
            Some(v) => scalar(v),
        };
        let spec = JobSpec {
            name: name.clone(),
            command: text("command"),
            image: text("image"),
            schedule: text("schedule"),
            continuous: bool_key("continuous")?.unwrap_or(false),
            retry,
            mem: text("mem"),
            cpu: text("cpu"),
            emails: text("emails"),
            mount: text("mount"),
            filelog,
            filelog_stdout: text("filelog-stdout"),
            filelog_stderr: text("filelog-stderr"),
            timeout: num("timeout")?,
            replicas: num("replicas")?.map(|r| r as i32),
            port,
            health_check_script: text("health-check-script"),
            health_check_http: text("health-check-http"),
        };
        if wait.is_some() && spec.job_type() != "one-off" {
            print_warning(&format!(
                "job '{name}': 'wait' only applies to one-off jobs; ignored"
            ));
        }
        out.push(Entry { spec, wait });
    }
    Ok(out)
}

/// The jobs of the file to load: `--job` only, duplicates skipped with a warning.
fn selected(entries: Vec<Entry>, only: Option<&str>) -> Vec<Entry> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for e in entries {
        if only.is_some_and(|j| j != e.spec.name) {
            continue;
        }
        if !seen.insert(e.spec.name.clone()) {
            print_warning(&format!(
                "job '{}' is in the file twice; the second is skipped",
                e.spec.name
            ));
            continue;
        }
        out.push(e);
    }
    out
}

/// A job of the API (as `?include_unset=False` gives it) as a load-file mapping.
pub fn dump_entry(job: &JobDefinition) -> Mapping {
    let mut m = Mapping::new();
    let mut put = |k: &str, v: Yaml| {
        m.insert(Yaml::String(k.into()), v);
    };
    let ystr = |v: &str| Yaml::String(v.to_string());
    let text = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
    let given = |v: &str| Some(v.to_string()).filter(|v| !v.is_empty());
    if let Some(n) = given(&job.name) {
        put("name", ystr(&n));
    }
    if let Some(c) = given(&job.cmd) {
        put("command", ystr(&c));
    }
    if let Some(i) = given(&job.imagename).or(given(&job.image)) {
        put("image", ystr(&i));
    }
    match job.job_type.as_str() {
        "continuous" => put("continuous", Yaml::Bool(true)),
        _ => {
            if let Some(sch) = text(&job.schedule) {
                put("schedule", ystr(&sch));
            }
        }
    }
    if let Some(v) = text(&job.memory) {
        put("mem", ystr(&v));
    }
    if let Some(v) = text(&job.cpu) {
        put("cpu", ystr(&v));
    }
    if let Some(r) = job.retry.filter(|r| *r > 0) {
        put("retry", Yaml::Number(r.into()));
    }
    if let Some(v) = text(&job.emails).filter(|e| e != "none") {
        put("emails", ystr(&v));
    }
    if let Some(v) = text(&job.mount).filter(|e| e != "all") {
        put("mount", ystr(&v));
    }
    if job.filelog == Some(false) {
        put("no-filelog", Yaml::Bool(true));
    }
    if let Some(v) = text(&job.filelog_stdout) {
        put("filelog-stdout", ystr(&v));
    }
    if let Some(v) = text(&job.filelog_stderr) {
        put("filelog-stderr", ystr(&v));
    }
    if let Some(t) = job.timeout.filter(|t| *t > 0) {
        put("timeout", Yaml::Number(t.into()));
    }
    if let Some(r) = job.replicas.filter(|r| *r != 1) {
        put("replicas", Yaml::Number(r.into()));
    }
    if let Some(p) = job.port {
        let port = match text(&job.port_protocol) {
            Some(proto) if proto != "tcp" => format!("{p}/{proto}"),
            _ => p.to_string(),
        };
        put("port", ystr(&port));
    }
    if let Some(h) = &job.health_check {
        match (h.kind.as_str(), &h.script, &h.path) {
            ("script", Some(sc), _) => put("health-check-script", ystr(sc)),
            ("http", _, Some(p)) => put("health-check-http", ystr(p)),
            _ => {}
        }
    }
    m
}

fn same_path(a: &Option<String>, b: &Option<String>, default: &str) -> bool {
    let eq =
        |x: &str, y: &str| x == y || x.ends_with(&format!("/{y}")) || y.ends_with(&format!("/{x}"));
    match (a.as_deref(), b.as_deref()) {
        (None, None) => true,
        (Some(x), Some(y)) => eq(x, y),
        (Some(x), None) | (None, Some(x)) => eq(x, default),
    }
}

/// Which settings of `wanted` differ from `current` (both normalised the way the API does).
pub fn differences(wanted: &JobSpec, current: &JobSpec) -> Vec<&'static str> {
    let mut d = Vec::new();
    let norm = |v: &Option<String>, f: fn(&str) -> String| v.as_deref().map(f);
    if wanted.command != current.command {
        d.push("command");
    }
    if wanted.image != current.image {
        d.push("image");
    }
    if wanted.job_type() != current.job_type() {
        d.push("type");
    }
    if wanted.schedule != current.schedule {
        d.push("schedule");
    }
    if norm(&wanted.mem, format_memory) != norm(&current.mem, format_memory) {
        d.push("mem");
    }
    if norm(&wanted.cpu, format_cpu) != norm(&current.cpu, format_cpu) {
        d.push("cpu");
    }
    if wanted.retry.unwrap_or(0) != current.retry.unwrap_or(0) {
        d.push("retry");
    }
    if wanted.emails.as_deref().unwrap_or("none") != current.emails.as_deref().unwrap_or("none") {
        d.push("emails");
    }
    if wanted.mount.as_deref().unwrap_or("all") != current.mount.as_deref().unwrap_or("all") {
        d.push("mount");
    }
    let filelog = |s: &JobSpec| s.filelog.unwrap_or(s.mount.as_deref() != Some("none"));
    if filelog(wanted) != filelog(current) {
        d.push("filelog");
    } else if filelog(wanted) {
        let n = &wanted.name;
        if !same_path(
            &wanted.filelog_stdout,
            &current.filelog_stdout,
            &format!("{n}.out"),
        ) {
            d.push("filelog-stdout");
        }
        if !same_path(
            &wanted.filelog_stderr,
            &current.filelog_stderr,
            &format!("{n}.err"),
        ) {
            d.push("filelog-stderr");
        }
    }
    if wanted.timeout.unwrap_or(0) != current.timeout.unwrap_or(0) {
        d.push("timeout");
    }
    if wanted.continuous && wanted.replicas.unwrap_or(1) != current.replicas.unwrap_or(1) {
        d.push("replicas");
    }
    let port = |s: &JobSpec| {
        s.port.as_deref().map(|p| {
            if p.contains('/') {
                p.to_string()
            } else {
                format!("{p}/tcp")
            }
        })
    };
    if port(wanted) != port(current) {
        d.push("port");
    }
    if wanted.health_check_script != current.health_check_script
        || wanted.health_check_http != current.health_check_http
    {
        d.push("health-check");
    }
    d
}

/// What the current job looks like as a load entry.
fn current_spec(job: &JobDefinition) -> Result<JobSpec, CliError> {
    let yaml = Yaml::Sequence(vec![Yaml::Mapping(dump_entry(job))]);
    let text = serde_yaml::to_string(&yaml)
        .map_err(|e| CliError::Server(format!("cannot convert a job: {e}")))?;
    parse_entries(&text)?
        .into_iter()
        .next()
        .map(|e| e.spec)
        .ok_or_else(|| CliError::Server("cannot convert a job".into()))
}

pub async fn load(ctx: &Ctx, a: &LoadArgs) -> Result<(), CliError> {
    let text = std::fs::read_to_string(&a.file)
        .map_err(|e| CliError::User(format!("cannot read {}: {e}", a.file.display())))?;
    let entries = selected(
        parse_entries(&text).map_err(|e| match e {
            CliError::User(m) => CliError::User(format!("{}: {m}", a.file.display())),
            other => other,
        })?,
        a.job.as_deref(),
    );
    if let Some(j) = &a.job {
        if entries.is_empty() {
            return Err(CliError::User(format!(
                "job '{j}' is not in {}",
                a.file.display()
            )));
        }
    }
    for e in &entries {
        e.spec.check()?;
    }
    let color = output::stdout_color();
    if a.dry_run {
        return dry_run(ctx, &entries, a.job.is_none(), color).await;
    }
    let mut changed = 0usize;
    let mut results = Vec::new();
    for e in &entries {
        let name = &e.spec.name;
        let mut spinner = Spinner::new(format!("loading job '{name}'"));
        let url = ctx.api.jobs_url("jobs/");
        let body = e.spec.body();
        let fut = ctx.api.call(Method::PATCH, &url, Some(&body));
        tokio::pin!(fut);
        let reply = loop {
            tokio::select! {
                r = &mut fut => break r,
                _ = tokio::time::sleep(Duration::from_millis(100)) => spinner.tick("sending"),
            }
        };
        spinner.clear();
        let reply = reply.map_err(|err| match err {
            CliError::Api { status, message } => CliError::Api {
                status,
                message: format!("job '{name}': {message}"),
            },
            CliError::Server(m) => CliError::Server(format!("job '{name}': {m}")),
            other => other,
        })?;
        let said: MessagesReply = typed(&reply)?;
        let did_change = said.job_changed == Some(true);
        if did_change {
            changed += 1;
        }
        let info = said.messages.infos();
        if ctx.json {
            results.push(serde_json::json!({"name": name, "changed": did_change, "reply": reply}));
        } else {
            let mark = if did_change {
                output::paint(color, Style::Green, "changed  ")
            } else {
                output::paint(color, Style::Dim, "unchanged")
            };
            let msg = if info.is_empty() {
                format!("job {name}")
            } else {
                info.join("; ")
            };
            println!("{mark} {msg}");
            for w in said.messages.warnings() {
                print_warning(w);
            }
        }
        if let Some(secs) = e.wait.filter(|_| e.spec.job_type() == "one-off") {
            wait_for(ctx, name, secs).await?;
        }
    }
    if ctx.json {
        println!("{}", pretty(&Value::Array(results)));
    } else if changed == 0 {
        println!("{} job(s) loaded, no changes", entries.len());
    } else {
        println!("{} job(s) loaded, {changed} changed", entries.len());
    }
    Ok(())
}

async fn dry_run(
    ctx: &Ctx,
    entries: &[Entry],
    whole_file: bool,
    color: bool,
) -> Result<(), CliError> {
    let (current, _) = ctx.definitions().await?;
    let mut plan = Vec::new();
    let mut changes = 0usize;
    for e in entries {
        let name = &e.spec.name;
        let existing = current.iter().find(|j| j.name == *name);
        let (action, detail) = match existing {
            None => ("create", Vec::new()),
            Some(job) => {
                let cur = current_spec(job)?;
                let d = differences(&e.spec, &cur);
                if d.is_empty() {
                    ("unchanged", d)
                } else if e.spec.job_type() == "one-off" && cur.job_type() == "one-off" {
                    ("conflict", d)
                } else {
                    ("update", d)
                }
            }
        };
        if action != "unchanged" {
            changes += 1;
        }
        plan.push((name.clone(), action, detail));
    }
    let untouched: Vec<String> = if whole_file {
        current
            .iter()
            .map(|j| j.name.as_str())
            .filter(|n| !n.is_empty() && !entries.iter().any(|e| e.spec.name == *n))
            .map(str::to_string)
            .collect()
    } else {
        Vec::new()
    };
    if ctx.json {
        let items: Vec<Value> = plan
            .iter()
            .map(|(n, a, d)| serde_json::json!({"name": n, "action": a, "changes": d}))
            .collect();
        println!(
            "{}",
            pretty(&serde_json::json!({"jobs": items, "not_in_file": untouched}))
        );
        return Ok(());
    }
    for (name, action, detail) in &plan {
        let style = match *action {
            "create" => Style::Green,
            "update" => Style::Yellow,
            "conflict" => Style::Red,
            _ => Style::Dim,
        };
        let mut line = format!(
            "{} {name}",
            output::paint(color, style, &format!("{action:<9}"))
        );
        if !detail.is_empty() {
            line.push_str(&format!(" ({})", detail.join(", ")));
        }
        if *action == "conflict" {
            line.push_str(" — one-off jobs can't be updated; delete it first");
        }
        println!("{line}");
    }
    for n in &untouched {
        println!(
            "{} {n} (not in the file; load leaves it alone)",
            output::paint(color, Style::Dim, "keep     ")
        );
    }
    if changes == 0 {
        println!("dry run: no changes");
    } else {
        println!("dry run: {changes} job(s) would change; nothing was changed");
    }
    Ok(())
}

pub async fn dump(ctx: &Ctx, to_file: Option<&Path>) -> Result<(), CliError> {
    let (jobs, raw) = ctx.definitions().await?;
    if jobs.is_empty() {
        print_warning("no jobs defined");
    }
    let text = if ctx.json {
        pretty(&Value::Array(raw)) + "\n"
    } else {
        let seq = Yaml::Sequence(jobs.iter().map(|j| Yaml::Mapping(dump_entry(j))).collect());
        serde_yaml::to_string(&seq)
            .map_err(|e| CliError::Server(format!("cannot write YAML: {e}")))?
    };
    match to_file {
        Some(p) => std::fs::write(p, text)
            .map_err(|e| CliError::User(format!("cannot write {}: {e}", p.display()))),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_dump_entry_loads_back_unchanged() {
        let job: JobDefinition = serde_json::from_value(json!({"name":"cj","cmd":"date","imagename":"bookworm","image":"bookworm","job_type":"scheduled","schedule":"@daily","memory":"1.0Gi","cpu":"0.5","retry":2,"filelog":false,"emails":"onfailure"})).unwrap_or_else(|e| panic!("{e}"));
        let spec = current_spec(&job).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(spec.schedule.as_deref(), Some("@daily"));
        assert_eq!(spec.filelog, Some(false));
        let wanted = parse_entries(
            "- name: cj\n  command: date\n  image: bookworm\n  schedule: '@daily'\n  mem: 1Gi\n  cpu: 500m\n  retry: 2\n  no-filelog: true\n  emails: onfailure\n",
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .remove(0);
        assert!(
            differences(&wanted.spec, &spec).is_empty(),
            "{:?}",
            differences(&wanted.spec, &spec)
        );
        let mut other = wanted.spec.clone();
        other.command = Some("true".into());
        other.cpu = Some("1".into());
        assert_eq!(differences(&other, &spec), vec!["command", "cpu"]);
    }

    #[test]
    fn entries_check_their_keys() {
        assert!(parse_entries("- {command: x}").is_err());
        assert!(parse_entries("{a: 1}").is_err());
        let e = parse_entries("- {name: a, command: x, image: b, continuous: 'yes', wait: true}")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(e[0].spec.continuous);
        assert_eq!(e[0].wait, Some(600));
    }
}
