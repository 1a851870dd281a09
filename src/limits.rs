//! Per-tool protection of the shared cluster: request rate limits and grid-parity job quotas.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::Deserialize;

use crate::filewatch::{Current, Source};
use jobs_core::identity::ToolName;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Rate and burst of one limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

/// Two keyed limiters: every call, and a stricter one for calls that change something.
pub struct RateLimits {
    all: DefaultKeyedRateLimiter<ToolName>,
    writes: DefaultKeyedRateLimiter<ToolName>,
    clock: DefaultClock,
}

fn quota(rate: Rate) -> Quota {
    let per = NonZeroU32::new(rate.per_second.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(rate.burst.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(per).allow_burst(burst)
}

impl RateLimits {
    pub fn new(all: Rate, writes: Rate) -> Self {
        Self {
            all: RateLimiter::keyed(quota(all)),
            writes: RateLimiter::keyed(quota(writes)),
            clock: DefaultClock::default(),
        }
    }

    /// `Err(seconds to wait)` when the tool is over its limit.
    pub fn check(&self, tool: &ToolName, mutating: bool) -> Result<(), u64> {
        let now = self.clock.now();
        let wait = |n: governor::NotUntil<_>| n.wait_time_from(now).as_secs().max(1);
        self.all.check_key(tool).map_err(wait)?;
        if mutating {
            self.writes.check_key(tool).map_err(wait)?;
        }
        Ok(())
    }

    /// Drops state of tools that have been quiet (keeps memory bounded).
    pub fn forget_idle(&self) {
        self.all.retain_recent();
        self.writes.retain_recent();
        self.all.shrink_to_fit();
        self.writes.shrink_to_fit();
    }
}

/// How many jobs a tool may have, like the grid's per-user limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct JobQuota {
    /// One-off jobs still running plus continuous jobs.
    pub running: u32,
    /// Scheduled jobs.
    pub scheduled: u32,
}

#[derive(Debug, Deserialize, Default)]
struct QuotaOverride {
    running: Option<u32>,
    scheduled: Option<u32>,
}

/// The quota file's overrides (see [`quota_file`]).
#[derive(Debug, Deserialize, Default)]
pub struct QuotaFile {
    #[serde(default)]
    default: QuotaOverride,
    #[serde(default)]
    tools: BTreeMap<String, QuotaOverride>,
}

impl QuotaFile {
    fn parse(path: &Path, bytes: &[u8]) -> Result<Self, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| {
            format!(
                "quota file {}: stream did not contain valid UTF-8",
                path.display()
            )
        })?;
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_yaml::from_str(text).map_err(|e| format!("quota file {}: {e}", path.display()))
    }
}

/// The quota file (e.g. a mounted ConfigMap): `load` it at start, then `spawn` the returned
/// watch to re-read it every `period` (see [`crate::filewatch`]).
pub fn quota_file(path: PathBuf, period: Duration) -> Source<QuotaFile> {
    let shown = path.clone();
    Source::new("quotas", vec![path], move |files| match files {
        [bytes] => QuotaFile::parse(&shown, bytes),
        _ => Err(format!("quota file {}: not read", shown.display())),
    })
    .every(period)
    .read_error(|path, e| format!("quota file {}: {e}", path.display()))
}

/// Job quotas: defaults, optionally overridden per tool from the quota file, whose current
/// version is kept by its watcher (a broken new version keeps the last good one).
pub struct JobQuotas {
    defaults: JobQuota,
    file: Current<QuotaFile>,
    locks: Mutex<HashMap<ToolName, Arc<tokio::sync::Mutex<()>>>>,
    serialize: bool,
}

impl JobQuotas {
    /// `file`: the loaded quota file's current version ([`quota_file`]), or none.
    pub fn new(defaults: JobQuota, file: Option<Current<QuotaFile>>) -> Self {
        Self {
            defaults,
            file: file.unwrap_or_else(|| Current::fixed(QuotaFile::default())),
            locks: Mutex::new(HashMap::new()),
            serialize: true,
        }
    }

    /// The quota of one tool, from the quota file as last read: no file access here.
    pub fn for_tool(&self, tool: &ToolName) -> JobQuota {
        let file = self.file.get();
        let mut q = self.defaults;
        for o in [Some(&file.default), file.tools.get(tool.as_str())]
            .into_iter()
            .flatten()
        {
            q.running = o.running.unwrap_or(q.running);
            q.scheduled = o.scheduled.unwrap_or(q.scheduled);
        }
        q
    }

    /// Serialises job creation per tool within this process, so that two parallel runs on one
    /// replica do not both create an object for the last slot. Only an optimisation: the
    /// quota itself is decided by Kubernetes after the create (`arbitrate` in
    /// `api::handlers`), which also holds across replicas.
    /// `None` when switched off (`JOBS_GATEWAY_CREATION_SLOT=off`).
    pub async fn creation_slot(&self, tool: &ToolName) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        if !self.serialize {
            return None;
        }
        let m = {
            let mut locks = lock(&self.locks);
            locks.retain(|_, m| Arc::strong_count(m) > 1);
            locks.entry(tool.clone()).or_default().clone()
        };
        Some(m.lock_owned().await)
    }

    /// Whether [`Self::creation_slot`] serialises (the default) or lets creates run at once.
    pub fn with_creation_slot(mut self, on: bool) -> Self {
        self.serialize = on;
        self
    }
}

