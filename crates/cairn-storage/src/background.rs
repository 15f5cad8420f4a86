//! CPU priority of a store's background threads (state checkpoints, WAL copies, writeback).
//!
//! On two cores, a gigabyte-sized checkpoint and the WAL copy after it can keep both cores busy for
//! seconds; at the default priority the threads an accepted event waits for (the log writer, the
//! applier) then wait for a time slice. Background threads run at nice [`BACKGROUND_NICE`], so the
//! scheduler gives those a core first while background work still gets the time that is left.

/// The nice value of background threads (the default is 0; 19 is the lowest priority).
pub const BACKGROUND_NICE: i32 = 10;

/// Lowers the calling thread's CPU priority to [`BACKGROUND_NICE`]. Only on Linux, where the nice
/// value belongs to the thread; elsewhere (and if the call fails) the priority stays as it was,
/// which is only slower under load.
pub fn lower_cpu_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: `setpriority` takes integers only and touches no memory of ours; on Linux `who` 0
    // with `PRIO_PROCESS` is the calling thread.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS as _, 0, BACKGROUND_NICE);
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn own_nice() -> i32 {
        // SAFETY: as above; `getpriority` reads the calling thread's nice value.
        unsafe { libc::getpriority(libc::PRIO_PROCESS as _, 0) }
    }

    #[test]
    fn a_background_thread_runs_at_the_background_nice_and_others_keep_theirs() {
        let before = own_nice();
        let lowered = std::thread::spawn(|| {
            lower_cpu_priority();
            own_nice()
        })
        .join()
        .expect("the thread finishes");
        assert_eq!(lowered, BACKGROUND_NICE.max(before));
        assert_eq!(own_nice(), before, "only the calling thread is lowered");
    }
}
