//! State checkpoints in `state.db`: profiles, timelines and the log position they reflect.

use crate::codec::{decode_identifiers, decode_traits, encode_identifiers, encode_traits};
use crate::pool::ReadPool;
use crate::wal::ManagedWal;
use crate::{backend, connect, schema, DirLock};
use cairn_model::{ProfileId, WorkspaceId};
use cairn_storage::{
    Checkpoint, EventCursor, ProfileRow, ProfileWrite, StateReader, StateStore, StorageError,
    StorageResult, TimelineEntry,
};
use rusqlite::{params, Connection};
use std::path::Path;
use std::sync::Arc;

/// Page cache of the state writer's connection, in MiB: checkpoints insert timeline entries all
/// over the index, so a large cache keeps its interior pages in memory.
const WRITER_CACHE_MIB: u32 = 256;

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
                        created_at, updated_at, event_count
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
            })?;
        }
        Ok(())
    }

    fn checkpoint(&mut self, checkpoint: &Checkpoint) -> StorageResult<()> {
        {
            let transaction = self.connection.transaction().map_err(backend)?;
            {
                let mut full = transaction
                    .prepare_cached(
                        "INSERT OR REPLACE INTO profiles (rank, workspace, id, user_id, merged_into,
                             identifiers, traits, created_at, updated_at, event_count)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    )
                    .map_err(backend)?;
                let mut counters = transaction
                    .prepare_cached(
                        "UPDATE profiles SET event_count = ?2, updated_at = ?3 WHERE rank = ?1",
                    )
                    .map_err(backend)?;
                for write in &checkpoint.profiles {
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
                            ])
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

impl StateReader for SqliteStateReader {
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