/// Periodically drops idle rate-limiter state.
pub fn spawn_housekeeping(limits: Arc<RateLimits>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            limits.forget_idle();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(n: &str) -> ToolName {
        ToolName::parse(n).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn burst_then_refused_per_tool() {
        let limits = RateLimits::new(
            Rate {
                per_second: 1,
                burst: 3,
            },
            Rate {
                per_second: 1,
                burst: 1,
            },
        );
        let a = tool("a");
        for _ in 0..3 {
            assert_eq!(limits.check(&a, false), Ok(()));
        }
        assert!(limits.check(&a, false).is_err());
        let b = tool("b");
        assert_eq!(
            limits.check(&b, true),
            Ok(()),
            "another tool is not affected"
        );
        assert!(
            limits.check(&b, true).is_err(),
            "writes have their own stricter limit"
        );
    }

    /// Replaces `path` in one step, as a ConfigMap update does (no read sees it half-written),
    /// keeping `mtime`: the change is seen by content.
    fn put(path: &Path, text: &str, mtime: std::time::SystemTime) {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap_or_else(|e| panic!("{e}"));
        std::fs::File::options()
            .write(true)
            .open(&tmp)
            .and_then(|f| f.set_modified(mtime))
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::rename(&tmp, path).unwrap_or_else(|e| panic!("{e}"));
    }

    const DEFAULTS: JobQuota = JobQuota {
        running: 16,
        scheduled: 34,
    };

    #[tokio::test]
    async fn quota_file_overrides_defaults_and_reloads() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("quotas.yaml");
        let mtime = std::time::SystemTime::now() - Duration::from_secs(60);
        put(
            &path,
            "default:\n  scheduled: 10\ntools:\n  big:\n    running: 100\n",
            mtime,
        );
        let watch = quota_file(path.clone(), Duration::from_millis(10))
            .load()
            .unwrap_or_else(|e| panic!("{e}"));
        let stats = watch.stats();
        let q = JobQuotas::new(DEFAULTS, Some(watch.current()));
        assert!(watch.spawn().is_some());
        assert_eq!(
            q.for_tool(&tool("x")),
            JobQuota {
                running: 16,
                scheduled: 10
            }
        );
        assert_eq!(
            q.for_tool(&tool("big")),
            JobQuota {
                running: 100,
                scheduled: 10
            }
        );
        // a new version with the old mtime (a ConfigMap's symlink swap keeps it)
        put(&path, "tools:\n  x:\n    running: 1\n", mtime);
        let want = JobQuota {
            running: 1,
            scheduled: 34,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while q.for_tool(&tool("x")) != want {
            assert!(
                std::time::Instant::now() < deadline,
                "the new quota file was not taken within 5 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(q.for_tool(&tool("big")), DEFAULTS);
        put(&path, ": : not yaml [", mtime);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while stats.problems() == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the broken quota file was not noticed within 5 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            q.for_tool(&tool("x")),
            want,
            "a broken file keeps the last good quotas"
        );
    }

    #[test]
    fn the_first_load_of_the_quota_file_fails_as_before() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("quotas.yaml");
        let load = || quota_file(path.clone(), Duration::ZERO).load().err();
        let missing = load().unwrap_or_default();
        assert!(
            missing.starts_with(&format!("quota file {}: No such file", path.display())),
            "{missing}"
        );
        std::fs::write(&path, "tools: [").unwrap_or_else(|e| panic!("{e}"));
        let broken = load().unwrap_or_default();
        assert!(
            broken.starts_with(&format!("quota file {}: ", path.display())),
            "{broken}"
        );
        std::fs::write(&path, b"\xff\xfe").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            load(),
            Some(format!(
                "quota file {}: stream did not contain valid UTF-8",
                path.display()
            ))
        );
        std::fs::write(&path, "  \n").unwrap_or_else(|e| panic!("{e}"));
        assert!(load().is_none(), "an empty file means no overrides");
    }

    #[test]
    fn the_quota_of_a_request_needs_no_file_access() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("quotas.yaml");
        std::fs::write(&path, "tools:\n  x:\n    running: 1\n").unwrap_or_else(|e| panic!("{e}"));
        let watch = quota_file(path.clone(), Duration::ZERO)
            .load()
            .unwrap_or_else(|e| panic!("{e}"));
        let q = Arc::new(JobQuotas::new(DEFAULTS, Some(watch.current())));
        // the file becomes a FIFO without a writer: any read of it would hang
        std::fs::remove_file(&path).unwrap_or_else(|e| panic!("{e}"));
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        // SAFETY: a valid NUL-terminated path
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let (tx, rx) = std::sync::mpsc::channel();
        let asking = q.clone();
        std::thread::spawn(move || {
            let _ = tx.send(asking.for_tool(&tool("x")));
        });
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(2)).ok(),
            Some(JobQuota {
                running: 1,
                scheduled: 34
            })
        );
    }
}
