//! What a tool's writes through this gateway changed, recorded by its
//! [`crate::runtime::ToolRuntime`] so that reads from the watch cache ([`crate::watchcache`])
//! wait until the watches have delivered them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Most writes of a tool remembered; past that, its next read goes directly.
pub(crate) const MAX_PENDING: usize = 256;

/// What a write changed, until the feeds have delivered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pending {
    /// The object of this plural has at least this resourceVersion (or is gone since).
    Version { plural: String, version: u64 },
    /// None of these objects (by uid) of this plural is left, or each is being deleted.
    Gone { plural: String, uids: Vec<String> },
}

/// A place for a tool's writes to be recorded: handed to its [`crate::runtime::ToolRuntime`].
pub struct Writes {
    pub(crate) pending: Mutex<Vec<Pending>>,
    /// More than [`MAX_PENDING`] writes came before a read: that read goes directly.
    pub(crate) overflow: AtomicBool,
    /// When the last write was recorded.
    pub(crate) last: Mutex<Instant>,
}

impl Default for Writes {
    fn default() -> Self {
        Self {
            pending: Mutex::new(Vec::new()),
            overflow: AtomicBool::new(false),
            last: Mutex::new(Instant::now()),
        }
    }
}

impl Writes {
    fn push(&self, p: Pending) {
        *lock(&self.last) = Instant::now();
        let mut pending = lock(&self.pending);
        if pending.len() >= MAX_PENDING {
            pending.clear();
            self.overflow.store(true, Ordering::Release);
        }
        pending.push(p);
    }

    /// A create or patch that answered with the object at `version`; a write whose version
    /// cannot be read makes the next read go directly.
    pub fn wrote(&self, plural: &str, version: Option<&str>) {
        match version.and_then(|v| v.parse::<u64>().ok()) {
            Some(version) => self.push(Pending::Version {
                plural: plural.to_string(),
                version,
            }),
            None => self.overflow.store(true, Ordering::Release),
        }
    }

    /// A delete of these objects (by uid); `None`: the reply did not say which, so the next
    /// read goes directly.
    pub fn removed(&self, plural: &str, uids: Option<Vec<String>>) {
        match uids {
            Some(uids) if uids.is_empty() => {}
            Some(uids) => self.push(Pending::Gone {
                plural: plural.to_string(),
                uids,
            }),
            None => self.overflow.store(true, Ordering::Release),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_many_writes_before_a_read_make_it_read_directly() {
        let w = Writes::default();
        for v in 0..MAX_PENDING as u64 {
            w.wrote("jobs", Some(&v.to_string()));
        }
        assert!(!w.overflow.load(Ordering::Acquire));
        w.wrote("jobs", Some("999"));
        assert!(w.overflow.load(Ordering::Acquire));
        assert_eq!(lock(&w.pending).len(), 1);
        let w = Writes::default();
        w.wrote("jobs", Some("not a number"));
        assert!(
            w.overflow.load(Ordering::Acquire),
            "an unreadable version is not waited for"
        );
    }
}
