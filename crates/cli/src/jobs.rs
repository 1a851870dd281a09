//! A job as the client builds it (run flags, load entries) and as it shows one (list, show).

use serde_json::{json, Map, Value};

use super::error::CliError;
use super::output::{key_values, status_style, table, visible_len, Cell, Style};
use jobs_core::wire::v1::Job;

/// Everything `run` and `load` can say about a job; `None` means "not given".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobSpec {
    pub name: String,
    pub command: Option<String>,
    pub image: Option<String>,
    pub schedule: Option<String>,
    pub continuous: bool,
    pub retry: Option<u8>,
    pub mem: Option<String>,
    pub cpu: Option<String>,
    pub emails: Option<String>,
    pub mount: Option<String>,
    /// `Some(true)` for `--filelog`, `Some(false)` for `--no-filelog`.
    pub filelog: Option<bool>,
    pub filelog_stdout: Option<String>,
    pub filelog_stderr: Option<String>,
    pub timeout: Option<i64>,
    pub replicas: Option<i32>,
    /// `8080` or `8080/udp`
    pub port: Option<String>,
    pub health_check_script: Option<String>,
    pub health_check_http: Option<String>,
}

impl JobSpec {
    pub fn job_type(&self) -> &'static str {
        if self.continuous {
            "continuous"
        } else if self.schedule.is_some() {
            "scheduled"
        } else {
            "one-off"
        }
    }

    /// The checks the Python client makes before sending anything (exit 1).
    pub fn check(&self) -> Result<(), CliError> {
        let fail = |m: &str| Err(CliError::User(format!("job '{}': {m}", self.name)));
        if self.name.is_empty() {
            return Err(CliError::User("a job name is required".into()));
        }
        if self.command.as_deref().is_none_or(str::is_empty) {
            return fail("a command is required (--command)");
        }
        if self.image.as_deref().is_none_or(str::is_empty) {
            return fail("an image is required (--image); see `toolforge-jobs images`");
        }
        if self.continuous && self.schedule.is_some() {
            return fail("a job can't be both continuous and scheduled");
        }
        if !self.continuous
            && (self.port.is_some()
                || self.replicas.is_some()
                || self.health_check_script.is_some()
                || self.health_check_http.is_some())
        {
            return fail("--port, --replicas and health checks are only for continuous jobs");
        }
        if self.continuous && self.retry.is_some_and(|r| r > 0) {
            return fail("--retry is not for continuous jobs");
        }
        if self.timeout.is_some() && self.schedule.is_none() {
            return fail("--timeout is only for scheduled jobs");
        }
        if self.mount.as_deref() == Some("none") && self.filelog == Some(true) {
            return fail("file logs need --mount=all");
        }
        if self.health_check_script.is_some() && self.health_check_http.is_some() {
            return fail("give either --health-check-script or --health-check-http");
        }
        if self.health_check_http.is_some() && self.port.is_none() {
            return fail("an HTTP health check needs --port");
        }
        if let Some(p) = &self.port {
            let (num, proto) = p.split_once('/').unwrap_or((p, "tcp"));
            if num.parse::<u16>().ok().filter(|n| *n > 0).is_none()
                || !["tcp", "udp"].contains(&proto)
            {
                return fail("--port must be PORT or PORT/tcp or PORT/udp");
            }
        }
        Ok(())
    }

    /// The JSON body of POST/PATCH `jobs/`, unset keys left out.
    pub fn body(&self) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), json!(self.name));
        if let Some(i) = &self.image {
            m.insert("imagename".into(), json!(i));
        }
        if let Some(c) = &self.command {
            m.insert("cmd".into(), json!(c));
        }
        if let Some(f) = self.filelog {
            m.insert("filelog".into(), json!(f));
        }
        for (k, v) in [
            ("filelog_stdout", &self.filelog_stdout),
            ("filelog_stderr", &self.filelog_stderr),
            ("memory", &self.mem),
            ("cpu", &self.cpu),
            ("emails", &self.emails),
            ("mount", &self.mount),
        ] {
            if let Some(v) = v {
                m.insert(k.into(), json!(v));
            }
        }
        m.insert("job_type".into(), json!(self.job_type()));
        if let Some(s) = &self.schedule {
            m.insert("schedule".into(), json!(s));
        }
        if let Some(t) = self.timeout {
            m.insert("timeout".into(), json!(t));
        }
        if let Some(r) = self.retry {
            if !self.continuous {
                m.insert("retry".into(), json!(r));
            }
        }
        if let Some(r) = self.replicas {
            m.insert("replicas".into(), json!(r));
        }
        if let Some(p) = &self.port {
            match p.split_once('/') {
                Some((num, proto)) => {
                    m.insert("port".into(), json!(num));
                    m.insert("port_protocol".into(), json!(proto));
                }
                None => {
                    m.insert("port".into(), json!(p));
                }
            }
        }
        if let Some(s) = &self.health_check_script {
            m.insert(
                "health_check".into(),
                json!({"type": "script", "script": s}),
            );
        }
        if let Some(p) = &self.health_check_http {
            m.insert("health_check".into(), json!({"type": "http", "path": p}));
        }
        Value::Object(m)
    }
}

