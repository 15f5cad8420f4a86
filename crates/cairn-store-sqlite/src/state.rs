//! State checkpoints in `state.db`: profiles, timelines and the log position they reflect.

use crate::codec::{decode_identifiers, decode_traits, encode_identifiers, encode_traits};
use crate::pool::ReadPool;
use crate::wal::ManagedWal;
use crate::{backend, connect, schema, DirLock};
use cairn_model::{ProfileId, WorkspaceId};
use cairn_storage::{
    Checkpoint, EventCursor, OutboxRow, ProfileRow, ProfileWrite, StateReader, StateStore,
    StorageError, StorageResult, TimelineEntry, TraceRow,
};
use rusqlite::{params, Connection};
use std::path::Path;
use std::sync::Arc;

/// Page cache of the state writer's connection, in MiB: enough for the interior pages of the
/// tables a checkpoint writes in key order, small enough that a large checkpoint spills its pages
/// to the WAL while it runs (where [`crate::writeback`] has them written out) instead of writing
/// them all at its commit, whose sync the log's commits would queue behind.
const WRITER_CACHE_MIB: u32 = 64;

/// The state's single writer.
pub struct SqliteState {
    connection: Connection,
    wal: ManagedWal,
    _lock: Arc<DirLock>,
}

/// Reads checkpointed state beside the writer.
pub struct SqliteStateReader {
    pool: ReadPool,
}

pub(crate) fn open(
    path: &Path,
    lock: Arc<DirLock>,
) -> StorageResult<(SqliteState, SqliteStateReader)> {
    let mut connection = connect(path, WRITER_CACHE_MIB)?;
    schema::migrate(&mut connection, schema::STATE)?;
    let wal = ManagedWal::start(path, &connection)?;
    Ok((
        SqliteState {
            connection,
            wal,
            _lock: lock.clone(),
        },
        SqliteStateReader {
            pool: ReadPool::new(path.to_path_buf(), lock),
        },
    ))
}

fn corrupt(what: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt(what.to_string())
}

impl StateStore for SqliteState {
    fn applied_seq(&mut self) -> StorageResult<u64> {
        self.connection
            .query_row(
                "SELECT value FROM meta WHERE key = 'applied_seq'",
                [],
                |row| row.get::<_, i64>(0),
            )
            .map(|seq| seq as u64)
            .map_err(backend)
    }

