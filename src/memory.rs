//! Giving freed memory back to the system.
//!
//! A warm tool's apiserver connection holds some tens of KiB of buffers (TLS, HTTP/2). When a
//! quiet tool's connection is closed that memory is freed, but glibc's allocator keeps freed
//! pages mapped, so the process would stay at its peak size; trimming after the sweep lets the
//! gateway's RSS follow the tools actually in use.

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
