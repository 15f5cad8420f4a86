//! WAL checkpoints off the commit path.
//!
//! The writer's connection has automatic checkpoints turned off, so a commit only appends its pages
//! to the WAL and fsyncs it. This thread copies committed pages back into the database file with
//! `PASSIVE` checkpoints, which never take the write lock. A passive checkpoint cannot restart the WAL
//! while the writer keeps appending, so the writer itself restarts it between commits once it has
//! grown past [`WAL_LIMIT_BYTES`] ([`wal_oversized`]): the WAL stays bounded under sustained load.

use crate::backend;
use cairn_storage::StorageResult;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Time between two passive checkpoints.
const INTERVAL: Duration = Duration::from_millis(200);
/// WAL size above which the checkpointer waits for the writer to let it restart the WAL.
pub const WAL_LIMIT_BYTES: u64 = 64 * 1024 * 1024;

/// The checkpoint thread; stops (after a last checkpoint) when dropped.
pub(crate) struct Checkpointer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub(crate) fn start(connection: Connection) -> StorageResult<Checkpointer> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("cairn-checkpoint".into())
            .spawn(move || run(&connection, &stopping))?;
        Ok(Checkpointer {
            stop,
            thread: Some(thread),
        })
    }
}

/// The WAL file beside a database file.
pub(crate) fn wal_path(database: &Path) -> PathBuf {
    let mut wal = database.as_os_str().to_owned();
    wal.push("-wal");
    PathBuf::from(wal)
}

/// Whether the WAL has grown past [`WAL_LIMIT_BYTES`].
pub(crate) fn wal_oversized(wal: &Path) -> bool {
    std::fs::metadata(wal).is_ok_and(|m| m.len() > WAL_LIMIT_BYTES)
}

fn run(connection: &Connection, stop: &AtomicBool) {
    while !stop.load(Ordering::Acquire) {
        std::thread::park_timeout(INTERVAL);
        if let Err(error) = checkpoint(connection, "PASSIVE") {
            tracing::warn!(%error, "WAL checkpoint failed; will retry");
        }
    }
    if let Err(error) = checkpoint(connection, "TRUNCATE") {
        tracing::warn!(%error, "final WAL checkpoint failed");
    }
}

pub(crate) fn checkpoint(connection: &Connection, mode: &str) -> StorageResult<()> {
    connection
        .query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(()))
        .map_err(backend)
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}
