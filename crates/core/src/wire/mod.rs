//! The JSON the jobs API speaks, generation by generation: the gateway serializes these types
//! and the CLI deserializes the same ones, so the two cannot drift apart.
//!
//! * [`legacy`]: the release 13/14 routes (`/api/v1/…`) of the 2023 server;
//! * [`v1`]: the 16.x routes (`/v1/tool/<tool>/…`);
//! * shared by both: [`Image`], [`Quota`], [`LogEntry`] (one NDJSON log line), [`HealthCheck`].
//!
//! Field order is the order the gateway writes. Readers are lenient: a missing field reads as
//! its default and unknown fields are ignored, so a CLI keeps working against a newer server.

pub mod legacy;
pub mod v1;

use serde::{Deserialize, Deserializer, Serialize};

pub use crate::logs::LogEntry;

/// One entry of the image list, in both generations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    #[serde(default)]
    pub shortname: String,
    #[serde(default)]
    pub image: String,
}

/// A continuous job's health check as list and show report it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// `script` or `http`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

impl HealthCheck {
    pub fn script(script: impl Into<String>) -> Self {
        Self {
            kind: "script".into(),
            script: Some(script.into()),
            path: None,
        }
    }

    pub fn http(path: impl Into<String>) -> Self {
        Self {
            kind: "http".into(),
            script: None,
            path: Some(path.into()),
        }
    }

    /// The script or the path, whichever this check has.
    pub fn target(&self) -> &str {
        self.script
            .as_deref()
            .or(self.path.as_deref())
            .unwrap_or("")
    }
}

/// The quota reply's body, `{"categories": [...]}`, in both generations. Release 13/14 gives
/// counts as numbers and cpu/memory as raw quantities and leaves `used` out of per-job
/// limits; 16.x gives every value as text and `"used": null` there (spec §5).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Quota {
    #[serde(default)]
    pub categories: Vec<QuotaCategory>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QuotaCategory {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub items: Vec<QuotaItem>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QuotaItem {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub limit: Option<QuotaValue>,
    /// Absent: the item has no usage (release 13/14 per-job limits); `Some(None)`: `null`.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub used: Option<Option<QuotaValue>>,
}

/// A quota figure: a number (release 13/14 counts) or text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum QuotaValue {
    Count(i64),
    Text(String),
}

impl std::fmt::Display for QuotaValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QuotaValue::Count(n) => write!(f, "{n}"),
            QuotaValue::Text(t) => f.write_str(t),
        }
    }
}

/// For `Option<Option<T>>` fields: absent reads as `None`, `null` as `Some(None)`.
pub(crate) fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quota_items_keep_absent_and_null_usage_apart() {
        let q: Quota = serde_json::from_value(json!({"categories": [
            {"name": "a", "items": [
                {"name": "x", "limit": 3, "used": 1},
                {"name": "y", "limit": "1Gi"},
                {"name": "z", "limit": "0.5", "used": null}
            ]}
        ]}))
        .unwrap();
        let items = &q.categories[0].items;
        assert_eq!(items[0].limit, Some(QuotaValue::Count(3)));
        assert_eq!(items[0].used, Some(Some(QuotaValue::Count(1))));
        assert_eq!(items[1].used, None);
        assert_eq!(items[2].used, Some(None));
        // and they are written back as they came
        assert_eq!(
            serde_json::to_value(&q).unwrap(),
            json!({"categories": [{"name": "a", "items": [
                {"name": "x", "limit": 3, "used": 1},
                {"name": "y", "limit": "1Gi"},
                {"name": "z", "limit": "0.5", "used": null}
            ]}]})
        );
    }

    #[test]
    fn health_checks_name_one_target() {
        let h = HealthCheck::script("true");
        assert_eq!(
            serde_json::to_string(&h).unwrap(),
            r#"{"type":"script","script":"true"}"#
        );
        assert_eq!(
            serde_json::to_string(&HealthCheck::http("/h")).unwrap(),
            r#"{"type":"http","path":"/h"}"#
        );
        assert_eq!(h.target(), "true");
    }
}
