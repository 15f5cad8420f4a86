//! The embedded store: one SQLite database (bundled library) in the data directory.
//!
//! Durability: WAL journal with `synchronous=FULL`, so a committed transaction has been fsynced before
//! [`Store::write`](cairn_storage::Store::write) returns. The data directory is locked by the process
//! that opens it ([`open`]), so two servers (or a server and an import) never write it at once.
//!
//! WAL checkpoints run on their own thread and connection ([`checkpoint`]), so the writer's commits
//! only append to the WAL and fsync it.
//!
//! One [`SqliteWriter`] (the single writer of every partition this node owns) and a pool of read
//! connections ([`SqliteReader`]) that read concurrently through WAL snapshots.

mod checkpoint;
mod codec;
mod reader;
mod schema;
mod writer;

pub use reader::SqliteReader;
pub use writer::SqliteWriter;

use cairn_storage::{StorageError, StorageResult};
use rusqlite::Connection;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// File name of the database inside the data directory.
pub const DATABASE_FILE: &str = "cairn.db";
const LOCK_FILE: &str = "LOCK";

/// Holds the data directory's lock for as long as the store is open.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

/// Opens (creating and migrating if needed) the store in `data_dir`.
pub fn open(data_dir: &Path) -> StorageResult<(SqliteWriter, SqliteReader)> {
    std::fs::create_dir_all(data_dir)?;
    let lock_file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(data_dir.join(LOCK_FILE))?;
    match lock_file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(StorageError::Locked(data_dir.display().to_string()));
        }
        Err(std::fs::TryLockError::Error(error)) => return Err(error.into()),
    }
    let lock = Arc::new(DirLock { _file: lock_file });
    let path = data_dir.join(DATABASE_FILE);
    let mut connection = connect(&path)?;
    schema::migrate(&mut connection)?;
    connection
        .pragma_update(None, "wal_autocheckpoint", 0)
        .map_err(backend)?;
    let checkpointer = checkpoint::Checkpointer::start(connect(&path)?)?;
    Ok((
        SqliteWriter::new(
            connection,
            checkpointer,
            checkpoint::wal_path(&path),
            lock.clone(),
        ),
        SqliteReader::new(path, Some(lock)),
    ))
}

/// Opens read access only, without taking the directory lock: a running server may be writing.
pub fn open_reader(data_dir: &Path) -> StorageResult<SqliteReader> {
    let path = data_dir.join(DATABASE_FILE);
    if !path.exists() {
        return Err(StorageError::Io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no Cairn store in {}", data_dir.display()),
        )));
    }
    Ok(SqliteReader::new(path, None))
}

fn connect(path: &PathBuf) -> StorageResult<Connection> {
    let connection = Connection::open(path).map_err(backend)?;
    connection
        .execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA busy_timeout = 5000;
             PRAGMA cache_size = -65536;
             PRAGMA temp_store = MEMORY;",
        )
        .map_err(backend)?;
    connection.set_prepared_statement_cache_capacity(64);
    Ok(connection)
}

pub(crate) fn backend(error: rusqlite::Error) -> StorageError {
    StorageError::Backend(error.to_string())
}

#[cfg(test)]
mod tests;
