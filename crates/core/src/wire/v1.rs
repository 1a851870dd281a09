//! The 16.x routes (`/v1/tool/<tool>/…`, and the logs service's `/logs/v1/tool/<tool>/…`).
//! Every reply is an object with `messages` (spec §1.3).

use serde::{Deserialize, Serialize};

use super::{present, HealthCheck, Image, LogEntry, Quota};
use crate::status::StatusV2;

/// `messages` of a reply. The 16.x server sends `{}` on some routes and all three lists on
/// others; each absent list reads as empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Messages {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Vec<String>>,
}

impl Messages {
    /// `{}`.
    pub fn none() -> Self {
        Self::default()
    }

    /// `{"info": [...], "warning": [], "error": []}`.
    pub fn info(info: &[String]) -> Self {
        Self {
            info: Some(info.to_vec()),
            warning: Some(Vec::new()),
            error: Some(Vec::new()),
        }
    }

    /// `{"info": [], "warning": [], "error": [message]}`.
    pub fn error(message: &str) -> Self {
        Self {
            info: Some(Vec::new()),
            warning: Some(Vec::new()),
            error: Some(vec![message.to_string()]),
        }
    }

    pub fn infos(&self) -> &[String] {
        self.info.as_deref().unwrap_or_default()
    }

    pub fn warnings(&self) -> &[String] {
        self.warning.as_deref().unwrap_or_default()
    }

    pub fn errors(&self) -> &[String] {
        self.error.as_deref().unwrap_or_default()
    }
}

/// A job as list and show report it with `include_unset` (the default): every field, platform
/// defaults filled in (`"0.5Gi"`, `"0.1"`), the status in both the older strings and the
/// structured object, and the fields of its kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Job {
    pub name: String,
    pub cmd: String,
    pub imagename: String,
    pub image: String,
    /// `one-off`, `scheduled` or `continuous`.
    pub job_type: String,
    pub image_state: String,
    pub filelog: bool,
    pub filelog_stdout: Option<String>,
    pub filelog_stderr: Option<String>,
    pub emails: String,
    pub mount: String,
    pub memory: String,
    pub cpu: String,
    pub status_short: String,
    pub status_long: String,
    pub status: StatusV2,
    /// One-off and scheduled jobs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<i32>,
    /// Scheduled jobs: as given, and as run (`@daily` becomes a fixed time).
    #[serde(deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Option<String>>,
    #[serde(deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub schedule_actual: Option<Option<String>>,
    #[serde(deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Option<i64>>,
    /// Continuous jobs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continuous: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    #[serde(deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub port: Option<Option<i32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port_protocol: Option<String>,
    #[serde(deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub health_check: Option<Option<HealthCheck>>,
}

impl Job {
    pub fn is_continuous(&self) -> bool {
        self.job_type == "continuous" || self.continuous == Some(true)
    }

    pub fn schedule(&self) -> Option<&str> {
        self.schedule.as_ref().and_then(|s| s.as_deref())
    }

    pub fn timeout(&self) -> Option<i64> {
        self.timeout.flatten()
    }

    pub fn port(&self) -> Option<i32> {
        self.port.flatten()
    }

    pub fn health_check(&self) -> Option<&HealthCheck> {
        self.health_check.as_ref().and_then(Option::as_ref)
    }
}

/// A job as list gives it with `include_unset=false` (what `dump` writes): only what differs
/// from the defaults, so that loading a dump again changes nothing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobDefinition {
    pub name: String,
    pub cmd: String,
    pub imagename: String,
    pub image: String,
    pub job_type: String,
    /// Only `false` is written (file logging is the default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filelog: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filelog_stdout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filelog_stderr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emails: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mount: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port_protocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
}

/// `GET …/jobs/<name>` and the 201 of a create: a [`Job`], or with `include_unset=false` a
/// [`JobDefinition`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobReply<J = Job> {
    pub job: J,
    #[serde(default)]
    pub messages: Messages,
}

/// `GET …/jobs`: [`Job`]s, or [`JobDefinition`]s with `include_unset=false`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobsReply<J> {
    pub jobs: Vec<J>,
    #[serde(default)]
    pub messages: Messages,
}

/// Replies that only say something: delete, flush, restart, and (with `job_changed`) the
/// PATCH that creates or updates a job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagesReply {
    #[serde(default)]
    pub messages: Messages,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_changed: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImagesReply {
    pub images: Vec<Image>,
    #[serde(default)]
    pub messages: Messages,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QuotaReply {
    pub quota: Quota,
    #[serde(default)]
    pub messages: Messages,
}

/// A refusal or failure: the message in `error` and again in `messages.error`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    #[serde(default)]
    pub error: Vec<String>,
    #[serde(default)]
    pub messages: Messages,
}

impl ErrorReply {
    pub fn new(message: &str) -> Self {
        Self {
            error: vec![message.to_string()],
            messages: Messages::error(message),
        }
    }
}

/// The logs service's page of log lines (newest first); `next` is always `null` here.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogsPage {
    pub data: LogsData,
    #[serde(default)]
    pub messages: Messages,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogsData {
    #[serde(default)]
    pub logs: Vec<LogEntry>,
    #[serde(default)]
    pub next: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_as_the_routes_send_them() {
        assert_eq!(serde_json::to_string(&Messages::none()).unwrap(), "{}");
        assert_eq!(
            serde_json::to_string(&Messages::info(&["a".into()])).unwrap(),
            r#"{"info":["a"],"warning":[],"error":[]}"#
        );
        let m: Messages = serde_json::from_value(json!({"warning": ["w"]})).unwrap();
        assert_eq!((m.infos(), m.warnings()), (&[][..], &["w".to_string()][..]));
    }

    #[test]
    fn a_job_reads_with_missing_fields_and_keeps_null_apart_from_absent() {
        let j: Job = serde_json::from_value(json!({
            "name": "cj", "job_type": "scheduled", "schedule": "@daily",
            "timeout": null, "status": {"short": "running", "duration": "5s",
            "up_to_date": true, "messages": []}, "unknown": 1
        }))
        .unwrap();
        assert_eq!(j.schedule(), Some("@daily"));
        assert_eq!(j.timeout, Some(None));
        assert_eq!(j.port, None);
        assert_eq!(j.status.short, "running");
        let out = serde_json::to_value(&j).unwrap();
        assert_eq!(out["timeout"], serde_json::Value::Null);
        assert!(out.get("port").is_none());
    }

    #[test]
    fn errors_name_the_message_twice() {
        assert_eq!(
            serde_json::to_value(ErrorReply::new("no")).unwrap(),
            json!({"error": ["no"], "messages": {"info": [], "warning": [], "error": ["no"]}})
        );
    }
}