    fn load_profiles(
        &mut self,
        each: &mut dyn FnMut(ProfileRow) -> StorageResult<()>,
    ) -> StorageResult<()> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT rank, workspace, id, user_id, merged_into, identifiers, traits,
                        created_at, updated_at, event_count, extra
                 FROM profiles ORDER BY rank",
            )
            .map_err(backend)?;
        let mut rows = statement.query([]).map_err(backend)?;
        while let Some(row) = rows.next().map_err(backend)? {
            let id: String = row.get(2).map_err(backend)?;
            let identifiers: String = row.get(5).map_err(backend)?;
            let traits: String = row.get(6).map_err(backend)?;
            let event_count: i64 = row.get(9).map_err(backend)?;
            each(ProfileRow {
                rank: row.get(0).map_err(backend)?,
                workspace: WorkspaceId(row.get(1).map_err(backend)?),
                id: ProfileId::parse(&id).ok_or_else(|| corrupt(format!("profile id {id:?}")))?,
                user_id: row.get(3).map_err(backend)?,
                merged_into: row.get(4).map_err(backend)?,
                identifiers: decode_identifiers(&identifiers)?,
                traits: decode_traits(&traits)?,
                created_at_ms: row.get(7).map_err(backend)?,
                updated_at_ms: row.get(8).map_err(backend)?,
                event_count: event_count as u64,
                extra: row.get(10).map_err(backend)?,
            })?;
        }
        Ok(())
    }

    fn load_registries(&mut self) -> StorageResult<Vec<(WorkspaceId, Vec<u8>)>> {
        let mut statement = self
            .connection
            .prepare("SELECT workspace, state FROM registries ORDER BY workspace")
            .map_err(backend)?;
        let rows = statement
            .query_map([], |row| Ok((WorkspaceId(row.get(0)?), row.get(1)?)))
            .map_err(backend)?;
        rows.map(|row| row.map_err(backend)).collect()
    }

    fn load_identity(&mut self) -> StorageResult<Vec<(WorkspaceId, Vec<u8>)>> {
        let mut statement = self
            .connection
            .prepare("SELECT workspace, state FROM identity ORDER BY workspace")
            .map_err(backend)?;
        let rows = statement
            .query_map([], |row| Ok((WorkspaceId(row.get(0)?), row.get(1)?)))
            .map_err(backend)?;
        rows.map(|row| row.map_err(backend)).collect()
    }

    fn load_counters(&mut self) -> StorageResult<Vec<(String, u64)>> {
        let mut statement = self
            .connection
            .prepare("SELECT key, value FROM meta WHERE key != 'applied_seq' ORDER BY key")
            .map_err(backend)?;
        let rows = statement
            .query_map([], |row| Ok((row.get(0)?, row.get::<_, i64>(1)? as u64)))
            .map_err(backend)?;
        rows.map(|row| row.map_err(backend)).collect()
    }

    fn checkpoint(&mut self, checkpoint: &Checkpoint) -> StorageResult<()> {
        {
            let transaction = self.connection.transaction().map_err(backend)?;
            {
                let mut full = transaction
                    .prepare_cached(
                        "INSERT OR REPLACE INTO profiles (rank, workspace, id, user_id, merged_into,
                             identifiers, traits, created_at, updated_at, event_count, extra)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    )
                    .map_err(backend)?;
                let mut extra = transaction
                    .prepare_cached(
                        "UPDATE profiles SET event_count = ?2, updated_at = ?3, extra = ?4 WHERE rank = ?1",
                    )
                    .map_err(backend)?;
                let mut counters = transaction
                    .prepare_cached(
                        "UPDATE profiles SET event_count = ?2, updated_at = ?3 WHERE rank = ?1",
                    )
                    .map_err(backend)?;
                // In rank order, each page of the table is visited once and in turn, not at
                // random (a page the cache let go of would be read and logged again). The sort is
                // stable: a profile copied twice keeps its later write last.
                let mut order: Vec<usize> = (0..checkpoint.profiles.len()).collect();
                order.sort_by_key(|&index| checkpoint.profiles[index].rank());
                for write in order.into_iter().map(|index| &checkpoint.profiles[index]) {
                    match write {
                        ProfileWrite::Full(row) => full
                            .execute(params![
                                row.rank,
                                row.workspace.as_str(),
                                row.id.to_string(),
                                row.user_id,
                                row.merged_into,
                                encode_identifiers(&row.identifiers),
                                encode_traits(&row.traits),
                                row.created_at_ms,
                                row.updated_at_ms,
                                row.event_count as i64,
                                row.extra,
                            ])
                            .map_err(backend)?,
                        ProfileWrite::Extra {
                            rank,
                            event_count,
                            updated_at_ms,
                            extra: bytes,
                        } => extra
                            .execute(params![rank, *event_count as i64, updated_at_ms, bytes])
                            .map_err(backend)?,
                        ProfileWrite::Counters {
                            rank,
                            event_count,
                            updated_at_ms,
                        } => counters
                            .execute(params![rank, *event_count as i64, updated_at_ms])
                            .map_err(backend)?,
                    };
                }
                let mut timeline = transaction
                    .prepare_cached(
                        "INSERT OR IGNORE INTO timeline (profile, timestamp, seq) VALUES (?1, ?2, ?3)",
                    )
                    .map_err(backend)?;
                let mut entries = checkpoint.timeline.clone();
                // In key order: each insert lands next to the previous one in the index.
                entries.sort_unstable();
                for entry in &entries {
                    timeline
                        .execute(params![
                            entry.profile_rank,
                            entry.timestamp_ms,
                            entry.seq as i64
                        ])
                        .map_err(backend)?;
                }
                write_outbox(&transaction, &checkpoint.outbox)?;
                write_traces(&transaction, &checkpoint.traces)?;
                let mut registry = transaction
                    .prepare_cached(
                        "INSERT OR REPLACE INTO registries (workspace, state) VALUES (?1, ?2)",
                    )
                    .map_err(backend)?;
                for (workspace, state) in &checkpoint.registries {
                    registry
                        .execute(params![workspace.as_str(), state])
                        .map_err(backend)?;
                }
                let mut identity = transaction
                    .prepare_cached(
                        "INSERT OR REPLACE INTO identity (workspace, state) VALUES (?1, ?2)",
                    )
                    .map_err(backend)?;
                for (workspace, state) in &checkpoint.identity {
                    identity
                        .execute(params![workspace.as_str(), state])
                        .map_err(backend)?;
                }
                let mut counter = transaction
                    .prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")
                    .map_err(backend)?;
                for (key, value) in &checkpoint.counters {
                    counter
                        .execute(params![key, *value as i64])
                        .map_err(backend)?;
                }
                transaction
                    .execute(
                        "UPDATE meta SET value = ?1 WHERE key = 'applied_seq'",
                        params![checkpoint.applied_seq as i64],
                    )
                    .map_err(backend)?;
            }
            // Dropping an uncommitted transaction rolls it back: an error above keeps nothing.
            transaction.commit().map_err(backend)?;
        }
        self.wal.after_commit(&self.connection);
        Ok(())
    }
}

