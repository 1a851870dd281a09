//! Giving freed memory back to the system.
//!
//! A warm tool's open apiserver connection holds its TLS session and HTTP/2 state (and
//! buffers while requests are in flight), and a watched tool its feeds and objects. When a quiet tool's connection is closed or its feeds are dropped
//! that memory is freed, but glibc's allocator keeps freed pages mapped, so the process would
//! stay at its peak size; trimming once they are freed lets the gateway's RSS follow the tools
//! actually in use.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Returns free heap pages to the system (glibc's `malloc_trim`); whether any were released.
/// Takes a few ms on a large heap: call it from a blocking thread.
pub fn trim() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only walks the allocator's own free lists under its locks; it
        // takes no pointers from us and may be called from any thread at any time.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// How long after something was dropped the trim runs: connections shut down in their own
/// tasks (a GOAWAY, the TLS close) after the last handle to them goes, so their buffers are
/// freed a little after the drop, not at it.
const SETTLE: Duration = Duration::from_secs(2);

static PENDING: AtomicBool = AtomicBool::new(false);

/// Trims once what was just dropped has been freed. Calls while a trim is pending join it.
/// Needs a Tokio runtime.
pub fn trim_soon() {
    if PENDING.swap(true, Ordering::AcqRel) {
        return;
    }
    tokio::spawn(async {
        tokio::time::sleep(SETTLE).await;
        PENDING.store(false, Ordering::Release);
        let _ = tokio::task::spawn_blocking(trim).await;
    });
}
