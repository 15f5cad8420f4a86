//! WAL checkpoints off the commit path (SQLite's checkpoints: copying the WAL back into the database
//! file; not to be confused with the engine's state checkpoints).
//!
//! Each writer's connection has automatic checkpoints turned off, so a commit only appends its pages
//! to the WAL and fsyncs it. This thread copies committed pages back into the database file with
//! `PASSIVE` checkpoints, which never take the write lock. A passive checkpoint cannot restart the WAL
//! while the writer keeps appending, so the writer itself restarts it between commits once it has
//! grown past [`WAL_LIMIT_BYTES`] ([`wal_oversized`]): the WAL stays bounded under sustained load.

use crate::backend;
use crate::background::BackgroundThread;
use crate::writeback;
use cairn_storage::StorageResult;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Time between two passive checkpoints.
const INTERVAL: Duration = Duration::from_millis(200);
/// WAL size above which the checkpointer waits for the writer to let it restart the WAL.
pub const WAL_LIMIT_BYTES: u64 = 64 * 1024 * 1024;

/// Starts the WAL checkpoint thread of one database; it stops (after a last checkpoint) when the
/// handle is dropped.
fn start_checkpointer(connection: Connection) -> StorageResult<BackgroundThread> {
    Ok(BackgroundThread::spawn("cairn-wal", move |stop| {
        run(&connection, stop)
    })?)
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

/// Commits between two checks of the WAL's size.
const WAL_CHECK_EVERY_COMMITS: u64 = 32;
/// Page cache of the checkpointer's connection, in MiB.
const CHECKPOINTER_CACHE_MIB: u32 = 8;

/// The WAL of one writer connection: checkpointed by its own thread, and restarted by the writer
/// between commits once oversized.
pub(crate) struct ManagedWal {
    wal: PathBuf,
    commits: u64,
    _checkpointer: BackgroundThread,
    _writeback: BackgroundThread,
}

impl ManagedWal {
    /// Turns automatic checkpoints off on `writer` and starts the checkpoint thread for `database`.
    pub(crate) fn start(database: &Path, writer: &Connection) -> StorageResult<ManagedWal> {
        writer
            .pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(backend)?;
        let checkpointer = start_checkpointer(crate::connect(database, CHECKPOINTER_CACHE_MIB)?)?;
        let writeback = writeback::start(vec![wal_path(database), database.to_path_buf()])?;
        Ok(ManagedWal {
            wal: wal_path(database),
            commits: 0,
            _checkpointer: checkpointer,
            _writeback: writeback,
        })
    }

    /// Call after each commit: restarts an oversized WAL (passive checkpoints cannot while we write).
    pub(crate) fn after_commit(&mut self, writer: &Connection) {
        self.commits += 1;
        if self.commits.is_multiple_of(WAL_CHECK_EVERY_COMMITS) && wal_oversized(&self.wal) {
            if let Err(error) = checkpoint(writer, "RESTART") {
                tracing::warn!(%error, "could not restart the oversized WAL; will retry");
            }
        }
    }
}
