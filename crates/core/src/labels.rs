//! The Toolforge labels that mark a job's objects, and the selectors built from them.

use std::collections::BTreeMap;

pub const TOOLFORGE: &str = "toolforge";
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const CREATED_BY: &str = "app.kubernetes.io/created-by";
pub const VERSION: &str = "app.kubernetes.io/version";
pub const COMPONENT: &str = "app.kubernetes.io/component";
pub const NAME: &str = "app.kubernetes.io/name";
pub const FILELOG: &str = "jobs.toolforge.org/filelog";
pub const EMAILS: &str = "jobs.toolforge.org/emails";
pub const COMMAND_NEW_FORMAT: &str = "jobs.toolforge.org/command-new-format";
pub const CRON_EXPRESSION: &str = "jobs.toolforge.org/cron-expression";
pub const MOUNT: &str = "toolforge.org/mount-storage";
/// Hash of the manifest a job was created from, to tell whether an update changes anything.
pub const SPEC_HASH: &str = "jobs.toolforge.org/spec-hash";
/// Which log paths the user gave (`stdout`, `stderr`, both comma-separated, or empty), so that
/// read-back reports defaults as unset, as the user wrote them.
pub const LOG_PATHS_SET: &str = "jobs.toolforge.org/log-paths-set";
pub const MANAGED_BY_VALUE: &str = "toolforge-jobs-framework";
/// Marks an object created held (no pods) until the gateway has checked the job quota and the
/// job name against every parallel create; removed when the object is released.
pub const HELD: &str = "jobs.toolforge.org/held";

/// The kind of job, named by the `component` label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    /// One-off: batch/v1 Job.
    Jobs,
    /// Scheduled: batch/v1 CronJob.
    CronJobs,
    /// Continuous: v1 ReplicationController or apps/v1 Deployment.
    Continuous(ContinuousComponent),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContinuousComponent {
    ReplicationControllers,
    Deployments,
}

impl Component {
    pub fn label_value(self) -> &'static str {
        match self {
            Component::Jobs => "jobs",
            Component::CronJobs => "cronjobs",
            Component::Continuous(ContinuousComponent::ReplicationControllers) => {
                "replicationcontrollers"
            }
            Component::Continuous(ContinuousComponent::Deployments) => "deployments",
        }
    }
}

/// Labels put on a new object and its pod template.
pub fn object_labels(
    tool: &str,
    job: &str,
    component: Component,
    filelog: bool,
    emails: &str,
    mount: &str,
) -> BTreeMap<String, String> {
    let mut labels = selector_labels(tool, Some(component), Some(job));
    labels.insert(VERSION.into(), "2".into());
    if filelog {
        labels.insert(FILELOG.into(), "yes".into());
    }
    labels.insert(EMAILS.into(), emails.into());
    labels.insert(MOUNT.into(), mount.into());
    labels
}

/// Labels that select a tool's framework objects, narrowed by kind and name when given.
pub fn selector_labels(
    tool: &str,
    component: Option<Component>,
    job: Option<&str>,
) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    labels.insert(TOOLFORGE.into(), "tool".into());
    labels.insert(MANAGED_BY.into(), MANAGED_BY_VALUE.into());
    labels.insert(CREATED_BY.into(), tool.into());
    if let Some(c) = component {
        labels.insert(COMPONENT.into(), c.label_value().into());
    }
    if let Some(j) = job {
        labels.insert(NAME.into(), j.into());
    }
    labels
}

/// `k=v,k=v` for a label selector query.
pub fn selector_string(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_labels_match_the_spec() {
        let labels = object_labels(
            "mytool",
            "myjob",
            Component::CronJobs,
            true,
            "onfailure",
            "all",
        );
        let expected: BTreeMap<String, String> = [
            ("toolforge", "tool"),
            ("app.kubernetes.io/managed-by", "toolforge-jobs-framework"),
            ("app.kubernetes.io/created-by", "mytool"),
            ("app.kubernetes.io/version", "2"),
            ("app.kubernetes.io/component", "cronjobs"),
            ("app.kubernetes.io/name", "myjob"),
            ("jobs.toolforge.org/filelog", "yes"),
            ("jobs.toolforge.org/emails", "onfailure"),
            ("toolforge.org/mount-storage", "all"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(labels, expected);
        let off = object_labels("t", "j", Component::Jobs, false, "none", "none");
        assert!(!off.contains_key(FILELOG));
    }

    #[test]
    fn selectors_leave_out_version_filelog_and_emails() {
        let sel = selector_string(&selector_labels("alice", None, None));
        assert_eq!(
            sel,
            "app.kubernetes.io/created-by=alice,app.kubernetes.io/managed-by=toolforge-jobs-framework,toolforge=tool"
        );
        let named = selector_labels("alice", Some(Component::Jobs), Some("x"));
        assert_eq!(named.get(NAME).map(String::as_str), Some("x"));
        assert_eq!(named.get(COMPONENT).map(String::as_str), Some("jobs"));
        assert_eq!(named.len(), 5);
    }
}
