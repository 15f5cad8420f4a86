//! A small pool of read connections: WAL readers see the last commit and never block the writer.

use crate::{connect, DirLock};
use cairn_storage::StorageResult;
use parking_lot::Mutex;
use rusqlite::Connection;
use std::path::PathBuf;
use std::sync::Arc;

/// Most idle read connections kept open.
const POOL_SIZE: usize = 8;
/// Page cache of each read connection, in MiB.
const READ_CACHE_MIB: u32 = 16;

pub(crate) struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    _lock: Arc<DirLock>,
}

impl ReadPool {
    pub(crate) fn new(path: PathBuf, lock: Arc<DirLock>) -> Self {
        ReadPool {
            path,
            idle: Mutex::new(Vec::new()),
            _lock: lock,
        }
    }

    /// Runs `read` on a pooled connection (opening one if none is idle).
    pub(crate) fn with<T>(
        &self,
        read: impl FnOnce(&Connection) -> StorageResult<T>,
    ) -> StorageResult<T> {
        let pooled = self.idle.lock().pop();
        let connection = match pooled {
            Some(connection) => connection,
            None => connect(&self.path, READ_CACHE_MIB)?,
        };
        let result = read(&connection);
        let mut idle = self.idle.lock();
        if idle.len() < POOL_SIZE {
            idle.push(connection);
        }
        result
    }
}
