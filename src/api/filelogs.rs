//! A job's file logs in the tool's home: which files there are, their last lines, and what
//! was appended since (for `follow`). Every read opens the home and the file anew with
//! [`crate::home`] (beneath the home, no link followed, a regular file of the home's owner
//! with one link), on the bounded blocking pool with the read timeout (NFS can hang).

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use axum::http::StatusCode;
use chrono::Utc;

use super::auth::Caller;
use super::error::{no_logs_available, ApiError};
use super::state::AppState;
use crate::credentials::CredentialStore;
use crate::home::{HomeError, Problem, ToolHome};
use crate::logfiles as logs;
use jobs_core::identity::ToolName;
use jobs_core::view::JobView;

/// A refused or failed read of a log file as the caller sees it: 403 for a file the gateway
/// will not read for the tool, 503 for an I/O failure, 501 where the kernel cannot open files
/// safely (no `openat2`). The message names paths relative to the home only.
pub fn refusal(e: &HomeError) -> ApiError {
    match e.problem {
        Problem::Unsupported => ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            format!("File logs are not available: {e}"),
        ),
        Problem::Io(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("Reading the log file failed: {e}"),
        ),
        _ => ApiError::forbidden(format!("The log file cannot be read for this tool: {e}")),
    }
}

/// (stream name, path relative to the home) of a job's log files that exist; one entry when
/// both streams go to the same file.
pub async fn log_files(
    state: &AppState,
    caller: &Caller,
    job: &JobView,
) -> Result<Vec<(String, PathBuf)>, ApiError> {
    if !job.filelog {
        return Err(ApiError::not_found(format!(
            "Job '{}' does not have file logs: its output went to the container log, which is not kept. Run it with file logging to keep its output.",
            job.name
        )));
    }
    let out = job
        .filelog_stdout
        .clone()
        .unwrap_or_else(|| format!("{}.out", job.name));
    let err = job
        .filelog_stderr
        .clone()
        .unwrap_or_else(|| format!("{}.err", job.name));
    let root = state.config.home_root.clone();
    let tool = caller.tool.clone();
    let found = state
        .credentials
        .run_blocking(&caller.tool, move || {
            Ok(locate(&root, &tool, [("stdout", out), ("stderr", err)]))
        })
        .await??;
    if found.is_empty() {
        return Err(no_logs_available(&job.name));
    }
    Ok(found)
}

fn locate(
    root: &Path,
    tool: &ToolName,
    configured: [(&str, String); 2],
) -> Result<Vec<(String, PathBuf)>, ApiError> {
    let home = ToolHome::open(root, tool.as_str()).map_err(|e| refusal(&e))?;
    let mut files = Vec::new();
    let mut seen = HashSet::new();
    for (stream, path) in configured {
        let rel = logs::in_home(&home, stream, &path).map_err(ApiError::forbidden)?;
        let Some(file) = logs::open(&home, &rel).map_err(|e| refusal(&e))? else {
            continue;
        };
        if seen.insert((file.meta.dev(), file.meta.ino())) {
            files.push((stream.to_string(), rel));
        }
    }
    Ok(files)
}

/// The last `lines` lines of a log file, the offset to follow from, and the file's mtime.
pub async fn read_tail(
    state: &AppState,
    caller: &Caller,
    rel: PathBuf,
    lines: usize,
) -> Result<(Vec<String>, u64, chrono::DateTime<Utc>), ApiError> {
    let root = state.config.home_root.clone();
    let tool = caller.tool.clone();
    state
        .credentials
        .run_blocking(&caller.tool, move || {
            Ok((|| {
                let home = ToolHome::open(&root, tool.as_str()).map_err(|e| refusal(&e))?;
                let Some(file) = logs::open(&home, &rel).map_err(|e| refusal(&e))? else {
                    // removed since it was found: nothing to show yet
                    return Ok((Vec::new(), 0, Utc::now()));
                };
                let failed = |e: std::io::Error| {
                    ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("Reading the log file {} failed: {e}", rel.display()),
                    )
                };
                let (tail, offset) = logs::tail(&file, lines).map_err(failed)?;
                let mtime = file
                    .meta
                    .modified()
                    .map(chrono::DateTime::<Utc>::from)
                    .map_err(failed)?;
                Ok((tail, offset, mtime))
            })())
        })
        .await?
}

/// For `follow`: the complete lines appended to a log file since `from`, and the new offset.
/// `None` ends the stream: the file is gone, refused or unreadable, or the read timed out.
pub async fn read_more(
    store: &CredentialStore,
    root: &Path,
    tool: &ToolName,
    rel: &Path,
    from: u64,
) -> Option<(Vec<String>, u64)> {
    let root = root.to_path_buf();
    let t = tool.clone();
    let rel = rel.to_path_buf();
    let read = store
        .run_blocking(tool, move || {
            Ok((|| {
                let home = ToolHome::open(&root, t.as_str()).ok()?;
                let file = logs::open(&home, &rel).ok()??;
                logs::read_since(&file, from, 1 << 20).ok()
            })())
        })
        .await;
    read.ok().flatten()
}
