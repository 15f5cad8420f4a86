//! Paced writeback: a database's files reach the disk a little at a time, never in one flood.
//!
//! SQLite writes through the page cache and only waits for the disk at a sync. A large state
//! checkpoint (one page per changed profile spilled to the WAL) and then the WAL thread's copy of it
//! into the database file each dirty a gigabyte or more in a few seconds; left to the kernel, that
//! reaches the disk all at once, at the sync or when the dirty limit is crossed, and fills the disk's
//! queue. Every other write on the same disk then waits behind it: the input log's commits, which
//! every accepted event waits for, took up to 175 ms (one run: 600 ms) while such a flood drained.
//!
//! A writeback thread ([`start`]) therefore writes the files' dirty pages out every [`INTERVAL`]
//! and waits for them (`sync_file_range`: data only, no metadata and no cache flush, so it is not a
//! sync and durability still comes from SQLite's own). What is queued at a time is what was written
//! since the last round, a few megabytes, so a log commit waits behind little. The writes it makes
//! are the ones the sync would have made; only their timing changes.

use crate::background::BackgroundThread;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Time between two rounds of writeback.
pub(crate) const INTERVAL: Duration = Duration::from_millis(10);

/// Starts writing back `files` (each opened once it exists) every [`INTERVAL`], until the handle is
/// dropped.
pub(crate) fn start(files: Vec<PathBuf>) -> std::io::Result<BackgroundThread> {
    BackgroundThread::spawn("cairn-writeback", move |stop| run(files, stop))
}

fn run(paths: Vec<PathBuf>, stop: &AtomicBool) {
    idle_io_priority();
    let mut files: Vec<(PathBuf, Option<File>)> = paths.into_iter().map(|p| (p, None)).collect();
    while !stop.load(Ordering::Acquire) {
        std::thread::park_timeout(INTERVAL);
        for (path, file) in &mut files {
            if file.is_none() {
                *file = File::open(path.as_path()).ok();
            }
            if let Some(file) = file {
                write_out(file);
            }
        }
    }
}

/// Writes `file`'s dirty pages and waits until the disk has them (not a sync: see the module docs).
#[cfg(target_os = "linux")]
fn write_out(file: &File) {
    use std::os::fd::AsRawFd;
    let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
        | libc::SYNC_FILE_RANGE_WRITE
        | libc::SYNC_FILE_RANGE_WAIT_AFTER;
    // SAFETY: `sync_file_range` only reads the descriptor, which `file` keeps open, and touches no
    // memory of ours; offset 0 with length 0 means the whole file.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), 0, 0, flags);
    }
}

#[cfg(not(target_os = "linux"))]
fn write_out(_file: &File) {}

/// Puts the calling thread's I/O in the idle class: a scheduler that knows classes (mq-deadline,
/// BFQ) sends the log's commits ahead of the writes this thread starts.
#[cfg(target_os = "linux")]
fn idle_io_priority() {
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    const IOPRIO_CLASS_IDLE: libc::c_long = 3;
    const IOPRIO_CLASS_SHIFT: libc::c_long = 13;
    // SAFETY: `ioprio_set` takes three integers and touches no memory; `who` 0 is the calling
    // thread. A failure leaves the priority as it was, which is only slower.
    unsafe {
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            0 as libc::c_long,
            IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn idle_io_priority() {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_file_missing_at_the_start_is_picked_up_later_and_dropping_stops_the_thread() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("later.db");
        let writeback = start(vec![path.clone()]).expect("the thread starts");
        std::thread::sleep(INTERVAL * 3);
        let mut file = File::create(&path).expect("the file is created");
        file.write_all(&[7u8; 64 * 1024]).expect("written");
        std::thread::sleep(INTERVAL * 3);
        let started = std::time::Instant::now();
        drop(writeback);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "drop stops the thread promptly"
        );
    }
}
