//! The body of a run request, from JSON or a form, checked field by field.

use std::collections::BTreeMap;

use serde_json::Value;

use super::quantity::Quantity;

pub const NAME_RULES_URL: &str = "https://w.wiki/6YL8";
pub const MAX_JOB_NAME_LEN: usize = 52;
pub const EMAIL_VALUES: &[&str] = &["none", "all", "onfailure", "onfinish"];

/// A validated run request.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRequest {
    pub name: String,
    pub cmd: String,
    pub image: String,
    pub schedule: Option<String>,
    pub continuous: bool,
    pub filelog: bool,
    pub filelog_stdout: Option<String>,
    /// Whether the user gave the stdout / stderr paths (not defaults).
    pub log_paths_given: (bool, bool),
    pub filelog_stderr: Option<String>,
    pub retry: u8,
    pub memory: Option<Quantity>,
    pub cpu: Option<Quantity>,
    pub emails: String,
    /// `all` (the default) or `none`: whether NFS storage is mounted into the pod.
    pub mount: String,
    /// Scheduled jobs: seconds a run may take (activeDeadlineSeconds).
    pub timeout: Option<i64>,
    /// Continuous jobs: number of pods.
    pub replicas: i32,
    /// Continuous jobs: a port the job listens on.
    pub port: Option<(u16, String)>,
    /// Continuous jobs: `{"type":"script","script":..}` or `{"type":"http","path":..}`.
    pub health_check: Option<HealthCheck>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthCheck {
    Script(String),
    Http(String),
}

/// Which client generation sent the request; decides defaults and strictness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Release 13/14: form or JSON, unknown fields ignored, filelog off unless sent.
    Legacy,
    /// 16.x: JSON with `job_type`, filelog on unless sent as false, unknown fields refused.
    V1,
}

const V1_FIELDS: &[&str] = &[
    "name",
    "cmd",
    "imagename",
    "image",
    "job_type",
    "schedule",
    "continuous",
    "filelog",
    "filelog_stdout",
    "filelog_stderr",
    "retry",
    "memory",
    "cpu",
    "emails",
    "mount",
    "timeout",
    "replicas",
    "port",
    "port_protocol",
    "health_check",
];

/// Field values as sent: JSON values, or strings from a form.
pub type Fields = BTreeMap<String, Value>;

/// Reads a body as JSON (object) or `application/x-www-form-urlencoded`.
pub fn fields_from_body(content_type: Option<&str>, body: &[u8]) -> Result<Fields, String> {
    let is_form = content_type
        .map(|c| {
            c.trim_start()
                .starts_with("application/x-www-form-urlencoded")
        })
        .unwrap_or(false);
    if is_form {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
            .map_err(|e| format!("the form body could not be read: {e}"))?;
        let mut fields = Fields::new();
        for (k, v) in pairs {
            if fields.insert(k.clone(), Value::String(v)).is_some() {
                return Err(format!("field '{k}' is given more than once"));
            }
        }
        return Ok(fields);
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err("the request body is empty; send a JSON object".into());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map.into_iter().collect()),
        Ok(_) => Err("the request body must be a JSON object".into()),
        Err(e) => Err(format!("the request body is not valid JSON: {e}")),
    }
}

fn string_field(fields: &Fields, key: &str) -> Result<Option<String>, String> {
    match fields.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(format!("field '{key}' must be a string")),
    }
}

fn required(fields: &Fields, key: &str) -> Result<String, String> {
    match string_field(fields, key)? {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(format!("missing required field '{key}'")),
    }
}

/// Booleans arrive as JSON booleans or as strings from forms and older clients.
pub fn bool_field(fields: &Fields, key: &str) -> Result<bool, String> {
    match fields.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" | "on" => Ok(true),
            "false" | "no" | "0" | "off" | "" => Ok(false),
            _ => Err(format!("field '{key}' must be true or false, not {s:?}")),
        },
        Some(Value::Number(n)) if n.as_u64() == Some(0) => Ok(false),
        Some(Value::Number(n)) if n.as_u64() == Some(1) => Ok(true),
        Some(_) => Err(format!("field '{key}' must be true or false")),
    }
}

