//! Per-tool protection of the shared cluster: request rate limits and grid-parity job quotas.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::Deserialize;

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

#[derive(Debug, Deserialize, Default)]
struct QuotaFile {
    #[serde(default)]
    default: QuotaOverride,
    #[serde(default)]
    tools: BTreeMap<String, QuotaOverride>,
}

/// Job quotas: defaults, optionally overridden per tool from a YAML file (e.g. a mounted
/// ConfigMap), which is re-read when it changes.
pub struct JobQuotas {
    defaults: JobQuota,
    file: Option<PathBuf>,
    loaded: Mutex<(Option<SystemTime>, Arc<QuotaFile>)>,
    locks: Mutex<HashMap<ToolName, Arc<tokio::sync::Mutex<()>>>>,
    serialize: bool,
}

impl JobQuotas {
    pub fn new(defaults: JobQuota, file: Option<PathBuf>) -> Result<Self, String> {
        let q = Self {
            defaults,
            file,
            loaded: Mutex::new((None, Arc::new(QuotaFile::default()))),
            locks: Mutex::new(HashMap::new()),
            serialize: true,
        };
        q.reload()?;
        Ok(q)
    }

    fn reload(&self) -> Result<Arc<QuotaFile>, String> {
        let Some(path) = &self.file else {
            return Ok(lock(&self.loaded).1.clone());
        };
        let mtime = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .map_err(|e| format!("quota file {}: {e}", path.display()))?;
        {
            let loaded = lock(&self.loaded);
            if loaded.0 == Some(mtime) {
                return Ok(loaded.1.clone());
            }
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("quota file {}: {e}", path.display()))?;
        let parsed: QuotaFile = if text.trim().is_empty() {
            QuotaFile::default()
        } else {
            serde_yaml::from_str(&text)
                .map_err(|e| format!("quota file {}: {e}", path.display()))?
        };
        let parsed = Arc::new(parsed);
        *lock(&self.loaded) = (Some(mtime), parsed.clone());
        Ok(parsed)
    }

    /// The quota of one tool. A broken file keeps the last good version (and is logged).
    pub fn for_tool(&self, tool: &ToolName) -> JobQuota {
        let file = match self.reload() {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!("{e}; keeping the previous quotas");
                lock(&self.loaded).1.clone()
            }
        };
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

    #[test]
    fn quota_file_overrides_defaults_and_reloads() {
        let dir = std::env::temp_dir().join(format!("jobs-gateway-quota-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let path = dir.join("quotas.yaml");
        std::fs::write(
            &path,
            "default:\n  scheduled: 10\ntools:\n  big:\n    running: 100\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let q = JobQuotas::new(
            JobQuota {
                running: 16,
                scheduled: 34,
            },
            Some(path.clone()),
        )
        .unwrap_or_else(|e| panic!("{e}"));
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
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&path, "tools:\n  x:\n    running: 1\n").unwrap_or_else(|e| panic!("{e}"));
        let later = SystemTime::now() + Duration::from_secs(5);
        let f = std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("{e}"));
        f.set_modified(later).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            q.for_tool(&tool("x")),
            JobQuota {
                running: 1,
                scheduled: 34
            }
        );
        std::fs::write(&path, ": : not yaml [").unwrap_or_else(|e| panic!("{e}"));
        f.set_modified(later + Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            q.for_tool(&tool("x")),
            JobQuota {
                running: 1,
                scheduled: 34
            },
            "a broken file keeps the last good quotas"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
