//! The process's allocator settings: glibc's malloc keeps freed memory instead of handing it back
//! to the operating system after every large free.
//!
//! Checkpoints copy hundreds of megabytes of changed profiles every few seconds and free them once
//! written. With glibc's default (dynamic) thresholds, that memory goes back to the kernel and the
//! next copy faults it in again page by page, zeroed: a fifth of the CPU time of `cairn bench
//! journeys` at 400,000 profiles went to `clear_page`. Fixed thresholds keep up to 512 MiB of free
//! memory at the top of a heap and serve blocks below 32 MiB (glibc's maximum) from the heaps.
//! Elsewhere (not glibc) this does nothing.

/// Freed memory kept at the top of a heap before it is returned to the system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD_BYTES: i32 = 512 << 20;
/// Blocks at least this large are mapped on their own (glibc's maximum threshold on 64-bit).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD_BYTES: i32 = 32 << 20;

/// Applies the settings; call once, first thing in `main`.
pub fn configure() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only changes malloc's tuning parameters; it is called before any thread
    // starts.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES);
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
    }
}
