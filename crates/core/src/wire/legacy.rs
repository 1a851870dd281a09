//! The release 13/14 routes of the 2023 server (`/api/v1/…`): bare arrays and objects, no
//! `messages`; errors are `{"message": ..., "data": {...}}` (spec §1.2).

use serde::{Deserialize, Serialize};

use super::present;

/// A job as list and show report it to release 13/14 (key order as the original service).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Job {
    pub name: String,
    pub cmd: String,
    pub image: String,
    pub image_state: String,
    /// `"True"` or `"False"`: the 2023 server's Python booleans as text.
    pub filelog: String,
    /// `null` when it is the default path, so that release 14's `load` does not see a change.
    pub filelog_stdout: Option<String>,
    pub filelog_stderr: Option<String>,
    pub status_short: String,
    pub status_long: String,
    pub emails: String,
    pub retry: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    #[serde(deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub schedule_actual: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continuous: Option<bool>,
    /// Only when not the 2023 defaults (`512Mi`, `500m`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
}

/// A refusal or failure: the message, and `data` (the object a failed create sent, or `{}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorReply {
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub data: serde_json::Value,
}