/// The job-name rule: an RFC 1123 subdomain of at most 52 characters.
pub fn check_job_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!(
            "Job name is required. See the documentation for the naming rules: {NAME_RULES_URL}"
        ));
    }
    if name.len() > MAX_JOB_NAME_LEN {
        return Err(format!("Invalid job name, it can't be longer than {MAX_JOB_NAME_LEN} characters. See the documentation for the naming rules: {NAME_RULES_URL}"));
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if !name.split('.').all(label_ok) {
        return Err(format!(
            "Invalid job name. See the documentation for the naming rules: {NAME_RULES_URL}"
        ));
    }
    Ok(())
}

/// A log path must be a plain path: the command wrapper pastes it into a shell line.
fn check_log_path(key: &str, path: &str) -> Result<(), String> {
    let bad = path.is_empty()
        || path.len() > 1024
        || path
            .chars()
            .any(|c| c.is_control() || ";&|`$<>(){}'\"\\*?[]!#~ \t".contains(c));
    if bad {
        return Err(format!(
            "field '{key}' must be a file path without spaces or shell characters"
        ));
    }
    Ok(())
}

fn int_field(fields: &Fields, key: &str, min: i64, max: i64) -> Result<Option<i64>, String> {
    let bad = || format!("field '{key}' must be a whole number from {min} to {max}");
    let n = match fields.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_i64().ok_or_else(bad)?,
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => s.trim().parse::<i64>().map_err(|_| bad())?,
        Some(_) => return Err(bad()),
    };
    if n < min || n > max {
        return Err(bad());
    }
    Ok(Some(n))
}

impl RunRequest {
    /// A release 13/14 request.
    pub fn from_fields(fields: &Fields) -> Result<Self, String> {
        Self::parse(fields, Dialect::Legacy)
    }

