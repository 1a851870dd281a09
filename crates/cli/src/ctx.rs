//! What every command shares: the API client, `--json`, and reading replies as the wire
//! types of `jobs_core::wire::v1`.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use super::client::Api;
use super::error::{print_warning, CliError};
use jobs_core::wire::v1::{Job, JobDefinition, JobsReply, Messages};

pub struct Ctx {
    pub api: Api,
    pub json: bool,
}

impl Ctx {
    /// Prints a success reply: as JSON with `--json`, else its info (stdout) and warning
    /// (stderr) messages.
    pub fn report(&self, reply: &Value) {
        if self.json {
            println!("{}", pretty(reply));
            return;
        }
        print_messages(&messages_of(reply));
    }

    /// The tool's jobs as list reports them (every field), sorted by name, and the reply's
    /// `jobs` as sent (for `--json`), in the same order.
    pub async fn jobs(&self) -> Result<(Vec<Job>, Vec<Value>), CliError> {
        self.listed(true).await
    }

    /// The tool's jobs as they were set (`include_unset=false`, what `dump` writes), sorted by
    /// name, with the reply's `jobs` as sent.
    pub async fn definitions(&self) -> Result<(Vec<JobDefinition>, Vec<Value>), CliError> {
        self.listed(false).await
    }

    async fn listed<J: DeserializeOwned + Named>(
        &self,
        include_unset: bool,
    ) -> Result<(Vec<J>, Vec<Value>), CliError> {
        let reply = self
            .api
            .get(&format!(
                "jobs/?include_unset={}",
                if include_unset { "True" } else { "False" }
            ))
            .await?;
        let typed: JobsReply<J> = typed(&reply)?;
        let mut raw: Vec<Value> = reply
            .get("jobs")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut both: Vec<(J, Value)> = typed.jobs.into_iter().zip(raw.drain(..)).collect();
        both.sort_by(|a, b| a.0.name().cmp(b.0.name()));
        Ok(both.into_iter().unzip())
    }
}

/// What has a job name.
pub trait Named {
    fn name(&self) -> &str;
}

impl Named for Job {
    fn name(&self) -> &str {
        &self.name
    }
}

impl Named for JobDefinition {
    fn name(&self) -> &str {
        &self.name
    }
}

/// A reply read as its wire type; a reply that does not fit is the server's fault.
pub fn typed<T: DeserializeOwned>(reply: &Value) -> Result<T, CliError> {
    T::deserialize(reply)
        .map_err(|e| CliError::Server(format!("unexpected reply from the jobs API: {e}")))
}

/// The reply's `messages`; a reply without them says nothing.
pub fn messages_of(reply: &Value) -> Messages {
    reply
        .get("messages")
        .and_then(|m| Messages::deserialize(m).ok())
        .unwrap_or_default()
}

pub fn print_messages(m: &Messages) {
    for i in m.infos() {
        println!("{i}");
    }
    for w in m.warnings() {
        print_warning(w);
    }
}

pub fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}
