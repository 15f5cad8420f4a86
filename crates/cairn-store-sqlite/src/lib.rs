//! The embedded store: two SQLite databases (bundled library) in the data directory.
//!
//! - `log.db` holds the input log ([`log`]): one row per accepted request, tick or command, appended by
//!   the single log writer. A request is acknowledged only after its row is committed.
//! - `state.db` holds the checkpoints of the state derived from the log ([`state`]): profiles and their
//!   timelines, with the log position they reflect.
//!
//! Durability: WAL journal with `synchronous=FULL`, so a commit has been fsynced before it returns.
//! WAL checkpoints (copying the WAL back into the database file) run on their own thread ([`wal`]),
//! and each database's files are written back to the disk a little at a time ([`writeback`]).
//! Two databases rather than one so that a large state checkpoint never holds the write lock that log
//! appends (and so acknowledgements) wait for. The data directory is locked by the process that opens
//! it ([`open`]), so two servers (or a server and an import) never write it at once.

mod background;
mod codec;
mod delivery;
mod log;
mod pool;
mod schema;
mod state;
mod wal;
mod writeback;

pub use delivery::SqliteDelivery;
pub use log::{SqliteLog, SqliteLogReader};
pub use state::{SqliteState, SqliteStateReader};

use cairn_storage::{Backend, StorageError, StorageResult};
use rusqlite::Connection;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

/// File name of the input log inside the data directory.
pub const LOG_FILE: &str = "log.db";
/// File name of the state checkpoints inside the data directory.
pub const STATE_FILE: &str = "state.db";
/// File name of the dispatcher's delivery records inside the data directory.
pub const DELIVERY_FILE: &str = "delivery.db";
const LOCK_FILE: &str = "LOCK";

/// Holds the data directory's lock for as long as the store is open.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

/// Opens (creating and migrating if needed) the store in `data_dir`.
pub fn open(data_dir: &Path) -> StorageResult<Backend> {
    std::fs::create_dir_all(data_dir)?;
    let lock = Arc::new(lock(data_dir)?);
    let (log, log_reader) = log::open(&data_dir.join(LOG_FILE), lock.clone())?;
    let (state, state_reader) = state::open(&data_dir.join(STATE_FILE), lock.clone())?;
    let delivery = delivery::open(&data_dir.join(DELIVERY_FILE), lock)?;
    Ok(Backend {
        log: Box::new(log),
        log_reader: Arc::new(log_reader),
        state: Box::new(state),
        state_reader: Arc::new(state_reader),
        delivery: Arc::new(delivery),
    })
}

fn lock(data_dir: &Path) -> StorageResult<DirLock> {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(data_dir.join(LOCK_FILE))?;
    match file.try_lock() {
        Ok(()) => Ok(DirLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(StorageError::Locked(data_dir.display().to_string()))
        }
        Err(std::fs::TryLockError::Error(error)) => Err(error.into()),
    }
}

/// Opens a connection with Cairn's settings: WAL, `synchronous=FULL`, a page cache of `cache_mib`.
fn connect(path: &Path, cache_mib: u32) -> StorageResult<Connection> {
    let connection = Connection::open(path).map_err(backend)?;
    connection
        .execute_batch(&format!(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA busy_timeout = 5000;
             PRAGMA cache_size = -{};
             PRAGMA temp_store = MEMORY;",
            u64::from(cache_mib) * 1024
        ))
        .map_err(backend)?;
    connection.set_prepared_statement_cache_capacity(32);
    Ok(connection)
}

pub(crate) fn backend(error: rusqlite::Error) -> StorageError {
    StorageError::Backend(error.to_string())
}

#[cfg(test)]
mod tests;