/// A text field that says something.
fn given(v: &str) -> Option<&str> {
    Some(v).filter(|v| !v.is_empty())
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

pub fn job_type_text(job: &Job) -> String {
    let schedule = job.schedule().filter(|s| !s.is_empty());
    match given(&job.job_type) {
        Some("scheduled") => format!("scheduled: {}", schedule.unwrap_or("?")),
        Some(t) => t.to_string(),
        None if job.continuous == Some(true) => "continuous".into(),
        None => match schedule {
            Some(sch) => format!("scheduled: {sch}"),
            None => "one-off".into(),
        },
    }
}

/// The status word: `status.short` (with its duration), else the older `status_short`.
pub fn status_short(job: &Job) -> String {
    let duration = job.status.duration.as_deref().filter(|d| !d.is_empty());
    match (given(&job.status.short), duration) {
        (Some(sh @ ("succeeded" | "failed")), Some(d)) => format!("{} {d} ago", capitalise(sh)),
        (Some(sh), Some(d)) => format!("{} for {d}", capitalise(sh)),
        (Some(sh), None) => capitalise(sh),
        (None, _) => given(&job.status_short).unwrap_or("Unknown").to_string(),
    }
}

fn hints(job: &Job) -> String {
    let st = &job.status;
    let mut parts: Vec<String> = st
        .messages
        .iter()
        .map(|m| m.trim_end_matches('.').to_string())
        .collect();
    for (value, label) in [
        (&st.previous_schedule, "Last run at"),
        (&st.next_schedule, "Next run at"),
    ] {
        if let Some(v) = value {
            parts.push(format!("{label} {v}"));
        }
    }
    if parts.is_empty() {
        return job.status_long.clone();
    }
    let mut text = parts.join(". ");
    text.push('.');
    text
}

fn image_text(job: &Job) -> String {
    let image = given(&job.imagename).or(given(&job.image)).unwrap_or("N/A");
    match given(&job.image_state) {
        Some("stable") | None => image.to_string(),
        Some(state) => format!("{image} ({state})"),
    }
}

fn resources_text(job: &Job) -> String {
    let mem = given(&job.memory);
    let cpu = given(&job.cpu);
    let mem_default = mem.is_none_or(|m| m == "0.5Gi");
    let cpu_default = cpu.is_none_or(|c| c == "0.1");
    if mem_default && cpu_default {
        "default".into()
    } else {
        format!(
            "mem: {}, cpu: {}",
            mem.unwrap_or("default"),
            cpu.unwrap_or("default")
        )
    }
}

fn retry_text(job: &Job) -> String {
    match job.retry {
        Some(n) if n > 0 => format!("yes: {n} time(s)"),
        _ => "no".into(),
    }
}

fn opt(v: &Option<String>) -> String {
    v.clone().unwrap_or_default()
}

fn port_text(job: &Job) -> String {
    match job.port() {
        None => "none".into(),
        Some(p) => format!(
            "{p}/{}",
            job.port_protocol
                .as_deref()
                .filter(|p| !p.is_empty())
                .unwrap_or("tcp")
        ),
    }
}

fn health_text(job: &Job) -> String {
    match job.health_check() {
        Some(h) => format!("{}: {}", given(&h.kind).unwrap_or("?"), h.target()),
        None => "none".into(),
    }
}

pub fn list_table(jobs: &[Job], long: bool, width: Option<usize>, color: bool) -> String {
    let rows: Vec<Vec<Cell>> = jobs
        .iter()
        .map(|j| {
            let status = status_short(j);
            let style = status_style(&status);
            let mut row = vec![
                Cell::styled(j.name.as_str(), Some(Style::Cyan)),
                Cell::plain(job_type_text(j)),
                Cell::styled(status, style),
            ];
            if long {
                let fl = j.filelog;
                row.extend([
                    Cell::plain(j.cmd.as_str()),
                    Cell::plain(image_text(j)),
                    Cell::plain(if fl { "yes" } else { "no" }),
                    Cell::plain(if fl {
                        opt(&j.filelog_stdout)
                    } else {
                        String::new()
                    }),
                    Cell::plain(if fl {
                        opt(&j.filelog_stderr)
                    } else {
                        String::new()
                    }),
                    Cell::plain(j.emails.as_str()),
                    Cell::plain(resources_text(j)),
                    Cell::plain(retry_text(j)),
                ]);
            }
            row
        })
        .collect();
    if long {
        let text = table(
            &[
                "Job name",
                "Job type",
                "Status",
                "Command",
                "Image",
                "File log",
                "Output log",
                "Error log",
                "Emails",
                "Resources",
                "Retry",
            ],
            &rows,
            &[3, 6, 7],
            width,
            color,
        );
        let fits = width.is_none_or(|w| text.lines().all(|l| visible_len(l) <= w));
        if fits {
            return text;
        }
        // too narrow for eleven columns: one block per job
        jobs.iter()
            .map(|j| show_text(j, width, color))
            .collect::<Vec<_>>()
            .join("\n")
    } else {
        table(
            &["Job name", "Job type", "Status"],
            &rows,
            &[2, 1],
            width,
            color,
        )
    }
}

pub fn show_text(job: &Job, width: Option<usize>, color: bool) -> String {
    let status = status_short(job);
    let style = status_style(&status);
    let fl = job.filelog;
    let continuous = job.job_type == "continuous";
    let mut rows: Vec<(&str, Cell)> = vec![
        (
            "Job name",
            Cell::styled(job.name.as_str(), Some(Style::Cyan)),
        ),
        ("Command", Cell::plain(job.cmd.as_str())),
        ("Job type", Cell::plain(job_type_text(job))),
        ("Image", Cell::plain(image_text(job))),
    ];
    if continuous {
        rows.push(("Port", Cell::plain(port_text(job))));
        rows.push((
            "Replicas",
            Cell::plain(job.replicas.unwrap_or(1).to_string()),
        ));
        rows.push(("Health check", Cell::plain(health_text(job))));
    }
    rows.push(("File log", Cell::plain(if fl { "yes" } else { "no" })));
    if fl {
        rows.push(("Output log", Cell::plain(opt(&job.filelog_stdout))));
        rows.push(("Error log", Cell::plain(opt(&job.filelog_stderr))));
    }
    rows.push(("Emails", Cell::plain(job.emails.as_str())));
    rows.push(("Resources", Cell::plain(resources_text(job))));
    if let Some(m) = given(&job.mount) {
        rows.push(("Mounts", Cell::plain(m)));
    }
    if !continuous {
        rows.push(("Retry", Cell::plain(retry_text(job))));
    }
    if let Some(t) = job.timeout() {
        rows.push(("Timeout", Cell::plain(format!("{t}s"))));
    }
    rows.push(("Status", Cell::styled(status, style)));
    rows.push(("Hints", Cell::plain(hints(job))));
    key_values(&rows, width, color)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_leaves_out_what_was_not_given() {
        let spec = JobSpec {
            name: "j".into(),
            command: Some("date".into()),
            image: Some("bookworm".into()),
            schedule: Some("@daily".into()),
            retry: Some(2),
            port: None,
            ..Default::default()
        };
        assert_eq!(
            spec.body(),
            json!({"name":"j","imagename":"bookworm","cmd":"date","job_type":"scheduled","schedule":"@daily","retry":2})
        );
        let cont = JobSpec {
            name: "c".into(),
            command: Some("srv".into()),
            image: Some("bookworm".into()),
            continuous: true,
            port: Some("8080/udp".into()),
            filelog: Some(false),
            ..Default::default()
        };
        assert!(cont.check().is_ok());
        assert_eq!(cont.body()["port"], "8080");
        assert_eq!(cont.body()["port_protocol"], "udp");
        assert_eq!(cont.body()["filelog"], false);
        let bad = JobSpec {
            port: Some("8080".into()),
            continuous: false,
            ..cont.clone()
        };
        assert!(bad.check().is_err());
    }

    #[test]
    fn display_texts() {
        let j: Job = serde_json::from_value(json!({"name":"n","job_type":"scheduled","schedule":"@daily","status":{"short":"running","duration":"5m"},"memory":"1.0Gi","cpu":"0.1","retry":1})).unwrap();
        assert_eq!(job_type_text(&j), "scheduled: @daily");
        assert_eq!(status_short(&j), "Running for 5m");
        assert_eq!(resources_text(&j), "mem: 1.0Gi, cpu: 0.1");
        assert_eq!(retry_text(&j), "yes: 1 time(s)");
    }
}