fn write_outbox(transaction: &rusqlite::Transaction<'_>, rows: &[OutboxRow]) -> StorageResult<()> {
    let mut insert = transaction
        .prepare_cached(
            "INSERT OR REPLACE INTO outbox (message_id, workspace, profile, journey, channel, at, body, status)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .map_err(backend)?;
    // In key order, so inserts land next to each other (message ids are not made in key order).
    let mut order: Vec<&OutboxRow> = rows.iter().collect();
    order.sort_by(|a, b| a.message_id.cmp(&b.message_id));
    for row in order {
        insert
            .execute(params![
                row.message_id,
                row.workspace.as_str(),
                row.profile_rank,
                row.journey_id,
                row.channel,
                row.at_ms,
                row.body,
                row.status
            ])
            .map_err(backend)?;
    }
    Ok(())
}

fn write_traces(transaction: &rusqlite::Transaction<'_>, rows: &[TraceRow]) -> StorageResult<()> {
    let mut insert = transaction
        .prepare_cached(
            "INSERT OR IGNORE INTO traces (profile, journey, enrollment, position, at, entry)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .map_err(backend)?;
    // In key order (stable: equal keys keep their order), so inserts land next to each other.
    let mut order: Vec<&TraceRow> = rows.iter().collect();
    order.sort_by(|a, b| {
        (a.profile_rank, &a.journey_id, a.enrollment, a.position).cmp(&(
            b.profile_rank,
            &b.journey_id,
            b.enrollment,
            b.position,
        ))
    });
    for row in order {
        insert
            .execute(params![
                row.profile_rank,
                row.journey_id,
                row.enrollment as i64,
                row.position,
                row.at_ms,
                row.entry
            ])
            .map_err(backend)?;
    }
    Ok(())
}

/// A stored trace entry's bytes: a blob, or (rows written by older builds) JSON text.
fn trace_entry(value: rusqlite::types::ValueRef<'_>) -> rusqlite::Result<Vec<u8>> {
    match value {
        rusqlite::types::ValueRef::Blob(bytes) | rusqlite::types::ValueRef::Text(bytes) => {
            Ok(bytes.to_vec())
        }
        other => Err(rusqlite::Error::InvalidColumnType(
            5,
            "entry".into(),
            other.data_type(),
        )),
    }
}

fn outbox_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxRow> {
    Ok(OutboxRow {
        message_id: row.get(0)?,
        workspace: WorkspaceId(row.get(1)?),
        profile_rank: row.get(2)?,
        journey_id: row.get(3)?,
        channel: row.get(4)?,
        at_ms: row.get(5)?,
        body: row.get(6)?,
        status: row.get(7)?,
    })
}

impl StateReader for SqliteStateReader {
    fn outbox(&self, profiles: &[u32], limit: usize) -> StorageResult<Vec<OutboxRow>> {
        self.pool.with(|connection| {
            let mut statement = connection
                .prepare_cached(
                    "SELECT message_id, workspace, profile, journey, channel, at, body, status FROM outbox
                     WHERE profile = ?1 ORDER BY at DESC LIMIT ?2",
                )
                .map_err(backend)?;
            let mut rows = Vec::new();
            for &profile in profiles {
                for row in statement
                    .query_map(params![profile, limit as i64], outbox_row)
                    .map_err(backend)?
                {
                    rows.push(row.map_err(backend)?);
                }
            }
            rows.sort_by(|a: &OutboxRow, b: &OutboxRow| {
                (b.at_ms, &b.message_id).cmp(&(a.at_ms, &a.message_id))
            });
            rows.truncate(limit);
            Ok(rows)
        })
    }

    fn outbox_message(&self, message_id: &str) -> StorageResult<Option<OutboxRow>> {
        self.pool.with(|connection| {
            let mut statement = connection
                .prepare_cached(
                    "SELECT message_id, workspace, profile, journey, channel, at, body, status FROM outbox
                     WHERE message_id = ?1",
                )
                .map_err(backend)?;
            let mut rows = statement
                .query_map(params![message_id], outbox_row)
                .map_err(backend)?;
            rows.next().transpose().map_err(backend)
        })
    }

    fn ready_outbox(&self, since_ms: i64, limit: usize) -> StorageResult<Vec<OutboxRow>> {
        self.pool.with(|connection| {
            let mut statement = connection
                .prepare_cached(
                    "SELECT message_id, workspace, profile, journey, channel, at, body, status FROM outbox
                     WHERE status = 'ready' AND at >= ?1 ORDER BY at, message_id LIMIT ?2",
                )
                .map_err(backend)?;
            let rows = statement
                .query_map(params![since_ms, limit as i64], outbox_row)
                .map_err(backend)?;
            rows.map(|row| row.map_err(backend)).collect()
        })
    }

    fn traces(&self, profiles: &[u32], journey_id: &str) -> StorageResult<Vec<TraceRow>> {
        self.pool.with(|connection| {
            let mut statement = connection
                .prepare_cached(
                    "SELECT profile, journey, enrollment, position, at, entry FROM traces
                     WHERE profile = ?1 AND journey = ?2 ORDER BY enrollment, position",
                )
                .map_err(backend)?;
            let mut rows = Vec::new();
            for &profile in profiles {
                for row in statement
                    .query_map(params![profile, journey_id], |row| {
                        Ok(TraceRow {
                            profile_rank: row.get(0)?,
                            journey_id: row.get(1)?,
                            enrollment: row.get::<_, i64>(2)? as u64,
                            position: row.get(3)?,
                            at_ms: row.get(4)?,
                            entry: trace_entry(row.get_ref(5)?)?,
                        })
                    })
                    .map_err(backend)?
                {
                    rows.push(row.map_err(backend)?);
                }
            }
            rows.sort_by_key(|row| (row.enrollment, row.position));
            Ok(rows)
        })
    }

    fn timeline(
        &self,
        profiles: &[u32],
        before: Option<EventCursor>,
        limit: usize,
    ) -> StorageResult<Vec<TimelineEntry>> {
        let (before_ts, before_seq) = match before {
            Some(cursor) => (cursor.timestamp_ms, cursor.seq as i64),
            None => (i64::MAX, i64::MAX),
        };
        self.pool.with(|connection| {
            let mut statement = connection
                .prepare_cached(
                    "SELECT timestamp, seq FROM timeline
                     WHERE profile = ?1 AND (timestamp, seq) < (?2, ?3)
                     ORDER BY timestamp DESC, seq DESC LIMIT ?4",
                )
                .map_err(backend)?;
            let mut entries = Vec::new();
            for &profile in profiles {
                let rows = statement
                    .query_map(
                        params![profile, before_ts, before_seq, limit as i64],
                        |row| {
                            Ok(TimelineEntry {
                                profile_rank: profile,
                                timestamp_ms: row.get(0)?,
                                seq: row.get::<_, i64>(1)? as u64,
                            })
                        },
                    )
                    .map_err(backend)?;
                for row in rows {
                    entries.push(row.map_err(backend)?);
                }
            }
            entries.sort_unstable_by_key(|e| std::cmp::Reverse((e.timestamp_ms, e.seq)));
            entries.truncate(limit);
            Ok(entries)
        })
    }

    fn ping(&self) -> StorageResult<()> {
        self.pool.with(|connection| {
            connection
                .query_row("SELECT 1", [], |_| Ok(()))
                .map_err(backend)
        })
    }
}
