//! The process's allocators: jemalloc for everything Rust allocates, and glibc's malloc (still
//! SQLite's) tuned to keep freed memory instead of handing it back after every large free.
//!
//! The engine's applier allocates and frees small blocks at a high rate, and checkpoint copies made
//! on the applier's thread are freed on the checkpoint writer's. Under glibc's malloc a third of
//! `cairn bench journeys`' CPU time at full size went to `malloc`/`free` (`unlink_chunk`,
//! `malloc_consolidate`, cross-arena frees); jemalloc's thread caches and size classes serve that
//! pattern far more cheaply. jemalloc also counts what is allocated (`stats.allocated`), which is
//! how the benchmark measures RAM per waiting enrollment ([`allocated_bytes`]).
//!
//! glibc's settings: checkpoints used to copy hundreds of megabytes of changed profiles every few
//! seconds through glibc and free them once written; with its default (dynamic) thresholds that
//! memory went back to the kernel and the next copy faulted it in again page by page, zeroed. Fixed
//! thresholds keep up to 512 MiB of free memory at the top of a heap and serve blocks below 32 MiB
//! (glibc's maximum) from the heaps. Elsewhere (not glibc) this does nothing.

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read at its start from this symbol: freed pages are kept five minutes
/// before they go back to the system (the default, ten seconds, handed back what each checkpoint
/// copy freed, and the next copy faulted it in again page by page, zeroed: a quarter of the
/// applier's time at a million profiles went to `clear_page`).
#[unsafe(export_name = "_rjem_malloc_conf")]
static JEMALLOC_OPTIONS: Options = Options(c"dirty_decay_ms:300000,muzzy_decay_ms:300000".as_ptr());

/// A C string pointer as jemalloc declares its options (`const char *`).
#[repr(transparent)]
struct Options(*const std::ffi::c_char);

// SAFETY: the pointer is to a string literal, never written.
unsafe impl Sync for Options {}

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

/// Bytes of the process's Rust allocations in use now (jemalloc's `stats.allocated`, refreshed
/// first): what its data structures hold, rounded up to jemalloc's size classes, without the free
/// memory the allocator keeps or SQLite's allocations (those go through glibc). `None` if jemalloc
/// cannot say.
pub fn allocated_bytes() -> Option<u64> {
    tikv_jemalloc_ctl::epoch::advance().ok()?;
    tikv_jemalloc_ctl::stats::allocated::read()
        .ok()
        .map(|bytes| bytes as u64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn jemalloc_reads_the_options_and_counts_what_is_allocated() {
        // SAFETY: `opt.dirty_decay_ms` is an `ssize_t` option.
        let decay = unsafe { tikv_jemalloc_ctl::raw::read::<isize>(b"opt.dirty_decay_ms\0") };
        assert_eq!(decay.ok(), Some(300_000));
        let before = super::allocated_bytes().expect("jemalloc reports");
        let block = vec![1u8; 64 << 20];
        let during = super::allocated_bytes().expect("jemalloc reports");
        assert!(during >= before + (64 << 20), "{before} → {during}");
        drop(block);
    }
}
