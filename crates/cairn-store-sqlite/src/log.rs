//! The input log in `log.db`: one row per record, appended by the single writer.

use crate::pool::ReadPool;
use crate::wal::ManagedWal;
use crate::{backend, connect, schema, DirLock};
use cairn_model::WorkspaceId;
use cairn_storage::{LogReader, LogRecord, LogWriter, RecordKind, StorageError, StorageResult};
use rusqlite::{params, Connection, Row};
use std::path::Path;
use std::sync::Arc;

/// Page cache of the log writer's connection, in MiB (it only appends).
const WRITER_CACHE_MIB: u32 = 16;
/// How far receive times may run backwards in log order: a request's receive time is taken before it
/// waits in the queue, so a scan for recent keys keeps going this far past the first older record.
const RECEIVE_ORDER_SLACK_MS: i64 = 60_000;

/// The log's single writer.
pub struct SqliteLog {
    connection: Connection,
    last_seq: u64,
    wal: ManagedWal,
    _lock: Arc<DirLock>,
}

/// Reads the log beside the writer.
pub struct SqliteLogReader {
    pool: ReadPool,
}

pub(crate) fn open(path: &Path, lock: Arc<DirLock>) -> StorageResult<(SqliteLog, SqliteLogReader)> {
    let mut connection = connect(path, WRITER_CACHE_MIB)?;
    schema::migrate(&mut connection, schema::LOG)?;
    let last_seq = last_seq(&connection)?;
    let wal = ManagedWal::start(path, &connection)?;
    Ok((
        SqliteLog {
            connection,
            last_seq,
            wal,
            _lock: lock.clone(),
        },
        SqliteLogReader {
            pool: ReadPool::new(path.to_path_buf(), lock),
        },
    ))
}

fn last_seq(connection: &Connection) -> StorageResult<u64> {
    connection
        .query_row("SELECT COALESCE(MAX(seq), 0) FROM log", [], |row| {
            row.get::<_, i64>(0)
        })
        .map(|seq| seq as u64)
        .map_err(backend)
}

fn encode_keys(keys: &[u128]) -> Vec<u8> {
    keys.iter().flat_map(|key| key.to_le_bytes()).collect()
}

fn decode_keys(bytes: &[u8]) -> StorageResult<Vec<u128>> {
    if !bytes.len().is_multiple_of(16) {
        return Err(StorageError::Corrupt(
            "a log row's keys are not 16-byte values".into(),
        ));
    }
    Ok(bytes
        .chunks_exact(16)
        .map(|chunk| {
            let mut key = [0u8; 16];
            key.copy_from_slice(chunk);
            u128::from_le_bytes(key)
        })
        .collect())
}

impl LogWriter for SqliteLog {
    fn append(&mut self, records: &mut [LogRecord]) -> StorageResult<()> {
        let first = self.last_seq + 1;
        {
            let transaction = self.connection.transaction().map_err(backend)?;
            {
                let mut insert = transaction
                    .prepare_cached(
                        "INSERT INTO log (seq, kind, workspace, received_at, count, keys, payload)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    )
                    .map_err(backend)?;
                for (offset, record) in records.iter().enumerate() {
                    debug_assert!(
                        record.kind != RecordKind::Messages
                            || record.keys.len() == record.count as usize,
                        "one key per message"
                    );
                    insert
                        .execute(params![
                            (first + offset as u64) as i64,
                            record.kind.code(),
                            record.workspace.as_str(),
                            record.received_at_ms,
                            record.count,
                            encode_keys(&record.keys),
                            record.payload,
                        ])
                        .map_err(backend)?;
                }
            }
            // Dropping an uncommitted transaction rolls it back: an error above keeps nothing.
            transaction.commit().map_err(backend)?;
        }
        for (offset, record) in records.iter_mut().enumerate() {
            record.seq = first + offset as u64;
        }
        self.last_seq += records.len() as u64;
        self.wal.after_commit(&self.connection);
        Ok(())
    }
}

const COLUMNS: &str = "seq, kind, workspace, received_at, count, keys, payload";

/// A log row as read, before its columns are checked.
struct RawRecord {
    seq: i64,
    kind: u8,
    workspace: String,
    received_at_ms: i64,
    count: u32,
    keys: Vec<u8>,
    payload: Vec<u8>,
}

fn record_from_row(row: &Row<'_>) -> rusqlite::Result<RawRecord> {
    Ok(RawRecord {
        seq: row.get(0)?,
        kind: row.get(1)?,
        workspace: row.get(2)?,
        received_at_ms: row.get(3)?,
        count: row.get(4)?,
        keys: row.get(5)?,
        payload: row.get(6)?,
    })
}

fn into_record(raw: RawRecord) -> StorageResult<LogRecord> {
    Ok(LogRecord {
        seq: raw.seq as u64,
        kind: RecordKind::from_code(raw.kind).ok_or_else(|| {
            StorageError::Corrupt(format!("unknown log record kind {}", raw.kind))
        })?,
        workspace: WorkspaceId(raw.workspace),
        received_at_ms: raw.received_at_ms,
        count: raw.count,
        keys: decode_keys(&raw.keys)?,
        payload: raw.payload,
    })
}

impl LogReader for SqliteLogReader {
    fn last_seq(&self) -> StorageResult<u64> {
        self.pool.with(last_seq)
    }

    fn read_after(&self, after: u64, limit: usize) -> StorageResult<Vec<LogRecord>> {
        self.pool.with(|connection| {
            let mut statement = connection
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM log WHERE seq > ?1 ORDER BY seq LIMIT ?2"
                ))
                .map_err(backend)?;
            let rows = statement
                .query_map(params![after as i64, limit as i64], record_from_row)
                .map_err(backend)?;
            rows.map(|row| into_record(row.map_err(backend)?)).collect()
        })
    }

    fn read_many(&self, seqs: &[u64]) -> StorageResult<Vec<LogRecord>> {
        let mut seqs = seqs.to_vec();
        seqs.sort_unstable();
        seqs.dedup();
        self.pool.with(|connection| {
            let mut statement = connection
                .prepare_cached(&format!("SELECT {COLUMNS} FROM log WHERE seq = ?1"))
                .map_err(backend)?;
            let mut records = Vec::with_capacity(seqs.len());
            for seq in seqs {
                let mut rows = statement
                    .query_map(params![seq as i64], record_from_row)
                    .map_err(backend)?;
                if let Some(row) = rows.next() {
                    records.push(into_record(row.map_err(backend)?)?);
                }
            }
            Ok(records)
        })
    }

    fn recent_keys(&self, since_ms: i64, limit: usize) -> StorageResult<Vec<(i64, u128)>> {
        self.pool.with(|connection| {
            let mut statement = connection
                .prepare("SELECT received_at, keys FROM log WHERE kind = ?1 ORDER BY seq DESC")
                .map_err(backend)?;
            let mut rows = statement
                .query(params![RecordKind::Messages.code()])
                .map_err(backend)?;
            let stop_before = since_ms.saturating_sub(RECEIVE_ORDER_SLACK_MS);
            let mut newest_first = Vec::new();
            while let Some(row) = rows.next().map_err(backend)? {
                let received_at: i64 = row.get(0).map_err(backend)?;
                if received_at < stop_before || newest_first.len() >= limit {
                    break;
                }
                if received_at >= since_ms {
                    let keys: Vec<u8> = row.get(1).map_err(backend)?;
                    for key in decode_keys(&keys)?.into_iter().rev() {
                        newest_first.push((received_at, key));
                    }
                }
            }
            newest_first.truncate(limit);
            newest_first.reverse();
            Ok(newest_first)
        })
    }
}