    pub fn parse(fields: &Fields, dialect: Dialect) -> Result<Self, String> {
        if dialect == Dialect::V1 {
            if let Some(k) = fields.keys().find(|k| !V1_FIELDS.contains(&k.as_str())) {
                return Err(format!("unknown field '{k}'"));
            }
        }
        let cmd = required(fields, "cmd")?;
        if cmd.len() > 32 * 1024 || cmd.contains('\0') {
            return Err("field 'cmd' is too long or holds a NUL byte".into());
        }
        let image = match string_field(fields, "imagename")? {
            Some(i) if !i.is_empty() => i,
            _ => required(fields, "image")?,
        };
        let name = match (dialect, string_field(fields, "name")?) {
            // the 16.x server holds an empty name to the naming rules ("Job name is required")
            (Dialect::V1, Some(n)) => n,
            _ => required(fields, "name")?,
        };
        check_job_name(&name)?;
        let schedule = string_field(fields, "schedule")?.filter(|s| !s.is_empty());
        let mut continuous = bool_field(fields, "continuous")?;
        match string_field(fields, "job_type")?.as_deref() {
            Some("one-off") if schedule.is_some() || continuous => {
                return Err("a one-off job has no schedule and is not continuous".into());
            }
            Some("scheduled") if schedule.is_none() => {
                return Err("a scheduled job needs a 'schedule'".into());
            }
            None | Some("one-off") | Some("scheduled") => {}
            Some("continuous") => {
                if schedule.is_some() {
                    return Err("a continuous job has no schedule".into());
                }
                continuous = true;
            }
            Some("webservice") => {
                return Err(
                    "web services are not supported by this jobs service; use a continuous job"
                        .into(),
                )
            }
            Some(other) => {
                return Err(format!(
                    "unknown job_type '{other}': use one-off, scheduled or continuous"
                ))
            }
        }
        if schedule.is_some() && continuous {
            return Err("a job can't be both scheduled and continuous: give either 'schedule' or 'continuous'".into());
        }
        let filelog = match (dialect, fields.get("filelog")) {
            (Dialect::V1, None | Some(Value::Null)) => true,
            _ => bool_field(fields, "filelog")?,
        };
        let filelog_stdout = string_field(fields, "filelog_stdout")?.filter(|s| !s.is_empty());
        let filelog_stderr = string_field(fields, "filelog_stderr")?.filter(|s| !s.is_empty());
        for (k, v) in [
            ("filelog_stdout", &filelog_stdout),
            ("filelog_stderr", &filelog_stderr),
        ] {
            if let Some(p) = v {
                check_log_path(k, p)?;
            }
        }
        let retry = match fields.get("retry") {
            None | Some(Value::Null) => 0,
            Some(Value::Number(n)) => n.as_u64().filter(|r| *r <= 5).ok_or_else(|| {
                format!("field 'retry' must be a whole number from 0 to 5, not {n}")
            })? as u8,
            Some(Value::String(s)) if s.is_empty() => 0,
            Some(Value::String(s)) => {
                s.trim()
                    .parse::<u8>()
                    .ok()
                    .filter(|r| *r <= 5)
                    .ok_or_else(|| {
                        format!("field 'retry' must be a whole number from 0 to 5, not {s:?}")
                    })?
            }
            Some(_) => return Err("field 'retry' must be a whole number from 0 to 5".into()),
        };
        let quantity = |key: &str| -> Result<Option<Quantity>, String> {
            match string_field(fields, key)? {
                None => Ok(None),
                Some(s) if s.is_empty() => Ok(None),
                Some(s) => Quantity::parse(&s)
                    .map(Some)
                    .ok_or_else(|| format!("{s} is not a valid Kubernetes quantity")),
            }
        };
        let memory = quantity("memory")?;
        let cpu = quantity("cpu")?;
        let emails = string_field(fields, "emails")?
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "none".into());
        if !EMAIL_VALUES.contains(&emails.as_str()) {
            return Err(format!(
                "Invalid email configuration value. Supported values are: {}",
                EMAIL_VALUES.join(", ")
            ));
        }
        let mount = string_field(fields, "mount")?
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "all".into());
        if mount != "all" && mount != "none" {
            return Err(format!(
                "field 'mount' must be 'all' or 'none', not {mount:?}"
            ));
        }
        if mount == "none" && filelog {
            return Err("File logging is only available with --mount=all".into());
        }
        let timeout = int_field(fields, "timeout", 0, 30 * 24 * 3600)?;
        if timeout.is_some_and(|t| t > 0) && schedule.is_none() {
            return Err("a timeout can only be set for scheduled jobs".into());
        }
        let replicas = int_field(fields, "replicas", 0, 16)?;
        let port = match int_field(fields, "port", 1, 65535)? {
            None => None,
            Some(p) => {
                let proto = string_field(fields, "port_protocol")?
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "tcp".into());
                if proto != "tcp" && proto != "udp" {
                    return Err(format!(
                        "field 'port_protocol' must be tcp or udp, not {proto:?}"
                    ));
                }
                Some((p as u16, proto))
            }
        };
        let health_check = match fields.get("health_check") {
            None | Some(Value::Null) => None,
            Some(Value::Object(h)) => match (h.get("type").and_then(Value::as_str), h.get("script"), h.get("path")) {
                (Some("script"), Some(Value::String(s)), _) if !s.is_empty() => {
                    Some(HealthCheck::Script(s.clone()))
                }
                (Some("http"), _, Some(Value::String(p))) if p.starts_with('/') => {
                    if port.is_none() {
                        return Err("Port must be set for HTTP health checks".into());
                    }
                    Some(HealthCheck::Http(p.clone()))
                }
                _ => {
                    return Err("field 'health_check' must be {\"type\":\"script\",\"script\":..} or {\"type\":\"http\",\"path\":\"/..\"}".into())
                }
            },
            Some(_) => return Err("field 'health_check' must be an object".into()),
        };
        if !continuous && (replicas.is_some() || port.is_some() || health_check.is_some()) {
            return Err("replicas, port and health_check are only for continuous jobs".into());
        }
        Ok(Self {
            mount,
            timeout: timeout.filter(|t| *t > 0),
            replicas: replicas.unwrap_or(1) as i32,
            port,
            health_check,
            name,
            cmd,
            image,
            schedule,
            continuous,
            filelog,
            log_paths_given: (filelog_stdout.is_some(), filelog_stderr.is_some()),
            filelog_stdout,
            filelog_stderr,
            retry,
            memory,
            cpu,
            emails,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(body: &str) -> Result<RunRequest, String> {
        let f = fields_from_body(Some("application/x-www-form-urlencoded"), body.as_bytes())?;
        RunRequest::from_fields(&f)
    }

    fn json(body: &str) -> Result<RunRequest, String> {
        let f = fields_from_body(Some("application/json"), body.as_bytes())?;
        RunRequest::from_fields(&f)
    }

    #[test]
    fn form_bodies_with_string_booleans() {
        let r = form("name=myjob&imagename=bookworm&cmd=.%2Fmy+script.sh&continuous=true&filelog=false&retry=2&emails=onfailure")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.cmd, "./my script.sh");
        assert!(r.continuous);
        assert!(!r.filelog);
        assert_eq!(r.retry, 2);
        assert_eq!(r.emails, "onfailure");
    }

    #[test]
    fn json_bodies() {
        let r = json(r#"{"name":"cj","imagename":"bookworm","cmd":"date","schedule":"@daily","filelog":true,"memory":"1Gi","cpu":"250m"}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.schedule.as_deref(), Some("@daily"));
        assert!(r.filelog);
        assert_eq!(r.memory.map(|q| q.text), Some("1Gi".to_string()));
        assert_eq!(r.emails, "none");
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        let cases = [
            ("{}", "missing required field 'cmd'"),
            (
                r#"{"cmd":"x","imagename":"b"}"#,
                "missing required field 'name'",
            ),
            (
                r#"{"cmd":"x","imagename":"b","name":"Bad_Name"}"#,
                "Invalid job name",
            ),
            (
                r#"{"cmd":"x","imagename":"b","name":"a","retry":9}"#,
                "retry",
            ),
            (
                r#"{"cmd":"x","imagename":"b","name":"a","retry":"abc"}"#,
                "retry",
            ),
            (
                r#"{"cmd":"x","imagename":"b","name":"a","memory":"lots"}"#,
                "lots is not a valid Kubernetes quantity",
            ),
            (
                r#"{"cmd":"x","imagename":"b","name":"a","emails":"sometimes"}"#,
                "Invalid email configuration",
            ),
            (
                r#"{"cmd":"x","imagename":"b","name":"a","continuous":"maybe"}"#,
                "continuous",
            ),
            (
                r#"{"cmd":"x","imagename":"b","name":"a","continuous":true,"schedule":"@daily"}"#,
                "both scheduled and continuous",
            ),
            (
                r#"{"cmd":"x","imagename":"b","name":"a","filelog_stdout":"a;rm -rf ~"}"#,
                "filelog_stdout",
            ),
            (
                r#"{"cmd":["x"],"imagename":"b","name":"a"}"#,
                "'cmd' must be a string",
            ),
            ("[1]", "must be a JSON object"),
            ("{", "not valid JSON"),
        ];
        for (body, want) in cases {
            match json(body) {
                Ok(r) => panic!("{body} was accepted: {r:?}"),
                Err(e) => assert!(e.contains(want), "{body}: {e:?} lacks {want:?}"),
            }
        }
        let v1 = |body: &str| {
            let f = fields_from_body(Some("application/json"), body.as_bytes())?;
            RunRequest::parse(&f, Dialect::V1)
        };
        // the 16.x server's words (spec §1.3, §3.3, §6)
        for (body, want) in [
            (
                r#"{"cmd":"x","imagename":"b","name":""}"#,
                "Job name is required. See the documentation for the naming rules: https://w.wiki/6YL8",
            ),
            (
                r#"{"cmd":"x","imagename":"b","name":"Bad_Name"}"#,
                "Invalid job name. See the documentation for the naming rules: https://w.wiki/6YL8",
            ),
            (
                &format!(r#"{{"cmd":"x","imagename":"b","name":"{}"}}"#, "a".repeat(53)),
                "Invalid job name, it can't be longer than 52 characters. See the documentation for the naming rules: https://w.wiki/6YL8",
            ),
            (
                r#"{"cmd":"x","imagename":"b","name":"a","job_type":"continuous","health_check":{"type":"http","path":"/healthz"}}"#,
                "Port must be set for HTTP health checks",
            ),
            (
                r#"{"cmd":"x","imagename":"b","name":"a","mount":"none"}"#,
                "File logging is only available with --mount=all",
            ),
        ] {
            assert_eq!(v1(body).err().as_deref(), Some(want), "{body}");
        }
        let long = "a".repeat(53);
        assert!(check_job_name(&long).is_err());
        assert!(check_job_name(&"a".repeat(52)).is_ok());
        assert!(check_job_name("a.b-c").is_ok());
        for bad in ["-a", "a-", "a..b", "A", "a_b", "a/b", ".."] {
            assert!(check_job_name(bad).is_err(), "{bad}");
        }
    }
}
