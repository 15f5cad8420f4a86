//! The dispatcher's delivery records in `delivery.db`: what was attempted and what came of it.
//!
//! A third database, beside the log and the state, because the dispatcher writes it at its own pace
//! (an attempt before each batch leaves, its results after) and must never wait for a checkpoint.

use crate::pool::ReadPool;
use crate::wal::ManagedWal;
use crate::{backend, connect, schema, DirLock};
use cairn_model::WorkspaceId;
use cairn_storage::{DeliveryRecord, DeliveryState, DeliveryStore, StorageError, StorageResult};
use parking_lot::Mutex;
use rusqlite::{params, Connection, Row};
use std::path::Path;
use std::sync::Arc;

/// Page cache of the delivery writer's connection, in MiB.
const WRITER_CACHE_MIB: u32 = 16;

/// Delivery records: one writer connection (serialized), pooled readers.
pub struct SqliteDelivery {
    writer: Mutex<(Connection, ManagedWal)>,
    readers: ReadPool,
    _lock: Arc<DirLock>,
}

pub(crate) fn open(path: &Path, lock: Arc<DirLock>) -> StorageResult<SqliteDelivery> {
    let mut connection = connect(path, WRITER_CACHE_MIB)?;
    schema::migrate(&mut connection, schema::DELIVERY)?;
    let wal = ManagedWal::start(path, &connection)?;
    Ok(SqliteDelivery {
        writer: Mutex::new((connection, wal)),
        readers: ReadPool::new(path.to_path_buf(), lock.clone()),
        _lock: lock,
    })
}

const COLUMNS: &str = "message_id, workspace, channel, state, attempts, next_attempt_at, provider,
                       provider_message_id, last_error, updated_at, outbox";

fn record_from_row(row: &Row<'_>) -> rusqlite::Result<(DeliveryRecord, String)> {
    let state: String = row.get(3)?;
    Ok((
        DeliveryRecord {
            message_id: row.get(0)?,
            workspace: WorkspaceId(row.get(1)?),
            channel: row.get(2)?,
            state: DeliveryState::Attempting,
            attempts: row.get(4)?,
            next_attempt_at_ms: row.get(5)?,
            provider: row.get(6)?,
            provider_message_id: row.get(7)?,
            last_error: row.get(8)?,
            updated_at_ms: row.get(9)?,
            outbox: row.get(10)?,
        },
        state,
    ))
}

fn checked((mut record, state): (DeliveryRecord, String)) -> StorageResult<DeliveryRecord> {
    record.state = DeliveryState::parse(&state)
        .ok_or_else(|| StorageError::Corrupt(format!("unknown delivery state {state:?}")))?;
    Ok(record)
}

impl SqliteDelivery {
    fn query(
        &self,
        sql: &str,
        arguments: impl rusqlite::Params,
    ) -> StorageResult<Vec<DeliveryRecord>> {
        self.readers.with(|connection| {
            let mut statement = connection.prepare_cached(sql).map_err(backend)?;
            let rows = statement
                .query_map(arguments, record_from_row)
                .map_err(backend)?;
            rows.map(|row| checked(row.map_err(backend)?)).collect()
        })
    }
}

impl DeliveryStore for SqliteDelivery {
    fn record(&self, records: &[DeliveryRecord]) -> StorageResult<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut writer = self.writer.lock();
        let (connection, wal) = &mut *writer;
        {
            let transaction = connection.transaction().map_err(backend)?;
            {
                let mut upsert = transaction
                    .prepare_cached(&format!(
                        "INSERT OR REPLACE INTO deliveries ({COLUMNS})
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
                    ))
                    .map_err(backend)?;
                for record in records {
                    upsert
                        .execute(params![
                            record.message_id,
                            record.workspace.as_str(),
                            record.channel,
                            record.state.as_str(),
                            record.attempts,
                            record.next_attempt_at_ms,
                            record.provider,
                            record.provider_message_id,
                            record.last_error,
                            record.updated_at_ms,
                            record.outbox,
                        ])
                        .map_err(backend)?;
                }
            }
            transaction.commit().map_err(backend)?;
        }
        wal.after_commit(connection);
        Ok(())
    }

    fn get(&self, message_ids: &[String]) -> StorageResult<Vec<DeliveryRecord>> {
        self.readers.with(|connection| {
            let mut statement = connection
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM deliveries WHERE message_id = ?1"
                ))
                .map_err(backend)?;
            let mut records = Vec::new();
            for id in message_ids {
                let mut rows = statement
                    .query_map(params![id], record_from_row)
                    .map_err(backend)?;
                if let Some(row) = rows.next() {
                    records.push(checked(row.map_err(backend)?)?);
                }
            }
            Ok(records)
        })
    }

    fn in_state(&self, state: DeliveryState, limit: usize) -> StorageResult<Vec<DeliveryRecord>> {
        self.query(
            &format!(
                "SELECT {COLUMNS} FROM deliveries WHERE state = ?1 ORDER BY updated_at LIMIT ?2"
            ),
            params![state.as_str(), limit as i64],
        )
    }

    fn due_retries(&self, now_ms: i64, limit: usize) -> StorageResult<Vec<DeliveryRecord>> {
        self.query(
            &format!(
                "SELECT {COLUMNS} FROM deliveries WHERE state = 'retrying' AND next_attempt_at <= ?1
                 ORDER BY next_attempt_at LIMIT ?2"
            ),
            params![now_ms, limit as i64],
        )
    }

    fn list(
        &self,
        workspace: &WorkspaceId,
        state: Option<DeliveryState>,
        limit: usize,
    ) -> StorageResult<Vec<DeliveryRecord>> {
        match state {
            Some(state) => self.query(
                &format!(
                    "SELECT {COLUMNS} FROM deliveries WHERE workspace = ?1 AND state = ?2
                     ORDER BY updated_at DESC LIMIT ?3"
                ),
                params![workspace.as_str(), state.as_str(), limit as i64],
            ),
            None => self.query(
                &format!(
                    "SELECT {COLUMNS} FROM deliveries WHERE workspace = ?1
                     ORDER BY updated_at DESC LIMIT ?2"
                ),
                params![workspace.as_str(), limit as i64],
            ),
        }
    }

    fn mark(&self, name: &str) -> StorageResult<Option<i64>> {
        self.readers.with(|connection| {
            let mut statement = connection
                .prepare_cached("SELECT value FROM marks WHERE name = ?1")
                .map_err(backend)?;
            let mut rows = statement
                .query_map(params![name], |row| row.get::<_, i64>(0))
                .map_err(backend)?;
            rows.next().transpose().map_err(backend)
        })
    }

    fn set_mark(&self, name: &str, value: i64) -> StorageResult<()> {
        let writer = self.writer.lock();
        writer
            .0
            .execute(
                "INSERT OR REPLACE INTO marks (name, value) VALUES (?1, ?2)",
                params![name, value],
            )
            .map_err(backend)?;
        Ok(())
    }
}
